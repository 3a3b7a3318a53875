"""Calibration targets as data: serving figures and operator figures from a TOML file."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from supernode.perf.calibration import Calibration
from supernode.perf.deployment import Deployment


@dataclass(frozen=True)
class DecodeTarget:
    """A published decode point: ``tokens_per_s_per_device`` at ``batch_per_device``."""

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

    def deployment(self, hardware: str, model: str, calibration: Calibration) -> Deployment:
        return Deployment.build(hardware, model, self.num_devices, dp=self.dp, ep=self.ep,
                                mtp_tokens=self.mtp_tokens, mtp_acceptance=self.mtp_acceptance,
                                eplb=self.eplb, calibration=calibration)

    @property
    def step_s(self) -> float:
        """Iteration time implied by the throughput target (batch / tok/s x tokens per step)."""
        per_step = 1 + self.mtp_tokens * self.mtp_acceptance
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

    def deployment(self, hardware: str, model: str, calibration: Calibration) -> Deployment:
        return Deployment.build(hardware, model, self.num_devices, ep=self.ep,
                                mtp_tokens=self.mtp_tokens, eplb=self.eplb,
                                calibration=calibration)


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
    """Single-kernel figures on one die."""

    gemm_fraction_of_peak: tuple[float, ...]
    attention_fraction_of_peak: float
    hbm_bytes_per_s: float
    graph_launch_s: tuple[float, ...]
    dispatch: CommFigure
    combine: CommFigure


@dataclass(frozen=True)
class TargetSet:
    hardware: str
    model: str
    operators: OperatorFigures
    decode: tuple[DecodeTarget, ...]
    prefill: tuple[PrefillTarget, ...]


def default_targets_path() -> Path:
    """The shipped CloudMatrix384 targets file."""
    return Path(str(resources.files("supernode.perf.targets").joinpath("cloudmatrix384.toml")))


def load_targets(path: str | Path | None = None) -> TargetSet:
    """Parse a targets file (default: the shipped CloudMatrix384 one)."""
    data = tomllib.loads(Path(path or default_targets_path()).read_text("utf-8"))
    ops = data["operators"]

    def comm(table: dict) -> CommFigure:
        return CommFigure(int(table["tokens_per_rank"]), int(table["experts_per_token"]),
                          int(table["message_bytes"]), tuple(table["ep"]),
                          tuple(float(t) for t in table["time_s"]))

    operators = OperatorFigures(tuple(ops["gemm_fraction_of_peak"]),
                                float(ops["attention_fraction_of_peak"]),
                                float(ops["hbm_bytes_per_s"]), tuple(ops["graph_launch_s"]),
                                comm(ops["dispatch"]), comm(ops["combine"]))
    return TargetSet(data["hardware"], data["model"], operators,
                     tuple(DecodeTarget(**t) for t in data.get("decode", [])),
                     tuple(PrefillTarget(**t) for t in data.get("prefill", [])))
