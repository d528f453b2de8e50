"""Benchmark: documents/s extracted from a local Elasticsearch into the lake.

Three readers over the same index and window, in the same run:

``helpers.scan``
    ``elasticsearch.helpers.scan`` (one scroll, 1,000 hits a page, the whole ``_source``),
    the way ElastAlert2 and most scripts read; timed only to iterate the hits (no lake), so
    its figure is an upper bound on what a scan-based extractor could reach;
``l7analytics, 1 slice``
    :class:`~l7analytics.adapters.elasticsearch.source.EsL7Source` with one time slice,
    through :func:`l7analytics.jobs.pipeline.extract` into a fresh Parquet lake;
``l7analytics, default``
    the same with the default settings (2 time slices read in parallel over a point in time).

Target: the default path, end to end into the lake, at least as fast as ``helpers.scan``
only iterating the hits (1.0x).

Each run of a reader is a child process of its own, so its peak RSS (``VmHWM``, see
``peak_rss.py``) is that reader's and not the largest so far. ``--json`` prints one JSON object
per reader instead of the table, with the keys ``stage``, ``records``, ``seconds``, ``rate``,
``peak_rss_mb`` and ``ratio_vs_scan`` (the reader's rate over ``helpers.scan``'s, measured in
the same run).

``--transport`` adds the transport table: the same window read (no lake) by each way of
fetching and parsing pages, one option changed at a time from the job's defaults (see
:data:`TRANSPORTS`). ``--version 7.17.29`` starts a 7.17 server instead of 8.19.

Reproduce (starts an 8.19 test server with scripts/es_server.py unless L7_ES_URL is set)::

    .venv/bin/python benchmarks/bench_es.py --hours 24 --scale 4
    .venv/bin/python benchmarks/bench_es.py --hours 24 --scale 4 --json
    .venv/bin/python benchmarks/bench_es.py --hours 24 --scale 4 --transport --version 7.17.29
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from peak_rss import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from calico_index import delete_indices, install_template  # noqa: E402
from elasticsearch import Elasticsearch, helpers  # noqa: E402
from es_transport import TRANSPORTS, Transport, read_window  # noqa: E402

from l7analytics.adapters.elasticsearch.connection import EsConnection, connect  # noqa: E402
from l7analytics.adapters.elasticsearch.source import EsL7Source, EsReadOptions  # noqa: E402
from l7analytics.adapters.files import NdjsonQuarantine  # noqa: E402
from l7analytics.adapters.lake import ParquetLake  # noqa: E402
from l7analytics.core.windows import Window  # noqa: E402
from l7analytics.evaluation.synth import generate  # noqa: E402
from l7analytics.jobs.pipeline import extract  # noqa: E402

DAY = datetime(2026, 11, 1, tzinfo=UTC)
INDEX = "tigera_secure_ee_l7.bench.fluentd-20261101-000001"


def start_server(workdir: Path, version: str) -> tuple[str, Path]:
    out = subprocess.run([sys.executable, str(ROOT / "scripts/es_server.py"), "start",
                          "--version", version, "--workdir", str(workdir)],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])["url"], workdir


def load(client: Elasticsearch, hours: int, scale: float) -> int:
    """Index ``hours`` of generated traffic (refresh off while loading, like a bulk import)."""
    delete_indices(client, "tigera_secure_ee_l7.bench.*")
    install_template(client)
    client.indices.create(index=INDEX, settings={"refresh_interval": "-1"})
    docs, _ = generate(DAY, days=max(1, -(-hours // 24)), seed=5, scale=scale)
    end = int((DAY + timedelta(hours=hours)).timestamp())

    def actions():
        for doc in docs:
            if doc["end_time"] >= end:
                return
            yield {"_index": INDEX, "_source": doc}

    count = 0
    for ok, _ in helpers.streaming_bulk(client, actions(), chunk_size=5000,
                                        raise_on_error=True):  # fmt: skip
        count += ok
    client.indices.put_settings(index=INDEX, settings={"refresh_interval": "1s"})
    client.indices.refresh(index=INDEX)
    client.indices.forcemerge(index=INDEX, max_num_segments=1)
    return count


def time_scan(client: Elasticsearch, window: Window) -> tuple[int, float]:
    query = {"query": {"range": {"end_time": {
        "gte": int(window.start.timestamp()), "lt": int(window.end.timestamp()),
        "format": "epoch_second"}}}}  # fmt: skip
    started = time.perf_counter()
    n = sum(1 for _ in helpers.scan(client, query=query, index="tigera_secure_ee_l7.bench.*"))
    return n, time.perf_counter() - started


def time_extract(client: Elasticsearch, url: str, window: Window, slices: int) -> tuple[int, float]:
    options = EsReadOptions(index="tigera_secure_ee_l7.bench.*", slices=slices,
                            read_delay=timedelta(0))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        pages = connect(EsConnection(hosts=[url], request_timeout=300), raw_json=True)
        source = EsL7Source(client, options, "bench", pages=pages)
        started = time.perf_counter()
        result = extract(source, ParquetLake(Path(tmp) / "lake"), window,
                         NdjsonQuarantine(Path(tmp) / "q.ndjson"))  # fmt: skip
        return result.documents, time.perf_counter() - started


#: stage name, what it is in the table, slices (0: helpers.scan)
READERS = (
    ("scan", "elasticsearch.helpers.scan", 0),
    ("extract_1_slice", "l7analytics, 1 slice", 1),
    (
        "extract_default",
        f"l7analytics, default ({EsReadOptions().slices} slices)",
        EsReadOptions().slices,
    ),
)


def run_reader(url: str, window: Window, slices: int) -> tuple[int, float, float]:
    """One reader's run, in a child process: documents, seconds, peak RSS (MB)."""
    client = connect(EsConnection(hosts=[url], request_timeout=300))
    n, seconds = (
        time_scan(client, window) if slices == 0 else time_extract(client, url, window, slices)
    )
    return n, seconds, peak_rss_mb()


