"""Workloads: exact lengths, shared prefixes where asked, trace replay of Mooncake files."""

from __future__ import annotations

import json

import pytest

from loadgen.workloads import (
    MooncakeTraceWorkload,
    PrefixRepetitionWorkload,
    RandomWorkload,
    ShareGptWorkload,
)
from loadgen.workloads.tokens import TOKEN_ID_HIGH, TOKEN_ID_LOW


def test_random_lengths_are_exact_and_within_the_range():
    """Prompt lengths equal the token-id count and lie in [L(1-r), L(1+r)]; ids stay in the
    safe range; the same seed gives the same prompts."""
    samples = RandomWorkload(input_len=100, output_len=20, range_ratio=0.5).build(200, seed=1)
    assert all(len(s.prompt) == s.prompt_len for s in samples)
    assert all(50 <= s.prompt_len <= 150 and 10 <= s.expected_output_len <= 30 for s in samples)
    assert all(TOKEN_ID_LOW <= t < TOKEN_ID_HIGH for s in samples for t in s.prompt)
    assert samples == RandomWorkload(100, 20, 0.5).build(200, seed=1)


def test_random_prefix_is_shared():
    """--random-prefix-len ids are the same at the start of every prompt."""
    samples = RandomWorkload(input_len=10, output_len=5, prefix_len=16).build(5, seed=0)
    assert len({s.prompt[:16] for s in samples}) == 1 and all(s.prompt_len == 26 for s in samples)


def test_prefix_repetition_equal_shares():
    """vLLM's scheme: num_prefixes prefixes, each used by n / num_prefixes requests."""
    samples = PrefixRepetitionWorkload(32, 8, num_prefixes=4, output_len=3).build(40, seed=0)
    prefixes = [s.prompt[:32] for s in samples]
    assert len(set(prefixes)) == 4 and all(prefixes.count(p) == 10 for p in set(prefixes))
    assert all(s.prompt_len == 40 for s in samples)


def test_prefix_repetition_reuse_rate_is_realised():
    """With reuse_rate p, about p of the requests reuse an already-seen prefix."""
    samples = PrefixRepetitionWorkload(16, 4, output_len=2, reuse_rate=0.75).build(2000, seed=2)
    seen, reused = set(), 0
    for s in samples:
        reused += s.prompt[:16] in seen
        seen.add(s.prompt[:16])
    assert reused / len(samples) == pytest.approx(0.75, abs=0.03)


def test_mooncake_trace_replay(tmp_path):
    """Equal hash ids give equal token blocks, prompt lengths are exact, and send offsets are
    the timestamps (ms) relative to the first record."""
    records = [
        {"timestamp": 1000, "input_length": 10, "output_length": 3, "hash_ids": [7, 8]},
        {"timestamp": 1500, "input_length": 7, "output_length": 2, "hash_ids": [7, 9]},
        {"timestamp": 3000, "input_length": 12, "output_length": 1, "hash_ids": [5]},
    ]
    path = tmp_path / "trace.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    samples = MooncakeTraceWorkload(path, block_size=4).build(10, seed=0)
    assert [s.prompt_len for s in samples] == [10, 7, 12]
    assert [s.arrival_offset_s for s in samples] == [0.0, 0.5, 2.0]
    assert samples[0].prompt[:4] == samples[1].prompt[:4]
    assert samples[0].prompt[4:7] != samples[1].prompt[4:7]
    assert [s.expected_output_len for s in samples] == [3, 2, 1]


def test_sharegpt_takes_first_turns(tmp_path):
    """Each conversation gives its first human turn as a text prompt; the output length is
    estimated from the reply unless fixed; one-turn conversations are skipped."""
    data = [
        {
            "conversations": [
                {"from": "human", "value": "a" * 40},
                {"from": "gpt", "value": "b" * 80},
            ]
        },
        {"conversations": [{"from": "human", "value": "only a question"}]},
    ]
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(data))
    samples = ShareGptWorkload(path).build(10, seed=0)
    assert len(samples) == 1
    assert samples[0].prompt == "a" * 40 and samples[0].prompt_len == 10
    assert samples[0].expected_output_len == 20
    assert ShareGptWorkload(path, output_len=5).build(10, 0)[0].expected_output_len == 5
