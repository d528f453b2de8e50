"""The lake on object storage: Delta Lake tables (through ``deltalake``, delta-rs, no JVM).

Object stores have no rename, so the local lake's commit protocol (stage, then swap
directories by ``rename(2)``) cannot be atomic there. A Delta table's commit is one object
in its transaction log, written with a conditional put: replacing the hours of a window is one
``overwrite`` with a partition predicate (``date = ... AND hour = ...``), so readers see the
old hours or the new ones, never a mix, and two writers replacing different hours both
commit (a real conflict is retried).

Layout under the root (``s3://bucket/prefix``, ``gs://...``, ``az://...``)::

    l7/                 Delta table of normalized records, partitioned by date, hour
    unlogged/           Delta table of Calico's overflow records, the same partitions
    summaries/<name>/   Delta table of per-hour summaries (history reads), the same partitions
    manifests/          Delta table: one row per (dataset, hour) written, its manifest as JSON
    models/<detector>/<version>/   model files (metadata.json written last)

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
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from l7analytics.adapters.lake import (
    HOUR,
    RECORDS,
    UNLOGGED,
    ParquetLake,
    Summaries,
    hours_of,
    partition_of,
)
from l7analytics.core.arrowutil import rows_in_window
from l7analytics.core.errors import LakeError
from l7analytics.core.schema import L7_SCHEMA, UNLOGGED_SCHEMA
from l7analytics.core.windows import Window, floor_time

#: URI schemes the Delta lake serves (a local path stays the Parquet lake).
SCHEMES = ("s3://", "s3a://", "gs://", "gcs://", "az://", "abfs://", "abfss://", "adl://")
MANIFESTS = "manifests"
PARTITIONS = ["date", "hour"]
DAY = timedelta(days=1)
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


def _predicate(hours: Iterable[datetime]) -> str:
    parts = []
    for hour in sorted(set(hours)):
        date, hh = partition_of(hour)
        parts.append(f"(date = '{date}' AND hour = {int(hh)})")
    return " OR ".join(parts)


def _with_partitions(table: pa.Table) -> pa.Table:
    """``table`` with the ``date`` and ``hour`` of its ``end_time`` (UTC)."""
    end = table.column("end_time")
    date = pc.strftime(end, format="%Y-%m-%d", locale="C")
    hour = pc.cast(pc.hour(end), pa.int32())
    return table.append_column("date", date).append_column("hour", hour)


def _hour_filter(window: Window) -> Any:
    import pyarrow.dataset as ds

    expression = None
    for hour in hours_of(window):
        date, hh = partition_of(hour)
        one = (ds.field("date") == date) & (ds.field("hour") == int(hh))
        expression = one if expression is None else expression | one
    return expression


class DeltaLake:
    """The lake as Delta tables at ``root``; see the module docstring."""

    #: Renames are not atomic here: the model store writes in place, metadata last.
    atomic_rename = False

    def __init__(self, root: str, options: dict[str, str] | None = None) -> None:
        self.uri = root.rstrip("/")
        self.storage_options = storage_options(root) if options is None else options
        try:
            self.fs, self._base = _filesystem(self.uri, self.storage_options)
        except (ValueError, OSError) as exc:
            raise LakeError(f"lake {self.uri}: cannot open: {_first_line(exc)}") from None

    def __repr__(self) -> str:
        return f"DeltaLake({self.uri!r})"

    def __str__(self) -> str:
        return self.uri

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

    def _replace(self, name: str, data: Callable[[], Any], hours: list[datetime]) -> None:
        """Replace ``hours`` of table ``name`` with what ``data()`` gives (a stream of
        batches, made again for a retry): one commit, retried when another writer's commit
        to the same table got in first."""
        from deltalake.exceptions import CommitFailedError

        uri = self._table_uri(name)
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            exists = self._table(name) is not None
            try:
                _write(uri, data(), exists, hours, self.storage_options)
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

    # -- publishing: one commit per table, manifests last --------------------------------
    def publish(
        self,
        source: ParquetLake,
        hours: list[datetime],
        summary_names: Iterable[str],
        manifests: list[dict[str, Any]],
    ) -> None:
        """Replace ``hours`` of every table with what the local lake ``source`` holds for
        them (a writer's staging, or a lake being migrated), the manifests last."""
        if not hours:
            return
        span = Window(min(hours), max(hours) + HOUR)
        self._publish(source, RECORDS, L7_SCHEMA, span, hours)
        self._publish(source, UNLOGGED, UNLOGGED_SCHEMA, span, hours)
        for name in summary_names:
            self._publish_summaries(source, name, hours)
        self._publish_manifests(manifests, hours)

    def _publish(
        self, source: ParquetLake, name: str, schema: pa.Schema, span: Window, hours: list
    ) -> None:
        """Stream the hours of ``name`` into its table (bounded memory)."""
        target = _empty(schema).schema

        def data() -> pa.RecordBatchReader:
            batches = (
                _with_partitions(pa.Table.from_batches([b])).to_batches()[0]
                for b in source.read(span, dataset=name)
            )
            return pa.RecordBatchReader.from_batches(target, batches)

        self._replace(name, data, hours)

    def _publish_summaries(self, source: ParquetLake, name: str, hours: list) -> None:
        parts = []
        for hour in hours:
            for table in source.summaries(Window(hour, hour + HOUR), name):
                date, hh = partition_of(hour)
                n = table.num_rows
                parts.append(
                    table.append_column("date", pa.array([date] * n, pa.string())).append_column(
                        "hour", pa.array([int(hh)] * n, pa.int32())
                    )
                )
        if parts:
            table = pa.concat_tables(parts)
            self._replace(f"summaries/{name}", lambda: table, hours)
        elif (stale := self._table(f"summaries/{name}")) is not None:
            stale.delete(_predicate(hours))  # the hours hold nothing now

    def _publish_manifests(self, manifests: list[dict[str, Any]], hours: list) -> None:
        rows = []
        for manifest in manifests:  # the records' partitions ("date=.../hour=...")
            hour = _hour_of(manifest)
            rows.append(
                {"dataset": RECORDS, "date": partition_of(hour)[0], "hour": hour.hour,
                 "manifest": json.dumps(manifest, sort_keys=True, default=str)}
            )  # fmt: skip
        schema = pa.schema(
            [("dataset", pa.string()), ("manifest", pa.string()), ("date", pa.string()),
             ("hour", pa.int32())]
        )  # fmt: skip
        table = pa.Table.from_pylist(rows, schema=schema)
        self._replace(MANIFESTS, lambda: table, hours)

    def migrate_from(self, source: ParquetLake, summary_names: Iterable[str]) -> list[Window]:
        """Copy a local (Hive-partitioned) lake into these tables, a day per commit; hours
        already here are replaced, so running it again changes nothing."""
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
            filter=_hour_filter(window),
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
        data = table.to_pyarrow_dataset().to_table(filter=_hour_filter(window))
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
            filter=_hour_filter(window) & (ds.field("dataset") == dataset)
        )
        return [json.loads(m) for m in rows.column("manifest").to_pylist()]

    def missing_hours(self, window: Window) -> list[datetime]:
        """Hours of ``window`` with no records manifest (never extracted, or not finished)."""
        table = self._table(MANIFESTS)
        if table is None:
            return hours_of(window)
        rows = table.to_pyarrow_dataset().to_table(
            columns=["date", "hour"], filter=_hour_filter(window)
        )
        present = set(zip(rows.column("date").to_pylist(), rows.column("hour").to_pylist(),
                          strict=True))  # fmt: skip
        return [h for h in hours_of(window) if (partition_of(h)[0], h.hour) not in present]

    def extent(self) -> Window | None:
        table = self._table(MANIFESTS)
        if table is None:
            return None
        rows = table.to_pyarrow_table(columns=["date", "hour"])
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
        table (the summaries' too: they are rewritten as often as the records)."""
        done: dict[str, Any] = {}
        for name in (RECORDS, UNLOGGED, MANIFESTS, *(f"summaries/{n}" for n in summary_names)):
            table = self._table(name)
            if table is None:
                continue
            metrics = table.optimize.compact()
            removed = table.vacuum(retention_hours, dry_run=False, enforce_retention_duration=False)
            compacted = (
                f"{metrics.get('numFilesRemoved', 0)} files compacted into "
                f"{metrics.get('numFilesAdded', 0)}"
            )
            done[name] = {"compacted": compacted, "vacuumed_files": len(removed)}
        return done


def _write(uri: str, data: Any, exists: bool, hours: list[datetime], options: dict) -> None:
    from deltalake import write_deltalake

    write_deltalake(
        uri,
        data,
        partition_by=PARTITIONS,
        mode="overwrite" if exists else "append",
        predicate=_predicate(hours) if exists and hours else None,
        storage_options=options,
    )


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
        self._stage = ParquetLake(self._dir, durable=False)
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
        self.lake.publish(self._stage, sorted(hours), list(self.summary_specs), manifests)
        self.committed = manifests
        return manifests

    def abort(self) -> None:
        self._writer.abort()


def _hour_of(manifest: Mapping[str, Any]) -> datetime:
    date, hour = manifest["partition"].split("date=")[1].split("/hour=")
    return datetime.fromisoformat(f"{date}T{hour[:2]}:00:00+00:00")


def _empty(schema: pa.Schema) -> pa.Table:
    return pa.schema([*schema, ("date", pa.string()), ("hour", pa.int32())]).empty_table()
