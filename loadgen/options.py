"""argparse value parsers: each turns one flag's text into a typed value or raises
`argparse.ArgumentTypeError` with the reason, so argparse names the flag in its error."""

from __future__ import annotations

import argparse
import json
import math

from loadgen.config import PERCENTILE_METRICS, SLO_METRICS
from loadgen.sweep import parse_request_rates

DATASET_ALIASES = {
    "random": "random",
    "sharegpt": "sharegpt",
    "prefix_repetition": "prefix_repetition",
    "prefix-repetition": "prefix_repetition",
    "mooncake": "mooncake",
    "mooncake_trace": "mooncake",
    "mooncake-trace": "mooncake",
    "trace": "mooncake",
}


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """A float > 0; `inf` allowed."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def positive_finite_float(text: str) -> float:
    """A finite float > 0."""
    value = _number(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def ratio_below_one(text: str) -> float:
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return value


def fraction(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text!r}")
    return value


def attainment(text: str) -> float:
    value = _number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text!r}")
    return value


def request_rates(text: str) -> tuple[float, ...]:
    try:
        return parse_request_rates(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def dataset_name(text: str) -> str:
    try:
        return DATASET_ALIASES[text.strip().lower()]
    except KeyError:
        names = sorted(set(DATASET_ALIASES.values()))
        raise argparse.ArgumentTypeError(f"unknown dataset {text!r}; use one of {names}") from None


def slo_pair(text: str) -> tuple[str, float]:
    """`ttft:200` -> ("ttft", 200.0); milliseconds, >= 0."""
    name, sep, value = text.partition(":")
    if not sep or name not in SLO_METRICS:
        raise argparse.ArgumentTypeError(f"expected KEY:MS with KEY in {SLO_METRICS}, got {text!r}")
    ms = _number(value)
    if not 0 <= ms < math.inf:
        raise argparse.ArgumentTypeError(f"SLO must be a finite number of ms >= 0, got {text!r}")
    return name, ms


def percentiles(text: str) -> tuple[float, ...]:
    values = tuple(_number(part) for part in text.split(",") if part.strip())
    if not values or any(not 0 <= v <= 100 for v in values):
        raise argparse.ArgumentTypeError(f"percentiles must be in [0, 100], got {text!r}")
    return values


def metric_names(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [n for n in names if n not in PERCENTILE_METRICS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"metrics must be from {PERCENTILE_METRICS}, got {text!r}")
    return names


def json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def header_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()