def run_transport(url: str, window: Window, transport: Transport) -> tuple[int, float, float]:
    """One transport's read, in a child process: documents, seconds, peak RSS (MB)."""
    started = time.perf_counter()
    n = read_window(url, "tigera_secure_ee_l7.bench.*", window, transport)
    seconds = time.perf_counter() - started
    return n, seconds, peak_rss_mb()


def in_child(run, *args) -> tuple[int, float, float]:
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(run, *args).result()


def transport_rows(url: str, window: Window, repeat: int) -> list[tuple]:
    rows = []
    for transport in TRANSPORTS:
        best = min((in_child(run_transport, url, window, transport) for _ in range(repeat)),
                   key=lambda r: r[1])  # fmt: skip
        rows.append((f"transport: {transport.name}", transport.name, *best))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=int, default=24, help="hours of traffic indexed")
    parser.add_argument("--scale", type=float, default=4.0, help="generator traffic scale")
    parser.add_argument("--repeat", type=int, default=2, help="runs per reader (best kept)")
    parser.add_argument("--json", action="store_true", help="one JSON object per reader")
    parser.add_argument("--transport", action="store_true", help="also the transport table")
    parser.add_argument("--version", default="8.19.x", help="server to start (8.19.x, 7.17.29)")
    args = parser.parse_args()
    url = os.environ.get("L7_ES_URL")
    workdir = None
    if not url:
        url, workdir = start_server(Path(tempfile.mkdtemp(prefix="l7-bench-es-")), args.version)
    try:
        client = connect(EsConnection(hosts=[url], request_timeout=300))
        loaded = load(client, args.hours, args.scale)
        window = Window(DAY, DAY + timedelta(hours=args.hours))
        say = print if not args.json else lambda *a: print(*a, file=sys.stderr)
        say(f"indexed {loaded:,} documents into {INDEX} ({url}); window {window}")
        rows = []
        for stage, name, slices in READERS:
            best = min(
                (in_child(run_reader, url, window, slices) for _ in range(args.repeat)),
                key=lambda r: r[1],
            )
            rows.append((stage, name, *best))
        base = rows[0][2] / rows[0][3]
        verdict = "met" if rows[2][2] / rows[2][3] >= base else "MISSED"
        if args.transport:
            rows += transport_rows(url, window, args.repeat)
        if args.json:
            for stage, _, n, seconds, rss in rows:
                print(json.dumps({
                    "stage": stage, "records": n, "seconds": round(seconds, 3),
                    "rate": round(n / seconds), "peak_rss_mb": round(rss, 1),
                    "ratio_vs_scan": round(n / seconds / base, 3),
                }))  # fmt: skip
            return
        print(f"{'reader':34} {'documents':>10} {'seconds':>8} {'docs/s':>10} {'vs scan':>8} "
              f"{'peak RSS':>9}")  # fmt: skip
        for _, name, n, seconds, rss in rows:
            rate = n / seconds
            print(f"{name:34} {n:>10,} {seconds:>8.2f} {rate:>10,.0f} {rate / base:>7.2f}x "
                  f"{rss:>6.0f} MB")  # fmt: skip
        print(f"target (default >= 1.0x helpers.scan): {verdict}")
    finally:
        if workdir is not None:
            subprocess.run([sys.executable, str(ROOT / "scripts/es_server.py"), "stop",
                            "--workdir", str(workdir)], check=False)  # fmt: skip


if __name__ == "__main__":
    main()
