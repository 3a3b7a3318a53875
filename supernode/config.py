"""Typed, frozen configuration of an emulated deployment, loadable from YAML.

One dataclass per component, nested under `ClusterConfig`. YAML keys equal field names; an
unknown key is an error naming it. `__post_init__` only validates. Units are in the names.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

Quant = Literal["int8", "bf16", "fp8"]
CacheBackend = Literal["memory", "redis"]
Plane = Literal["ub", "vpc"]


@dataclass(frozen=True)
class InstanceConfig:
    """The emulated hardware slice of one prefill or decode instance."""

    num_devices: int
    """NPUs (or GPUs) in the instance."""
    dp: int = 1
    """Attention data-parallel degree."""
    tp: int = 1
    """Attention tensor-parallel degree."""
    ep: int = 1
    """Expert-parallel degree (ranks the routed experts are spread over)."""
    quant: Quant = "int8"
    microbatch: bool = True
    """Two-microbatch pipelining."""
    mtp_tokens: int = 0
    """Speculative (MTP) tokens per decode step."""
    mtp_acceptance: float = 0.7
    """Probability that a speculative token is accepted."""
    eplb: str = "default"
    """Expert load balance: 'perfect', 'default' or an imbalance factor >= 1 as text."""
    max_num_batched_tokens_per_device: int = 16_384
    """Prefill: prompt tokens packed into one batch, per device."""
    max_num_seqs_per_die: int = 48
    """Decode: running requests per die (96 tokens per die with one MTP token)."""

    def __post_init__(self) -> None:
        for name in ("num_devices", "dp", "tp", "ep", "max_num_batched_tokens_per_device",
                     "max_num_seqs_per_die"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.mtp_tokens < 0:
            raise ValueError(f"mtp_tokens must be >= 0, got {self.mtp_tokens}")
        if not 0.0 <= self.mtp_acceptance <= 1.0:
            raise ValueError(f"mtp_acceptance must be in [0, 1], got {self.mtp_acceptance}")


@dataclass(frozen=True)
class CacheConfig:
    """The EMS prefix cache."""

    enabled: bool = True
    block_size: int = 128
    """Tokens per cached block (the paper uses 128-512)."""
    backend: CacheBackend = "memory"
    redis_url: str | None = None
    capacity_bytes: int = 64 * 2**30
    """Modelled KV bytes (true sizes) the EMS pool holds before LRU eviction."""
    namespace_capacity_bytes: int = 0
    """Per-namespace cap in modelled KV bytes; 0 means no cap below the overall one."""
    plane: Plane = "ub"
    """How prefill reaches the EMS DRAM pool: the UB plane or the VPC fallback."""
    store_decode_kv: bool = False
    """Store decode-generated KV too (off for reasoning models, as in the paper)."""
    lookup_timeout_s: float = 0.5
    """Wall seconds a cache RPC may take before prefill goes on without the cache."""
    breaker_failure_threshold: int = 3
    """Consecutive failed or timed-out EMS calls that open prefill's circuit breaker: while
    open, prefill runs without the cache at once instead of waiting for each timeout."""
    breaker_open_s: float = 1.0
    """Wall seconds the breaker stays open before it probes EMS; doubles after each failed
    probe, up to `breaker_max_open_s`."""
    breaker_max_open_s: float = 30.0
    """Longest wall wait between probes of an unreachable EMS."""

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")
        if self.breaker_failure_threshold < 1:
            raise ValueError("breaker_failure_threshold must be >= 1, got "
                             f"{self.breaker_failure_threshold}")
        if not 0 < self.breaker_open_s <= self.breaker_max_open_s:
            raise ValueError("need 0 < breaker_open_s <= breaker_max_open_s, got "
                             f"{self.breaker_open_s} and {self.breaker_max_open_s}")
        if self.backend == "redis" and not self.redis_url:
            raise ValueError("backend 'redis' needs redis_url")


@dataclass(frozen=True)
class PortsConfig:
    """Where `supernode up` puts each process (0: pick a free port)."""

    host: str = "127.0.0.1"
    http: int = 8000
    scheduler_grpc: int = 0
    ems_grpc: int = 0

    def __post_init__(self) -> None:
        for name in ("http", "scheduler_grpc", "ems_grpc"):
            port, lowest = getattr(self, name), 1 if name == "http" else 0
            if not isinstance(port, int) or not lowest <= port <= 65535:
                raise ValueError(f"ports.{name} must be a TCP port in {lowest}..65535, "
                                 f"got {port!r}")


@dataclass(frozen=True)
class ClusterConfig:
    """A whole emulated deployment: model, hardware, pools, cache, timing."""

    model: str = "deepseek-r1"
    """Model profile name; also the served model name unless `served_model_name` is set."""
    served_model_name: str | None = None
    hardware: str = "ascend-910c"
    tokenizer_path: str | None = None
    """A local Hugging Face tokenizer.json; None uses the built-in deterministic tokenizer."""
    prefill: InstanceConfig = field(
        default_factory=lambda: InstanceConfig(num_devices=16, dp=32, ep=32)
    )
    decode: InstanceConfig = field(
        default_factory=lambda: InstanceConfig(num_devices=160, dp=320, ep=320, mtp_tokens=1)
    )
    num_prefill: int = 1
    num_decode: int = 1
    cache: CacheConfig = field(default_factory=CacheConfig)
    routing_policy: str = "least-loaded"
    speedup: float = 1.0
    """Model seconds per wall second (0.1: ten times slower than the modelled hardware)."""
    kv_payload_scale: float = 1e-3
    """Real bytes sent per modelled KV byte (the modelled time always uses the true size)."""
    kv_chunk_bytes: int = 1 << 20
    """Largest payload slice per gRPC message."""
    eos_probability: float = 0.002
    """Chance that a generated token is EOS when the request does not set ignore_eos."""
    heartbeat_interval_s: float = 0.5
    """Wall seconds between worker heartbeats."""
    worker_lease_s: float = 3.0
    """Wall seconds without a heartbeat before a worker leaves routing."""
    drain_timeout_s: float = 20.0
    """Wall seconds a stopping worker (SIGTERM) lets its running requests finish after it
    leaves routing; what still runs then fails over. Wall, not model, seconds: container stop
    grace periods are wall time and must exceed it (at speedup 0.1 requests take ten times
    longer, so raise it with them)."""
    ports: PortsConfig = field(default_factory=PortsConfig)

    def __post_init__(self) -> None:
        if self.num_prefill < 1 or self.num_decode < 1:
            raise ValueError("num_prefill and num_decode must be >= 1")
        if not self.speedup > 0:
            raise ValueError(f"speedup must be > 0, got {self.speedup}")
        if not 0 < self.kv_payload_scale <= 1:
            raise ValueError(f"kv_payload_scale must be in (0, 1], got {self.kv_payload_scale}")
        if not 0 <= self.eos_probability < 1:
            raise ValueError(f"eos_probability must be in [0, 1), got {self.eos_probability}")
        if self.worker_lease_s <= self.heartbeat_interval_s:
            raise ValueError("worker_lease_s must exceed heartbeat_interval_s")
        if self.drain_timeout_s < 0:
            raise ValueError(f"drain_timeout_s must be >= 0, got {self.drain_timeout_s}")

    @property
    def model_name(self) -> str:
        """The name clients use in `model`."""
        return self.served_model_name or self.model


T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from a nested dict; unknown keys raise ValueError naming them."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(where + k for k in unknown)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            kwargs[name] = from_dict(hint, value, f"{where}{name}.")  # type: ignore[arg-type]
        else:
            kwargs[name] = value
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ClusterConfig:
    """Read a YAML config (or the embedded default) and apply dotted-key overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text())
        data = loaded or {}
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return _merge_defaults(data)


def _merge_defaults(data: dict[str, Any]) -> ClusterConfig:
    base = to_dict(ClusterConfig())
    for key in ("prefill", "decode", "cache", "ports"):
        if isinstance(data.get(key), dict):
            merged = dict(base[key])
            merged.update(data[key])
            data = {**data, key: merged}
    return from_dict(ClusterConfig, data)


