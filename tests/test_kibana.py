"""The Kibana saved objects and ``kibana-setup``.

Kibana itself cannot run on the machines these tests run on (no Kibana package in the
registries they reach, no container runtime), so:

- the saved objects are checked statically: every line parses as a Kibana 8.x export object,
  ids are unique, every reference resolves inside the file and every internal name (a Lens
  layer's data view reference, a dashboard panel's ``panelRefName``, a search's
  ``indexRefName``) has its reference; Lens layers are consistent (column order, accessors,
  ``orderBy`` columns); every field any object uses exists, with a type that fits its use,
  in the index template its data view covers (``ALERT_MAPPING`` for ``l7-anomaly-alerts*``,
  Calico's ``CALICO_L7_MAPPING`` for ``tigera_secure_ee_l7*``);
- ``kibana-setup`` runs against a local stub HTTP server (127.0.0.1, ephemeral port) that
  plays Kibana's ``POST /api/saved_objects/_import`` the way Kibana answers it.

What only a running Kibana can tell (rendering, Kibana's own schema validation and
migrations of these objects) is not covered here.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import json
import re
import socket
import threading
from collections.abc import Iterator
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from l7analytics.adapters.elasticsearch.templates import (
    ALERT_MAPPING,
    CALICO_L7_MAPPING,
    alerts_template,
)
from l7analytics.cli import main
from l7analytics.config import Settings
from l7analytics.kibana import DASHBOARD_ID, saved_objects_ndjson

RAW = saved_objects_ndjson()
OBJECTS: list[dict[str, Any]] = [json.loads(line) for line in RAW.decode().splitlines()]
BY_KEY = {(o["type"], o["id"]): o for o in OBJECTS}
ALERTS_VIEW, L7_VIEW = "l7analytics-alerts", "l7analytics-l7-logs"
#: Versions Kibana 8.x writes for objects of these shapes (8.17 exports: index-pattern 8.0.0,
#: lens 8.9.0, dashboard 10.2.0); search declares its oldest 8.x schema, which is all it uses.
#: None is newer than Kibana 8.19 knows, so 8.19 imports them and migrates them forward.
TYPE_VERSIONS = {
    "index-pattern": "8.0.0",
    "search": "8.0.0",
    "lens": "8.9.0",
    "dashboard": "10.2.0",
}
RECORDS = "___records___"  # Lens' "count of records" pseudo-field


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted field name -> type, with multi-fields (``description.keyword``)."""
    fields: dict[str, str] = {}
    for name, spec in mapping.get("properties", {}).items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            fields.update(flatten(spec, f"{path}."))
            continue
        fields[path] = spec.get("type", "object")
        for sub, sub_spec in spec.get("fields", {}).items():
            fields[f"{path}.{sub}"] = sub_spec["type"]
    return fields


MAPPINGS = {ALERTS_VIEW: flatten(ALERT_MAPPING), L7_VIEW: flatten(CALICO_L7_MAPPING)}
NUMERIC = {"integer", "long", "double", "float", "short", "byte", "scaled_float"}
KQL_FIELD = re.compile(r"([A-Za-z_@][\w.@]*)\s*(?::|<=|>=|<|>)")


def data_view_of(obj: dict[str, Any]) -> str:
    views = {r["id"] for r in obj["references"] if r["type"] == "index-pattern"}
    assert len(views) == 1, f"{obj['id']} must use exactly one data view: {views}"
    return views.pop()


def query_fields(query: dict[str, Any]) -> set[str]:
    assert query.get("language") == "kuery", query
    return set(KQL_FIELD.findall(query.get("query", "")))


def filter_fields(filters: list[dict[str, Any]]) -> set[str]:
    fields: set[str] = set()
    for f in filters:
        if f.get("meta", {}).get("key"):
            fields.add(f["meta"]["key"])
        for clause in ("range", "match_phrase", "match", "term", "terms"):
            fields.update(f.get("query", {}).get(clause, {}))
        if "exists" in f.get("query", {}):
            fields.add(f["query"]["exists"]["field"])
    return fields


