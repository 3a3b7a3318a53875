"""The series every worker (prefill or decode) exports under vLLM's names, plus the hardware ones."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.hw_metrics import HardwareSeries
from services.common.model_loading import ModelLoadSeries
from services.common.vllm_metrics import ITERATION_TOKEN_BUCKETS, LABELS


class WorkerMetrics:
    """Common series of one instance; subclasses add their role's own.

    `running_help`, `waiting_help`, `usage_help`, `generation_help` and `iteration_help` say
    what each shared name means for the role (a prefill "running" request is one in the
    computing batch, a decode one is in the running batch)."""

    running_help = "Requests in the running batch."
    waiting_help = "Requests waiting."
    usage_help = "Fraction of KV-cache capacity in use (1 = 100%)."
    generation_help = "Generated tokens."
    iteration_help = "Tokens per engine step."

    def __init__(self, registry: CollectorRegistry, model_name: str, worker_id: str) -> None:
        self.labels = {"model_name": model_name, "engine": worker_id}
        r = registry
        self.hw = HardwareSeries(r, self.labels)
        self.model_load = ModelLoadSeries(r, self.labels)
        self.num_running = Gauge("vllm:num_requests_running", self.running_help, LABELS,
                                 registry=r)
        self.num_waiting = Gauge("vllm:num_requests_waiting", self.waiting_help, LABELS,
                                 registry=r)
        self.kv_usage = Gauge("vllm:kv_cache_usage_perc", self.usage_help, LABELS, registry=r)
        self.gpu_kv_usage = Gauge("vllm:gpu_cache_usage_perc",
                                  "Deprecated alias of vllm:kv_cache_usage_perc.", LABELS,
                                  registry=r)
        self.generation_tokens = Counter("vllm:generation_tokens", self.generation_help, LABELS,
                                         registry=r)
        self.iteration_tokens = Histogram("vllm:iteration_tokens_total", self.iteration_help,
                                          LABELS, buckets=ITERATION_TOKEN_BUCKETS, registry=r)

        self._gauges = [g.labels(**self.labels) for g in (
            self.num_running, self.num_waiting, self.kv_usage, self.gpu_kv_usage)]

    def set_usage(self, fraction: float) -> None:
        """Set the usage gauge and its deprecated alias together."""
        self._gauges[2].set(fraction)
        self._gauges[3].set(fraction)

    def set_queues(self, num_running: int, num_waiting: int) -> None:
        self._gauges[0].set(num_running)
        self._gauges[1].set(num_waiting)
