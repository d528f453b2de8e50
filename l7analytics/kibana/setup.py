"""Import the shipped saved objects into Kibana through its saved objects API.

``POST <kibana>/api/saved_objects/_import?overwrite=true`` with the NDJSON as the multipart
field ``file`` and the ``kbn-xsrf`` header Kibana requires. A URL ending in ``/s/<space>``
imports into that space. Authentication is the Elasticsearch connection's (:class:`EsSettings`
from ``L7_ES_API_KEY`` or ``L7_ES_USERNAME``/``L7_ES_PASSWORD``; ``L7_ES_CA_CERTS`` and
``L7_ES_VERIFY_CERTS`` apply to Kibana too): Kibana accepts the same API keys and users.

Every failure is one line naming the Kibana URL and the problem, and never a secret:
authentication, privileges and TLS are :class:`ConfigError` (fix the settings), the rest
(unreachable, not Kibana, objects refused) :class:`KibanaError`.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError, MaxRetryError, NewConnectionError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from l7analytics.adapters.elasticsearch.connection import EsSettings
from l7analytics.errors import ConfigError, KibanaError
from l7analytics.kibana import DASHBOARD_ID, SAVED_OBJECTS_FILE, saved_objects_ndjson

KIBANA_URL_ENV = "L7_KIBANA_URL"
IMPORT_PATH = "/api/saved_objects/_import"
PRIVILEGE_HINT = "the role needs the Kibana feature privilege Saved Objects Management: All"


def kibana_url_from(value: str | None, environ: Mapping[str, str] | None = None) -> str:
    """``--kibana-url`` or ``L7_KIBANA_URL``, validated, without a trailing slash."""
    environ = os.environ if environ is None else environ
    url = (value or environ.get(KIBANA_URL_ENV) or "").strip()
    if not url:
        raise ConfigError(f"no Kibana URL: give --kibana-url or set {KIBANA_URL_ENV}")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"Kibana URL {url!r} must start with http:// or https://")
    if "@" in url.split("://", 1)[1].split("/", 1)[0]:
        raise ConfigError(
            "the Kibana URL must not contain credentials: set L7_ES_API_KEY or "
            "L7_ES_USERNAME/L7_ES_PASSWORD"
        )
    return url.rstrip("/")


def import_saved_objects(
    kibana_url: str,
    settings: EsSettings,
    *,
    overwrite: bool = True,
    ndjson: bytes | None = None,
) -> dict[str, Any]:
    """Import the saved objects (``ndjson``, default the shipped file) into Kibana.

    Returns ``{"kibana": url, "success_count": n, "objects": [{"type", "id", "title",
    "action"}], "dashboard_url": ...}`` where ``action`` is ``created`` or ``overwritten``.
    """
    url = kibana_url_from(kibana_url, {})
    body, content_type = urllib3.encode_multipart_formdata(
        {"file": (SAVED_OBJECTS_FILE, ndjson or saved_objects_ndjson(), "application/ndjson")}
    )
    headers = {"kbn-xsrf": "true", "Content-Type": content_type, **_auth_headers(settings)}
    secrets = _secrets(settings)
    pool = urllib3.PoolManager(
        cert_reqs="CERT_REQUIRED" if settings.verify_certs else "CERT_NONE",
        ca_certs=settings.ca_certs,
        timeout=urllib3.Timeout(total=settings.request_timeout),
        # Connection failures are retried; an import that reached Kibana is not sent twice.
        retries=urllib3.Retry(
            total=settings.max_retries, read=0, redirect=0, status=0, backoff_factor=0.2
        ),
    )
    endpoint = f"{url}{IMPORT_PATH}?overwrite={'true' if overwrite else 'false'}"
    try:
        response = pool.request("POST", endpoint, body=body, headers=headers)
    except MaxRetryError as exc:
        raise _connection_error(url, exc.reason or exc, secrets) from None
    except HTTPError as exc:
        raise _connection_error(url, exc, secrets) from None
    finally:
        pool.clear()
    return _summary(url, response.status, response.data, secrets)


def _auth_headers(settings: EsSettings) -> dict[str, str]:
    if settings.api_key is not None:
        return {"Authorization": f"ApiKey {settings.api_key.get_secret_value()}"}
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else ""
        token = base64.b64encode(f"{settings.username}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
    return {}


def _secrets(settings: EsSettings) -> list[str]:
    values = [s.get_secret_value() for s in (settings.api_key, settings.password) if s is not None]
    return [v for v in values if v]


def _clean(text: str, secrets: list[str]) -> str:
    """One line, at most 300 characters, with any secret masked."""
    for secret in secrets:
        text = text.replace(secret, "**********")
    line = " ".join(text.split())
    return line[:300] if line else "no detail"


def _connection_error(url: str, reason: BaseException, secrets: list[str]) -> Exception:
    detail = _clean(str(reason), secrets)
    if isinstance(reason, SSLError):
        return ConfigError(
            f"{url}: TLS failed talking to Kibana ({detail}; set L7_ES_CA_CERTS to the CA "
            "bundle that signed Kibana's certificate)"
        )
    if isinstance(reason, Urllib3Timeout) and not isinstance(reason, NewConnectionError):
        return KibanaError(
            f"{url}: Kibana did not answer in time ({detail}); the import may still finish: "
            "run kibana-setup again, it overwrites"
        )
    return KibanaError(f"{url}: Kibana unreachable ({detail})")


def _summary(url: str, status: int, data: bytes, secrets: list[str]) -> dict[str, Any]:
    try:
        payload = json.loads(data)
    except ValueError:
        payload = None
    message = _clean(str(payload.get("message", "")), secrets) if isinstance(payload, dict) else ""
    if status == 401:
        raise ConfigError(
            f"{url}: Kibana authentication failed (check L7_ES_API_KEY or "
            "L7_ES_USERNAME/L7_ES_PASSWORD)"
        )
    if status == 403:
        raise ConfigError(
            f"{url}: no privilege to import saved objects ({PRIVILEGE_HINT}): {message}"
        )
    if status == 404:
        raise KibanaError(
            f"{url}: no saved objects API here (404); give Kibana's base URL, with its "
            "base path and /s/<space> if any"
        )
    if not isinstance(payload, dict):
        raise KibanaError(
            f"{url}: the answer is not Kibana's (HTTP {status}, not JSON); is this Kibana's URL?"
        )
    if status >= 300:
        raise KibanaError(f"{url}: Kibana refused the import (HTTP {status}): {message}")
    if "success" not in payload:
        raise KibanaError(f"{url}: unexpected answer to the import (no 'success' field)")
    if not payload.get("success"):
        errors = payload.get("errors") or []
        described = "; ".join(_describe_error(e, secrets) for e in errors[:3])
        more = f" and {len(errors) - 3} more" if len(errors) > 3 else ""
        raise KibanaError(
            f"{url}: Kibana imported {payload.get('successCount', 0)} objects and refused "
            f"{len(errors)}: {described or 'no detail'}{more}"
        )
    objects = [
        {
            "type": str(result.get("type", "")),
            "id": str(result.get("destinationId") or result.get("id", "")),
            "title": str((result.get("meta") or {}).get("title", "")),
            "action": "overwritten" if result.get("overwrite") else "created",
        }
        for result in payload.get("successResults") or []
    ]
    return {
        "kibana": url,
        "success_count": int(payload.get("successCount", len(objects))),
        "objects": objects,
        "dashboard_url": f"{url}/app/dashboards#/view/{DASHBOARD_ID}",
    }


def _describe_error(error: Mapping[str, Any], secrets: list[str]) -> str:
    detail = error.get("error") or {}
    kind = detail.get("type", "error")
    if kind == "missing_references":
        missing = ", ".join(f"{r.get('type')} {r.get('id')}" for r in detail.get("references", []))
        kind = f"missing references ({missing})"
    elif detail.get("message"):
        kind = f"{kind}: {detail['message']}"
    return _clean(f"{error.get('type')} {error.get('id')}: {kind}", secrets)
