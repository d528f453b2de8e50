"""The simulated cluster: nodes, workloads, Services and the baseline traffic between them.

An online-boutique-like shop (namespace ``shop``) behind ``ingress-nginx``, a smaller REST
``billing`` app, ``monitoring`` (Prometheus, blackbox exporter) and ``logging`` (fluent-bit to
Loki). Every edge of the graph is a :class:`Flow`: one caller workload, one destination, one
method and either a fixed set of paths or a path template filled from an id pool. The
generator turns flows into Calico documents window by window; this module only describes
*what* talks to *what*, so the realism lives in one readable table (:func:`build_flows`).

Rates are requests per 5-minute window at the daily peak for ``scale=1``.
"""

from __future__ import annotations

import math
import re
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import numpy as np

from l7analytics.core.identity import TEMPLATE_HASH

NUM_URL_PATH_PARTS = 5  # L7LogsFileAggregationNumURLPath default
URL_CHAR_LIMIT = 250  # L7LogsFileAggregationURLCharLimit default

GRPC = (("200", 0.997), ("503", 0.002), ("504", 0.001))
PAGE = (("200", 0.993), ("500", 0.004), ("503", 0.003))
STATIC = (("200", 0.62), ("304", 0.38))
REDIRECT = (("302", 0.995), ("500", 0.005))
REST_GET = (("200", 0.975), ("404", 0.02), ("500", 0.005))
REST_POST = (("201", 0.98), ("400", 0.015), ("500", 0.005))
FAVICON = (("404", 1.0),)
OK = (("200", 1.0),)
TCP = (("", 1.0),)

BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
)
WEBHOOK_AGENTS = ("Stripe/1.0 (+https://stripe.com/docs/webhooks)",)
WEBHOOK_SIZES = {"bytes_in": 1400, "bytes_out": 2, "agents": WEBHOOK_AGENTS}
GRPC_GO = ("grpc-go/1.59.0",)
GRPC_NODE = ("grpc-node-js/1.9.12",)
GRPC_PY = ("grpc-python/1.59.3 grpc-c/36.0.0 (linux; chttp2)",)
GRPC_JAVA = ("grpc-java-netty/1.59.0",)
GRPC_NET = ("grpc-dotnet/2.59.0 (.NET 8.0.0; CLR 8.0.0; net8.0; linux; x64)",)


#: Field order of a document, as in Calico's own fixtures.
FIELDS = (
    "start_time",
    "end_time",
    "duration_mean",
    "duration_max",
    "latency",
    "bytes_in",
    "bytes_out",
    "count",
    "src_name_aggr",
    "src_namespace",
    "src_type",
    "source_port_num",
    "dest_name_aggr",
    "dest_namespace",
    "dest_type",
    "dest_port_num",
    "dest_service_name",
    "dest_service_namespace",
    "dest_service_port_name",
    "dest_service_port",
    "method",
    "user_agent",
    "url",
    "response_code",
    "type",
    "host",
    "cluster",
    "generated_time",
)
INT_FIELDS = frozenset(
    (
        "start_time",
        "end_time",
        "duration_mean",
        "duration_max",
        "latency",
        "bytes_in",
        "bytes_out",
        "count",
        "source_port_num",
        "dest_port_num",
        "dest_service_port",
    )
)
#: 3.24 collector fields carried by about 0.1 % of documents (mixed-version clusters).
V324_SHARE = 0.001
V324_FIELDS = {
    "protocol": "http",
    "protocol_version": "1.1",
    "collector_type": "envoy",
    "collector_name": "l7-log-collector",
    "tls_sni": "",
    "tls_version": "",
    "tls_cipher_suite": "",
}
#: Body sizes of answers that are not the route's normal content.
ERROR_BODY = {
    "301": 50,
    "302": 0,
    "304": 0,
    "400": 60,
    "401": 0,
    "403": 9,
    "404": 19,
    "405": 0,
    "429": 40,
    "500": 40,
    "503": 95,
    "504": 24,
}


