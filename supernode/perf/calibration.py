"""Fitted efficiencies and overheads: the only numbers of the model not taken from a spec sheet.

The shipped values live in ``fitted/<hardware>.toml``; ``supernode calibrate --targets
targets/<file>.toml --update-package`` rewrites them from the calibration targets. Every value
carries its provenance (which target or figure fixed it, or which profile it is shared with).
"""

from __future__ import annotations

import dataclasses
import functools
import tomllib
from dataclasses import dataclass, field
from importlib import resources

_PACKAGE = "supernode.perf.fitted"


@dataclass(frozen=True)
class Calibration:
    """Efficiencies in (0, 1] and overheads >= 0 that turn rooflines into predictions.

    Operator-level (fitted to single-op figures): ``gemm_efficiency`` (fraction of peak for
    INT8/FP8/BF16 GEMMs), ``attention_efficiency`` (compute-bound attention kernels),
    ``hbm_efficiency`` (memory-bound kernels), ``dispatch_efficiency`` and
    ``combine_efficiency`` (fraction of the nominal link rate the decode all-to-all kernels
    achieve: per-token messages, fitted to the measured per-rank times).
    End-to-end (fitted to serving targets): ``decode_efficiency`` and ``prefill_efficiency``
    (the fraction of operator-level compute speed a full pipeline keeps: sync, padding, small
    ops), ``decode_step_overhead_s`` (fixed per decode iteration: graph launch, sampling, host
    sync), ``eplb_default_skew`` (busiest/mean expert-rank load with the default EPLB, before
    the statistical part that depends on tokens per rank) and ``ems_transfer_overhead_s``
    (fixed cost of one block-layer copy from the context cache into device memory).
    ``provenance`` maps each parameter to where its value comes from.
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
    ems_transfer_overhead_s: float
    source: str = "unspecified"
    provenance: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        for name in parameter_names():
            value = getattr(self, name)
            if name.endswith("_efficiency") and not 0 < value <= 1:
                raise ValueError(f"unphysical calibration: {name}={value} is outside (0, 1]")
            if name.endswith("_s") and not value >= 0:
                raise ValueError(f"unphysical calibration: {name}={value} is negative")
        if self.eplb_default_skew < 1:
            raise ValueError(f"unphysical calibration: eplb_default_skew="
                             f"{self.eplb_default_skew} < 1 (busiest rank below the mean)")

    def replace(self, **changes: object) -> Calibration:
        return dataclasses.replace(self, **changes)


@functools.cache
def parameter_names() -> tuple[str, ...]:
    """The fitted parameters, in file order."""
    return tuple(f.name for f in dataclasses.fields(Calibration)
                 if f.name not in ("source", "provenance"))


def calibration_from_dict(data: dict) -> Calibration:
    """Build from a parsed ``fitted/*.toml`` (``[parameters]``, ``[provenance]``, ``source``)."""
    params = {k: float(v) for k, v in data["parameters"].items()}
    missing = sorted(set(parameter_names()) - set(params))
    unknown = sorted(set(params) - set(parameter_names()))
    if missing or unknown:
        raise ValueError(f"calibration file: missing {missing}, unknown {unknown}")
    provenance = tuple((k, str(v)) for k, v in data.get("provenance", {}).items())
    return Calibration(**params, source=str(data.get("source", "unspecified")),
                       provenance=provenance)


def calibration_to_toml(calibration: Calibration, header: str) -> str:
    """TOML text for ``calibration`` with ``header`` as leading comment lines."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += ["", f"source = {_quoted(calibration.source)}", "", "[parameters]"]
    lines += [f"{name} = {getattr(calibration, name)!r}" for name in parameter_names()]
    if calibration.provenance:
        lines += ["", "[provenance]"]
        lines += [f"{name} = {_quoted(text)}" for name, text in calibration.provenance]
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@functools.cache
def load_calibration(hardware_name: str) -> Calibration:
    """The shipped fitted calibration for a hardware profile."""
    path = resources.files(_PACKAGE).joinpath(f"{hardware_name}.toml")
    if not path.is_file():
        raise ValueError(f"no calibration for hardware {hardware_name!r} in {_PACKAGE}")
    return calibration_from_dict(tomllib.loads(path.read_text("utf-8")))
