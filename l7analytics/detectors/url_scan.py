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

import numpy as np
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
        frame = ordered_frame(summary, self.keys)
        metrics = self._metrics(frame)
        alerts = []
        groups = frame.groupby(["bucket", "src_workload"], sort=True)
        for (bucket_start, caller), m in metrics.to_dict(orient="index").items():  # native types
            if self._fires(m):
                group = groups.get_group((bucket_start, caller))
                alerts.append(self._alert(bucket_start, caller, group, m, context))
        return alerts

    def _metrics(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per (bucket, caller), all at once: requests, errors, routes (destination and path
        template) and those that only failed, distinct failing paths, destinations, requests
        with a scanner's user agent."""
        caller = ["bucket", "src_workload"]
        routes = frame.groupby([*caller, "dest", "path_template"], dropna=False, sort=False)[
            ["requests", "error_requests"]
        ].sum()
        routes = routes[routes.index.get_level_values("src_workload").notna()]
        error_only = (routes["error_requests"] == routes["requests"]) & (routes["requests"] > 0)
        by_caller = frame.groupby(caller, sort=True)
        m = by_caller[["requests", "error_requests"]].sum()
        per_route = routes.groupby(level=caller)
        m["templates"] = per_route.size()
        m["error_only_templates"] = error_only.groupby(level=caller).sum()
        m["distinct_error_paths"] = by_caller["error_path"].nunique()
        m["destinations"] = by_caller["dest"].nunique()
        scanner = frame["requests"].where(frame["scanner_agent"].notna(), 0)
        m["scanner_requests"] = scanner.groupby([frame[c] for c in caller]).sum()
        m = m.fillna(0)
        for column in m.columns:
            m[column] = m[column].astype(int)
        m["error_share"] = (m["error_requests"] / m["requests"].where(m["requests"] > 0)).fillna(0)
        m["error_only_template_share"] = m["error_only_templates"] / np.maximum(
            m["templates"], self.config.min_templates
        )
        return m

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
