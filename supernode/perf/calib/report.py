"""Validation rows: every target (serving and operator) against the model's prediction."""

from __future__ import annotations

from dataclasses import dataclass

from supernode.hardware import load_hardware
from supernode.perf.calib.targets import CommFigure, TargetSet
from supernode.perf.calibration import Calibration
from supernode.perf.comm import all_to_all_s
from supernode.perf.estimates import estimate_decode, estimate_prefill


@dataclass(frozen=True)
class Row:
    """One checked figure: ``error`` = model / target - 1."""

    group: str
    name: str
    metric: str
    target: float
    model: float

    @property
    def error(self) -> float:
        return self.model / self.target - 1


def serving_rows(targets: TargetSet, cal: Calibration) -> list[Row]:
    """The section-4 targets: decode tokens/s and TPOT, prefill tokens/s."""
    rows = []
    for t in targets.decode:
        d = t.deployment(targets.hardware, targets.model, cal)
        e = estimate_decode(d, t.batch_per_device, t.kv_len)
        rows.append(Row("decode", t.name, "tokens/s/device", t.tokens_per_s_per_device,
                        e.tokens_per_s_per_device))
        rows.append(Row("decode", t.name, "TPOT ms", t.tpot_s * 1e3, e.tpot_s * 1e3))
    for t in targets.prefill:
        d = t.deployment(targets.hardware, targets.model, cal)
        e = estimate_prefill(d, t.prompt_len, t.tokens_per_device)
        rows.append(Row("prefill", t.name, "tokens/s/device", t.tokens_per_s_per_device,
                        e.tokens_per_s_per_device))
    return rows


def operator_rows(targets: TargetSet, cal: Calibration) -> list[Row]:
    """Kernel-level figures: the all-to-all model against the measured dispatch/combine."""
    hw = load_hardware(targets.hardware)
    rows = []
    for name, figure, eff in (("dispatch", targets.operators.dispatch, cal.dispatch_efficiency),
                              ("combine", targets.operators.combine, cal.combine_efficiency)):
        for ep, t in zip(figure.ep, figure.time_s):
            rows.append(Row("operator", f"{name} EP{ep}", "us per rank", t * 1e6,
                            _comm_s(hw, figure, ep, eff) * 1e6))
    return rows


def _comm_s(hw, figure: CommFigure, ep: int, eff: float) -> float:
    return all_to_all_s(hw, ep, figure.tokens_per_rank * figure.experts_per_token
                        * figure.message_bytes, eff)
