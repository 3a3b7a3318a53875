"""The validation plot: decode throughput/TPOT vs batch, prefill throughput vs prompt length."""

from __future__ import annotations

from pathlib import Path

from supernode.perf.calib.targets import TargetSet
from supernode.perf.calibration import Calibration
from supernode.perf.estimates import estimate_decode, estimate_prefill

DECODE_BATCHES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 80, 96, 112, 128)
PROMPT_LENS = (512, 1024, 2048, 4096, 8192, 16384)


def write_plot(targets: TargetSet, cal: Calibration, path: str | Path) -> Path:
    """Render the two-panel validation figure to ``path`` (PNG) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_dec, ax_pre) = plt.subplots(1, 2, figsize=(12, 4.5))
    _decode_panel(ax_dec, targets, cal)
    _prefill_panel(ax_pre, targets, cal)
    fig.suptitle(f"{targets.model} on {targets.hardware}: model (lines) vs targets (markers)")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _decode_panel(ax, targets: TargetSet, cal: Calibration) -> None:
    ref = max(targets.decode, key=lambda t: t.batch_per_device)
    d = ref.deployment(targets.hardware, targets.model, cal)
    est = [estimate_decode(d, b, ref.kv_len) for b in DECODE_BATCHES]
    ax.plot(DECODE_BATCHES, [e.tokens_per_s_per_device for e in est], "b-", label="tokens/s/device")
    ax.plot([t.batch_per_device for t in targets.decode],
            [t.tokens_per_s_per_device for t in targets.decode], "bo", label="target tokens/s")
    ax.set_xlabel("batch per device (requests)")
    ax.set_ylabel("decode tokens/s per device", color="b")
    twin = ax.twinx()
    twin.plot(DECODE_BATCHES, [e.tpot_s * 1e3 for e in est], "r--", label="TPOT")
    twin.plot([t.batch_per_device for t in targets.decode],
              [t.tpot_s * 1e3 for t in targets.decode], "rs", label="target TPOT")
    twin.set_ylabel("TPOT (ms)", color="r")
    ax.set_title(f"decode: {ref.num_devices} devices, DP{ref.dp} EP{ref.ep}, KV {ref.kv_len}")
    ax.legend(loc="upper left", fontsize=8)
    twin.legend(loc="lower right", fontsize=8)


def _prefill_panel(ax, targets: TargetSet, cal: Calibration) -> None:
    for target, style in zip(sorted(targets.prefill, key=lambda t: t.eplb), ("g", "m")):
        d = target.deployment(targets.hardware, targets.model, cal)
        est = [estimate_prefill(d, n, target.tokens_per_device) for n in PROMPT_LENS]
        ax.plot(PROMPT_LENS, [e.tokens_per_s_per_device for e in est], f"{style}-",
                label=f"model, EPLB {target.eplb}")
        ax.plot([target.prompt_len], [target.tokens_per_s_per_device], f"{style}o",
                label=f"target, EPLB {target.eplb}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("prompt length (tokens)")
    ax.set_ylabel("prefill tokens/s per device")
    ref = targets.prefill[0]
    ax.set_title(f"prefill: {ref.num_devices} devices, EP{ref.ep}, "
                 f"{ref.tokens_per_device} tokens/device")
    ax.legend(fontsize=8)
