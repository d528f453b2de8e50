"""docker-compose.yml cannot run here (no Docker engine): check what can be checked."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
#: What the DAGs and the package read from the environment.
DAG_ENVIRONMENT = ("AIRFLOW_CONN_L7_ELASTICSEARCH", "L7_CONFIG", "L7_LAKE")


def test_the_stack_has_every_part():
    assert {"elasticsearch", "kibana", "postgres", "airflow-init", "airflow-apiserver",
            "airflow-scheduler", "airflow-dag-processor"} <= set(SERVICES)  # fmt: skip


def test_every_service_has_an_image_or_a_build_that_exists():
    for name, service in SERVICES.items():
        assert "image" in service or "build" in service, name
        if "build" in service:
            build = service["build"]
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name


def test_airflow_services_get_the_settings_the_dags_read():
    for name, service in SERVICES.items():
        if name.startswith("airflow-"):
            env = service["environment"]
            for key in DAG_ENVIRONMENT:
                assert env.get(key), (name, key)
            assert '"host": "elasticsearch"' in env["AIRFLOW_CONN_L7_ELASTICSEARCH"]
            mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
            assert (ROOT / mounts[env["L7_CONFIG"]]).is_file()
            assert mounts["/opt/airflow/dags"] == "./dags"


def test_the_mounted_settings_are_valid():
    from l7analytics.adapters.settings_file import load_settings

    settings = load_settings(ROOT / "deploy/l7analytics.yaml")
    assert settings.elasticsearch.alerts.calico_events is True


def test_published_ports_do_not_clash():
    published = []
    for service in SERVICES.values():
        for port in service.get("ports", []):
            published.append(re.split(r":", str(port))[0])
    assert len(published) == len(set(published)) >= 3


def test_images_match_the_tested_versions():
    assert SERVICES["elasticsearch"]["image"].rsplit(":", 1)[1].startswith("8.19.")
    assert (
        SERVICES["kibana"]["image"].rsplit(":", 1)[1]
        == (SERVICES["elasticsearch"]["image"].rsplit(":", 1)[1])
    )
    dockerfile = (ROOT / "docker/airflow.Dockerfile").read_text()
    assert "apache/airflow:3." in dockerfile and "pip install" in dockerfile
