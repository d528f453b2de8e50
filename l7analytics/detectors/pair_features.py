"""Features of (caller, route) pairs for the unusual-pair detector, in natural units first.

Every model input is derived from an *observable quantity* (requests, error share, bytes and
latency per request, callers of the route, age of the pair) compared with the caller's own
baseline, so every alert can say "observed X against a baseline of Y" in units an analyst
knows. Volume is compared with the same pair at the same hour of day: a shop is quiet at 3 am,
and 30x its 3 am volume is unusual even when it is only the afternoon's volume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

PAIR_KEYS = ["src_workload", "dest", "method", "path_template"]
ROUTE_KEYS = ["dest", "method", "path_template"]

#: Model inputs, in order. Few and informative on purpose: an IsolationForest isolates a point
#: that is extreme in one feature only as often as it picks that feature to split on.
FEATURES = (
    "volume_vs_baseline",
    "error_share_vs_baseline",
    "bytes_out_vs_baseline",
    "bytes_in_vs_baseline",
    "latency_vs_baseline",
    "other_callers",
    "route_age",
)
#: The observable quantity behind each feature.
QUANTITY = {
    "volume_vs_baseline": "requests",
    "error_share_vs_baseline": "error_share",
    "bytes_out_vs_baseline": "bytes_out_per_request",
    "bytes_in_vs_baseline": "bytes_in_per_request",
    "latency_vs_baseline": "latency_ms",
    "other_callers": "other_callers",
    "route_age": "route_age_hours",
}
BASELINED = (
    "requests",
    "error_share",
    "bytes_out_per_request",
    "bytes_in_per_request",
    "latency_ms",
)


def observed_quantities(frame: pd.DataFrame, routes: pd.DataFrame) -> pd.DataFrame:
    """Per (pair, window): requests, error share, bytes and latency per request, hour, how many
    *other* callers used the route in ``routes`` (the history), and hours since first seen."""
    requests = frame["requests"].astype(float)
    out = pd.DataFrame(index=frame.index)
    out["requests"] = requests
    out["error_share"] = frame["errors"] / requests
    out["bytes_out_per_request"] = frame["bytes_out"] / requests
    out["bytes_in_per_request"] = frame["bytes_in"] / requests
    out["latency_ms"] = frame["duration_ns"] / requests / 1e6
    out["hour"] = pd.to_datetime(frame["bucket"], utc=True).dt.hour.to_numpy()
    out["other_callers"] = _other_callers(frame, routes)
    first = pd.to_datetime(frame["first_seen"], utc=True)
    age = (pd.to_datetime(frame["bucket"], utc=True) - first).dt.total_seconds() / 3600
    out["route_age_hours"] = age.fillna(0).clip(lower=0).to_numpy()
    return out


def _other_callers(frame: pd.DataFrame, routes: pd.DataFrame) -> np.ndarray:
    if routes.empty:
        return np.zeros(len(frame))
    callers = routes.groupby(ROUTE_KEYS)["src_workload"].nunique().rename("n").reset_index()
    n = frame[ROUTE_KEYS].merge(callers, on=ROUTE_KEYS, how="left")["n"].fillna(0)
    known = frame[PAIR_KEYS].merge(routes[PAIR_KEYS].assign(k=1.0), on=PAIR_KEYS, how="left")
    return (n - known["k"].fillna(0)).clip(lower=0).to_numpy()


#: Features compared with each pair's own spread (robust z); the others are used as they are.
DEVIATIONS = (
    "volume_vs_baseline",
    "error_share_vs_baseline",
    "bytes_out_vs_baseline",
    "bytes_in_vs_baseline",
    "latency_vs_baseline",
)
#: Smallest spread allowed, so a quantity that never varied in training (bytes always 0) does
#: not turn the first wobble into a huge deviation: a log-ratio spread of at least 0.25, an
#: error-share spread of at least 5 points. With the default threshold of 8 spreads, the rule
#: needs a 7x change or +40 points of errors on even the steadiest pair.
_MIN_SPREAD = {"error_share_vs_baseline": 0.05}
_DEFAULT_MIN_SPREAD = 0.25
_MAX_Z = 50.0


@dataclass
class Baselines:
    """What normal looks like, learnt from training: medians per pair and hour (volume), per
    pair, per caller and overall; and each deviation feature's spread (1.4826 x MAD) per pair,
    per caller and overall, to turn deviations into robust z-scores."""

    pair_hour: pd.Series
    pair: pd.DataFrame
    caller: pd.DataFrame
    overall: dict[str, float]
    spread_pair: pd.DataFrame | None = None
    spread_caller: pd.DataFrame | None = None
    spread_overall: dict[str, float] | None = None

    def learn_spread(self, keys: pd.DataFrame, raw: pd.DataFrame) -> None:
        """Per-pair spread of each deviation feature over the training rows."""
        data = pd.concat([keys[PAIR_KEYS], raw[list(DEVIATIONS)]], axis=1)

        def mad(values: pd.Series) -> float:
            return float(1.4826 * (values - values.median()).abs().median())

        self.spread_pair = data.groupby(PAIR_KEYS)[list(DEVIATIONS)].agg(mad)
        self.spread_caller = self.spread_pair.groupby(level="src_workload").median()
        self.spread_overall = {k: float(v) for k, v in self.spread_pair.median().items()}

    def standardize(self, keys: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
        """Deviation features divided by the pair's spread (robust z, clipped to +-50)."""
        if self.spread_pair is None:
            raise ValueError("learn_spread first")
        pair = keys[PAIR_KEYS].merge(self.spread_pair.reset_index(), on=PAIR_KEYS, how="left")
        caller = keys[["src_workload"]].merge(
            self.spread_caller.reset_index(), on="src_workload", how="left"
        )
        out = raw.copy()
        for name in DEVIATIONS:
            spread = pair[name].fillna(caller[name]).fillna(self.spread_overall[name])
            floor = _MIN_SPREAD.get(name, _DEFAULT_MIN_SPREAD)
            z = raw[name].to_numpy() / np.maximum(spread.to_numpy(), floor)
            out[name] = np.clip(z, -_MAX_Z, _MAX_Z)
        return out

    @classmethod
    def learn(cls, keys: pd.DataFrame, observed: pd.DataFrame) -> Baselines:
        data = pd.concat([keys[PAIR_KEYS], observed[[*BASELINED, "hour"]]], axis=1)
        return cls(
            pair_hour=data.groupby([*PAIR_KEYS, "hour"])["requests"].median(),
            pair=data.groupby(PAIR_KEYS)[list(BASELINED)].median(),
            caller=data.groupby("src_workload")[list(BASELINED)].median(),
            overall={k: float(v) for k, v in data[list(BASELINED)].median().items()},
        )

    def attach(self, keys: pd.DataFrame, observed: pd.DataFrame) -> pd.DataFrame:
        """``observed`` with ``baseline_<quantity>`` columns (most specific baseline known)."""
        out = observed.copy()
        with_hour = keys[PAIR_KEYS].assign(hour=observed["hour"].to_numpy())
        hourly = with_hour.merge(
            self.pair_hour.rename("r").reset_index(), on=[*PAIR_KEYS, "hour"], how="left"
        )["r"]
        pair = keys[PAIR_KEYS].merge(self.pair.reset_index(), on=PAIR_KEYS, how="left")
        caller = keys[["src_workload"]].merge(
            self.caller.reset_index(), on="src_workload", how="left"
        )
        for quantity in BASELINED:
            value = pair[quantity].fillna(caller[quantity]).fillna(self.overall[quantity])
            if quantity == "requests":
                value = hourly.fillna(value)
            out[f"baseline_{quantity}"] = value.to_numpy()
        return out


