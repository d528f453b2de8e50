"""The scheduled tasks' planning over several Calico clusters (no server: what a DAG's
``plan`` and ``by_cluster`` return, and what the settings allow)."""

from __future__ import annotations

import pytest

from l7analytics.core.errors import ConfigError
from l7analytics.core.settings import cluster_names, for_cluster, settings_from
from l7analytics.jobs.tasks import by_cluster, plan_extraction, ready_at

CLUSTERS = """\
elasticsearch:
  source:
    read_delay: 15m
  clusters:
    - name: prod-eu
    - name: prod-us
      index: "calico_l7logs*"
      single_index: true
      airflow_conn_id: es_us
      connection: {hosts: ["https://es-us:9200"]}
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "clusters.yaml"
    path.write_text(CLUSTERS)
    return str(path)


def test_the_plan_is_one_extraction_per_cluster_and_hour(config):
    windows = plan_extraction("2026-11-01T04:00:00Z", "2026-11-01T06:00:00Z", config)
    assert [(w["cluster"], w["start"], w["es_conn_id"]) for w in windows] == [
        ("prod-eu", "2026-11-01T04:00:00Z", ""),
        ("prod-eu", "2026-11-01T05:00:00Z", ""),
        ("prod-us", "2026-11-01T04:00:00Z", "es_us"),
        ("prod-us", "2026-11-01T05:00:00Z", "es_us"),
    ]
    assert ready_at("2026-11-01T06:00:00Z", config) == "2026-11-01T06:15:00Z"


def test_one_cluster_can_be_picked_but_only_a_listed_one(config):
    windows = plan_extraction("2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z", config, "prod-us")
    assert [w["cluster"] for w in windows] == ["prod-us"]
    with pytest.raises(ConfigError, match=r"cluster prod-ap: not one of the clusters .*prod-eu"):
        plan_extraction("2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z", config, "prod-ap")


def test_without_a_list_the_plan_reads_the_one_cluster_of_the_source():
    windows = plan_extraction("2026-11-01T04:00:00Z", "2026-11-01T06:00:00Z", None)
    assert {w["cluster"] for w in windows} == {""} and len(windows) == 2


def test_several_clusters_need_a_lake_on_object_storage(config, tmp_path):
    with pytest.raises(ConfigError, match="a local lake holds the cluster 'cluster' only"):
        plan_extraction("2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z", config,
                        lake=str(tmp_path / "lake"))  # fmt: skip
    windows = plan_extraction("2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z", config,
                              lake="s3://bucket/lake")  # fmt: skip
    assert len(windows) == 2


def test_extractions_are_gathered_per_cluster_for_scoring(config):
    windows = plan_extraction("2026-11-01T04:00:00Z", "2026-11-01T06:00:00Z", config)
    extracted = [{"records": n} for n in (1, 2, 30, 40)]
    assert by_cluster(windows, extracted) == [
        {"cluster": "prod-eu", "es_conn_id": "", "part_scope": "", "records": 3},
        {"cluster": "prod-us", "es_conn_id": "es_us", "part_scope": "", "records": 70},
    ]
    with pytest.raises(ValueError):  # a lost extraction is not silently dropped
        by_cluster(windows, extracted[:-1])


def test_a_cluster_reads_its_own_index_and_connection(config):
    from l7analytics.adapters.settings_file import load_settings

    settings = load_settings(config)
    assert cluster_names(settings) == ["prod-eu", "prod-us"]
    eu, us = for_cluster(settings, "prod-eu"), for_cluster(settings, "prod-us")
    assert (eu.elasticsearch.source.index, eu.elasticsearch.source.single_index) == (
        "tigera_secure_ee_l7.*", False)  # fmt: skip
    assert eu.elasticsearch.connection.hosts == ["http://127.0.0.1:9200"]
    assert (us.elasticsearch.source.index, us.elasticsearch.source.single_index) == (
        "calico_l7logs*", True)  # fmt: skip
    assert us.elasticsearch.connection.hosts == ["https://es-us:9200"]
    for name, one in (("prod-eu", eu), ("prod-us", us)):
        assert one.elasticsearch.source.cluster == one.elasticsearch.alerts.cluster == name


@pytest.mark.parametrize(
    ("clusters", "message"),
    [
        ("[{name: a}, {name: a}]", "cluster 'a' is listed twice"),
        ('[{name: "Prod EU"}]', "elasticsearch.clusters.0.name"),
        ('[{name: a, airflow_conn_id: "x y"}]', "elasticsearch.clusters.0.airflow_conn_id"),
        ('[{name: a, connection: {hosts: ["es:9200"]}}]', "must start with http"),
    ],
)
def test_a_bad_cluster_list_fails_in_one_line(clusters, message):
    import yaml

    data = yaml.safe_load(f"elasticsearch:\n  clusters: {clusters}\n")
    with pytest.raises(ConfigError, match=message) as caught:
        settings_from(data, "clusters.yaml")
    assert "\n" not in str(caught.value)


def test_a_long_interval_is_scored_as_a_map_reduce_over_its_hours(config):
    """From ``map_reduce_hours`` on, every extraction also summarizes its hour under the
    interval's scope, and each cluster's scoring combines them; shorter ones read records."""
    day = plan_extraction("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", config)
    assert len(day) == 48
    assert {w["part_scope"] for w in day} == {"20261101T0000-20261102T0000"}
    assert {c["part_scope"] for c in by_cluster(day, [{"records": 1}] * 48)} == {
        "20261101T0000-20261102T0000"}  # fmt: skip
    hour = plan_extraction("2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z", config)
    assert {w["part_scope"] for w in hour} == {""}
    every = plan_extraction("2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z", config,
                            map_reduce_hours=1)  # fmt: skip
    assert {w["part_scope"] for w in every} == {"20261101T0000-20261101T0100"}
