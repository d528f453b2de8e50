"""Restricted-URL access: requests for sensitive files and admin or debug endpoints.

Rules match the *normalized* path (:func:`l7analytics.core.urls.normalize_path`), so
``/%2e%67it/config``, ``//.env`` or ``/a/../.git/HEAD`` cannot slip past a plain string
match, and a request answered 2xx (the file was served) is more severe than a denied one
(Wazuh's 31106 idea). Rules can be scoped to destination namespaces and services, restricted to
methods, and allow named callers (the monitoring stack may read ``/metrics``). OWASP CRS's
``restricted-files.data``, read when the settings load (``config.crs_list``), is one more rule,
and its alerts name the list and its sha256 (``record.rule_lists``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from l7analytics.core.alerts import Alert, Finding
from l7analytics.core.settings import RestrictedRule, RestrictedUrlConfig
from l7analytics.core.urls import normalize_path, normalize_paths
from l7analytics.detectors.base import (
    DetectionContext,
    Detector,
    bucket_column,
    glob_mask,
    glob_regex,
    ordered_frame,
    text_or_none,
)

#: The rule made of OWASP CRS's ``restricted-files.data``.
CRS_RULE_ID = "crs-restricted-files"


def _rule_regex(rule: RestrictedRule) -> re.Pattern[str]:
    parts = []
    for prefix in rule.prefix:
        escaped = re.escape(prefix.rstrip("/") if prefix != "/" else prefix)
        parts.append(f"^{escaped}" if prefix.endswith("/") else f"^{escaped}(?:/|$)")
    parts += [glob_regex(g) for g in rule.glob]
    parts += list(rule.regex)
    parts += [re.escape(c) for c in rule.contains]
    flags = 0 if rule.case_sensitive else re.IGNORECASE
    return re.compile("|".join(f"(?:{p})" for p in parts), flags)


#: Paths on which RE2 and Python's ``re`` give the same answer for the rules' patterns:
#: printable ASCII (no newline, before which Python's ``$`` matches too; no case folding
#: beyond ASCII, such as the Kelvin sign's).
_PLAIN_ASCII = r"^[\x20-\x7e]*$"


def _re2_pattern(compiled: _CompiledRule) -> str | None:
    """The rule's pattern for Arrow's RE2, or None: a rule with a ``regex`` of the user's
    stays with Python's ``re`` (the two read some syntax differently, ``a{,3}`` for one);
    prefixes, globs and ``contains`` are escaped literals, ``.*`` and anchors, which they
    read alike."""
    import pyarrow.lib

    if compiled.rule.regex:
        return None
    pattern = compiled.pattern.pattern
    try:
        pc.match_substring_regex(pa.array(["/"]), pattern)
    except pyarrow.lib.ArrowInvalid:
        return None
    return pattern


def _any_of(patterns: list[tuple[str | None, bool]]) -> str | None:
    """One RE2 pattern matching where any of ``patterns`` (pattern, ignore case) matches."""
    groups = [f"(?{'i' if fold else ''}:{p})" for p, fold in patterns if p is not None]
    return "|".join(groups) or None


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    rule: RestrictedRule
    pattern: re.Pattern[str]


class RestrictedUrlDetector(Detector):
    """Alerts on every caller that requested a path a rule restricts.

    Parameters
    ----------
    config : RestrictedUrlConfig
        Rules, the 2xx severity boost and whether to load OWASP CRS's list.

    One alert per (caller workload, destination, rule) and window; ``severity`` is the rule's,
    plus ``success_severity_boost`` when any matching request was answered 2xx.
    """

    id = "l7.restricted_url"
    version = "2"
    columns = (
        "end_time", "count", "src_workload", "src_namespace", "src_name_aggr", "dest",
        "dest_namespace", "dest_name_aggr", "dest_service_name", "host", "method", "url_path",
        "response_status",
    )  # fmt: skip
    keys = (
        "bucket", "rule_id", "src_workload", "src_namespace", "src_name_aggr", "dest",
        "dest_namespace", "dest_name_aggr", "dest_service_name", "host", "method", "url_path",
        "normalized_path", "response_status",
    )  # fmt: skip

    def __init__(self, config: RestrictedUrlConfig | None = None) -> None:
        self.config = config or RestrictedUrlConfig()
        rules = list(self.config.all_rules)
        crs = self.config.crs_list  # read when the settings loaded: no file is opened here
        #: Name and sha256 of the external lists the rules were built from.
        self.rule_lists: list[dict[str, str]] = [crs.ref] if crs is not None else []
        #: Rule id -> the lists it came from, recorded in its alerts.
        self._rule_lists: dict[str, list[dict[str, str]]] = {}
        if crs is not None and crs.entries:
            rules.append(
                RestrictedRule(
                    id=CRS_RULE_ID,
                    description="a file OWASP CRS lists as restricted",
                    contains=list(crs.entries),
                    severity=self.config.crs_severity,
                    mitre_ids=["T1595.003"],
                )
            )
            self._rule_lists[CRS_RULE_ID] = [crs.ref]
        self._rules = [_CompiledRule(r, _rule_regex(r)) for r in rules]
        # One pass with every rule's pattern first: most paths match none of them.
        self._any = (
            re.compile("|".join(f"(?:{c.pattern.pattern})" for c in self._rules), re.IGNORECASE)
            if self._rules
            else None
        )
        self._by_id = {c.rule.id: c.rule for c in self._rules}
        #: Each rule's pattern as Arrow's RE2 runs it; None where RE2 refuses it (a lookahead,
        #: say) or the rule has a regex of the user's: that rule is matched by Python's ``re``.
        self._re2 = [_re2_pattern(c) for c in self._rules]
        #: Every RE2 pattern in one alternation, each with its rule's case flag: the prefilter.
        self._re2_any = _any_of(
            [(p, not c.rule.case_sensitive) for c, p in zip(self._rules, self._re2, strict=True)]
        )

    @property
    def rules(self) -> list[RestrictedRule]:
        return [c.rule for c in self._rules]

    def match_path(self, path: str | None) -> tuple[str | None, str]:
        """``(normalized path, comma-joined ids of the rules whose pattern matches)``."""
        normalized = normalize_path(path)
        return normalized, self._rule_ids(normalized)

    def match_paths(self, paths: pa.Array) -> tuple[pa.Array, pa.Array]:
        """:meth:`match_path` of every value of ``paths`` (their distinct values), vectorized:
        paths normalized by :func:`normalize_paths`; rules matched by Arrow's RE2 on plain
        ASCII paths, where RE2 and Python's ``re`` agree on these patterns, and by Python's
        ``re`` on the others and for the rules RE2 does not run. Returns ``(normalized
        paths, comma-joined rule ids)``."""
        normalized = normalize_paths(paths)
        n = len(normalized)
        plain = pc.fill_null(pc.match_substring_regex(normalized, _PLAIN_ASCII), False)
        plain = plain.to_numpy(zero_copy_only=False)
        hits = np.zeros((len(self._rules), n), dtype=bool)
        values = None
        # One RE2 pass for every rule RE2 runs finds the few candidate paths; each rule then
        # runs on the candidates only (7 passes over every distinct path cost 4x as much).
        candidates = np.zeros(n, dtype=bool)
        if self._re2_any is not None:
            matched = pc.match_substring_regex(normalized, self._re2_any)
            candidates = pc.fill_null(matched, False).to_numpy(zero_copy_only=False) & plain
        at = pa.array(np.flatnonzero(candidates))
        few = normalized.take(at)
        for i, (compiled, re2) in enumerate(zip(self._rules, self._re2, strict=True)):
            if re2 is not None:
                ignore_case = not compiled.rule.case_sensitive
                matched = pc.match_substring_regex(few, re2, ignore_case=ignore_case)
                hits[i][at.to_numpy()] = pc.fill_null(matched, False).to_numpy(zero_copy_only=False)
            else:
                values = normalized.to_pylist() if values is None else values
                search = compiled.pattern.search
                hits[i] = [
                    bool(ok and p is not None and search(p))
                    for p, ok in zip(values, plain, strict=True)
                ]
        rules = [""] * n
        for j in np.flatnonzero(~plain).tolist():  # control or non-ASCII characters: Python
            rules[j] = self._rule_ids(normalized[j].as_py())
        ids = [c.rule.id for c in self._rules]
        for j in np.flatnonzero(hits.any(axis=0)).tolist():
            rules[j] = ",".join(ids[i] for i in np.flatnonzero(hits[:, j]).tolist())
        return normalized, pa.array(rules, type=pa.string())

    def _rule_ids(self, normalized: str | None) -> str:
        if normalized is None or self._any is None or not self._any.search(normalized):
            return ""
        return ",".join(c.rule.id for c in self._rules if c.pattern.search(normalized))

    def summarize(self, batch: pa.Table, bucket: timedelta) -> pa.Table:
        paths = batch.column("url_path").combine_chunks()
        encoded = paths if pa.types.is_dictionary(paths.type) else pc.dictionary_encode(paths)
        normalized, rule_ids = self.match_paths(encoded.dictionary)
        rule_ids = rule_ids.take(encoded.indices)
        candidate = pc.fill_null(pc.not_equal(rule_ids, ""), False)
        if not pc.any(candidate).as_py():
            return self._empty()
        rows = batch.filter(candidate)
        rows = rows.append_column(
            "normalized_path", normalized.take(encoded.indices).filter(candidate)
        )
        rows = rows.append_column("rule_ids", rule_ids.filter(candidate))
        parts = []
        for compiled in self._rules:
            rule = compiled.rule
            listed = pc.match_substring_regex(
                rows.column("rule_ids"), f"(^|,){re.escape(rule.id)}(,|$)"
            )
            mask = listed.to_numpy(zero_copy_only=False) & self._in_scope(rows, rule)
            if mask.any():
                hit = rows.filter(pa.array(mask))
                parts.append(hit.append_column("rule_id", pa.array([rule.id] * hit.num_rows)))
        if not parts:
            return self._empty()
        hits = pa.concat_tables(parts)
        hits = hits.append_column("bucket", bucket_column(hits.column("end_time"), bucket))
        hits = hits.append_column("records", pa.array(np.ones(hits.num_rows, dtype=np.int64)))
        grouped = (
            hits.select([*self.keys, "count", "records"])
            .group_by(list(self.keys), use_threads=False)
            .aggregate([("count", "sum"), ("records", "sum")])
        )
        return grouped.rename_columns(
            [
                {"count_sum": "requests", "records_sum": "records"}.get(n, n)
                for n in grouped.column_names
            ]
        )

    def _in_scope(self, rows: pa.Table, rule: RestrictedRule) -> np.ndarray:
        mask = glob_mask(rows.column("dest_namespace"), rule.dest_namespaces)
        mask &= glob_mask(rows.column("dest_service_name"), rule.dest_services)
        if rule.methods:
            allowed = [m.upper() for m in rule.methods]
            mask &= glob_mask(pc.utf8_upper(rows.column("method")), allowed)
        if rule.allowed_callers:
            mask &= ~glob_mask(rows.column("src_workload"), rule.allowed_callers)
        return mask

    def _empty(self) -> pa.Table:
        fields = [pa.field(k, pa.string()) for k in self.keys]
        fields[0] = pa.field("bucket", pa.timestamp("s", tz="UTC"))
        fields[self.keys.index("response_status")] = pa.field("response_status", pa.int16())
        return pa.schema(
            [*fields, pa.field("requests", pa.int64()), pa.field("records", pa.int64())]
        ).empty_table()

    def detect(self, summary: pa.Table, context: DetectionContext) -> list[Alert]:
        if summary.num_rows == 0:
            return []
        frame = ordered_frame(summary, self.keys)
        frame["success"] = frame["response_status"].fillna(0).between(200, 299)
        alerts = []
        for key, group in frame.groupby(
            ["bucket", "src_workload", "dest"], sort=True, dropna=False
        ):
            alerts.append(self._alert(key, group, context))
        return alerts

    def _matched_rules(self, group: pd.DataFrame) -> list[dict]:
        """Every rule the group matched, most severe first: its requests, how many were
        answered 2xx, and its severity with the success boost."""
        out = []
        for rule_id, hits in group.groupby("rule_id", sort=True):
            rule = self._by_id[rule_id]
            succeeded = int(hits.loc[hits["success"], "requests"].sum())
            boost = self.config.success_severity_boost if succeeded else 0
            out.append(
                {
                    "rule": rule,
                    "requests": int(hits["requests"].sum()),
                    "succeeded": succeeded,
                    "severity": access_severity(rule.severity, boost),
                    "boost": boost,
                }
            )
        return sorted(out, key=lambda r: (-r["severity"], r["rule"].id))

    def _alert(self, key: tuple, group: pd.DataFrame, context: DetectionContext) -> Alert:
        bucket_start, caller, dest = key
        rules = self._matched_rules(group)
        lead = rules[0]
        rule = lead["rule"]
        requests = int(group["requests"].sum())
        succeeded = int(group.loc[group["success"], "requests"].sum())
        paths = (
            group.groupby(["url_path", "normalized_path"], dropna=False)
            .agg(
                requests=("requests", "sum"),
                statuses=("response_status", lambda s: sorted({int(v) for v in s.dropna()})),
                rules=("rule_id", lambda s: sorted(set(s))),
            )
            .reset_index()
            .sort_values(["requests", "url_path"], ascending=[False, True], kind="stable")
        )
        examples = ", ".join(paths["url_path"].head(3))
        outcome = f"{succeeded} answered 2xx" if succeeded else "none answered 2xx"
        dest_text = dest if isinstance(dest, str) else "an unknown destination"
        # Calico's ExcludeL7SourceInfo (or a hostile document) leaves the caller unknown.
        caller_text = caller if isinstance(caller, str) else "an unknown caller"
        start = pd.Timestamp(bucket_start).to_pydatetime()
        what = rule.description
        if len(rules) > 1:
            what += f" and {len(rules) - 1} more kind(s) of restricted path"
        description = (
            f"{caller_text} requested {what} on {dest_text}: {requests} requests to "
            f"{len(paths)} path(s) such as {examples}; {outcome}."
        )
        first = group.sort_values("requests", ascending=False, kind="stable").iloc[0]
        lists = [ref for r in rules for ref in self._rule_lists.get(r["rule"].id, [])]
        return Alert.create(
            detector=self.id,
            entity=f"{text_or_none(caller) or '-'}|{text_or_none(dest) or '-'}",
            window_start=start,
            window_end=start + context.bucket,
            severity=lead["severity"],
            name=f"Restricted URL access: {rule.id}"
            + (f" (+{len(rules) - 1} rules)" if len(rules) > 1 else ""),
            description=description,
            host=text_or_none(first["host"]),
            source_namespace=text_or_none(first["src_namespace"]),
            source_name_aggr=text_or_none(first["src_name_aggr"]),
            dest_namespace=text_or_none(first["dest_namespace"]),
            dest_name_aggr=text_or_none(first["dest_name_aggr"]),
            dest_service_name=text_or_none(first["dest_service_name"]),
            mitre_tactic=(
                "Initial Access"
                if succeeded and rule.mitre_tactic == "Reconnaissance"
                else rule.mitre_tactic
            ),
            mitre_ids=sorted({m for r in rules for m in r["rule"].mitre_ids}),
            mitigations=list(dict.fromkeys(m for r in rules for m in r["rule"].mitigations)),
            finding=Finding(
                detector_version=self.version,
                run_mode=context.run_mode,
                caller=text_or_none(caller),
                dest=text_or_none(dest),
                paths=list(paths["url_path"].head(20)),
                path_details=[
                    {
                        "path": r.url_path,
                        "normalized": r.normalized_path,
                        "requests": int(r.requests),
                        "statuses": r.statuses,
                        "rules": r.rules,
                    }
                    for r in paths.head(20).itertuples()
                ],
                observed={
                    "requests": requests,
                    "succeeded_requests": succeeded,
                    "distinct_paths": len(paths),
                    "rules": len(rules),
                },
                thresholds={"rule_severity": rule.severity, "success_boost": lead["boost"]},
                score=float(min(100, lead["severity"])),
                score_meaning="the most severe matched rule's severity plus the success boost; "
                "higher is worse",
                details={
                    "rule_id": rule.id,
                    "rule_description": rule.description,
                    "rule_ids": [r["rule"].id for r in rules],
                    "rules": [
                        {
                            "id": r["rule"].id,
                            "description": r["rule"].description,
                            "severity": r["severity"],
                            "requests": r["requests"],
                            "succeeded_requests": r["succeeded"],
                        }
                        for r in rules
                    ],
                    "methods": sorted({m for m in group["method"].dropna()}),
                    "source_names": sorted({n for n in group["src_name_aggr"].dropna()}),
                    **({"rule_lists": lists} if lists else {}),
                },
            ),
        )


def access_severity(rule_severity: int, success_boost: int) -> int:
    """The rule's severity, raised when a restricted path answered 2xx (it was served).

    >>> access_severity(70, 0), access_severity(70, 20)
    (70, 90)
    """
    return rule_severity + success_boost
