"""The ports: what the core needs from the outside world, as small protocols.

Adapters in :mod:`l7analytics.adapters` implement them (NDJSON files, the Parquet lake, alert
files; Elasticsearch later). The pipeline takes them as arguments, so tests and notebooks can
pass in-memory versions and nothing in the core imports a client library or touches a path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import pyarrow as pa

from l7analytics.core.alerts import Alert
from l7analytics.core.windows import Window


@dataclass(slots=True)
class RawBatch:
    """Raw documents as a source read them, before validation.

    ``raw_record(i)`` returns the original text of row ``i`` so a rejected document can be
    quarantined exactly as it arrived; ``origin(i)`` says where it came from (file and line).
    """

    table: pa.Table
    raw_record: Callable[[int], str]
    origin: Callable[[int], str]
    #: Records the source itself could not parse: (origin, reason, raw text).
    unparsable: Sequence[tuple[str, str, str]] = ()


@runtime_checkable
class LogSource(Protocol):
    """Where L7 logs come from (files, Elasticsearch)."""

    #: A human description without secrets, recorded in partition manifests.
    description: str

    def batches(self, window: Window | None) -> Iterator[RawBatch]:
        """Raw batches; ``window`` is a hint (sources that can filter should)."""
        ...

    def manifest(self) -> dict:
        """Facts about the read to record in the partition manifests (after ``batches``)."""
        ...


@runtime_checkable
class AlertSink(Protocol):
    """Where alerts go (files, Elasticsearch, Calico's events index)."""

    description: str

    def write(self, alerts: Sequence[Alert]) -> int:
        """Write alerts idempotently (same ``id`` twice = one alert); return how many were new
        or changed."""
        ...


class Quarantine(Protocol):
    """Where documents that failed validation are kept, with the reason."""

    def add(self, origin: str, reason: str, raw: str) -> None: ...

    def close(self) -> None:
        """Publish what was quarantined (the run's data landed)."""

    def discard(self) -> None:
        """Drop it (the run failed: its data never landed)."""


class ModelStore(Protocol):
    """Versioned, persisted detector models."""

    def save(self, detector_id: str, version: str, model: object, metadata: dict) -> str: ...

    def latest(self, detector_id: str, trained_before: Window | None) -> tuple[object, dict]: ...

    def versions(self, detector_id: str) -> list[dict]: ...


class LakeWriter(Protocol):
    """One write transaction of a lake: stream tables in, then commit (or abort)."""

    def write(self, tables: Iterable[pa.Table]) -> None: ...

    def add_unlogged(self, table: pa.Table) -> None: ...

    def commit(self, extra: dict | None = None) -> list[dict]: ...

    def __enter__(self) -> LakeWriter: ...

    def __exit__(self, *exc: object) -> None: ...


class Lake(Protocol):
    """The partitioned store of normalized records (``adapters.lake.ParquetLake``)."""

    def writer(
        self,
        window: Window | None,
        source: str,
        summaries: dict | None = None,
        run_mode: str = "scheduled",
    ) -> LakeWriter: ...

    def read(
        self,
        window: Window,
        columns: Iterable[str] | None = None,
        batch_size: int = 262_144,
        dataset: str = "l7",
    ) -> Iterator[pa.RecordBatch]: ...

    def read_table(
        self, window: Window, columns: Iterable[str] | None = None, dataset: str = "l7"
    ) -> pa.Table: ...

    def summaries(self, window: Window, name: str) -> list[pa.Table]: ...

    def recover(self) -> None:
        """Finish or undo what an interrupted commit left (see ``adapters.lake``)."""

    def missing_hours(self, window: Window) -> list: ...

    def manifests(self, window: Window, dataset: str = "l7") -> list[dict]: ...


class PartStore(Protocol):
    """Where the map step of a large scoring window leaves each hour's partial summaries
    for the reduce step (``adapters.parts.LakeParts``: beside the lake, so every worker of
    a cluster of machines sees them). ``scope`` names the scoring window; ``part`` the hour."""

    def save(self, scope: str, part: str, summaries: dict[str, pa.Table], meta: dict) -> None: ...

    def load(self, scope: str) -> dict[str, tuple[dict[str, pa.Table], dict]]: ...

    def clear(self, scope: str) -> None: ...
