"""Per-layer kernels of one die, shared by the decode and prefill models.

Every function returns ``Op`` records for one layer and one microbatch on the critical die.
"""

from __future__ import annotations

from supernode.perf.comm import all_to_all_s
from supernode.perf.deployment import Deployment
from supernode.perf.experts import expert_load, remote_nodes_per_token
from supernode.perf.memory import HIGH_PRECISION_BYTES
from supernode.perf.ops import Op, Rates, roofline, static_op


def attention_ops(d: Deployment, rates: Rates, tokens: float, key_reads: float,
                  kv_bytes: float, absorbed: bool, extra_proj_flops: float = 0.0) -> list[Op]:
    """Projections and the attention kernel for ``tokens`` query tokens.

    ``key_reads`` = sum over query tokens of the keys each attends to; ``kv_bytes`` = KV read
    from HBM. Head-parallel work is split over ``tp``.
    """
    m, tp = d.model, d.tp
    params = m.attention_params
    proj = roofline("attention_proj", (2 * params * tokens + extra_proj_flops) / tp,
                    params * d.weight_bytes_per_param / tp, rates.gemm_flops_per_s,
                    rates.hbm_bytes_per_s)
    core = roofline("attention", m.attention_flops_per_key(absorbed) * key_reads / tp, kv_bytes,
                    rates.attention_flops_per_s, rates.hbm_bytes_per_s)
    return [proj, core, static_op("launch", "attention", d), tp_allreduce_op(d, tokens)]


def tp_allreduce_op(d: Deployment, tokens: float) -> Op:
    """Ring all-reduce of the BF16 hidden states of ``tokens`` tokens over the ``tp`` dies."""
    if d.tp == 1:
        return Op("tp_comm", 0.0, "network")
    link, hw = d.hardware.links["ub"], d.hardware
    wire = tokens * d.model.hidden_size * HIGH_PRECISION_BYTES * 2 * (d.tp - 1) / d.tp
    per_die_bw = link.effective_bandwidth_bytes_per_s / hw.num_dies_per_device
    return Op("tp_comm", link.latency_s + hw.op_costs.comm_s + wire / per_die_bw, "network")


def dense_ffn_ops(d: Deployment, rates: Rates, tokens: float) -> list[Op]:
    """A dense (non-MoE) FFN over ``tokens`` tokens, split over ``tp``."""
    params = d.model.dense_ffn_params
    ffn = roofline("dense", 2 * params * tokens / d.tp, params * d.weight_bytes_per_param / d.tp,
                   rates.gemm_flops_per_s, rates.hbm_bytes_per_s)
    return [ffn, static_op("launch", "dense_ffn", d), tp_allreduce_op(d, tokens)]


def moe_compute_ops(d: Deployment, rates: Rates, tokens: float) -> list[Op]:
    """Router, routed-expert GEMMs and the shared expert for ``tokens`` tokens per die.

    With dedicated shared-expert ranks the shared expert runs in parallel on other dies; only
    the time by which that rank is slower than the busiest routed rank is on the critical path.
    """
    m, wb = d.model, d.weight_bytes_per_param
    load = expert_load(d, tokens)
    router = roofline("router", 2 * m.router_params * tokens, m.router_params * HIGH_PRECISION_BYTES,
                      rates.bf16_flops_per_s, rates.hbm_bytes_per_s)
    routed = roofline("moe_gemm", 2 * m.expert_params * load.routed_pairs_max,
                      load.active_experts * m.expert_params * wb,
                      rates.gemm_flops_per_s, rates.hbm_bytes_per_s)
    if d.placement.num_shared_ranks:
        rank = roofline("shared_expert", 2 * m.expert_params * load.shared_tokens,
                        m.expert_params * wb, rates.gemm_flops_per_s, rates.hbm_bytes_per_s)
        shared = Op("shared_expert", max(0.0, rank.time_s - routed.time_s), rank.bound)
    else:
        n = m.num_shared_experts
        shared = roofline("shared_expert", 2 * m.expert_params * n * tokens,
                          n * m.expert_params * wb, rates.gemm_flops_per_s, rates.hbm_bytes_per_s)
    return [router, routed, shared, static_op("launch", "moe", d)]


def moe_network_ops(d: Deployment, tokens: float, phase: str) -> tuple[Op, Op]:
    """Dispatch and combine all-to-alls for ``tokens`` tokens per die (busiest of send/receive)
    with the ``phase``'s kernels ("decode": per-token messages; "prefill": bulk transfers)."""
    m, p = d.model, d.placement
    load = expert_load(d, tokens)
    copies = m.num_experts_per_tok + (m.num_shared_experts if p.num_shared_ranks else 0)
    pairs = max(tokens * copies, load.routed_pairs_max, load.shared_tokens)
    share = remote_nodes_per_token(d) / copies
    dispatch = all_to_all_s(d, phase, "dispatch", pairs * d.dispatch_msg_bytes, share)
    combine = all_to_all_s(d, phase, "combine", pairs * d.combine_msg_bytes, share)
    return Op("dispatch", dispatch, "network"), Op("combine", combine, "network")


def lm_head_op(d: Deployment, rates: Rates, tokens: float, part: str = "lm_head") -> Op:
    """Logits for ``tokens`` tokens (BF16 head, vocab split over ``tp``)."""
    params = d.model.embedding_params
    return roofline(part, 2 * params * tokens / d.tp, params * HIGH_PRECISION_BYTES / d.tp,
                    rates.bf16_flops_per_s, rates.hbm_bytes_per_s)


def mtp_proj_op(d: Deployment, rates: Rates, tokens: float) -> Op:
    """The MTP module's projection of [embedding; hidden] back to the hidden size."""
    params = 2 * d.model.hidden_size ** 2
    return roofline("mtp", 2 * params * tokens / d.tp, params * d.weight_bytes_per_param / d.tp,
                    rates.gemm_flops_per_s, rates.hbm_bytes_per_s)
