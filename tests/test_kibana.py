"""The Kibana saved objects (both shipped forms) and ``kibana-setup``.

Kibana itself cannot run on the machines these tests run on (no Kibana package in the
registries they reach, no container runtime), so:

- the shipped files are exactly what :mod:`l7analytics.adapters.kibana.render` makes of
  the one definition in :mod:`l7analytics.adapters.kibana.views`, and both forms describe the
  same views (same objects, titles, fields used, references, dashboard layout);
- each form is checked statically, with the same structural and field checks: every line
  parses as an export object of its Kibana, ids are unique, every reference resolves inside
  the file and every internal name (a Lens layer's data view reference, a dashboard panel's
  ``panelRefName``, a search's ``indexRefName``) has its reference; Lens layers are consistent
  (column order, accessors, ``orderBy`` columns); every field any object uses exists, with a
  type that fits its use, in the index template its data view covers (``ALERT_MAPPING`` for
  ``l7-anomaly-alerts*``, Calico's ``CALICO_L7_MAPPING`` for ``tigera_secure_ee_l7*``);
- the 7.17 form is checked against Kibana 7.17's saved-object schema, taken from Kibana's
  public sources (elastic/kibana as stored for these tests; the 7.x branch files):

  * ``src/core/server/saved_objects/migrations/core/document_migrator.ts`` (and its tests):
    an object whose ``migrationVersion[type]`` is newer than the type's newest migration, or
    whose ``coreMigrationVersion`` is newer than Kibana, is refused; so each type declares the
    newest migration Kibana 7.17.0 has (:data:`MIGRATIONS_7_17`) and ``coreMigrationVersion``
    7.17.0;
  * migrations per type: ``src/plugins/data_views/server/saved_objects/
    index_pattern_migrations.ts`` (6.5.0, 7.6.0, 7.11.0), ``src/plugins/discover/server/
    saved_objects/search_migrations.ts`` (up to 7.9.3), ``x-pack/plugins/lens/server/
    migrations/saved_object_migrations.ts`` (up to 7.16.0; 8.x starts at 8.1.0),
    ``src/plugins/dashboard/server/saved_objects/dashboard_migrations.ts`` (up to 7.14.0, and
    7.17.3 from Kibana 7.17.3 on);
  * attributes: the type mappings (``.../search.ts``, ``.../dashboard.ts``, Lens'
    ``saved_objects.ts``; the ``.kibana`` index mapping is strict, an unknown attribute fails
    the import) and ``IndexPatternAttributes`` (``src/plugins/data/common/index_patterns/
    types.ts``, 7.11+);
  * Lens 7.17 state: datasource ``indexpattern`` with the count column on ``Records`` (8.1's
    ``commonRenameRecordsField`` renames it; ``common_migrations.ts``), XY ``XYState`` and
    pie ``SharedPieLayerState`` (``groups``/``metric``; ``x-pack/plugins/lens/common/
    expressions/*/types.ts``), the ``indexpattern-datasource-current-indexpattern`` reference;
  * dashboard panels: ``src/plugins/dashboard/common/saved_dashboard_references.ts`` (7.11 to
    7.17): a panel keeps ``version``, ``gridData``, ``panelIndex``, ``embeddableConfig`` and a
    ``panelRefName`` ``panel_<n>`` naming its reference; ``type`` and ``id`` live in the
    reference;
- the 8.14 form declares what Kibana 8.14+ exports (index-pattern 8.0.0, lens 8.9.0,
  dashboard 10.2.0, 8.17 exports), search its first 8.x version;
- ``kibana-setup`` runs against :class:`kibana_stub.StubKibana` (127.0.0.1, ephemeral port):
  ``GET /api/status`` answered as 7.17.29, 8.13.4 or 8.19.2 pick the form, and the stub
  refuses objects newer than its version knows, as Kibana does.

What only a running Kibana can tell (rendering, its own migrations of these objects) is not
covered here.
"""

from __future__ import annotations

import base64
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Any

import pytest
from kibana_stub import StubKibana, semver, uploaded_file

from l7analytics.adapters.elasticsearch.connection import EsConnection
from l7analytics.adapters.elasticsearch.templates import (
    ALERT_MAPPING,
    CALICO_L7_MAPPING,
    alerts_template,
)
from l7analytics.adapters.kibana import DASHBOARD_ID, KIBANA_7_17, KIBANA_8_14, SETS, set_for
from l7analytics.adapters.kibana.render import render, rendered_file
from l7analytics.adapters.kibana.setup import import_saved_objects
from l7analytics.core.errors import ConfigError
from l7analytics.core.settings import Settings
from l7analytics.ui.cli import main


