"""Both Elasticsearch majors start in parallel on a machine that has never run one.

Regression for a first-run failure: two ``es_server.py start`` racing to create the service
user ended with the workdir chowned to a uid that was then replaced, and the server could not
read its own ``config/elasticsearch.yml``. The test recreates that fresh state with a user
name and a root folder of its own (so the session's servers, running as ``l7es``, are not
touched): the user is deleted first, the root folder does not exist.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from es_versions import SCRIPT, VERSIONS

pytestmark = [
    pytest.mark.es,
    pytest.mark.skipif(os.geteuid() != 0, reason="creates and deletes a system user: root only"),
]

FRESH_USER = "l7es-fresh"


def _userdel() -> None:
    subprocess.run(["userdel", FRESH_USER], capture_output=True, check=False)


@pytest.fixture
def fresh_root(tmp_path_factory):
    _userdel()
    root = Path("/tmp") / f"l7analytics-es-fresh-{uuid.uuid4().hex[:8]}"
    assert not root.exists()
    env = {**os.environ, "L7_ES_USER": FRESH_USER, "L7_ES_ROOT": str(root)}
    yield root, env
    for workdir in root.glob("es*"):
        subprocess.run([sys.executable, str(SCRIPT), "stop", "--workdir", str(workdir)],
                       env=env, capture_output=True, check=False)  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)
    _userdel()


def test_both_majors_start_in_parallel_from_a_fresh_state(fresh_root):
    root, env = fresh_root

    def start(server_id: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, str(SCRIPT), "start", "--version", VERSIONS[server_id],
               "--workdir", str(root / server_id)]  # fmt: skip
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)

    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(VERSIONS, pool.map(start, VERSIONS), strict=True))
    for server_id, proc in results.items():
        assert proc.returncode == 0, f"{server_id}: {proc.stderr[-3000:]}"
    user = pwd.getpwnam(FRESH_USER)
    for server_id, proc in results.items():
        state = json.loads(proc.stdout.strip().splitlines()[-1])
        assert state["version"].split(".")[0] == VERSIONS[server_id].split(".")[0]
        config = next((root / server_id).glob("elasticsearch-*/config/elasticsearch.yml"))
        assert config.stat().st_uid == user.pw_uid  # the uid that exists now, not a lost one
