"""Precision and recall of alerts against labelled incidents (generated or hand-labelled).

An alert is *true* when its caller and window match a labelled malicious incident (of any
kind: a scanner that also fetched ``/.git/config`` is rightly caught by two detectors). A
request relayed by a proxy is logged at both hops, so an incident's ``also_seen_as`` callers
(the ingress controller forwarding an internet scan) match too, and the incident's end is
extended by one Calico flush interval, because a window on ``end_time`` sees requests up to
five minutes after they happened. An
incident is *found* by its own detector when one of that detector's alerts matches it. Alerts
that match a labelled benign event (a rollout, new product ids, a CronJob) are counted apart:
they are the false positives a naive detector would raise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from l7analytics.core.windows import parse_time
from l7analytics.detectors import REGISTRY

#: Every registered detector, in registry order (the one list of detector ids).
DETECTORS = tuple(REGISTRY)
FLUSH_INTERVAL = timedelta(minutes=5)


def _span(item: Mapping[str, Any]) -> tuple[datetime, datetime]:
    return parse_time(item["start"]), parse_time(item["end"])


def _alert_span(alert: Mapping[str, Any]) -> tuple[datetime, datetime]:
    record = alert["record"]
    start = record.get("first_window_start", record["window_start"])
    end = record.get("last_window_end", record["window_end"])
    return parse_time(start), parse_time(end)


def alert_callers(alert: Mapping[str, Any]) -> set[str]:
    """The callers an alert speaks of: its own, and every caller of its incident."""
    record = alert["record"]
    incident = record.get("incident") or {}
    return {c for c in (record.get("caller"), *incident.get("callers", ())) if c}


def alert_detectors(alert: Mapping[str, Any]) -> set[str]:
    """The detectors with a verdict in an alert (an incident's, or its origin)."""
    incident = alert["record"].get("incident") or {}
    return set(incident.get("detectors") or ()) | {alert["origin"]}


def matches(alert: Mapping[str, Any], incident: Mapping[str, Any]) -> bool:
    """Same caller workload (or a relaying hop) and overlapping time."""
    callers = {incident.get("src_workload")}
    callers |= {hop.get("src_workload") for hop in incident.get("also_seen_as", [])}
    if not alert_callers(alert) & callers:
        return False
    a_start, a_end = _alert_span(alert)
    i_start, i_end = _span(incident)
    return a_start < i_end + FLUSH_INTERVAL and i_start < a_end


def evaluate(
    alerts: Sequence[Mapping[str, Any]],
    incidents: Sequence[Mapping[str, Any]],
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """Per-detector recall, precision and alerts on benign events, for incidents in range;
    per kind of incident, how many were found and how many alerts each raised."""

    def in_range(item: Mapping[str, Any]) -> bool:
        i_start, i_end = _span(item)
        return (start is None or i_end > start) and (end is None or i_start < end)

    incidents = [i for i in incidents if in_range(i)]
    malicious = [i for i in incidents if i.get("detector")]
    benign = [i for i in incidents if not i.get("detector")]
    report: dict[str, Any] = {"detectors": {}, "missed": [], "false_alerts": []}
    for detector in DETECTORS:
        own = [i for i in malicious if i["detector"] == detector]
        fired = [a for a in alerts if detector in alert_detectors(a)]
        found = [i for i in own if any(matches(a, i) for a in fired)]
        true = [a for a in fired if any(matches(a, i) for i in malicious)]
        on_benign = [a for a in fired if a not in true and any(matches(a, b) for b in benign)]
        report["detectors"][detector] = {
            "incidents": len(own),
            "found": len(found),
            "recall": len(found) / len(own) if own else 1.0,
            "alerts": len(fired),
            "true_alerts": len(true),
            "precision": len(true) / len(fired) if fired else 1.0,
            "benign_alerts": len(on_benign),
        }
        report["missed"] += [i["id"] for i in own if i not in found]
        report["false_alerts"] += [
            {"id": a["id"], "origin": a["origin"], "description": a["description"]}
            for a in fired
            if a not in true
        ]
    report["by_kind"] = _by_kind(alerts, malicious)
    report["alerts"] = len(alerts)
    report["incidents"] = len(malicious)
    report["alerts_per_incident"] = len(alerts) / len(malicious) if malicious else 0.0
    return report


def _by_kind(
    alerts: Sequence[Mapping[str, Any]], incidents: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per kind of incident: how many, how many any alert found, and the alerts per incident
    (every alert matching it, whichever detector raised it)."""
    kinds: dict[str, dict[str, Any]] = {}
    for incident in incidents:
        entry = kinds.setdefault(
            incident["kind"], {"incidents": 0, "found": 0, "alerts": 0, "missed": []}
        )
        hits = sum(matches(a, incident) for a in alerts)
        entry["incidents"] += 1
        entry["alerts"] += hits
        entry["found"] += hits > 0
        if not hits:
            entry["missed"].append(incident["id"])
    for entry in kinds.values():
        entry["recall"] = entry["found"] / entry["incidents"]
        entry["alerts_per_incident"] = entry["alerts"] / entry["incidents"]
    return dict(sorted(kinds.items()))
