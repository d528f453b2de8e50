"""Counts tested as counts, expectations that follow the caller, and traffic shifts."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from l7analytics.detectors.pair_features import (
    client_error_evidence,
    expected_requests,
    volume_evidence,
)
from l7analytics.detectors.population import ShiftRule, find_shifts

BUCKET = pd.Timestamp(datetime(2026, 11, 20, 14, tzinfo=UTC))
LEVEL = 1e-6


def test_a_handful_of_requests_carries_no_volume_claim():
    few = volume_evidence(pd.Series([5.0]), pd.Series([1.0]), LEVEL)
    many = volume_evidence(pd.Series([500.0]), pd.Series([20.0]), LEVEL)
    assert few.iloc[0] < 1.5
    assert many.iloc[0] > 15


def test_the_bound_grows_with_the_evidence():
    counts = pd.Series([10.0, 100.0, 1000.0, 10000.0])
    ratio = volume_evidence(counts, counts / 10, LEVEL)
    assert ratio.is_monotonic_increasing
    assert ratio.iloc[-1] == pytest.approx(10, rel=0.1)


def test_five_errors_in_21_requests_are_no_claim_and_200_in_220_are():
    baseline = pd.Series([0.005, 0.005])
    evidence = client_error_evidence(
        pd.Series([5.0, 200.0]), pd.Series([21.0, 220.0]), baseline, LEVEL
    )
    assert evidence.iloc[0] < 0.25
    assert evidence.iloc[1] > 0.6


def pairs(volumes, baselines, caller="shop/frontend", dests=None, errors=None):
    n = len(volumes)
    frame = pd.DataFrame(
        {
            "bucket": [BUCKET] * n,
            "src_workload": [caller] * n if isinstance(caller, str) else caller,
            "dest": dests or [f"shop/svc{i}" for i in range(n)],
            "src_namespace": ["shop"] * n,
        }
    )
    observed = pd.DataFrame(
        {
            "requests": [float(v) for v in volumes],
            "baseline_requests": [float(b) for b in baselines],
            "known": [True] * n,
            "client_error_share": errors or [0.0] * n,
            "baseline_client_error_share": [0.005] * n,
        }
    )
    for quantity in ("bytes_out_per_request", "bytes_in_per_request", "latency_ms"):
        observed[quantity] = 100.0
        observed[f"baseline_{quantity}"] = 100.0
    return frame, observed


def test_the_expectation_follows_the_callers_typical_change_not_one_route():
    frame, observed = pairs([250, 500, 1000, 2000], [100, 200, 400, 800])
    assert (expected_requests(frame, observed) / observed["requests"]).round(1).eq(1.0).all()
    frame, observed = pairs([3000, 200, 400, 800], [100, 200, 400, 800])
    expected = expected_requests(frame, observed)
    assert expected.iloc[0] == pytest.approx(100, rel=0.05)


def test_a_cluster_wide_surge_is_one_shift():
    frame, observed = pairs([250] * 12, [100] * 12, caller=[f"c{i}" for i in range(12)])
    inside, shifts = find_shifts(frame, observed, ShiftRule())
    assert inside.all()
    assert {s["scope"] for s in shifts} >= {"cluster"}
    assert all(s["direction"] == "up" for s in shifts)


def test_one_pair_jumping_among_steady_neighbours_is_not_a_shift():
    frame, observed = pairs([3000] + [100] * 11, [100] * 12, caller=[f"c{i}" for i in range(12)])
    inside, shifts = find_shifts(frame, observed, ShiftRule())
    assert not inside.any() and shifts == []


def test_a_pair_far_beyond_its_shift_is_not_inside_it():
    frame, observed = pairs([6000] + [250] * 11, [100] * 12, caller=[f"c{i}" for i in range(12)])
    inside, _ = find_shifts(frame, observed, ShiftRule())
    assert not inside.iloc[0] and inside.iloc[1:].all()


def test_a_destination_denying_all_its_callers_is_a_destination_shift():
    callers = ["shop/a", "shop/b", "shop/c", "billing/d"]
    frame, observed = pairs(
        [100] * 4, [100] * 4, caller=callers, dests=["shop/auth"] * 4, errors=[0.9] * 4
    )
    inside, shifts = find_shifts(frame, observed, ShiftRule())
    assert inside.all()
    assert ("destination", "shop/auth") in {(s["scope"], s["key"]) for s in shifts}


def test_shift_alerts_are_off_by_default_and_one_per_window_when_on():
    from datetime import timedelta

    from l7analytics.core.settings import UnusualPairConfig
    from l7analytics.core.windows import Window
    from l7analytics.detectors.base import DetectionContext
    from l7analytics.detectors.unusual_pair import UnusualPairDetector

    start = BUCKET.to_pydatetime()
    shift = {
        "scope": "cluster", "key": "cluster", "bucket": "2026-11-20T14:00:00Z",
        "quantity": "requests", "direction": "up", "members": 40, "moved": 30,
        "typical_change": "2.4x requests",
    }  # fmt: skip
    context = DetectionContext(Window(start, start + timedelta(hours=2)), timedelta(hours=1))
    context.shifts += [shift, {**shift, "scope": "namespace", "key": "shop"}]
    assert UnusualPairDetector()._shift_alerts(context) == []
    on = UnusualPairDetector(UnusualPairConfig(shift_alerts=True))
    (alert,) = on._shift_alerts(context)
    assert alert.severity == 20 and alert.name == "Traffic shift"
    assert len(alert.record["shifts"]) == 2
    assert alert.record["caller"] is None


def test_every_feature_has_its_scale_documented():
    from l7analytics.detectors import pair_features

    assert set(pair_features.SCALE) == set(pair_features.FEATURES)
    for feature in pair_features.FEATURES:
        assert f"``{feature}``" in pair_features.__doc__
