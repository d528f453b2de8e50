"""Restricted-URL detector: rules on normalized paths, scope, allowed callers, 2xx severity."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from conftest import T0, make_records
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l7analytics.adapters.settings_file import load_job_settings, load_settings
from l7analytics.core.errors import ConfigError
from l7analytics.core.settings import RestrictedRule, RestrictedUrlConfig
from l7analytics.core.windows import Window
from l7analytics.detectors.base import DetectionContext
from l7analytics.detectors.restricted_url import RestrictedUrlDetector

BUCKET = timedelta(hours=1)
START = datetime.fromtimestamp(T0, UTC)
CONTEXT = DetectionContext(window=Window(START, START + BUCKET), bucket=BUCKET)

#: Internet traffic to the shop's frontend through its Service.
PUB_TO_FRONTEND = {
    "src_name_aggr": "pub",
    "src_namespace": "-",
    "src_type": "net",
    "dest_name_aggr": "frontend-7d9f8c6b5-*",
    "dest_namespace": "shop",
    "dest_service_name": "frontend",
    "dest_service_namespace": "shop",
}


def config(**changes):
    """The shipped rules, without OWASP CRS (the model's defaults: no file is read)."""
    return RestrictedUrlConfig(crs_restricted_files=False).model_copy(update=changes)


@pytest.fixture(scope="module")
def detector():
    return RestrictedUrlDetector(config())


def request(path, code="404", count=1, **fields):
    return {**PUB_TO_FRONTEND, "url": f"frontend{path}", "response_code": code, "count": count,
            **fields}  # fmt: skip


def run(detector, rows, context=CONTEXT):
    summary = detector.summarize(make_records(rows), BUCKET)
    return detector.detect(summary, context)


# -- matching ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("/.git/config", "vcs-metadata"),
        ("/%2e%67it/config", "vcs-metadata"),
        ("/foo/../.git/HEAD", "vcs-metadata"),
        ("\\.git\\config", "vcs-metadata"),
        ("/a/b/c/d/.git", "vcs-metadata"),  # cut to 5 segments by Calico, still matched
        ("/.env", "secret-files"),
        ("/%252e%2565nv", "secret-files"),
        ("//.env", "secret-files"),
        ("/.env;jsessionid=1", "secret-files"),
        ("/.env.", "secret-files"),
        ("/.env%00.jpg", "secret-files"),
        ("/.ENV", "secret-files"),
        ("/app/.env.production", "secret-files"),
        ("/backup.sql/", "dumps-and-backups"),
        ("/db/backup.sql./", "dumps-and-backups"),
        ("/actuator/env", "spring-actuator"),
        ("/ACTUATOR/ENV", "spring-actuator"),
        ("/Actuator/HeapDump", "spring-actuator"),
        ("/debug/pprof/heap", "debug-endpoints"),
        ("/wp-admin/install.php", "admin-consoles"),
        ("/metrics", "metrics-endpoints"),
    ],
)
def test_rule_matches_normalized_path(detector, path, rule):
    normalized, rules = detector.match_path(path)
    assert rule in rules.split(",")
    assert normalized.startswith("/")
    assert "//" not in normalized


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/products",
        "/product/OLJCESPC7Z",
        "/actuator/health",
        "/actuator/info",
        "/static/app.js",
        "/.environment",
        "/metricsviewer",
        "/hipstershop.PaymentService/Charge",
    ],
)
def test_ordinary_paths_match_nothing(detector, path):
    assert detector.match_path(path)[1] == ""


def test_no_path_matches_nothing(detector):
    assert detector.match_path(None) == (None, "")


def test_case_sensitive_rule_respects_case():
    rule = RestrictedRule(id="secret", description="s", prefix=["/Secret"], case_sensitive=True)
    det = RestrictedUrlDetector(config(rules=[rule]))
    assert det.match_path("/Secret/x")[1] == "secret"
    assert det.match_path("/secret/x")[1] == ""


# -- alerts --------------------------------------------------------------------------------


