from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER_KIND_UNSPECIFIED: _ClassVar[WorkerKind]
    WORKER_KIND_PREFILL: _ClassVar[WorkerKind]
    WORKER_KIND_DECODE: _ClassVar[WorkerKind]
    WORKER_KIND_EMS: _ClassVar[WorkerKind]

class WorkerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER_STATE_UNSPECIFIED: _ClassVar[WorkerState]
    WORKER_STATE_LOADING: _ClassVar[WorkerState]
    WORKER_STATE_READY: _ClassVar[WorkerState]

class FaultKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAULT_KIND_UNSPECIFIED: _ClassVar[FaultKind]
    FAULT_KIND_DEGRADE_LINK: _ClassVar[FaultKind]
    FAULT_KIND_STALL_WORKER: _ClassVar[FaultKind]
    FAULT_KIND_KILL_WORKER: _ClassVar[FaultKind]
    FAULT_KIND_EMS_UNREACHABLE: _ClassVar[FaultKind]

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_STOP: _ClassVar[FinishReason]
    FINISH_REASON_LENGTH: _ClassVar[FinishReason]
    FINISH_REASON_ABORT: _ClassVar[FinishReason]
WORKER_KIND_UNSPECIFIED: WorkerKind
WORKER_KIND_PREFILL: WorkerKind
WORKER_KIND_DECODE: WorkerKind
WORKER_KIND_EMS: WorkerKind
WORKER_STATE_UNSPECIFIED: WorkerState
WORKER_STATE_LOADING: WorkerState
WORKER_STATE_READY: WorkerState
FAULT_KIND_UNSPECIFIED: FaultKind
FAULT_KIND_DEGRADE_LINK: FaultKind
FAULT_KIND_STALL_WORKER: FaultKind
FAULT_KIND_KILL_WORKER: FaultKind
FAULT_KIND_EMS_UNREACHABLE: FaultKind
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_STOP: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_ABORT: FinishReason

class InstanceShape(_message.Message):
    __slots__ = ("hardware", "model", "num_devices", "num_dies", "dp", "tp", "ep", "quant", "microbatch", "mtp_tokens", "mtp_acceptance")
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    NUM_DEVICES_FIELD_NUMBER: _ClassVar[int]
    NUM_DIES_FIELD_NUMBER: _ClassVar[int]
    DP_FIELD_NUMBER: _ClassVar[int]
    TP_FIELD_NUMBER: _ClassVar[int]
    EP_FIELD_NUMBER: _ClassVar[int]
    QUANT_FIELD_NUMBER: _ClassVar[int]
    MICROBATCH_FIELD_NUMBER: _ClassVar[int]
    MTP_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MTP_ACCEPTANCE_FIELD_NUMBER: _ClassVar[int]
    hardware: str
    model: str
    num_devices: int
    num_dies: int
    dp: int
    tp: int
    ep: int
    quant: str
    microbatch: bool
    mtp_tokens: int
    mtp_acceptance: float
    def __init__(self, hardware: _Optional[str] = ..., model: _Optional[str] = ..., num_devices: _Optional[int] = ..., num_dies: _Optional[int] = ..., dp: _Optional[int] = ..., tp: _Optional[int] = ..., ep: _Optional[int] = ..., quant: _Optional[str] = ..., microbatch: _Optional[bool] = ..., mtp_tokens: _Optional[int] = ..., mtp_acceptance: _Optional[float] = ...) -> None: ...

class Capacity(_message.Message):
    __slots__ = ("kv_capacity_tokens", "max_num_seqs", "max_num_batched_tokens")
    KV_CAPACITY_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_NUM_SEQS_FIELD_NUMBER: _ClassVar[int]
    MAX_NUM_BATCHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    kv_capacity_tokens: int
    max_num_seqs: int
    max_num_batched_tokens: int
    def __init__(self, kv_capacity_tokens: _Optional[int] = ..., max_num_seqs: _Optional[int] = ..., max_num_batched_tokens: _Optional[int] = ...) -> None: ...