def used_fields(obj: dict[str, Any]) -> dict[str, set[str]]:
    """Field -> the uses an object makes of it (column, sort, terms, date_histogram, ...)."""
    uses: dict[str, set[str]] = {}

    def use(field: str, how: str) -> None:
        uses.setdefault(field, set()).add(how)

    attributes = obj["attributes"]
    if obj["type"] == "index-pattern":
        use(attributes["timeFieldName"], "time")
        for name in ("fieldAttrs", "fieldFormatMap"):
            for field in json.loads(attributes.get(name) or "{}"):
                use(field, name)
    if obj["type"] in ("search", "dashboard"):
        for field in attributes.get("columns", []):
            use(field, "column")
        for field, _direction in attributes.get("sort", []):
            use(field, "sort")
        source = json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])
        for field in query_fields(source["query"]) | filter_fields(source.get("filter", [])):
            use(field, "query")
    if obj["type"] == "lens":
        state = attributes["state"]
        for layer in state["datasourceStates"]["formBased"]["layers"].values():
            for column in layer["columns"].values():
                if column.get("sourceField") and column["sourceField"] != RECORDS:
                    use(column["sourceField"], column["operationType"])
                if column.get("filter"):
                    for field in query_fields(column["filter"]):
                        use(field, "query")
        for field in query_fields(state["query"]) | filter_fields(state["filters"]):
            use(field, "query")
    return uses


# ---------------------------------------------------------------- the file itself


def test_every_line_is_a_kibana_8_export_object_with_a_unique_stable_id():
    assert RAW.endswith(b"\n") and b"\n\n" not in RAW
    assert len(OBJECTS) == len({o["id"] for o in OBJECTS}), "ids must be unique"
    for obj in OBJECTS:
        assert set(obj) >= {"type", "id", "attributes", "references", "coreMigrationVersion"}
        assert obj["id"].startswith("l7analytics-"), obj["id"]
        assert obj["coreMigrationVersion"] == "8.8.0"
        assert obj["typeMigrationVersion"] == TYPE_VERSIONS[obj["type"]], obj["id"]
        assert "migrationVersion" not in obj  # the 7.x form
        assert obj["attributes"]["title"]
    counts = {t: sum(o["type"] == t for o in OBJECTS) for t in TYPE_VERSIONS}
    assert counts == {"index-pattern": 2, "search": 3, "lens": 4, "dashboard": 1}


def test_every_reference_points_to_an_object_in_the_file():
    for obj in OBJECTS:
        names = [r["name"] for r in obj["references"]]
        assert len(names) == len(set(names)), f"{obj['id']}: duplicate reference names"
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in BY_KEY, f"{obj['id']} -> {ref}"
        # Objects come after what they reference, as in Kibana's own exports.
        position = OBJECTS.index(obj)
        for ref in obj["references"]:
            assert OBJECTS.index(BY_KEY[(ref["type"], ref["id"])]) < position


def test_internal_reference_names_resolve():
    for obj in OBJECTS:
        names = {r["name"]: r for r in obj["references"]}
        attributes = obj["attributes"]
        if obj["type"] == "search":
            source = json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])
            assert names[source["indexRefName"]]["type"] == "index-pattern"
        if obj["type"] == "lens":
            layers = attributes["state"]["datasourceStates"]["formBased"]["layers"]
            assert set(names) == {f"indexpattern-datasource-layer-{layer}" for layer in layers}
        if obj["type"] == "dashboard":
            panels = json.loads(attributes["panelsJSON"])
            expected = {f"{p['panelIndex']}:{p['panelRefName']}": p["type"] for p in panels}
            assert {n: r["type"] for n, r in names.items()} == expected
            for panel in panels:
                assert panel["gridData"]["i"] == panel["panelIndex"]
                assert panel["gridData"]["x"] + panel["gridData"]["w"] <= 48


