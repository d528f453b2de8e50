"""The detection DAG spread over machines as production runs it: PostgreSQL (metadata) and Redis
(broker) from Debian's packages, the scheduler, dag-processor, api-server, triggerer and two
Celery workers as separate processes (``scripts/celery_stack.py``), a real Elasticsearch 8.19
holding two Calico clusters, and the lake on a real S3 API (moto).

The scheduler's own data intervals drive everything (``airflow backfill create``, never
``dag.test()``):
- a backfill of 6 hourly intervals over 2 clusters completes: every mapped extract and score
  succeeds, tasks ran on both workers, and the lake and the alerts index equal those of the
  same intervals run one by one, in this process;
- a worker killed with SIGKILL during an extract: the task is retried on the other worker and
  the result is the same;
- a backfill over intervals already run changes nothing;
- an interval whose logs are not yet final waits on the triggerer (deferred), holding no
  worker slot, and is extracted once they are.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from calico_index import delete_indices, generated_docs, index_docs

from l7analytics.core.windows import Window

pytestmark = [pytest.mark.es, pytest.mark.parametrize("es_server", ["es8"], indirect=True)]

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from celery_stack import CeleryStack  # noqa: E402

DAY = datetime(2026, 11, 1, tzinfo=UTC)
FIRST, LAST = "2026-11-01T04:00:00+00:00", "2026-11-01T09:00:00+00:00"  # logical dates
INTERVALS = Window(datetime(2026, 11, 1, 4, tzinfo=UTC), datetime(2026, 11, 1, 10, tzinfo=UTC))
CLUSTERS = ("cluster", "east")
ALERTS, REFERENCE_ALERTS = "l7-anomaly-alerts", "l7-reference-alerts"
LAKE, REFERENCE_LAKE = "s3://lake/celery", "s3://lake/reference"
SETTINGS = """\
elasticsearch:
  source:
    read_delay: {read_delay}
  alerts:
    index: {alerts}
    calico_events: {events}
  clusters:
    - name: cluster
    - name: east
detectors:
  unusual_pair:
    min_training_rows: 10
    warmup: 0s
"""
DONE = {"success", "failed", "upstream_failed", "skipped", "removed"}


@pytest.fixture(scope="module")
def world(es_server, tmp_path_factory):
    """Elasticsearch with two clusters' logs, an S3 API with a bucket, the settings."""
    from s3_server import KEY, SECRET, make_bucket, s3_server

    client = es_server.client()
    for pattern in (
        "tigera_secure_ee_l7.*",
        f"{ALERTS}*",
        f"{REFERENCE_ALERTS}*",
        "tigera_secure_ee_events.*",
    ):
        delete_indices(client, pattern)
    index_docs(client, generated_docs(DAY, hours=11))
    east = "tigera_secure_ee_l7.east.fluentd-20261101-{:06d}"
    index_docs(client, generated_docs(DAY, hours=11, seed=5), rollover=east)
    home = tmp_path_factory.mktemp("celery")
    config = home / "l7analytics.yaml"
    config.write_text(SETTINGS.format(read_delay="0s", alerts=ALERTS, events="true"))
    reference = home / "reference.yaml"
    reference.write_text(SETTINGS.format(read_delay="0s", alerts=REFERENCE_ALERTS, events="false"))
    with s3_server() as endpoint:
        make_bucket(endpoint, "lake")
        extra = {"region_name": "us-east-1", "endpoint_url": endpoint}
        host, port = es_server.url.split("//")[1].split(":")
        yield {
            "client": client,
            "home": home,
            "config": config,
            "reference": reference,
            "es": {"conn_type": "elasticsearch", "host": host, "port": int(port), "schema": "http"},
            "aws": {"conn_type": "aws", "login": KEY, "password": SECRET, "extra": extra},
        }


