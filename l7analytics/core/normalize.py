"""Turn raw Calico documents (any Calico version, any JSON types) into the lake schema.

Input is an Arrow table as a JSON reader produced it: columns typed by inference, documents
optionally wrapped as Elasticsearch hits (a ``_source`` struct column), unknown fields present.
Output is a :class:`NormalizedBatch`: valid records in :data:`~l7analytics.core.schema.L7_SCHEMA`,
``unlogged`` overflow records apart, and the row numbers that failed validation with a reason.
Everything is vectorized; Python runs only over distinct URL and name values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from l7analytics.core.arrowutil import is_utf8, map_unique, null_if_placeholder
from l7analytics.core.identity import workload_column
from l7analytics.core.schema import (
    INT_FIELDS,
    L7_SCHEMA,
    STRING_FIELDS,
    TIME_FIELDS,
    TIMESTAMP,
    UNLOGGED_SCHEMA,
)
from l7analytics.core.urls import path_template, split_url

_INT_TEXT = r"^\s*[+-]?\d+(\.0*)?\s*$"
#: Largest value a document may hold per integer field. ``count`` is requests in one flush
#: window of one node: four billion is far past any real one, and keeps the sum of a window's
#: counts inside int64 (no negative totals). The others stay exact in float64 and in JSON.
_INT_LIMITS: dict[str, int] = {name: 2**53 for name in INT_FIELDS} | {"count": 2**32}
_PORT_FIELDS = ("source_port_num", "dest_port_num", "dest_service_port")
_INT_LIMITS |= {name: 65_535 for name in _PORT_FIELDS}
_INT64_MAX = 2**63 - 1
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
    """Integer column and a mask of values present but not exact integers (to reject).

    No value goes through float64 unless the document wrote a float: integer text is parsed
    exactly, and a float beyond 2**53 (where float64 skips integers) is rejected, not rounded.
    """
    bad = np.zeros(n, dtype=bool)
    if array is None or pa.types.is_null(array.type):
        return pa.nulls(n, pa.int64()), bad
    if pa.types.is_integer(array.type):
        if pa.types.is_uint64(array.type):
            too_big = pc.fill_null(pc.greater(array, _INT64_MAX), False)
            bad = too_big.to_numpy(zero_copy_only=False)
            array = pc.if_else(too_big, pa.scalar(None, array.type), array)
        return pc.cast(array, pa.int64()), bad
    if pa.types.is_floating(array.type):
        exact = pc.and_(pc.equal(pc.floor(array), array), pc.less_equal(pc.abs(array), 2.0**53))
        bad = ~pc.fill_null(exact, True).to_numpy(zero_copy_only=False)
        clean = pc.if_else(exact, array, pa.scalar(None, array.type))
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
    digits = pc.replace_substring_regex(
        pc.utf8_trim_whitespace(pc.if_else(ok, text, pa.scalar(None, pa.string()))),
        r"^\+|\.0*$",
        "",
    )
    try:
        return pc.cast(digits, pa.int64()), bad
    except pa.ArrowInvalid:  # a value outside int64: find it in Python (rare, so cheap)
        values = [None if v is None else int(v) for v in digits.to_pylist()]
        outside = np.array([v is not None and not -_INT64_MAX <= v <= _INT64_MAX for v in values])
        kept = [None if out else v for v, out in zip(values, outside, strict=True)]
        return pa.array(kept, pa.int64()), bad | outside


def _out_of_range(name: str, values: pa.Array) -> np.ndarray:
    """Rows whose ``name`` is negative or above its limit (see :data:`_INT_LIMITS`)."""
    outside = pc.or_(pc.less(values, 0), pc.greater(values, _INT_LIMITS[name]))
    return pc.fill_null(outside, False).to_numpy(zero_copy_only=False)


def _range_reason(name: str) -> str:
    if name in _PORT_FIELDS:
        return f"{name} is not a port number (0 to 65535)"
    limit = _INT_LIMITS[name]
    return f"{name} is negative or above 2**{limit.bit_length() - 1} ({limit})"


def _invalid_utf8(array: pa.Array) -> np.ndarray:
    """Rows whose text is not valid UTF-8 (Arrow's JSON reader does not check strings; Parquet
    and every reader after it would fail on them). Checked whole first: Python looks at the
    values only when the column holds a bad one."""
    try:
        array.validate(full=True)
        return np.zeros(len(array), dtype=bool)
    except pa.ArrowInvalid:
        raw = array.view(pa.large_binary() if pa.types.is_large_string(array.type) else pa.binary())
        return np.array([v is not None and not is_utf8(v) for v in raw.to_pylist()], dtype=bool)


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
        raw = _column(table, name)
        if raw is not None and (pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type)):
            invalid = _invalid_utf8(raw)
            reject(invalid, f"{name} is not valid UTF-8")
            if invalid.any():  # rejected; nulled so no later kernel meets the bad bytes
                raw = pc.if_else(pa.array(invalid), pa.scalar(None, raw.type), raw)
        columns[name] = _as_string(raw, n)
    for name in INT_FIELDS:
        columns[name], bad = _as_int(_column(table, name), n)
        reject(bad, f"{name} is not an integer")
        reject(_out_of_range(name, columns[name]), _range_reason(name))
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
    reject(pc.is_null(columns["count"]).to_numpy(zero_copy_only=False), "count is missing")

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
