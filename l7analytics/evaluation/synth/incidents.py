"""What happens on top of the baseline: rollouts, CronJob runs, new products, confounders
and attacks.

Everything here is decided up front from the seed (a :class:`Plan`), before any document is
generated, so the labels are known before the data and the generator can stream. Events are
either *explicit documents* for given windows (an attacker's requests, a CronJob run) or
*boosts* of a baseline flow (a known pair suddenly sending 20 times its volume), which the
generator merges into the baseline of that window so no aggregation key appears twice.

*Confounders* are benign shifts of the whole population, each labelled so a false alert can
be traced to its cause: a cluster-wide surge or drop of user traffic (``Plan.cluster``), an
outage (a destination answering 503) and a node drain or HPA scale-out (pods on other nodes:
``Plan.layouts``), a load spike, a canary's share or a flow that does not exist yet
(``Plan.segments``), a blue/green switch (a rename in :class:`NameBook`), a canary and a new
service (workloads and flows added to the app). They draw from their own seeded streams, so
the other events keep their times and targets. Three attacks of the incident day hide in
them: a URL scan at the diurnal peak, low-and-slow lateral movement during the surge and a
URL scan of the destination that is down.

Attack volumes do not grow with ``scale``: a good detector must catch them without volume.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import numpy as np

from l7analytics.core.windows import iso
from l7analytics.evaluation.synth.app import (
    ERROR_BODY,
    GRPC_GO,
    GRPC_JAVA,
    GRPC_PY,
    App,
    Flow,
    Service,
    Workload,
    blank_doc,
    calico_url,
    cronjob_name_aggr,
    diurnal,
    format_ids,
    grpc_flow,
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

#: Benign population shifts (confounders), in the order of their seeded streams.
CONFOUNDERS = ("surge", "drop", "outage", "hpa", "node_drain", "canary", "bluegreen", "new_service")
#: What each day of a week-long rotation gets besides its outage, so that any 7 consecutive
#: days without attacks hold every kind; the rotation starts at a seeded offset.
ROTATION = (
    ("surge", "canary"),
    ("drop", "hpa"),
    ("node_drain", "new_service"),
    ("surge", "bluegreen"),
    ("hpa", "canary"),
    ("drop", "node_drain"),
    ("surge", "hpa"),
)
OUTAGE_WINDOWS = 4  # 20 minutes
CANARY_WINDOWS = 36  # 3 hours
CANARY_SHARE = 0.1
HPA_LOAD = 2.0
NEW_SERVICE_PORT = 8080
#: Hours of the incident day the fixed attacks leave free: where its outage starts.
INCIDENT_OUTAGE_HOURS = (0, 1, 7, 8, 12, 16, 18, 19)
#: The authority a pod uses for the internal HTTP services it scans.
SCAN_AUTHORITY = {
    "billing/billing-api": "billing-api.billing:8080",
    "shop/frontend": "frontend",
    "billing/billing-portal": "billing-portal.billing",
    "logging/loki": "loki.logging:3100",
}
#: Pods compromised in the attacks hidden in confounders: they call nobody in normal operation.
HIDDEN_SOURCES = (
    "shop/productcatalogservice",
    "shop/paymentservice",
    "shop/shippingservice",
    "shop/emailservice",
)
#: Services deployed during the period, in turn: (name, gRPC service, its methods (name, rate,
#: bytes_in, bytes_out, ms), its client User-Agent, the call it makes (service, Service/Method,
#: rate, bytes_in, bytes_out, ms)). frontend calls each of them.
NEW_SERVICES: tuple[tuple[Any, ...], ...] = (
    (
        "reviewservice",
        "ReviewService",
        (("ListReviews", 300, 60, 900, 6), ("AddReview", 4, 420, 30, 12)),
        GRPC_JAVA,
        ("productcatalogservice", "ProductCatalogService/GetProduct", 200, 60, 330, 2),
    ),
    (
        "wishlistservice",
        "WishlistService",
        (("GetWishlist", 160, 60, 240, 4), ("AddToWishlist", 12, 90, 20, 6)),
        GRPC_GO,
        ("cartservice", "CartService/GetCart", 80, 60, 45, 6),
    ),
    (
        "searchservice",
        "SearchService",
        (("Search", 220, 120, 1800, 14),),
        GRPC_PY,
        ("productcatalogservice", "ProductCatalogService/SearchProducts", 220, 80, 1500, 5),
    ),
)


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
    """The aggregated pod name of every Deployment in every window.

    A Deployment's revisions are ``(first window, pod-template hash, workload name, overlap)``:
    a rollout changes the hash (and both names serve during its window), a blue/green switch
    or a re-created canary changes the name and the hash at once, with no overlap.
    """

    def __init__(self, app: App) -> None:
        self._app = app
        self._revs: dict[str, list[tuple[int, str, str, bool]]] = {}
        for key, h in app.hashes.items():
            self.add(key, h)

    def add(self, key: str, pod_hash: str) -> None:
        """Register a Deployment (one added after the app was built: canary, new service)."""
        self._revs[key] = [(-1, pod_hash, self._app.workloads[key].name, False)]

    def rollout(self, key: str, window: int, new_hash: str) -> tuple[str, str]:
        """Switch ``key`` to ``new_hash`` at ``window``; returns (old name, new name)."""
        old = self.name(key, window)
        self._insert(key, (window, new_hash, self.base(key, window), True))
        return old, self.name(key, window)

    def rename(self, key: str, window: int, base: str, new_hash: str) -> tuple[str, str]:
        """From ``window`` on the pods of ``key`` are a Deployment named ``base``."""
        old = self.name(key, window)
        self._insert(key, (window, new_hash, base, False))
        return old, self.name(key, window)

    def _insert(self, key: str, rev: tuple[int, str, str, bool]) -> None:
        self._revs[key].append(rev)
        self._revs[key].sort()

    def _rev(self, key: str, w: int) -> tuple[int, str, str, bool]:
        return [r for r in self._revs[key] if r[0] <= w][-1]

    def base(self, key: str, w: int) -> str:
        """The workload name of ``key`` in window ``w`` (``frontend-green`` after a switch)."""
        if key not in self._revs:
            return self._app.workloads[key].name
        return self._rev(key, w)[2]

    def workload(self, key: str, w: int) -> str:
        """``namespace/name`` as a detector derives it from the logs in window ``w``."""
        return f"{self._app.workloads[key].namespace}/{self.base(key, w)}"

    def name(self, key: str, w: int) -> str:
        """The aggregated pod name of ``key`` in window ``w`` (the new one during a rollout)."""
        wl = self._app.workloads[key]
        if wl.kind != "Deployment":
            return pod_name_aggr(wl)
        _, pod_hash, base, _ = self._rev(key, w)
        return f"{base}-{pod_hash}-*"

    def old_name(self, key: str, w: int) -> str | None:
        """The outgoing name when a rollout happens in ``w``: both run for that window."""
        revs = self._revs.get(key, [])
        for i, (start, _, _, overlap) in enumerate(revs):
            if start == w and i > 0 and overlap:
                return f"{revs[i - 1][2]}-{revs[i - 1][1]}-*"
        return None

    def spans(self, key: str, w0: int, w1: int) -> list[tuple[str, str]]:
        """(workload name, pod name) of every revision of ``key`` serving in ``w0..w1``."""
        wl = self._app.workloads[key]
        revs = self._revs.get(key)
        if wl.kind != "Deployment" or not revs:
            return [(wl.name, pod_name_aggr(wl))]
        out = []
        for i, (start, pod_hash, base, _) in enumerate(revs):
            # a rollout's window still logs the old name; a rename switches at once
            end = revs[i + 1][0] - (not revs[i + 1][3]) if i + 1 < len(revs) else w1
            if start <= w1 and end >= w0:
                out.append((base, f"{base}-{pod_hash}-*"))
        return out


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


@dataclass(frozen=True)
class Layout:
    """Where destination pods run and which destinations are down, in one window.

    ``pods`` overrides the app's placement for some workloads (a drained node, HPA pods):
    ``(workload, ((node, pod IP), ...))``; ``outages`` lists destinations answering 503.
    """

    pods: tuple[tuple[str, tuple[tuple[int, str], ...]], ...] = ()
    outages: tuple[str, ...] = ()


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
    cluster: dict[int, float] = field(default_factory=dict)  # window -> surge/drop multiplier
    #: (flows, first window, end window exclusive, rate multiplier): HPA load, canary split,
    #: flows that do not exist yet (0).
    segments: list[tuple[np.ndarray, int, int, float]] = field(default_factory=list)
    layouts: dict[int, Layout] = field(default_factory=dict)  # windows off the app's layout
    base_flows: int = 0  # flows of the app as built; later ones belong to confounders
    _day: int = field(default=-1, repr=False)
    _mult: np.ndarray = field(default_factory=lambda: np.ones((0, 0)), repr=False)

    def flow_mult(self, k: int, n_flows: int) -> np.ndarray:
        """Rate multiplier of every flow in window ``k`` (one day is computed at a time)."""
        day = k // PER_DAY
        if day != self._day or self._mult.shape[1] != n_flows:
            d0 = day * PER_DAY
            mult = np.ones((PER_DAY, n_flows))
            for flows, w0, w1, m in self.segments:
                a, b = max(w0, d0), min(w1, d0 + PER_DAY)
                if a < b:
                    mult[a - d0 : b - d0, flows] *= m
            self._day, self._mult = day, mult
        return self._mult[k - day * PER_DAY]


class _Docs:
    """Collects explicit requests, merging those that share an aggregation key."""

    def __init__(
        self, app: App, names: NameBook, rng: np.random.Generator, layouts: dict[int, Layout]
    ) -> None:
        self.app, self.names, self.rng, self.layouts = app, names, rng, layouts
        self.pending: dict[tuple[Any, ...], Pending] = {}
        self.relay = {f.authority: f.dst for f in app.flows if f.src == ING}

    def hosts(self, dst: str, w: int) -> list[int]:
        """Nodes of the destination's pods in window ``w`` (a drain or an HPA moves them)."""
        layout = self.layouts.get(w)
        for key, pods in layout.pods if layout else ():
            if key == dst:
                return sorted({h for h, _ in pods})
        return self.app.dest_hosts(dst)

    def down(self, dst: str, authority: str | None, w: int) -> bool:
        """Whether the request's destination (or the backend ingress relays it to) is down."""
        layout = self.layouts.get(w)
        if not layout or not layout.outages:
            return False
        if dst == ING and authority in self.relay:
            dst = self.relay[authority]
        return dst in layout.outages

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
        if method and self.down(dst, authority, w):
            code = "503"
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
        hosts = self.hosts(dst, w)
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
        self.layouts: dict[int, Layout] = {}
        self.docs = _Docs(app, self.names, self.rng, self.layouts)
        self.labels: list[dict[str, Any]] = []
        self.boosts: dict[int, list[tuple[int, float, float]]] = defaultdict(list)
        # confounders (see :meth:`confounders`)
        self.base_flows = len(app.flows)
        self.cluster: dict[int, float] = {}
        self.segments: list[tuple[np.ndarray, int, int, float]] = []
        self.events: list[dict[str, Any]] = []
        self.active: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
        self.hidden: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        self.incident_surge: dict[str, Any] = {}
        self.incident_outage: dict[str, Any] = {}
        self._canaries: dict[str, dict[int, int]] = {}
        self._ip_next: dict[int, int] = defaultdict(lambda: 11)
        for ips in app.pod_ips.values():
            for ip in ips:
                h, last = (int(x) for x in ip.split(".")[2:])
                self._ip_next[h] = max(self._ip_next[h], last + 1)

    def win(self, day: int, hh: int, mm: int = 0) -> int:
        return day * PER_DAY + (hh * 60 + mm) // 5

    def label(
        self,
        kind: str,
        w0: int,
        w1: int,
        src: str | None,
        src_names: list[str],
        dest: str | None,
        paths: list[str],
        description: str,
        *,
        scope: str = "caller",
        **extra: Any,
    ) -> dict[str, Any]:
        """Record one labelled event spanning windows ``w0..w1`` (inclusive).

        ``src`` is the caller's workload key (its name at ``w0`` is the label's
        ``src_workload``: a blue/green switch renames it); ``None`` for an event of the whole
        cluster or of a node. ``scope`` says what the event is keyed on: ``caller``,
        ``destination``, ``cluster`` or ``node``.
        """
        detector = None if kind.startswith("benign") else "l7." + kind
        ns = src.split("/", 1)[0] if src else None
        dest_wl = self.app.workloads[dest] if dest else None
        svc = self.app.services.get(dest_wl.name) if dest_wl else None
        lab = {
            "id": "",
            "kind": kind,
            "detector": detector,
            "scope": scope,
            "start": label_time(self.start + w0 * WINDOW),
            "end": label_time(self.start + (w1 + 1) * WINDOW),
            "src_namespace": ns,
            "src_name_aggr": sorted(set(src_names)),
            "src_workload": self.names.workload(src, w0) if src else None,
            "dest_namespace": dest_wl.namespace if dest_wl else None,
            "dest_service_name": svc.name if svc else None,
            "paths": paths,
            "description": description,
            **extra,
        }
        self.labels.append(lab)
        return lab

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
                    f"Deployment {self.names.workload(key, w)} rolled out: {old} is replaced "
                    f"by {new}; both "
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

    # ---------------------------------------------------------------- confounders
    def crng(self, day: int, kind: str) -> np.random.Generator:
        """The seeded stream of one confounder kind on one day, apart from every other draw."""
        return np.random.default_rng([self.salt, 8, day, CONFOUNDERS.index(kind)])

    def confounders(self, incident_day: int | None) -> None:
        """Benign population shifts, decided before anything else (documents need them).

        Every day has an outage and two kinds of a week-long rotation (:data:`ROTATION`,
        seeded offset), so any 7 consecutive days without attacks hold every kind. The
        incident day has only a surge (21:00-24:00) and an outage at an hour the fixed
        attacks leave free: the attacks hidden in them are added by :meth:`hidden_attacks`.
        Labels are written last (:meth:`confounder_labels`), once every name is known.
        """
        off = int(np.random.default_rng([self.salt, 8]).integers(0, 7))
        for day in range(self.days):
            taken: set[str] = set()  # destinations already shifted that day
            if day == incident_day:
                self.incident_surge = self._shift(day, self.crng(day, "surge"), True, True)
                self.incident_outage = self._outage(day, self.crng(day, "outage"), taken, True)
                continue
            for kind in ("outage", *ROTATION[(day + off) % len(ROTATION)]):
                rng = self.crng(day, kind)
                if kind in ("surge", "drop"):
                    self._shift(day, rng, kind == "surge")
                elif kind == "outage":
                    self._outage(day, rng, taken)
                elif kind == "hpa":
                    self._hpa(day, rng, taken)
                elif kind == "node_drain":
                    self._drain(day, rng)
                elif kind == "canary":
                    self._canary(day, rng)
                elif kind == "bluegreen":
                    self._bluegreen(day, rng)
                else:
                    self._new_service(day, rng)
        self._finish_layouts()

    def _event(self, kind: str, w0: int, w1: int, **data: Any) -> dict[str, Any]:
        event = {"kind": kind, "w0": w0, "w1": w1, **data}
        self.events.append(event)
        return event

    def _time(self, day: int, rng: np.random.Generator, hours: tuple[int, int]) -> int:
        """A window on ``day`` starting in ``hours`` (whole 5-minute windows)."""
        return self.win(day, int(rng.integers(*hours)), 5 * int(rng.integers(0, 12)))

    def _shift(
        self, day: int, rng: np.random.Generator, surge: bool, incident: bool = False
    ) -> dict[str, Any]:
        """User traffic of the whole cluster x2-3 for 2-3 hours (surge) or x0.5 for 1-2 hours."""
        dur = int(rng.integers(24, 37)) if surge else int(rng.integers(12, 25))
        factor = round(float(rng.uniform(2.0, 3.0)), 2) if surge else 0.5
        if incident:  # 21:00-24:00 is the incident day's longest span free of attacks
            w0 = self.win(day, 21) + int(rng.integers(0, 36 - dur + 1))
        else:
            w0 = self._time(day, rng, (9, 19) if surge else (8, 21))
        w1 = min(w0 + dur, (day + 1) * PER_DAY) - 1
        for w in range(w0, w1 + 1):
            self.cluster[w] = self.cluster.get(w, 1.0) * factor
        return self._event("benign_surge" if surge else "benign_drop", w0, w1, factor=factor)

    def _outage_candidates(self, http: bool) -> list[str]:
        """Internal destinations with at least two callers (HTTP ones when a scan follows)."""
        callers: dict[str, set[str]] = defaultdict(set)
        for f in self.app.flows[: self.base_flows]:
            if f.service is not None and not f.tcp and f.dst != ING:
                callers[f.dst].add(f.src)
        keys = [k for k, c in callers.items() if len(c) >= 2]
        return [k for k in keys if k in SCAN_AUTHORITY] if http else keys

    def _outage(
        self, day: int, rng: np.random.Generator, taken: set[str], incident: bool = False
    ) -> dict[str, Any]:
        """A destination answers 503 to every request of every caller for 20 minutes."""
        cands = self._outage_candidates(incident)
        dst = cands[int(rng.integers(0, len(cands)))]
        if incident:
            hh = INCIDENT_OUTAGE_HOURS[int(rng.integers(0, len(INCIDENT_OUTAGE_HOURS)))]
            w0 = self.win(day, hh, 5 * int(rng.integers(0, 9)))  # over before the next hour
        else:
            w0 = self._time(day, rng, (6, 22))
        taken.add(dst)
        return self._event("benign_outage", w0, w0 + OUTAGE_WINDOWS - 1, dest=dst)

    def _hpa_candidates(self, taken: set[str]) -> list[str]:
        """Deployments behind a Service with user-driven callers and two nodes to spare."""
        out: list[str] = []
        spare = len(self.app.hosts) - 2
        for f in self.app.flows[: self.base_flows]:
            ok = f.profile == "user" and f.service is not None and not f.tcp and f.dst != ING
            if ok and f.dst not in out and f.dst not in taken:
                wl = self.app.workloads[f.dst]
                if wl.kind == "Deployment" and len(set(self.app.pod_hosts[f.dst])) <= spare:
                    out.append(f.dst)
        return out

    def _hpa(self, day: int, rng: np.random.Generator, taken: set[str]) -> dict[str, Any]:
        """A load spike: 2x the requests into one service for 1-2 hours, and the HPA scales it
        out onto two nodes it does not run on (scaled in afterwards)."""
        dur = int(rng.integers(12, 25))
        w0 = self._time(day, rng, (10, 19))
        cands = self._hpa_candidates(taken)
        key = cands[int(rng.integers(0, len(cands)))]
        free = [h for h in range(len(self.app.hosts)) if h not in self.app.pod_hosts[key]]
        extra = sorted(int(h) for h in rng.choice(free, 2, replace=False))
        pods = tuple((h, self._new_ip(h)) for h in extra)
        flows = [i for i in self.app.inbound(key) if self.app.flows[i].profile != "fixed"]
        self.segments.append((np.array(flows), w0, w0 + dur, HPA_LOAD))
        taken.add(key)
        return self._event("benign_hpa", w0, w0 + dur - 1, dest=key, pods=pods)

    def _drain(self, day: int, rng: np.random.Generator) -> dict[str, Any]:
        """``kubectl drain``: from a window to the end of the day the node's pods run elsewhere
        (new IPs), so nothing is logged on it. DaemonSets stay but log nothing there."""
        n = len(self.app.hosts)
        node = int(rng.integers(0, n))
        w0 = self._time(day, rng, (6, 21))
        moves: dict[str, tuple[tuple[int, str], ...]] = {}
        for key, wl in self.app.workloads.items():
            hosts = self.app.pod_hosts[key]
            if wl.kind in ("Net", "CronJob", "DaemonSet") or node not in hosts:
                continue
            pods: list[tuple[int, str]] = []
            for h, ip in zip(hosts, self.app.pod_ips[key], strict=True):
                if h == node:
                    used = set(hosts) | {p[0] for p in pods}
                    free = [x for x in range(n) if x not in used] or [
                        x for x in range(n) if x != node
                    ]
                    h = free[int(rng.integers(0, len(free)))]
                    ip = self._new_ip(h)
                pods.append((h, ip))
            moves[key] = tuple(pods)
        return self._event("benign_node_drain", w0, (day + 1) * PER_DAY - 1, node=node, moves=moves)

    def _caller_candidates(self) -> list[str]:
        """Deployments (not the ingress hop) whose user-driven calls reach 2+ destinations."""
        dests: dict[str, set[str]] = defaultdict(set)
        for f in self.app.flows[: self.base_flows]:
            if f.profile != "fixed":
                dests[f.src].add(f.dst)
        return [
            k
            for k, d in dests.items()
            if len(d) >= 2 and k != ING and self.app.workloads[k].kind == "Deployment"
        ]

    def _canary(self, day: int, rng: np.random.Generator) -> dict[str, Any]:
        """``<name>-canary`` takes 10 % of a caller's requests for 3 hours (a new Deployment
        with its own pod-template hash each time; its flows copy the original's)."""
        cands = self._caller_candidates()
        orig = cands[int(rng.integers(0, len(cands)))]
        w0 = self.win(day, int(rng.integers(9, 18)), 20 + 5 * int(rng.integers(0, 4)))
        w1 = w0 + CANARY_WINDOWS - 1
        wl, base = self.app.workloads[orig], self.names.base(orig, w0)
        key = f"{wl.namespace}/{base}-canary"
        if key not in self.app.workloads:
            self._add_workload(
                Workload(wl.namespace, f"{base}-canary", "Deployment", 1, wl.agents), rng
            )
        # every call the original makes now (a service deployed earlier included)
        own = [
            i
            for i, f in enumerate(self.app.flows)
            if f.src == orig and f.profile != "fixed" and self._live(i, w0, w1)
        ]
        mine = self._canaries.setdefault(key, {})  # original's flow -> the canary's copy
        new = [i for i in own if i not in mine]
        added = self._add_flows([replace(self.app.flows[i], src=key) for i in new])
        mine.update(zip(new, added, strict=True))
        copies = [mine[i] for i in own]
        self.names.rename(key, w0, f"{base}-canary", k8s_hash(rng))
        self.segments.append((np.array(own), w0, w1 + 1, 1.0 - CANARY_SHARE))
        for i in copies:
            self.active[i].append((w0, w1 + 1, CANARY_SHARE))
        return self._event("benign_canary", w0, w1, src=key, of=orig, flows=copies)

    def _bluegreen(self, day: int, rng: np.random.Generator) -> dict[str, Any]:
        """``<name>-green`` takes every request of a caller from a window to the end of the
        dataset: the Service switches to it, so it is the caller and the callee from then on."""
        cands = self._caller_candidates()
        key = cands[int(rng.integers(0, len(cands)))]
        w0 = self.win(day, int(rng.integers(9, 17)), 20 + 5 * int(rng.integers(0, 4)))
        wl = self.app.workloads[key]
        before = self.names.base(key, w0)
        color = "blue" if before == f"{wl.name}-green" else "green"
        old, new = self.names.rename(key, w0, f"{wl.name}-{color}", k8s_hash(rng))
        last = self.days * PER_DAY - 1
        return self._event(
            "benign_bluegreen", w0, last, src=key, of=f"{wl.namespace}/{before}", old=old, new=new
        )

    def _new_service(self, day: int, rng: np.random.Generator) -> dict[str, Any]:
        """A new Deployment and Service: frontend calls it from a window on, it calls one
        existing service (user-driven volumes, grown with ``scale`` like every flow)."""
        n = sum(e["kind"] == "benign_new_service" for e in self.events)
        name, grpc_name, methods, agents, down = NEW_SERVICES[n % len(NEW_SERVICES)]
        if n >= len(NEW_SERVICES):
            name += f"-v{n // len(NEW_SERVICES) + 1}"
        w0 = self._time(day, rng, (9, 17))
        grow = max(1, math.ceil(math.sqrt(self.scale)))
        replicas = min(2 * grow, len(self.app.hosts))
        key = self._add_workload(Workload("shop", name, "Deployment", replicas, agents), rng)
        self.app.services[name] = Service(name, "shop", NEW_SERVICE_PORT, "grpc", NEW_SERVICE_PORT)
        caller = "shop/frontend"
        svc, method, rate, b_in, b_out, ms = down
        flows = [
            grpc_flow(
                self.app, caller, name, f"{grpc_name}/{m}", r, bytes_in=bi, bytes_out=bo, dur_ms=d
            )
            for m, r, bi, bo, d in methods
        ]
        flows.append(
            grpc_flow(self.app, key, svc, method, rate, bytes_in=b_in, bytes_out=b_out, dur_ms=ms)
        )
        idx = self._add_flows(flows)
        end = self.days * PER_DAY
        for i in idx:
            self.active[i].append((w0, end, 1.0))
        return self._event(
            "benign_new_service",
            w0,
            end - 1,
            dest=key,
            caller=caller,
            calls=f"shop/{svc}",
            flows=idx,
        )

    def _new_ip(self, host: int) -> str:
        ip = f"10.244.{host}.{self._ip_next[host]}"
        self._ip_next[host] += 1
        return ip

    def _add_workload(self, wl: Workload, rng: np.random.Generator) -> str:
        """Place a new Deployment's pods (consecutive nodes, fresh IPs) and name it."""
        n = len(self.app.hosts)
        first = int(rng.integers(0, n))
        hosts = [(first + i) % n for i in range(max(1, wl.replicas))]
        self.app.workloads[wl.key] = wl
        self.app.pod_hosts[wl.key] = hosts
        self.app.pod_ips[wl.key] = [self._new_ip(h) for h in hosts]
        self.app.hashes[wl.key] = k8s_hash(rng)
        self.names.add(wl.key, self.app.hashes[wl.key])
        return wl.key

    def _add_flows(self, flows: list[Flow]) -> list[int]:
        first = len(self.app.flows)
        self.app.flows.extend(flows)
        return list(range(first, len(self.app.flows)))

    def _finish_layouts(self) -> None:
        """Per window, the pods a drain or an HPA moved or added, and the destinations down."""
        pods: dict[int, dict[str, tuple[tuple[int, str], ...]]] = defaultdict(dict)
        down: dict[int, set[str]] = defaultdict(set)
        for e in self.events:
            if e["kind"] == "benign_node_drain":
                for w in range(e["w0"], e["w1"] + 1):
                    pods[w].update(e["moves"])
        for e in self.events:
            if e["kind"] == "benign_hpa":
                key = e["dest"]
                own = tuple(zip(self.app.pod_hosts[key], self.app.pod_ips[key], strict=True))
                for w in range(e["w0"], e["w1"] + 1):
                    pods[w][key] = pods[w].get(key, own) + e["pods"]
            elif e["kind"] == "benign_outage":
                for w in range(e["w0"], e["w1"] + 1):
                    down[w].add(e["dest"])
        interned: dict[Layout, Layout] = {}
        for w in sorted(set(pods) | set(down)):
            layout = Layout(tuple(sorted(pods.get(w, {}).items())), tuple(sorted(down.get(w, ()))))
            self.layouts[w] = interned.setdefault(layout, layout)

    def flow_segments(self) -> list[tuple[np.ndarray, int, int, float]]:
        """Rate multipliers of the plan, with every added flow silent outside its spans."""
        end = self.days * PER_DAY
        groups: dict[tuple[tuple[int, int, float], ...], list[int]] = defaultdict(list)
        for i, spans in self.active.items():
            groups[tuple(sorted(spans))].append(i)
        segments = list(self.segments)
        for spans, flows in groups.items():
            arr, pos = np.array(sorted(flows)), 0
            for a, b, m in spans:
                if a > pos:
                    segments.append((arr, pos, a, 0.0))
                if m != 1.0:
                    segments.append((arr, a, b, m))
                pos = max(pos, b)
            if pos < end:
                segments.append((arr, pos, end, 0.0))
        return segments

    def _live(self, i: int, w0: int, w1: int) -> bool:
        spans = self.active.get(i)
        return spans is None or any(a <= w1 and b > w0 for a, b, _ in spans)

    def _identities(self, key: str, w0: int, w1: int) -> list[str]:
        ns = self.app.workloads[key].namespace
        return list(dict.fromkeys(f"{ns}/{base}" for base, _ in self.names.spans(key, w0, w1)))

    def _dest_label(self, e: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
        """A destination-scope label: the busiest direct caller as ``src_workload``, every
        other caller (the internet for relayed sites) in ``also_seen_as``."""
        dest, w0, w1 = e["dest"], e["w0"], e["w1"]
        rate: dict[str, float] = defaultdict(float)
        hops: dict[str, str] = {}
        for i in self.app.inbound(dest):
            f = self.app.flows[i]
            if self._live(i, w0, w1):
                hops.setdefault(f.src, f.service.name if f.service else "")
                if f.dst == dest:
                    rate[f.src] += f.rate
        main = max(rate, key=lambda k: rate[k])
        callers = [x for key in hops for x in self._identities(key, w0, w1)]
        mine = self.names.workload(main, w0)
        also = [
            {"src_workload": x, "dest_service_name": hops[key]}
            for key in hops
            for x in self._identities(key, w0, w1)
            if x != mine
        ]
        names = [n for _, n in self.names.spans(main, w0, w1)]
        return self.label(
            e["kind"],
            w0,
            w1,
            main,
            names,
            dest,
            [],
            description,
            scope="destination",
            callers=callers,
            also_seen_as=also,
            **extra,
        )

    def confounder_labels(self) -> None:
        """Label every confounder (after the rollouts, so the caller names are complete)."""
        hosts = self.app.hosts
        for e in self.events:
            kind, w0, w1 = e["kind"], e["w0"], e["w1"]
            if kind in ("benign_surge", "benign_drop"):
                what = "surge" if kind == "benign_surge" else "drop"
                e["label"] = self.label(
                    kind,
                    w0,
                    w1,
                    None,
                    [],
                    None,
                    [],
                    f"Cluster-wide {what}: user-driven traffic of every workload at "
                    f"{e['factor']:g}x for {(w1 - w0 + 1) * WINDOW // 60} minutes "
                    "(a campaign, an outage upstream of the users).",
                    scope="cluster",
                    multiplier=e["factor"],
                )
            elif kind == "benign_outage":
                e["label"] = self._dest_label(
                    e,
                    f"{e['dest']} is down for 20 minutes: every request to it (and every "
                    "request the ingress relays to it) is answered 503.",
                    response_code="503",
                )
            elif kind == "benign_hpa":
                nodes = [hosts[h] for h, _ in e["pods"]]
                e["label"] = self._dest_label(
                    e,
                    f"Load spike on {e['dest']}: its callers send {HPA_LOAD:g}x their requests; "
                    f"the HPA scales it out onto {', '.join(nodes)} and back in afterwards.",
                    multiplier=HPA_LOAD,
                    nodes=nodes,
                )
            elif kind == "benign_node_drain":
                moved = {
                    self.names.workload(key, w0): sorted(
                        {hosts[h] for h, _ in pods} - {hosts[h] for h in self.app.pod_hosts[key]}
                    )
                    for key, pods in e["moves"].items()
                }
                e["label"] = self.label(
                    kind,
                    w0,
                    w1,
                    None,
                    [],
                    None,
                    [],
                    f"Node {hosts[e['node']]} drained until the end of the day: its pods run "
                    "on other nodes, so their documents are logged there.",
                    scope="node",
                    node=hosts[e["node"]],
                    moved=moved,
                )
            elif kind == "benign_canary":
                flows = [self.app.flows[i] for i in e["flows"]]
                of = self.names.workload(e["of"], w0)
                e["label"] = self.label(
                    kind,
                    w0,
                    w1,
                    e["src"],
                    [self.names.name(e["src"], w0)],
                    None,
                    list(dict.fromkeys(p for f in flows for p, _ in f.paths))[:10],
                    f"Canary Deployment of {of} takes {CANARY_SHARE:.0%} of its requests for "
                    f"{CANARY_WINDOWS * WINDOW // 3600} hours (same destinations and routes).",
                    of_workload=of,
                    share=CANARY_SHARE,
                    dest_services=sorted({f.service.name for f in flows if f.service}),
                )
            elif kind == "benign_bluegreen":
                key = e["src"]
                green = self.names.base(key, w0)
                names = [n for base, n in self.names.spans(key, w0, w1) if base == green]
                e["label"] = self.label(
                    kind,
                    w0,
                    w1,
                    key,
                    names,
                    None,
                    [],
                    f"Blue/green switch: {self.names.workload(key, w0)} replaces {e['of']} "
                    "(its callers and callees) from now on; the old pods stop.",
                    of_workload=e["of"],
                    old_name_aggr=e["old"],
                    new_name_aggr=e["new"],
                    dest_services=sorted(
                        {f.service.name for f in self.app.flows if f.src == key and f.service}
                    ),
                )
            else:  # benign_new_service
                flows = [self.app.flows[i] for i in e["flows"]]
                caller, dest = e["caller"], e["dest"]
                live = dict.fromkeys(  # frontend, and a canary of it while one runs
                    self.app.flows[i].src for i in self.app.inbound(dest) if self._live(i, w0, w1)
                )
                callers = [x for key in live for x in self._identities(key, w0, w1)]
                calls = self.names.workload(e["calls"], w0)
                also = [
                    {"src_workload": x, "dest_service_name": dest.split("/")[1]}
                    for x in callers
                    if x != self.names.workload(caller, w0)
                ]
                also.append(
                    {
                        "src_workload": self.names.workload(dest, w0),
                        "dest_service_name": calls.split("/")[1],
                    }
                )
                e["label"] = self.label(
                    kind,
                    w0,
                    w1,
                    caller,
                    [n for _, n in self.names.spans(caller, w0, w1)],
                    dest,
                    [p for f in flows if f.dst == dest for p, _ in f.paths],
                    f"New service {dest} deployed: {', '.join(callers)} call it from now on "
                    f"and it calls {calls}.",
                    scope="destination",
                    callers=callers,
                    calls=[calls],
                    also_seen_as=also,
                )

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
            ("billing/billing-api", 110, _spring_code, 90),  # most of billing-api at once
            ("shop/frontend", 60, _go_code, 0),
            ("billing/billing-portal", 40, _go_code, 0),
            ("logging/loki", 30, _go_code, 0),
        )
        names, paths, examples = self._pod_scan(w0, words, src, targets, 6, self.rng)
        total = sum(t[1] for t in targets)
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

    def _pod_scan(
        self,
        w0: int,
        words: list[str],
        src: str,
        targets: tuple[tuple[str, int, Callable[[str], str], int], ...],
        windows: int,
        rng: np.random.Generator,
    ) -> tuple[list[str], set[str], list[str]]:
        """A pod requesting wordlist paths of internal HTTP services over ``windows`` windows.

        ``targets``: (destination, paths, answer of a path, how many in the second window at
        once). Returns the caller's names, the distinct paths and one example per target.
        """
        names, paths, examples = [], set(), []
        for dst, n, code_of, burst in targets:
            picks = sorted(rng.choice(len(words), n, replace=False))
            slots = [1] * burst + [int(x) for x in rng.integers(0, windows, n - burst)]
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
                        authority=SCAN_AUTHORITY[dst],
                        ua="-",
                        protected=False,
                        dur_ms=3,
                    )
                )
            examples.append("/" + words[picks[0]])
        return names, paths, examples

    def hidden_attacks(self, day: int) -> None:
        """Attacks inside the incident day's confounders, from pods that call nobody normally.

        A URL scan at the diurnal peak (14:30-15:30, the busiest hour), low-and-slow lateral
        movement during the surge, and a URL scan of the outage's destination during the outage
        (every answer 503, like everyone else's).
        """
        rng = np.random.default_rng([self.salt, 9])
        words = load_wordlist()
        srcs = [HIDDEN_SOURCES[int(i)] for i in rng.choice(len(HIDDEN_SOURCES), 3, replace=False)]
        self._peak_scan(day, srcs[0], words, rng)
        self._slow_lateral(srcs[1], rng)
        self._outage_scan(srcs[2], words, rng)

    def _peak_scan(self, day: int, src: str, words: list[str], rng: np.random.Generator) -> None:
        w0 = self.win(day, 14, 30)  # the diurnal curve peaks at 15:00
        targets = (
            ("billing/billing-api", 40, _spring_code, 0),
            ("shop/frontend", 40, _go_code, 0),
            ("billing/billing-portal", 30, _go_code, 0),
            ("logging/loki", 20, _go_code, 0),
        )
        names, paths, examples = self._pod_scan(w0, words, src, targets, 12, rng)
        total = sum(t[1] for t in targets)
        name = self.app.workloads[src].name
        lab = self.label(
            "url_scan",
            w0,
            w0 + 11,
            src,
            names,
            "billing/billing-api",
            examples,
            f"Compromised {name} pod brute-forcing paths on billing-api, frontend, "
            f"billing-portal and loki during the busiest hour of the day ({total} URLs, about "
            "ten a window, no burst).",
            requests=total,
            distinct_paths=len(paths),
            distinct_urls=total,
            dest_services=["billing-api", "frontend", "billing-portal", "loki"],
            secondary_detectors=["l7.restricted_url"],
            cover="diurnal_peak",
            hidden_in=None,
        )
        self.hidden.append((lab, None))

    def _slow_lateral(self, src: str, rng: np.random.Generator) -> None:
        """1-3 requests a window for 2 hours on a route of a service ``src`` never called."""
        surge = self.incident_surge
        called = {f.dst for f in self.app.flows if f.src == src}
        cands = [
            f
            for f in self.app.flows[: self.base_flows]
            if f.service is not None
            and not f.tcp
            and not f.template
            and f.profile == "user"
            and f.codes[0][0] == "200"
            and f.src != ING
            and f.dst not in (ING, src, self.incident_outage["dest"])
            and f.dst not in called
        ]
        f = cands[int(rng.integers(0, len(cands)))]
        path = f.paths[0][0]
        w0 = surge["w0"] + int(rng.integers(0, surge["w1"] - surge["w0"] - 22))
        names, total = [], 0
        for w in range(w0, w0 + 24):
            count = int(rng.integers(1, 4))
            total += count
            names.append(
                self.docs.add(
                    w,
                    src,
                    f.dst,
                    path,
                    "200",
                    count,
                    method=f.method,
                    authority=f.authority,
                    proto=f.proto,
                    bytes_in=f.bytes_in,
                    bytes_out=f.bytes_out,
                    dur_ms=f.dur_ms,
                )
            )
        name, dst = self.app.workloads[src].name, self.app.workloads[f.dst].name
        lab = self.label(
            "unusual_pair",
            w0,
            w0 + 23,
            src,
            names,
            f.dst,
            [path],
            f"{name} calls {dst} ({path}), a pair never seen, 1-3 requests a window for two "
            "hours while the whole cluster surges.",
            requests=total,
            cover="benign_surge",
            hidden_in=None,
        )
        self.hidden.append((lab, surge))

    def _outage_scan(self, src: str, words: list[str], rng: np.random.Generator) -> None:
        outage = self.incident_outage
        dst, w0 = outage["dest"], outage["w0"]
        targets = ((dst, 60, _unavailable, 0),)
        names, paths, examples = self._pod_scan(w0, words, src, targets, OUTAGE_WINDOWS, rng)
        name, svc = self.app.workloads[src].name, self.app.workloads[dst].name
        lab = self.label(
            "url_scan",
            w0,
            w0 + OUTAGE_WINDOWS - 1,
            src,
            names,
            dst,
            examples,
            f"Compromised {name} pod brute-forcing paths on {svc} while {svc} is down: "
            "every answer is 503, as for its legitimate callers.",
            requests=60,
            distinct_paths=len(paths),
            distinct_urls=60,
            dest_services=[svc],
            secondary_detectors=["l7.restricted_url"],
            cover="benign_outage",
            hidden_in=None,
        )
        self.hidden.append((lab, outage))

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


