"""The event kernel: time order, same-time FIFO, handlers' events scheduled, no going back."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from supernode.sim.kernel import EventLoop


@dataclass(frozen=True)
class Ping:
    name: str
    num_echoes: int = 0


def test_events_run_in_time_order_and_fifo_at_the_same_instant() -> None:
    """Events run in time order, same-time events in scheduling order, and events a handler yields
    are scheduled."""
    seen: list[tuple[float, str]] = []

    def on_ping(now: float, event: Ping):
        seen.append((now, event.name))
        if event.num_echoes:
            yield now + 1.0, Ping(event.name + "'", event.num_echoes - 1)

    loop = EventLoop({Ping: on_ping})
    for at, name in ((2.0, "c"), (1.0, "a"), (1.0, "b"), (0.5, "echo")):
        loop.schedule(at, Ping(name, num_echoes=2 if name == "echo" else 0))
    loop.run()
    assert seen == [(0.5, "echo"), (1.0, "a"), (1.0, "b"), (1.5, "echo'"), (2.0, "c"),
                    (2.5, "echo''")]
    assert loop.now == 2.5 and loop.num_events == 6


def test_run_stops_at_until_and_the_past_is_refused() -> None:
    """run(until) leaves later events pending; scheduling before now is a ValueError."""
    loop = EventLoop({Ping: lambda now, e: ()})
    loop.schedule(1.0, Ping("a"))
    loop.schedule(3.0, Ping("b"))
    loop.run(until=2.0)
    assert loop.now == 1.0
    with pytest.raises(ValueError):
        loop.schedule(0.5, Ping("late"))
    loop.run()
    assert loop.now == 3.0
