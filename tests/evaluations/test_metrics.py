"""The figures of a run, from hand-made records with known answers, and properties over any records."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluations.metrics import RequestRecord, percentile, summarize


def test_percentile_interpolates_linearly_like_numpy():
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 90) == pytest.approx(3.7)
    assert percentile(values, 100) == 4.0
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 50) is None


def test_summary_of_hand_made_records():
    records = [
        RequestRecord(success=True, ttft=0.1, itl=(0.02, 0.02, 0.02), latency=0.16, output_tokens=4),
        RequestRecord(success=True, ttft=0.3, itl=(0.05,), latency=0.35, output_tokens=2),
        RequestRecord(success=False, latency=0.01, error="HTTP 500: boom"),
    ]
    result = summarize(records, duration=0.5)
    assert (result["completed"], result["failed"], result["errors"]) == (2, 1, ["HTTP 500: boom"])
    assert result["total_output_tokens"] == 6
    assert result["request_throughput"] == pytest.approx(4.0)
    assert result["output_throughput"] == pytest.approx(12.0)
    assert result["ttft_ms"] == pytest.approx({"mean": 200.0, "p50": 200.0, "p90": 280.0, "p99": 298.0})
    # TPOT per request: (160 - 100) / 3 = 20 ms and (350 - 300) / 1 = 50 ms.
    assert result["tpot_ms"] == pytest.approx({"mean": 35.0, "p50": 35.0, "p90": 47.0, "p99": 49.7})
    # ITL pools every gap: 20, 20, 20, 50 ms.
    assert result["itl_ms"] == pytest.approx({"mean": 27.5, "p50": 20.0, "p90": 41.0, "p99": 49.1})
    assert result["e2el_ms"]["mean"] == pytest.approx(255.0)
    assert result["samples_ms"] == {"ttft": [100.0, 300.0], "e2el": [160.0, 350.0]}


def test_single_token_requests_have_no_tpot_and_failures_only_count():
    records = [RequestRecord(success=True, ttft=0.2, latency=0.2, output_tokens=1)]
    records += [RequestRecord(success=False, latency=0.1, error=f"error {i}") for i in range(7)]
    result = summarize(records, duration=1.0)
    assert result["tpot_ms"] == {"mean": None, "p50": None, "p90": None, "p99": None}
    assert result["itl_ms"]["p99"] is None
    assert result["errors"] == [f"error {i}" for i in range(5)]  # the first five
    assert result["failed"] == 7


def test_nothing_measured():
    result = summarize([], duration=0.0)
    assert result["completed"] == 0 and result["request_throughput"] == 0.0
    assert result["e2el_ms"]["mean"] is None


@st.composite
def uniform_records(draw):
    """Successful requests that each stream ``tokens`` tokens ``gap`` apart after ``ttft``."""
    gap = draw(st.floats(min_value=0.001, max_value=1.0))
    records = []
    for _ in range(draw(st.integers(min_value=1, max_value=20))):
        ttft = draw(st.floats(min_value=0.001, max_value=5.0))
        tokens = draw(st.integers(min_value=2, max_value=50))
        itl = (gap,) * (tokens - 1)
        records.append(RequestRecord(success=True, ttft=ttft, itl=itl, latency=ttft + gap * (tokens - 1),
                                     output_tokens=tokens))
    return gap, records


@given(uniform_records())
def test_known_token_gap_is_both_tpot_and_itl(case):
    gap, records = case
    result = summarize(records, duration=10.0)
    for metric in ("tpot_ms", "itl_ms"):
        for statistic in ("mean", "p50", "p90", "p99"):
            assert result[metric][statistic] == pytest.approx(gap * 1000, rel=1e-6)


records_strategy = st.lists(
    st.builds(
        RequestRecord,
        success=st.booleans(),
        latency=st.floats(min_value=0.01, max_value=10.0),
        ttft=st.floats(min_value=0.0, max_value=0.01),
        itl=st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=5).map(tuple),
        output_tokens=st.integers(min_value=0, max_value=100),
        error=st.text(max_size=10),
    ),
    max_size=40,
)


@given(records_strategy, st.floats(min_value=0.1, max_value=100.0))
def test_summary_invariants(records, duration):
    result = summarize(records, duration)
    completed = [r for r in records if r.success]
    assert result["completed"] + result["failed"] == len(records)
    assert result["request_throughput"] * duration == pytest.approx(len(completed))
    assert result["total_output_tokens"] == sum(r.output_tokens for r in completed)
    for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"):
        figures = result[metric]
        if figures["mean"] is None:
            continue
        assert figures["p50"] <= figures["p90"] + 1e-9 <= figures["p99"] + 2e-9
    if completed:
        low, high = min(r.latency for r in completed), max(r.latency for r in completed)
        assert low * 1000 - 1e-6 <= result["e2el_ms"]["p50"] <= high * 1000 + 1e-6


@given(st.lists(st.floats(min_value=0, max_value=1e6), max_size=200), st.integers(min_value=1, max_value=50))
def test_histogram_counts_every_value_in_order(values, bins):
    from deploy_portal.portal.charts import histogram

    counted = histogram(values, bins)
    assert sum(count for _, _, count in counted) == len(values)
    assert all(low <= high for low, high, _ in counted)
    assert all(a[1] <= b[0] + 1e-6 for a, b in zip(counted, counted[1:], strict=False))
