"""Shared test helpers: Calico-style L7 documents turned into lake records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from l7analytics.core.normalize import normalize_table

#: 2026-11-20T05:00:00Z, the start of an hour (and of a 6 h suppression period).
T0 = int(datetime(2026, 11, 20, 5, tzinfo=UTC).timestamp())


def calico_doc(**fields: Any) -> dict[str, Any]:
    """One Calico L7 document (3.19-3.23 fields) ending 5 minutes into the hour at ``T0``."""
    end = fields.pop("end_time", T0 + 300)
    doc: dict[str, Any] = {
        "start_time": end - 300 if isinstance(end, int) else None,
        "end_time": end,
        "duration_mean": 3_000_000,
        "duration_max": 10_000_000,
        "latency": 22_000_000,
        "bytes_in": 1604,
        "bytes_out": 1333,
        "count": 1,
        "src_name_aggr": "frontend-7d9f8c6b5-*",
        "src_namespace": "shop",
        "src_type": "wep",
        "source_port_num": 0,
        "dest_name_aggr": "productcatalog-69c8ff664b-*",
        "dest_namespace": "shop",
        "dest_type": "wep",
        "dest_port_num": 8080,
        "dest_service_name": "productcatalog",
        "dest_service_namespace": "shop",
        "dest_service_port_name": "http",
        "dest_service_port": 8080,
        "method": "GET",
        "user_agent": "-",
        "url": "productcatalog:8080/products",
        "response_code": "200",
        "type": "-",
        "host": "node-1",
        "cluster": "cluster",
        "generated_time": "2026-11-20T05:05:30.123456Z",
    }
    doc.update(fields)
    return doc


def make_records(rows: list[dict[str, Any]]) -> pa.Table:
    """Lake records (``L7_SCHEMA``) from partial documents; every row must be valid."""
    docs = [calico_doc(**row) for row in rows]
    batch = normalize_table(pa.Table.from_pylist(docs))
    assert not batch.rejected_rows, batch.reasons
    return batch.records
