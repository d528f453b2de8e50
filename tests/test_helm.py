"""deploy/helm/values.yaml, for the official Airflow Helm chart: static checks (no cluster, no
helm binary). CHART_KEYS, our own description of the chart's values, says which key paths the
chart knows and what types it expects there: every key path of the values must be in it, with
the right type; the rest checks that the values give the DAGs what they read and that the names
they refer to agree.

CHART_KEYS was written from the chart's documented values (version 1.21.0) and checked once
with a real `helm template` (helm v3.19.0, chart 1.21.0 at apache/airflow commit
b90710803a45d015a221b6045295d0dc9ddb964f)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VALUES_FILE = ROOT / "deploy/helm/values.yaml"
VALUES_TEXT = VALUES_FILE.read_text()
VALUES = yaml.safe_load(VALUES_TEXT)
SECRETS_EXAMPLE = [
    doc
    for doc in yaml.safe_load_all((ROOT / "deploy/helm/secrets.example.yaml").read_text())
    if doc
]
DOCKERFILE = (ROOT / "docker/airflow.Dockerfile").read_text()
DAG_SOURCES = "\n".join(p.read_text() for p in sorted((ROOT / "dags").glob("*.py")))

#: The chart's version the values are written for (CHART_KEYS's and the install command's).
CHART_VERSION = "1.21.0"

NULL = type(None)
#: A Kubernetes resource quantity: "2Gi", "500m", 1, 0.5.
QUANTITY = (str, int, float)

#: Key path -> the Python type(s) the chart accepts there, for every key path the values set.
#: A path is dotted; ``*`` stands for any one key (the names of ``extraConfigMaps``), ``[]``
#: for the items of a list. Every prefix of a path is a mapping. ``config.<section>.<option>``
#: goes to airflow.cfg as it is: the chart takes any option there, so only the ones we set are
#: listed, to catch a misspelt one.
CHART_KEYS: dict[str, type | tuple[type, ...]] = {
    "executor": str,
    "images.airflow.repository": (str, NULL),
    "images.airflow.tag": (str, NULL),
    "images.airflow.pullPolicy": str,
    "airflowVersion": str,
    "dags.gitSync.enabled": bool,
    "dags.persistence.enabled": bool,
    "fernetKeySecretName": (str, NULL),
    "apiSecretKeySecretName": (str, NULL),
    "jwtSecretName": (str, NULL),
    "secret": list,
    "secret[].envName": str,
    "secret[].secretName": str,
    "secret[].secretKey": str,
    "env": list,
    "env[].name": str,
    "env[].value": str,
    "extraConfigMaps.*.data": str,
    "volumes": list,
    "volumes[].name": str,
    "volumes[].configMap.name": str,
    "volumeMounts": list,
    "volumeMounts[].name": str,
    "volumeMounts[].mountPath": str,
    "volumeMounts[].readOnly": bool,
    "triggerer.enabled": bool,
    "triggerer.replicas": int,
    "dagProcessor.enabled": (bool, NULL),
    "workers.celery.replicas": (int, NULL),
    "workers.celery.resources.requests.cpu": QUANTITY,
    "workers.celery.resources.requests.memory": QUANTITY,
    "workers.celery.resources.limits.cpu": QUANTITY,
    "workers.celery.resources.limits.memory": QUANTITY,
    "workers.kubernetes.resources.requests.cpu": QUANTITY,
    "workers.kubernetes.resources.requests.memory": QUANTITY,
    "workers.kubernetes.resources.limits.cpu": QUANTITY,
    "workers.kubernetes.resources.limits.memory": QUANTITY,
    "config.celery.worker_concurrency": (int, str),
    "postgresql.enabled": bool,
    "redis.enabled": bool,
}
#: The executors the chart takes (one of them, by its class name).
CHART_EXECUTORS = {
    "CeleryExecutor",
    "KubernetesExecutor",
    "CeleryKubernetesExecutor",
    "LocalExecutor",
    "LocalKubernetesExecutor",
}
#: Key path -> the only values the chart accepts there.
CHART_CHOICES: dict[str, set[str]] = {
    "executor": CHART_EXECUTORS,
    "images.airflow.pullPolicy": {"Always", "Never", "IfNotPresent"},
}
#: Key path of a list's items -> the keys each item must have.
CHART_REQUIRED: dict[str, set[str]] = {
    "secret[]": {"envName", "secretName"},
    "env[]": {"name", "value"},
    "volumes[]": {"name"},
    "volumeMounts[]": {"name", "mountPath"},
}

#: The keys the chart reads in the Secrets that fernetKeySecretName, apiSecretKeySecretName
#: and jwtSecretName name (chart/values.yaml documents them).
CHART_SECRET_KEYS = {
    "fernetKeySecretName": "fernet-key",
    "apiSecretKeySecretName": "api-secret-key",
    "jwtSecretName": "jwt-secret",
}
#: Secrets and ConfigMaps the chart creates itself, as "<release>-<suffix>" (seen with
#: `helm template` of chart 1.21.0 and its optional parts switched on): ours must not collide.
CHART_OWN_SUFFIXES = {
    "config", "statsd", "api-server-config", "webserver-config", "api-secret-key", "broker-url",
    "elasticsearch", "opensearch", "fernet-key", "jwt-secret", "metadata", "result-backend",
    "pgbouncer-config", "pgbouncer-stats", "pgbouncer-certificates", "redis-password",
    "registry", "ssh-secret", "kerberos-keytab", "webserver-secret-key", "flower",
}  # fmt: skip

_PATTERNS = {tuple(path.split(".")): path for path in CHART_KEYS}


def _matches(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    """Whether ``path`` is ``pattern`` or a prefix of it (``*`` in it matches any key)."""
    return len(path) <= len(pattern) and all(
        p in ("*", k) for p, k in zip(pattern[: len(path)], path, strict=True)
    )


def _entry(path: tuple[str, ...]) -> str | None:
    """The CHART_KEYS path that ``path`` is, if any."""
    for pattern, name in _PATTERNS.items():
        if len(pattern) == len(path) and _matches(pattern, path):
            return name
    return None


def _is_mapping(path: tuple[str, ...]) -> bool:
    """Whether ``path`` is a proper prefix of a CHART_KEYS path (the top level included)."""
    return any(len(pattern) > len(path) and _matches(pattern, path) for pattern in _PATTERNS)


def _has_type(value: Any, expected: type | tuple[type, ...]) -> bool:
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool):  # a bool is an int to isinstance, not to the chart
        return bool in types
    return isinstance(value, types)


def chart_problems(value: Any, path: tuple[str, ...] = ()) -> list[str]:
    """What the chart, as CHART_KEYS describes it, would not take in ``value`` (the values or
    a part of them at ``path``): "key.path: why" for each problem, none if it is all right.
    Stricter than Helm at the top level: a misspelt key there is accepted and does nothing."""
    where = ".".join(path)
    if _is_mapping(path):
        if not isinstance(value, dict):
            return [f"{where}: a {type(value).__name__}, the chart expects a mapping"]
        problems = []
        for key in sorted(CHART_REQUIRED.get(where, set()) - set(value)):
            problems.append(f"{where}.{key}: missing, the chart requires it")
        for key, item in value.items():
            problems += chart_problems(item, (*path, str(key)))
        return problems
    entry = _entry(path)
    if entry is None:
        return [f"{where}: not a key the chart knows"]
    expected = CHART_KEYS[entry]
    if not _has_type(value, expected):
        names = [t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,))]
        return [f"{where}: a {type(value).__name__}, the chart expects {' or '.join(names)}"]
    if entry in CHART_CHOICES and value not in CHART_CHOICES[entry]:
        return [f"{where}: {value!r}, the chart expects one of {sorted(CHART_CHOICES[entry])}"]
    problems = []
    if isinstance(value, list):
        *parent, last = path
        for item in value:
            problems += chart_problems(item, (*parent, f"{last}[]"))
    return problems


def _env() -> dict[str, str]:
    return {item["name"]: item["value"] for item in VALUES["env"]}


def _secret_envs() -> dict[str, dict[str, str]]:
    return {item["envName"]: item for item in VALUES["secret"]}


def _secrets_example() -> dict[str, dict[str, str]]:
    assert all(doc["kind"] == "Secret" for doc in SECRETS_EXAMPLE)
    return {doc["metadata"]["name"]: doc["stringData"] for doc in SECRETS_EXAMPLE}


def _kubectl_created_secrets() -> dict[str, set[str]]:
    """Secret name -> keys, from the `kubectl create secret generic` commands in values.yaml."""
    lines = VALUES_TEXT.splitlines()
    created = {}
    for start, line in enumerate(lines):
        if match := re.search(r"create secret generic (\S+)", line):
            end = start
            while lines[end].rstrip().endswith("\\"):
                end += 1
            command = "\n".join(lines[start : end + 1])
            created[match.group(1)] = set(re.findall(r"--from-literal=([\w-]+)=", command))
    return created


def _release_name() -> str:
    match = re.search(r"helm upgrade --install (\S+) apache-airflow/airflow", VALUES_TEXT)
    assert match, "the install command is documented at the top of values.yaml"
    return match.group(1)


def test_every_key_path_is_one_the_chart_knows_with_the_right_type():
    assert chart_problems(VALUES) == []


def test_the_table_describes_the_paths_of_the_values():
    # The walk does reach the values' deepest paths (not only their top-level sections).
    assert _entry(("extraConfigMaps", "l7analytics-settings", "data")) == "extraConfigMaps.*.data"
    assert _entry(("volumes[]", "configMap", "name")) == "volumes[].configMap.name"
    assert _is_mapping(()) and _is_mapping(("volumes[]", "configMap"))
    assert not _is_mapping(("executor",)) and _entry(("exector",)) is None


def _set(values: dict[str, Any], path: str, value: Any) -> None:
    """Sets ``path`` ("a.b.0.c", a number indexes a list) in ``values``."""
    *parents, last = path.split(".")
    target: Any = values
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[int(last) if isinstance(target, list) else last] = value


def _rename(values: dict[str, Any], path: str, new_key: str) -> None:
    """Renames the key at ``path`` to ``new_key`` (a misspelling), keeping its value."""
    *parents, last = path.split(".")
    target: Any = values
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[new_key] = target.pop(last)


@pytest.mark.parametrize(
    ("path", "misspelt", "problem"),
    [
        ("executor", "exector", "exector: not a key"),
        ("triggerer", "trigerer", "trigerer: not a key"),
        ("workers.celery.replicas", "replica", "workers.celery.replica: not a key"),
        ("images.airflow.tag", "tags", "images.airflow.tags: not a key"),
        ("env.0.value", "valeu", "env[].valeu: not a key"),
        ("volumeMounts.0.mountPath", "mountpath", "volumeMounts[].mountpath: not a key"),
        ("volumes.0.configMap", "configmap", "volumes[].configmap: not a key"),
        (
            "extraConfigMaps.l7analytics-settings.data",
            "dta",
            "extraConfigMaps.l7analytics-settings.dta: not a key",
        ),
        (
            "config.celery.worker_concurrency",
            "worker_concurency",
            "config.celery.worker_concurency: not a key",
        ),
        (
            "workers.celery.resources.limits.memory",
            "memroy",
            "workers.celery.resources.limits.memroy: not a key",
        ),
    ],
)
def test_a_misspelt_key_is_caught(path, misspelt, problem):
    values = copy.deepcopy(VALUES)
    _rename(values, path, misspelt)
    assert any(p.startswith(problem) for p in chart_problems(values)), chart_problems(values)


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("workers.celery.replicas", "2", "workers.celery.replicas: a str, the chart expects int"),
        ("triggerer.replicas", True, "triggerer.replicas: a bool, the chart expects int"),
        ("triggerer.enabled", "yes", "triggerer.enabled: a str, the chart expects bool"),
        ("images.airflow.tag", 0.1, "images.airflow.tag: a float, the chart expects str"),
        ("airflowVersion", 3.3, "airflowVersion: a float, the chart expects str"),
        ("secret", {"envName": "X"}, "secret: a dict, the chart expects list"),
        ("env.0.value", 1, "env[].value: a int, the chart expects str"),
        ("volumeMounts.0.readOnly", "true", "volumeMounts[].readOnly: a str"),
        (
            "extraConfigMaps.l7analytics-settings.data",
            {"a": "b"},
            "extraConfigMaps.l7analytics-settings.data: a dict",
        ),
        ("dags.gitSync", False, "dags.gitSync: a bool, the chart expects a mapping"),
        (
            "workers.kubernetes.resources.requests.memory",
            None,
            "workers.kubernetes.resources.requests.memory: a NoneType",
        ),
        ("executor", "celery", "executor: 'celery', the chart expects one of"),
        ("images.airflow.pullPolicy", "always", "images.airflow.pullPolicy: 'always'"),
        ("env.1", {"name": "L7_LAKE"}, "env[].value: missing"),
        ("volumeMounts.0", {"name": "x", "readOnly": True}, "volumeMounts[].mountPath: missing"),
    ],
)
def test_a_wrong_type_or_value_is_caught(path, value, problem):
    values = copy.deepcopy(VALUES)
    _set(values, path, value)
    assert any(p.startswith(problem) for p in chart_problems(values)), chart_problems(values)


def test_the_values_and_the_docs_name_the_same_chart_version():
    assert f"(version {CHART_VERSION})" in (__doc__ or "")
    assert f"--version {CHART_VERSION}" in VALUES_TEXT
    assert f"chart {CHART_VERSION}" in VALUES_TEXT


def test_the_executor_is_celery_with_two_workers_or_kubernetes():
    assert VALUES["executor"] in {"CeleryExecutor", "KubernetesExecutor"}
    assert "KubernetesExecutor" in VALUES_TEXT  # how to switch is explained
    if VALUES["executor"] == "CeleryExecutor":
        assert VALUES["workers"]["celery"]["replicas"] == 2
        assert VALUES["redis"]["enabled"] is True  # the broker
    # The deprecated spelling (chart 1.21 warns that it was renamed to workers.celery.replicas).
    assert "replicas" not in VALUES["workers"]


def test_the_triggerer_and_the_dag_processor_run():
    assert VALUES["triggerer"]["enabled"] is True
    assert VALUES["triggerer"]["replicas"] >= 1
    assert VALUES["dagProcessor"]["enabled"] is True


def test_the_image_is_the_one_the_dockerfile_builds():
    image = VALUES["images"]["airflow"]
    assert image["repository"] and image["tag"]
    assert image["repository"].rsplit("/", 1)[-1] == "l7analytics-airflow"
    assert f"-t {image['repository']}:{image['tag']} " in VALUES_TEXT  # the build command
    base = re.search(r"^FROM apache/airflow:(\d+\.\d+\.\d+)-python", DOCKERFILE, re.MULTILINE)
    assert base and VALUES["airflowVersion"] == base.group(1)


def test_the_dags_come_from_the_image():
    assert VALUES["dags"]["gitSync"]["enabled"] is False
    assert VALUES["dags"]["persistence"]["enabled"] is False
    # The chart's DAG folder without git-sync or a DAG volume is $AIRFLOW_HOME/dags.
    assert re.search(r"^COPY .*\bdags /opt/airflow/dags\s*$", DOCKERFILE, re.MULTILINE)


def test_the_environment_has_what_the_dags_read():
    read = set(re.findall(r'os\.environ\.get\("(L7_[A-Z_]+)"', DAG_SOURCES))
    assert {"L7_CONFIG", "L7_LAKE"} <= read
    conn_ids = dict(re.findall(r'"(\w+_conn_id)": Param\("(\w+)"', DAG_SOURCES))
    assert conn_ids == {"es_conn_id": "l7_elasticsearch", "aws_conn_id": "aws_default"}
    connections = {f"AIRFLOW_CONN_{conn_id.upper()}" for conn_id in conn_ids.values()}
    assert connections == {"AIRFLOW_CONN_L7_ELASTICSEARCH", "AIRFLOW_CONN_AWS_DEFAULT"}

    env, secret_envs = _env(), _secret_envs()
    assert not set(env) & set(secret_envs)
    assert {"L7_CONFIG", "L7_LAKE"} <= set(env) <= read
    assert connections <= set(secret_envs)  # credentials only from Secrets
    assert not any(name.startswith("AIRFLOW_CONN_") for name in env)
    assert env["L7_LAKE"].startswith("s3://") and len(env["L7_LAKE"]) > len("s3://x/")


def test_the_secrets_are_named_consistently():
    example = _secrets_example()
    for value_key, secret_key in CHART_SECRET_KEYS.items():
        assert VALUES[value_key] in example, value_key
        assert secret_key in example[VALUES[value_key]], (value_key, secret_key)
    for env_name, item in _secret_envs().items():
        assert item["secretKey"] in example[item["secretName"]], env_name
    # The kubectl commands at the top of values.yaml create the same Secrets and keys.
    assert _kubectl_created_secrets() == {name: set(keys) for name, keys in example.items()}


def test_our_secrets_and_configmap_do_not_take_the_charts_own_names():
    release = _release_name()
    taken = {f"{release}-{suffix}" for suffix in CHART_OWN_SUFFIXES}
    ours = {*_secrets_example(), *VALUES["extraConfigMaps"]}
    assert ours and not ours & taken


def test_the_example_connections_are_airflow_connections_in_json():
    from l7analytics.adapters.airflow import aws_options

    connections = _secrets_example()["l7analytics-connections"]
    fields = {"conn_type", "host", "port", "schema", "login", "password", "extra", "description"}
    for name, text in connections.items():
        conn = json.loads(text)
        assert set(conn) <= fields, name
    es = json.loads(connections["AIRFLOW_CONN_L7_ELASTICSEARCH"])
    assert es["conn_type"] == "elasticsearch" and es["schema"] == "https"
    aws = json.loads(connections["AIRFLOW_CONN_AWS_DEFAULT"])
    assert aws["conn_type"] == "aws"
    options = aws_options(_env()["L7_LAKE"], aws["login"], aws["password"], aws["extra"])
    assert options["AWS_REGION"] == aws["extra"]["region_name"]
    assert options["AWS_ENDPOINT_URL"] == aws["extra"]["endpoint_url"]


def _settings_configmap() -> tuple[str, str, str]:
    """(ConfigMap name, file name, file text) of the settings ConfigMap."""
    (name, configmap), *others = VALUES["extraConfigMaps"].items()
    assert not others
    data = yaml.safe_load(configmap["data"])  # the ConfigMap's data, after Helm's tpl
    ((file_name, text),) = data.items()
    return name, file_name, text


def test_the_settings_configmap_is_mounted_where_l7_config_points():
    name, file_name, text = _settings_configmap()
    data = VALUES["extraConfigMaps"][name]["data"]
    assert "{{" not in data and "}}" not in data  # Helm renders it as a template
    (volume,) = [v for v in VALUES["volumes"] if v.get("configMap", {}).get("name") == name]
    (mount,) = [m for m in VALUES["volumeMounts"] if m["name"] == volume["name"]]
    assert mount.get("readOnly") is True and "subPath" not in mount
    assert f"{mount['mountPath'].rstrip('/')}/{file_name}" == _env()["L7_CONFIG"]
    # The chart mounts airflow_local_settings.py in $AIRFLOW_HOME/config: keep clear of it.
    assert not mount["mountPath"].rstrip("/").endswith("/opt/airflow/config")
    assert text.strip()


def test_the_settings_in_the_configmap_load(tmp_path):
    from l7analytics.adapters.settings_file import load_settings

    _, file_name, text = _settings_configmap()
    path = tmp_path / file_name
    path.write_text(text)
    settings = load_settings(path)
    assert settings.elasticsearch.alerts.index == "l7-anomaly-alerts"
    assert settings.elasticsearch.alerts.calico_events is True
    assert settings.elasticsearch.source.index == "tigera_secure_ee_l7.*"
