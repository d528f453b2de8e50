"""What happens on top of the baseline: rollouts, CronJob runs, new products and attacks.

Everything here is decided up front from the seed (a :class:`Plan`), before any document is
generated, so the labels are known before the data and the generator can stream. Events are
either *explicit documents* for given windows (an attacker's requests, a CronJob run) or
*boosts* of a baseline flow (a known pair suddenly sending 20 times its volume), which the
generator merges into the baseline of that window so no aggregation key appears twice.

Attack volumes do not grow with ``scale``: a good detector must catch them without volume.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import numpy as np

from l7analytics.core.windows import iso
from l7analytics.evaluation.synth.app import (
    ERROR_BODY,
    App,
    blank_doc,
    calico_url,
    cronjob_name_aggr,
    diurnal,
    format_ids,
    k8s_hash,
    pod_name_aggr,
    request_stats,
)

WINDOW = 300
PER_DAY = 288
HEADER_INFO_SHARE = 0.1  # share of requests logged with a User-Agent (header info enabled)
BOUTIQUE_PRODUCTS = (
    "OLJCESPC7Z",
    "66VCHSJNUP",
    "1YMWWN1N4O",
    "L9ECAV7KIM",
    "2ZYFJ3GM2N",
    "0PUK6V6EV0",
    "LS4PSXUNUM",
    "9SIQT8TOJO",
    "6E92ZMYYFZ",
)
PUB, ING = "-/pub", "ingress-nginx/ingress-nginx-controller"
SITES = {"shop.example.com": "shop/frontend", "billing.example.com": "billing/billing-portal"}


def label_time(epoch: int) -> str:
    """ISO 8601 UTC with ``Z``, the format of every time in the labels."""
    return iso(datetime.fromtimestamp(epoch, UTC))


def load_wordlist() -> list[str]:
    """The scanner wordlist shipped with the package (comments and blanks dropped)."""
    text = (
        resources.files("l7analytics.evaluation.synth").joinpath("wordlist.txt").read_text("utf-8")
    )
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


class NameBook:
    """The pod-template hash of every Deployment in every window (rollouts change it)."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._revs: dict[str, list[tuple[int, str]]] = {k: [(-1, h)] for k, h in app.hashes.items()}

    def rollout(self, key: str, window: int, new_hash: str) -> tuple[str, str]:
        """Switch ``key`` to ``new_hash`` at ``window``; returns (old name, new name)."""
        old = self.name(key, window)
        self._revs[key].append((window, new_hash))
        self._revs[key].sort()
        return old, self.name(key, window)

    def name(self, key: str, w: int) -> str:
        """The aggregated pod name of ``key`` in window ``w`` (the new one during a rollout)."""
        wl = self._app.workloads[key]
        if wl.kind != "Deployment":
            return pod_name_aggr(wl)
        current = [h for start, h in self._revs[key] if start <= w][-1]
        return pod_name_aggr(wl, current)

    def old_name(self, key: str, w: int) -> str | None:
        """The outgoing name when a rollout happens in ``w``: both run for that window."""
        revs = self._revs.get(key, [])
        for i, (start, _) in enumerate(revs):
            if start == w and i > 0:
                return pod_name_aggr(self._app.workloads[key], revs[i - 1][1])
        return None


@dataclass
class Pending:
    """Requests of one explicit aggregation key in one window, before stats are drawn."""

    fields: dict[str, Any]
    host: int
    count: int
    bytes_in: float
    bytes_out: float
    dur_ms: float
    protected: bool


@dataclass
class Plan:
    """Everything decided before generation: names, events, labels."""

    names: NameBook
    catalog: list[str]
    catalog_size: np.ndarray  # products online, per window
    busy: dict[int, float]  # window -> user-traffic multiplier (benign bursts)
    boosts: dict[int, list[tuple[int, float, float]]]  # window -> (flow, rate x, bytes_in x)
    explicit: dict[int, list[dict[str, Any]]]  # window -> documents (no times, no host)
    labels: list[dict[str, Any]] = field(default_factory=list)


