"""Plots for the demo and the notebooks (matplotlib, an optional dependency).

matplotlib is imported inside the functions, so the package works without it; a caller that
wants to degrade gracefully catches ``ModuleNotFoundError``. Figures are built without pyplot
(rendered by the Agg canvas when saved), so plotting never changes a notebook's backend.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from l7analytics.core.windows import Window, floor_time, parse_time
from l7analytics.evaluation.metrics import DETECTORS

HOUR = timedelta(hours=1)
#: One color per detector, the same in every plot (in registry order).
PALETTE = ("#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b")
COLORS = dict(zip(DETECTORS, PALETTE, strict=False))


def alerts_per_hour(
    alerts: Iterable[Mapping[str, Any] | Any], window: Window | None = None
) -> dict[str, dict[datetime, int]]:
    """Detector -> hour -> alerts detected in that hour's window (``record.window_start``; every
    hour of ``window`` present, zero when quiet). Takes alert documents (``read_alerts``) or
    ``Alert`` objects."""
    docs = [a.to_event() if hasattr(a, "to_event") else a for a in alerts]
    times = [floor_time(parse_time(_window_start(d)), HOUR) for d in docs]
    if window is not None:
        start, end = floor_time(window.start, HOUR), window.end
    elif times:
        start, end = min(times), max(times) + HOUR
    else:
        return {}
    hours = [hour.start for hour in Window(start, end).split(HOUR)]
    detectors = [d for d in DETECTORS if any(doc["origin"] == d for doc in docs)]
    detectors += sorted({doc["origin"] for doc in docs} - set(detectors))
    counts = {d: dict.fromkeys(hours, 0) for d in detectors}
    for doc, hour in zip(docs, times, strict=True):
        if hour in counts[doc["origin"]]:
            counts[doc["origin"]][hour] += 1
    return counts


def _window_start(doc: Mapping[str, Any]) -> str:
    record = doc.get("record") or {}
    return record.get("window_start") or doc["time"]


def plot_alerts_over_time(
    alerts: Iterable[Mapping[str, Any] | Any],
    ax: Any = None,
    window: Window | None = None,
    title: str = "Alerts per hour by detector",
) -> Any:
    """Stacked bars of alerts per hour by detector on ``ax`` (a new figure when ``None``)."""
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    if ax is None:
        ax = Figure(figsize=(10, 4), layout="constrained").add_subplot()
    counts = alerts_per_hour(alerts, window)
    bottom: dict[datetime, int] = {}
    for detector, per_hour in counts.items():
        # Only non-empty bars: an empty one at the top of a stack would pin the y limit.
        hours = [h for h, v in per_hour.items() if v]
        values = [per_hour[h] for h in hours]
        ax.bar(
            [h + HOUR / 2 for h in hours],
            values,
            width=HOUR * 0.9,
            bottom=[bottom.get(h, 0) for h in hours],
            color=COLORS.get(detector),
            label=f"{detector} ({sum(values)})",
        )
        for h, v in zip(hours, values, strict=True):
            bottom[h] = bottom.get(h, 0) + v
    if counts:
        ax.legend(loc="upper left", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no alerts", ha="center", va="center", transform=ax.transAxes)
    if window is not None:
        ax.set_xlim(window.start, window.end)
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("detection window (UTC, hourly)")
    ax.set_ylabel("alerts")
    ax.set_title(title if window is None else f"{title}, {window}")
    return ax


def save_alerts_over_time(
    alerts: Iterable[Mapping[str, Any] | Any],
    path: str | os.PathLike[str],
    window: Window | None = None,
) -> Path:
    """Write the alerts-per-hour plot as a PNG at ``path`` and return the path."""
    ax = plot_alerts_over_time(alerts, window=window)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ax.figure.savefig(path, dpi=100)
    return path
