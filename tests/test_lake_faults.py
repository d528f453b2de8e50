"""Kills, failures and races during lake commits: every hour stays readable, old or new.

A lake holds the old version of a two-hour window; a run writes the new version (one hour
replaced, the other emptied, overflow records moved between them, summaries). That transaction
is interrupted at every filesystem operation that changes the lake (and, for file creation,
also just after the empty file appears): by a real kill (a forked child ends with
``os._exit(137)``), by a one-off error (a full disk), and by a kill during the recovery of a
kill. After each fault, recovery runs and every hour must be exactly the old or the new
version (the whole window one or the other: the record decides), readable by pyarrow with
full validation and by DuckDB, with no ``_staging``/``_trash`` debris; re-running the write
then gives the new version exactly. The last part covers overlapping commits and readers
during commits, and a named regression test per finding of the issue.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from conftest import T0, calico_doc, make_records
from duckdb_process import DuckDBProcess

import l7analytics.adapters.lake as lake_module
from l7analytics.adapters.files import NdjsonQuarantine
from l7analytics.adapters.lake import ParquetLake
from l7analytics.adapters.settings_file import load_settings
from l7analytics.core.errors import ConfigError, LakeError
from l7analytics.core.normalize import normalize_table
from l7analytics.core.windows import Window
from l7analytics.jobs.pipeline import LAKE_SUMMARIES, extract, score
from l7analytics.jobs.ports import RawBatch
from l7analytics.ui.cli import main

HOUR = timedelta(hours=1)
START = datetime.fromtimestamp(T0, UTC)  # 2026-11-20T05:00:00Z
WINDOW = Window(START, START + 2 * HOUR)
HOURS = ("05", "06")
#: Faults injected per test, printed by each test (``pytest -s``) and checked for a minimum.
FAULTS: Counter[str] = Counter()


@dataclass(frozen=True)
class Version:
    """What a run writes: records and overflow records as (minutes after 05:00, count)."""

    records: tuple[tuple[int, int], ...]
    unlogged: tuple[tuple[int, int], ...]


# Old: records in both hours, overflow in 05. New: 05 replaced, 06 emptied, overflow moved
# from 05 to 06 (so the commit replaces, empties, removes and adds partitions).
OLD = Version(records=((5, 3), (10, 4), (65, 5)), unlogged=((20, 700),))
NEW = Version(records=((7, 30), (8, 31)), unlogged=((70, 900),))


@functools.cache
def records(version: Version) -> pa.Table:
    return make_records([{"end_time": T0 + m * 60, "count": c} for m, c in version.records])


@functools.cache
def unlogged(version: Version) -> pa.Table:
    docs = [calico_doc(type="unlogged", end_time=T0 + m * 60, count=c) for m, c in version.unlogged]
    return normalize_table(pa.Table.from_pylist(docs)).unlogged


def commit(lake: ParquetLake, version: Version, window: Window = WINDOW) -> None:
    """The transaction under test: a window, streamed records, overflow, summaries."""
    with lake.writer(window, "test", LAKE_SUMMARIES) as writer:
        writer.write([records(version)])
        writer.add_unlogged(unlogged(version))
        writer.commit()


def expected(version: Version, window: Window = WINDOW) -> dict[str, tuple]:
    """Per hour: sorted record counts, sorted overflow counts."""
    out = {}
    for hour in range(int(window.duration / HOUR)):
        first = int((window.start - START) / HOUR) + hour
        in_hour = [c for m, c in version.records if m // 60 == first]
        over = [c for m, c in version.unlogged if m // 60 == first]
        out[f"{5 + first:02d}"] = (sorted(in_hour), sorted(over))
    return out


def hour_window(hour: str) -> Window:
    start = START + (int(hour) - 5) * HOUR
    return Window(start, start + HOUR)


def by_hour(table: pa.Table) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for moment, count in zip(
        table["end_time"].to_pylist(), table["count"].to_pylist(), strict=True
    ):
        out.setdefault(f"{moment.hour:02d}", []).append(count)
    return out


def snapshot(lake: ParquetLake, window: Window = WINDOW) -> dict[str, tuple]:
    """Per hour what the lake serves (both datasets, fully validated)."""
    tables = [lake.read_table(window), lake.read_table(window, dataset="unlogged")]
    for table in tables:
        table.validate(full=True)
    found = [by_hour(t) for t in tables]
    return {h: tuple(sorted(f.get(h, [])) for f in found) for h in expected(OLD, window)}


def debris(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for name in ("_staging", "_trash")
        for p in (root / name).rglob("*")
    )


@pytest.fixture(scope="module")
def duckdb() -> Iterator[DuckDBProcess]:
    with DuckDBProcess() as process:
        yield process


def duckdb_counts(duckdb: DuckDBProcess, root: Path) -> dict[str, list[int]]:
    """Every parquet file of every partition, read by DuckDB (one query)."""
    files = sorted(str(p) for p in root.glob("*/date=*/hour=*/*.parquet"))
    out: dict[str, list[int]] = {"l7": [], "unlogged": []}
    if files:
        rows = duckdb.sql(
            f"SELECT filename, count FROM read_parquet({files!r}, filename=true) ORDER BY count"
        )
        for name, count in rows:
            out[Path(name).relative_to(root).parts[0]].append(count)
    return out


def assert_recovered(
    duckdb: DuckDBProcess,
    root: Path,
    version: Version,
    via: str = "recover",
    rerun: bool = True,
) -> None:
    """After recovery: exactly ``version``, readable everywhere, no debris; a re-run of the
    write then gives the new version exactly (checked after every kill; the other loops
    leave it out to stay fast)."""
    lake = ParquetLake(root, durable=False)
    if via == "recover":
        lake.recover()  # what every writer and `score` do first
    # (else: the first read of a lake object recovers)
    assert snapshot(lake) == expected(version)
    assert debris(root) == []
    counts = duckdb_counts(duckdb, root)
    assert counts["l7"] == sorted(c for _, c in version.records)
    assert counts["unlogged"] == sorted(c for _, c in version.unlogged)
    if rerun:
        commit(lake, NEW)
        assert snapshot(lake) == expected(NEW)
        assert debris(root) == []


# -- fault injection ------------------------------------------------------------------------
class Killed(BaseException):
    """The process died (simulated in-process: nothing after it reaches the disk)."""


class FaultyFS(pafs.LocalFileSystem):
    """A local filesystem that counts the operations changing the lake and, at operation
    ``fail_at``, kills the process (``kill``), fails once with a full disk (``enospc``), or
    dies in-process (``die``: that and every later operation raise :class:`Killed`)."""

    def __init__(self, fail_at: int | None = None, action: str = "kill") -> None:
        super().__init__()
        self.fail_at, self.action = fail_at, action
        self.trace: list[str] = []
        self.dead = False

    def _point(self, what: str, stream: pa.NativeFile | None = None) -> None:
        if self.dead:
            raise Killed(what)
        self.trace.append(what)
        if len(self.trace) != self.fail_at:
            return
        if self.action == "kill":
            os._exit(137)
        if stream is not None:
            stream.close()
        if self.action == "die":
            self.dead = True
            raise Killed(what)
        raise OSError(errno.ENOSPC, "No space left on device")

    def create_dir(self, path, *args, **kwargs):
        self._point(f"create_dir {path}")
        return super().create_dir(path, *args, **kwargs)

    def move(self, src, dest):
        self._point(f"move {src} -> {dest}")
        return super().move(src, dest)

    def delete_dir(self, path):
        self._point(f"delete_dir {path}")
        return super().delete_dir(path)

    def delete_dir_contents(self, path, *args, **kwargs):
        self._point(f"delete_dir_contents {path}")
        return super().delete_dir_contents(path, *args, **kwargs)

    def delete_file(self, path):
        self._point(f"delete_file {path}")
        return super().delete_file(path)

    def open_output_stream(self, path, *args, **kwargs):
        self._point(f"open {path}")
        stream = super().open_output_stream(path, *args, **kwargs)
        self._point(f"opened (empty) {path}", stream)
        return stream


def fork_child(func: Callable[[], None]) -> int:
    """Run ``func`` in a forked child; its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            func()
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stderr.flush()
        os._exit(code)
    return pid


