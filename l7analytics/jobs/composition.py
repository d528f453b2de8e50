"""The composition root: the one place where adapters are built from settings.

The use cases (:mod:`l7analytics.jobs.pipeline`) take ports; something has to decide which
source, lake, model store and sinks fill them. That is done here and nowhere else, for the
command line (:mod:`l7analytics.ui.cli`), the Airflow tasks (:mod:`l7analytics.jobs.tasks`)
and the notebooks alike, so a new lake format or a second source is wired in one place.

Building touches nothing: a lake, a source or a sink reads or writes only when a use case
calls it, so the command line can build and check every part before any work. Heavy modules
(Elasticsearch, pyarrow's filesystems) are imported when their adapter is first built, which
keeps ``l7analytics --help`` and DAG parsing fast.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l7analytics.adapters.settings_file import load_job_settings
from l7analytics.core.errors import ConfigError, LakeError
from l7analytics.core.settings import Settings
from l7analytics.core.windows import Window

if TYPE_CHECKING:
    from l7analytics.adapters.delta_lake import DeltaLake
    from l7analytics.adapters.elasticsearch.connection import EsConnection
    from l7analytics.adapters.elasticsearch.source import EsL7Source
    from l7analytics.adapters.files import NdjsonAlertSink, NdjsonQuarantine, ParquetAlertSink
    from l7analytics.adapters.lake import ParquetLake
    from l7analytics.adapters.model_store import LakeModelStore
    from l7analytics.adapters.ndjson_source import NdjsonSource
    from l7analytics.adapters.parts import LakeParts

__all__ = [
    "alert_file",
    "check_lake_holds",
    "es_client",
    "es_connection",
    "es_sinks",
    "es_source",
    "file_source",
    "load_job_settings",
    "model_store",
    "open_lake",
    "parts",
    "quarantine",
    "quarantine_path",
]


# -- the lake and the model store --------------------------------------------------------------
def check_lake_holds(root: str, cluster: str | None, flag: str = "lake") -> None:
    """A lake at ``root`` can hold ``cluster``'s partitions (touches nothing): one on object
    storage holds any number of clusters, a local one the default cluster only."""
    from l7analytics.adapters.delta_lake import is_object_store
    from l7analytics.adapters.lake import ParquetLake

    if cluster in (None, "", ParquetLake.cluster) or is_object_store(os.fspath(root)):
        return
    raise ConfigError(
        f"--cluster {cluster}: a local lake holds the cluster '{ParquetLake.cluster}' only; "
        f"give each cluster its own {flag}, or put the lake on object storage (s3://...)"
    )


def open_lake(
    root: str | os.PathLike[str],
    *,
    existing: bool = False,
    writes: bool = False,
    flag: str = "lake",
    storage: dict[str, str] | None = None,
    cluster: str | None = None,
) -> ParquetLake | DeltaLake:
    """The lake at ``root``, checked: a local one that must hold data exists (``existing``),
    one that is written can be written (``writes``). Object storage (``s3://``, ``gs://``,
    ``az://``) holds Delta tables (:mod:`l7analytics.adapters.delta_lake`), with credentials
    from ``storage`` (an Airflow connection's) or else the standard variables; another URI
    must be one pyarrow.fs knows.
    ``cluster`` is the Calico cluster whose partitions are read and written (``None``:
    ``cluster``, a standalone cluster's name); a local lake holds that one cluster only.
    ``flag`` names the setting in the one-line error (``--lake`` on the command line)."""
    from l7analytics.adapters.delta_lake import DEFAULT_CLUSTER, DeltaLake, is_object_store
    from l7analytics.adapters.lake import ParquetLake
    from l7analytics.adapters.paths import check_writable_dir

    root = os.fspath(root)
    if not root.strip():
        raise ConfigError(f"{flag}: give a directory or a URI")
    if is_object_store(root):  # no rename there: Delta tables, one atomic commit a write
        return DeltaLake(root, storage, cluster or DEFAULT_CLUSTER)
    check_lake_holds(root, cluster, flag)
    if "://" in root:
        try:
            return ParquetLake(root)
        except ValueError as exc:  # pyarrow.ArrowInvalid: an unknown scheme, a bad URI
            raise ConfigError(f"{flag} {root}: not a URI pyarrow.fs understands ({exc})") from None
        except OSError as exc:  # the store cannot be reached (S3 resolves the bucket's region)
            raise LakeError(f"lake {root}: cannot open: {exc}") from None
    if existing and not Path(root).is_dir():
        raise ConfigError(f"{flag} {root}: no lake there (not a directory); run extract first")
    if writes:
        check_writable_dir(root, flag)
    return ParquetLake(root)


def parts(lake: ParquetLake | DeltaLake) -> LakeParts:
    """Where a large scoring window's hours leave their partial summaries: beside the lake."""
    from l7analytics.adapters.parts import LakeParts

    return LakeParts(lake)


def model_store(lake: ParquetLake | DeltaLake) -> LakeModelStore:
    """Model versions kept in the lake beside the data they were trained on."""
    from l7analytics.adapters.model_store import LakeModelStore

    return LakeModelStore(lake)


# -- sources -----------------------------------------------------------------------------------
def file_source(paths: list[str]) -> NdjsonSource:
    """NDJSON files (plain or gzip) of Calico documents or Elasticsearch hits."""
    from l7analytics.adapters.ndjson_source import NdjsonSource

    return NdjsonSource(paths)


def es_connection(
    settings: Settings,
    given: EsConnection | None = None,
    environ: Mapping[str, str] | None = None,
) -> EsConnection:
    """Where Elasticsearch is and how to log in: ``given`` (an Airflow connection), else the
    settings' ``elasticsearch.connection`` with the ``L7_ES_*`` environment over it."""
    from l7analytics.adapters.elasticsearch.connection import EsConnection

    return given if given is not None else EsConnection.from_settings(settings, environ)


def es_client(settings: Settings, given: EsConnection | None = None) -> tuple[Any, str]:
    """A client (it connects on its first request) and the host to name in messages."""
    from l7analytics.adapters.elasticsearch.connection import connect

    connection = es_connection(settings, given)
    return connect(connection), connection.display_host


def es_source(
    settings: Settings, given: EsConnection | None = None, *, wait: bool = True
) -> EsL7Source:
    """Calico's L7 indices as the settings' ``elasticsearch.source`` describes them; requests
    retry within the connection's one budget (``max_retries``)."""
    from l7analytics.adapters.elasticsearch.connection import connect
    from l7analytics.adapters.elasticsearch.source import EsL7Source, EsReadOptions, index_for

    connection = es_connection(settings, given)
    config = settings.elasticsearch.source
    index, cluster_filter = index_for(config.index, config.cluster, config.single_index)
    options = EsReadOptions(
        index=index,
        cluster_filter=cluster_filter,
        slices=config.slices,
        page_size=config.page_size,
        keep_alive=config.keep_alive,
        read_delay=config.read_delay,
        method=config.method,
        verify_count=config.verify_count,
        wait_for_data=wait,
        retry=connection.retry,
    )
    return EsL7Source(
        connect(connection),
        options,
        connection.display_host,
        pages=connect(connection, raw_json=True),
    )


# -- sinks -------------------------------------------------------------------------------------
def es_sinks(settings: Settings, given: EsConnection | None = None) -> list[Any]:
    """The alerts index, and Calico's security events index when ``calico_events`` is on."""
    from l7analytics.adapters.elasticsearch.connection import connect
    from l7analytics.adapters.elasticsearch.sinks import CalicoEventsSink, EsAlertSink

    connection = es_connection(settings, given)
    client, host, retry = connect(connection), connection.display_host, connection.retry
    config = settings.elasticsearch.alerts
    sinks: list[Any] = [
        EsAlertSink(client, config.index, host, cluster=config.cluster, retry=retry)
    ]
    if config.calico_events:
        sinks.append(
            CalicoEventsSink(client, config.cluster, config.calico_events_index, host, retry=retry)
        )
    return sinks


def alert_file(path: str | os.PathLike[str]) -> NdjsonAlertSink | ParquetAlertSink:
    """An alerts file (``.ndjson`` or ``.parquet``, merged by alert id), checked: its name,
    its directory, and that a file already there holds alerts."""
    from l7analytics.adapters.files import alert_sink_for

    sink = alert_sink_for(path)
    sink.check()
    return sink


def quarantine_path(lake_root: str | os.PathLike[str], window: Window | None) -> Path:
    """Where a run's rejected documents go when no file is given: beside a local lake; for a
    lake on object storage, under ``$L7_QUARANTINE_DIR`` (a local directory, by default the
    system's temporary one), named after the window."""
    import tempfile

    from l7analytics.adapters import files
    from l7analytics.adapters.delta_lake import is_object_store

    root = os.fspath(lake_root)
    if is_object_store(root):
        base = os.environ.get("L7_QUARANTINE_DIR") or tempfile.gettempdir()
        return files.quarantine_path(Path(base) / "l7analytics", window)
    return files.quarantine_path(root, window)


def quarantine(path: str | os.PathLike[str]) -> NdjsonQuarantine:
    """Rejected documents with their reasons, one NDJSON line each."""
    from l7analytics.adapters.files import NdjsonQuarantine

    return NdjsonQuarantine(path)
