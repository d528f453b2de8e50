"""What a person sees: progress bars on long work and a report at the end of every run."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console, Group
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from l7analytics.core.alerts import Alert, severity_band

#: Control characters a terminal would act on (ESC sequences recolour or rewrite the screen,
#: CR overwrites a line), shown instead as ``\x1b``; newlines and tabs are kept.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0)) if c not in (9, 10)}


class _PlainConsole(Console):
    """A console that never interprets what it prints: no markup (``/.git/[/]config`` is a
    rich markup error), no emoji codes (``:x:``), and control characters made visible, since
    what is printed comes from documents an attacker chose."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(highlight=False, markup=False, emoji=False, **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Any:
        return super().render_str(text.translate(_CONTROL), **kwargs)


#: Piped or logged output (CI, Airflow task logs) gets a wide page instead of 80 columns.
console = _PlainConsole(width=None if sys.stdout.isatty() else 160)
err_console = _PlainConsole(stderr=True)


@contextmanager
def progress_bar(description: str, total: float | None, unit: str = "") -> Iterator[Any]:
    """A progress bar on stderr; yields ``advance(n)``. Quiet when stderr is not a terminal."""
    columns = [
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn() if unit != "bytes" else TextColumn(""),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(
        *columns, console=err_console, transient=True, disable=not sys.stderr.isatty()
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def _fmt(n: float) -> str:
    return f"{n:,.0f}"


def extract_report(result: Any, lake: str, quarantine: str | None) -> Table:
    table = Table(title="extract", show_header=False, title_justify="left")
    rate = result.documents / result.seconds if result.seconds else 0
    rows = [
        ("documents read", _fmt(result.documents)),
        ("records written", _fmt(result.records)),
        ("requests (sum of count)", _fmt(result.requests)),
        (
            "unlogged requests",
            f"{_fmt(result.unlogged_requests)} ({result.unlogged_share:.2%} of traffic not logged)",
        ),
        (
            "quarantined",
            _fmt(result.quarantined)
            + (f"  -> {quarantine}" if result.quarantined and quarantine else ""),
        ),
        ("outside the window", _fmt(result.outside_window)),
        ("partitions replaced", _fmt(len(result.partitions))),
        ("lake", lake),
        ("time", f"{result.seconds:.1f} s ({rate:,.0f} documents/s)"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def score_report(result: Any, sinks: Sequence[str]) -> Table:
    table = Table(title=f"score {result.window}", title_justify="left")
    for col in ("detector", "status", "alerts", "model", "allowlisted rows", "note"):
        table.add_column(col)
    per_detector = Counter(a.origin for a in result.alerts)
    for detector, outcome in result.outcomes.items():
        table.add_row(
            detector,
            outcome.status,
            str(per_detector.get(detector, 0)),
            outcome.model_version or "-",
            _fmt(outcome.allowlisted_rows),
            outcome.message[:80],
        )
    rate = result.records / result.seconds if result.seconds else 0
    table.caption = (
        f"{_fmt(result.records)} records scored in {result.seconds:.1f} s "
        f"({rate:,.0f} records/s); {len(result.alerts)} alerts -> "
        + (", ".join(sinks) or "no sink")
    )
    # Hours never extracted (or lost) were not scored: say so, or the run reads as complete.
    missing = list(getattr(result, "missing_hours", []))
    if missing:
        shown = ", ".join(missing if len(missing) <= 6 else [*missing[:3], "...", missing[-1]])
        table.caption += (
            f"\nwarning: no partition for {len(missing)} hour(s) of the window, not scored "
            f"(not extracted?): {shown}"
        )
    shifts = list(getattr(result, "shifts", []))
    if shifts:
        shown = "; ".join(_shift_text(s) for s in shifts[:4]) + ("; ..." if len(shifts) > 4 else "")
        table.caption += (
            f"\n{len(shifts)} traffic shift(s), pairs that moved together and so raised no "
            f"per-pair alert: {shown}"
        )
    return table


def _shift_text(shift: dict) -> str:
    what = "cluster" if shift["scope"] == "cluster" else f"{shift['scope']} {shift['key']}"
    return (
        f"{what} at {shift['bucket']}: {shift['moved']} of {shift['members']} moved "
        f"({shift['typical_change']})"
    )


def _text(value: object) -> str:
    """A cell: missing values (None, NaN) are blank, anything else its plain text."""
    return "" if value is None or value != value else str(value)


def alerts_table(alerts: Sequence[Alert], limit: int = 30) -> Table:
    table = Table(title=f"alerts ({len(alerts)})", title_justify="left", show_lines=False)
    for col in ("time", "detector", "sev", "caller", "destination", "description"):
        table.add_column(col, overflow="fold")
    for alert in sorted(alerts, key=lambda a: (-a.severity, a.time))[:limit]:
        record = alert.record
        dest = record.get("dest") or (record.get("destinations") or [{}])[0].get("dest", "")
        table.add_row(
            alert.time,
            alert.origin.removeprefix("l7."),
            f"{alert.severity} {severity_band(alert.severity)}",
            _text(record.get("caller")),
            _text(dest),
            alert.description,
        )
    if len(alerts) > limit:
        table.caption = f"... {len(alerts) - limit} more in the alerts file"
    return table


def evaluation_table(report: dict[str, Any]) -> Table | Group:
    table = Table(title="detection against the labelled incidents", title_justify="left")
    for col in (
        "detector",
        "incidents",
        "found",
        "recall",
        "alerts",
        "true",
        "precision",
        "on benign events",
    ):
        table.add_column(col)
    for detector, m in report["detectors"].items():
        table.add_row(
            detector,
            str(m["incidents"]),
            str(m["found"]),
            f"{m['recall']:.2f}",
            str(m["alerts"]),
            str(m["true_alerts"]),
            f"{m['precision']:.2f}",
            str(m["benign_alerts"]),
        )
    if "by_kind" not in report:
        return table
    table.caption = (
        f"{report['alerts']} alerts for {report['incidents']} incidents "
        f"({report['alerts_per_incident']:.2f} per incident); an alert is one incident, "
        "it may hold several detectors' verdicts"
    )
    kinds = Table(title="by kind of incident", title_justify="left")
    for col in ("kind", "incidents", "found", "recall", "alerts per incident", "missed"):
        kinds.add_column(col)
    for kind, k in report["by_kind"].items():
        kinds.add_row(
            kind,
            str(k["incidents"]),
            str(k["found"]),
            f"{k['recall']:.2f}",
            f"{k['alerts_per_incident']:.2f}",
            ", ".join(k["missed"]),
        )
    return Group(table, kinds)
