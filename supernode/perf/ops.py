"""Roofline primitives: one kernel's time from its FLOPs, bytes and the die's effective rates."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from supernode.perf.deployment import Deployment
from supernode.perf.timing import Timing

#: Kernels launched per layer per microbatch, from the fused operator list of P3 s4.2
#: (MLAProlog, FusedAttention, o_proj; router, grouped GEMMs; FusedDispatch/FusedCombine).
#: Each pays the hardware's static op cost (``OpCosts``), whatever its size.
OP_COUNTS = {
    "attention": {"matmul": 3, "vector": 3},
    "dense_ffn": {"matmul": 2, "vector": 2},
    "moe": {"matmul": 3, "vector": 3},
}


class Op(NamedTuple):
    """One kernel (or a fused group) on the critical die: ``time_s`` and what bounds it.

    A named tuple rather than a dataclass: a decode step builds about a hundred of them, on
    the simulator's hot path."""

    part: str
    time_s: float
    bound: str
    flops: float = 0.0
    bytes: float = 0.0


@dataclass(frozen=True)
class Rates:
    """Effective per-die rates: peak x operator efficiency x pipeline efficiency x core share."""

    gemm_flops_per_s: float
    bf16_flops_per_s: float
    attention_flops_per_s: float
    hbm_bytes_per_s: float

    def share(self, fraction: float) -> Rates:
        """Rates of a stream that owns ``fraction`` of the matrix cores (HBM is shared)."""
        return _share(self, fraction)


@functools.lru_cache(maxsize=256)
def _share(rates: Rates, fraction: float) -> Rates:
    return Rates(rates.gemm_flops_per_s * fraction, rates.bf16_flops_per_s * fraction,
                 rates.attention_flops_per_s * fraction, rates.hbm_bytes_per_s)


@functools.lru_cache(maxsize=256)
def die_rates(d: Deployment, pipeline_efficiency: float) -> Rates:
    """Full-die effective rates for ``d``.

    The phase's pipeline efficiency derates the matrix engines only (small-M tiles, sync and
    padding cost compute, while HBM streaming already runs at its measured efficiency).
    """
    hw, cal = d.hardware, d.calibration
    gemm = cal.gemm_efficiency * pipeline_efficiency
    return Rates(
        gemm_flops_per_s=hw.peak_flops(d.quant) * gemm,
        bf16_flops_per_s=hw.peak_flops("bf16") * gemm,
        attention_flops_per_s=hw.peak_flops("bf16") * cal.attention_efficiency * pipeline_efficiency,
        hbm_bytes_per_s=hw.hbm_bandwidth_bytes_per_s_per_die * cal.hbm_efficiency,
    )


def roofline(part: str, flops: float, num_bytes: float, flops_per_s: float,
             bytes_per_s: float) -> Op:
    """``max(compute, memory)`` time of one kernel, labelled with the binding resource."""
    compute_s, memory_s = flops / flops_per_s, num_bytes / bytes_per_s
    bound = "compute" if compute_s >= memory_s else "memory"
    return Op(part, max(compute_s, memory_s), bound, flops, num_bytes)


def static_op(part: str, kind: str, d: Deployment) -> Op:
    """Fixed launch cost of the kernels of one layer section (``OP_COUNTS[kind]``)."""
    counts, costs = OP_COUNTS[kind], d.hardware.op_costs
    return Op(part, counts["matmul"] * costs.matmul_s + counts["vector"] * costs.vector_s, "fixed")


def total_s(ops: Iterable[Op]) -> float:
    return sum(op.time_s for op in ops)


def total_bytes(ops: Iterable[Op]) -> float:
    return sum(op.bytes for op in ops)


class Tally:
    """Collects ``Op`` groups while one estimate is assembled; sums them per breakdown part.

    Local to one call of a model function (never shared), so the model stays pure. Adding is
    cheap (the sums are formed once, by ``summary``), because a model builds tallies for
    alternatives it may discard.
    """

    def __init__(self) -> None:
        self._groups: list[tuple[Iterable[Op], float, str | None]] = []

    def add(self, ops: Iterable[Op], times: float = 1.0, part: str | None = None) -> None:
        """Count ``ops`` ``times`` times, optionally all under one ``part`` name."""
        self._groups.append((ops, times, part))

    def summary(self) -> tuple[dict[str, float], dict[str, str], float, float]:
        """(busy seconds per part, binding resource per part, FLOPs, bytes)."""
        busy: dict[str, float] = {}
        by_bound: dict[tuple[str, str], float] = {}
        flops = num_bytes = 0.0
        for ops, times, part in self._groups:
            for op in ops:
                name, t = part or op.part, op.time_s * times
                busy[name] = busy.get(name, 0.0) + t
                key = (name, op.bound)
                by_bound[key] = by_bound.get(key, 0.0) + t
                flops += op.flops * times
                num_bytes += op.bytes * times
        best: dict[str, tuple[float, str]] = {}
        for (name, bound), t in by_bound.items():
            if name not in best or t > best[name][0]:
                best[name] = (t, bound)
        return busy, {name: b for name, (_, b) in best.items()}, flops, num_bytes


class _Discard(Tally):
    """A tally that keeps nothing: for alternatives computed only for their total."""

    def add(self, ops: Iterable[Op], times: float = 1.0, part: str | None = None) -> None:
        return None


#: Pass where a ``Tally`` is expected and only the total matters.
DISCARD: Tally = _Discard()


def tally_timing(d: Deployment, total: float, tally: Tally, num_tokens: int,
                 notes: list[str]) -> Timing:
    """The ``Timing`` of a finished estimate: breakdown, bounds, overlap and utilisation."""
    busy, bounds, flops, num_bytes = tally.summary()
    hw = d.hardware
    return Timing(total_s=total, breakdown=busy, bounds=bounds,
                  overlap_s=max(0.0, sum(busy.values()) - total), num_tokens=num_tokens,
                  compute_util=flops / (hw.peak_flops(d.quant) * total),
                  hbm_util=num_bytes / (hw.hbm_bandwidth_bytes_per_s_per_die * total),
                  notes=tuple(notes))
