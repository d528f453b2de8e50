"""Features and evidence of (caller, route) pairs for the unusual-pair detector.

Every quantity is observable (requests, client errors, bytes per request) and every feature is
*relative to its context*, so that traffic moving as a whole is not an anomaly:

==============================  ===========================================================
feature                         scale
==============================  ===========================================================
``caller_share_vs_baseline``    natural log of the pair's share of its caller's requests in
                                the window over its usual share (0: as usual, 0.69: twice)
``dest_share_vs_baseline``      the same for the share of the destination's requests
``cluster_share_vs_baseline``   the same for the share of the whole cluster's requests
``client_errors_vs_baseline``   share of requests answered 4xx, minus the pair's smoothed
                                usual share (0.25: 25 points more). 5xx are left out: a
                                failing server is an availability problem, not misuse
``bytes_out_vs_baseline``       natural log of response bytes per request over usual
``bytes_in_vs_baseline``        natural log of request bytes per request over usual
``other_callers``               ``log1p`` of how many other callers use the route
``route_age``                   ``log1p`` of hours since the pair was first seen (capped)
==============================  ===========================================================

A cluster-wide surge doubles every pair and leaves every share where it was; a weekend or a
quiet hour does the same. The model (an IsolationForest) sees these features; the verdicts
beside it test counts as counts (:func:`volume_evidence`, :func:`client_error_evidence`), so a
handful of requests can never carry a large claim.
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
    "caller_share_vs_baseline",
    "dest_share_vs_baseline",
    "cluster_share_vs_baseline",
    "client_errors_vs_baseline",
    "bytes_out_vs_baseline",
    "bytes_in_vs_baseline",
    "other_callers",
    "route_age",
)
#: The observable quantity behind each feature.
QUANTITY = {
    "caller_share_vs_baseline": "caller_share",
    "dest_share_vs_baseline": "dest_share",
    "cluster_share_vs_baseline": "cluster_share",
    "client_errors_vs_baseline": "client_error_share",
    "bytes_out_vs_baseline": "bytes_out_per_request",
    "bytes_in_vs_baseline": "bytes_in_per_request",
    "other_callers": "other_callers",
    "route_age": "route_age_hours",
}
#: Each feature's scale, written into every contribution an alert explains itself with.
SCALE = {
    "caller_share_vs_baseline": "ln(share of the caller's requests / usual share); 0.69 = twice",
    "dest_share_vs_baseline": "ln(share of the destination's requests / usual share)",
    "cluster_share_vs_baseline": "ln(share of the cluster's requests / usual share)",
    "client_errors_vs_baseline": "4xx share minus the smoothed usual share; 0.25 = 25 points",
    "bytes_out_vs_baseline": "ln(response bytes per request / usual)",
    "bytes_in_vs_baseline": "ln(request bytes per request / usual)",
    "other_callers": "ln(1 + other callers of the route)",
    "route_age": "ln(1 + hours since the pair was first seen), capped",
}
#: Quantities with a per-pair baseline (medians over training windows).
BASELINED = (
    "requests",
    "caller_share",
    "dest_share",
    "cluster_share",
    "client_error_share",
    "bytes_out_per_request",
    "bytes_in_per_request",
    "latency_ms",
)
#: Features compared with each pair's own spread (robust z) before the model sees them.
DEVIATIONS = (
    "caller_share_vs_baseline",
    "dest_share_vs_baseline",
    "cluster_share_vs_baseline",
    "client_errors_vs_baseline",
    "bytes_out_vs_baseline",
    "bytes_in_vs_baseline",
)
#: Smallest spread allowed, so a quantity that never varied in training (bytes always 0) does
#: not turn the first wobble into a huge deviation: a log-ratio spread of at least 0.25, an
#: error-share spread of at least 5 points.
_MIN_SPREAD = {"client_errors_vs_baseline": 0.05}
_DEFAULT_MIN_SPREAD = 0.25
_MAX_Z = 50.0
#: Prior of a pair's client-error share, in requests: a pair with no error in training is
#: believed to fail about 1 request in 200 (Beta(0.5, 100)), not never.
_ERROR_PRIOR = (0.5, 100.0)


def with_totals(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (one row per bucket and pair) with the bucket's requests of the caller, of the
    destination and of the cluster; computed before any row is dropped for low support."""
    out = frame.copy()
    requests = out["requests"].astype(float)
    for name, keys in (
        ("caller_requests", ["bucket", "src_workload"]),
        ("dest_requests", ["bucket", "dest"]),
        ("cluster_requests", ["bucket"]),
    ):
        out[name] = requests.groupby([out[k] for k in keys]).transform("sum").to_numpy()
    return out


