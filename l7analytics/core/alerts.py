"""The alert model: Calico security-event fields at the top level, the detail in ``record``.

An :class:`Alert` serializes to exactly the document Calico's Manager UI shows as a security
event (``calico-l7.md`` section 5): ``id``, ``time``, ``type``, ``origin``, ``name``,
``description``, ``severity`` (0-100), the source and destination fields, MITRE fields, and
``record`` holding what the detector measured. ``id`` is a hash of (detector, entity, window),
so re-running a window yields the same ids and an idempotent sink writes nothing new.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from l7analytics.core.windows import floor_time, iso

ALERT_TYPE = "anomaly_detection_job"
#: The ``record`` key of a correlated alert's incident (:mod:`l7analytics.core.incidents`).
INCIDENT = "incident"
#: Top-level fields of Calico's security-events schema this project writes.
EVENT_FIELDS: tuple[str, ...] = (
    "id",
    "time",
    "type",
    "origin",
    "name",
    "description",
    "severity",
    "host",
    "source_namespace",
    "source_name_aggr",
    "dest_namespace",
    "dest_name_aggr",
    "dest_service_name",
    "attack_vector",
    "mitre_tactic",
    "mitre_ids",
    "mitigations",
    "record",
)


def alert_id(detector: str, entity: str, window_start: datetime) -> str:
    """Deterministic id: the same detector, entity and window always give the same id."""
    key = f"{detector}\x1f{entity}\x1f{iso(window_start)}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def of_cluster(alerts: Iterable[Alert], cluster: str) -> list[Alert]:
    """``alerts`` with ids of ``cluster``'s own, for settings that list several clusters: they
    share the alerts index, and two clusters that run the same workloads would otherwise
    write over each other's alerts. (A single cluster keeps :func:`alert_id`'s ids, so its
    stored alerts stay the ones a re-run updates.)"""
    return [
        replace(a, id=hashlib.sha256(f"{cluster}\x1f{a.id}".encode()).hexdigest()[:32])
        for a in alerts
    ]


def severity_band(severity: int) -> str:
    """The band Calico's UI shows for a 0-100 severity."""
    if severity >= 90:
        return "critical"
    if severity >= 70:
        return "high"
    if severity >= 40:
        return "medium"
    return "low"


@dataclass(frozen=True, slots=True)
class Finding:
    """What a detector measured, in the keys every detector's ``record`` shares.

    The alerts index template maps them, the Kibana views and the evaluation read them, so they
    are typed once here; what is particular to one detector goes in ``details``.
    ``score`` is the detector's own number and ``score_meaning`` says its direction and the
    threshold it fires at; ``observed`` and ``thresholds`` are what was compared.
    """

    detector_version: str
    run_mode: str
    caller: str | None
    dest: str | None
    paths: list[str]
    path_details: list[dict[str, Any]]
    observed: dict[str, Any]
    thresholds: dict[str, Any]
    score: float | None
    score_meaning: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        shared = {name: getattr(self, name) for name in FINDING_FIELDS}
        return {**shared, **self.details}


#: The ``record`` keys every alert has (besides the window keys :meth:`Alert.create` adds).
FINDING_FIELDS: tuple[str, ...] = (
    "detector_version",
    "run_mode",
    "caller",
    "dest",
    "paths",
    "path_details",
    "observed",
    "thresholds",
    "score",
    "score_meaning",
)
#: The ``record`` keys :meth:`Alert.create` and :func:`suppress` write.
WINDOW_FIELDS: tuple[str, ...] = (
    "detector",
    "entity",
    "window_start",
    "window_end",
    "occurrences",
    "occurrence_windows",
    "first_window_start",
    "last_window_end",
    "suppression_period_start",
)


@dataclass(slots=True)
class Alert:
    """One finding. Build it with :meth:`create`, which sets ``id`` and the window fields."""

    id: str
    time: str
    origin: str
    name: str
    description: str
    severity: int
    record: dict[str, Any]
    type: str = ALERT_TYPE
    host: str | None = None
    source_namespace: str | None = None
    source_name_aggr: str | None = None
    dest_namespace: str | None = None
    dest_name_aggr: str | None = None
    dest_service_name: str | None = None
    attack_vector: str = "Network"
    mitre_tactic: str | None = None
    mitre_ids: list[str] = field(default_factory=list)
    mitigations: list[str] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        *,
        detector: str,
        entity: str,
        window_start: datetime,
        window_end: datetime,
        severity: float,
        finding: Finding,
        **fields: Any,
    ) -> Alert:
        """An alert for ``entity`` seen by ``detector`` in ``[window_start, window_end)``."""
        detail = {
            "detector": detector,
            "entity": entity,
            "window_start": iso(window_start),
            "window_end": iso(window_end),
            "occurrences": 1,
            "occurrence_windows": [iso(window_start)],
            **finding.to_record(),
        }
        return cls(
            id=alert_id(detector, entity, window_start),
            time=iso(window_end),
            origin=detector,
            severity=int(max(0, min(100, round(severity)))),
            record=detail,
            **fields,
        )

    @property
    def entity(self) -> str:
        return self.record["entity"]

    @property
    def detectors(self) -> list[str]:
        """Every detector with a verdict in this alert (an incident's, or its own origin)."""
        incident = self.record.get(INCIDENT)
        return list(incident["detectors"]) if incident else [self.origin]

    @property
    def severity_band(self) -> str:
        return severity_band(self.severity)

    def to_event(self) -> dict[str, Any]:
        """The security-event document (top-level Calico fields only, ``None`` left out)."""
        doc = asdict(self)
        return {k: doc[k] for k in EVENT_FIELDS if doc[k] is not None}


