"""URL-scan detector: thresholds on error-only routes, count weighting, scanner user agents."""

from __future__ import annotations

import hashlib
import random
import string
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from conftest import T0, calico_doc, make_records

from l7analytics.adapters.settings_file import load_job_settings
from l7analytics.core.normalize import normalize_table
from l7analytics.core.settings import UrlScanConfig
from l7analytics.core.urls import path_template
from l7analytics.core.windows import Window
from l7analytics.detectors.base import DetectionContext
from l7analytics.detectors.url_scan import UrlScanDetector

BUCKET = timedelta(hours=1)
START = datetime.fromtimestamp(T0, UTC)
CONTEXT = DetectionContext(window=Window(START, START + BUCKET), bucket=BUCKET)

PUB = {"src_name_aggr": "pub", "src_namespace": "-", "src_type": "net"}
FRONTEND = {
    "dest_name_aggr": "frontend-7d9f8c6b5-*",
    "dest_namespace": "shop",
    "dest_service_name": "frontend",
    "dest_service_namespace": "shop",
}
#: Route words that template to themselves: /probe-aa, /probe-ab, ...
WORDS = [f"probe-{a}{b}" for a in string.ascii_lowercase for b in string.ascii_lowercase]
BENIGN = [f"page-{a}{b}" for a in string.ascii_lowercase for b in string.ascii_lowercase]


def config(**changes):
    """Shipped thresholds, without OWASP CRS user agents (the model's defaults: no file read)."""
    return UrlScanConfig(crs_scanner_user_agents=False).model_copy(update=changes)


@pytest.fixture(scope="module")
def detector():
    return UrlScanDetector(config())


def rows(paths, code="404", count=1, caller=PUB, **fields):
    return [
        {**caller, **FRONTEND, "url": f"frontend{p}", "response_code": code, "count": count,
         **fields}
        for p in paths
    ]  # fmt: skip


def probes(n, count=1, **fields):
    return rows([f"/{w}" for w in WORDS[:n]], "404", count, **fields)


def benign(n, count=1, **fields):
    return rows([f"/{w}" for w in BENIGN[:n]], "200", count, **fields)


def run(detector, records_rows, context=CONTEXT):
    summary = detector.summarize(make_records(records_rows), BUCKET)
    return detector.detect(summary, context)


def test_word_paths_are_distinct_templates():
    # Precondition of the threshold tests below.
    assert len({path_template(f"/{w}") for w in WORDS[:60]}) == 60
    assert len({path_template(f"/{w}") for w in BENIGN[:60]}) == 60


# -- min_distinct_error_templates --------------------------------------------------------------


def test_fires_at_min_distinct_error_templates(detector):
    (alert,) = run(detector, probes(20, count=2))
    assert alert.origin == "l7.url_scan"
    assert alert.entity == "-/pub"
    observed = alert.record["observed"]
    assert observed["error_only_templates"] == 20
    assert observed["requests"] == 40
    assert observed["distinct_error_paths"] == 20


def test_silent_just_below_min_distinct_error_templates(detector):
    assert run(detector, probes(19, count=2)) == []


def test_distinct_templates_threshold_is_configurable():
    det = UrlScanDetector(config(min_distinct_error_templates=5, min_templates=5))
    assert len(run(det, probes(5, count=10))) == 1
    assert run(det, probes(4, count=10)) == []


# -- min_error_template_share ------------------------------------------------------------------


def test_fires_at_min_error_template_share(detector):
    # 20 error-only routes of 40: share 0.5.
    (alert,) = run(detector, probes(20, count=2) + benign(20))
    assert alert.record["observed"]["error_only_template_share"] == 0.5
    assert alert.record["score"] == 0.5


def test_silent_just_below_min_error_template_share(detector):
    # 20 error-only routes of 41: share 0.488.
    assert run(detector, probes(20, count=2) + benign(21)) == []


def test_share_just_above_fires(detector):
    # 21 of 41 routes: share 0.512.
    assert len(run(detector, probes(21, count=2) + benign(20))) == 1


def test_route_that_also_succeeded_is_not_error_only(detector):
    # The same 20 routes answered 404 and 200: no route only failed.
    paths = [f"/{w}" for w in WORDS[:20]]
    assert run(detector, rows(paths, "404", 2) + rows(paths, "200", 1)) == []


# -- min_requests and count weighting ----------------------------------------------------------


def test_requests_are_weighted_by_count(detector):
    # 25 documents: 25 requests is under min_requests (30), 50 requests is over it.
    assert run(detector, probes(25, count=1)) == []
    (alert,) = run(detector, probes(25, count=2))
    assert alert.record["observed"]["requests"] == 50
    assert alert.record["observed"]["error_requests"] == 50


