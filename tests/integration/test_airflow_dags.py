"""The DAGs on real Airflow (SQLite metadata DB) against a real Elasticsearch 8.x.

Three consecutive hourly intervals of generated Calico traffic with known incidents are run
with ``airflow dags test`` (which exits 1 when a task fails); the lake partitions and the
alerts index are checked, the same intervals are run again and nothing may change; the
training DAG publishes a model that the next detection run records; a run whose scoring fails
half-way (the alerts index refuses writes) and is then retried ends exactly like a clean run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from calico_index import delete_indices, generated_docs, index_docs

from l7analytics.adapters.lake import ParquetLake
from l7analytics.core.windows import Window

pytestmark = [pytest.mark.es, pytest.mark.parametrize("es_server", ["es8"], indirect=True)]

REPO = Path(__file__).resolve().parents[2]
DAY = datetime(2026, 11, 1, tzinfo=UTC)
HOURS = ["2026-11-01T05:00:00+00:00", "2026-11-01T06:00:00+00:00", "2026-11-01T07:00:00+00:00"]
INTERVALS = Window(datetime(2026, 11, 1, 4, tzinfo=UTC), datetime(2026, 11, 1, 7, tzinfo=UTC))
ALERTS = "l7-anomaly-alerts"


@pytest.fixture(scope="module")
def airflow(es_server, tmp_path_factory):
    """A throw-away AIRFLOW_HOME with a migrated SQLite DB, the ES connection and settings."""
    client = es_server.client()
    delete_indices(client, "tigera_secure_ee_l7.*")
    delete_indices(client, f"{ALERTS}*")
    delete_indices(client, "tigera_secure_ee_events.*")
    index_docs(client, generated_docs(DAY, hours=9))
    home = tmp_path_factory.mktemp("airflow")
    config = home / "l7analytics.yaml"
    config.write_text(
        "elasticsearch:\n  source:\n    read_delay: 0s\n  alerts:\n    calico_events: true\n"
        "detectors:\n  unusual_pair:\n    min_training_rows: 10\n    warmup: 0s\n"
    )
    host = es_server.url.split("//")[1]
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW_CONN_L7_ELASTICSEARCH": json.dumps(
            {
                "conn_type": "elasticsearch",
                "host": host.split(":")[0],
                "port": int(host.split(":")[1]),
                "schema": "http",
            }
        ),
        "L7_CONFIG": str(config),
        "L7_LAKE": str(home / "lake"),
        "L7_TRAINING_CRON": "0 * * * *",
        "L7_TASK_RETRIES": "0",
    }
    migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    return {"env": env, "client": client, "lake": ParquetLake(home / "lake")}


def dags_test(airflow, dag_id: str, logical_date: str, ok: bool = True):
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", dag_id, logical_date],
        env=airflow["env"], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if ok:
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc


def alerts(client) -> dict[str, dict]:
    client.indices.refresh(index=ALERTS)
    hits = client.search(index=ALERTS, size=1000)["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def lake_rows(lake: ParquetLake) -> pa.Table:
    table = lake.read_table(INTERVALS)
    return table.sort_by([(c, "ascending") for c in table.column_names])


@pytest.fixture(scope="module")
def first_runs(airflow):
    for hour in HOURS:
        dags_test(airflow, "l7_detection", hour)
    return {"alerts": alerts(airflow["client"]), "lake": lake_rows(airflow["lake"])}


def test_three_intervals_fill_the_lake_and_the_alerts_index(airflow, first_runs):
    lake = airflow["lake"]
    partitions = sorted(m["partition"] for m in lake.manifests(INTERVALS))
    assert partitions == ["date=2026-11-01/hour=04", "date=2026-11-01/hour=05",
                          "date=2026-11-01/hour=06"]  # fmt: skip
    for manifest in lake.manifests(INTERVALS):
        assert manifest["rows"] > 0 and manifest["source"].startswith("elasticsearch:")
        assert manifest["source_count"] >= manifest["rows"]  # the hour's verified _count
    found = first_runs["alerts"]
    origins = {a["origin"] for a in found.values()}
    assert {"l7.url_scan", "l7.restricted_url", "l7.unusual_pair"} <= origins
    callers = {a["record"]["caller"] for a in found.values() if a["origin"] == "l7.unusual_pair"}
    assert "shop/recommendationservice" in callers  # the 06:10 lateral movement
    events = airflow["client"].count(index="tigera_secure_ee_events.cluster.")["count"]
    assert events == len(found)


def test_running_the_same_intervals_again_changes_nothing(airflow, first_runs):
    for hour in HOURS:
        dags_test(airflow, "l7_detection", hour)
    assert alerts(airflow["client"]) == first_runs["alerts"]
    assert lake_rows(airflow["lake"]).equals(first_runs["lake"])


def test_training_then_detection_records_the_new_model(airflow, first_runs):
    proc = dags_test(airflow, "l7_training", "2026-11-01T07:00:00+00:00")
    versions = sorted((Path(airflow["env"]["L7_LAKE"]) / "models/l7.unusual_pair").iterdir())
    assert len(versions) == 1, proc.stdout[-2000:]
    dags_test(airflow, "l7_detection", "2026-11-01T08:00:00+00:00")
    client = airflow["client"]
    client.indices.refresh(index=ALERTS)
    hits = client.search(
        index=ALERTS, size=100, query={"term": {"record.window_start": "2026-11-01T07:00:00Z"}}
    )
    models = {
        h["_source"]["record"].get("model_version")
        for h in hits["hits"]["hits"]
        if h["_source"]["origin"] == "l7.unusual_pair"
    }
    assert models <= {versions[0].name}
    manifest = json.loads((versions[0] / "metadata.json").read_text())
    assert manifest["training_end"] == "2026-11-01T07:00:00Z"


def test_a_run_failing_half_way_then_retried_equals_a_clean_run(airflow, first_runs):
    hour = HOURS[1]
    # Elasticsearch goes away: the connection now points at a port nothing listens on.
    down = dict(
        airflow,
        env={
            **airflow["env"],
            "AIRFLOW_CONN_L7_ELASTICSEARCH": json.dumps(
                {"conn_type": "elasticsearch", "host": "127.0.0.1", "port": 9, "schema": "http"}
            ),
        },
    )
    failed = dags_test(down, "l7_detection", hour, ok=False)
    assert failed.returncode != 0
    assert "unreachable" in failed.stdout + failed.stderr
    # Nothing half-written: the lake is as the clean runs left it.
    assert lake_rows(airflow["lake"]).equals(first_runs["lake"])
    assert not list((Path(airflow["env"]["L7_LAKE"]) / "_staging").glob("*"))
    # The retry (Elasticsearch back) ends exactly like the clean run.
    dags_test(airflow, "l7_detection", hour)
    now = alerts(airflow["client"])
    assert {k: v for k, v in now.items() if k in first_runs["alerts"]} == first_runs["alerts"]
    assert lake_rows(airflow["lake"]).equals(first_runs["lake"])


def test_a_bad_configuration_fails_the_first_task_in_one_line(airflow, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("detectors:\n  url_scan:\n    min_error_template_share: 3\n")
    env = dict(airflow, env={**airflow["env"], "L7_CONFIG": str(bad)})
    proc = dags_test(env, "l7_detection", "2026-11-01T09:00:00+00:00", ok=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"config error in {bad}: detectors.url_scan.min_error_template_share" in output
    assert "AirflowFailException" in output  # failed at once, not retried


def test_the_dags_run_on_a_lake_on_s3_through_an_aws_connection(airflow, first_runs):
    """The same intervals with the lake on a real S3 API (moto), its credentials only in the
    ``aws_default`` Connection: the Delta lake holds the rows the local lake holds, the alerts
    are the same, and training saves the cluster's model beside the tables."""
    from s3_server import KEY, SECRET, make_bucket, s3_server

    from l7analytics.adapters.airflow import aws_options
    from l7analytics.jobs import composition

    client = airflow["client"]
    before = alerts(client)
    with s3_server() as endpoint:
        make_bucket(endpoint, "lake")
        extra = {"region_name": "us-east-1", "endpoint_url": endpoint}
        env = {k: v for k, v in airflow["env"].items() if not k.startswith("AWS_")}
        env["L7_LAKE"] = "s3://lake/dags"
        env["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
            {"conn_type": "aws", "login": KEY, "password": SECRET, "extra": extra}
        )
        on_s3 = dict(airflow, env=env)
        for hour in HOURS:
            proc = dags_test(on_s3, "l7_detection", hour)
            assert SECRET not in proc.stdout + proc.stderr
        options = aws_options("s3://lake/dags", KEY, SECRET, extra)
        lake = composition.open_lake("s3://lake/dags", storage=options)
        assert lake_rows(lake).equals(first_runs["lake"])
        assert lake.missing_hours(INTERVALS) == []
        assert alerts(client) == before  # the same alert ids and contents: nothing new
        dags_test(on_s3, "l7_training", "2026-11-01T07:00:00+00:00")
        versions = composition.model_store(lake).versions("l7.unusual_pair")
        assert [v["training_end"] for v in versions] == ["2026-11-01T07:00:00Z"]
