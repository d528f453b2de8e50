"""docker-compose.yml cannot run here (no Docker engine): check what can be checked."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "docker/airflow.Dockerfile").read_text()
#: What the DAGs and the package read from the environment.
DAG_ENVIRONMENT = (
    "AIRFLOW_CONN_L7_ELASTICSEARCH",
    "AIRFLOW_CONN_AWS_DEFAULT",
    "L7_CONFIG",
    "L7_LAKE",
)
#: The Airflow services of the CeleryExecutor topology.
AIRFLOW = ("airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
           "airflow-triggerer", "airflow-worker")  # fmt: skip
#: Settings every Airflow container must agree on.
SHARED = ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CELERY__BROKER_URL",
          "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__API_AUTH__JWT_SECRET",
          "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
          "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY")  # fmt: skip
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def airflow_services() -> dict[str, dict]:
    """Every service that runs the Airflow image (the airflow-* ones and the seed)."""
    return {
        name: s for name, s in SERVICES.items() if s.get("image") == "l7analytics-airflow:latest"
    }


def words(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def dependencies(service: dict) -> dict[str, str]:
    """depends_on as {service: condition} (the short list form means service_started)."""
    depends = service.get("depends_on", {})
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


def aws_connection() -> dict:
    return json.loads(SERVICES["airflow-worker"]["environment"]["AIRFLOW_CONN_AWS_DEFAULT"])


def lake_bucket() -> str:
    lake = urlsplit(SERVICES["airflow-worker"]["environment"]["L7_LAKE"])
    assert lake.scheme == "s3" and lake.netloc and lake.path.strip("/"), lake
    return lake.netloc


def test_the_stack_has_every_part():
    assert {"elasticsearch", "kibana", "postgres", "redis", "minio", "minio-init", "seed",
            *AIRFLOW} <= set(SERVICES)  # fmt: skip
    assert set(AIRFLOW) <= set(airflow_services())


def test_every_service_has_an_image_or_a_build_that_exists():
    for name, service in SERVICES.items():
        assert "image" in service or "build" in service, name
        if "build" in service:
            build = service["build"]
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name


def test_airflow_services_get_the_settings_the_dags_read():
    for name, service in airflow_services().items():
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


def test_every_airflow_service_has_the_same_celery_settings():
    services = airflow_services()
    for key in SHARED:
        values = {name: service["environment"].get(key) for name, service in services.items()}
        assert len(set(values.values())) == 1, (key, values)
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"


def test_the_result_backend_is_the_metadata_database():
    env = SERVICES["airflow-scheduler"]["environment"]
    backend = urlsplit(env["AIRFLOW__CELERY__RESULT_BACKEND"])
    database = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; the image has psycopg2.
    assert backend.scheme == "db+postgresql+psycopg2"
    assert (backend.netloc, backend.path) == (database.netloc, database.path)
    postgres = SERVICES["postgres"]["environment"]
    assert database.hostname == "postgres" and database.path == f"/{postgres['POSTGRES_DB']}"
    assert (database.username, database.password) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
    )


def test_the_execution_api_url_is_the_api_server():
    url = urlsplit(
        SERVICES["airflow-worker"]["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    )
    assert url.hostname == "airflow-apiserver" and url.path == "/execution/"
    published = [str(p).split(":")[-1] for p in SERVICES["airflow-apiserver"]["ports"]]
    assert str(url.port) in published
    assert words(SERVICES["airflow-apiserver"]["command"]) == ["api-server"]


@pytest.mark.parametrize(
    ("service", "command"),
    [
        ("airflow-apiserver", ["api-server"]),
        ("airflow-scheduler", ["scheduler"]),
        ("airflow-dag-processor", ["dag-processor"]),
        ("airflow-triggerer", ["triggerer"]),
        ("airflow-worker", ["celery", "worker"]),
    ],
)
def test_each_airflow_service_runs_its_component(service, command):
    assert words(SERVICES[service]["command"]) == command


def test_the_worker_can_be_scaled():
    worker = SERVICES["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert "celery" in " ".join(words(worker["healthcheck"]["test"]))
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"  # warm shutdown
    assert "--scale airflow-worker=" in COMPOSE_TEXT.split("\nx-airflow:")[0]  # documented


def test_the_lake_is_on_the_object_store():
    lake_bucket()
    conn = aws_connection()
    assert conn["conn_type"] == "aws"
    endpoint = urlsplit(conn["extra"]["endpoint_url"])
    assert endpoint.hostname == "minio" and endpoint.port == 9000
    assert conn["extra"]["region_name"] == "us-east-1"
    assert any(str(p).endswith(":9000") for p in SERVICES["minio"]["ports"])
    minio = SERVICES["minio"]["environment"]
    assert (conn["login"], conn["password"]) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )


def test_the_aws_connection_gives_the_lake_its_storage_options():
    from l7analytics.adapters.airflow import aws_options

    conn = aws_connection()
    lake = SERVICES["airflow-worker"]["environment"]["L7_LAKE"]
    options = aws_options(lake, conn["login"], conn["password"], conn["extra"])
    assert options["AWS_ENDPOINT_URL"] == "http://minio:9000"
    assert options["AWS_ALLOW_HTTP"] == "true" and options["AWS_REGION"] == "us-east-1"


def test_the_bucket_the_lake_names_is_created():
    init = SERVICES["minio-init"]
    script = " ".join(words(init.get("entrypoint", [])) + words(init.get("command", [])))
    alias = re.search(r"mc alias set (\S+) http://minio:9000 ", script)
    made = re.search(r"mc mb (?:--\S+ )*(\S+)/(\S+)", script)
    assert alias and made and made.group(1) == alias.group(1), script
    assert made.group(2) == lake_bucket()
    assert "--ignore-existing" in script  # a second `up` must not fail
    assert init.get("restart") == "no"


def test_depends_on_names_existing_services_with_valid_conditions():
    for name, service in SERVICES.items():
        for target, condition in dependencies(service).items():
            assert target in SERVICES and target != name, (name, target)
            assert condition in CONDITIONS, (name, target, condition)
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], (name, target)
            if condition == "service_completed_successfully":
                assert SERVICES[target].get("restart") == "no", (name, target)


def test_redis_and_minio_are_healthy_before_airflow_starts():
    for store in ("redis", "minio", "postgres"):
        assert SERVICES[store]["healthcheck"]["test"], store
    for name in AIRFLOW:
        needs = dependencies(SERVICES[name])
        assert needs.get("redis") == needs.get("minio") == "service_healthy", name
        assert needs.get("minio-init") == "service_completed_successfully", name
        if name != "airflow-init":
            assert needs.get("airflow-init") == "service_completed_successfully", name
    assert dependencies(SERVICES["minio-init"]) == {"minio": "service_healthy"}
    assert dependencies(SERVICES["airflow-worker"])["airflow-apiserver"] == "service_healthy"


def test_published_ports_do_not_clash():
    published = []
    for service in SERVICES.values():
        for port in service.get("ports", []):
            published.append(str(port).rsplit(":", 1)[0])
    assert len(published) == len(set(published)) >= 6
    assert {"8080", "9200", "5601", "9000", "9001"} <= set(published)


def test_images_match_the_tested_versions():
    assert SERVICES["elasticsearch"]["image"].rsplit(":", 1)[1].startswith("8.19.")
    assert (
        SERVICES["kibana"]["image"].rsplit(":", 1)[1]
        == (SERVICES["elasticsearch"]["image"].rsplit(":", 1)[1])
    )
    for name, service in SERVICES.items():  # pinned: `latest` moves under you
        if "build" not in service:
            assert ":" in service["image"] and not service["image"].endswith(":latest"), name
    assert re.search(r"^FROM apache/airflow:3\.3\.2-python3\.11$", DOCKERFILE, re.MULTILINE)


def test_the_dockerfile_installs_the_celery_extra():
    install = re.search(r"^RUN pip install .*$", DOCKERFILE, re.MULTILINE)
    assert install and '"/opt/l7analytics[celery]"' in install.group(0)
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install.group(0)  # pip keeps the base's
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    celery = " ".join(extras["celery"])
    assert "apache-airflow-providers-celery" in celery and "celery[redis]" in celery


def test_shell_dollars_are_escaped_from_compose_interpolation():
    def strings(node):
        if isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node

    # `$$` reaches the container as `$`; a lone `$VAR` would be replaced by the host's value.
    assert [s for s in strings(COMPOSE) if "$" in s.replace("$$", "")] == []
    assert any("$${HOSTNAME}" in s for s in strings(SERVICES["airflow-worker"]))
