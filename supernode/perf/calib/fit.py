"""Fit the calibration: operator efficiencies in closed form, then four serving parameters.

Order (each step uses the previous ones):
1. operator figures -> gemm/attention/hbm efficiencies (measured fractions of peak) and
   dispatch/combine efficiencies (least squares of ``t - latency = wire / (bw * eff)``);
2. perfect-EPLB prefill target -> ``prefill_efficiency``;
3. default-EPLB prefill target -> ``eplb_default_skew``;
4. the two decode targets -> ``decode_efficiency`` (from the difference of their step times,
   i.e. the per-token slope) and ``decode_step_overhead_s`` (the remaining intercept).
Every solve is a bisection on a monotone function; a target that needs an efficiency outside
(0, 1], a skew below 1 or a negative overhead is refused with ``CalibrationError``.
"""

from __future__ import annotations

from collections.abc import Callable

from supernode.hardware import load_hardware
from supernode.perf.calib.targets import CommFigure, TargetSet
from supernode.perf.calibration import Calibration
from supernode.perf.comm import all_to_all_s
from supernode.perf.estimates import estimate_decode, estimate_prefill


class CalibrationError(ValueError):
    """A target cannot be met with physical parameter values."""


def fit_calibration(targets: TargetSet) -> Calibration:
    """The calibration that reproduces ``targets`` (see the module docstring for the order)."""
    cal = _fit_operators(targets)
    cal = _fit_prefill(targets, cal)
    cal = _fit_decode(targets, cal)
    return cal.replace(source=f"fitted by `supernode calibrate` to {targets.hardware} targets")


def _fit_operators(targets: TargetSet) -> Calibration:
    hw, ops = load_hardware(targets.hardware), targets.operators
    gemm = sum(ops.gemm_fraction_of_peak) / len(ops.gemm_fraction_of_peak)
    hbm = ops.hbm_bytes_per_s / hw.hbm_bandwidth_bytes_per_s_per_die
    return _checked({
        "gemm_efficiency": gemm, "attention_efficiency": ops.attention_fraction_of_peak,
        "hbm_efficiency": hbm, "dispatch_efficiency": comm_efficiency(ops.dispatch, targets.hardware),
        "combine_efficiency": comm_efficiency(ops.combine, targets.hardware),
        "decode_efficiency": 1.0, "prefill_efficiency": 1.0, "decode_step_overhead_s": 0.0,
        "eplb_default_skew": 1.0})


def comm_efficiency(figure: CommFigure, hardware: str) -> float:
    """Least-squares efficiency of the all-to-all model against measured per-rank times."""
    hw = load_hardware(hardware)
    sxx = sxy = 0.0
    for ep, t in zip(figure.ep, figure.time_s):
        bytes_ = figure.tokens_per_rank * figure.experts_per_token * figure.message_bytes
        latency = all_to_all_s(hw, ep, 1e-30, 1.0)  # start-up only
        x = all_to_all_s(hw, ep, bytes_, 1.0) - latency  # wire time at full bandwidth
        sxx, sxy = sxx + x * x, sxy + x * (t - latency)
    if sxy <= 0:
        raise CalibrationError("all-to-all figures are faster than the start-up latency alone")
    return sxx / sxy


def _fit_prefill(targets: TargetSet, cal: Calibration) -> Calibration:
    perfect = _one(targets.prefill, "perfect")
    default = _one(targets.prefill, "default")

    def throughput(target, c):
        d = target.deployment(targets.hardware, targets.model, c)
        return estimate_prefill(d, target.prompt_len, target.tokens_per_device).tokens_per_s_per_device

    eta = _bisect(lambda x: throughput(perfect, cal.replace(prefill_efficiency=x))
                  - perfect.tokens_per_s_per_device, 1e-3, 1.0, "prefill_efficiency")
    cal = cal.replace(prefill_efficiency=eta)
    skew = _bisect(lambda s: default.tokens_per_s_per_device
                   - throughput(default, cal.replace(eplb_default_skew=s)), 1.0, 20.0,
                   "eplb_default_skew")
    return cal.replace(eplb_default_skew=skew)


def _fit_decode(targets: TargetSet, cal: Calibration) -> Calibration:
    if len(targets.decode) != 2:
        raise CalibrationError("decode fit needs exactly two decode targets (slope and intercept)")
    big, small = sorted(targets.decode, key=lambda t: -t.batch_per_device)

    def step(target, c):
        d = target.deployment(targets.hardware, targets.model, c)
        return estimate_decode(d, target.batch_per_device, target.kv_len).step_s

    gap = big.step_s - small.step_s
    eta = _bisect(lambda x: step(big, cal.replace(decode_efficiency=x))
                  - step(small, cal.replace(decode_efficiency=x)) - gap,
                  1e-3, 1.0, "decode_efficiency")
    cal = cal.replace(decode_efficiency=eta)
    overhead = small.step_s - step(small, cal)
    if overhead < 0:
        raise CalibrationError(f"decode_step_overhead_s would be negative ({overhead:.3e} s): "
                               "the model is already slower than the small-batch target")
    return cal.replace(decode_step_overhead_s=overhead)


def _one(items, eplb: str):
    found = [t for t in items if t.eplb == eplb]
    if len(found) != 1:
        raise CalibrationError(f"need exactly one prefill target with eplb={eplb!r}")
    return found[0]


def _bisect(f: Callable[[float], float], lo: float, hi: float, name: str) -> float:
    """Root of the monotone ``f`` on [lo, hi] (rising or falling)."""
    f_lo, f_hi = f(lo), f(hi)
    if f_lo * f_hi > 0:
        raise CalibrationError(f"{name}: no physical value in [{lo}, {hi}] meets the target "
                               f"(residuals {f_lo:.4g} .. {f_hi:.4g})")
    for _ in range(60):
        mid = (lo + hi) / 2
        if (f(mid) < 0) == (f_lo < 0):
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-9 * max(1.0, hi):
            break
    return (lo + hi) / 2


def _checked(params: dict) -> Calibration:
    try:
        return Calibration(**params)
    except ValueError as err:
        raise CalibrationError(str(err)) from err
