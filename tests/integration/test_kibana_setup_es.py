"""``kibana-setup`` against a real Elasticsearch (8.19 and 7.17) and the stub Kibana of
``tests/kibana_stub.py`` playing the Kibana of the same major (Calico Enterprise pairs them):
the alerts index template and the index exist before the saved objects are imported, with the
template's mapping, and running again changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from calico_index import delete_indices
from kibana_stub import StubKibana

from l7analytics.adapters.kibana import KIBANA_7_17, KIBANA_8_14
from l7analytics.ui.cli import main

pytestmark = pytest.mark.es

INDEX = "l7-test-kibana-setup-alerts"
KIBANA_OF = {7: ("7.17.29", KIBANA_7_17), 8: ("8.19.2", KIBANA_8_14)}


@pytest.fixture()
def client(es_server) -> Iterator[Any]:
    client = es_server.client()
    delete_indices(client, f"{INDEX}*")
    client.options(ignore_status=404).indices.delete_index_template(name=INDEX)
    yield client
    delete_indices(client, f"{INDEX}*")
    client.options(ignore_status=404).indices.delete_index_template(name=INDEX)


@pytest.fixture()
def settings_file(tmp_path) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(f"elasticsearch:\n  alerts:\n    index: {INDEX}\n")
    return path


def test_kibana_setup_prepares_the_alerts_index_before_importing(
    es_server, client, settings_file, monkeypatch, capsys
):
    monkeypatch.setenv("L7_ES_HOSTS", es_server.url)
    monkeypatch.setenv("L7_ES_MAX_RETRIES", "0")
    version, objects = KIBANA_OF[es_server.major]
    seen_at_import: list[bool] = []
    with StubKibana(version) as kibana:
        kibana.before_import = lambda: seen_at_import.append(
            bool(client.indices.exists(index=INDEX))
            and bool(client.indices.exists_index_template(name=INDEX))
        )
        args = ["kibana-setup", "--kibana-url", kibana.url, "--config", str(settings_file)]
        assert main(args) == 0
        out = capsys.readouterr().out
        assert main(args) == 0  # again: the template is replaced, the index kept
        capsys.readouterr()
    assert seen_at_import == [True, True]
    assert f"importing the {objects.name} saved objects" in out
    assert f"alerts index template and index ready: {es_server.url}/{INDEX}" in out

    template = client.indices.get_index_template(name=INDEX)["index_templates"][0]
    assert template["index_template"]["index_patterns"] == [INDEX, f"{INDEX}-*"]
    mapping = client.indices.get_mapping(index=INDEX)[INDEX]["mappings"]["properties"]
    # What the data views and charts use is mapped before any alert is written.
    assert mapping["time"]["type"] == "date"
    assert mapping["severity"]["type"] == "integer"
    assert mapping["origin"]["type"] == "keyword"
    assert mapping["record"]["properties"]["caller"]["type"] == "keyword"
    assert client.count(index=INDEX)["count"] == 0


def test_skip_es_leaves_elasticsearch_alone(es_server, client, settings_file, monkeypatch, capsys):
    monkeypatch.setenv("L7_ES_HOSTS", es_server.url)
    version, _objects = KIBANA_OF[es_server.major]
    with StubKibana(version) as kibana:
        args = ["kibana-setup", "--kibana-url", kibana.url, "--config", str(settings_file)]
        assert main([*args, "--skip-es"]) == 0
        assert kibana.stored
    assert "index ready" not in capsys.readouterr().out
    assert not client.indices.exists(index=INDEX)
    assert not client.indices.exists_index_template(name=INDEX)
