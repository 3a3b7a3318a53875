"""Metrics of one prefill worker: vLLM's names plus supernode_* series. Model seconds."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.hw_metrics import HardwareSeries, precreate
from services.common.vllm_metrics import (
    ITERATION_TOKEN_BUCKETS,
    LABELS,
    REQUEST_LATENCY_BUCKETS,
    STEP_BUCKETS,
)


class PrefillMetrics:
    def __init__(self, registry: CollectorRegistry, model_name: str, worker_id: str) -> None:
        self.labels = {"model_name": model_name, "engine": worker_id}
        r = registry
        self.hw = HardwareSeries(r, self.labels)
        self.link_bytes = self.hw.link_bytes
        self.link_seconds = self.hw.link_busy_seconds
        self.num_running = Gauge("vllm:num_requests_running", "Requests in the computing batch.",
                                 LABELS, registry=r)
        self.num_waiting = Gauge("vllm:num_requests_waiting", "Requests queued for a batch.",
                                 LABELS, registry=r)
        self.kv_usage = Gauge("vllm:kv_cache_usage_perc",
                              "Fraction of the batch token budget in use by the last batch.",
                              LABELS, registry=r)
        self.gpu_kv_usage = Gauge("vllm:gpu_cache_usage_perc",
                                  "Deprecated alias of vllm:kv_cache_usage_perc.", LABELS,
                                  registry=r)
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Prompt tokens prefilled.", LABELS,
                                     registry=r)
        self.generation_tokens = Counter("vllm:generation_tokens",
                                         "Generated tokens: the first token of each request.",
                                         LABELS, registry=r)
        self.prefix_queries = Counter("vllm:prefix_cache_queries",
                                      "Prompt tokens looked up in the prefix cache.", LABELS,
                                      registry=r)
        self.prefix_hits = Counter("vllm:prefix_cache_hits",
                                   "Prompt tokens found in the prefix cache.", LABELS, registry=r)
        self.iteration_tokens = Histogram("vllm:iteration_tokens_total",
                                          "Prompt tokens computed per batch.", LABELS,
                                          buckets=ITERATION_TOKEN_BUCKETS, registry=r)
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
        self.cache_rejected_blocks = Counter("supernode_cache_rejected_blocks",
                                             "Fetched blocks refused (bad checksum or evicted).",
                                             LABELS, registry=r)
        self.kv_transfer_failures = Counter("supernode_kv_transfer_failures",
                                            "KV transfers to decode that failed.", LABELS,
                                            registry=r)
        precreate(self, self.labels)
        precreate(self.hw, self.labels)