def _unavailable(path: str) -> str:
    return "503"


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
    """Decide every event of the period; ``incident_day=None`` gives a benign-only dataset.

    Confounders come first: they add workloads and flows to ``app`` and decide where pods
    run and which destinations are down, which the documents planned after them follow.
    """
    p = Planner(app, start, days, seed, scale)
    day = None if incident_day is None else range(days)[incident_day]
    p.confounders(day)
    p.rollouts(days - 1 if day is None else day)
    catalog, size = p.products()
    p.cronjobs(catalog, size)
    p.monitoring_labels()
    busy = p.busy_windows()
    if day is not None:
        p.restricted(day)
        p.scans(day)
        p.unusual(day)
        p.hidden_attacks(day)
    p.confounder_labels()
    labels = sorted(p.labels, key=lambda x: (x["start"], x["kind"], x["src_workload"] or ""))
    for i, lab in enumerate(labels, 1):
        lab["id"] = f"inc-{i:03d}"
    for lab, cover in p.hidden:
        lab["hidden_in"] = cover["label"]["id"] if cover else None
    return Plan(
        p.names,
        catalog,
        size,
        busy,
        dict(p.boosts),
        p.docs.finish(),
        labels,
        cluster=p.cluster,
        segments=p.flow_segments(),
        layouts=p.layouts,
        base_flows=p.base_flows,
    )


def _hop(src: str, service: str) -> dict[str, str]:
    """The second hop of a request relayed by ingress-nginx (logged there too)."""
    return {"src_workload": src, "dest_service_name": service}
