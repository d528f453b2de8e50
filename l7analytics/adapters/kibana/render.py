"""Render the views of :mod:`l7analytics.adapters.kibana.views` as Kibana saved-object exports.

Two forms, because Kibana imports objects from older versions (and migrates them) but refuses
any object that declares a version newer than it knows, which fails the whole import:

``7.17``
    As Kibana 7.17 exports: ``migrationVersion`` per type and ``coreMigrationVersion``, Lens
    state under ``datasourceStates.indexpattern`` (count of records on the ``Records`` field,
    pie layers with ``groups``/``metric``, the ``indexpattern-datasource-current-indexpattern``
    reference 7.x Lens reads), dashboard panels with ``version`` and ``panelRefName``
    ``panel_<n>`` (7.x removes ``type`` and ``id`` from a panel into its reference). Each type
    declares the newest migration Kibana 7.17.0 already has, so every 7.17.x takes it and 8.0
    to 8.13 migrate it forward like any 7.17 export.
``8.14``
    As Kibana 8.14 and later export: ``typeMigrationVersion`` (the dashboard's 10.2.0 is its
    model version 2, first in 8.14), ``coreMigrationVersion`` 8.8.0, ``managed``, Lens
    ``formBased`` layers.

The shipped files are these renderings, committed so that they can be imported by hand too;
``python -m l7analytics.adapters.kibana.render`` writes them again, ``--check`` only compares
(a test does the same).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from l7analytics.adapters.kibana import KIBANA_7_17, KIBANA_8_14, SETS, ObjectSet
from l7analytics.adapters.kibana.views import (
    CHARTS,
    DASHBOARDS,
    DATA_VIEWS,
    SEARCHES,
    BarChart,
    Chart,
    Column,
    Count,
    Dashboard,
    DataView,
    DateHistogram,
    DonutChart,
    Panel,
    Ranges,
    SavedSearch,
    TopValues,
)

KIBANA_7 = KIBANA_7_17.name  # "7.17"
KIBANA_8 = KIBANA_8_14.name  # "8.14"
#: The version of each type's attributes the objects are written in, per form.
TYPE_VERSIONS: dict[str, dict[str, str]] = {
    # The newest migration of each type in Kibana 7.17.0 (the dashboard's 7.17.3 migration
    # only exists from 7.17.3 on, so 7.14.0: 7.17.0 to 7.17.2 would refuse 7.17.3).
    KIBANA_7: {
        "index-pattern": "7.11.0",
        "search": "7.9.3",
        "lens": "7.16.0",
        "dashboard": "7.14.0",
    },
    # What Kibana 8.14+ writes for objects of these shapes (search: its first 8.x version).
    KIBANA_8: {"index-pattern": "8.0.0", "search": "8.0.0", "lens": "8.9.0", "dashboard": "10.2.0"},
}
CORE_VERSIONS = {KIBANA_7: "7.17.0", KIBANA_8: "8.8.0"}
#: Lens' name for its data-view datasource and for the "count of records" pseudo-field.
DATASOURCE = {KIBANA_7: "indexpattern", KIBANA_8: "formBased"}
RECORDS_FIELD = {KIBANA_7: "Records", KIBANA_8: "___records___"}
#: The version a 7.17 dashboard panel says it was saved with (>= 7.3: no legacy conversion).
PANEL_VERSION_7 = "7.17.0"
SEARCH_INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
CURRENT_INDEXPATTERN_REF = "indexpattern-datasource-current-indexpattern"


def _json(value: Any) -> str:
    """A JSON-in-a-string attribute, compact and in insertion order, as Kibana writes them."""
    return json.dumps(value, separators=(",", ":"))


def _envelope(
    kind: str, obj_id: str, attributes: dict[str, Any], references: list[dict[str, str]], form: str
) -> dict[str, Any]:
    """The saved object around ``attributes``, with the version fields of ``form``."""
    obj: dict[str, Any] = {
        "attributes": attributes,
        "coreMigrationVersion": CORE_VERSIONS[form],
        "id": obj_id,
        "references": references,
        "type": kind,
    }
    if form == KIBANA_7:
        obj["migrationVersion"] = {kind: TYPE_VERSIONS[form][kind]}
    else:
        obj["managed"] = False
        obj["typeMigrationVersion"] = TYPE_VERSIONS[form][kind]
    return obj


def _ref(kind: str, obj_id: str, name: str) -> dict[str, str]:
    return {"id": obj_id, "name": name, "type": kind}


# ---------------------------------------------------------------- data views and searches


def data_view(view: DataView, form: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "fieldAttrs": _json({f: {"customLabel": label} for f, label in view.labels.items()}),
        "fieldFormatMap": "{}",
        "fields": "[]",
        "runtimeFieldMap": "{}",
        "sourceFilters": "[]",
        "timeFieldName": view.time_field,
        "title": view.title,
    }
    if form == KIBANA_8:  # data view names and hidden indices came with 8.x
        attributes |= {"allowHidden": False, "name": view.name}
    return _envelope("index-pattern", view.id, attributes, [], form)


def search(saved: SavedSearch, form: str) -> dict[str, Any]:
    source = {
        "query": {"query": saved.query, "language": "kuery"},
        "filter": [],
        "indexRefName": SEARCH_INDEX_REF,
    }
    attributes: dict[str, Any] = {
        "columns": list(saved.columns),
        "description": saved.description,
        "kibanaSavedObjectMeta": {"searchSourceJSON": _json(source)},
        "sort": [[saved.sort_field, "desc"]],
        "title": saved.title,
    }
    if form == KIBANA_8:
        attributes |= {
            "grid": {},
            "hideChart": False,
            "isTextBasedQuery": False,
            "timeRestore": False,
        }
    references = [_ref("index-pattern", saved.view.id, SEARCH_INDEX_REF)]
    return _envelope("search", saved.id, attributes, references, form)


# ---------------------------------------------------------------- Lens


def column(col: Column, form: str) -> dict[str, Any]:
    """One Lens column of the form's datasource (8.x adds parameters 7.17 does not know)."""
    base = _COLUMNS[type(col)](col, form)
    if col.custom_label:
        base["customLabel"] = True
    return base