def wait_child(pid: int, timeout: float = 30.0) -> int:
    """The child's exit code (137 when it was killed); a hung child fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"child {pid} hung for {timeout} s")
        time.sleep(0.002)


def in_child(func: Callable[[], None]) -> int:
    return wait_child(fork_child(func))


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A lake holding the old version, copied for each fault."""
    root = tmp_path_factory.mktemp("template") / "lake"
    commit(ParquetLake(root), OLD)
    assert snapshot(ParquetLake(root)) == expected(OLD)
    return root


@pytest.fixture(scope="module")
def trace(template, tmp_path_factory) -> list[str]:
    """Every counted operation of the transaction, in order (it is deterministic)."""
    root = tmp_path_factory.mktemp("dry") / "lake"
    shutil.copytree(template, root)
    fs = FaultyFS()
    commit(faulty_lake(root, fs), NEW)
    return fs.trace


def faulty_lake(root: Path, fs: FaultyFS) -> ParquetLake:
    """Without fsync: a kill loses nothing fsync would keep (that is for power cuts), and
    the fault loops stay fast; fsync runs in every other test."""
    return ParquetLake(root, fs, durable=False)


def record_point(trace: list[str]) -> int:
    """The operation (1-based) that puts the commit record in place."""
    return next(i for i, op in enumerate(trace, 1) if op.startswith("move") and "_COMMIT" in op)


