"""Detection: each data interval of Calico L7 logs, from Elasticsearch to the lake to alerts.

``plan`` validates the settings (a bad file fails here, once, with one line) and splits the
interval into hours; ``extract`` (one mapped task per hour, so a day-long backfill spreads
over workers) reads the hour from Elasticsearch and replaces its lake partitions; ``score``
runs the detectors over the interval with the newest model trained before it and publishes the
alerts (idempotent ``_id``s). Windows come only from ``data_interval_start/end``.

Settings: the Airflow Connection ``l7_elasticsearch`` (param ``es_conn_id``), for a lake on
S3 the Connection ``aws_default`` (param ``aws_conn_id``; else the ``AWS_*`` variables), the
YAML file in param ``config_path`` (default ``$L7_CONFIG``), the lake root in param ``lake``
(default ``$L7_LAKE``). The schedule is ``$L7_DETECTION_CRON`` (default hourly).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task

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
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
    },
    params={
        "config_path": Param(os.environ.get("L7_CONFIG", ""), type="string"),
        "lake": Param(os.environ.get("L7_LAKE", "/opt/airflow/l7lake"), type="string"),
        "es_conn_id": Param("l7_elasticsearch", type="string"),
        # A lake on S3: credentials from this Connection if it exists, else the AWS_* variables.
        "aws_conn_id": Param("aws_default", type="string"),
        # The Calico cluster ("": the settings'); clusters share a lake on object storage.
        "cluster": Param(os.environ.get("L7_CLUSTER", ""), type="string"),
    },
    tags=["l7analytics", "calico", "security"],
    doc_md=__doc__,
)
def l7_detection():
    @task
    def plan(params=None, data_interval_start=None, data_interval_end=None) -> list[dict]:
        from l7analytics.adapters.airflow import fail_fast
        from l7analytics.jobs.tasks import plan_extraction

        return fail_fast(
            lambda: plan_extraction(
                data_interval_start.isoformat(),
                data_interval_end.isoformat(),
                params["config_path"],
                params["cluster"],
            )
        )

    @task(outlets=[LAKE], max_active_tis_per_dagrun=4)
    def extract(window: dict, params=None, dag_run=None) -> dict:
        from l7analytics.adapters.airflow import es_connection, fail_fast, lake_storage, run_mode
        from l7analytics.jobs.tasks import extract_window

        return fail_fast(
            lambda: extract_window(
                window["start"],
                window["end"],
                config_path=params["config_path"],
                lake=params["lake"],
                es=es_connection(params["es_conn_id"]),
                run_mode=run_mode(dag_run),
                lake_storage=lake_storage(params["aws_conn_id"], params["lake"]),
                cluster=params["cluster"],
            )
        )

    @task(inlets=[LAKE, MODEL], outlets=[ALERTS])
    def score(
        extracted: list[dict],
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
                es=es_connection(params["es_conn_id"]),
                run_mode=run_mode(dag_run),
                lake_storage=lake_storage(params["aws_conn_id"], params["lake"]),
                cluster=params["cluster"],
            )
        )

    score(extract.expand(window=plan()))


l7_detection()
