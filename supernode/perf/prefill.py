"""Prefill: the time of one packed batch of prompts on a whole instance.

First the batch loads its cached prefixes (``cache_fetch``, see ``perf.cache_fetch``), then it
computes. Prompts are packed over all dies (sequence packing, the paper's SP stage), so each die
computes ``computed_tokens / num_dies`` tokens of projections and FFN and an equal share of
the causal attention work, which is quadratic in prompt length (MLA runs MHA-style, without
weight absorption; a cached prefix is skipped but its keys are still attended to by every
suffix token, and its latent KV is up-projected). MoE layers dispatch/combine with the
prefill all-to-all kernels (bulk transfers at the links' measured rates).

With ``microbatch`` two microbatches overlap the matrix-core stream (attention, experts) with
the communication stream; the slower sets the pace. Where the all-to-all needs cores (GPUs:
SMs drive it), the compute stream keeps only the rest while they overlap. The overlap always
runs when asked for; when it is slower than serial execution, the notes say by how much.
"""

from __future__ import annotations

import functools

from supernode.perf.cache_fetch import cache_fetch_op
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
from supernode.perf.ops import DISCARD, Op, Rates, Tally, die_rates, tally_timing, total_s
from supernode.perf.timing import PrefillBatch, Timing


def prefill_time(batch: PrefillBatch, deployment: Deployment) -> Timing:
    """Modelled seconds to prefill every prompt of ``batch`` on ``deployment``, from the start of
    its cache fetch to the end of its last layer (the ``cache_fetch`` part is the fetch).

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
    overlap = d.microbatch and d.model.is_moe
    tally = Tally()
    compute_s = _batch(d, rates, batch, overlap, tally)
    if overlap:
        serial_s = _batch(d, rates, batch, False, DISCARD)
        if compute_s > serial_s:
            notes.append(f"microbatch: the two-microbatch overlap is "
                         f"{compute_s / serial_s - 1:.1%} slower than serial execution "
                         f"for this batch")
    fetch = cache_fetch_op(batch, d)
    if fetch.time_s:
        tally.add([fetch])
    return tally_timing(d, fetch.time_s + compute_s, tally, batch.num_computed_tokens, notes)


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


def _batch(d: Deployment, rates: Rates, batch: PrefillBatch, overlap: bool, tally: Tally) -> float:
    """Compute seconds of the batch (fetch excluded), tallied."""
    m = d.model
    tokens = batch.num_computed_tokens / d.num_dies
    group_tokens = batch.num_computed_tokens / d.dp
    dense = _attention(d, rates, batch, 1.0) + dense_ffn_ops(d, rates, group_tokens)
    num_dense = m.num_dense_layers if m.is_moe else m.num_layers
    tally.add(dense, num_dense)
    total = total_s(dense) * num_dense
    layer_s, ops, times = 0.0, dense, 1
    if m.is_moe:
        layer_s, ops, times, fill_s = _moe_layer(d, rates, batch, tokens, overlap)
        tally.add(ops, times * m.num_moe_layers)
        total += layer_s * m.num_moe_layers + fill_s
    head = [lm_head_op(d, rates, -(-len(batch.prompt_lens) // d.dp))]
    tally.add(head)
    total += total_s(head)
    if d.mtp_tokens:  # the MTP module builds its own KV over the prompt
        mtp = [mtp_proj_op(d, rates, group_tokens)]
        tally.add(mtp)
        tally.add(ops, times, part="mtp")
        total += total_s(mtp) + (layer_s if m.is_moe else total_s(dense))
    return total


def _moe_layer(d: Deployment, rates: Rates, batch: PrefillBatch, tokens: float, overlap: bool):
    """(seconds per MoE layer, its ops, how many times they run per layer, one-off pipeline
    fill seconds: the first microbatch's compute has nothing to hide behind)."""
    if not overlap:
        compute = _attention(d, rates, batch, 1.0) + moe_compute_ops(d, rates, tokens)
        network = list(moe_network_ops(d, tokens, "prefill"))
        return total_s(compute) + total_s(network), compute + network, 1, 0.0
    rates = rates.share(1 - d.hardware.ep_paths.prefill_comm_core_fraction)
    compute = _attention(d, rates, batch, 0.5) + moe_compute_ops(d, rates, tokens / 2)
    network = list(moe_network_ops(d, tokens / 2, "prefill"))
    compute_s, network_s = total_s(compute), total_s(network)
    return 2 * max(compute_s, network_s), compute + network, 2, min(compute_s, network_s)
