"""Every bad argument or setting exits 2 with one line naming what and where, before any work.

The table runs each bad invocation through ``l7analytics.ui.cli.main`` in a copy of a small work
directory (logs, a lake, an alerts file, settings files) and checks: exit status 2, exactly one
line on stderr, no traceback, and not one file created, changed or removed anywhere in the
directory (so no lake was created and the alerts file is unchanged). The named tests after it
cover what is not a bad argument: duplicate inputs, empty inputs, and alerts files merged by id.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from l7analytics.adapters.files import NdjsonAlertSink, ParquetAlertSink, read_alerts
from l7analytics.core.alerts import Alert, alert_id, suppress
from l7analytics.core.errors import SinkError
from l7analytics.core.windows import iso
from l7analytics.ui.cli import main
from tests.conftest import T0, calico_doc

HOUR = 3600
WINDOW = ["--start", "2026-11-20T05:00:00Z", "--end", "2026-11-20T06:00:00Z"]
DAY = ["--start", "2026-11-20", "--end", "2026-11-21"]


def _can_create_files_in(directory: str) -> bool:
    try:
        handle, name = tempfile.mkstemp(dir=directory)
    except OSError:
        return False
    os.close(handle)
    os.unlink(name)
    return True


#: /sys is a real filesystem where nobody, root included, can create a file (chmod 0o555 does
#: not stop root, and the tests run as root).
READ_ONLY = pytest.mark.skipif(_can_create_files_in("/sys"), reason="/sys accepts new files here")


def _write_docs(path: Path, docs: list[dict]) -> None:
    path.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))


def _alert(entity: str, hour: int, severity: int = 60) -> Alert:
    """A restricted-URL alert of ``entity`` for the hour ``hour`` hours after T0."""
    start = datetime.fromtimestamp(T0 + hour * HOUR, UTC)
    end = start + timedelta(hours=1)
    return Alert(
        id=alert_id("l7.restricted_url", entity, start),
        time=iso(end),
        origin="l7.restricted_url",
        name="restricted URL",
        description=f"{entity} asked for /.git/config",
        severity=severity,
        record={
            "detector": "l7.restricted_url",
            "entity": entity,
            "caller": entity,
            "window_start": iso(start),
            "window_end": iso(end),
            "occurrences": 1,
            "occurrence_windows": [iso(start)],
        },
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """logs.ndjson, lake/ (extracted from it), alerts.ndjson, settings files, a plain file."""
    work = tmp_path_factory.mktemp("template")
    _write_docs(work / "logs.ndjson", [calico_doc(), calico_doc(url="productcatalog:8080/.git")])
    cwd = Path.cwd()
    os.chdir(work)
    try:
        assert main(["extract", "--input", "logs.ndjson", "--lake", "lake"]) == 0
    finally:
        os.chdir(cwd)
    NdjsonAlertSink(work / "alerts.ndjson").write([_alert("shop/frontend", 0)])
    (work / "notes.txt").write_text("not a directory\n")
    (work / "dir.ndjson").mkdir()
    (work / "labels.json").write_text('{"incidents": []}\n')
    settings = {
        "syntax.yaml": b"window: [1h\n",
        "python-tag.yaml": b"window: !!python/object/apply:os.system ['true']\n",
        "zero-window.yaml": b"window: 0s\n",
        "latin1.yaml": b"# r\xe9glages\nwindow: 1h\n",
        "negative-history.yaml": b"detectors:\n  unusual_pair:\n    history: -5\n",
        "keep-alive.yaml": b"elasticsearch:\n  source:\n    keep_alive: forever\n",
        "clusters.yaml": b"elasticsearch:\n  clusters: [{name: eu}, {name: us}]\n",
    }
    for name, text in settings.items():
        (work / name).write_bytes(text)
    return work


@pytest.fixture
def work(template, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the template as the current directory."""
    target = tmp_path / "work"
    shutil.copytree(template, target)
    monkeypatch.chdir(target)
    for name in ("L7_ES_HOSTS", "L7_ES_API_KEY", "L7_ES_USERNAME", "L7_ES_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return target


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a hash of its content (directories as ``dir``)."""
    found = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        found[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def invoke(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as exc:  # argparse's own errors
        return int(exc.code or 0)


BAD = [
    # extract --config was never read
    ("extract-config-syntax-error", ["extract", "--input", "logs.ndjson", "--lake", "new",
                                     "--config", "syntax.yaml"], "syntax.yaml line 2"),
    ("extract-config-python-tag", ["extract", "--input", "logs.ndjson", "--lake", "new",
                                   "--config", "python-tag.yaml"], "python-tag.yaml line 1"),
    ("extract-config-missing", ["extract", "--input", "logs.ndjson", "--lake", "new",
                                "--config", "missing.yaml"], "cannot read missing.yaml"),
    # durations
    ("window-zero", ["score", "--lake", "lake", *WINDOW, "--alerts", "alerts.ndjson",
                     "--config", "zero-window.yaml"], "zero-window.yaml: window: must be a posi"),
    ("history-negative", ["train", "--lake", "lake", *DAY, "--config", "negative-history.yaml"],
     "detectors.unusual_pair.history: must be a positive duration"),
    ("keep-alive-not-a-time", ["extract", "--es", "--lake", "new", *WINDOW,
                               "--config", "keep-alive.yaml"], "keep_alive"),
    ("config-not-utf8", ["score", "--lake", "lake", *WINDOW, "--alerts", "alerts.ndjson",
                         "--config", "latin1.yaml"], "latin1.yaml line 1: not UTF-8"),
    # windows
    ("extract-start-unaligned", ["extract", "--input", "logs.ndjson", "--lake", "new",
                                 "--start", "2026-11-20T05:30Z", "--end", "2026-11-20T07:00Z"],
     "multiples of 1h"),
    ("run-start-unaligned", ["run", "--input", "logs.ndjson", "--lake", "new", "--alerts",
                             "alerts.ndjson", "--start", "2026-11-20T05:30Z",
                             "--end", "2026-11-20T07:00Z"], "multiples of 1h"),
    ("start-before-1970", ["score", "--lake", "lake", "--start", "0001-01-01", "--end",
                           "2026-11-21", "--alerts", "alerts.ndjson"], "--start: 0001-01-01"),
    ("start-only", ["extract", "--input", "logs.ndjson", "--lake", "new", "--start",
                    "2026-11-20"], "--start and --end go together"),
    # alert sinks, checked before any work
    ("alerts-under-a-file", ["score", "--lake", "lake", *WINDOW,
                             "--alerts", "notes.txt/alerts.ndjson"], "notes.txt is not a dir"),
    pytest.param("alerts-on-read-only-fs", ["score", "--lake", "lake", *WINDOW,
                                            "--alerts", "/sys/l7-alerts.ndjson"],
                 "cannot write in /sys", marks=READ_ONLY, id="alerts-on-read-only-fs"),
    ("alerts-under-proc", ["score", "--lake", "lake", *WINDOW,
                           "--alerts", "/proc/l7-alerts.ndjson"], "cannot write in /proc"),
    ("alerts-is-a-directory", ["score", "--lake", "lake", *WINDOW, "--alerts", "dir.ndjson"],
     "--alerts dir.ndjson: exists and is not a regular file"),
    ("alerts-not-ndjson-or-parquet", ["score", "--lake", "lake", *WINDOW, "--alerts", "a.csv"],
     ".ndjson or .parquet"),
    ("alerts-is-the-logs", ["score", "--lake", "lake", *WINDOW, "--alerts", "logs.ndjson"],
     "not an alert (no id); refusing to replace it"),
    ("run-alerts-bad-name", ["run", "--input", "logs.ndjson", "--lake", "new", *WINDOW,
                             "--alerts", "a.txt"], ".ndjson or .parquet"),
    ("run-alerts-under-a-file", ["run", "--input", "logs.ndjson", "--lake", "new", *WINDOW,
                                 "--alerts", "notes.txt/a.ndjson"], "notes.txt is not a dir"),
    ("run-no-sink", ["run", "--input", "logs.ndjson", "--lake", "new", *WINDOW],
     "nowhere to write alerts"),
    # the lake
    ("lake-unknown-scheme", ["extract", "--input", "logs.ndjson", "--lake", "nope://x/y"],
     "--lake nope://x/y: not a URI"),
    ("score-lake-unknown-scheme", ["score", "--lake", "nope://x", *WINDOW, "--alerts",
                                   "alerts.ndjson"], "--lake nope://x"),
    ("lake-under-a-file", ["extract", "--input", "logs.ndjson", "--lake", "notes.txt/lake"],
     "notes.txt is not a directory"),
    pytest.param("lake-on-read-only-fs", ["extract", "--input", "logs.ndjson", "--lake",
                                          "/sys/l7-lake"], "--lake /sys/l7-lake: cannot write",
                 marks=READ_ONLY, id="lake-on-read-only-fs"),
    ("lake-empty-name", ["extract", "--input", "logs.ndjson", "--lake", ""], "--lake: give"),
    ("score-lake-missing", ["score", "--lake", "nowhere", *WINDOW, "--alerts", "alerts.ndjson"],
     "--lake nowhere: no lake there"),
    ("train-lake-missing", ["train", "--lake", "nowhere", *DAY], "--lake nowhere: no lake"),
    # inputs and the quarantine
    ("input-missing", ["extract", "--input", "missing.ndjson", "--lake", "new"],
     "--input missing.ndjson"),
    ("quarantine-is-the-input", ["extract", "--input", "logs.ndjson", "--lake", "new",
                                 "--quarantine", "logs.ndjson"], "not a quarantine file"),
    ("quarantine-under-a-file", ["extract", "--input", "logs.ndjson", "--lake", "new",
                                 "--quarantine", "notes.txt/q.ndjson"], "notes.txt is not a"),
    ("input-and-es", ["extract", "--input", "logs.ndjson", "--es", "--lake", "new", *WINDOW],
     "not both"),
    ("nothing-to-read", ["extract", "--lake", "new"], "nothing to read"),
    # generate, demo, evaluate, load-es
    ("generate-scale-negative", ["generate", "--out", "g.ndjson", "--start", "2026-11-01",
                                 "--scale", "-1"], "--scale must be from 0.001 to 1000"),
    ("generate-scale-nan", ["generate", "--out", "g.ndjson", "--start", "2026-11-01",
                            "--scale", "nan"], "--scale"),
    ("generate-seed-negative", ["generate", "--out", "g.ndjson", "--start", "2026-11-01",
                                "--seed", "-1"], "--seed must be from 0"),
    ("generate-seed-past-64-bits", ["generate", "--out", "g.ndjson", "--start", "2026-11-01",
                                    "--seed", str(2**64)], "--seed must be from 0 to 2**64-1"),
    ("generate-scale-huge", ["generate", "--out", "g.ndjson", "--start", "2026-11-01",
                             "--scale", "1e308"], "--scale"),
    ("generate-days-negative", ["generate", "--out", "g.ndjson", "--start", "2026-11-01",
                                "--days", "-3"], "--days must be at least 1"),
    ("generate-days-past-year-9000", ["generate", "--out", "g.ndjson", "--start", "8999-12-01",
                                      "--days", "100"], "--days 100"),
    ("generate-days-not-a-number", ["generate", "--out", "g.ndjson", "--start", "2026-11-01",
                                    "--days", "five"], "invalid int value"),
    ("generate-out-under-a-file", ["generate", "--out", "notes.txt/g.ndjson", "--start",
                                   "2026-11-01"], "notes.txt is not a directory"),
    ("demo-seed-negative", ["demo", "--out", "d", "--seed", "-7"], "--seed must be from 0"),
    ("demo-out-under-a-file", ["demo", "--out", "notes.txt/demo"], "notes.txt is not a dir"),
    ("evaluate-alerts-missing", ["evaluate", "--alerts", "missing.ndjson", "--labels",
                                 "labels.json"], "missing.ndjson: No such file"),
    ("evaluate-labels-missing", ["evaluate", "--alerts", "alerts.ndjson", "--labels",
                                 "missing.json"], "--labels missing.json"),
    ("evaluate-alerts-not-alerts", ["evaluate", "--alerts", "logs.ndjson", "--labels",
                                    "labels.json"], "logs.ndjson line 1: not an alert"),
    ("evaluate-labels-not-labels", ["evaluate", "--alerts", "alerts.ndjson", "--labels",
                                    "logs.ndjson"], "--labels logs.ndjson: not JSON"),
    ("load-es-bad-cluster", ["load-es", "--input", "logs.ndjson", "--cluster", "Prod EU"],
     "--cluster 'Prod EU'"),
    ("load-es-input-missing", ["load-es", "--input", "missing.ndjson"], "--input missing"),
    # several clusters in the settings: a run on a lake reads one, named
    ("clusters-unnamed", ["score", "--lake", "lake", "--config", "clusters.yaml", *WINDOW],
     "--cluster: the settings list clusters (eu, us)"),
    ("clusters-not-listed", ["score", "--lake", "s3://b/l", "--config", "clusters.yaml",
                             "--cluster", "ap", *WINDOW], "--cluster ap: not one of the clusters"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [case if hasattr(case, "values") else pytest.param(*case, id=case[0]) for case in BAD],
)
def test_bad_invocations_exit_2_with_one_line_and_write_nothing(name, args, expected, work, capsys):
    before = snapshot(work)
    code = invoke(args)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert expected in lines[0]
    assert snapshot(work) == before  # no lake created, alerts file unchanged, nothing left


# -- duplicate and empty inputs --------------------------------------------------------------
def test_the_same_input_twice_is_read_once_with_a_warning(work, capsys):
    os.symlink("logs.ndjson", "again.ndjson")
    args = ["extract", "--input", "logs.ndjson", "--input", "./logs.ndjson",
            "--input", "again.ndjson", "--lake", "fresh"]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "warning" in err[0] and "read once" in err[0]
    assert "./logs.ndjson (same file as logs.ndjson)" in err[0]
    assert "again.ndjson (same file as logs.ndjson)" in err[0]
    from l7analytics.adapters.lake import ParquetLake
    from l7analytics.core.windows import Window

    assert ParquetLake("fresh").count_rows(Window.parse(*WINDOW[1::2])) == 2  # not 4 or 6


@pytest.mark.parametrize("content", [b"", b"\n\n   \n\r\n"], ids=["empty", "blank-lines"])
def test_an_empty_input_extracts_nothing_and_succeeds(work, capsys, content):
    Path("empty.ndjson").write_bytes(content)
    assert main(["extract", "--input", "empty.ndjson", "--lake", "fresh"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "the input held no documents" in captured.out


def test_an_input_of_only_rejected_documents_quarantines_them_and_succeeds(work, capsys):
    Path("junk.ndjson").write_bytes(b"not json\n[1, 2]\n")
    assert main(["extract", "--input", "junk.ndjson", "--lake", "fresh"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert len(Path("fresh/quarantine/all.ndjson").read_text().splitlines()) == 2


def test_an_empty_input_for_a_window_replaces_it_with_nothing(work, capsys):
    Path("empty.ndjson").write_bytes(b"")
    assert main(["extract", "--input", "empty.ndjson", "--lake", "lake", *WINDOW]) == 0
    assert "the input held no documents" in capsys.readouterr().out


# -- alerts files: merged by id, atomically ------------------------------------------------
@pytest.fixture(params=["ndjson", "parquet"])
def sink(request, tmp_path):
    kind = NdjsonAlertSink if request.param == "ndjson" else ParquetAlertSink
    return kind(tmp_path / f"alerts.{request.param}")


def ids(path: Path) -> list[str]:
    return sorted(a["id"] for a in read_alerts(path))


def test_a_later_window_adds_its_alerts_and_keeps_the_earlier_ones(sink):
    first, second = _alert("shop/scanner", 10), _alert("shop/other", 11)
    assert sink.write([first]) == 1
    assert sink.write([second]) == 1  # hour 11 scored: hour 10's alert stays
    assert ids(sink.path) == sorted([first.id, second.id])


def test_rerunning_a_window_changes_nothing(sink):
    alerts = [_alert("shop/scanner", 10), _alert("shop/other", 10, 80)]
    sink.write(alerts)
    content, stamp = sink.path.read_bytes(), sink.path.stat().st_mtime_ns
    assert sink.write(alerts) == 0
    assert sink.path.read_bytes() == content
    assert sink.path.stat().st_mtime_ns == stamp  # not even rewritten


def test_the_same_id_again_replaces_that_alert(sink):
    sink.write([_alert("shop/scanner", 10, 40), _alert("shop/other", 10)])
    again = _alert("shop/scanner", 10, 90)
    again.description = "rescored with new rules"
    assert sink.write([again]) == 1
    stored = {a["id"]: a for a in read_alerts(sink.path)}
    assert len(stored) == 2
    assert stored[again.id]["description"] == "rescored with new rules"
    assert stored[again.id]["severity"] == 90


def test_one_suppression_period_scored_hour_by_hour_counts_every_hour(sink):
    period = timedelta(hours=6)
    (ten,) = suppress([_alert("shop/scanner", 10)], period)
    (eleven,) = suppress([_alert("shop/scanner", 11)], period)
    assert ten.id == eleven.id
    sink.write([ten])
    sink.write([eleven])
    (stored,) = read_alerts(sink.path)
    assert stored["record"]["occurrences"] == 2
    assert len(stored["record"]["occurrence_windows"]) == 2
    assert sink.write([eleven]) == 0  # the same hour again: nothing new


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(sink, monkeypatch):
    sink.write([_alert("shop/scanner", 10)])
    before = sink.path.read_bytes()

    def broken(documents, out):
        out.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sink, "_dump", broken)
    with pytest.raises(SinkError, match="No space left on device"):
        sink.write([_alert("shop/other", 11)])
    assert sink.path.read_bytes() == before
    assert sorted(p.name for p in sink.path.parent.iterdir()) == [sink.path.name]


def test_scoring_hour_11_keeps_hour_10s_alert_from_the_cli(work, capsys):
    hour10 = calico_doc(end_time=T0 + 5 * HOUR + 300, url="productcatalog:8080/.git/config")
    hour11 = calico_doc(end_time=T0 + 6 * HOUR + 300, url="productcatalog:8080/.env",
                        src_name_aggr="checkout-5d8f7c9b4-*")  # fmt: skip
    _write_docs(Path("two-hours.ndjson"), [hour10, hour11])
    assert main(["extract", "--input", "two-hours.ndjson", "--lake", "two"]) == 0
    score = ["score", "--lake", "two", "--alerts", "out.ndjson", "--config", "none.yaml"]
    Path("none.yaml").write_text("suppression: none\n")
    hours = [["--start", f"2026-11-20T{h}:00:00Z", "--end", f"2026-11-20T{h + 1}:00:00Z"]
             for h in (10, 11)]  # fmt: skip
    assert main([*score, *hours[0]]) == 0
    first = read_alerts("out.ndjson")
    assert main([*score, *hours[1]]) == 0
    both = read_alerts("out.ndjson")
    assert len(first) == 1 and len(both) == 2
    assert first[0] in both
    content = Path("out.ndjson").read_bytes()
    assert main([*score, *hours[1]]) == 0  # the same window again
    assert Path("out.ndjson").read_bytes() == content
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o555 (/sys is tested)")
def test_alerts_in_a_read_only_directory_exit_2(work, capsys):
    Path("read-only").mkdir()
    os.chmod("read-only", 0o555)
    before = snapshot(work)
    code = main(["score", "--lake", "lake", *WINDOW, "--alerts", "read-only/a.ndjson"])
    assert code == 2
    assert "cannot write in read-only" in capsys.readouterr().err
    assert snapshot(work) == before


def test_an_existing_quarantine_file_may_be_replaced(work):
    record = {"origin": "old.ndjson:1", "reason": "malformed JSON", "raw": "x"}
    Path("q.ndjson").write_bytes(orjson.dumps(record) + b"\n")
    args = ["extract", "--input", "logs.ndjson", "--lake", "fresh", "--quarantine", "q.ndjson"]
    assert main(args) == 0