@dataclass(frozen=True)
class Form:
    """How one export form spells what the tests look at."""

    name: str
    datasource: str  # Lens' data-view datasource
    records: str  # Lens' "count of records" pseudo-field
    type_versions: dict[str, str]


FORMS = {
    "7.17": Form("7.17", "indexpattern", "Records",
                 {"index-pattern": "7.11.0", "search": "7.9.3", "lens": "7.16.0",
                  "dashboard": "7.14.0"}),
    "8.14": Form("8.14", "formBased", "___records___",
                 {"index-pattern": "8.0.0", "search": "8.0.0", "lens": "8.9.0",
                  "dashboard": "10.2.0"}),
}  # fmt: skip
RAW = {s.name: s.ndjson() for s in SETS}
OBJECTS: dict[str, list[dict[str, Any]]] = {
    name: [json.loads(line) for line in raw.decode().splitlines()] for name, raw in RAW.items()
}
BY_KEY = {name: {(o["type"], o["id"]): o for o in objs} for name, objs in OBJECTS.items()}
ALERTS_VIEW, L7_VIEW = "l7analytics-alerts", "l7analytics-l7-logs"
CURRENT_INDEXPATTERN = "indexpattern-datasource-current-indexpattern"

#: Kibana 7.17's migrations per type (see the module docstring for the files).
MIGRATIONS_7_17 = {
    "index-pattern": ("6.5.0", "7.6.0", "7.11.0"),
    "search": ("6.7.2", "7.0.0", "7.4.0", "7.9.3"),
    "lens": ("7.7.0", "7.8.0", "7.10.0", "7.11.0", "7.12.0", "7.13.0", "7.13.1", "7.14.0",
             "7.15.0", "7.16.0"),
    "dashboard": ("6.7.2", "7.0.0", "7.3.0", "7.9.3", "7.11.0", "7.14.0", "7.17.3"),
}  # fmt: skip
#: Attributes Kibana 7.17 stores for each type (mappings; IndexPatternAttributes).
ATTRIBUTES_7_17 = {
    "index-pattern": {"type", "fields", "title", "typeMeta", "timeFieldName", "intervalName",
                      "sourceFilters", "fieldFormatMap", "fieldAttrs", "runtimeFieldMap",
                      "allowNoIndex"},
    "search": {"columns", "description", "hits", "kibanaSavedObjectMeta", "sort", "title",
               "grid", "version"},
    "lens": {"title", "description", "visualizationType", "state", "expression"},
    "dashboard": {"description", "hits", "kibanaSavedObjectMeta", "optionsJSON", "panelsJSON",
                  "refreshInterval", "timeFrom", "timeRestore", "timeTo", "title", "version"},
}  # fmt: skip
#: Lens 7.17's persisted state (XYState, SharedPieLayerState, IndexPatternPersistedState).
LENS_7_17 = {
    "state": {"datasourceStates", "visualization", "query", "filters"},
    "layer": {"columnOrder", "columns", "incompleteColumns"},
    "column": {"label", "dataType", "operationType", "isBucketed", "scale", "sourceField",
               "params", "customLabel", "filter", "timeScale", "timeShift"},
    "operations": {"count", "terms", "date_histogram", "range", "filters", "average", "sum",
                   "min", "max", "median", "percentile", "unique_count", "last_value",
                   "cumulative_sum", "counter_rate", "differences", "moving_average",
                   "math", "formula", "overall_sum", "overall_min", "overall_max",
                   "overall_average", "static_value"},
    "params": {"count": set(), "date_histogram": {"interval", "ignoreTimeRange"},
               "terms": {"size", "orderBy", "orderDirection", "otherBucket", "missingBucket",
                         "secondaryFields", "format"},
               "range": {"type", "ranges", "maxBars", "parentFormat", "format"}},
    "xy": {"preferredSeriesType", "legend", "valueLabels", "fittingFunction", "yLeftExtent",
           "yRightExtent", "layers", "xTitle", "yTitle", "yRightTitle",
           "axisTitlesVisibilitySettings", "tickLabelsVisibilitySettings",
           "gridlinesVisibilitySettings", "labelsOrientation", "curveType", "fillOpacity",
           "hideEndzones", "valuesInLegend"},
    "xy_layer": {"layerId", "layerType", "accessors", "xAccessor", "splitAccessor",
                 "seriesType", "yConfig", "palette", "hide", "position", "showGridlines"},
    "pie": {"shape", "layers", "palette"},
    "pie_layer": {"layerId", "layerType", "groups", "metric", "numberDisplay",
                  "categoryDisplay", "legendDisplay", "legendPosition", "showValuesInLegend",
                  "nestedLegend", "percentDecimals", "emptySizeRatio", "legendMaxLines",
                  "truncateLegend"},
}  # fmt: skip
PANEL_7_17 = {"version", "gridData", "panelIndex", "embeddableConfig", "panelRefName"}
OPTIONS_7_17 = {"useMargins", "hidePanelTitles", "syncColors"}
#: The object envelope each Kibana's import takes (7.17: SavedObjectsImport's fields).
ENVELOPE = {
    "7.17": {"type", "id", "attributes", "references", "migrationVersion", "coreMigrationVersion"},
    "8.14": {"type", "id", "attributes", "references", "typeMigrationVersion",
             "coreMigrationVersion", "managed"},
}  # fmt: skip


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


