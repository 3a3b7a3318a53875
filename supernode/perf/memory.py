"""HBM budget of one die: weights, EP buffers, activation reserve, and what is left for KV."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from supernode.models.spec import dtype_bytes

if TYPE_CHECKING:
    from supernode.perf.deployment import Deployment

#: Embedding, LM head and router stay in BF16 (P3 s4.5: sensitive ops are not quantized).
HIGH_PRECISION_BYTES = 2
#: When weights overflow HBM (a small emulated stand-in for a big deployment), the KV cache
#: is given this fraction of HBM so the instance stays usable; the clamp is reported.
OVERFLOW_KV_FRACTION = 0.25


@dataclass(frozen=True)
class MemoryBudget:
    """One die's HBM: where it goes and whether the weights fit (``reason`` says why not)."""

    hbm_bytes: float
    weight_bytes: float
    ep_buffer_bytes: float
    reserve_bytes: float
    kv_bytes: float
    fits: bool
    reason: str


def expert_bytes_per_die(d: Deployment, num_moe_layers: int) -> float:
    """Expert weights on the fullest rank: its routed slots plus a replicated shared expert."""
    p, m = d.placement, d.model
    if p is None:
        return 0.0
    shared = m.num_shared_experts if p.num_shared_ranks == 0 else 0
    return num_moe_layers * (p.experts_per_rank + shared) * m.expert_params * d.weight_bytes_per_param


def weight_bytes_per_die(d: Deployment) -> float:
    """Weight bytes resident on the fullest die (attention and dense FFN split over ``tp``)."""
    m, wb = d.model, d.weight_bytes_per_param
    dense_layers = m.num_dense_layers if m.is_moe else m.num_layers
    total = m.num_layers * m.attention_params * wb / d.tp
    total += dense_layers * m.dense_ffn_params * wb / d.tp
    total += expert_bytes_per_die(d, m.num_moe_layers)
    total += m.num_moe_layers * m.router_params * HIGH_PRECISION_BYTES
    total += 2 * m.embedding_params * HIGH_PRECISION_BYTES / d.tp
    if d.mtp_tokens:
        total += m.num_mtp_layers * (2 * m.hidden_size ** 2 + m.attention_params) * wb / d.tp
        total += expert_bytes_per_die(d, m.num_mtp_layers) if m.is_moe else (
            m.num_mtp_layers * m.dense_ffn_params * wb / d.tp)
    return total


def ep_buffer_bytes_per_die(d: Deployment) -> float:
    """Pre-allocated dispatch + combine buffers (P3 Eq. 1-2: ranks x max_tokens x message)."""
    p = d.placement
    if p is None or d.ep == 1:
        return 0.0
    max_tokens = d.ep_buffer_tokens_per_die * min(d.model.num_experts_per_tok, p.experts_per_rank)
    return d.ep * max_tokens * (d.dispatch_msg_bytes + d.combine_msg_bytes)


@functools.lru_cache(maxsize=1024)
def kv_bytes_per_token_per_die(d: Deployment) -> float:
    """KV bytes one cached token occupies on each die that holds it (MTP layer included)."""
    m = d.model
    layers = m.num_layers + (m.num_mtp_layers if d.mtp_tokens else 0)
    return m.kv_elems_per_token_per_layer * dtype_bytes(d.kv_dtype) * layers / d.kv_shard


def free_kv_bytes_per_die(d: Deployment) -> float:
    """HBM left for KV on one die; may be negative when the weights do not fit."""
    hbm = d.hardware.hbm_bytes_per_die
    return (hbm * (1 - d.hbm_reserve_fraction) - weight_bytes_per_die(d)
            - ep_buffer_bytes_per_die(d))


@functools.lru_cache(maxsize=1024)
def memory_budget(d: Deployment) -> MemoryBudget:
    """The HBM budget of the fullest die; KV clamps to ``OVERFLOW_KV_FRACTION`` on overflow."""
    hbm = d.hardware.hbm_bytes_per_die
    weights, buffers = weight_bytes_per_die(d), ep_buffer_bytes_per_die(d)
    reserve = hbm * d.hbm_reserve_fraction
    free = hbm - reserve - weights - buffers
    if free > 0:
        return MemoryBudget(hbm, weights, buffers, reserve, free, True, "")
    reason = (f"memory: weights ({weights / 2**30:.1f} GiB/die) plus EP buffers exceed "
              f"{hbm / 2**30:.0f} GiB of HBM on {d.num_devices} x {d.hardware.name} "
              f"(tp={d.tp}, ep={d.ep}, quant={d.quant}); timed as if they fit, KV clamped to "
              f"{OVERFLOW_KV_FRACTION:.0%} of HBM")
    return MemoryBudget(hbm, weights, buffers, reserve, hbm * OVERFLOW_KV_FRACTION, False, reason)


def kv_capacity_tokens(d: Deployment) -> int:
    """KV tokens the whole instance can hold: one copy per DP group (a group's ``tp`` dies
    share a request's KV, MLA replicating it, GQA splitting it over KV heads).

    If the weights do not fit, the capacity is clamped as ``memory_budget`` reports."""
    per_die = math.floor(memory_budget(d).kv_bytes / kv_bytes_per_token_per_die(d))
    return max(0, per_die) * d.dp
