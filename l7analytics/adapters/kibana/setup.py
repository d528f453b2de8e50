"""``kibana-setup``: prepare the alerts index and import the saved objects Kibana can take.

In this order:

1. ``GET <kibana>/api/status`` for Kibana's version (``version.number``; 7.17 and 8.x answer
   the same way), which picks the export form (:func:`l7analytics.adapters.kibana.set_for`): Kibana
   refuses, and fails the whole import of, an object newer than it knows. Asking first also
   checks the URL and the credentials before anything is written anywhere.
2. Unless skipped, the alerts index template and the index, with the Elasticsearch sink's own
   code (:meth:`EsAlertSink.ensure_index`), so the alerts data view has its fields before the
   job writes its first alert.
3. ``POST <kibana>/api/saved_objects/_import?overwrite=true`` with the NDJSON as the multipart
   field ``file`` and the ``kbn-xsrf`` header Kibana requires. A URL ending in ``/s/<space>``
   imports into that space (the version is asked at the base URL). The dashboard link printed
   at the end uses the id Kibana answers with (``destinationId``): Kibana gives an object a new
   id when its id is taken in another space.

Authentication is the Elasticsearch connection's (:class:`EsConnection` from ``L7_ES_API_KEY`` or
``L7_ES_USERNAME``/``L7_ES_PASSWORD``; ``L7_ES_CA_CERTS`` and ``L7_ES_VERIFY_CERTS`` apply to
Kibana too): Kibana accepts the same API keys and users.

Every call to Kibana goes through :func:`call_kibana`, which maps failures to one line naming
the Kibana URL and the problem, never a secret: authentication, privileges, TLS and an
unsupported version are :class:`ConfigError` (fix the settings), the rest (unreachable, not
Kibana, objects refused) :class:`KibanaError`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import urllib3
from urllib3.exceptions import (
    HTTPError,
    InsecureRequestWarning,
    MaxRetryError,
    NewConnectionError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from l7analytics.adapters.elasticsearch.connection import EsConnection, warn_unverified
from l7analytics.adapters.kibana import DASHBOARD_ID, KIBANA_8_14, ObjectSet, set_for
from l7analytics.adapters.tls import speaks_tls, tls_reason
from l7analytics.core.errors import ConfigError, KibanaError, SourceTimeout

if TYPE_CHECKING:
    from l7analytics.core.settings import Settings

KIBANA_URL_ENV = "L7_KIBANA_URL"
IMPORT_PATH = "/api/saved_objects/_import"
STATUS_PATH = "/api/status"
PRIVILEGE_HINT = "the role needs the Kibana feature privilege Saved Objects Management: All"
SKIP_ES_HINT = (
    "if Elasticsearch cannot be reached from here, run kibana-setup with --skip-es "
    "(the job creates the index on its first write)"
)
_SPACE_SUFFIX = re.compile(r"/s/[^/]+$")


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


def base_url(url: str) -> str:
    """Kibana's URL without a trailing ``/s/<space>`` (its base path, if any, stays)."""
    return _SPACE_SUFFIX.sub("", url)


# ---------------------------------------------------------------- the one HTTP client


@dataclass(frozen=True)
class Answer:
    """Kibana's answer: HTTP status and the body parsed as JSON (None when it is not JSON)."""

    status: int
    payload: Any


