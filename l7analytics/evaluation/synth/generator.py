"""Stream synthetic Calico Enterprise L7 documents, one 5-minute flush window at a time.

Each window is drawn with numpy from its own seeded generator (``seed``, window index), so the
output is byte-identical for a seed, never holds more than one window in memory, and costs
about the same per document at any ``scale``. Per window:

1. baseline flows become documents: flows with a few fixed paths enumerate their
   (url, node, response code, user agent) cells and draw a Poisson count per cell; flows whose
   path carries an id draw individual requests and aggregate them with ``np.unique``. Rates
   follow the plan's confounders (surges, drops, load spikes, canary shares, flows not
   deployed yet), and the cells those of the window's pod layout (:class:`Variant`: a drained
   node, HPA pods, a destination answering 503), compiled once per layout;
2. explicit documents planned in :mod:`l7analytics.evaluation.synth.incidents` (attacks,
   CronJob runs) are added;
3. Felix's per-node limit is applied: keys beyond the limit on a node are dropped and counted
   in one ``unlogged`` record, as ``L7LogsFilePerNodeLimit`` does;
4. the window is rendered, grouped by node in Calico's field order: as dicts
   (:meth:`Synth.window`, behind :func:`generate`) or straight to NDJSON bytes
   (:mod:`l7analytics.evaluation.synth.ndjson`, behind :func:`write_dataset`), byte-identical.
"""

from __future__ import annotations

import contextlib
import gzip as gzip_mod
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

from l7analytics.evaluation.synth.app import (
    ERROR_BODY,
    URL_CHAR_LIMIT,
    V324_FIELDS,
    V324_SHARE,
    App,
    Flow,
    blank_doc,
    build_app,
    calico_url,
    diurnal,
    format_ids,
    invoice_high,
    request_stats,
)
from l7analytics.evaluation.synth.incidents import (
    HEADER_INFO_SHARE,
    PER_DAY,
    WINDOW,
    Layout,
    Plan,
    build_plan,
    label_time,
)
from l7analytics.evaluation.synth.ndjson import FlowFragments, render

#: id kind -> (pool size at scale 1, skew exponent: larger favours low indices).
POOLS = {
    "product": (0, 1.6),
    "invoice": (3000, 2.5),
    "uuid": (5000, 1.3),
    "hex24": (5000, 1.0),
    "token": (10**9, 1.0),
}
KINDS = tuple(POOLS)


@dataclass
class GeneratedSummary:
    """What :func:`write_dataset` wrote."""

    path: Path
    labels_path: Path
    documents: int = 0
    requests: int = 0
    unlogged_documents: int = 0
    unlogged_requests: int = 0
    incidents_by_kind: dict[str, int] = field(default_factory=dict)
    start: str = ""
    end: str = ""
    seed: int = 0
    scale: float = 1.0


@dataclass
class WindowDocs:
    """One window's documents before rendering, shared by the dict and NDJSON renderers.

    ``order`` lists the kept documents grouped by node (baseline rows first by index, then
    ``explicit`` as ``nb + j``); ``host``/``count`` cover every row, kept or dropped.
    """

    start_time: int
    end_time: int
    cols: dict[str, Any]
    names: list[str]
    explicit: list[dict[str, Any]]
    order: np.ndarray
    host: np.ndarray
    count: np.ndarray
    v324: np.ndarray
    dropped: np.ndarray
    gen: list[str]

    @property
    def requests(self) -> int:
        return int(self.count[self.order].sum())

    @property
    def documents(self) -> int:
        return len(self.order) + int(np.count_nonzero(self.dropped))


#: Every answer of a destination that is down.
UNAVAILABLE = (("503", 1.0),)