def feature_matrix(observed: pd.DataFrame, age_cap_hours: float) -> pd.DataFrame:
    """Model inputs from observed quantities with baselines attached (:meth:`Baselines.attach`).

    Ratios are logs, so 10x and 0.1x are equally far from normal; the route age is capped at
    ``age_cap_hours`` because "established" is all that matters past that. These are raw
    deviations: :meth:`Baselines.standardize` divides them by each pair's own spread.
    """

    def log_ratio(quantity: str) -> pd.Series:
        return np.log((observed[quantity] + 1) / (observed[f"baseline_{quantity}"] + 1))

    f = pd.DataFrame(index=observed.index)
    f["volume_vs_baseline"] = log_ratio("requests")
    f["error_share_vs_baseline"] = observed["error_share"] - observed["baseline_error_share"]
    f["bytes_out_vs_baseline"] = log_ratio("bytes_out_per_request")
    f["bytes_in_vs_baseline"] = log_ratio("bytes_in_per_request")
    f["latency_vs_baseline"] = log_ratio("latency_ms")
    f["other_callers"] = np.log1p(observed["other_callers"])
    f["route_age"] = np.log1p(observed["route_age_hours"].clip(upper=age_cap_hours))
    return f[list(FEATURES)].astype(float).fillna(0.0)


def contributions(z: pd.Series, observed: pd.Series, top: int) -> list[dict[str, Any]]:
    """The features furthest from the training centre (robust z), with the quantity observed
    and its baseline in natural units."""
    out = []
    for name in z.abs().sort_values(ascending=False, kind="stable").index[:top]:
        quantity = QUANTITY[name]
        baseline = observed.get(f"baseline_{quantity}")
        out.append(
            {
                "feature": name,
                "quantity": quantity,
                "z": round(float(z[name]), 2),
                "observed": _round(observed[quantity]),
                "baseline": _round(baseline),
            }
        )
    return out


def _round(value: Any) -> float | None:
    if value is None or pd.isna(value):
        return None
    return round(float(value), 3)
