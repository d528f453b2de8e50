"""Turn raw Calico documents (any Calico version, any JSON types) into the lake schema.

Input is an Arrow table as a JSON reader produced it: columns typed by inference, documents
optionally wrapped as Elasticsearch hits (a ``_source`` struct column), unknown fields present.
Output is a :class:`NormalizedBatch`: valid records in :data:`~l7analytics.schema.L7_SCHEMA`,
``unlogged`` overflow records apart, and the row numbers that failed validation with a reason.
Everything is vectorized; Python runs only over distinct URL and name values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from l7analytics.arrowutil import map_unique, null_if_placeholder
from l7analytics.identity import workload_column
from l7analytics.schema import (
    INT_FIELDS,
    L7_SCHEMA,
    STRING_FIELDS,
    TIME_FIELDS,
    TIMESTAMP,
    UNLOGGED_SCHEMA,
)
from l7analytics.urls import path_template, split_url

_INT_TEXT = r"^\s*[+-]?\d+(\.0*)?\s*$"
#: Documents more than this far apart in start/end are not Calico flush windows.
_MAX_SPAN_SECONDS = 7 * 86400
#: end_time must be after 2000-01-01 and before 2100-01-01: anything else is not epoch seconds.
_MIN_EPOCH, _MAX_EPOCH = 946_684_800, 4_102_444_800

_URL_CACHE: dict[str | None, tuple[str | None, str | None, str | None]] = {}


@dataclass(slots=True)
class NormalizedBatch:
    """Result of :func:`normalize_table`: nothing is dropped without being accounted for."""

    records: pa.Table
    unlogged: pa.Table
    rejected_rows: list[int] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def _column(table: pa.Table, name: str) -> pa.Array | None:
    """A field from the top level or from an Elasticsearch hit's ``_source`` (top level wins)."""
    top = table.column(name).combine_chunks() if name in table.column_names else None
    nested = None
    if "_source" in table.column_names:
        source = table.column("_source").combine_chunks()
        if pa.types.is_struct(source.type) and source.type.get_field_index(name) >= 0:
            nested = pc.struct_field(source, name)
    if top is None:
        return nested
    if nested is None:
        return top
    if top.type != nested.type:
        top, nested = pc.cast(top, pa.string()), pc.cast(nested, pa.string())
    return pc.coalesce(top, nested)


def _as_string(array: pa.Array | None, n: int) -> pa.Array:
    if array is None:
        return pa.nulls(n, pa.string())
    if pa.types.is_null(array.type) or array.null_count == len(array):
        return pa.nulls(n, pa.string())
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        if pa.types.is_struct(array.type) or pa.types.is_list(array.type):
            return pa.nulls(n, pa.string())
        array = pc.cast(array, pa.string())
    return null_if_placeholder(pc.cast(array, pa.string()))


def _as_int(array: pa.Array | None, n: int) -> tuple[pa.Array, np.ndarray]:
    """Integer column and a mask of values present but not integers (to reject)."""
    bad = np.zeros(n, dtype=bool)
    if array is None or pa.types.is_null(array.type):
        return pa.nulls(n, pa.int64()), bad
    if pa.types.is_integer(array.type):
        return pc.cast(array, pa.int64()), bad
    if pa.types.is_floating(array.type):
        integral = pc.equal(pc.floor(array), array)
        bad = ~pc.fill_null(integral, True).to_numpy(zero_copy_only=False)
        clean = pc.if_else(integral, array, pa.scalar(None, array.type))
        return pc.cast(clean, pa.int64()), bad
    if pa.types.is_boolean(array.type):
        return pa.nulls(n, pa.int64()), ~pc.is_null(array).to_numpy(zero_copy_only=False)
    if not pa.types.is_string(array.type):
        if not _castable_to_string(array):
            return pa.nulls(n, pa.int64()), np.ones(n, dtype=bool)
        array = pc.cast(array, pa.string())
    text = null_if_placeholder(array)
    ok = pc.match_substring_regex(text, _INT_TEXT)
    bad = ~pc.fill_null(ok, True).to_numpy(zero_copy_only=False)
    clean = pc.if_else(ok, text, pa.scalar(None, pa.string()))
    as_float = pc.cast(pc.utf8_trim_whitespace(clean), pa.float64())
    return pc.cast(as_float, pa.int64()), bad


def _castable_to_string(array: pa.Array) -> bool:
    return not (pa.types.is_struct(array.type) or pa.types.is_list(array.type))


