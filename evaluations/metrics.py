"""The figures of a load test: a pure function over per-request records.

Definitions follow vLLM's serving benchmark (``benchmarks/benchmark_serving.py``, ``calculate_metrics``):

- TTFT: time from sending a request to its first token, over successful requests.
- TPOT: per successful request with more than one output token, ``(e2e latency - TTFT) / (tokens - 1)``.
- ITL: every gap between consecutive token chunks, over all successful requests (one list).
- E2EL: end-to-end latency of successful requests.
- request throughput = completed / duration; output throughput = output tokens of completed / duration.
- percentiles interpolate linearly between ranks (NumPy's default), reported in milliseconds.
"""

import math
from dataclasses import dataclass, field

PERCENTILES = (50, 90, 99)
LATENCY_METRICS = ("ttft", "tpot", "itl", "e2el")
FIRST_ERRORS = 5


@dataclass(frozen=True)
class RequestRecord:
    """What one request measured; times in seconds from the moment it was sent."""

    success: bool
    latency: float
    ttft: float | None = None
    itl: tuple[float, ...] = field(default_factory=tuple)
    output_tokens: int = 0
    error: str = ""


def percentile(values, q):
    """The q-th percentile (0..100) of ``values`` with linear interpolation; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution_ms(values):
    """mean, p50, p90, p99 of ``values`` (seconds) in milliseconds; each None when there are no values."""
    summary = {"mean": (sum(values) / len(values) * 1000) if values else None}
    for q in PERCENTILES:
        value = percentile(values, q)
        summary[f"p{q}"] = None if value is None else value * 1000
    return summary


def summarize(records, duration):
    """The stored results of a run of ``records`` that took ``duration`` seconds (wall clock)."""
    completed = [r for r in records if r.success]
    failed = [r for r in records if not r.success]
    output_tokens = sum(r.output_tokens for r in completed)
    tpots = [(r.latency - r.ttft) / (r.output_tokens - 1) for r in completed if r.output_tokens > 1]
    itls = [gap for r in completed for gap in r.itl]
    samples = {
        "ttft": [r.ttft for r in completed],
        "tpot": tpots,
        "itl": itls,
        "e2el": [r.latency for r in completed],
    }
    return {
        "completed": len(completed),
        "failed": len(failed),
        "errors": [r.error for r in failed[:FIRST_ERRORS]],
        "duration_s": duration,
        "total_output_tokens": output_tokens,
        "request_throughput": len(completed) / duration if duration > 0 else 0.0,
        "output_throughput": output_tokens / duration if duration > 0 else 0.0,
        **{f"{name}_ms": distribution_ms(samples[name]) for name in LATENCY_METRICS},
        # Kept for the latency distribution charts.
        "samples_ms": {
            "ttft": [round(v * 1000, 3) for v in samples["ttft"]],
            "e2el": [round(v * 1000, 3) for v in samples["e2el"]],
        },
    }