def test_probe_raises_one_alert_per_caller_and_destination_listing_every_rule(detector):
    alerts = run(
        detector,
        [
            request("/.git/config", count=2),
            request("/%2e%67it/HEAD"),
            request("/.env"),
            request("/products", code="200", count=500),
        ],
    )
    assert len(alerts) == 1
    git = alerts[0]
    assert set(git.record["rule_ids"]) == {"vcs-metadata", "secret-files"}
    assert git.record["rule_id"] == git.record["rule_ids"][0]  # the most severe leads
    by_rule = {r["id"]: r for r in git.record["rules"]}
    assert by_rule["vcs-metadata"]["requests"] == 3
    assert by_rule["secret-files"]["requests"] == 1
    assert git.severity == max(r["severity"] for r in git.record["rules"])
    assert git.origin == "l7.restricted_url"
    assert git.entity == "-/pub|shop/frontend"
    assert git.record["observed"] == {
        "requests": 4,
        "succeeded_requests": 0,
        "distinct_paths": 3,
        "rules": 2,
    }
    assert {p["normalized"] for p in git.record["path_details"]} == {
        "/.git/config",
        "/.git/HEAD",
        "/.env",
    }
    assert git.dest_service_name == "frontend"
    assert git.dest_namespace == "shop"
    assert git.source_name_aggr == "pub"
    assert git.source_namespace is None
    assert git.record["window_start"] == "2026-11-20T05:00:00Z"
    assert git.time == "2026-11-20T06:00:00Z"


def test_2xx_raises_severity_over_a_denied_probe(detector):
    (denied,) = run(detector, [request("/.git/config", code="403")])
    (served,) = run(detector, [request("/.git/config", code="200")])
    (mixed,) = run(detector, [request("/.git/config", code="404", count=9),
                              request("/.git/HEAD", code="200")])  # fmt: skip
    assert denied.severity == 70
    assert served.severity == 70 + 20
    assert mixed.severity == served.severity
    assert mixed.record["observed"]["succeeded_requests"] == 1
    # A served probe is no longer reconnaissance only.
    assert denied.mitre_tactic == "Reconnaissance"
    assert served.mitre_tactic == "Initial Access"
    assert "1 answered 2xx" in mixed.description
    assert "none answered 2xx" in denied.description


def test_rule_tactic_other_than_reconnaissance_is_kept(detector):
    (served,) = run(detector, [request("/.env", code="200")])
    assert served.mitre_tactic == "Credential Access"
    assert served.mitre_ids == ["T1552.001"]
    assert served.severity == 80 + 20


def test_boost_is_configurable():
    det = RestrictedUrlDetector(config(success_severity_boost=0))
    (served,) = run(det, [request("/.git/config", code="200")])
    assert served.severity == 70


def test_monitoring_may_read_metrics(detector):
    scrapers = [
        {"src_name_aggr": "prometheus-server-7d9f8c6b5-*", "src_namespace": "monitoring"},
        {"src_name_aggr": "prometheus-k8s-*", "src_namespace": "observability"},
        {"src_name_aggr": "otel-collector-5c4b9d7f8-*", "src_namespace": "telemetry"},
        {"src_name_aggr": "calico-node-*", "src_namespace": "calico-system"},
    ]
    rows = [request("/metrics", code="200", count=60, **s, src_type="wep") for s in scrapers]
    assert run(detector, rows) == []


def test_other_callers_on_metrics_alert(detector):
    rows = [
        request("/metrics", code="200", count=60, src_name_aggr="prometheus-server-7d9f8c6b5-*",
                src_namespace="monitoring", src_type="wep"),
        request("/metrics", code="200", count=2, src_name_aggr="checkout-69c8ff664b-*",
                src_namespace="shop", src_type="wep"),
    ]  # fmt: skip
    (alert,) = run(detector, rows)
    assert alert.record["caller"] == "shop/checkout"
    assert alert.record["rule_id"] == "metrics-endpoints"
    assert alert.record["observed"]["requests"] == 2
    assert alert.severity == 35 + 20


def test_rule_scoped_to_destination_namespace():
    rule = RestrictedRule(
        id="billing-internal",
        description="billing internals",
        prefix=["/internal"],
        dest_namespaces=["billing"],
    )
    det = RestrictedUrlDetector(config(rules=[rule]))
    in_scope = request(
        "/internal/ledger",
        dest_namespace="billing",
        dest_service_namespace="billing",
        dest_service_name="billing-api",
    )
    out_of_scope = request("/internal/ledger")  # shop
    alerts = run(det, [in_scope, out_of_scope])  # fmt: skip
    assert [a.record["dest"] for a in alerts] == ["billing/billing-api"]


