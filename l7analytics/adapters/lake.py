"""The Parquet lake: Hive-partitioned by ``end_time`` hour, every partition replaced whole.

Layout under the root (a local path or any URI ``pyarrow.fs`` understands, e.g. ``s3://``)::

    l7/date=2026-11-20/hour=05/part-0.parquet     normalized records (zstd)
    l7/date=2026-11-20/hour=05/_manifest.json     rows, requests, source, run, time
    l7/date=2026-11-20/hour=05/_pairs.arrow       per-partition summaries (history reads)
    unlogged/date=.../hour=.../part-0.parquet      Calico overflow records
    models/<detector>/<version>/...               trained models (see model_store)
    quarantine/...                                rejected documents
    _lake.lock                                    the lake lock (flock)
    _staging/<run>/  _staging/<run>.lock          a writer's partitions, its liveness lock
    _trash/<run>/                                 old partitions while a commit swaps them

Files starting with ``_`` are ignored by pyarrow, pandas and Spark, and summaries are Arrow
files, so a ``**/*.parquet`` glob (DuckDB) sees only records.

Commit protocol (local filesystems). A partition directory is only ever moved whole, by
``rename(2)``, so it is always the complete old or the complete new version:

1. *Stage.* A writer takes an exclusive ``flock`` on ``_staging/<run>.lock`` when it starts
   (under the lake lock, after recovering) and holds it for as long as it lives; it writes
   the new partitions under ``_staging/<run>/`` (in parallel with other writers and
   readers; no lake lock) and fsyncs them.
2. *Record.* Under the lake lock (exclusive ``flock`` on ``_lake.lock``) it recovers again
   (below), then writes ``_staging/<run>/_COMMIT.json`` (a temporary name, fsynced, renamed):
   every partition path and whether the run has a new version of it. From that rename on
   the commit is decided and only goes forward.
3. *Swap,* per partition, still under the lock: ``old -> _trash/<run>/<partition>``, then
   ``staged -> <partition>``; then the parent directories are fsynced.
4. *Clean,* still under the lock: delete ``_trash/<run>``, then the record, then
   ``_staging/<run>`` and its lock file.

An error before the record (a full disk while staging) deletes the staging: the lake is as
it was. An error after it releases the run's lock and recovers at once; whatever cannot be
done then is done by the next recovery. Every filesystem failure is a one-line
:class:`~l7analytics.core.errors.LakeError` naming the lake; a root that is a regular file is a
:class:`~l7analytics.core.errors.ConfigError` when the lake object is made.

Recovery (:meth:`ParquetLake.recover`, under the lake lock) runs when a writer starts, before
every commit, at the start of ``score`` and on a lake object's first read; with nothing in
``_staging``/``_trash`` it takes no lock and writes nothing. For each run found there whose
run lock can be taken (its process is gone: the kernel drops an ``flock`` when the process
dies, even on ``kill -9``): with a record, steps 3-4 again (each step looks at which of
staged, target and trash exist, so a kill during recovery is recovered the same way);
without one, its staging is deleted, and a partition in its trash whose target is missing
is moved back (debris of versions before the record existed, which lost that hour). Trash
is deleted before the record, so a record never outlives a swapped-out partition that a
later recovery could resurrect. Other names in ``_staging`` (a model store's) are left
alone.

Why this design: rolling forward needs only renames of files already written, so it cannot
fail for lack of space and nothing is ever half undone; the lake lock makes overlapping
commits take turns (a waiting writer gives up after ``LOCK_TIMEOUT``), and each recovers
first, so a dead run's record is always finished before anyone else swaps; ``flock``
liveness needs no PIDs (reused, meaningless across containers sharing a volume) and no
timeouts. Readers take the lake lock *shared* while they look which partitions exist and
while they list and open one partition's files (creating ``_lake.lock`` if they can; on a
read-only lake without it they read unlocked): they never look between the two renames of
a swap, and an open file keeps reading its version even after a commit swaps the directory.

Other filesystems (``s3://``, ``gs://``, HDFS): no ``flock``, so no lock, no record and no
recovery; a commit stages and swaps as in steps 3-4 (a partition may be briefly missing
during the swap, and a crash between the two moves leaves it missing until re-extracted;
overlapping writers must be serialized by the scheduler). Transactions on object storage come
with the move to Delta Lake.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import logging
import os
import re
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from l7analytics import __version__
from l7analytics.core.arrowutil import conform, rows_in_window
from l7analytics.core.errors import ConfigError, LakeError
from l7analytics.core.schema import L7_SCHEMA, SCHEMA_VERSION, UNLOGGED_SCHEMA
from l7analytics.core.summary import SummarySpec
from l7analytics.core.windows import Window, floor_time, iso
from l7analytics.jobs.prefetch import prefetch

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking, as on object stores
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

RECORDS = "l7"
UNLOGGED = "unlogged"
HOUR = timedelta(hours=1)
STAGING = "_staging"
TRASH = "_trash"
LOCK_FILE = "_lake.lock"
RECORD = "_COMMIT.json"
#: How long a writer waits for another run's commit before it gives up.
LOCK_TIMEOUT = 600.0
#: Rows buffered per partition before a row group is written, and over all partitions.
_ROW_GROUP = 262_144
_BUFFERED = 1_048_576
_OPEN_FILES = 128
_RUN_ID = re.compile(r"\d{8}T\d{6}-[0-9a-f]{8}")
_PARTITION = re.compile(rf"(?:{RECORDS}|{UNLOGGED})/date=\d{{4}}-\d{{2}}-\d{{2}}/hour=\d{{2}}")

#: name -> what to aggregate per partition; stored as ``_<name>.arrow`` beside the data.
Summaries = dict[str, SummarySpec]


def partition_of(moment: datetime) -> tuple[str, str]:
    return moment.strftime("%Y-%m-%d"), moment.strftime("%H")


def partition_path(dataset: str, date: str, hour: str) -> str:
    return f"{dataset}/date={date}/hour={hour}"


def hours_of(window: Window) -> list[datetime]:
    """The starts of the hours overlapping ``window``."""
    hours, cursor = [], floor_time(window.start, HOUR)
    while cursor < window.end:
        hours.append(cursor)
        cursor += HOUR
    return hours


def _epoch_hours(table: pa.Table) -> np.ndarray:
    seconds = pc.cast(table.column("end_time"), pa.int64()).to_numpy(zero_copy_only=False)
    return seconds // 3600


def _key(epoch_hour: int) -> tuple[str, str]:
    return partition_of(datetime.fromtimestamp(int(epoch_hour) * 3600, tz=UTC))


def _with_partition_columns(table: pa.Table) -> pa.Table:
    """Add ``date`` and ``hour`` from ``end_time``: integer hours, formatted once per hour."""
    hours, index = np.unique(_epoch_hours(table), return_inverse=True)
    keys = [_key(h) for h in hours]
    indices = pa.array(index.astype(np.int32))
    dates = pa.array([k[0] for k in keys], pa.string()).take(indices)
    hour_of_day = pa.array([k[1] for k in keys], pa.string()).take(indices)
    return table.append_column("date", dates).append_column("hour", hour_of_day)


def _split_by_hour(table: pa.Table) -> Iterator[tuple[tuple[str, str], pa.Table]]:
    """The rows of each hour partition, in row order within each: slices, after one take
    when the rows are not in hour order already (logs mostly are)."""
    hours = _epoch_hours(table)
    if len(hours) > 1 and not bool(np.all(hours[1:] >= hours[:-1])):
        order = np.argsort(hours, kind="stable")
        table, hours = table.take(pa.array(order)), hours[order]
    ordered, sorted_hours = table, hours
    bounds = [0, *(np.flatnonzero(np.diff(sorted_hours)) + 1).tolist(), len(sorted_hours)]
    for start, end in itertools.pairwise(bounds):
        yield _key(sorted_hours[start]), ordered.slice(start, end - start)


def _problem(exc: OSError) -> str:
    """One line: pyarrow's text names the path; a bare errno gets its standard wording."""
    text = exc.strerror or (os.strerror(exc.errno) if exc.errno else "") or str(exc)
    if exc.filename and str(exc.filename) not in text:
        text = f"{text}: {exc.filename}"
    return " ".join(str(text).split())


