"""Smoke test of the real Elasticsearch servers and of the client calls the code relies on.

Runs once per server (``es8``: the newest 8.19, ``es7``: 7.17.29) with the 8.x Python client,
which talks to 7.17 as is (7.17 answers the ``compatible-with=8`` media type and sends the
``X-Elastic-Product`` header the client checks).
"""

from __future__ import annotations

import uuid
import warnings

import pytest

pytestmark = pytest.mark.es

MAPPING = {
    "properties": {
        "end_time": {"type": "date", "format": "epoch_second"},
        "url": {"type": "keyword"},
    }
}
T0 = 1_795_000_000  # 2026-11-18, epoch seconds
DOCS = [{"end_time": T0 + i, "url": f"svc:8080/path/{i}"} for i in range(3)]


@pytest.fixture
def es(es_server):
    client = es_server.client()
    yield client
    client.close()


@pytest.fixture
def index(es):
    """A fresh index with the three documents, refreshed; deleted afterwards."""
    from elasticsearch import helpers

    name = f"l7-smoke-{uuid.uuid4().hex[:8]}"
    es.indices.create(index=name, mappings=MAPPING)
    actions = ({"_index": name, "_id": str(i), **doc} for i, doc in enumerate(DOCS))
    ok, errors = helpers.bulk(es, actions)
    assert (ok, errors) == (3, [])
    es.indices.refresh(index=name)
    yield name
    es.options(ignore_status=404).indices.delete(index=name)


def test_server_answers(es_server, es):
    assert es_server.url.startswith("http://127.0.0.1:")
    assert es_server.major == {"es8": 8, "es7": 7}[es_server.id]
    health = es.cluster.health(wait_for_status="yellow", timeout="10s")
    assert health["status"] in ("green", "yellow")
    # The portable way to ask the version: GET / (info) is missing from the 8.x zip.
    nodes = es.nodes.info(node_id="_local", filter_path="nodes.*.version")["nodes"]
    assert next(iter(nodes.values()))["version"] == es_server.version


def test_info_and_ping(es_server, es):
    from elasticsearch import ApiError

    if es_server.major == 7:
        assert es.info()["version"]["number"] == es_server.version
        assert es.ping() is True
    else:  # the integ-test zip of 8.9+ lacks the rest-root module: GET / is 405
        try:
            assert es.info()["version"]["number"] == es_server.version
        except ApiError as err:
            assert err.meta.status == 405
            assert es.ping() is False  # ping() says False on a healthy 8.x zip server


def test_index_bulk_count(es, index):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation or security warning headers
        assert es.count(index=index)["count"] == 3
        in_range = {"range": {"end_time": {"gte": T0 + 1, "lt": T0 + 3, "format": "epoch_second"}}}
        assert es.count(index=index, query=in_range)["count"] == 2
    hit = es.search(index=index, size=1, sort=[{"end_time": "asc"}])["hits"]["hits"][0]
    assert hit["_source"] == DOCS[0]  # epoch seconds kept as sent
    assert hit["sort"] == [T0 * 1000]  # sort values of a date are epoch milliseconds


def test_point_in_time(es, index):
    pit = es.open_point_in_time(index=index, keep_alive="1m")["id"]
    try:
        seen = []
        search_after = None
        while True:
            page = es.search(
                pit={"id": pit, "keep_alive": "1m"},
                size=2,
                sort=[{"end_time": "asc"}, {"_shard_doc": "asc"}],
                search_after=search_after,
            )
            hits = page["hits"]["hits"]
            if not hits:
                break
            seen += [h["_source"]["url"] for h in hits]
            search_after = hits[-1]["sort"]
            pit = page.get("pit_id", pit)
        assert seen == [d["url"] for d in DOCS]
    finally:
        assert es.close_point_in_time(id=pit)["succeeded"]


def test_sliced_scroll(es, index):
    seen = []
    for slice_id in range(2):
        page = es.search(
            index=index, scroll="1m", slice={"id": slice_id, "max": 2}, size=2, sort=["_doc"]
        )
        scroll_id = page["_scroll_id"]
        try:
            while page["hits"]["hits"]:
                seen += [h["_source"]["url"] for h in page["hits"]["hits"]]
                page = es.scroll(scroll_id=scroll_id, scroll="1m")
                scroll_id = page["_scroll_id"]
        finally:
            es.clear_scroll(scroll_id=scroll_id)
    assert sorted(seen) == sorted(d["url"] for d in DOCS)
