"""`mooncake` workload: replay a JSONL trace in Mooncake's format, timestamps honoured.

Each line: `{"timestamp": ms, "input_length": tokens, "output_length": tokens,
"hash_ids": [int, ...]}`. Hash id h stands for one block of `block_size` prompt tokens; equal
hash ids mean equal blocks, so the prompt is built block by block from ids generated from
(seed, h) and requests that share hash-id prefixes share token prefixes (prefix-cache hits
happen where the trace says they do). The prompt is cut or padded with fresh ids to exactly
`input_length`. A request's send time is its timestamp minus the first one's, divided by the
run's time scale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from loadgen.types import SampleRequest
from loadgen.workloads.tokens import random_token_ids

MOONCAKE_BLOCK_SIZE = 512


@dataclass(frozen=True)
class MooncakeTraceWorkload:
    path: Path
    block_size: int = MOONCAKE_BLOCK_SIZE
    is_trace: ClassVar[bool] = True
    """Its samples carry their own arrival offsets (the rate flags do not apply)."""

    def build(self, num_prompts: int, seed: int) -> list[SampleRequest]:
        records = _read_records(self.path, num_prompts)
        if not records:
            raise ValueError(f"{self.path}: trace has no records")
        first_ms = min(float(r["timestamp"]) for r in records)
        blocks: dict[int, tuple[int, ...]] = {}
        pad_rng = np.random.default_rng([seed, 1])
        samples = []
        for record in sorted(records, key=lambda r: float(r["timestamp"])):
            prompt = self._prompt(record, blocks, seed, pad_rng)
            offset_s = (float(record["timestamp"]) - first_ms) / 1000.0
            samples.append(
                SampleRequest(prompt, len(prompt), max(1, int(record["output_length"])), offset_s)
            )
        return samples

    def _prompt(
        self, record: dict, blocks: dict[int, tuple[int, ...]], seed: int, pad_rng
    ) -> tuple[int, ...]:
        length = int(record["input_length"])
        ids: list[int] = []
        for h in record.get("hash_ids", []):
            if len(ids) >= length:
                break
            if h not in blocks:
                blocks[h] = random_token_ids(np.random.default_rng([seed, 0, h]), self.block_size)
            ids.extend(blocks[h])
        if len(ids) < length:
            ids.extend(random_token_ids(pad_rng, length - len(ids)))
        return tuple(ids[:length])


def _read_records(path: Path, limit: int) -> list[dict]:
    records = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            missing = {"timestamp", "input_length", "output_length"} - record.keys()
            if missing:
                raise ValueError(f"{path}:{line_no}: missing {sorted(missing)}")
            records.append(record)
            if len(records) == limit:
                break
    return records
