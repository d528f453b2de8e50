"""Allowlist: traffic the operator has vouched for, removed before detectors and baselines.

Applying it before baselines are learnt (not after alerts are raised) keeps known-good traffic
out of the model entirely, the lesson of ee-outliers' whitelists: an allowlisted scraper must
not teach the model that scraping is normal for everybody else either.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from l7analytics.core.settings import AllowlistEntry
from l7analytics.detectors.base import glob_mask

#: Lake columns an allowlist entry can test.
COLUMNS = ("src_workload", "dest", "method", "url_path")


def applies_to(entry: AllowlistEntry, detector_id: str) -> bool:
    return "*" in entry.detectors or detector_id in entry.detectors


def allowlisted_mask(table: pa.Table, entries: Sequence[AllowlistEntry]) -> np.ndarray:
    """Rows matched by any of ``entries`` (every field of an entry must match)."""
    hit = np.zeros(table.num_rows, dtype=bool)
    for entry in entries:
        mask = np.ones(table.num_rows, dtype=bool)
        for column, pattern in (
            ("src_workload", entry.src_workload),
            ("dest", entry.dest),
            ("method", entry.method),
            ("url_path", entry.path),
        ):
            if pattern != "*":
                mask &= glob_mask(table.column(column), [pattern])
        hit |= mask
    return hit


def remove_allowlisted(
    table: pa.Table, entries: Sequence[AllowlistEntry], detector_id: str
) -> tuple[pa.Table, int]:
    """``table`` without the rows allowlisted for ``detector_id``, and how many were removed."""
    relevant = [e for e in entries if applies_to(e, detector_id)]
    if not relevant or table.num_rows == 0:
        return table, 0
    mask = allowlisted_mask(table, relevant)
    removed = int(mask.sum())
    return (table.filter(pa.array(~mask)) if removed else table), removed
