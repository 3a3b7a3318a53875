"""Metrics of the scheduler (the OpenAI front end): request latencies as vLLM names them, plus
routing, admission, pools and KV transfers. Latencies are model seconds (wall x speedup)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Mapping

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
from services.scheduler.lag import LagMonitor
from supernode.engine.registry import WorkerKind, WorkerState
from supernode.lifecycle.models import ModelSwitch, SwitchDone
from supernode.lifecycle.request import Request, RequestStatus
from supernode.perf.load import SOURCES as LOAD_SOURCES
from supernode.v1 import supernode_pb2 as pb

LABELS = ("model_name",)
IN_FLIGHT_STATES = (RequestStatus.QUEUED, RequestStatus.PREFILLING, RequestStatus.DECODING)
REJECTION_REASONS = ("overloaded", "too_large", "no_workers", "timeout", "failed")
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SWITCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0,
                  2400.0)


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
        self.recent_lag = LagMonitor()
        self.requests = Gauge("supernode_requests", "Requests in flight by state.",
                              (*LABELS, "state"), registry=r)
        self.rejected = Counter("supernode_requests_rejected",
                                "Requests refused or ended before their first token, by reason "
                                "(overloaded: 429; too_large: 400; no_workers: 503; timeout: "
                                "their deadline passed; failed: retries exhausted).",
                                (*LABELS, "reason"), registry=r)
        self.lag = Histogram("supernode_lag_seconds",
                             "Model seconds by which the emulator delivered a first token later "
                             "than its modelled time (its own overhead, not absorbed).", LABELS,
                             buckets=LAG_BUCKETS, registry=r)
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
        self.workers = Gauge("supernode_workers",
                             "Ready (routable) workers per pool; draining ones do not count.",
                             ("pool",), registry=r)
        self.workers_expected = Gauge("supernode_workers_expected",
                                      "Configured workers per pool (/health is degraded below).",
                                      ("pool",), registry=r)
        self.workers_by_state = Gauge("supernode_workers_by_state",
                                      "Registered workers per pool and state (loading, ready).",
                                      ("pool", "state"), registry=r)
        self.registrations_refused = Counter(
            "supernode_registrations_refused",
            "Register calls refused because a live worker holds the id at another address.",
            registry=r)
        self.kv_transfer_bytes = Counter("supernode_kv_transfer_bytes",
                                         "Modelled KV bytes moved prefill -> decode.",
                                         registry=r)
        self.kv_transfer_seconds = Histogram("supernode_kv_transfer_seconds",
                                             "Modelled prefill -> decode KV transfer time.",
                                             buckets=STEP_BUCKETS, registry=r)
        self.cached_tokens = Counter("supernode_cached_prompt_tokens",
                                     "Prompt tokens served from the EMS prefix cache.",
                                     LABELS, registry=r)
        self.switches_started = Counter("supernode_model_switches_started",
                                        "Instances told to switch to a served model, by model "
                                        "and pool.", ("model", "pool"), registry=r)
        self.switches = Counter("supernode_model_switches",
                                "Instances that finished switching to a model, by model, pool "
                                "and the tier the load read (obs, dram, ems).",
                                ("model", "pool", "source"), registry=r)
        self.switches_failed = Counter("supernode_model_switches_failed",
                                       "Switches refused by the instance or lost with it.",
                                       ("model", "pool"), registry=r)
        self.switch_seconds = Histogram("supernode_model_switch_seconds",
                                        "Model seconds from a switch's decision to the instance "
                                        "ready with the new model (drain, then load).",
                                        ("pool",), buckets=SWITCH_BUCKETS, registry=r)
        self._policy = {"prefill": "", "decode": ""}
        self._precreate()

    def _precreate(self) -> None:
        """Every fixed label combination at zero, so rate() panels have data from the start."""
        precreate(self, self.labels)
        for reason in FINISHED_REASONS:
            self.success.labels(**self.labels, finished_reason=reason)
        for state in IN_FLIGHT_STATES:
            self.requests.labels(**self.labels, state=state.value)
        for reason in REJECTION_REASONS:
            self.rejected.labels(**self.labels, reason=reason)
        self.failed.labels(**self.labels, status="503")
        model = self.labels["model_name"]
        for kind in WorkerKind:
            self.workers.labels(pool=kind.value)
            for state in WorkerState:
                self.workers_by_state.labels(pool=kind.value, state=state.value)
            self.switches_started.labels(model=model, pool=kind.value)
            self.switches_failed.labels(model=model, pool=kind.value)
            for source in LOAD_SOURCES:
                self.switches.labels(model=model, pool=kind.value, source=source)

    def set_policies(self, prefill: str, decode: str) -> None:
        self._policy = {"prefill": prefill, "decode": decode}

    def count_states(self, active: Mapping[str, Request]) -> None:
        """Set the in-flight gauge from the lifecycle's requests (called before each scrape)."""
        counts = Tally(r.status for r in list(active.values()))
        for state in IN_FLIGHT_STATES:
            self.requests.labels(**self.labels, state=state.value).set(counts.get(state, 0))

    def on_first_token(self, request: Request) -> None:
        self.ttft.labels(**self.labels).observe(request.first_token_at - request.arrived_at)
        self.lag.labels(**self.labels).observe(request.lag_s)
        self.recent_lag.observe(request.lag_s, request.modelled_ttft_s)

    def on_end(self, request: Request, status: RequestStatus) -> None:
        """A request left the lifecycle (model-second latencies, as vLLM names them)."""
        reason = request.finish_reason or "abort"
        self.success.labels(**self.labels, finished_reason=reason).inc()
        if status is not RequestStatus.FINISHED:
            return
        n_out = request.num_output_tokens
        self.e2e.labels(**self.labels).observe(request.finished_at - request.arrived_at)
        self.generation_len.labels(**self.labels).observe(n_out)
        if n_out > 1 and request.first_token_at is not None:
            self.request_tpot.labels(**self.labels).observe(
                (request.finished_at - request.first_token_at) / (n_out - 1))

    def on_prefill(self, worker_id: str, response: pb.PrefillResponse) -> None:
        self.kv_transfer_bytes.inc(response.kv_num_bytes)
        if response.kv_num_bytes:
            self.kv_transfer_seconds.observe(response.transfer_s)
        self.cached_tokens.labels(**self.labels).inc(response.num_cached_tokens)

    def on_switch_started(self, switch: ModelSwitch) -> None:
        self.switches_started.labels(model=switch.to.name, pool=switch.kind.value).inc()

    def on_switch_failed(self, switch: ModelSwitch) -> None:
        self.switches_failed.labels(model=switch.to.name, pool=switch.kind.value).inc()

    def on_switch_done(self, done: SwitchDone, source: str) -> None:
        pool = done.switch.kind.value
        self.switches.labels(model=done.switch.to.name, pool=pool, source=source).inc()
        self.switch_seconds.labels(pool=pool).observe(done.seconds)

    def routed_to(self, pool: str, worker_id: str) -> None:
        self.routed.labels(pool=pool, worker=worker_id, policy=self._policy[pool]).inc()