def recorded_after(trace: list[str], point: int) -> bool:
    """Whether the commit record was in place before operation ``point``."""
    return point > record_point(trace)


def copy(template: Path, tmp_path: Path, name: str) -> Path:
    root = tmp_path / name / "lake"
    shutil.copytree(template, root)
    return root


def test_the_transaction_has_many_fault_points(trace):
    ops = Counter(op.split()[0] for op in trace)
    assert ops["move"] >= 6 and ops["open"] >= 6 and ops["delete_dir"] >= 2, ops
    assert any("_COMMIT.json.tmp" in op for op in trace)


def test_a_kill_at_any_step_of_a_commit_loses_no_hour(template, trace, duckdb, tmp_path):
    for point in range(1, len(trace) + 1):
        root = copy(template, tmp_path, f"kill{point}")
        code = in_child(
            lambda root=root, point=point: commit(faulty_lake(root, FaultyFS(point)), NEW)
        )
        assert code == 137, (point, trace[point - 1])
        version = NEW if recorded_after(trace, point) else OLD
        try:
            assert_recovered(duckdb, root, version, via="recover" if point % 2 else "first read")
        except AssertionError as exc:
            raise AssertionError(f"kill at {point}: {trace[point - 1]}") from exc
        FAULTS["kill"] += 1
        shutil.rmtree(root.parent)
    print(f"\nkills injected: {FAULTS['kill']} (every step of the transaction)")
    assert FAULTS["kill"] == len(trace)


def test_a_full_disk_at_any_step_fails_in_one_line_and_loses_no_hour(
    template, trace, duckdb, tmp_path
):
    for point in range(1, len(trace) + 1):
        root = copy(template, tmp_path, f"enospc{point}")
        try:
            commit(faulty_lake(root, FaultyFS(point, "enospc")), NEW)
        except LakeError as exc:
            message = str(exc)
            assert "\n" not in message and str(root) in message, message
            assert "No space left on device" in message, message
        version = NEW if recorded_after(trace, point) else OLD
        try:
            assert_recovered(duckdb, root, version, rerun=False)
        except AssertionError as exc:
            raise AssertionError(f"ENOSPC at {point}: {trace[point - 1]}") from exc
        FAULTS["enospc"] += 1
        shutil.rmtree(root.parent)
    print(f"\nfull-disk errors injected: {FAULTS['enospc']}")
    assert FAULTS["enospc"] == len(trace)


