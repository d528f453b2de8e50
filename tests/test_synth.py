"""Tests of the synthetic Calico L7 generator: format, determinism, labelled events."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from l7analytics.evaluation.synth import Synth, generate, labels_path, load_labels, write_dataset
from l7analytics.evaluation.synth.app import FIELDS, INT_FIELDS, TEMPLATE_HASH, calico_url
from l7analytics.evaluation.synth.ndjson import FlowFragments, render

START = datetime(2025, 6, 1, tzinfo=UTC)  # a Sunday; the incident day is Monday
ATTACKS = ("restricted_url", "url_scan", "unusual_pair")
BENIGN = ("benign_rollout", "benign_new_ids", "benign_cronjob", "benign_monitoring")
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
    assert s.incidents_by_kind["url_scan"] == 3


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
    for lab in labels:
        assert lab["kind"] in ATTACKS + BENIGN
        assert lab["detector"] == (None if lab["kind"] in BENIGN else "l7." + lab["kind"])
        assert lab["start"] < lab["end"] and lab["start"].endswith("Z")
        assert (
            lab["src_workload"] == f"{lab['src_namespace']}/" + lab["src_workload"].split("/", 1)[1]
        )
        assert lab["src_name_aggr"] and isinstance(lab["paths"], list)
    kinds = [x["kind"] for x in labels]
    for kind in ATTACKS:
        assert kinds.count(kind) >= 2, kind
    for kind in BENIGN:
        assert kind in kinds
    incident_day = _epoch("2025-06-02T00:00:00Z")
    attack = [x for x in labels if x["kind"] in ATTACKS]
    assert all(_epoch(x["start"]) >= incident_day for x in attack)
    assert len({x["start"][11:13] for x in attack}) == len(attack)  # different hours


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
            assert 50 <= sum(d["count"] for d in rows) <= 300
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
    for k in (0, 100, 400, first, first + 1):
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
