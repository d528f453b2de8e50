"""The lake on object storage: Delta Lake tables (through ``deltalake``, delta-rs, no JVM).

Object stores have no rename, so the local lake's commit protocol (stage, then swap
directories by ``rename(2)``) cannot be atomic there. A Delta table's commit is one object
in its transaction log, written with a conditional put: replacing the hours of a window is one
transaction that adds the new data files and removes the hours' old ones, so readers see the
old hours or the new ones, never a mix, and two writers replacing different hours both
commit (a real conflict is retried). The data files are written by pyarrow, a batch at a
time, before the commit: delta-rs' own partitioned writer holds everything it is given in
memory until it ends (measured: 1.0 GB for 1.4M records, 1.5 GB for 2.9M).

Several Calico clusters share one lake: ``cluster`` is the leading partition key of every
table, and a :class:`DeltaLake` is opened for one cluster, whose rows alone it reads and
replaces. A row's ``cluster`` is the cluster its run read (the index or filter named it), so a
document can't put itself into another cluster's partitions.

Layout under the root (``s3://bucket/prefix``, ``gs://...``, ``az://...``)::

    l7/                 Delta table of normalized records, partitioned by cluster, date, hour
    unlogged/           Delta table of Calico's overflow records, the same partitions
    summaries/<name>/   Delta table of per-hour summaries (history reads), the same partitions
    manifests/          Delta table: one row per (dataset, hour) written, its manifest as JSON
    models/cluster=<cluster>/<detector>/<version>/   model files (metadata.json written last)

A write stages the window in a local temporary :class:`~l7analytics.adapters.lake.ParquetLake`
(so validation, partitioning, summaries and manifests are the same code as the local lake,
and memory stays bounded), then publishes each table with one commit: records, unlogged,
summaries, and the manifests last. An hour counts as present once its manifest is there; a
writer killed before that leaves the hour missing (``score`` says so) and re-running the
window completes it. pandas, Polars, DuckDB, Spark and Trino read the tables directly.

Credentials and endpoint come from the standard variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``; Google's and Azure's own for
``gs://`` and ``az://``), never from the settings file, and are never printed. On S3, commits
use conditional puts (``aws_conditional_put=etag``): no locking service is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from l7analytics.adapters.lake import (
    HOUR,
    RECORDS,
    UNLOGGED,
    ParquetLake,
    Summaries,
    hours_of,
    partition_of,
)
from l7analytics.core.arrowutil import conform, rows_in_window
from l7analytics.core.errors import LakeError
from l7analytics.core.schema import L7_SCHEMA, UNLOGGED_SCHEMA
from l7analytics.core.settings import cluster_name
from l7analytics.core.windows import Window, floor_time

#: URI schemes the Delta lake serves (a local path stays the Parquet lake).
SCHEMES = ("s3://", "s3a://", "gs://", "gcs://", "az://", "abfs://", "abfss://", "adl://")
MANIFESTS = "manifests"
PARTITIONS = ["cluster", "date", "hour"]
#: The cluster name of a standalone Calico cluster (its indices' ``<cluster>``).
DEFAULT_CLUSTER = ParquetLake.cluster
DAY = timedelta(days=1)
#: Data files written at once (an object store's request latency, not the CPU, is the limit).
FILE_THREADS = 4
#: Commit attempts when another writer's commit conflicts with ours.
COMMIT_ATTEMPTS = 5


def is_object_store(root: str) -> bool:
    return root.startswith(SCHEMES)


def storage_options(root: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """delta-rs options for ``root`` from the environment: S3's endpoint, region and keys,
    plain HTTP when the endpoint says so (a local S3 API), and safe concurrent commits."""
    env = os.environ if environ is None else environ
    if not root.startswith(("s3://", "s3a://")):
        return {}
    names = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
             "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION")  # fmt: skip
    options = {name: env[name] for name in names if env.get(name)}
    if options.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        options["AWS_ALLOW_HTTP"] = "true"
    options.setdefault("AWS_REGION", options.get("AWS_DEFAULT_REGION", "us-east-1"))
    options["aws_conditional_put"] = "etag"
    return options


def _filesystem(uri: str, options: Mapping[str, str]) -> tuple[pafs.FileSystem, str]:
    """pyarrow's filesystem for the model files, with the same credentials as the tables."""
    if uri.startswith(("s3://", "s3a://")) and options.get("AWS_ACCESS_KEY_ID"):
        endpoint = options.get("AWS_ENDPOINT_URL", "")
        scheme, _, host = endpoint.partition("://")
        fs = pafs.S3FileSystem(
            access_key=options["AWS_ACCESS_KEY_ID"],
            secret_key=options.get("AWS_SECRET_ACCESS_KEY"),
            session_token=options.get("AWS_SESSION_TOKEN"),
            region=options.get("AWS_REGION", "us-east-1"),
            endpoint_override=host or None,
            scheme=scheme or "https",
        )
        return fs, uri.split("://", 1)[1]
    return pafs.FileSystem.from_uri(uri)


