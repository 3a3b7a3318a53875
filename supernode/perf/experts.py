"""Expert-parallel load: tokens on the busiest rank after top-k routing, and EPLB imbalance.

Imbalance is ``busiest / mean`` routed load of a rank. With ``eplb="default"`` it is the
fitted systematic skew times a statistical term: routing ``lam`` token-expert pairs per rank
over ``n`` ranks, the busiest rank gets about ``lam + sqrt(2 lam ln n)`` (the Gaussian
extreme of a Poisson load), so imbalance grows as batches shrink.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from supernode.perf.deployment import Deployment


@dataclass(frozen=True)
class ExpertLoad:
    """Per-layer load of one EP group for ``tokens_per_die`` tokens on each of its dies.

    ``routed_pairs_max``: token-expert pairs on the busiest routed rank; ``active_experts``:
    expected experts on that rank with at least one token (whose weights must be read);
    ``shared_tokens``: tokens on a dedicated shared-expert rank (0 when replicated);
    ``imbalance``: busiest / mean routed load.
    """

    routed_pairs_max: float
    active_experts: float
    shared_tokens: float
    imbalance: float


SKEW_REFERENCE_REDUNDANT_EXPERTS = 32
"""Redundant experts of the deployments the default-EPLB skew was fitted on: 32 in both the
prefill (EP32) and the decode (EP320) instances (calibration notes s3, P3 s4.1, s5.1)."""


def systematic_skew(d: Deployment) -> float:
    """The fitted default-EPLB skew, adjusted for the deployment's redundant experts.

    Replicas of hot experts spread their excess load: the excess over a perfect balance
    scales with routed / (routed + redundant) experts, anchored so that the paper's 32
    redundant experts give the fitted value. More redundancy never makes the skew worse."""
    routed = d.model.num_routed_experts
    redundant = d.placement.num_redundant_experts
    excess = d.calibration.eplb_default_skew - 1
    return 1 + excess * (routed + SKEW_REFERENCE_REDUNDANT_EXPERTS) / (routed + redundant)


def imbalance_factor(d: Deployment, mean_pairs_per_rank: float, num_ranks: int) -> float:
    """Busiest / mean routed-rank load for the deployment's EPLB setting."""
    if num_ranks == 1 or d.eplb == "perfect":
        return 1.0
    if d.eplb != "default":
        return float(d.eplb)
    statistical = 1 + math.sqrt(2 * math.log(num_ranks) / mean_pairs_per_rank)
    return systematic_skew(d) * statistical


@functools.lru_cache(maxsize=8192)
def expert_load(d: Deployment, tokens_per_die: float) -> ExpertLoad:
    """Load of the busiest routed rank and of a shared rank, one MoE layer."""
    p, m = d.placement, d.model
    group_tokens = tokens_per_die * d.ep
    mean_pairs = group_tokens * m.num_experts_per_tok / p.num_routed_ranks
    imbalance = imbalance_factor(d, mean_pairs, p.num_routed_ranks)
    cap = group_tokens * min(m.num_experts_per_tok, p.experts_per_rank)
    pairs_max = min(mean_pairs * imbalance, cap)
    slots = p.experts_per_rank
    active = slots * -math.expm1(-pairs_max / slots)
    shared = group_tokens * m.num_shared_experts / p.num_shared_ranks if p.num_shared_ranks else 0.0
    return ExpertLoad(pairs_max, active, shared, pairs_max / mean_pairs)


@functools.lru_cache(maxsize=1024)
def remote_nodes_per_token(d: Deployment) -> float:
    """Expected scale-up domains (nodes), other than the sender's, that one token's routed
    experts sit on: what a node-deduplicating all-to-all sends over the scale-out plane.

    The ``ep`` ranks fill nodes of ``scale_up_domain_devices`` devices. Group-limited routing
    lets a token reach at most ``num_limited_groups`` expert groups, each spread over
    ``nodes / num_expert_groups`` nodes (at least one); within its reach, each of the top-k
    experts lands on a uniformly random node, so ``reach * (1 - (1 - 1/reach)^k)`` nodes are
    hit on average.
    """
    hw, m = d.hardware, d.model
    nodes = d.ep / (hw.scale_up_domain_devices * hw.num_dies_per_device)
    if nodes <= 1:
        return 0.0
    reach = nodes
    if m.num_limited_groups:
        reach = min(nodes, m.num_limited_groups * max(1.0, nodes / m.num_expert_groups))
    hit = reach * -math.expm1(m.num_experts_per_tok * math.log1p(-1 / reach))
    return hit * (nodes - 1) / nodes
