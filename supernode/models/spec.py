"""Model architecture specifications: parameter and FLOP counts derived from public configs.

All counts are per token and per layer unless the name says otherwise; ``*_params`` are
parameter counts (multiply by bytes per weight for bytes), ``*_flops*`` count a multiply-add
as 2 FLOPs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

#: Bytes per element of each supported datatype.
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of ``dtype``; ValueError naming the datatype if unknown."""
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(DTYPE_BYTES)}") from None


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer, dense or MoE, with MLA or GQA attention.

    Dense layers come first (``num_dense_layers``), the rest are MoE layers when
    ``num_routed_experts > 0``. MLA dimensions are zero for GQA models. Group-limited routing
    (DeepSeek-V3) splits the routed experts into ``num_expert_groups`` groups and routes each
    token within its best ``num_limited_groups`` of them; 0 means unrestricted top-k.
    """

    name: str
    attention: str
    num_layers: int
    num_dense_layers: int
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_context_len: int
    num_routed_experts: int = 0
    num_experts_per_tok: int = 0
    num_shared_experts: int = 0
    moe_intermediate_size: int = 0
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    num_mtp_layers: int = 0
    tie_word_embeddings: bool = False
    num_expert_groups: int = 0
    num_limited_groups: int = 0

    def __post_init__(self) -> None:
        if self.attention not in ("mla", "gqa"):
            raise ValueError(f"model {self.name}: attention must be 'mla' or 'gqa'")
        if not 0 <= self.num_dense_layers <= self.num_layers:
            raise ValueError(f"model {self.name}: num_dense_layers out of range")
        if self.num_routed_experts and not 0 < self.num_experts_per_tok <= self.num_routed_experts:
            raise ValueError(f"model {self.name}: num_experts_per_tok out of range")
        if self.attention == "mla" and not (self.kv_lora_rank and self.v_head_dim):
            raise ValueError(f"model {self.name}: MLA needs kv_lora_rank and v_head_dim")
        if self.attention == "gqa" and self.num_attention_heads % self.num_kv_heads:
            raise ValueError(f"model {self.name}: num_kv_heads must divide num_attention_heads")
        if not 0 <= self.num_limited_groups <= self.num_expert_groups:
            raise ValueError(f"model {self.name}: num_limited_groups must be in "
                             f"[0, num_expert_groups]")

    # ---- structure -------------------------------------------------------------------
    @functools.cached_property
    def is_moe(self) -> bool:
        return self.num_routed_experts > 0

    @functools.cached_property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.num_dense_layers if self.is_moe else 0

    # ---- KV cache --------------------------------------------------------------------
    @functools.cached_property
    def kv_elems_per_token_per_layer(self) -> int:
        """Cached elements per token per layer: MLA latent + RoPE key, or GQA K and V."""
        if self.attention == "mla":
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.num_kv_heads * self.head_dim

    def kv_bytes_per_token(self, kv_dtype: str = "bf16") -> int:
        """KV-cache bytes per token over the main layers (the MTP layer's KV is extra)."""
        return self.kv_elems_per_token_per_layer * dtype_bytes(kv_dtype) * self.num_layers

    # ---- parameters ------------------------------------------------------------------
    @functools.cached_property
    def attention_params(self) -> int:
        """Projection weights of one attention layer (Q, K/V, output; MLA incl. low-rank)."""
        h, heads = self.hidden_size, self.num_attention_heads
        if self.attention == "gqa":
            return 2 * h * heads * self.head_dim + 2 * h * self.num_kv_heads * self.head_dim
        qk_dim = self.qk_nope_head_dim + self.qk_rope_head_dim
        q = (h * self.q_lora_rank + self.q_lora_rank * heads * qk_dim if self.q_lora_rank
             else h * heads * qk_dim)
        kv_a = h * (self.kv_lora_rank + self.qk_rope_head_dim)
        kv_b = self.kv_lora_rank * heads * (self.qk_nope_head_dim + self.v_head_dim)
        return q + kv_a + kv_b + heads * self.v_head_dim * h

    @functools.cached_property
    def dense_ffn_params(self) -> int:
        """Gated FFN of one dense layer (gate, up, down)."""
        return 3 * self.hidden_size * self.intermediate_size

    @functools.cached_property
    def expert_params(self) -> int:
        """One routed or shared expert (gate, up, down)."""
        return 3 * self.hidden_size * self.moe_intermediate_size

    @functools.cached_property
    def router_params(self) -> int:
        return self.hidden_size * self.num_routed_experts

    @functools.cached_property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @functools.cached_property
    def moe_layer_expert_params(self) -> int:
        """All experts (routed + shared) of one MoE layer."""
        return (self.num_routed_experts + self.num_shared_experts) * self.expert_params

    @property
    def mtp_layer_params(self) -> int:
        """One MTP module: projection of [embedding; hidden] plus one full decoder layer."""
        ffn = (self.moe_layer_expert_params + self.router_params if self.is_moe
               else self.dense_ffn_params)
        return 2 * self.hidden_size * self.hidden_size + self.attention_params + ffn

    @property
    def total_params(self) -> int:
        """All main-model parameters (embedding and head included, MTP excluded)."""
        dense = self.num_dense_layers * self.dense_ffn_params if self.is_moe else (
            self.num_layers * self.dense_ffn_params)
        moe = self.num_moe_layers * (self.moe_layer_expert_params + self.router_params)
        head = 0 if self.tie_word_embeddings else self.embedding_params
        return self.num_layers * self.attention_params + dense + moe + self.embedding_params + head

    @property
    def activated_params_per_token(self) -> int:
        """Parameters one token touches in the main model (embedding and head included)."""
        active_experts = self.num_experts_per_tok + self.num_shared_experts
        moe = self.num_moe_layers * (active_experts * self.expert_params + self.router_params)
        dense = (self.num_dense_layers if self.is_moe else self.num_layers) * self.dense_ffn_params
        return self.num_layers * self.attention_params + dense + moe + 2 * self.embedding_params

    # ---- attention FLOPs -------------------------------------------------------------
    def attention_flops_per_key(self, absorbed: bool) -> int:
        """Score + value FLOPs for one query token against one cached key, one layer.

        ``absorbed`` is MLA's decode form (scores and values in the 512-d latent space);
        otherwise MLA runs as MHA over up-projected K/V (prefill).
        """
        heads = self.num_attention_heads
        if self.attention == "gqa":
            return 2 * heads * 2 * self.head_dim
        if absorbed:
            return 2 * heads * (2 * self.kv_lora_rank + self.qk_rope_head_dim)
        return 2 * heads * (self.qk_nope_head_dim + self.qk_rope_head_dim + self.v_head_dim)

    def attention_io_elems_per_query(self, absorbed: bool) -> int:
        """Elements the attention kernel reads and writes per query token besides the KV: its
        query (every head) and its output (every head), one layer."""
        heads = self.num_attention_heads
        if self.attention == "gqa":
            return heads * 2 * self.head_dim
        if absorbed:
            return heads * (2 * self.kv_lora_rank + self.qk_rope_head_dim)
        return heads * (self.qk_nope_head_dim + self.qk_rope_head_dim + self.v_head_dim)