@pytest.fixture(scope="module")
def stack(world):
    env = {
        "AIRFLOW_CONN_L7_ELASTICSEARCH": json.dumps(world["es"]),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(world["aws"]),
        "L7_CONFIG": str(world["config"]),
        "L7_LAKE": LAKE,
        "L7_QUARANTINE_DIR": str(world["home"] / "quarantine"),
        "L7_TASK_RETRIES": "2",
        "L7_TASK_RETRY_DELAY": "1",
        # A lost worker's task is failed (then retried) 15 s after its last heartbeat.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        # Only the backfills run: no run of today's hour from the schedule.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    }
    # Not under pytest's private tmp (mode 700): the postgres user must reach its data.
    workdir = Path(f"/tmp/l7analytics-celery-{world['home'].name}")
    with CeleryStack(workdir, workers=2, dags=REPO / "dags", env=env) as running:
        running.wait_for_dag("l7_detection")
        running.airflow("dags", "unpause", "l7_detection")  # a paused DAG's backfills wait
        yield running


def query(stack: CeleryStack, sql: str, *args) -> list[tuple]:
    return stack.query(sql, *args)


def backfill(stack: CeleryStack, first: str, last: str, *extra: str, **kwargs) -> int:
    return stack.backfill("l7_detection", first, last, *extra, **kwargs)


def runs_of(stack: CeleryStack, backfill_id: int) -> list[tuple[str, str]]:
    return stack.backfill_runs(backfill_id)


def wait_for_backfill(stack: CeleryStack, backfill_id: int) -> None:
    stack.wait_for_backfill(backfill_id)


def task_instances(stack: CeleryStack, run_ids: list[str]) -> list[dict]:
    rows = query(
        stack,
        "SELECT run_id, task_id, map_index, state, hostname, try_number "
        "FROM task_instance WHERE dag_id = 'l7_detection' AND run_id = ANY(%s)",
        run_ids,
    )
    keys = ("run_id", "task_id", "map_index", "state", "hostname", "try_number")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def earlier_tries(stack: CeleryStack, run_ids: list[str]) -> list[dict]:
    rows = query(
        stack,
        "SELECT run_id, task_id, map_index, state, hostname, try_number "
        "FROM task_instance_history WHERE dag_id = 'l7_detection' "
        "AND run_id = ANY(%s)",
        run_ids,
    )
    keys = ("run_id", "task_id", "map_index", "state", "hostname", "try_number")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def alerts(client, index: str) -> dict[str, dict]:
    client.indices.refresh(index=index)
    hits = client.search(index=index, size=2000)["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def lake_rows(world, root: str) -> dict[str, object]:
    from l7analytics.adapters.airflow import aws_options
    from l7analytics.jobs import composition

    aws = world["aws"]
    options = aws_options(root, aws["login"], aws["password"], aws["extra"])
    rows = {}
    for cluster in CLUSTERS:
        table = composition.open_lake(root, storage=options, cluster=cluster).read_table(INTERVALS)
        rows[cluster] = table.sort_by([(c, "ascending") for c in table.column_names])
    return rows


@pytest.fixture(scope="module")
def reference(world):
    """The same intervals run one by one in this process: each hour extracted, then scored,
    cluster by cluster, into their own lake and alerts index."""
    from l7analytics.adapters.airflow import aws_options
    from l7analytics.adapters.elasticsearch.connection import EsConnection
    from l7analytics.jobs.tasks import extract_window, score_window

    es = world["es"]
    connection = EsConnection.from_airflow(
        host=es["host"], port=es["port"], schema="http", login=None, password=None, extra={}
    )
    aws = world["aws"]
    storage = aws_options(REFERENCE_LAKE, aws["login"], aws["password"], aws["extra"])
    for cluster in CLUSTERS:
        for hour in INTERVALS.split(timedelta(hours=1)):
            kwargs = {
                "config_path": str(world["reference"]),
                "lake": REFERENCE_LAKE,
                "es": connection,
                "run_mode": "backfill",
                "lake_storage": storage,
                "cluster": cluster,
            }
            start, end = hour.start.isoformat(), hour.end.isoformat()
            extract_window(start, end, **kwargs)
            score_window(start, end, **kwargs)
    return {
        "lake": lake_rows(world, REFERENCE_LAKE),
        "alerts": alerts(world["client"], REFERENCE_ALERTS),
    }


def differences(left: dict, right: dict, path: str = "") -> list[tuple[str, object, object]]:
    """Where two JSON documents differ: (path, left value, right value)."""
    if isinstance(left, dict) and isinstance(right, dict):
        found = []
        for key in sorted(set(left) | set(right)):
            found += differences(left.get(key), right.get(key), f"{path}.{key}")
        return found
    return [] if left == right else [(path, left, right)]


def kill_a_worker_during_an_extract(stack: CeleryStack, backfill_id: int) -> dict:
    """SIGKILL worker1 (all its processes) as soon as it runs an extract; returns that task."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        run_ids = [r for r, _ in runs_of(stack, backfill_id)]
        for ti in task_instances(stack, run_ids):
            if (ti["task_id"], ti["state"], ti["hostname"]) == ("extract", "running", "worker1"):
                stack.kill_worker(1)
                return ti
        time.sleep(0.2)
    raise AssertionError("worker1 never ran an extract")


@pytest.fixture(scope="module")
def first_backfill(stack, world):
    backfill_id = backfill(stack, FIRST, LAST)
    killed = kill_a_worker_during_an_extract(stack, backfill_id)
    wait_for_backfill(stack, backfill_id)
    stack.start_worker(1)  # back for what follows
    run_ids = [r for r, _ in runs_of(stack, backfill_id)]
    return {
        "id": backfill_id,
        "killed": killed,
        "runs": runs_of(stack, backfill_id),
        "tis": task_instances(stack, run_ids),
        "earlier": earlier_tries(stack, run_ids),
        "lake": lake_rows(world, LAKE),
        "alerts": alerts(world["client"], ALERTS),
    }


def test_a_backfill_runs_every_interval_on_both_workers(first_backfill):
    runs = first_backfill["runs"]
    assert len(runs) == 6 and {state for _, state in runs} == {"success"}, runs
    tis = first_backfill["tis"]
    for task_id, per_run in (("extract", 2 * 1), ("score", 2), ("wait_for_logs", 1)):
        mine = [t for t in tis if t["task_id"] == task_id]
        assert len(mine) == 6 * per_run, (task_id, mine)
        assert {t["state"] for t in mine} == {"success"}, mine
    extracts = [t for t in tis if t["task_id"] == "extract"]
    assert len(extracts) == 12  # 6 hours x 2 clusters
    hosts = {t["hostname"] for t in tis + first_backfill["earlier"] if t["hostname"]}
    assert {"worker1", "worker2"} <= hosts, hosts


def test_an_extract_on_a_killed_worker_is_retried_on_the_other(first_backfill):
    killed = first_backfill["killed"]
    now = next(
        t
        for t in first_backfill["tis"]
        if (t["run_id"], t["task_id"], t["map_index"])
        == (killed["run_id"], "extract", killed["map_index"])
    )
    assert now["state"] == "success" and now["try_number"] >= 2
    assert now["hostname"] == "worker2"
    tried = [
        t
        for t in first_backfill["earlier"]
        if (t["run_id"], t["task_id"], t["map_index"])
        == (killed["run_id"], "extract", killed["map_index"])
    ]
    assert any(t["hostname"] == "worker1" for t in tried), tried


def test_the_lake_and_alerts_equal_the_intervals_run_one_by_one(first_backfill, reference, world):
    for cluster in CLUSTERS:
        assert first_backfill["lake"][cluster].num_rows > 0
        assert first_backfill["lake"][cluster].equals(reference["lake"][cluster]), cluster
    found = first_backfill["alerts"]
    assert found and set(found) == set(reference["alerts"])
    assert differences(found, reference["alerts"]) == []
    by_cluster = {c: {k for k, a in found.items() if a.get("cluster") == c} for c in CLUSTERS}
    assert all(by_cluster.values()), by_cluster  # both clusters alerted, each under its name
    client = world["client"]
    for cluster in CLUSTERS:  # Calico's events: each cluster's in its own index
        index = f"tigera_secure_ee_events.{cluster}."
        client.indices.refresh(index=index)
        assert client.count(index=index)["count"] == len(by_cluster[cluster])


def test_a_backfill_over_intervals_already_run_changes_nothing(first_backfill, stack, world):
    """Run again, and scored this time as a map/reduce (``map_reduce_hours`` 1: each extract
    task summarizes its hour, each score task combines the parts): nothing changes."""
    conf = json.dumps({"map_reduce_hours": 1})
    again = backfill(stack, FIRST, LAST, "--dag-run-conf", conf, reprocess="completed")
    wait_for_backfill(stack, again)
    runs = runs_of(stack, again)
    assert len(runs) == 6 and {state for _, state in runs} == {"success"}, runs
    scores = query(stack, "SELECT value FROM xcom WHERE task_id = 'score' AND key = 'parts' "
                   "AND run_id = ANY(%s)",
                   [r for r, _ in runs])  # fmt: skip
    assert len(scores) == 12
    used = [v if isinstance(v, int) else json.loads(v) for (v,) in scores]
    assert used == [1] * 12  # each score task combined its hour's part
    assert alerts(world["client"], ALERTS) == first_backfill["alerts"]
    now = lake_rows(world, LAKE)
    for cluster in CLUSTERS:
        assert now[cluster].equals(first_backfill["lake"][cluster]), cluster
    assert parts_left(world) == []  # each reduce step deleted its parts (directory markers
    # aside: pyarrow's S3 filesystem leaves empty "dir/" objects)


def parts_left(world) -> list[str]:
    import boto3

    aws = world["aws"]
    s3 = boto3.client(
        "s3",
        endpoint_url=aws["extra"]["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id=aws["login"],
        aws_secret_access_key=aws["password"],
    )
    listed = s3.list_objects_v2(Bucket="lake", Prefix="celery/_parts/")
    return [o["Key"] for o in listed.get("Contents", []) if not o["Key"].endswith("/")]


def test_an_interval_not_yet_final_waits_on_the_triggerer(first_backfill, stack, world):
    """Its logs are final 25 s from now (read_delay): the wait is deferred (no worker slot),
    and the extraction starts only after that moment."""
    end = datetime(2026, 11, 1, 11, tzinfo=UTC)
    ready = datetime.now(UTC) + timedelta(seconds=25)
    late = world["home"] / "late.yaml"
    delay = int((ready - end).total_seconds())
    late.write_text(SETTINGS.format(read_delay=f"{delay}s", alerts=ALERTS, events="true"))
    conf = json.dumps({"config_path": str(late), "cluster": "east"})
    waiting = backfill(
        stack, "2026-11-01T10:00:00+00:00", "2026-11-01T10:00:00+00:00", "--dag-run-conf", conf
    )
    deferred = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not deferred:
        deferred = query(
            stack,
            "SELECT ti.state, ti.trigger_id, t.classpath FROM task_instance "
            "ti JOIN trigger t ON t.id = ti.trigger_id JOIN backfill_dag_run"
            " b ON b.dag_run_id = (SELECT id FROM dag_run WHERE run_id = "
            "ti.run_id AND dag_id = ti.dag_id) WHERE b.backfill_id = %s AND "
            "ti.task_id = 'wait_for_logs'",
            waiting,
        )
        time.sleep(0.5)
    assert deferred, "the wait never deferred"
    ((state, _trigger, classpath),) = deferred
    assert state == "deferred" and classpath.endswith("DateTimeTrigger")
    assert datetime.now(UTC) < ready  # it was deferred before the logs were final
    wait_for_backfill(stack, waiting)
    ((run_id, state),) = runs_of(stack, waiting)
    assert state == "success"
    started = query(
        stack,
        "SELECT min(start_date) FROM task_instance WHERE run_id = %s AND task_id = 'extract'",
        run_id,
    )[0][0]
    assert started >= ready - timedelta(seconds=1)