def test_lens_layers_are_consistent():
    for obj in (o for o in OBJECTS if o["type"] == "lens"):
        state = obj["attributes"]["state"]
        layers = state["datasourceStates"]["formBased"]["layers"]
        columns_of = {layer_id: set(layer["columns"]) for layer_id, layer in layers.items()}
        for layer in layers.values():
            assert sorted(layer["columnOrder"]) == sorted(layer["columns"]), obj["id"]
            # Bucketed columns first, metrics last, as Lens orders them.
            bucketed = [layer["columns"][c]["isBucketed"] for c in layer["columnOrder"]]
            assert bucketed == sorted(bucketed, reverse=True), obj["id"]
            for column in layer["columns"].values():
                order_by = column.get("params", {}).get("orderBy", {})
                if order_by.get("type") == "column":
                    assert order_by["columnId"] in layer["columns"], obj["id"]
        visualization = state["visualization"]
        for vis_layer in visualization["layers"]:
            columns = columns_of[vis_layer["layerId"]]
            accessors = [
                *vis_layer.get("accessors", []),
                *vis_layer.get("metrics", []),
                *vis_layer.get("primaryGroups", []),
                *(vis_layer[k] for k in ("xAccessor", "splitAccessor") if k in vis_layer),
            ]
            assert accessors and set(accessors) == columns, obj["id"]


# ---------------------------------------------------------------- fields against the templates


@pytest.mark.parametrize(
    "obj", [o for o in OBJECTS if o["type"] != "dashboard"], ids=lambda o: o["id"]
)
def test_every_field_exists_in_the_index_template_of_its_data_view(obj):
    view = obj["id"] if obj["type"] == "index-pattern" else data_view_of(obj)
    mapping = MAPPINGS[view]
    uses = used_fields(obj)
    assert uses, f"{obj['id']} uses no field?"
    for field, how in uses.items():
        assert field in mapping, f"{obj['id']}: {field} ({', '.join(sorted(how))}) not mapped"
        kind = mapping[field]
        if how & {"time", "date_histogram"}:
            assert kind == "date", f"{obj['id']}: {field} is {kind}, not a date"
        if how & {"range", "sum", "average", "min", "max", "median"}:
            assert kind in NUMERIC, f"{obj['id']}: {field} is {kind}, not a number"
        if how & {"terms", "sort", "unique_count"}:
            assert kind != "text", f"{obj['id']}: {field} is text: cannot aggregate or sort"


def test_dashboard_query_uses_mapped_fields_only():
    dashboard = BY_KEY[("dashboard", DASHBOARD_ID)]
    assert set(used_fields(dashboard)) <= set(MAPPINGS[ALERTS_VIEW])


def test_data_views_cover_the_indices_the_job_writes_and_reads():
    alerts = BY_KEY[("index-pattern", ALERTS_VIEW)]["attributes"]
    assert alerts["timeFieldName"] == "time"
    index = Settings().elasticsearch.alerts.index
    for name in alerts_template(index)["index_patterns"]:
        assert fnmatch(name.replace("*", "000001"), alerts["title"]), name
    l7 = BY_KEY[("index-pattern", L7_VIEW)]["attributes"]
    assert l7["title"] == "tigera_secure_ee_l7*" and l7["timeFieldName"] == "end_time"
    for name in ("tigera_secure_ee_l7.cluster.20261105", "tigera_secure_ee_l7.prod.fluentd"):
        assert fnmatch(name, l7["title"])


