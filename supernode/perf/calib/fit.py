"""Fit the calibration: operator figures in closed form, then the serving and cache parameters.

Order (each step uses the previous ones):
1. operator figures -> gemm/attention/hbm efficiencies (measured fractions of peak) and the
   decode all-to-all efficiencies (least squares of ``t - latency = wire / efficiency`` along
   the hardware's decode path);
2. perfect-EPLB prefill target -> ``prefill_efficiency``;
3. default-EPLB prefill target, when given -> ``eplb_default_skew``;
4. decode targets -> ``decode_efficiency`` (two targets: from the difference of their step
   times, the per-token slope) and ``decode_step_overhead_s`` (two targets: the remaining
   intercept);
5. the EMS reuse target, when given -> ``ems_transfer_overhead_s`` (least squares over its
   throughput ratio and TTFT change, in log space).
Parameters no target determines come from the profile named in ``[inherit]``. Every solve is
a bisection on a monotone function; a target that needs an efficiency outside (0, 1], a skew
below 1 or a negative overhead is refused with ``CalibrationError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from supernode.hardware import load_hardware
from supernode.perf.calib.targets import CommFigure, EmsTarget, TargetSet
from supernode.perf.calibration import Calibration, load_calibration, parameter_names
from supernode.perf.comm import ep_latency_s, ep_wire_s
from supernode.perf.estimates import estimate_decode, estimate_prefill
from supernode.perf.reuse import reuse_point


class CalibrationError(ValueError):
    """A target cannot be met with physical parameter values."""


def fit_calibration(targets: TargetSet) -> Calibration:
    """The calibration that reproduces ``targets`` (see the module docstring for the order)."""
    cal, why = _fit_operators(targets)
    cal, why = _inherit(targets, cal, why)
    cal, why = _fit_prefill(targets, cal, why)
    cal, why = _fit_decode(targets, cal, why)
    cal, why = _fit_ems(targets, cal, why)
    where = targets.path or "its targets file"
    return cal.replace(source=f"fitted by `supernode calibrate` to {targets.hardware} targets "
                              f"({where})",
                       provenance=tuple((name, why[name]) for name in parameter_names()))


def _fit_operators(targets: TargetSet) -> tuple[Calibration, dict[str, str]]:
    hw, ops = load_hardware(targets.hardware), targets.operators
    src = dict(ops.sources)
    params = {
        "gemm_efficiency": sum(ops.gemm_fraction_of_peak) / len(ops.gemm_fraction_of_peak),
        "attention_efficiency": ops.attention_fraction_of_peak,
        "hbm_efficiency": ops.hbm_bytes_per_s / hw.hbm_bandwidth_bytes_per_s_per_die,
        "decode_efficiency": 1.0, "prefill_efficiency": 1.0, "decode_step_overhead_s": 0.0,
        "eplb_default_skew": 1.0, "ems_transfer_overhead_s": 0.0}
    why = {"gemm_efficiency": f"mean of operators.gemm_fraction_of_peak "
                              f"{list(ops.gemm_fraction_of_peak)} ({src.get('gemm', 'targets')})",
           "attention_efficiency": f"operators.attention_fraction_of_peak "
                                   f"({src.get('attention', 'targets')})",
           "hbm_efficiency": f"operators.hbm_bytes_per_s {ops.hbm_bytes_per_s:.4g} / profile HBM "
                             f"bandwidth ({src.get('hbm', 'targets')})"}
    for op, figure in (("dispatch", ops.dispatch), ("combine", ops.combine)):
        params[f"{op}_efficiency"] = comm_efficiency(figure, targets.hardware)
        why[f"{op}_efficiency"] = (f"least squares of operators.{op} per-rank times, EP "
                                   f"{list(figure.ep)} ({src.get(op, 'targets')})")
    return _checked(params), why


def comm_efficiency(figure: CommFigure, hardware: str) -> float:
    """Least-squares efficiency of the decode all-to-all model against measured per-rank times."""
    hw = load_hardware(hardware)
    path = hw.ep_paths.decode
    sxx = sxy = 0.0
    for ep, t in zip(figure.ep, figure.time_s):
        num_bytes = figure.tokens_per_rank * figure.experts_per_token * figure.message_bytes
        latency = ep_latency_s(hw, path, ep)
        x = ep_wire_s(hw, path, ep, num_bytes, efficiency=1.0)  # wire time at full rate
        sxx, sxy = sxx + x * x, sxy + x * (t - latency)
    if sxy <= 0:
        raise CalibrationError("all-to-all figures are faster than the start-up latency alone")
    return sxx / sxy


def _inherit(targets: TargetSet, cal: Calibration, why: dict[str, str]):
    for name, profile in targets.inherit:
        if name not in parameter_names():
            raise CalibrationError(f"[inherit] names unknown parameter {name!r}")
        cal = cal.replace(**{name: getattr(load_calibration(profile), name)})
        why[name] = f"not determined by these targets: taken from the {profile} fit"
    return cal, why


def _fit_prefill(targets: TargetSet, cal: Calibration, why: dict[str, str]):
    perfect = _one(targets.prefill, "perfect")

    def throughput(target, c):
        d = target.deployment(targets.hardware, targets.model, c)
        return estimate_prefill(d, target.prompt_len, target.tokens_per_device).tokens_per_s_per_device

    eta = _bisect(lambda x: throughput(perfect, cal.replace(prefill_efficiency=x))
                  - perfect.tokens_per_s_per_device, 1e-3, 1.0, "prefill_efficiency")
    cal, why["prefill_efficiency"] = cal.replace(prefill_efficiency=eta), f"prefill target {perfect.name!r}"
    default = [t for t in targets.prefill if t.eplb == "default"]
    if default:
        skew = _bisect(lambda s: default[0].tokens_per_s_per_device
                       - throughput(default[0], cal.replace(eplb_default_skew=s)), 1.0, 20.0,
                       "eplb_default_skew")
        cal, why["eplb_default_skew"] = (cal.replace(eplb_default_skew=skew),
                                         f"prefill target {default[0].name!r}")
    return cal, why


def _fit_decode(targets: TargetSet, cal: Calibration, why: dict[str, str]):
    if len(targets.decode) not in (1, 2):
        raise CalibrationError("decode fit needs one target (efficiency) or two (efficiency "
                               "from the slope, overhead from the intercept)")

    def step(target, c):
        d = target.deployment(targets.hardware, targets.model, c)
        return estimate_decode(d, target.batch_per_device, target.kv_len).step_s

    if len(targets.decode) == 1:
        (only,) = targets.decode
        eta = _bisect(lambda x: step(only, cal.replace(decode_efficiency=x)) - only.step_s,
                      1e-3, 1.0, "decode_efficiency")
        why["decode_efficiency"] = f"decode target {only.name!r} (throughput)"
        return cal.replace(decode_efficiency=eta), why
    big, small = sorted(targets.decode, key=lambda t: -t.batch_per_device)
    gap = big.step_s - small.step_s
    eta = _bisect(lambda x: step(big, cal.replace(decode_efficiency=x))
                  - step(small, cal.replace(decode_efficiency=x)) - gap,
                  1e-3, 1.0, "decode_efficiency")
    cal = cal.replace(decode_efficiency=eta)
    overhead = small.step_s - step(small, cal)
    if overhead < 0:
        raise CalibrationError(f"decode_step_overhead_s would be negative ({overhead:.3e} s): "
                               "the model is already slower than the small-batch target")
    why["decode_efficiency"] = f"step-time difference of {big.name!r} and {small.name!r}"
    why["decode_step_overhead_s"] = f"remaining step time of {small.name!r}"
    return cal.replace(decode_step_overhead_s=overhead), why


def ems_figures(target: EmsTarget, hardware: str, model: str, cal: Calibration) -> tuple[float, float]:
    """(throughput ratio, TTFT change) the model gives for the EMS target's experiment."""
    t = target.prefill
    d = t.deployment(hardware, model, cal)
    cache = f"ems_{target.plane}"
    at = reuse_point(d, t.prompt_len, t.tokens_per_device, target.reuse, cache)
    ref = reuse_point(d, t.prompt_len, t.tokens_per_device, target.reference_reuse, cache)
    none = reuse_point(d, t.prompt_len, t.tokens_per_device, target.reuse, "none")
    return at.tokens_per_s_per_device / ref.tokens_per_s_per_device, at.ttft_s / none.ttft_s - 1


