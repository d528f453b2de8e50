"""Time windows, durations and the UTC timestamps every command takes.

Every task is a pure function of a half-open window ``[start, end)`` on ``end_time``, the
field Calico itself queries on. Windows are always timezone-aware UTC.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from l7analytics.core.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d{1,15})\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: Calico's times are Unix epoch seconds; a window outside these years is a typo, and keeping
#: a margin before datetime's limits lets history (``start - 14d``) and buckets be computed.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
#: Longer than any sane window, history or delay (and far from timedelta's limit).
_LONGEST = timedelta(days=100 * 366)


def duration_value(text: str | int | float | timedelta, *, positive: bool = False) -> timedelta:
    """The duration, or ``ValueError`` with a message that does not repeat the value (pydantic
    validators raise this, and the settings error then names the key path and the value)."""
    value = _seconds(text)
    if value < 0 or (positive and value == 0):
        raise ValueError("must be a positive duration" if positive else "must not be negative")
    if value > _LONGEST.total_seconds():
        raise ValueError(f"longer than {_LONGEST.days} days")
    if value != int(value):  # floor_time works in whole seconds: 0.5 s would floor to zero
        raise ValueError("must be a whole number of seconds")
    return timedelta(seconds=value)


def _seconds(text: str | int | float | timedelta) -> int | float:
    """Seconds of ``"90s"``, ``"5m"``, ``"1h"``, ``"14d"``, ``"2w"``, a number or a timedelta."""
    if isinstance(text, timedelta):
        return text.total_seconds()
    if isinstance(text, int | float) and not isinstance(text, bool):
        if isinstance(text, float) and not math.isfinite(text):
            raise ValueError("not a duration like 30s, 5m, 1h, 14d")
        return text  # an int stays exact: float(10**400) would overflow
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError("not a duration like 30s, 5m, 1h, 14d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_duration(
    text: str | int | float | timedelta, *, name: str = "duration", positive: bool = False
) -> timedelta:
    """Parse ``"90s"``, ``"5m"``, ``"1h"``, ``"14d"``, ``"2w"`` (or seconds as a number);
    ``positive`` refuses zero (a zero window would divide by zero far from the setting)."""
    try:
        return duration_value(text, positive=positive)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc} (got {shown(text)})") from None


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for one-line messages about user input
    (``repr`` of an int past 4300 digits raises, so such numbers are only described)."""
    try:
        text = repr(value)
    except ValueError:
        return "a number of more than 4300 digits"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_time(text: str | datetime, *, name: str = "time") -> datetime:
    """Parse ISO 8601 (``2026-11-20``, ``2026-11-20T05:00``, ``...Z``) as UTC."""
    if isinstance(text, datetime):
        value = text
    else:
        try:
            value = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"{name}: {shown(text)} is not an ISO 8601 time such as 2026-11-20T05:00:00Z"
            ) from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC time
        raise ConfigError(f"{name}: {shown(text)} is out of range") from None


def check_range(value: datetime, name: str) -> datetime:
    """``value`` if it lies in [1970, 9000): Calico's times are epoch seconds, and date
    arithmetic near datetime's limits would overflow far from the argument that caused it."""
    if not EARLIEST <= value < LATEST:
        raise ConfigError(
            f"{name}: {value.isoformat()} is outside {EARLIEST.year}-{LATEST.year - 1} "
            "(Calico's times are Unix epoch seconds)"
        )
    return value


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
        """A window from the user (CLI, DAG params): times outside 1970-9000 are refused."""
        return cls(
            check_range(parse_time(start, name="--start"), "--start"),
            check_range(parse_time(end, name="--end"), "--end"),
        )

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
