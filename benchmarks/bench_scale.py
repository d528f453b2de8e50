"""Benchmark: the same scheduler-driven backfill on 1 and on 2 Celery workers.

Starts the distributed stack of ``scripts/celery_stack.py`` (PostgreSQL, Redis, scheduler,
dag-processor, api-server, triggerer, N Celery workers of 2 slots each), a real S3 API
(moto) for the lake and a real Elasticsearch 8.19 holding ``--hours`` of generated Calico
traffic, then runs ``airflow backfill create`` over those hours for each worker count, each on
a fresh stack and a fresh lake prefix. Prints, per worker count:
- the wall time from ``backfill create`` to the backfill's completion, and documents/s;
- where the time went: the tasks' own seconds summed by task; the share of the slots they
  used (the wait's deferred time is not a slot's); the span of the extract tasks (first
  start to last end: they spread over the workers) and of the score tasks (one chain, each
  interval after the previous); the phases (the ``backfill create`` command, until the first
  task started, the tasks);
- the stack's peak RSS (every process summed, sampled each second).
Then a paper projection for N workers against a Calico cluster at its log cap (1,500
documents per node per 5 minutes: 108M documents a day for 250 nodes): a task's fixed cost
measured here, its documents at the rates one process reaches (``--extract-rate``,
``--score-rate``: measured by bench_es.py and bench_pipeline.py, since this run's hours are
too small to measure them).

``--json`` prints one JSON object per line instead: per worker count ``stage``
(``backfill-<N>w``), ``records``, ``seconds``, ``rate``, ``peak_rss_mb``, ``task_seconds``,
``slot_use``, ``extract_span_s``, ``score_span_s``, ``phases_s``; then one object per
projected worker count (``stage`` ``projection-<N>w``). The measured runs are kept in
``--results`` (default ``bench_scale_results.json``); ``--report`` prints them again.

Reproduce::

    .venv/bin/python benchmarks/bench_scale.py --hours 12 --scale 10
    L7_ES_URL=http://127.0.0.1:9200 .venv/bin/python benchmarks/bench_scale.py --json

On a 2-core machine every worker, the scheduler, Elasticsearch and the S3 server share the
same two cores, so a second worker can only use what the first leaves idle.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in ("scripts", "tests", "tests/integration", "benchmarks"):
    sys.path.insert(0, str(ROOT / extra))

from bench_es import DAY, load, start_server  # noqa: E402
from celery_stack import CeleryStack  # noqa: E402
from s3_server import KEY, SECRET, make_bucket, s3_server  # noqa: E402

#: Calico's cap: documents per node per 5 minutes; a 250-node cluster's day.
CAP_PER_NODE_5M, NODES = 1500, 250
DAY_DOCUMENTS = CAP_PER_NODE_5M * 12 * 24 * NODES
SLOTS_PER_WORKER = 2
SETTINGS = """\
elasticsearch:
  source:
    read_delay: 0s
  alerts:
    index: l7-bench-scale-{workers}w
  clusters:
    - name: bench
"""


def rss_of_tree(pids: list[int]) -> float:
    """Summed RSS (MB) of ``pids`` and all their descendants."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,rss="], capture_output=True, text=True)
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for line in out.stdout.splitlines():
        pid, ppid, kb = (int(x) for x in line.split())
        children.setdefault(ppid, []).append(pid)
        rss[pid] = kb
    total, todo, seen = 0, list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total / 1024


