"""`supernode up` warns when first tokens come later than the model says."""

from __future__ import annotations

from typing import Any

import httpx

from services.up.lag_watch import MIN_RECENT, POLL_S, REPEAT_S, LagWatch, lag_warning


def test_no_warning_until_enough_first_tokens_and_a_late_share() -> None:
    assert lag_warning({"recent": MIN_RECENT - 1, "late": MIN_RECENT - 1}, 1.0) is None
    assert lag_warning({"recent": 100, "late": 10, "max_s": 1.0}, 1.0) is None
    message = lag_warning({"recent": 100, "late": 11, "max_s": 0.25}, 4.0)
    assert message is not None
    assert "11 of the last 100" in message and "250 model ms" in message
    assert "speedup 4" in message and "--speedup" in message


class FakeHealth:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lag: dict[str, Any] = {"recent": 50, "late": 40, "max_s": 0.5}
        self.fail = False

    def __call__(self, url: str) -> dict[str, Any]:
        self.calls.append(url)
        if self.fail:
            raise httpx.ConnectError("refused")
        return {"status": "ok", "lag": self.lag}


def test_polls_when_due_and_repeats_a_warning_at_most_once_per_period() -> None:
    health, said = FakeHealth(), []
    watch = LagWatch("http://127.0.0.1:9/", 2.0, said.append, get=health)
    watch.tick(100.0)
    watch.tick(100.0 + POLL_S / 2)  # not due
    assert health.calls == ["http://127.0.0.1:9/health"]
    assert len(said) == 1
    watch.tick(100.0 + POLL_S)  # due, still late, but inside the quiet period
    assert len(health.calls) == 2 and len(said) == 1
    watch.tick(100.0 + REPEAT_S + POLL_S)
    assert len(said) == 2


def test_an_unreachable_scheduler_is_skipped_quietly() -> None:
    health, said = FakeHealth(), []
    health.fail = True
    watch = LagWatch("http://127.0.0.1:9", 1.0, said.append, get=health)
    watch.tick(0.0)
    health.fail, health.lag = False, {"recent": 50, "late": 0, "max_s": 0.0}
    watch.tick(POLL_S)
    assert len(health.calls) == 2 and said == []