def blank_doc() -> dict[str, Any]:
    """A document with every field at Go's zero value, as Felix writes an ``unlogged`` record."""
    return {f: 0 if f in INT_FIELDS else "" for f in FIELDS}


def request_stats(
    rng: np.random.Generator,
    count: np.ndarray,
    bytes_in: np.ndarray,
    bytes_out: np.ndarray,
    dur_ms: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Summed bytes, mean/max duration and summed latency (ns) of ``count`` merged requests.

    Felix keeps durations in whole milliseconds and divides the sum by ``count`` for the mean,
    so the mean is not a multiple of 1 ms while the max and the latency are. Noise shrinks with
    ``count`` the way a sum of independent requests does.
    """
    n = len(count)
    c = count.astype(np.float64)
    spread = 1.0 / np.sqrt(c)
    b_in = np.rint(c * bytes_in * rng.lognormal(0.0, 0.25, n) ** spread).astype(np.int64)
    b_out = np.rint(c * bytes_out * rng.lognormal(0.0, 0.35, n) ** spread).astype(np.int64)
    per = dur_ms * rng.lognormal(0.0, 0.5, n) ** spread
    total = np.floor(c * per + rng.random(n)).astype(np.int64)
    mean_ceil = -(-total // count)
    peak = np.ceil(per * (1.0 + 1.5 * np.log(c) * rng.random(n)))
    dmax = np.minimum(np.maximum(peak.astype(np.int64), mean_ceil), total)
    dmax = np.where(count == 1, total, dmax)
    latency = np.floor(total * rng.uniform(0.15, 0.6, n)).astype(np.int64)
    return b_in, b_out, total * 1_000_000 // count, dmax * 1_000_000, latency * 1_000_000


@dataclass(frozen=True)
class Workload:
    """A caller or callee: a pod controller, or ``pub`` for the internet."""

    namespace: str
    name: str
    kind: str  # Deployment | StatefulSet | DaemonSet | CronJob | Net
    replicas: int = 1
    agents: tuple[str, ...] = ()  # User-Agent strings it sends as a client

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ep_type(self) -> str:
        return "net" if self.kind == "Net" else "wep"


@dataclass(frozen=True)
class Service:
    """The Kubernetes Service a request went through (``dest_service_*``)."""

    name: str
    namespace: str
    port: int
    port_name: str
    target_port: int


@dataclass
class Flow:
    """One edge of the service graph with its traffic shape."""

    src: str
    dst: str
    service: Service | None
    method: str
    authority: str
    paths: tuple[tuple[str, float], ...] = ()  # static paths and their weights
    _: KW_ONLY
    template: str = ""  # or a path with one ``{}`` filled from ``id_kind``
    id_kind: str = ""  # product | invoice | uuid | hex24 | token
    rate: float = 1.0  # per pod for ``pod_urls`` scrapes
    profile: str = "user"  # user (diurnal) | flat | fixed (exact count per cell)
    codes: tuple[tuple[str, float], ...] = GRPC
    bytes_in: float = 0.0
    bytes_out: float = 400.0
    dur_ms: float = 4.0
    proto: str = "html/2"  # the ``type`` Calico writes when header info is on
    dest_port: int = 0  # pod port when no Service is involved
    pod_urls: tuple[tuple[str, int], ...] = ()  # (authority, host) pairs for pod-IP scrapes
    agents: tuple[str, ...] | None = None  # User-Agents; default: the caller's

    @property
    def tcp(self) -> bool:
        return self.method == ""


@dataclass
class App:
    """Nodes, workloads with their pods' nodes and IPs, Services and flows."""

    hosts: list[str]
    workloads: dict[str, Workload]
    pod_hosts: dict[str, list[int]]
    pod_ips: dict[str, list[str]]
    services: dict[str, Service]
    flows: list[Flow] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)  # initial pod-template hashes

    def dest_hosts(self, key: str) -> list[int]:
        """Nodes of a workload's pods: Calico's L7 collector logs on the destination node."""
        return sorted(set(self.pod_hosts[key]))

    def inbound(self, key: str) -> list[int]:
        """Indices of the flows that reach ``key``: its own callers' flows, plus the internet's
        requests that ingress-nginx relays to it (same site, logged at the ingress hop)."""
        direct = [i for i, f in enumerate(self.flows) if f.dst == key]
        sites = {self.flows[i].authority for i in direct if self.flows[i].src == ING}
        relayed = [
            i
            for i, f in enumerate(self.flows)
            if f.src == PUB and f.dst == ING and f.authority in sites
        ]
        return sorted(direct + relayed)


