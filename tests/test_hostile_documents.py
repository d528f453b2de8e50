"""Hostile documents never crash a run, never poison the lake, and every line is accounted for.

Anyone who can send one HTTP request to a service in the mesh chooses the URL (and with header
logging the user agent) that Calico logs; whoever can write the input files chooses everything.
Hypothesis generates Calico documents from the schema with hostile values: invalid UTF-8,
rich markup, control characters, lone surrogate escapes, integers past int64 and past 2**53,
floats, deep nesting, wrong JSON types, missing fields, and lines that are not JSON at all.

Invariants checked after every generated input (``extract`` over the whole file):

- no exception, and the CLI never prints a traceback;
- lake rows + unlogged rows + quarantined = non-blank input lines;
- every stored integer equals the document's integer exactly (rows are matched back to their
  line through ``host``, which the test sets);
- every Parquet file passes ``Table.validate(full=True)`` and DuckDB reads every partition;
- the quarantine is valid UTF-8 JSON lines, each with an origin and a reason.

Named regressions for the cases the issue lists are at the end of the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from duckdb_process import DuckDBProcess
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l7analytics.adapters.files import NdjsonQuarantine
from l7analytics.adapters.lake import ParquetLake
from l7analytics.adapters.ndjson_source import NdjsonSource
from l7analytics.jobs.pipeline import extract
from l7analytics.ui.cli import main

T0 = 1_793_527_500  # 2026-11-01T11:25Z: a valid end_time
INVALID_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"a\x80b"]
MARKUP = ["[/]", "[bold]x[/bold]", "[link=file:///etc/passwd]x[/link]", ":x:", "%s%n{0}", "$(id)"]
BAD_BYTES = "@@BAD{}@@"  # replaced by raw invalid UTF-8 after JSON encoding
DEEP = "@@DEEP@@"  # replaced by deeply nested JSON after encoding
DEPTHS = st.sampled_from([5, 200, 2000, 100_000])


def hostile_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=40),
        st.sampled_from(MARKUP),
        st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=8),  # control characters
        st.sampled_from(["-", "", "web/.git/[/]config", "a/\u202e/evil", "\ufeff"]),
        st.integers(0, len(INVALID_UTF8) - 1).map(BAD_BYTES.format),
    )


def hostile_int() -> st.SearchStrategy[object]:
    return st.one_of(
        st.integers(0, 10_000),
        st.integers(-(2**70), 2**70),
        st.sampled_from([2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63), 2**32, 2**32 + 1]),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(["7", " 8 ", "9.0", "-", "abc", "1e3", "+5", True, None]),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )


def nested(depth: int) -> bytes:
    """JSON nested ``depth`` levels deep, written by hand (encoders stop far earlier)."""
    return b'{"a":[' * depth + b"1" + b"]}" * depth


@st.composite
def documents(draw, index: int) -> bytes:
    """One input line: mostly a Calico document with hostile values, sometimes not JSON."""
    kind = draw(st.sampled_from(["doc"] * 8 + ["garbage", "deep", "hit"]))
    if kind == "garbage":
        return draw(st.sampled_from([b"x", b"{", b"[1,2]", b'"s"', b"null", b'{"a":\xff}']))
    doc: dict[str, object] = {
        "end_time": draw(st.one_of(st.just(T0), st.just(T0 + 3600), hostile_int())),
        "count": draw(st.one_of(st.integers(0, 1000), hostile_int())),
        "url": draw(hostile_text()),
        "host": f"h{index}",  # the test's key from a lake row back to its line
    }
    for name in ("bytes_in", "bytes_out", "duration_mean", "dest_port_num"):
        if draw(st.booleans()):
            doc[name] = draw(st.one_of(st.integers(0, 10**6), hostile_int()))
    for name in ("method", "user_agent", "src_name_aggr", "dest_service_name", "response_code"):
        if draw(st.booleans()):
            doc[name] = draw(hostile_text())
    if draw(st.integers(0, 9)) == 0:
        doc["type"] = "unlogged"
    if kind == "deep":
        doc["extra"] = DEEP
    if kind == "hit":
        doc = {"_index": "tigera_secure_ee_l7.cluster.x", "_source": doc}
    try:  # raw UTF-8 where orjson can; the stdlib for ints past 64 bits and lone surrogates
        line = orjson.dumps(doc)
    except (orjson.JSONEncodeError, TypeError):
        line = json.dumps(doc).encode()
    line = line.replace(b'"%s"' % DEEP.encode(), nested(draw(DEPTHS)))
    for i, bad in enumerate(INVALID_UTF8):
        line = line.replace(BAD_BYTES.format(i).encode(), bad)
    return line


@st.composite
def input_files(draw) -> list[bytes]:
    n = draw(st.integers(1, 25))
    lines = [draw(documents(i)) for i in range(n)]
    blank = draw(st.sampled_from([b"\n", b"\n\n", b"\r\n"]))
    return [line + blank for line in lines]


def source_ints(line: bytes) -> dict[str, int]:
    """The integer fields of a line as Python ints (exact), for lines that parse."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return {}
    if isinstance(doc, dict) and isinstance(doc.get("_source"), dict):
        doc = doc["_source"]
    if not isinstance(doc, dict):
        return {}
    return {k: v for k, v in doc.items() if isinstance(v, int) and not isinstance(v, bool)}


