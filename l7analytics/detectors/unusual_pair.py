"""Unusual caller/route pairs: first-seen against history, plus an IsolationForest.

A *pair* is a caller workload and a route: (destination, method, path template). For every
pair active in a window this detector computes features against the caller's own baseline
(volume, error share, bytes and latency per request), the hour, how many other callers use the
route, how long the caller has used it, and whether the destination is new to the caller. Two
verdicts, both explained in the alert:

- *first seen*: a known caller talks to a destination it never talked to in the history
  window (``history``, default 14 days, read from the lake, so a re-run or a backfill sees the
  same history as the scheduled run did - ElastAlert2's in-memory ``new_term`` does not);
- *model*: :class:`sklearn.ensemble.IsolationForest` trained on the pair features of a past
  range (:meth:`UnusualPairDetector.fit`); ``decision_function`` (lower is more abnormal)
  below the model's threshold fires. The threshold is learnt: the ``score_quantile`` quantile
  of the training scores, and never above ``score_threshold``, so a model trained on calm,
  regular traffic does not fire on ordinary noise.

Pairs with fewer than ``min_support`` requests in a window are neither learnt nor scored: tiny
groups are where unsupervised outlier detection produces most of its false positives.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.ensemble import IsolationForest

from l7analytics.alerts import Alert
from l7analytics.config import UnusualPairConfig
from l7analytics.detectors.base import DetectionContext, Detector, bucket_column
from l7analytics.detectors.restricted_url import _none
from l7analytics.errors import ModelError
from l7analytics.windows import Window, iso

PAIR_KEYS = ["src_workload", "dest", "method", "path_template"]
ROUTE_KEYS = ["dest", "method", "path_template"]

#: Model inputs, in order. Each is derived from an observable quantity (see ``_observed``).
FEATURES = (
    "log_requests",
    "volume_vs_baseline",
    "error_share",
    "bytes_out_vs_baseline",
    "bytes_in_vs_baseline",
    "latency_vs_baseline",
    "hour_sin",
    "hour_cos",
    "other_callers",
    "route_age",
    "new_destination",
)
#: The observable quantity behind each feature, for explanations in natural units.
EXPLAINED_BY = {
    "log_requests": "requests",
    "volume_vs_baseline": "requests",
    "error_share": "error_share",
    "bytes_out_vs_baseline": "bytes_out_per_request",
    "bytes_in_vs_baseline": "bytes_in_per_request",
    "latency_vs_baseline": "latency_ms",
    "hour_sin": "hour",
    "hour_cos": "hour",
    "other_callers": "other_callers",
    "route_age": "route_age_hours",
    "new_destination": "new_destination",
}
_BASELINED = (
    "requests",
    "error_share",
    "bytes_out_per_request",
    "bytes_in_per_request",
    "latency_ms",
)


def history_summary(batch: pa.Table) -> pa.Table:
    """Per-pair first/last seen and requests of a batch: the lake keeps this per partition, so
    reading 14 days of history means reading a few small files, not the records."""
    table = pa.table(
        {
            **{k: batch.column(k) for k in PAIR_KEYS},
            "first_seen": batch.column("end_time"),
            "last_seen": batch.column("end_time"),
            "requests": pc.fill_null(batch.column("count"), 0),
        }
    )
    return combine_history([table])


def combine_history(tables: list[pa.Table]) -> pa.Table:
    """Merge history summaries (min first seen, max last seen, summed requests)."""
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return pa.schema(
            [
                *(pa.field(k, pa.string()) for k in PAIR_KEYS),
                pa.field("first_seen", pa.timestamp("s", tz="UTC")),
                pa.field("last_seen", pa.timestamp("s", tz="UTC")),
                pa.field("requests", pa.int64()),
            ]
        ).empty_table()
    table = pa.concat_tables(tables, promote_options="permissive")
    grouped = table.group_by(PAIR_KEYS, use_threads=False).aggregate(
        [("first_seen", "min"), ("last_seen", "max"), ("requests", "sum")]
    )
    return grouped.rename_columns(
        [
            {
                "first_seen_min": "first_seen",
                "last_seen_max": "last_seen",
                "requests_sum": "requests",
            }.get(n, n)
            for n in grouped.column_names
        ]
    )


@dataclass
class PairModel:
    """What :meth:`UnusualPairDetector.fit` learns; persisted by a model store."""

    #: Bumped when the fields change, so an old pickled model is refused, not misread.
    FORMAT = 1

    forest: IsolationForest
    feature_names: tuple[str, ...]
    pair_baseline: pd.DataFrame  # index PAIR_KEYS, columns _BASELINED (medians)
    caller_baseline: pd.DataFrame  # index src_workload
    global_baseline: dict[str, float]
    feature_center: dict[str, float]
    feature_scale: dict[str, float]
    training_window: tuple[str, str]
    n_rows: int
    threshold: float
    age_cap_hours: float
    params: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT

    @property
    def version(self) -> str:
        """Deterministic from the training window, data size and parameters."""
        digest = hashlib.sha256(
            json.dumps(
                [self.training_window, self.n_rows, self.params], sort_keys=True, default=str
            ).encode()
        ).hexdigest()[:8]
        return f"{self.training_window[1].replace(':', '').replace('-', '')}-{digest}"


class UnusualPairDetector(Detector):
    """Caller/route pairs that are new to the caller or unlike its history.

    Parameters
    ----------
    config : UnusualPairConfig
        History length, minimum support, IsolationForest parameters and the threshold.

    Attributes
    ----------
    model_ : PairModel
        Set by :meth:`fit` (or by passing a model in the :class:`DetectionContext`).
    """

    id = "l7.unusual_pair"
    version = "1"
    columns = (
        "end_time", "count", "src_workload", "src_namespace", "src_name_aggr", "dest",
        "dest_namespace", "dest_service_name", "method", "path_template", "response_status",
        "bytes_in", "bytes_out", "duration_mean", "url_path",
    )  # fmt: skip
    keys = (
        "bucket",
        *PAIR_KEYS,
        "src_namespace",
        "src_name_aggr",
        "dest_namespace",
        "dest_service_name",
    )

    def __init__(self, config: UnusualPairConfig | None = None) -> None:
        self.config = config or UnusualPairConfig()

    # -- map / reduce ---------------------------------------------------------------------
    def summarize(self, batch: pa.Table, bucket: timedelta) -> pa.Table:
        count = pc.fill_null(batch.column("count"), 0)
        status = pc.fill_null(batch.column("response_status"), 0)
        errors = pc.if_else(pc.greater_equal(status, 400), count, 0)
        duration = pc.multiply(pc.fill_null(batch.column("duration_mean"), 0), count)
        table = pa.table(
            {
                "bucket": bucket_column(batch.column("end_time"), bucket),
                **{k: batch.column(k) for k in self.keys if k != "bucket"},
                "requests": count,
                "errors": errors,
                "bytes_in": pc.fill_null(batch.column("bytes_in"), 0),
                "bytes_out": pc.fill_null(batch.column("bytes_out"), 0),
                "duration_ns": duration,
            }
        )
        values = ["requests", "errors", "bytes_in", "bytes_out", "duration_ns"]
        grouped = table.group_by(list(self.keys), use_threads=False).aggregate(
            [(v, "sum") for v in values]
        )
        return grouped.rename_columns([n.removesuffix("_sum") for n in grouped.column_names])

    # -- learning -------------------------------------------------------------------------
    def fit(self, summary: pa.Table, context: DetectionContext) -> UnusualPairDetector:
        """Learn baselines and the forest from the pair summary of a training range.

        ``context.window`` is the training range, ``context.history`` the history summary of
        the ``history`` period before it (may be empty).
        """
        frame = _pairs_frame(summary)
        if frame.empty:
            raise ModelError("unusual_pair: no traffic in the training range")
        history = _history_frame(context.history)
        first_in_range = frame.groupby(PAIR_KEYS)["bucket"].transform("min")
        known_first = _lookup(history, frame, "first_seen")
        frame["first_seen"] = known_first.fillna(first_in_range)
        routes = pd.concat([history[PAIR_KEYS], frame[PAIR_KEYS]]).drop_duplicates()
        caller_dests = routes[["src_workload", "dest"]].drop_duplicates()
        frame = frame[frame["requests"] >= self.config.min_support].copy()
        pair_base, caller_base, global_base = _baselines(frame)
        frame["new_destination"] = 0.0
        observed = _observed(frame, routes, caller_dests=None)
        age_cap = self.config.warmup_delta.total_seconds() / 3600
        feats = _features(observed, pair_base, caller_base, global_base, age_cap)
        fit_rows = frame["bucket"] >= pd.Timestamp(context.window.start + self.config.warmup_delta)
        x = feats.loc[fit_rows.to_numpy()]
        if len(x) < self.config.min_training_rows:
            raise ModelError(
                f"unusual_pair: {len(x)} (pair, window) rows with at least "
                f"{self.config.min_training_rows} needed after the warm-up; train on a longer "
                f"range or lower unusual_pair.min_training_rows"
            )
        forest = IsolationForest(
            n_estimators=self.config.n_estimators,
            max_samples=self.config.max_samples,
            contamination=self.config.contamination,
            random_state=self.config.random_state,
            n_jobs=1,
        ).fit(x.to_numpy())
        scores = forest.decision_function(x.to_numpy())
        threshold = min(self.config.score_threshold,
                        float(np.quantile(scores, self.config.score_quantile)))
        center = x.median()
        scale = (x.quantile(0.75) - x.quantile(0.25)).clip(lower=0.05)
        self.model_ = PairModel(
            forest=forest,
            feature_names=FEATURES,
            pair_baseline=pair_base,
            caller_baseline=caller_base,
            global_baseline=global_base,
            feature_center={k: float(v) for k, v in center.items()},
            feature_scale={k: float(v) for k, v in scale.items()},
            training_window=(iso(context.window.start), iso(context.window.end)),
            n_rows=len(x),
            threshold=threshold,
            age_cap_hours=age_cap,
            params=self.config.model_dump(mode="json"),
        )
        return self

    # -- scoring --------------------------------------------------------------------------
    def detect(self, summary: pa.Table, context: DetectionContext) -> list[Alert]:
        model: PairModel | None = context.model or getattr(self, "model_", None)
        if model is not None and vars(model).get("format") != PairModel.FORMAT:
            raise ModelError(
                f"{self.id}: model {context.model_metadata.get('version', '?')} was written by "
                "an incompatible version of l7analytics; run `l7analytics train` again"
            )
        frame = _pairs_frame(summary)
        if frame.empty:
            return []
        frame = frame[frame["requests"] >= self.config.min_support].copy()
        if frame.empty:
            return []
        history = _history_frame(context.history)
        known_callers = set(history["src_workload"])
        caller_dests = set(zip(history["src_workload"], history["dest"], strict=True))
        frame["first_seen"] = _lookup(history, frame, "first_seen")
        frame["new_destination"] = [
            float(c in known_callers and (c, d) not in caller_dests)
            for c, d in zip(frame["src_workload"], frame["dest"], strict=True)
        ]
        observed = _observed(frame, history[PAIR_KEYS].drop_duplicates(), caller_dests=None)
        if model is not None:
            feats = _features(observed, model.pair_baseline, model.caller_baseline,
                              model.global_baseline, model.age_cap_hours)
            frame["decision"] = model.forest.decision_function(feats.to_numpy())
            z = (feats - pd.Series(model.feature_center)) / pd.Series(model.feature_scale)
        else:
            feats = z = None
            frame["decision"] = np.nan
        threshold = model.threshold if model is not None else self.config.score_threshold
        frame["model_flag"] = frame["decision"] < threshold
        frame["fires"] = frame["model_flag"] | (frame["new_destination"] > 0)
        alerts = []
        for (bucket_start, caller, dest), group in frame[frame["fires"]].groupby(
            ["bucket", "src_workload", "dest"], sort=True
        ):
            alerts.append(
                self._alert(bucket_start, caller, dest, group, observed, z, model, context)
            )
        return alerts

    def _alert(
        self,
        bucket_start: Any,
        caller: str,
        dest: str,
        group: pd.DataFrame,
        observed: pd.DataFrame,
        z: pd.DataFrame | None,
        model: PairModel | None,
        threshold: float,
        context: DetectionContext,
    ) -> Alert:
        c = self.config
        start = pd.Timestamp(bucket_start).to_pydatetime()
        new_dest = bool(group["new_destination"].max() > 0)
        worst = group.sort_values(["decision", "requests"], ascending=[True, False]).iloc[0]
        routes = []
        for idx, row in group.sort_values("requests", ascending=False).head(10).iterrows():
            obs = observed.loc[idx]
            route = {
                "method": _none(row["method"]),
                "path_template": _none(row["path_template"]),
                "requests": int(row["requests"]),
                "first_seen": None if pd.isna(row["first_seen"]) else iso(row["first_seen"]),
                "decision": None if pd.isna(row["decision"]) else round(float(row["decision"]), 4),
                "observed": {k: _round(obs[k]) for k in _BASELINED},
                "baseline": {k: _round(obs[f"baseline_{k}"]) for k in _BASELINED},
            }
            if z is not None:
                route["contributions"] = _contributions(z.loc[idx], obs, c.top_features)
            routes.append(route)
        decision = None if pd.isna(worst["decision"]) else float(worst["decision"])
        severity = float(c.new_destination_severity if new_dest else c.severity)
        if decision is not None and decision < threshold:
            severity += min(30.0, (threshold - decision) * 200)
        head = routes[0]
        if new_dest:
            reason = f"{caller} called {dest}, a destination it had not called in {c.history}"
        else:
            reason = f"{caller} used {dest} unlike its baseline"
        because = ""
        if head.get("contributions"):
            because = "; most unusual: " + ", ".join(
                f"{k['quantity']} {k['observed']:g}"
                + (f" vs baseline {k['baseline']:g}" if k["baseline"] is not None else "")
                for k in head["contributions"]
            )
        description = (
            f"{reason}: {int(group['requests'].sum())} requests on {len(group)} route(s) such "
            f"as {head['method']} {head['path_template']}"
            + (
                f", model score {decision:.3f} (threshold {threshold:.3f})"
                if decision is not None
                else ", no trained model"
            )
            + because
            + "."
        )
        return Alert.create(
            detector=self.id,
            entity=f"{caller}|{dest}",
            window_start=start,
            window_end=start + context.bucket,
            severity=severity,
            name="Unusual caller/route" + (" (new destination)" if new_dest else ""),
            description=description,
            source_namespace=_none(worst["src_namespace"]),
            source_name_aggr=_none(worst["src_name_aggr"]),
            dest_namespace=_none(worst["dest_namespace"]),
            dest_service_name=_none(worst["dest_service_name"]),
            mitre_tactic="Lateral Movement" if new_dest else "Collection",
            mitre_ids=["T1021", "T1210"] if new_dest else ["T1213", "T1530"],
            mitigations=[
                "Check the caller's recent deployments and credentials",
                "Restrict the caller with a NetworkPolicy to the services it needs",
            ],
            record={
                "detector_version": self.version,
                "model_version": model.version if model is not None else None,
                "run_mode": context.run_mode,
                "caller": caller,
                "dest": dest,
                "new_destination": new_dest,
                "routes": routes,
                "paths": [r["path_template"] for r in routes],
                "observed": {"requests": int(group["requests"].sum()), "routes": len(group)},
                "thresholds": {
                    "score_threshold": threshold,
                    "min_support": c.min_support,
                    "history": c.history,
                },
                "score": decision,
                "score_meaning": "IsolationForest decision_function; lower is more abnormal, "
                "below the threshold fires",
            },
        )


def _pairs_frame(summary: pa.Table) -> pd.DataFrame:
    if summary.num_rows == 0:
        return pd.DataFrame(columns=["bucket", *PAIR_KEYS, "requests"])
    frame = summary.to_pandas()
    for k in PAIR_KEYS:
        frame[k] = frame[k].astype(object).where(frame[k].notna(), "-")
    return frame.reset_index(drop=True)


def _history_frame(history: pa.Table | None) -> pd.DataFrame:
    if history is None or history.num_rows == 0:
        return pd.DataFrame(columns=[*PAIR_KEYS, "first_seen", "last_seen", "requests"])
    frame = history.to_pandas()
    for k in PAIR_KEYS:
        frame[k] = frame[k].astype(object).where(frame[k].notna(), "-")
    return frame


def _lookup(history: pd.DataFrame, frame: pd.DataFrame, column: str) -> pd.Series:
    if history.empty:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[s, UTC]")
    merged = frame[PAIR_KEYS].merge(history[[*PAIR_KEYS, column]], on=PAIR_KEYS, how="left")
    return pd.Series(merged[column].to_numpy(), index=frame.index)


def _observed(frame: pd.DataFrame, routes: pd.DataFrame, caller_dests: Any) -> pd.DataFrame:
    """Observable quantities per (pair, window), in natural units."""
    requests = frame["requests"].astype(float)
    out = pd.DataFrame(index=frame.index)
    out["requests"] = requests
    out["error_share"] = frame["errors"] / requests
    out["bytes_out_per_request"] = frame["bytes_out"] / requests
    out["bytes_in_per_request"] = frame["bytes_in"] / requests
    out["latency_ms"] = frame["duration_ns"] / requests / 1e6
    out["hour"] = pd.to_datetime(frame["bucket"]).dt.hour.astype(float)
    callers = routes.groupby(ROUTE_KEYS)["src_workload"].nunique() if len(routes) else None
    if callers is not None and len(callers):
        n = (
            frame[ROUTE_KEYS]
            .merge(callers.rename("n").reset_index(), on=ROUTE_KEYS, how="left")["n"]
            .fillna(0)
            .to_numpy()
        )
        known = frame[PAIR_KEYS].merge(routes.assign(k=1), on=PAIR_KEYS, how="left")["k"]
        out["other_callers"] = n - known.fillna(0).to_numpy()
    else:
        out["other_callers"] = 0.0
    first = pd.to_datetime(frame["first_seen"], utc=True)
    age = (pd.to_datetime(frame["bucket"], utc=True) - first).dt.total_seconds() / 3600
    out["route_age_hours"] = age.fillna(0).clip(lower=0)
    out["new_destination"] = frame["new_destination"].astype(float)
    out.attrs["keys"] = frame[PAIR_KEYS]
    return out


def _baselines(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    obs = _observed(
        frame.assign(first_seen=pd.NaT, new_destination=0.0), frame[PAIR_KEYS].iloc[0:0], None
    )[list(_BASELINED)]
    keyed = pd.concat([frame[PAIR_KEYS], obs], axis=1)
    pair = keyed.groupby(PAIR_KEYS)[list(_BASELINED)].median()
    caller = keyed.groupby("src_workload")[list(_BASELINED)].median()
    overall = {k: float(v) for k, v in obs.median().items()}
    return pair, caller, overall


def _features(
    observed: pd.DataFrame,
    pair: pd.DataFrame,
    caller: pd.DataFrame,
    overall: dict[str, float],
    age_cap_hours: float,
) -> pd.DataFrame:
    """Model inputs: ratios against the pair's baseline (or the caller's, or everybody's)."""
    keys = observed.attrs["keys"]
    base_pair = keys.merge(pair.reset_index(), on=PAIR_KEYS, how="left")
    base_caller = keys[["src_workload"]].merge(caller.reset_index(), on="src_workload", how="left")
    for k in _BASELINED:
        value = base_pair[k].fillna(base_caller[k]).fillna(overall.get(k, 0.0))
        observed[f"baseline_{k}"] = value.to_numpy()
    f = pd.DataFrame(index=observed.index)
    f["log_requests"] = np.log1p(observed["requests"])
    f["volume_vs_baseline"] = np.log(
        (observed["requests"] + 1) / (observed["baseline_requests"] + 1)
    )
    f["error_share"] = observed["error_share"]
    for name, qty in (
        ("bytes_out_vs_baseline", "bytes_out_per_request"),
        ("bytes_in_vs_baseline", "bytes_in_per_request"),
        ("latency_vs_baseline", "latency_ms"),
    ):
        f[name] = np.log((observed[qty] + 1) / (observed[f"baseline_{qty}"] + 1))
    angle = 2 * np.pi * observed["hour"] / 24
    f["hour_sin"], f["hour_cos"] = np.sin(angle), np.cos(angle)
    f["other_callers"] = np.log1p(observed["other_callers"])
    f["route_age"] = np.log1p(observed["route_age_hours"].clip(upper=age_cap_hours))
    f["new_destination"] = observed["new_destination"]
    return f[list(FEATURES)].astype(float).fillna(0.0)


def _contributions(z: pd.Series, obs: pd.Series, top: int) -> list[dict[str, Any]]:
    """The features furthest from the training centre, in robust z units, with the observed
    quantity and its baseline in natural units."""
    ranked = z.abs().sort_values(ascending=False)
    out, seen = [], set()
    for name, value in ranked.items():
        quantity = EXPLAINED_BY[name]
        if quantity in seen:
            continue
        seen.add(quantity)
        baseline = obs.get(f"baseline_{quantity}")
        out.append(
            {
                "feature": name,
                "quantity": quantity,
                "z": round(float(np.sign(z[name]) * value), 2),
                "observed": _round(obs[quantity]),
                "baseline": _round(baseline) if baseline is not None else None,
            }
        )
        if len(out) >= top:
            break
    return out


def _round(value: Any) -> float | None:
    if value is None or pd.isna(value):
        return None
    return round(float(value), 3)


def training_context(
    window: Window, history: pa.Table | None, bucket: timedelta
) -> DetectionContext:
    return DetectionContext(window=window, bucket=bucket, run_mode="training", history=history)


__all__ = ["PairModel", "UnusualPairDetector", "combine_history", "history_summary"]
_unused = datetime
