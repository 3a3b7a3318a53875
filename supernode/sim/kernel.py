"""The discrete-event kernel: one heap of (time, seq, event), one virtual clock.

Handlers never touch the queue: `run` hands each event to the handler table and schedules what
the handler returns. Events at the same instant run in the order they were scheduled (`seq`
from `itertools.count()`), so a run is a pure function of its inputs. Time is model seconds.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from typing import Any

Scheduled = tuple[float, Any]
"""(model time, event) a handler asks for."""
Handler = Callable[[float, Any], Iterable[Scheduled]]


class EventLoop:
    """Runs events in time order; `now` is the virtual clock."""

    def __init__(self, handlers: dict[type, Handler]) -> None:
        self.handlers = handlers
        self.now = 0.0
        self.num_events = 0
        self._heap: list[tuple[float, int, Any]] = []
        self._seq = itertools.count()

    def schedule(self, at: float, event: Any) -> None:
        if at < self.now:
            raise ValueError(f"event {type(event).__name__} at {at} is before now ({self.now})")
        heapq.heappush(self._heap, (at, next(self._seq), event))

    def run(self, until: float = float("inf")) -> None:
        """Process events until none is left or the next is after `until`."""
        heap, handlers = self._heap, self.handlers
        while heap and heap[0][0] <= until:
            at, _, event = heapq.heappop(heap)
            self.now = at
            self.num_events += 1
            for when, new in handlers[type(event)](at, event):
                self.schedule(when, new)
