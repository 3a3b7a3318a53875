"""The hardware model: pure functions from (work, deployment) to a ``Timing`` with a breakdown.

``decode_step_time``, ``prefill_time`` and ``transfer_time`` do no I/O and read no clock;
``Deployment.build`` loads profiles and the fitted calibration by name.
"""

from supernode.perf.calibration import Calibration, load_calibration
from supernode.perf.comm import transfer_time
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
from supernode.perf.timing import DecodeBatch, PrefillBatch, Timing

__all__ = [
    "Calibration",
    "DecodeBatch",
    "DecodeEstimate",
    "Deployment",
    "ExpertPlacement",
    "MemoryBudget",
    "PrefillBatch",
    "PrefillEstimate",
    "Timing",
    "decode_step_time",
    "estimate_decode",
    "estimate_prefill",
    "kv_capacity_tokens",
    "load_calibration",
    "memory_budget",
    "prefill_time",
    "transfer_time",
    "weight_bytes_per_die",
]