def _derive(columns: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """Columns computed once at ingest: numeric status, workload identity, URL parts."""
    code = columns["response_code"]
    numeric = pc.if_else(
        pc.match_substring_regex(code, r"^\d{3}$"), code, pa.scalar(None, pa.string())
    )
    parts = map_unique(
        columns["url"],
        _url_parts,
        pa.struct([("a", pa.string()), ("p", pa.string()), ("t", pa.string())]),
        cache=_URL_CACHE,
    )
    src = workload_column(columns["src_namespace"], columns["src_name_aggr"])
    dest_workload = workload_column(columns["dest_namespace"], columns["dest_name_aggr"])
    service = columns["dest_service_name"]
    service_ns = pc.coalesce(columns["dest_service_namespace"], columns["dest_namespace"])
    service_id = pc.binary_join_element_wise(pc.fill_null(service_ns, "-"), service, "/")
    return {
        "response_status": pc.cast(numeric, pa.int16()),
        "src_workload": src,
        "dest_workload": dest_workload,
        # What a caller talks to: the Service when there is one, else the workload, else the
        # URL's authority (destination info can be aggregated away by FelixConfiguration).
        "dest": pc.coalesce(service_id, dest_workload, pc.struct_field(parts, "a")),
        "url_authority": pc.struct_field(parts, "a"),
        "url_path": pc.struct_field(parts, "p"),
        "path_template": pc.struct_field(parts, "t"),
    }


def _url_parts(url: str | None) -> tuple[str | None, str | None, str | None]:
    authority, path = split_url(url)
    return authority, path, path_template(path)


def normalize_table(table: pa.Table) -> NormalizedBatch:
    """Validate, type and enrich one table of raw documents.

    A document is rejected (and its row number reported) when ``end_time`` is missing or not
    epoch seconds, ``start_time`` is after ``end_time``, ``count`` is missing or negative, or a
    numeric field holds something that is not a number. ``type == "unlogged"`` documents are
    returned apart: they carry only a host, a window and the number of dropped requests.
    """
    n = table.num_rows
    # The first reason a row fails is kept, as an index into ``messages`` (0 = valid).
    codes = np.zeros(n, dtype=np.int16)
    messages: list[str] = [""]

    def reject(mask: np.ndarray, reason: str) -> None:
        if not mask.any():
            return
        messages.append(reason)
        codes[mask & (codes == 0)] = len(messages) - 1

    if "_source" in table.column_names and not pa.types.is_struct(table.column("_source").type):
        reject(
            ~pc.is_null(table.column("_source")).to_numpy(zero_copy_only=False),
            "_source is not an object",
        )

    columns: dict[str, pa.Array] = {}
    for name in STRING_FIELDS:
        columns[name] = _as_string(_column(table, name), n)
    for name in INT_FIELDS:
        columns[name], bad = _as_int(_column(table, name), n)
        reject(bad, f"{name} is not an integer")
    epoch: dict[str, pa.Array] = {}
    for name in TIME_FIELDS:
        epoch[name], bad = _as_int(_column(table, name), n)
        reject(bad, f"{name} is not epoch seconds")

    end = epoch["end_time"]
    end_np = pc.fill_null(end, 0).to_numpy(zero_copy_only=False)
    reject(pc.is_null(end).to_numpy(zero_copy_only=False), "end_time is missing")
    reject((end_np < _MIN_EPOCH) | (end_np > _MAX_EPOCH), "end_time is not epoch seconds")
    start = pc.coalesce(epoch["start_time"], pc.subtract(end, 300))
    start_np = pc.fill_null(start, 0).to_numpy(zero_copy_only=False)
    reject(
        (start_np > end_np) | (end_np - start_np > _MAX_SPAN_SECONDS),
        "start_time is after end_time or not a flush window",
    )
    count_np = pc.fill_null(columns["count"], -1).to_numpy(zero_copy_only=False)
    reject(count_np < 0, "count is missing or negative")

    ok = codes == 0
    rejected = np.flatnonzero(~ok)
    columns["start_time"] = pc.cast(start, TIMESTAMP)
    columns["end_time"] = pc.cast(end, TIMESTAMP)
    is_unlogged = pc.fill_null(pc.equal(columns["type"], "unlogged"), False).to_numpy(
        zero_copy_only=False
    )
    keep = ok & ~is_unlogged
    keep_unlogged = ok & is_unlogged

    unlogged = pa.table(
        {name: _take(columns[name], keep_unlogged) for name in UNLOGGED_SCHEMA.names},
        schema=UNLOGGED_SCHEMA,
    )
    valid = {
        name: _take(columns[name], keep) for name in (*TIME_FIELDS, *INT_FIELDS, *STRING_FIELDS)
    }
    valid.update(_derive(valid))
    records = pa.table(valid, schema=L7_SCHEMA)
    return NormalizedBatch(
        records=records,
        unlogged=unlogged,
        rejected_rows=rejected.tolist(),
        reasons=[messages[c] for c in codes[rejected]],
    )


def _take(array: pa.Array, mask: np.ndarray) -> pa.Array:
    """``array`` filtered by ``mask``, without copying when every row is kept."""
    return array if mask.all() else array.filter(pa.array(mask))
