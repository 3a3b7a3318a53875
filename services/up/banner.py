"""What `supernode up` prints once the deployment is up."""

from __future__ import annotations

from pathlib import Path

from services.runtime.base import Runtime
from supernode.config import ClusterConfig
from supernode.deployment import check_memory, instance_deployment, served_models
from supernode.perf.load import load_time, model_image


def model_load_banner(config: ClusterConfig) -> str:
    """What `up` says about model loading: skipped, or where from and how long it takes."""
    load = config.model_load
    if not load.enabled:
        return ("model load: skipped (workers are ready at once; --model-load obs|dram|ems "
                "models cold and warm starts)")
    d = instance_deployment(config, "decode")
    alone = load_time(d, load.source).total_s
    line = (f"model load: from {load.source}; workers are 'loading' in /workers until their "
            f"load is over (one decode instance alone: {alone:,.1f} model s, "
            f"{alone / config.speedup:,.1f} wall s)")
    image = model_image(d).model_bytes
    if load.cache_in_ems and image > config.cache.capacity_bytes:
        line += (f"\nmodel load: EMS holds {config.cache.capacity_bytes / 1e9:,.0f} GB, less "
                 f"than the model ({image / 1e9:,.0f} GB): it will not be cached in EMS; raise "
                 f"cache.capacity_bytes to cache it")
    return line


def up_banner(config: ClusterConfig, runtime: Runtime, log_dir: Path, control_url: str,
              state_file: Path) -> list[str]:
    problems = check_memory(config)
    overcommitted = (f"  OVERCOMMITTED (--allow-overcommit): {'; '.join(problems)}"
                     if problems else "")
    return [
        f"supernode is up: {runtime.endpoint}/v1  "
        f"model: {', '.join(m.name for m in served_models(config))}  "
        f"({config.num_prefill} prefill x {config.prefill.num_devices} devices, "
        f"{config.num_decode} decode x {config.decode.num_devices} devices, "
        f"{config.hardware}, speedup {config.speedup}, runtime {runtime.name}){overcommitted}",
        f"logs: {log_dir}   Ctrl-C stops",
        model_load_banner(config),
        *runtime.banner(),
        f"control: {control_url} (token in {state_file}); `supernode scale decode=N` resizes "
        "a pool, `supernode autoscale` runs an autoscaler",
    ]