def calico_path(path: str) -> str:
    """The path as Felix keeps it: query dropped, at most 5 segments (default settings)."""
    path = path.split("?", 1)[0]
    parts = path.split("/")
    if len(parts) > NUM_URL_PATH_PARTS + 1:
        parts = parts[: NUM_URL_PATH_PARTS + 1]
    return "/".join(parts)


def calico_url(authority: str, path: str) -> str:
    """``<authority><path>`` trimmed like Felix (5 segments, 250 characters)."""
    return (authority + calico_path(path))[:URL_CHAR_LIMIT]


def k8s_hash(rng: np.random.Generator) -> str:
    """A ReplicaSet pod-template hash: ``SafeEncodeString`` of a decimal number, 8 to 10
    characters of the ten the digits map to."""
    n = int(rng.integers(8, 11))
    return "".join(TEMPLATE_HASH[i] for i in rng.integers(0, len(TEMPLATE_HASH), n))


def pod_name_aggr(workload: Workload, pod_hash: str | None = None) -> str:
    """``src_name_aggr``/``dest_name_aggr`` of a workload's pods (the generateName plus ``*``)."""
    if workload.kind == "Net":
        return workload.name
    if workload.kind == "Deployment":
        return f"{workload.name}-{pod_hash}-*"
    return f"{workload.name}-*"


def cronjob_name_aggr(name: str, scheduled_epoch: int) -> str:
    """A CronJob pod's generateName: ``<cronjob>-<minutes since epoch>-*``."""
    return f"{name}-{scheduled_epoch // 60}-*"


def _workloads(scale: float) -> list[Workload]:
    """Every workload; Deployment replicas grow with ``scale`` like a bigger cluster."""
    grow = max(1, math.ceil(math.sqrt(scale)))
    dep = [
        ("ingress-nginx", "ingress-nginx-controller", 2, BROWSERS),
        ("shop", "frontend", 3, GRPC_GO),
        ("shop", "cartservice", 2, GRPC_NET),
        ("shop", "productcatalogservice", 2, GRPC_GO),
        ("shop", "currencyservice", 2, GRPC_NODE),
        ("shop", "paymentservice", 1, GRPC_NODE),
        ("shop", "shippingservice", 1, GRPC_GO),
        ("shop", "emailservice", 1, GRPC_PY),
        ("shop", "checkoutservice", 1, GRPC_GO),
        ("shop", "recommendationservice", 1, GRPC_PY),
        ("shop", "adservice", 1, GRPC_JAVA),
        ("shop", "redis-cart", 1, ()),
        ("billing", "billing-api", 2, ()),
        ("billing", "billing-portal", 1, ("axios/1.6.2",)),
        ("billing", "invoice-worker", 1, ("python-requests/2.31.0",)),
        ("monitoring", "blackbox-exporter", 1, ("Blackbox Exporter/0.24.0",)),
        ("monitoring", "kube-state-metrics", 1, ()),
    ]
    out = [Workload(ns, n, "Deployment", r * grow, ua) for ns, n, r, ua in dep]
    out += [
        Workload("billing", "billing-db", "StatefulSet", 1),
        Workload("monitoring", "prometheus-server", "StatefulSet", 1, ("Prometheus/2.48.1",)),
        Workload("logging", "loki", "StatefulSet", 1),
        Workload("logging", "fluent-bit", "DaemonSet", 0, ("Fluent-Bit",)),
        Workload("shop", "cache-warmer", "CronJob", 1, ("python-httpx/0.25.2",)),
        Workload("billing", "db-backup", "CronJob", 1, ("curl/8.5.0",)),
        Workload("-", "pub", "Net", 0, BROWSERS),
    ]
    return out


