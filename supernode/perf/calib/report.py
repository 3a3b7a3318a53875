"""Validation rows: every target (serving, operator, cache) against the model's prediction."""

from __future__ import annotations

from dataclasses import dataclass

from supernode.hardware import load_hardware
from supernode.perf.calib.targets import CommFigure, TargetSet
from supernode.perf.calibration import Calibration
from supernode.perf.comm import ep_latency_s, ep_wire_s
from supernode.perf.estimates import estimate_decode, estimate_prefill


@dataclass(frozen=True)
class Row:
    """One checked figure: ``error`` = model / target - 1. ``kind`` is "fit" (a calibration
    target) or "prediction" (published, but not used by the fit)."""

    group: str
    name: str
    metric: str
    target: float
    model: float
    kind: str = "fit"
    source: str = ""

    @property
    def error(self) -> float:
        return self.model / self.target - 1


def serving_rows(targets: TargetSet, cal: Calibration) -> list[Row]:
    """Decode tokens/s and TPOT, prefill tokens/s. A decode target's TPOT is a prediction when
    it disagrees with its throughput under notes s4's convention (the fit uses throughput)."""
    rows = []
    for t in targets.decode:
        d = t.deployment(targets.hardware, targets.model, cal)
        e = estimate_decode(d, t.batch_per_device, t.kv_len)
        implied_tpot = t.batch_per_device / t.tokens_per_s_per_device
        tpot_kind = "fit" if abs(implied_tpot / t.tpot_s - 1) < 0.01 else "prediction"
        rows.append(Row("decode", t.name, "tokens/s/device", t.tokens_per_s_per_device,
                        e.tokens_per_s_per_device))
        rows.append(Row("decode", t.name, "TPOT ms", t.tpot_s * 1e3, e.tpot_s * 1e3, tpot_kind))
    for t in targets.prefill:
        d = t.deployment(targets.hardware, targets.model, cal)
        e = estimate_prefill(d, t.prompt_len, t.tokens_per_device)
        rows.append(Row("prefill", t.name, "tokens/s/device", t.tokens_per_s_per_device,
                        e.tokens_per_s_per_device))
    return rows


def ems_rows(targets: TargetSet, cal: Calibration) -> list[Row]:
    """The EMS reuse target: its two ratios (fit) and the absolute TTFT change (prediction)."""
    from supernode.perf.calib.fit import ems_figures
    from supernode.perf.reuse import reuse_point

    ems = targets.ems
    if ems is None:
        return []
    ratio, change = ems_figures(ems, targets.hardware, targets.model, cal)
    t = ems.prefill
    d = t.deployment(targets.hardware, targets.model, cal)
    at = reuse_point(d, t.prompt_len, t.tokens_per_device, ems.reuse, f"ems_{ems.plane}")
    none = reuse_point(d, t.prompt_len, t.tokens_per_device, ems.reuse, "none")
    pct = f"{ems.reuse:.0%} vs {ems.reference_reuse:.1%} reuse"
    return [Row("ems", ems.name, f"throughput ratio {pct}", ems.throughput_ratio, ratio),
            Row("ems", ems.name, "TTFT ratio vs no cache", 1 + ems.ttft_change, 1 + change),
            Row("ems", ems.name, "TTFT change ms", ems.ttft_change_s * 1e3,
                (at.ttft_s - none.ttft_s) * 1e3, "prediction"),
            Row("ems", ems.name, "TTFT without cache ms",
                ems.ttft_change_s / ems.ttft_change * 1e3, none.ttft_s * 1e3, "prediction")]


def operator_rows(targets: TargetSet, cal: Calibration) -> list[Row]:
    """Kernel-level figures: the decode all-to-all model against the measured times."""
    hw = load_hardware(targets.hardware)
    rows = []
    for name, figure, eff in (("dispatch", targets.operators.dispatch, cal.dispatch_efficiency),
                              ("combine", targets.operators.combine, cal.combine_efficiency)):
        for ep, t in zip(figure.ep, figure.time_s):
            rows.append(Row("operator", f"{name} EP{ep}", "us per rank", t * 1e6,
                            comm_model_s(hw, figure, ep, eff) * 1e6))
    return rows


def comm_model_s(hw, figure: CommFigure, ep: int, efficiency: float) -> float:
    """The model's time for one measured all-to-all of ``figure`` at ``ep`` ranks."""
    path = hw.ep_paths.decode
    num_bytes = figure.tokens_per_rank * figure.experts_per_token * figure.message_bytes
    return ep_latency_s(hw, path, ep) + ep_wire_s(hw, path, ep, num_bytes, efficiency=efficiency)
