"""``Deployment``: one serving instance (a slice of devices) and how the model is laid out on it.

Parallelism is per die (the unit that owns HBM and cores): attention runs ``dp`` data-parallel
groups of ``tp`` dies each (``dp * tp == num_dies``); MoE layers run expert parallelism over
``ep`` dies (``num_dies / ep`` identical EP groups). Expert placement (redundant experts,
shared-expert copies) follows the paper's rules unless given explicitly; see ``placement``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

from supernode.hardware import HardwareSpec, load_hardware
from supernode.models import ModelSpec, load_model
from supernode.models.spec import dtype_bytes
from supernode.perf.calibration import Calibration, load_calibration

QUANTS = ("int8", "fp8", "bf16", "fp16")
#: Nodes whose host DRAM forms the EMS pool in the paper's evaluation: the 32 nodes of the
#: 256-NPU slice (calibration notes s3, P3 s5.1).
PAPER_EMS_POOL_NODES = 32


@dataclass(frozen=True)
class ExpertPlacement:
    """How experts sit on the ``ep`` ranks of one EP group.

    ``num_shared_ranks`` ranks hold only a shared-expert copy (decode EP320: 32); when it is 0
    every routed rank also runs the shared expert on its own tokens (prefill EP32).
    ``experts_per_rank`` routed-expert slots per routed rank, ``num_redundant_experts`` extra
    replicas of hot experts (EPLB).
    """

    num_routed_ranks: int
    num_shared_ranks: int
    num_redundant_experts: int
    experts_per_rank: int


@dataclass(frozen=True)
class Deployment:
    """One instance of ``model`` on ``num_devices`` devices of ``hardware``.

    ``quant`` is the weight/GEMM datatype (W8A8 for int8/fp8); ``kv_dtype`` the KV-cache
    datatype; ``mtp_tokens`` speculative tokens per step accepted with probability
    ``mtp_acceptance``; ``eplb`` is ``"default"`` (fitted skew plus routing statistics),
    ``"perfect"`` (no imbalance) or a float >= 1 (busiest / mean expert-rank load).
    ``calibration`` defaults to the shipped fit for the hardware.
    ``ep_buffer_tokens_per_die`` sizes the pre-allocated dispatch/combine buffers (P3 Eq. 1-2);
    ``hbm_reserve_fraction`` of HBM is kept for activations and the runtime.
    ``kv_block_tokens`` is the context cache's block size (P3 s4.4.2: 128-512 tokens) and
    ``ems_pool_nodes`` the nodes whose host DRAM backs the EMS pool; both price cache fetches.
    Weights that do not fit in HBM raise ValueError when ``strict_memory``; otherwise (small
    emulated instances of a big model) every Timing carries a ``memory:`` note saying so and
    ``kv_capacity_tokens`` clamps to a named floor (see ``memory.memory_budget``).
    """

    hardware: HardwareSpec
    model: ModelSpec
    num_devices: int
    dp: int
    tp: int
    ep: int
    quant: str = "int8"
    microbatch: bool = True
    mtp_tokens: int = 0
    mtp_acceptance: float = 0.7
    eplb: str | float = "default"
    kv_dtype: str = "bf16"
    calibration: Calibration | None = None
    num_redundant_experts: int | None = None
    num_shared_ranks: int | None = None
    ep_buffer_tokens_per_die: int = 96
    hbm_reserve_fraction: float = 0.08
    strict_memory: bool = False
    kv_block_tokens: int = 128
    ems_pool_nodes: int = PAPER_EMS_POOL_NODES

    def __hash__(self) -> int:
        # Cached: the model functions are memoised on (batch, deployment) and run every step.
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(tuple(getattr(self, f.name) for f in dataclasses.fields(self)))
            self.__dict__["_hash"] = cached
        return cached

    def __post_init__(self) -> None:
        if self.calibration is None:
            object.__setattr__(self, "calibration", load_calibration(self.hardware.name))
        _validate(self)

    @classmethod
    def build(cls, hardware: str | HardwareSpec = "ascend-910c",
              model: str | ModelSpec = "deepseek-r1", num_devices: int = 1, *,
              dp: int | None = None, tp: int | None = None, ep: int | None = None,
              **fields) -> Deployment:
        """Deployment from profile names. Defaults: ``tp = num_dies // dp`` (``dp`` defaults to
        all dies, ``tp`` to 1), ``ep`` = all dies for MoE models and 1 for dense ones."""
        hw = load_hardware(hardware) if isinstance(hardware, str) else hardware
        spec = load_model(model) if isinstance(model, str) else model
        num_dies = num_devices * hw.num_dies_per_device
        if dp is None:
            dp = num_dies // tp if tp else num_dies
        if tp is None:
            tp = max(1, num_dies // dp) if dp > 0 else 1
        if ep is None:
            ep = num_dies if spec.is_moe else 1
        return cls(hardware=hw, model=spec, num_devices=num_devices, dp=dp, tp=tp, ep=ep, **fields)

    def replace(self, **changes) -> Deployment:
        return dataclasses.replace(self, **changes)

    @property
    def num_dies(self) -> int:
        return self.num_devices * self.hardware.num_dies_per_device

    @functools.cached_property
    def weight_bytes_per_param(self) -> int:
        return dtype_bytes(self.quant)

    @functools.cached_property
    def dispatch_msg_bytes(self) -> int:
        """Bytes sent per token per expert in dispatch: 8-bit activations plus their scales as
        the hardware's kernels lay them out (P3 s4.2.1: 7,168 B + a 512 B slot on Ascend;
        DSV3 s3.3: 7,168 B + 56 FP32 tile scales on Hopper), or BF16 when not quantized."""
        h = self.model.hidden_size
        if self.weight_bytes_per_param == 1:
            return h + self.hardware.ep_paths.scale_bytes(h)
        return 2 * h

    @functools.cached_property
    def combine_msg_bytes(self) -> int:
        """Bytes returned per token per expert in combine (BF16: 14 KB for DeepSeek)."""
        return 2 * self.model.hidden_size

    @property
    def kv_shard(self) -> int:
        """Dies one request's KV is split over (MLA: every TP rank holds a full copy)."""
        return 1 if self.model.attention == "mla" else math.gcd(self.tp, self.model.num_kv_heads)

    @property
    def tokens_per_step(self) -> int:
        """Tokens each request feeds per decode iteration (1 + speculative)."""
        return 1 + self.mtp_tokens

    @functools.cached_property
    def tokens_per_request_step(self) -> float:
        """Expected tokens each request emits per decode iteration.

        Speculative tokens are accepted as a chain: draft ``i`` counts only if drafts 1..i-1
        did, each with probability ``mtp_acceptance`` = a, so the expectation is
        ``1 + a + a^2 + ... + a^k`` for ``k = mtp_tokens``.
        """
        return chained_tokens(self.mtp_tokens, self.mtp_acceptance)

    @functools.cached_property
    def placement(self) -> ExpertPlacement | None:
        """Expert layout of one EP group; ``None`` for dense models."""
        return _placement(self) if self.model.is_moe else None


