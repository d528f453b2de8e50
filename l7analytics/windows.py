"""Time windows, durations and the UTC timestamps every command takes.

Every task is a pure function of a half-open window ``[start, end)`` on ``end_time``, the
field Calico itself queries on. Windows are always timezone-aware UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from l7analytics.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int | float | timedelta, *, name: str = "duration") -> timedelta:
    """Parse ``"90s"``, ``"5m"``, ``"1h"``, ``"14d"``, ``"2w"`` (or seconds as a number)."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, int | float) and not isinstance(text, bool):
        return timedelta(seconds=float(text))
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigError(f"{name}: {text!r} is not a duration like 30s, 5m, 1h, 14d")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def parse_time(text: str | datetime, *, name: str = "time") -> datetime:
    """Parse ISO 8601 (``2026-11-20``, ``2026-11-20T05:00``, ``...Z``) as UTC."""
    if isinstance(text, datetime):
        value = text
    else:
        try:
            value = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"{name}: {text!r} is not an ISO 8601 time such as 2026-11-20T05:00:00Z"
            ) from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def floor_time(value: datetime, step: timedelta) -> datetime:
    """Round down to a multiple of ``step`` since the epoch (so buckets align everywhere)."""
    seconds = int(step.total_seconds())
    epoch = int(value.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def iso(value: datetime) -> str:
    """Format a UTC time as ``2026-11-20T05:00:00Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open UTC time window ``[start, end)``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ConfigError("window: start and end must be timezone-aware (UTC)")
        if self.end <= self.start:
            raise ConfigError(f"window: end {iso(self.end)} must be after start {iso(self.start)}")

    @classmethod
    def parse(cls, start: str | datetime, end: str | datetime) -> Window:
        return cls(parse_time(start, name="--start"), parse_time(end, name="--end"))

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def is_aligned(self, step: timedelta) -> bool:
        return floor_time(self.start, step) == self.start and floor_time(self.end, step) == self.end

    def split(self, step: timedelta) -> Iterator[Window]:
        """Consecutive sub-windows of ``step`` (the last one may be shorter)."""
        cursor = self.start
        while cursor < self.end:
            nxt = min(cursor + step, self.end)
            yield Window(cursor, nxt)
            cursor = nxt

    def __str__(self) -> str:
        return f"[{iso(self.start)}, {iso(self.end)})"
