"""TLS as Calico runs Elasticsearch: HTTPS with a private CA, tested on real servers (7.17, 8.19).

For the source (``extract --es``), the sinks (``score --es``: alerts index and Calico events)
and ``load-es``: verification with ``L7_ES_CA_CERTS`` succeeds; a wrong CA, a host name the
certificate does not name, and ``http://`` to the HTTPS port each fail with exit 2 and one line
that names TLS; ``verify_certs: false`` works and warns once. No secret is printed, at any log
level. (kibana-setup's client is tested in ``test_kibana_tls.py``.)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from calico_index import SECURE_DAY, generated_docs
from tls_certs import make_ca, write_ca_file

from l7analytics.ui.cli import main

pytestmark = pytest.mark.es

WINDOW = ["--start", "2026-11-01T02:00:00Z", "--end", "2026-11-01T06:00:00Z"]
ENV_NAMES = ("HOSTS", "API_KEY", "USERNAME", "PASSWORD", "CA_CERTS", "VERIFY_CERTS")


@pytest.fixture
def environment(monkeypatch):
    """Set ``L7_ES_*`` from a dict (unset names are removed), for one CLI run."""

    def apply(values: dict[str, str]) -> None:
        for name in ENV_NAMES:
            monkeypatch.delenv(f"L7_ES_{name}", raising=False)
        monkeypatch.setenv("L7_ES_MAX_RETRIES", "0")
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return apply


@pytest.fixture(scope="module")
def wrong_ca(tmp_path_factory) -> str:
    return str(write_ca_file(tmp_path_factory.mktemp("ca") / "other.crt", make_ca("other CA")))


@pytest.fixture(scope="module")
def small_logs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("logs") / "logs.ndjson"
    docs = generated_docs(SECURE_DAY, hours=1)[:500]
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def commands(tmp: Path, settings: Path, logs: Path) -> dict[str, list[str]]:
    """Each client path: the source, the sinks (from a lake the source filled), load-es."""
    lake = str(tmp / "lake")
    return {
        "source": ["extract", "--es", "--lake", lake, *WINDOW, "--config", str(settings)],
        "sinks": ["score", "--es", "--lake", lake, *WINDOW, "--config", str(settings)],
        "load-es": ["load-es", "--input", str(logs), "--cluster", "tlstest"],
    }


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_verified_tls_works_for_source_sinks_and_load_es(
    secure_cluster, environment, settings_file, small_logs, tmp_path, capsys
):
    environment(secure_cluster.env())
    for name, args in commands(tmp_path, settings_file, small_logs).items():
        code, out, err = run(args, capsys)
        assert code == 0, f"{name}: {err}"
        assert secure_cluster.password not in out + err
    client = secure_cluster.client()
    client.indices.refresh(index="l7-anomaly-alerts")
    assert client.count(index="l7-anomaly-alerts")["count"] > 0
    assert client.count(index="tigera_secure_ee_l7.tlstest.*")["count"] == 500


@pytest.mark.parametrize("client_path", ["source", "sinks", "load-es"])
@pytest.mark.parametrize("mistake", ["wrong CA", "hostname mismatch", "http to https"])
def test_tls_mistakes_fail_in_one_line_naming_tls(
    secure_cluster, environment, settings_file, small_logs, wrong_ca, tmp_path, capsys,
    client_path, mistake,
):  # fmt: skip
    env = secure_cluster.env()
    port = secure_cluster.url.rsplit(":", 1)[1]
    if mistake == "wrong CA":
        env["L7_ES_CA_CERTS"] = wrong_ca
    elif mistake == "hostname mismatch":  # the certificate names localhost, not 127.0.0.1
        env["L7_ES_HOSTS"] = f"https://127.0.0.1:{port}"
    else:
        env["L7_ES_HOSTS"] = f"http://localhost:{port}"
    if client_path == "sinks":  # a lake to score, filled over verified TLS
        environment(secure_cluster.env())
        extract = commands(tmp_path, settings_file, small_logs)["source"]
        assert run(extract, capsys)[0] == 0
    environment(env)
    code, out, err = run(commands(tmp_path, settings_file, small_logs)[client_path], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "TLS" in lines[0], lines[0]
    expected = {"wrong CA": "certificate verify failed", "hostname mismatch": "hostname",
                "http to https": "https://"}[mistake]  # fmt: skip
    assert expected in lines[0], lines[0]
    assert secure_cluster.password not in out + err


def test_verify_certs_false_works_and_warns_once(
    secure_cluster, environment, settings_file, small_logs, tmp_path, capsys, caplog
):
    env = secure_cluster.env()
    del env["L7_ES_CA_CERTS"]
    environment({**env, "L7_ES_VERIFY_CERTS": "false"})
    caplog.set_level(logging.WARNING)
    code, _out, err = run(commands(tmp_path, settings_file, small_logs)["source"], capsys)
    assert code == 0, err
    warned = [r for r in caplog.records if "not verified" in r.getMessage()]
    assert len(warned) == 1, [r.getMessage() for r in caplog.records]
    assert "Unverified HTTPS request" not in err + caplog.text  # urllib3's, once per request


def test_no_secret_at_any_log_level(
    secure_cluster, environment, settings_file, small_logs, tmp_path, capsys, caplog
):
    environment(secure_cluster.env("l7job"))
    caplog.set_level(logging.DEBUG)  # every logger, the clients' included
    for args in commands(tmp_path, settings_file, small_logs).values():
        run(args, capsys)  # load-es fails for l7job (no privilege): its error is checked too
    environment({**secure_cluster.env(), "L7_ES_PASSWORD": "wrong-" + secure_cluster.password})
    code, out, err = run(commands(tmp_path, settings_file, small_logs)["source"], capsys)
    assert code == 2
    for secret in (secure_cluster.password, secure_cluster.users["l7job"]):
        assert secret not in caplog.text + out + err


def test_https_to_a_plain_http_server_says_so(es_server, environment, tmp_path, capsys):
    environment({"L7_ES_HOSTS": es_server.url.replace("http://", "https://")})
    args = ["extract", "--es", "--lake", str(tmp_path / "lake"), *WINDOW]
    code, _out, err = run(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "TLS" in lines[0] and "does not speak TLS" in lines[0], lines[0]