def test_saved_searches_show_what_an_analyst_needs():
    alerts = BY_KEY[("search", "l7analytics-alerts-search")]["attributes"]
    assert alerts["columns"] == [
        "origin", "severity", "record.caller", "record.dest", "record.paths", "description",
    ]  # fmt: skip
    assert alerts["sort"] == [["time", "desc"]]
    critical = BY_KEY[("search", "l7analytics-critical-alerts")]["attributes"]
    assert critical["columns"] == alerts["columns"] and critical["sort"] == alerts["sort"]
    source = json.loads(critical["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert source["query"] == {"query": "severity >= 90", "language": "kuery"}
    raw = BY_KEY[("search", "l7analytics-l7-logs-search")]
    assert data_view_of(raw) == L7_VIEW
    assert raw["attributes"]["sort"] == [["end_time", "desc"]]
    assert {"src_namespace", "src_name_aggr", "dest_service_name", "url"} <= set(
        raw["attributes"]["columns"]
    )


def test_dashboard_has_the_charts_and_the_newest_critical_alerts():
    dashboard = BY_KEY[("dashboard", DASHBOARD_ID)]
    targets = {(r["type"], r["id"]) for r in dashboard["references"]}
    assert targets == {
        ("lens", "l7analytics-alerts-over-time"),
        ("lens", "l7analytics-top-callers"),
        ("lens", "l7analytics-top-destinations"),
        ("lens", "l7analytics-severity-breakdown"),
        ("search", "l7analytics-critical-alerts"),
    }
    assert dashboard["attributes"]["timeRestore"] is True

    def sources(lens_id: str) -> dict[str, str]:
        layers = BY_KEY[("lens", lens_id)]["attributes"]["state"]["datasourceStates"]
        columns = next(iter(layers["formBased"]["layers"].values()))["columns"].values()
        return {c["operationType"]: c["sourceField"] for c in columns}

    assert sources("l7analytics-alerts-over-time") == {
        "date_histogram": "time", "terms": "origin", "count": RECORDS,
    }  # fmt: skip
    assert sources("l7analytics-top-callers")["terms"] == "record.caller"
    assert sources("l7analytics-top-destinations")["terms"] == "record.dest"
    severity = BY_KEY[("lens", "l7analytics-severity-breakdown")]["attributes"]["state"]
    band = next(iter(severity["datasourceStates"]["formBased"]["layers"].values()))["columns"]
    ranges = band["band"]["params"]["ranges"]
    assert [(r["from"], r["to"]) for r in ranges] == [(0, 40), (40, 70), (70, 90), (90, None)]


# ---------------------------------------------------------------- kibana-setup against a stub


class StubKibana:
    """Plays ``POST /api/saved_objects/_import`` and records what it was sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reply: tuple[int, bytes, str] | None = None  # fixed answer instead of importing
        self.stored: set[tuple[str, str]] = set()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stub.requests.append(
                    {"path": self.path, "headers": dict(self.headers.items()), "body": body}
                )
                status, data, content_type = stub.reply or stub.answer(self.headers, body)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, headers: Any, body: bytes) -> tuple[int, bytes, str]:
        if headers.get("kbn-xsrf") is None:
            error = b'{"statusCode":400,"error":"Bad Request","message":"missing kbn-xsrf"}'
            return 400, error, "application/json"
        results = []
        for line in uploaded_file(headers, body)[1].decode().splitlines():
            obj = json.loads(line)
            key = (obj["type"], obj["id"])
            result = {
                "type": obj["type"],
                "id": obj["id"],
                "meta": {"title": obj["attributes"]["title"], "icon": "app"},
            }
            if key in self.stored:
                result["overwrite"] = True
            self.stored.add(key)
            results.append(result)
        data = {"success": True, "successCount": len(results), "successResults": results}
        return 200, json.dumps(data).encode(), "application/json"


def uploaded_file(headers: Any, body: bytes) -> tuple[dict[str, str], bytes]:
    """The multipart form's parts: (Content-Disposition params of ``file``, its bytes)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body
    )
    assert message.is_multipart()
    parts = list(message.iter_parts())
    assert len(parts) == 1
    part = parts[0]
    disposition = dict(part["Content-Disposition"].params)
    return disposition, part.get_payload(decode=True)


@pytest.fixture
def kibana() -> Iterator[StubKibana]:
    stub = StubKibana()
    stub.thread.start()
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ("HOSTS", "API_KEY", "USERNAME", "PASSWORD", "CA_CERTS", "VERIFY_CERTS"):
        monkeypatch.delenv(f"L7_ES_{name}", raising=False)
    monkeypatch.delenv("L7_KIBANA_URL", raising=False)
    monkeypatch.setenv("L7_ES_MAX_RETRIES", "0")


API_KEY = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="


def test_kibana_setup_imports_the_shipped_objects_with_overwrite(kibana, monkeypatch, capsys):
    monkeypatch.setenv("L7_ES_API_KEY", API_KEY)
    assert main(["kibana-setup", "--kibana-url", kibana.url + "/"]) == 0

    (request,) = kibana.requests
    assert request["path"] == "/api/saved_objects/_import?overwrite=true"
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["kbn-xsrf"] == "true"
    assert headers["authorization"] == f"ApiKey {API_KEY}"
    assert headers["content-type"].startswith("multipart/form-data; boundary=")
    disposition, content = uploaded_file(request["headers"], request["body"])
    assert disposition == {"name": "file", "filename": "saved_objects.ndjson"}
    assert content == RAW

    out = capsys.readouterr().out
    for obj in OBJECTS:
        assert obj["id"] in out
    assert "created" in out and "overwritten" not in out
    assert f"imported {len(OBJECTS)} objects" in out
    assert f"{kibana.url}/app/dashboards#/view/{DASHBOARD_ID}" in out
    assert API_KEY not in out

    # Again: the same ids are overwritten, nothing is duplicated.
    assert main(["kibana-setup", "--kibana-url", kibana.url]) == 0
    out = capsys.readouterr().out
    assert "overwritten" in out and "created" not in out
    assert len(kibana.stored) == len(OBJECTS)


def test_kibana_setup_uses_basic_auth_and_the_url_from_the_environment(kibana, monkeypatch, capsys):
    monkeypatch.setenv("L7_ES_USERNAME", "l7-kibana")
    monkeypatch.setenv("L7_ES_PASSWORD", "s3cret-pass")
    monkeypatch.setenv("L7_KIBANA_URL", kibana.url + "/s/security")
    assert main(["kibana-setup"]) == 0
    (request,) = kibana.requests
    assert request["path"] == "/s/security/api/saved_objects/_import?overwrite=true"
    expected = base64.b64encode(b"l7-kibana:s3cret-pass").decode()
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["authorization"] == f"Basic {expected}"
    assert "s3cret-pass" not in capsys.readouterr().out


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert API_KEY not in captured.err + captured.out
    return lines[0]


def test_rejected_credentials_exit_2_with_one_line_without_the_secret(kibana, monkeypatch, capsys):
    monkeypatch.setenv("L7_ES_API_KEY", API_KEY)
    kibana.reply = (
        401,
        b'{"statusCode":401,"error":"Unauthorized","message":"[security_exception] unable '
        b'to authenticate with provided credentials"}',
        "application/json",
    )
    assert main(["kibana-setup", "--kibana-url", kibana.url]) == 2
    line = one_line_error(capsys)
    assert kibana.url in line and "authentication failed" in line


def test_missing_privilege_exits_2_naming_the_kibana_privilege(kibana, monkeypatch, capsys):
    monkeypatch.setenv("L7_ES_API_KEY", API_KEY)
    kibana.reply = (
        403,
        b'{"statusCode":403,"error":"Forbidden","message":"Unable to bulk_create lens"}',
        "application/json",
    )
    assert main(["kibana-setup", "--kibana-url", kibana.url]) == 2
    line = one_line_error(capsys)
    assert "Saved Objects Management" in line and "Unable to bulk_create lens" in line


def test_unreachable_kibana_is_one_line_naming_the_url(capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    assert main(["kibana-setup", "--kibana-url", url]) == 1
    line = one_line_error(capsys)
    assert url in line and "unreachable" in line


@pytest.mark.parametrize("reply, expected", [
    ((200, b"<html>login</html>", "text/html"), "not JSON"),
    ((404, b'{"statusCode":404,"error":"Not Found"}', "application/json"), "base URL"),
    ((200, json.dumps({"success": False, "successCount": 9, "errors": [
        {"type": "lens", "id": "l7analytics-top-callers", "meta": {"title": "t"},
         "error": {"type": "missing_references",
                   "references": [{"type": "index-pattern", "id": "l7analytics-alerts"}]}},
    ]}).encode(), "application/json"),
     "refused 1: lens l7analytics-top-callers: missing references (index-pattern "
     "l7analytics-alerts)"),
])  # fmt: skip
def test_kibana_failures_exit_1_with_one_line(kibana, capsys, reply, expected):
    kibana.reply = reply
    assert main(["kibana-setup", "--kibana-url", kibana.url]) == 1
    line = one_line_error(capsys)
    assert kibana.url in line and expected in line


@pytest.mark.parametrize("args, expected", [
    (["kibana-setup"], "L7_KIBANA_URL"),
    (["kibana-setup", "--kibana-url", "kibana:5601"], "http://"),
    (["kibana-setup", "--kibana-url", "https://elastic:pw@kibana:5601"], "credentials"),
])  # fmt: skip
def test_bad_kibana_url_exits_2(args, expected, capsys):
    assert main(args) == 2
    line = one_line_error(capsys)
    assert expected in line and "pw" not in line
