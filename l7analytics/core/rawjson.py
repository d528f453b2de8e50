"""Calico documents as JSON into Arrow tables in the types Calico writes, for every source.

The fast path parses a block of NDJSON with Arrow's multithreaded reader straight into the
expected types (integers as int64, the rest as text); that is what makes ingest fast. A block
it rejects (a malformed line, ``"count": "-"``, an integer past int64) is the caller's to
re-read, and documents already decoded become text columns (:func:`text_table`), so that
:mod:`~l7analytics.core.normalize` types, validates and quarantines in one place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import orjson
import pyarrow as pa
import pyarrow.json as pj

from l7analytics.core.schema import INT_FIELDS, SOURCE_FIELDS, STRING_FIELDS, TIME_FIELDS

READ_OPTIONS = pj.ReadOptions(use_threads=True, block_size=1 << 20)
_FIELDS = [
    *(pa.field(f, pa.int64()) for f in (*TIME_FIELDS, *INT_FIELDS)),
    *(pa.field(f, pa.string()) for f in STRING_FIELDS),
]
#: Plain documents, one a line.
DOCUMENTS = pj.ParseOptions(
    explicit_schema=pa.schema(_FIELDS),
    newlines_in_values=False,
    unexpected_field_behavior="ignore",
)
#: Elasticsearch hits carry the document in ``_source`` (slower to parse, so only when needed).
HITS = pj.ParseOptions(
    explicit_schema=pa.schema([*_FIELDS, pa.field("_source", pa.struct(_FIELDS))]),
    newlines_in_values=False,
    unexpected_field_behavior="ignore",
)


#: A line that is not a JSON object. pyarrow 26's JSON reader crashes the process (SIGSEGV) on
#: a block that starts with a ``null`` line, found by the fuzz suite; whoever writes the input
#: chooses its lines, so blocks holding any line that is not an object go to the line-by-line
#: parser, which quarantines those lines. The scan is anchored on newlines (a ``(?m)^`` scan
#: was 14x slower: 125 ms per 16 MiB block, against 9 ms).
_FIRST_NOT_AN_OBJECT = re.compile(rb"\s*[^{\s]")
_NEXT_NOT_AN_OBJECT = re.compile(rb"\n[ \t\r\f\v]*[^{\s]")


def read_block(block: bytes | memoryview, options: pj.ParseOptions = DOCUMENTS) -> pa.Table:
    """One block of NDJSON, parsed without copying it; raises ``pa.ArrowInvalid`` (or
    ``ArrowNotImplementedError``) when a line breaks the expected types or is not an object."""
    if _FIRST_NOT_AN_OBJECT.match(block) or _NEXT_NOT_AN_OBJECT.search(block):
        raise pa.ArrowInvalid("a line is not a JSON object")
    source = pa.BufferReader(pa.py_buffer(block))
    return pj.read_json(source, read_options=READ_OPTIONS, parse_options=options)


def documents_table(documents: Sequence[Mapping[str, object]]) -> pa.Table:
    """Decoded documents (an Elasticsearch page) as a table: re-encoded and parsed by Arrow,
    which is faster than building columns from Python; odd types fall back to text."""
    try:
        return read_block(b"\n".join(orjson.dumps(d) for d in documents))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, orjson.JSONEncodeError, TypeError):
        return text_table(documents)


def text_table(documents: Sequence[Mapping[str, object]]) -> pa.Table:
    """Every Calico field of ``documents`` as text (the normalizer types and validates it)."""
    return pa.table(
        {name: pa.array([as_text(d.get(name)) for d in documents], pa.string())
         for name in SOURCE_FIELDS}
    )  # fmt: skip


def as_text(value: object) -> str | None:
    """A JSON value as text: integers exactly, objects and arrays as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):  # an int past 64 bits inside, say
        return repr(value)
