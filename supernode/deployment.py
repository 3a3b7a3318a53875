"""From a cluster config to the hardware model's view of one prefill or decode instance."""

from __future__ import annotations

from typing import Literal

from supernode.config import ClusterConfig, InstanceConfig
from supernode.engine.decode import DecodeEngine, DecodeParams
from supernode.perf import Deployment, kv_capacity_tokens
from supernode.policy import make_policy

Role = Literal["prefill", "decode"]


def parse_eplb(text: str) -> str | float:
    """'perfect' | 'default' | an imbalance factor >= 1 given as text."""
    if text in ("perfect", "default"):
        return text
    try:
        factor = float(text)
    except ValueError:
        raise ValueError(f"eplb must be 'perfect', 'default' or a number >= 1, got {text!r}") from None
    if factor < 1:
        raise ValueError(f"eplb imbalance factor must be >= 1, got {factor}")
    return factor


def check_deployment(config: ClusterConfig) -> None:
    """Raise ValueError (or KeyError for an unknown profile) when `config` cannot run: an
    unknown routing policy, or an instance the hardware model rejects."""
    make_policy(config.routing_policy)
    instance_deployment(config, "prefill")
    instance_deployment(config, "decode")


def instance_config(config: ClusterConfig, role: Role) -> InstanceConfig:
    return config.prefill if role == "prefill" else config.decode


def instance_deployment(config: ClusterConfig, role: Role) -> Deployment:
    """The Deployment (hardware, model, parallelism) of one `role` instance of `config`."""
    inst = instance_config(config, role)
    return Deployment.build(
        hardware=config.hardware, model=config.model, num_devices=inst.num_devices,
        dp=inst.dp, tp=inst.tp, ep=inst.ep, quant=inst.quant, microbatch=inst.microbatch,
        mtp_tokens=inst.mtp_tokens if role == "decode" else 0,
        mtp_acceptance=inst.mtp_acceptance, eplb=parse_eplb(inst.eplb),
    )


def prefill_token_budget(config: ClusterConfig, deployment: Deployment) -> int:
    """Prompt tokens one prefill batch of the instance may pack."""
    return config.prefill.max_num_batched_tokens_per_device * deployment.num_devices


def build_decode_engine(config: ClusterConfig, deployment: Deployment) -> DecodeEngine:
    """The decode instance's engine: batch cap per die x dies, KV capacity from the model."""
    inst = config.decode
    params = DecodeParams(mtp_tokens=inst.mtp_tokens, mtp_acceptance=inst.mtp_acceptance,
                          eos_probability=config.eos_probability)
    return DecodeEngine(inst.max_num_seqs_per_die * deployment.num_dies,
                        kv_capacity_tokens(deployment), params)
