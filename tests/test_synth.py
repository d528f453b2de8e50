"""Tests of the synthetic Calico L7 generator: format, determinism, labelled events."""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from l7analytics.core.identity import workload_id
from l7analytics.evaluation.synth import Synth, generate, labels_path, load_labels, write_dataset
from l7analytics.evaluation.synth.app import FIELDS, INT_FIELDS, TEMPLATE_HASH, calico_url
from l7analytics.evaluation.synth.ndjson import FlowFragments, render

START = datetime(2025, 6, 1, tzinfo=UTC)  # a Sunday; the incident day is Monday
ATTACKS = ("restricted_url", "url_scan", "unusual_pair")
CONFOUNDERS = (
    "benign_surge",
    "benign_drop",
    "benign_outage",
    "benign_hpa",
    "benign_node_drain",
    "benign_canary",
    "benign_bluegreen",
    "benign_new_service",
)
BENIGN = ("benign_rollout", "benign_new_ids", "benign_cronjob", "benign_monitoring", *CONFOUNDERS)
SCOPES = {
    "benign_surge": "cluster",
    "benign_drop": "cluster",
    "benign_outage": "destination",
    "benign_hpa": "destination",
    "benign_new_service": "destination",
    "benign_node_drain": "node",
}
KEY = (
    "src_name_aggr",
    "src_namespace",
    "src_type",
    "dest_name_aggr",
    "dest_namespace",
    "dest_port_num",
    "dest_service_name",
    "dest_service_port",
    "url",
    "method",
    "response_code",
    "user_agent",
    "type",
    "host",
)
V324 = {
    "protocol",
    "protocol_version",
    "collector_type",
    "collector_name",
    "tls_sni",
    "tls_version",
    "tls_cipher_suite",
}
UNLOGGED_SET = {"start_time", "end_time", "count", "type", "host", "cluster", "generated_time"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two days at scale 1, written once for the whole module."""
    out = tmp_path_factory.mktemp("synth") / "l7.ndjson"
    seen: list[int] = []
    summary = write_dataset(out, START, 2, seed=11, progress=seen.append)
    lines = out.read_bytes().splitlines()
    return {
        "out": out,
        "summary": summary,
        "lines": lines,
        "progress": seen,
        "docs": [orjson.loads(x) for x in lines],
        "labels": load_labels(labels_path(out)),
    }


def _epoch(iso: str) -> int:
    return int(datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def _rows(docs: list[dict[str, Any]], label: dict[str, Any]) -> list[dict[str, Any]]:
    """Documents of a label's caller inside its time span."""
    lo, hi = _epoch(label["start"]), _epoch(label["end"])
    names = set(label["src_name_aggr"])
    return [
        d
        for d in docs
        if lo < d["end_time"] <= hi
        and d["src_name_aggr"] in names
        and d["src_namespace"] == label["src_namespace"]
    ]


def _path(url: str) -> str:
    slash = url.find("/")
    return url[slash:] if slash >= 0 else ""


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    digests = []
    for name, seed in (("a.ndjson", 5), ("b.ndjson", 5), ("c.ndjson", 6)):
        write_dataset(tmp_path / name, START, 1, seed=seed, scale=0.3)
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1] != digests[2]
    assert (tmp_path / "a.labels.json").read_bytes() == (tmp_path / "b.labels.json").read_bytes()


def test_gzip_is_deterministic_and_holds_the_same_lines(tmp_path: Path) -> None:
    import gzip

    write_dataset(tmp_path / "x.ndjson", START, 1, seed=2, scale=0.2)
    for name in ("g1.ndjson.gz", "g2.ndjson.gz"):
        write_dataset(tmp_path / name, START, 1, seed=2, scale=0.2)
    assert (tmp_path / "g1.ndjson.gz").read_bytes() == (tmp_path / "g2.ndjson.gz").read_bytes()
    assert (
        gzip.decompress((tmp_path / "g1.ndjson.gz").read_bytes())
        == (tmp_path / "x.ndjson").read_bytes()
    )
    assert (tmp_path / "g1.labels.json").exists()


