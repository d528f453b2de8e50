"""A stub of the two Kibana APIs ``kibana-setup`` calls, for the unit and integration tests.

Kibana cannot run where the tests run (no package in the registries they reach, no container
runtime). The stub answers as Kibana 7.17 and 8.x do:

- ``GET /api/status``: ``version.number`` (and the rest of the answer in the shape of the
  version's major);
- ``POST /api/saved_objects/_import``: the multipart ``file`` is read line by line; an object
  that declares a version newer than the stub's Kibana knows (``coreMigrationVersion`` newer
  than the Kibana, or a type version newer than :data:`KNOWS`) fails the whole import the way
  Kibana's document migrator refuses it; otherwise each object is stored and answered with
  ``successResults`` (``overwrite`` when the id was there, a ``destinationId`` other than the
  id when ``new_ids`` is set, as when Kibana gives a new id to an object whose id is taken
  in another space).

Paths may start with ``/s/<space>``: Kibana serves both APIs under a space prefix too.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import ssl
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: The newest version of each type a Kibana knows. 7.17.29 is from Kibana's 7.17 sources
#: (the dashboard's own migrations end at 7.17.3); for 8.x these are lower bounds: what
#: 8.13 and 8.19 exports declare (8.13's dashboard at model version 1, 8.14 brought 2).
KNOWS = {
    (7, 17): {
        "index-pattern": "7.11.0",
        "search": "7.9.3",
        "lens": "7.16.0",
        "dashboard": "7.17.3",
    },
    (8, 13): {"index-pattern": "8.0.0", "search": "8.0.0", "lens": "8.9.0", "dashboard": "10.1.0"},
    (8, 19): {"index-pattern": "8.0.0", "search": "8.0.0", "lens": "8.9.0", "dashboard": "10.2.0"},
}
SPACE_PREFIX = re.compile(r"^/s/[^/]+")
Reply = tuple[int, bytes, str]


def semver(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("-")[0].split(".")[:3])


def status_answer(version: str) -> dict[str, Any]:
    """``GET /api/status`` as the version's major answers it (7.x: ``state``, 8.x: ``level``)."""
    build = {"number": version, "build_hash": "0" * 40, "build_number": 1, "build_snapshot": False}
    if semver(version)[0] < 8:
        overall = {"state": "green", "title": "Green", "nickname": "Looking good"}
        return {"name": "kibana", "uuid": str(uuid.uuid4()), "version": build,
                "status": {"overall": overall, "statuses": []}, "metrics": {}}  # fmt: skip
    build |= {"build_flavor": "traditional", "build_date": "2025-01-01T00:00:00.000Z"}
    overall = {"level": "available", "summary": "All services and plugins are available"}
    return {"name": "kibana", "uuid": str(uuid.uuid4()), "version": build,
            "status": {"overall": overall, "core": {}, "plugins": {}}, "metrics": {}}  # fmt: skip


def uploaded_file(headers: Any, body: bytes) -> tuple[dict[str, str], bytes]:
    """The multipart form's only part: (its Content-Disposition params, its bytes)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body
    )
    assert message.is_multipart()
    parts = list(message.iter_parts())
    assert len(parts) == 1
    part = parts[0]
    return dict(part["Content-Disposition"].params), part.get_payload(decode=True)


def _json_reply(status: int, data: Any) -> Reply:
    return status, json.dumps(data).encode(), "application/json"


class StubKibana:
    """Plays Kibana ``version`` on 127.0.0.1 (ephemeral port) and records every request."""

    def __init__(self, version: str = "8.19.2", tls: tuple[str, str] | None = None) -> None:
        """``tls``: (certificate, key) PEM files to serve HTTPS as ``https://localhost``."""
        self.version = version
        self.requests: list[dict[str, Any]] = []
        self.status_reply: Reply | None = None  # fixed answers instead of playing Kibana
        self.import_reply: Reply | None = None
        self.new_ids = False
        self.before_import: Callable[[], None] | None = None
        self.stored: dict[tuple[str, str], str] = {}  # (type, id) -> id in Kibana
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://localhost:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> StubKibana:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        return [f"{r['method']} {r['path']}" for r in self.requests]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(b"")

            def do_POST(self) -> None:
                self._answer(self.rfile.read(int(self.headers.get("Content-Length", 0))))

            def _answer(self, body: bytes) -> None:
                headers = dict(self.headers.items())
                stub.requests.append(
                    {"method": self.command, "path": self.path, "headers": headers, "body": body}
                )
                status, data, content_type = stub.route(self.command, self.path, self.headers, body)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def route(self, method: str, path: str, headers: Any, body: bytes) -> Reply:
        path = SPACE_PREFIX.sub("", path)
        if method == "GET" and path == "/api/status":
            return self.status_reply or _json_reply(200, status_answer(self.version))
        if method == "POST" and path.startswith("/api/saved_objects/_import"):
            if self.import_reply:
                return self.import_reply
            if headers.get("kbn-xsrf") is None:
                return _json_reply(400, {"statusCode": 400, "error": "Bad Request",
                                         "message": "missing kbn-xsrf"})  # fmt: skip
            if self.before_import:
                self.before_import()
            return self.import_objects(uploaded_file(headers, body)[1])
        return _json_reply(404, {"statusCode": 404, "error": "Not Found", "message": "Not Found"})

    def import_objects(self, ndjson: bytes) -> Reply:
        objects = [json.loads(line) for line in ndjson.decode().splitlines()]
        for obj in objects:
            refused = self.refusal(obj)
            if refused:
                return _json_reply(422, {"statusCode": 422, "error": "Unprocessable Entity",
                                         "message": refused})  # fmt: skip
        results = [self.store(obj) for obj in objects]
        return _json_reply(200, {"success": True, "successCount": len(results),
                                 "successResults": results})  # fmt: skip

    def refusal(self, obj: dict[str, Any]) -> str | None:
        """Kibana's document migrator's reason to refuse ``obj``, if any."""
        kibana = semver(self.version)
        core = obj.get("coreMigrationVersion")
        if core and semver(core) > kibana:
            return (
                f'Document "{obj["id"]}" has a "coreMigrationVersion" which belongs to a more '
                f"recent version of Kibana [{core}]. The current version is [{self.version}]."
            )
        known = KNOWS[max(k for k in KNOWS if k <= kibana[:2])][obj["type"]]
        declared = obj.get("typeMigrationVersion") or obj.get("migrationVersion", {}).get(
            obj["type"]
        )
        if declared and semver(declared) > semver(known):
            return (
                f'Document "{obj["id"]}" has property "{obj["type"]}" which belongs to a more '
                f"recent version of Kibana [{declared}]. The last known version is [{known}]"
            )
        return None

    def store(self, obj: dict[str, Any]) -> dict[str, Any]:
        key = (obj["type"], obj["id"])
        result: dict[str, Any] = {
            "type": obj["type"],
            "id": obj["id"],
            "meta": {"title": obj["attributes"]["title"], "icon": "app"},
        }
        if key in self.stored:
            result["overwrite"] = True
        elif self.new_ids:
            self.stored[key] = str(uuid.uuid4())
        self.stored.setdefault(key, obj["id"])
        if self.stored[key] != obj["id"]:
            result["destinationId"] = self.stored[key]
        return result
