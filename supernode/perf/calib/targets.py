"""Calibration targets as data: serving, operator and cache figures from a TOML file.

A targets file names its ``hardware`` and ``model``, the profiles that share its fit
(``shared_with``, e.g. H100 with H800: the same silicon), operator figures, one or two decode
targets, one or two prefill targets (perfect EPLB required, default EPLB optional), an optional
EMS reuse target, and ``[inherit]``: the parameters its figures cannot determine, each taken
from another profile's fit.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from supernode.perf.calibration import Calibration
from supernode.perf.deployment import Deployment, chained_tokens


@dataclass(frozen=True)
class DecodeTarget:
    """A published decode point: ``tokens_per_s_per_device`` at ``batch_per_device``.

    ``tpot_s`` is the published TPOT; the fit uses the throughput (tokens/s per device =
    batch per device / TPOT, notes s4) and reports the TPOT beside it.
    """

    name: str
    num_devices: int
    dp: int
    ep: int
    batch_per_device: int
    kv_len: int
    mtp_tokens: int
    mtp_acceptance: float
    eplb: str
    tokens_per_s_per_device: float
    tpot_s: float
    quant: str = "int8"
    microbatch: bool = True
    ep_buffer_tokens_per_die: int = 96

    def deployment(self, hardware: str, model: str, calibration: Calibration) -> Deployment:
        return Deployment.build(hardware, model, self.num_devices, dp=self.dp, ep=self.ep,
                                mtp_tokens=self.mtp_tokens, mtp_acceptance=self.mtp_acceptance,
                                eplb=self.eplb, quant=self.quant, microbatch=self.microbatch,
                                ep_buffer_tokens_per_die=self.ep_buffer_tokens_per_die,
                                calibration=calibration)

    @property
    def step_s(self) -> float:
        """Iteration time implied by the throughput target (batch / tok/s x tokens per step)."""
        per_step = chained_tokens(self.mtp_tokens, self.mtp_acceptance)
        return self.batch_per_device / self.tokens_per_s_per_device * per_step


@dataclass(frozen=True)
class PrefillTarget:
    """A published prefill point: prompt tokens/s per device for one packed batch shape."""

    name: str
    num_devices: int
    ep: int
    prompt_len: int
    tokens_per_device: int
    mtp_tokens: int
    eplb: str
    tokens_per_s_per_device: float
    quant: str = "int8"
    microbatch: bool = True

    def deployment(self, hardware: str, model: str, calibration: Calibration) -> Deployment:
        return Deployment.build(hardware, model, self.num_devices, ep=self.ep,
                                mtp_tokens=self.mtp_tokens, eplb=self.eplb, quant=self.quant,
                                microbatch=self.microbatch, calibration=calibration)


@dataclass(frozen=True)
class EmsTarget:
    """The context-cache experiment: one prefill instance's batch at prefix reuse ``reuse``
    against ``reference_reuse`` (throughput ratio) and against no cache (TTFT change)."""

    name: str
    prefill: PrefillTarget
    plane: str
    reuse: float
    reference_reuse: float
    throughput_ratio: float
    ttft_change: float
    ttft_change_s: float


@dataclass(frozen=True)
class CommFigure:
    """Measured all-to-all times per rank (``time_s[i]`` at ``ep[i]``)."""

    tokens_per_rank: int
    experts_per_token: int
    message_bytes: int
    ep: tuple[int, ...]
    time_s: tuple[float, ...]


@dataclass(frozen=True)
class OperatorFigures:
    """Single-kernel figures on one die (fractions of the profile's peaks)."""

    gemm_fraction_of_peak: tuple[float, ...]
    attention_fraction_of_peak: float
    hbm_bytes_per_s: float
    graph_launch_s: tuple[float, ...]
    dispatch: CommFigure
    combine: CommFigure
    sources: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TargetSet:
    hardware: str
    model: str
    operators: OperatorFigures
    decode: tuple[DecodeTarget, ...]
    prefill: tuple[PrefillTarget, ...]
    ems: EmsTarget | None = None
    inherit: tuple[tuple[str, str], ...] = ()
    shared_with: tuple[str, ...] = ()
    path: str = ""


def targets_dir() -> Path:
    return Path(str(resources.files("supernode.perf.targets")))


def default_targets_path() -> Path:
    """The shipped CloudMatrix384 targets file."""
    return targets_dir() / "cloudmatrix384.toml"


def shipped_targets() -> tuple[Path, ...]:
    """Every shipped targets file (one per fitted hardware family)."""
    return tuple(sorted(targets_dir().glob("*.toml")))


def display_path(path: str | Path) -> str:
    """``path`` as the repository names it (from ``supernode/`` on) when it lies in the package."""
    parts = Path(path).resolve().parts
    if "supernode" in parts:
        return "/".join(parts[len(parts) - 1 - parts[::-1].index("supernode"):])
    return str(path)


def load_targets(path: str | Path | None = None) -> TargetSet:
    """Parse a targets file (default: the shipped CloudMatrix384 one)."""
    path = Path(path or default_targets_path())
    data = tomllib.loads(path.read_text("utf-8"))
    ops = data["operators"]
    operators = OperatorFigures(
        tuple(ops["gemm_fraction_of_peak"]), float(ops["attention_fraction_of_peak"]),
        float(ops["hbm_bytes_per_s"]), tuple(ops.get("graph_launch_s", ())),
        _comm(ops["dispatch"]), _comm(ops["combine"]),
        tuple((k, str(v)) for k, v in ops.get("sources", {}).items()))
    prefill = tuple(PrefillTarget(**t) for t in data.get("prefill", []))
    ems = None
    if "ems" in data:
        table = dict(data["ems"])
        base = PrefillTarget(**table.pop("prefill"))
        ems = EmsTarget(prefill=base, **table)
    return TargetSet(data["hardware"], data["model"], operators,
                     tuple(DecodeTarget(**t) for t in data.get("decode", [])), prefill, ems,
                     tuple((k, str(v)) for k, v in data.get("inherit", {}).items()),
                     tuple(data.get("shared_with", ())), display_path(path))


def _comm(table: dict) -> CommFigure:
    return CommFigure(int(table["tokens_per_rank"]), int(table["experts_per_token"]),
                      int(table["message_bytes"]), tuple(table["ep"]),
                      tuple(float(t) for t in table["time_s"]))
