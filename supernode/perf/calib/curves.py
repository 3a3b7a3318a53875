"""Model curves for the questions no figure in the calibration notes answers directly
(prompt length, batch size, two microbatches, MTP, prefix reuse, KV dtype), rendered as
Markdown for ``docs/accuracy.md``. They are predictions to hold against published figures as
they become known; nothing here is fitted."""

from __future__ import annotations

from supernode.perf.deployment import Deployment
from supernode.perf.estimates import estimate_decode, estimate_prefill
from supernode.perf.reuse import reuse_point

PROMPT_LENS = (1024, 2048, 4096, 8192)
BATCHES = (4, 8, 16, 32, 64, 96, 128)
REUSE = (0.0, 0.125, 0.25, 0.5, 0.75, 0.9)

PREFILL_SETUPS = (
    ("ascend-910c, 16 NPUs EP32, INT8, default EPLB", "ascend-910c", 16, "int8", "default", 1),
    ("h800, 32 GPUs EP32, FP8, balanced", "h800", 32, "fp8", "perfect", 0),
    ("h100, 32 GPUs EP32, FP8, balanced", "h100", 32, "fp8", "perfect", 0),
)


def render_curves() -> str:
    """All curve tables as one Markdown section."""
    return "\n".join(["## Model curves beside no published figure in the notes", "",
                      _prefill_table(), _decode_table(), _gpu_decode_table(), _reuse_table(),
                      _kv_table()])


def _prefill_table() -> str:
    out = ["### Prefill: throughput and two-microbatch gain vs prompt length (16K tokens/device)",
           "", "| setup | " + " | ".join(f"{n} tok/s (gain)" for n in PROMPT_LENS) + " |",
           "|---|" + "---:|" * len(PROMPT_LENS)]
    for label, hw, devices, quant, eplb, mtp in PREFILL_SETUPS:
        d = Deployment.build(hw, "deepseek-r1", devices, ep=32, quant=quant, eplb=eplb,
                             mtp_tokens=mtp)
        cells = []
        for n in PROMPT_LENS:
            on = estimate_prefill(d, n, 16384).tokens_per_s_per_device
            off = estimate_prefill(d.replace(microbatch=False), n, 16384).tokens_per_s_per_device
            cells.append(f"{on:,.0f} ({on / off - 1:+.0%})")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _decode_table() -> str:
    d = Deployment.build("ascend-910c", "deepseek-r1", 160, dp=320, ep=320, mtp_tokens=1)
    out = ["### Decode, ascend-910c 160 NPUs DP320/EP320, KV 4K: two microbatches and MTP vs "
           "batch", "", "| batch/NPU | tok/s/NPU | TPOT ms | two-microbatch gain | "
           "MTP 1 gain (vs none) | MTP 2 gain (vs none) |", "|---:|---:|---:|---:|---:|---:|"]
    for b in BATCHES:
        e = estimate_decode(d, b, 4096)
        serial = estimate_decode(d.replace(microbatch=False), b, 4096)
        none, two = (estimate_decode(d.replace(mtp_tokens=k), b, 4096) for k in (0, 2))
        rate = e.tokens_per_s_per_device
        out.append(f"| {b} | {rate:,.0f} | {e.tpot_s * 1e3:.1f} | "
                   f"{rate / serial.tokens_per_s_per_device - 1:+.1%} | "
                   f"{rate / none.tokens_per_s_per_device - 1:+.1%} | "
                   f"{two.tokens_per_s_per_device / none.tokens_per_s_per_device - 1:+.1%} |")
    return "\n".join(out) + "\n"


def _gpu_decode_table() -> str:
    out = ["### Decode on GPUs, FP8, balanced routing, no MTP, KV 4K: two-batch overlap vs batch",
           "", "| setup | " + " | ".join(f"batch {b}: tok/s (gain)" for b in BATCHES) + " |",
           "|---|" + "---:|" * len(BATCHES)]
    for hw, devices in (("h800", 128), ("h100", 72)):
        d = Deployment.build(hw, "deepseek-r1", devices, dp=devices, ep=devices, quant="fp8",
                             eplb="perfect", ep_buffer_tokens_per_die=max(BATCHES))
        cells = []
        for b in BATCHES:
            on = estimate_decode(d, b, 4096).tokens_per_s_per_device
            off = estimate_decode(d.replace(microbatch=False), b, 4096).tokens_per_s_per_device
            cells.append(f"{on:,.0f} ({on / off - 1:+.0%})")
        out.append(f"| {hw}, {devices} GPUs EP{devices} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _reuse_table() -> str:
    d = Deployment.build("ascend-910c", "deepseek-r1", 16, ep=32, mtp_tokens=1)
    out = ["### EMS context caching, ascend-910c 16 NPUs, 4K prompts, 16K tokens/NPU", "",
           "| reuse | no cache tok/s, TTFT ms | EMS/UB tok/s, TTFT ms (fetch ms) | "
           "EMS/VPC tok/s, TTFT ms (fetch ms) | batch vs no reuse (UB) |",
           "|---:|---:|---:|---:|---:|"]
    base = reuse_point(d, 4096, 16384, 0.0, "none").batch_s
    for r in REUSE:
        none, ub, vpc = (reuse_point(d, 4096, 16384, r, c) for c in ("none", "ems_ub", "ems_vpc"))
        cells = [f"{none.tokens_per_s_per_device:,.0f}, {none.ttft_s * 1e3:,.0f}"]
        cells += [f"{p.tokens_per_s_per_device:,.0f}, {p.ttft_s * 1e3:,.0f} "
                  f"({p.fetch_s * 1e3:,.0f})" for p in (ub, vpc)]
        out.append(f"| {r:.1%} | " + " | ".join(cells) + f" | {ub.batch_s / base:.0%} |")
    return "\n".join(out) + "\n"


def _kv_table() -> str:
    setups = (("DeepSeek-R1, 128 heads per die (DP320, MTP 1), batch 32/NPU",
               Deployment.build("ascend-910c", "deepseek-r1", 160, dp=320, ep=320, mtp_tokens=1),
               32),
              ("DeepSeek-R1, 16 heads per die (16 NPUs DP4 TP8), batch 4/NPU",
               Deployment.build("ascend-910c", "deepseek-r1", 16, dp=4, tp=8, ep=32), 4),
              ("Llama-3.1-70B (GQA), 4 NPUs TP8, batch 4/NPU",
               Deployment.build("ascend-910c", "llama-3.1-70b", 4, dp=1, tp=8), 4))
    contexts = (1024, 4096, 16384, 65536)
    out = ["### Decode step (ms) by KV dtype and context, ascend-910c: BF16 / INT8 "
           "(attention bound)", "", "| setup | " + " | ".join(f"KV {k}" for k in contexts)
           + " |", "|---|" + "---:|" * len(contexts)]
    for label, d, batch in setups:
        cells = []
        for kv in contexts:
            bf16 = estimate_decode(d, batch, kv)
            int8 = estimate_decode(d.replace(kv_dtype="int8"), batch, kv)
            cells.append(f"{bf16.step_s * 1e3:.1f} / {int8.step_s * 1e3:.1f} "
                         f"({bf16.timing.bounds['attention']})")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
