"""The alerts-over-time plot the demo writes and the notebooks reuse."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from l7analytics.core.windows import Window
from l7analytics.ui.cli import _alerts_plot
from l7analytics.ui.plots import alerts_per_hour, save_alerts_over_time

DAY = Window.parse("2026-11-04T00:00:00Z", "2026-11-05T00:00:00Z")


def alert(origin: str, window_start: str) -> dict:
    return {
        "id": f"{origin}-{window_start}",
        "time": window_start,  # not used: alerts are placed in their detection window
        "origin": origin,
        "severity": 50,
        "record": {"window_start": window_start, "window_end": window_start},
    }


ALERTS = [
    alert("l7.url_scan", "2026-11-04T05:00:00Z"),
    alert("l7.restricted_url", "2026-11-04T05:00:00Z"),
    alert("l7.restricted_url", "2026-11-04T05:00:00Z"),
    alert("l7.unusual_pair", "2026-11-04T23:00:00Z"),
    alert("l7.unusual_pair", "2026-11-05T02:00:00Z"),  # outside the day
]


def test_alerts_per_hour_counts_every_hour_of_the_window():
    counts = alerts_per_hour(ALERTS, DAY)
    assert list(counts) == ["l7.restricted_url", "l7.url_scan", "l7.unusual_pair"]
    assert all(len(per_hour) == 24 for per_hour in counts.values())
    five = datetime(2026, 11, 4, 5, tzinfo=UTC)
    assert counts["l7.restricted_url"][five] == 2
    assert counts["l7.url_scan"][five] == 1
    assert sum(counts["l7.unusual_pair"].values()) == 1
    assert alerts_per_hour([], DAY) == {}


def test_writes_a_png(tmp_path):
    import matplotlib  # noqa: F401 - a dev dependency: never skipped

    path = save_alerts_over_time(ALERTS, tmp_path / "plots" / "alerts.png", DAY)
    assert path == tmp_path / "plots" / "alerts.png"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5_000
    empty = save_alerts_over_time([], tmp_path / "empty.png", DAY)
    assert empty.stat().st_size > 0


def test_demo_plot_is_skipped_with_a_hint_without_matplotlib(tmp_path, monkeypatch):
    for module in ("matplotlib", "matplotlib.dates", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, module, None)
    line = _alerts_plot(ALERTS, tmp_path / "alerts.png", DAY)
    assert "skipped" in line and "matplotlib is not installed" in line
    assert "pip install 'l7analytics[notebooks]'" in line
    assert len(line.splitlines()) == 1
    assert not (tmp_path / "alerts.png").exists()