@pytest.fixture(scope="module")
def duckdb():
    with DuckDBProcess() as process:  # never loaded in this process: see duckdb_process
        yield process


def check_invariants(
    lines: list[bytes], lake: Path, quarantine: Path, result, duckdb: DuckDBProcess
) -> None:
    expected = sum(1 for line in lines if line.strip())
    records = unlogged = 0
    by_host = {f"h{i}": source_ints(line) for i, line in enumerate(lines)}
    for dataset in ("l7", "unlogged"):
        for file in sorted((lake / dataset).glob("date=*/hour=*/*.parquet")):
            table = pq.read_table(file)
            table.validate(full=True)
            duckdb.sql(f"select count(*) from read_parquet('{file}')")
            if dataset == "unlogged":
                unlogged += table.num_rows
                continue
            records += table.num_rows
            for row in table.select(["host", "count", "bytes_in", "dest_port_num"]).to_pylist():
                source = by_host[row["host"]]
                for name in ("count", "bytes_in", "dest_port_num"):
                    if row[name] is not None and name in source:
                        assert row[name] == source[name], (name, row, source)
    rejected = 0
    if quarantine.exists():
        # split on \n only: str.splitlines() also breaks at U+0085 and U+2028 inside values
        for text in quarantine.read_bytes().decode("utf-8").split("\n")[:-1]:
            entry = json.loads(text)
            assert entry["origin"] and entry["reason"], entry
            rejected += 1
    assert rejected == result.quarantined
    assert records + unlogged + rejected == expected, (records, unlogged, rejected, expected)
    assert result.requests >= 0


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=input_files())
def test_generated_hostile_documents_keep_the_invariants(lines, tmp_path_factory, duckdb):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "input.ndjson"
    path.write_bytes(b"".join(lines))
    lake, quarantine = folder / "lake", folder / "quarantine.ndjson"
    result = extract(NdjsonSource([path]), ParquetLake(lake), None, NdjsonQuarantine(quarantine))
    check_invariants(lines, lake, quarantine, result, duckdb)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(url=hostile_text(), caller=hostile_text(), agent=hostile_text())