def suppress(alerts: Iterable[Alert], period: timedelta | None) -> list[Alert]:
    """Merge alerts of one detector and entity within the same suppression period.

    Periods are aligned to the epoch, so every run (scheduled, re-run, backfill) puts a window
    in the same period and derives the same id. The merged alert keeps the most severe
    occurrence's detail and counts occurrences; ``occurrence_windows`` is a set, so merging the
    same alert twice (as an idempotent sink does) changes nothing.
    """
    alerts = list(alerts)
    if not period:
        return sorted(alerts, key=_sort_key)
    groups: dict[tuple[str, str, datetime], list[Alert]] = defaultdict(list)
    for alert in alerts:
        start = datetime.fromisoformat(alert.record["window_start"].replace("Z", "+00:00"))
        groups[(alert.origin, alert.entity, floor_time(start, period))].append(alert)
    merged = []
    for (detector, entity, period_start), members in groups.items():
        merged.append(_merge(detector, entity, period_start, members))
    return sorted(merged, key=_sort_key)


def _merge(detector: str, entity: str, period_start: datetime, members: list[Alert]) -> Alert:
    worst = max(members, key=lambda a: (a.severity, a.record["window_start"]))
    record = {
        **worst.record,
        **occurrence_span([a.record for a in members]),
        "suppression_period_start": iso(period_start),
    }
    return replace(
        worst,
        id=alert_id(detector, entity, period_start),
        time=max(a.time for a in members),
        record=record,
    )


def occurrence_span(
    records: Iterable[Mapping[str, Any]], *, own_window: bool = True
) -> dict[str, Any]:
    """The occurrences of several records of one alert: the union of their windows (a set, so
    merging the same record twice changes nothing) and the span from the first to the last.
    A record may itself be merged already: its span is first_window_start..last_window_end;
    with ``own_window`` a record not merged yet spans its own window."""
    records = list(records)
    windows = sorted({w for r in records for w in r.get("occurrence_windows", ())})
    span: dict[str, Any] = {"occurrences": len(windows), "occurrence_windows": windows}
    for key, own, pick in (
        ("first_window_start", "window_start", min),
        ("last_window_end", "window_end", max),
    ):
        values = [r.get(key) or (r.get(own) if own_window else None) for r in records]
        if any(values):
            span[key] = pick(v for v in values if v)
    return span


def merge_stored(document: dict[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """An alert document merged with the one a sink already holds under its id (the same
    detector, entity and suppression period, written by an earlier run): the new detail, the
    higher severity, every occurrence window once and, for an incident, every verdict once.
    Writing the same document twice changes nothing, so sinks stay idempotent."""
    old_record = stored.get("record") or {}
    span = occurrence_span([document["record"], old_record], own_window=False)
    record = _merge_incident({**document["record"], **span}, old_record)
    severity = max(document["severity"], stored.get("severity", 0))
    return {**document, "severity": severity, "record": record}


def _sort_key(alert: Alert) -> tuple[str, int, str]:
    return (alert.time, -alert.severity, alert.id)


def incident_summary(verdicts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What an incident's verdicts add up to; also used when a sink merges two versions."""
    return {
        "detectors": sorted({v["detector"] for v in verdicts}),
        "callers": sorted({v["caller"] for v in verdicts if v["caller"]}),
        "destinations": sorted({v["dest"] for v in verdicts if v["dest"]}),
        "first_seen": min(v["first_window_start"] for v in verdicts),
        "last_seen": max(v["last_window_end"] for v in verdicts),
        "alerts": len(verdicts),
        "verdicts": sorted(verdicts, key=lambda v: (v["first_window_start"], v["id"])),
    }


def _merge_incident(record: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """``record.incident`` merged with the one a sink already holds under the same id: every
    verdict once (the newer version of a verdict wins), counts and span recomputed."""
    new, old = record.get(INCIDENT), stored.get(INCIDENT)
    if not isinstance(new, Mapping) or not isinstance(old, Mapping):
        return dict(record)
    verdicts = {v["id"]: v for v in old.get("verdicts", []) if _is_verdict(v)}
    verdicts.update({v["id"]: v for v in new.get("verdicts", [])})
    merged = {**new, **incident_summary(list(verdicts.values()))}
    return {**record, INCIDENT: merged}


def _is_verdict(value: Any) -> bool:
    """A stored verdict with every key a summary reads (an index may hold anything)."""
    keys = ("id", "detector", "first_window_start", "last_window_end")
    return (
        isinstance(value, Mapping)
        and all(isinstance(value.get(k), str) for k in keys)
        and all(k in value for k in ("caller", "dest"))
    )
