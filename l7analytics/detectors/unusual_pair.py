"""Unusual caller/route pairs: first-seen against history, count evidence, an IsolationForest.

A *pair* is a caller workload and a route: (destination, method, path template). Verdicts,
each explained in the alert:

- *first seen*: a known workload calls a known destination it never called in the history
  window (``history``, default 14 days, read from the lake's partition summaries, so a re-run
  or a backfill sees the same history the scheduled run saw; ElastAlert2's in-memory
  ``new_term`` does not). A destination nobody called before is a new service being deployed,
  and a caller nobody saw before is a new workload (a canary, a blue/green switch): neither is
  lateral movement by itself;
- *volume*: a known pair sent at least ``volume_ratio`` times what it would have sent had only
  its caller's overall traffic moved (a Poisson lower bound, so a few requests never make the
  claim; :func:`~l7analytics.detectors.pair_features.volume_evidence`);
- *client errors*: its 4xx share rose at least ``error_share_increase`` above its smoothed usual
  share (a Clopper-Pearson lower bound);
- *bytes*: request or response bytes per request at least ``bytes_ratio`` times usual, at
  least ``bytes_min_increase`` more, and ``deviation_threshold`` of the pair's own spreads
  above it;
- *model*: :class:`sklearn.ensemble.IsolationForest` over the relative features of
  :mod:`~l7analytics.detectors.pair_features`, trained on a past range by :meth:`fit`, below
  its learnt threshold, *and* corroborated by counts (at least ``corroboration_ratio`` of the
  volume, error or bytes claim), so an outlier the counts cannot support stays quiet.

Only increases are verdicts: a pair sending less, or a server failing its callers (5xx), is
not misuse by the caller. Pairs moving together (a surge, an outage, one namespace's batch
job) are one traffic shift (:mod:`~l7analytics.detectors.population`), reported once, never as
per-pair verdicts. Pairs with fewer than ``min_support`` requests in a window are not scored
by the volume, bytes and model verdicts.
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
from l7analytics.detectors.forest import CompiledForest
from l7analytics.detectors.pair_features import (
    FEATURES,
    PAIR_KEYS,
    Baselines,
    client_error_evidence,
    contributions,
    expected_requests,
    feature_matrix,
    observed_quantities,
    volume_evidence,
    with_totals,
)
from l7analytics.detectors.population import ShiftRule, find_shifts

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
    FORMAT: ClassVar[int] = 4

    #: Scored without scikit-learn (see :mod:`~l7analytics.detectors.forest`); a model stored
    #: before held the ``IsolationForest`` itself, which scores the same.
    forest: CompiledForest
    baselines: Baselines
    feature_center: dict[str, float]
    feature_scale: dict[str, float]
    threshold: float
    age_cap_hours: float
    training_window: tuple[str, str]
    n_rows: int
    feature_names: tuple[str, ...] = FEATURES
    params: dict[str, Any] = field(default_factory=dict)
    format: int = 4

    @property
    def version(self) -> str:
        """Deterministic from the training window, data size and parameters."""
        key = json.dumps([self.training_window, self.n_rows, self.params], sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        end = self.training_window[1].replace(":", "").replace("-", "")
        return f"{end}-{digest}"


#: Verdicts on a known pair, in the order an alert names them.
COUNT_VERDICTS = ("volume", "client_errors", "bytes_in", "bytes_out")


class UnusualPairDetector(Detector):
    """Caller/route pairs that are new to the caller or unlike its history.

    Parameters
    ----------
    config : UnusualPairConfig
        History length, minimum support, evidence thresholds, shift rule, IsolationForest
        parameters.

    Attributes
    ----------
    model_ : PairModel
        Set by :meth:`fit`, or by the pipeline from a model store; :meth:`detect` uses it
        (without one only the first-seen test runs).
    """

    id = "l7.unusual_pair"
    version = "3"
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

    def prepare(self) -> None:
        """Import SciPy's special functions (0.2 s) ahead of :meth:`detect`'s evidence."""
        import scipy.special  # noqa: F401

    @property
    def history_span(self) -> timedelta:
        return self.config.history

    @property
    def shift_rule(self) -> ShiftRule:
        c = self.config
        return ShiftRule(c.shift_share, c.shift_min_pairs, c.cluster_shift_share)

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
        client_error = pc.and_(pc.greater_equal(status, 400), pc.less(status, 500))
        table = pa.table(
            {
                "bucket": bucket_column(batch.column("end_time"), bucket),
                **{k: batch.column(k) for k in self.keys if k != "bucket"},
                "requests": count,
                "client_errors": pc.if_else(client_error, count, 0),
                "bytes_in": pc.fill_null(batch.column("bytes_in"), 0),
                "bytes_out": pc.fill_null(batch.column("bytes_out"), 0),
                "duration_ns": pc.multiply(pc.fill_null(batch.column("duration_mean"), 0), count),
            }
        )
        values = ["requests", "client_errors", "bytes_in", "bytes_out", "duration_ns"]
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
        frame = with_totals(frame)
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
        from sklearn.ensemble import IsolationForest

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
            forest=CompiledForest.of(forest),
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
        if frame.empty:
            return []
        frame = with_totals(frame)
        floor = min(c.min_support, c.min_support_first_seen)
        frame = frame[frame["requests"] >= floor].reset_index(drop=True)
        if frame.empty:
            return []
        history = _frame(context.history)
        frame["first_seen"] = _lookup(history, frame, "first_seen")
        frame["new_destination"] = _first_seen_destination(frame, history)
        frame["new_destination"] &= frame["requests"] >= c.min_support_first_seen
        observed = observed_quantities(frame, history[PAIR_KEYS].drop_duplicates())
        for verdict in (*COUNT_VERDICTS, "model", "shift"):
            frame[verdict] = False
        frame["decision"] = np.nan
        frame["evidence"] = np.nan
        z = None
        threshold = c.score_threshold
        if model is not None:
            observed = model.baselines.attach(frame, observed)
            features = self._judge(frame, observed, model, context)
            z = (features - pd.Series(model.feature_center)) / pd.Series(model.feature_scale)
            threshold = model.threshold
        fires = frame["new_destination"] | frame[[*COUNT_VERDICTS, "model"]].any(axis=1)
        alerts = []
        for (bucket, caller, dest), group in frame[fires].groupby(
            ["bucket", "src_workload", "dest"], sort=True
        ):
            explained = _Explained(
                group, observed.loc[group.index], None if z is None else z.loc[group.index]
            )
            alerts.append(self._alert(bucket, caller, dest, explained, model, threshold, context))
        return alerts + self._shift_alerts(context)

    def _judge(
        self,
        frame: pd.DataFrame,
        observed: pd.DataFrame,
        model: PairModel,
        context: DetectionContext,
    ) -> pd.DataFrame:
        """Set the count verdicts, the model verdict and the shift mark on ``frame``; return
        the standardized features (for the contributions an alert explains itself with)."""
        c = self.config
        scored = (frame["requests"] >= c.min_support) & observed["known"]
        raw = feature_matrix(observed, model.age_cap_hours)
        features = model.baselines.standardize(frame, raw)
        expected = expected_requests(frame, observed)
        observed["expected_requests"] = expected
        volume = volume_evidence(observed["requests"], expected, c.evidence_level)
        errors = client_error_evidence(
            observed["client_errors"],
            observed["requests"],
            observed["baseline_client_error_share"],
            c.evidence_level,
        )
        strength = {
            "volume": volume / c.volume_ratio,
            "client_errors": errors / c.error_share_increase,
        }
        for direction in ("in", "out"):
            quantity = f"bytes_{direction}_per_request"
            baseline = observed[f"baseline_{quantity}"]
            ratio = (observed[quantity] + 1) / (baseline + 1)
            far = features[f"bytes_{direction}_vs_baseline"] >= c.deviation_threshold
            far &= observed[quantity] - baseline >= c.bytes_min_increase
            strength[f"bytes_{direction}"] = (ratio / c.bytes_ratio).where(far, 0.0)
        inside, shifts = find_shifts(frame[scored], observed[scored], self.shift_rule)
        frame["shift"] = inside.reindex(frame.index, fill_value=False)
        context.shifts.extend(shifts)
        judged = scored & ~frame["shift"]
        best = pd.concat(strength, axis=1).fillna(0.0)
        for verdict in COUNT_VERDICTS:
            frame[verdict] = judged & (best[verdict] >= 1.0)
        decision = model.forest.decision_function(features.to_numpy())
        frame["decision"] = np.where(scored, decision, np.nan)
        corroborated = best.max(axis=1) >= c.corroboration_ratio / c.volume_ratio
        frame["model"] = judged & (frame["decision"] < model.threshold) & corroborated
        frame["evidence"] = best.max(axis=1).where(scored)
        observed["volume_evidence"] = volume
        observed["client_error_evidence"] = errors
        return features

    def _shift_alerts(self, context: DetectionContext) -> list[Alert]:
        """With ``shift_alerts``: one low-severity alert per window that had traffic shifts,
        listing them; one entity, so suppression keeps one per period."""
        if not self.config.shift_alerts or not context.shifts:
            return []
        alerts = []
        by_bucket: dict[str, list[dict[str, Any]]] = {}
        for shift in context.shifts:
            by_bucket.setdefault(shift["bucket"], []).append(shift)
        for bucket, shifts in sorted(by_bucket.items()):
            start = pd.Timestamp(bucket).to_pydatetime()
            what = "; ".join(
                f"{s['scope']} {s['key']}: {s['moved']} of {s['members']} moved "
                f"({s['typical_change']})"
                for s in shifts[:5]
            )
            alerts.append(
                Alert.create(
                    detector=self.id,
                    entity="traffic-shift",
                    window_start=start,
                    window_end=start + context.bucket,
                    severity=self.config.shift_severity,
                    name="Traffic shift",
                    description=f"Traffic moved together, one shift and no per-pair verdicts: "
                    f"{what}.",
                    finding=Finding(
                        detector_version=self.version,
                        run_mode=context.run_mode,
                        caller=None,
                        dest=None,
                        paths=[],
                        path_details=[],
                        observed={"shifts": len(shifts)},
                        thresholds={
                            "shift_share": self.config.shift_share,
                            "cluster_shift_share": self.config.cluster_shift_share,
                        },
                        score=None,
                        score_meaning="a traffic shift is not scored",
                        details={"verdicts": ["traffic_shift"], "shifts": shifts},
                    ),
                )
            )
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
        verdicts = [v for v in COUNT_VERDICTS if group[v].any()]
        if group["model"].any():
            verdicts.append("model")
        if new_dest:
            verdicts.insert(0, "first_seen_destination")
        routes = ex.routes(c.top_features)
        decision = None if group["decision"].isna().all() else float(group["decision"].min())
        evidence = None if group["evidence"].isna().all() else float(group["evidence"].max())
        severity = pair_severity(
            c.new_destination_severity if new_dest else c.severity,
            decision if "model" in verdicts else None,
            threshold,
            evidence if set(verdicts) - {"first_seen_destination"} else None,
        )
        head = routes[0]
        if new_dest:
            reason = f"{caller} called {dest}, a destination it had not called in {c.history}"
        else:
            reason = f"{caller} used {dest} unlike its own baseline"
        claims = "; ".join(ex.claims(verdicts))
        description = (
            f"{reason}: {int(group['requests'].sum())} requests on {len(group)} route(s) such "
            f"as {head['method']} {head['path_template']}"
            + (f"; {claims}" if claims else "")
            + (
                f"; model score {decision:.3f} (fires below {threshold:.3f})"
                if decision is not None
                else ""
            )
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
                    "volume_ratio": c.volume_ratio,
                    "error_share_increase": c.error_share_increase,
                    "bytes_ratio": c.bytes_ratio,
                    "evidence_level": c.evidence_level,
                    "history": str(c.history),
                },
                score=decision,
                score_meaning="IsolationForest decision_function of the most unusual route; "
                "lower is more abnormal; fires below score_threshold when the counts back it",
                details={
                    "model_version": model.version if model is not None else None,
                    "new_destination": new_dest,
                    "verdicts": verdicts,
                    "evidence": evidence,
                    "evidence_meaning": "the strongest count claim over its threshold "
                    "(1: just at the threshold); lower confidence bounds, not point estimates",
                },
            ),
        )


def pair_severity(
    base: float,
    decision: float | None,
    threshold: float,
    evidence: float | None,
) -> float:
    """The base severity (higher for a new destination), up to 30 more the further the model
    score falls below its threshold, and up to 20 more the further the counts go past their
    claim (10 per doubling).

    >>> pair_severity(50, None, 0.0, None)
    50.0
    >>> pair_severity(50, -0.05, 0.0, 4.0)
    80.0
    """
    severity = float(base)
    if decision is not None and decision < threshold:
        severity += min(30.0, (threshold - decision) * 200)
    if evidence is not None and evidence >= 1.0:
        severity += min(20.0, 10.0 * float(np.log2(evidence)))
    return severity


def _first_seen_destination(frame: pd.DataFrame, history: pd.DataFrame) -> pd.Series:
    """A known workload (it called or was called in the history) calling a known destination
    it never called in the history."""
    destinations = set(history["dest"])
    workloads = set(history["src_workload"]) | destinations
    talked = set(zip(history["src_workload"], history["dest"], strict=True))
    return pd.Series(
        [
            caller in workloads and dest in destinations and (caller, dest) not in talked
            for caller, dest in zip(frame["src_workload"], frame["dest"], strict=True)
        ],
        index=frame.index,
        dtype=bool,
    )


@dataclass
class _Explained:
    """One alert's routes with what was observed, the baselines and the contributions."""

    group: pd.DataFrame
    observed: pd.DataFrame
    z: pd.DataFrame | None

    def claims(self, verdicts: list[str]) -> list[str]:
        """The count claims behind ``verdicts``, in words, for the route that makes each."""
        obs = self.observed
        out = []
        if "volume" in verdicts:
            i = obs.loc[self.group.index[self.group["volume"]], "volume_evidence"].idxmax()
            out.append(
                f"{obs.at[i, 'requests']:.0f} requests where {obs.at[i, 'expected_requests']:.0f}"
                f" were expected from the caller's own traffic (at least "
                f"{obs.at[i, 'volume_evidence']:.1f}x)"
            )
        if "client_errors" in verdicts:
            rows = self.group.index[self.group["client_errors"]]
            i = obs.loc[rows, "client_error_evidence"].idxmax()
            out.append(
                f"{obs.at[i, 'client_errors']:.0f} of {obs.at[i, 'requests']:.0f} answered 4xx "
                f"against a usual {obs.at[i, 'baseline_client_error_share']:.1%}"
            )
        for direction in ("in", "out"):
            if f"bytes_{direction}" in verdicts:
                rows = self.group.index[self.group[f"bytes_{direction}"]]
                quantity = f"bytes_{direction}_per_request"
                i = obs.loc[rows, quantity].idxmax()
                out.append(
                    f"{obs.at[i, quantity]:.0f} bytes_{direction} per request against a usual "
                    f"{obs.at[i, 'baseline_' + quantity]:.0f}"
                )
        return out

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
                "verdicts": [v for v in (*COUNT_VERDICTS, "model") if row[v]],
                "decision": None if pd.isna(row["decision"]) else round(float(row["decision"]), 4),
                "observed": {
                    k: _num(obs.get(k))
                    for k in (
                        "requests",
                        "expected_requests",
                        "client_error_share",
                        "caller_share",
                        "dest_share",
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