def _fit_ems(targets: TargetSet, cal: Calibration, why: dict[str, str]):
    ems = targets.ems
    if ems is None:
        return cal, why

    def loss(x: float) -> float:
        ratio, change = ems_figures(ems, targets.hardware, targets.model,
                                    cal.replace(ems_transfer_overhead_s=x))
        return (math.log(ratio / ems.throughput_ratio) ** 2
                + math.log((1 + change) / (1 + ems.ttft_change)) ** 2)

    hi = 1e-6
    while loss(hi * 2) < loss(hi) and hi < 1.0:
        hi *= 2
    best = _golden(loss, 0.0, min(1.0, hi * 2))
    why["ems_transfer_overhead_s"] = (f"EMS target {ems.name!r}: least squares over its "
                                      f"throughput ratio and TTFT change")
    return cal.replace(ems_transfer_overhead_s=best), why


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


def _golden(f: Callable[[float], float], lo: float, hi: float) -> float:
    """Minimum of the unimodal ``f`` on [lo, hi]."""
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = f(b)
        if hi - lo < 1e-4 * max(hi, 1e-9):
            break
    return (lo + hi) / 2


def _checked(params: dict) -> Calibration:
    try:
        return Calibration(**params)
    except ValueError as err:
        raise CalibrationError(str(err)) from err