def _services() -> list[Service]:
    s = [
        ("ingress-nginx-controller", "ingress-nginx", 80, "http", 80),
        ("frontend", "shop", 80, "http", 8080),
        ("cartservice", "shop", 7070, "grpc", 7070),
        ("productcatalogservice", "shop", 3550, "grpc", 3550),
        ("currencyservice", "shop", 7000, "grpc", 7000),
        ("paymentservice", "shop", 50051, "grpc", 50051),
        ("shippingservice", "shop", 50051, "grpc", 50051),
        ("emailservice", "shop", 5000, "grpc", 8080),
        ("checkoutservice", "shop", 5050, "grpc", 5050),
        ("recommendationservice", "shop", 8080, "grpc", 8080),
        ("adservice", "shop", 9555, "grpc", 9555),
        ("redis-cart", "shop", 6379, "tcp-redis", 6379),
        ("billing-api", "billing", 8080, "http", 8080),
        ("billing-portal", "billing", 80, "http", 3000),
        ("billing-db", "billing", 5432, "tcp-postgresql", 5432),
        ("loki", "logging", 3100, "http-metrics", 3100),
        ("blackbox-exporter", "monitoring", 9115, "http", 9115),
    ]
    return [Service(*row) for row in s]


def build_app(scale: float, rng: np.random.Generator) -> App:
    """Place every pod on a node and give it an IP; attach the baseline flows."""
    n_hosts = min(250, max(4, round(4 * math.sqrt(scale))))
    hosts = [f"node-{i + 1}" for i in range(n_hosts)]
    workloads = {w.key: w for w in _workloads(scale)}
    pod_hosts: dict[str, list[int]] = {}
    pod_ips: dict[str, list[str]] = {}
    per_host = [10] * n_hosts
    for key, w in workloads.items():
        if w.kind in ("Net", "CronJob"):
            placed = [int(rng.integers(0, n_hosts))] if w.kind == "CronJob" else []
        elif w.kind == "DaemonSet":
            placed = list(range(n_hosts))
        else:
            start = int(rng.integers(0, n_hosts))
            placed = [(start + i) % n_hosts for i in range(w.replicas)]
        pod_hosts[key] = placed
        ips = []
        for h in placed:
            per_host[h] += 1
            ips.append(f"10.244.{h}.{per_host[h]}")
        pod_ips[key] = ips
    services = {s.name: s for s in _services()}
    hashes = {k: k8s_hash(rng) for k, w in workloads.items() if w.kind == "Deployment"}
    app = App(hosts, workloads, pod_hosts, pod_ips, services, hashes=hashes)
    app.flows = build_flows(app)
    return app


# ---------------------------------------------------------------- the service graph
# Row tables, one edge per line. Paths may carry an id placeholder: {product} (10-character
# codes), {invoice} (numbers), {uuid}, {hex24}, {token} (longer than the URL limit).

FE, CO, RS = "shop/frontend", "shop/checkoutservice", "shop/recommendationservice"
BP, IW = "billing/billing-portal", "billing/invoice-worker"
PUB, ING = "-/pub", "ingress-nginx/ingress-nginx-controller"