class Load(_message.Message):
    __slots__ = ("num_running", "num_waiting", "kv_used_tokens", "num_queued_tokens", "busy_fraction")
    NUM_RUNNING_FIELD_NUMBER: _ClassVar[int]
    NUM_WAITING_FIELD_NUMBER: _ClassVar[int]
    KV_USED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NUM_QUEUED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    BUSY_FRACTION_FIELD_NUMBER: _ClassVar[int]
    num_running: int
    num_waiting: int
    kv_used_tokens: int
    num_queued_tokens: int
    busy_fraction: float
    def __init__(self, num_running: _Optional[int] = ..., num_waiting: _Optional[int] = ..., kv_used_tokens: _Optional[int] = ..., num_queued_tokens: _Optional[int] = ..., busy_fraction: _Optional[float] = ...) -> None: ...

class ModelLoadStatus(_message.Message):
    __slots__ = ("model_id", "source", "estimated_s", "load_s")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_S_FIELD_NUMBER: _ClassVar[int]
    LOAD_S_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    source: str
    estimated_s: float
    load_s: float
    def __init__(self, model_id: _Optional[str] = ..., source: _Optional[str] = ..., estimated_s: _Optional[float] = ..., load_s: _Optional[float] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("worker_id", "kind", "address", "shape", "capacity", "metrics_address", "state", "model_load", "model")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    METRICS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MODEL_LOAD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    kind: WorkerKind
    address: str
    shape: InstanceShape
    capacity: Capacity
    metrics_address: str
    state: WorkerState
    model_load: ModelLoadStatus
    model: str
    def __init__(self, worker_id: _Optional[str] = ..., kind: _Optional[_Union[WorkerKind, str]] = ..., address: _Optional[str] = ..., shape: _Optional[_Union[InstanceShape, _Mapping]] = ..., capacity: _Optional[_Union[Capacity, _Mapping]] = ..., metrics_address: _Optional[str] = ..., state: _Optional[_Union[WorkerState, str]] = ..., model_load: _Optional[_Union[ModelLoadStatus, _Mapping]] = ..., model: _Optional[str] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("heartbeat_interval_s", "lease_s", "lease_token")
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    LEASE_S_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval_s: float
    lease_s: float
    lease_token: str
    def __init__(self, heartbeat_interval_s: _Optional[float] = ..., lease_s: _Optional[float] = ..., lease_token: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("worker_id", "load", "state", "model_load", "model", "lease_token")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MODEL_LOAD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    load: Load
    state: WorkerState
    model_load: ModelLoadStatus
    model: str
    lease_token: str
    def __init__(self, worker_id: _Optional[str] = ..., load: _Optional[_Union[Load, _Mapping]] = ..., state: _Optional[_Union[WorkerState, str]] = ..., model_load: _Optional[_Union[ModelLoadStatus, _Mapping]] = ..., model: _Optional[str] = ..., lease_token: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("known", "faults")
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    known: bool
    faults: _containers.RepeatedCompositeFieldContainer[Fault]
    def __init__(self, known: _Optional[bool] = ..., faults: _Optional[_Iterable[_Union[Fault, _Mapping]]] = ...) -> None: ...

class DeregisterRequest(_message.Message):
    __slots__ = ("worker_id", "address", "drain", "lease_token")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    address: str
    drain: bool
    lease_token: str
    def __init__(self, worker_id: _Optional[str] = ..., address: _Optional[str] = ..., drain: _Optional[bool] = ..., lease_token: _Optional[str] = ...) -> None: ...

class DeregisterResponse(_message.Message):
    __slots__ = ("found",)
    FOUND_FIELD_NUMBER: _ClassVar[int]
    found: bool
    def __init__(self, found: _Optional[bool] = ...) -> None: ...

class Fault(_message.Message):
    __slots__ = ("fault_id", "kind", "plane", "factor", "duration_s", "remaining_s", "mode")
    FAULT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PLANE_FIELD_NUMBER: _ClassVar[int]
    FACTOR_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    REMAINING_S_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    fault_id: str
    kind: FaultKind
    plane: str
    factor: float
    duration_s: float
    remaining_s: float
    mode: str
    def __init__(self, fault_id: _Optional[str] = ..., kind: _Optional[_Union[FaultKind, str]] = ..., plane: _Optional[str] = ..., factor: _Optional[float] = ..., duration_s: _Optional[float] = ..., remaining_s: _Optional[float] = ..., mode: _Optional[str] = ...) -> None: ...

class PrefillRequest(_message.Message):
    __slots__ = ("request_id", "prompt_token_ids", "cache_namespace", "decode_worker_id", "decode_address", "stage_age_s", "model")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    CACHE_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    DECODE_WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    DECODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STAGE_AGE_S_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    prompt_token_ids: _containers.RepeatedScalarFieldContainer[int]
    cache_namespace: str
    decode_worker_id: str
    decode_address: str
    stage_age_s: float
    model: str
    def __init__(self, request_id: _Optional[str] = ..., prompt_token_ids: _Optional[_Iterable[int]] = ..., cache_namespace: _Optional[str] = ..., decode_worker_id: _Optional[str] = ..., decode_address: _Optional[str] = ..., stage_age_s: _Optional[float] = ..., model: _Optional[str] = ...) -> None: ...

class PrefillResponse(_message.Message):
    __slots__ = ("num_prompt_tokens", "num_cached_tokens", "queue_s", "compute_s", "cache_fetch_s", "transfer_s", "kv_num_bytes")
    NUM_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NUM_CACHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_S_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_S_FIELD_NUMBER: _ClassVar[int]
    CACHE_FETCH_S_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_S_FIELD_NUMBER: _ClassVar[int]
    KV_NUM_BYTES_FIELD_NUMBER: _ClassVar[int]
    num_prompt_tokens: int
    num_cached_tokens: int
    queue_s: float
    compute_s: float
    cache_fetch_s: float
    transfer_s: float
    kv_num_bytes: int
    def __init__(self, num_prompt_tokens: _Optional[int] = ..., num_cached_tokens: _Optional[int] = ..., queue_s: _Optional[float] = ..., compute_s: _Optional[float] = ..., cache_fetch_s: _Optional[float] = ..., transfer_s: _Optional[float] = ..., kv_num_bytes: _Optional[int] = ...) -> None: ...

class AbortRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class AbortResponse(_message.Message):
    __slots__ = ("found",)
    FOUND_FIELD_NUMBER: _ClassVar[int]
    found: bool
    def __init__(self, found: _Optional[bool] = ...) -> None: ...

class AdmitRequest(_message.Message):
    __slots__ = ("request_id", "num_prompt_tokens", "max_tokens", "num_generated", "seed", "ignore_eos", "subscriber_id", "choices", "model")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NUM_GENERATED_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    IGNORE_EOS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    num_prompt_tokens: int
    max_tokens: int
    num_generated: int
    seed: int
    ignore_eos: bool
    subscriber_id: str
    choices: _containers.RepeatedCompositeFieldContainer[ChoiceProgress]
    model: str
    def __init__(self, request_id: _Optional[str] = ..., num_prompt_tokens: _Optional[int] = ..., max_tokens: _Optional[int] = ..., num_generated: _Optional[int] = ..., seed: _Optional[int] = ..., ignore_eos: _Optional[bool] = ..., subscriber_id: _Optional[str] = ..., choices: _Optional[_Iterable[_Union[ChoiceProgress, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class ChoiceProgress(_message.Message):
    __slots__ = ("index", "num_generated")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NUM_GENERATED_FIELD_NUMBER: _ClassVar[int]
    index: int
    num_generated: int
    def __init__(self, index: _Optional[int] = ..., num_generated: _Optional[int] = ...) -> None: ...

class AdmitResponse(_message.Message):
    __slots__ = ("accepted", "reason")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    reason: str
    def __init__(self, accepted: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class KvChunk(_message.Message):
    __slots__ = ("request_id", "seq", "num_chunks", "payload", "crc32", "true_num_bytes", "num_tokens", "source_worker_id", "ready_age_s")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    NUM_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CRC32_FIELD_NUMBER: _ClassVar[int]
    TRUE_NUM_BYTES_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    READY_AGE_S_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    seq: int
    num_chunks: int
    payload: bytes
    crc32: int
    true_num_bytes: int
    num_tokens: int
    source_worker_id: str
    ready_age_s: float
    def __init__(self, request_id: _Optional[str] = ..., seq: _Optional[int] = ..., num_chunks: _Optional[int] = ..., payload: _Optional[bytes] = ..., crc32: _Optional[int] = ..., true_num_bytes: _Optional[int] = ..., num_tokens: _Optional[int] = ..., source_worker_id: _Optional[str] = ..., ready_age_s: _Optional[float] = ...) -> None: ...

class TransferKvResponse(_message.Message):
    __slots__ = ("ok", "reason", "num_payload_bytes")
    OK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    NUM_PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    reason: str
    num_payload_bytes: int
    def __init__(self, ok: _Optional[bool] = ..., reason: _Optional[str] = ..., num_payload_bytes: _Optional[int] = ...) -> None: ...

class TokenUpdate(_message.Message):
    __slots__ = ("request_id", "num_tokens", "finish_reason", "elapsed_s", "index")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_S_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    num_tokens: int
    finish_reason: FinishReason
    elapsed_s: float
    index: int
    def __init__(self, request_id: _Optional[str] = ..., num_tokens: _Optional[int] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ..., elapsed_s: _Optional[float] = ..., index: _Optional[int] = ...) -> None: ...

class TokenBatch(_message.Message):
    __slots__ = ("step_s", "updates", "due_in_s")
    STEP_S_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    DUE_IN_S_FIELD_NUMBER: _ClassVar[int]
    step_s: float
    updates: _containers.RepeatedCompositeFieldContainer[TokenUpdate]
    due_in_s: float
    def __init__(self, step_s: _Optional[float] = ..., updates: _Optional[_Iterable[_Union[TokenUpdate, _Mapping]]] = ..., due_in_s: _Optional[float] = ...) -> None: ...

class StreamTokensRequest(_message.Message):
    __slots__ = ("subscriber_id",)
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    subscriber_id: str
    def __init__(self, subscriber_id: _Optional[str] = ...) -> None: ...

class SwitchModelRequest(_message.Message):
    __slots__ = ("model", "local_dram", "expected_source", "estimated_s")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LOCAL_DRAM_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SOURCE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_S_FIELD_NUMBER: _ClassVar[int]
    model: str
    local_dram: bool
    expected_source: str
    estimated_s: float
    def __init__(self, model: _Optional[str] = ..., local_dram: _Optional[bool] = ..., expected_source: _Optional[str] = ..., estimated_s: _Optional[float] = ...) -> None: ...

class SwitchModelResponse(_message.Message):
    __slots__ = ("accepted", "reason")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    reason: str
    def __init__(self, accepted: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ("namespace", "block_keys")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_KEYS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    block_keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, namespace: _Optional[str] = ..., block_keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class LookupResponse(_message.Message):
    __slots__ = ("num_hit_blocks",)
    NUM_HIT_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    num_hit_blocks: int
    def __init__(self, num_hit_blocks: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("namespace", "block_keys")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_KEYS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    block_keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, namespace: _Optional[str] = ..., block_keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class KvBlock(_message.Message):
    __slots__ = ("namespace", "key", "payload", "crc32", "true_num_bytes", "num_tokens", "found")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CRC32_FIELD_NUMBER: _ClassVar[int]
    TRUE_NUM_BYTES_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: bytes
    payload: bytes
    crc32: int
    true_num_bytes: int
    num_tokens: int
    found: bool
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[bytes] = ..., payload: _Optional[bytes] = ..., crc32: _Optional[int] = ..., true_num_bytes: _Optional[int] = ..., num_tokens: _Optional[int] = ..., found: _Optional[bool] = ...) -> None: ...

class PutResponse(_message.Message):
    __slots__ = ("num_stored", "num_deduplicated", "num_rejected")
    NUM_STORED_FIELD_NUMBER: _ClassVar[int]
    NUM_DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    NUM_REJECTED_FIELD_NUMBER: _ClassVar[int]
    num_stored: int
    num_deduplicated: int
    num_rejected: int
    def __init__(self, num_stored: _Optional[int] = ..., num_deduplicated: _Optional[int] = ..., num_rejected: _Optional[int] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ("namespace",)
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    def __init__(self, namespace: _Optional[str] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("num_blocks", "used_bytes", "capacity_bytes", "num_lookups", "num_hit_blocks", "num_queried_blocks", "num_evictions", "backend")
    NUM_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_BYTES_FIELD_NUMBER: _ClassVar[int]
    NUM_LOOKUPS_FIELD_NUMBER: _ClassVar[int]
    NUM_HIT_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    NUM_QUERIED_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    NUM_EVICTIONS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    num_blocks: int
    used_bytes: int
    capacity_bytes: int
    num_lookups: int
    num_hit_blocks: int
    num_queried_blocks: int
    num_evictions: int
    backend: str
    def __init__(self, num_blocks: _Optional[int] = ..., used_bytes: _Optional[int] = ..., capacity_bytes: _Optional[int] = ..., num_lookups: _Optional[int] = ..., num_hit_blocks: _Optional[int] = ..., num_queried_blocks: _Optional[int] = ..., num_evictions: _Optional[int] = ..., backend: _Optional[str] = ...) -> None: ...

class ModelImageRequest(_message.Message):
    __slots__ = ("shape", "version")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    shape: InstanceShape
    version: str
    def __init__(self, shape: _Optional[_Union[InstanceShape, _Mapping]] = ..., version: _Optional[str] = ...) -> None: ...

class ModelStatusResponse(_message.Message):
    __slots__ = ("model_key", "cached", "num_blocks", "num_cached_blocks", "model_bytes", "prefetching")
    MODEL_KEY_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    NUM_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    NUM_CACHED_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    MODEL_BYTES_FIELD_NUMBER: _ClassVar[int]
    PREFETCHING_FIELD_NUMBER: _ClassVar[int]
    model_key: str
    cached: bool
    num_blocks: int
    num_cached_blocks: int
    model_bytes: int
    prefetching: bool
    def __init__(self, model_key: _Optional[str] = ..., cached: _Optional[bool] = ..., num_blocks: _Optional[int] = ..., num_cached_blocks: _Optional[int] = ..., model_bytes: _Optional[int] = ..., prefetching: _Optional[bool] = ...) -> None: ...

class PrefetchModelResponse(_message.Message):
    __slots__ = ("model_key", "started", "already_cached", "estimated_s")
    MODEL_KEY_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    ALREADY_CACHED_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_S_FIELD_NUMBER: _ClassVar[int]
    model_key: str
    started: bool
    already_cached: bool
    estimated_s: float
    def __init__(self, model_key: _Optional[str] = ..., started: _Optional[bool] = ..., already_cached: _Optional[bool] = ..., estimated_s: _Optional[float] = ...) -> None: ...

class LoadModelRequest(_message.Message):
    __slots__ = ("shape", "version", "worker_id", "local_dram", "exclude_ems", "plane")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LOCAL_DRAM_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_EMS_FIELD_NUMBER: _ClassVar[int]
    PLANE_FIELD_NUMBER: _ClassVar[int]
    shape: InstanceShape
    version: str
    worker_id: str
    local_dram: bool
    exclude_ems: bool
    plane: str
    def __init__(self, shape: _Optional[_Union[InstanceShape, _Mapping]] = ..., version: _Optional[str] = ..., worker_id: _Optional[str] = ..., local_dram: _Optional[bool] = ..., exclude_ems: _Optional[bool] = ..., plane: _Optional[str] = ...) -> None: ...

class ModelLoadPlan(_message.Message):
    __slots__ = ("source", "model_key", "model_bytes", "bytes_per_device", "estimated_s", "num_blocks", "num_sharing")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_KEY_FIELD_NUMBER: _ClassVar[int]
    MODEL_BYTES_FIELD_NUMBER: _ClassVar[int]
    BYTES_PER_DEVICE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_S_FIELD_NUMBER: _ClassVar[int]
    NUM_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    NUM_SHARING_FIELD_NUMBER: _ClassVar[int]
    source: str
    model_key: str
    model_bytes: int
    bytes_per_device: int
    estimated_s: float
    num_blocks: int
    num_sharing: int
    def __init__(self, source: _Optional[str] = ..., model_key: _Optional[str] = ..., model_bytes: _Optional[int] = ..., bytes_per_device: _Optional[int] = ..., estimated_s: _Optional[float] = ..., num_blocks: _Optional[int] = ..., num_sharing: _Optional[int] = ...) -> None: ...

class ModelLoadDone(_message.Message):
    __slots__ = ("load_s", "breakdown", "lag_s")
    class BreakdownEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    LOAD_S_FIELD_NUMBER: _ClassVar[int]
    BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    LAG_S_FIELD_NUMBER: _ClassVar[int]
    load_s: float
    breakdown: _containers.ScalarMap[str, float]
    lag_s: float
    def __init__(self, load_s: _Optional[float] = ..., breakdown: _Optional[_Mapping[str, float]] = ..., lag_s: _Optional[float] = ...) -> None: ...

class ModelLoadEvent(_message.Message):
    __slots__ = ("plan", "block", "done")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    plan: ModelLoadPlan
    block: KvBlock
    done: ModelLoadDone
    def __init__(self, plan: _Optional[_Union[ModelLoadPlan, _Mapping]] = ..., block: _Optional[_Union[KvBlock, _Mapping]] = ..., done: _Optional[_Union[ModelLoadDone, _Mapping]] = ...) -> None: ...
