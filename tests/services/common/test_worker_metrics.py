"""A worker's series follow the model it serves: after a switch, gauges (the instance's present)
carry the new model's label with their values, counters keep the old model's totals and count
on under the new one, and the hot path's cached children write to the new label."""

from prometheus_client import CollectorRegistry

from services.decode.metrics import DecodeMetrics
from services.prefill.metrics import PrefillMetrics


def samples(registry: CollectorRegistry, name: str) -> dict[str, float]:
    """model_name -> value of the unlabelled-beyond-LABELS series `name`."""
    return {s.labels["model_name"]: s.value for family in registry.collect()
            for s in family.samples if s.name == name}


def test_a_switch_moves_gauges_and_keeps_counters_apart() -> None:
    registry = CollectorRegistry()
    metrics = DecodeMetrics(registry, "deepseek-r1", "decode-0")
    metrics.set_usage(0.25)
    metrics.set_queues(3, 1)
    metrics.generation_tokens.labels(**metrics.labels).inc(40)
    metrics.model_load.set_state("loading")

    metrics.use_model("deepseek-r1@v2")

    assert samples(registry, "vllm:kv_cache_usage_perc") == {"deepseek-r1@v2": 0.25}
    assert samples(registry, "vllm:num_requests_running") == {"deepseek-r1@v2": 3}
    assert samples(registry, "vllm:generation_tokens_total") == {"deepseek-r1": 40,
                                                                 "deepseek-r1@v2": 0}
    states = {(s.labels["model_name"], s.labels["state"]): s.value
              for family in registry.collect() for s in family.samples
              if s.name == "supernode_worker_state"}
    assert states == {("deepseek-r1@v2", "loading"): 1, ("deepseek-r1@v2", "ready"): 0}
    finished = {s.labels["finished_reason"] for family in registry.collect()
                for s in family.samples if s.name == "vllm:request_success_total"
                and s.labels["model_name"] == "deepseek-r1@v2"}
    assert finished >= {"stop", "length", "abort"}

    metrics.set_usage(0.5)  # the cached children now write to the new label
    assert samples(registry, "vllm:kv_cache_usage_perc") == {"deepseek-r1@v2": 0.5}


def test_hot_path_children_follow_the_switch_on_prefill_too() -> None:
    registry = CollectorRegistry()
    metrics = PrefillMetrics(registry, "a", "prefill-0")
    metrics.set_breaker_state("open")
    metrics.use_model("b")
    breaker = {(s.labels["model_name"], s.labels["state"]): s.value
               for family in registry.collect() for s in family.samples
               if s.name == "supernode_cache_breaker_state"}
    assert breaker == {("b", "closed"): 0, ("b", "open"): 1, ("b", "half_open"): 0}
    assert samples(registry, "vllm:prompt_tokens_total") == {"a": 0, "b": 0}
    metrics.use_model("b")  # no change: nothing moves
    assert samples(registry, "vllm:prompt_tokens_total") == {"a": 0, "b": 0}