class _Docs:
    """Collects explicit requests, merging those that share an aggregation key."""

    def __init__(self, app: App, names: NameBook, rng: np.random.Generator) -> None:
        self.app, self.names, self.rng = app, names, rng
        self.pending: dict[tuple[Any, ...], Pending] = {}

    def pick_agent(self, agents: tuple[str, ...]) -> str:
        if agents and self.rng.random() < HEADER_INFO_SHARE:
            return agents[int(self.rng.integers(0, len(agents)))]
        return "-"

    def add(
        self,
        w: int,
        src: str,
        dst: str,
        path: str,
        code: str,
        count: int = 1,
        *,
        method: str = "GET",
        authority: str | None = None,
        ua: str | None = None,
        bytes_in: float = 0.0,
        bytes_out: float = 400.0,
        dur_ms: float = 8.0,
        protected: bool = True,
        src_name: str | None = None,
        proto: str = "html/1.1",
        agents: tuple[str, ...] | None = None,
    ) -> str:
        """Add ``count`` requests; returns the caller's aggregated name (for the labels).

        The request goes through the destination's Service; ``method=""`` makes a TCP record.
        """
        app, wl_src, wl_dst = self.app, self.app.workloads[src], self.app.workloads[dst]
        svc = app.services.get(wl_dst.name)
        agent = self.pick_agent(agents or wl_src.agents) if ua is None else ua
        name = src_name or self.names.name(src, w)
        url = calico_url(authority or (svc.name if svc else ""), path) if method else ""
        doc = blank_doc()
        doc.update(
            src_name_aggr=name,
            src_namespace=wl_src.namespace,
            src_type=wl_src.ep_type,
            dest_name_aggr=self.names.name(dst, w),
            dest_namespace=wl_dst.namespace,
            dest_type=wl_dst.ep_type,
            dest_port_num=svc.target_port if svc else 0,
            method=method,
            user_agent=agent,
            url=url,
            response_code=code,
            type=proto if agent != "-" else "-",
            cluster="cluster",
        )
        if svc:
            doc.update(
                dest_service_name=svc.name,
                dest_service_namespace=svc.namespace,
                dest_service_port_name=svc.port_name,
                dest_service_port=svc.port,
            )
        hosts = app.dest_hosts(dst)
        host = hosts[int(self.rng.integers(0, len(hosts)))]
        key = (w, host, *doc.values())
        if key in self.pending:
            self.pending[key].count += count
        else:
            out = bytes_out if code.startswith("2") or not code else ERROR_BODY.get(code, 40)
            self.pending[key] = Pending(doc, host, count, bytes_in, out, dur_ms, protected)
        return name

    def via_ingress(
        self, w: int, site: str, path: str, code: str, count: int = 1, **kw: Any
    ) -> None:
        """A request from the internet through ingress-nginx: logged at both hops."""
        ua = self.pick_agent(kw.pop("agents", self.app.workloads[PUB].agents))
        for src, dst in ((PUB, ING), (ING, SITES[site])):
            self.add(w, src, dst, path, code, count, authority=site, ua=ua, **kw)

    def finish(self) -> dict[int, list[dict[str, Any]]]:
        """Draw the stats of every pending document and group them by window."""
        items = list(self.pending.items())
        if not items:
            return {}
        p = [v for _, v in items]
        cnt = np.array([x.count for x in p], dtype=np.int64)
        stats = request_stats(
            self.rng,
            cnt,
            np.array([x.bytes_in for x in p]),
            np.array([x.bytes_out for x in p]),
            np.array([x.dur_ms for x in p]),
        )
        out: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for i, (key, pend) in enumerate(items):
            doc = dict(pend.fields)
            b_in, b_out, dmean, dmax, lat = (int(s[i]) for s in stats)
            doc.update(
                duration_mean=dmean,
                duration_max=dmax,
                latency=lat,
                bytes_in=b_in,
                bytes_out=b_out,
                count=pend.count,
            )
            doc["_host"], doc["_protected"] = pend.host, pend.protected
            out[key[0]].append(doc)
        return dict(out)


