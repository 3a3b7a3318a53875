"""Typed, frozen configuration of one benchmark run; built once by the CLI, read everywhere."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SLO_METRICS = ("ttft", "tpot", "e2el")
PERCENTILE_METRICS = ("ttft", "tpot", "itl", "e2el")
COMPLETIONS_ENDPOINT = "/v1/completions"


@dataclass(frozen=True)
class EndpointConfig:
    """Where and how requests are sent.

    `base_url` is the server root (a trailing `/v1` is accepted and not doubled); `endpoint`
    is `/v1/completions` or `/v1/chat/completions`. `extra_body` is merged into every request
    body last, so it can override anything. `request_timeout_s` bounds one whole request.

    `speedup` is the server's model seconds per wall second (supernode's emulator at
    `--speedup 0.1` runs ten times slower than the hardware it models; any real server is 1.0).
    The load generator works in model time: arrival offsets are model seconds, divided by
    `speedup` to get wall seconds, and every time it measures (latencies, run duration, hence
    throughputs) is multiplied by `speedup`, so a run against a slowed-down emulator reports
    the same figures as one at full speed. `request_timeout_s` is wall seconds.
    """

    base_url: str
    endpoint: str = COMPLETIONS_ENDPOINT
    model: str = ""
    api_key: str | None = None
    ignore_eos: bool = False
    temperature: float = 0.0
    extra_body: dict = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    request_timeout_s: float = 3600.0
    speedup: float = 1.0
    send_seeds: bool = False
    """Give every request its own `seed` (`request_seed(--seed, index)`), so a seeded server's
    output, and supernode's token counts, are reproducible; `supernode sim` seeds its requests
    the same way."""

    def __post_init__(self) -> None:
        if not 0 < self.speedup < math.inf:
            raise ValueError(f"speedup must be a finite number > 0, got {self.speedup}")

    @property
    def is_chat(self) -> bool:
        return self.endpoint.rstrip("/").endswith("chat/completions")

    @property
    def api_url(self) -> str:
        base = self.base_url.rstrip("/")
        path = self.endpoint if self.endpoint.startswith("/") else "/" + self.endpoint
        if base.endswith("/v1") and path.startswith("/v1/"):
            path = path[len("/v1") :]
        return base + path

    @property
    def backend(self) -> str:
        """vLLM's backend name for this endpoint kind (`openai` or `openai-chat`)."""
        return "openai-chat" if self.is_chat else "openai"


def request_seed(seed: int, index: int) -> int:
    """The seed of the request at `index` of a run seeded with `seed` (a non-negative int64)."""
    return (seed * 1_000_003 + index) % 2**63


@dataclass(frozen=True)
class LoadConfig:
    """How requests are released.

    `request_rate` is in requests per model second (`inf`: all at once; see
    `EndpointConfig.speedup`); inter-arrival gaps are gamma with shape `burstiness` (1.0 =
    Poisson, `inf` = evenly spaced). `max_concurrency` caps requests in flight (None: no cap).
    `num_warmups` requests are sent first and never counted. `time_scale` divides trace
    timestamps, which are model seconds too (2.0 replays a trace twice as fast).
    """

    request_rate: float = math.inf
    burstiness: float = 1.0
    max_concurrency: int | None = None
    num_warmups: int = 0
    seed: int = 0
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.request_rate > 0:
            raise ValueError(f"request_rate must be > 0, got {self.request_rate}")
        if not self.burstiness > 0:
            raise ValueError(f"burstiness must be > 0, got {self.burstiness}")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if not self.time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {self.time_scale}")


@dataclass(frozen=True)
class SloConfig:
    """Per-request service-level objectives in milliseconds (DistServe goodput).

    A completed request is *good* when every set limit holds (value <= limit). A request with
    fewer than two output tokens has TPOT 0 for this purpose, as in vLLM.
    `attainment_target` is the fraction of all requests (failed ones included) that must be
    good for a request rate to count as meeting the SLO.
    """

    limits_ms: dict[str, float] = field(default_factory=dict)
    attainment_target: float = 0.9

    def __post_init__(self) -> None:
        for name, value in self.limits_ms.items():
            if name not in SLO_METRICS:
                raise ValueError(f"unknown SLO metric {name!r}; use one of {SLO_METRICS}")
            if value < 0:
                raise ValueError(f"SLO {name} must be >= 0 ms, got {value}")
        if not 0 < self.attainment_target <= 1:
            raise ValueError(f"attainment_target must be in (0, 1], got {self.attainment_target}")

    @property
    def enabled(self) -> bool:
        return bool(self.limits_ms)


@dataclass(frozen=True)
class ReportConfig:
    """Which statistics are reported: metrics in `percentile_metrics` get mean, median, std
    and each percentile in `percentiles` (0-100)."""

    percentile_metrics: tuple[str, ...] = PERCENTILE_METRICS
    percentiles: tuple[float, ...] = (50.0, 90.0, 99.0)