def observed_quantities(frame: pd.DataFrame, routes: pd.DataFrame) -> pd.DataFrame:
    """Per (pair, bucket): requests, shares of the caller's, destination's and cluster's
    requests, client-error share, bytes and latency per request, hour of day, how many
    *other* callers used the route in ``routes`` (the history), hours since first seen."""
    requests = frame["requests"].astype(float)
    out = pd.DataFrame(index=frame.index)
    out["requests"] = requests
    out["client_errors"] = frame["client_errors"].astype(float)
    for scope in ("caller", "dest", "cluster"):
        out[f"{scope}_share"] = requests / frame[f"{scope}_requests"].astype(float)
    out["client_error_share"] = frame["client_errors"] / requests
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


@dataclass
class Baselines:
    """What normal looks like, learnt from training: per pair, the median of each quantity
    (requests also per hour of day), its summed requests and client errors (for the smoothed
    error share), and each deviation feature's spread (1.4826 x MAD), to turn deviations into
    robust z-scores. Pairs not seen in training have no baseline (``known`` is false)."""

    pair_hour: pd.Series
    pair: pd.DataFrame
    spread_pair: pd.DataFrame | None = None
    spread_overall: dict[str, float] | None = None

    @classmethod
    def learn(cls, keys: pd.DataFrame, observed: pd.DataFrame) -> Baselines:
        data = pd.concat([keys[PAIR_KEYS], observed[[*BASELINED, "client_errors", "hour"]]], axis=1)
        grouped = data.groupby(PAIR_KEYS)
        pair = grouped[list(BASELINED)].median()
        pair["total_requests"] = grouped["requests"].sum()
        pair["total_client_errors"] = grouped["client_errors"].sum()
        return cls(
            pair_hour=data.groupby([*PAIR_KEYS, "hour"])["requests"].median(),
            pair=pair,
        )

    def attach(self, keys: pd.DataFrame, observed: pd.DataFrame) -> pd.DataFrame:
        """``observed`` with ``baseline_<quantity>`` columns and ``known`` (the pair has a
        baseline); the requests baseline is the pair's median at this hour of day when known."""
        out = observed.copy()
        with_hour = keys[PAIR_KEYS].assign(hour=observed["hour"].to_numpy())
        hourly = with_hour.merge(
            self.pair_hour.rename("r").reset_index(), on=[*PAIR_KEYS, "hour"], how="left"
        )["r"]
        pair = keys[PAIR_KEYS].merge(self.pair.reset_index(), on=PAIR_KEYS, how="left")
        out["known"] = pair["total_requests"].notna().to_numpy()
        for quantity in BASELINED:
            value = pair[quantity]
            if quantity == "requests":
                value = hourly.fillna(value)
            out[f"baseline_{quantity}"] = value.to_numpy()
        a, b = _ERROR_PRIOR
        errors, total = pair["total_client_errors"].fillna(0), pair["total_requests"].fillna(0)
        out["baseline_client_error_share"] = ((errors + a) / (total + a + b)).to_numpy()
        return out

    def learn_spread(self, keys: pd.DataFrame, raw: pd.DataFrame) -> None:
        """Per-pair spread of each deviation feature over the training rows."""
        data = pd.concat([keys[PAIR_KEYS], raw[list(DEVIATIONS)]], axis=1)

        def mad(values: pd.Series) -> float:
            return float(1.4826 * (values - values.median()).abs().median())

        self.spread_pair = data.groupby(PAIR_KEYS)[list(DEVIATIONS)].agg(mad)
        self.spread_overall = {k: float(v) for k, v in self.spread_pair.median().items()}

    def standardize(self, keys: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
        """Deviation features divided by the pair's spread (robust z, clipped to +-50)."""
        if self.spread_pair is None or self.spread_overall is None:
            raise ValueError("learn_spread first")
        pair = keys[PAIR_KEYS].merge(self.spread_pair.reset_index(), on=PAIR_KEYS, how="left")
        out = raw.copy()
        for name in DEVIATIONS:
            spread = pair[name].fillna(self.spread_overall[name])
            floor = _MIN_SPREAD.get(name, _DEFAULT_MIN_SPREAD)
            z = raw[name].to_numpy() / np.maximum(spread.to_numpy(), floor)
            out[name] = np.clip(z, -_MAX_Z, _MAX_Z)
        return out


def feature_matrix(observed: pd.DataFrame, age_cap_hours: float) -> pd.DataFrame:
    """Model inputs from observed quantities with baselines attached (:meth:`Baselines.attach`);
    see the module docstring for each feature's scale. A pair without a baseline gets 0 (as
    usual) for the baselined features: new pairs are judged by the first-seen test."""

    def log_ratio(quantity: str, smoothing: float = 1.0) -> pd.Series:
        base = observed[f"baseline_{quantity}"]
        return np.log((observed[quantity] + smoothing) / (base + smoothing))

    f = pd.DataFrame(index=observed.index)
    for scope in ("caller", "dest", "cluster"):
        f[f"{scope}_share_vs_baseline"] = log_ratio(f"{scope}_share", 1e-4)
    f["client_errors_vs_baseline"] = (
        observed["client_error_share"] - observed["baseline_client_error_share"]
    )
    f["bytes_out_vs_baseline"] = log_ratio("bytes_out_per_request")
    f["bytes_in_vs_baseline"] = log_ratio("bytes_in_per_request")
    f["other_callers"] = np.log1p(observed["other_callers"])
    f["route_age"] = np.log1p(observed["route_age_hours"].clip(upper=age_cap_hours))
    return f[list(FEATURES)].astype(float).fillna(0.0)


# -- evidence: counts tested as counts ----------------------------------------------------------
def expected_requests(frame: pd.DataFrame, observed: pd.DataFrame) -> pd.Series:
    """What a known pair would send in its bucket if nothing but its caller's overall traffic
    had moved: its usual volume at this hour, times the caller's *typical* change this bucket
    (the median over the caller's known routes of observed over usual; the cluster's median when
    the caller has fewer than 3). A surge, a quiet night or a weekend moves every route of a
    caller together and leaves the pair where it is expected; one route jumping does not move
    the median."""
    base = observed["baseline_requests"]
    ratio = np.log((observed["requests"] + 1) / (base + 1)).where(observed["known"])
    by_caller = [frame["bucket"], frame["src_workload"]]
    caller_factor = ratio.groupby(by_caller).transform("median")
    caller_routes = ratio.groupby(by_caller).transform("count")
    cluster_factor = ratio.groupby(frame["bucket"]).transform("median")
    factor = caller_factor.where(caller_routes >= 3, cluster_factor).fillna(0.0)
    return (base * np.exp(factor)).where(observed["known"])


def volume_evidence(requests: pd.Series, expected: pd.Series, level: float) -> pd.Series:
    """How many times the expected volume the pair sent *at least*: the one-sided lower
    confidence bound (at ``level``) of a Poisson rate given the observed count, over the
    expected count. 5 requests against an expected 1 is no evidence of anything; 500 against
    20 is. The bound grows with the count, so a larger claim needs more requests."""
    # scipy.special, not scipy.stats: the same functions (stats.gamma.ppf is gammaincinv,
    # stats.beta.ppf equal to betaincinv here), and 0.2 s to import against 1 s
    from scipy import special  # here, not at import: extracting needs no statistics

    n = requests.to_numpy(dtype=float)
    lower = np.where(n > 0, special.gammaincinv(np.maximum(n, 1e-9), level), 0.0)
    return pd.Series(lower / np.maximum(expected.to_numpy(dtype=float), 1.0), index=requests.index)


def client_error_evidence(
    errors: pd.Series, requests: pd.Series, baseline_share: pd.Series, level: float
) -> pd.Series:
    """How far above its usual share the pair's 4xx share is *at least*: the one-sided
    Clopper-Pearson lower bound (at ``level``) of the observed share, minus the smoothed usual
    share. 5 errors in 21 requests bound the share at a few percent, no claim; 200 in 220 bound
    it near 0.8."""
    from scipy import special  # see volume_evidence

    e = errors.to_numpy(dtype=float)
    n = requests.to_numpy(dtype=float)
    lower = np.where(e > 0, special.betaincinv(np.maximum(e, 1e-9), n - e + 1, level), 0.0)
    return pd.Series(lower - baseline_share.to_numpy(dtype=float), index=requests.index)


def contributions(z: pd.Series, observed: pd.Series, top: int) -> list[dict[str, Any]]:
    """The features furthest from the training centre (robust z: spreads of the training
    rows), each with its scale, the quantity observed and its baseline in natural units."""
    out = []
    for name in z.abs().sort_values(ascending=False, kind="stable").index[:top]:
        quantity = QUANTITY[name]
        baseline = observed.get(f"baseline_{quantity}")
        out.append(
            {
                "feature": name,
                "scale": SCALE[name],
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
    return round(float(value), 4)