def test_rule_scoped_to_service_and_method():
    rule = RestrictedRule(
        id="admin-write",
        description="admin writes",
        prefix=["/admin"],
        dest_services=["frontend"],
        methods=["post", "PUT"],
    )
    det = RestrictedUrlDetector(config(rules=[rule]))
    rows = [
        request("/admin/users", method="GET"),
        request("/admin/users", method="POST", count=3),
        request("/admin/users", method="POST", dest_service_name="cart"),
    ]
    (alert,) = run(det, rows)
    assert alert.record["methods"] == ["POST"]
    assert alert.record["observed"]["requests"] == 3
    assert alert.dest_service_name == "frontend"


def test_extra_rules_are_used():
    extra = RestrictedRule(id="internal", description="internal API", prefix=["/internal"])
    det = RestrictedUrlDetector(config(extra_rules=[extra]))
    assert det.match_path("/internal/x")[1] == "internal"
    assert det.match_path("/.git/config")[1] == "vcs-metadata"


def test_rollout_does_not_split_the_caller(detector):
    rows = [
        request("/.env", src_name_aggr="frontend-7d9f8c6b5-*", src_namespace="shop",
                src_type="wep", dest_service_name="cart", dest_namespace="shop"),
        request("/.env", src_name_aggr="frontend-5c4b9d7f8-*", src_namespace="shop",
                src_type="wep", dest_service_name="cart", dest_namespace="shop"),
    ]  # fmt: skip
    (alert,) = run(detector, rows)
    assert alert.record["caller"] == "shop/frontend"
    assert alert.record["source_names"] == ["frontend-5c4b9d7f8-*", "frontend-7d9f8c6b5-*"]
    assert alert.record["observed"]["requests"] == 2


def test_one_alert_per_bucket(detector):
    rows = [request("/.env", end_time=T0 + 300), request("/.env", end_time=T0 + 3600 + 300)]
    context = DetectionContext(window=Window(START, START + 2 * BUCKET), bucket=BUCKET)
    alerts = run(detector, rows, context)
    assert [a.record["window_start"] for a in alerts] == [
        "2026-11-20T05:00:00Z",
        "2026-11-20T06:00:00Z",
    ]
    assert len({a.id for a in alerts}) == 2


def test_no_match_no_alert(detector):
    assert run(detector, [request("/products", code="200", count=100)]) == []


def test_deterministic_ids(detector):
    rows = [request("/.git/config"), request("/.env", code="200"), request("/actuator/env")]
    first = run(detector, rows)
    second = run(RestrictedUrlDetector(config()), rows)
    assert [a.id for a in first] == [a.id for a in second]
    assert [a.to_event() for a in first] == [a.to_event() for a in second]
    assert len(first) == 1 and len(first[0].record["rule_ids"]) == 3


def test_combined_partials_give_the_same_alerts(detector):
    rows = [request("/.git/config", count=2), request("/.git/config", code="200")]
    whole = detector.detect(detector.summarize(make_records(rows), BUCKET), CONTEXT)
    parts = [detector.summarize(make_records([row]), BUCKET) for row in rows]
    combined = detector.detect(detector.combine(parts), CONTEXT)
    assert [a.to_event() for a in whole] == [a.to_event() for a in combined]


# -- OWASP CRS restricted-files.data: read when the settings load, named in alerts -------------

CRS_TEXT = "# OWASP CRS restricted files\n.ds_store\n/.idea/\nweb.config\n"


def crs_settings(tmp_path, text=CRS_TEXT):
    crs = tmp_path / "restricted-files.data"
    crs.write_text(text)
    path = tmp_path / "l7.yaml"
    path.write_text(
        f"detectors:\n  restricted_url:\n    crs_restricted_files: {crs}\n    rules: []\n"
    )
    return load_job_settings(path).detectors.restricted_url, crs


def test_the_detector_ships_the_default_rules():
    ids = [r.id for r in RestrictedUrlDetector().rules]
    assert ids == [r.id for r in load_settings().detectors.restricted_url.rules]
    assert "vcs-metadata" in ids


def test_owasp_crs_restricted_files_list_is_loaded_from_a_path(tmp_path):
    settings, crs = crs_settings(tmp_path)
    assert settings.crs_list.entries == [".ds_store", "/.idea/", "web.config"]
    detector = RestrictedUrlDetector(settings)
    assert detector.match_path("/static/WEB.CONFIG")[1] == "crs-restricted-files"
    assert detector.match_path("/%2Eidea/workspace.xml")[1] == "crs-restricted-files"
    assert detector.match_path("/static/app.js")[1] == ""
    ref = {"name": "restricted-files.data", "sha256": hashlib.sha256(crs.read_bytes()).hexdigest()}
    assert detector.rule_lists == [ref]


