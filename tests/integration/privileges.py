"""The job's least privileges as data, and the file-realm users that prove them.

``JOB_ROLE`` is the README's privilege table (the test checks the two agree). For the proof,
every privilege of it gets a user whose role lacks exactly that one: the job must fail with it,
in one line naming the privilege and the index. Users live in Elasticsearch's file realm
(``roles.yml``, ``users``, ``users_roles``), since the integ-test distribution cannot create
native users or API keys (its security index needs the analysis-common module it lacks).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOB_USER = "l7job"
L7_LOGS = "tigera_secure_ee_l7*"
ALERTS = "l7-anomaly-alerts*"
EVENTS = "tigera_secure_ee_events.*"
#: The role the job needs: cluster privileges and, per index pattern, index privileges.
JOB_ROLE: dict[str, Any] = {
    "cluster": ["manage_index_templates"],
    "indices": [
        {"names": [L7_LOGS], "privileges": ["read"]},
        {"names": [ALERTS], "privileges": ["create_index", "view_index_metadata", "write", "read"]},
        {"names": [EVENTS], "privileges": ["create_doc"]},
    ],
}


@dataclass(frozen=True)
class Grant:
    """One privilege of the job's role: ``index`` is None for a cluster privilege."""

    privilege: str
    index: str | None

    @property
    def user(self) -> str:
        where = "cluster" if self.index is None else self.index.rstrip("*.").replace("_", "-")
        return f"{JOB_USER}-no-{self.privilege.replace('_', '-')}-{where}"[:64]


def grants() -> list[Grant]:
    cluster = [Grant(p, None) for p in JOB_ROLE["cluster"]]
    indices = [Grant(p, g["names"][0]) for g in JOB_ROLE["indices"] for p in g["privileges"]]
    return cluster + indices


def role_without(grant: Grant) -> dict[str, Any]:
    role = copy.deepcopy(JOB_ROLE)
    if grant.index is None:
        role["cluster"].remove(grant.privilege)
    for group in role["indices"]:
        if group["names"] == [grant.index]:
            group["privileges"].remove(grant.privilege)
    role["indices"] = [g for g in role["indices"] if g["privileges"]]
    return role


def pbkdf2_hash(password: str) -> str:
    """A hash Elasticsearch's file realm reads (``{PBKDF2}`` with HMAC-SHA512, as its Hasher)."""
    salt = secrets.token_bytes(32)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 10_000, dklen=32)
    return f"{{PBKDF2}}10000${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def write_file_realm(folder: Path) -> dict[str, str]:
    """``roles.yml``, ``users`` and ``users_roles`` in ``folder``; returns user -> password."""
    roles = {JOB_USER: JOB_ROLE} | {g.user: role_without(g) for g in grants()}
    passwords = {user: secrets.token_urlsafe(18) for user in roles}
    folder.mkdir(parents=True, exist_ok=True)
    # JSON is YAML: roles.yml needs no YAML writer.
    (folder / "roles.yml").write_text(
        "".join(f"{json.dumps(name)}: {json.dumps(role)}\n" for name, role in roles.items())
    )
    (folder / "users").write_text(
        "".join(f"{user}:{pbkdf2_hash(pw)}\n" for user, pw in passwords.items())
    )
    (folder / "users_roles").write_text("".join(f"{user}:{user}\n" for user in roles))
    return passwords