STATIC_FILES = (
    ("/static/styles/styles.css", 3.0),
    ("/static/styles/cart.css", 1.0),
    ("/static/styles/order.css", 0.3),
    ("/static/favicon.ico", 2.0),
    ("/static/icons/Hipster_HeroLogo.svg", 3.0),
    ("/static/icons/Hipster_NavLogo.svg", 3.0),
    ("/static/icons/Hipster_CartIcon.svg", 3.0),
    ("/static/icons/Hipster_CurrencyIcon.svg", 3.0),
    ("/static/img/products/sunglasses.jpg", 1.0),
    ("/static/img/products/tank-top.jpg", 1.0),
    ("/static/img/products/watch.jpg", 1.0),
    ("/static/img/products/loafers.jpg", 1.0),
)
PORTAL_STATIC = (("/static/js/main.js", 1.0), ("/static/css/main.css", 1.0))

#: What a browser asks of the shop: (method, path, rate, codes, bytes_in, bytes_out).
SHOP_PAGES = (
    ("GET", "/", 60, PAGE, 0, 9800),
    ("GET", "/product/{product}", 40, PAGE, 0, 8100),
    ("GET", "/cart", 24, PAGE, 0, 7400),
    ("POST", "/cart", 25, REDIRECT, 54, 0),
    ("POST", "/setCurrency", 9, REDIRECT, 21, 0),
    ("POST", "/cart/checkout", 11, PAGE, 310, 6900),
    ("POST", "/cart/empty", 3, REDIRECT, 0, 0),
    ("GET", "/logout", 3, REDIRECT, 0, 0),
    ("GET", STATIC_FILES, 30, STATIC, 0, 5200),
    ("GET", "/favicon.ico", 6, FAVICON, 0, 19),
    ("GET", "/robots.txt", 1.5, OK, 0, 60),
)
PORTAL_PAGES = (
    ("GET", "/", 14, PAGE, 0, 2100),
    ("GET", PORTAL_STATIC, 20, STATIC, 0, 48000),
    ("GET", "/invoices/{invoice}", 6, REST_GET, 0, 2600),
)

#: gRPC calls: (caller, service, Service/Method, rate, bytes_in, bytes_out, duration ms).
GRPC_CALLS = (
    (FE, "currencyservice", "CurrencyService/GetSupportedCurrencies", 800, 60, 90, 2),
    (FE, "currencyservice", "CurrencyService/Convert", 2600, 60, 35, 2),
    (FE, "productcatalogservice", "ProductCatalogService/ListProducts", 230, 60, 2900, 3),
    (FE, "productcatalogservice", "ProductCatalogService/GetProduct", 480, 60, 330, 2),
    (FE, "cartservice", "CartService/GetCart", 800, 60, 45, 6),
    (FE, "cartservice", "CartService/AddItem", 45, 60, 400, 8),
    (FE, "cartservice", "CartService/EmptyCart", 3, 60, 400, 7),
    (FE, "recommendationservice", "RecommendationService/ListRecommendations", 500, 60, 70, 9),
    (FE, "adservice", "AdService/GetAds", 650, 60, 160, 5),
    (FE, "shippingservice", "ShippingService/GetQuote", 100, 60, 25, 4),
    (FE, "checkoutservice", "CheckoutService/PlaceOrder", 11, 280, 420, 180),
    (CO, "cartservice", "CartService/GetCart", 11, 60, 45, 6),
    (CO, "cartservice", "CartService/EmptyCart", 11, 60, 400, 7),
    (CO, "productcatalogservice", "ProductCatalogService/GetProduct", 30, 60, 330, 4),
    (CO, "currencyservice", "CurrencyService/Convert", 45, 60, 35, 4),
    (CO, "shippingservice", "ShippingService/GetQuote", 11, 60, 25, 4),
    (CO, "shippingservice", "ShippingService/ShipOrder", 11, 60, 40, 4),
    (CO, "paymentservice", "PaymentService/Charge", 11, 110, 45, 35),
    (CO, "emailservice", "EmailService/SendOrderConfirmation", 11, 650, 2, 60),
    (RS, "productcatalogservice", "ProductCatalogService/ListProducts", 500, 60, 2900, 3),
)

