"""Kibana saved objects for the alerts (data views, saved searches, Lens charts, a dashboard)
and the import that installs them (``l7analytics kibana-setup``).

The views are defined once (:mod:`~l7analytics.adapters.kibana.views`) and shipped in two
export forms (:mod:`~l7analytics.adapters.kibana.render`), because Kibana refuses, and fails
the whole import of, any object that declares a version newer than it knows:

- ``saved_objects-7.17.ndjson``: Kibana 7.17 (what Calico Enterprise 3.17 to 3.20 ship) up to
  8.13, which migrate 7.17 objects forward on import;
- ``saved_objects-8.14.ndjson``: Kibana 8.14 and later (the dashboard's model version 2 first
  exists in 8.14), and 9.x, which imports the previous major's objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files

from l7analytics.core.errors import ConfigError

#: The dashboard (stable ids: a re-import overwrites, never duplicates).
DASHBOARD_ID = "l7analytics-alerts-dashboard"
SUPPORTED = "Kibana 7.17, 8.x and 9.x"
NEWEST_MAJOR = 9  # imports 8.x objects; a 10.x would not be sure to


@dataclass(frozen=True)
class ObjectSet:
    """One shipped export: its form (``7.17``, ``8.14``), file and the Kibana versions it serves."""

    name: str
    file: str
    oldest: tuple[int, int, int]
    serves: str

    def ndjson(self) -> bytes:
        """The file, byte for byte as it is imported."""
        return files(__name__).joinpath(self.file).read_bytes()


KIBANA_7_17 = ObjectSet("7.17", "saved_objects-7.17.ndjson", (7, 17, 0), "Kibana 7.17 to 8.13")
KIBANA_8_14 = ObjectSet("8.14", "saved_objects-8.14.ndjson", (8, 14, 0), "Kibana 8.14 and later")
#: Oldest first.
SETS = (KIBANA_7_17, KIBANA_8_14)
_VERSION = re.compile(r"^\s*(\d+)\.(\d+)\.(\d+)")


def parse_version(version: str) -> tuple[int, int, int]:
    match = _VERSION.match(version or "")
    if match is None:
        raise ConfigError(f"Kibana reported version {version!r}, not major.minor.patch")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def set_for(version: str) -> ObjectSet:
    """The export ``version`` of Kibana imports: the newest set not newer than that Kibana."""
    parsed = parse_version(version)
    if parsed < KIBANA_7_17.oldest or parsed[0] > NEWEST_MAJOR:
        raise ConfigError(
            f"Kibana {version} is not supported: kibana-setup supports {SUPPORTED} "
            "(the saved objects can also be imported by hand from l7analytics/adapters/kibana/)"
        )
    return next(s for s in reversed(SETS) if parsed >= s.oldest)


def saved_objects_ndjson(name: str = KIBANA_8_14.name) -> bytes:
    """The shipped NDJSON of the set ``name`` (``7.17`` or ``8.14``)."""
    for objects in SETS:
        if objects.name == name:
            return objects.ndjson()
    raise KeyError(name)
