"""The Elasticsearch versions the integration tests run against, and the script to start them."""

from __future__ import annotations

import os
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "es_server.py"
#: fixture id -> the version given to ``es_server.py start`` (8.19.x: the newest 8.19).
VERSIONS = {
    "es8": os.environ.get("L7_ES8_VERSION", "8.19.x"),
    "es7": os.environ.get("L7_ES7_VERSION", "7.17.29"),
}