#: Calls to billing-api (authority ``billing-api:8080``):
#: (caller, method, path, rate, bytes_in, bytes_out, profile).
BILLING_API_CALLS = (
    (BP, "GET", "/api/v1/invoices", 9, 0, 5200, "user"),
    (BP, "GET", "/api/v1/invoices/{invoice}", 7, 0, 900, "user"),
    (BP, "GET", "/api/v1/customers/{uuid}", 5, 0, 640, "user"),
    (BP, "GET", "/api/v1/payments/{hex24}", 3, 0, 380, "user"),
    (BP, "GET", "/api/v1/customers/{uuid}/invoices/2024/pdf", 2, 0, 61000, "user"),
    (BP, "GET", "/api/v1/search/{token}", 1, 0, 1500, "user"),
    (IW, "GET", "/api/v1/customers/{uuid}", 5, 0, 640, "flat"),
    (IW, "PUT", "/api/v1/invoices/{invoice}/status", 3, 48, 2, "flat"),
)

#: Prometheus scrapes every pod by IP every 30 s: (workload, port, path).
SCRAPED = (
    ("shop/frontend", 9464, "/metrics"),
    ("shop/cartservice", 9464, "/metrics"),
    ("shop/productcatalogservice", 9464, "/metrics"),
    ("shop/currencyservice", 9464, "/metrics"),
    ("shop/checkoutservice", 9464, "/metrics"),
    ("shop/paymentservice", 9464, "/metrics"),
    ("shop/recommendationservice", 9464, "/metrics"),
    ("shop/adservice", 9464, "/metrics"),
    ("billing/billing-api", 8081, "/actuator/prometheus"),
    ("billing/billing-portal", 9100, "/metrics"),
    ("billing/invoice-worker", 9100, "/metrics"),
    ("ingress-nginx/ingress-nginx-controller", 10254, "/metrics"),
    ("monitoring/kube-state-metrics", 8080, "/metrics"),
    ("logging/loki", 3100, "/metrics"),
)
#: Blackbox exporter probes every 60 s: (service, authority, path).
PROBED = (
    ("frontend", "frontend", "/_healthz"),
    ("billing-api", "billing-api.billing:8080", "/actuator/health"),
    ("billing-portal", "billing-portal.billing", "/healthz"),
    ("loki", "loki.logging:3100", "/ready"),
)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def grpc_flow(app: App, src: str, svc: str, method: str, rate: float, **kw: Any) -> Flow:
    """A gRPC call: ``POST <svc>:<port>/hipstershop.<Service>/<Method>``."""
    s = app.services[svc]
    path = "/" + method if method.startswith("grpc.") else "/hipstershop." + method
    dst = f"{s.namespace}/{svc}"
    return Flow(src, dst, s, "POST", f"{svc}:{s.port}", ((path, 1.0),), rate=rate, **kw)


def _http(
    app: App, src: str, svc: str, method: str, paths: str | tuple[tuple[str, float], ...], **kw: Any
) -> Flow:
    """An HTTP/1.1 call through a Service: one path, weighted paths, or an id template."""
    s = app.services[svc]
    kw.setdefault("authority", s.name)
    kw.setdefault("proto", "html/1.1")
    dst = f"{s.namespace}/{svc}"
    if isinstance(paths, tuple):
        return Flow(src, dst, s, method, paths=paths, **kw)
    kind = _PLACEHOLDER.search(paths)
    if kind:
        template = calico_path(_PLACEHOLDER.sub("{}", paths))
        return Flow(src, dst, s, method, template=template, id_kind=kind.group(1), **kw)
    return Flow(src, dst, s, method, paths=((paths, 1.0),), **kw)


def _pages(app: App, src: str, svc: str, site: str, table: tuple[Any, ...]) -> list[Flow]:
    """A site's pages as seen at one hop (the ingress or the backend); nginx keeps ``Host``."""
    kw: dict[str, Any] = {"authority": site, "dur_ms": 25.0}
    return [
        _http(app, src, svc, m, p, rate=r, codes=c, bytes_in=bi, bytes_out=bo, **kw)
        for m, p, r, c, bi, bo in table
    ]


