"""URL scans: one caller probing many routes that do not exist or are denied.

Per caller workload and window, weighted by ``count``: requests, distinct routes (path
templates), routes that only ever failed (401/403/404/405, and 5xx: a service that is down
answers a scan 503 throughout), distinct failed paths, error share, destinations touched, and
known scanner user agents when Calico logs them. The share is taken over *routes*, not
requests: every internet client is the one caller ``pub``, and a wordlist scan mixed into busy
legitimate traffic hardly moves the request error rate, but it multiplies the routes that only
ever failed. Path templates (not raw paths) keep a shop's thousands of product ids from looking
like a scan. OWASP CRS's ``scanners-user-agents.data``, read when the settings load
(``config.crs_list``), adds to the known agents; alerts then name it and its sha256
(``record.rule_lists``).
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from l7analytics.core.alerts import Alert, Finding
from l7analytics.core.arrowutil import map_unique
from l7analytics.core.settings import UrlScanConfig
from l7analytics.detectors.base import (
    DetectionContext,
    Detector,
    bucket_column,
    ordered_frame,
    text_or_none,
)


class UrlScanDetector(Detector):
    """Alerts on callers whose window looks like a wordlist scan or a known scanner.

    Parameters
    ----------
    config : UrlScanConfig
        Thresholds; see ``defaults/config.yaml`` for their meaning.

    ``record.score`` is the share of routes that only failed (0-1, higher is more scan-like);
    it fired when it reached ``min_error_template_share`` together with the count thresholds.
    """

    id = "l7.url_scan"
    version = "1"
    columns = (
        "end_time", "count", "src_workload", "src_namespace", "src_name_aggr", "dest", "host",
        "url_path", "path_template", "response_status", "user_agent",
    )  # fmt: skip
    keys = (
        "bucket", "src_workload", "src_namespace", "src_name_aggr", "dest", "host",
        "path_template", "error_path", "scanner_agent",
    )  # fmt: skip

    def __init__(self, config: UrlScanConfig | None = None) -> None:
        self.config = config or UrlScanConfig()
        crs = self.config.crs_list  # read when the settings loaded: no file is opened here
        agents = [a.lower() for a in self.config.scanner_user_agents]
        agents += [a.lower() for a in crs.entries] if crs is not None else []
        #: Name and sha256 of the external lists the agents came from.
        self.rule_lists: list[dict[str, str]] = [crs.ref] if crs is not None else []
        self._agents = sorted(set(agents))
        self._agent_cache: dict[str | None, str | None] = {}
        self._errors = pa.array(self.config.error_statuses, pa.int16())

    def scanner_agent(self, user_agent: str | None) -> str | None:
        """The known scanner named in a user agent, or ``None``."""
        if not user_agent:
            return None
        lowered = user_agent.lower()
        for agent in self._agents:
            if agent in lowered:
                return agent
        return None

    def summarize(self, batch: pa.Table, bucket: timedelta) -> pa.Table:
        is_error = pc.fill_null(pc.is_in(batch.column("response_status"), self._errors), False)
        error_path = pc.if_else(is_error, batch.column("url_path"), pa.scalar(None, pa.string()))
        count = pc.fill_null(batch.column("count"), 0)
        errors = pc.if_else(is_error, count, 0)
        agent = map_unique(
            batch.column("user_agent"), self.scanner_agent, pa.string(), cache=self._agent_cache
        )
        table = pa.table(
            {
                "bucket": bucket_column(batch.column("end_time"), bucket),
                **{k: batch.column(k) for k in self.keys if k in batch.column_names},
                "error_path": error_path,
                "scanner_agent": agent,
                "requests": count,
                "error_requests": errors,
            }
        )
        grouped = table.group_by(list(self.keys), use_threads=False).aggregate(
            [("requests", "sum"), ("error_requests", "sum")]
        )
        return grouped.rename_columns([n.removesuffix("_sum") for n in grouped.column_names])

    def detect(self, summary: pa.Table, context: DetectionContext) -> list[Alert]:
        if summary.num_rows == 0:
            return []
        metrics = self._metrics(summary)
        fired = [m for m in metrics.to_pylist() if self._fires(m)] if metrics.num_rows else []
        if not fired:
            return []
        # Only the callers that fired become pandas rows (the summary of a large window holds
        # one row per failing path; all of it as pandas was most of the scoring's memory).
        wanted = pa.table({"bucket": [m["bucket"] for m in fired],
                           "src_workload": [m["src_workload"] for m in fired]},
                          schema=summary.select(["bucket", "src_workload"]).schema)  # fmt: skip
        rows = summary.join(wanted, ["bucket", "src_workload"], join_type="inner")
        groups = ordered_frame(rows, self.keys).groupby(["bucket", "src_workload"], sort=True)
        alerts = []
        for m in fired:
            bucket_start, caller = pd.Timestamp(m.pop("bucket")), m.pop("src_workload")
            group = groups.get_group((bucket_start, caller))
            alerts.append(self._alert(bucket_start, caller, group, m, context))
        return alerts

    def _metrics(self, summary: pa.Table) -> pa.Table:
        """Per (bucket, caller), all at once and in Arrow: requests, errors, routes
        (destination and path template) and those that only failed, distinct failing paths,
        destinations, requests with a scanner's user agent; sorted by bucket and caller."""
        caller = ["bucket", "src_workload"]
        known = summary.filter(pc.is_valid(summary.column("src_workload")))
        routes = known.group_by([*caller, "dest", "path_template"], use_threads=False).aggregate(
            [("requests", "sum"), ("error_requests", "sum")]
        )
        only = pc.and_(
            pc.equal(routes.column("error_requests_sum"), routes.column("requests_sum")),
            pc.greater(routes.column("requests_sum"), 0),
        )
        routes = routes.append_column("error_only", pc.cast(only, pa.int64()))
        per_route = routes.group_by(caller, use_threads=False).aggregate(
            [("error_only", "count", pc.CountOptions("all")), ("error_only", "sum")]
        )
        scanner = pc.if_else(
            pc.is_valid(known.column("scanner_agent")), known.column("requests"), 0
        )
        per_caller = (
            known.append_column("scanner", scanner)
            .group_by(caller, use_threads=False)
            .aggregate(
                [
                    ("requests", "sum"),
                    ("error_requests", "sum"),
                    ("error_path", "count_distinct"),
                    ("dest", "count_distinct"),
                    ("scanner", "sum"),
                ]
            )
            .join(per_route, caller, join_type="left outer", use_threads=False)
        )
        count = {
            "requests": "requests_sum",
            "error_requests": "error_requests_sum",
            "templates": "error_only_count",
            "error_only_templates": "error_only_sum",
            "distinct_error_paths": "error_path_count_distinct",
            "destinations": "dest_count_distinct",
            "scanner_requests": "scanner_sum",
        }
        m = {k: per_caller.column(k) for k in caller}
        for name, column in count.items():
            m[name] = pc.cast(pc.fill_null(per_caller.column(column), 0), pa.int64())
        requests = pc.cast(m["requests"], pa.float64())
        share = pc.divide(pc.cast(m["error_requests"], pa.float64()), requests)
        m["error_share"] = pc.if_else(pc.greater(m["requests"], 0), share, 0.0)
        floor = pc.max_element_wise(m["templates"], self.config.min_templates)
        m["error_only_template_share"] = pc.divide(
            pc.cast(m["error_only_templates"], pa.float64()), pc.cast(floor, pa.float64())
        )
        return pa.table(m).sort_by([("bucket", "ascending"), ("src_workload", "ascending")])

    def _fires(self, m: dict[str, float]) -> bool:
        c = self.config
        wordlist = (
            m["requests"] >= c.min_requests
            and m["error_only_templates"] >= c.min_distinct_error_templates
            and m["error_only_template_share"] >= c.min_error_template_share
        )
        return wordlist or m["scanner_requests"] >= c.min_scanner_requests

    def _alert(
        self,
        bucket_start: object,
        caller: str,
        group: pd.DataFrame,
        m: dict[str, float],
        context: DetectionContext,
    ) -> Alert:
        c = self.config
        start = pd.Timestamp(bucket_start).to_pydatetime()
        probed = (
            group.dropna(subset=["error_path"])
            .groupby("error_path")["error_requests"]
            .sum()
            .sort_values(ascending=False, kind="stable")
        )
        top = [{"path": p, "requests": int(n)} for p, n in probed.head(c.top_paths).items()]
        dests = group.groupby("dest")["requests"].sum().sort_values(ascending=False, kind="stable")
        agents = sorted({a for a in group["scanner_agent"].dropna()})
        hosts = sorted({h for h in group["host"].dropna()})
        severity = scan_severity(c.severity, m["error_only_templates"], m["destinations"], agents)
        lost = _unlogged(context, start, start + context.bucket, hosts)
        description = (
            f"{caller} probed {m['error_only_templates']} routes that only failed "
            f"({m['distinct_error_paths']} distinct failing paths, "
            f"{m['error_only_template_share']:.0%} of {m['templates']} routes) with "
            f"{m['requests']} requests to {m['destinations']} destination(s); "
            f"error share {m['error_share']:.0%}"
            + (f"; scanner user agent {', '.join(agents)}" if agents else "")
            + (f"; {lost} requests on its nodes were not logged" if lost else "")
            + "."
        )
        first = group.sort_values("requests", ascending=False, kind="stable").iloc[0]
        return Alert.create(
            detector=self.id,
            entity=caller,
            window_start=start,
            window_end=start + context.bucket,
            severity=severity,
            name="URL scan",
            description=description,
            host=hosts[0] if len(hosts) == 1 else None,
            source_namespace=text_or_none(first["src_namespace"]),
            source_name_aggr=text_or_none(first["src_name_aggr"]),
            dest_service_name=_service(dests.index[0]) if len(dests) == 1 else None,
            mitre_tactic="Reconnaissance",
            mitre_ids=["T1595.003", "T1595.002"] if agents else ["T1595.003"],
            mitigations=[
                "Block or rate-limit the caller at the ingress or with a NetworkPolicy",
                "Check whether any probed path was served (2xx)",
            ],
            finding=Finding(
                detector_version=self.version,
                run_mode=context.run_mode,
                caller=caller,
                dest=None,  # a scan spans destinations: see details.destinations
                paths=[t["path"] for t in top],
                path_details=top,
                observed={k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()},
                thresholds={
                    "min_requests": c.min_requests,
                    "min_distinct_error_templates": c.min_distinct_error_templates,
                    "min_error_template_share": c.min_error_template_share,
                    "min_templates": c.min_templates,
                    "min_scanner_requests": c.min_scanner_requests,
                },
                score=round(float(m["error_only_template_share"]), 4),
                score_meaning="share of routes that only failed; higher is more scan-like",
                details={
                    "destinations": [
                        {"dest": d, "requests": int(n)} for d, n in dests.head(10).items()
                    ],
                    "hosts": hosts,
                    "source_names": sorted({n for n in group["src_name_aggr"].dropna()}),
                    "scanner_user_agents": agents,
                    "unlogged_requests_on_hosts": lost,
                    **({"rule_lists": self.rule_lists} if self.rule_lists else {}),
                },
            ),
        )


def scan_severity(base: int, error_only_routes: int, destinations: int, agents: list) -> float:
    """The rule's severity, up to 20 more for the routes that only failed (one per 25), 10
    more for a scan over three destinations or more, 10 for a known scanner's user agent.

    >>> scan_severity(60, 100, 1, [])
    64.0
    >>> scan_severity(60, 1000, 3, ["gobuster"])
    100
    """
    severity = base + min(20, error_only_routes / 25)
    severity += 10 if destinations >= 3 else 0
    return severity + (10 if agents else 0)


def _service(dest: str) -> str | None:
    return dest.split("/", 1)[-1] if isinstance(dest, str) else None


def _unlogged(context: DetectionContext, start: object, end: object, hosts: list[str]) -> int:
    """Requests Calico dropped (``unlogged``) on the caller's nodes during the window."""
    table = context.unlogged
    if table is None or table.num_rows == 0 or not hosts:
        return 0
    frame = table.to_pandas()
    in_window = (frame["end_time"] >= pd.Timestamp(start)) & (frame["end_time"] < pd.Timestamp(end))
    return int(frame.loc[in_window & frame["host"].isin(hosts), "count"].sum())


__all__ = ["UrlScanDetector"]
