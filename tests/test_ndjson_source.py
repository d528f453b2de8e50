"""NdjsonSource: plain and gzip NDJSON, Elasticsearch hits, malformed lines quarantined."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pytest
from conftest import calico_doc

from l7analytics.adapters.ndjson_source import NdjsonSource
from l7analytics.core.errors import InputError
from l7analytics.core.normalize import normalize_table
from l7analytics.jobs.ports import LogSource


def write_lines(path, lines, compress=False):
    text = "".join(line + "\n" for line in lines)
    if compress:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def read_all(source):
    """(counts of valid records, unparsable entries, origins of rows) over every batch."""
    counts, unparsable, origins = [], [], []
    for batch in source.batches(None):
        normalized = normalize_table(batch.table)
        assert normalized.rejected_rows == []
        counts += normalized.records.column("count").to_pylist()
        unparsable += list(batch.unparsable)
        origins += [batch.origin(i) for i in range(batch.table.num_rows)]
    return counts, unparsable, origins


def docs(*counts):
    return [json.dumps(calico_doc(count=c)) for c in counts]


def test_is_a_log_source(tmp_path):
    source = NdjsonSource([write_lines(tmp_path / "a.ndjson", docs(1))])
    assert isinstance(source, LogSource)
    assert source.description == "file:a.ndjson"


def test_plain_file(tmp_path):
    path = write_lines(tmp_path / "l7.ndjson", docs(1, 2, 3))
    counts, unparsable, origins = read_all(NdjsonSource([path]))
    assert counts == [1, 2, 3]
    assert unparsable == []
    assert origins == ["l7.ndjson:1", "l7.ndjson:2", "l7.ndjson:3"]


def test_gzip_file(tmp_path):
    path = write_lines(tmp_path / "l7.ndjson.gz", docs(4, 5), compress=True)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    counts, unparsable, _ = read_all(NdjsonSource([path]))
    assert counts == [4, 5]
    assert unparsable == []


def test_elasticsearch_hits(tmp_path):
    hits = [
        json.dumps({"_index": "tigera_secure_ee_l7.cluster.x", "_id": str(c), "_source": doc})
        for c, doc in ((7, calico_doc(count=7)), (8, calico_doc(count=8)))
    ]
    path = write_lines(tmp_path / "hits.ndjson", hits)
    counts, unparsable, _ = read_all(NdjsonSource([path]))
    assert counts == [7, 8]
    assert unparsable == []


def test_elasticsearch_hits_next_to_a_malformed_line(tmp_path):
    # The malformed line sends the block down the line-by-line path, which unwraps hits too.
    hits = [json.dumps({"_id": str(c), "_source": calico_doc(count=c)}) for c in (3, 4)]
    path = write_lines(tmp_path / "hits.ndjson", [hits[0], "{oops", hits[1]])
    counts, unparsable, origins = read_all(NdjsonSource([path]))
    assert counts == [3, 4]
    assert [where for where, _, _ in unparsable] == ["hits.ndjson:2"]
    assert origins == ["hits.ndjson:1", "hits.ndjson:3"]


def test_hits_and_plain_documents_mixed(tmp_path):
    lines = [docs(1)[0], json.dumps({"_source": calico_doc(count=2)}), docs(3)[0]]
    counts, _, _ = read_all(NdjsonSource([write_lines(tmp_path / "m.ndjson", lines)]))
    assert counts == [1, 2, 3]


def test_several_files_in_order(tmp_path):
    first = write_lines(tmp_path / "a.ndjson", docs(1, 2))
    second = write_lines(tmp_path / "b.ndjson.gz", docs(3), compress=True)
    source = NdjsonSource([first, second])
    assert source.description == "file:a.ndjson,b.ndjson.gz"
    counts, _, origins = read_all(source)
    assert counts == [1, 2, 3]
    assert origins == ["a.ndjson:1", "a.ndjson:2", "b.ndjson.gz:1"]


def test_malformed_lines_become_unparsable(tmp_path):
    good = docs(1, 2, 3)
    lines = [good[0], '{"count": 1, "url": ', good[1], "[1, 2, 3]", "not json", good[2]]
    path = write_lines(tmp_path / "bad.ndjson", lines)
    counts, unparsable, origins = read_all(NdjsonSource([path]))
    assert counts == [1, 2, 3]
    assert [(where, reason.split(":")[0]) for where, reason, _ in unparsable] == [
        ("bad.ndjson:2", "malformed JSON"),
        ("bad.ndjson:4", "not a JSON object"),
        ("bad.ndjson:5", "malformed JSON"),
    ]
    assert [raw for _, _, raw in unparsable] == ['{"count": 1, "url": ', "[1, 2, 3]", "not json"]
    assert origins == ["bad.ndjson:1", "bad.ndjson:3", "bad.ndjson:6"]


def test_malformed_line_after_blank_line_keeps_its_line_number(tmp_path):
    good = docs(1, 2)
    path = tmp_path / "blank.ndjson"
    path.write_text(good[0] + "\n\n{oops\n" + good[1] + "\n")
    counts, unparsable, origins = read_all(NdjsonSource([path]))
    assert counts == [1, 2]
    assert [where for where, _, _ in unparsable] == ["blank.ndjson:3"]
    assert origins == ["blank.ndjson:1", "blank.ndjson:4"]


def test_raw_record_returns_the_original_line(tmp_path):
    lines = docs(1, 2)
    source = NdjsonSource([write_lines(tmp_path / "a.ndjson", lines)])
    (batch,) = list(source.batches(None))
    assert batch.raw_record(1) == lines[1]


def test_field_type_changing_between_lines_loses_nothing(tmp_path):
    # count as a number, then as a string: Arrow's reader rejects the block, orjson reads it.
    lines = [json.dumps(calico_doc(count=5)), json.dumps(calico_doc(count="6"))]
    counts, unparsable, _ = read_all(NdjsonSource([write_lines(tmp_path / "t.ndjson", lines)]))
    assert counts == [5, 6]
    assert unparsable == []


def test_crlf_and_missing_final_newline(tmp_path):
    good = docs(1, 2, 3)
    path = tmp_path / "crlf.ndjson"
    path.write_bytes((good[0] + "\r\n" + good[1] + "\r\n" + good[2]).encode())
    counts, unparsable, _ = read_all(NdjsonSource([path]))
    assert counts == [1, 2, 3]
    assert unparsable == []


@pytest.mark.parametrize("compress", [False, True])
def test_small_blocks_split_on_line_boundaries(tmp_path, compress):
    lines = docs(*range(1, 21))
    path = write_lines(tmp_path / ("s.ndjson.gz" if compress else "s.ndjson"), lines, compress)
    source = NdjsonSource([path], block_bytes=1500)
    batches = list(source.batches(None))
    assert len(batches) > 1
    counts, unparsable, origins = read_all(source)
    assert counts == list(range(1, 21))
    assert unparsable == []
    assert origins == [f"{path.name}:{i}" for i in range(1, 21)]


def test_unknown_fields_dropped_by_the_reader(tmp_path):
    line = json.dumps({**calico_doc(count=1), "tenant": "acme", "labels": {"a": 1}})
    (batch,) = list(NdjsonSource([write_lines(tmp_path / "u.ndjson", [line])]).batches(None))
    assert "tenant" not in batch.table.column_names
    assert "labels" not in batch.table.column_names
    assert batch.table.num_rows == 1


def test_progress_reports_bytes(tmp_path):
    path = write_lines(tmp_path / "p.ndjson", docs(1, 2, 3))
    seen = []
    source = NdjsonSource([path], progress=seen.append)
    assert source.total_bytes == path.stat().st_size
    list(source.batches(None))
    assert sum(seen) == path.stat().st_size


def test_empty_file_yields_nothing(tmp_path):
    path = tmp_path / "empty.ndjson"
    path.write_text("")
    assert list(NdjsonSource([path]).batches(None)) == []


def test_only_malformed_lines(tmp_path):
    path = write_lines(tmp_path / "junk.ndjson", ["{", "nope"])
    (batch,) = list(NdjsonSource([path]).batches(None))
    assert batch.table.num_rows == 0
    assert [where for where, _, _ in batch.unparsable] == ["junk.ndjson:1", "junk.ndjson:2"]
    assert isinstance(batch.table, pa.Table)


def test_missing_file_raises_input_error(tmp_path):
    with pytest.raises(InputError, match=r"missing\.ndjson"):
        NdjsonSource([tmp_path / "missing.ndjson"])


def test_corrupt_gzip_raises_input_error(tmp_path):
    path = tmp_path / "broken.ndjson.gz"
    path.write_bytes(b"this is not gzip data\n")
    with pytest.raises(InputError, match=r"broken\.ndjson\.gz"):
        list(NdjsonSource([path]).batches(None))
