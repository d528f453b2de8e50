"""The command line: help that explains, one-line errors with status 2, the demo."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from l7analytics.ui.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "l7analytics.ui.cli", *args],
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_help_explains_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("generate", "extract", "train", "score", "run", "demo", "evaluate"):
        assert command in out
    assert "ISO 8601" in out


@pytest.mark.parametrize(
    "command", ["generate", "extract", "train", "score", "run", "evaluate", "demo", "load-es"]
)
def test_help_of_each_command_explains_it_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    description = out.split("\n\n")[1]
    assert len(description.split()) >= 12, description  # sentences, not a title
    assert f"l7analytics {command} --" in out or f"l7analytics {command}\n" in out  # an example
    for line in out.splitlines():
        if line.lstrip().startswith("--") and "--help" not in line:
            assert len(line.split()) > 1, f"{command}: {line} has no help"


SCORE = ["score", "--lake", "x"]


@pytest.mark.parametrize("args, expected", [
    ([*SCORE, "--start", "2026-11-01", "--end", "2026-11-02"], "--alerts"),
    ([*SCORE, "--start", "yesterday", "--end", "2026-11-02", "--alerts", "a.ndjson"], "--start"),
    ([*SCORE, "--start", "2026-11-02", "--end", "2026-11-01", "--alerts", "a.ndjson"],
     "must be after"),
    ([*SCORE, "--start", "2026-11-01", "--end", "2026-11-02", "--alerts", "a.csv"],
     ".ndjson or .parquet"),
    (["extract", "--input", "/nonexistent.ndjson", "--lake", "x"], "/nonexistent.ndjson"),
    (["frobnicate"], "invalid choice"),
])  # fmt: skip
def test_bad_arguments_exit_2_with_one_line(args, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        code = main(args)
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert expected in err


def test_bad_configuration_exits_2_naming_key_and_file(tmp_path, capsys):
    config = tmp_path / "settings.yaml"
    config.write_text("detectors:\n  url_scan:\n    min_error_template_share: 2\n")
    code = main(
        [
            "score",
            "--lake",
            str(tmp_path),
            "--start",
            "2026-11-01",
            "--end",
            "2026-11-02",
            "--alerts",
            str(tmp_path / "a.ndjson"),
            "--config",
            str(config),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert str(config) in err and "min_error_template_share" in err


def test_demo_runs_end_to_end_and_summarizes(tmp_path):
    proc = run_cli("demo", "--out", str(tmp_path / "demo"), "--days", "3")
    assert proc.returncode == 0, proc.stderr
    assert "records scored" in proc.stdout
    assert "detection against the labelled incidents" in proc.stdout
    alerts = [json.loads(line) for line in (tmp_path / "demo/alerts.ndjson").open()]
    assert {a["origin"] for a in alerts} >= {"l7.restricted_url", "l7.url_scan"}
    assert all(a["type"] == "anomaly_detection_job" for a in alerts)
    plot = tmp_path / "demo/alerts_over_time.png"
    assert f"alerts over time by detector: {plot}" in proc.stdout
    assert plot.read_bytes().startswith(b"\x89PNG")
