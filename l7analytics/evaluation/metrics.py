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


def matches(alert: Mapping[str, Any], incident: Mapping[str, Any]) -> bool:
    """Same caller workload (or a relaying hop) and overlapping time."""
    callers = {incident.get("src_workload")}
    callers |= {hop.get("src_workload") for hop in incident.get("also_seen_as", [])}
    if alert["record"].get("caller") not in callers:
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
    """Per-detector recall, precision and alerts on benign events, for incidents in range."""

    def in_range(item: Mapping[str, Any]) -> bool:
        i_start, i_end = _span(item)
        return (start is None or i_end > start) and (end is None or i_start < end)

    incidents = [i for i in incidents if in_range(i)]
    malicious = [i for i in incidents if i.get("detector")]
    benign = [i for i in incidents if not i.get("detector")]
    report: dict[str, Any] = {"detectors": {}, "missed": [], "false_alerts": []}
    for detector in DETECTORS:
        own = [i for i in malicious if i["detector"] == detector]
        fired = [a for a in alerts if a["origin"] == detector]
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
    return report
