"""Decode: the time of one iteration of a whole instance (every running request advances).

Per layer and per die: MLA attention in its absorbed form (KV read and score work grow with
context), projections, router, routed experts on the busiest rank, shared expert,
dispatch/combine over the scale-up plane; dense FFN layers; the LM head; the MTP module;
a fixed per-step overhead. With ``microbatch`` the batch splits into two streams that overlap
attention of one microbatch with MoE + communication of the other, each stream owning its
share of the matrix cores (Ascend: 16 + 8 AIC); the slower stream sets the pace. The engine
uses the overlap only where it is faster (the paper's adaptive split), and records the choice.
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
from supernode.perf.memory import kv_bytes_per_token_per_die, kv_capacity_tokens, memory_budget
from supernode.perf.ops import Op, Rates, Tally, die_rates, tally_timing, total_bytes, total_s
from supernode.perf.timing import DecodeBatch, Timing


@dataclass(frozen=True)
class _Shape:
    """Per-die view of the batch: requests and query tokens of the busiest DP group."""

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
    tokens = requests * d.tokens_per_step
    shape = _Shape(requests, tokens, tokens / d.tp, batch.mean_kv_len)
    rates = die_rates(d, d.calibration.decode_efficiency)
    serial = _step(d, rates, shape, overlap=False)
    chosen = serial
    if d.microbatch and d.model.is_moe:
        if requests < 2:
            notes.append("microbatch: one request per die cannot be split; ran serially")
        else:
            overlapped = _step(d, rates, shape, overlap=True)
            if overlapped[0] <= serial[0]:
                chosen = overlapped
            else:
                notes.append("microbatch: two-stream overlap slower than serial at this batch; "
                             "ran serially")
    step_s, tally = chosen
    return _timing(d, step_s, tally, batch.num_requests * d.tokens_per_step, notes)


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


def _step(d: Deployment, rates: Rates, shape: _Shape, overlap: bool) -> tuple[float, Tally]:
    """Total step seconds and the tally of its parts, serial or two-stream."""
    m, tally = d.model, Tally()
    full = _attention(d, rates, shape, 1.0)
    if m.is_moe:
        dense_ops = full + dense_ffn_ops(d, rates, shape.tokens)
        tally.add(dense_ops, m.num_dense_layers)
        layer_s, layer_ops, fill_s = _moe_layer(d, rates, shape, overlap, full)
        for ops, times in layer_ops:
            tally.add(ops, times * m.num_moe_layers)
        step_s = total_s(dense_ops) * m.num_dense_layers + layer_s * m.num_moe_layers + fill_s
    else:
        dense_ops = full + dense_ffn_ops(d, rates, shape.tokens)
        tally.add(dense_ops, m.num_layers)
        step_s, layer_s, layer_ops = total_s(dense_ops) * m.num_layers, total_s(dense_ops), [(dense_ops, 1)]
    head = [lm_head_op(d, rates, shape.tokens)]
    tally.add(head)
    step_s += total_s(head)
    if d.mtp_tokens:
        mtp = [mtp_proj_op(d, rates, shape.tokens), lm_head_op(d, rates, shape.tokens, "mtp")]
        for ops, times in layer_ops:
            tally.add(ops, times * d.mtp_tokens, part="mtp")
        tally.add(mtp, d.mtp_tokens)
        step_s += d.mtp_tokens * (layer_s + total_s(mtp))
    overhead = Op("overhead", d.calibration.decode_step_overhead_s, "fixed")
    tally.add([overhead])
    return step_s + overhead.time_s, tally


def _attention(d: Deployment, rates: Rates, shape: _Shape, fraction: float) -> list[Op]:
    kv_bytes = (shape.requests * fraction * shape.kv_len * kv_bytes_per_token_per_die(d)
                / (d.model.num_layers + (d.model.num_mtp_layers if d.mtp_tokens else 0)))
    tokens = shape.tokens * fraction
    return attention_ops(d, rates, tokens, tokens * shape.kv_len, kv_bytes, absorbed=True)


def _moe_layer(d: Deployment, rates: Rates, shape: _Shape, overlap: bool, full: list[Op]):
    """(seconds per MoE layer, [(ops, times)], one-off pipeline fill seconds); ``full`` is the
    attention of the whole batch at full core share."""
    if not overlap:
        ops = (full + moe_compute_ops(d, rates, shape.moe_tokens)
               + list(moe_network_ops(d, shape.moe_tokens)))
        return total_s(ops), [(ops, 1)], 0.0
    half = shape.moe_tokens / 2
    dispatch, combine = moe_network_ops(d, half)
    split = d.hardware.decode_core_split
    if split is None:  # streams time-share the cores; only communication overlaps
        attn, gemm = _attention(d, rates, shape, 0.5), moe_compute_ops(d, rates, half)
        phase = max(total_s(attn) + total_s(gemm), dispatch.time_s + total_s(gemm) + combine.time_s)
    else:
        attn = _attention(d, rates.share(split[0]), shape, 0.5)
        gemm = moe_compute_ops(d, rates.share(split[1]), half)
        moe_s = dispatch.time_s + total_s(gemm) + combine.time_s
        hbm_s = (total_bytes(attn) + total_bytes(gemm)) / rates.hbm_bytes_per_s
        phase = max(total_s(attn), moe_s, hbm_s)
    fill = min(total_s(attn), dispatch.time_s + total_s(gemm) + combine.time_s)
    return 2 * phase, [(attn + gemm + [dispatch, combine], 2)], fill


def _timing(d: Deployment, step_s: float, tally: Tally, num_tokens: int, notes: list[str]) -> Timing:
    return tally_timing(d, step_s, tally, num_tokens, notes)
