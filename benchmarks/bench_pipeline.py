"""Benchmark of the l7analytics batch job: ingest and scoring rates, peak memory per stage.

What is measured, for each size N (``--sizes``, default ``1M,10M``):

``generate``
    :func:`l7analytics.evaluation.synth.write_dataset` writes plain NDJSON covering
    ``--history-days`` days of history (default 1) plus one scored day. The ``scale`` is
    calibrated so that the *scored day* holds about N documents; the whole file therefore
    holds about ``(history_days + 1) * N`` documents. The file is cached in the work directory
    and reused by a later run with the same size, days and seed (only kept with ``--keep``).
``ingest``
    :func:`l7analytics.jobs.pipeline.extract` from that NDJSON into a fresh Parquet lake
    (documents/s). Target: >= 200,000 documents/s.
``train``
    :func:`l7analytics.jobs.pipeline.train` fits the unusual-pair model on the history days, so the
    scored day is scored with a model trained on earlier data, as a scheduled run would be.
    With one history day the model's ``warmup`` is lowered from 1d to 6h for training (the
    warm-up only seeds "first seen" and is not fitted on; with 1d nothing would be left).
``score``
    :func:`l7analytics.jobs.pipeline.score` runs the three detectors (default settings) over the
    last day of the lake and writes the alerts to an NDJSON sink (records/s). Target: at least
    1,000,000 records/s at 10M, with a peak RSS of at most 1 GB.
``score_hour``
    ``l7analytics score`` (the CLI, in a fresh process, timed from start to exit: imports,
    settings, model load and history reads included) over the hour of the scored day whose
    records are nearest 200,000. Target: at least 300,000 records/s.

Every stage runs in its own child process (this script re-invoking itself with ``--stage``), and
the peak RSS reported is that child's ``VmHWM`` (see ``peak_rss.py``), so the figures are per
stage and not inflated by the parent or an earlier stage. Times are wall-clock around the
library call only (imports, calibration and cleanup are excluded); ``cpu s`` is the CPU time of
that call (all threads) and ``others`` the share of the machine's CPUs that other processes used
meanwhile, so a figure taken on a busy machine can be recognised. Missing a target does not
change the exit status: this is a benchmark, not a test.

Reproduce::

    .venv/bin/python benchmarks/bench_pipeline.py                    # 1M and 10M
    .venv/bin/python benchmarks/bench_pipeline.py --sizes 1M --keep  # keep data for a re-run
    .venv/bin/python benchmarks/bench_pipeline.py --sizes 1M --profile score

``--profile STAGE`` runs that stage under cProfile (main thread only, so it is most useful for
``score`` and ``train``; extract's parse and write run on other threads) and prints the top 25
functions by cumulative time. Disk: the NDJSON takes about 720 bytes per document (10M scored
plus 8M history ~ 13 GB) and the lake about 4 % of that; without ``--keep`` both are deleted
after each size.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from peak_rss import peak_rss_mb

START = datetime(2026, 11, 1, tzinfo=UTC)
DEFAULT_WORKDIR = Path("/tmp/l7analytics-bench")
STAGES = ("generate", "ingest", "train", "score", "score_hour")
INGEST_TARGET = 200_000  # documents/s
SCORE_TARGET_RATE = 1_000_000  # records/s at 10M
MEMORY_TARGET_MB = 1024.0  # peak of the score stage
HOUR_RECORDS = 200_000  # score_hour scores the hour of the scored day nearest this many records
HOUR_TARGET_RATE = 300_000  # records/s, a fresh process end to end
#: Other processes using more than this share of the CPUs during a stage skew its figures.
BUSY_SHARE = 0.10
BYTES_PER_DOCUMENT = 800  # NDJSON plus lake, a generous estimate for the disk-space check
WINDOWS_PER_DAY = 288  # 5-minute Calico flushes
SAMPLE_EVERY = 12  # calibration looks at one window an hour


# -- sizes and paths --------------------------------------------------------------------------
def parse_size(text: str) -> int:
    """``"1M"`` -> 1_000_000, ``"500k"`` -> 500_000, ``"2.5M"``, ``"20000"``."""
    text = text.strip().lower()
    factor = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(text[-1:], 1)
    number = text[:-1] if factor != 1 else text
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if value < 1_000:
        raise argparse.ArgumentTypeError(f"size too small: {text!r} (at least 1k)")
    return value


def size_label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000_000:
        return f"{n / 1_000_000:g}M"
    return f"{n / 1_000:g}k"


@dataclass(frozen=True)
class Case:
    """One benchmark size and where its files live."""

    size: int
    history_days: int
    seed: int
    workdir: Path
    #: ``unusual_pair.warmup`` for training ("" keeps the default of the settings).
    train_warmup: str = ""

    @property
    def days(self) -> int:
        return self.history_days + 1

    @property
    def name(self) -> str:
        return f"{size_label(self.size)}-{self.days}d-seed{self.seed}"

    @property
    def ndjson(self) -> Path:
        return self.workdir / f"l7-{self.name}.ndjson"

    @property
    def generated(self) -> Path:
        """Written after generation completes: a file without it is not reused."""
        return self.workdir / f"l7-{self.name}.generated.json"

    @property
    def lake(self) -> Path:
        return self.workdir / f"lake-{self.name}"

    @property
    def alerts(self) -> Path:
        return self.workdir / f"alerts-{self.name}.ndjson"

    @property
    def quarantine(self) -> Path:
        return self.workdir / f"quarantine-{self.name}.ndjson"

    @property
    def training_days(self) -> tuple[datetime, datetime]:
        return START, START + timedelta(days=self.history_days)

    @property
    def scored_day(self) -> tuple[datetime, datetime]:
        first = START + timedelta(days=self.history_days)
        return first, first + timedelta(days=1)


# -- calibration ------------------------------------------------------------------------------
def estimate_scored_day(scale: float, days: int, seed: int) -> int:
    """Documents of the last (scored) day at ``scale``, from one window in ``SAMPLE_EVERY``.

    Windows are drawn independently of each other, so preparing a sample without rendering
    it costs well under a second even at a large scale.
    """
    from l7analytics.evaluation.synth import Synth

    synth = Synth(START, days, seed, scale=scale)
    first = (days - 1) * WINDOWS_PER_DAY
    windows = range(first, first + WINDOWS_PER_DAY, SAMPLE_EVERY)
    return sum(synth.prepare(k).documents for k in windows) * SAMPLE_EVERY


def calibrate_scale(target: int, days: int, seed: int, tolerance: float = 0.02) -> float:
    """The ``scale`` whose scored day holds about ``target`` documents.

    Documents grow less than linearly with ``scale`` (Calico's per-node limit, id pools) and
    not smoothly at small scales, so the scale is searched for: secant steps in log-log space
    kept inside a bracket (bisection when a step leaves it); the closest scale tried wins.
    """
    lo: tuple[float, int] | None = None  # (scale, documents) below the target
    hi: tuple[float, int] | None = None  # above it
    best = (math.inf, 1.0)
    scale = max(target / 80_000, 0.01)
    for _ in range(16):
        docs = estimate_scored_day(scale, days, seed)
        error = abs(math.log(docs / target))
        best = min(best, (error, scale))
        if error <= math.log1p(tolerance):
            break
        if docs < target:
            lo = (scale, docs)
        else:
            hi = (scale, docs)
        scale = _next_scale(lo, hi, target)
    return best[1]


def _next_scale(lo: tuple[float, int] | None, hi: tuple[float, int] | None, target: int) -> float:
    if lo is None or hi is None:
        known = lo or hi
        assert known is not None
        # Outside a bracket: assume documents ~ scale**0.8 and overshoot a little.
        return known[0] * (target / known[1]) ** 1.4
    (s0, d0), (s1, d1) = lo, hi
    if d1 == d0:
        return math.sqrt(s0 * s1)
    slope = math.log(d1 / d0) / math.log(s1 / s0)
    guess = s0 * (target / d0) ** (1 / slope) if slope > 0 else 0.0
    inside = s0 * 1.001 < guess < s1 * 0.999 or s1 * 1.001 < guess < s0 * 0.999
    return guess if inside else math.sqrt(s0 * s1)


# -- the stages (each runs in a child process) ------------------------------------------------
class Stopwatch:
    """Wall-clock and CPU (user + system, all threads) seconds of a ``with`` block."""

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), _cpu_seconds()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self._wall
        self.cpu_seconds = _cpu_seconds() - self._cpu

    def figures(self) -> dict[str, float]:
        return {"seconds": self.seconds, "cpu_seconds": self.cpu_seconds}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stage_generate(case: Case) -> dict[str, Any]:
    from l7analytics.evaluation.synth import write_dataset

    scale = calibrate_scale(case.size, case.days, case.seed)
    with Stopwatch() as watch:
        summary = write_dataset(case.ndjson, START, case.days, case.seed, gzip=False, scale=scale)
    result = {
        "items": summary.documents,
        **watch.figures(),
        "scale": scale,
        "requests": summary.requests,
        "bytes": case.ndjson.stat().st_size,
    }
    return result


def stage_ingest(case: Case) -> dict[str, Any]:
    from l7analytics.jobs import composition
    from l7analytics.jobs.pipeline import extract

    shutil.rmtree(case.lake, ignore_errors=True)
    source = composition.file_source([str(case.ndjson)])
    lake = composition.open_lake(case.lake)
    quarantine = composition.quarantine(case.quarantine)
    with Stopwatch() as watch:
        result = extract(source, lake, None, quarantine)
    return {
        "items": result.documents,
        **watch.figures(),
        "records": result.records,
        "unlogged_records": result.unlogged_records,
        "quarantined": result.quarantined,
        "partitions": len(result.partitions),
        "lake_bytes": directory_bytes(case.lake),
    }


def stage_train(case: Case) -> dict[str, Any]:
    from l7analytics.core.windows import Window
    from l7analytics.jobs import composition
    from l7analytics.jobs.pipeline import train

    lake = composition.open_lake(case.lake)
    window = Window(*case.training_days)
    overrides = {"detectors": {"unusual_pair": {"warmup": case.train_warmup}}}
    settings = composition.load_job_settings(overrides=overrides if case.train_warmup else None)
    with Stopwatch() as watch:
        (result,) = train(lake, window, settings, composition.model_store(lake))
    return {
        "items": sum(m["rows"] for m in lake.manifests(window)),
        **watch.figures(),
        "model_rows": result.rows,
        "version": result.version,
        "window": str(window),
    }


def stage_score(case: Case) -> dict[str, Any]:
    from l7analytics.core.windows import Window
    from l7analytics.jobs import composition
    from l7analytics.jobs.pipeline import score

    lake = composition.open_lake(case.lake)
    window = Window(*case.scored_day)
    settings = composition.load_job_settings()
    case.alerts.unlink(missing_ok=True)
    sink = composition.alert_file(case.alerts)
    with Stopwatch() as watch:
        result = score(lake, window, settings, [sink], composition.model_store(lake))
    return {
        "items": result.records,
        **watch.figures(),
        "alerts": len(result.alerts),
        "window": str(window),
        "detectors": {d: outcome_text(o) for d, o in result.outcomes.items()},
    }


def stage_score_hour(case: Case) -> dict[str, Any]:
    """The CLI scoring one hour in a fresh process, timed from start to exit: imports,
    settings, the model load and the history reads all count, as for an hourly schedule."""
    from l7analytics.core.windows import Window
    from l7analytics.jobs import composition

    lake = composition.open_lake(case.lake)
    first, _ = case.scored_day
    hours = [Window(first + timedelta(hours=h), first + timedelta(hours=h + 1)) for h in range(24)]
    sizes = {h: sum(m["rows"] for m in lake.manifests(h)) for h in hours}
    hour = min(hours, key=lambda h: abs(sizes[h] - HOUR_RECORDS))
    alerts = case.workdir / f"alerts-hour-{case.name}.ndjson"
    alerts.unlink(missing_ok=True)
    command = [str(Path(sys.executable).with_name("l7analytics")), "score", "--lake",
               str(case.lake), "--start", hour.start.isoformat(), "--end", hour.end.isoformat(),
               "--alerts", str(alerts)]  # fmt: skip
    with Stopwatch() as watch:
        subprocess.run(command, check=True, capture_output=True)
    figures = watch.figures()
    figures["cpu_seconds"] = _children_cpu_seconds()  # the CLI's, not this process's
    # The CLI's peak; Linux counts at least this process's RSS at the fork in it (an upper
    # bound: see peak_rss.py).
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"items": sizes[hour], **figures, "window": str(hour)}


def outcome_text(outcome: Any) -> str:
    """``ok (3 alerts, model 20261102T000000)`` for one :class:`DetectorOutcome`."""
    model = f", model {outcome.model_version}" if outcome.model_version else ""
    message = f": {outcome.message}" if outcome.message else ""
    return f"{outcome.status} ({outcome.alerts} alerts{model}){message}"


STAGE_FUNCTIONS = {
    "generate": stage_generate,
    "ingest": stage_ingest,
    "train": stage_train,
    "score": stage_score,
    "score_hour": stage_score_hour,
}


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_stage_here(stage: str, case: Case, result_path: Path, profile: bool) -> None:
    """The child's side: run one stage, then write its figures (and peak RSS) as JSON."""
    for module in ("l7analytics.jobs.pipeline", "l7analytics.evaluation.synth"):
        importlib.import_module(module)  # before timing and profiling: imports do not count

    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        figures = profiler.runcall(STAGE_FUNCTIONS[stage], case)
        print(f"\n--- cProfile of stage {stage} (main thread only), top 25 by cumtime ---")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(25)
    else:
        figures = STAGE_FUNCTIONS[stage](case)
    figures.setdefault("peak_rss_mb", peak_rss_mb())
    result_path.write_text(json.dumps(figures))


# -- the parent: runs stages in children, checks targets, prints the table ---------------------
@dataclass
class Row:
    size: str
    stage: str
    figures: dict[str, Any]
    cached: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        seconds = self.figures.get("seconds") or 0.0
        return self.figures.get("items", 0) / seconds if seconds else 0.0

    @property
    def rss(self) -> float:
        return float(self.figures.get("peak_rss_mb", 0.0))

    def as_json(self) -> dict[str, Any]:
        """The machine-readable figures of the stage (``--json``)."""
        seconds = float(self.figures.get("seconds") or 0.0)
        return {
            "stage": self.stage,
            "size": self.size,
            "records": int(self.figures.get("items", 0)),
            "seconds": round(seconds, 3),
            "rate": round(self.rate, 1),
            "peak_rss_mb": round(self.rss, 1),
            "cached": self.cached,
        }

    def target(self) -> tuple[str, str]:
        """(target, verdict) for the stages that have one."""
        if self.stage == "ingest":
            ok = self.rate >= INGEST_TARGET
            return f">= {INGEST_TARGET:,} doc/s", "met" if ok else "MISSED"
        if self.stage == "score":
            missed = []
            if self.rate < SCORE_TARGET_RATE:
                missed.append("rate")
            if self.rss > MEMORY_TARGET_MB:
                missed.append("memory")
            target = f">= {SCORE_TARGET_RATE:,} rec/s, <= 1 GB"
            return target, "met" if not missed else "MISSED (" + ", ".join(missed) + ")"
        if self.stage == "score_hour":
            ok = self.rate >= HOUR_TARGET_RATE
            return f">= {HOUR_TARGET_RATE:,} rec/s", "met" if ok else "MISSED"
        return "-", ""


class OthersMeter:
    """The share of the machine's CPUs that *other* processes used during a ``with`` block.

    Busy time of all CPUs (``/proc/stat``) less the CPU time of the children that finished in
    the block (the stage), over wall time x CPUs. ``share`` is ``None`` off Linux.
    """

    share: float | None = None

    def __enter__(self) -> OthersMeter:
        self._busy, self._children = _system_busy_seconds(), _children_cpu_seconds()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        busy = _system_busy_seconds()
        if busy is None or self._busy is None:
            return
        wall = time.perf_counter() - self._wall
        others = busy - self._busy - (_children_cpu_seconds() - self._children)
        self.share = max(others, 0.0) / (wall * (os.cpu_count() or 1))


def _system_busy_seconds() -> float | None:
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_stage(stage: str, case: Case, profile: bool) -> dict[str, Any]:
    """Run ``stage`` in a fresh child process and return its figures."""
    result_path = case.workdir / f".result-{case.name}-{stage}.json"
    result_path.unlink(missing_ok=True)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--stage",
        stage,
        "--sizes",
        str(case.size),
        "--history-days",
        str(case.history_days),
        "--seed",
        str(case.seed),
        "--train-warmup",
        case.train_warmup,
        "--workdir",
        str(case.workdir),
        "--result",
        str(result_path),
    ]
    if profile:
        command += ["--profile", stage]
    print(f"  {stage} ...", flush=True)
    with OthersMeter() as others:
        # The child prints only a profile; it goes where this process prints (stderr with --json).
        subprocess.run(
            command,
            check=True,
            stdout=sys.stdout.fileno() if hasattr(sys.stdout, "fileno") else None,
        )
    figures = json.loads(result_path.read_text())
    result_path.unlink()
    if others.share is not None:
        figures["others_cpu_share"] = others.share
        if others.share > BUSY_SHARE:
            print(f"    (other processes used {others.share:.0%} of the CPUs meanwhile)")
    return figures


