"""Alerts into a real Elasticsearch (8.x and 7.17): template, idempotent re-runs, analyst
fields kept, Calico's security-events schema, rejected items reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from calico_index import delete_indices

from l7analytics.adapters.elasticsearch.sinks import CalicoEventsSink, EsAlertSink
from l7analytics.core.alerts import EVENT_FIELDS, Alert, Finding, suppress
from l7analytics.core.errors import SinkError

pytestmark = pytest.mark.es

T = datetime(2026, 11, 20, 6, tzinfo=UTC)
HOUR = timedelta(hours=1)
ALLOWED_EVENT_FIELDS = set(EVENT_FIELDS) | {"cluster"}


def alert(entity: str = "-/pub", start: datetime = T, severity: int = 60) -> Alert:
    return Alert.create(
        detector="l7.url_scan", entity=entity, window_start=start, window_end=start + HOUR,
        severity=severity, name="URL scan", description=f"{entity} probed 120 routes.",
        source_namespace="-", source_name_aggr="pub", dest_service_name="frontend",
        mitre_tactic="Reconnaissance", mitre_ids=["T1595.003"],
        finding=Finding(
            detector_version="1", run_mode="scheduled", caller=entity, dest=None,
            paths=["/admin", "/.git/config"], path_details=[],
            observed={"requests": 300, "error_share": 0.9}, thresholds={}, score=0.93,
            score_meaning="share of routes that only failed",
        ),
    )  # fmt: skip


@pytest.fixture()
def client(es_server):
    client = es_server.client()
    delete_indices(client, "l7-test-alerts*")
    delete_indices(client, "tigera_secure_ee_events.*")
    yield client


def stored(client, index: str) -> dict[str, dict]:
    client.indices.refresh(index=index)
    hits = client.search(index=index, size=100)["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def test_alerts_are_written_once_and_a_rerun_writes_nothing(client):
    sink = EsAlertSink(client, "l7-test-alerts", "es-test")
    alerts = [alert("-/pub"), alert("shop/recommendationservice")]
    assert sink.write(alerts) == 2
    assert sink.write(alerts) == 0
    assert sink.last_outcome == {"noop": 2}
    docs = stored(client, "l7-test-alerts")
    assert set(docs) == {a.id for a in alerts}
    # The template mapped the fields analysts filter on.
    mapping = client.indices.get_mapping(index="l7-test-alerts")["l7-test-alerts"]["mappings"]
    props = mapping["properties"]
    assert props["severity"]["type"] == "integer"
    assert props["record"]["properties"]["caller"]["type"] == "keyword"
    hits = client.search(
        index="l7-test-alerts", query={"term": {"record.caller": "shop/recommendationservice"}}
    )
    assert hits["hits"]["hits"][0]["_id"] == alerts[1].id


def test_analyst_triage_fields_survive_a_rerun(client):
    sink = EsAlertSink(client, "l7-test-alerts", "es-test")
    first = alert()
    sink.write([first])
    client.update(
        index="l7-test-alerts",
        id=first.id,
        doc={"dismissed": True, "workflow_status": "closed"},
        refresh=True,
    )
    # The same suppression period gains an occurrence in a later run: the alert is updated...
    later = suppress([alert(start=T), alert(start=T + HOUR, severity=80)], timedelta(hours=6))
    assert sink.write(later) == 1
    doc = stored(client, "l7-test-alerts")[later[0].id]
    assert doc["record"]["occurrences"] == 2
    assert doc["severity"] == 80
    # ...and what the analyst set is untouched.
    assert doc["dismissed"] is True and doc["workflow_status"] == "closed"


def test_calico_events_have_exactly_the_security_event_schema(client):
    sink = CalicoEventsSink(client, cluster="cluster", host="es-test")
    alerts = [alert()]
    assert sink.write(alerts) == 1
    assert sink.write(alerts) == 0  # create-only: an existing id is left alone
    assert sink.last_outcome["exists"] == 1
    docs = stored(client, "tigera_secure_ee_events.cluster.")
    doc = docs[alerts[0].id]
    assert set(doc) <= ALLOWED_EVENT_FIELDS
    for required in ("time", "type", "description", "severity", "origin"):
        assert required in doc
    assert doc["type"] == "anomaly_detection_job" and doc["origin"] == "l7.url_scan"
    assert doc["cluster"] == "cluster" and doc["record"]["caller"] == "-/pub"


def test_rejected_items_fail_the_run_with_the_reason(client):
    sink = EsAlertSink(client, "l7-test-alerts", "es-test", sleep=lambda _: None)
    sink.write([alert("-/pub")])
    client.indices.put_settings(index="l7-test-alerts", settings={"index.blocks.write": True})
    try:
        with pytest.raises(SinkError) as info:
            sink.write([alert("shop/adservice")])
        message = str(info.value)
        assert "1 alert(s) not written" in message and "cluster_block_exception" in message
        assert "\n" not in message
    finally:
        client.indices.put_settings(index="l7-test-alerts", settings={"index.blocks.write": False})


class RejectsFirstItemOnce:
    """The real client, but the first bulk answers 429 for its first item (a full write queue
    cannot be produced on demand by a real single-node server)."""

    def __init__(self, client) -> None:
        self.client = client
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.client, name)

    def bulk(self, **kwargs):
        self.calls += 1
        if self.calls > 1:
            return self.client.bulk(**kwargs)
        operations = kwargs["operations"]
        rest = self.client.bulk(**{**kwargs, "operations": operations[2:]})
        first = next(iter(operations[0].values()))
        rejected = {
            "create": {
                "_index": first["_index"],
                "_id": first["_id"],
                "status": 429,
                "error": {
                    "type": "es_rejected_execution_exception",
                    "reason": "rejected execution (queue full)",
                },
            }
        }
        return {"errors": True, "items": [rejected, *rest["items"]]}


def test_items_rejected_with_429_are_retried(client):
    sleeps: list[float] = []
    flaky = RejectsFirstItemOnce(client)
    sink = EsAlertSink(flaky, "l7-test-alerts", "es-test", sleep=sleeps.append)
    alerts = [alert("-/pub"), alert("shop/adservice")]
    assert sink.write(alerts) == 2
    assert flaky.calls == 2 and sleeps == [0.5]
    assert set(stored(client, "l7-test-alerts")) == {a.id for a in alerts}
