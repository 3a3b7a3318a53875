from collections.abc import Iterable as _Iterable
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper

DESCRIPTOR: _descriptor.FileDescriptor

class WorkerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER_KIND_UNSPECIFIED: _ClassVar[WorkerKind]
    WORKER_KIND_PREFILL: _ClassVar[WorkerKind]
    WORKER_KIND_DECODE: _ClassVar[WorkerKind]
    WORKER_KIND_EMS: _ClassVar[WorkerKind]

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
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_STOP: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_ABORT: FinishReason

class InstanceShape(_message.Message):
    __slots__ = ("dp", "ep", "hardware", "microbatch", "model", "mtp_acceptance", "mtp_tokens", "num_devices", "num_dies", "quant", "tp")
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
    def __init__(self, hardware: str | None = ..., model: str | None = ..., num_devices: int | None = ..., num_dies: int | None = ..., dp: int | None = ..., tp: int | None = ..., ep: int | None = ..., quant: str | None = ..., microbatch: bool | None = ..., mtp_tokens: int | None = ..., mtp_acceptance: float | None = ...) -> None: ...

class Capacity(_message.Message):
    __slots__ = ("kv_capacity_tokens", "max_num_batched_tokens", "max_num_seqs")
    KV_CAPACITY_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_NUM_SEQS_FIELD_NUMBER: _ClassVar[int]
    MAX_NUM_BATCHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    kv_capacity_tokens: int
    max_num_seqs: int
    max_num_batched_tokens: int
    def __init__(self, kv_capacity_tokens: int | None = ..., max_num_seqs: int | None = ..., max_num_batched_tokens: int | None = ...) -> None: ...