def _count(col: Count, form: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "dataType": "number",
        "isBucketed": False,
        "label": col.label,
        "operationType": "count",
        "scale": "ratio",
        "sourceField": RECORDS_FIELD[form],
    }
    if form == KIBANA_8:
        spec["params"] = {"emptyAsNull": True}
    return spec


def _terms(col: TopValues, form: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "missingBucket": False,
        "orderBy": {"columnId": col.order_by, "type": "column"},
        "orderDirection": "desc",
        "otherBucket": True,
        "size": col.size,
    }
    if form == KIBANA_8:
        params |= {
            "exclude": [],
            "excludeIsRegex": False,
            "include": [],
            "includeIsRegex": False,
            "parentFormat": {"id": "terms"},
        }
    return _bucket(col.field, col.label, "terms", "string", "ordinal", params)


def _date_histogram(col: DateHistogram, form: str) -> dict[str, Any]:
    params: dict[str, Any] = {"interval": "auto"}
    if form == KIBANA_8:
        params |= {"dropPartials": False, "includeEmptyRows": True}
    return _bucket(col.field, col.label, "date_histogram", "date", "interval", params)


def _ranges(col: Ranges, form: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "maxBars": "auto",
        "parentFormat": {
            "id": "range",
            "params": {"replaceInfinity": True, "template": "arrow_right"},
        },
        "ranges": [{"from": b.lower, "label": b.label, "to": b.upper} for b in col.bands],
        "type": "range",
    }
    if form == KIBANA_8:
        params["includeEmptyRows"] = False
    return _bucket(col.field, col.label, "range", "string", "ordinal", params)


def _bucket(
    field: str, label: str, operation: str, data_type: str, scale: str, params: dict[str, Any]
) -> dict[str, Any]:
    return {
        "dataType": data_type,
        "isBucketed": True,
        "label": label,
        "operationType": operation,
        "params": params,
        "scale": scale,
        "sourceField": field,
    }


_COLUMNS: dict[type, Callable[[Any, str], dict[str, Any]]] = {
    Count: _count,
    TopValues: _terms,
    DateHistogram: _date_histogram,
    Ranges: _ranges,
}


def layer(chart: Chart, form: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "columnOrder": [c.id for c in chart.columns],
        "columns": {c.id: column(c, form) for c in chart.columns},
        "incompleteColumns": {},
    }
    if form == KIBANA_8:
        spec["sampling"] = 1
    return spec


def xy_visualization(chart: BarChart) -> dict[str, Any]:
    """Lens' XY state; the same in 7.17 and 8.x for what these charts use."""
    all_axes = {"x": True, "yLeft": True, "yRight": True}
    vis_layer: dict[str, Any] = {
        "accessors": [chart.metric.id],
        "layerId": chart.layer,
        "layerType": "data",
        "position": "top",
        "seriesType": chart.series_type,
        "showGridlines": False,
        "xAccessor": chart.x.id,
    }
    if chart.split is not None:
        vis_layer["splitAccessor"] = chart.split.id
    return {
        "axisTitlesVisibilitySettings": all_axes,
        "fittingFunction": "None",
        "gridlinesVisibilitySettings": all_axes,
        "labelsOrientation": {"x": 0, "yLeft": 0, "yRight": 0},
        "layers": [vis_layer],
        "legend": {"isVisible": chart.legend, "position": "right"},
        "preferredSeriesType": chart.series_type,
        "tickLabelsVisibilitySettings": all_axes,
        "valueLabels": "hide",
    }


def pie_visualization(chart: DonutChart, form: str) -> dict[str, Any]:
    """8.6 renamed the pie layer's ``groups``/``metric`` to ``primaryGroups``/``metrics``."""
    slices = (
        {"groups": [chart.group.id], "metric": chart.metric.id}
        if form == KIBANA_7
        else {"primaryGroups": [chart.group.id], "metrics": [chart.metric.id]}
    )
    vis_layer = {
        "categoryDisplay": "default",
        "layerId": chart.layer,
        "layerType": "data",
        "legendDisplay": "show",
        "nestedLegend": False,
        "numberDisplay": "value",
        **slices,
    }
    return {"layers": [vis_layer], "shape": "donut"}


