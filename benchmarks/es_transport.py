"""The transport table of ``bench_es.py --transport``: ways to fetch and parse pages of hits.

Each way reads the whole window into Arrow tables (what the extract then normalizes), with no
lake, so that only fetching and parsing differ. One option changes at a time from the job's
defaults (first row); every way's page is parsed by
:func:`l7analytics.adapters.elasticsearch.pages.parse_page`, which takes raw bytes (Arrow's
reader) or an answer the client decoded (orjson or the standard library, then
:func:`~l7analytics.core.rawjson.documents_table`, the extract's way before raw pages).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import orjson
from elasticsearch import Elasticsearch
from elasticsearch.serializer import JsonSerializer, OrjsonSerializer

from l7analytics.adapters.elasticsearch.pages import RAW_JSON, parse_page
from l7analytics.core.windows import Window


@dataclass(frozen=True)
class Transport:
    name: str
    parser: str = "arrow"  # arrow (raw bytes), orjson or json (decoded by the client)
    compress: bool = False  # gzip answers (http_compress)
    page_size: int = 5000
    slices: int = 4  # time slices read in parallel
    es_slices: int = 0  # Elasticsearch's own `slice` on the point in time, instead of time
    order: str = "pit"  # pit: search_after on _shard_doc; scroll: _doc order


DEFAULT = Transport("defaults: arrow, pit, 5000, 4 time slices")
TRANSPORTS = (
    DEFAULT,
    replace(DEFAULT, name="parser: orjson + documents_table", parser="orjson"),
    replace(DEFAULT, name="parser: json (stdlib) + documents_table", parser="json"),
    replace(DEFAULT, name="gzip compression", compress=True),
    replace(DEFAULT, name="page size 1000", page_size=1000),
    replace(DEFAULT, name="page size 10000", page_size=10000),
    replace(DEFAULT, name="1 time slice", slices=1),
    replace(DEFAULT, name="2 time slices", slices=2),
    replace(DEFAULT, name="4 slices (Elasticsearch slice)", slices=1, es_slices=4),
    replace(DEFAULT, name="scroll, _doc order, 1 slice", order="scroll", slices=1),
    replace(DEFAULT, name="scroll, _doc order, 4 time slices", order="scroll"),
)


def client_for(url: str, transport: Transport) -> Elasticsearch:
    serializers: dict[str, Any] = {
        "arrow": RAW_JSON,
        "orjson": {"application/json": OrjsonSerializer()},
        "json": {"application/json": JsonSerializer()},
    }[transport.parser]
    return Elasticsearch(url, request_timeout=300, http_compress=transport.compress,
                         serializers=serializers)  # fmt: skip


def read_window(url: str, index: str, window: Window, transport: Transport) -> int:
    """Documents read by ``transport`` (its slices in threads); every page parsed to Arrow."""
    client = client_for(url, transport)
    if transport.es_slices:
        parts = [(window, i) for i in range(transport.es_slices)]
    else:
        step = -(-int(window.duration.total_seconds()) // transport.slices)
        parts = [(w, None) for w in window.split(timedelta(seconds=step))]
    counts = [0] * len(parts)

    def run(k: int, part: Window, es_slice: int | None) -> None:
        read = _read_scroll if transport.order == "scroll" else _read_pit
        counts[k] = read(client, index, part, transport, es_slice)

    threads = [threading.Thread(target=run, args=(k, *p)) for k, p in enumerate(parts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)


def _query(window: Window) -> dict[str, Any]:
    return {"range": {"end_time": {"gte": int(window.start.timestamp()),
                                   "lt": int(window.end.timestamp()),
                                   "format": "epoch_second"}}}  # fmt: skip


def _read_pit(client, index, window, transport, es_slice) -> int:
    pit = _json(client.open_point_in_time(index=index, keep_alive="5m").body)["id"]
    after, n = None, 0
    while True:
        body: dict[str, Any] = {
            "pit": {"id": pit, "keep_alive": "5m"}, "query": _query(window),
            "sort": [{"_shard_doc": "asc"}], "size": transport.page_size,
            "track_total_hits": False,
        }  # fmt: skip
        if es_slice is not None:
            body["slice"] = {"id": es_slice, "max": transport.es_slices}
        if after is not None:
            body["search_after"] = after
        page = parse_page(client.search(body=body).body)
        pit, n = page.pit_id or pit, n + page.size
        if page.size < transport.page_size:
            break
        after = page.last_sort
    client.close_point_in_time(id=pit)
    return n


def _json(body: Any) -> dict[str, Any]:
    return orjson.loads(body) if isinstance(body, bytes) else body


def _read_scroll(client, index, window, transport, es_slice) -> int:
    body = {"query": _query(window), "sort": ["_doc"], "size": transport.page_size}
    page = parse_page(client.search(index=index, body=body, scroll="5m").body)
    n = 0
    while page.size:
        n += page.size
        page = parse_page(client.scroll(scroll_id=page.scroll_id, scroll="5m").body)
    client.clear_scroll(scroll_id=page.scroll_id)
    return n
