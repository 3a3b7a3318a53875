"""Metrics of one decode worker: vLLM's names plus supernode_* hardware series. Model seconds."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.vllm_metrics import (
    FINISHED_REASONS,
    ITL_BUCKETS,
    LABELS,
    REQUEST_LATENCY_BUCKETS,
)
from services.common.worker_metrics import WorkerMetrics


class DecodeMetrics(WorkerMetrics):
    running_help = "Requests in the running batch."
    waiting_help = "Requests admitted and waiting for KV or a batch slot."
    generation_help = "Generated tokens after the first."
    iteration_help = "Tokens produced per engine step."

    def __init__(self, registry: CollectorRegistry, model_name: str, worker_id: str) -> None:
        super().__init__(registry, model_name, worker_id)
        r = registry
        self.kv_bytes_received = self.hw.link_bytes
        self.preemptions = Counter("vllm:num_preemptions",
                                   "Preemptions (none: KV is reserved at admission).", LABELS,
                                   registry=r)
        self.itl = Histogram("vllm:inter_token_latency_seconds",
                             "Model seconds between successive token emissions.", LABELS,
                             buckets=ITL_BUCKETS, registry=r)
        self.tpot = Histogram("vllm:time_per_output_token_seconds",
                              "Deprecated alias: model seconds per output token.", LABELS,
                              buckets=ITL_BUCKETS, registry=r)
        self.decode_time = Histogram("vllm:request_decode_time_seconds",
                                     "Model seconds from first running step to finish.",
                                     LABELS, buckets=REQUEST_LATENCY_BUCKETS, registry=r)
        self.success = Counter("vllm:request_success", "Finished requests.",
                               (*LABELS, "finished_reason"), registry=r)
        self.kv_reserved = Gauge("supernode_kv_reserved_perc",
                                 "Fraction of KV capacity reserved by admitted requests "
                                 "(prompt + max_tokens each); admission fails when it is full.",
                                 LABELS, registry=r)
        self.admission_rejections = Counter("supernode_decode_admission_rejections",
                                            "Admissions refused (KV reservation did not fit).",
                                            LABELS, registry=r)
        self.mtp_proposed = Counter("supernode_mtp_proposed_tokens",
                                    "Speculative tokens proposed.", LABELS, registry=r)
        self.mtp_accepted = Counter("supernode_mtp_accepted_tokens",
                                    "Speculative tokens accepted.", LABELS, registry=r)
        self.kv_rejected = Counter("supernode_kv_transfer_rejected",
                                   "KV transfers refused (bad checksum, unknown request).",
                                   (*LABELS, "reason"), registry=r)
        self._precreate()

    def _precreate(self) -> None:
        super()._precreate()
        for reason in FINISHED_REASONS:
            self.success.labels(**self.labels, finished_reason=reason)
        self.kv_bytes_received.labels(**self.labels, plane="rdma", direction="in")
