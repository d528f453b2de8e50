"""Index NDJSON Calico L7 documents the way Calico does: for labs, demos and the local stack.

Documents go into ``tigera_secure_ee_l7.<cluster>.fluentd-<first day>-000001`` through an
index template that mirrors Calico's mapping (keywords, ``end_time`` as ``epoch_second``).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from l7analytics.adapters.elasticsearch.connection import (
    RetryPolicy,
    privilege_message,
    translate_errors,
)
from l7analytics.adapters.elasticsearch.templates import calico_l7_template
from l7analytics.core.errors import ConfigError, InputError, SinkError


def _documents(paths: Sequence[Path]) -> Iterator[dict[str, Any]]:
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rb") as handle:
                for line in handle:
                    if line.strip():
                        doc = orjson.loads(line)
                        yield doc.get("_source", doc) if isinstance(doc, dict) else doc
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc}") from exc


def load_documents(
    client: Any,
    paths: Sequence[str | Path],
    host: str,
    cluster: str = "cluster",
    retry: RetryPolicy | None = None,
) -> tuple[str, int]:
    """Bulk-index the documents; returns the index name and how many were indexed."""
    from elasticsearch import helpers

    paths = [Path(p) for p in paths]
    first = next(_documents(paths), None)
    if first is None:
        raise InputError("no documents to load")
    day = datetime.fromtimestamp(int(first.get("end_time", 0)), UTC).strftime("%Y%m%d")
    index = f"tigera_secure_ee_l7.{cluster}.fluentd-{day}-000001"
    with translate_errors(host, f"loading documents into {index}", sink=True):
        client.indices.put_index_template(
            name="tigera_secure_ee_l7", **calico_l7_template("tigera_secure_ee_l7.*")
        )
        count = 0
        actions = ({"_index": index, "_source": doc} for doc in _documents(paths))
        retry = retry or RetryPolicy()
        stream = helpers.streaming_bulk(  # its 429 retries are the RetryPolicy's budget
            client,
            actions,
            chunk_size=5000,
            raise_on_error=False,
            max_retries=retry.attempts - 1,
            initial_backoff=retry.first_delay,
            max_backoff=retry.max_delay,
        )
        for ok, item in stream:
            if not ok:
                raise _item_error(host, index, item)
            count += 1
        client.indices.refresh(index=index)
    return index, count


def _item_error(host: str, index: str, item: dict[str, Any]) -> Exception:
    """The first refused document, as one line (a 403 names the missing privilege)."""
    ((_op, result),) = item.items()
    error = result.get("error") or {}
    reason = str(error.get("reason", "")) if isinstance(error, dict) else str(error)
    what = f"loading documents into {index}"
    kind = error.get("type") if isinstance(error, dict) else "error"
    if result.get("status") == 403 and kind == "security_exception":
        return ConfigError(privilege_message(host, what, reason))
    detail = " ".join(f"{result.get('status')} {kind}: {reason}".split())[:300]
    return SinkError(f"{host}: {what}: a document was refused ({detail})")