def test_a_kill_during_recovery_of_a_kill_loses_no_hour(template, trace, duckdb, tmp_path):
    """Die at points of the commit around and after the record, then die again at every
    step of the recovery that follows; a third recovery still finishes the commit."""
    record = record_point(trace)
    # a partial record; the first swap; mid-swap; trash deleted but the record still there
    points = [record - 1, record + 1, record + 6, len(trace) - 4]
    for point in points:
        died = copy(template, tmp_path, f"died{point}")
        with pytest.raises(Killed):
            commit(faulty_lake(died, FaultyFS(point, "die")), NEW)
        dry = FaultyFS()
        probe = copy(died, tmp_path, f"probe{point}")
        faulty_lake(probe, dry).recover()
        for again in range(1, len(dry.trace) + 1):
            root = copy(died, tmp_path, f"died{point}-{again}")
            with pytest.raises(Killed):
                faulty_lake(root, FaultyFS(again, "die")).recover()
            version = NEW if recorded_after(trace, point) else OLD
            try:
                assert_recovered(duckdb, root, version, rerun=False)
            except AssertionError as exc:
                raise AssertionError(f"{trace[point - 1]}, then {dry.trace[again - 1]}") from exc
            FAULTS["double"] += 1
            shutil.rmtree(root.parent)
    print(f"\nkills during recovery injected: {FAULTS['double']} after {len(points)} kills")
    assert FAULTS["double"] >= 20


# -- overlapping runs -------------------------------------------------------------------------
A = Version(records=((5, 11), (65, 12), (125, 13)), unlogged=())
B = Version(records=((70, 21), (130, 22), (190, 23)), unlogged=((75, 800),))
WINDOW_A = Window(START, START + 3 * HOUR)  # 05-07
WINDOW_B = Window(START + HOUR, START + 4 * HOUR)  # 06-08


def assert_one_run_per_overlap(root: Path) -> str:
    """06 and 07 come from the same run (commits are whole), the rest from its owner."""
    lake = ParquetLake(root)
    both = Window(START, START + 4 * HOUR)
    got = snapshot(lake, both)
    a, b = expected(A, both), expected(B, both)
    assert got["05"] == a["05"] and got["08"] == b["08"]
    winner = "A" if got["06"] == a["06"] else "B"
    assert {h: got[h] for h in ("06", "07")} == {
        h: (a if winner == "A" else b)[h] for h in ("06", "07")
    }
    assert debris(root) == []
    return winner


def test_overlapping_commits_in_threads_both_succeed(tmp_path):
    winners = Counter()
    for round_ in range(4):
        root = tmp_path / f"r{round_}"
        commit(ParquetLake(root), OLD)
        lakes = [ParquetLake(root), ParquetLake(root)]
        writers = []
        for lake, version, window in ((lakes[0], A, WINDOW_A), (lakes[1], B, WINDOW_B)):
            writer = lake.writer(window, "t", LAKE_SUMMARIES)
            writer.write([records(version)])
            writer.add_unlogged(unlogged(version))
            writers.append(writer)
        barrier, errors = threading.Barrier(2), []

        def run(writer, barrier=barrier, errors=errors):
            barrier.wait()
            try:
                writer.commit()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(w,)) for w in writers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        winners[assert_one_run_per_overlap(root)] += 1
    print(f"\noverlapping thread commits: last writer per round {dict(winners)}")


def test_overlapping_commits_in_processes_both_succeed(tmp_path):
    def child(root: Path, version: Version, window: Window, go: float) -> None:
        with ParquetLake(root).writer(window, "p", LAKE_SUMMARIES) as writer:
            writer.write([records(version)])
            writer.add_unlogged(unlogged(version))
            time.sleep(max(0.0, go - time.monotonic()))  # both commit at the same moment
            writer.commit()

    for round_ in range(2):
        root = tmp_path / f"p{round_}"
        commit(ParquetLake(root), OLD)
        go = time.monotonic() + 0.2
        pids = [
            fork_child(lambda v=v, w=w, r=root, g=go: child(r, v, w, g))
            for v, w in ((A, WINDOW_A), (B, WINDOW_B))
        ]
        assert [wait_child(pid) for pid in pids] == [0, 0]
        assert_one_run_per_overlap(root)


