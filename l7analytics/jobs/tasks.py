"""One function per scheduled task, for Airflow (or any other orchestrator); each builds its
adapters through :mod:`l7analytics.jobs.composition`.

Each takes plain, JSON-serializable arguments (window bounds as ISO strings, paths, the
Elasticsearch connection; ``None``: the settings' own; ``lake_storage``, the credentials of a
lake on object storage, ``None``: the standard variables; ``cluster``, the Calico cluster,
``None`` or empty: the settings') and returns a small JSON summary for
XCom, so DAG files stay thin and every task is a pure function of its data interval:
re-running, clearing or backfilling an interval rewrites the same partitions and the same alert ids.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from l7analytics.core.settings import Settings, cluster_names, for_cluster
from l7analytics.core.windows import Window, iso, parse_time
from l7analytics.jobs import composition

if TYPE_CHECKING:
    from l7analytics.adapters.elasticsearch.connection import EsConnection

HOUR = timedelta(hours=1)


def settings_for(config_path: str | None, cluster: str | None = None) -> Settings:
    """The job settings (defaults merged with the file, external rule lists read), for
    ``cluster`` when one is given; raises ConfigError in one line."""
    settings = composition.load_job_settings(config_path or None)
    return for_cluster(settings, cluster, "cluster") if cluster else settings


def _lake(lake: str, storage: dict[str, str] | None, cluster: str | None) -> Any:
    """The lake at ``lake`` for ``cluster`` (empty: the default one)."""
    return composition.open_lake(lake, storage=storage, cluster=cluster or None)


def plan_extraction(
    start: str,
    end: str,
    config_path: str | None,
    cluster: str | None = None,
    lake: str | None = None,
    map_reduce_hours: int = 6,
) -> list[dict[str, str]]:
    """Validate the settings and split the interval into one extraction task per cluster and
    hour (a lake partition is a cluster's hour, and each is written by exactly one task):
    ``cluster`` (``""``: the one the settings' ``source`` names), ``es_conn_id`` (the cluster's
    own Airflow Connection, or ``""``), ``start``, ``end``, ``part_scope``. ``cluster`` picks
    one cluster; ``None``: every cluster the settings list.

    An interval of ``map_reduce_hours`` or more is scored as a map/reduce: each extraction
    task also summarizes its hour for the detectors (the map step, spread over the workers)
    under ``part_scope``, and scoring combines the parts and detects (the reduce step). A
    shorter one (``part_scope`` empty) is scored by one task reading its records."""
    settings = settings_for(config_path)
    listed = {c.name: c for c in settings.elasticsearch.clusters}
    names = [cluster] if cluster else cluster_names(settings) or [""]
    for name in names:
        if name:
            for_cluster(settings, name, "cluster")  # a name the settings do not list fails
        if lake is not None:
            composition.check_lake_holds(lake, name)  # several need a lake on object storage
    from l7analytics.jobs.pipeline import part_name

    window = Window.parse(start, end)
    hours = list(window.split(HOUR))
    scope = part_name(window) if len(hours) >= map_reduce_hours else ""
    return [
        {
            "cluster": name,
            "es_conn_id": (listed[name].airflow_conn_id or "") if name in listed else "",
            "start": iso(w.start),
            "end": iso(w.end),
            "part_scope": scope,
        }
        for name in names
        for w in hours
    ]


def ready_at(end: str, config_path: str | None) -> str:
    """When Calico has shipped the logs of a window ending at ``end``: its end plus
    ``read_delay``. The orchestrator waits for it without holding a worker."""
    settings = settings_for(config_path)
    return iso(parse_time(end, name="end") + settings.elasticsearch.source.read_delay)


def by_cluster(windows: list[dict[str, str]], extracted: list[dict[str, Any]]) -> list[dict]:
    """One scoring task per cluster: its name, its connection and what was extracted for it
    (``windows`` as :func:`plan_extraction` made them, ``extracted`` in the same order)."""
    clusters: dict[str, dict[str, Any]] = {}
    for window, summary in zip(windows, extracted, strict=True):
        entry = clusters.setdefault(
            window["cluster"],
            {
                "cluster": window["cluster"],
                "es_conn_id": window["es_conn_id"],
                "part_scope": window.get("part_scope", ""),
                "records": 0,
            },
        )
        entry["records"] += summary.get("records", 0)
    return list(clusters.values())


def extract_window(
    start: str,
    end: str,
    *,
    config_path: str | None,
    lake: str,
    es: EsConnection | None,
    run_mode: str = "scheduled",
    lake_storage: dict[str, str] | None = None,
    cluster: str | None = None,
    part_scope: str = "",
) -> dict[str, Any]:
    """Read one window from Elasticsearch into the lake (partitions replaced whole); with a
    ``part_scope``, also the map step of scoring it (:func:`plan_extraction`). The
    orchestrator has waited for ``ready_at`` (:func:`plan_extraction`): a window that Calico
    may still be writing fails (and is retried), it never holds a worker while it waits."""
    from l7analytics.jobs.pipeline import extract, part_name, summarize_part

    settings = settings_for(config_path, cluster)
    window = Window.parse(start, end)
    source = composition.es_source(settings, es, wait=False)
    parquet = _lake(lake, lake_storage, cluster)
    quarantine = composition.quarantine(composition.quarantine_path(lake, window))
    result = extract(source, parquet, window, quarantine, run_mode=run_mode)
    if part_scope:
        summaries, meta = summarize_part(parquet, window, settings)
        composition.parts(parquet).save(part_scope, part_name(window), summaries, meta)
    return {
        "window": [start, end],
        "documents": result.documents,
        "records": result.records,
        "quarantined": result.quarantined,
        "unlogged_share": round(result.unlogged_share, 6),
        "partitions": [p["partition"] for p in result.partitions],
        "seconds": round(result.seconds, 2),
    }


def score_window(
    start: str,
    end: str,
    *,
    config_path: str | None,
    lake: str,
    es: EsConnection | None,
    run_mode: str = "scheduled",
    lake_storage: dict[str, str] | None = None,
    cluster: str | None = None,
    part_scope: str = "",
) -> dict[str, Any]:
    """Run the detectors over the window of the lake and publish to Elasticsearch; with a
    ``part_scope``, as the reduce step over the hours' parts, deleted once published."""
    from l7analytics.core.errors import L7AnalyticsError
    from l7analytics.jobs.pipeline import score

    settings = settings_for(config_path, cluster)
    parquet = _lake(lake, lake_storage, cluster)
    sinks = composition.es_sinks(settings, es)
    parts = composition.parts(parquet) if part_scope else None
    loaded = parts.load(part_scope) if parts is not None else None
    result = score(
        parquet,
        Window.parse(start, end),
        settings,
        sinks,
        composition.model_store(parquet),
        run_mode=run_mode,
        parts=loaded,
    )
    if result.failed:
        failed = {d: result.outcomes[d].message for d in result.failed}
        raise L7AnalyticsError(f"detectors failed: {failed}")
    if parts is not None:
        parts.clear(part_scope)
    return {
        "window": [start, end],
        "records": result.records,
        "alerts": len(result.alerts),
        "alert_ids": sorted(a.id for a in result.alerts),
        "missing_hours": result.missing_hours,
        "parts": len(loaded) if loaded is not None else 0,
        "traffic_shifts": result.shifts,
        "written": result.written,
        "outcomes": {
            d: {"status": o.status, "alerts": o.alerts, "model": o.model_version}
            for d, o in result.outcomes.items()
        },
        "seconds": round(result.seconds, 2),
    }


def train_model(
    start: str,
    end: str,
    *,
    config_path: str | None,
    lake: str,
    lake_storage: dict[str, str] | None = None,
    cluster: str | None = None,
) -> dict[str, Any]:
    """Fit every learning detector on ``[start, end)`` of the lake; new versions are saved."""
    from l7analytics.jobs.pipeline import train

    settings = settings_for(config_path, cluster)
    parquet = _lake(lake, lake_storage, cluster)
    results = train(
        parquet,
        Window.parse(start, end),
        settings,
        composition.model_store(parquet),
    )
    return {
        "training_window": [start, end],
        "models": [
            {"detector": r.detector, "version": r.version, "rows": r.rows, "path": r.path}
            for r in results
        ],
    }


def maintain_lake(
    *, lake: str, retention_hours: int, lake_storage: dict[str, str] | None = None
) -> dict[str, Any]:
    """Compact the lake's tables and delete versions older than ``retention_hours`` (object
    storage); a local lake replaces partitions whole and has nothing to compact."""
    parquet = composition.open_lake(lake, storage=lake_storage)
    maintain = getattr(parquet, "maintain", None)
    if maintain is None:
        parquet.recover()
        return {"lake": lake, "maintained": {}}
    from l7analytics.jobs.pipeline import LAKE_SUMMARIES

    return {"lake": lake, "maintained": maintain(retention_hours, LAKE_SUMMARIES)}