def lens_layers(obj: dict[str, Any]) -> dict[str, Any]:
    """The Lens datasource's layers, whatever the form calls the datasource."""
    (datasource,) = obj["attributes"]["state"]["datasourceStates"].values()
    return datasource["layers"]


def pie_accessors(vis_layer: dict[str, Any]) -> list[str]:
    """A pie layer's columns: ``groups``/``metric`` (7.x) or ``primaryGroups``/``metrics``."""
    single = [vis_layer["metric"]] if "metric" in vis_layer else []
    return [*vis_layer.get("groups", []), *vis_layer.get("primaryGroups", []),
            *vis_layer.get("metrics", []), *single]  # fmt: skip


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
        for layer in lens_layers(obj).values():
            for column in layer["columns"].values():
                if column["operationType"] != "count":
                    use(column["sourceField"], column["operationType"])
                if column.get("filter"):
                    for field in query_fields(column["filter"]):
                        use(field, "query")
        for field in query_fields(state["query"]) | filter_fields(state["filters"]):
            use(field, "query")
    return uses


def panels_of(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return json.loads(dashboard["attributes"]["panelsJSON"])


def panel_reference(dashboard: dict[str, Any], panel: dict[str, Any]) -> dict[str, str]:
    """The reference a panel names: ``panel_<n>`` (7.17) or ``<panelIndex>:panel_<index>``."""
    names = {r["name"]: r for r in dashboard["references"]}
    return (
        names.get(panel["panelRefName"]) or names[f"{panel['panelIndex']}:{panel['panelRefName']}"]
    )


def every_form(test):
    return pytest.mark.parametrize("form", list(FORMS), ids=[f"kibana-{f}" for f in FORMS])(test)


# ---------------------------------------------------------------- one definition, two files


@pytest.mark.parametrize("objects", SETS, ids=lambda s: s.file)
def test_the_shipped_files_are_the_rendered_views(objects):
    assert objects.ndjson() == rendered_file(objects), (
        f"{objects.file} is out of date: run python -m l7analytics.adapters.kibana.render"
    )


def test_both_forms_describe_the_same_views():
    old, new = BY_KEY["7.17"], BY_KEY["8.14"]
    assert list(old) == list(new)  # same objects, same order
    for key, obj in old.items():
        other = new[key]
        for name in ("title", "description", "columns", "sort", "timeFieldName", "fieldAttrs",
                     "visualizationType", "timeFrom", "timeTo"):  # fmt: skip
            assert obj["attributes"].get(name) == other["attributes"].get(name), (key, name)
        assert used_fields(obj) == used_fields(other), key
        targets = {(r["type"], r["id"]) for r in obj["references"]}
        assert targets == {(r["type"], r["id"]) for r in other["references"]}, key
    for key in (k for k in old if k[0] == "lens"):
        assert lens_layers(old[key]).keys() == lens_layers(new[key]).keys()
        for layer_id, layer in lens_layers(old[key]).items():
            assert layer["columnOrder"] == lens_layers(new[key])[layer_id]["columnOrder"]
    dashboard = ("dashboard", DASHBOARD_ID)

    def layout(form: str) -> list[tuple[Any, ...]]:
        board = BY_KEY[form][dashboard]
        return [(p["panelIndex"], p["gridData"], panel_reference(board, p)["id"])
                for p in panels_of(board)]  # fmt: skip

    assert layout("7.17") == layout("8.14")


# ---------------------------------------------------------------- each file, statically


@every_form
def test_every_line_is_an_export_object_of_its_kibana_with_a_unique_stable_id(form):
    spec, raw, objects = FORMS[form], RAW[form], OBJECTS[form]
    assert raw.endswith(b"\n") and b"\n\n" not in raw
    assert len(objects) == len({o["id"] for o in objects}), "ids must be unique"
    for obj in objects:
        assert set(obj) == ENVELOPE[form], obj["id"]
        assert obj["id"].startswith("l7analytics-"), obj["id"]
        assert obj["attributes"]["title"]
        if form == "7.17":
            assert obj["coreMigrationVersion"] == "7.17.0"
            assert obj["migrationVersion"] == {obj["type"]: spec.type_versions[obj["type"]]}
        else:
            assert obj["coreMigrationVersion"] == "8.8.0" and obj["managed"] is False
            assert obj["typeMigrationVersion"] == spec.type_versions[obj["type"]], obj["id"]
    counts = {t: sum(o["type"] == t for o in objects) for t in spec.type_versions}
    assert counts == {"index-pattern": 2, "search": 4, "lens": 4, "dashboard": 1}


@every_form
def test_every_reference_points_to_an_object_in_the_file(form):
    objects, by_key = OBJECTS[form], BY_KEY[form]
    for obj in objects:
        names = [r["name"] for r in obj["references"]]
        assert len(names) == len(set(names)), f"{obj['id']}: duplicate reference names"
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in by_key, f"{obj['id']} -> {ref}"
        # Objects come after what they reference, as in Kibana's own exports.
        position = objects.index(obj)
        for ref in obj["references"]:
            assert objects.index(by_key[(ref["type"], ref["id"])]) < position


@every_form
def test_internal_reference_names_resolve(form):
    for obj in OBJECTS[form]:
        names = {r["name"]: r for r in obj["references"]}
        attributes = obj["attributes"]
        if obj["type"] == "search":
            source = json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])
            assert names[source["indexRefName"]]["type"] == "index-pattern"
        if obj["type"] == "lens":
            expected = {f"indexpattern-datasource-layer-{layer}" for layer in lens_layers(obj)}
            if form == "7.17":  # 7.x Lens reads the editor's data view from this one
                expected.add(CURRENT_INDEXPATTERN)
            assert set(names) == expected, obj["id"]
        if obj["type"] == "dashboard":
            panels = panels_of(obj)
            assert len({panel_reference(obj, p)["name"] for p in panels}) == len(names)
            for position, panel in enumerate(panels):
                reference = panel_reference(obj, panel)
                if form == "7.17":  # the type lives in the reference only
                    assert panel["panelRefName"] == f"panel_{position}" and "type" not in panel
                else:
                    assert reference["name"] == f"{panel['panelIndex']}:{panel['panelRefName']}"
                    assert reference["type"] == panel["type"]
                assert panel["gridData"]["i"] == panel["panelIndex"]
                assert panel["gridData"]["x"] + panel["gridData"]["w"] <= 48


