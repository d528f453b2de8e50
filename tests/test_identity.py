"""Workload identity: stable across rollouts and CronJob runs, ordinary names untouched."""

from __future__ import annotations

import pyarrow as pa
import pytest

from l7analytics.core.identity import workload_column, workload_id, workload_name


def test_rollout_keeps_one_identity():
    before = workload_id("shop", "frontend-7d9f8c6b5-*")
    after = workload_id("shop", "frontend-5c4b9d7f8-*")
    assert before == after == "shop/frontend"


def test_cronjob_runs_keep_one_identity():
    runs = {workload_id("billing", f"db-backup-{m}-*") for m in (29401234, 29401294, 29401354)}
    assert runs == {"billing/db-backup"}


@pytest.mark.parametrize(
    ("name_aggr", "expected"),
    [
        ("frontend-7d9f8c6b5-*", "frontend"),
        ("checkoutservice-69c8ff664b-*", "checkoutservice"),
        ("paymentservice-bbcbdc6b6-*", "paymentservice"),
        ("db-backup-29401234-*", "db-backup"),
        ("cache-warmer-29401294-*", "cache-warmer"),
        # DaemonSet / Job pods: generateName is just "<name>-"
        ("calico-node-*", "calico-node"),
        ("fluent-bit-*", "fluent-bit"),
        # non-pod endpoints keep their name
        ("pub", "pub"),
        ("pvt", "pvt"),
        ("allowed-egress-netset", "allowed-egress-netset"),
        ("node-1", "node-1"),
        # a bare pod (no generateName) is its own name
        ("redis-cart-0", "redis-cart-0"),
    ],
)
def test_workload_name(name_aggr, expected):
    assert workload_name(name_aggr) == expected


@pytest.mark.parametrize(
    "name",
    [
        "backend-service",
        "web-api",
        "prometheus-server",
        "node-exporter",
        "coffee-machine",
        "redis-cart",
        "blackbox-exporter",
        "kube-state-metrics",
        "ingress-nginx-controller",
    ],
)
def test_ordinary_words_are_not_stripped(name):
    # As a DaemonSet ("<name>-*") and as a Deployment ("<name>-<hash>-*").
    assert workload_name(f"{name}-*") == name
    assert workload_name(f"{name}-7d9f8c6b5-*") == name


@pytest.mark.parametrize("name", ["envoy-https", "db-pgsql", "player-html5"])
def test_five_letter_consonant_words_are_not_stripped(name):
    # "https", "pgsql" and "html5" are spelt only with letters of Kubernetes' safe alphabet,
    # like a pod's random 5-character suffix; a DaemonSet named so must keep its name.
    assert workload_name(f"{name}-*") == name
    assert workload_name(f"{name}-7d9f8c6b5-*") == name


def test_workload_id_missing_namespace_and_name():
    assert workload_id(None, "pub") == "-/pub"
    assert workload_id("", "pvt") == "-/pvt"
    assert workload_id("shop", None) is None
    assert workload_name(None) is None


def test_workload_column_matches_scalar_function():
    namespaces = [
        "shop",
        "shop",
        None,
        "billing",
        "shop",
        "kube-system",
        "shop",
        "logging",
        "shop",
    ]
    names = [
        "frontend-7d9f8c6b5-*",
        "frontend-5c4b9d7f8-*",
        "pub",
        "db-backup-29401234-*",
        None,
        "calico-node-*",
        "backend-service-*",
        "envoy-https-*",
        "redis-cart-0",
    ]
    column = workload_column(pa.array(namespaces, pa.string()), pa.array(names, pa.string()))
    assert column.type == pa.string()
    assert column.to_pylist() == [
        workload_id(ns, n) for ns, n in zip(namespaces, names, strict=True)
    ]
    assert column.to_pylist()[:5] == [
        "shop/frontend",
        "shop/frontend",
        "-/pub",
        "billing/db-backup",
        None,
    ]
