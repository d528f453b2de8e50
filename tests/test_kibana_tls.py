"""kibana-setup's HTTP client over real TLS: a stub Kibana serving HTTPS with a private CA
(``kibana_stub.py`` wrapped in Python's ``ssl``; certificates from ``tls_certs.py``).

Verification with ``L7_ES_CA_CERTS`` succeeds; a wrong CA, a host name the certificate does
not name, and ``http://`` to the HTTPS port each fail with exit 2 in one line naming TLS;
``L7_ES_VERIFY_CERTS=false`` works and warns once. The Elasticsearch step is skipped
(``--skip-es``): the ES clients' TLS is tested on real servers in tests/integration.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from kibana_stub import StubKibana
from tls_certs import make_ca, write_ca_file, write_server_files

from l7analytics.ui.cli import main

PASSWORD = "kibana-s3cret-pass"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    folder = write_server_files(tmp_path_factory.mktemp("certs"), make_ca("kibana test CA"))
    other = write_ca_file(folder / "other-ca.crt", make_ca("another CA"))
    return folder, other


@pytest.fixture
def kibana(certs) -> Iterator[StubKibana]:
    folder, _ = certs
    with StubKibana("8.19.2", tls=(str(folder / "node.crt"), str(folder / "node.key"))) as stub:
        yield stub


@pytest.fixture(autouse=True)
def environment(monkeypatch, certs):
    for name in ("HOSTS", "API_KEY", "CA_CERTS", "VERIFY_CERTS"):
        monkeypatch.delenv(f"L7_ES_{name}", raising=False)
    monkeypatch.delenv("L7_KIBANA_URL", raising=False)
    monkeypatch.setenv("L7_ES_MAX_RETRIES", "0")
    monkeypatch.setenv("L7_ES_USERNAME", "kibana-admin")
    monkeypatch.setenv("L7_ES_PASSWORD", PASSWORD)
    monkeypatch.setenv("L7_ES_CA_CERTS", str(certs[0] / "ca.crt"))


def setup(url: str, capsys) -> tuple[int, str, str]:
    code = main(["kibana-setup", "--skip-es", "--kibana-url", url])
    captured = capsys.readouterr()
    assert PASSWORD not in captured.out + captured.err
    return code, captured.out, captured.err


def test_verified_tls_imports(kibana, capsys):
    code, out, err = setup(kibana.url, capsys)
    assert code == 0, err
    assert "imported" in out and kibana.paths()[-1].startswith("POST /api/saved_objects/_import")


@pytest.mark.parametrize("mistake, expected", [
    ("wrong CA", "certificate verify failed"),
    ("hostname mismatch", "hostname mismatch"),
    ("http to https", "https://"),
])  # fmt: skip
def test_tls_mistakes_fail_in_one_line_naming_tls(
    kibana, certs, monkeypatch, capsys, mistake, expected
):
    port = kibana.url.rsplit(":", 1)[1]
    url = kibana.url
    if mistake == "wrong CA":
        monkeypatch.setenv("L7_ES_CA_CERTS", str(certs[1]))
    elif mistake == "hostname mismatch":  # the certificate names localhost only
        url = f"https://127.0.0.1:{port}"
    else:
        url = f"http://localhost:{port}"
    code, _out, err = setup(url, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "TLS" in lines[0] and expected in lines[0], lines[0]
    assert not any(p.startswith("POST") for p in kibana.paths())  # nothing was imported


def test_verify_certs_false_works_and_warns_once(kibana, monkeypatch, capsys, caplog):
    monkeypatch.delenv("L7_ES_CA_CERTS")
    monkeypatch.setenv("L7_ES_VERIFY_CERTS", "false")
    caplog.set_level(logging.WARNING)
    code, _out, err = setup(kibana.url, capsys)
    assert code == 0, err
    warned = [r for r in caplog.records if "not verified" in r.getMessage()]
    assert len(warned) == 1, caplog.text
    assert "Unverified HTTPS request" not in err + caplog.text
