"""From a cluster config to the hardware model's view of one prefill or decode instance."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from supernode.config import ClusterConfig, InstanceConfig
from supernode.engine.decode import DecodeEngine, DecodeParams
from supernode.perf import Deployment, kv_capacity_tokens, memory_budget
from supernode.perf.memory import kv_bytes_per_token_per_die
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


@dataclass(frozen=True)
class ServedModel:
    """One model the deployment serves: the name clients use, its profile and its version."""

    name: str
    profile: str
    version: str

    @property
    def model_id(self) -> str:
        """The versioned id, `<profile>@<version>` (EMS keys its blocks by it)."""
        return f"{self.profile}@{self.version}"


def served_models(config: ClusterConfig) -> tuple[ServedModel, ...]:
    """The served models in config order (`served_models`, or just the primary model)."""
    if not config.served_models:
        return (ServedModel(config.model_name, config.model, config.model_load.version),)
    models = []
    for entry in config.served_models:
        profile, _, version = entry.partition("@")
        models.append(ServedModel(entry, profile, version or config.model_load.version))
    return tuple(models)


def check_deployment(config: ClusterConfig) -> None:
    """Raise ValueError (or KeyError for an unknown profile) when `config` cannot run: an
    unknown routing or switch policy, or an instance the hardware model rejects with any of
    the served models."""
    from supernode.lifecycle.switching import make_switch_policy

    make_policy(config.routing_policy)
    make_switch_policy(config.scheduler.switch_policy)
    for model in served_models(config):
        for role in ("prefill", "decode"):
            try:
                instance_deployment(config, role, model.profile)
            except ValueError as e:
                raise ValueError(f"served model {model.name!r} on the {role} instances: "
                                 f"{e}") from None


def instance_config(config: ClusterConfig, role: Role) -> InstanceConfig:
    return config.prefill if role == "prefill" else config.decode


def instance_deployment(config: ClusterConfig, role: Role, model: str | None = None
                        ) -> Deployment:
    """The Deployment (hardware, model, parallelism) of one `role` instance of `config`
    holding model profile `model` (default: the primary model)."""
    inst = instance_config(config, role)
    return Deployment.build(
        hardware=config.hardware, model=model or config.model, num_devices=inst.num_devices,
        dp=inst.dp, tp=inst.tp, ep=inst.ep, quant=inst.quant, microbatch=inst.microbatch,
        mtp_tokens=inst.mtp_tokens if role == "decode" else 0,
        mtp_acceptance=inst.mtp_acceptance, eplb=parse_eplb(inst.eplb),
        hbm_reserve_fraction=1.0 - inst.hbm_utilization,
        kv_block_tokens=config.cache.block_size, ems_pool_nodes=pool_nodes(config),
    )


def pool_nodes(config: ClusterConfig) -> int:
    """Nodes whose host DRAM backs the EMS pool: every node of the deployment (P3 s5.1: the
    DRAM of all prefill and decode nodes joins one pool)."""
    from supernode.hardware import load_hardware

    per_node = load_hardware(config.hardware).num_devices_per_node
    devices = (config.num_prefill * config.prefill.num_devices
               + config.num_decode * config.decode.num_devices)
    return max(1, math.ceil(devices / per_node))


def check_memory(config: ClusterConfig) -> list[str]:
    """Problems that keep `config`'s instances from holding their weights and minimum KV in HBM
    (empty when everything fits). A prefill instance must hold one full batch's KV
    (``max_num_batched_tokens_per_device`` per device, spread over its DP groups); a decode
    instance one request of the model's maximum context per DP group (the rule vLLM applies
    at start-up). Each problem names the instance, what one die needs and what it has.
    """
    problems = []
    profiles = dict.fromkeys(m.profile for m in served_models(config))
    for role, profile in ((r, p) for p in profiles for r in ("prefill", "decode")):
        d = instance_deployment(config, role, profile)
        min_kv_tokens = (math.ceil(prefill_token_budget(config, d) / d.dp) if role == "prefill"
                         else d.model.max_context_len)
        budget = memory_budget(d)
        kv_bytes = min_kv_tokens * kv_bytes_per_token_per_die(d)
        need = budget.weight_bytes + budget.ep_buffer_bytes + budget.reserve_bytes + kv_bytes
        if need > budget.hbm_bytes:
            inst = instance_config(config, role)
            holding = "" if profile == config.model else f" holding {profile}"
            problems.append(
                f"{role} instance{holding} ({inst.num_devices} x {config.hardware}, dp={d.dp} tp={d.tp} "
                f"ep={d.ep}, {d.quant}) needs {need / 2**30:.1f} GiB of HBM per die (weights "
                f"{budget.weight_bytes / 2**30:.1f} GiB, EP buffers "
                f"{budget.ep_buffer_bytes / 2**30:.1f} GiB, reserve "
                f"{budget.reserve_bytes / 2**30:.1f} GiB, KV for {min_kv_tokens:,} tokens "
                f"{kv_bytes / 2**30:.1f} GiB) but a die has {budget.hbm_bytes / 2**30:.0f} GiB")
    return problems


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


def overcommit_message(problems: list[str]) -> str:
    """The refusal printed when ``check_memory`` found problems and overcommit is not allowed."""
    lines = "\n".join(f"  - {p}" for p in problems)
    return (f"the deployment does not fit in HBM:\n{lines}\npass --allow-overcommit (or set "
            f"allow_overcommit: true) to run it anyway, timed as if it fit")
