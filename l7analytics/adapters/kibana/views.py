"""What the analyst sees in Kibana, defined once: data views, saved searches, Lens charts and
the dashboard. :mod:`l7analytics.adapters.kibana.render` turns this into each Kibana
version's export format, so the two shipped sets cannot drift apart: a view is changed here,
both files are rendered again (``python -m l7analytics.adapters.kibana.render``) and the tests
check the result.

Ids are stable (``l7analytics-*``) so that importing again overwrites instead of duplicating.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ---------------------------------------------------------------- data views and searches


@dataclass(frozen=True)
class DataView:
    """An index pattern with its time field; ``labels`` are custom field labels."""

    id: str
    title: str
    name: str
    time_field: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SavedSearch:
    """A Discover search: a KQL query, columns, newest first on ``sort_field``."""

    id: str
    title: str
    description: str
    view: DataView
    columns: tuple[str, ...]
    sort_field: str
    query: str = ""


# ---------------------------------------------------------------- Lens columns


@dataclass(frozen=True)
class Count:
    """Number of documents (Lens' "count of records")."""

    id: str = "alerts"
    label: str = "Alerts"
    custom_label: bool = True


@dataclass(frozen=True)
class TopValues:
    """Terms: the ``size`` values of ``field`` with the most documents (``order_by`` metric)."""

    id: str
    field: str
    label: str
    order_by: str = "alerts"
    size: int = 10
    custom_label: bool = True


@dataclass(frozen=True)
class DateHistogram:
    """Documents per time bucket; the interval is Kibana's automatic one."""

    id: str
    field: str
    label: str
    custom_label: bool = False


@dataclass(frozen=True)
class Band:
    """One range of a :class:`Ranges` column; ``upper`` None means no upper bound."""

    lower: float
    upper: float | None
    label: str


@dataclass(frozen=True)
class Ranges:
    """Documents per numeric band of ``field``."""

    id: str
    field: str
    label: str
    bands: tuple[Band, ...]
    custom_label: bool = True


Column = Count | TopValues | DateHistogram | Ranges


# ---------------------------------------------------------------- Lens charts


@dataclass(frozen=True)
class BarChart:
    """An XY bar chart: ``x`` buckets, optionally split into stacked series by ``split``."""

    id: str
    title: str
    description: str
    view: DataView
    layer: str
    series_type: str  # bar_stacked, bar_horizontal
    x: Column
    metric: Count
    split: Column | None = None
    legend: bool = True

    @property
    def columns(self) -> tuple[Column, ...]:
        """Bucket columns first, the metric last, as Lens orders them."""
        buckets = (self.split, self.x) if self.split is not None else (self.x,)
        return (*buckets, self.metric)


@dataclass(frozen=True)
class DonutChart:
    """A donut: ``metric`` sliced by ``group``."""

    id: str
    title: str
    description: str
    view: DataView
    layer: str
    group: Column
    metric: Count

    @property
    def columns(self) -> tuple[Column, ...]:
        return (self.group, self.metric)


Chart = BarChart | DonutChart


# ---------------------------------------------------------------- the dashboard


@dataclass(frozen=True)
class Panel:
    """A saved chart or search on the 48-column dashboard grid."""

    target: Chart | SavedSearch
    index: str
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class Dashboard:
    id: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    time_from: str = "now-7d"
    time_to: str = "now"


# ---------------------------------------------------------------- the views


ALERTS = DataView(
    id="l7analytics-alerts",
    title="l7-anomaly-alerts*",
    name="l7analytics alerts",
    time_field="time",
    labels={
        "origin": "detector",
        "record.caller": "caller",
        "record.dest": "destination",
        "record.paths": "paths",
        "record.incident.callers": "incident callers",
        "record.incident.detectors": "incident detectors",
        "record.incident.destinations": "incident destinations",
        "record.incident.first_seen": "first seen",
        "record.incident.last_seen": "last seen",
    },
)
L7_LOGS = DataView(
    id="l7analytics-l7-logs",
    title="tigera_secure_ee_l7*",
    name="Calico L7 logs",
    time_field="end_time",
)

ALERT_COLUMNS = (
    "origin",
    "severity",
    "record.caller",
    "record.dest",
    "record.paths",
    "description",
)
#: An alert is an incident: every detector's verdicts about one caller in one period.
INCIDENT_COLUMNS = (
    "severity",
    "name",
    "record.incident.callers",
    "record.incident.detectors",
    "record.incident.destinations",
    "record.incident.first_seen",
    "record.incident.last_seen",
    "description",
)
INCIDENTS_SEARCH = SavedSearch(
    id="l7analytics-incidents",
    title="l7analytics: incidents",
    description="One row per incident (every detector's verdicts about one caller in one "
    "suppression period), newest first: callers, detectors, destinations, first and last seen.",
    view=ALERTS,
    columns=INCIDENT_COLUMNS,
    sort_field="time",
)
ALERTS_SEARCH = SavedSearch(
    id="l7analytics-alerts-search",
    title="l7analytics: alerts",
    description="Every l7analytics alert, newest first: detector, severity, caller, destination, "
    "paths.",
    view=ALERTS,
    columns=ALERT_COLUMNS,
    sort_field="time",
)
CRITICAL_SEARCH = SavedSearch(
    id="l7analytics-critical-alerts",
    title="l7analytics: newest critical alerts",
    description="Alerts with severity 90 or more, newest first.",
    view=ALERTS,
    columns=ALERT_COLUMNS,
    sort_field="time",
    query="severity >= 90",
)
L7_LOGS_SEARCH = SavedSearch(
    id="l7analytics-l7-logs-search",
    title="Calico L7 logs",
    description="Raw Calico L7 (HTTP) logs: caller, service, method, URL, response, request count.",
    view=L7_LOGS,
    columns=(
        "src_namespace", "src_name_aggr", "dest_service_name", "method", "url", "response_code",
        "count",
    ),
    sort_field="end_time",
)  # fmt: skip

ALERTS_OVER_TIME = BarChart(
    id="l7analytics-alerts-over-time",
    title="l7analytics: alerts over time by detector",
    description="Alerts per time bucket, stacked by detector (origin).",
    view=ALERTS,
    layer="alerts-over-time",
    series_type="bar_stacked",
    split=TopValues(id="detector", field="origin", label="detector"),
    x=DateHistogram(id="time", field="time", label="time"),
    metric=Count(),
)
TOP_CALLERS = BarChart(
    id="l7analytics-top-callers",
    title="l7analytics: top callers",
    description="Caller workloads with the most alerts.",
    view=ALERTS,
    layer="top-callers",
    series_type="bar_horizontal",
    x=TopValues(id="caller", field="record.caller", label="caller"),
    metric=Count(),
    legend=False,
)
TOP_DESTINATIONS = BarChart(
    id="l7analytics-top-destinations",
    title="l7analytics: top destinations",
    description="Destinations (the Service, else the workload) with the most alerts.",
    view=ALERTS,
    layer="top-destinations",
    series_type="bar_horizontal",
    x=TopValues(id="destination", field="record.dest", label="destination"),
    metric=Count(),
    legend=False,
)
SEVERITY_BREAKDOWN = DonutChart(
    id="l7analytics-severity-breakdown",
    title="l7analytics: severity breakdown",
    description="Alerts by severity band: low < 40, medium 40-69, high 70-89, critical 90+.",
    view=ALERTS,
    layer="severity",
    group=Ranges(
        id="band",
        field="severity",
        label="severity",
        bands=(
            Band(0, 40, "low (< 40)"),
            Band(40, 70, "medium (40-69)"),
            Band(70, 90, "high (70-89)"),
            Band(90, None, "critical (90+)"),
        ),
    ),
    metric=Count(),
)

DASHBOARD = Dashboard(
    id="l7analytics-alerts-dashboard",
    title="l7analytics: L7 alerts",
    description="Incidents raised by l7analytics from Calico L7 logs first (one per caller and "
    "period, every detector's verdicts in it), then over time by detector, severity bands, top "
    "callers and destinations, and the newest critical alerts.",
    panels=(
        Panel(INCIDENTS_SEARCH, "incidents", x=0, y=0, w=48, h=16),
        Panel(ALERTS_OVER_TIME, "alerts-over-time", x=0, y=16, w=32, h=14),
        Panel(SEVERITY_BREAKDOWN, "severity-breakdown", x=32, y=16, w=16, h=14),
        Panel(TOP_CALLERS, "top-callers", x=0, y=30, w=24, h=14),
        Panel(TOP_DESTINATIONS, "top-destinations", x=24, y=30, w=24, h=14),
        Panel(CRITICAL_SEARCH, "critical-alerts", x=0, y=44, w=48, h=18),
    ),
)

#: Everything, in import order: an object comes after every object it references.
DATA_VIEWS = (ALERTS, L7_LOGS)
SEARCHES = (INCIDENTS_SEARCH, ALERTS_SEARCH, CRITICAL_SEARCH, L7_LOGS_SEARCH)
CHARTS: tuple[Chart, ...] = (ALERTS_OVER_TIME, TOP_CALLERS, TOP_DESTINATIONS, SEVERITY_BREAKDOWN)
DASHBOARDS = (DASHBOARD,)
