"""Authentication against a real Elasticsearch 8.x with security on: basic auth works, wrong
credentials fail fast in one line that names the host and never shows the secret.

(The integ-test distribution cannot create API keys or native users: its security index needs
a module the zip lacks; a wrong API key is still rejected by the real server with 401.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from l7analytics.adapters.elasticsearch.connection import EsSettings, connect, translate_errors
from l7analytics.cli import main
from l7analytics.errors import ConfigError

pytestmark = pytest.mark.es
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "es_server.py"


@pytest.fixture(scope="module")
def secure_server():
    # The server runs as an unprivileged user: its workdir must be reachable by it.
    root = Path(os.environ.get("L7_ES_ROOT", "/tmp/l7analytics-es"))
    root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"pytest-{os.getpid()}-secure-", dir=root))
    workdir.chmod(0o755)
    proc = subprocess.run([sys.executable, str(SCRIPT), "start", "--version", "8.19.x",
                           "--security", "--workdir", str(workdir)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"secure Elasticsearch did not start: {proc.stderr.strip()[-500:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    yield info
    subprocess.run([sys.executable, str(SCRIPT), "stop", "--workdir", str(workdir)],
                   capture_output=True, timeout=120)  # fmt: skip
    shutil.rmtree(workdir, ignore_errors=True)


def test_basic_auth_reads_the_cluster(secure_server):
    client = connect(EsSettings(hosts=[secure_server["url"]], username=secure_server["username"],
                                password=secure_server["password"]))  # fmt: skip
    assert client.count(index="*")["count"] >= 0


@pytest.mark.parametrize("credentials", [
    {"L7_ES_USERNAME": "l7admin", "L7_ES_PASSWORD": "wrong-password-123"},
    {"L7_ES_API_KEY": "d3JvbmcteDp3cm9uZy1rZXktdmFsdWU="},
], ids=["password", "api_key"])  # fmt: skip
def test_wrong_credentials_exit_2_in_one_line_without_the_secret(
    secure_server, credentials, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("L7_ES_HOSTS", secure_server["url"])
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    code = main(
        [
            "extract",
            "--es",
            "--lake",
            str(tmp_path / "lake"),
            "--start",
            "2026-11-01T00:00:00Z",
            "--end",
            "2026-11-01T01:00:00Z",
        ]
    )
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "authentication failed" in err and secure_server["url"].split("//")[1] in err
    for secret in credentials.values():
        if secret != "l7admin":
            assert secret not in captured.err + captured.out


def test_settings_never_show_secrets():
    settings = EsSettings(hosts=["https://user:pw@es:9200"], api_key="c2VjcmV0",
                          password="hunter2")  # fmt: skip
    shown = repr(settings) + str(settings.model_dump())
    assert "c2VjcmV0" not in shown and "hunter2" not in shown
    assert settings.display_host == "https://es:9200"


def test_unreachable_host_is_one_line(tmp_path):
    client = connect(EsSettings(hosts=["http://127.0.0.1:9"], max_retries=0))
    with pytest.raises(Exception) as info, translate_errors("http://127.0.0.1:9", "counting"):
        client.count(index="x")
    assert "unreachable" in str(info.value) and not isinstance(info.value, ConfigError)