def test_min_requests_boundary(detector):
    # 29 vs 30 requests over the same 25 routes.
    below = probes(25, count=1) + probes(4, count=1)
    at = probes(25, count=1) + probes(5, count=1)
    assert run(detector, below) == []
    assert run(detector, at)[0].record["observed"]["requests"] == 30


# -- realistic traffic --------------------------------------------------------------------------


def test_scan_hidden_in_heavy_benign_pub_traffic_fires(detector):
    busy = benign(12, count=20_000)  # 240,000 successful requests from the internet
    scan = probes(60)  # one wordlist request per path
    (alert,) = run(detector, busy + scan)
    observed = alert.record["observed"]
    assert observed["error_share"] < 0.001  # the request error rate hardly moves
    assert observed["error_only_templates"] == 60
    assert observed["templates"] == 72
    assert alert.record["path_details"][0]["requests"] == 1
    assert len(alert.record["paths"]) == 10  # top_paths


def test_heavy_benign_traffic_alone_is_silent(detector):
    assert run(detector, benign(12, count=20_000) + rows(["/favicon.ico"], "404", 500)) == []


def test_many_product_ids_answered_404_do_not_fire(detector):
    rng = random.Random(7)
    alphabet = string.ascii_uppercase + string.digits
    ids = set()
    while len(ids) < 300:
        candidate = "".join(rng.choice(alphabet) for _ in range(10))
        if path_template(f"/product/{candidate}") == "/product/{id}":
            ids.add(candidate)
    stale = rows([f"/product/{i}" for i in sorted(ids)], "404", 2)
    assert run(detector, stale + benign(5, count=100)) == []
    summary = detector.summarize(make_records(stale), BUCKET)
    assert set(summary.column("path_template").to_pylist()) == {"/product/{id}"}


def test_internal_callers_judged_separately(detector):
    checkout = {"src_name_aggr": "checkout-69c8ff664b-*", "src_namespace": "shop",
                "src_type": "wep"}  # fmt: skip
    alerts = run(detector, probes(30, count=2) + benign(30, count=5, caller=checkout))
    assert [a.entity for a in alerts] == ["-/pub"]


# -- scanner user agents -----------------------------------------------------------------------

NUCLEI = (
    "Mozilla/5.0 (compatible; Nuclei - Open-source project (github.com/projectdiscovery/nuclei))"
)


def test_scanner_user_agent_fires_even_without_errors(detector):
    (alert,) = run(detector, benign(1, count=5, user_agent=NUCLEI))
    assert alert.record["scanner_user_agents"] == ["nuclei"]
    assert alert.mitre_ids == ["T1595.003", "T1595.002"]
    assert "nuclei" in alert.description


def test_scanner_user_agent_below_min_scanner_requests_is_silent(detector):
    assert run(detector, benign(1, count=4, user_agent=NUCLEI)) == []


@pytest.mark.parametrize(
    ("agent", "name"),
    [("sqlmap/1.7.2#stable (https://sqlmap.org)", "sqlmap"), ("Nikto/2.5.0", "nikto")],
)
def test_scanner_agent_lookup(detector, agent, name):
    assert detector.scanner_agent(agent) == name
    assert detector.scanner_agent("Mozilla/5.0 (X11; Linux x86_64)") is None
    assert detector.scanner_agent(None) is None


def test_scanner_raises_severity(detector):
    (plain,) = run(detector, probes(25, count=2))
    (named,) = run(detector, probes(25, count=2, user_agent="gobuster/3.6"))
    assert named.severity == plain.severity + 10


# -- alert content and determinism ---------------------------------------------------------------


def test_alert_fields(detector):
    (alert,) = run(detector, probes(25, count=2))
    assert alert.name == "URL scan"
    assert alert.source_name_aggr == "pub"
    assert alert.source_namespace is None
    assert alert.dest_service_name == "frontend"
    assert alert.host == "node-1"
    assert alert.record["window_start"] == "2026-11-20T05:00:00Z"
    assert alert.record["thresholds"]["min_distinct_error_templates"] == 20
    assert 0 <= alert.severity <= 100


def test_unlogged_requests_on_the_callers_node_are_reported(detector):
    overflow = normalize_table(
        pa.Table.from_pylist(
            [
                calico_doc(type="unlogged", count=900, host="node-1", end_time=T0 + 600),
                calico_doc(type="unlogged", count=5, host="node-9", end_time=T0 + 600),
            ]
        )
    ).unlogged
    context = DetectionContext(window=CONTEXT.window, bucket=BUCKET, unlogged=overflow)
    (alert,) = run(detector, probes(25, count=2), context)
    assert alert.record["unlogged_requests_on_hosts"] == 900
    assert "900 requests on its nodes were not logged" in alert.description


