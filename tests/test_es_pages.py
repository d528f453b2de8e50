"""A page of hits parsed from the answer's bytes (Arrow) equals the same page decoded first.

The extract reads Elasticsearch pages with a client that leaves answers as bytes; Arrow's
reader parses them, and a page it refuses goes the decoded way. Hypothesis builds answers
whose sources hold the hostile values of ``test_hostile_documents`` (wrong types, integers
past 64 bits, lone surrogate escapes, markup, control characters) and checks that both ways
give the same table, keys, sort values and quarantine text.
"""

from __future__ import annotations

import json

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hostile_documents import DEEP, documents, nested

from l7analytics.adapters.elasticsearch.pages import RAW_JSON, RawJsonSerializer, parse_page
from l7analytics.core.errors import SourceError


def answer(sources: list[bytes], **top: object) -> bytes:
    """A search answer as Elasticsearch writes it, around ``sources`` as stored."""
    head = b"".join(b'"%s":%s,' % (k.encode(), orjson.dumps(v)) for k, v in top.items())
    hits = b",".join(
        b'{"_index":"tigera_secure_ee_l7.c.x","_id":"id%d","_score":null,"_source":%s,'
        b'"sort":[%d]}' % (i, s, 1000 + i)
        for i, s in enumerate(sources)
    )
    return b'{%s"took":3,"hits":{"total":{"value":%d},"hits":[%s]}}' % (head, len(sources), hits)


def valid_json_object(line: bytes) -> bool:
    """What Elasticsearch would store as a ``_source``: a JSON object in valid UTF-8."""
    try:
        return isinstance(json.loads(line.decode("utf-8")), dict)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False


@st.composite
def stored_sources(draw) -> list[bytes]:
    n = draw(st.integers(0, 12))
    lines = [draw(documents(i)) for i in range(n)]
    lines = [line.replace(DEEP.encode(), b"1") for line in lines]
    return [line for line in lines if valid_json_object(line)]


def as_text(table: pa.Table) -> pa.Table:
    return table.cast(pa.schema([pa.field(f.name, pa.string()) for f in table.schema]))


def assert_same(raw: bytes) -> None:
    fast, slow = parse_page(raw), parse_page(json.loads(raw))
    # A page may come typed one way and as text the other (an integer past 64 bits in a field
    # the job ignores makes the decoded way fall back to text); the normalizer types both
    # alike, so the values are compared as text.
    assert as_text(fast.sources).equals(as_text(slow.sources))
    assert fast.keys.equals(slow.keys)
    assert (fast.last_sort, fast.pit_id, fast.scroll_id) == (
        slow.last_sort,
        slow.pit_id,
        slow.scroll_id,
    )
    for i in range(fast.sources.num_rows):
        assert json.loads(fast.source_text(i)) == json.loads(slow.source_text(i))
    assert fast.unparsable == slow.unparsable


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stored_sources(), st.sampled_from([{}, {"pit_id": "p=="}, {"_scroll_id": "s=="}]))
def test_a_page_parsed_from_bytes_equals_the_page_decoded_first(sources, top):
    assert_same(answer(sources, **top))


def test_well_typed_pages_take_the_arrow_way_and_odd_ones_the_decoded_way(monkeypatch):
    from l7analytics.adapters.elasticsearch import pages

    decoded = []
    real = pages._decoded_page
    monkeypatch.setattr(pages, "_decoded_page", lambda body: decoded.append(1) or real(body))
    good = orjson.dumps({"end_time": 1_793_527_500, "count": 2, "url": "/a\u202e"})
    parse_page(answer([good] * 3, pit_id="p"))
    assert decoded == []
    for odd in (b'{"count":"-"}', b'{"count":1.5}', b'{"url":{"a":1}}', b'{\n"url":"x"}',
                b'{"count":%d}' % 2**64, b'{"url":"\\ud800"}'):  # fmt: skip
        assert_same(answer([good, odd]))
    assert len(decoded) >= 5  # the lone surrogate alone is text Arrow accepts


def test_hit_order_keys_and_sort_values_are_kept():
    page = parse_page(answer([b'{"url":"a"}', b'{"url":"b"}'], pit_id="next"))
    assert page.sources.column("url").to_pylist() == ["a", "b"]
    assert page.keys.to_pylist() == ["tigera_secure_ee_l7.c.x/id0", "tigera_secure_ee_l7.c.x/id1"]
    assert page.last_sort == [1001] and page.pit_id == "next" and page.scroll_id is None
    assert parse_page(answer([])).size == 0


def test_a_source_with_a_lone_surrogate_is_left_out_for_the_quarantine_with_its_reason():
    good = b'{"url":"/ok","count":"-"}'
    page = parse_page(answer([good, b'{"url":"/a\\ud800b"}', good]))
    assert (
        page.size == 3 and page.sources.num_rows == 2 and page.keys.to_pylist()[1].endswith("/id2")
    )
    ((key, reason, text),) = page.unparsable
    assert key.endswith("/id1") and "surrogate" in reason
    assert json.loads(text) == {"url": "/a\ud800b"} and text.isascii()


def test_an_answer_nobody_can_decode_fails_in_one_line():
    with pytest.raises(SourceError, match="could not be decoded") as info:
        parse_page(answer([b'{"count":"-","extra":%s}' % nested(100_000)]))
    assert "\n" not in str(info.value)


def test_the_raw_serializer_keeps_answers_and_decodes_errors():
    serializer = RawJsonSerializer()
    assert serializer.loads(b'{"hits":{}}') == b'{"hits":{}}'
    error = serializer.loads(b'{"error":{"type":"search_context_missing_exception"},"status":404}')
    assert error["error"]["type"] == "search_context_missing_exception"
    assert orjson.loads(serializer.dumps({"a": 1})) == {"a": 1}
    assert set(RAW_JSON) == {"application/json", "application/vnd.elasticsearch+json"}
    assert pa.types.is_int64(
        parse_page(answer([b'{"count":3}'])).sources.schema.field("count").type
    )


def test_invalid_utf8_from_a_server_reaches_the_quarantine_text_replaced():
    """Elasticsearch refuses invalid UTF-8 when indexing, but a proxy or another server may
    send it: Arrow lets it through (the normalizer quarantines the row), and the text kept
    for the quarantine shows it replaced instead of failing the read."""
    page = parse_page(answer([b'{"url":"a\xff\xfeb"}']))
    assert page.size == 1
    assert json.loads(page.source_text(0)) == {"url": "a\ufffd\ufffdb"}