def ensure_dataset(case: Case, profile: bool) -> Row:
    """Generate the NDJSON, or reuse the cached file when a complete one exists."""
    label = size_label(case.size)
    if case.ndjson.is_file() and case.generated.is_file():
        figures = json.loads(case.generated.read_text())
        if figures.get("bytes") == case.ndjson.stat().st_size:
            return Row(label, "generate", figures, cached=True)
    case.generated.unlink(missing_ok=True)
    figures = run_stage("generate", case, profile)
    case.generated.write_text(json.dumps(figures))
    return Row(label, "generate", figures)


def check_disk(case: Case) -> str | None:
    """A message when the work directory has too little room for this size."""
    if case.ndjson.is_file():
        need = case.size * case.days * BYTES_PER_DOCUMENT // 10  # just the lake
    else:
        need = case.size * case.days * BYTES_PER_DOCUMENT
    free = shutil.disk_usage(case.workdir).free
    if free < need:
        return f"needs ~{need / 1e9:.1f} GB in {case.workdir}, only {free / 1e9:.1f} GB free"
    return None


def clean(case: Case) -> None:
    for path in (case.ndjson, case.generated, case.alerts, case.quarantine):
        path.unlink(missing_ok=True)
    case.ndjson.with_name(case.ndjson.name.removesuffix(".ndjson") + ".labels.json").unlink(
        missing_ok=True
    )
    shutil.rmtree(case.lake, ignore_errors=True)


