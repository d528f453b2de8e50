"""The one contract every detector follows.

A detector is built from its configuration object and is a pure function of a window of
records (plus, for learning detectors, history and a fitted model). Work is split in two so
that any window size runs in bounded memory and the map step can run anywhere (a process, an
Airflow mapped task):

``summarize(batch, bucket)``
    map: one Arrow batch of lake records -> a small partial aggregate keyed by ``keys``;
``combine(partials)``
    reduce: partial aggregates -> one (sums over the same keys; associative, so partials can be
    combined in any order and any number of times);
``detect(summary, context)``
    the verdict: the combined aggregate -> :class:`~l7analytics.core.alerts.Alert` objects.

Detectors that learn declare it (``learns = True``), implement ``fit(summary, context) ->
self`` and keep learnt state in attributes ending with ``_``, as scikit-learn estimators do;
``detect`` uses that fitted state. A detector that needs the aggregated history before a
window (first-seen tests, baselines) says how much in ``history_span``. The pipeline, ``train``
and the DAGs treat every registered detector alike through these two declarations, so a new
learning detector touches only ``detectors/``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from l7analytics.core.alerts import Alert
from l7analytics.core.windows import Window


@dataclass(slots=True)
class DetectionContext:
    """What a detector may know besides the window's records."""

    window: Window
    bucket: timedelta
    run_mode: str = "scheduled"
    #: Aggregated history before the window (for first-seen and baselines), when the
    #: detector's ``history_span`` asks for it.
    history: pa.Table | None = None
    #: Overflow records (requests Calico did not log) of the window, per host.
    unlogged: pa.Table | None = None
    #: Traffic shifts a detector found (many pairs moving together): one description each,
    #: reported in the run summary instead of as per-pair alerts.
    shifts: list[dict[str, Any]] = field(default_factory=list)


class Detector(ABC):
    """Base class; see the module docstring for the contract."""

    #: Stable id, used as the alert ``origin`` (``l7.url_scan``).
    id: ClassVar[str]
    #: Bumped when the detector's logic changes; recorded in every alert.
    version: ClassVar[str] = "1"
    #: Lake columns ``summarize`` reads.
    columns: ClassVar[tuple[str, ...]]
    #: Group-by keys of the partial aggregate; every other column is summed by ``combine``.
    keys: ClassVar[tuple[str, ...]]
    #: Whether the detector learns: ``fit`` sets ``model_``, a model store keeps its versions.
    learns: ClassVar[bool] = False

    @property
    def history_span(self) -> timedelta | None:
        """How much history before a window ``fit`` and ``detect`` need (None: none)."""
        return None

    def prepare(self) -> None:
        """Load what ``detect`` will need (heavy imports); the pipeline calls it in a
        background thread while the window is summarized, so a short window does not pay it
        on its critical path. Optional: ``detect`` must work without it."""
        return None

    def fit(self, summary: pa.Table, context: DetectionContext) -> Detector:
        """Learn from a training range's combined summary; sets ``model_``, returns ``self``."""
        raise NotImplementedError(f"{self.id} does not learn")

    def training_metadata(self, window: Window) -> dict[str, Any]:
        """What a model store records beside the fitted ``model_``."""
        raise NotImplementedError(f"{self.id} does not learn")

    @abstractmethod
    def summarize(self, batch: pa.Table, bucket: timedelta) -> pa.Table:
        """Partial aggregate of one batch."""

    def combine(self, partials: Sequence[pa.Table]) -> pa.Table:
        """Merge partial aggregates by summing every non-key column over ``keys``."""
        tables = [t for t in partials if t.num_rows]
        if not tables:
            return partials[0] if partials else pa.table({})
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        if len(tables) == 1:
            return table
        values = [c for c in table.column_names if c not in self.keys]
        grouped = table.group_by(list(self.keys), use_threads=True).aggregate(
            [(c, "sum") for c in values]
        )
        summed = {f"{c}_sum": c for c in values}
        return grouped.rename_columns([summed.get(n, n) for n in grouped.column_names])

    @abstractmethod
    def detect(self, summary: pa.Table, context: DetectionContext) -> list[Alert]:
        """Alerts for the combined summary of a window."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, version={self.version!r})"


def bucket_column(end_time: pa.Array | pa.ChunkedArray, bucket: timedelta) -> pa.Array:
    """Start of the detection bucket each record falls in (epoch-aligned), from ``end_time``.

    Buckets are half-open on ``end_time`` like windows and lake partitions, so a bucket never
    straddles two windows or two partitions.
    """
    seconds = int(bucket.total_seconds())
    ends = pc.cast(end_time, pa.int64()).to_numpy(zero_copy_only=False)
    starts = (ends // seconds) * seconds
    return pa.array(starts.astype("datetime64[s]"), type=pa.timestamp("s", tz="UTC"))


def glob_regex(pattern: str) -> str:
    """A shell glob (``*``, ``?``) as an anchored regular expression RE2 and Python share."""
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return "^" + "".join(parts) + "$"


def glob_mask(column: pa.Array | pa.ChunkedArray, patterns: Sequence[str]) -> np.ndarray:
    """Rows whose value matches any of the globs (null matches only ``*``)."""
    n = len(column)
    if not patterns:
        return np.zeros(n, dtype=bool)
    if "*" in patterns:
        return np.ones(n, dtype=bool)
    regex = "|".join(f"(?:{glob_regex(p)})" for p in patterns)
    matched = pc.match_substring_regex(column, regex)
    return pc.fill_null(matched, False).to_numpy(zero_copy_only=False)


def ordered_frame(table: pa.Table, keys: Sequence[str]) -> pd.DataFrame:
    """``table`` as pandas sorted by ``keys``: aggregation output order depends on threads, and
    every choice a detector makes (which row's host goes in the alert, ties) must not."""
    present = [k for k in keys if k in table.column_names]
    ordered = table.sort_by([(k, "ascending") for k in present])
    return ordered.to_pandas()


def text_or_none(value: object) -> str | None:
    """A pandas cell as text for an alert field; missing values (None, NaN, NA) as ``None``."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)
