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

from l7analytics.core.settings import Settings, for_cluster
from l7analytics.core.windows import Window, iso
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
    start: str, end: str, config_path: str | None, cluster: str | None = None
) -> list[dict[str, str]]:
    """Validate the settings and split the interval into hour windows, one extraction task
    each (a lake partition is an hour, and each partition is written by exactly one task)."""
    settings_for(config_path, cluster)
    window = Window.parse(start, end)
    return [{"start": iso(w.start), "end": iso(w.end)} for w in window.split(HOUR)]


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
) -> dict[str, Any]:
    """Read one window from Elasticsearch into the lake (partitions replaced whole)."""
    from l7analytics.jobs.pipeline import extract

    settings = settings_for(config_path, cluster)
    window = Window.parse(start, end)
    source = composition.es_source(settings, es)
    parquet = _lake(lake, lake_storage, cluster)
    quarantine = composition.quarantine(composition.quarantine_path(lake, window))
    result = extract(source, parquet, window, quarantine, run_mode=run_mode)
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
) -> dict[str, Any]:
    """Run the detectors over the window of the lake and publish to Elasticsearch."""
    from l7analytics.core.errors import L7AnalyticsError
    from l7analytics.jobs.pipeline import score

    settings = settings_for(config_path, cluster)
    parquet = _lake(lake, lake_storage, cluster)
    sinks = composition.es_sinks(settings, es)
    result = score(
        parquet,
        Window.parse(start, end),
        settings,
        sinks,
        composition.model_store(parquet),
        run_mode=run_mode,
    )
    if result.failed:
        failed = {d: result.outcomes[d].message for d in result.failed}
        raise L7AnalyticsError(f"detectors failed: {failed}")
    return {
        "window": [start, end],
        "records": result.records,
        "alerts": len(result.alerts),
        "alert_ids": sorted(a.id for a in result.alerts),
        "missing_hours": result.missing_hours,
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