def bench_size(case: Case, profile: str | None, keep: bool) -> list[Row]:
    label = size_label(case.size)
    print(f"\n== size {label}: {case.history_days} history day(s) + 1 scored day ==", flush=True)
    problem = check_disk(case)
    if problem:
        print(f"  skipped: {problem}")
        return [Row(label, "skipped", {}, notes=[problem])]
    rows: list[Row] = []
    try:
        rows.append(ensure_dataset(case, profile == "generate"))
        for stage in STAGES[1:]:
            rows.append(Row(label, stage, run_stage(stage, case, profile == stage)))
    except subprocess.CalledProcessError as exc:
        print(f"  stage failed: {exc}")
        rows.append(Row(label, "failed", {}, notes=[str(exc)]))
    finally:
        if not keep:
            clean(case)
    return rows


def machine_facts() -> list[str]:
    from importlib.metadata import version

    import numpy
    import pyarrow
    import sklearn

    mem = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        total_kb = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        mem = f", RAM {total_kb / (1 << 20):.1f} GiB"
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    return [
        f"machine: {platform.machine()} {platform.system()} {platform.release()}, "
        f"cpu_count {os.cpu_count()} (usable {affinity}){mem}",
        f"python {platform.python_version()} ({platform.python_implementation()}), "
        f"pyarrow {pyarrow.__version__}, numpy {numpy.__version__}, "
        f"scikit-learn {sklearn.__version__}, l7analytics {version('l7analytics')}",
    ]