# -- locks ------------------------------------------------------------------------------------
def _open_lock_file(path: str, *, create: bool) -> int | None:
    """A new open file description (``flock`` excludes per description, so threads too)."""
    try:
        return os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
    except FileNotFoundError:
        return None
    except OSError:
        with contextlib.suppress(OSError):
            return os.open(path, os.O_RDONLY)  # a read-only lake can still be read safely
        return None


def _flock(fd: int, shared: bool, timeout: float, what: str) -> None:
    """Take the lock, polling so that a stuck holder ends in a LakeError, not a hang."""
    assert fcntl is not None
    mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
    deadline, delay = time.monotonic() + timeout, 0.001
    while True:
        try:
            fcntl.flock(fd, mode)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise LakeError(f"{what} is held by another run for over {timeout:.0f} s") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


class _RunLock:
    """Held by a live writer for its whole life: recovery leaves its staging alone."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        assert fcntl is not None
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh name: never contended

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _local_filesystem() -> pafs.FileSystem:
    return pafs.LocalFileSystem()


@dataclass(frozen=True)
class _Step:
    """One partition of a commit: ``path`` relative to the root; ``new``: staged version."""

    path: str
    new: bool


class ParquetLake:
    """A lake rooted at ``root``; see the module docstring for the layout and commits."""

    #: A local lake holds one Calico cluster (a lake on object storage holds many).
    cluster = "cluster"
    #: Where the model store keeps the models, under the root.
    models_dir: tuple[str, ...] = ("models",)

    def __init__(
        self,
        root: str | os.PathLike[str],
        filesystem: pafs.FileSystem | None = None,
        *,
        durable: bool = True,
        stored: Callable[[pa.Schema], pa.Schema] | None = None,
    ) -> None:
        self.uri = str(root)
        #: The columns and types the data files get (a Delta lake's staging: its own).
        self.stored = stored or (lambda schema: schema)
        root = str(root)
        if filesystem is None:
            if "://" in root:
                filesystem, root = pafs.FileSystem.from_uri(root)
            else:
                filesystem, root = _local_filesystem(), os.path.abspath(root)
        self.fs = filesystem
        self.root = root.rstrip("/")
        #: flock, commit records and recovery need a local (POSIX) filesystem.
        self.local = isinstance(filesystem, pafs.LocalFileSystem) and fcntl is not None
        #: fsync staged files and directories before a commit is recorded (power loss).
        self.durable = durable
        self._recovered = False
        self._check_root()

    def __repr__(self) -> str:
        return f"ParquetLake({self.root!r})"

    def __str__(self) -> str:
        return self.uri

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _check_root(self) -> None:
        """A root that is (or lies under) a regular file is a wrong argument, found before
        any work is done rather than after the input has been read."""
        if self.local:
            path = self.root
            while not os.path.lexists(path) and os.path.dirname(path) != path:
                path = os.path.dirname(path)
            bad = os.path.exists(path) and not os.path.isdir(path)
        else:
            try:
                bad = self.fs.get_file_info(self.root).type == pafs.FileType.File
            except OSError:
                return  # unreachable store: reported by the first real operation
        if bad:
            where = "is" if path == self.root else f"lies under {path}, which is"
            raise ConfigError(f"lake {self.uri} {where} a regular file, not a directory")

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Every filesystem failure (ENOSPC, EACCES, EIO) becomes one line naming the lake."""
        try:
            yield
        except OSError as exc:
            raise LakeError(f"lake {self.uri}: cannot {action}: {_problem(exc)}") from exc

    # -- the lake lock ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self, *, shared: bool) -> Iterator[None]:
        """The lake lock: exclusive to change partitions, shared to open one partition."""
        if not self.local:
            yield
            return
        fd = _open_lock_file(self.path(LOCK_FILE), create=True)
        if fd is None and not shared:
            with self._errors("create the lock file"):
                self.fs.create_dir(self.root, recursive=True)
                fd = os.open(self.path(LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        if fd is None:  # nothing there yet, or read-only and lockless: nothing to exclude
            yield
            return
        try:
            _flock(fd, shared, LOCK_TIMEOUT, f"the lock of lake {self.uri}")
            yield
        finally:
            os.close(fd)

    # -- recovery ---------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Finish or remove the commits of runs that died; what was done, one line each.

        Cheap when there is nothing to do (two directory listings, no lock, no write), so
        a read-only lake stays readable.
        """
        if not self.local:
            return []
        with self._errors("look for interrupted commits"):
            pending = self._runs()
        done = []
        if pending:
            with self._locked(shared=False):
                done = self._recover_locked()
        self._recovered = True
        return done

    def _recover_once(self) -> None:
        if not self._recovered:
            self.recover()

    def _recover_locked(self) -> list[str]:
        """Recovery proper; the caller holds the lake lock exclusively."""
        done: list[str] = []
        if not self.local:
            return done
        with self._errors("recover an interrupted commit"):
            for run in sorted(self._runs()):
                if self._alive(run):
                    continue
                steps = self._read_record(run)
                if steps is None:
                    restored = self._roll_back(run)
                    done.append(f"removed the uncommitted run {run} ({restored} restored)")
                else:
                    self._roll_forward(run, steps)
                    done.append(f"completed the commit of run {run} ({len(steps)} partitions)")
                log.warning("lake %s: %s", self.uri, done[-1])
            self._remove_if_empty(self.path(STAGING))
            self._remove_if_empty(self.path(TRASH))
        return done

    def _runs(self) -> set[str]:
        """Run ids with anything in ``_staging`` or ``_trash`` (other names, e.g. a model
        store's staging, are not ours and are left alone)."""
        runs = set()
        for folder in (STAGING, TRASH):
            for info in self._list(self.path(folder)):
                name = info.base_name.removesuffix(".lock")
                if _RUN_ID.fullmatch(name):
                    runs.add(name)
        return runs

    def _alive(self, run: str) -> bool:
        fd = _open_lock_file(self.path(STAGING, f"{run}.lock"), create=False)
        if fd is None:
            return False
        try:
            assert fcntl is not None
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def _read_record(self, run: str) -> list[_Step] | None:
        path = self.path(STAGING, run, RECORD)
        if not self.fs.get_file_info(path).is_file:
            return None
        try:
            with self.fs.open_input_stream(path) as stream:
                document = json.loads(stream.read())
            steps = [_Step(str(s["path"]), bool(s["new"])) for s in document["partitions"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise LakeError(f"lake {self.uri}: commit record {path} is unreadable: {exc}") from exc
        if bad := [s.path for s in steps if not _PARTITION.fullmatch(s.path)]:
            raise LakeError(f"lake {self.uri}: commit record {path} names no partition: {bad[0]}")
        return steps

    def _write_record(self, run: str, steps: list[_Step]) -> None:
        """The commit point: after this rename the run's partitions will be swapped in."""
        path = self.path(STAGING, run, RECORD)
        document = {"run_id": run, "partitions": [s.__dict__ for s in steps]}
        with self.fs.open_output_stream(f"{path}.tmp") as stream:
            stream.write(json.dumps(document, indent=1).encode())
        self._sync(f"{path}.tmp")
        self.fs.move(f"{path}.tmp", path)
        self._sync(self.path(STAGING, run))

    def _roll_forward(self, run: str, steps: list[_Step]) -> None:
        """Steps 3-4 of a commit; safe to repeat after a kill at any point."""
        for step in steps:
            self._swap(run, step)
        self._sync_parents(steps)
        self._delete_dir(self.path(TRASH, run))
        self._delete_file(self.path(STAGING, run, RECORD))
        self._discard_run(run)

    def _swap(self, run: str, step: _Step) -> None:
        staged = self.path(STAGING, run, step.path)
        target = self.path(step.path)
        trash = self.path(TRASH, run, step.path)
        if step.new and not self._is_dir(staged):
            return  # swapped in already
        if self._is_dir(target):
            self._delete_dir(trash)
            self.fs.create_dir(trash.rsplit("/", 1)[0], recursive=True)
            self.fs.move(target, trash)
        if step.new:
            self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            self.fs.move(staged, target)

    def _roll_back(self, run: str) -> int:
        """Drop an uncommitted run; put back partitions an older version left in trash."""
        restored = 0
        trash = self.path(TRASH, run)
        for info in self._list(trash, recursive=True):
            relative = info.path[len(trash) + 1 :]
            if _PARTITION.fullmatch(relative) and not self._is_dir(self.path(relative)):
                self.fs.create_dir(self.path(relative).rsplit("/", 1)[0], recursive=True)
                self.fs.move(info.path, self.path(relative))
                restored += 1
        self._delete_dir(trash)
        self._discard_run(run)
        return restored

    def _discard_run(self, run: str) -> None:
        self._delete_dir(self.path(STAGING, run))
        self._delete_file(self.path(STAGING, f"{run}.lock"))

    # -- small filesystem helpers -----------------------------------------------------------
    def _list(self, directory: str, recursive: bool = False) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(directory, allow_not_found=True, recursive=recursive)
        return self.fs.get_file_info(selector)

    def _is_dir(self, path: str) -> bool:
        return self.fs.get_file_info(path).type == pafs.FileType.Directory

    def _delete_dir(self, path: str) -> None:
        if self._is_dir(path):
            self.fs.delete_dir(path)

    def _delete_file(self, path: str) -> None:
        if self.fs.get_file_info(path).is_file:
            self.fs.delete_file(path)

    def _remove_if_empty(self, directory: str) -> None:
        """Tidy the work directories once no run uses them (another run may: then keep)."""
        with contextlib.suppress(OSError):
            if self._is_dir(directory) and not self._list(directory):
                self.fs.delete_dir(directory)

    def _sync(self, path: str) -> None:
        """fsync a local file or directory (a kill needs none; a power cut does)."""
        if not (self.local and self.durable):
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        except OSError as exc:  # some filesystems cannot fsync a directory
            if exc.errno not in (errno.EINVAL, errno.EBADF):
                raise
        finally:
            os.close(fd)

    def _sync_parents(self, steps: list[_Step]) -> None:
        """Make the swaps durable before the record that would redo them is deleted."""
        if not (self.local and self.durable):
            return
        for parent in sorted({s.path.rsplit("/", 1)[0] for s in steps}):
            if self._is_dir(self.path(parent)):
                self._sync(self.path(parent))

    def _sync_tree(self, directory: str) -> None:
        if not (self.local and self.durable):
            return
        for folder, _, files in os.walk(directory):
            for name in files:
                self._sync(os.path.join(folder, name))
            self._sync(folder)

    # -- writing ------------------------------------------------------------------------
    def writer(
        self,
        window: Window | None,
        source: str,
        summaries: Summaries | None = None,
        run_mode: str = "scheduled",
    ) -> LakeWriter:
        """A transaction that replaces the partitions of ``window`` (plus any written to)."""
        if window is not None and not window.is_aligned(HOUR):
            raise LakeError(
                f"lake: window {window} must start and end on the hour; partitions are "
                "replaced whole"
            )
        return LakeWriter(self, window, source, summaries or {}, run_mode)

    def _start_run(self, run: str) -> _RunLock | None:
        """Recover, then take the new run's lock (under the lake lock, so recovery never
        sees a lock file that is not locked yet)."""
        if not self.local:
            return None
        with self._locked(shared=False), self._errors("start a write"):
            self._recover_locked()
            self._recovered = True
            self.fs.create_dir(self.path(STAGING), recursive=True)
            return _RunLock(self.path(STAGING, f"{run}.lock"))

    # -- reading ------------------------------------------------------------------------
    def partitions(self, window: Window, dataset: str = RECORDS) -> list[str]:
        """Existing partition directories whose hour overlaps ``window``."""
        self._recover_once()
        candidates = [
            self.path(partition_path(dataset, *partition_of(h))) for h in hours_of(window)
        ]
        with self._locked(shared=True):  # never between the two renames of a swap
            infos = self.fs.get_file_info(candidates)
        return [i.path for i in infos if i.type == pafs.FileType.Directory]

    def missing_hours(self, window: Window) -> list[datetime]:
        """Hours of ``window`` with no records partition (never extracted, or lost)."""
        present = set(self.partitions(window))
        hours = hours_of(window)
        return [
            h for h in hours if self.path(partition_path(RECORDS, *partition_of(h))) not in present
        ]

    def _open_partition(self, directory: str) -> list[pa.NativeFile]:
        """Open every data file of one partition under the shared lock: the open files keep
        this version readable even if a commit swaps the directory right after."""
        handles: list[pa.NativeFile] = []
        with self._locked(shared=True):
            infos = sorted(self._list(directory), key=lambda i: i.path)
            try:
                for info in infos:
                    name = info.base_name
                    if info.is_file and name.endswith(".parquet") and not name.startswith("_"):
                        handles.append(self.fs.open_input_file(info.path))
            except BaseException:
                for handle in handles:
                    handle.close()
                raise
        return handles

    def _read_small(self, directory: str, name: str) -> bytes | None:
        with self._locked(shared=True):
            path = f"{directory}/{name}"
            if not self.fs.get_file_info(path).is_file:
                return None
            with self.fs.open_input_stream(path) as stream:
                return stream.read()

    def read(
        self,
        window: Window,
        columns: Iterable[str] | None = None,
        batch_size: int = 262_144,
        dataset: str = RECORDS,
    ) -> Iterator[pa.RecordBatch]:
        """Stream the records with ``end_time`` in ``window``, only the ``columns`` asked for.

        Files are read one after the other, a row group at a time, one batch ahead: memory
        stays at a few batches however large the window (Arrow's dataset scanner buffers up
        to its backpressure limits, over a gigabyte, when the consumer is slower than it).
        """
        schema = L7_SCHEMA if dataset == RECORDS else UNLOGGED_SCHEMA
        names = list(columns) if columns is not None else schema.names
        wanted = pa.schema([schema.field(n) for n in names])
        start, end = int(window.start.timestamp()), int(window.end.timestamp())

        def batches() -> Iterator[pa.RecordBatch]:
            for directory in self.partitions(window, dataset):
                for handle in self._open_partition(directory):
                    with handle:
                        parquet = pq.ParquetFile(handle)
                        present = [
                            n for n in {*names, "end_time"} if n in parquet.schema_arrow.names
                        ]
                        for batch in parquet.iter_batches(batch_size, columns=present):
                            batch = rows_in_window(batch, start, end)
                            if batch.num_rows:
                                yield conform(batch, wanted)

        yield from prefetch(batches(), depth=2)

    def read_table(
        self, window: Window, columns: Iterable[str] | None = None, dataset: str = RECORDS
    ) -> pa.Table:
        batches = list(self.read(window, columns, dataset=dataset))
        schema = L7_SCHEMA if dataset == RECORDS else UNLOGGED_SCHEMA
        if columns is not None:
            schema = pa.schema([schema.field(c) for c in columns])
        return pa.Table.from_batches(batches, schema=schema)

    def count_rows(self, window: Window) -> int:
        return sum(b.num_rows for b in self.read(window, ["end_time"]))

    def summaries(self, window: Window, name: str) -> list[pa.Table]:
        """The ``_<name>.arrow`` summaries of the partitions overlapping ``window``."""
        out = []
        for directory in self.partitions(window):
            data = self._read_small(directory, f"_{name}.arrow")
            if data is not None:
                out.append(pa.ipc.open_file(pa.BufferReader(data)).read_all())
        return out

    def manifests(self, window: Window, dataset: str = RECORDS) -> list[dict[str, Any]]:
        out = []
        for directory in self.partitions(window, dataset):
            data = self._read_small(directory, "_manifest.json")
            if data is not None:
                out.append(json.loads(data))
        return out

    def extent(self) -> Window | None:
        """The hours the lake holds records for (by partition names), or ``None``."""
        self._recover_once()
        base = self.path(RECORDS)
        if self.fs.get_file_info(base).type != pafs.FileType.Directory:
            return None
        hours = []
        with self._locked(shared=True):
            infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True))
        for info in infos:
            if info.type == pafs.FileType.Directory and "/hour=" in info.path:
                date = info.path.split("date=")[1][:10]
                hour = info.path.split("hour=")[1][:2]
                hours.append(datetime.fromisoformat(f"{date}T{hour}:00:00+00:00"))
        if not hours:
            return None
        return Window(min(hours), max(hours) + HOUR)

    # -- small files --------------------------------------------------------------------
    def write_json(self, path: str, document: Any) -> None:
        with self.fs.open_output_stream(path) as stream:
            stream.write(json.dumps(document, indent=2, sort_keys=True).encode())

    def ensure_dir(self, path: str) -> None:
        self.fs.create_dir(path, recursive=True)


class _PartitionFiles:
    """Parquet files of one dataset under ``base``, hive-partitioned by hour.

    Written here rather than by ``pyarrow.dataset.write_dataset``: that one pulls the
    Python record stream on Arrow's threads, and when a write failed (a lake under a file, a
    full disk) they kept calling into Python and the interpreter aborted or hung at exit.
    Rows are buffered per partition into row groups of up to ``_ROW_GROUP`` rows
    (``_BUFFERED`` over all partitions).
    """

    def __init__(self, fs: pafs.FileSystem, base: str, schema: pa.Schema) -> None:
        self.fs, self.base, self.schema = fs, base, schema
        self._writers: OrderedDict[tuple[str, str], tuple[Any, pq.ParquetWriter]] = OrderedDict()
        self._files: dict[tuple[str, str], int] = defaultdict(int)
        self._pending: dict[tuple[str, str], list[pa.Table]] = defaultdict(list)
        self._pending_rows: dict[tuple[str, str], int] = defaultdict(int)

    def add(self, table: pa.Table) -> None:
        for key, rows in _split_by_hour(table):
            self._pending[key].append(rows)
            self._pending_rows[key] += rows.num_rows
            if self._pending_rows[key] >= _ROW_GROUP:
                self._flush(key)
        if sum(self._pending_rows.values()) >= _BUFFERED:
            for key in list(self._pending):
                self._flush(key)

    def _flush(self, key: tuple[str, str]) -> None:
        tables = self._pending.pop(key, [])
        self._pending_rows.pop(key, None)
        if tables:
            table = pa.concat_tables(tables).select(self.schema.names)
            if not table.schema.equals(self.schema):
                table = table.cast(self.schema)
            self._writer(key).write_table(table, row_group_size=_BUFFERED)

    def _writer(self, key: tuple[str, str]) -> pq.ParquetWriter:
        if key in self._writers:
            self._writers.move_to_end(key)
            return self._writers[key][1]
        if len(self._writers) >= _OPEN_FILES:
            self._close(next(iter(self._writers)))
        directory = f"{self.base}/date={key[0]}/hour={key[1]}"
        self.fs.create_dir(directory, recursive=True)
        stream = self.fs.open_output_stream(f"{directory}/part-{self._files[key]}.parquet")
        self._files[key] += 1
        writer = pq.ParquetWriter(stream, self.schema, compression="zstd", compression_level=1)
        self._writers[key] = (stream, writer)
        return writer

    def _close(self, key: tuple[str, str]) -> None:
        stream, writer = self._writers.pop(key)
        try:
            writer.close()
        finally:
            stream.close()

    def close(self) -> None:
        """Write what is buffered and close every file (errors propagate)."""
        for key in list(self._pending):
            self._flush(key)
        while self._writers:
            self._close(next(iter(self._writers)))

    def discard(self) -> None:
        """Close everything quietly; the files are deleted with the staging directory."""
        self._pending.clear()
        for stream, writer in self._writers.values():
            with contextlib.suppress(Exception):
                writer.close()
            with contextlib.suppress(Exception):
                stream.close()
        self._writers.clear()


@dataclass
class _Partition:
    rows: int = 0
    requests: int = 0
    unlogged_requests: int = 0


class LakeWriter:
    """One write transaction; use as a context manager (an exception aborts it)."""

    def __init__(
        self,
        lake: ParquetLake,
        window: Window | None,
        source: str,
        summaries: Summaries,
        run_mode: str,
    ) -> None:
        self.lake = lake
        self.window = window
        self.source = source
        self.summaries = summaries
        self.run_mode = run_mode
        self.run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        self.staging = lake.path(STAGING, self.run_id)
        self._parts: dict[tuple[str, str], _Partition] = defaultdict(_Partition)
        self._unlogged: list[pa.Table] = []
        self._summary_partials: dict[str, list[pa.Table]] = defaultdict(list)
        self._records = _PartitionFiles(
            lake.fs, f"{self.staging}/{RECORDS}", lake.stored(L7_SCHEMA)
        )
        self._recorded = False
        self._finished = False
        self.committed: list[dict[str, Any]] = []
        self._run_lock = lake._start_run(self.run_id)

    def __enter__(self) -> LakeWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.abort()

    def write(self, tables: Iterable[pa.Table]) -> None:
        """Stream normalized record tables into the staging area (bounded memory).

        Only the lake's own operations are mapped to LakeError: an ``OSError`` from the
        input (a truncated gzip file) passes through as it is.
        """
        for table in tables:
            if table.num_rows == 0:
                continue
            self._account(_with_partition_columns(table))
            with self.lake._errors("write the staged partitions"):
                self._records.add(table)

    def add_unlogged(self, table: pa.Table) -> None:
        """Overflow records are few (one per node per flush); they are kept until commit."""
        if table.num_rows:
            self._unlogged.append(table)

    def _account(self, keyed: pa.Table) -> None:
        """Row and request counts per partition, and the partial summaries (one group-by)."""
        counts = keyed.group_by(["date", "hour"]).aggregate([("count", "sum"), ("count", "count")])
        for row in counts.to_pylist():
            part = self._parts[(row["date"], row["hour"])]
            part.rows += row["count_count"]
            part.requests += row["count_sum"] or 0
        for name, spec in self.summaries.items():
            partials = self._summary_partials[name]
            partials.append(spec.summarize(keyed, by=("date", "hour")))
            if sum(t.num_rows for t in partials) > 1_000_000:
                self._summary_partials[name] = [spec.combine(partials, by=("date", "hour"))]

    def commit(self, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Write manifests (with ``extra`` facts from the source, such as the count it
        verified) and summaries, then swap every affected partition in (see the module
        docstring). A failure before the record leaves the lake as it was; after it, the
        commit is completed by recovery."""
        try:
            with self.lake._errors("stage the partitions"):
                self._records.close()
                self._stage_unlogged()
                keys = self._keys()
                manifests = self._stage_partitions(keys, extra)
                steps = self._steps(keys)
                self.lake._sync_tree(self.staging)
            self._swap_in(steps)
        except BaseException:
            self.abort()
            raise
        self._finished = True
        self.committed = manifests
        return manifests

    def _swap_in(self, steps: list[_Step]) -> None:
        lake = self.lake
        with lake._locked(shared=False), lake._errors("commit"):
            lake._recover_locked()
            if lake.local and steps:  # no steps: nothing was staged, nothing to swap
                lake._write_record(self.run_id, steps)
                self._recorded = True
            lake._roll_forward(self.run_id, steps)
            lake._remove_if_empty(lake.path(STAGING))
            lake._remove_if_empty(lake.path(TRASH))
        self._release()

    def _stage_unlogged(self) -> None:
        if not self._unlogged:
            return
        table = pa.concat_tables(self._unlogged)
        for row in (
            _with_partition_columns(table.select(["end_time", "count"]))
            .group_by(["date", "hour"])
            .aggregate([("count", "sum")])
            .to_pylist()
        ):
            self._parts[(row["date"], row["hour"])].unlogged_requests += row["count_sum"] or 0
        files = _PartitionFiles(
            self.lake.fs, f"{self.staging}/{UNLOGGED}", self.lake.stored(UNLOGGED_SCHEMA)
        )
        try:
            files.add(table)
            files.close()
        finally:
            files.discard()

    def _keys(self) -> list[tuple[str, str]]:
        keys = set(self._parts)
        if self.window is not None:
            keys.update(partition_of(h) for h in hours_of(self.window))
        return sorted(keys)

    def _steps(self, keys: list[tuple[str, str]]) -> list[_Step]:
        steps = []
        for key in keys:
            for dataset in (RECORDS, UNLOGGED):
                relative = partition_path(dataset, *key)
                steps.append(_Step(relative, self.lake._is_dir(f"{self.staging}/{relative}")))
        return steps

    def _stage_partitions(
        self, keys: list[tuple[str, str]], extra: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        summaries = {
            name: spec.combine(parts, by=("date", "hour"))
            for name, spec in self.summaries.items()
            if (parts := self._summary_partials.get(name))
        }
        written_at = iso(datetime.now(UTC))
        manifests = []
        for date, hour in keys:
            staged = f"{self.staging}/{partition_path(RECORDS, date, hour)}"
            self.lake.ensure_dir(staged)
            for name, table in summaries.items():
                self._stage_summary(staged, name, table, date, hour)
            manifest = self._manifest(date, hour, written_at, extra)
            self.lake.write_json(f"{staged}/_manifest.json", manifest)
            manifests.append(manifest)
        return manifests

    def _stage_summary(self, staged: str, name: str, table: pa.Table, date: str, hour: str) -> None:
        rows = table.filter(
            pc.and_(pc.equal(table.column("date"), date), pc.equal(table.column("hour"), hour))
        )
        if rows.num_rows:
            # Arrow IPC, not Parquet: a ``**/*.parquet`` glob (DuckDB, Spark) must see only
            # records.
            rows = rows.drop_columns(["date", "hour"])
            with self.lake.fs.open_output_stream(f"{staged}/_{name}.arrow") as out:
                options = pa.ipc.IpcWriteOptions(compression="zstd")
                with pa.ipc.new_file(out, rows.schema, options=options) as writer:
                    writer.write_table(rows)

    def _manifest(
        self, date: str, hour: str, written_at: str, extra: dict[str, Any] | None
    ) -> dict[str, Any]:
        part = self._parts[(date, hour)]
        return {
            "partition": f"date={date}/hour={hour}",
            "rows": part.rows,
            "requests": part.requests,
            "unlogged_requests": part.unlogged_requests,
            "source": self.source,
            "window": None
            if self.window is None
            else [iso(self.window.start), iso(self.window.end)],
            "run_id": self.run_id,
            "run_mode": self.run_mode,
            "written_at": written_at,
            "schema_version": SCHEMA_VERSION,
            "l7analytics_version": __version__,
            **(extra or {}),
        }

    def _release(self) -> None:
        if self._run_lock is not None:
            self._run_lock.release()
            self._run_lock = None

    def abort(self) -> None:
        """Drop everything staged; the lake is as it was. Once the commit is recorded there
        is no going back: the run's lock is released and recovery completes it."""
        if self._finished:
            return
        self._finished = True
        self._records.discard()
        if self._recorded:
            self._release()
            with contextlib.suppress(LakeError, OSError):
                self.lake.recover()
            return
        with contextlib.suppress(OSError):
            self.lake._delete_dir(self.staging)
        with contextlib.suppress(OSError):
            self.lake._delete_file(self.lake.path(STAGING, f"{self.run_id}.lock"))
        self._release()
