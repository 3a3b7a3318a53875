"""Decode: the time of one iteration of a whole instance (every running request advances).

Per layer and per die: MLA attention in its absorbed form (score work grows with context and
query tokens, KV reads with context and the KV dtype; the roofline picks the bound),
projections, router, routed experts on the busiest rank, shared expert, dispatch/combine with
the decode all-to-all kernels; dense FFN layers; the LM head; a fixed per-step overhead.

MTP (``mtp_tokens`` = k drafts): the main model verifies ``1 + k`` tokens per request (logits
for each); the MTP module (one decoder layer and its projection) then runs k sequential draft
passes: the first over the positions just accepted (``tokens_per_request_step`` per request on
average, to extend its own KV) and each later one over a single token per request; each pass
needs the shared LM head only for its last position (one draft per request).

With ``microbatch`` the MoE layers split the batch into two microbatches whose streams overlap
attention of one with MoE + communication of the other, each stream owning its share of the
matrix cores where the hardware splits them (Ascend: 16 + 8 AIC); the slower stream sets the
pace, both read the weights, and each pays its own fixed costs. The overlap always runs when
asked for (only a single request per DP group cannot be split); when it is slower than serial
execution at this batch, the Timing's notes say by how much.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from supernode.perf.deployment import Deployment
from supernode.perf.layers import (
    attention_ops,
    dense_ffn_ops,
    lm_head_op,
    moe_compute_ops,
    moe_network_ops,
    mtp_proj_op,
)
from supernode.perf.memory import (
    HIGH_PRECISION_BYTES,
    kv_bytes_per_token_per_die,
    kv_capacity_tokens,
    memory_budget,
)
from supernode.perf.ops import (
    Op,
    Rates,
    Tally,
    die_rates,
    tally_timing,
    total_bytes,
    total_s,
)
from supernode.perf.timing import DecodeBatch, Timing


@dataclass(frozen=True)
class _Shape:
    """Per-die view of one pass: requests and query tokens of the busiest DP group."""

    requests: int
    tokens: float
    moe_tokens: float
    kv_len: float


def decode_step_time(batch: DecodeBatch, deployment: Deployment) -> Timing:
    """Modelled seconds of one decode iteration of ``batch`` on ``deployment``.

    The iteration feeds ``1 + mtp_tokens`` tokens per request and emits on average
    ``deployment.tokens_per_request_step`` tokens per request. Raises ValueError outside the
    model's range (context beyond the model's maximum).
    """
    return _decode_step_time(batch, deployment)


@functools.lru_cache(maxsize=16384)
def _decode_step_time(batch: DecodeBatch, d: Deployment) -> Timing:
    notes = _range_notes(batch, d)
    requests = math.ceil(batch.num_requests / d.dp)
    rates = die_rates(d, d.calibration.decode_efficiency)
    overlap = d.microbatch and d.model.is_moe and requests >= 2
    if d.microbatch and d.model.is_moe and not overlap:
        notes.append("microbatch: one request per DP group cannot be split in two; ran serially")
    tally = Tally()
    step_s, serial_s = _iteration(d, rates, requests, batch.mean_kv_len, overlap, tally)
    if step_s > serial_s:
        notes.append(f"microbatch: the two-microbatch overlap is {step_s / serial_s - 1:.1%} "
                     f"slower than serial execution at this batch")
    return tally_timing(d, step_s, tally, batch.num_requests * d.tokens_per_step, notes)


def _iteration(d: Deployment, rates: Rates, requests: int, kv_len: float, overlap: bool,
               tally: Tally) -> tuple[float, float]:
    """Seconds of one iteration (main model, MTP drafts, fixed overhead), tallied, and what
    the same iteration would take serially (equal to the first when ``overlap`` is off)."""
    m = d.model
    main = _shape(d, requests, d.tokens_per_step, kv_len)
    num_dense = m.num_dense_layers if m.is_moe else m.num_layers
    step_s, serial_s = _layers(d, rates, main, overlap, num_dense, m.num_moe_layers, tally)
    head = [lm_head_op(d, rates, main.tokens)]
    tally.add(head)
    fixed_s = total_s(head)
    for draft in range(d.mtp_tokens):
        per_request = d.tokens_per_request_step if draft == 0 else 1.0
        shape = _shape(d, requests, per_request, kv_len)
        layer = (0, 1) if m.is_moe else (1, 0)
        draft_s, draft_serial_s = _layers(d, rates, shape, overlap, *layer, tally, part="mtp")
        step_s, serial_s = step_s + draft_s, serial_s + draft_serial_s
        extra = [mtp_proj_op(d, rates, shape.tokens), lm_head_op(d, rates, requests, "mtp")]
        tally.add(extra)
        fixed_s += total_s(extra)
    overhead = Op("overhead", d.calibration.decode_step_overhead_s, "fixed")
    tally.add([overhead])
    fixed_s += overhead.time_s
    return step_s + fixed_s, serial_s + fixed_s


def _shape(d: Deployment, requests: int, tokens_per_request: float, kv_len: float) -> _Shape:
    tokens = requests * tokens_per_request
    return _Shape(requests, tokens, tokens / d.tp, kv_len)


def _layers(d: Deployment, rates: Rates, shape: _Shape, overlap: bool, num_dense: int,
            num_moe: int, tally: Tally, part: str | None = None) -> tuple[float, float]:
    """Seconds of ``num_dense`` dense and ``num_moe`` MoE layers at ``shape`` (tallied), and
    of the same layers run serially."""
    full = _attention(d, rates, shape, 1.0)
    total = serial = 0.0
    if num_dense:
        dense = full + dense_ffn_ops(d, rates, shape.tokens)
        tally.add(dense, num_dense, part)
        total = serial = total_s(dense) * num_dense
    if num_moe:
        serial_ops = (full + moe_compute_ops(d, rates, shape.moe_tokens)
                      + list(moe_network_ops(d, shape.moe_tokens, "decode")))
        serial += total_s(serial_ops) * num_moe
        if overlap:
            layer_s, ops, fill_s = _overlapped_moe_layer(d, rates, shape)
            tally.add(ops, 2 * num_moe, part)
            total += layer_s * num_moe + fill_s
        else:
            tally.add(serial_ops, num_moe, part)
            total = serial
    return total, serial


def _range_notes(batch: DecodeBatch, d: Deployment) -> list[str]:
    max_len = d.model.max_context_len
    if batch.mean_kv_len > max_len:
        raise ValueError(f"mean_kv_len={batch.mean_kv_len} exceeds {d.model.name}'s "
                         f"max_context_len={max_len}")
    budget = memory_budget(d)
    notes = [] if budget.fits else [budget.reason]
    capacity = kv_capacity_tokens(d)
    if batch.num_requests * batch.mean_kv_len > capacity:
        notes.append(f"kv: {batch.num_requests * batch.mean_kv_len:.0f} tokens exceed the "
                     f"instance's KV capacity of {capacity} (timed anyway)")
    per_die = math.ceil(batch.num_requests / d.dp) * d.tokens_per_step
    if d.model.is_moe and per_die > d.ep_buffer_tokens_per_die:
        notes.append(f"ep: {per_die} tokens per die exceed the EP buffer sizing of "
                     f"{d.ep_buffer_tokens_per_die} (beyond the calibrated range)")
    return notes


def _attention(d: Deployment, rates: Rates, shape: _Shape, fraction: float) -> list[Op]:
    """Attention of ``fraction`` of the requests: each reads its KV once per layer, however
    many query tokens it brings (MTP-aware tiling, P3 s4.2), plus its queries and outputs
    (BF16 activations, which dominate the bytes of short contexts)."""
    m = d.model
    kv_bytes = (shape.requests * fraction * shape.kv_len * kv_bytes_per_token_per_die(d)
                / (m.num_layers + (m.num_mtp_layers if d.mtp_tokens else 0)))
    tokens = shape.tokens * fraction
    io_bytes = tokens * m.attention_io_elems_per_query(True) * HIGH_PRECISION_BYTES / d.tp
    return attention_ops(d, rates, tokens, tokens * shape.kv_len, kv_bytes + io_bytes,
                         absorbed=True)


def _overlapped_moe_layer(d: Deployment, rates: Rates, shape: _Shape):
    """(seconds per MoE layer, the ops of one microbatch, one-off pipeline fill seconds) with
    two microbatches in two streams."""
    half = shape.moe_tokens / 2
    dispatch, combine = moe_network_ops(d, half, "decode")
    split = d.hardware.decode_core_split
    if split is None:  # streams time-share the cores; only communication overlaps
        attn, gemm = _attention(d, rates, shape, 0.5), moe_compute_ops(d, rates, half)
        moe_s = dispatch.time_s + total_s(gemm) + combine.time_s
        phase = max(total_s(attn) + total_s(gemm), moe_s)
    else:
        attn = _attention(d, rates.share(split[0]), shape, 0.5)
        gemm = moe_compute_ops(d, rates.share(split[1]), half)
        moe_s = dispatch.time_s + total_s(gemm) + combine.time_s
        hbm_s = (total_bytes(attn) + total_bytes(gemm)) / rates.hbm_bytes_per_s
        phase = max(total_s(attn), moe_s, hbm_s)
    fill = min(total_s(attn), moe_s)
    return 2 * phase, attn + gemm + [dispatch, combine], fill
