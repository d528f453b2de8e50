"""Authentication against real Elasticsearch 7.17 and 8.19 with security on (over HTTPS, as
Calico runs them): basic auth works, wrong credentials fail fast in one line that names the
host and never shows the secret.

(The integ-test distribution cannot create API keys or native users: its security index needs
the analysis-common module the zip lacks, "Unknown filter type [pattern_capture]". Users come
from the file realm; the API-key header path is covered by a wrong key the real server rejects
with 401, and by kibana-setup's header test.)
"""

from __future__ import annotations

import pytest

from l7analytics.adapters.elasticsearch.connection import EsConnection, connect, translate_errors
from l7analytics.core.errors import ConfigError
from l7analytics.ui.cli import main

pytestmark = pytest.mark.es


def test_basic_auth_reads_the_cluster(secure_es_server):
    settings = EsConnection(
        hosts=[secure_es_server.url],
        username=secure_es_server.username,
        password=secure_es_server.password,
        ca_certs=secure_es_server.ca_certs,
    )
    assert connect(settings).count(index="*")["count"] >= 0


@pytest.mark.parametrize("credentials", [
    {"L7_ES_USERNAME": "l7admin", "L7_ES_PASSWORD": "wrong-password-123"},
    {"L7_ES_API_KEY": "d3JvbmcteDp3cm9uZy1rZXktdmFsdWU="},
], ids=["password", "api_key"])  # fmt: skip
def test_wrong_credentials_exit_2_in_one_line_without_the_secret(
    secure_es_server, credentials, monkeypatch, tmp_path, capsys
):
    for name in ("USERNAME", "PASSWORD", "API_KEY"):
        monkeypatch.delenv(f"L7_ES_{name}", raising=False)
    monkeypatch.setenv("L7_ES_HOSTS", secure_es_server.url)
    monkeypatch.setenv("L7_ES_CA_CERTS", secure_es_server.ca_certs)
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
    assert "authentication failed" in err and secure_es_server.url.split("//")[1] in err
    for secret in credentials.values():
        if secret != "l7admin":
            assert secret not in captured.err + captured.out


def test_settings_never_show_secrets():
    settings = EsConnection(hosts=["https://user:pw@es:9200"], api_key="c2VjcmV0",
                          password="hunter2")  # fmt: skip
    shown = repr(settings) + str(settings.model_dump())
    assert "c2VjcmV0" not in shown and "hunter2" not in shown
    assert settings.display_host == "https://es:9200"


def test_unreachable_host_is_one_line(tmp_path):
    client = connect(EsConnection(hosts=["http://127.0.0.1:9"], max_retries=0))
    with pytest.raises(Exception) as info, translate_errors("http://127.0.0.1:9", "counting"):
        client.count(index="x")
    assert "unreachable" in str(info.value) and not isinstance(info.value, ConfigError)