def test_readers_during_commits_never_see_an_hour_missing_or_mixed(tmp_path):
    """Readers list and open a partition under the shared lake lock, so they never look
    between the two renames of a swap; open files keep their version afterwards."""
    root = tmp_path / "lake"
    commit(ParquetLake(root), OLD)
    allowed = {h: [expected(OLD)[h][0], expected(NEW)[h][0]] for h in HOURS}
    stop, reads, bad = threading.Event(), [], []

    def reader():
        lake = ParquetLake(root)
        try:
            while not stop.is_set():
                got = by_hour(lake.read_table(WINDOW, ["end_time", "count"]))
                bad.extend(
                    (h, got.get(h)) for h in HOURS if sorted(got.get(h, [])) not in allowed[h]
                )
                reads.append(1)
        except Exception as exc:  # reported below, not lost in the thread
            bad.append(repr(exc))

    def lister():  # what `score` asks first: both hours always have a partition
        lake = ParquetLake(root)
        while not stop.is_set():
            if missing := lake.missing_hours(WINDOW):
                bad.append(("missing", missing))

    class SlowMoves(FaultyFS):  # widens the gap between the two renames of a swap
        def move(self, src, dest):
            time.sleep(0.003)
            return super().move(src, dest)

    threads = [threading.Thread(target=reader), threading.Thread(target=lister)]
    for thread in threads:
        thread.start()
    deadline, commits = time.monotonic() + 3.0, 0
    try:
        while (len(reads) < 20 or commits < 8) and time.monotonic() < deadline:
            commit(faulty_lake(root, SlowMoves()), NEW if commits % 2 else OLD)
            commits += 1
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert bad == []
    assert len(reads) >= 5 and commits >= 8, (len(reads), commits)


# -- regressions of the findings ------------------------------------------------------
def test_regression_kill_during_partition_swap_loses_no_hour(template, trace, tmp_path):
    """Finding 6: killed after the old hour went to the trash, before the new one came in
    (strace's ``inject=rename:signal=KILL:when=2``): the hour vanished, ``score`` said "0
    records scored" and exited 0, and ``_staging``/``_trash`` stayed forever."""
    to_trash = next(
        i for i, op in enumerate(trace, 1) if op.startswith("move") and "/_trash/" in op
    )
    assert "hour=05" in trace[to_trash - 1]
    root = copy(template, tmp_path, "swap")
    killed_at = to_trash + 1  # the old hour is in the trash, the new one not yet in place
    assert in_child(lambda: commit(faulty_lake(root, FaultyFS(killed_at)), NEW)) == 137
    assert not (root / "l7/date=2026-11-20/hour=05").exists()  # as the kill left it
    result = score(ParquetLake(root), hour_window("05"), load_settings(), [])
    assert result.records == len(expected(NEW)["05"][0]) and result.missing_hours == []
    assert debris(root) == []
    assert snapshot(ParquetLake(root)) == expected(NEW)


def test_regression_overlapping_commits_never_raise_directory_not_empty(tmp_path):
    """Finding 7: two commits of the same hours at once; one died with ``OSError:
    Directory not empty`` (the loser's rename onto the winner's fresh partition)."""
    for round_ in range(4):
        root = tmp_path / f"r{round_}"
        commit(ParquetLake(root), OLD)
        writers = []
        for _ in range(2):
            writer = ParquetLake(root).writer(WINDOW, "t")
            writer.write([records(NEW)])
            writers.append(writer)
        barrier, errors = threading.Barrier(2), []

        def run(writer, barrier=barrier, errors=errors):
            barrier.wait()
            try:
                writer.commit()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(w,)) for w in writers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert {h: v[0] for h, v in snapshot(ParquetLake(root)).items()} == {
            h: v[0] for h, v in expected(NEW).items()
        }


def test_regression_lake_that_is_a_file_exits_2_before_any_work(tmp_path, capsys):
    lake = tmp_path / "lake"
    lake.write_text("not a lake")
    logs = tmp_path / "logs.ndjson"
    logs.write_text('{"end_time": 1}\nnot json\n')
    commands = [
        ["extract", "--input", str(logs), "--lake", str(lake)],
        ["score", "--lake", str(lake), "--start", "2026-11-20T05:00Z", "--end",
         "2026-11-20T06:00Z", "--alerts", str(tmp_path / "a.ndjson")],
        ["train", "--lake", str(lake / "sub"), "--start", "2026-11-19", "--end", "2026-11-20"],
    ]  # fmt: skip
    for argv in commands:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(lake) in err, err
    assert lake.read_text() == "not a lake"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake", "logs.ndjson"]
    # The same for any other caller of the lake (Airflow tasks, notebooks).
    for root in (lake, lake / "sub"):
        with pytest.raises(ConfigError, match="regular file"):
            ParquetLake(root)