def call_kibana(
    method: str,
    url: str,
    path: str,
    connection: EsConnection,
    *,
    what: str,
    privilege: str = "",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """``method`` ``url + path`` with the connection's auth and TLS connection.

    Failures that do not depend on the call are raised here, as one line naming ``url``:
    TLS, unreachable, timeout, 401, 403 (with ``privilege``, what the role lacks) and 404.
    Connection failures are retried; a POST that reached Kibana is never sent twice.
    """
    secrets = _secrets(connection)
    read_retries = connection.max_retries if method == "GET" else 0
    pool = urllib3.PoolManager(
        cert_reqs="CERT_REQUIRED" if connection.verify_certs else "CERT_NONE",
        ca_certs=connection.ca_certs,
        timeout=urllib3.Timeout(total=connection.request_timeout),
        retries=urllib3.Retry(
            total=connection.max_retries,
            read=read_retries,
            redirect=0,
            status=0,
            backoff_factor=0.2,
        ),
    )
    all_headers = {"kbn-xsrf": "true", **(headers or {}), **_auth_headers(connection)}
    try:
        with warnings.catch_warnings():  # one warning per run (kibana_version), not per request
            warnings.simplefilter("ignore", InsecureRequestWarning)
            response = pool.request(method, url + path, body=body, headers=all_headers)
    except MaxRetryError as exc:
        raise _connection_error(url, exc.reason or exc, secrets) from None
    except HTTPError as exc:
        raise _connection_error(url, exc, secrets) from None
    finally:
        pool.clear()
    answer = Answer(response.status, _parse(response.data))
    _raise_for_access(url, answer, what, privilege, secrets)
    return answer


def _parse(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _auth_headers(connection: EsConnection) -> dict[str, str]:
    if connection.api_key is not None:
        return {"Authorization": f"ApiKey {connection.api_key.get_secret_value()}"}
    if connection.username:
        password = connection.password.get_secret_value() if connection.password else ""
        token = base64.b64encode(f"{connection.username}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
    return {}


def _secrets(connection: EsConnection) -> list[str]:
    values = [
        s.get_secret_value() for s in (connection.api_key, connection.password) if s is not None
    ]
    return [v for v in values if v]


def _clean(text: str, secrets: list[str]) -> str:
    """One line, at most 300 characters, with any secret masked."""
    for secret in secrets:
        text = text.replace(secret, "**********")
    line = " ".join(text.split())
    return line[:300] if line else "no detail"


def _message(answer: Answer, secrets: list[str]) -> str:
    payload = answer.payload
    return _clean(str(payload.get("message", "")), secrets) if isinstance(payload, dict) else ""


def _connection_error(url: str, reason: BaseException, secrets: list[str]) -> Exception:
    detail = _clean(str(reason), secrets)
    if isinstance(reason, SSLError):
        return ConfigError(
            f"{url}: TLS failed talking to Kibana ({_clean(tls_reason(reason), secrets)})"
        )
    if url.startswith("http://") and speaks_tls(url):
        return ConfigError(
            f"{url}: TLS expected: Kibana speaks HTTPS, but the URL says http:// (use "
            "https:// and set L7_ES_CA_CERTS)"
        )
    if isinstance(reason, Urllib3Timeout) and not isinstance(reason, NewConnectionError):
        return KibanaError(
            f"{url}: Kibana did not answer in time ({detail}); the import may still finish: "
            "run kibana-setup again, it overwrites"
        )
    return KibanaError(f"{url}: Kibana unreachable ({detail})")


def _raise_for_access(
    url: str, answer: Answer, what: str, privilege: str, secrets: list[str]
) -> None:
    if answer.status == 401:
        raise ConfigError(
            f"{url}: Kibana authentication failed (check L7_ES_API_KEY or "
            "L7_ES_USERNAME/L7_ES_PASSWORD)"
        )
    if answer.status == 403:
        hint = f" ({privilege})" if privilege else ""
        raise ConfigError(f"{url}: no privilege to {what}{hint}: {_message(answer, secrets)}")
    if answer.status == 404:
        raise KibanaError(
            f"{url}: no Kibana API to {what} here (404); give Kibana's base URL, with its "
            "base path and /s/<space> if any"
        )


# ---------------------------------------------------------------- the three steps


def kibana_version(url: str, connection: EsConnection) -> str:
    """Kibana's version (``version.number`` of ``GET /api/status``); the first call of a
    setup, so the one place that warns about unverified TLS."""
    if url.startswith("https://") and not connection.verify_certs:
        warn_unverified(url)
    answer = call_kibana("GET", base_url(url), STATUS_PATH, connection, what="read Kibana's status")
    payload = answer.payload
    if not isinstance(payload, dict):
        not_ready = " (Kibana is not ready yet?)" if answer.status == 503 else ""
        raise KibanaError(
            f"{url}: the status answer is not Kibana's (HTTP {answer.status}, not JSON)"
            f"{not_ready}; is this Kibana's URL?"
        )
    number = (payload.get("version") or {}).get("number")
    if not isinstance(number, str):
        raise KibanaError(
            f"{url}: Kibana's status answer (HTTP {answer.status}) has no version.number; "
            "authenticate (L7_ES_API_KEY or L7_ES_USERNAME/L7_ES_PASSWORD) to see it"
        )
    return number


def ensure_alerts_index(settings: Settings) -> str:
    """Install the alerts index template and create the index (the sink's own, idempotent
    code), so the alerts data view has the template's fields before the first alert.
    Returns ``host/index``."""
    from l7analytics.adapters.elasticsearch.connection import connect
    from l7analytics.adapters.elasticsearch.sinks import EsAlertSink

    connection = EsConnection.from_settings(settings)
    client, host = connect(connection), connection.display_host
    index = settings.elasticsearch.alerts.index
    try:
        EsAlertSink(client, index, host).ensure_index()
    except SourceTimeout as exc:  # unreachable or too slow
        raise SourceTimeout(f"{exc}; {SKIP_ES_HINT}") from None
    finally:
        client.close()
    return f"{host}/{index}"


def import_saved_objects(
    kibana_url: str,
    connection: EsConnection,
    objects: ObjectSet = KIBANA_8_14,
    *,
    overwrite: bool = True,
    ndjson: bytes | None = None,
) -> dict[str, Any]:
    """Import ``objects`` (or the bytes ``ndjson``, sent under its file name) into Kibana,
    without asking its version (:func:`setup_kibana` does).

    Returns ``{"kibana": url, "success_count": n, "objects": [{"type", "id", "title",
    "action"}], "dashboard_url": ...}`` where ``action`` is ``created`` or ``overwritten``
    and ``id`` is the one Kibana stored (``destinationId`` when it gave a new one).
    """
    url = kibana_url_from(kibana_url, {})
    body, content_type = urllib3.encode_multipart_formdata(
        {"file": (objects.file, ndjson or objects.ndjson(), "application/ndjson")}
    )
    answer = call_kibana(
        "POST",
        url,
        f"{IMPORT_PATH}?overwrite={'true' if overwrite else 'false'}",
        connection,
        what="import saved objects",
        privilege=PRIVILEGE_HINT,
        body=body,
        headers={"Content-Type": content_type},
    )
    return _summary(url, answer, _secrets(connection))


def setup_kibana(
    kibana_url: str,
    settings: Settings,
    connection: EsConnection,
    *,
    alerts_index: bool = True,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The three steps of the module docstring; ``say`` is told each step's outcome."""
    url = kibana_url_from(kibana_url, {})
    version = kibana_version(url, connection)
    objects = set_for(version)
    say(f"Kibana {version}: importing the {objects.name} saved objects ({objects.file})")
    if alerts_index:
        say(f"alerts index template and index ready: {ensure_alerts_index(settings)}")
    result = import_saved_objects(url, connection, objects)
    return {**result, "kibana_version": version, "set": objects.name}


def _summary(url: str, answer: Answer, secrets: list[str]) -> dict[str, Any]:
    payload = answer.payload
    if not isinstance(payload, dict):
        raise KibanaError(
            f"{url}: the answer is not Kibana's (HTTP {answer.status}, not JSON); "
            "is this Kibana's URL?"
        )
    if answer.status >= 300:
        raise KibanaError(
            f"{url}: Kibana refused the import (HTTP {answer.status}): {_message(answer, secrets)}"
        )
    if "success" not in payload:
        raise KibanaError(f"{url}: unexpected answer to the import (no 'success' field)")
    if not payload.get("success"):
        raise KibanaError(_refused(url, payload, secrets))
    results = payload.get("successResults") or []
    objects = [_imported(result) for result in results]
    return {
        "kibana": url,
        "success_count": int(payload.get("successCount", len(objects))),
        "objects": objects,
        "dashboard_url": f"{url}/app/dashboards#/view/{_dashboard_id(results)}",
    }


def _imported(result: Mapping[str, Any]) -> dict[str, str]:
    return {
        "type": str(result.get("type", "")),
        "id": str(result.get("destinationId") or result.get("id", "")),
        "title": str((result.get("meta") or {}).get("title", "")),
        "action": "overwritten" if result.get("overwrite") else "created",
    }


def _dashboard_id(results: list[Mapping[str, Any]]) -> str:
    """The dashboard's id in Kibana: ``destinationId`` when Kibana gave it a new one."""
    for result in results:
        if result.get("type") == "dashboard" and result.get("id") == DASHBOARD_ID:
            return str(result.get("destinationId") or DASHBOARD_ID)
    return DASHBOARD_ID


def _refused(url: str, payload: Mapping[str, Any], secrets: list[str]) -> str:
    errors = payload.get("errors") or []
    described = "; ".join(_describe_error(e, secrets) for e in errors[:3])
    more = f" and {len(errors) - 3} more" if len(errors) > 3 else ""
    return (
        f"{url}: Kibana imported {payload.get('successCount', 0)} objects and refused "
        f"{len(errors)}: {described or 'no detail'}{more}"
    )


def _describe_error(error: Mapping[str, Any], secrets: list[str]) -> str:
    detail = error.get("error") or {}
    kind = detail.get("type", "error")
    if kind == "missing_references":
        missing = ", ".join(f"{r.get('type')} {r.get('id')}" for r in detail.get("references", []))
        kind = f"missing references ({missing})"
    elif detail.get("message"):
        kind = f"{kind}: {detail['message']}"
    return _clean(f"{error.get('type')} {error.get('id')}: {kind}", secrets)