def build_flows(app: App) -> list[Flow]:
    """The baseline service graph: every edge a caller uses in normal operation."""
    flows: list[Flow] = []
    for src, svc in ((PUB, "ingress-nginx-controller"), (ING, "frontend")):
        flows += _pages(app, src, svc, "shop.example.com", SHOP_PAGES)
    for src, svc in ((PUB, "ingress-nginx-controller"), (ING, "billing-portal")):
        flows += _pages(app, src, svc, "billing.example.com", PORTAL_PAGES)
    hook: dict[str, Any] = {"authority": "api.example.com", "codes": REST_GET, "dur_ms": 40}
    for src, svc in ((PUB, "ingress-nginx-controller"), (ING, "billing-api")):
        path = "/api/v1/webhooks/payments"
        flows.append(_http(app, src, svc, "POST", path, rate=4, **hook, **WEBHOOK_SIZES))
    for src, svc, method, rate, b_in, b_out, dur in GRPC_CALLS:
        flows.append(
            grpc_flow(app, src, svc, method, rate, bytes_in=b_in, bytes_out=b_out, dur_ms=dur)
        )
    api: dict[str, Any] = {"authority": "billing-api:8080", "codes": REST_GET, "dur_ms": 18}
    for src, method, path, rate, b_in, b_out, profile in BILLING_API_CALLS:
        sizes = {"bytes_in": b_in, "bytes_out": b_out, "profile": profile}
        flows.append(_http(app, src, "billing-api", method, path, rate=rate, **api, **sizes))
    invoice: dict[str, Any] = {"authority": "billing-api.billing:8080", "codes": REST_POST}
    invoice |= {"bytes_in": 720, "bytes_out": 260, "dur_ms": 22, "agents": ("Go-http-client/1.1",)}
    flows += [
        _http(app, CO, "billing-api", "POST", "/api/v1/invoices", rate=11, **invoice),
        _tcp(app, "shop/cartservice", "redis-cart", 850, 90, 120),
        _tcp(app, "billing/billing-api", "billing-db", 120, 300, 2200),
    ]
    return flows + _platform_flows(app)


def _tcp(app: App, src: str, svc: str, rate: float, b_in: float, b_out: float) -> Flow:
    """A TCP-only record (Redis, Postgres): empty method, url and response code."""
    s = app.services[svc]
    sizes = {"bytes_in": b_in, "bytes_out": b_out, "dur_ms": 1.0}
    return Flow(src, f"{s.namespace}/{svc}", s, "", "", (("", 1.0),), rate=rate, codes=TCP, **sizes)


def _platform_flows(app: App) -> list[Flow]:
    """Prometheus scrapes (pod IPs, every 30 s), blackbox probes (every 60 s), log shipping."""
    prom, bb = "monitoring/prometheus-server", "monitoring/blackbox-exporter"
    fixed: dict[str, Any] = {"profile": "fixed", "codes": OK}
    flows = []
    for key, port, path in SCRAPED:
        pods = zip(app.pod_ips[key], app.pod_hosts[key], strict=True)
        scrape = {"dest_port": port, "pod_urls": tuple((f"{ip}:{port}", h) for ip, h in pods)}
        sizes = {"bytes_out": 14000, "dur_ms": 9, "proto": "html/1.1"}
        flows.append(
            Flow(prom, key, None, "GET", "", ((path, 1.0),), rate=10, **fixed, **scrape, **sizes)
        )
    probe = {"authority": "blackbox-exporter.monitoring:9115", "bytes_out": 1800, "dur_ms": 30}
    rate = 10 * len(PROBED)
    flows.append(
        _http(app, prom, "blackbox-exporter", "GET", "/probe", rate=rate, **probe, **fixed)
    )
    for svc, authority, path in PROBED:
        sizes = {"authority": authority, "bytes_out": 60, "dur_ms": 3}
        flows.append(_http(app, bb, svc, "GET", path, rate=5, **sizes, **fixed))
    health = {"bytes_in": 5, "bytes_out": 7, "dur_ms": 1}
    for svc in ("cartservice", "paymentservice", "emailservice"):
        flows.append(grpc_flow(app, bb, svc, "grpc.health.v1.Health/Check", 5, **health, **fixed))
    push: dict[str, Any] = {"authority": "loki.logging:3100", "profile": "flat", "dur_ms": 12}
    push |= {"codes": (("204", 0.999), ("429", 0.001)), "bytes_in": 9000, "bytes_out": 0}
    rate = 60 * len(app.hosts)
    flows.append(
        _http(app, "logging/fluent-bit", "loki", "POST", "/loki/api/v1/push", rate=rate, **push)
    )
    return flows