def run_backfill(workers: int, hours: int, es_url: str, endpoint: str, work: Path) -> dict:
    """One fresh stack with ``workers`` workers; the backfill's wall time and task seconds."""
    config = work / f"settings-{workers}w.yaml"
    config.write_text(SETTINGS.format(workers=workers))
    host, port = es_url.split("//")[1].split(":")
    es = {"conn_type": "elasticsearch", "host": host, "port": int(port), "schema": "http"}
    extra = {"region_name": "us-east-1", "endpoint_url": endpoint}
    aws = {"conn_type": "aws", "login": KEY, "password": SECRET, "extra": extra}
    env = {
        "AIRFLOW_CONN_L7_ELASTICSEARCH": json.dumps(es),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws),
        "L7_CONFIG": str(config),
        "L7_LAKE": f"s3://lake/scale-{workers}w",
        "L7_QUARANTINE_DIR": str(work / "quarantine"),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    }
    with CeleryStack(work / f"stack-{workers}w", workers=workers, env=env) as stack:
        stack.wait_for_dag("l7_detection")
        stack.airflow("dags", "unpause", "l7_detection")
        first, last = DAY, DAY + timedelta(hours=hours - 1)
        peak = [0.0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                pids = [*stack.processes_pids(), stack.redis["pid"], stack.postgres["pid"]]
                peak[0] = max(peak[0], rss_of_tree(pids))
                stop.wait(1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        stack.backfill(
            "l7_detection", first.isoformat(), last.isoformat(), "--max-active-runs", "16"
        )
        created = time.monotonic()
        created_at = stack.query("SELECT created_at FROM backfill ORDER BY id DESC LIMIT 1")[0][0]
        stack.wait_for_backfill(stack.query("SELECT max(id) FROM backfill")[0][0], timeout=3600)
        states = dict(stack.query("SELECT state, count(*) FROM dag_run GROUP BY state"))
        seconds = time.monotonic() - started
        stop.set()
        sampler.join()
        rows = stack.query(
            "SELECT task_id, sum(extract(epoch FROM end_date - start_date)), count(*) "
            "FROM task_instance WHERE dag_id = 'l7_detection' GROUP BY task_id"
        )
        means = stack.query(
            "SELECT task_id, avg(extract(epoch FROM end_date - start_date)) FROM task_instance "
            "WHERE dag_id = 'l7_detection' GROUP BY task_id"
        )
        spans = stack.query(
            "SELECT task_id, extract(epoch FROM max(end_date) - min(start_date)) "
            "FROM task_instance WHERE dag_id = 'l7_detection' GROUP BY task_id"
        )
        timeline = stack.query(
            "SELECT extract(epoch FROM min(start_date) - %s), "
            "extract(epoch FROM max(end_date) - min(start_date)) FROM task_instance "
            "WHERE dag_id = 'l7_detection'",
            created_at,
        )[0]
        queued = stack.query(
            "SELECT avg(extract(epoch FROM start_date - queued_dttm)) FROM task_instance "
            "WHERE dag_id = 'l7_detection' AND task_id <> 'wait_for_logs'"
        )
        extracted = stack.query(
            "SELECT sum((value::text)::bigint) FROM xcom WHERE task_id = 'extract' "
            "AND key = 'documents'"
        )
    return {
        "workers": workers,
        "states": states,
        "seconds": seconds,
        "peak_rss_mb": peak[0],
        "task_seconds": {task: round(float(s or 0), 2) for task, s, _ in rows},
        "tasks": {task: n for task, _, n in rows},
        "records": int(extracted[0][0] or 0),
        "mean_task_s": {task: float(m or 0) for task, m in means},
        "queue_wait_s": float(queued[0][0] or 0),
        # first start to last end of each task: extraction spreads, scoring is a chain
        "span_s": {task: float(sec or 0) for task, sec in spans},
        # where the wall time went: the CLI, until the first task started, the tasks, after
        "phases_s": {
            "backfill_create_cli": round(created - started, 1),
            "to_first_task": round(float(timeline[0] or 0), 1),
            "tasks": round(float(timeline[1] or 0), 1),
        },
    }


def projection(one: dict, extract_rate: float, score_rate: float) -> list[dict]:
    """Paper figures for a 250-node cluster's day at Calico's cap (4.5M documents an hour).

    An Airflow task costs a fixed part, measured here (its mean duration less its documents
    at the rate one process reaches; the wait between queued and started), plus its
    documents at ``extract_rate`` and ``score_rate``: the rates of one process at scale,
    measured by bench_es.py and bench_pipeline.py (this run's hours are too small to
    measure them). With N workers of 2 slots, a day's 24 hourly extractions spread over the
    slots (one task an hour; its slices read in parallel inside it), while scoring is one
    chain per cluster (each interval after the previous). Assumes Elasticsearch keeps up
    with one reader per slot."""
    hour_docs = DAY_DOCUMENTS / 24
    per_task = one["records"] / max(one["tasks"].get("extract", 1), 1)
    fixed_e = max(one["mean_task_s"]["extract"] - per_task / extract_rate, 0)
    fixed_s = max(one["mean_task_s"]["score"] - per_task / score_rate, 0)
    queued = one["queue_wait_s"]
    extract_task = queued + fixed_e + hour_docs / extract_rate
    score_task = queued + fixed_s + hour_docs / score_rate
    small = 2 * (queued + one["mean_task_s"]["plan"])  # plan and by_cluster
    rows = []
    for workers in (1, 2, 4, 8, 12, 24):
        slots = workers * SLOTS_PER_WORKER
        extract_wall = math.ceil(24 / slots) * extract_task
        day_wall = max(extract_wall + score_task, 24 * score_task) + small
        rows.append(
            {
                "stage": f"projection-{workers}w",
                "records": int(DAY_DOCUMENTS),
                "seconds": round(day_wall),
                "rate": round(DAY_DOCUMENTS / day_wall),
                "hour_latency_s": round(small + extract_task + score_task),
                "extract_task_s": round(extract_task),
                "score_task_s": round(score_task),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=int, default=12, help="hours of traffic backfilled")
    parser.add_argument("--scale", type=float, default=2.0, help="generator traffic scale")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--extract-rate",
        type=float,
        default=41_784,
        help="documents/s of one extract task at scale (bench_es.py)",
    )
    parser.add_argument(
        "--score-rate",
        type=float,
        default=300_000,
        help="records/s of one score task at scale (bench_pipeline.py)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("bench_scale_results.json"),
        help="where the measured runs are written (and read with --report)",
    )
    parser.add_argument(
        "--report", action="store_true", help="print the figures of --results again; run nothing"
    )
    args = parser.parse_args()
    if args.report:
        report(json.loads(args.results.read_text()), args.json, args.extract_rate, args.score_rate)
        return
    say = print if not args.json else lambda *a: print(*a, file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="l7-bench-scale-", dir="/tmp"))
    work.chmod(0o755)  # the postgres user walks down to its data directory
    url, es_workdir = os.environ.get("L7_ES_URL"), None
    if not url:
        url, es_workdir = start_server(work / "es")
    results = []
    try:
        from l7analytics.adapters.elasticsearch.connection import EsConnection, connect

        client = connect(EsConnection(hosts=[url], request_timeout=300))
        loaded = load(client, args.hours, args.scale)
        say(f"indexed {loaded:,} documents ({args.hours} h) into {url}")
        with s3_server() as endpoint:
            make_bucket(endpoint, "lake")
            for workers in (int(w) for w in args.workers.split(",")):
                results.append(run_backfill(workers, args.hours, url, endpoint, work))
                say(f"{workers} worker(s): {results[-1]['seconds']:.1f} s")
    finally:
        if es_workdir is not None:
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "scripts/es_server.py"),
                    "stop",
                    "--workdir",
                    str(es_workdir),
                ],
                check=False,
            )
    args.results.write_text(json.dumps(results, indent=1, default=str))
    say(f"measured runs written to {args.results}")
    report(results, args.json, args.extract_rate, args.score_rate)


