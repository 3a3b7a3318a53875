"""Typed, frozen configuration of an emulated deployment, loadable from YAML.

One dataclass per component, nested under `ClusterConfig`. YAML keys equal field names; an
unknown key is an error naming it. `__post_init__` only validates. Units are in the names.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

Quant = Literal["int8", "bf16", "fp8"]
CacheBackend = Literal["memory", "redis"]
Plane = Literal["ub", "vpc"]
ModelLoadSource = Literal["skip", "obs", "dram", "ems"]

MODEL_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
"""A model version as it appears in ids (`<model>@<version>`) and keys: no '/' or '@'."""
MAX_MODEL_BLOCK_PAYLOAD_BYTES = 32 * 2**20
"""Largest payload of one model block (block_bytes x kv_payload_scale): one gRPC message."""


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
    hbm_utilization: float = 0.92
    """Share of each die's HBM the engine may use for weights, EP buffers and KV (vLLM's
    gpu_memory_utilization); the rest is kept for activations and the runtime. Lower it to
    shrink the KV cache."""

    def __post_init__(self) -> None:
        for name in ("num_devices", "dp", "tp", "ep", "max_num_batched_tokens_per_device",
                     "max_num_seqs_per_die"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.mtp_tokens < 0:
            raise ValueError(f"mtp_tokens must be >= 0, got {self.mtp_tokens}")
        if not 0.0 <= self.mtp_acceptance <= 1.0:
            raise ValueError(f"mtp_acceptance must be in [0, 1], got {self.mtp_acceptance}")
        if not 0.0 < self.hbm_utilization <= 1.0:
            raise ValueError(f"hbm_utilization must be in (0, 1], got {self.hbm_utilization}")


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
class ModelLoadConfig:
    """How workers get their weights when they start (docs/model-cache.md)."""

    source: ModelLoadSource = "skip"
    """Where the weights are when the deployment starts: 'skip' (workers are ready at once, no
    load is modelled), 'obs' (object storage only), 'dram' (a copy in every node's host DRAM)
    or 'ems' (cached in the EMS pool). A worker loads from EMS if the model is cached there,
    else from its nodes' DRAM if this is 'dram', else from OBS."""
    version: str = "v1"
    """Version in the model's id, `<model>@<version>`."""
    cache_in_ems: bool = True
    """A load not served by EMS stores the model's blocks in EMS for the next instance."""
    block_bytes: int = 1 << 30
    """Modelled bytes of one model block in EMS (an emulation choice: the paper gives none)."""
    dram_cache_models: int = 1
    """With source 'dram' (the local DRAM cache): models a node's host DRAM keeps, the ones its
    instance loaded last (LRU). 1 keeps the model the instance serves, the paper's "a copy in
    each node's DRAM"; no node DRAM size is published (calibration notes s8 item 2)."""
    prefetch: bool = False
    """EMS prefetches every served model from OBS when the run starts; a load of a model being
    prefetched waits for the prefetch, then reads EMS (the paper's cold start with EMS)."""

    def __post_init__(self) -> None:
        if self.block_bytes < 1:
            raise ValueError(f"model_load.block_bytes must be >= 1, got {self.block_bytes}")
        if self.dram_cache_models < 1:
            raise ValueError("model_load.dram_cache_models must be >= 1, got "
                             f"{self.dram_cache_models}")
        if self.prefetch and not self.cache_in_ems:
            raise ValueError("model_load.prefetch needs model_load.cache_in_ems")
        if self.source not in typing.get_args(ModelLoadSource):
            raise ValueError(f"model_load.source must be one of "
                             f"{typing.get_args(ModelLoadSource)}, got {self.source!r}")
        if self.source == "ems" and not self.cache_in_ems:
            raise ValueError("model_load.source 'ems' needs model_load.cache_in_ems")
        if not MODEL_VERSION.match(self.version):
            raise ValueError(f"model_load.version must match {MODEL_VERSION.pattern}, "
                             f"got {self.version!r}")

    @property
    def enabled(self) -> bool:
        """Whether workers model their load at all."""
        return self.source != "skip"


@dataclass(frozen=True)
class SchedulerConfig:
    """The global scheduler's limits, in model seconds (the live scheduler converts them with
    its clock's speedup, the simulator uses them as they are)."""

    admission_wait_s: float = 30.0
    """How long a request may wait for a decode instance with KV room."""
    admission_backoff_s: float = 0.01
    """First interval between decode-admission retries; it doubles up to the next field."""
    admission_backoff_max_s: float = 0.5
    """Largest interval between decode-admission retries."""
    max_failovers: int = 3
    """Worker losses a request survives; the next one ends it with an error."""
    failover_backoff_s: float = 0.02
    """Pause before the n-th failover attempt: this x 2^n, at most 0.5 s."""
    prefill_timeout_s: float = 600.0
    """Deadline of one prefill (queueing, compute and KV transfer included)."""
    ttft_slo_s: float = 5.0
    """Shed (HTTP 429 with Retry-After) a request whose predicted time to first token (the
    modelled work queued ahead of it for decode room and prefill, its own prefill and KV
    hand-off) exceeds this; 0: never shed on it."""
    max_num_waiting: int = 4096
    """Shed a request when this many are already waiting (for decode room or in a prefill
    queue); 0: no cap."""
    request_timeout_s: float = 0.0
    """Default per-request deadline: a request still waiting for its first token after this
    long ends with HTTP 408 / a stream error; 0: none. (The lifecycle takes a per-request
    deadline too; the HTTP API has no body field for it.)"""
    switch_policy: str = "lru"
    """Which instance switches to a served model no instance of a pool holds: 'lru' (the one
    routed to least recently) or 'least-loaded' (`supernode.lifecycle.switching`)."""
    model_wait_s: float = 600.0
    """How long a request may wait for an instance to switch to its model (a 671 GB load from
    OBS alone takes about 270 s); past it the request fails with 503."""

    def __post_init__(self) -> None:
        if not 0 < self.admission_backoff_s <= self.admission_backoff_max_s:
            raise ValueError("scheduler.admission_backoff_s must be > 0 and <= "
                             "admission_backoff_max_s")
        for name in ("admission_wait_s", "failover_backoff_s", "prefill_timeout_s",
                     "ttft_slo_s", "request_timeout_s", "model_wait_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"scheduler.{name} must be >= 0, got {getattr(self, name)}")
        if self.max_failovers < 0 or self.max_num_waiting < 0:
            raise ValueError("scheduler.max_failovers and max_num_waiting must be >= 0")


@dataclass(frozen=True)
class ApiConfig:
    """Limits of the OpenAI HTTP endpoint: what one request may cost before it is refused (4xx).

    Defaults hold every honest request to the largest shipped model (deepseek-r1: 163,840
    context tokens are about 1.2 MB as a JSON id list, about 0.7 MB as text)."""

    max_body_bytes: int = 4 * 2**20
    """Largest request body (413 beyond it, before it is read when Content-Length says so)."""
    max_json_depth: int = 32
    """Deepest nesting of arrays and objects in a request body (400 beyond it)."""
    max_json_objects: int = 16_384
    """Most JSON objects in a request body (400 beyond it): bounds what parsing and validation
    cost on the event loop (a chat message is one object; 16K tiny ones validate in ~30 ms)."""
    body_read_timeout_s: float = 30.0
    """Wall seconds to receive a whole request body (408 when a client sends it slower)."""
    max_stop_strings: int = 16
    """Stop strings per request (OpenAI allows 4; vLLM does not limit them)."""
    max_stop_string_chars: int = 256
    """Characters per stop string."""
    max_batch_prompts: int = 256
    """Prompts in one batched /v1/completions request."""
    max_n: int = 128
    """Choices per prompt (`n`, parallel sampling); each is a decode sequence, so a decode
    instance's batch cap also bounds it (400 beyond either)."""
    max_logprobs: int = 20
    """Most `logprobs` / `top_logprobs` alternatives per token (vLLM's default max_logprobs)."""
    max_tools: int = 128
    """Tool definitions per chat request (OpenAI's limit)."""
    inline_tokenize_chars: int = 16_384
    """Prompts up to this many characters are tokenized on the event loop; longer ones in a
    worker thread, so a huge prompt cannot stall other requests."""

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_json_depth", "max_json_objects", "max_stop_strings",
                     "max_stop_string_chars", "max_batch_prompts", "max_n", "max_tools"):
            if getattr(self, name) < 1:
                raise ValueError(f"api.{name} must be >= 1, got {getattr(self, name)}")
        if not self.body_read_timeout_s > 0:
            raise ValueError(f"api.body_read_timeout_s must be > 0, got {self.body_read_timeout_s}")
        if self.max_logprobs < 0 or self.inline_tokenize_chars < 0:
            raise ValueError("api.max_logprobs and api.inline_tokenize_chars must be >= 0")


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
    served_models: tuple[str, ...] = ()
    """Models served on the shared pools, each a model profile with an optional version,
    `profile[@version]` (default version: `model_load.version`); clients name one by the entry
    as written. Empty: just `model`. One entry's profile must be `model` (the primary model:
    the tokenizer's and the metrics'); every entry must fit the instance shapes. Instance i of
    each pool starts with entry i mod len (docs/model-cache.md)."""
    hardware: str = "ascend-910c"
    tokenizer_path: str | None = None
    """A local Hugging Face tokenizer.json; None: the model's own (DeepSeek's shipped BPE for
    deepseek-r1) or, for models without a shipped tokenizer, the built-in estimator."""
    prefill: InstanceConfig = field(
        default_factory=lambda: InstanceConfig(num_devices=16, dp=32, ep=32)
    )
    decode: InstanceConfig = field(
        default_factory=lambda: InstanceConfig(num_devices=160, dp=320, ep=320, mtp_tokens=1)
    )
    num_prefill: int = 1
    num_decode: int = 1
    cache: CacheConfig = field(default_factory=CacheConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    routing_policy: str = "least-loaded"
    speedup: float = 1.0
    """Model seconds per wall second (0.1: ten times slower than the modelled hardware)."""
    kv_payload_scale: float = 1e-3
    """Real bytes sent per modelled KV byte (the modelled time always uses the true size)."""
    kv_chunk_bytes: int = 1 << 20
    """Largest payload slice per gRPC message."""
    eos_probability: float = 0.002
    """Chance that a generated token is EOS when the request does not set ignore_eos."""
    delivery_lead_s: float = 0.02
    """Wall seconds the emulator sends a result (a prefill's KV and reply, a decode step's
    tokens) ahead of its modelled time; the receiver holds it until that time, so the
    emulator's own delivery latency up to this much is hidden instead of added."""
    arrival_grace_s: float = 0.01
    """Wall seconds a prefill instance waits past a batch's modelled start before packing it,
    so a request whose timeline puts it before the start, but whose RPC is still on the way,
    makes the batch as the model says (the batch's modelled start does not move)."""
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
    model_load: ModelLoadConfig = field(default_factory=ModelLoadConfig)
    allow_overcommit: bool = False
    """Run instances whose weights and minimum KV do not fit in HBM (timed as if they did)."""
    api: ApiConfig = field(default_factory=ApiConfig)

    def __post_init__(self) -> None:
        if self.num_prefill < 1 or self.num_decode < 1:
            raise ValueError("num_prefill and num_decode must be >= 1")
        if not self.speedup > 0:
            raise ValueError(f"speedup must be > 0, got {self.speedup}")
        if not 0 < self.kv_payload_scale <= 1:
            raise ValueError(f"kv_payload_scale must be in (0, 1], got {self.kv_payload_scale}")
        if not 0 <= self.eos_probability < 1:
            raise ValueError(f"eos_probability must be in [0, 1), got {self.eos_probability}")
        if not 0 <= self.delivery_lead_s <= 1:
            raise ValueError(f"delivery_lead_s must be in [0, 1], got {self.delivery_lead_s}")
        if not 0 <= self.arrival_grace_s <= 1:
            raise ValueError(f"arrival_grace_s must be in [0, 1], got {self.arrival_grace_s}")
        if self.worker_lease_s <= self.heartbeat_interval_s:
            raise ValueError("worker_lease_s must exceed heartbeat_interval_s")
        if self.drain_timeout_s < 0:
            raise ValueError(f"drain_timeout_s must be >= 0, got {self.drain_timeout_s}")
        self._check_served_models()
        block_payload = self.model_load.block_bytes * self.kv_payload_scale
        if self.model_load.enabled and block_payload > MAX_MODEL_BLOCK_PAYLOAD_BYTES:
            raise ValueError(
                f"model_load.block_bytes x kv_payload_scale = {block_payload:.0f} payload bytes "
                f"per model block exceeds {MAX_MODEL_BLOCK_PAYLOAD_BYTES}; lower either")

    def _check_served_models(self) -> None:
        entries = self.served_models
        if isinstance(entries, str) or not all(isinstance(e, str) for e in entries):
            raise ValueError(f"served_models must be a list of model names, got {entries!r}")
        if not entries:
            return
        if self.served_model_name is not None:
            raise ValueError("served_model_name names the single served model; with "
                             "served_models, each entry is its own name")
        if len(set(entries)) != len(entries):
            raise ValueError(f"served_models has duplicates: {list(entries)}")
        for entry in entries:
            profile, sep, version = entry.partition("@")
            if not profile or (sep and not MODEL_VERSION.match(version)):
                raise ValueError(f"served_models entry {entry!r} must be profile[@version], "
                                 f"the version matching {MODEL_VERSION.pattern}")
        if not any(e.partition("@")[0] == self.model for e in entries):
            raise ValueError(f"served_models {list(entries)} must include the model "
                             f"{self.model!r} (the primary model)")

    @property
    def model_name(self) -> str:
        """The primary model's name as clients use it in `model`."""
        if self.served_model_name:
            return self.served_model_name
        return next((e for e in self.served_models if e.partition("@")[0] == self.model),
                    self.model)


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
    for key in ("prefill", "decode", "cache", "scheduler", "ports", "model_load", "api"):
        if isinstance(data.get(key), dict):
            merged = dict(base[key])
            merged.update(data[key])
            data = {**data, key: merged}
    return from_dict(ClusterConfig, data)


