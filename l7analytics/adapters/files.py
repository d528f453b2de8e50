"""File adapters: the quarantine and the NDJSON / Parquet alert sinks.

Every file is written to a temporary name beside its target and renamed into place when
complete, so a crash never leaves half a file and a re-run replaces the previous output.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from l7analytics.alerts import Alert
from l7analytics.errors import ConfigError, SinkError
from l7analytics.windows import Window, iso


def quarantine_path(lake: str | os.PathLike[str], window: Window | None) -> Path:
    """Where a run keeps what it rejected: one file per window, replaced by a re-run."""
    label = "all" if window is None else f"{iso(window.start)}_{iso(window.end)}"
    return Path(lake) / "quarantine" / f"{label.replace(':', '')}.ndjson"


class NdjsonQuarantine:
    """Rejected documents, one JSON object a line: ``origin``, ``reason``, ``raw``."""

    def __init__(self, path: str | os.PathLike[str], max_raw_chars: int = 65_536) -> None:
        self.path = Path(path)
        self.max_raw_chars = max_raw_chars
        self.count = 0
        self.reasons: dict[str, int] = {}
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._file = None

    def add(self, origin: str, reason: str, raw: str) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._tmp.open("wb")
        self.count += 1
        key = reason.split(":", 1)[0]
        self.reasons[key] = self.reasons.get(key, 0) + 1
        record = {"origin": origin, "reason": reason, "raw": raw[: self.max_raw_chars]}
        self._file.write(orjson.dumps(record) + b"\n")

    def close(self) -> None:
        """Publish the file; with nothing quarantined, remove any older one for this run."""
        if self._file is not None:
            self._file.close()
            os.replace(self._tmp, self.path)
        elif self.path.exists():
            self.path.unlink()


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not serializable: {type(value).__name__}")


def alert_documents(alerts: Sequence[Alert]) -> list[dict[str, Any]]:
    return [a.to_event() for a in alerts]


class NdjsonAlertSink:
    """Alerts as security-event documents, one a line (replaces the file)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.description = f"ndjson:{self.path}"

    def write(self, alerts: Sequence[Alert]) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            with tmp.open("wb") as out:
                for doc in alert_documents(alerts):
                    out.write(
                        orjson.dumps(doc, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY)
                        + b"\n"
                    )
            os.replace(tmp, self.path)
        except OSError as exc:
            raise SinkError(f"cannot write alerts to {self.path}: {exc.strerror}") from exc
        return len(alerts)


class ParquetAlertSink:
    """Alerts as a Parquet table: top-level fields as columns, ``record`` as JSON text (its
    shape differs per detector; DuckDB's ``json_extract`` and pandas read it)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.description = f"parquet:{self.path}"

    def write(self, alerts: Sequence[Alert]) -> int:
        rows = []
        for doc in alert_documents(alerts):
            row = {k: v for k, v in doc.items() if k != "record"}
            row["record"] = orjson.dumps(
                doc["record"], default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY
            ).decode()
            rows.append(row)
        schema = pa.schema(
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
        table = pa.Table.from_pylist(rows, schema=schema)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, self.path)
        except OSError as exc:
            raise SinkError(f"cannot write alerts to {self.path}: {exc.strerror}") from exc
        return len(alerts)


def alert_sink_for(path: str | os.PathLike[str]) -> NdjsonAlertSink | ParquetAlertSink:
    """Pick the sink from the file name: ``.ndjson``/``.jsonl``/``.json`` or ``.parquet``."""
    name = str(path)
    if name.endswith(".parquet"):
        return ParquetAlertSink(path)
    if name.endswith((".ndjson", ".jsonl", ".json")):
        return NdjsonAlertSink(path)
    raise ConfigError(f"--alerts {name}: use a .ndjson or .parquet file name")


def read_alerts(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Alert documents back from an NDJSON or Parquet alerts file."""
    name = str(path)
    if name.endswith(".parquet"):
        rows = pq.read_table(name).to_pylist()
        for row in rows:
            row["record"] = orjson.loads(row["record"])
        return [{k: v for k, v in r.items() if v is not None} for r in rows]
    with open(name, "rb") as handle:
        return [orjson.loads(line) for line in handle if line.strip()]
