"""Metrics of one prefill worker: vLLM's names plus supernode_* series. Model seconds."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.vllm_metrics import (
    LABELS,
    REQUEST_LATENCY_BUCKETS,
    STEP_BUCKETS,
)
from services.common.worker_metrics import WorkerMetrics

BREAKER_STATES = ("closed", "open", "half_open")


class PrefillMetrics(WorkerMetrics):
    running_help = "Requests in the computing batch."
    waiting_help = "Requests queued for a batch."
    usage_help = "Fraction of the batch token budget in use by the last batch."
    generation_help = "Generated tokens: the first token of each request."
    iteration_help = "Prompt tokens computed per batch."

    def __init__(self, registry: CollectorRegistry, model_name: str, worker_id: str) -> None:
        super().__init__(registry, model_name, worker_id)
        r = registry
        self.link_bytes = self.hw.link_bytes
        self.link_seconds = self.hw.link_busy_seconds
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Prompt tokens prefilled.", LABELS,
                                     registry=r)
        self.prefix_queries = Counter("vllm:prefix_cache_queries",
                                      "Prompt tokens looked up in the prefix cache.", LABELS,
                                      registry=r)
        self.prefix_hits = Counter("vllm:prefix_cache_hits",
                                   "Prompt tokens found in the prefix cache.", LABELS, registry=r)
        self.queue_time = Histogram("vllm:request_queue_time_seconds",
                                    "Model seconds waiting for a prefill batch.", LABELS,
                                    buckets=REQUEST_LATENCY_BUCKETS, registry=r)
        self.prefill_time = Histogram("vllm:request_prefill_time_seconds",
                                      "Model seconds of the batch that prefilled the request.",
                                      LABELS, buckets=REQUEST_LATENCY_BUCKETS, registry=r)
        self.kv_transfer_seconds = Histogram("supernode_kv_transfer_seconds",
                                             "Modelled prefill-to-decode KV transfer time.",
                                             LABELS, buckets=STEP_BUCKETS, registry=r)
        self.cache_degraded = Gauge("supernode_cache_degraded",
                                    "1 while EMS is unreachable and prefill runs without it.",
                                    LABELS, registry=r)
        self.cache_errors = Counter("supernode_cache_errors",
                                    "Failed EMS calls (prefill went on without the cache).",
                                    (*LABELS, "op"), registry=r)
        self.cache_breaker = Gauge("supernode_cache_breaker_state",
                                   "1 for the current state of the circuit breaker in front of "
                                   "EMS (closed, open, half_open), 0 for the others.",
                                   (*LABELS, "state"), registry=r)
        self.cache_breaker_transitions = Counter(
            "supernode_cache_breaker_transitions", "Circuit breaker state changes, by new state.",
            (*LABELS, "to"), registry=r)
        self.cache_skipped = Counter("supernode_cache_skipped",
                                     "Lookups skipped at once because the breaker was open.",
                                     LABELS, registry=r)
        self.cache_rejected_blocks = Counter("supernode_cache_rejected_blocks",
                                             "Fetched blocks refused (bad checksum or evicted).",
                                             LABELS, registry=r)
        self.kv_transfer_failures = Counter("supernode_kv_transfer_failures",
                                            "KV transfers to decode that failed.", LABELS,
                                            registry=r)
        self._precreate()

    def set_breaker_state(self, state: str) -> None:
        for name in BREAKER_STATES:
            self.cache_breaker.labels(**self.labels, state=name).set(1 if name == state else 0)