class Load(_message.Message):
    __slots__ = ("busy_fraction", "kv_used_tokens", "num_queued_tokens", "num_running", "num_waiting")
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
    def __init__(self, num_running: int | None = ..., num_waiting: int | None = ..., kv_used_tokens: int | None = ..., num_queued_tokens: int | None = ..., busy_fraction: float | None = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("address", "capacity", "kind", "metrics_address", "shape", "worker_id")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    METRICS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    kind: WorkerKind
    address: str
    shape: InstanceShape
    capacity: Capacity
    metrics_address: str
    def __init__(self, worker_id: str | None = ..., kind: WorkerKind | str | None = ..., address: str | None = ..., shape: InstanceShape | _Mapping | None = ..., capacity: Capacity | _Mapping | None = ..., metrics_address: str | None = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("heartbeat_interval_s", "lease_s")
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    LEASE_S_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval_s: float
    lease_s: float
    def __init__(self, heartbeat_interval_s: float | None = ..., lease_s: float | None = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("load", "worker_id")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    load: Load
    def __init__(self, worker_id: str | None = ..., load: Load | _Mapping | None = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("known",)
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    known: bool
    def __init__(self, known: bool | None = ...) -> None: ...

class PrefillRequest(_message.Message):
    __slots__ = ("cache_namespace", "decode_address", "decode_worker_id", "prompt_token_ids", "request_id", "seed")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    CACHE_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    DECODE_WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    DECODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    prompt_token_ids: _containers.RepeatedScalarFieldContainer[int]
    cache_namespace: str
    decode_worker_id: str
    decode_address: str
    seed: int
    def __init__(self, request_id: str | None = ..., prompt_token_ids: _Iterable[int] | None = ..., cache_namespace: str | None = ..., decode_worker_id: str | None = ..., decode_address: str | None = ..., seed: int | None = ...) -> None: ...

class PrefillResponse(_message.Message):
    __slots__ = ("cache_fetch_s", "compute_s", "first_token_id", "kv_num_bytes", "num_cached_tokens", "num_prompt_tokens", "queue_s", "transfer_s")
    NUM_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NUM_CACHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_S_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_S_FIELD_NUMBER: _ClassVar[int]
    CACHE_FETCH_S_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_S_FIELD_NUMBER: _ClassVar[int]
    KV_NUM_BYTES_FIELD_NUMBER: _ClassVar[int]
    num_prompt_tokens: int
    num_cached_tokens: int
    first_token_id: int
    queue_s: float
    compute_s: float
    cache_fetch_s: float
    transfer_s: float
    kv_num_bytes: int
    def __init__(self, num_prompt_tokens: int | None = ..., num_cached_tokens: int | None = ..., first_token_id: int | None = ..., queue_s: float | None = ..., compute_s: float | None = ..., cache_fetch_s: float | None = ..., transfer_s: float | None = ..., kv_num_bytes: int | None = ...) -> None: ...

class AbortRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: str | None = ...) -> None: ...

class AbortResponse(_message.Message):
    __slots__ = ("found",)
    FOUND_FIELD_NUMBER: _ClassVar[int]
    found: bool
    def __init__(self, found: bool | None = ...) -> None: ...

class AdmitRequest(_message.Message):
    __slots__ = ("eos_token_id", "ignore_eos", "kv_in_place", "max_tokens", "num_generated", "num_prompt_tokens", "request_id", "seed", "subscriber_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NUM_GENERATED_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    IGNORE_EOS_FIELD_NUMBER: _ClassVar[int]
    EOS_TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    KV_IN_PLACE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    num_prompt_tokens: int
    max_tokens: int
    num_generated: int
    seed: int
    ignore_eos: bool
    eos_token_id: int
    kv_in_place: bool
    subscriber_id: str
    def __init__(self, request_id: str | None = ..., num_prompt_tokens: int | None = ..., max_tokens: int | None = ..., num_generated: int | None = ..., seed: int | None = ..., ignore_eos: bool | None = ..., eos_token_id: int | None = ..., kv_in_place: bool | None = ..., subscriber_id: str | None = ...) -> None: ...

class AdmitResponse(_message.Message):
    __slots__ = ("accepted", "reason")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    reason: str
    def __init__(self, accepted: bool | None = ..., reason: str | None = ...) -> None: ...

class KvChunk(_message.Message):
    __slots__ = ("crc32", "num_chunks", "num_tokens", "payload", "request_id", "seq", "source_worker_id", "true_num_bytes")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    NUM_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CRC32_FIELD_NUMBER: _ClassVar[int]
    TRUE_NUM_BYTES_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    seq: int
    num_chunks: int
    payload: bytes
    crc32: int
    true_num_bytes: int
    num_tokens: int
    source_worker_id: str
    def __init__(self, request_id: str | None = ..., seq: int | None = ..., num_chunks: int | None = ..., payload: bytes | None = ..., crc32: int | None = ..., true_num_bytes: int | None = ..., num_tokens: int | None = ..., source_worker_id: str | None = ...) -> None: ...

class TransferKvResponse(_message.Message):
    __slots__ = ("num_payload_bytes", "ok", "reason")
    OK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    NUM_PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    reason: str
    num_payload_bytes: int
    def __init__(self, ok: bool | None = ..., reason: str | None = ..., num_payload_bytes: int | None = ...) -> None: ...

class TokenUpdate(_message.Message):
    __slots__ = ("finish_reason", "request_id", "token_ids")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    finish_reason: FinishReason
    def __init__(self, request_id: str | None = ..., token_ids: _Iterable[int] | None = ..., finish_reason: FinishReason | str | None = ...) -> None: ...

class TokenBatch(_message.Message):
    __slots__ = ("step_s", "updates")
    STEP_S_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    step_s: float
    updates: _containers.RepeatedCompositeFieldContainer[TokenUpdate]
    def __init__(self, step_s: float | None = ..., updates: _Iterable[TokenUpdate | _Mapping] | None = ...) -> None: ...

class StreamTokensRequest(_message.Message):
    __slots__ = ("subscriber_id",)
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    subscriber_id: str
    def __init__(self, subscriber_id: str | None = ...) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ("block_keys", "namespace")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_KEYS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    block_keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, namespace: str | None = ..., block_keys: _Iterable[bytes] | None = ...) -> None: ...

class LookupResponse(_message.Message):
    __slots__ = ("num_hit_blocks",)
    NUM_HIT_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    num_hit_blocks: int
    def __init__(self, num_hit_blocks: int | None = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("block_keys", "namespace")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_KEYS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    block_keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, namespace: str | None = ..., block_keys: _Iterable[bytes] | None = ...) -> None: ...

class KvBlock(_message.Message):
    __slots__ = ("crc32", "found", "key", "namespace", "num_tokens", "payload", "true_num_bytes")
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
    def __init__(self, namespace: str | None = ..., key: bytes | None = ..., payload: bytes | None = ..., crc32: int | None = ..., true_num_bytes: int | None = ..., num_tokens: int | None = ..., found: bool | None = ...) -> None: ...

class PutResponse(_message.Message):
    __slots__ = ("num_deduplicated", "num_rejected", "num_stored")
    NUM_STORED_FIELD_NUMBER: _ClassVar[int]
    NUM_DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    NUM_REJECTED_FIELD_NUMBER: _ClassVar[int]
    num_stored: int
    num_deduplicated: int
    num_rejected: int
    def __init__(self, num_stored: int | None = ..., num_deduplicated: int | None = ..., num_rejected: int | None = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ("namespace",)
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    def __init__(self, namespace: str | None = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("backend", "capacity_bytes", "num_blocks", "num_evictions", "num_hit_blocks", "num_lookups", "num_queried_blocks", "used_bytes")
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
    def __init__(self, num_blocks: int | None = ..., used_bytes: int | None = ..., capacity_bytes: int | None = ..., num_lookups: int | None = ..., num_hit_blocks: int | None = ..., num_queried_blocks: int | None = ..., num_evictions: int | None = ..., backend: str | None = ...) -> None: ...
