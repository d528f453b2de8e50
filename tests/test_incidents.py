"""Incidents: every detector's verdicts about one caller in one period, as one alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from l7analytics.core.alerts import Alert, Finding, merge_stored
from l7analytics.core.incidents import correlate

T0 = datetime(2026, 11, 20, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)
PERIOD = timedelta(hours=6)


def alert(detector, caller, dest, paths, hours=0, severity=60):
    start = T0 + hours * HOUR
    return Alert.create(
        detector=detector,
        entity=f"{caller}|{dest}",
        window_start=start,
        window_end=start + HOUR,
        severity=severity,
        name=f"{detector} finding",
        description=f"{caller} did something to {dest}.",
        finding=Finding(
            detector_version="1",
            run_mode="scheduled",
            caller=caller,
            dest=dest,
            paths=paths,
            path_details=[],
            observed={},
            thresholds={},
            score=None,
            score_meaning="",
        ),
    )


SCANNER = "-/pub"
INGRESS = "ingress-nginx/ingress-nginx-controller"


def scan_through_ingress(hours=0):
    return [
        alert("l7.restricted_url", SCANNER, INGRESS, ["/.git/config", "/.env"], hours, 90),
        alert("l7.restricted_url", INGRESS, "shop/frontend", ["/.git/config"], hours, 90),
        alert("l7.url_scan", SCANNER, None, ["/admin", "/.env"], hours, 86),
        alert("l7.url_scan", INGRESS, None, ["/admin"], hours, 98),
    ]


def test_a_relayed_scan_is_one_incident_led_by_the_most_severe_verdict():
    (incident,) = correlate(scan_through_ingress(), PERIOD)
    record = incident.record["incident"]
    assert record["root_caller"] == SCANNER
    assert record["callers"] == sorted([SCANNER, INGRESS])
    assert record["detectors"] == ["l7.restricted_url", "l7.url_scan"]
    assert record["alerts"] == 4 and len(record["verdicts"]) == 4
    assert incident.severity == 98 and incident.origin == "l7.url_scan"
    assert incident.name.endswith("(+3 more)")
    assert "Also in this incident" in incident.description
    assert incident.detectors == ["l7.restricted_url", "l7.url_scan"]


def test_the_incident_id_is_the_root_caller_and_period_whatever_else_was_seen():
    whole = correlate(scan_through_ingress(), PERIOD)
    first_hour_only = correlate(scan_through_ingress()[:1], PERIOD)
    later = correlate([alert("l7.url_scan", SCANNER, None, ["/x"], 3)], PERIOD)
    assert whole[0].id == first_hour_only[0].id == later[0].id


def test_other_callers_and_other_periods_are_other_incidents():
    alerts = [
        *scan_through_ingress(),
        alert("l7.unusual_pair", "shop/currencyservice", "billing/billing-api", ["/api"], 1),
        alert("l7.url_scan", SCANNER, None, ["/admin"], 7),  # the next 6-hour period
    ]
    incidents = correlate(alerts, PERIOD)
    assert len(incidents) == 3
    assert len({a.id for a in incidents}) == 3


def test_a_caller_with_no_shared_paths_is_not_a_relay():
    alerts = [
        alert("l7.restricted_url", SCANNER, INGRESS, ["/.git/config"]),
        alert("l7.unusual_pair", INGRESS, "shop/frontend", ["/checkout"]),
    ]
    assert len(correlate(alerts, PERIOD)) == 2


def test_alerts_about_nobody_stay_alone():
    shift = alert("l7.unusual_pair", None, None, [])
    assert correlate([shift], PERIOD) == [shift]


def test_a_sink_merges_incident_verdicts_once_across_runs():
    first = correlate(scan_through_ingress()[:2], PERIOD)[0]
    second = correlate(scan_through_ingress(), PERIOD)[0]
    assert first.id == second.id
    stored = first.to_event()
    merged = merge_stored(second.to_event(), stored)
    assert merged["record"]["incident"]["alerts"] == 4
    again = merge_stored(merged, merged)
    assert again == merged


def test_a_hostile_stored_verdict_is_ignored():
    second = correlate(scan_through_ingress(), PERIOD)[0].to_event()
    stored = {
        "record": {"incident": {"verdicts": [{"id": 1}, "x", {"detector": None}]}},
        "severity": 10,
    }
    merged = merge_stored(second, stored)
    assert merged["record"]["incident"]["alerts"] == 4