@every_form
def test_lens_layers_are_consistent(form):
    for obj in (o for o in OBJECTS[form] if o["type"] == "lens"):
        state = obj["attributes"]["state"]
        assert list(state["datasourceStates"]) == [FORMS[form].datasource], obj["id"]
        layers = lens_layers(obj)
        columns_of = {layer_id: set(layer["columns"]) for layer_id, layer in layers.items()}
        for layer in layers.values():
            assert sorted(layer["columnOrder"]) == sorted(layer["columns"]), obj["id"]
            # Bucketed columns first, metrics last, as Lens orders them.
            bucketed = [layer["columns"][c]["isBucketed"] for c in layer["columnOrder"]]
            assert bucketed == sorted(bucketed, reverse=True), obj["id"]
            for column in layer["columns"].values():
                if column["operationType"] == "count":
                    assert column["sourceField"] == FORMS[form].records, obj["id"]
                order_by = column.get("params", {}).get("orderBy", {})
                if order_by.get("type") == "column":
                    assert order_by["columnId"] in layer["columns"], obj["id"]
        for vis_layer in state["visualization"]["layers"]:
            columns = columns_of[vis_layer["layerId"]]
            accessors = [
                *vis_layer.get("accessors", []),
                *pie_accessors(vis_layer),
                *(vis_layer[k] for k in ("xAccessor", "splitAccessor") if k in vis_layer),
            ]
            assert accessors and set(accessors) == columns, obj["id"]


