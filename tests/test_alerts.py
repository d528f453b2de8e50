"""Alerts: deterministic ids, Calico security-event documents, suppression over periods."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from l7analytics.core.alerts import (
    ALERT_TYPE,
    EVENT_FIELDS,
    FINDING_FIELDS,
    WINDOW_FIELDS,
    Alert,
    Finding,
    alert_id,
    of_cluster,
    severity_band,
    suppress,
)

HOUR = timedelta(hours=1)
#: 03:00 UTC: the 00:00-06:00 six-hour period holds 03:00, 04:00 and 05:00.
T = datetime(2026, 11, 20, 3, tzinfo=UTC)

CALICO_EVENT_FIELDS = {
    "id", "time", "type", "description", "severity", "origin", "name", "dismissed", "host",
    "protocol", "source_ip", "source_port", "source_namespace", "source_name",
    "source_name_aggr", "dest_ip", "dest_port", "dest_namespace", "dest_name", "dest_name_aggr",
    "dest_service_name", "attack_vector", "mitre_tactic", "mitre_ids", "mitigations", "record",
    "geo_info", "cluster", "generated_time",
}  # fmt: skip


def finding(**details) -> Finding:
    """A finding with only ``details`` set (the shared keys empty)."""
    return Finding(
        detector_version="1",
        run_mode="scheduled",
        caller=None,
        dest=None,
        paths=[],
        path_details=[],
        observed={},
        thresholds={},
        score=None,
        score_meaning="",
        details=details,
    )


def make(hour=0, severity=60, entity="shop/frontend", detector="l7.url_scan", **record):
    start = T + hour * HOUR
    return Alert.create(
        detector=detector,
        entity=entity,
        window_start=start,
        window_end=start + HOUR,
        severity=severity,
        finding=finding(hour=hour, **record),
        name="URL scan",
        description=f"{entity} did something at {hour}",
        source_namespace="shop",
        mitre_tactic="Reconnaissance",
        mitre_ids=["T1595.003"],
    )


# -- ids -----------------------------------------------------------------------------------


def test_alert_id_is_deterministic():
    first = alert_id("l7.url_scan", "-/pub", T)
    assert first == alert_id("l7.url_scan", "-/pub", T)
    assert len(first) == 32
    int(first, 16)  # hex


def test_alert_id_changes_with_each_part():
    base = alert_id("l7.url_scan", "-/pub", T)
    assert alert_id("l7.restricted_url", "-/pub", T) != base
    assert alert_id("l7.url_scan", "shop/frontend", T) != base
    assert alert_id("l7.url_scan", "-/pub", T + HOUR) != base


def test_alert_id_same_instant_in_another_timezone():
    from zoneinfo import ZoneInfo

    local = T.astimezone(ZoneInfo("Europe/Berlin"))
    assert alert_id("d", "e", local) == alert_id("d", "e", T)


# -- create ------------------------------------------------------------------------------------


def test_two_clusters_with_the_same_workloads_get_their_own_alert_ids():
    """Several clusters share one alerts index; the same finding in each is two alerts."""
    alert = make()
    (east,), (west,) = of_cluster([alert], "east"), of_cluster([alert], "west")
    assert len({alert.id, east.id, west.id}) == 3
    assert of_cluster([alert], "east")[0].id == east.id  # deterministic: re-runs update it
    assert (east.record, east.description) == (alert.record, alert.description)


def test_create_sets_window_fields():
    alert = make(hour=1, severity=70.6, caller="shop/frontend")
    assert alert.id == alert_id("l7.url_scan", "shop/frontend", T + HOUR)
    assert alert.time == "2026-11-20T05:00:00Z"
    assert alert.origin == "l7.url_scan"
    assert alert.type == ALERT_TYPE == "anomaly_detection_job"
    assert alert.severity == 71
    assert alert.entity == "shop/frontend"
    assert alert.record["detector"] == "l7.url_scan"
    assert alert.record["window_start"] == "2026-11-20T04:00:00Z"
    assert alert.record["window_end"] == "2026-11-20T05:00:00Z"
    assert alert.record["occurrences"] == 1
    assert alert.record["occurrence_windows"] == ["2026-11-20T04:00:00Z"]
    assert alert.record["caller"] == "shop/frontend"


@pytest.mark.parametrize(("given", "stored"), [(-5, 0), (0, 0), (99.4, 99), (150, 100)])
def test_create_clamps_severity(given, stored):
    assert make(severity=given).severity == stored


@pytest.mark.parametrize(
    ("severity", "band"),
    [(0, "low"), (39, "low"), (40, "medium"), (69, "medium"), (70, "high"), (90, "critical")],
)
def test_severity_band(severity, band):
    assert severity_band(severity) == band
    assert make(severity=severity).severity_band == band


# -- to_event ----------------------------------------------------------------------------------


def test_to_event_has_only_calico_security_event_fields():
    event = make(severity=80).to_event()
    assert set(event) <= CALICO_EVENT_FIELDS
    assert set(event) <= set(EVENT_FIELDS)
    for required in ("time", "type", "description", "severity", "origin"):
        assert required in event
    # None values are left out rather than written as null.
    assert "host" not in event
    assert "dest_namespace" not in event
    assert event["source_namespace"] == "shop"
    assert event["mitre_ids"] == ["T1595.003"]
    assert event["record"]["hour"] == 0
    assert 0 <= event["severity"] <= 100
    json.dumps(event)  # serializable as is


def test_to_event_is_stable():
    assert make().to_event() == make().to_event()


# -- suppress ----------------------------------------------------------------------------------


def test_suppress_merges_same_detector_and_entity_within_a_period():
    alerts = [make(0, 70), make(1, 80), make(2, 60)]
    (merged,) = suppress(alerts, timedelta(hours=6))
    period_start = datetime(2026, 11, 20, 0, tzinfo=UTC)
    assert merged.id == alert_id("l7.url_scan", "shop/frontend", period_start)
    assert merged.severity == 80
    assert merged.record["hour"] == 1  # the most severe occurrence's detail
    assert merged.record["occurrences"] == 3
    assert merged.record["occurrence_windows"] == [
        "2026-11-20T03:00:00Z",
        "2026-11-20T04:00:00Z",
        "2026-11-20T05:00:00Z",
    ]
    assert merged.record["first_window_start"] == "2026-11-20T03:00:00Z"
    assert merged.record["last_window_end"] == "2026-11-20T06:00:00Z"
    assert merged.record["suppression_period_start"] == "2026-11-20T00:00:00Z"
    assert merged.time == "2026-11-20T06:00:00Z"


def test_suppress_keeps_apart_other_detectors_entities_and_periods():
    alerts = [
        make(0),
        make(1),
        make(0, entity="-/pub"),
        make(0, detector="l7.restricted_url"),
        make(3),  # 06:00: the next six-hour period
    ]
    merged = suppress(alerts, timedelta(hours=6))
    assert len(merged) == 4
    keys = sorted((a.origin, a.entity, a.record["suppression_period_start"]) for a in merged)
    assert keys == [
        ("l7.restricted_url", "shop/frontend", "2026-11-20T00:00:00Z"),
        ("l7.url_scan", "-/pub", "2026-11-20T00:00:00Z"),
        ("l7.url_scan", "shop/frontend", "2026-11-20T00:00:00Z"),
        ("l7.url_scan", "shop/frontend", "2026-11-20T06:00:00Z"),
    ]


def test_suppress_periods_are_epoch_aligned_whatever_the_batch():
    # A run over 03:00-05:00 and a backfill over 04:00-06:00 land in the same period and id.
    first = suppress([make(0), make(1)], timedelta(hours=6))
    second = suppress([make(1), make(2)], timedelta(hours=6))
    assert [a.id for a in first] == [a.id for a in second]


def test_suppress_is_order_independent():
    alerts = [make(0, 70), make(1, 80), make(2, 60), make(0, 50, entity="-/pub")]
    forward = suppress(alerts, timedelta(hours=6))
    backward = suppress(list(reversed(alerts)), timedelta(hours=6))
    assert forward == backward


def test_suppress_counts_the_same_window_once():
    (merged,) = suppress([make(0), make(0), make(1)], timedelta(hours=6))
    assert merged.record["occurrences"] == 2


def test_merging_twice_is_idempotent():
    period = timedelta(hours=6)
    once = suppress([make(0, 70), make(1, 80), make(2, 60)], period)
    assert suppress(once, period) == once
    assert suppress(once + once, period) == once


def test_merging_a_merged_alert_with_an_original_is_idempotent():
    period = timedelta(hours=6)
    originals = [make(0, 70), make(1, 80), make(2, 60)]
    once = suppress(originals, period)
    # An idempotent sink merges what it stored with a re-run's alerts.
    again = suppress([*once, originals[0]], period)
    assert again == once


def test_merging_adds_a_later_window():
    period = timedelta(hours=6)
    stored = suppress([make(0, 70), make(1, 60)], period)
    (updated,) = suppress([*stored, make(2, 50)], period)
    assert updated.record["occurrences"] == 3
    assert updated.record["first_window_start"] == "2026-11-20T03:00:00Z"
    assert updated.record["last_window_end"] == "2026-11-20T06:00:00Z"
    assert updated.id == stored[0].id


@pytest.mark.parametrize("period", [None, timedelta(0)])
def test_no_suppression_keeps_every_alert_sorted(period):
    alerts = [make(2), make(0), make(1)]
    result = suppress(alerts, period)
    assert [a.record["hour"] for a in result] == [0, 1, 2]
    assert [a.id for a in result] == [make(h).id for h in (0, 1, 2)]


def test_the_index_template_maps_every_shared_record_key():
    from l7analytics.adapters.elasticsearch.templates import (
        ALERT_MAPPING,
        STORED_ONLY_RECORD_FIELDS,
    )

    mapped = set(ALERT_MAPPING["properties"]["record"]["properties"])
    shared = set(FINDING_FIELDS) | set(WINDOW_FIELDS)
    assert shared - STORED_ONLY_RECORD_FIELDS <= mapped
    assert shared >= STORED_ONLY_RECORD_FIELDS  # nothing listed there by mistake


def test_every_detector_writes_the_shared_keys():
    alert = make()
    assert set(FINDING_FIELDS) | {"detector", "entity", "window_start", "window_end"} <= set(
        alert.record
    )
