"""The recent-lag window behind /health's `lag`."""

from __future__ import annotations

from services.scheduler.lag import WINDOW, LagMonitor


def test_empty_window_reports_nothing_late() -> None:
    assert LagMonitor().summary() == {"recent": 0, "late": 0, "max_s": 0.0}


def test_late_means_beyond_a_share_of_the_modelled_ttft_and_a_floor() -> None:
    monitor = LagMonitor()
    monitor.observe(0.001, 0.010)  # under the 2 ms floor
    monitor.observe(0.004, 1.000)  # under 5% of a 1 s TTFT
    monitor.observe(0.060, 1.000)  # over both
    assert monitor.summary() == {"recent": 3, "late": 1, "max_s": 0.060}


def test_the_window_forgets_old_first_tokens() -> None:
    monitor = LagMonitor()
    monitor.observe(5.0, 0.1)
    for _ in range(WINDOW):
        monitor.observe(0.0, 0.1)
    assert monitor.summary() == {"recent": WINDOW, "late": 0, "max_s": 0.0}
