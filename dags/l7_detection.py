"""Detection: each data interval of Calico L7 logs, from Elasticsearch to the lake to alerts.

- ``plan`` validates the settings (a bad file fails here, once, with one line) and splits the
  interval into one extraction per cluster and hour (the clusters the settings list, or the
  one their ``source`` names, or the param ``cluster``);
- ``wait_for_logs`` waits, on the triggerer, until Calico has shipped the interval's last logs
  (its end plus ``read_delay``): a waiting interval holds no worker slot;
- ``extract`` (mapped: clusters x hours, spread over the workers) reads one cluster's hour
  from Elasticsearch and replaces its lake partitions; in an interval of ``map_reduce_hours``
  or more (a daily schedule, a wide backfill run) it also summarizes its hour for the
  detectors: the map step of scoring, spread over the workers with the extraction;
- ``by_cluster`` gathers the extractions per cluster;
- ``score`` (mapped: one per cluster) runs the detectors over the cluster's interval with the
  newest model trained before it (in a long interval: combines the hours' summaries, the
  reduce step) and publishes the alerts (idempotent ``_id``s). It waits for
  the previous interval's scoring (``depends_on_past``): an interval's alerts merge with the
  incidents its predecessors stored, and its baselines read their hours. A scoring that
  failed for good holds the later ones until it is cleared or succeeds.
Windows come only from ``data_interval_start/end``; a backfill or a clear rewrites the same
partitions and the same alert ids.

Settings: the Airflow Connection ``l7_elasticsearch`` (param ``es_conn_id``; a cluster of the
settings may name its own), for a lake on S3 the Connection ``aws_default`` (param
``aws_conn_id``; else the ``AWS_*`` variables), the YAML file in param ``config_path``
(default ``$L7_CONFIG``), the lake root in param ``lake`` (default ``$L7_LAKE``). The schedule
is ``$L7_DETECTION_CRON`` (default hourly); retries ``$L7_TASK_RETRIES`` (default 3), the
first after ``$L7_TASK_RETRY_DELAY`` seconds (default 30), doubling; at most
``$L7_EXTRACTS_PER_RUN`` extractions of a run at once (default 8).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task


class WaitForLogs(DateTimeSensorAsync):
    """Waits for ``target_time`` deferred, on the triggerer (no worker slot held); an
    interval whose logs are already final, as in any backfill, goes on without the round
    trip through the triggerer (about 10 s a run, measured with bench_scale.py)."""

    def execute(self, context):
        if datetime.now(UTC) >= self._moment:
            return None
        return super().execute(context)


LAKE = Asset(name="l7analytics_lake", uri="l7analytics://lake/l7")
MODEL = Asset(name="l7analytics_model", uri="l7analytics://models/l7.unusual_pair")
ALERTS = Asset(name="l7analytics_alerts", uri="l7analytics://alerts")


@dag(
    dag_id="l7_detection",
    schedule=CronDataIntervalTimetable(
        os.environ.get("L7_DETECTION_CRON", "0 * * * *"), timezone="UTC"
    ),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=4,
    default_args={
        "retries": int(os.environ.get("L7_TASK_RETRIES", "3")),
        "retry_delay": timedelta(seconds=int(os.environ.get("L7_TASK_RETRY_DELAY", "30"))),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
    },
    params={
        "config_path": Param(os.environ.get("L7_CONFIG", ""), type="string"),
        "lake": Param(os.environ.get("L7_LAKE", "/opt/airflow/l7lake"), type="string"),
        "es_conn_id": Param("l7_elasticsearch", type="string"),
        # A lake on S3: credentials from this Connection if it exists, else the AWS_* variables.
        "aws_conn_id": Param("aws_default", type="string"),
        # One Calico cluster ("": every cluster of the settings); they share a lake on S3.
        "cluster": Param(os.environ.get("L7_CLUSTER", ""), type="string"),
        # Intervals this long or longer are scored as a map/reduce over their hours.
        "map_reduce_hours": Param(6, type="integer", minimum=1),
    },
    tags=["l7analytics", "calico", "security"],
    doc_md=__doc__,
)
def l7_detection():
    @task
    def plan(params=None, data_interval_start=None, data_interval_end=None, ti=None) -> list:
        from l7analytics.adapters.airflow import fail_fast
        from l7analytics.jobs.tasks import plan_extraction, ready_at

        end = data_interval_end.isoformat()
        windows = fail_fast(
            lambda: plan_extraction(
                data_interval_start.isoformat(),
                end,
                params["config_path"],
                params["cluster"],
                params["lake"],
                params["map_reduce_hours"],
            )
        )
        ti.xcom_push(key="ready_at", value=ready_at(end, params["config_path"]))
        return windows

    # At most $L7_EXTRACTS_PER_RUN hours read at once per run: the load one run puts on
    # Calico's Elasticsearch (each task reads its hour in parallel slices too).
    @task(outlets=[LAKE], max_active_tis_per_dagrun=int(os.environ.get("L7_EXTRACTS_PER_RUN", "8")))
    def extract(window: dict, params=None, dag_run=None) -> dict:
        from l7analytics.adapters.airflow import es_connection, fail_fast, lake_storage, run_mode
        from l7analytics.jobs.tasks import extract_window

        return fail_fast(
            lambda: extract_window(
                window["start"],
                window["end"],
                config_path=params["config_path"],
                lake=params["lake"],
                es=es_connection(window["es_conn_id"] or params["es_conn_id"]),
                run_mode=run_mode(dag_run),
                lake_storage=lake_storage(params["aws_conn_id"], params["lake"]),
                cluster=window["cluster"],
                part_scope=window["part_scope"],
            )
        )

    @task
    def by_cluster(windows: list[dict], extracted: list[dict]) -> list[dict]:
        from l7analytics.jobs.tasks import by_cluster

        return by_cluster(list(windows), list(extracted))

    @task(inlets=[LAKE, MODEL], outlets=[ALERTS], depends_on_past=True)
    def score(
        cluster: dict,
        params=None,
        data_interval_start=None,
        data_interval_end=None,
        dag_run=None,
    ) -> dict:
        from l7analytics.adapters.airflow import es_connection, fail_fast, lake_storage, run_mode
        from l7analytics.jobs.tasks import score_window

        return fail_fast(
            lambda: score_window(
                data_interval_start.isoformat(),
                data_interval_end.isoformat(),
                config_path=params["config_path"],
                lake=params["lake"],
                es=es_connection(cluster["es_conn_id"] or params["es_conn_id"]),
                run_mode=run_mode(dag_run),
                lake_storage=lake_storage(params["aws_conn_id"], params["lake"]),
                cluster=cluster["cluster"],
                part_scope=cluster["part_scope"],
            )
        )

    planned = plan()
    # On the triggerer: the task defers at once, and no worker slot is held while it waits.
    wait = WaitForLogs(
        task_id="wait_for_logs", target_time="{{ ti.xcom_pull(task_ids='plan', key='ready_at') }}"
    )
    extracted = extract.expand(window=planned)
    planned >> wait >> extracted
    score.expand(cluster=by_cluster(planned, extracted))


l7_detection()
