"""The README's least privileges, proved on real servers (7.17 and 8.19, HTTPS, security on).

A file-realm user holding exactly ``privileges.JOB_ROLE`` runs extract, score and publish
(alerts index and Calico events): they succeed. Then, for each privilege of the role in turn,
a user whose role lacks only that one runs the step that needs it: the job fails with exit 2
in one line that names the missing privilege and the index (or the cluster).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from calico_index import delete_indices
from privileges import ALERTS, EVENTS, JOB_ROLE, JOB_USER, L7_LOGS, Grant, grants

from l7analytics.ui.cli import main

pytestmark = pytest.mark.es

README = Path(__file__).resolve().parents[2] / "README.md"
WINDOW = ["--start", "2026-11-01T02:00:00Z", "--end", "2026-11-01T06:00:00Z"]
EVENTS_INDEX = "tigera_secure_ee_events.cluster.linseed-000001"
EVENTS_ALIAS = "tigera_secure_ee_events.cluster."
#: Calico's events mapping, in part: ``dynamic: false``, so the job's documents never change it.
EVENTS_MAPPING = {
    "dynamic": False,
    "properties": {
        "time": {"type": "date"},
        "severity": {"type": "long"},
        "description": {"type": "text"},
        **{name: {"type": "keyword"} for name in ("id", "type", "origin", "name", "cluster")},
    },
}


def reset_alert_indices(server) -> None:
    """No alerts index (the job creates it); Calico's events index empty, as the operator
    creates it (the job may only add documents to it)."""
    client = server.client()
    delete_indices(client, "l7-anomaly-alerts*")
    delete_indices(client, "tigera_secure_ee_events.*")
    client.options(ignore_status=404).indices.delete_index_template(name="l7-anomaly-alerts")
    client.indices.create(
        index=EVENTS_INDEX,
        mappings=EVENTS_MAPPING,
        aliases={EVENTS_ALIAS: {"is_write_index": True}},
    )
    client.close()


def as_user(server, user: str, monkeypatch) -> None:
    for name in ("API_KEY", "VERIFY_CERTS"):
        monkeypatch.delenv(f"L7_ES_{name}", raising=False)
    monkeypatch.setenv("L7_ES_MAX_RETRIES", "0")
    for name, value in server.env(user).items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def job_lake(secure_cluster, settings_file, tmp_path_factory) -> Path:
    """The window extracted, scored and published by the job's user (the proof that the role
    is enough); its lake is then scored again by the users that lack a privilege."""
    lake = tmp_path_factory.mktemp("lake") / "lake"
    reset_alert_indices(secure_cluster)
    with pytest.MonkeyPatch.context() as monkeypatch:
        as_user(secure_cluster, JOB_USER, monkeypatch)
        code = main(["run", "--es", "--lake", str(lake), *WINDOW, "--config", str(settings_file)])
    assert code == 0
    return lake


def test_the_readme_lists_exactly_the_role(secure_cluster):
    text = README.read_text()
    rows = dict(re.findall(r"^\| `([^`|]+)`[^|]*\| (.+?) \|$", text, flags=re.M))
    for group in JOB_ROLE["indices"]:
        (pattern,) = group["names"]
        listed = re.findall(r"`([a-z_]+)`", rows[pattern])
        assert listed == group["privileges"], (pattern, rows[pattern])
    cluster_row = re.search(r"^\| cluster \| (.+?) \|$", text, flags=re.M)
    assert cluster_row and re.findall(r"`([a-z_]+)`", cluster_row[1]) == JOB_ROLE["cluster"]


def test_the_job_role_extracts_scores_and_publishes(secure_cluster, job_lake):
    client = secure_cluster.client()
    client.indices.refresh(index="l7-anomaly-alerts," + EVENTS_INDEX)
    alerts = client.count(index="l7-anomaly-alerts")["count"]
    events = client.count(index=EVENTS_INDEX)["count"]
    client.close()
    assert alerts > 0 and events == alerts
    assert (job_lake / "l7/date=2026-11-01/hour=05/_manifest.json").is_file()


def step_needing(grant: Grant, lake: Path, settings: Path, tmp: Path) -> list[str]:
    """The command whose work needs ``grant``: reading L7 logs for the source's privilege,
    scoring the lake and publishing for the alert and event privileges."""
    if grant.index == L7_LOGS:
        return ["extract", "--es", "--lake", str(tmp / "lake"), *WINDOW, "--config", str(settings)]
    return ["score", "--es", "--lake", str(lake), *WINDOW, "--config", str(settings)]


@pytest.mark.parametrize("grant", grants(), ids=lambda g: g.user)
def test_each_missing_privilege_fails_in_one_line_naming_it(
    secure_cluster, job_lake, settings_file, grant, monkeypatch, tmp_path, capsys
):
    reset_alert_indices(secure_cluster)
    as_user(secure_cluster, grant.user, monkeypatch)
    code = main(step_needing(grant, job_lake, settings_file, tmp_path))
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1, captured.err
    line = lines[0]
    named = re.search(r"lacks the (?:index|cluster) privilege (\w+)(?: \(or ([\w, ]+)\))?", line)
    assert "no privilege" in line and named, line
    assert grant.privilege in [named[1], *(named[2] or "").split(", ")], line
    if grant.index is None:
        assert "cluster privilege" in line, line
    else:
        index = {L7_LOGS: "tigera_secure_ee_l7", ALERTS: "l7-anomaly-alerts",
                 EVENTS: "tigera_secure_ee_events"}[grant.index]  # fmt: skip
        assert index in line, line
    assert secure_cluster.users[grant.user] not in captured.err + captured.out