class RecordingSink:
    description = "recording"

    def __init__(self) -> None:
        self.calls = 0

    def write(self, alerts) -> int:
        self.calls += 1
        return len(alerts)


def test_regression_score_of_a_nonexistent_lake_fails_and_writes_no_alerts(tmp_path, capsys):
    alerts = tmp_path / "alerts.ndjson"
    missing = tmp_path / "nonexistent"
    argv = ["score", "--lake", str(missing), "--start", "2026-11-20T05:00Z",
            "--end", "2026-11-20T07:00Z", "--alerts", str(alerts)]  # fmt: skip
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err, err
    assert not alerts.exists() and not missing.exists()
    # Below the command line (Airflow, notebooks): a lake with nothing for the window.
    empty = tmp_path / "empty"
    commit(ParquetLake(empty), OLD)  # 05:00-07:00 only
    sink = RecordingSink()
    for root in (missing, empty):
        with pytest.raises(LakeError) as info:
            score(
                ParquetLake(root),
                Window(START + 5 * HOUR, START + 7 * HOUR),
                load_settings(),
                [sink],
            )
        message = str(info.value)
        assert str(root) in message and "2026-11-20T10:00:00Z" in message, message
        assert "no partition" in message and "\n" not in message
    assert sink.calls == 0 and not missing.exists()


def test_regression_score_names_the_hours_without_partition(tmp_path, capsys):
    root = tmp_path / "lake"
    commit(ParquetLake(root), OLD, Window(START, START + 2 * HOUR))
    alerts = tmp_path / "alerts.ndjson"
    argv = ["score", "--lake", str(root), "--start", "2026-11-20T04:00Z",
            "--end", "2026-11-20T07:00Z", "--alerts", str(alerts)]  # fmt: skip
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "warning: no partition for 1 hour(s)" in out and "2026-11-20T04:00:00Z" in out
    result = score(ParquetLake(root), Window(START - HOUR, START + 2 * HOUR), load_settings(), [])
    assert result.missing_hours == ["2026-11-20T04:00:00Z"]
    assert result.records == len(OLD.records)


class FailingSource:
    """Quarantines a malformed line, then breaks."""

    description = "failing"

    def batches(self, window):
        table = pa.Table.from_pylist([calico_doc(end_time=T0 + 60)])
        yield RawBatch(table, lambda i: "{}", lambda i: "x:1", [("x:2", "malformed", "{")])
        raise OSError(errno.EIO, "Input/output error")

    def manifest(self):
        return {}


def test_regression_failed_extract_leaves_no_quarantine_tmp(tmp_path):
    root = tmp_path / "lake"
    commit(ParquetLake(root), OLD)
    folder = root / "quarantine"
    with pytest.raises(OSError, match="Input/output"):
        extract(FailingSource(), ParquetLake(root), WINDOW, NdjsonQuarantine(folder / "w.ndjson"))
    assert list(folder.iterdir()) == []
    assert snapshot(ParquetLake(root)) == expected(OLD) and debris(root) == []
    # The quarantine still publishes on success, and a discarded one leaves nothing.
    with NdjsonQuarantine(folder / "ok.ndjson") as ok:
        ok.add("x:1", "malformed", "{")
        ok.close()
    with pytest.raises(RuntimeError), NdjsonQuarantine(folder / "no.ndjson") as no:
        no.add("x:1", "malformed", "{")
        raise RuntimeError
    assert sorted(p.name for p in folder.iterdir()) == ["ok.ndjson"]


def full_disk_at_manifests() -> FaultyFS:
    class FullAtManifest(FaultyFS):
        def open_output_stream(self, path, *args, **kwargs):
            if path.endswith("_manifest.json"):
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().open_output_stream(path, *args, **kwargs)

    return FullAtManifest()