# ---------------------------------------------------------------- the 7.17 form: Kibana's schema


def newest_migration_in_7_17_0(kind: str) -> str:
    return max((v for v in MIGRATIONS_7_17[kind] if semver(v) <= (7, 17, 0)), key=semver)


@pytest.mark.parametrize("obj", OBJECTS["7.17"], ids=lambda o: o["id"])
def test_kibana_7_17_takes_each_object_from_7_17_0_on(obj):
    # Not newer than Kibana 7.17.0 (which would refuse it), not older than the shape it has.
    assert obj["migrationVersion"][obj["type"]] == newest_migration_in_7_17_0(obj["type"])
    assert semver(obj["coreMigrationVersion"]) <= (7, 17, 0)
    assert set(obj["attributes"]) <= ATTRIBUTES_7_17[obj["type"]], obj["id"]


@pytest.mark.parametrize(
    "obj", [o for o in OBJECTS["7.17"] if o["type"] == "lens"], ids=lambda o: o["id"]
)
def test_lens_objects_have_kibana_7_17_state(obj):
    state = obj["attributes"]["state"]
    assert set(state) == LENS_7_17["state"]
    for layer in lens_layers(obj).values():
        assert set(layer) <= LENS_7_17["layer"]
        for column in layer["columns"].values():
            assert set(column) <= LENS_7_17["column"], column
            operation = column["operationType"]
            assert operation in LENS_7_17["operations"]
            assert set(column.get("params", {})) <= LENS_7_17["params"][operation], column
    visualization = state["visualization"]
    kind = {"lnsXY": "xy", "lnsPie": "pie"}[obj["attributes"]["visualizationType"]]
    assert set(visualization) <= LENS_7_17[kind]
    for vis_layer in visualization["layers"]:
        assert set(vis_layer) <= LENS_7_17[f"{kind}_layer"], vis_layer
        assert vis_layer["layerType"] == "data"  # since the 7.15.0 migration


def test_the_dashboard_has_kibana_7_17_panels():
    dashboard = BY_KEY["7.17"][("dashboard", DASHBOARD_ID)]["attributes"]
    for panel in json.loads(dashboard["panelsJSON"]):
        assert set(panel) == PANEL_7_17
        # >= 7.3: no legacy panel conversion; <= 7.17.0: every 7.17.x knows it.
        assert (7, 3, 0) <= semver(panel["version"]) <= (7, 17, 0)
        assert panel["embeddableConfig"] == {"enhancements": {}}
    assert set(json.loads(dashboard["optionsJSON"])) <= OPTIONS_7_17


# ---------------------------------------------------------------- fields against the templates


@every_form
def test_every_field_exists_in_the_index_template_of_its_data_view(form):
    for obj in (o for o in OBJECTS[form] if o["type"] != "dashboard"):
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


@every_form
def test_dashboard_query_uses_mapped_fields_only(form):
    dashboard = BY_KEY[form][("dashboard", DASHBOARD_ID)]
    assert set(used_fields(dashboard)) <= set(MAPPINGS[ALERTS_VIEW])


@every_form
def test_data_views_cover_the_indices_the_job_writes_and_reads(form):
    alerts = BY_KEY[form][("index-pattern", ALERTS_VIEW)]["attributes"]
    assert alerts["timeFieldName"] == "time"
    index = Settings().elasticsearch.alerts.index
    for name in alerts_template(index)["index_patterns"]:
        assert fnmatch(name.replace("*", "000001"), alerts["title"]), name
    l7 = BY_KEY[form][("index-pattern", L7_VIEW)]["attributes"]
    assert l7["title"] == "tigera_secure_ee_l7*" and l7["timeFieldName"] == "end_time"
    for name in ("tigera_secure_ee_l7.cluster.20261105", "tigera_secure_ee_l7.prod.fluentd"):
        assert fnmatch(name, l7["title"])