def lens(chart: Chart, form: str) -> dict[str, Any]:
    if isinstance(chart, BarChart):
        visualization, vis_type = xy_visualization(chart), "lnsXY"
    else:
        visualization, vis_type = pie_visualization(chart, form), "lnsPie"
    state: dict[str, Any] = {
        "datasourceStates": {DATASOURCE[form]: {"layers": {chart.layer: layer(chart, form)}}},
        "filters": [],
        "query": {"language": "kuery", "query": ""},
        "visualization": visualization,
    }
    if form == KIBANA_8:
        state |= {"adHocDataViews": {}, "internalReferences": []}
    attributes = {
        "description": chart.description,
        "state": state,
        "title": chart.title,
        "visualizationType": vis_type,
    }
    references = [
        _ref("index-pattern", chart.view.id, f"indexpattern-datasource-layer-{chart.layer}")
    ]
    if form == KIBANA_7:  # 7.x Lens reads the data view of the editor from this reference
        references.insert(0, _ref("index-pattern", chart.view.id, CURRENT_INDEXPATTERN_REF))
    return _envelope("lens", chart.id, attributes, references, form)


# ---------------------------------------------------------------- the dashboard


def _target_type(panel: Panel) -> str:
    return "search" if isinstance(panel.target, SavedSearch) else "lens"


def dashboard_panel(
    panel: Panel, position: int, form: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The panel as the form stores it in ``panelsJSON``, and its reference."""
    grid = {"x": panel.x, "y": panel.y, "w": panel.w, "h": panel.h, "i": panel.index}
    kind = _target_type(panel)
    if form == KIBANA_7:
        ref_name = f"panel_{position}"
        spec = {
            "version": PANEL_VERSION_7,
            "gridData": grid,
            "panelIndex": panel.index,
            "embeddableConfig": {"enhancements": {}},
            "panelRefName": ref_name,
        }
        return spec, _ref(kind, panel.target.id, ref_name)
    ref_name = f"panel_{panel.index}"
    spec = {
        "type": kind,
        "panelIndex": panel.index,
        "gridData": grid,
        "embeddableConfig": {"enhancements": {}},
        "panelRefName": ref_name,
    }
    return spec, _ref(kind, panel.target.id, f"{panel.index}:{ref_name}")


def dashboard(board: Dashboard, form: str) -> dict[str, Any]:
    rendered = [dashboard_panel(p, i, form) for i, p in enumerate(board.panels)]
    options: dict[str, Any] = {"useMargins": True, "syncColors": False}
    if form == KIBANA_8:
        options |= {"syncCursor": True, "syncTooltips": False}
    options["hidePanelTitles"] = False
    attributes: dict[str, Any] = {
        "description": board.description,
        "kibanaSavedObjectMeta": {
            "searchSourceJSON": _json({"query": {"query": "", "language": "kuery"}, "filter": []})
        },
        "optionsJSON": _json(options),
        "panelsJSON": _json([spec for spec, _ in rendered]),
        "refreshInterval": {"pause": True, "value": 60000},
        "timeFrom": board.time_from,
        "timeRestore": True,
        "timeTo": board.time_to,
        "title": board.title,
    }
    if form == KIBANA_7:
        attributes |= {"hits": 0, "version": 1}
    return _envelope("dashboard", board.id, attributes, [ref for _, ref in rendered], form)


# ---------------------------------------------------------------- files


def render(form: str) -> list[dict[str, Any]]:
    """Every object, in import order, in ``form`` (``7.17`` or ``8.14``)."""
    if form not in TYPE_VERSIONS:
        raise ValueError(f"unknown export form {form!r}: {', '.join(TYPE_VERSIONS)}")
    return [
        *(data_view(v, form) for v in DATA_VIEWS),
        *(search(s, form) for s in SEARCHES),
        *(lens(c, form) for c in CHARTS),
        *(dashboard(d, form) for d in DASHBOARDS),
    ]


def to_ndjson(objects: list[dict[str, Any]]) -> bytes:
    """One object a line, keys sorted, as Kibana's export writes them."""
    lines = (json.dumps(o, sort_keys=True, separators=(",", ":")) for o in objects)
    return "".join(f"{line}\n" for line in lines).encode()


def rendered_file(objects: ObjectSet) -> bytes:
    return to_ndjson(render(objects.name))


def main(argv: list[str] | None = None) -> int:
    """Write the shipped files from the views (``--check``: only report whether they differ)."""
    parser = argparse.ArgumentParser(prog="python -m l7analytics.adapters.kibana.render")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for objects in SETS:
        path = Path(__file__).with_name(objects.file)
        content = rendered_file(objects)
        if path.exists() and path.read_bytes() == content:
            continue
        stale.append(path.name)
        if not args.check:
            path.write_bytes(content)
    verb = "out of date" if args.check else "written"
    print(f"{verb}: {', '.join(stale)}" if stale else "up to date")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