class Planner:
    """Builds the :class:`Plan`: benign schedule first, then the incidents."""

    def __init__(self, app: App, start: int, days: int, seed: int, scale: float) -> None:
        self.app, self.start, self.days, self.scale = app, start, days, scale
        self.rng = np.random.default_rng([seed, 7])
        self.salt = seed
        self.names = NameBook(app)
        self.docs = _Docs(app, self.names, self.rng)
        self.labels: list[dict[str, Any]] = []
        self.boosts: dict[int, list[tuple[int, float, float]]] = defaultdict(list)

    def win(self, day: int, hh: int, mm: int = 0) -> int:
        return day * PER_DAY + (hh * 60 + mm) // 5

    def label(
        self,
        kind: str,
        w0: int,
        w1: int,
        src: str,
        src_names: list[str],
        dest: str | None,
        paths: list[str],
        description: str,
        **extra: Any,
    ) -> None:
        """Record one labelled event spanning windows ``w0..w1`` (inclusive)."""
        detector = None if kind.startswith("benign") else "l7." + kind
        ns, name = src.split("/", 1)
        dest_wl = self.app.workloads[dest] if dest else None
        svc = self.app.services.get(dest_wl.name) if dest_wl else None
        self.labels.append(
            {
                "id": "",
                "kind": kind,
                "detector": detector,
                "start": label_time(self.start + w0 * WINDOW),
                "end": label_time(self.start + (w1 + 1) * WINDOW),
                "src_namespace": ns,
                "src_name_aggr": sorted(set(src_names)),
                "src_workload": f"{ns}/{name}",
                "dest_namespace": dest_wl.namespace if dest_wl else None,
                "dest_service_name": svc.name if svc else None,
                "paths": paths,
                "description": description,
                **extra,
            }
        )

    def flow_index(self, src: str, dst: str, path: str) -> int:
        for i, f in enumerate(self.app.flows):
            if f.src == src and f.dst == dst and any(p == path for p, _ in f.paths):
                return i
        raise KeyError((src, dst, path))

    def baseline_paths(self, src: str, dst: str) -> set[str]:
        """Static paths a caller already uses on a destination (scans must not collide)."""
        return {p for f in self.app.flows if f.src == src and f.dst == dst for p, _ in f.paths}

    # ---------------------------------------------------------------- benign events
    def rollouts(self, forced_day: int) -> None:
        """Deployments roll out during working hours; frontend and cartservice on ``forced_day``.

        The pod-template hash changes, so a detector keyed on the raw name sees a new caller.
        """
        rotation = (
            ("shop/checkoutservice", "shop/productcatalogservice"),
            ("billing/billing-api",),
            ("shop/shippingservice", "shop/emailservice"),
            ("billing/billing-portal", "billing/invoice-worker"),
        )
        for day in range(self.days):
            forced = day == forced_day
            keys = ("shop/frontend", "shop/cartservice") if forced else rotation[day % 4]
            hh, mm = (10, 40) if forced else (int(self.rng.integers(9, 16)), 5)
            for j, key in enumerate(keys):
                w = self.win(day, hh, mm + 10 * j)
                old, new = self.names.rollout(key, w, k8s_hash(self.rng))
                self.label(
                    "benign_rollout",
                    w,
                    w,
                    key,
                    [old, new],
                    None,
                    [],
                    f"Deployment {key} rolled out: {old} is replaced by {new}; both "
                    "names serve during this window, then only the new one.",
                    old_name_aggr=old,
                    new_name_aggr=new,
                )

    def products(self) -> tuple[list[str], np.ndarray]:
        """The product catalog: new 10-character codes go online every day around 09:00."""
        n0 = len(BOUTIQUE_PRODUCTS) + round(40 * self.scale)
        per_day = max(2, round(2 * self.scale))
        alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
        total = n0 + per_day * self.days
        codes = set(BOUTIQUE_PRODUCTS)
        catalog = list(BOUTIQUE_PRODUCTS)
        while len(catalog) < total:
            code = "".join(self.rng.choice(alphabet, 10))
            if code not in codes:
                codes.add(code)
                catalog.append(code)
        size = np.full(self.days * PER_DAY, n0, dtype=np.int64)
        for day in range(self.days):
            w = self.win(day, 9, 5 * int(self.rng.integers(0, 24)))
            size[w:] += per_day
            new = catalog[n0 + day * per_day : n0 + (day + 1) * per_day]
            self.label(
                "benign_new_ids",
                w,
                (day + 1) * PER_DAY - 1,
                PUB,
                ["pub"],
                ING,
                [f"/product/{c}" for c in new[:10]],
                f"{len(new)} new products went online; shoppers and the cache-warmer "
                "request their pages from now on (new URLs, same route).",
                also_seen_as=[_hop(ING, "frontend")],
                new_ids=new,
            )
        return catalog, size

    def cronjobs(self, catalog: list[str], size: np.ndarray) -> None:
        """cache-warmer (hourly) and db-backup (nightly): a new pod name at every run."""
        warm, backup = [], []
        for day in range(self.days):
            for hh in range(24):
                w = self.win(day, hh, 15)
                name = cronjob_name_aggr("cache-warmer", self.start + w * WINDOW)
                for pid in ["/", *(f"/product/{p}" for p in catalog[: min(20, size[w])])]:
                    warm.append(
                        self.docs.add(
                            w,
                            "shop/cache-warmer",
                            "shop/frontend",
                            pid,
                            "200",
                            src_name=name,
                            protected=False,
                            bytes_out=8100,
                            dur_ms=35,
                        )
                    )
            w = self.win(day, 2, 30)
            name = cronjob_name_aggr("db-backup", self.start + w * WINDOW)
            for what in ("invoices", "customers", "payments"):
                backup.append(
                    self.docs.add(
                        w,
                        "billing/db-backup",
                        "billing/billing-api",
                        f"/api/v1/export/{what}",
                        "200",
                        src_name=name,
                        protected=False,
                        authority="billing-api.billing:8080",
                        bytes_out=30e6 * self.scale,
                        dur_ms=25_000,
                    )
                )
            self.docs.add(
                w,
                "billing/db-backup",
                "billing/billing-db",
                "",
                "",
                method="",
                src_name=name,
                protected=False,
                bytes_in=2000,
                bytes_out=2e8,
                dur_ms=90_000,
            )
        last = self.days * PER_DAY - 1
        self.label(
            "benign_cronjob",
            0,
            last,
            "shop/cache-warmer",
            warm,
            "shop/frontend",
            ["/", "/product/" + catalog[0]],
            "Hourly CronJob warming the product page "
            "cache: its pod name carries the schedule time, new at every run.",
        )
        self.label(
            "benign_cronjob",
            0,
            last,
            "billing/db-backup",
            backup,
            "billing/billing-api",
            ["/api/v1/export/invoices", "/api/v1/export/customers"],
            "Nightly CronJob exporting billing data (large responses) and dumping Postgres.",
        )

    def monitoring_labels(self) -> None:
        """Scrapers that touch admin-ish endpoints on purpose: benign, to be allowlisted."""
        last = self.days * PER_DAY - 1
        self.label(
            "benign_monitoring",
            0,
            last,
            "monitoring/prometheus-server",
            ["prometheus-server-*"],
            "billing/billing-api",
            ["/metrics", "/actuator/prometheus"],
            "Prometheus scrapes every pod by IP "
            "every 30 s, including Spring Boot's /actuator/prometheus on billing-api.",
        )
        self.label(
            "benign_monitoring",
            0,
            last,
            "monitoring/blackbox-exporter",
            [self.names.name("monitoring/blackbox-exporter", 0)],
            "billing/billing-api",
            ["/actuator/health", "/_healthz", "/healthz", "/ready", "/grpc.health.v1.Health/Check"],
            "Blackbox exporter health probes every "
            "60 s; /actuator/health is an admin endpoint called legitimately.",
        )

    def busy_windows(self) -> dict[int, float]:
        """Two short bursts a day (a newsletter, a sale) that push nodes over the log limit."""
        busy = {}
        for day in range(self.days):
            for _ in range(2):
                busy[
                    self.win(day, int(self.rng.integers(12, 19)), 5 * int(self.rng.integers(0, 12)))
                ] = 2.5
        return busy

    # ---------------------------------------------------------------- attacks
    def restricted(self, day: int) -> None:
        """Probes of sensitive files and admin endpoints, with evasion encodings; 1-20 requests."""
        git = [
            ("/.git/config", "200", 310),
            ("/%2e%67it/config", "404", 0),
            ("/.git/HEAD", "200", 23),
            ("/foo/../.git/HEAD", "301", 0),
            ("/.env", "404", 0),
            ("//.env", "301", 0),
            ("/%252e%2565nv", "404", 0),
            ("/.env;jsessionid=1", "404", 0),
            ("/.env.", "404", 0),
        ]
        self._restricted_pub(
            self.win(day, 2, 10),
            git,
            "curl/8.4.0",
            "Internet client fetching the git repository and .env of the shop "
            "with encoding tricks; .git/config and .git/HEAD were served (200).",
        )
        misc = [
            ("/backup.sql", "404", 0),
            ("/backup.sql/", "404", 0),
            ("/id_rsa", "404", 0),
            ("/.ssh/id_rsa", "404", 0),
            ("/server-status", "403", 0),
            ("/console", "404", 0),
            ("/admin", "404", 0),
            ("/debug/pprof/", "200", 2300),
            ("/debug/pprof/goroutine", "200", 18000),
            ("/wp-config.php.bak", "404", 0),
            ("/.aws/credentials", "404", 0),
        ]
        self._restricted_pub(
            self.win(day, 17, 5),
            misc,
            "python-requests/2.31.0",
            "Internet client probing backups, keys and debug endpoints; Go's "
            "/debug/pprof/ answered 200 on the frontend.",
        )
        self._restricted_pod(self.win(day, 9, 35))

    def _restricted_pub(
        self, w0: int, reqs: list[tuple[str, str, int]], agent: str, description: str
    ) -> None:
        total = 0
        for i, (path, code, size) in enumerate(reqs):
            count = 1 + int(self.rng.random() < 0.3)
            total += count
            self.docs.via_ingress(
                w0 + 3 * i // len(reqs),
                "shop.example.com",
                path,
                code,
                count,
                agents=(agent,),
                bytes_out=size,
                dur_ms=3,
            )
        self.label(
            "restricted_url",
            w0,
            w0 + 2,
            PUB,
            ["pub"],
            ING,
            [p for p, _, _ in reqs],
            description,
            also_seen_as=[_hop(ING, "frontend")],
            requests=total,
            successes=[p for p, c, _ in reqs if c.startswith("2")],
        )

    def _restricted_pod(self, w0: int) -> None:
        """A compromised shop pod reading billing-api's Spring Boot actuator."""
        src, dst = "shop/adservice", "billing/billing-api"
        reqs = [
            ("/actuator", "200", 900),
            ("/actuator/env", "200", 7400),
            ("/ACTUATOR/ENV", "404", 0),
            ("/actuator/%65nv", "400", 0),
            ("/actuator/heapdump", "200", 48_000_000),
            ("/actuator/jolokia", "404", 0),
            ("/actuator/gateway/routes", "404", 0),
            ("/env", "404", 0),
            ("/admin", "403", 0),
        ]
        names = []
        for i, (path, code, size) in enumerate(reqs):
            names.append(
                self.docs.add(
                    w0 + 3 * i // len(reqs),
                    src,
                    dst,
                    path,
                    code,
                    authority="billing-api.billing:8080",
                    ua="-",
                    bytes_out=size,
                    dur_ms=9000 if size > 1e6 else 6,
                )
            )
        self.label(
            "restricted_url",
            w0,
            w0 + 2,
            src,
            names,
            dst,
            [p for p, _, _ in reqs],
            "Compromised adservice pod reading billing-api's actuator (env, heapdump: "
            "both answered 200) on the service port.",
            requests=len(reqs),
            successes=["/actuator", "/actuator/env", "/actuator/heapdump"],
        )

    def scans(self, day: int) -> None:
        """Content discovery from the internet (big and slow) and from a compromised pod."""
        words = load_wordlist()
        taken = self.baseline_paths(PUB, ING)
        paths = [p for p in ("/" + x for x in words) if p not in taken]
        plain = [p for p in paths if "." not in p]
        paths += [p + ext for ext in (".php", ".bak") for p in plain[:100]]  # gobuster -x
        w0 = self.win(day, 5, 0)
        bursts = [0] * 260 + [1] * 120 + [2 + int(i) for i in self.rng.integers(0, 10, 200)]
        self._scan_pub(
            w0,
            "shop.example.com",
            paths,
            bursts,
            "gobuster/3.6",
            "Directory brute force on the shop from the internet (wordlist plus "
            ".php/.bak variants): a two-window burst, partly hidden in unlogged "
            "records on the ingress nodes, then a trickle.",
        )
        slow = [paths[i] for i in sorted(self.rng.choice(len(paths), 60, replace=False))]
        self._scan_pub(
            self.win(day, 20, 0),
            "billing.example.com",
            slow,
            [i // 5 for i in range(60)],
            "Fuzz Faster U Fool v2.1.0",
            "Slow scan of the billing portal from the internet: 60 paths, five per "
            "window over an hour.",
        )
        self._scan_pod(self.win(day, 13, 0), words)

    def _scan_pub(
        self, w0: int, site: str, paths: list[str], slots: list[int], agent: str, description: str
    ) -> None:
        total = 0
        for path, slot in zip(paths, slots, strict=False):
            count = 1 + int(self.rng.random() < 0.05)
            total += count
            code = "301" if path == "/static" else "404"
            self.docs.via_ingress(
                w0 + slot, site, path, code, count, agents=(agent,), protected=False, dur_ms=2
            )
        n = min(len(paths), len(slots))
        hop = _hop(ING, self.app.workloads[SITES[site]].name)
        self.label(
            "url_scan",
            w0,
            w0 + max(slots[:n]),
            PUB,
            ["pub"],
            ING,
            paths[:10],
            description,
            also_seen_as=[hop],
            requests=total,
            distinct_paths=n,
            secondary_detectors=["l7.restricted_url"],
        )

    def _scan_pod(self, w0: int, words: list[str]) -> None:
        """recommendationservice probing four internal HTTP services; one burst window."""
        src = "shop/recommendationservice"
        targets = (
            ("billing/billing-api", "billing-api.billing:8080", 110, _spring_code),
            ("shop/frontend", "frontend", 60, _go_code),
            ("billing/billing-portal", "billing-portal.billing", 40, _go_code),
            ("logging/loki", "loki.logging:3100", 30, _go_code),
        )
        names, paths, examples = [], set(), []
        for dst, authority, n, code_of in targets:
            picks = sorted(self.rng.choice(len(words), n, replace=False))
            burst = 90 if dst == "billing/billing-api" else 0  # most of billing-api at once
            slots = [1] * burst + [int(x) for x in self.rng.integers(0, 6, n - burst)]
            for i, slot in zip(picks, slots, strict=True):
                path = "/" + words[i]
                paths.add(path)
                names.append(
                    self.docs.add(
                        w0 + slot,
                        src,
                        dst,
                        path,
                        code_of(path),
                        authority=authority,
                        ua="-",
                        protected=False,
                        dur_ms=3,
                    )
                )
            examples.append("/" + words[picks[0]])
        total = sum(t[2] for t in targets)
        self.label(
            "url_scan",
            w0,
            w0 + 5,
            src,
            names,
            "billing/billing-api",
            examples,
            "Compromised recommendationservice pod brute-forcing paths on billing-api, "
            f"frontend, billing-portal and loki ({total} URLs, one burst window).",
            requests=total,
            distinct_paths=len(paths),
            distinct_urls=total,
            dest_services=["billing-api", "frontend", "billing-portal", "loki"],
            secondary_detectors=["l7.restricted_url"],
        )

    def unusual(self, day: int) -> None:
        """Lateral movement (new pairs) and known pairs far off their baseline."""
        w0 = self.win(day, 6, 10)
        names, total = [], 0
        for w in range(w0, w0 + 12):
            for _ in range(int(self.rng.poisson(10))):
                names.append(
                    self.docs.add(
                        w,
                        "shop/recommendationservice",
                        "shop/paymentservice",
                        "/hipstershop.PaymentService/Charge",
                        "200",
                        method="POST",
                        authority="paymentservice:50051",
                        proto="html/2",
                        bytes_in=110,
                        bytes_out=45,
                        dur_ms=35,
                    )
                )
                total += 1
        self.label(
            "unusual_pair",
            w0,
            w0 + 11,
            "shop/recommendationservice",
            names,
            "shop/paymentservice",
            ["/hipstershop.PaymentService/Charge"],
            "recommendationservice calls PaymentService/Charge, a route it never used.",
            requests=total,
        )
        self._unusual_billing(self.win(day, 11, 0))
        self._boost(
            self.win(day, 15, 0),
            "shop/checkoutservice",
            "shop/emailservice",
            "/hipstershop.EmailService/SendOrderConfirmation",
            20.0,
            40.0,
            "checkoutservice sends 20x its usual volume to emailservice with 40x "
            "larger request bodies (bytes_in): data leaving by e-mail.",
        )
        self._boost(
            self.win(day, 3, 0),
            "shop/frontend",
            "shop/cartservice",
            "/hipstershop.CartService/GetCart",
            30.0,
            1.0,
            "frontend calls cartservice GetCart at 30x its volume at 3 am.",
        )

    def _unusual_billing(self, w0: int) -> None:
        """currencyservice enumerating billing customers: new pair, 200s, distinct UUIDs."""
        src, dst = "shop/currencyservice", "billing/billing-api"
        idx = self.rng.integers(0, round(5000 * self.scale), 180)
        ids = format_ids("uuid", idx, self.salt, [])
        names = []
        for k, cid in enumerate(ids):
            names.append(
                self.docs.add(
                    w0 + k * 12 // len(ids),
                    src,
                    dst,
                    f"/api/v1/customers/{cid}",
                    "200",
                    authority="billing-api.billing:8080",
                    agents=("node-fetch/1.0",),
                    bytes_out=640,
                    dur_ms=15,
                )
            )
        self.label(
            "unusual_pair",
            w0,
            w0 + 11,
            src,
            names,
            dst,
            [f"/api/v1/customers/{c}" for c in ids[:5]],
            "currencyservice reads billing customer records, a pair never seen "
            "before (180 requests in an hour, all 200).",
            requests=len(ids),
        )

    def _boost(
        self,
        w0: int,
        src: str,
        dst: str,
        path: str,
        mult: float,
        bytes_mult: float,
        description: str,
    ) -> None:
        """Multiply a baseline flow's volume for an hour (the documents merge with it)."""
        flow = self.flow_index(src, dst, path)
        rate = self.app.flows[flow].rate * self.scale
        extra = 0.0
        for w in range(w0, w0 + 12):
            self.boosts[w].append((flow, mult, bytes_mult))
            extra += rate * float(diurnal(self.start + w * WINDOW)) * (mult - 1)
        self.label(
            "unusual_pair",
            w0,
            w0 + 11,
            src,
            [self.names.name(src, w0)],
            dst,
            [path],
            description,
            baseline_multiplier=mult,
            expected_extra_requests=round(extra),
        )


def _go_code(path: str) -> str:
    return "301" if path == "/static" else "404"


def _spring_code(path: str) -> str:
    """billing-api (Spring Boot): the API and actuator need a token, health is open."""
    if path == "/actuator/health":
        return "200"
    if path.startswith(("/api", "/actuator")):
        return "401"
    return "404"


def build_plan(
    app: App, start: int, days: int, seed: int, scale: float, incident_day: int | None
) -> Plan:
    """Decide every event of the period; ``incident_day=None`` gives a benign-only dataset."""
    p = Planner(app, start, days, seed, scale)
    day = None if incident_day is None else range(days)[incident_day]
    p.rollouts(days - 1 if day is None else day)
    catalog, size = p.products()
    p.cronjobs(catalog, size)
    p.monitoring_labels()
    busy = p.busy_windows()
    if day is not None:
        p.restricted(day)
        p.scans(day)
        p.unusual(day)
    labels = sorted(p.labels, key=lambda x: (x["start"], x["kind"], x["src_workload"]))
    for i, lab in enumerate(labels, 1):
        lab["id"] = f"inc-{i:03d}"
    return Plan(p.names, catalog, size, busy, dict(p.boosts), p.docs.finish(), labels)


def _hop(src: str, service: str) -> dict[str, str]:
    """The second hop of a request relayed by ingress-nginx (logged there too)."""
    return {"src_workload": src, "dest_service_name": service}
