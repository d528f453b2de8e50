"""Traffic shifts: many pairs moving together in one window is one event, not many anomalies.

A cluster-wide surge, a namespace's batch job or one destination failing moves every pair it
touches at once. Judged pair by pair, each looks "unlike its own baseline"; together they are
a single shift with one cause. :func:`find_shifts` marks the pairs inside such a shift, so
that the unusual-pair detector raises no per-pair verdict for them (a first-seen destination
still fires: lateral movement hidden in a surge is still lateral movement), and describes each
shift for the run summary and, when asked for, one low-severity alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from l7analytics.core.windows import iso

#: A pair has *moved* when its volume, bytes or latency per request is at least this factor
#: away from its own usual value at this hour (either way), or its 4xx share 20 points away.
MOVE_FACTOR = 2.0
MOVE_ERROR_SHARE = 0.2


@dataclass(frozen=True)
class ShiftRule:
    """When a group of pairs counts as shifting together."""

    #: Share of a destination's (or a namespace's) known pairs that moved.
    share: float = 0.5
    #: Fewest callers of one destination, or pairs of one namespace, to speak of a shift.
    min_pairs: int = 3
    #: Share of all known pairs in the window that moved, for a cluster-wide shift.
    cluster_share: float = 0.3
    #: Fewest known pairs in the window for a cluster-wide shift.
    cluster_min_pairs: int = 10


#: Quantities a shift is looked for in, as (name, how far a pair moved on it).
def movements(observed: pd.DataFrame) -> pd.DataFrame:
    """How far each pair moved from its own usual value, per quantity: natural-log ratios for
    volume, bytes and latency per request, the difference for the 4xx share."""
    out = pd.DataFrame(index=observed.index)
    for quantity in ("requests", "bytes_out_per_request", "bytes_in_per_request", "latency_ms"):
        out[quantity] = np.log((observed[quantity] + 1) / (observed[f"baseline_{quantity}"] + 1))
    out["client_error_share"] = (
        observed["client_error_share"] - observed["baseline_client_error_share"]
    )
    return out.fillna(0.0)


def find_shifts(
    frame: pd.DataFrame, observed: pd.DataFrame, rule: ShiftRule
) -> tuple[pd.Series, list[dict[str, Any]]]:
    """Which rows lie inside a shift, and one description per shift.

    In a group (a window's whole cluster, one destination's callers, one namespace's pairs),
    a shift is at least ``min_pairs`` members, and the rule's share of them, moving the same
    way on the same quantity (:data:`MOVE_FACTOR`, :data:`MOVE_ERROR_SHARE`). A member is inside
    the shift when it moved that way by no more than twice the movers' median: a pair that
    jumps 30x while its neighbours doubled did not move *with* them.
    """
    moves = movements(observed)
    known = observed["known"].to_numpy()
    data = frame.loc[known, ["bucket", "dest", "src_namespace"]].copy()
    data["pair"] = frame.loc[known, "src_workload"].astype(str) + "|" + data["dest"].astype(str)
    data["caller"] = frame.loc[known, "src_workload"]
    moves = moves.loc[data.index]
    inside = pd.Series(False, index=frame.index)
    shifts: list[dict[str, Any]] = []
    scopes = (
        ("cluster", [], rule.cluster_share, rule.cluster_min_pairs, "pair"),
        ("destination", ["dest"], rule.share, rule.min_pairs, "caller"),
        ("namespace", ["src_namespace"], rule.share, rule.min_pairs, "pair"),
    )
    for scope, keys, share, minimum, counted in scopes:
        group = data.groupby(["bucket", *keys], sort=True, dropna=False).ngroup()
        members = data[counted].groupby(group).nunique()
        needed = np.maximum(minimum, share * members)
        for quantity in moves.columns:
            limit = MOVE_ERROR_SHARE if quantity == "client_error_share" else np.log(MOVE_FACTOR)
            for sign in (1.0, -1.0):
                move = sign * moves[quantity]
                mover = move >= limit
                if not mover.any():
                    continue
                count = data.loc[mover, counted].groupby(group[mover]).nunique()
                count = count.reindex(members.index, fill_value=0)
                shifted = count.index[(members >= minimum) & (count >= needed)]
                if shifted.empty:
                    continue
                typical = move[mover].groupby(group[mover]).median()
                along = mover & group.isin(shifted)
                along &= move <= 2 * group.map(typical)
                inside.loc[along.index[along]] = True
                for gid in shifted:
                    first = data.index[group == gid][0]
                    shifts.append(
                        {
                            "scope": scope,
                            "key": str(data.at[first, keys[0]]) if keys else "cluster",
                            "bucket": iso(pd.Timestamp(data.at[first, "bucket"]).to_pydatetime()),
                            "quantity": quantity,
                            "direction": "up" if sign > 0 else "down",
                            "members": int(members[gid]),
                            "moved": int(count[gid]),
                            "typical_change": _typical(quantity, sign * float(typical[gid])),
                        }
                    )
    shifts.sort(key=lambda s: (s["bucket"], s["scope"], s["key"], s["quantity"], s["direction"]))
    return inside, shifts


def _typical(quantity: str, value: float) -> str:
    if quantity == "client_error_share":
        return f"{value:+.0%} 4xx"
    return f"{np.exp(value):.2g}x {quantity}"
