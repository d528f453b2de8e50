"""A page of search hits as an Arrow table, parsed from the response's bytes.

Why not the client's decoded response: decoding a page of 5,000 hits into Python objects
(orjson, 34 ms here) and encoding their sources again for Arrow's reader
(:func:`~l7analytics.core.rawjson.documents_table`, 62 ms) holds the GIL for about 96 ms.
Arrow's JSON reader parses the response as it came in about 28 ms and releases the GIL, so the
next page's request and the lake's writes run beside it (``benchmarks/bench_es.py``).

The client that reads pages is made with :data:`RAW_JSON` (see
:func:`~l7analytics.adapters.elasticsearch.connection.connect`), which leaves a 2xx JSON
answer as bytes. :func:`parse_page` accepts those bytes, or an answer already decoded (any
other client). A page Arrow refuses (a ``count`` of ``"-"``, a float, a ``_source`` that is not
an object, a raw newline in a stored source) is decoded with orjson and goes the decoded way,
where odd types become text for the normalizer to quarantine: the same tables either way, which
``tests/test_es_pages.py`` holds for generated pages.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from l7analytics.core.errors import SourceError
from l7analytics.core.rawjson import DOCUMENTS, documents_table

_HIT = pa.struct(
    [
        pa.field("_index", pa.string()),
        pa.field("_id", pa.string()),
        pa.field("_source", pa.struct(list(DOCUMENTS.explicit_schema))),
        pa.field("sort", pa.list_(pa.int64())),
    ]
)
_RESPONSE = pj.ParseOptions(
    explicit_schema=pa.schema(
        [
            pa.field("_scroll_id", pa.string()),
            pa.field("pit_id", pa.string()),
            pa.field("hits", pa.struct([pa.field("hits", pa.list_(_HIT))])),
        ]
    ),
    newlines_in_values=False,
    unexpected_field_behavior="ignore",
)
_SOURCE_NAMES = [f.name for f in DOCUMENTS.explicit_schema]


@dataclass(frozen=True)
class Page:
    """One search answer: its hits' sources as a table and what the next request needs."""

    #: The Calico fields of each hit, typed as :func:`documents_table` types them.
    sources: pa.Table
    #: ``<index>/<id>`` of each hit.
    keys: pa.Array
    #: The last hit's sort values (``search_after`` for the next page), if any.
    last_sort: list[Any] | None
    pit_id: str | None
    scroll_id: str | None
    #: The original JSON text of hit ``i``'s ``_source``, for the quarantine.
    source_text: Callable[[int], str]
    #: Hits left out of ``sources``: (key, reason, JSON text), for the quarantine.
    unparsable: tuple[tuple[str, str, str], ...] = ()

    @property
    def size(self) -> int:
        """Hits on the page, those left out included (a short page is the last)."""
        return self.sources.num_rows + len(self.unparsable)


def parse_page(body: bytes | Mapping[str, Any]) -> Page:
    """A search answer, raw or decoded, as a :class:`Page`."""
    if isinstance(body, bytes | bytearray | memoryview):
        raw = bytes(body)
        try:
            return _arrow_page(raw)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _decoded_page(_decode(raw))
    return _decoded_page(body)


def _arrow_page(raw: bytes) -> Page:
    read = pj.ReadOptions(use_threads=False, block_size=max(len(raw) + 1, 1 << 16))
    table = pj.read_json(pa.BufferReader(raw), read_options=read, parse_options=_RESPONSE)
    if table.num_rows != 1:
        raise pa.ArrowInvalid("a search answer is one JSON object")
    hits = table.column("hits").combine_chunks().field("hits").flatten()
    hits = hits.flatten()  # struct fields, null where a hit is null
    index, ids, sources, sort = hits
    if sources.null_count:
        raise pa.ArrowInvalid("a hit without _source")  # the decoded way reads it as {}
    columns = sources.flatten()
    text = functools.cache(lambda: _decode(raw, for_quarantine=True))
    last_sort = sort[len(sort) - 1].as_py() if len(sort) else None
    return Page(
        sources=pa.Table.from_arrays(columns, names=_SOURCE_NAMES),
        keys=_keys(index, ids),
        last_sort=last_sort,
        pit_id=table.column("pit_id")[0].as_py(),
        scroll_id=table.column("_scroll_id")[0].as_py(),
        source_text=lambda i: _source_text(text()["hits"]["hits"][i]),
    )


