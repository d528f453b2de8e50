"""Incidents: what every detector says about one caller in one suppression period, as one alert.

An internet scanner that also fetches ``/.git/config`` is one incident, yet it trips the scan
detector and the restricted-URL detector, on every destination it touches, at both hops of
the proxy that relays it. Analysts want one entry for it. :func:`correlate` makes it:

- *relays* are folded: when a caller's requests reach a workload that sends the same paths on
  (an ingress controller, an API gateway), the relaying hop's alerts belong to the first
  caller's incident (the ``root`` caller);
- every alert about the same root caller in the same suppression period (aligned to the epoch,
  like :func:`~l7analytics.core.alerts.suppress`) becomes one alert: the most severe member
  leads (its origin, name, source and destination fields), the description names the others,
  and ``record.incident`` lists every contributing verdict with its detector, destination and
  window, and the first and last time the incident was seen.

The incident id is a hash of the root caller and the period, so a re-run, a backfill or the
next hourly run of the same period writes the same id, and sinks merge the verdicts
(:func:`~l7analytics.core.alerts.merge_stored`). Alerts about no caller and no destination
stay as they are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from l7analytics.core.alerts import INCIDENT, Alert, alert_id, incident_summary, occurrence_span
from l7analytics.core.windows import floor_time, iso, parse_time

#: At most this many characters of the other verdicts in the incident's description.
_ALSO_LIMIT = 600


def correlate(alerts: Iterable[Alert], period: timedelta) -> list[Alert]:
    """One alert per incident (root caller and suppression period); see the module docstring."""
    by_period: dict[datetime, list[Alert]] = defaultdict(list)
    alone: list[Alert] = []
    for alert in alerts:
        if alert.record.get("caller") is None and alert.record.get("dest") is None:
            alone.append(alert)
            continue
        start = parse_time(alert.record.get("first_window_start") or alert.record["window_start"])
        by_period[floor_time(start, period)].append(alert)
    incidents = [
        _incident(root, period_start, members)
        for period_start, members in sorted(by_period.items())
        for root, members in _by_root(members).items()
    ]
    return sorted([*incidents, *alone], key=lambda a: (a.time, -a.severity, a.id))


def _by_root(alerts: Sequence[Alert]) -> dict[str, list[Alert]]:
    """Alerts grouped by the caller at the start of their relay chain."""
    relayed_by = _relays(alerts)
    groups: dict[str, list[Alert]] = defaultdict(list)
    for alert in alerts:
        caller = _caller(alert)
        seen = {caller}
        while caller in relayed_by and relayed_by[caller] not in seen:
            caller = relayed_by[caller]
            seen.add(caller)
        groups[caller].append(alert)
    return groups


def _relays(alerts: Sequence[Alert]) -> dict[str, str]:
    """``relay -> caller`` when a caller's alert names the relay as destination and the relay's
    own alerts carry some of the same paths (what it received, it sent on)."""
    paths_from: dict[str, set[str]] = defaultdict(set)
    for alert in alerts:
        paths_from[_caller(alert)] |= set(alert.record.get("paths") or ())
    relayed_by: dict[str, str] = {}
    for alert in alerts:
        caller, dest = _caller(alert), alert.record.get("dest")
        if dest is None or dest == caller or dest in relayed_by:
            continue
        if set(alert.record.get("paths") or ()) & paths_from.get(dest, set()):
            relayed_by[dest] = caller
    return relayed_by


def _caller(alert: Alert) -> str:
    return alert.record.get("caller") or "-"


def _incident(root: str, period_start: datetime, members: list[Alert]) -> Alert:
    members = sorted(members, key=lambda a: (-a.severity, a.record["window_start"], a.id))
    lead = members[0]
    span = occurrence_span([m.record for m in members])
    verdicts = [_verdict(m) for m in members]
    incident = {
        "id": alert_id(INCIDENT, root, period_start),
        "root_caller": None if root == "-" else root,
        "period_start": iso(period_start),
        **incident_summary(verdicts),
    }
    record = {
        **lead.record,
        **span,
        "suppression_period_start": iso(period_start),
        "incident": incident,
    }
    return replace(
        lead,
        id=incident["id"],
        time=max(m.time for m in members),
        name=lead.name + (f" (+{len(members) - 1} more)" if len(members) > 1 else ""),
        description=_description(lead.description, verdicts[1:]),
        record=record,
    )


def _verdict(alert: Alert) -> dict[str, Any]:
    record = alert.record
    return {
        "id": alert.id,
        "detector": alert.origin,
        "name": alert.name,
        "severity": alert.severity,
        "caller": record.get("caller"),
        "dest": record.get("dest"),
        "first_window_start": record.get("first_window_start") or record["window_start"],
        "last_window_end": record.get("last_window_end") or record["window_end"],
        "verdicts": list(record.get("verdicts") or record.get("rule_ids") or []),
        "description": alert.description,
    }


def _description(lead: str, others: Sequence[Mapping[str, Any]]) -> str:
    if not others:
        return lead
    also = "; ".join(
        f"{v['detector'].removeprefix('l7.')} on {v['dest'] or 'several destinations'}"
        + (f" by {v['caller']}" if v["caller"] else "")
        for v in others
    )
    if len(also) > _ALSO_LIMIT:
        also = also[:_ALSO_LIMIT].rsplit(";", 1)[0] + "; ..."
    return f"{lead} Also in this incident: {also}."