#: User-driven traffic on Saturday and Sunday (UTC) relative to a weekday at the same hour.
WEEKEND_FACTOR = 0.6


def hour_of_day(epoch: np.ndarray | float) -> np.ndarray:
    """Relative user traffic by UTC hour: low at night (03:00), peak mid-afternoon (15:00).

    1.0 at the peak and 0.12 at the low.
    """
    t = np.asarray(epoch, dtype=np.float64)
    hour = (t % 86400) / 3600.0
    wave = (0.5 - 0.5 * np.cos(2 * np.pi * (hour - 3.0) / 24.0)) ** 1.5
    return 0.12 + 0.88 * wave


def weekday_factor(epoch: np.ndarray | float) -> np.ndarray:
    """:data:`WEEKEND_FACTOR` on Saturday and Sunday (UTC date), 1.0 on weekdays."""
    t = np.asarray(epoch, dtype=np.float64)
    weekday = ((t // 86400).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday: 0 = Monday
    return np.where(weekday >= 5, WEEKEND_FACTOR, 1.0)


def diurnal(epoch: np.ndarray | float) -> np.ndarray:
    """Relative user traffic at a UTC time: hour-of-day times day-of-week seasonality.

    1.0 at a weekday's 15:00 peak, about 0.12 at its 03:00 low; weekends run at 60 %.
    """
    return hour_of_day(epoch) * weekday_factor(epoch)


def invoice_high(window: np.ndarray | int, scale: float) -> np.ndarray:
    """The newest invoice number in a window: it grows as invoices are issued."""
    base = 100_000 + round(5000 * scale)  # above the pool size, so ids stay positive
    return base + np.asarray(window, dtype=np.int64) * max(1, round(2 * scale))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64: a cheap, well-spread hash so ids look random yet stay stable per index."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def format_ids(kind: str, idx: np.ndarray, salt: int, catalog: list[str]) -> list[str]:
    """Identifier strings for pool indices: the same index always gives the same id."""
    if kind == "product":
        return [catalog[i] for i in idx.tolist()]
    if kind == "invoice":
        return [str(i) for i in idx.tolist()]
    a = _mix(idx.astype(np.uint64) ^ np.uint64((salt * 7919 + len(kind)) % (1 << 64)))
    b = _mix(a).tolist()
    a = a.tolist()
    if kind == "uuid":
        return [
            f"{x >> 32:08x}-{(x >> 16) & 0xFFFF:04x}-4{x & 0xFFF:03x}-"
            f"{((y >> 48) & 0x3FFF) | 0x8000:04x}-{y & 0xFFFFFFFFFFFF:012x}"
            for x, y in zip(a, b, strict=True)
        ]
    if kind == "hex24":
        return [f"{x:016x}{y >> 32:08x}" for x, y in zip(a, b, strict=True)]
    # "token": a long opaque filter (base64-like), longer than the 250-character URL limit.
    return ["eyJmaWx0ZXIiOnsi" + (f"{x:016x}{y:016x}" * 10) for x, y in zip(a, b, strict=True)]
