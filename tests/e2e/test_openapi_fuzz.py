"""A bounded OpenAPI fuzz (schemathesis) of a running endpoint: no request it generates from
/openapi.json gets a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from services.launcher import Cluster
from tests.e2e.conftest import start_cluster

pytestmark = pytest.mark.e2e
MAX_EXAMPLES = 40


@pytest.fixture(scope="module")
def fuzz_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Fast modelled hardware (speedup 1000), so a generated max_tokens of thousands ends in
    seconds."""
    c = start_cluster(tmp_path_factory.mktemp("fuzz"), speedup=1000.0)
    yield c
    c.stop()


@pytest.fixture
def api_schema(fuzz_cluster: Cluster) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzz_cluster.endpoint}/openapi.json")


def test_the_schema_declares_the_request_bodies(api_schema: schemathesis.BaseSchema) -> None:
    """The generation and tokenize routes declare their JSON bodies, so a fuzzer generates
    real requests rather than empty ones."""
    raw = api_schema.raw_schema
    for path in ("/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize"):
        body = raw["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"], path


def test_no_generated_request_gets_a_server_error(api_schema: schemathesis.BaseSchema) -> None:
    """For every operation, MAX_EXAMPLES generated requests each get a non-5xx answer (the
    schemathesis pytest plugin does not run under pytest 9, so hypothesis drives it here).
    Bodies name the served model, so they reach validation and generation."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            if isinstance(case.body, dict) and "model" in case.body:
                case.body["model"] = "deepseek-r1"  # else nearly every body is a plain 404
            response = case.call(timeout=120)
            case.validate_response(response, checks=[schemathesis.checks.not_a_server_error])

        check()
