"""The command line against a real Elasticsearch: `run --es` extracts a window of Calico's
L7 indices into the lake, scores it and publishes alerts; running it again adds nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from calico_index import delete_indices, generated_docs, index_docs

from l7analytics.ui.cli import main

pytestmark = pytest.mark.es

DAY = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture()
def es_env(es_server, monkeypatch, tmp_path):
    client = es_server.client()
    delete_indices(client, "tigera_secure_ee_l7.*")
    delete_indices(client, "l7-anomaly-alerts*")
    delete_indices(client, "tigera_secure_ee_events.*")
    # The generator puts its incidents on the last day: one day of traffic has them.
    index_docs(
        client,
        [
            d
            for d in generated_docs(DAY, hours=24)
            if d["end_time"] < int(datetime(2026, 11, 1, 6, tzinfo=UTC).timestamp())
        ],
    )
    monkeypatch.setenv("L7_ES_HOSTS", es_server.url)
    config = tmp_path / "settings.yaml"
    config.write_text(
        "elasticsearch:\n  source:\n    read_delay: 0s\n  alerts:\n    calico_events: true\n"
    )
    return client, config


def test_run_reads_elasticsearch_and_publishes_alerts_idempotently(es_env, tmp_path, capsys):
    client, config = es_env
    args = [
        "run",
        "--es",
        "--lake",
        str(tmp_path / "lake"),
        "--start",
        "2026-11-01T02:00:00Z",
        "--end",
        "2026-11-01T06:00:00Z",
        "--config",
        str(config),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "elasticsearch:" in out and "records scored" in out
    client.indices.refresh(index="l7-anomaly-alerts")
    first = client.count(index="l7-anomaly-alerts")["count"]
    events = client.count(index="tigera_secure_ee_events.cluster.")["count"]
    assert first > 0 and events == first
    hits = client.search(index="l7-anomaly-alerts", size=100)["hits"]["hits"]
    detectors = {d for h in hits for d in h["_source"]["record"]["incident"]["detectors"]}
    assert {"l7.restricted_url", "l7.url_scan"} <= detectors  # one incident, both verdicts
    incidents = client.search(
        index="l7-anomaly-alerts", query={"term": {"record.incident.detectors": "l7.url_scan"}}
    )["hits"]["hits"]
    assert incidents  # the template maps the incident for filtering

    assert main(args) == 0  # the same window again
    client.indices.refresh(index="l7-anomaly-alerts")
    assert client.count(index="l7-anomaly-alerts")["count"] == first
    assert client.count(index="tigera_secure_ee_events.cluster.")["count"] == events
    assert (tmp_path / "lake/l7/date=2026-11-01/hour=05/_manifest.json").is_file()


def test_wrong_host_fails_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("L7_ES_HOSTS", "http://127.0.0.1:9")
    monkeypatch.setenv("L7_ES_API_KEY", "c2VjcmV0LWtleS12YWx1ZQ==")
    code = main(
        [
            "extract",
            "--es",
            "--lake",
            str(tmp_path / "lake"),
            "--start",
            "2026-11-01T02:00:00Z",
            "--end",
            "2026-11-01T03:00:00Z",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "127.0.0.1:9" in err and "unreachable" in err
    assert "c2VjcmV0" not in err  # the API key never shows


def test_load_es_indexes_documents_like_calico(es_server, monkeypatch, tmp_path, capsys):
    client = es_server.client()
    delete_indices(client, "tigera_secure_ee_l7.lab.*")
    logs = tmp_path / "logs.ndjson.gz"
    assert main(["generate", "--out", str(logs), "--start", "2026-11-01", "--days", "1"]) == 0
    monkeypatch.setenv("L7_ES_HOSTS", es_server.url)
    assert main(["load-es", "--input", str(logs), "--cluster", "lab"]) == 0
    assert "tigera_secure_ee_l7.lab.fluentd-20261101-000001" in capsys.readouterr().out
    mapping = client.indices.get_mapping(index="tigera_secure_ee_l7.lab.*")
    props = next(iter(mapping.values()))["mappings"]["properties"]
    assert props["end_time"] == {"type": "date", "format": "epoch_second"}
    assert props["url"]["type"] == "keyword"
    assert client.count(index="tigera_secure_ee_l7.lab.*")["count"] > 10_000
    delete_indices(client, "tigera_secure_ee_l7.lab.*")