def test_every_document_has_the_calico_fields_with_json_types(dataset: dict[str, Any]) -> None:
    for doc in dataset["docs"]:
        assert list(doc)[: len(FIELDS)] == list(FIELDS)
        assert set(doc) - set(FIELDS) <= V324
        for f in FIELDS:
            assert isinstance(doc[f], int if f in INT_FIELDS else str), (f, doc)
        assert doc["count"] >= 1
        assert doc["end_time"] % 300 == 0 and doc["start_time"] == doc["end_time"] - 300
        assert doc["generated_time"].endswith("Z") and doc["cluster"] == "cluster"
        if doc["type"] == "unlogged":
            continue
        assert doc["source_port_num"] == 0
        assert doc["duration_max"] % 1_000_000 == 0 and doc["latency"] % 1_000_000 == 0
        assert doc["duration_mean"] <= doc["duration_max"] or doc["count"] > 1
        assert len(doc["url"]) <= 250 and "?" not in doc["url"]
        assert _path(doc["url"]).count("/") <= 5
        if doc["method"]:
            assert doc["response_code"].isdigit() and doc["url"]
        else:  # TCP-only record (redis, postgres)
            assert doc["url"] == doc["response_code"] == ""
        if doc["src_type"] == "net":
            assert doc["src_name_aggr"] == "pub" and doc["src_namespace"] == "-"


def test_one_document_per_key_per_window_in_end_time_order(dataset: dict[str, Any]) -> None:
    docs = dataset["docs"]
    ends = [d["end_time"] for d in docs]
    assert ends == sorted(ends)
    assert len(set(ends)) == 2 * 288
    seen: set[tuple[Any, ...]] = set()
    for d in docs:
        if d["type"] != "unlogged":
            key = (d["end_time"], *(d[k] for k in KEY))
            assert key not in seen, key
            seen.add(key)


def test_volume_and_summary(dataset: dict[str, Any]) -> None:
    docs, s = dataset["docs"], dataset["summary"]
    assert 30_000 * 2 <= len(docs) <= 100_000 * 2
    assert s.documents == len(docs) == sum(dataset["progress"])
    assert len(dataset["progress"]) == 2 * 288
    assert s.requests == sum(d["count"] for d in docs if d["type"] != "unlogged")
    assert s.unlogged_documents == sum(d["type"] == "unlogged" for d in docs)
    assert s.labels_path == labels_path(dataset["out"])
    assert s.incidents_by_kind["url_scan"] == 5  # 3, plus 2 hidden in the peak and an outage


