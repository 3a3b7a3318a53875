"""From a cluster config to the hardware model's view of one prefill or decode instance."""

from __future__ import annotations

from typing import Literal

from supernode.config import ClusterConfig, InstanceConfig
from supernode.perf import Deployment

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
