"""File adapters: the quarantine and the NDJSON / Parquet alert sinks.

Every file is written to a temporary name beside its target and renamed into place when
complete, so a crash never leaves half a file. An alerts file is merged by alert id (a later
window adds its alerts, a re-run changes nothing); the quarantine of a run replaces the last.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from l7analytics.adapters.paths import check_output_file
from l7analytics.core.alerts import Alert, merge_stored
from l7analytics.core.errors import ConfigError, InputError, LakeError, SinkError
from l7analytics.core.windows import Window, iso

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: alert files are not locked
    fcntl = None  # type: ignore[assignment]


def quarantine_path(lake: str | os.PathLike[str], window: Window | None) -> Path:
    """Where a run keeps what it rejected: one file per window, replaced by a re-run."""
    label = "all" if window is None else f"{iso(window.start)}_{iso(window.end)}"
    return Path(lake) / "quarantine" / f"{label.replace(':', '')}.ndjson"


class NdjsonQuarantine:
    """Rejected documents, one JSON object a line: ``origin``, ``reason``, ``raw``.

    Lines go to an anonymous temporary file beside the target (``O_TMPFILE`` on Linux, else
    unlinked at once), so a failed or killed run leaves nothing behind: only :meth:`close`,
    on success, names the file and renames it into place. A context manager discards on an
    exception.
    """

    def __init__(self, path: str | os.PathLike[str], max_raw_chars: int = 65_536) -> None:
        self.path = Path(path)
        self.max_raw_chars = max_raw_chars
        self.count = 0
        self.reasons: dict[str, int] = {}
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._file: IO[bytes] | None = None

    def __enter__(self) -> NdjsonQuarantine:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.discard()

    def add(self, origin: str, reason: str, raw: str) -> None:
        if self._file is None:
            self._file = self._guard("open", self._open)
        self.count += 1
        key = reason.split(":", 1)[0]
        self.reasons[key] = self.reasons.get(key, 0) + 1
        record = {"origin": origin, "reason": reason, "raw": raw[: self.max_raw_chars]}
        self._guard("write", self._file.write, orjson.dumps(record) + b"\n")

    def _open(self) -> IO[bytes]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryFile(dir=self.path.parent)

    def _guard(self, action: str, func: Any, *args: Any) -> Any:
        """A quarantine that cannot be written fails the run in one line naming the file."""
        try:
            return func(*args)
        except OSError as exc:
            self.discard()
            raise LakeError(f"quarantine {self.path}: cannot {action}: {exc.strerror}") from exc

    def close(self) -> None:
        """Publish the file; with nothing quarantined, remove any older one for this run."""
        if self._file is None:
            if self.path.exists():
                self._guard("remove", self.path.unlink)
            return
        self._guard("publish", self._publish)

    def _publish(self) -> None:
        assert self._file is not None
        try:
            self._file.seek(0)
            with self._tmp.open("wb") as out:
                shutil.copyfileobj(self._file, out)
            os.replace(self._tmp, self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        finally:
            self._file.close()
            self._file = None

    def discard(self) -> None:
        """Drop what was quarantined by this run (the run failed); older files stay."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        with contextlib.suppress(OSError):
            self._tmp.unlink(missing_ok=True)


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not serializable: {type(value).__name__}")


def alert_documents(alerts: Sequence[Alert]) -> list[dict[str, Any]]:
    return [a.to_event() for a in alerts]


# -- alert files: merged by id ------------------------------------------------------------
#: Columns of the Parquet alerts file: the event's top-level fields, ``record`` as JSON text.
_PARQUET_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("time", pa.string()),
        ("type", pa.string()),
        ("origin", pa.string()),
        ("name", pa.string()),
        ("description", pa.string()),
        ("severity", pa.int32()),
        ("host", pa.string()),
        ("source_namespace", pa.string()),
        ("source_name_aggr", pa.string()),
        ("dest_namespace", pa.string()),
        ("dest_name_aggr", pa.string()),
        ("dest_service_name", pa.string()),
        ("attack_vector", pa.string()),
        ("mitre_tactic", pa.string()),
        ("mitre_ids", pa.list_(pa.string())),
        ("mitigations", pa.list_(pa.string())),
        ("record", pa.string()),
    ]
)


class NotAlerts(ValueError):
    """A file that is not an alerts file (the message says where and why)."""


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY)


def _os_problem(exc: OSError) -> str:
    """The reason of an OS error (pyarrow's carry an errno but no ``strerror``)."""
    return exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))