def chained_tokens(mtp_tokens: int, acceptance: float) -> float:
    """``1 + a + ... + a^k``: tokens emitted per step when k drafts are accepted as a chain."""
    return sum(acceptance ** i for i in range(mtp_tokens + 1))


def _placement(d: Deployment) -> ExpertPlacement:
    m, ep = d.model, d.ep
    if ep == 1:
        return ExpertPlacement(1, 0, 0, m.num_routed_experts)
    extra = max(0, ep - m.num_routed_experts)
    shared = d.num_shared_ranks
    if shared is None:
        shared = extra // 2 if (extra and m.num_shared_experts) else 0
    routed_ranks = ep - shared
    redundant = d.num_redundant_experts
    if redundant is None:
        redundant = routed_ranks - m.num_routed_experts if extra else routed_ranks
    per_rank = math.ceil((m.num_routed_experts + redundant) / routed_ranks)
    return ExpertPlacement(routed_ranks, shared, redundant, per_rank)


def _validate(d: Deployment) -> None:
    m = d.model
    if d.num_devices < 1:
        raise ValueError(f"num_devices must be >= 1 (got {d.num_devices})")
    for name in ("dp", "tp", "ep"):
        if getattr(d, name) < 1:
            raise ValueError(f"{name} must be >= 1 (got {getattr(d, name)})")
    if d.dp > d.num_dies:
        raise ValueError(f"dp={d.dp} exceeds num_dies={d.num_dies}")
    if d.dp * d.tp != d.num_dies:
        raise ValueError(f"dp*tp must equal num_dies: {d.dp}*{d.tp} != {d.num_dies}")
    if d.num_dies % d.ep:
        raise ValueError(f"ep={d.ep} must divide num_dies={d.num_dies}")
    if not m.is_moe and d.ep != 1:
        raise ValueError(f"ep must be 1 for the dense model {m.name} (got {d.ep})")
    if d.quant not in QUANTS:
        raise ValueError(f"quant must be one of {QUANTS} (got {d.quant!r})")
    d.hardware.peak_flops(d.quant)  # raises if the datatype is not native on this hardware
    dtype_bytes(d.kv_dtype)
    if not 0 <= d.mtp_tokens <= 4:
        raise ValueError(f"mtp_tokens must be in [0, 4] (got {d.mtp_tokens})")
    if d.mtp_tokens and not m.num_mtp_layers:
        raise ValueError(f"mtp_tokens={d.mtp_tokens} but model {m.name} has no MTP module")
    if not 0 <= d.mtp_acceptance <= 1:
        raise ValueError(f"mtp_acceptance must be in [0, 1] (got {d.mtp_acceptance})")
    _validate_eplb(d.eplb)
    if not 0 <= d.hbm_reserve_fraction < 1:
        raise ValueError(f"hbm_reserve_fraction must be in [0, 1) (got {d.hbm_reserve_fraction})")
    if d.ep_buffer_tokens_per_die < 1:
        raise ValueError("ep_buffer_tokens_per_die must be >= 1")
    if d.kv_block_tokens < 1 or d.ems_pool_nodes < 1:
        raise ValueError(f"kv_block_tokens and ems_pool_nodes must be >= 1 "
                         f"(got {d.kv_block_tokens}, {d.ems_pool_nodes})")
    if m.is_moe:
        _validate_placement(d)
    if d.strict_memory:
        from supernode.perf.memory import memory_budget

        budget = memory_budget(d)
        if not budget.fits:
            raise ValueError(budget.reason)


def _validate_eplb(eplb: str | float) -> None:
    if isinstance(eplb, str):
        if eplb not in ("default", "perfect"):
            raise ValueError(f"eplb must be 'default', 'perfect' or a float >= 1 (got {eplb!r})")
    elif not (isinstance(eplb, (int, float)) and math.isfinite(eplb) and eplb >= 1):
        raise ValueError(f"eplb imbalance factor must be a finite float >= 1 (got {eplb!r})")


def _validate_placement(d: Deployment) -> None:
    p = _placement(d)
    if p.num_shared_ranks and not d.model.num_shared_experts:
        raise ValueError(f"num_shared_ranks={p.num_shared_ranks} but {d.model.name} has no shared expert")
    if p.num_routed_ranks < 1:
        raise ValueError(f"num_shared_ranks={p.num_shared_ranks} leaves no rank for routed experts")
    if p.num_redundant_experts < 0:
        raise ValueError(f"num_redundant_experts must be >= 0 (got {p.num_redundant_experts})")

