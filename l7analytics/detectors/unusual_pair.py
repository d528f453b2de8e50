"""Unusual caller/route pairs: first-seen against history, plus an IsolationForest.

A *pair* is a caller workload and a route: (destination, method, path template). Two verdicts,
both explained in the alert:

- *first seen*: a known workload calls a destination it never called in the history window
  (``history``, default 14 days, read from the lake's partition summaries, so a re-run or a
  backfill sees the same history the scheduled run saw; ElastAlert2's in-memory ``new_term``
  does not);
- *model*: :class:`sklearn.ensemble.IsolationForest` over the pair features of
  :mod:`~l7analytics.detectors.pair_features`, trained on a past range by :meth:`fit`.
  ``decision_function`` (lower is more abnormal) below the model's threshold fires. The
  threshold is learnt, the ``score_quantile`` quantile of the training scores, and never above
  ``score_threshold``, so a model trained on calm traffic does not fire on ordinary noise.

Pairs with fewer than ``min_support`` requests in a window are neither learnt nor scored:
tiny groups are where unsupervised outlier detection finds most of its false positives.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.ensemble import IsolationForest

from l7analytics.core.alerts import Alert, Finding
from l7analytics.core.errors import ModelError
from l7analytics.core.settings import UnusualPairConfig
from l7analytics.core.summary import SummarySpec
from l7analytics.core.windows import Window, iso
from l7analytics.detectors.base import (
    DetectionContext,
    Detector,
    bucket_column,
    ordered_frame,
    text_or_none,
)
from l7analytics.detectors.pair_features import (
    DEVIATIONS,
    FEATURES,
    PAIR_KEYS,
    Baselines,
    contributions,
    feature_matrix,
    observed_quantities,
)

_TS = pa.timestamp("s", tz="UTC")
HISTORY_SCHEMA = pa.schema(
    [
        *(pa.field(k, pa.string()) for k in PAIR_KEYS),
        pa.field("first_seen", _TS),
        pa.field("last_seen", _TS),
        pa.field("requests", pa.int64()),
    ]
)


#: The per-pair history the lake keeps beside every partition, so reading 14 days of history
#: means reading a few small files, not the records.
HISTORY = SummarySpec(
    keys=tuple(PAIR_KEYS),
    values={
        "first_seen": ("end_time", "min"),
        "last_seen": ("end_time", "max"),
        "requests": ("count", "sum"),
    },
)


def combine_history(tables: list[pa.Table]) -> pa.Table:
    """Merge history summaries: earliest first seen, latest last seen, summed requests."""
    if not any(t.num_rows for t in tables):
        return HISTORY_SCHEMA.empty_table()
    return HISTORY.combine(tables)


@dataclass
class PairModel:
    """What :meth:`UnusualPairDetector.fit` learns; persisted by a model store."""

    #: Bumped when the fields change, so an old pickled model is refused, not misread.
    FORMAT: ClassVar[int] = 3

    forest: IsolationForest
    baselines: Baselines
    feature_center: dict[str, float]
    feature_scale: dict[str, float]
    threshold: float
    age_cap_hours: float
    training_window: tuple[str, str]
    n_rows: int
    feature_names: tuple[str, ...] = FEATURES
    params: dict[str, Any] = field(default_factory=dict)
    format: int = 3

    @property
    def version(self) -> str:
        """Deterministic from the training window, data size and parameters."""
        key = json.dumps([self.training_window, self.n_rows, self.params], sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        end = self.training_window[1].replace(":", "").replace("-", "")
        return f"{end}-{digest}"


class UnusualPairDetector(Detector):
    """Caller/route pairs that are new to the caller or unlike its history.

    Parameters
    ----------
    config : UnusualPairConfig
        History length, minimum support, IsolationForest parameters and thresholds.

    Attributes
    ----------
    model_ : PairModel
        Set by :meth:`fit`, or by the pipeline from a model store; :meth:`detect` uses it
        (without one only the first-seen test runs).
    """

    id = "l7.unusual_pair"
    version = "2"
    columns = (
        "end_time", "count", "src_workload", "src_namespace", "src_name_aggr", "dest",
        "dest_namespace", "dest_service_name", "method", "path_template", "response_status",
        "bytes_in", "bytes_out", "duration_mean",
    )  # fmt: skip
    keys = ("bucket", *PAIR_KEYS, "src_namespace", "src_name_aggr", "dest_namespace",
            "dest_service_name")  # fmt: skip

    learns = True

    def __init__(self, config: UnusualPairConfig | None = None) -> None:
        self.config = config or UnusualPairConfig()

    @property
    def history_span(self) -> timedelta:
        return self.config.history

    def training_metadata(self, window: Window) -> dict[str, Any]:
        model = self.model_
        return {
            "training_start": iso(window.start),
            "training_end": iso(window.end),
            "rows": model.n_rows,
            "features": list(model.feature_names),
            "params": model.params,
        }

    def summarize(self, batch: pa.Table, bucket: timedelta) -> pa.Table:
        count = pc.fill_null(batch.column("count"), 0)
        status = pc.fill_null(batch.column("response_status"), 0)
        table = pa.table(
            {
                "bucket": bucket_column(batch.column("end_time"), bucket),
                **{k: batch.column(k) for k in self.keys if k != "bucket"},
                "requests": count,
                "errors": pc.if_else(pc.greater_equal(status, 400), count, 0),
                "bytes_in": pc.fill_null(batch.column("bytes_in"), 0),
                "bytes_out": pc.fill_null(batch.column("bytes_out"), 0),
                "duration_ns": pc.multiply(pc.fill_null(batch.column("duration_mean"), 0), count),
            }
        )
        values = ["requests", "errors", "bytes_in", "bytes_out", "duration_ns"]
        grouped = table.group_by(list(self.keys), use_threads=False).aggregate(
            [(v, "sum") for v in values]
        )
        return grouped.rename_columns([n.removesuffix("_sum") for n in grouped.column_names])

    # -- learning -----------------------------------------------------------------------
    def fit(self, summary: pa.Table, context: DetectionContext) -> UnusualPairDetector:
        """Learn baselines and the forest from the pair summary of a training range.

        ``context.window`` is the training range and ``context.history`` the history summary
        of the period before it (may be empty). The first ``warmup`` of the range only seeds
        "first seen"; rows after it are fitted on.
        """
        c = self.config
        frame = _frame(summary)
        if frame.empty:
            raise ModelError("unusual_pair: no traffic in the training range")
        history = _frame(context.history)
        first_in_range = frame.groupby(PAIR_KEYS)["bucket"].transform("min")
        frame["first_seen"] = _lookup(history, frame, "first_seen").fillna(first_in_range)
        routes = pd.concat([history[PAIR_KEYS], frame[PAIR_KEYS]]).drop_duplicates()
        frame = frame[frame["requests"] >= c.min_support].reset_index(drop=True)
        observed = observed_quantities(frame, routes)
        baselines = Baselines.learn(frame, observed)
        age_cap = c.warmup.total_seconds() / 3600
        raw = feature_matrix(baselines.attach(frame, observed), age_cap)
        baselines.learn_spread(frame, raw)
        features = baselines.standardize(frame, raw)
        after_warmup = frame["bucket"] >= pd.Timestamp(context.window.start + c.warmup)
        x = features.loc[after_warmup.to_numpy()]
        if len(x) < c.min_training_rows:
            raise ModelError(
                f"unusual_pair: {len(x)} (pair, window) rows after the warm-up, "
                f"{c.min_training_rows} needed; train on a longer range or lower "
                "unusual_pair.min_training_rows"
            )
        forest = IsolationForest(
            n_estimators=c.n_estimators,
            max_samples=c.max_samples,
            contamination=c.contamination,
            random_state=c.random_state,
            n_jobs=1,
        ).fit(x.to_numpy())
        scores = forest.decision_function(x.to_numpy())
        spread = (x.quantile(0.75) - x.quantile(0.25)).clip(lower=0.05)
        self.model_ = PairModel(
            forest=forest,
            baselines=baselines,
            feature_center={k: float(v) for k, v in x.median().items()},
            feature_scale={k: float(v) for k, v in spread.items()},
            threshold=min(c.score_threshold, float(np.quantile(scores, c.score_quantile))),
            age_cap_hours=age_cap,
            training_window=(iso(context.window.start), iso(context.window.end)),
            n_rows=len(x),
            params=c.model_dump(mode="json"),
        )
        return self

    # -- scoring ------------------------------------------------------------------------
    def detect(self, summary: pa.Table, context: DetectionContext) -> list[Alert]:
        model: PairModel | None = getattr(self, "model_", None)
        if model is not None and vars(model).get("format") != PairModel.FORMAT:
            raise ModelError(
                f"{self.id}: model {getattr(model, 'version', '?')} was written by "
                "an incompatible version of l7analytics; run `l7analytics train` again"
            )
        c = self.config
        frame = _frame(summary)
        floor = min(c.min_support, c.min_support_first_seen)
        frame = frame[frame["requests"] >= floor].reset_index(drop=True)
        if frame.empty:
            return []
        history = _frame(context.history)
        known = set(history["src_workload"]) | set(history["dest"])
        talked = set(zip(history["src_workload"], history["dest"], strict=True))
        frame["first_seen"] = _lookup(history, frame, "first_seen")
        frame["new_destination"] = [
            caller in known and (caller, dest) not in talked
            for caller, dest in zip(frame["src_workload"], frame["dest"], strict=True)
        ]
        frame["new_destination"] &= frame["requests"] >= c.min_support_first_seen
        supported = frame["requests"] >= c.min_support
        observed = observed_quantities(frame, history[PAIR_KEYS].drop_duplicates())
        z = None
        threshold = c.score_threshold
        frame["decision"] = np.nan
        if model is not None:
            observed = model.baselines.attach(frame, observed)
            raw = feature_matrix(observed, model.age_cap_hours)
            features = model.baselines.standardize(frame, raw)
            decision = model.forest.decision_function(features.to_numpy())
            frame["decision"] = np.where(supported, decision, np.nan)
            z = (features - pd.Series(model.feature_center)) / pd.Series(model.feature_scale)
            threshold = model.threshold
            # The rule beside the model: one quantity far above the pair's own spread fires
            # even when the forest, which splits on one random feature at a time, is unsure.
            deviation = features[list(DEVIATIONS)].max(axis=1).where(supported)
            frame["deviation"] = deviation
            frame["deviates"] = deviation >= c.deviation_threshold
        else:
            frame["deviation"] = np.nan
            frame["deviates"] = False
        fires = frame["new_destination"] | (frame["decision"] < threshold) | frame["deviates"]
        alerts = []
        for (bucket, caller, dest), group in frame[fires].groupby(
            ["bucket", "src_workload", "dest"], sort=True
        ):
            explained = _Explained(
                group, observed.loc[group.index], None if z is None else z.loc[group.index]
            )
            alerts.append(self._alert(bucket, caller, dest, explained, model, threshold, context))
        return alerts

    def _alert(
        self,
        bucket: Any,
        caller: str,
        dest: str,
        ex: _Explained,
        model: PairModel | None,
        threshold: float,
        context: DetectionContext,
    ) -> Alert:
        c = self.config
        start = pd.Timestamp(bucket).to_pydatetime()
        group = ex.group
        new_dest = bool(group["new_destination"].any())
        routes = ex.routes(c.top_features)
        decision = None if group["decision"].isna().all() else float(group["decision"].min())
        deviation = None if group["deviation"].isna().all() else float(group["deviation"].max())
        severity = pair_severity(
            c.new_destination_severity if new_dest else c.severity,
            decision,
            threshold,
            deviation,
            c.deviation_threshold,
        )
        head = routes[0]
        if new_dest:
            reason = f"{caller} called {dest}, a destination it had not called in {c.history}"
        else:
            reason = f"{caller} used {dest} unlike its own baseline"
        because = "; ".join(
            f"{k['quantity']} {k['observed']:g}"
            + (f" vs baseline {k['baseline']:g}" if k["baseline"] is not None else "")
            for k in head.get("contributions", [])
            if k["observed"] is not None
        )
        score_text = (
            f"model score {decision:.3f} (fires below {threshold:.3f}), largest "
            f"deviation {deviation:.1f} spreads (fires at {c.deviation_threshold:g})"
            if decision is not None
            else "no trained model, first-seen test only"
            if model is None
            else f"below min_support={c.min_support} for the model"
        )
        description = (
            f"{reason}: {int(group['requests'].sum())} requests on {len(group)} route(s) such "
            f"as {head['method']} {head['path_template']}; {score_text}"
            + (f"; most unusual: {because}" if because else "")
            + "."
        )
        first = group.sort_values("requests", ascending=False, kind="stable").iloc[0]
        return Alert.create(
            detector=self.id,
            entity=f"{caller}|{dest}",
            window_start=start,
            window_end=start + context.bucket,
            severity=severity,
            name="Unusual caller/route" + (" (new destination)" if new_dest else ""),
            description=description,
            source_namespace=text_or_none(first["src_namespace"]),
            source_name_aggr=text_or_none(first["src_name_aggr"]),
            dest_namespace=text_or_none(first["dest_namespace"]),
            dest_service_name=text_or_none(first["dest_service_name"]),
            mitre_tactic="Lateral Movement" if new_dest else "Collection",
            mitre_ids=["T1021", "T1210"] if new_dest else ["T1213", "T1530"],
            mitigations=[
                "Check the caller's recent deployments and credentials",
                "Restrict the caller with a NetworkPolicy to the services it needs",
            ],
            finding=Finding(
                detector_version=self.version,
                run_mode=context.run_mode,
                caller=caller,
                dest=dest,
                paths=[r["path_template"] for r in routes],
                path_details=routes,
                observed={"requests": int(group["requests"].sum()), "routes": len(group)},
                thresholds={
                    "score_threshold": threshold,
                    "min_support": c.min_support,
                    "deviation_threshold": c.deviation_threshold,
                    "history": str(c.history),
                },
                score=decision,
                score_meaning="IsolationForest decision_function of the most unusual route; "
                "lower is more abnormal; fires below score_threshold",
                details={
                    "model_version": model.version if model is not None else None,
                    "new_destination": new_dest,
                    "verdicts": [
                        v
                        for v, on in (
                            ("first_seen_destination", new_dest),
                            ("model", decision is not None and decision < threshold),
                            (
                                "deviation",
                                deviation is not None and deviation >= c.deviation_threshold,
                            ),
                        )
                        if on
                    ],
                    "deviation": deviation,
                },
            ),
        )


def pair_severity(
    base: float,
    decision: float | None,
    threshold: float,
    deviation: float | None,
    deviation_threshold: float,
) -> float:
    """The base severity (higher for a new destination), up to 30 more the further the model
    score falls below its threshold, and up to 20 more for a deviation past its threshold.

    >>> pair_severity(50, None, 0.0, None, 6.0)
    50.0
    >>> pair_severity(50, -0.05, 0.0, 8.0, 6.0)
    68.0
    """
    severity = float(base)
    if decision is not None and decision < threshold:
        severity += min(30.0, (threshold - decision) * 200)
    if deviation is not None and deviation >= deviation_threshold:
        severity += min(20.0, deviation)
    return severity


@dataclass
class _Explained:
    """One alert's routes with what was observed, the baselines and the contributions."""

    group: pd.DataFrame
    observed: pd.DataFrame
    z: pd.DataFrame | None

    def routes(self, top_features: int) -> list[dict[str, Any]]:
        out = []
        order = self.group.sort_values(
            ["decision", "requests"], ascending=[True, False], kind="stable"
        )
        for idx, row in order.head(10).iterrows():
            obs = self.observed.loc[idx]
            route = {
                "method": text_or_none(row["method"]),
                "path_template": text_or_none(row["path_template"]),
                "requests": int(row["requests"]),
                "first_seen": None if pd.isna(row["first_seen"]) else iso(row["first_seen"]),
                "new_destination": bool(row["new_destination"]),
                "decision": None if pd.isna(row["decision"]) else round(float(row["decision"]), 4),
                "observed": {
                    k: _num(obs.get(k))
                    for k in (
                        "requests",
                        "error_share",
                        "bytes_out_per_request",
                        "bytes_in_per_request",
                        "latency_ms",
                        "other_callers",
                        "route_age_hours",
                    )
                },
                "baseline": {
                    k.removeprefix("baseline_"): _num(v)
                    for k, v in obs.items()
                    if k.startswith("baseline_")
                },
            }
            if self.z is not None:
                route["contributions"] = contributions(self.z.loc[idx], obs, top_features)
            out.append(route)
        return out


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 3)


def _frame(table: pa.Table | None) -> pd.DataFrame:
    """A summary or history table as pandas, with missing key parts spelled ``-``."""
    if table is None or table.num_rows == 0:
        return pd.DataFrame(columns=[*PAIR_KEYS, "bucket", "requests", "first_seen"])
    frame = ordered_frame(table, ["bucket", *PAIR_KEYS, "src_name_aggr"])
    for key in PAIR_KEYS:
        frame[key] = frame[key].astype(object).where(frame[key].notna(), "-")
    return frame


def _lookup(history: pd.DataFrame, frame: pd.DataFrame, column: str) -> pd.Series:
    if history.empty:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[s, UTC]")
    merged = frame[PAIR_KEYS].merge(history[[*PAIR_KEYS, column]], on=PAIR_KEYS, how="left")
    return pd.Series(merged[column].to_numpy(), index=frame.index)


__all__ = ["HISTORY", "PairModel", "UnusualPairDetector", "combine_history"]
