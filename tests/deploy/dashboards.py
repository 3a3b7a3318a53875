"""The shipped dashboards and the metrics the services export, as plain data for the tests.

`exported_metrics()` instantiates every service's metrics class on a fresh registry, so it
is exactly what the processes expose (no hand-kept list). `queries()` yields every PromQL
expression of every panel with the dashboard's template variables expanded the way Grafana
expands them (`All` -> the variable's allValue, a custom variable -> its current value).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from services.decode.metrics import DecodeMetrics
from services.ems.metrics import EmsMetrics
from services.prefill.metrics import PrefillMetrics
from services.scheduler.metrics import SchedulerMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
PROMETHEUS = ROOT / "deploy" / "prometheus"

#: Labels Prometheus attaches to every scraped series (from deploy/prometheus/*.yml and http_sd).
TARGET_LABELS = frozenset({"job", "instance", "role", "worker_id"})
#: Labels a query may name on a metric's derived series.
SUFFIX_LABELS = {"_bucket": frozenset({"le"})}

_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "and",
                       "or", "unless", "bool", "offset", "inf", "nan",
                       # aggregation operators, which may be followed by `by (...)`
                       "sum", "min", "max", "avg", "count", "group", "stddev", "stdvar", "topk",
                       "bottomk", "quantile", "count_values"})
_SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


@dataclass(frozen=True)
class Metric:
    """One exported series name (as Prometheus stores it) and the labels it carries."""

    name: str
    labels: frozenset[str]
    roles: frozenset[str]


def _collectors(obj: object) -> Iterator[MetricWrapperBase]:
    for value in vars(obj).values():
        if isinstance(value, MetricWrapperBase):
            yield value
        elif hasattr(value, "__dict__") and type(value).__module__.startswith("services."):
            yield from _collectors(value)


def _sample_names(collector: MetricWrapperBase) -> list[str]:
    family = collector.describe()[0]
    if family.type == "counter":
        return [f"{family.name}_total"]
    if family.type == "histogram":
        return [f"{family.name}{s}" for s in ("_bucket", "_sum", "_count")]
    return [family.name]


def exported_metrics() -> dict[str, Metric]:
    """Every series name the services export, with its labels and the roles exporting it."""
    by_role = {
        "scheduler": SchedulerMetrics(CollectorRegistry(), "m", 4096),
        "prefill": PrefillMetrics(CollectorRegistry(), "m", "p"),
        "decode": DecodeMetrics(CollectorRegistry(), "m", "d"),
        "ems": EmsMetrics(CollectorRegistry()),
    }
    found: dict[str, Metric] = {}
    for role, metrics in by_role.items():
        for collector in _collectors(metrics):
            labels = frozenset(collector._labelnames)
            for name in _sample_names(collector):
                extra = next((v for k, v in SUFFIX_LABELS.items() if name.endswith(k)), set())
                old = found.get(name)
                found[name] = Metric(name, labels | extra | (old.labels if old else set()),
                                     frozenset({role}) | (old.roles if old else set()))
    return found


def datasource_uid() -> str:
    config = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())
    (source,) = config["datasources"]
    return source["uid"]


def dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict) -> Iterator[dict]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def expand(expr: str, board: dict, rate_interval: str) -> str:
    """`expr` with Grafana's variables replaced as Grafana would for the default selection."""
    values = {"__rate_interval": rate_interval}
    for var in board.get("templating", {}).get("list", []):
        if var["type"] == "custom":
            values[var["name"]] = var["current"]["value"]
        else:
            values[var["name"]] = var.get("allValue") or ".*"
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(f"${{{name}}}", values[name]).replace(f"${name}", values[name])
    return expr


def queries(rate_interval: str = "1m") -> Iterator[tuple[str, str, str]]:
    """(dashboard, panel title, expanded expression) for every panel target."""
    for name, board in dashboards().items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                yield name, panel["title"], expand(target["expr"], board, rate_interval)


def variable_metrics(board: dict) -> Iterator[tuple[str, str]]:
    """(metric, label) of each `label_values(metric, label)` template variable."""
    for var in board.get("templating", {}).get("list", []):
        if var["type"] == "query":
            match = re.fullmatch(r"label_values\(\s*([\w:]+)\s*,\s*(\w+)\s*\)", var["definition"])
            assert match, f"unsupported variable query {var['definition']!r}"
            yield match.group(1), match.group(2)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (functions, keywords and labels excluded)."""
    text = re.sub(r'"[^"]*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1 ", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][\w:]*", text):
        rest = text[match.end():].lstrip()
        if match.group() not in _KEYWORDS and not rest.startswith("("):
            names.add(match.group())
    return names


def selectors(expr: str) -> Iterator[tuple[str, dict[str, tuple[str, str]]]]:
    """(metric, {label: (operator, value)}) for each `metric{...}` selector."""
    for match in _SELECTOR.finditer(expr):
        yield match.group(1), {m.group(1): (m.group(2), m.group(3))
                               for m in _MATCHER.finditer(match.group(2))}