def test_diurnal_curve_peaks_in_the_afternoon(dataset: dict[str, Any]) -> None:
    per_hour: dict[int, int] = defaultdict(int)
    for d in dataset["docs"]:
        if d["src_name_aggr"] == "pub":
            per_hour[(d["end_time"] - 1) // 3600 % 24] += d["count"]
    assert per_hour[15] > 4 * per_hour[3]


def test_ids_of_several_kinds_and_header_info_share(dataset: dict[str, Any]) -> None:
    urls = {d["url"] for d in dataset["docs"]}
    patterns = {
        "product": r"/product/[A-Z0-9]{10}$",
        "numeric": r"/api/v1/invoices/\d+$",
        "uuid": r"/api/v1/customers/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-",
        "hex": r"/api/v1/payments/[0-9a-f]{24}$",
        "grpc": r"^paymentservice:50051/hipstershop\.",
    }
    for kind, pattern in patterns.items():
        assert any(re.search(pattern, u) for u in urls), kind
    assert any(len(u) == 250 for u in urls)  # the long search token is cut at 250
    http = [d for d in dataset["docs"] if d["method"]]
    with_ua = sum(d["count"] for d in http if d["user_agent"] != "-")
    share = with_ua / sum(d["count"] for d in http)
    assert 0.05 < share < 0.15
    assert all(d["type"] in ("html/1.1", "html/2") for d in http if d["user_agent"] != "-")
    assert any(set(d) >= V324 for d in dataset["docs"])


def test_labels_file(dataset: dict[str, Any]) -> None:
    raw = orjson.loads(labels_path(dataset["out"]).read_bytes())
    assert raw["generator"] == "l7analytics.evaluation.synth" and raw["seed"] == 11
    assert raw["start"] == "2025-06-01T00:00:00Z" and raw["end"] == "2025-06-03T00:00:00Z"
    labels = dataset["labels"]
    assert len({x["id"] for x in labels}) == len(labels)
    keys = [
        "id",
        "kind",
        "detector",
        "scope",
        "start",
        "end",
        "src_namespace",
        "src_name_aggr",
        "src_workload",
        "dest_namespace",
        "dest_service_name",
        "paths",
        "description",
    ]
    for lab in labels:
        assert list(lab)[: len(keys)] == keys
        assert lab["kind"] in ATTACKS + BENIGN
        assert lab["detector"] == (None if lab["kind"] in BENIGN else "l7." + lab["kind"])
        assert lab["scope"] == SCOPES.get(lab["kind"], "caller")
        assert lab["start"] < lab["end"] and lab["start"].endswith("Z")
        assert isinstance(lab["paths"], list)
        if lab["scope"] in ("cluster", "node"):
            assert lab["src_workload"] is lab["src_namespace"] is None
            assert lab["src_name_aggr"] == []
            continue
        assert (
            lab["src_workload"] == f"{lab['src_namespace']}/" + lab["src_workload"].split("/", 1)[1]
        )
        assert lab["src_name_aggr"]
    kinds = [x["kind"] for x in labels]
    for kind in ATTACKS:
        assert kinds.count(kind) >= 2, kind
    for kind in BENIGN[:4]:  # every day has these; confounders rotate over a week
        assert kind in kinds
    incident_day = _epoch("2025-06-02T00:00:00Z")
    attack = [x for x in labels if x["kind"] in ATTACKS]
    assert all(_epoch(x["start"]) >= incident_day for x in attack)
    assert len({x["start"][11:13] for x in attack}) == len(attack)  # different hours
    on_incident_day = {x["kind"] for x in labels if _epoch(x["start"]) >= incident_day}
    assert {"benign_surge", "benign_outage"} <= on_incident_day


def test_workload_of_labels_drops_hash_and_cron_suffix(dataset: dict[str, Any]) -> None:
    by = {x["src_workload"] for x in dataset["labels"]}
    assert {
        "-/pub",
        "shop/adservice",
        "shop/recommendationservice",
        "shop/currencyservice",
        "billing/db-backup",
        "shop/cache-warmer",
        "shop/frontend",
    } <= by
    cron = next(x for x in dataset["labels"] if x["src_workload"] == "billing/db-backup")
    assert all(re.fullmatch(r"db-backup-\d{8}-\*", n) for n in cron["src_name_aggr"])
    assert len(cron["src_name_aggr"]) == 2  # a new pod name every night


def test_restricted_url_rows_are_present_and_few(dataset: dict[str, Any]) -> None:
    for lab in (x for x in dataset["labels"] if x["kind"] == "restricted_url"):
        rows = _rows(dataset["docs"], lab)
        got = {_path(d["url"]) for d in rows}
        assert set(lab["paths"]) <= got, lab["id"]
        mine = [d for d in rows if _path(d["url"]) in set(lab["paths"])]
        assert 1 <= sum(d["count"] for d in mine) <= 40
        assert any(d["response_code"].startswith("2") for d in mine)
        assert sum(d["response_code"] in ("403", "404") for d in mine) > len(mine) / 2
    paths = {p for x in dataset["labels"] if x["kind"] == "restricted_url" for p in x["paths"]}
    assert {
        "/%2e%67it/config",
        "/%252e%2565nv",
        "//.env",
        "/foo/../.git/HEAD",
        "/.env;jsessionid=1",
        "/.env.",
        "/backup.sql/",
        "/ACTUATOR/ENV",
    } <= paths


def test_url_scans_touch_hundreds_of_paths_mostly_errors(dataset: dict[str, Any]) -> None:
    sizes = []
    for lab in (x for x in dataset["labels"] if x["kind"] == "url_scan"):
        rows = _rows(dataset["docs"], lab)
        if lab["src_workload"] != "-/pub":  # pub also carries every shopper's traffic
            rows = [d for d in rows if d["dest_service_name"] != "productcatalogservice"]
            errors = sum(d["count"] for d in rows if d["response_code"][0] in "45")
            assert errors > 0.8 * sum(d["count"] for d in rows), lab["id"]
        failed = {_path(d["url"]) for d in rows if d["response_code"][0] in "45"}
        assert len(failed) >= 0.7 * lab["distinct_paths"]  # some hidden in unlogged records
        sizes.append(lab["distinct_paths"])
    assert min(sizes) <= 60 and max(sizes) >= 300
    scan = next(
        x
        for x in dataset["labels"]
        if x["kind"] == "url_scan" and x["src_workload"] == "-/pub" and x["distinct_paths"] > 300
    )
    lo, hi = _epoch(scan["start"]), _epoch(scan["end"])
    assert any(d["type"] == "unlogged" and lo < d["end_time"] <= hi for d in dataset["docs"])


def test_unusual_pairs_are_new_or_far_off_baseline(dataset: dict[str, Any]) -> None:
    callers = {
        (x["src_namespace"], n)
        for x in dataset["labels"]
        if x["kind"] == "unusual_pair"
        for n in x["src_name_aggr"]
    } | {("shop", "")}
    docs = [
        d
        for d in dataset["docs"]
        if (d["src_namespace"], d["src_name_aggr"]) in callers
        or d["src_name_aggr"].startswith(("frontend-", "checkoutservice-"))
    ]
    for lab in (x for x in dataset["labels"] if x["kind"] == "unusual_pair"):
        rows = [d for d in _rows(docs, lab) if d["dest_service_name"] == lab["dest_service_name"]]
        assert not any(d["response_code"] in ("403", "404") for d in rows)  # not a scan
        if "baseline_multiplier" not in lab:  # a pair never seen before the incident
            assert all(d["response_code"] == "200" for d in rows)
            low, high = (24, 72) if lab.get("cover") else (50, 300)  # low and slow: 1-3/window
            assert low <= sum(d["count"] for d in rows) <= high
            before = [
                d
                for d in docs
                if d["end_time"] <= _epoch(lab["start"])
                and d["src_namespace"] == lab["src_namespace"]
                and d["src_name_aggr"] in lab["src_name_aggr"]
                and d["dest_service_name"] == lab["dest_service_name"]
            ]
            assert not before, lab["id"]
            continue
        path = lab["paths"][0]
        hour = sum(d["count"] for d in rows if _path(d["url"]) == path)
        lo = _epoch(lab["start"])
        day_before = [
            d
            for d in docs
            if lo - 86400 < d["end_time"] <= lo - 86400 + 3600
            and d["src_namespace"] == lab["src_namespace"]
            and _path(d["url"]) == path
            and d["src_name_aggr"].startswith(lab["src_workload"].split("/")[1])
        ]
        assert hour > 8 * sum(d["count"] for d in day_before), lab["id"]


def test_rollout_changes_the_hash_with_one_window_of_overlap(dataset: dict[str, Any]) -> None:
    rollouts = [x for x in dataset["labels"] if x["kind"] == "benign_rollout"]
    assert {"shop/frontend", "shop/cartservice"} <= {x["src_workload"] for x in rollouts}
    for lab in rollouts:
        old, new = lab["old_name_aggr"], lab["new_name_aggr"]
        assert old != new
        hash_re = rf"-[{TEMPLATE_HASH}]{{8,10}}-\*"
        assert re.fullmatch(re.escape(lab["src_workload"].split("/")[1]) + hash_re, new)
        seen: dict[str, set[int]] = {old: set(), new: set()}
        for d in dataset["docs"]:
            for field in ("src_name_aggr", "dest_name_aggr"):
                if d[field] in seen:
                    seen[d[field]].add(d["end_time"])
        both = seen[old] & seen[new]
        assert both == {_epoch(lab["end"])}, lab["id"]
        assert max(seen[old]) < max(seen[new]) and min(seen[old]) < min(seen[new])


def test_new_product_ids_appear_only_after_they_go_online(dataset: dict[str, Any]) -> None:
    for lab in (x for x in dataset["labels"] if x["kind"] == "benign_new_ids"):
        new_urls = {f"/product/{i}" for i in lab["new_ids"]}
        when = [d["end_time"] for d in dataset["docs"] if _path(d["url"]) in new_urls]
        assert when and min(when) > _epoch(lab["start"])


def test_unlogged_records_have_only_times_count_and_node(dataset: dict[str, Any]) -> None:
    unlogged = [d for d in dataset["docs"] if d["type"] == "unlogged"]
    assert unlogged
    for d in unlogged:
        assert d["count"] > 0 and d["host"].startswith("node-")
        rest = {k: v for k, v in d.items() if k not in UNLOGGED_SET}
        assert all(v in (0, "") for v in rest.values()), rest
    per_window_host = {(d["end_time"], d["host"]) for d in unlogged}
    assert len(per_window_host) == len(unlogged)  # one record per node and flush


def test_monitoring_and_cronjobs_are_labelled_benign(dataset: dict[str, Any]) -> None:
    docs = dataset["docs"]
    prom = [d for d in docs if d["src_name_aggr"] == "prometheus-server-*"]
    assert any(_path(d["url"]) == "/actuator/prometheus" for d in prom)
    assert {d["end_time"] for d in prom} == {d["end_time"] for d in docs}  # every window
    assert all(d["dest_service_name"] == "" for d in prom if _path(d["url"]) == "/metrics")
    labelled = {
        p for x in dataset["labels"] if x["kind"] == "benign_monitoring" for p in x["paths"]
    }
    assert {"/actuator/health", "/actuator/prometheus", "/metrics"} <= labelled
    warmers = {d["src_name_aggr"] for d in docs if d["src_name_aggr"].startswith("cache-warm")}
    assert len(warmers) == 48


def test_generate_iterator_matches_the_written_file(dataset: dict[str, Any]) -> None:
    docs, labels = generate(START, 2, seed=11)
    assert labels == dataset["labels"]
    for i, doc in enumerate(docs):
        assert orjson.dumps(doc) == dataset["lines"][i]
        if i > 3000:
            break


def test_columnar_rendering_equals_dict_rendering() -> None:
    synth = Synth(START, 2, seed=4)
    frag = FlowFragments(synth)
    scan = _epoch(next(x for x in synth.labels["incidents"] if x["kind"] == "url_scan")["start"])
    first = (scan - synth.start) // 300
    shifted = [  # a drained node, HPA pods, a destination down, a canary, ...
        (_epoch(x["start"]) - synth.start) // 300
        for x in synth.labels["incidents"]
        if x["kind"] in CONFOUNDERS
    ]
    assert synth.plan.layouts
    for k in (0, 100, 400, first, first + 1, *shifted, *synth.plan.layouts):
        expected = b"".join(orjson.dumps(d) + b"\n" for d in synth.window(k))
        assert bytes(render(synth, synth.prepare(k), frag)) == expected, k


def test_benign_only_dataset_and_scale() -> None:
    synth = Synth(START, 1, seed=1, incident_day=None)
    assert {x["kind"] for x in synth.labels["incidents"]} <= set(BENIGN)
    small = Synth(START, 1, seed=1, scale=1.0).prepare(180).documents
    big = Synth(START, 1, seed=1, scale=4.0).prepare(180).documents
    assert big > 2.5 * small


def test_labels_path_and_calico_url() -> None:
    assert labels_path("out/x.ndjson.gz") == Path("out/x.labels.json")
    assert labels_path("x.ndjson") == Path("x.labels.json")
    assert labels_path("/d/x.json") == Path("/d/x.labels.json")
    assert calico_url("frontend", "/a/b/c/d/e/f/g?q=1") == "frontend/a/b/c/d/e"
    assert calico_url("frontend", "/x?y=1") == "frontend/x"
    assert len(calico_url("h", "/" + "a" * 400)) == 250


# ---------------------------------------------------------------- benign confounders
WEEK_START = datetime(2025, 6, 2, tzinfo=UTC)  # a Monday: Saturday and Sunday are days 5, 6


def _win(synth: Synth, iso: str) -> int:
    return (_epoch(iso) - synth.start) // 300


def _span(synth: Synth, lab: dict[str, Any]) -> range:
    """The windows of a label (``end`` is exclusive)."""
    return range(_win(synth, lab["start"]), _win(synth, lab["end"]))


def _dest_of(d: dict[str, Any], svc: str) -> bool:
    """A document whose destination is the workload behind Service ``svc`` (scrapes too)."""
    return d["dest_service_name"] == svc or d["dest_name_aggr"].startswith(svc + "-")


@pytest.fixture(scope="module")
def week() -> dict[str, Any]:
    """Seven days without attacks at scale 0.2, reduced to the fields the tests need."""
    synth = Synth(WEEK_START, 7, seed=3, scale=0.2, incident_day=None)
    fields = ("src_namespace", "src_name_aggr", "dest_namespace", "dest_name_aggr", "url")
    fields += ("dest_service_name",)
    fields += ("response_code", "host", "count", "bytes_out", "type")
    docs = [[{f: d[f] for f in fields} for d in synth.window(k)] for k in range(synth.n_windows)]
    labels = synth.labels["incidents"]
    return {"synth": synth, "docs": docs, "labels": labels, "by": _by_kind(labels)}


def _by_kind(labels: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for lab in labels:
        by[lab["kind"]].append(lab)
    return by


def _user_requests(synth: Synth, k: int, flows: Any = None) -> int:
    """User-driven requests the generator drew in window ``k`` (dropped ones included)."""
    w = synth.prepare(k)
    flow = w.cols["flow"]
    sel = synth.flow_user[flow]
    if flows is not None:
        sel &= np.isin(flow, flows)
    return int(w.count[: len(flow)][sel].sum())


def _quiet(synth: Synth, k: int, labels: list[dict[str, Any]]) -> bool:
    """No burst, surge, drop or load spike in window ``k``."""
    shifts = ("benign_surge", "benign_drop", "benign_hpa", "benign_canary")
    return k not in synth.plan.busy and not any(
        k in _span(synth, x) for x in labels if x["kind"] in shifts
    )


def _same_time_elsewhere(synth: Synth, k: int, labels: list[dict[str, Any]]) -> list[int]:
    """The same window on the other quiet days of the same kind (weekday or weekend)."""
    weekend = (k // 288 + WEEK_START.weekday()) % 7 >= 5
    return [
        j
        for j in range(k % 288, synth.n_windows, 288)
        if j != k
        and ((j // 288 + WEEK_START.weekday()) % 7 >= 5) == weekend
        and _quiet(synth, j, labels)
    ]


def test_every_confounder_kind_in_any_seven_days_without_attacks() -> None:
    for seed in range(6):
        synth = Synth(START, 10, seed=seed, scale=0.2, incident_day=None)
        labels = [x for x in synth.labels["incidents"] if x["kind"] in CONFOUNDERS]
        starts = [(_win(synth, x["start"]) // 288, x["kind"]) for x in labels]
        for first in range(4):
            kinds = {k for day, k in starts if first <= day < first + 7}
            assert kinds == set(CONFOUNDERS), (seed, first, set(CONFOUNDERS) - kinds)
        assert {day for day, _ in starts} == set(range(10))  # every day has some


def test_confounder_labels(week: dict[str, Any]) -> None:
    by, synth = week["by"], week["synth"]
    assert set(CONFOUNDERS) <= set(by)
    assert [x["id"] for x in week["labels"]] == sorted(x["id"] for x in week["labels"])
    for kind in CONFOUNDERS:
        for lab in by[kind]:
            assert lab["scope"] == SCOPES.get(kind, "caller") and lab["detector"] is None
            if lab["scope"] == "destination":
                assert lab["dest_service_name"] and lab["src_workload"] in lab["callers"]
                hops = {h["src_workload"] for h in lab["also_seen_as"]}
                if kind != "benign_new_service":  # there: the new service calling onwards too
                    assert hops | {lab["src_workload"]} == set(lab["callers"])
    for lab in by["benign_surge"]:
        assert 2.0 <= lab["multiplier"] <= 3.0 and 24 <= len(_span(synth, lab)) <= 36
    for lab in by["benign_drop"]:
        assert lab["multiplier"] == 0.5 and 12 <= len(_span(synth, lab)) <= 24
    assert all(len(_span(synth, x)) == 4 for x in by["benign_outage"])
    assert all(12 <= len(_span(synth, x)) <= 24 for x in by["benign_hpa"])
    assert all(len(_span(synth, x)) == 36 for x in by["benign_canary"])
    for lab in by["benign_node_drain"] + by["benign_bluegreen"] + by["benign_new_service"]:
        end = synth.n_windows if lab["kind"] != "benign_node_drain" else None
        assert _span(synth, lab).stop == (end or (_span(synth, lab).start // 288 + 1) * 288)


def test_weekend_traffic_is_lower(week: dict[str, Any]) -> None:
    synth, labels = week["synth"], week["labels"]
    ratios = []
    for k in range(5 * 288 + 120, 5 * 288 + 220, 5):  # Saturday 10:00-18:20
        weekday = [j for j in range(k % 288, 5 * 288, 288) if _quiet(synth, j, labels)]
        if _quiet(synth, k, labels) and weekday:
            ratios.append(_user_requests(synth, k) / _user_requests(synth, weekday[0]))
    assert len(ratios) > 5
    assert 0.5 < float(np.median(ratios)) < 0.7


def test_surge_and_drop_scale_the_whole_cluster(week: dict[str, Any]) -> None:
    synth, labels = week["synth"], week["labels"]
    for lab in week["by"]["benign_surge"] + week["by"]["benign_drop"]:
        here = there = 0
        for k in _span(synth, lab):
            other = _same_time_elsewhere(synth, k, labels)
            if k not in synth.plan.busy and other:
                here += _user_requests(synth, k)
                there += _user_requests(synth, other[0])
        assert there > 0, lab["id"]
        ratio = here / there
        if lab["kind"] == "benign_surge":
            assert ratio >= 2.0 * 0.93 and ratio >= lab["multiplier"] * 0.9, (lab["id"], ratio)
        else:
            assert 0.4 < ratio < 0.6, (lab["id"], ratio)


def test_outage_answers_503_to_every_caller(week: dict[str, Any]) -> None:
    synth, docs = week["synth"], week["docs"]
    for lab in week["by"]["benign_outage"]:
        svc, span = lab["dest_service_name"], _span(synth, lab)
        rows = [d for k in span for d in docs[k] if _dest_of(d, svc)]
        assert rows, lab["id"]
        assert {d["response_code"] for d in rows} == {"503"}, lab["id"]
        assert all(d["bytes_out"] <= 400 * d["count"] for d in rows)  # a 95-byte error body
        callers = {workload_id(d["src_namespace"], d["src_name_aggr"]) for d in rows}
        assert lab["src_workload"] in callers and len(callers) >= 2
        before = [d for k in range(span.start - 6, span.start) for d in docs[k] if _dest_of(d, svc)]
        assert sum(d["response_code"] != "503" for d in before) > 0.9 * len(before)
        sites = {d["url"].split("/")[0] for d in rows if d["src_name_aggr"].startswith("ingress")}
        relayed = [  # the internet's requests for a site behind it fail at the ingress too
            d
            for k in span
            for d in docs[k]
            if d["src_name_aggr"] == "pub" and d["url"].split("/")[0] in sites
        ]
        assert all(d["response_code"] == "503" for d in relayed)
        assert not relayed or "-/pub" in lab["callers"]


def test_hpa_doubles_the_load_and_spreads_over_two_more_nodes(week: dict[str, Any]) -> None:
    synth, docs, labels = week["synth"], week["docs"], week["labels"]
    for lab in week["by"]["benign_hpa"]:
        svc, span = lab["dest_service_name"], _span(synth, lab)
        key = next(k for k, w in synth.app.workloads.items() if w.name == svc)
        own = {synth.app.hosts[h] for h in synth.app.pod_hosts[key]}
        assert len(lab["nodes"]) == 2 and not own & set(lab["nodes"])
        during = {d["host"] for k in span for d in docs[k] if _dest_of(d, svc)}
        assert during == own | set(lab["nodes"]), lab["id"]
        for k in (span.start - 1, span.stop):
            assert {d["host"] for d in docs[k] if _dest_of(d, svc)} <= own
        flows = [i for i in synth.app.inbound(key) if synth.app.flows[i].profile != "fixed"]
        here = there = 0
        for k in span:
            other = _same_time_elsewhere(synth, k, labels)
            if _quiet(synth, k, [x for x in labels if x is not lab]) and other:
                here += _user_requests(synth, k, flows)
                there += _user_requests(synth, other[0], flows)
        spread = 3 * 2 * math.sqrt(1 / here + 1 / there)  # Poisson: small services are noisy
        assert abs(here / there - 2.0) < max(0.3, spread), (lab["id"], here, there)


def test_drained_node_logs_nothing_until_the_end_of_the_day(week: dict[str, Any]) -> None:
    synth, docs = week["synth"], week["docs"]
    for lab in week["by"]["benign_node_drain"]:
        node, span = lab["node"], _span(synth, lab)
        assert not [d for k in span for d in docs[k] if d["host"] == node], lab["id"]
        assert any(d["host"] == node for d in docs[span.start - 1])
        if span.stop < synth.n_windows:
            assert any(d["host"] == node for d in docs[span.stop])  # back the next day
        moved_to = {n for nodes in lab["moved"].values() for n in nodes}
        assert node not in moved_to and moved_to <= {d["host"] for d in docs[span.start]}


def test_canary_takes_a_tenth_of_its_workloads_requests(week: dict[str, Any]) -> None:
    synth, docs = week["synth"], week["docs"]
    assert week["by"]["benign_canary"]
    for lab in week["by"]["benign_canary"]:
        span, name = _span(synth, lab), lab["src_name_aggr"][0]
        original = lab["of_workload"].split("/")[1]
        assert re.fullmatch(rf"{original}-canary-[{TEMPLATE_HASH}]{{8,10}}-\*", name)
        assert workload_id(lab["src_namespace"], name) == lab["src_workload"]
        mine = [d for k in span for d in docs[k] if d["src_name_aggr"] == name]
        theirs = [
            d
            for k in span
            for d in docs[k]
            if workload_id(d["src_namespace"], d["src_name_aggr"]) == lab["of_workload"]
        ]
        dests = {d["dest_service_name"] for d in mine}
        assert len(dests) >= 2 and dests <= {d["dest_service_name"] for d in theirs}
        assert dests <= set(lab["dest_services"])
        share = sum(d["count"] for d in mine) / sum(d["count"] for d in mine + theirs)
        assert 0.08 < share < 0.12, (lab["id"], share)
        outside = [
            k
            for k, ds in enumerate(docs)
            if k not in span
            for d in ds
            if d["src_name_aggr"] == name
        ]
        assert not outside


def test_green_deployment_replaces_the_original(week: dict[str, Any]) -> None:
    synth, docs = week["synth"], week["docs"]
    (lab,) = week["by"]["benign_bluegreen"]
    span, green, blue = _span(synth, lab), lab["src_workload"], lab["of_workload"]
    assert green == blue + "-green" and lab["new_name_aggr"] in lab["src_name_aggr"]
    seen: dict[tuple[str, str], set[int]] = defaultdict(set)
    dests: dict[str, set[str]] = defaultdict(set)
    for k, ds in enumerate(docs):
        for d in ds:
            src = workload_id(d["src_namespace"], d["src_name_aggr"])
            seen[(src, "src")].add(k)
            seen[(workload_id(d["dest_namespace"], d["dest_name_aggr"]), "dest")].add(k)
            if src in (blue, green):
                dests[src].add(d["dest_service_name"])
    for side in ("src", "dest"):  # it calls and is called under the new name only
        assert max(seen[(blue, side)]) < span.start == min(seen[(green, side)]), side
    assert len(dests[green]) >= 2 and dests[green] == dests[blue]


def test_new_service_appears_at_its_start_with_its_callers(week: dict[str, Any]) -> None:
    synth, docs = week["synth"], week["docs"]
    (lab,) = week["by"]["benign_new_service"]
    span, svc = _span(synth, lab), lab["dest_service_name"]
    called = [k for k, ds in enumerate(docs) for d in ds if d["dest_service_name"] == svc]
    assert min(called) == span.start and max(called) == synth.n_windows - 1
    callers = {
        workload_id(d["src_namespace"], d["src_name_aggr"])
        for k in span
        for d in docs[k]
        if d["dest_service_name"] == svc
    }
    assert callers == set(lab["callers"])
    calls = {
        f"shop/{d['dest_service_name']}"
        for k, ds in enumerate(docs)
        for d in ds
        if d["src_name_aggr"].startswith(svc + "-")
    }
    assert calls == set(lab["calls"])
    assert {h["src_workload"] for h in lab["also_seen_as"]} >= {f"shop/{svc}"}
    assert all(_path(p).startswith("/hipstershop.") for p in lab["paths"])


def test_attacks_hidden_in_confounders(dataset: dict[str, Any]) -> None:
    labels = {x["id"]: x for x in dataset["labels"]}
    hidden = [x for x in labels.values() if x.get("cover")]
    assert sorted((x["kind"], x["cover"]) for x in hidden) == [
        ("unusual_pair", "benign_surge"),
        ("url_scan", "benign_outage"),
        ("url_scan", "diurnal_peak"),
    ]
    for lab in hidden:
        assert lab["detector"] == "l7." + lab["kind"]
        rows = _rows(dataset["docs"], lab)
        assert rows, lab["id"]
        if lab["cover"] == "diurnal_peak":
            assert lab["start"].endswith("T14:30:00Z") and lab["end"].endswith("T15:30:00Z")
            assert lab["hidden_in"] is None
            continue
        cover = labels[lab["hidden_in"]]
        assert cover["kind"] == lab["cover"]
        assert cover["start"] <= lab["start"] < lab["end"] <= cover["end"]
        if lab["kind"] == "url_scan":  # the scanner is answered 503 like everyone else
            assert lab["dest_service_name"] == cover["dest_service_name"]
            assert {d["response_code"] for d in rows} == {"503"}
            assert len({_path(d["url"]) for d in rows}) == lab["distinct_paths"] == 60
        else:  # low and slow: 1-3 requests in every window for two hours
            per_window = defaultdict(int)
            for d in rows:
                per_window[d["end_time"]] += d["count"]
            assert len(per_window) == 24 and set(per_window.values()) <= {1, 2, 3}
            assert sum(per_window.values()) == lab["requests"]
