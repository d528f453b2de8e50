"""Small Arrow and text helpers shared by the sources, normalization and the detectors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


def map_unique(
    array: pa.Array | pa.ChunkedArray,
    func: Callable[[Any], Any],
    out_type: pa.DataType,
    cache: dict[Any, Any] | None = None,
    max_cache: int = 500_000,
) -> pa.Array:
    """Apply a Python function to the *distinct* values of a column and broadcast the result.

    L7 columns repeat heavily (a few thousand URLs in a million records), so running Python
    per distinct value keeps string logic readable without paying for it per row. ``cache``
    carries results across batches; it is cleared when it grows past ``max_cache`` so memory
    stays bounded on adversarial input (every URL unique).
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if len(array) == 0:
        return pa.array([], type=out_type)
    encoded = pc.dictionary_encode(array) if not pa.types.is_dictionary(array.type) else array
    values = encoded.dictionary.to_pylist()
    if cache is None:
        mapped = [func(v) for v in values]
    else:
        if len(cache) > max_cache:
            cache.clear()
        mapped = []
        for v in values:
            try:
                mapped.append(cache[v])
            except KeyError:
                result = cache[v] = func(v)
                mapped.append(result)
    dictionary = pa.array(mapped, type=out_type)
    return dictionary.take(encoded.indices)


_SECONDS = pa.timestamp("s", tz="UTC")


def conform(data: pa.Table | pa.RecordBatch, schema: pa.Schema):
    """``data`` with exactly ``schema``'s columns, in its order and types; a column it lacks
    (a file older than the schema) reads as null."""
    arrays = [
        data.column(f.name).cast(f.type)
        if f.name in data.schema.names
        else pa.nulls(data.num_rows, f.type)
        for f in schema
    ]
    if isinstance(data, pa.Table):
        return pa.Table.from_arrays(arrays, schema=schema)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def rows_in_window(data: pa.Table | pa.RecordBatch, start: int, end: int):
    """Rows whose ``end_time`` is in ``[start, end)`` (epoch seconds); unchanged when all are.

    ``end_time`` may come back from Parquet in milliseconds: it is compared in seconds.
    """
    seconds = pc.cast(pc.cast(data.column("end_time"), _SECONDS), pa.int64())
    inside = pc.and_(pc.greater_equal(seconds, start), pc.less(seconds, end))
    return data if pc.all(inside).as_py() is not False else data.filter(inside)


def null_if_placeholder(array: pa.Array) -> pa.Array:
    """Calico's ``-`` (aggregated away) and ``""`` become nulls."""
    missing = pc.is_in(array, value_set=_PLACEHOLDERS)
    if not pc.any(missing).as_py():
        return array
    return pc.if_else(missing, pa.scalar(None, array.type), array)


_PLACEHOLDERS = pa.array(["-", ""])


def is_utf8(value: bytes) -> bool:
    """Is ``value`` valid UTF-8? (Arrow's JSON reader does not check strings.)"""
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
