"""Prefill: the time of one packed batch of prompts on a whole instance.

Prompts are packed over all dies (sequence packing, the paper's SP stage), so each die
computes ``computed_tokens / num_dies`` tokens of projections and FFN and an equal share of
the causal attention work, which is quadratic in prompt length (MLA runs MHA-style, without
weight absorption; a cached prefix is skipped but still attended to, and its latent KV is
up-projected). MoE layers dispatch/combine over the EP all-to-all. With ``microbatch`` two
microbatches overlap the matrix-core stream (attention, experts) with the communication
stream (SDMA all-to-all); the slower stream sets the pace.
"""

from __future__ import annotations

import functools

from supernode.perf.deployment import Deployment
from supernode.perf.layers import (
    attention_ops,
    dense_ffn_ops,
    lm_head_op,
    moe_compute_ops,
    moe_network_ops,
    mtp_proj_op,
)
from supernode.perf.memory import kv_bytes_per_token_per_die, memory_budget
from supernode.perf.ops import Op, Rates, Tally, die_rates, tally_timing, total_s
from supernode.perf.timing import PrefillBatch, Timing


def prefill_time(batch: PrefillBatch, deployment: Deployment) -> Timing:
    """Modelled seconds to prefill every prompt of ``batch`` on ``deployment``.

    Raises ValueError for prompts longer than the model's maximum context.
    """
    return _prefill_time(batch, deployment)


@functools.lru_cache(maxsize=4096)
def _prefill_time(batch: PrefillBatch, d: Deployment) -> Timing:
    longest = max(batch.prompt_lens)
    if longest > d.model.max_context_len:
        raise ValueError(f"prompt of {longest} tokens exceeds {d.model.name}'s "
                         f"max_context_len={d.model.max_context_len}")
    rates = die_rates(d, d.calibration.prefill_efficiency)
    budget = memory_budget(d)
    notes = [] if budget.fits else [budget.reason]
    serial = _batch(d, rates, batch, overlap=False)
    chosen = serial
    if d.microbatch and d.model.is_moe:
        overlapped = _batch(d, rates, batch, overlap=True)
        if overlapped[0] <= serial[0]:
            chosen = overlapped
        else:
            notes.append("microbatch: overlap slower than serial for this batch; ran serially")
    total, tally = chosen
    return tally_timing(d, total, tally, batch.num_computed_tokens, notes)


def _attention(d: Deployment, rates: Rates, batch: PrefillBatch, fraction: float) -> list[Op]:
    """Attention of this die's DP group (``fraction`` of it, for a microbatch); head-parallel
    work is then split over the group's ``tp`` dies."""
    m = d.model
    pairs = zip(batch.prompt_lens, batch.cached_prefix_lens)
    key_reads = sum((n * (n + 1) - c * (c + 1)) / 2 for n, c in pairs)
    cached = sum(batch.cached_prefix_lens)
    extra = 0.0
    if m.attention == "mla":  # the cached latent KV must be up-projected to K/V heads
        extra = 2 * m.kv_lora_rank * m.num_attention_heads * (m.qk_nope_head_dim + m.v_head_dim) * cached
    layers = m.num_layers + (m.num_mtp_layers if d.mtp_tokens else 0)
    kv_bytes = sum(batch.prompt_lens) * kv_bytes_per_token_per_die(d) / layers
    share = fraction / d.dp
    return attention_ops(d, rates, batch.num_computed_tokens * share, key_reads * share,
                         kv_bytes * share, absorbed=False, extra_proj_flops=extra * share)


def _batch(d: Deployment, rates: Rates, batch: PrefillBatch, overlap: bool) -> tuple[float, Tally]:
    m, tally = d.model, Tally()
    tokens = batch.num_computed_tokens / d.num_dies
    group_tokens = batch.num_computed_tokens / d.dp
    dense = _attention(d, rates, batch, 1.0) + dense_ffn_ops(d, rates, group_tokens)
    num_dense = m.num_dense_layers if m.is_moe else m.num_layers
    tally.add(dense, num_dense)
    total = total_s(dense) * num_dense
    layer_s = 0.0
    if m.is_moe:
        layer_s, ops, times = _moe_layer(d, rates, batch, tokens, overlap)
        tally.add(ops, times * m.num_moe_layers)
        total += layer_s * m.num_moe_layers
    head = [lm_head_op(d, rates, -(-len(batch.prompt_lens) // d.dp))]
    tally.add(head)
    total += total_s(head)
    if d.mtp_tokens:  # the MTP module builds its own KV over the prompt
        mtp = [mtp_proj_op(d, rates, group_tokens)]
        extra_s = total_s(mtp) + (layer_s if m.is_moe else total_s(dense))
        tally.add(mtp)
        tally.add(ops if m.is_moe else dense, times if m.is_moe else 1, part="mtp")
        total += extra_s
    return total, tally


def _moe_layer(d: Deployment, rates: Rates, batch: PrefillBatch, tokens: float, overlap: bool):
    """(seconds per MoE layer, its ops, how many times they run)."""
    fraction = 0.5 if overlap else 1.0
    compute = _attention(d, rates, batch, fraction) + moe_compute_ops(d, rates, tokens * fraction)
    network = list(moe_network_ops(d, tokens * fraction))
    if not overlap:
        return total_s(compute) + total_s(network), compute + network, 1
    return 2 * max(total_s(compute), total_s(network)), compute + network, 2
