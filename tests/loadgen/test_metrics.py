"""Reduction of per-request results to run metrics."""

from loadgen.config import ReportConfig, SloConfig
from loadgen.metrics import metrics_of_results
from loadgen.types import RequestResult


def test_peak_output_rate_counts_tokens_not_chunks() -> None:
    """With two tokens per chunk (MTP), the peak output rate counts both tokens of a chunk."""
    result = RequestResult(success=True, prompt_len=10, expected_output_len=20, output_tokens=20,
                           ttft_s=0.05, latency_s=0.5, started_at_s=0.0,
                           itls_s=(0.05,) * 9, usage_reported=True)
    metrics = metrics_of_results([result], duration_s=1.0, report=ReportConfig(), slo=SloConfig())
    assert metrics.max_output_tokens_per_s == 20
    assert metrics.total_output_tokens == 20 and metrics.completed == 1