def stored_columns(schema: pa.Schema) -> pa.Schema:
    """The columns of a table's data files: no partition column, timestamps in microseconds
    (the Delta protocol's unit)."""
    return pa.schema([_stored(f) for f in schema if f.name not in PARTITIONS])


def _now_ms() -> int:
    return int(time.time() * 1000)


def _stored(field: pa.Field) -> pa.Field:
    """A column as Delta stores it: timestamps in microseconds (the protocol's unit)."""
    if pa.types.is_timestamp(field.type):
        return field.with_type(pa.timestamp("us", tz="UTC"))
    return field


def _with_partition_fields(columns: pa.Schema) -> pa.Schema:
    partitions = [("cluster", pa.string()), ("date", pa.string()), ("hour", pa.int32())]
    return pa.schema([*columns, *partitions])


def _hour_filter(cluster: str, window: Window) -> Any:
    import pyarrow.dataset as ds

    expression = None
    for hour in hours_of(window):
        date, hh = partition_of(hour)
        one = (ds.field("date") == date) & (ds.field("hour") == int(hh))
        expression = one if expression is None else expression | one
    return (ds.field("cluster") == cluster) & expression


class DeltaLake:
    """The lake as Delta tables at ``root``; see the module docstring."""

    #: Renames are not atomic here: the model store writes in place, metadata last.
    atomic_rename = False

    def __init__(
        self, root: str, options: dict[str, str] | None = None, cluster: str = DEFAULT_CLUSTER
    ) -> None:
        self.cluster = cluster_name(cluster, "cluster")  # it goes into paths
        #: Where the model store keeps this cluster's models (models serve one cluster).
        self.models_dir = ("models", f"cluster={cluster}")
        self.uri = root.rstrip("/")
        self.storage_options = storage_options(root) if options is None else options
        try:
            self.fs, self._base = _filesystem(self.uri, self.storage_options)
        except (ValueError, OSError) as exc:
            raise LakeError(f"lake {self.uri}: cannot open: {_first_line(exc)}") from None

    def __repr__(self) -> str:
        return f"DeltaLake({self.uri!r}, cluster={self.cluster!r})"

    def __str__(self) -> str:
        return self.uri if self.cluster == DEFAULT_CLUSTER else f"{self.uri} ({self.cluster})"

    def path(self, *parts: str) -> str:
        """A path under the root on :attr:`fs` (for the model store)."""
        return "/".join([self._base, *parts])

    # -- tables -------------------------------------------------------------------------
    def _table_uri(self, name: str) -> str:
        return f"{self.uri}/{name}"

    def _table(self, name: str) -> Any:
        from deltalake import DeltaTable

        uri = self._table_uri(name)
        try:
            if not DeltaTable.is_deltatable(uri, storage_options=self.storage_options):
                return None
            return DeltaTable(uri, storage_options=self.storage_options)
        except OSError as exc:
            raise LakeError(f"lake {self.uri}: cannot read {name}: {_first_line(exc)}") from None

    def _replace(self, name: str, columns: pa.Schema, adds: list[Any], hours: list) -> None:
        """Replace ``hours`` of table ``name`` (this cluster's) in one commit: add the data
        files ``adds`` (already written) and remove the hours' old files.

        A commit that lost to another writer's is tried again on the new version, with the
        same files; files of a commit that never happened are not in the log, and
        ``maintain``'s vacuum deletes them."""
        from deltalake.exceptions import CommitFailedError

        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                table = self._table(name) or self._create(name, columns)
                table.create_write_transaction(
                    [*adds, *self._removals(table, hours)],
                    mode="append",
                    schema=_with_partition_fields(columns),
                    partition_by=PARTITIONS,
                )
                return
            except CommitFailedError as exc:
                if attempt == COMMIT_ATTEMPTS:
                    raise LakeError(
                        f"lake {self.uri}: {name}: {attempt} commits lost to other writers: "
                        f"{_first_line(exc)}"
                    ) from None
            except OSError as exc:
                raise LakeError(
                    f"lake {self.uri}: cannot write {name}: {_first_line(exc)}"
                ) from None

    def _write_files(
        self, name: str, columns: pa.Schema, parts: Iterable[tuple[datetime, Iterable[Any]]]
    ) -> list[Any]:
        """A data file per hour of ``parts`` (an hour and its batches or tables), written by
        pyarrow a batch at a time, several hours at once (an object store's latency)."""
        return self._each_hour(name, parts, lambda part: [self._write_file(name, columns, *part)])

    def _copy_files(self, name: str, source: ParquetLake, hours: list) -> list[Any]:
        """The staged data files of ``hours``, copied as they are (a writer's staging lake
        writes them in this table's columns)."""
        from deltalake.transaction import AddAction

        def copy(hour: datetime) -> list[Any]:
            adds = []
            for directory in source.partitions(Window(hour, hour + HOUR), name):
                for info in source.fs.get_file_info(pafs.FileSelector(directory)):
                    if not info.path.endswith(".parquet"):
                        continue
                    rows = pq.ParquetFile(info.path, filesystem=source.fs).metadata.num_rows
                    values, relative = self._file_name(hour)
                    self._make_parent(f"{self._base}/{name}/{relative}")
                    pafs.copy_files(
                        info.path, f"{self._base}/{name}/{relative}",
                        source_filesystem=source.fs, destination_filesystem=self.fs,
                    )  # fmt: skip
                    stats = json.dumps({"numRecords": rows})
                    adds.append(AddAction(relative, info.size, values, _now_ms(), True, stats))
            return adds

        return self._each_hour(name, hours, copy)

    def _each_hour(self, name: str, items: Iterable[Any], work: Callable[[Any], list]) -> list:
        """``work`` over ``items`` on a few threads (file I/O releases the GIL); the adds
        they return, in order."""
        from concurrent.futures import ThreadPoolExecutor

        try:
            with ThreadPoolExecutor(FILE_THREADS, thread_name_prefix="delta-file") as pool:
                return [add for adds in pool.map(work, items) for add in adds if add is not None]
        except OSError as exc:
            raise LakeError(f"lake {self.uri}: cannot write {name}: {_first_line(exc)}") from None

    def _filter(self, window: Window) -> Any:
        return _hour_filter(self.cluster, window)

    def _create(self, name: str, columns: pa.Schema) -> Any:
        """An empty table; if another writer created it first, that one."""
        from deltalake import DeltaTable
        from deltalake.exceptions import DeltaError

        try:
            return DeltaTable.create(
                self._table_uri(name),
                _with_partition_fields(columns),
                mode="ignore",
                partition_by=PARTITIONS,
                storage_options=self.storage_options,
            )
        except DeltaError:  # lost the race to create it: open the winner's
            if (table := self._table(name)) is None:
                raise
            return table

    def _write_file(
        self, name: str, columns: pa.Schema, hour: datetime, batches: Iterable[Any]
    ) -> Any:
        """One Parquet data file of ``hour`` (``None`` when it has no rows)."""
        from deltalake.transaction import AddAction

        values, relative = self._file_name(hour)
        path = f"{self._base}/{name}/{relative}"
        self._make_parent(path)
        rows, size, writer, stream = 0, 0, None, None
        try:
            for batch in batches:
                if not batch.num_rows:
                    continue
                if writer is None:
                    stream = self.fs.open_output_stream(path)
                    writer = pq.ParquetWriter(stream, columns, compression="zstd")
                writer.write(conform(batch, columns))
                rows += batch.num_rows
        finally:
            if writer is not None:
                writer.close()
            if stream is not None:
                size = stream.tell()  # the bytes written: no request to the store for it
                stream.close()
        if not rows:
            return None
        stats = json.dumps({"numRecords": rows})
        return AddAction(relative, size, values, _now_ms(), True, stats)

    def _file_name(self, hour: datetime) -> tuple[dict[str, str], str]:
        """A new data file's partition values and path in its table (Hive-style, unique)."""
        date, hh = partition_of(hour)
        values = {"cluster": self.cluster, "date": date, "hour": str(int(hh))}
        parts = [*(f"{k}={v}" for k, v in values.items()), f"part-{uuid.uuid4().hex}.parquet"]
        return values, "/".join(parts)

    def _make_parent(self, path: str) -> None:
        if isinstance(self.fs, pafs.LocalFileSystem):  # object stores have no directories
            self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)

    def _removals(self, table: Any, hours: Iterable[datetime]) -> list[Any]:
        """Remove actions for this cluster's files in ``hours`` at the table's version."""
        from deltalake.transaction import RemoveAction

        wanted = {(partition_of(h)[0], str(h.hour)) for h in hours}
        files = pa.table(table.get_add_actions(flatten=True))
        now = _now_ms()
        removals = []
        for path, size, cluster, date, hour in zip(
            *(files.column(c).to_pylist() for c in
              ("path", "size_bytes", "partition.cluster", "partition.date", "partition.hour")),
            strict=True,
        ):  # fmt: skip
            if cluster == self.cluster and (date, str(hour)) in wanted:
                values = {"cluster": cluster, "date": date, "hour": str(hour)}
                removals.append(RemoveAction(path, True, now, size, values))
        return removals

    # -- publishing: one commit per table, manifests last --------------------------------
    def publish(
        self,
        source: ParquetLake,
        hours: list[datetime],
        summary_names: Iterable[str],
        manifests: list[dict[str, Any]],
        *,
        staged: bool = False,
    ) -> None:
        """Replace ``hours`` of every table with what the local lake ``source`` holds for
        them (a writer's staging, or a lake being migrated), the manifests last. A writer's
        staging (``staged``) has its files in the tables' columns: they are copied as they
        are; another lake's are read and written again."""
        if not hours:
            return
        for name, schema in ((RECORDS, L7_SCHEMA), (UNLOGGED, UNLOGGED_SCHEMA)):
            columns = stored_columns(schema)
            if staged:
                adds = self._copy_files(name, source, hours)
            else:
                parts = (
                    (hour, source.read(Window(hour, hour + HOUR), dataset=name)) for hour in hours
                )
                adds = self._write_files(name, columns, parts)
            self._replace(name, columns, adds, hours)
        for name in summary_names:  # small: an hour's pairs
            parts = [(hour, source.summaries(Window(hour, hour + HOUR), name)) for hour in hours]
            schema = next((t.schema for _, tables in parts for t in tables), None)
            if schema is None and (table := self._table(f"summaries/{name}")) is not None:
                schema = pa.schema(table.schema().to_arrow())  # the hours hold nothing now
            if schema is not None:
                columns = stored_columns(schema)
                adds = self._write_files(f"summaries/{name}", columns, parts)
                self._replace(f"summaries/{name}", columns, adds, hours)
        self._publish_manifests(manifests, hours)

    def _publish_manifests(self, manifests: list[dict[str, Any]], hours: list) -> None:
        by_hour = {
            _hour_of(m): pa.table(
                {"dataset": [RECORDS], "manifest": [json.dumps(m, sort_keys=True, default=str)]}
            )
            for m in manifests  # the records' partitions ("date=.../hour=...")
        }
        columns = pa.schema([("dataset", pa.string()), ("manifest", pa.string())])
        adds = self._write_files(MANIFESTS, columns, [(h, [t]) for h, t in by_hour.items()])
        self._replace(MANIFESTS, columns, adds, hours)

    def migrate_from(self, source: ParquetLake, summary_names: Iterable[str]) -> list[Window]:
        """Copy a local (Hive-partitioned) lake into this cluster's partitions, a day per
        commit; hours already here are replaced, so running it again changes nothing."""
        extent = source.extent()
        if extent is None:
            return []
        names, days = list(summary_names), []
        day = floor_time(extent.start, DAY)
        while day < extent.end:
            window = Window(day, day + DAY)
            manifests = source.manifests(window)
            hours = sorted({_hour_of(m) for m in manifests})
            self.publish(source, hours, names, manifests)
            days.append(window)
            day += DAY
        return days

    # -- the Lake port ------------------------------------------------------------------
    def writer(
        self,
        window: Window | None,
        source: str,
        summaries: Summaries | None = None,
        run_mode: str = "scheduled",
    ) -> DeltaLakeWriter:
        return DeltaLakeWriter(self, window, source, summaries or {}, run_mode)

    def recover(self) -> list[str]:
        """Nothing to do: every commit is atomic (a dead writer's files are not in the log)."""
        return []

    def read(
        self,
        window: Window,
        columns: Iterable[str] | None = None,
        batch_size: int = 262_144,
        dataset: str = RECORDS,
    ) -> Iterator[pa.RecordBatch]:
        schema = L7_SCHEMA if dataset == RECORDS else UNLOGGED_SCHEMA
        names = list(columns) if columns is not None else schema.names
        table = self._table(dataset)
        if table is None:
            return
        data = table.to_pyarrow_dataset()
        start, end = int(window.start.timestamp()), int(window.end.timestamp())
        wanted = pa.schema([schema.field(n) for n in names])
        read = list(dict.fromkeys([*names, "end_time"]))
        # Read ahead one batch and one file only: the scanner's defaults buffer far more when
        # the consumer is slower, and memory must stay bounded however large the window.
        for batch in data.to_batches(
            columns=read,
            filter=self._filter(window),
            batch_size=batch_size,
            batch_readahead=1,
            fragment_readahead=1,
        ):
            batch = rows_in_window(batch, start, end)
            if batch.num_rows:
                yield pa.RecordBatch.from_arrays(
                    [batch.column(n).cast(wanted.field(n).type) for n in names], schema=wanted
                )

    def read_table(
        self, window: Window, columns: Iterable[str] | None = None, dataset: str = RECORDS
    ) -> pa.Table:
        schema = L7_SCHEMA if dataset == RECORDS else UNLOGGED_SCHEMA
        if columns is not None:
            schema = pa.schema([schema.field(c) for c in columns])
        return pa.Table.from_batches(list(self.read(window, columns, dataset=dataset)), schema)

    def count_rows(self, window: Window) -> int:
        return sum(b.num_rows for b in self.read(window, ["end_time"]))

    def summaries(self, window: Window, name: str) -> list[pa.Table]:
        table = self._table(f"summaries/{name}")
        if table is None:
            return []
        data = table.to_pyarrow_dataset().to_table(filter=self._filter(window))
        if not data.num_rows:
            return []
        # One summary per hour, as the local lake gives them (readers combine them): one
        # stable sort by hour and slices, not a scan of the table per hour.
        hour_key = pc.binary_join_element_wise(
            data.column("date"), pc.cast(data.column("hour"), pa.string()), "/"
        )
        codes = pc.dictionary_encode(hour_key).combine_chunks().indices.to_numpy()
        order = np.argsort(codes, kind="stable")
        data = data.take(pa.array(order)).drop_columns(PARTITIONS)
        ends = np.cumsum(np.bincount(codes))
        starts = np.concatenate([[0], ends[:-1]])
        return [data.slice(s, e - s) for s, e in zip(starts, ends, strict=True) if e > s]

    def manifests(self, window: Window, dataset: str = RECORDS) -> list[dict[str, Any]]:
        import pyarrow.dataset as ds

        table = self._table(MANIFESTS)
        if table is None:
            return []
        rows = table.to_pyarrow_dataset().to_table(
            filter=self._filter(window) & (ds.field("dataset") == dataset)
        )
        return [json.loads(m) for m in rows.column("manifest").to_pylist()]

    def missing_hours(self, window: Window) -> list[datetime]:
        """Hours of ``window`` with no records manifest (never extracted, or not finished)."""
        table = self._table(MANIFESTS)
        if table is None:
            return hours_of(window)
        rows = table.to_pyarrow_dataset().to_table(
            columns=["date", "hour"], filter=self._filter(window)
        )
        present = set(zip(rows.column("date").to_pylist(), rows.column("hour").to_pylist(),
                          strict=True))  # fmt: skip
        return [h for h in hours_of(window) if (partition_of(h)[0], h.hour) not in present]

    def extent(self) -> Window | None:
        table = self._table(MANIFESTS)
        if table is None:
            return None
        import pyarrow.dataset as ds

        rows = table.to_pyarrow_dataset().to_table(
            columns=["date", "hour"], filter=ds.field("cluster") == self.cluster
        )
        if not rows.num_rows:
            return None
        hours = [
            datetime.fromisoformat(f"{d}T{h:02d}:00:00+00:00")
            for d, h in zip(rows.column("date").to_pylist(), rows.column("hour").to_pylist(),
                            strict=True)
        ]  # fmt: skip
        return Window(min(hours), max(hours) + HOUR)

    def maintain(
        self, retention_hours: int = 168, summary_names: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Compact small files and vacuum versions older than ``retention_hours``, in every
        table (the summaries' too: they are rewritten as often as the records), for every
        cluster: vacuum is per table. The vacuum is ``full``: it also deletes data files the
        log never named (a writer killed before its commit) once they are that old; without
        it delta-rs looks only at files removed by a commit."""
        done: dict[str, Any] = {}
        for name in (RECORDS, UNLOGGED, MANIFESTS, *(f"summaries/{n}" for n in summary_names)):
            table = self._table(name)
            if table is None:
                continue
            metrics = table.optimize.compact()
            removed = table.vacuum(
                retention_hours, dry_run=False, enforce_retention_duration=False, full=True
            )
            compacted = (
                f"{metrics.get('numFilesRemoved', 0)} files compacted into "
                f"{metrics.get('numFilesAdded', 0)}"
            )
            done[name] = {"compacted": compacted, "vacuumed_files": len(removed)}
        return done


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class DeltaLakeWriter:
    """One write: stage locally (a temporary Parquet lake), then one commit per table."""

    def __init__(
        self,
        lake: DeltaLake,
        window: Window | None,
        source: str,
        summaries: Summaries,
        run_mode: str,
    ) -> None:
        self.lake, self.window, self.summary_specs = lake, window, summaries
        self._dir = tempfile.mkdtemp(prefix="l7analytics-delta-")
        self._stage = ParquetLake(self._dir, durable=False, stored=stored_columns)
        self._writer = self._stage.writer(window, source, summaries, run_mode)
        self.committed: list[dict[str, Any]] = []

    def __enter__(self) -> DeltaLakeWriter:
        self._writer.__enter__()
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self._writer.__exit__(exc_type, *rest)
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    def write(self, tables: Iterable[pa.Table]) -> None:
        self._writer.write(tables)

    def add_unlogged(self, table: pa.Table) -> None:
        self._writer.add_unlogged(table)

    def commit(self, extra: dict | None = None) -> list[dict[str, Any]]:
        manifests = self._writer.commit(extra)
        hours = set(hours_of(self.window)) if self.window is not None else set()
        hours |= {_hour_of(m) for m in manifests}
        self.lake.publish(
            self._stage, sorted(hours), list(self.summary_specs), manifests, staged=True
        )
        self.committed = manifests
        return manifests

    def abort(self) -> None:
        self._writer.abort()


def _hour_of(manifest: Mapping[str, Any]) -> datetime:
    date, hour = manifest["partition"].split("date=")[1].split("/hour=")
    return datetime.fromisoformat(f"{date}T{hour[:2]}:00:00+00:00")
