"""Training: refit the unusual-pair model on the lake's recent history and publish a version.

Each run trains on ``[data_interval_end - training_days, data_interval_end)`` and saves a new
model version under ``<lake>/models/l7.unusual_pair/``; the detection DAG scores every window
with the newest model trained on data that ended before it (so a backfill of last week uses
last week's model). Then ``maintain`` compacts the lake and deletes versions older than
``lake_retention_hours`` (object storage; a local lake has nothing to do). The schedule is
``$L7_TRAINING_CRON`` (default daily at 00:30 UTC).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task

LAKE = Asset(name="l7analytics_lake", uri="l7analytics://lake/l7")
MODEL = Asset(name="l7analytics_model", uri="l7analytics://models/l7.unusual_pair")


@dag(
    dag_id="l7_training",
    schedule=CronDataIntervalTimetable(
        os.environ.get("L7_TRAINING_CRON", "30 0 * * *"), timezone="UTC"
    ),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": int(os.environ.get("L7_TASK_RETRIES", "2")),
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
    },
    params={
        "config_path": Param(os.environ.get("L7_CONFIG", ""), type="string"),
        "lake": Param(os.environ.get("L7_LAKE", "/opt/airflow/l7lake"), type="string"),
        "training_days": Param(7, type="integer", minimum=1, maximum=60),
        "lake_retention_hours": Param(168, type="integer", minimum=1),
        "aws_conn_id": Param("aws_default", type="string"),
        # The Calico cluster ("": the settings'); clusters share a lake on object storage.
        "cluster": Param(os.environ.get("L7_CLUSTER", ""), type="string"),
    },
    tags=["l7analytics", "calico", "security"],
    doc_md=__doc__,
)
def l7_training():
    @task(inlets=[LAKE], outlets=[MODEL])
    def train(params=None, data_interval_end=None) -> dict:
        from l7analytics.adapters.airflow import fail_fast, lake_storage
        from l7analytics.jobs.tasks import train_model

        start = data_interval_end - timedelta(days=params["training_days"])
        return fail_fast(
            lambda: train_model(
                start.isoformat(),
                data_interval_end.isoformat(),
                config_path=params["config_path"],
                lake=params["lake"],
                lake_storage=lake_storage(params["aws_conn_id"], params["lake"]),
                cluster=params["cluster"],
            )
        )

    @task(inlets=[LAKE])
    def maintain(trained: dict, params=None) -> dict:
        from l7analytics.adapters.airflow import fail_fast, lake_storage
        from l7analytics.jobs.tasks import maintain_lake

        return fail_fast(
            lambda: maintain_lake(
                lake=params["lake"],
                retention_hours=params["lake_retention_hours"],
                lake_storage=lake_storage(params["aws_conn_id"], params["lake"]),
            )
        )

    maintain(train())


l7_training()