def _decoded_page(body: Mapping[str, Any]) -> Page:
    every = (body.get("hits") or {}).get("hits") or []
    hits, unparsable = [], []
    for hit in every:
        reason = _unparsable(hit.get("_source"))
        if reason is None:
            hits.append(hit)
        else:
            key = f"{_as_str(hit.get('_index')) or ''}/{_as_str(hit.get('_id')) or ''}"
            unparsable.append((key, reason, _source_text(hit)))
    sources = (
        documents_table([h.get("_source") or {} for h in hits])
        if hits
        else DOCUMENTS.explicit_schema.empty_table()
    )
    index = pa.array([_as_str(h.get("_index")) for h in hits], pa.string())
    ids = pa.array([_as_str(h.get("_id")) for h in hits], pa.string())
    return Page(
        sources=sources,
        keys=_keys(index, ids),
        last_sort=every[-1].get("sort") if every else None,
        pit_id=body.get("pit_id"),
        scroll_id=body.get("_scroll_id"),
        source_text=lambda i: _source_text(hits[i]),
        unparsable=tuple(unparsable),
    )


def _unparsable(source: object) -> str | None:
    """Why a ``_source`` cannot become a row, or ``None``: the text of a row must be valid
    UTF-8, as the NDJSON reader requires of a line (it quarantines the same documents)."""
    if source is None:
        return None  # read as {}: the normalizer quarantines it for its missing fields
    if not isinstance(source, dict):
        return "the _source is not a JSON object"
    try:
        json.dumps(source, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return "not valid UTF-8: a lone surrogate escape"
    except (ValueError, RecursionError):
        return "the _source is nested too deep"
    return None


def _keys(index: pa.Array, ids: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(
        pc.fill_null(index, ""), pc.fill_null(ids, ""), "/", null_handling="replace"
    )


def _decode(raw: bytes, for_quarantine: bool = False) -> dict[str, Any]:
    """The standard library's decoder: unlike orjson it keeps integers past 64 bits exact (the
    normalizer quarantines them as such) and accepts lone surrogate escapes, which
    Elasticsearch stores and returns as the shipper sent them. Only pages Arrow refused come
    here, so its speed matters little. An answer it cannot decode (nesting past its depth,
    which only the shipper's document structure can produce, not a logged value) fails the
    read: its documents cannot be counted or kept."""
    try:
        if for_quarantine:  # invalid UTF-8 (Arrow's reader lets it through; the normalizer
            # quarantines the row) is shown replaced, as the NDJSON reader shows a bad line
            return json.loads(raw.decode("utf-8", "replace"))
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        reason = "nesting too deep" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise SourceError(
            f"a page of {len(raw):,} bytes from Elasticsearch could not be decoded ({reason})"
        ) from None


def _source_text(hit: Mapping[str, Any]) -> str:
    """The JSON text of a hit's ``_source`` (escaped to ASCII where it is not valid UTF-8)."""
    source = hit.get("_source")
    try:
        return orjson.dumps(source).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(source, ensure_ascii=True)


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) or value is None else str(value)


class RawJsonSerializer:
    """Leaves a JSON answer as bytes (parsed by :func:`parse_page`); an error answer
    (``{"error": ...}``) is decoded, so that errors read as with any client."""

    mimetype = "application/json"

    def loads(self, data: bytes) -> Any:
        if data[:16].lstrip().startswith(b'{"error"'):
            return _decode(data)
        return bytes(data)

    def dumps(self, data: Any) -> bytes:
        if isinstance(data, bytes | str):
            return data.encode() if isinstance(data, str) else data
        return orjson.dumps(data)


#: The serializers of a client whose JSON answers stay bytes (both media types Elasticsearch
#: answers with: plain, and the 8.x compatibility one).
RAW_JSON = {
    "application/json": RawJsonSerializer(),
    "application/vnd.elasticsearch+json": RawJsonSerializer(),
}
