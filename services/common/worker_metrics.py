"""The series every worker (prefill or decode) exports under vLLM's names, plus the hardware ones."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from services.common.hw_metrics import HardwareSeries, precreate
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

        self._bind()

    def _bind(self) -> None:
        """Cache the children the hot path sets (they carry the model's label)."""
        self._gauges = [g.labels(**self.labels) for g in (
            self.num_running, self.num_waiting, self.kv_usage, self.gpu_kv_usage)]

    def _precreate(self) -> None:
        """Every series with a fixed label set at zero for the current model; subclasses add
        their role's own (called at start and after a model switch)."""
        precreate(self, self.labels)
        precreate(self.hw, self.labels)

    def use_model(self, model_name: str) -> None:
        """The instance now serves `model_name` (a model switch): every gauge, the instance's
        present state, moves to the new `model_name` label with its value; counters and
        histograms keep the old model's totals under its label and count on under the new
        one, as a new server of that model would."""
        old = self.labels["model_name"]
        if model_name == old:
            return
        for gauge in self._families(Gauge):
            for sample in list(gauge.collect()[0].samples):
                if sample.labels.get("model_name") == old:
                    gauge.labels(**{**sample.labels, "model_name": model_name}).set(sample.value)
                    gauge.remove(*(sample.labels[n] for n in gauge._labelnames))
        self.labels["model_name"] = model_name  # shared with self.hw and self.model_load
        self.hw.forget_children()
        self._bind()
        self._precreate()

    def _families(self, kind: type) -> list:
        return [m for owner in (self, self.hw, self.model_load) for m in vars(owner).values()
                if isinstance(m, kind) and isinstance(m, MetricWrapperBase)]

    def set_usage(self, fraction: float) -> None:
        """Set the usage gauge and its deprecated alias together."""
        self._gauges[2].set(fraction)
        self._gauges[3].set(fraction)

    def set_queues(self, num_running: int, num_waiting: int) -> None:
        self._gauges[0].set(num_running)
        self._gauges[1].set(num_waiting)
