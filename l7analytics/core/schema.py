"""The one Arrow schema of a normalized Calico L7 record, and the raw field groups.

Calico writes every field as a keyword or a number (see ``calico-l7.md``, section 2); the lake
stores them typed: times as UTC timestamps, volumes as integers, ``response_code`` as text
(as Calico does) plus ``response_status`` as a number, ``-`` and ``""`` as missing. Fields added
in 3.24 are optional. Derived columns (workload identity, URL parts, path template) are
computed once at ingest so every reader of the lake (detectors, notebooks, DuckDB) sees them.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

TIMESTAMP = pa.timestamp("s", tz="UTC")

#: Calico fields read as integers (``-`` means missing).
INT_FIELDS: tuple[str, ...] = (
    "count",
    "bytes_in",
    "bytes_out",
    "duration_mean",
    "duration_max",
    "latency",
    "source_port_num",
    "dest_port_num",
    "dest_service_port",
)

#: Calico fields kept as text (``-`` and ``""`` mean missing).
STRING_FIELDS: tuple[str, ...] = (
    "host",
    "src_name_aggr",
    "src_namespace",
    "src_type",
    "dest_name_aggr",
    "dest_namespace",
    "dest_type",
    "dest_service_name",
    "dest_service_namespace",
    "dest_service_port_name",
    "url",
    "method",
    "response_code",
    "user_agent",
    "type",
    "cluster",
    "generated_time",
    # Calico Enterprise 3.24 (eBPF and waypoint collectors)
    "protocol",
    "protocol_version",
    "collector_type",
    "collector_name",
    "tls_sni",
    "tls_version",
    "tls_cipher_suite",
)

TIME_FIELDS: tuple[str, ...] = ("start_time", "end_time")

#: Every field read from a Calico document; anything else is tolerated and dropped.
SOURCE_FIELDS: tuple[str, ...] = TIME_FIELDS + INT_FIELDS + STRING_FIELDS

#: Columns computed at ingest.
DERIVED_FIELDS: tuple[str, ...] = (
    "response_status",
    "src_workload",
    "dest_workload",
    "dest",
    "url_authority",
    "url_path",
    "path_template",
)

L7_SCHEMA = pa.schema(
    [pa.field(name, TIMESTAMP) for name in TIME_FIELDS]
    + [pa.field(name, pa.int64()) for name in INT_FIELDS]
    + [pa.field(name, pa.string()) for name in STRING_FIELDS]
    + [
        pa.field("response_status", pa.int16()),
        pa.field("src_workload", pa.string()),
        pa.field("dest_workload", pa.string()),
        pa.field("dest", pa.string()),
        pa.field("url_authority", pa.string()),
        pa.field("url_path", pa.string()),
        pa.field("path_template", pa.string()),
    ],
    metadata={b"l7analytics.schema_version": str(SCHEMA_VERSION).encode()},
)

#: Overflow records (``type: unlogged``): requests Calico dropped over the per-node limit.
UNLOGGED_SCHEMA = pa.schema(
    [
        pa.field("start_time", TIMESTAMP),
        pa.field("end_time", TIMESTAMP),
        pa.field("host", pa.string()),
        pa.field("cluster", pa.string()),
        pa.field("count", pa.int64()),
    ]
)

#: Hive partition columns of the lake (derived from ``end_time``).
PARTITION_SCHEMA = pa.schema([pa.field("date", pa.string()), pa.field("hour", pa.string())])
