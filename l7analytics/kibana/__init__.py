"""Kibana saved objects for the alerts (data views, saved searches, Lens charts, a dashboard)
and the import that installs them (``l7analytics kibana-setup``)."""

from __future__ import annotations

from importlib.resources import files

#: The saved objects, in Kibana 8.x export format (NDJSON, one object a line).
SAVED_OBJECTS_FILE = "saved_objects.ndjson"
#: The dashboard among them (stable ids: a re-import overwrites, never duplicates).
DASHBOARD_ID = "l7analytics-alerts-dashboard"


def saved_objects_ndjson() -> bytes:
    """The shipped NDJSON, byte for byte as it is imported."""
    return files(__name__).joinpath(SAVED_OBJECTS_FILE).read_bytes()