def _plain(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as it reads back from a file (numpy values, NaN and dates as JSON has
    them), so a stored alert and the same alert scored again compare equal."""
    return orjson.loads(_dumps(doc))


def _problem(doc: Any) -> str | None:
    """Why ``doc`` is not an alert document (what a merge and ``evaluate`` rely on)."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    for key in ("id", "origin", "time"):
        if not isinstance(doc.get(key), str):
            return f"no {key}"
    severity = doc.get("severity", 0)
    if not isinstance(severity, int) or isinstance(severity, bool):
        return "severity is not a number"
    record = doc.get("record")
    if not isinstance(record, dict):
        return "no record"
    for key in ("window_start", "window_end"):
        if not isinstance(record.get(key), str):
            return f"no record.{key}"
    return None


def _merged(
    stored: dict[str, dict[str, Any]], new: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    """Every alert of the file and of this run, by id; and how many are new or changed."""
    merged, changed = dict(stored), 0
    for doc in new:
        old = stored.get(doc["id"])
        doc = merge_stored(doc, old) if old is not None else doc
        if doc != old:
            merged[doc["id"]], changed = doc, changed + 1
    order = sorted(merged.values(), key=lambda d: (d["time"], -d.get("severity", 0), d["id"]))
    return order, changed


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """Runs merging into files of one directory take turns (``flock`` on the directory), or
    two windows scored at once would each write the file without the other's alerts."""
    directory.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - not POSIX
        yield
        return
    handle = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


class _AlertFile:
    """An alerts file merged by alert id (see :meth:`write`). Subclasses read and write one
    format; both replace the file atomically (a temporary file beside it, then a rename)."""

    kind = ""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.description = f"{self.kind}:{self.path}"

    def check(self) -> None:
        """Before any work: the file can be written, and an existing file is an alerts file
        (``--alerts logs.ndjson`` must not replace the logs)."""
        check_output_file(self.path, "--alerts")
        if self.path.exists():
            try:
                self.read()
            except NotAlerts as exc:
                raise ConfigError(f"--alerts {exc}; refusing to replace it") from None

    def write(self, alerts: Sequence[Alert]) -> int:
        """Merge by id: an alert already in the file is replaced (keeping its occurrences), the
        others are kept, new ones added. Returns how many alerts were new or changed; with
        none, an existing file is left untouched (a re-run changes nothing)."""
        new = [_plain(doc) for doc in alert_documents(alerts)]
        try:
            with _directory_lock(self.path.parent):
                exists = self.path.exists()
                stored = {doc["id"]: doc for doc in self.read()} if exists else {}
                documents, changed = _merged(stored, new)
                if changed or not exists:
                    self._replace(documents)
        except OSError as exc:
            raise SinkError(f"cannot write alerts to {self.path}: {_os_problem(exc)}") from exc
        except NotAlerts as exc:
            raise SinkError(f"cannot merge alerts into {exc}") from exc
        return changed

    def _replace(self, documents: list[dict[str, Any]]) -> None:
        handle, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        tmp = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                self._dump(documents, out)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide alerts from other readers
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def read(self) -> list[dict[str, Any]]:
        """The alert documents of the file; :class:`NotAlerts` if it is something else."""
        raise NotImplementedError

    def _dump(self, documents: list[dict[str, Any]], out: IO[bytes]) -> None:
        raise NotImplementedError


class NdjsonAlertSink(_AlertFile):
    """Alerts as security-event documents, one a line."""

    kind = "ndjson"

    def read(self) -> list[dict[str, Any]]:
        documents = []
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    doc = orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise NotAlerts(f"{self.path} line {number}: not JSON") from None
                if problem := _problem(doc):
                    raise NotAlerts(f"{self.path} line {number}: not an alert ({problem})")
                documents.append(doc)
        return documents

    def _dump(self, documents: list[dict[str, Any]], out: IO[bytes]) -> None:
        for doc in documents:
            out.write(_dumps(doc) + b"\n")


class ParquetAlertSink(_AlertFile):
    """Alerts as a Parquet table: top-level fields as columns, ``record`` as JSON text (its
    shape differs per detector; DuckDB's ``json_extract`` and pandas read it)."""

    kind = "parquet"

    def read(self) -> list[dict[str, Any]]:
        try:
            table = pq.read_table(self.path)
        except pa.ArrowException as exc:
            raise NotAlerts(f"{self.path}: not a Parquet file ({exc})") from None
        missing = [n for n in ("id", "record") if n not in table.column_names]
        if missing:
            raise NotAlerts(f"{self.path}: not an alerts table (no column {missing[0]})")
        documents = []
        for number, row in enumerate(table.to_pylist(), 1):
            doc = {k: v for k, v in row.items() if v is not None}
            try:
                doc["record"] = orjson.loads(doc.get("record") or "null")
            except orjson.JSONDecodeError:
                raise NotAlerts(f"{self.path} row {number}: record is not JSON") from None
            if problem := _problem(doc):
                raise NotAlerts(f"{self.path} row {number}: not an alert ({problem})")
            documents.append(doc)
        return documents

    def _dump(self, documents: list[dict[str, Any]], out: IO[bytes]) -> None:
        rows = [{**doc, "record": _dumps(doc["record"]).decode()} for doc in documents]
        table = pa.Table.from_pylist(rows, schema=_PARQUET_SCHEMA)
        pq.write_table(table, out, compression="zstd")


def alert_sink_for(path: str | os.PathLike[str]) -> NdjsonAlertSink | ParquetAlertSink:
    """Pick the sink from the file name: ``.ndjson``/``.jsonl``/``.json`` or ``.parquet``."""
    name = str(path)
    if name.endswith(".parquet"):
        return ParquetAlertSink(path)
    if name.endswith((".ndjson", ".jsonl", ".json")):
        return NdjsonAlertSink(path)
    raise ConfigError(f"--alerts {name}: use a .ndjson or .parquet file name")


def read_alerts(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Alert documents back from an NDJSON or Parquet alerts file; a missing, unreadable or
    foreign file is an :class:`InputError` in one line (the CLI exits 2)."""
    sink = ParquetAlertSink(path) if str(path).endswith(".parquet") else NdjsonAlertSink(path)
    try:
        return sink.read()
    except OSError as exc:
        raise InputError(f"cannot read alerts from {path}: {_os_problem(exc)}") from None
    except NotAlerts as exc:
        raise InputError(f"cannot read alerts: {exc}") from None