def report(results: list[dict], as_json: bool, extract_rate: float, score_rate: float) -> None:
    rows = []
    for r in results:
        capacity = r["seconds"] * r["workers"] * SLOTS_PER_WORKER
        rows.append(
            {
                "stage": f"backfill-{r['workers']}w",
                "records": r["records"],
                "seconds": round(r["seconds"], 2),
                "rate": round(r["records"] / r["seconds"]),
                "peak_rss_mb": round(r["peak_rss_mb"], 1),
                "task_seconds": r["task_seconds"],
                # the wait's time is spent deferred, on the triggerer, not in a slot
                "slot_use": round(
                    sum(v for k, v in r["task_seconds"].items() if k != "wait_for_logs") / capacity,
                    3,
                ),
                "runs": r["states"],
                "extract_span_s": round(r["span_s"].get("extract", 0), 1),
                "score_span_s": round(r["span_s"].get("score", 0), 1),
                "phases_s": r["phases_s"],
            }
        )
    one = results[0] if results and results[0]["workers"] == 1 else None
    projected = projection(one, extract_rate, score_rate) if one else []
    if as_json:
        for row in rows + projected:
            print(json.dumps(row))
        return
    print(
        f"{'workers':>7} {'documents':>10} {'seconds':>8} {'docs/s':>8} {'slot use':>8} "
        f"{'stack RSS':>9} {'extracts':>9} {'scores':>7}  task seconds"
    )
    for row in rows:
        tasks = ", ".join(f"{k} {v:.0f}" for k, v in sorted(row["task_seconds"].items()))
        print(
            f"{row['stage'][9:-1]:>7} {row['records']:>10,} {row['seconds']:>8.1f} "
            f"{row['rate']:>8,} {row['slot_use']:>8.0%} {row['peak_rss_mb']:>6.0f} MB "
            f"{row['extract_span_s']:>7.0f} s {row['score_span_s']:>5.0f} s  {tasks}"
        )
    print(
        "extracts, scores: first start to last end of the extract tasks (they spread over "
        "the workers) and of the score tasks (one chain: each interval after the previous)"
    )
    for row in rows:
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in row["phases_s"].items())
        print(f"{row['stage']}: {phases}")
    if len(rows) >= 2:
        print(
            f"speed-up with {results[1]['workers']} workers: "
            f"{rows[0]['seconds'] / rows[1]['seconds']:.2f}x"
        )
    if projected:
        print(
            f"\nprojection: a {NODES}-node cluster's day at Calico's cap "
            f"({DAY_DOCUMENTS / 1e6:.0f}M documents), from the 1-worker run "
            f"at {extract_rate:,.0f} documents/s a task extracting, {score_rate:,.0f} scoring; "
            f"queued to started {one['queue_wait_s']:.1f} s"
        )
        print(
            f"{'workers':>7} {'extract task':>12} {'score task':>10} {'hour latency':>12} "
            f"{'day backfill':>12}"
        )
        for p in projected:
            print(
                f"{p['stage'][11:-1]:>7} {p['extract_task_s']:>10} s {p['score_task_s']:>8} s "
                f"{p['hour_latency_s']:>10} s {p['seconds'] / 3600:>10.2f} h"
            )


if __name__ == "__main__":
    main()
