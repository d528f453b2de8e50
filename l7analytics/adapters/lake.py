"""The Parquet lake: Hive-partitioned by ``end_time`` hour, every partition replaced whole.

Layout under the root (a local path or any URI ``pyarrow.fs`` understands, e.g. ``s3://``)::

    l7/date=2026-11-20/hour=05/part-0.parquet     normalized records (zstd)
    l7/date=2026-11-20/hour=05/_manifest.json     rows, requests, source, run, time
    l7/date=2026-11-20/hour=05/_pairs.arrow       per-partition summaries (history reads)
    unlogged/date=.../hour=.../part-0.parquet      Calico overflow records
    models/<detector>/<version>/...               trained models (see model_store)
    quarantine/...                                rejected documents

Files starting with ``_`` are ignored by pyarrow, pandas and Spark, and summaries are Arrow
files, so a ``**/*.parquet`` glob (DuckDB) sees only records. Writes go to ``_staging/<run>/``
first; :meth:`LakeWriter.commit` then swaps each partition directory in by rename. A re-run
replaces partitions (never appends), and a crash leaves the old partition or the new one,
never half of one. Renames are atomic on local and HDFS filesystems; on object stores a
partition may be briefly missing during the swap but is never partial.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from l7analytics import __version__
from l7analytics.arrowutil import rows_in_window
from l7analytics.errors import LakeError
from l7analytics.prefetch import prefetch
from l7analytics.schema import L7_SCHEMA, PARTITION_SCHEMA, SCHEMA_VERSION, UNLOGGED_SCHEMA
from l7analytics.summary import SummarySpec
from l7analytics.windows import Window, floor_time, iso

RECORDS = "l7"
UNLOGGED = "unlogged"
HOUR = timedelta(hours=1)
_PARTITIONING = ds.partitioning(PARTITION_SCHEMA, flavor="hive")
_PARQUET = ds.ParquetFileFormat()
_WRITE_OPTIONS = _PARQUET.make_write_options(compression="zstd", compression_level=1)

#: name -> what to aggregate per partition; stored as ``_<name>.arrow`` beside the data.
Summaries = dict[str, SummarySpec]


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch with exactly ``schema``'s columns (a column older files lack reads as null)."""
    arrays = [
        batch.column(f.name).cast(f.type)
        if f.name in batch.schema.names
        else pa.nulls(batch.num_rows, f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def partition_of(moment: datetime) -> tuple[str, str]:
    return moment.strftime("%Y-%m-%d"), moment.strftime("%H")


def partition_path(dataset: str, date: str, hour: str) -> str:
    return f"{dataset}/date={date}/hour={hour}"


def _with_partition_columns(table: pa.Table) -> pa.Table:
    """Add ``date`` and ``hour`` from ``end_time``: integer hours, formatted once per hour."""
    seconds = pc.cast(table.column("end_time"), pa.int64()).to_numpy(zero_copy_only=False)
    hours, index = np.unique(seconds // 3600, return_inverse=True)
    stamps = [datetime.fromtimestamp(int(h) * 3600, tz=UTC) for h in hours]
    indices = pa.array(index.astype(np.int32))
    dates = pa.array([t.strftime("%Y-%m-%d") for t in stamps], pa.string()).take(indices)
    hour_of_day = pa.array([t.strftime("%H") for t in stamps], pa.string()).take(indices)
    return table.append_column("date", dates).append_column("hour", hour_of_day)


class ParquetLake:
    """A lake rooted at ``root``; see the module docstring for the layout."""

    def __init__(self, root: str | os.PathLike[str], filesystem: pafs.FileSystem | None = None):
        root = str(root)
        if filesystem is None:
            if "://" in root:
                filesystem, root = pafs.FileSystem.from_uri(root)
            else:
                filesystem, root = pafs.LocalFileSystem(), os.path.abspath(root)
        self.fs = filesystem
        self.root = root.rstrip("/")

    def __repr__(self) -> str:
        return f"ParquetLake({self.root!r})"

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

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

    # -- reading ------------------------------------------------------------------------
    def partitions(self, window: Window, dataset: str = RECORDS) -> list[str]:
        """Existing partition directories whose hour overlaps ``window``."""
        start = floor_time(window.start, HOUR)
        candidates = []
        cursor = start
        while cursor < window.end:
            candidates.append(self.path(partition_path(dataset, *partition_of(cursor))))
            cursor += HOUR
        infos = self.fs.get_file_info(candidates)
        return [i.path for i in infos if i.type == pafs.FileType.Directory]

    def _files(self, window: Window, dataset: str) -> list[str]:
        files = []
        for directory in self.partitions(window, dataset):
            for info in self.fs.get_file_info(pafs.FileSelector(directory)):
                name = info.base_name
                if info.is_file and name.endswith(".parquet") and not name.startswith("_"):
                    files.append(info.path)
        return sorted(files)

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
            for path in self._files(window, dataset):
                with self.fs.open_input_file(path) as handle:
                    parquet = pq.ParquetFile(handle)
                    present = [n for n in {*names, "end_time"} if n in parquet.schema_arrow.names]
                    for batch in parquet.iter_batches(batch_size, columns=present):
                        batch = rows_in_window(batch, start, end)
                        if batch.num_rows:
                            yield _conform(batch, wanted)

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
            path = f"{directory}/_{name}.arrow"
            if self.fs.get_file_info(path).is_file:
                with self.fs.open_input_file(path) as handle:
                    out.append(pa.ipc.open_file(handle).read_all())
        return out

    def manifests(self, window: Window, dataset: str = RECORDS) -> list[dict[str, Any]]:
        out = []
        for directory in self.partitions(window, dataset):
            path = f"{directory}/_manifest.json"
            if self.fs.get_file_info(path).is_file:
                with self.fs.open_input_stream(path) as stream:
                    out.append(json.loads(stream.read()))
        return out

    def extent(self) -> Window | None:
        """The hours the lake holds records for (by partition names), or ``None``."""
        base = self.path(RECORDS)
        if self.fs.get_file_info(base).type != pafs.FileType.Directory:
            return None
        hours = []
        for info in self.fs.get_file_info(pafs.FileSelector(base, recursive=True)):
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
        self.staging = lake.path("_staging", self.run_id)
        self._parts: dict[tuple[str, str], _Partition] = defaultdict(_Partition)
        self._unlogged: list[pa.Table] = []
        self._summary_partials: dict[str, list[pa.Table]] = defaultdict(list)
        self.committed: list[dict[str, Any]] = []

    def __enter__(self) -> LakeWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.abort()

    def write(self, tables: Iterable[pa.Table]) -> None:
        """Stream normalized record tables into the staging area (bounded memory)."""

        def batches() -> Iterator[pa.RecordBatch]:
            for table in tables:
                if table.num_rows == 0:
                    continue
                keyed = _with_partition_columns(table)
                self._account(keyed)
                yield from keyed.to_batches()

        schema = _with_partition_columns(L7_SCHEMA.empty_table()).schema
        reader = pa.RecordBatchReader.from_batches(schema, batches())
        self._write_dataset(reader, RECORDS)

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

    def _write_dataset(self, reader: pa.RecordBatchReader, dataset: str) -> None:
        try:
            ds.write_dataset(
                reader,
                base_dir=f"{self.staging}/{dataset}",
                filesystem=self.lake.fs,
                format=_PARQUET,
                file_options=_WRITE_OPTIONS,
                partitioning=_PARTITIONING,
                basename_template="part-{i}.parquet",
                existing_data_behavior="overwrite_or_ignore",
                max_partitions=100_000,
                max_open_files=256,
                min_rows_per_group=0,
                max_rows_per_group=1_048_576,
                use_threads=True,
            )
        except OSError as exc:
            raise LakeError(f"lake: cannot write {self.lake.root}: {exc}") from exc

    def commit(self, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Write manifests (with ``extra`` facts from the source, such as the count it
        verified) and summaries, then swap every affected partition in."""
        if self._unlogged:
            table = pa.concat_tables(self._unlogged)
            for row in (
                _with_partition_columns(table.select(["end_time", "count"]))
                .group_by(["date", "hour"])
                .aggregate([("count", "sum")])
                .to_pylist()
            ):
                self._parts[(row["date"], row["hour"])].unlogged_requests += row["count_sum"] or 0
            reader = pa.RecordBatchReader.from_batches(
                _with_partition_columns(UNLOGGED_SCHEMA.empty_table()).schema,
                _with_partition_columns(table).to_batches(),
            )
            self._write_dataset(reader, UNLOGGED)
        keys = set(self._parts)
        if self.window is not None:
            cursor = self.window.start
            while cursor < self.window.end:
                keys.add(partition_of(cursor))
                cursor += HOUR
        summaries = {
            name: spec.combine(parts, by=("date", "hour"))
            for name, spec in self.summaries.items()
            if (parts := self._summary_partials.get(name))
        }
        written_at = iso(datetime.now(UTC))
        manifests = []
        for date, hour in sorted(keys):
            part = self._parts[(date, hour)]
            manifest = {
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
            staged = f"{self.staging}/{partition_path(RECORDS, date, hour)}"
            self.lake.ensure_dir(staged)
            for name, table in summaries.items():
                rows = table.filter(
                    pc.and_(
                        pc.equal(table.column("date"), date), pc.equal(table.column("hour"), hour)
                    )
                )
                if rows.num_rows:
                    # Arrow IPC, not Parquet: a ``**/*.parquet`` glob (DuckDB, Spark) must
                    # see only records.
                    rows = rows.drop_columns(["date", "hour"])
                    with self.lake.fs.open_output_stream(f"{staged}/_{name}.arrow") as out:
                        options = pa.ipc.IpcWriteOptions(compression="zstd")
                        with pa.ipc.new_file(out, rows.schema, options=options) as writer:
                            writer.write_table(rows)
            self.lake.write_json(f"{staged}/_manifest.json", manifest)
            manifests.append(manifest)
        for date, hour in sorted(keys):
            for dataset in (RECORDS, UNLOGGED):
                self._swap(partition_path(dataset, date, hour))
        self.lake.fs.delete_dir(self.staging)
        self._remove_if_empty(self.lake.path("_staging"))
        self._remove_if_empty(self.lake.path("_trash"))
        self.committed = manifests
        return manifests

    def _remove_if_empty(self, directory: str) -> None:
        """Tidy the work directories once no run uses them (another run may: then keep)."""
        fs = self.lake.fs
        with contextlib.suppress(OSError):
            if fs.get_file_info(directory).type == pafs.FileType.Directory and not fs.get_file_info(
                pafs.FileSelector(directory)
            ):
                fs.delete_dir(directory)

    def _swap(self, relative: str) -> None:
        fs = self.lake.fs
        staged = f"{self.staging}/{relative}"
        target = self.lake.path(relative)
        trash = self.lake.path("_trash", self.run_id, relative)
        has_new = fs.get_file_info(staged).type == pafs.FileType.Directory
        has_old = fs.get_file_info(target).type == pafs.FileType.Directory
        if not has_new and not has_old:
            return
        fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        if has_old:
            fs.create_dir(trash.rsplit("/", 1)[0], recursive=True)
            fs.move(target, trash)
        if has_new:
            fs.move(staged, target)
        if has_old:
            fs.delete_dir(self.lake.path("_trash", self.run_id))

    def abort(self) -> None:
        """Drop everything staged; the lake is as it was."""
        with contextlib.suppress(OSError):
            self.lake.fs.delete_dir(self.staging)
        self._remove_if_empty(self.lake.path("_staging"))