def test_crs_alerts_name_the_list_and_its_hash(tmp_path):
    settings, crs = crs_settings(tmp_path)
    detector = RestrictedUrlDetector(settings.model_copy(update={"rules": config().rules}))
    (alert,) = run(detector, [request("/static/web.config"), request("/.git/config")])
    assert {"crs-restricted-files", "vcs-metadata"} <= set(alert.record["rule_ids"])
    sha256 = hashlib.sha256(crs.read_bytes()).hexdigest()
    assert alert.record["rule_lists"] == [{"name": "restricted-files.data", "sha256": sha256}]
    (shipped,) = run(detector, [request("/.git/config")])
    assert "rule_lists" not in shipped.record  # the shipped rules: no list


def test_the_detector_reads_the_settings_not_the_file(tmp_path):
    """The list is what the settings hold: changing the file after loading changes nothing."""
    settings, crs = crs_settings(tmp_path)
    crs.write_text("secret.txt\n")
    detector = RestrictedUrlDetector(settings)
    assert detector.match_path("/web.config")[1] == "crs-restricted-files"
    assert detector.match_path("/secret.txt")[1] == ""


def test_an_empty_crs_list_adds_no_rule(tmp_path):
    settings, _ = crs_settings(tmp_path, "# only comments\n\n")
    detector = RestrictedUrlDetector(settings)
    assert detector.rules == []
    assert detector.rule_lists[0]["name"] == "restricted-files.data"


def test_a_crs_setting_alone_reads_nothing(tmp_path):
    """A config built in code has no list until resolve_rule_lists reads it."""
    detector = RestrictedUrlDetector(config(crs_restricted_files=str(tmp_path / "x.data")))
    assert "crs-restricted-files" not in [r.id for r in detector.rules]
    assert detector.rule_lists == []


def test_missing_crs_file_given_by_path_is_a_config_error(tmp_path):
    path = tmp_path / "l7.yaml"
    path.write_text(f"detectors:\n  restricted_url:\n    crs_restricted_files: {tmp_path}/nope\n")
    with pytest.raises(ConfigError) as info:
        load_job_settings(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        f"config error in {path}: detectors.restricted_url.crs_restricted_files: no such file: "
    )
    assert f"{tmp_path}/nope" in message


# -- the vectorized matching equals the per-path one ------------------------------------------
_TRICKY = "/.%2eEeGgIiTt\\;?#\x00\n\t ükK\u212a\u017fsS-_~*aAbB0123456789"
_PATHS = st.text(alphabet=_TRICKY, max_size=24) | st.sampled_from([
    "/.git/config", "/%2e%67it/HEAD", "//.env", "/a/../.git/x", "/.env;x=1", "/.env.",
    "/actuator/env", "/actuator/health", "/heapdump", "/WEB-INF/web.xml", "/backup.sql",
    "/.GIT/config", "/.git\n", "/\u212a", "/wp-login.php", "/server-status", None,
])  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(paths=st.lists(_PATHS, min_size=1, max_size=40))
def test_matching_distinct_paths_at_once_equals_matching_each(paths):
    """Arrow's RE2 decides on plain ASCII paths, Python's re on the rest: never a different
    answer (a missed rule would be a missed attack)."""
    detector = _MIXED
    normalized, rules = detector.match_paths(pa.array(paths, type=pa.string()))
    expected = [detector.match_path(p) for p in paths]
    assert list(zip(normalized.to_pylist(), rules.to_pylist(), strict=True)) == expected


_MIXED = RestrictedUrlDetector(
    config(
        extra_rules=[
            RestrictedRule(id="cased", description="a case-sensitive prefix",
                           prefix=["/Secret/"], case_sensitive=True, severity=50),
            RestrictedRule(id="kelvin", description="contains and globs",
                           contains=["kk", "ſs"], glob=["*/.e?v", "/a*B"], severity=50),
            RestrictedRule(id="users-regex", description="a regex of the user's",
                           regex=["t{,2}x$"], severity=50),
        ]
    )
)  # fmt: skip
