"""Metrics of one decode worker: vLLM's names plus supernode_* hardware series. Model seconds."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.hw_metrics import HardwareSeries, precreate
from services.common.vllm_metrics import (
    FINISHED_REASONS,
    ITERATION_TOKEN_BUCKETS,
    ITL_BUCKETS,
    LABELS,
    REQUEST_LATENCY_BUCKETS,
)


class DecodeMetrics:
    def __init__(self, registry: CollectorRegistry, model_name: str, worker_id: str) -> None:
        self.labels = {"model_name": model_name, "engine": worker_id}
        r = registry
        self.hw = HardwareSeries(r, self.labels)
        self.kv_bytes_received = self.hw.link_bytes
        self.num_running = Gauge("vllm:num_requests_running",
                                 "Requests in the running batch.", LABELS, registry=r)
        self.num_waiting = Gauge("vllm:num_requests_waiting",
                                 "Requests admitted and waiting for KV or a batch slot.",
                                 LABELS, registry=r)
        self.kv_usage = Gauge("vllm:kv_cache_usage_perc",
                              "Fraction of KV-cache capacity in use (1 = 100%).", LABELS,
                              registry=r)
        self.gpu_kv_usage = Gauge("vllm:gpu_cache_usage_perc",
                                  "Deprecated alias of vllm:kv_cache_usage_perc.", LABELS,
                                  registry=r)
        self.generation_tokens = Counter("vllm:generation_tokens",
                                         "Generated tokens after the first.", LABELS, registry=r)
        self.preemptions = Counter("vllm:num_preemptions",
                                   "Preemptions (none: KV is reserved at admission).", LABELS,
                                   registry=r)
        self.iteration_tokens = Histogram("vllm:iteration_tokens_total",
                                          "Tokens produced per engine step.", LABELS,
                                          buckets=ITERATION_TOKEN_BUCKETS, registry=r)
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
        precreate(self, self.labels)
        precreate(self.hw, self.labels)
        for reason in FINISHED_REASONS:
            self.success.labels(**self.labels, finished_reason=reason)
        self.kv_bytes_received.labels(**self.labels, plane="rdma", direction="in")
