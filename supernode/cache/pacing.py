"""Streams sharing one resource over time: who has moved how many bytes, and when each ends.

`SharedResource` advances streams with explicit model times (it reads no clock): every stream
moves at its max-min fair share of the resource's capacity (`perf.load.fair_shares`), capped by
its own limit, and the shares change whenever a stream joins, ends or leaves. So n loads that
start together from one bucket finish together after n times one load's time, and a load that
joins late slows the ones in flight from then on. The live EMS paces its loads and prefetches
with it; the offline simulator can drive the same object in virtual time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from supernode.perf.load import fair_shares

_EPSILON_BYTES = 1e-6


@dataclass
class _Stream:
    num_bytes: float
    cap_bytes_per_s: float
    done_bytes: float = 0.0
    finished_at_s: float | None = None

    @property
    def remaining(self) -> float:
        return max(0.0, self.num_bytes - self.done_bytes)


class SharedResource:
    """Streams through one resource of ``capacity_bytes_per_s`` (``inf``: not shared)."""

    def __init__(self, name: str, capacity_bytes_per_s: float) -> None:
        if not capacity_bytes_per_s > 0:
            raise ValueError(f"{name}: capacity must be > 0")
        self.name = name
        self.capacity_bytes_per_s = capacity_bytes_per_s
        self._streams: dict[str, _Stream] = {}
        self._now_s: float | None = None

    def add(self, stream_id: str, num_bytes: float, cap_bytes_per_s: float, now_s: float) -> None:
        """Start ``stream_id`` at ``now_s``: ``num_bytes`` to move at most ``cap_bytes_per_s``."""
        if stream_id in self._streams:
            raise ValueError(f"{self.name}: stream {stream_id!r} already runs")
        if num_bytes < 0 or not cap_bytes_per_s > 0:
            raise ValueError(f"{self.name}: a stream needs bytes >= 0 and a cap > 0")
        self.advance(now_s)
        self._streams[stream_id] = _Stream(num_bytes, cap_bytes_per_s,
                                           finished_at_s=now_s if num_bytes == 0 else None)

    def remove(self, stream_id: str, now_s: float) -> None:
        """Forget ``stream_id`` (finished or abandoned); the others speed up from ``now_s``."""
        self.advance(now_s)
        self._streams.pop(stream_id, None)

    def advance(self, now_s: float) -> None:
        """Move every stream forward to ``now_s`` (rates change as streams finish on the way)."""
        if self._now_s is None or now_s <= self._now_s:
            self._now_s = now_s if self._now_s is None else self._now_s
            return
        t = self._now_s
        while t < now_s:
            active = self._active()
            if not active:
                break
            rates = self._rates(active)
            step = min(now_s - t, *(s.remaining / r for s, r in zip(active, rates)))
            end = now_s if step >= now_s - t else t + step
            for stream, rate in zip(active, rates):
                stream.done_bytes = min(stream.num_bytes, stream.done_bytes + rate * step)
                if stream.remaining <= _EPSILON_BYTES:
                    stream.done_bytes = stream.num_bytes
                    stream.finished_at_s = end
            t = end
        self._now_s = now_s

    def done_bytes(self, stream_id: str) -> float:
        return self._streams[stream_id].done_bytes

    def finished(self, stream_id: str) -> bool:
        return self._streams[stream_id].remaining <= 0

    def finished_at_s(self, stream_id: str) -> float | None:
        """The model time the stream moved its last byte (None while it moves)."""
        return self._streams[stream_id].finished_at_s

    @property
    def num_active(self) -> int:
        """Streams still moving bytes."""
        return len(self._active())

    def eta_s(self, stream_id: str, done_bytes: float) -> float:
        """When ``stream_id`` will have moved ``done_bytes`` if no stream joins (model time;
        now if it already has)."""
        assert self._now_s is not None
        streams = {k: _Stream(s.num_bytes, s.cap_bytes_per_s, s.done_bytes)
                   for k, s in self._streams.items()}
        target = streams[stream_id]
        goal = min(done_bytes, target.num_bytes)
        t = self._now_s
        while target.done_bytes < goal - _EPSILON_BYTES:
            active = [s for s in streams.values() if s.remaining > 0]
            rates = self._rates(active)
            rate = rates[active.index(target)]
            step = min((goal - target.done_bytes) / rate,
                       *(s.remaining / r for s, r in zip(active, rates)))
            for stream, r in zip(active, rates):
                stream.done_bytes = min(stream.num_bytes, stream.done_bytes + r * step)
            t += step
        return t

    def _active(self) -> list[_Stream]:
        return [s for s in self._streams.values() if s.remaining > 0]

    def _rates(self, active: list[_Stream]) -> tuple[float, ...]:
        if math.isinf(self.capacity_bytes_per_s):
            return tuple(s.cap_bytes_per_s for s in active)
        return fair_shares(self.capacity_bytes_per_s, [s.cap_bytes_per_s for s in active])
