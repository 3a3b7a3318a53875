"""Prefill and decode instances in virtual time: the live engines, priced by the hardware model.

Each instance wraps the same engine the live worker runs (`PrefillEngine`, `DecodeEngine`) and
the same `Deployment`; it is busy while one batch or step is in flight. Starting work returns
the model seconds it takes; the cluster turns that into an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from supernode.config import ClusterConfig
from supernode.deployment import build_decode_engine, instance_deployment, prefill_token_budget
from supernode.engine.decode import DecodeEngine
from supernode.engine.prefill import PrefillEngine, PrefillJob
from supernode.engine.registry import WorkerInfo, WorkerKind, WorkerLoad
from supernode.perf import (
    DecodeBatch,
    Deployment,
    PrefillBatch,
    decode_step_time,
    kv_capacity_tokens,
    prefill_time,
)
from supernode.sim.cache import BlockLru


@dataclass
class PrefillInstance:
    """One prefill instance; `cache` is its own under kv-affinity, else the shared EMS."""

    worker_id: str
    engine: PrefillEngine
    deployment: Deployment
    cache: BlockLru | None
    busy: bool = False
    batch: list[PrefillJob] = field(default_factory=list)

    def info(self) -> WorkerInfo:
        d = self.deployment
        return WorkerInfo(self.worker_id, WorkerKind.PREFILL, "sim", num_devices=d.num_devices,
                          num_dies=d.num_dies, kv_capacity_tokens=kv_capacity_tokens(d),
                          max_num_batched_tokens=self.engine.max_num_batched_tokens)

    def load(self) -> WorkerLoad:
        return WorkerLoad(num_running=len(self.batch), num_waiting=self.engine.num_waiting,
                          num_queued_tokens=self.engine.num_queued_tokens)

    def start_batch(self) -> float | None:
        """Take the next batch; its model seconds, or None when nothing waits."""
        self.batch = self.engine.next_batch()
        self.busy = bool(self.batch)
        if not self.batch:
            return None
        shape = PrefillBatch(tuple(j.num_prompt_tokens for j in self.batch),
                             tuple(j.num_cached_tokens for j in self.batch))
        return prefill_time(shape, self.deployment).total_s


@dataclass
class DecodeInstance:
    """One decode instance with continuous batching."""

    worker_id: str
    engine: DecodeEngine
    deployment: Deployment
    busy: bool = False

    def info(self) -> WorkerInfo:
        d, e = self.deployment, self.engine
        return WorkerInfo(self.worker_id, WorkerKind.DECODE, "sim", num_devices=d.num_devices,
                          num_dies=d.num_dies, kv_capacity_tokens=e.kv_capacity_tokens,
                          max_num_seqs=e.max_num_seqs)

    def load(self) -> WorkerLoad:
        e = self.engine
        return WorkerLoad(num_running=e.num_running, num_waiting=e.num_waiting,
                          kv_used_tokens=e.kv_used_tokens())

    def start_step(self) -> float | None:
        """Fill the running batch; the step's model seconds, or None when nothing runs."""
        batch = self.engine.schedule()
        self.busy = bool(batch)
        if not batch:
            return None
        shape = DecodeBatch(len(batch), self.engine.mean_kv_len())
        return decode_step_time(shape, self.deployment).total_s


def build_prefills(config: ClusterConfig, caches: list[BlockLru | None]) -> list[PrefillInstance]:
    deployment = instance_deployment(config, "prefill")
    budget = prefill_token_budget(config, deployment)
    return [PrefillInstance(f"prefill-{i}", PrefillEngine(budget), deployment, caches[i])
            for i in range(config.num_prefill)]


def build_decodes(config: ClusterConfig, vocab_size: int, eos_token_id: int
                  ) -> list[DecodeInstance]:
    deployment = instance_deployment(config, "decode")
    return [DecodeInstance(f"decode-{i}",
                           build_decode_engine(config, deployment, vocab_size, eos_token_id),
                           deployment) for i in range(config.num_decode)]