@every_form
def test_saved_searches_show_what_an_analyst_needs(form):
    by_key = BY_KEY[form]
    alerts = by_key[("search", "l7analytics-alerts-search")]["attributes"]
    assert alerts["columns"] == [
        "origin", "severity", "record.caller", "record.dest", "record.paths", "description",
    ]  # fmt: skip
    assert alerts["sort"] == [["time", "desc"]]
    critical = by_key[("search", "l7analytics-critical-alerts")]["attributes"]
    assert critical["columns"] == alerts["columns"] and critical["sort"] == alerts["sort"]
    source = json.loads(critical["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert source["query"] == {"query": "severity >= 90", "language": "kuery"}
    raw = by_key[("search", "l7analytics-l7-logs-search")]
    assert data_view_of(raw) == L7_VIEW
    assert raw["attributes"]["sort"] == [["end_time", "desc"]]
    assert {"src_namespace", "src_name_aggr", "dest_service_name", "url"} <= set(
        raw["attributes"]["columns"]
    )


@every_form
def test_dashboard_shows_incidents_first_then_the_charts_and_the_newest_critical_alerts(form):
    by_key = BY_KEY[form]
    dashboard = by_key[("dashboard", DASHBOARD_ID)]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    top = min(panels, key=lambda p: (p["gridData"]["y"], p["gridData"]["x"]))
    refs = {r["name"]: r["id"] for r in dashboard["references"]}
    ref = top["panelRefName"]  # 7.17 names it alone, 8.14 prefixes the panel index
    assert refs.get(ref, refs.get(f"{top['panelIndex']}:{ref}")) == "l7analytics-incidents"
    incidents = by_key[("search", "l7analytics-incidents")]["attributes"]
    assert "record.incident.detectors" in incidents["columns"]
    targets = {(r["type"], r["id"]) for r in dashboard["references"]}
    assert targets == {
        ("search", "l7analytics-incidents"),
        ("lens", "l7analytics-alerts-over-time"),
        ("lens", "l7analytics-top-callers"),
        ("lens", "l7analytics-top-destinations"),
        ("lens", "l7analytics-severity-breakdown"),
        ("search", "l7analytics-critical-alerts"),
    }
    assert dashboard["attributes"]["timeRestore"] is True

    def sources(lens_id: str) -> dict[str, str]:
        (layer,) = lens_layers(by_key[("lens", lens_id)]).values()
        return {c["operationType"]: c["sourceField"] for c in layer["columns"].values()}

    assert sources("l7analytics-alerts-over-time") == {
        "date_histogram": "time", "terms": "origin", "count": FORMS[form].records,
    }  # fmt: skip
    assert sources("l7analytics-top-callers")["terms"] == "record.caller"
    assert sources("l7analytics-top-destinations")["terms"] == "record.dest"
    (severity,) = lens_layers(by_key[("lens", "l7analytics-severity-breakdown")]).values()
    ranges = severity["columns"]["band"]["params"]["ranges"]
    assert [(r["from"], r["to"]) for r in ranges] == [(0, 40), (40, 70), (70, 90), (90, None)]


def test_render_refuses_an_unknown_form():
    with pytest.raises(ValueError, match=r"7\.17"):
        render("8.0")


# ---------------------------------------------------------------- which set for which Kibana


@pytest.mark.parametrize("version, expected", [
    ("7.17.0", KIBANA_7_17), ("7.17.29", KIBANA_7_17), ("8.0.0", KIBANA_7_17),
    ("8.13.4", KIBANA_7_17), ("8.14.0", KIBANA_8_14), ("8.19.2", KIBANA_8_14),
    ("8.14.0-SNAPSHOT", KIBANA_8_14), ("9.1.3", KIBANA_8_14),
])  # fmt: skip
def test_each_kibana_gets_the_newest_set_it_can_import(version, expected):
    assert set_for(version) is expected


@pytest.mark.parametrize("version", ["7.16.3", "6.8.23", "10.0.0", "latest", ""])
def test_other_kibana_versions_are_refused_naming_the_supported_ones(version):
    with pytest.raises(ConfigError, match=r"7\.17, 8\.x and 9\.x|not major\.minor\.patch"):
        set_for(version)


# ---------------------------------------------------------------- kibana-setup against a stub


@pytest.fixture
def kibana() -> Iterator[StubKibana]:
    with StubKibana() as stub:
        yield stub


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ("HOSTS", "API_KEY", "USERNAME", "PASSWORD", "CA_CERTS", "VERIFY_CERTS"):
        monkeypatch.delenv(f"L7_ES_{name}", raising=False)
    monkeypatch.delenv("L7_KIBANA_URL", raising=False)
    monkeypatch.setenv("L7_ES_MAX_RETRIES", "0")


API_KEY = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="


def setup(url: str, *extra: str) -> int:
    """``kibana-setup`` without the Elasticsearch step (tested in tests/integration)."""
    return main(["kibana-setup", "--kibana-url", url, "--skip-es", *extra])


def import_request(stub: StubKibana) -> dict[str, Any]:
    (request,) = [r for r in stub.requests if r["method"] == "POST"]
    return request


def headers_of(request: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in request["headers"].items()}


@pytest.mark.parametrize("version, objects", [
    ("7.17.29", KIBANA_7_17), ("8.13.4", KIBANA_7_17), ("8.19.2", KIBANA_8_14),
])  # fmt: skip
def test_kibana_setup_imports_the_set_for_kibanas_version(kibana, monkeypatch, capsys,
                                                          version, objects):  # fmt: skip
    kibana.version = version
    monkeypatch.setenv("L7_ES_API_KEY", API_KEY)
    assert setup(kibana.url + "/") == 0

    assert kibana.paths() == ["GET /api/status", "POST /api/saved_objects/_import?overwrite=true"]
    for request in kibana.requests:
        assert headers_of(request)["authorization"] == f"ApiKey {API_KEY}"
    request = import_request(kibana)
    headers = headers_of(request)
    assert headers["kbn-xsrf"] == "true"
    assert headers["content-type"].startswith("multipart/form-data; boundary=")
    disposition, content = uploaded_file(request["headers"], request["body"])
    assert disposition == {"name": "file", "filename": objects.file}
    assert content == objects.ndjson()

    out = capsys.readouterr().out
    assert f"Kibana {version}: importing the {objects.name} saved objects ({objects.file})" in out
    for obj in OBJECTS[objects.name]:
        assert obj["id"] in out
    assert "created" in out and "overwritten" not in out
    assert f"imported {len(OBJECTS[objects.name])} objects" in out
    assert f"{kibana.url}/app/dashboards#/view/{DASHBOARD_ID}" in out
    assert API_KEY not in out

    # Again: the same ids are overwritten, nothing is duplicated.
    assert setup(kibana.url) == 0
    out = capsys.readouterr().out
    assert "overwritten" in out and "created" not in out
    assert len(kibana.stored) == len(OBJECTS[objects.name])


@pytest.mark.parametrize("version, objects", [("7.17.29", KIBANA_8_14), ("8.13.4", KIBANA_8_14)])
def test_the_stub_refuses_a_set_newer_than_its_kibana_as_kibana_does(kibana, version, objects):
    # Why the version matters: the 8.14 set fails the whole import on 7.17 and 8.13.
    kibana.version = version
    with pytest.raises(Exception, match="more recent version of Kibana"):
        import_saved_objects(kibana.url, EsConnection(max_retries=0), objects)
    assert not kibana.stored


def test_the_dashboard_link_uses_the_id_kibana_gave_it(kibana, capsys):
    kibana.new_ids = True  # ids taken in another space: Kibana answers with destinationIds
    assert setup(kibana.url + "/s/security") == 0
    new_id = kibana.stored[("dashboard", DASHBOARD_ID)]
    assert new_id != DASHBOARD_ID
    out = capsys.readouterr().out
    assert f"{kibana.url}/s/security/app/dashboards#/view/{new_id}" in out
    assert f"#/view/{DASHBOARD_ID}" not in out
    assert kibana.stored[("lens", "l7analytics-top-callers")] in out  # the table shows them too


def test_kibana_setup_uses_basic_auth_and_the_url_from_the_environment(kibana, monkeypatch, capsys):
    monkeypatch.setenv("L7_ES_USERNAME", "l7-kibana")
    monkeypatch.setenv("L7_ES_PASSWORD", "s3cret-pass")
    monkeypatch.setenv("L7_KIBANA_URL", kibana.url + "/s/security")
    assert main(["kibana-setup", "--skip-es"]) == 0
    # The version is asked at Kibana's base URL; the import goes to the space.
    assert kibana.paths() == [
        "GET /api/status", "POST /s/security/api/saved_objects/_import?overwrite=true",
    ]  # fmt: skip
    expected = base64.b64encode(b"l7-kibana:s3cret-pass").decode()
    for request in kibana.requests:
        assert headers_of(request)["authorization"] == f"Basic {expected}"
    assert "s3cret-pass" not in capsys.readouterr().out


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert API_KEY not in captured.err + captured.out
    return lines[0]


UNAUTHORIZED = (
    401,
    b'{"statusCode":401,"error":"Unauthorized","message":"[security_exception] unable '
    b'to authenticate with provided credentials"}',
    "application/json",
)


@pytest.mark.parametrize("step", ["status_reply", "import_reply"])
def test_rejected_credentials_exit_2_with_one_line_without_the_secret(
    kibana, monkeypatch, capsys, step
):
    monkeypatch.setenv("L7_ES_API_KEY", API_KEY)
    setattr(kibana, step, UNAUTHORIZED)
    assert setup(kibana.url) == 2
    line = one_line_error(capsys)
    assert kibana.url in line and "authentication failed" in line


def test_missing_privilege_exits_2_naming_the_kibana_privilege(kibana, monkeypatch, capsys):
    monkeypatch.setenv("L7_ES_API_KEY", API_KEY)
    kibana.import_reply = (
        403,
        b'{"statusCode":403,"error":"Forbidden","message":"Unable to bulk_create lens"}',
        "application/json",
    )
    assert setup(kibana.url) == 2
    line = one_line_error(capsys)
    assert "Saved Objects Management" in line and "Unable to bulk_create lens" in line


def test_unreachable_kibana_is_one_line_naming_the_url(capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    assert setup(url) == 1
    line = one_line_error(capsys)
    assert url in line and "unreachable" in line


def test_tls_failure_talking_to_kibana_exits_2_in_one_line_naming_tls(kibana, capsys):
    url = kibana.url.replace("http://", "https://")  # TLS to a server that speaks plain HTTP
    assert setup(url) == 2
    line = one_line_error(capsys)
    assert url in line and "TLS" in line and "does not speak TLS" in line
    assert kibana.requests == []


@pytest.mark.parametrize("version, expected", [
    ("7.16.3", "Kibana 7.16.3 is not supported: kibana-setup supports Kibana 7.17, 8.x and 9.x"),
    ("10.0.0", "Kibana 10.0.0 is not supported"),
])  # fmt: skip
def test_an_unsupported_kibana_exits_2_before_anything_is_written(kibana, capsys, version,
                                                                  expected):  # fmt: skip
    kibana.version = version
    assert setup(kibana.url) == 2
    assert expected in one_line_error(capsys)
    assert kibana.paths() == ["GET /api/status"]


@pytest.mark.parametrize("step, reply, expected", [
    ("status_reply", (200, b"<html>login</html>", "text/html"), "not JSON"),
    ("status_reply", (503, b"Kibana server is not ready yet", "text/plain"), "not ready"),
    ("status_reply", (200, b'{"status":{"overall":{"level":"available"}}}', "application/json"),
     "no version.number"),
    ("status_reply", (404, b'{"statusCode":404,"error":"Not Found"}', "application/json"),
     "base URL"),
    ("import_reply", (200, b"<html>login</html>", "text/html"), "not JSON"),
    ("import_reply", (404, b'{"statusCode":404,"error":"Not Found"}', "application/json"),
     "base URL"),
    ("import_reply", (200, json.dumps({"success": False, "successCount": 9, "errors": [
        {"type": "lens", "id": "l7analytics-top-callers", "meta": {"title": "t"},
         "error": {"type": "missing_references",
                   "references": [{"type": "index-pattern", "id": "l7analytics-alerts"}]}},
    ]}).encode(), "application/json"),
     "refused 1: lens l7analytics-top-callers: missing references (index-pattern "
     "l7analytics-alerts)"),
])  # fmt: skip
def test_kibana_failures_exit_1_with_one_line(kibana, capsys, step, reply, expected):
    setattr(kibana, step, reply)
    assert setup(kibana.url) == 1
    line = one_line_error(capsys)
    assert kibana.url in line and expected in line


def test_unreachable_elasticsearch_names_it_and_the_way_around(kibana, monkeypatch, capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("L7_ES_HOSTS", f"http://127.0.0.1:{port}")
    assert main(["kibana-setup", "--kibana-url", kibana.url]) == 1
    line = one_line_error(capsys)
    assert f"127.0.0.1:{port}" in line and "unreachable" in line and "--skip-es" in line
    assert kibana.paths() == ["GET /api/status"]  # nothing imported


@pytest.mark.parametrize("args, expected", [
    (["kibana-setup"], "L7_KIBANA_URL"),
    (["kibana-setup", "--kibana-url", "kibana:5601"], "http://"),
    (["kibana-setup", "--kibana-url", "https://elastic:pw@kibana:5601"], "credentials"),
])  # fmt: skip
def test_bad_kibana_url_exits_2(args, expected, capsys):
    assert main(args) == 2
    line = one_line_error(capsys)
    assert expected in line and "pw" not in line
