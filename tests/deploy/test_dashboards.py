"""The Grafana dashboards, their provisioning and the Prometheus configs, checked without
Grafana: JSON shape, datasource uid, and that every query names only series our services
export (derived from the metrics classes, not from a list kept by hand)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from services.common.vllm_metrics import ITL_BUCKETS, TTFT_BUCKETS
from tests.deploy.dashboards import (
    PROMETHEUS,
    PROVISIONING,
    ROOT,
    TARGET_LABELS,
    dashboards,
    datasource_uid,
    exported_metrics,
    metric_names,
    panels,
    queries,
    selectors,
    variable_metrics,
)

PROMTOOL = shutil.which("promtool")


def _datasources(node: object) -> Iterator[dict]:
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            yield node["datasource"]
        for value in node.values():
            yield from _datasources(value)
    elif isinstance(node, list):
        for value in node:
            yield from _datasources(value)


def test_the_three_dashboards_are_shipped_ready_for_file_provisioning() -> None:
    """overview, hardware and cache exist, with null ids (Grafana assigns them), unique uids
    and no import-only `__inputs`."""
    boards = dashboards()
    assert set(boards) == {"overview", "hardware", "cache"}
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    for board in boards.values():
        assert board["id"] is None and board["title"] and "__inputs" not in board


def test_panel_ids_are_unique_within_each_dashboard() -> None:
    """Grafana keys panels by id; a duplicate silently hides one."""
    for name, board in dashboards().items():
        ids = [p["id"] for p in panels(board)]
        assert len(ids) == len(set(ids)), name


def test_every_datasource_is_the_provisioned_prometheus() -> None:
    """Panels, targets and variables name the fixed uid of the provisioned datasource."""
    uid = datasource_uid()
    for name, board in dashboards().items():
        sources = list(_datasources(board))
        assert sources, name
        for source in sources:
            assert source == {"type": "prometheus", "uid": uid}, (name, source)


def test_every_panel_has_a_query() -> None:
    """Each non-row panel has at least one target with a non-empty expression."""
    for name, board in dashboards().items():
        for panel in panels(board):
            if panel["type"] != "row":
                assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), (
                    name, panel["title"])


def test_queries_name_only_metrics_the_services_export() -> None:
    """Every metric a panel query names is exported by some service."""
    exported = exported_metrics()
    for board, title, expr in queries():
        unknown = metric_names(expr) - set(exported)
        assert not unknown, f"{board} / {title}: unknown metrics {sorted(unknown)} in {expr}"


def test_selectors_use_labels_and_roles_the_metric_has() -> None:
    """A matcher names a label the series carries, and `role` selects a role that exports it
    (so `{role="prefill"}` on a decode-only series is caught before it shows an empty panel)."""
    exported = exported_metrics()
    for board, title, expr in queries():
        for name, matchers in selectors(expr):
            metric = exported[name]
            for label, (op, value) in matchers.items():
                assert label in metric.labels | TARGET_LABELS, (board, title, name, label)
                if label == "role":
                    roles = set(value.split("|")) if op == "=~" else {value}
                    assert roles <= metric.roles, (board, title, name, roles - metric.roles)


def test_template_variables_query_exported_metrics() -> None:
    """Every dashboard variable queries a label its metric actually exports."""
    exported = exported_metrics()
    for name, board in dashboards().items():
        for metric, label in variable_metrics(board):
            assert label in exported[metric].labels, (name, metric, label)


def test_slo_choices_are_bucket_bounds() -> None:
    """Goodput reads the histogram bucket at the SLO, so every SLO choice must be a bound."""
    (board,) = [b for n, b in dashboards().items() if n == "overview"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    for name, buckets in (("ttft_slo_s", TTFT_BUCKETS), ("tpot_slo_s", ITL_BUCKETS)):
        choices = [float(o["value"]) for o in variables[name]["options"]]
        assert choices and set(choices) <= set(buckets), name


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
def test_queries_parse_as_promql(tmp_path: Path) -> None:
    """promtool parses every expanded query (as recording rules; no server needed)."""
    rules = [{"record": f"check:q{i}", "expr": expr} for i, (_, _, expr) in enumerate(queries())]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], check=False,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_provider_loads_the_dashboards_folder() -> None:
    """The provider is a file provider; compose mounts deploy/grafana/dashboards at its path."""
    config = yaml.safe_load((PROVISIONING / "dashboards" / "supernode.yaml").read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def _scheduler_addresses(config: dict) -> set[str]:
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    static = jobs["supernode-scheduler"]["static_configs"][0]
    assert static["labels"]["role"] == "scheduler"
    (sd,) = jobs["supernode-workers"]["http_sd_configs"]
    match = re.fullmatch(r"http://([^/]+)/sd/targets", sd["url"])
    assert match, sd["url"]
    return {*static["targets"], match.group(1)}


def test_prometheus_configs_scrape_the_scheduler_and_discover_workers_through_it() -> None:
    """prometheus.yml (compose: scheduler:8000) and local.yml (127.0.0.1:8000) scrape the
    scheduler and take every worker from its /sd/targets, and differ only in that address and
    in compose's admin key (`authorization`, sent to the scheduler only)."""
    compose = (PROMETHEUS / "prometheus.yml").read_text()
    local = yaml.safe_load((PROMETHEUS / "local.yml").read_text())
    assert _scheduler_addresses(yaml.safe_load(compose)) == {"scheduler:8000"}
    assert _scheduler_addresses(local) == {"127.0.0.1:8000"}
    compose_here = yaml.safe_load(compose.replace("scheduler:8000", "127.0.0.1:8000"))
    for job in compose_here["scrape_configs"]:
        for section in (job, *job.get("http_sd_configs", [])):
            section.pop("authorization", None)
    assert compose_here == local


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
def test_prometheus_configs_are_valid(tmp_path: Path) -> None:
    """promtool accepts both Prometheus configs (compose and local)."""
    for name in ("prometheus.yml", "local.yml"):
        path = tmp_path / name  # promtool checks that the admin key file (a compose secret) exists
        path.write_text((PROMETHEUS / name).read_text()
                        .replace("/run/secrets/admin_key", str(tmp_path / "admin_key")))
        (tmp_path / "admin_key").write_text("key")
        result = subprocess.run([PROMTOOL, "check", "config", str(path)],
                                check=False, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_metrics_doc_lists_every_exported_metric() -> None:
    """docs/metrics.md has a row for every series family the services export."""
    doc = (ROOT / "docs" / "metrics.md").read_text()
    families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in exported_metrics()}
    missing = sorted(f for f in families if f"`{f}`" not in doc)
    assert not missing, f"docs/metrics.md lacks {missing}"
