"""Fitted efficiencies and overheads: the only numbers of the model not taken from a spec sheet.

The shipped values live in ``fitted/<hardware>.toml``; ``supernode calibrate`` rewrites the
Ascend one from ``targets/cloudmatrix384.toml``. GPU files hold documented defaults (nobody
has calibrated them) with the same structure.
"""

from __future__ import annotations

import dataclasses
import functools
import tomllib
from dataclasses import dataclass
from importlib import resources

_PACKAGE = "supernode.perf.fitted"


@dataclass(frozen=True)
class Calibration:
    """Efficiencies in (0, 1] and overheads >= 0 that turn rooflines into predictions.

    Operator-level (fitted to single-op figures): ``gemm_efficiency`` (fraction of peak for
    INT8/BF16 GEMMs), ``attention_efficiency`` (compute-bound attention kernels),
    ``hbm_efficiency`` (memory-bound kernels), ``dispatch_efficiency`` and
    ``combine_efficiency`` (fraction of per-die scale-up bandwidth an EP all-to-all achieves).
    End-to-end (fitted to serving targets): ``decode_efficiency`` and ``prefill_efficiency``
    (the fraction of operator-level speed a full pipeline keeps: sync, padding, small ops),
    ``decode_step_overhead_s`` (fixed per decode iteration: graph launch, sampling, host
    sync), and ``eplb_default_skew`` (busiest/mean expert-rank load with the default EPLB,
    before the statistical part that depends on tokens per rank).
    """

    gemm_efficiency: float
    attention_efficiency: float
    hbm_efficiency: float
    dispatch_efficiency: float
    combine_efficiency: float
    decode_efficiency: float
    prefill_efficiency: float
    decode_step_overhead_s: float
    eplb_default_skew: float
    source: str = "unspecified"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_efficiency") and not 0 < value <= 1:
                raise ValueError(f"unphysical calibration: {f.name}={value} is outside (0, 1]")
        if self.decode_step_overhead_s < 0:
            raise ValueError(f"unphysical calibration: decode_step_overhead_s="
                             f"{self.decode_step_overhead_s} is negative")
        if self.eplb_default_skew < 1:
            raise ValueError(f"unphysical calibration: eplb_default_skew="
                             f"{self.eplb_default_skew} < 1 (busiest rank below the mean)")

    def replace(self, **changes: float | str) -> Calibration:
        return dataclasses.replace(self, **changes)


def calibration_from_dict(data: dict) -> Calibration:
    """Build from a parsed ``fitted/*.toml`` (``[parameters]`` table plus ``source``)."""
    params = {k: float(v) for k, v in data["parameters"].items()}
    return Calibration(**params, source=str(data.get("source", "unspecified")))


def calibration_to_toml(calibration: Calibration, header: str) -> str:
    """TOML text for ``calibration`` with ``header`` as leading comment lines."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += ["", f"source = {calibration.source!r}".replace("'", '"'), "", "[parameters]"]
    for f in dataclasses.fields(calibration):
        if f.name != "source":
            lines.append(f"{f.name} = {getattr(calibration, f.name)!r}")
    return "\n".join(lines) + "\n"


@functools.cache
def load_calibration(hardware_name: str) -> Calibration:
    """The shipped fitted (or default) calibration for a hardware profile."""
    path = resources.files(_PACKAGE).joinpath(f"{hardware_name}.toml")
    if not path.is_file():
        raise ValueError(f"no calibration for hardware {hardware_name!r} in {_PACKAGE}")
    return calibration_from_dict(tomllib.loads(path.read_text("utf-8")))
