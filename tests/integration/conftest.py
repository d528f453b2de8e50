"""Real Elasticsearch servers for the integration tests.

The session fixture ``es_server`` runs each test once per server version (ids ``es8``,
``es7``). Servers are started with ``scripts/es_server.py`` (Elastic's integ-test distribution
from Maven Central, see that script), lazily on first use and only once per session: all the
versions the selected tests need start together, in parallel, and stop at session end. A
server that cannot be started FAILS its tests, never skips them; deselect them with
``-m "not es"`` on a machine without Java and Maven.

``L7_ES_URLS=es8=http://127.0.0.1:9200,es7=http://127.0.0.1:9201`` reuses servers that are
already running (e.g. started with ``scripts/es_server.py start``) instead of starting them.

The session fixture ``secure_es_server`` (ids ``es8-tls``, ``es7-tls``) is the same versions as
Calico runs them: HTTPS with a private CA (made in the session by ``tls_certs.py``) and security
on, with the superuser ``l7admin`` and the file-realm users of ``privileges.py``. They start
with the others, in parallel, when a selected test needs them.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from es_versions import SCRIPT, VERSIONS
from privileges import write_file_realm
from tls_certs import make_ca, write_server_files

#: per-session workdirs live here, named after the pytest process that owns them.
WORKDIR_ROOT = Path(os.environ.get("L7_ES_ROOT", "/tmp/l7analytics-es"))
#: secure server id -> the plain server id whose version it runs.
SECURE = {f"{server_id}-tls": server_id for server_id in VERSIONS}
START_TIMEOUT_S = 600  # a first fetch from Maven plus the script's own 120 s startup limit


@dataclass(frozen=True)
class EsServer:
    """One running server: ``url``, exact ``version``, ``major``; ``id`` is es8 or es7."""

    id: str
    url: str
    version: str
    pid: int | None = None
    workdir: str | None = None  # None for a server reused through L7_ES_URLS
    username: str | None = None  # the superuser, on a secure server
    password: str | None = None
    ca_certs: str | None = None  # the CA that signed a secure server's certificate
    users: dict[str, str] | None = None  # file-realm user -> password (privileges.py)

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def client(self, **kwargs: Any):
        """An ``elasticsearch.Elasticsearch`` client for this server."""
        from elasticsearch import Elasticsearch

        kwargs.setdefault("request_timeout", 30)
        if self.ca_certs:
            kwargs.setdefault("ca_certs", self.ca_certs)
        if self.username and "api_key" not in kwargs:
            kwargs.setdefault("basic_auth", (self.username, self.password))
        return Elasticsearch(self.url, **kwargs)

    def env(self, user: str | None = None) -> dict[str, str]:
        """``L7_ES_*`` variables that connect the job to this server (as ``user``, if given)."""
        env = {"L7_ES_HOSTS": self.url}
        if self.ca_certs:
            env["L7_ES_CA_CERTS"] = self.ca_certs
        if user is not None:
            assert self.users is not None, f"{self.id} has no file-realm users"
            env.update(L7_ES_USERNAME=user, L7_ES_PASSWORD=self.users[user])
        elif self.username:
            env.update(L7_ES_USERNAME=self.username, L7_ES_PASSWORD=self.password or "")
        return env


_lock = threading.Lock()
_servers: dict[str, EsServer] = {}
_failures: dict[str, str] = {}
_secure_material: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "es: needs a real Elasticsearch (scripts/es_server.py)")
    # Without __init__.py files pytest imports this file as the top-level module "conftest",
    # which shadows tests/conftest.py for the unit tests' `from conftest import ...`: put the
    # helpers' module back under that name (pytest keeps this one as a plugin object).
    helpers = Path(__file__).resolve().parents[1] / "conftest.py"
    for plugin in config.pluginmanager.get_plugins():
        if Path(getattr(plugin, "__file__", None) or "/-").resolve() == helpers:
            sys.modules["conftest"] = plugin
            break


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"es_server", "secure_es_server"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.es)


def _reused() -> dict[str, str]:
    urls = {}
    for part in filter(None, os.environ.get("L7_ES_URLS", "").split(",")):
        key, sep, url = part.partition("=")
        if not sep or key.strip() not in VERSIONS:
            raise pytest.UsageError(f"L7_ES_URLS: expected es8=URL,es7=URL, got {part!r}")
        urls[key.strip()] = url.strip().rstrip("/")
    return urls


def _version_of(url: str) -> str:
    """The server's version; ``GET /`` is missing from the 8.x zip, ``_nodes`` is not."""
    query = f"{url}/_nodes/_local?filter_path=nodes.*.version"
    with urllib.request.urlopen(query, timeout=10) as response:
        nodes = json.load(response)["nodes"]
    return next(iter(nodes.values()))["version"]


def _workdir(server_id: str) -> Path:
    return WORKDIR_ROOT / f"pytest-{os.getpid()}-{server_id}"


def _run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )


def _secure_args() -> list[str]:
    """``--tls`` and ``--file-realm`` folders, made once per session (a CA, users, roles)."""
    if not _secure_material:
        folder = WORKDIR_ROOT / f"pytest-{os.getpid()}-secure-material"
        certs = write_server_files(folder / "certs", make_ca("l7analytics test CA"))
        users = write_file_realm(folder / "realm")
        _secure_material.update(folder=folder, certs=certs, realm=folder / "realm", users=users)
    return ["--tls", str(_secure_material["certs"]), "--file-realm", str(_secure_material["realm"])]


