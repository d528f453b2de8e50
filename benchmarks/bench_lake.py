"""Benchmark: the two lake formats on one disk, ingest rate and peak memory.

``ingest-parquet`` / ``ingest-delta``
    :func:`l7analytics.jobs.pipeline.extract` of the same NDJSON into a fresh local
    (Hive-Parquet) lake, and into a fresh Delta lake on a ``file://`` URI, so the figure is
    the format's cost and not a network's: ``--runs`` of each (default 4), alternating, each
    format first every other run, after one read of the file (the same page cache for both).
``publish-<N>h``
    :meth:`~l7analytics.adapters.delta_lake.DeltaLake.publish` of the first N hours of a local
    lake into a fresh Delta lake: its peak memory must not grow with N.

Every stage runs in a child process of its own (this script re-invoking itself), so its
peak RSS (``VmHWM``, see ``peak_rss.py``) is its own. ``--json`` prints one object per
stage run with the keys ``stage``, ``records``, ``seconds``, ``rate`` and ``peak_rss_mb``.

It builds the Delta lake itself: :func:`l7analytics.jobs.composition.open_lake` keeps a local
path for the Parquet lake, and the comparison needs both formats on the same disk.

Reproduce (the NDJSON, about 1.4M documents over 8 days, is cached in the work directory)::

    .venv/bin/python benchmarks/bench_lake.py
    .venv/bin/python benchmarks/bench_lake.py --json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from peak_rss import peak_rss_mb

START = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def stage_ingest(work: Path, fmt: str) -> dict:
    from l7analytics.adapters.delta_lake import DeltaLake
    from l7analytics.jobs import composition
    from l7analytics.jobs.pipeline import extract

    root = work / f"lake-{fmt}"
    shutil.rmtree(root, ignore_errors=True)
    lake = DeltaLake(f"file://{root}", {}) if fmt == "delta" else composition.open_lake(root)
    source = composition.file_source([str(work / "logs.ndjson")])
    quarantine = composition.quarantine(work / "quarantine.ndjson")
    started = time.perf_counter()
    result = extract(source, lake, None, quarantine)
    return {"records": result.documents, "seconds": time.perf_counter() - started}


def stage_publish(work: Path, hours: int) -> dict:
    from l7analytics.adapters.delta_lake import DeltaLake
    from l7analytics.adapters.lake import hours_of
    from l7analytics.core.windows import Window
    from l7analytics.jobs import composition

    source = composition.open_lake(work / "lake-parquet", existing=True)
    chosen = hours_of(source.extent())[:hours]
    window = Window(chosen[0], chosen[-1] + HOUR)
    root = work / "lake-published"
    shutil.rmtree(root, ignore_errors=True)
    target = DeltaLake(f"file://{root}", {})
    started = time.perf_counter()
    target.publish(source, chosen, ["pairs"], source.manifests(window))
    return {"records": source.count_rows(window), "seconds": time.perf_counter() - started}


def run_child(stage: str, work: Path) -> dict:
    command = [sys.executable, __file__, "--stage", stage, "--workdir", str(work)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["rate"] = round(figures["records"] / figures["seconds"])
    figures["seconds"] = round(figures["seconds"], 2)
    return {"stage": stage, **figures}


def ensure_data(work: Path, days: int, scale: float, seed: int) -> None:
    from l7analytics.evaluation.synth import write_dataset

    marker = work / "logs.json"
    wanted = {"days": days, "scale": scale, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return
    work.mkdir(parents=True, exist_ok=True)
    write_dataset(work / "logs.ndjson", START, days, seed, scale=scale)
    marker.write_text(json.dumps(wanted))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/l7analytics-bench-lake"))
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--scale", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=4, help="runs of each format (alternating)")
    parser.add_argument("--json", action="store_true", help="one JSON object per stage run")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:  # a child: one stage, its figures as the last line
        if args.stage.startswith("ingest-"):
            figures = stage_ingest(args.workdir, args.stage.removeprefix("ingest-"))
        else:
            figures = stage_publish(args.workdir, int(args.stage.removeprefix("publish-")[:-1]))
        print(json.dumps({**figures, "peak_rss_mb": round(peak_rss_mb(), 1)}))
        return
    ensure_data(args.workdir, args.days, args.scale, args.seed)
    with (args.workdir / "logs.ndjson").open("rb") as warm:  # the same page cache for both
        while warm.read(1 << 24):
            pass
    rows = []
    for run in range(args.runs):  # alternating, each format first every other run
        order = ("delta", "parquet") if run % 2 == 0 else ("parquet", "delta")
        rows += [run_child(f"ingest-{fmt}", args.workdir) for fmt in order]
    hours = 24 * args.days
    rows += [run_child(f"publish-{n}h", args.workdir) for n in (24, hours // 2, hours + 1)]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    print(f"{'stage':16} {'records':>10} {'seconds':>8} {'records/s':>10} {'peak RSS':>9}")
    for row in rows:
        print(f"{row['stage']:16} {row['records']:>10,} {row['seconds']:>8.2f} "
              f"{row['rate']:>10,} {row['peak_rss_mb']:>6.0f} MB")  # fmt: skip
    ingest = {
        f: [r["rate"] for r in rows if r["stage"] == f"ingest-{f}"] for f in ("delta", "parquet")
    }
    share = sum(ingest["delta"]) / sum(ingest["parquet"])
    print(f"Delta ingest at {share:.0%} of the local lake's (target: at least 90%)")


if __name__ == "__main__":
    main()