def test_deterministic_ids(detector):
    data = (
        probes(30, count=2)
        + benign(5)
        + benign(
            1,
            count=6,
            user_agent="nikto",
            caller={"src_name_aggr": "scanner-*", "src_namespace": "ci"},
        )
    )
    first = run(detector, data)
    second = run(UrlScanDetector(config()), data)
    assert len(first) == 2
    assert [a.id for a in first] == [a.id for a in second]
    assert [a.to_event() for a in first] == [a.to_event() for a in second]


def test_combined_partials_give_the_same_alerts(detector):
    data = probes(25, count=2) + benign(5)
    whole = run(detector, data)
    parts = [detector.summarize(make_records(data[i::3]), BUCKET) for i in range(3)]
    combined = detector.detect(detector.combine(parts), CONTEXT)
    assert [a.to_event() for a in whole] == [a.to_event() for a in combined]


def test_min_templates_keeps_one_missing_file_from_being_a_full_share():
    det = UrlScanDetector(config(min_distinct_error_templates=1))
    # One route, always 404, many requests: share 1/20, not 1/1.
    assert run(det, rows(["/favicon.ico"], "404", 500)) == []
    # With min_templates 1 the same traffic is a 100 % share.
    det = UrlScanDetector(config(min_distinct_error_templates=1, min_templates=1))
    (alert,) = run(det, rows(["/favicon.ico"], "404", 500))
    assert alert.record["score"] == 1.0


# -- the shipped detector, and OWASP CRS scanners-user-agents.data -----------------------------

#: The 23 scanner user agents the defaults ship (defaults/config.yaml).
SHIPPED_AGENTS = {
    "nikto", "sqlmap", "gobuster", "dirbuster", "dirb", "wfuzz", "ffuf", "feroxbuster", "nuclei",
    "nmap", "masscan", "zgrab", "wpscan", "acunetix", "nessus", "openvas", "burp", "arachni",
    "w3af", "skipfish", "whatweb", "httpx-toolkit", "jaeles",
}  # fmt: skip


def test_the_default_detector_carries_the_shipped_user_agents():
    detector = UrlScanDetector(UrlScanConfig())
    assert set(detector._agents) == SHIPPED_AGENTS
    assert len(SHIPPED_AGENTS) == 23
    assert UrlScanDetector().scanner_agent("Nikto/2.5.0") == "nikto"
    assert detector.rule_lists == []


def crs_settings(tmp_path):
    crs = tmp_path / "scanners-user-agents.data"
    crs.write_text("# OWASP CRS scanner user agents\nFooScan\nbarprobe/\n")
    path = tmp_path / "l7.yaml"
    path.write_text(f"detectors:\n  url_scan:\n    crs_scanner_user_agents: {crs}\n")
    return load_job_settings(path).detectors.url_scan, crs


def test_crs_user_agents_come_from_the_settings(tmp_path):
    settings, crs = crs_settings(tmp_path)
    detector = UrlScanDetector(settings)
    assert detector.scanner_agent("FooScan/1.0") == "fooscan"
    assert detector.scanner_agent("sqlmap/1.7") == "sqlmap"  # the shipped ones stay
    crs.write_text("other\n")  # read once, when the settings loaded
    assert UrlScanDetector(settings).scanner_agent("FooScan/1.0") == "fooscan"


def test_alerts_name_the_crs_list_and_its_hash(tmp_path):
    settings, crs = crs_settings(tmp_path)
    detector = UrlScanDetector(settings)
    (alert,) = run(detector, benign(1, count=5, user_agent="barprobe/2"))
    assert alert.record["scanner_user_agents"] == ["barprobe/"]
    sha256 = hashlib.sha256(crs.read_bytes()).hexdigest()
    assert alert.record["rule_lists"] == [{"name": "scanners-user-agents.data", "sha256": sha256}]
    # Without a list the record is as before.
    (plain,) = run(UrlScanDetector(config()), benign(1, count=5, user_agent="nikto"))
    assert "rule_lists" not in plain.record


def test_missing_crs_user_agents_file_is_a_config_error(tmp_path):
    from l7analytics.core.errors import ConfigError

    path = tmp_path / "l7.yaml"
    path.write_text(f"detectors:\n  url_scan:\n    crs_scanner_user_agents: {tmp_path}/no.data\n")
    with pytest.raises(ConfigError, match=r"detectors\.url_scan\.crs_scanner_user_agents: no such"):
        load_job_settings(path)