def _start(server_id: str) -> None:
    workdir = _workdir(server_id)
    version = VERSIONS[SECURE.get(server_id, server_id)]
    extra = _secure_args() if server_id in SECURE else []
    try:
        proc = _run_script("start", "--version", version, "--workdir", str(workdir), *extra)
    except subprocess.TimeoutExpired:
        _failures[server_id] = f"scripts/es_server.py start took over {START_TIMEOUT_S} s"
        return
    if proc.returncode == 0:
        state = json.loads(proc.stdout.strip().splitlines()[-1])
        secure = server_id in SECURE
        _servers[server_id] = EsServer(
            server_id,
            state["url"],
            state["version"],
            state["pid"],
            state["workdir"],
            username=state.get("username"),
            password=state.get("password"),
            ca_certs=state.get("ca_certs"),
            users=_secure_material["users"] if secure else None,
        )
        return
    lines = proc.stderr.strip().splitlines()
    reason = next((ln for ln in reversed(lines) if "error:" in ln), f"exit {proc.returncode}")
    details = "\n".join(ln for ln in lines[-60:] if ln != reason)
    _failures[server_id] = f"{server_id} ({version}): {reason}" + (
        f"\n{details}" if details else ""
    )
    shutil.rmtree(workdir, ignore_errors=True)  # the message carries the log's tail


def _stop_stale() -> None:
    """Stop servers left by pytest sessions that died (their pid is gone)."""
    for workdir in WORKDIR_ROOT.glob("pytest-*-es*"):
        owner = workdir.name.split("-")[1]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            _run_script("stop", "--workdir", str(workdir))
            shutil.rmtree(workdir, ignore_errors=True)


def _ensure(wanted: set[str]) -> None:
    """Start, in parallel, every wanted server not started (or failed) yet."""
    with _lock:
        reused = _reused()
        missing = sorted(wanted - _servers.keys() - _failures.keys())
        for server_id in [s for s in missing if s in reused]:
            url = reused[server_id]
            try:
                _servers[server_id] = EsServer(server_id, url, _version_of(url))
            except OSError as err:
                _failures[server_id] = f"{server_id}: L7_ES_URLS server {url} not reachable: {err}"
        to_start = [s for s in missing if s not in reused]
        if to_start:
            _stop_stale()
            if any(s in SECURE for s in to_start):
                _secure_args()  # once, before the parallel starts
            with ThreadPoolExecutor(len(to_start)) as pool:
                list(pool.map(_start, to_start))


def _stop_all() -> None:
    with _lock:
        started = [s for s in _servers.values() if s.workdir]
        _servers.clear()

    def stop(server: EsServer) -> None:
        _run_script("stop", "--workdir", server.workdir)
        shutil.rmtree(server.workdir, ignore_errors=True)

    if started:
        with ThreadPoolExecutor(len(started)) as pool:
            list(pool.map(stop, started))
    if _secure_material:
        shutil.rmtree(_secure_material["folder"], ignore_errors=True)


atexit.register(_stop_all)  # in case the session ends without pytest_sessionfinish


def pytest_sessionfinish(session: pytest.Session) -> None:
    _stop_all()


def _server(request: pytest.FixtureRequest) -> EsServer:
    """Start every server the session's selected tests need (once, in parallel); this one."""
    wanted = {
        params[name]
        for item in request.session.items
        for params in [getattr(getattr(item, "callspec", None), "params", {})]
        for name in ("es_server", "secure_es_server")
        if name in params
    }
    _ensure(wanted | {request.param})
    if request.param in _failures:
        pytest.fail(_failures[request.param], pytrace=False)
    return _servers[request.param]


@pytest.fixture(scope="session", params=list(VERSIONS), ids=list(VERSIONS))
def es_server(request: pytest.FixtureRequest) -> EsServer:
    """A running Elasticsearch of one version, shared by the whole session."""
    return _server(request)


@pytest.fixture(scope="session", params=list(SECURE), ids=list(SECURE))
def secure_es_server(request: pytest.FixtureRequest) -> EsServer:
    """A running Elasticsearch as Calico runs it: HTTPS, security, file-realm users."""
    return _server(request)


@pytest.fixture(scope="session")
def settings_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Job settings for runs against the test servers: no read delay, Calico events on."""
    path = tmp_path_factory.mktemp("settings") / "settings.yaml"
    path.write_text(
        "elasticsearch:\n  source:\n    read_delay: 0s\n  alerts:\n    calico_events: true\n"
    )
    return path


@pytest.fixture(scope="session")
def secure_cluster(secure_es_server: EsServer) -> EsServer:
    """The secure server with Calico's L7 indices filled (6 hours of generated traffic) and
    Calico's events index created, as the operator does, by the superuser."""
    from calico_index import SECURE_DAY, SECURE_HOURS, delete_indices, generated_docs, index_docs

    client = secure_es_server.client()
    delete_indices(client, "tigera_secure_ee_l7.*")
    index_docs(client, generated_docs(SECURE_DAY, hours=SECURE_HOURS))
    client.close()
    return secure_es_server
