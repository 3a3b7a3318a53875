"""`sharegpt` workload: the first human turn of each conversation in a local ShareGPT JSON file.

File format (as used by vLLM): a list of `{"conversations": [{"from": "human", "value": ...},
{"from": "gpt", "value": ...}, ...]}`. Prompts are sent as text; their length is estimated
(about 4 characters per token) until the server's `usage.prompt_tokens` gives the real count.
The output length is the estimated length of the reply, or `output_len` when set.
Conversations are shuffled with the seed; those with fewer than two turns are skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loadgen.types import SampleRequest
from loadgen.workloads.tokens import estimate_text_tokens


@dataclass(frozen=True)
class ShareGptWorkload:
    path: Path
    output_len: int | None = None

    def build(self, num_prompts: int, seed: int) -> list[SampleRequest]:
        with open(self.path, encoding="utf-8") as f:
            conversations = json.load(f)
        if not isinstance(conversations, list):
            raise TypeError(f"{self.path}: expected a JSON list of conversations")
        order = np.random.default_rng(seed).permutation(len(conversations))
        samples: list[SampleRequest] = []
        for index in order:
            sample = self._sample(conversations[int(index)])
            if sample is not None:
                samples.append(sample)
            if len(samples) == num_prompts:
                break
        if not samples:
            raise ValueError(f"{self.path}: no conversation with a prompt and a reply")
        return samples

    def _sample(self, entry: dict) -> SampleRequest | None:
        turns = entry.get("conversations") or entry.get("conversation") or []
        if len(turns) < 2:
            return None
        prompt, reply = str(turns[0].get("value", "")), str(turns[1].get("value", ""))
        if not prompt:
            return None
        output_len = self.output_len or estimate_text_tokens(reply)
        return SampleRequest(prompt, estimate_text_tokens(prompt), output_len)
