"""Scheduler /metrics text -> per-pool observations (sums over ready instances, windowed TTFT)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest

from supernode.autoscale.signals import SchedulerSignals, parse


def exposition(waiting: float, ready: int, kv: float, ttft: list[float]) -> str:
    """The series the scheduler exports, from the real client library."""
    r = CollectorRegistry()
    g = Gauge("supernode_pool_requests_waiting", "", ["pool"], registry=r)
    g.labels(pool="decode").set(waiting)
    g.labels(pool="prefill").set(1)
    Gauge("supernode_pool_requests_running", "", ["pool"], registry=r).labels(
        pool="decode").set(7)
    Gauge("supernode_pool_kv_cache_usage_perc", "", ["pool"], registry=r).labels(
        pool="decode").set(kv)
    workers = Gauge("supernode_workers", "", ["pool"], registry=r)
    workers.labels(pool="decode").set(ready)
    workers.labels(pool="prefill").set(1)
    h = Histogram("vllm:time_to_first_token_seconds", "", ["model_name"], registry=r)
    for value in ttft:
        h.labels(model_name="m").observe(value)
    return generate_latest(r).decode()


def test_pool_figures_are_read_by_pool() -> None:
    """Sums and the ready count per pool; kv (a mean) becomes a sum over the ready ones."""
    signals = SchedulerSignals()
    o = signals.observe(exposition(12.0, 3, 0.5, []), {"decode": 4, "prefill": 1})
    d = o["decode"]
    assert (d.num_instances, d.num_ready) == (4, 3)
    assert d.values["waiting"] == 12.0 and d.values["running"] == 7.0
    assert d.values["kv"] == 1.5
    assert o["prefill"].values["waiting"] == 1.0 and o["prefill"].values["kv"] is None


def test_ttft_is_the_mean_over_the_interval_between_scrapes() -> None:
    """Unavailable on the first scrape and when nothing arrived in between; else the mean of
    the requests whose first token came in the interval (not since the start)."""
    signals = SchedulerSignals()
    first = signals.observe(exposition(0, 1, 0, [10.0, 10.0]), {"decode": 1})
    assert first["decode"].values["ttft"] is None
    again = signals.observe(exposition(0, 1, 0, [10.0, 10.0]), {"decode": 1})
    assert again["decode"].values["ttft"] is None
    later = signals.observe(exposition(0, 1, 0, [10.0, 10.0, 1.0, 2.0]), {"decode": 1})
    assert later["decode"].values["ttft"] == 1.5


def test_a_restarted_scheduler_does_not_give_a_negative_ttft() -> None:
    signals = SchedulerSignals()
    signals.observe(exposition(0, 1, 0, [5.0, 5.0]), {"decode": 1})
    after = signals.observe(exposition(0, 1, 0, [1.0]), {"decode": 1})
    assert after["decode"].values["ttft"] is None


def test_parse_tolerates_a_scrape_without_pool_series() -> None:
    """An older scheduler without the pool series: the figures are simply absent."""
    scrape = parse("# HELP x y\n# TYPE x gauge\nx 1\n")
    assert scrape.by_pool == {"prefill": {}, "decode": {}}
