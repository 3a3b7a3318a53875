"""The hardware model: pure functions from (work, deployment) to a ``Timing`` with a breakdown.

``decode_step_time``, ``prefill_time`` (cache fetch included), ``kv_handoff_times`` and
``transfer_time`` do no I/O and read no clock; ``Deployment.build`` loads profiles and the
fitted calibration by name.
"""

from supernode.perf.cache_fetch import cache_fetch_time
from supernode.perf.calibration import Calibration, load_calibration
from supernode.perf.comm import fair_share_finish_s, kv_handoff_times, transfer_time
from supernode.perf.decode import decode_step_time
from supernode.perf.deployment import Deployment, ExpertPlacement
from supernode.perf.estimates import (
    DecodeEstimate,
    PrefillEstimate,
    estimate_decode,
    estimate_prefill,
)
from supernode.perf.memory import (
    MemoryBudget,
    kv_capacity_tokens,
    memory_budget,
    weight_bytes_per_die,
)
from supernode.perf.prefill import prefill_time
from supernode.perf.reuse import ReusePoint, reuse_experiment, reuse_point
from supernode.perf.timing import CACHE_SOURCES, DecodeBatch, PrefillBatch, Timing

__all__ = [
    "CACHE_SOURCES",
    "Calibration",
    "DecodeBatch",
    "DecodeEstimate",
    "Deployment",
    "ExpertPlacement",
    "MemoryBudget",
    "PrefillBatch",
    "PrefillEstimate",
    "ReusePoint",
    "Timing",
    "cache_fetch_time",
    "decode_step_time",
    "estimate_decode",
    "estimate_prefill",
    "fair_share_finish_s",
    "kv_capacity_tokens",
    "kv_handoff_times",
    "load_calibration",
    "memory_budget",
    "prefill_time",
    "reuse_experiment",
    "reuse_point",
    "transfer_time",
    "weight_bytes_per_die",
]
