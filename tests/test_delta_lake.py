"""The lake on object storage (Delta tables) against a real S3 API on localhost (moto)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pyarrow.compute as pc
import pytest
from s3_server import environment, make_bucket, s3_server

from l7analytics.adapters.delta_lake import DeltaLake, storage_options
from l7analytics.adapters.files import read_alerts
from l7analytics.core.windows import Window
from l7analytics.evaluation.synth import write_dataset
from l7analytics.jobs import composition
from l7analytics.jobs.pipeline import extract
from l7analytics.ui.cli import main

START = datetime(2026, 11, 1, tzinfo=UTC)
DAY = timedelta(days=1)
DAYS = [Window(START + i * DAY, START + (i + 1) * DAY) for i in range(3)]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with s3_server() as endpoint:
        make_bucket(endpoint, "lake")
        saved = {k: os.environ.get(k) for k in environment(endpoint)}
        os.environ.update(environment(endpoint))
        try:
            yield endpoint
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    path = tmp_path_factory.mktemp("delta") / "logs.ndjson"
    write_dataset(path, START, 3, 3, scale=0.3)
    return path


def run_job(lake: str, logs, work) -> list[dict]:
    quarantine, alerts = str(work / "q.ndjson"), work / "alerts.ndjson"
    assert main(["extract", "--input", str(logs), "--lake", lake, "--quarantine", quarantine]) == 0
    assert main(["train", "--lake", lake, "--start", "2026-11-01", "--end", "2026-11-03"]) == 0
    score = ["score", "--lake", lake, "--start", "2026-11-03", "--end", "2026-11-04"]
    assert main([*score, "--alerts", str(alerts)]) == 0
    return read_alerts(alerts)


def contents(lake) -> list[tuple[int, int]]:
    """Rows and requests of every day: what a reader sees."""
    out = []
    for day in DAYS:
        table = lake.read_table(day, ["end_time", "count", "url"])
        out.append((table.num_rows, pc.sum(table.column("count")).as_py()))
    return out


@pytest.fixture(scope="module")
def both(s3, logs, tmp_path_factory):
    local_work, s3_work = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("s3")
    local = run_job(str(local_work / "lake"), logs, local_work)
    remote = run_job("s3://lake/l7a", logs, s3_work)
    return {"local": local, "s3": remote, "local_lake": str(local_work / "lake")}


def test_extract_train_and_score_on_s3_give_what_a_local_lake_gives(both):
    assert both["s3"], "the scored day has incidents"
    by_id = {a["id"]: (a["severity"], a["record"]["caller"]) for a in both["s3"]}
    assert by_id == {a["id"]: (a["severity"], a["record"]["caller"]) for a in both["local"]}
    remote = composition.open_lake("s3://lake/l7a")
    assert isinstance(remote, DeltaLake)
    assert contents(remote) == contents(composition.open_lake(both["local_lake"]))
    assert remote.missing_hours(DAYS[2]) == []
    assert len(remote.manifests(DAYS[0])) == 24


def test_a_rerun_writes_no_new_rows(both, logs, tmp_path):
    lake = composition.open_lake("s3://lake/l7a")
    before = contents(lake)
    version = lake._table("l7").version()
    args = ["extract", "--input", str(logs), "--lake", "s3://lake/l7a"]
    assert main([*args, "--quarantine", str(tmp_path / "q.ndjson")]) == 0
    assert lake._table("l7").version() > version  # a new commit, the same rows
    assert contents(lake) == before


def test_two_processes_replace_different_hours_at_once(both, logs, tmp_path):
    env = {**os.environ}
    commands = [
        [sys.executable, "-m", "l7analytics.ui.cli", "extract", "--input", str(logs),
         "--lake", "s3://lake/l7b", "--start", start, "--end", end,
         "--quarantine", str(tmp_path / f"q{i}.ndjson")]
        for i, (start, end) in enumerate(
            [("2026-11-02T05:00:00Z", "2026-11-02T07:00:00Z"),
             ("2026-11-02T07:00:00Z", "2026-11-02T09:00:00Z")]
        )
    ]  # fmt: skip
    processes = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, text=True) for c in commands]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    window = Window(START + DAY + timedelta(hours=5), START + DAY + timedelta(hours=9))
    remote = composition.open_lake("s3://lake/l7b")
    local = composition.open_lake(both["local_lake"])
    assert remote.missing_hours(window) == []
    assert remote.read_table(window, ["end_time"]).num_rows == local.count_rows(window)


def test_pandas_reads_exactly_the_current_rows(both):
    from deltalake import DeltaTable

    table = DeltaTable("s3://lake/l7a/l7", storage_options=storage_options("s3://lake/l7a"))
    frame = table.to_pandas(columns=["end_time", "count"])
    local = composition.open_lake(both["local_lake"])
    assert len(frame) == local.count_rows(local.extent())  # every hour, the re-run's once


def test_no_secret_in_the_options_it_prints():
    options = storage_options("s3://lake/x", {"AWS_SECRET_ACCESS_KEY": "s3cr3t"})
    assert repr(DeltaLake("s3://lake/x", options)) == "DeltaLake('s3://lake/x', cluster='cluster')"
    assert str(DeltaLake("s3://lake/x", options)) == "s3://lake/x"


def test_a_writer_killed_at_any_moment_leaves_the_old_or_the_new_rows(logs, s3, tmp_path):
    """SIGKILL at several moments of a write that replaces every hour with half the data:
    readers see the whole old version or the whole new one; the re-run completes it."""
    import signal
    import time

    lake_uri, window = "s3://lake/l7k", ["--start", "2026-11-01", "--end", "2026-11-04T01:00:00Z"]
    half = tmp_path / "half.ndjson"
    with logs.open() as full, half.open("w") as out:
        out.writelines(line for i, line in enumerate(full) if i % 2)

    def extract(path, **popen):
        command = [
            sys.executable,
            "-m",
            "l7analytics.ui.cli",
            "extract",
            "--input",
            str(path),
            "--lake",
            lake_uri,
            *window,
            "--quarantine",
            str(tmp_path / "q.ndjson"),
        ]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, **popen)  # fmt: skip

    lake = composition.open_lake(lake_uri)
    assert extract(half).wait(timeout=300) == 0
    new = contents(lake)
    assert extract(logs).wait(timeout=300) == 0
    old = contents(lake)
    assert new != old
    outcomes = []
    for delay in (1.0, 2.5, 4.0, 6.0):
        process = extract(half)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        now = contents(lake)
        assert now in (old, new), delay  # never a mix of the two, never a loss
        outcomes.append("new" if now == new else "old")
        assert extract(logs).wait(timeout=300) == 0  # the re-run completes (back to old)
        assert contents(lake) == old
        assert lake.missing_hours(DAYS[1]) == []
    print(f"outcomes of the kills: {outcomes}")


def test_a_local_lake_migrates_and_maintenance_keeps_the_rows(both, capsys):
    local = composition.open_lake(both["local_lake"])
    assert main(["lake", "migrate", "--from", both["local_lake"], "--lake", "s3://lake/l7m"]) == 0
    migrated = composition.open_lake("s3://lake/l7m")
    assert contents(migrated) == contents(local)
    assert migrated.summaries(DAYS[1], "pairs")  # history reads work on the migrated lake
    assert len(migrated.manifests(DAYS[1])) == 24
    version = migrated._table("l7").version()
    assert main(["lake", "migrate", "--from", both["local_lake"], "--lake", "s3://lake/l7m"]) == 0
    assert contents(migrated) == contents(local)
    assert main(["lake", "maintain", "--lake", "s3://lake/l7m", "--retention", "1h"]) == 0
    assert migrated._table("l7").version() > version
    assert contents(migrated) == contents(local)
    assert "old files deleted" in capsys.readouterr().out


def test_lake_commands_refuse_what_they_cannot_do(both, tmp_path, capsys):
    assert main(["lake", "maintain", "--lake", "s3://lake/l7m", "--retention", "5m"]) == 2
    assert "at least 1h" in capsys.readouterr().err
    assert main(["lake", "migrate", "--from", "s3://lake/l7m", "--lake", "s3://lake/x"]) == 2
    assert main(["lake", "maintain", "--lake", both["local_lake"]]) == 0
    assert "nothing to compact" in capsys.readouterr().out


def test_duckdb_reads_exactly_the_current_rows(both):
    """DuckDB over the table's current snapshot, in a process of its own (see
    ``duckdb_process.py``: DuckDB loaded beside Arrow's JSON reader crashes the test process).
    Its own delta extension needs a download the test machines cannot do; it reads the same
    files."""
    script = (
        "import duckdb, sys\n"
        "from deltalake import DeltaTable\n"
        "from l7analytics.adapters.delta_lake import storage_options\n"
        "snapshot = DeltaTable(sys.argv[1], storage_options=storage_options(sys.argv[1]))"
        ".to_pyarrow_dataset()\n"
        "print(duckdb.sql('SELECT count(*) FROM snapshot').fetchall()[0][0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "s3://lake/l7a/l7"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    local = composition.open_lake(both["local_lake"])
    assert int(done.stdout.split()[-1]) == local.count_rows(local.extent())


def test_an_airflow_aws_connection_gives_the_lake_its_credentials(both, tmp_path):
    """The DAG tasks' path: an ``aws`` Connection's fields as the lake's options, used for the
    tables and the model files alike, with no AWS_* variable set."""
    from l7analytics.adapters.airflow import aws_options
    from l7analytics.jobs.tasks import train_model

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    options = aws_options(
        "s3://lake/l7a", "l7-test-key", "l7-test-secret-value",
        {"region_name": "us-east-1", "endpoint_url": endpoint},
    )  # fmt: skip
    assert options["AWS_ENDPOINT_URL"] == endpoint and options["AWS_ALLOW_HTTP"] == "true"
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AWS_")}
    try:
        done = train_model(
            "2026-11-01T00:00:00Z", "2026-11-03T00:00:00Z",
            config_path=None, lake="s3://lake/l7a", lake_storage=options,
        )  # fmt: skip
    finally:
        os.environ.update(saved)
    assert done["models"] and done["models"][0]["rows"] > 0


def test_clusters_share_a_lake_each_in_its_own_partitions(logs, s3, tmp_path, capsys):
    """Two Calico clusters' runs in one lake: each reads, replaces and trains on its own rows
    only, whatever ``cluster`` its documents claim."""
    half = tmp_path / "half.ndjson"
    with logs.open() as full, half.open("w") as out:
        out.writelines(line for i, line in enumerate(full) if i % 2)
    uri, q = "s3://lake/l7c", ["--quarantine", str(tmp_path / "q.ndjson")]
    assert main(["extract", "--input", str(logs), "--lake", uri, *q]) == 0
    standalone = composition.open_lake(uri)
    alone = contents(standalone)
    assert main(["extract", "--input", str(half), "--lake", uri, "--cluster", "eu-1", *q]) == 0
    eu = composition.open_lake(uri, cluster="eu-1")
    assert contents(standalone) == alone  # the other cluster's rows are untouched
    assert 0 < contents(eu)[1][0] < alone[1][0]
    assert set(eu.read_table(DAYS[1], ["cluster"]).column("cluster").to_pylist()) == {"eu-1"}
    # a re-run of one cluster's day replaces that cluster's hours only
    one_day = ["--start", "2026-11-02", "--end", "2026-11-03"]
    assert main(["extract", "--input", str(logs), "--lake", uri, "--cluster", "eu-1",
                 *one_day, *q]) == 0  # fmt: skip
    assert contents(eu)[1] == alone[1] and contents(eu)[0] != alone[0]
    assert contents(standalone) == alone
    train = ["train", "--lake", uri, "--start", "2026-11-01", "--end", "2026-11-03"]
    assert main([*train, "--cluster", "eu-1"]) == 0
    assert composition.model_store(eu).versions("l7.unusual_pair")
    assert not composition.model_store(standalone).versions("l7.unusual_pair")
    assert standalone.extent().start == START
    assert composition.open_lake(uri, cluster="nobody").extent() is None
    capsys.readouterr()
    local = ["--lake", str(tmp_path / "local"), "--cluster", "eu-1", *q]
    assert main(["extract", "--input", str(half), *local]) == 2
    assert "local lake holds the cluster 'cluster' only" in capsys.readouterr().err
    assert main(["extract", "--input", str(half), "--lake", uri, "--cluster", "EU 1", *q]) == 2
    assert "--cluster 'EU 1': lowercase letters" in capsys.readouterr().err


def test_hostile_documents_on_s3_are_stored_as_written_or_quarantined(s3, tmp_path, capsys):
    """Markup, format strings, path separators and a forged ``cluster`` in the documents,
    beside invalid UTF-8 and numbers past int64: the good ones are stored exactly, the bad
    ones quarantined with their reason, no value reaches an object key, and score runs."""
    import boto3
    import orjson
    from s3_server import KEY, REGION, SECRET

    t0 = int(START.timestamp()) + 11 * 3600
    hostile = ["[link=file:///etc/passwd]x[/link]", "%s%n{0}", "$(id)", "../../../etc/passwd",
               "a/\u202e/evil", "cluster=evil/date=1970-01-01/hour=0"]  # fmt: skip
    docs = [
        {"end_time": t0, "count": 1, "url": f"web/{h}", "user_agent": h, "host": h,
         "src_name_aggr": h, "cluster": h, "response_code": "200"}
        for h in hostile
    ]  # fmt: skip
    data = b"".join(orjson.dumps(d) + b"\n" for d in docs)
    data += b'{"end_time":%d,"count":1,"url":"web/a\xff"}\n' % t0
    data += b'{"end_time":%d,"count":9223372036854775808,"url":"web/b"}\n' % t0
    data += b'{"end_time":99999999999999999999,"count":1,"url":"web/c"}\n'
    data += b"[/]\n"
    (tmp_path / "in.ndjson").write_bytes(data)
    uri, quarantine = "s3://lake/l7h", tmp_path / "q.ndjson"
    args = ["--lake", uri, "--start", "2026-11-01", "--end", "2026-11-02"]
    assert main(["extract", "--input", str(tmp_path / "in.ndjson"), *args,
                 "--quarantine", str(quarantine)]) == 0  # fmt: skip
    lake = composition.open_lake(uri)
    stored = lake.read_table(DAYS[0], ["url", "user_agent", "host", "cluster"]).to_pylist()
    assert sorted(r["user_agent"] for r in stored) == sorted(hostile)
    assert {r["url"] for r in stored} == {f"web/{h}" for h in hostile}
    assert {r["cluster"] for r in stored} == {"cluster"}  # the run's, not the document's
    lines = [json.loads(line) for line in quarantine.read_text("utf-8").splitlines()]
    assert len(lines) == 4 and all(line["reason"] for line in lines)
    client = boto3.client("s3", endpoint_url=s3, aws_access_key_id=KEY,
                          aws_secret_access_key=SECRET, region_name=REGION)  # fmt: skip
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="lake", Prefix="l7h/")["Contents"]]
    parts = {k.split("/")[2] for k in keys if k.startswith("l7h/l7/") and "_delta_log" not in k}
    assert parts == {"cluster=cluster"}
    assert not [k for k in keys if "evil" in k or "passwd" in k or ".." in k]
    capsys.readouterr()
    code = main(["score", *args, "--alerts", str(tmp_path / "a.ndjson")])
    assert code == 0 and "Traceback" not in capsys.readouterr().err
    (alert,) = read_alerts(tmp_path / "a.ndjson")  # the traversal attempt, shown as written
    assert alert["origin"] == "l7.restricted_url" and "/../../../etc/passwd" in alert["description"]


def test_maintain_deletes_the_files_of_a_commit_that_never_happened(logs, tmp_path):
    """A writer killed after writing its data files and before its commit leaves files the
    log does not name: readers never see them, and ``maintain`` deletes them once they are
    older than the retention (a writer still at work is younger). A ``file://`` Delta table,
    so the file's age can be set."""
    lake = DeltaLake(f"file://{tmp_path}/lake", {})
    window = Window(START, START + timedelta(hours=6))
    source = composition.file_source([str(logs)])
    quarantine = composition.quarantine(tmp_path / "q.ndjson")
    extract(source, lake, window, quarantine)
    rows = lake.count_rows(window)
    partition = next((tmp_path / "lake/l7/cluster=cluster").glob("date=*/hour=3"))
    old, young = partition / "part-killed-old.parquet", partition / "part-killed-new.parquet"
    for orphan in (old, young):
        shutil.copyfile(next(partition.glob("part-*.parquet")), orphan)
    hours_ago = datetime.now(UTC).timestamp() - 3 * 3600
    os.utime(old, (hours_ago, hours_ago))
    assert lake.count_rows(window) == rows  # not in the log: not read
    done = lake.maintain(retention_hours=1)
    assert done["l7"]["vacuumed_files"] == 1
    assert not old.exists() and young.exists()
    assert lake.count_rows(window) == rows