def test_hostile_values_never_crash_extract_or_score_from_the_cli(
    url, caller, agent, tmp_path_factory, capsys
):
    folder = tmp_path_factory.mktemp("cli")
    docs = [
        {"end_time": T0, "count": 3, "url": f"web/.git/{url}", "src_name_aggr": caller,
         "user_agent": agent, "response_code": "200", "host": "h0"},
        {"end_time": T0, "count": 1, "url": "web/ok", "host": "h1"},
    ]  # fmt: skip
    data = b"".join(orjson.dumps(d) + b"\n" for d in docs)
    for i, bad in enumerate(INVALID_UTF8):
        data = data.replace(BAD_BYTES.format(i).encode(), bad)
    (folder / "in.ndjson").write_bytes(data)
    lake = str(folder / "lake[/]x")  # a path with markup in it, too
    assert main(["extract", "--input", str(folder / "in.ndjson"), "--lake", lake]) == 0
    window = ["--start", "2026-11-01T00:00:00Z", "--end", "2026-11-02T00:00:00Z"]
    code = main(["score", "--lake", lake, *window, "--alerts", str(folder / "alerts.ndjson")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.out + captured.err
    for line in (folder / "alerts.ndjson").read_text("utf-8").split("\n")[:-1]:
        json.loads(line)


# ---------------------------------------------------------------- the cases, by name


def run_extract(tmp_path: Path, data: bytes) -> tuple[Path, object, Path]:
    path = tmp_path / "input.ndjson"
    path.write_bytes(data)
    lake, quarantine = tmp_path / "lake", tmp_path / "quarantine.ndjson"
    result = extract(NdjsonSource([path]), ParquetLake(lake), None, NdjsonQuarantine(quarantine))
    return lake, result, quarantine


def stored(lake: Path, column: str) -> list:
    return (
        ds.dataset(lake / "l7", format="parquet", partitioning="hive")
        .to_table()
        .column(column)
        .to_pylist()
    )


def reasons(quarantine: Path) -> list[str]:
    return [json.loads(t)["reason"] for t in quarantine.read_text("utf-8").split("\n")[:-1]]


def test_markup_in_a_url_path_does_not_crash_score(tmp_path, capsys):
    data = b'{"end_time":%d,"count":1,"url":"web/.git/[/]config","response_code":"200"}\n' % T0
    (tmp_path / "in.ndjson").write_bytes(data)
    lake = str(tmp_path / "x[/]y")
    assert main(["extract", "--input", str(tmp_path / "in.ndjson"), "--lake", lake]) == 0
    args = ["score", "--lake", lake, "--start", "2026-11-01", "--end", "2026-11-02",
            "--alerts", str(tmp_path / "a.ndjson")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "[/]config" in out and "x[/]y" in out  # printed as written, not interpreted


@pytest.mark.parametrize("field", ["url", "user_agent", "host", "src_name_aggr"])
def test_invalid_utf8_quarantines_that_document_only(tmp_path, field):
    value = b"web/a\xff" if field != "host" else b"node\xff"
    url = b"" if field == "url" else b'"url":"web/ok",'
    bad = b'{"end_time":%d,"count":1,%s"%s":"%s"}\n' % (T0, url, field.encode(), value)
    good = b'{"end_time":%d,"count":2,"url":"web/fine"}\n' % T0
    lake, _, quarantine = run_extract(tmp_path, bad + good)
    assert stored(lake, "count") == [2]
    assert reasons(quarantine) == [f"{field} is not valid UTF-8"]
    assert "\ufffd" in json.loads(quarantine.read_text("utf-8"))["raw"]  # kept, replaced


def test_count_past_int64_is_quarantined_not_the_whole_extract(tmp_path):
    data = (b'{"end_time":%d,"count":9223372036854775808,"url":"a/b"}\n'
            b'{"end_time":%d,"count":1,"url":"a/c"}\n') % (T0, T0)  # fmt: skip
    lake, _, quarantine = run_extract(tmp_path, data)
    assert stored(lake, "count") == [1]
    assert reasons(quarantine) == ["count is not an integer"]


def test_large_integers_are_never_rounded(tmp_path):
    # A malformed line sends the block to the line-by-line parser, which used floats.
    data = (b'{"end_time":%d,"count":1,"bytes_in":9007199254740993,"url":"a/b"}\n'
            b'{"end_time":%d,"count":1,"bytes_in":9007199254740992,"url":"a/c"}\n'
            b'{"end_time":%d,"count":1,"bytes_out":"4503599627370497","url":"a/d"}\n'
            b"x\n") % (T0, T0, T0)  # fmt: skip
    lake, _, quarantine = run_extract(tmp_path, data)
    assert sorted(v for v in stored(lake, "bytes_in") if v) == [9007199254740992]
    assert 4503599627370497 in stored(lake, "bytes_out")
    assert "bytes_in is negative or above 2**53 (9007199254740992)" in reasons(quarantine)


def test_request_sums_never_wrap(tmp_path):
    data = b"".join(
        b'{"end_time":%d,"count":%d,"url":"a/b"}\n' % (T0, c) for c in (2**63 - 1, 2**32, 5)
    )
    lake, result, quarantine = run_extract(tmp_path, data)
    assert result.requests == 2**32 + 5 and result.requests > 0
    manifest = json.loads(next((lake / "l7").glob("*/*/_manifest.json")).read_text())
    assert manifest["requests"] == 2**32 + 5
    assert reasons(quarantine) == ["count is negative or above 2**32 (4294967296)"]
    assert pa.array(stored(lake, "count")).to_pylist() == [2**32, 5]


def run_child(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    code = "import sys; from l7analytics.ui.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, timeout=120)


@pytest.mark.parametrize("first", [b"null", b"  null", b"1", b"[]"])
def test_a_block_starting_with_a_line_that_is_no_object_cannot_crash_the_process(tmp_path, first):
    """pyarrow's JSON reader crashed the process (SIGSEGV) on a file starting with ``null``."""
    good = b'{"end_time":%d,"count":2,"url":"a/c"}\n' % T0
    (tmp_path / "in.ndjson").write_bytes(first + b"\n" + good)
    lake = tmp_path / "lake"
    for _ in range(3):  # the crash did not come on every parse
        proc = run_child(["extract", "--input", str(tmp_path / "in.ndjson"), "--lake", str(lake)])
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    assert stored(lake, "count") == [2]
    assert len(reasons(lake / "quarantine" / "all.ndjson")) == 1


def test_deeply_nested_json_cannot_crash_the_process(tmp_path):
    """A field nested a hundred thousand levels deep is never a crash (run in a child process,
    so a crash would fail this test, not the whole suite); the job does not read that field."""
    deep = b'{"end_time":%d,"count":1,"url":"a/b","x":' % T0 + b"[" * 100_000 + b"]" * 100_000
    data = deep + b"}\n" + b'{"end_time":%d,"count":2,"url":"a/c"}\n' % T0
    (tmp_path / "in.ndjson").write_bytes(data)
    args = ["extract", "--input", str(tmp_path / "in.ndjson"), "--lake", str(tmp_path / "lake")]
    proc = run_child(args)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    assert sorted(stored(tmp_path / "lake", "count")) == [1, 2]


def test_terminal_escapes_in_a_url_are_shown_not_sent_to_the_terminal(tmp_path, capsys):
    doc = {"end_time": T0, "count": 1, "url": "web/.git/config\x1b[2J\x1b[31m\rfake", "host": "h"}
    (tmp_path / "in.ndjson").write_bytes(orjson.dumps(doc) + b"\n")
    lake = str(tmp_path / "lake")
    assert main(["extract", "--input", str(tmp_path / "in.ndjson"), "--lake", lake]) == 0
    args = ["score", "--lake", lake, "--start", "2026-11-01", "--end", "2026-11-02",
            "--alerts", str(tmp_path / "a.ndjson")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out
    assert "\\x1b[31m\\x0dfake" in out.replace("\n", "").replace("│", "").replace(" ", "")