def details(row: Row) -> str:
    f = row.figures
    if row.stage == "generate":
        text = f"scale {f['scale']:.1f}, {f['bytes'] / 1e9:.2f} GB NDJSON"
        return text + (" (cached: figures of the run that generated it)" if row.cached else "")
    if row.stage == "ingest":
        return (
            f"{f['records']:,} records, {f['unlogged_records']:,} unlogged, "
            f"{f['quarantined']:,} quarantined, lake {f['lake_bytes'] / 1e9:.2f} GB"
        )
    if row.stage == "train":
        return f"{f['window']}, {f['model_rows']:,} (pair, window) rows"
    if row.stage == "score_hour":
        return f"{f['window']}: the CLI in a fresh process, imports included"
    if row.stage == "score":
        return f"{f['window']}, {f['alerts']:,} alerts; " + "; ".join(
            f"{d}: {s}" for d, s in f["detectors"].items()
        )
    return "; ".join(row.notes)


def print_table(rows: list[Row], case: Case) -> None:
    header = (
        "size",
        "stage",
        "docs/records",
        "seconds",
        "cpu s",
        "rate /s",
        "peak RSS MB",
        "others",
        "target",
        "",
    )
    lines = [header]
    for row in rows:
        f = row.figures
        if not f:
            lines.append((row.size, row.stage, *"-" * 7, ""))
            continue
        target, verdict = row.target()
        lines.append(
            (
                row.size,
                row.stage,
                f"{f['items']:,}",
                f"{f['seconds']:.1f}",
                f"{f['cpu_seconds']:.1f}" if "cpu_seconds" in f else "-",
                f"{row.rate:,.0f}",
                f"{row.rss:,.0f}",
                f"{f['others_cpu_share']:.0%}" if "others_cpu_share" in f else "-",
                target,
                verdict,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {2, 3, 4, 5, 6, 7}
    print()
    for n, line in enumerate(lines):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print(
        "cpu s: CPU time of the stage (user + system, all threads); others: share of the "
        f"{os.cpu_count()} CPUs that other processes used meanwhile (above "
        f"{BUSY_SHARE:.0%} the stage competed for CPU and its figures are pessimistic)."
    )
    warmup = case.train_warmup or "the default of the settings"
    print(
        f"train: the unusual-pair model is fitted on the first {case.history_days} day(s) "
        f"(unusual_pair.warmup {warmup}); score runs on the following day with the default "
        "settings and that model (trained on earlier data, as a scheduled run would use)."
    )
    for row in rows:
        print(f"  {row.size} {row.stage}: {details(row)}")
    print()
    for fact in machine_facts():
        print(fact)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Ingest and scoring rates and peak memory of the l7analytics pipeline."
    )
    parser.add_argument(
        "--sizes",
        default="1M,10M",
        help="comma-separated documents in the scored day, e.g. 1M,10M or 200k (default 1M,10M)",
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--keep", action="store_true", help="keep the NDJSON (reused) and lake")
    parser.add_argument("--history-days", type=int, default=1, help="training days (default 1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--train-warmup",
        help="unusual_pair.warmup while training (default 6h with one history day, else the "
        "settings' 1d: the warm-up only seeds first-seen and is not fitted on)",
    )
    parser.add_argument(
        "--profile",
        choices=STAGES,
        help="run this stage under cProfile and print the top 25 functions by cumulative time",
    )
    # Internal: a child process running one stage.
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per stage (keys stage, size, records, seconds, rate, "
        "peak_rss_mb) instead of the table; progress goes to stderr",
    )
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.history_days < 1:
        parser.error("--history-days must be at least 1")
    if args.train_warmup is None:
        args.train_warmup = "6h" if args.history_days == 1 else ""
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    cases = [
        Case(n, args.history_days, args.seed, args.workdir, args.train_warmup) for n in args.sizes
    ]
    if args.stage:
        run_stage_here(args.stage, cases[0], args.result, args.profile == args.stage)
        return 0
    rows: list[Row] = []
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        sizes = ", ".join(map(size_label, args.sizes))
        print(f"l7analytics benchmark in {args.workdir}; sizes: {sizes}")
        for case in cases:
            rows.extend(bench_size(case, args.profile, args.keep))
        if not args.json:
            print_table(rows, cases[0])
    if args.json:
        for row in rows:
            print(json.dumps(row.as_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