@dataclass
class Variant:
    """The cells of one pod layout: (flow, url, node, code, agent) with the flow's share of
    requests, and the node and code tables of id-carrying flows."""

    cell_flow: np.ndarray
    cell_url: np.ndarray
    cell_host: np.ndarray
    cell_code: np.ndarray
    cell_agent: np.ndarray
    cell_p: np.ndarray
    cell_fixed: np.ndarray
    s_hosts: np.ndarray
    s_nhosts: np.ndarray
    s_codes: np.ndarray
    s_cum: np.ndarray


class _Tables:
    """Interned strings (response codes, user agents): documents carry their indices."""

    def __init__(self) -> None:
        self.codes: list[str] = []
        self.agents: list[str] = ["-"]

    def code(self, c: str) -> int:
        if c not in self.codes:
            self.codes.append(c)
        return self.codes.index(c)

    def agent(self, a: str) -> int:
        if a not in self.agents:
            self.agents.append(a)
        return self.agents.index(a)


class Synth:
    """A seeded synthetic dataset: ``labels`` up front, then ``windows()`` or ``documents()``."""

    def __init__(
        self,
        start: datetime,
        days: int,
        seed: int = 0,
        *,
        scale: float = 1.0,
        incident_day: int | None = -1,
        per_node_limit: int | None = None,
    ) -> None:
        if days < 1 or scale <= 0 or seed < 0:
            raise ValueError("days must be >= 1, scale > 0 and seed >= 0")
        self.start = _epoch(start)
        self.days, self.seed, self.scale = days, seed, scale
        self.app: App = build_app(scale, np.random.default_rng([seed, 1]))
        self.plan: Plan = build_plan(self.app, self.start, days, seed, scale, incident_day)
        self._compile()
        self.per_node_limit = per_node_limit or self._calibrate_limit()

    @property
    def n_windows(self) -> int:
        return self.days * PER_DAY

    @property
    def labels(self) -> dict[str, Any]:
        """The labels document (see :func:`labels_path`)."""
        return {
            "generator": "l7analytics.evaluation.synth",
            "seed": self.seed,
            "scale": self.scale,
            "start": label_time(self.start),
            "end": label_time(self.start + self.n_windows * WINDOW),
            "per_node_limit": self.per_node_limit,
            "incidents": self.plan.labels,
        }

    # ------------------------------------------------------------------ compile
    def _compile(self) -> None:
        """Turn the flow table into flat numpy arrays so a window is a handful of array ops.

        One set of cells per pod layout of the plan (the app's own, a drained node, HPA pods,
        a destination down), all compiled up front.
        """
        app, t = self.app, _Tables()
        flows = app.flows
        self.tables = t
        self.wl_keys = list(app.workloads)
        wl_index = {k: i for i, k in enumerate(self.wl_keys)}
        self.flow_src = np.array([wl_index[f.src] for f in flows])
        self.flow_dst = np.array([wl_index[f.dst] for f in flows])
        self.flow_rate = np.array([f.rate for f in flows])
        self.flow_scaled = np.array([self.scale if f.profile != "fixed" else 1.0 for f in flows])
        self.flow_user = np.array([f.profile == "user" for f in flows])
        self.flow_base = np.arange(len(flows)) < self.plan.base_flows  # added flows start silent
        self.flow_bin = np.array([f.bytes_in for f in flows])
        self.flow_bout = np.array([f.bytes_out for f in flows])
        self.flow_dur = np.array([f.dur_ms for f in flows])
        self.statics = [self._static(f) for f in flows]
        self.urls: list[str] = []
        self._url_ids: dict[str, int] = {}
        self._compile_sample([i for i, f in enumerate(flows) if f.template])
        self.base = self._compile_variant(Layout(), None)
        self._variants = {
            layout: self._compile_variant(layout, self.base)
            for layout in dict.fromkeys(self.plan.layouts.values())
        }
        for c_str in ERROR_BODY:
            t.code(c_str)
        if len(t.codes) > 31 or len(t.agents) > 63 or len(app.hosts) > 255:
            raise ValueError("too many codes, agents or nodes for the key packing")
        self.code_ok = np.array([c_str == "" or c_str.startswith("2") for c_str in t.codes])
        self.code_body = np.array([ERROR_BODY.get(c_str, 40) for c_str in t.codes], dtype=float)

    def _compile_variant(self, layout: Layout, base: Variant | None) -> Variant:
        """Cells and sampled-flow tables of one layout; only the flows it changes are redone."""
        flows = self.app.flows
        pods = dict(layout.pods)
        down = {i for key in layout.outages for i in self.app.inbound(key)}
        moved = {i for i, f in enumerate(flows) if f.dst in pods}
        changed = set(range(len(flows))) if base is None else down | moved

        def view(i: int) -> tuple[Flow, list[int] | None]:
            f = flows[i]
            if i in down:
                f = replace(f, codes=UNAVAILABLE)
            if f.dst not in pods:
                return f, None
            where = pods[f.dst]
            if f.pod_urls:
                f = replace(f, pod_urls=tuple((f"{ip}:{f.dest_port}", h) for h, ip in where))
            return f, sorted({h for h, _ in where})

        cells: list[tuple[int, int, int, int, int, float, bool]] = []
        for i in sorted(changed):
            if not flows[i].template:
                cells += self._cells(i, *view(i))
        c = np.array(cells, dtype=np.float64).reshape(-1, 7).T
        cols = [*c[:5].astype(np.int64), c[5], c[6].astype(bool)]
        if base is not None:
            keep = ~np.isin(base.cell_flow, sorted(changed))
            old = (base.cell_flow, base.cell_url, base.cell_host, base.cell_code, base.cell_agent)
            old += (base.cell_p, base.cell_fixed)
            cols = [np.concatenate([o[keep], n]) for o, n in zip(old, cols, strict=True)]
        sampled = [view(i) if i in changed else (flows[i], None) for i in self.s_flow.tolist()]
        s_hosts, s_nhosts = _padded([h or self.app.dest_hosts(f.dst) for f, h in sampled])
        width = max(len(f.codes) for f, _ in sampled)
        s_codes = np.zeros((len(sampled), width), dtype=np.int64)
        s_cum = np.ones((len(sampled), width))
        for j, (f, _) in enumerate(sampled):
            probs = [p for _, p in f.codes]
            s_codes[j, : len(probs)] = [self.tables.code(code) for code, _ in f.codes]
            s_cum[j, : len(probs)] = np.cumsum(probs) / sum(probs)
        return Variant(*cols, s_hosts, s_nhosts, s_codes, s_cum)

    def _static(self, f: Flow) -> tuple[Any, ...]:
        src, dst, s = self.app.workloads[f.src], self.app.workloads[f.dst], f.service
        return (
            src.namespace,
            src.ep_type,
            dst.namespace,
            dst.ep_type,
            s.target_port if s else f.dest_port,
            s.name if s else "",
            s.namespace if s else "",
            s.port_name if s else "",
            s.port if s else 0,
            f.method,
            f.proto,
        )

    def _agent_options(self, f: Flow) -> list[tuple[int, float]]:
        """User agents are logged for ~10 % of requests (header info on for part of the fleet)."""
        agents = () if f.tcp else (f.agents or self.app.workloads[f.src].agents)
        if not agents:
            return [(0, 1.0)]
        share = HEADER_INFO_SHARE / len(agents)
        return [(0, 1.0 - HEADER_INFO_SHARE)] + [(self.tables.agent(a), share) for a in agents]

    def _url_id(self, url: str) -> int:
        uid = self._url_ids.get(url)
        if uid is None:
            uid = self._url_ids[url] = len(self.urls)
            self.urls.append(url)
        return uid

    def _cells(
        self, i: int, f: Flow, hosts: list[int] | None = None
    ) -> list[tuple[int, int, int, int, int, float, bool]]:
        """Every (url, node, code, agent) combination of a fixed-path flow with its share.

        ``hosts``: the destination's nodes when the layout moved its pods.
        """
        t = self.tables
        if f.pod_urls:
            path = f.paths[0][0]
            url_hosts = [(self._url_id(calico_url(a, path)), h, 1.0) for a, h in f.pod_urls]
        else:
            hosts = hosts or self.app.dest_hosts(f.dst)
            total = sum(w for _, w in f.paths)
            url_hosts = []
            for path, w in f.paths:
                uid = self._url_id(calico_url(f.authority, path) if not f.tcp else "")
                url_hosts += [(uid, h, w / total / len(hosts)) for h in hosts]
        fixed = bool(f.pod_urls)  # a scrape every 30 s per pod: exact; probes go via a Service
        return [
            (i, u, h, t.code(code), a, p * pc * pa, fixed)
            for u, h, p in url_hosts
            for code, pc in f.codes
            for a, pa in self._agent_options(f)
        ]

    def _compile_sample(self, sample: list[int]) -> None:
        """Arrays for flows whose path carries an id drawn per request (nodes and codes are
        per layout: :meth:`_compile_variant`)."""
        flows = self.app.flows
        if len(sample) > 63:
            raise ValueError("too many id-carrying flows for the key packing")
        self.s_flow = np.array(sample, dtype=np.int64)
        self.s_kind = np.array([KINDS.index(flows[i].id_kind) for i in sample])
        self.s_prefix, self.s_suffix = [], []
        for i in sample:
            before, after = flows[i].template.split("{}")
            self.s_prefix.append(flows[i].authority + before)
            self.s_suffix.append(after)
        self.s_agents, self.s_nagents = _padded(
            [[a for a, _ in self._agent_options(flows[i])[1:]] for i in sample]
        )

    def variant(self, k: int) -> Variant:
        """The cells of window ``k``'s pod layout."""
        layout = self.plan.layouts.get(k)
        return self.base if layout is None else self._variants[layout]

    # ------------------------------------------------------------------ one window
    def _flow_lambda(
        self, k: int, rng: np.random.Generator, peak: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Expected requests per flow in window ``k`` and the bytes_in multiplier per flow.

        ``peak`` replaces the time of day by a weekday's peak (used to size the node limit)
        and leaves out every confounder. Otherwise user-driven flows follow the diurnal and
        weekly curves, bursts and cluster-wide surges or drops, and each flow its own
        multiplier (an HPA's load, a canary's share, 0 for a flow that does not exist yet).
        """
        mid = self.start + k * WINDOW + WINDOW // 2
        noise = float(rng.lognormal(0.0, 0.08))
        if peak:
            user, mult = 1.0, self.flow_base
        else:
            plan = self.plan
            user = float(diurnal(mid)) * noise * plan.busy.get(k, 1.0) * plan.cluster.get(k, 1.0)
            mult = plan.flow_mult(k, len(self.flow_rate))
        lam = self.flow_rate * self.flow_scaled * np.where(self.flow_user, user, 1.0) * mult
        bin_mult = np.ones(len(lam))
        for flow, mult, bmult in self.plan.boosts.get(k, ()):
            lam[flow] *= mult
            bin_mult[flow] = bmult
        return lam, bin_mult

    def _baseline(self, k: int, rng: np.random.Generator, peak: bool = False) -> dict[str, Any]:
        """Documents of the baseline flows in window ``k``, as parallel arrays."""
        v = self.base if peak else self.variant(k)
        lam, bin_mult = self._flow_lambda(k, rng, peak)
        lam_c = lam[v.cell_flow] * v.cell_p
        cnt = np.where(v.cell_fixed, np.rint(lam_c), rng.poisson(lam_c)).astype(np.int64)
        nz = np.flatnonzero(cnt)
        cols = {
            "flow": v.cell_flow[nz],
            "host": v.cell_host[nz],
            "code": v.cell_code[nz],
            "agent": v.cell_agent[nz],
            "count": cnt[nz],
        }
        urls = [self.urls[u] for u in v.cell_url[nz].tolist()]
        s_cols, s_urls = self._sampled(k, lam, rng, v)
        for name, arr in s_cols.items():
            cols[name] = np.concatenate([cols[name], arr])
        cols["urls"] = urls + s_urls
        return self._with_stats(cols, bin_mult, rng)

    def _sampled(
        self, k: int, lam: np.ndarray, rng: np.random.Generator, v: Variant
    ) -> tuple[dict[str, np.ndarray], list[str]]:
        """Per-request draws for id-carrying flows, aggregated into unique keys."""
        n = rng.poisson(lam[self.s_flow])
        flows = np.repeat(np.arange(len(n)), n)
        r = len(flows)
        size, base, sign, skew = self._pools(k)
        u = rng.random((4, r))
        idx = base[flows] + sign[flows] * np.floor(size[flows] * u[0] ** skew[flows]).astype(
            np.int64
        )
        code_local = (u[1][:, None] > v.s_cum[flows]).sum(axis=1)
        code = v.s_codes[flows, np.minimum(code_local, v.s_codes.shape[1] - 1)]
        host = v.s_hosts[flows, (u[2] * v.s_nhosts[flows]).astype(np.int64)]
        with_ua = u[3] < HEADER_INFO_SHARE
        pick = (u[3] / HEADER_INFO_SHARE * self.s_nagents[flows]).astype(np.int64)
        agent = np.where(
            with_ua, self.s_agents[flows, np.minimum(pick, self.s_agents.shape[1] - 1)], 0
        )
        key = (((idx << 6 | flows) << 5 | code) << 8 | host) << 6 | agent
        uniq, counts = np.unique(key, return_counts=True)
        agent, host = uniq & 63, (uniq >> 6) & 255
        code, sf_u, idx_u = (uniq >> 14) & 31, (uniq >> 19) & 63, uniq >> 25
        return (
            {
                "flow": self.s_flow[sf_u],
                "host": host,
                "code": code,
                "agent": agent,
                "count": counts,
            },
            self._format_urls(sf_u, idx_u),
        )

    def _pools(self, k: int) -> tuple[np.ndarray, ...]:
        """Pool size, base index, direction and skew of each id-carrying flow in window ``k``."""
        size = np.array([POOLS[KINDS[i]][0] * self.scale for i in self.s_kind])
        size[self.s_kind == 0] = self.plan.catalog_size[k]
        base = np.where(self.s_kind == 1, invoice_high(k, self.scale), 0).astype(np.int64)
        sign = np.where(self.s_kind == 1, -1, 1)
        skew = np.array([POOLS[KINDS[i]][1] for i in self.s_kind])
        return np.maximum(size, 1), base, sign, skew

    def _format_urls(self, flows: np.ndarray, idx: np.ndarray) -> list[str]:
        out = [""] * len(flows)
        kinds = self.s_kind[flows]
        for kind_i in np.unique(kinds).tolist():
            pos = np.flatnonzero(kinds == kind_i)
            ids = format_ids(KINDS[kind_i], idx[pos], self.seed, self.plan.catalog)
            for p, j, ident in zip(pos.tolist(), flows[pos].tolist(), ids, strict=True):
                out[p] = (self.s_prefix[j] + ident + self.s_suffix[j])[:URL_CHAR_LIMIT]
        return out

    def _with_stats(
        self, cols: dict[str, Any], bin_mult: np.ndarray, rng: np.random.Generator
    ) -> dict[str, Any]:
        flow, code = cols["flow"], cols["code"]
        b_out = np.where(self.code_ok[code], self.flow_bout[flow], self.code_body[code])
        stats = request_stats(
            rng, cols["count"], self.flow_bin[flow] * bin_mult[flow], b_out, self.flow_dur[flow]
        )
        cols.update(zip(("bytes_in", "bytes_out", "dmean", "dmax", "latency"), stats, strict=True))
        return cols

    def _calibrate_limit(self) -> int:
        """A per-node limit just above a normal peak window, so bursts overflow like on a
        busy node (Calico's default 1500 is sized for bigger clusters than this one)."""
        cols = self._baseline(0, np.random.default_rng([self.seed, 3]), peak=True)
        per_host = np.bincount(cols["host"], minlength=len(self.app.hosts))
        return math.ceil(per_host.max() * 1.2) + 5

    def prepare(self, k: int) -> WindowDocs:
        """Draw everything random about window ``k``; rendering is then deterministic."""
        rng = np.random.default_rng([self.seed, 2, k])
        cols = self._baseline(k, rng)
        explicit = self.plan.explicit.get(k, [])
        n_baseline = len(cols["count"])
        host = np.concatenate([cols["host"], [e["_host"] for e in explicit]]).astype(np.int64)
        count = np.concatenate([cols["count"], [e["count"] for e in explicit]]).astype(np.int64)
        arrival = 1.0 - rng.random(len(host)) ** (1.0 / count)  # first request of the key
        if explicit:
            arrival[n_baseline:][np.array([e["_protected"] for e in explicit])] = -1.0
        order = np.lexsort((arrival, host))
        start_of = np.searchsorted(host[order], host[order], side="left")
        keep = np.arange(len(order)) - start_of < self.per_node_limit
        dropped = np.bincount(
            host[order][~keep], weights=count[order][~keep], minlength=len(self.app.hosts)
        ).astype(np.int64)
        v324 = rng.random(len(order)) < V324_SHARE
        names, alt = self._names(k)
        cols["src_n"] = self._name_index(self.flow_src[cols["flow"]], alt, rng)
        cols["dst_n"] = self._name_index(self.flow_dst[cols["flow"]], alt, rng)
        end_time = self.start + (k + 1) * WINDOW
        return WindowDocs(
            end_time - WINDOW,
            end_time,
            cols,
            names,
            explicit,
            order[keep],
            host,
            count,
            v324[keep],
            dropped,
            self._generated_times(end_time, rng),
        )

    def window(self, k: int) -> list[dict[str, Any]]:
        """Every document Calico would have written for window ``k`` (0-based), as dicts."""
        return self._emit(self.prepare(k))

    def _names(self, k: int) -> tuple[list[str], dict[int, int]]:
        """Aggregated names of every workload in window ``k``; rollouts add the old name."""
        names = [self.plan.names.name(key, k) for key in self.wl_keys]
        alt: dict[int, int] = {}
        for i, key in enumerate(self.wl_keys):
            old = self.plan.names.old_name(key, k)
            if old:
                alt[i] = len(names)
                names.append(old)
        return names, alt

    def _name_index(
        self, wl: np.ndarray, alt: dict[int, int], rng: np.random.Generator
    ) -> np.ndarray:
        """Workload -> name index; during a rollout half the documents keep the old name."""
        idx = wl.copy()
        for w, a in alt.items():
            sel = (wl == w) & (rng.random(len(wl)) < 0.5)
            idx[sel] = a
        return idx

    def _emit(self, window: WindowDocs) -> list[dict[str, Any]]:
        """Build the dicts, node by node, each node's ``unlogged`` record last."""
        start_time, end_time, cols, names, explicit = (
            window.start_time,
            window.end_time,
            window.cols,
            window.names,
            window.explicit,
        )
        n_baseline = len(cols["count"])
        fl, code, agent, count, src_n, dst_n = (
            cols[c].tolist() for c in ("flow", "code", "agent", "count", "src_n", "dst_n")
        )
        b_in, b_out, dmean, dmax, lat = (
            cols[c].tolist() for c in ("bytes_in", "bytes_out", "dmean", "dmax", "latency")
        )
        urls, codes, agents, statics = (
            cols["urls"],
            self.tables.codes,
            self.tables.agents,
            self.statics,
        )
        out: list[dict[str, Any]] = []
        hosts_all = window.host.tolist()
        last_host = -1
        for pos, i in enumerate(window.order.tolist()):
            h = hosts_all[i]
            if h != last_host:
                if last_host >= 0 and window.dropped[last_host]:
                    out.append(self._unlogged(window, last_host))
                last_host, hostname, gt = h, self.app.hosts[h], window.gen[h]
            if i < n_baseline:
                sns, stype, dns, dtype, dport, svc, svcns, spn, sport, method, proto = statics[
                    fl[i]
                ]
                a = agent[i]
                doc = {
                    "start_time": start_time,
                    "end_time": end_time,
                    "duration_mean": dmean[i],
                    "duration_max": dmax[i],
                    "latency": lat[i],
                    "bytes_in": b_in[i],
                    "bytes_out": b_out[i],
                    "count": count[i],
                    "src_name_aggr": names[src_n[i]],
                    "src_namespace": sns,
                    "src_type": stype,
                    "source_port_num": 0,
                    "dest_name_aggr": names[dst_n[i]],
                    "dest_namespace": dns,
                    "dest_type": dtype,
                    "dest_port_num": dport,
                    "dest_service_name": svc,
                    "dest_service_namespace": svcns,
                    "dest_service_port_name": spn,
                    "dest_service_port": sport,
                    "method": method,
                    "user_agent": agents[a],
                    "url": urls[i],
                    "response_code": codes[code[i]],
                    "type": proto if a else "-",
                    "host": hostname,
                    "cluster": "cluster",
                    "generated_time": gt,
                }
                if window.v324[pos]:
                    doc.update(V324_FIELDS)
            else:
                doc = self._explicit_doc(window, explicit[i - n_baseline], bool(window.v324[pos]))
            out.append(doc)
        if last_host >= 0 and window.dropped[last_host]:
            out.append(self._unlogged(window, last_host))
        return out

    def _generated_times(self, end_time: int, rng: np.random.Generator) -> list[str]:
        """Linseed's ingest time per node: the flush, fluentd and bulk delays (5-90 s)."""
        delays = rng.uniform(5.0, 90.0, len(self.app.hosts))
        base = datetime.fromtimestamp(end_time, UTC)
        return [
            (base + timedelta(seconds=float(d))).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for d in delays
        ]

    def _explicit_doc(self, window: WindowDocs, e: dict[str, Any], v324: bool) -> dict[str, Any]:
        doc = {key: v for key, v in e.items() if key[0] != "_"}
        doc.update(
            start_time=window.start_time,
            end_time=window.end_time,
            host=self.app.hosts[e["_host"]],
            generated_time=window.gen[e["_host"]],
        )
        if v324:
            doc.update(V324_FIELDS)
        return doc

    def extra_docs(self, window: WindowDocs) -> list[dict[str, Any]]:
        """Kept explicit documents (by index), then the ``unlogged`` records (by node)."""
        n_baseline = len(window.cols["count"])
        flags = {
            int(i) - n_baseline: bool(f)
            for i, f in zip(window.order, window.v324, strict=True)
            if i >= n_baseline
        }
        docs = [
            self._explicit_doc(window, e, flags.get(j, False)) if j in flags else {}
            for j, e in enumerate(window.explicit)
        ]
        h = window.host[window.order]
        seen = list(dict.fromkeys(h.tolist()))
        return docs + [self._unlogged(window, x) for x in seen if window.dropped[x]]

    def _unlogged(self, window: WindowDocs, host: int) -> dict[str, Any]:
        """Felix's overflow record: zero values except times, count, type and the node."""
        doc = blank_doc()
        doc.update(
            start_time=window.start_time,
            end_time=window.end_time,
            count=int(window.dropped[host]),
            type="unlogged",
            host=self.app.hosts[host],
            cluster="cluster",
            generated_time=window.gen[host],
        )
        return doc

    # ------------------------------------------------------------------ streams
    def windows(self) -> Iterator[list[dict[str, Any]]]:
        """Documents window by window, in ``end_time`` order."""
        for k in range(self.n_windows):
            yield self.window(k)

    def documents(self) -> Iterator[dict[str, Any]]:
        for docs in self.windows():
            yield from docs


def _padded(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged rows as a zero-padded matrix plus the row lengths (for vectorized picks)."""
    width = max(1, *(len(r) for r in rows))
    out = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, np.array([len(r) for r in rows], dtype=np.int64)


def _epoch(start: datetime) -> int:
    """Seconds since the epoch, floored to a flush window (naive datetimes are UTC)."""
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return int(start.timestamp()) // WINDOW * WINDOW


def generate(
    start: datetime,
    days: int,
    seed: int = 0,
    *,
    scale: float = 1.0,
    incident_day: int | None = -1,
    per_node_limit: int | None = None,
) -> tuple[Iterator[dict[str, Any]], list[dict[str, Any]]]:
    """Documents (a lazy iterator, ``end_time`` order) and the incident labels."""
    synth = Synth(
        start, days, seed, scale=scale, incident_day=incident_day, per_node_limit=per_node_limit
    )
    return synth.documents(), synth.labels["incidents"]


def labels_path(out: str | Path) -> Path:
    """``x.ndjson.gz`` / ``x.ndjson`` / ``x.json`` -> ``x.labels.json`` beside it."""
    out = Path(out)
    name = out.name
    for suffix in (".ndjson.gz", ".json.gz", ".ndjson", ".jsonl", ".json", ".gz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return out.with_name(name + ".labels.json")


def load_labels(path: str | Path) -> list[dict[str, Any]]:
    """The incidents of a labels file written by :func:`write_dataset`."""
    return orjson.loads(Path(path).read_bytes())["incidents"]


@contextlib.contextmanager
def _open(out: Path, gz: bool) -> Iterator[BinaryIO]:
    """Gzip without a timestamp or file name in the header, so output stays byte-identical."""
    with out.open("wb") as raw:
        if not gz:
            yield raw
            return
        with gzip_mod.GzipFile(
            filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1
        ) as packed:
            yield packed  # type: ignore[misc]


def write_dataset(
    out: str | Path,
    start: datetime,
    days: int,
    seed: int = 0,
    *,
    gzip: bool | None = None,
    progress: Callable[[int], None] | None = None,
    scale: float = 1.0,
    incident_day: int | None = -1,
    per_node_limit: int | None = None,
) -> GeneratedSummary:
    """Write NDJSON (gzip when ``out`` ends with ``.gz``) and its labels file.

    ``progress`` is called after every window with the number of documents that window added
    (an increment, as a progress bar's ``advance`` takes).
    """
    out = Path(out)
    gz = out.name.endswith(".gz") if gzip is None else gzip
    synth = Synth(
        start, days, seed, scale=scale, incident_day=incident_day, per_node_limit=per_node_limit
    )
    labels = synth.labels
    summary = GeneratedSummary(
        out, labels_path(out), start=labels["start"], end=labels["end"], seed=seed, scale=scale
    )
    summary.incidents_by_kind = dict(Counter(x["kind"] for x in labels["incidents"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    frag = FlowFragments(synth)
    with _open(out, gz) as fh:
        for k in range(synth.n_windows):
            window = synth.prepare(k)
            fh.write(render(synth, window, frag))
            summary.documents += window.documents
            summary.requests += window.requests
            summary.unlogged_documents += int(np.count_nonzero(window.dropped))
            summary.unlogged_requests += int(window.dropped.sum())
            if progress:
                progress(window.documents)
    summary.labels_path.write_bytes(orjson.dumps(labels, option=orjson.OPT_INDENT_2) + b"\n")
    return summary
