"""Real Elasticsearch servers for the integration tests.

The session fixture ``es_server`` runs each test once per server version (ids ``es8``,
``es7``). Servers are started with ``scripts/es_server.py`` (Elastic's integ-test distribution
from Maven Central, see that script), lazily on first use and only once per session: all the
versions the selected tests need start together, in parallel, and stop at session end. A
server that cannot be started FAILS its tests, never skips them; deselect them with
``-m "not es"`` on a machine without Java and Maven.

``L7_ES_URLS=es8=http://127.0.0.1:9200,es7=http://127.0.0.1:9201`` reuses servers that are
already running (e.g. started with ``scripts/es_server.py start``) instead of starting them.
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

#: per-session workdirs live here, named after the pytest process that owns them.
WORKDIR_ROOT = Path(os.environ.get("L7_ES_ROOT", "/tmp/l7analytics-es"))
START_TIMEOUT_S = 600  # a first fetch from Maven plus the script's own 120 s startup limit


@dataclass(frozen=True)
class EsServer:
    """One running server: ``url``, exact ``version``, ``major``; ``id`` is es8 or es7."""

    id: str
    url: str
    version: str
    pid: int | None = None
    workdir: str | None = None  # None for a server reused through L7_ES_URLS

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def client(self, **kwargs: Any):
        """An ``elasticsearch.Elasticsearch`` client for this server."""
        from elasticsearch import Elasticsearch

        kwargs.setdefault("request_timeout", 30)
        return Elasticsearch(self.url, **kwargs)


_lock = threading.Lock()
_servers: dict[str, EsServer] = {}
_failures: dict[str, str] = {}


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
        if "es_server" in getattr(item, "fixturenames", ()):
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


def _start(server_id: str) -> None:
    workdir = _workdir(server_id)
    try:
        proc = _run_script("start", "--version", VERSIONS[server_id], "--workdir", str(workdir))
    except subprocess.TimeoutExpired:
        _failures[server_id] = f"scripts/es_server.py start took over {START_TIMEOUT_S} s"
        return
    if proc.returncode == 0:
        state = json.loads(proc.stdout.strip().splitlines()[-1])
        _servers[server_id] = EsServer(
            server_id, state["url"], state["version"], state["pid"], state["workdir"]
        )
        return
    lines = proc.stderr.strip().splitlines()
    reason = next((ln for ln in reversed(lines) if "error:" in ln), f"exit {proc.returncode}")
    details = "\n".join(ln for ln in lines[-60:] if ln != reason)
    _failures[server_id] = f"{server_id} ({VERSIONS[server_id]}): {reason}" + (
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


atexit.register(_stop_all)  # in case the session ends without pytest_sessionfinish


def pytest_sessionfinish(session: pytest.Session) -> None:
    _stop_all()


@pytest.fixture(scope="session", params=list(VERSIONS), ids=list(VERSIONS))
def es_server(request: pytest.FixtureRequest) -> EsServer:
    """A running Elasticsearch of one version, shared by the whole session."""
    wanted = {
        item.callspec.params["es_server"]
        for item in request.session.items
        if "es_server" in getattr(getattr(item, "callspec", None), "params", {})
    }
    _ensure(wanted | {request.param})
    if request.param in _failures:
        pytest.fail(_failures[request.param], pytrace=False)
    return _servers[request.param]
