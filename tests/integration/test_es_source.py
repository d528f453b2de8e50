"""Reading Calico L7 logs from a real Elasticsearch (8.x and 7.17): same lake as the files,
expired contexts resumed, overload retried, counts verified, missing indices reported."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pyarrow as pa
import pytest
from calico_index import delete_indices, generated_docs, index_docs

from l7analytics.adapters.elasticsearch.pages import RAW_JSON
from l7analytics.adapters.elasticsearch.source import EsL7Source, EsReadOptions
from l7analytics.adapters.files import NdjsonQuarantine
from l7analytics.adapters.lake import ParquetLake
from l7analytics.adapters.ndjson_source import NdjsonSource
from l7analytics.core.errors import SourceError
from l7analytics.core.windows import Window
from l7analytics.jobs.pipeline import extract

pytestmark = pytest.mark.es

DAY = datetime(2026, 11, 1, tzinfo=UTC)
#: Three hours are indexed; the window reads the middle one.
WINDOW = Window(DAY + timedelta(hours=1), DAY + timedelta(hours=2))


@pytest.fixture(scope="module")
def indexed(es_server, tmp_path_factory):
    """Three generated hours indexed into two rollover indices, and the same docs as NDJSON."""
    client = es_server.client()
    delete_indices(client, "tigera_secure_ee_l7.*")
    docs = generated_docs(DAY, hours=3)
    index_docs(client, docs)
    path = tmp_path_factory.mktemp("es") / "docs.ndjson"
    path.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    in_window = sum(
        WINDOW.start.timestamp() <= d["end_time"] < WINDOW.end.timestamp() for d in docs
    )
    return {"client": client, "docs": docs, "path": path, "in_window": in_window,
            "server": es_server, "raw": es_server.client(serializers=RAW_JSON)}  # fmt: skip


def source(client, host="test", pages=None, **options) -> EsL7Source:
    """A source reading pages with ``pages`` (a client whose answers stay bytes, as the job
    wires it) or, without it, with ``client`` (answers decoded)."""
    options.setdefault("read_delay", timedelta(0))
    return EsL7Source(client, EsReadOptions(**options), host, pages=pages)


def pages_client(indexed, pages: str):
    return indexed["raw"] if pages == "raw" else None


def lake_table(lake: ParquetLake) -> pa.Table:
    table = lake.read_table(WINDOW)
    keys = [(c, "ascending") for c in table.column_names]
    return table.sort_by(keys)


@pytest.mark.parametrize("pages", ["raw", "decoded"])
@pytest.mark.parametrize("method", ["auto", "scroll"])
def test_lake_from_elasticsearch_equals_lake_from_the_same_documents_as_files(
    indexed, method, pages, tmp_path
):
    es_lake, file_lake = ParquetLake(tmp_path / "es"), ParquetLake(tmp_path / "file")
    es_source = source(indexed["client"], method=method, pages=pages_client(indexed, pages))
    result = extract(es_source, es_lake, WINDOW, NdjsonQuarantine(tmp_path / "q1"))
    extract(NdjsonSource([indexed["path"]]), file_lake, WINDOW, NdjsonQuarantine(tmp_path / "q2"))
    assert result.documents == indexed["in_window"] > 1000
    assert lake_table(es_lake).equals(lake_table(file_lake))
    manifest = es_lake.manifests(WINDOW)[0]
    assert manifest["source_count"] == indexed["in_window"]
    # Both test distributions have the point-in-time API, so auto picks it.
    assert manifest["read_method"] == ("pit" if method == "auto" else "scroll")


@pytest.mark.parametrize("method", ["pit", "scroll"])
@pytest.mark.parametrize("slices", [1, 3])
def test_every_document_once_whatever_the_slicing_and_paging(indexed, slices, method):
    src = source(indexed["client"], slices=slices, page_size=700, method=method,
                 pages=indexed["raw"])  # fmt: skip
    rows = sum(b.table.num_rows for b in src.batches(WINDOW))
    assert rows == indexed["in_window"]


class ExpiringClient:
    """The real client, but the server-side context is closed after the second page: the
    server then answers 404 search_context_missing, exactly as when keep_alive runs out."""

    def __init__(self, client) -> None:
        self.client = client
        self.pages = 0
        self.expired = 0

    def __getattr__(self, name):
        return getattr(self.client, name)

    def search(self, **kwargs):
        return self.count_page(kwargs, self.client.search(**kwargs))

    def scroll(self, **kwargs):
        return self.count_page(kwargs, self.client.scroll(**kwargs))

    def count_page(self, kwargs, response):
        self.pages += 1
        if self.pages == 2:
            self.expire(kwargs, response)
        return response

    def expire(self, kwargs, response) -> None:
        body = kwargs.get("body") or {}
        answer = response.body
        if isinstance(answer, bytes):  # a client whose answers stay bytes
            answer = orjson.loads(answer)
        if "pit" in body:
            self.client.close_point_in_time(id=answer.get("pit_id", body["pit"]["id"]))
        else:
            self.client.clear_scroll(scroll_id=answer["_scroll_id"])
        self.expired += 1


@pytest.mark.parametrize("pages", ["raw", "decoded"])
@pytest.mark.parametrize("method", ["pit", "scroll"])
def test_expired_point_in_time_or_scroll_is_reopened_without_loss_or_duplicates(
    indexed, method, pages
):
    client = ExpiringClient(indexed["raw"] if pages == "raw" else indexed["client"])
    src = EsL7Source(
        indexed["client"],
        EsReadOptions(slices=1, page_size=500, method=method, read_delay=timedelta(0)),
        "test",
        pages=client,
    )
    keys = []
    for batch in src.batches(WINDOW):
        keys += [batch.origin(i) for i in range(batch.table.num_rows)]
    assert client.expired == 1
    assert len(keys) == len(set(keys)) == indexed["in_window"]


class NoPointInTime:
    """Answers the point-in-time API like a server without it (7.17 without x-pack)."""

    def __init__(self, client) -> None:
        self.client = client

    def __getattr__(self, name):
        return getattr(self.client, name)

    def open_point_in_time(self, **kwargs):
        raise api_error(400, "no handler found for uri [/_pit] and method [POST]")


def api_error(status: int, error_type: str):
    from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
    from elasticsearch import ApiError

    meta = ApiResponseMeta(
        status=status,
        http_version="1.1",
        headers=HttpHeaders(),
        duration=0.0,
        node=NodeConfig("http", "127.0.0.1", 9200),
    )
    return ApiError(error_type, meta, {"error": {"type": error_type, "reason": error_type}})


def test_without_point_in_time_sliced_scroll_is_chosen(indexed):
    src = source(NoPointInTime(indexed["client"]))
    rows = sum(b.table.num_rows for b in src.batches(WINDOW))
    assert src.method_used == "scroll" and rows == indexed["in_window"]


class OverloadedOnce:
    """Injects one 429 (a real server cannot be made to answer 429 on demand)."""

    def __init__(self, client) -> None:
        self.client = client
        self.failed = False

    def __getattr__(self, name):
        return getattr(self.client, name)

    def search(self, **kwargs):
        if not self.failed:
            from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
            from elasticsearch import ApiError

            self.failed = True
            meta = ApiResponseMeta(
                status=429,
                http_version="1.1",
                headers=HttpHeaders(),
                duration=0.0,
                node=NodeConfig("http", "127.0.0.1", 9200),
            )
            raise ApiError(
                "es_rejected_execution_exception",
                meta,
                {"error": {"type": "es_rejected_execution_exception"}},
            )
        return self.client.search(**kwargs)


def test_429_is_retried_with_backoff(indexed):
    sleeps: list[float] = []
    client = OverloadedOnce(indexed["client"])
    src = EsL7Source(
        client, EsReadOptions(slices=1, read_delay=timedelta(0)), "test", sleep=sleeps.append
    )
    rows = sum(b.table.num_rows for b in src.batches(WINDOW))
    assert client.failed and rows == indexed["in_window"]
    assert sleeps and sleeps[0] == 0.5


def test_documents_arriving_during_the_read_fail_the_count_check(indexed, tmp_path):
    client = indexed["client"]
    late = dict(indexed["docs"][0], end_time=int(WINDOW.start.timestamp()) + 5,
                url="frontend/late-arrival")  # fmt: skip
    lake = ParquetLake(tmp_path / "lake")

    class LateData(EsL7Source):
        def count(self, window):
            client.index(
                index="tigera_secure_ee_l7.cluster.fluentd-20261101-000009",
                document=late,
                refresh=True,
            )
            return super().count(window)

    src = LateData(client, EsReadOptions(read_delay=timedelta(0)), "test")
    try:
        with pytest.raises(SourceError, match="_count says"):
            extract(src, lake, WINDOW, NdjsonQuarantine(tmp_path / "q"))
        assert lake.partitions(WINDOW) == []  # nothing half-written
    finally:
        delete_indices(client, "tigera_secure_ee_l7.cluster.fluentd-20261101-000009")


def test_missing_index_is_reported_in_one_line(indexed):
    src = source(indexed["client"], index="tigera_secure_ee_l7.nosuchcluster.*", host="es-test")
    with pytest.raises(SourceError) as info:
        list(src.batches(WINDOW))
    message = str(info.value)
    assert "es-test" in message and "index missing" in message and "\n" not in message


def test_a_window_still_receiving_data_is_read_after_the_delay(indexed):
    now = WINDOW.end + timedelta(minutes=3)
    slept: list[float] = []
    src = EsL7Source(
        indexed["client"],
        EsReadOptions(read_delay=timedelta(minutes=10)),
        "test",
        clock=lambda: now,
        sleep=slept.append,
    )
    rows = sum(b.table.num_rows for b in src.batches(WINDOW))
    assert slept == [420.0] and rows == indexed["in_window"]


#: Stored sources as a shipper may send them, within WINDOW: odd types the template coerces,
#: a lone surrogate escape, markup, controls, a pretty-printed source (raw newlines).
HOSTILE_SOURCES = [
    b'{"count":1.5,"url":"a/b"}',
    b'{"count":"7","url":"a/c"}',
    b'{"url":"a/\\ud800x"}',
    b'{"url":"[bold]x[/bold] %s%n {0} $(id)","method":"GET\\u0000\\n"}',
    b'{\n  "url": "a/pretty",\n  "count": 2\n}',
    b'{"url":"a/\\u202e/evil","user_agent":"\\ufeff"}',
    b'{"bytes_in":9223372036854775808,"url":"a/big"}',
]


@pytest.mark.parametrize("page_size", [5000, 1])
def test_hostile_sources_from_elasticsearch_reach_lake_and_quarantine_like_files(
    indexed, page_size, tmp_path
):
    """Each source is indexed as raw bytes (those the template refuses are left out); the
    extract reads them with the job's page client, and the result equals the same documents
    read from NDJSON: the same lake rows and the same number quarantined, no crash. With one
    hit a page, a page may hold nothing but a hit left out for the quarantine: the read goes
    on past it."""
    client = indexed["client"]
    index = "tigera_secure_ee_l7.hostile.fluentd-20261101-000001"
    base = dict(indexed["docs"][0], end_time=int(WINDOW.start.timestamp()) + 60)
    delete_indices(client, "tigera_secure_ee_l7.hostile.*")
    stored = []
    try:
        for i, raw in enumerate(HOSTILE_SOURCES):
            own = {*json.loads(raw), "host"}
            fields = orjson.dumps({k: v for k, v in base.items() if k not in own})
            body = raw[:-1].rstrip() + b"," + fields[1:-1] + b',"host":"h%d"}' % i
            try:
                client.perform_request(
                    "PUT", f"/{index}/_doc/{i}", body=body,
                    headers={"content-type": "application/json", "accept": "application/json"},
                )  # fmt: skip
            except Exception:  # refused by the mapping (a long past 64 bits): never stored
                continue
            stored.append(body)
        client.indices.refresh(index=index)
        assert len(stored) >= 6
        ndjson = tmp_path / "hostile.ndjson"
        ndjson.write_bytes(b"".join(b" ".join(b.split(b"\n")) + b"\n" for b in stored))
        es_lake, file_lake = ParquetLake(tmp_path / "es"), ParquetLake(tmp_path / "file")
        es_source = source(client, index="tigera_secure_ee_l7.hostile.*", pages=indexed["raw"],
                           page_size=page_size)  # fmt: skip
        from_es = extract(es_source, es_lake, WINDOW, NdjsonQuarantine(tmp_path / "q1"))
        from_file = extract(NdjsonSource([ndjson]), file_lake, WINDOW,
                            NdjsonQuarantine(tmp_path / "q2"))  # fmt: skip
        assert from_es.documents == from_file.documents == len(stored)
        assert from_es.quarantined == from_file.quarantined >= 1
        assert lake_table(es_lake).equals(lake_table(file_lake))
    finally:
        delete_indices(client, "tigera_secure_ee_l7.hostile.*")
