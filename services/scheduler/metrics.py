"""Metrics of the scheduler (the OpenAI front end): request latencies as vLLM names them, plus
routing, admission, pools and KV transfers. Latencies are model seconds (wall x speedup)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.hw_metrics import precreate
from services.common.vllm_metrics import (
    FINISHED_REASONS,
    ITL_BUCKETS,
    REQUEST_LATENCY_BUCKETS,
    STEP_BUCKETS,
    TTFT_BUCKETS,
    token_count_buckets,
)
from supernode.engine.registry import WorkerKind
from supernode.engine.request import RequestStatus
from supernode.v1 import supernode_pb2 as pb

LABELS = ("model_name",)


class SchedulerMetrics:
    def __init__(self, registry: CollectorRegistry, model_name: str, max_model_len: int) -> None:
        self.labels = {"model_name": model_name}
        r = registry
        lens = token_count_buckets(max_model_len)
        self.ttft = Histogram("vllm:time_to_first_token_seconds",
                              "Time to first token, from arrival at the front end.", LABELS,
                              buckets=TTFT_BUCKETS, registry=r)
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "End-to-end request latency.",
                             LABELS, buckets=REQUEST_LATENCY_BUCKETS, registry=r)
        self.request_tpot = Histogram("vllm:request_time_per_output_token_seconds",
                                      "Per request: mean time per output token after the first.",
                                      LABELS, buckets=ITL_BUCKETS, registry=r)
        self.prompt_len = Histogram("vllm:request_prompt_tokens", "Prompt tokens per request.",
                                    LABELS, buckets=lens, registry=r)
        self.generation_len = Histogram("vllm:request_generation_tokens",
                                        "Generated tokens per request.", LABELS, buckets=lens,
                                        registry=r)
        self.max_tokens = Histogram("vllm:request_params_max_tokens",
                                    "max_tokens per request.", LABELS, buckets=lens, registry=r)
        self.success = Counter("vllm:request_success", "Finished requests by reason.",
                               (*LABELS, "finished_reason"), registry=r)
        self.requests = Gauge("supernode_requests", "Requests in flight by state.",
                              (*LABELS, "state"), registry=r)
        self.failed = Counter("supernode_request_failures",
                              "Requests that ended in an error, by HTTP status.",
                              (*LABELS, "status"), registry=r)
        self.routed = Counter("supernode_routed", "Routing decisions by pool and instance.",
                              ("pool", "worker", "policy"), registry=r)
        self.admission_rejections = Counter("supernode_admission_rejections",
                                            "Decode admissions refused (no KV room).",
                                            ("worker",), registry=r)
        self.failovers = Counter("supernode_failovers", "Requests moved after a worker loss.",
                                 registry=r)
        self.workers = Gauge("supernode_workers", "Registered workers per pool.", ("pool",),
                             registry=r)
        self.workers_expected = Gauge("supernode_workers_expected",
                                      "Configured workers per pool (/health is degraded below).",
                                      ("pool",), registry=r)
        self.kv_transfer_bytes = Counter("supernode_kv_transfer_bytes",
                                         "Modelled KV bytes moved prefill -> decode.",
                                         registry=r)
        self.kv_transfer_seconds = Histogram("supernode_kv_transfer_seconds",
                                             "Modelled prefill -> decode KV transfer time.",
                                             buckets=STEP_BUCKETS, registry=r)
        self.cached_tokens = Counter("supernode_cached_prompt_tokens",
                                     "Prompt tokens served from the EMS prefix cache.",
                                     LABELS, registry=r)
        self._policy = {"prefill": "", "decode": ""}
        self._precreate()

    def _precreate(self) -> None:
        """Every fixed label combination at zero, so rate() panels have data from the start."""
        precreate(self, self.labels)
        for reason in FINISHED_REASONS:
            self.success.labels(**self.labels, finished_reason=reason)
        for state in (RequestStatus.QUEUED, RequestStatus.PREFILLING, RequestStatus.DECODING):
            self.requests.labels(**self.labels, state=state.value)
        self.failed.labels(**self.labels, status="503")
        for kind in WorkerKind:
            self.workers.labels(pool=kind.value)

    def set_policies(self, prefill: str, decode: str) -> None:
        self._policy = {"prefill": prefill, "decode": decode}

    def on_state(self, state: RequestStatus, delta: int) -> None:
        self.requests.labels(**self.labels, state=state.value).inc(delta)

    def on_prefill(self, worker_id: str, response: pb.PrefillResponse) -> None:
        self.kv_transfer_bytes.inc(response.kv_num_bytes)
        if response.kv_num_bytes:
            self.kv_transfer_seconds.observe(response.transfer_s)
        self.cached_tokens.labels(**self.labels).inc(response.num_cached_tokens)

    def routed_to(self, pool: str, worker_id: str) -> None:
        self.routed.labels(pool=pool, worker=worker_id, policy=self._policy[pool]).inc()