def test_regression_disk_full_at_commit_is_one_line(tmp_path, capsys, monkeypatch):
    root = tmp_path / "lake"
    commit(ParquetLake(root), OLD)
    logs = tmp_path / "logs.ndjson"
    logs.write_text("\n".join(['{"end_time": 1}', "not json"]) + "\n")
    monkeypatch.setattr(lake_module, "_local_filesystem", full_disk_at_manifests)
    argv = ["extract", "--input", str(logs), "--lake", str(root),
            "--start", "2026-11-20T05:00Z", "--end", "2026-11-20T08:00Z"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(root) in err and "No space left on device" in err
    monkeypatch.undo()
    assert snapshot(ParquetLake(root)) == expected(OLD) and debris(root) == []
    assert not list((root / "quarantine").glob(".*.tmp"))


def test_regression_the_input_is_consumed_on_the_calling_thread_only(tmp_path):
    """``write_dataset`` pulled the record stream on Arrow's threads; when a write failed
    (a lake under a file, a full disk) they kept calling into Python and the interpreter
    aborted or hung at exit (``Fatal Python error: PyGILState_Release``). The lake now
    writes its files itself, on the caller's thread, so a failure is an ordinary exception.
    """
    threads = set()

    def tables():
        for version in (OLD, NEW):
            threads.add(threading.get_ident())
            yield records(version)

    class FullAtParquet(FaultyFS):
        def open_output_stream(self, path, *args, **kwargs):
            threads.add(threading.get_ident())
            if path.endswith(".parquet"):
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().open_output_stream(path, *args, **kwargs)

    commit(ParquetLake(tmp_path / "ok"), OLD)
    with ParquetLake(tmp_path / "ok").writer(WINDOW, "t") as writer:
        writer.write(tables())
        writer.commit()
    with (
        pytest.raises(LakeError, match="No space left"),
        ParquetLake(tmp_path / "full", FullAtParquet()).writer(WINDOW, "t") as writer,
    ):
        writer.write(tables())
        writer.commit()
    assert threads == {threading.get_ident()}


def test_unwritable_lake_is_one_line(tmp_path):
    class Denied(FaultyFS):
        def create_dir(self, path, *args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied", path)

    root = tmp_path / "lake"
    with pytest.raises(LakeError) as info:
        ParquetLake(root, Denied()).writer(WINDOW, "t")
    assert str(root) in str(info.value) and "Permission denied" in str(info.value)


def test_debris_of_older_versions_is_recovered(tmp_path):
    """Before commit records, a kill between the two renames left the old hour in
    ``_trash`` and nothing in its place: recovery puts it back and removes the rest."""
    root = tmp_path / "lake"
    commit(ParquetLake(root), OLD)
    run = "20261120T050000-0123abcd"
    trash = root / "_trash" / run / "l7/date=2026-11-20"
    trash.mkdir(parents=True)
    (root / "l7/date=2026-11-20/hour=05").rename(trash / "hour=05")
    staged = root / "_staging" / run / "l7/date=2026-11-20/hour=05"
    staged.mkdir(parents=True)
    (staged / "part-0.parquet").write_bytes(b"half")
    lake = ParquetLake(root)
    assert lake.recover() == [f"removed the uncommitted run {run} (1 restored)"]
    assert snapshot(lake) == expected(OLD) and debris(root) == []


def test_recovery_leaves_live_runs_and_other_staging_alone(tmp_path):
    root = tmp_path / "lake"
    commit(ParquetLake(root), OLD)
    model_staging = root / "_staging" / "model-l7.unusual_pair-v1"
    model_staging.mkdir(parents=True)
    live = ParquetLake(root).writer(WINDOW, "live", LAKE_SUMMARIES)
    live.write([records(NEW)])
    live.add_unlogged(unlogged(NEW))
    assert ParquetLake(root).recover() == []
    commit(ParquetLake(root), OLD)  # another run commits meanwhile, recovering first
    assert (root / "_staging" / f"{live.run_id}.lock").is_file()
    live.commit()
    assert snapshot(ParquetLake(root)) == expected(NEW)
    assert model_staging.is_dir()
    assert [p.name for p in (root / "_staging").iterdir()] == [model_staging.name]
