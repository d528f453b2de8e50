"""One Elasticsearch connection configuration for the CLI, notebooks and Airflow.

Settings come from environment variables or the ``elasticsearch:`` section of the job's YAML
file (environment wins), never from command-line flags, so secrets stay out of shell history
and process lists::

    L7_ES_HOSTS           https://es.example:9200[,https://...]
    L7_ES_API_KEY         base64 "id:key" as Kibana shows it (preferred)
    L7_ES_USERNAME        with L7_ES_PASSWORD, when API keys are not an option
    L7_ES_PASSWORD
    L7_ES_CA_CERTS        path to the CA bundle (Calico: the tigera-secure-es-http-certs CA)
    L7_ES_VERIFY_CERTS    true (default) / false
    L7_ES_REQUEST_TIMEOUT seconds (default 60)
    L7_ES_MAX_RETRIES     retries after a failed attempt (default 3; see RetryPolicy)

Secrets are :class:`pydantic.SecretStr`: printing the settings, a traceback or a log line
shows ``**********``.

TLS failures are named as such, with the reason the handshake gave (unknown CA, hostname
mismatch, or a plain ``http://`` URL for a server that speaks HTTPS, found by a probe after the
connection failed). ``verify_certs: false`` logs one warning per client, not one per request.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ConfigDict, ValidationError

from l7analytics.adapters.tls import speaks_tls, tls_reason
from l7analytics.core.errors import (
    ConfigError,
    L7AnalyticsError,
    SinkError,
    SourceError,
    SourceTimeout,
)
from l7analytics.core.settings import EsConnectionConfig, Settings

ENV_PREFIX = "L7_ES_"
log = logging.getLogger(__name__)


class EsConnection(EsConnectionConfig):
    """Where Elasticsearch is and how to authenticate: the settings' connection section
    (:class:`~l7analytics.core.settings.EsConnectionConfig`, its fields and checks) with the
    ``L7_ES_*`` environment applied, frozen, and the ways to connect."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def load(
        cls, section: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> EsConnection:
        """Settings from a config section overridden by ``L7_ES_*`` environment variables."""
        environ = os.environ if environ is None else environ
        data = dict(section or {})
        for name in cls.model_fields:
            value = environ.get(ENV_PREFIX + name.upper())
            if value not in (None, ""):
                data[name] = value
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            raise ConfigError(
                f"elasticsearch settings: {where}: {error['msg'].removeprefix('Value error, ')} "
                f"(set {ENV_PREFIX}{str(error['loc'][0]).upper()} or elasticsearch.{where})"
            ) from None

    @classmethod
    def from_settings(
        cls, settings: Settings, environ: Mapping[str, str] | None = None
    ) -> EsConnection:
        """The one conversion from the job settings' ``elasticsearch.connection`` (checked when
        the settings loaded; the same fields), with ``L7_ES_*`` environment variables over it:
        the environment wins, and is read here, when connecting."""
        return cls.load(settings.elasticsearch.connection.model_dump(exclude_unset=True), environ)

    @classmethod
    def from_airflow(
        cls,
        *,
        host: str | None,
        port: int | None,
        schema: str | None,
        login: str | None,
        password: str | None,
        extra: Mapping[str, Any] | None,
    ) -> EsConnection:
        """Settings from an Airflow Connection (JSON form, e.g. ``AIRFLOW_CONN_L7_ELASTICSEARCH``):
        ``host`` (with or without scheme), ``port``, ``schema`` (http/https), ``login`` and
        ``password``; ``extra`` may hold ``api_key``, ``ca_certs``, ``verify_certs``,
        ``request_timeout`` or a full ``hosts`` list."""
        extra = dict(extra or {})
        data: dict[str, Any] = {k: extra.pop(k) for k in list(extra) if k in cls.model_fields}
        if "hosts" not in data and host:
            scheme = "" if "://" in host else f"{schema or 'http'}://"
            data["hosts"] = [f"{scheme}{host}" + (f":{port}" if port else "")]
        if login:
            data["username"] = login
        if password:
            data["password"] = password
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise ConfigError(
                f"Airflow connection for Elasticsearch: "
                f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
            ) from None

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(attempts=self.max_retries + 1)

    @property
    def display_host(self) -> str:
        """The first host without any userinfo, for messages."""
        host = self.hosts[0]
        scheme, _, rest = host.partition("://")
        return f"{scheme}://{rest.rsplit('@', 1)[-1]}"


def connect(connection: EsConnection, *, raw_json: bool = False):  # -> Elasticsearch
    """A client for ``connection`` (8.x client; it works with 7.17 and 8.x servers).

    ``raw_json``: its JSON answers stay bytes, for
    :func:`~l7analytics.adapters.elasticsearch.pages.parse_page` (errors are decoded). Such a
    client reads pages beside a main client of the same connection, so it does not repeat
    the main client's warning about unverified certificates."""
    from elasticsearch import Elasticsearch
    from elasticsearch.serializer import OrjsonSerializer

    from l7analytics.adapters.elasticsearch.pages import RAW_JSON

    kwargs: dict[str, Any] = {
        "hosts": connection.hosts,
        "request_timeout": connection.request_timeout,
        "max_retries": 0,  # RetryPolicy is the one retry layer (with backoff; the client has none)
    }
    if raw_json:
        kwargs["serializers"] = RAW_JSON
    else:
        kwargs["serializer"] = OrjsonSerializer()
    if any(host.startswith("https://") for host in connection.hosts):
        # TLS options on an http:// host are refused by the client: they only go with https.
        kwargs["verify_certs"] = connection.verify_certs
        kwargs["ssl_show_warn"] = False  # one warning below, not one per node and request
        if connection.ca_certs:
            kwargs["ca_certs"] = connection.ca_certs
        if not connection.verify_certs and not raw_json:  # a page client's main client warned
            warn_unverified(connection.display_host)
    if connection.api_key is not None:
        kwargs["api_key"] = connection.api_key.get_secret_value()
    elif connection.username:
        password = connection.password.get_secret_value() if connection.password else ""
        kwargs["basic_auth"] = (connection.username, password)
    return Elasticsearch(**kwargs)


#: Answers worth another try: the server is overloaded or a node is restarting.
RETRYABLE_STATUS = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class RetryPolicy:
    """The one retry layer between the job and Elasticsearch.

    The client never retries (``max_retries=0``): it would retry at once, without backoff, and
    its tries would multiply with ours. Every request the source and the sinks send, and every
    bulk item refused with 429 or 5xx, gets ``attempts`` tries in all, with a backoff of
    ``first_delay`` doubling up to ``max_delay``. The default budget, 4 tries, waits
    0.5 + 1 + 2 = 3.5 s before giving up; ``L7_ES_MAX_RETRIES`` sets the retries.
    """

    attempts: int = 4
    first_delay: float = 0.5
    max_delay: float = 30.0

    def delays(self) -> Iterator[float]:
        """The waits between the tries (one fewer than the tries)."""
        delay = self.first_delay
        for _ in range(self.attempts - 1):
            yield delay
            delay = min(delay * 2, self.max_delay)

    def call(self, request: Callable[[], Any], sleep: Callable[[float], None]) -> Any:
        """``request()``, tried again after 429, 5xx, timeouts and dropped connections."""
        from elastic_transport import ConnectionError as TransportConnectionError
        from elasticsearch import ApiError

        for delay in [*self.delays(), None]:
            try:
                return request()
            except ApiError as exc:
                if exc.meta.status not in RETRYABLE_STATUS or delay is None:
                    raise
            except TransportConnectionError as exc:
                if delay is None or _is_tls(exc):
                    raise
            sleep(delay)
        raise AssertionError("unreachable")


def _is_tls(exc: BaseException) -> bool:
    from elastic_transport import TlsError

    return isinstance(exc, TlsError)


def warn_unverified(host: str) -> None:
    """The one warning for ``verify_certs: false`` (anyone on the path can read the traffic)."""
    log.warning(
        "%s: TLS certificates are not verified (verify_certs: false): the connection is "
        "encrypted but not authenticated; set L7_ES_CA_CERTS instead",
        host,
    )


@contextlib.contextmanager
def translate_errors(host: str, what: str, *, sink: bool = False) -> Iterator[None]:
    """Map client exceptions to our hierarchy with one line naming host and problem."""
    from elastic_transport import ConnectionError as TransportConnectionError
    from elastic_transport import ConnectionTimeout, TlsError
    from elasticsearch import (
        ApiError,
        AuthenticationException,
        AuthorizationException,
        NotFoundError,
    )

    failure = SinkError if sink else SourceError
    try:
        yield
    except L7AnalyticsError:
        raise
    except AuthenticationException:
        raise ConfigError(
            f"{host}: authentication failed for {what} (check L7_ES_API_KEY or "
            "L7_ES_USERNAME/L7_ES_PASSWORD)"
        ) from None
    except AuthorizationException as exc:
        raise ConfigError(privilege_message(host, what, _reason_text(exc))) from None
    except NotFoundError as exc:
        if _error_type(exc) == "index_not_found_exception":
            raise failure(f"{host}: index missing for {what}: {_reason(exc)}") from None
        raise failure(f"{host}: not found during {what}: {_reason(exc)}") from None
    except TlsError as exc:
        raise ConfigError(f"{host}: TLS failed for {what} ({tls_reason(exc)})") from None
    except ConnectionTimeout:
        raise SourceTimeout(f"{host}: timed out during {what}") from None
    except TransportConnectionError as exc:
        if host.startswith("http://") and speaks_tls(host):
            raise ConfigError(
                f"{host}: TLS expected: the server speaks HTTPS, but the URL says http:// "
                f"(during {what}; use https:// and set L7_ES_CA_CERTS)"
            ) from None
        raise SourceTimeout(f"{host}: unreachable during {what} ({_first_line(exc)})") from None
    except ApiError as exc:
        if exc.meta.status in (429, 502, 503, 504):
            raise SourceTimeout(f"{host}: overloaded ({exc.meta.status}) during {what}") from None
        raise failure(f"{host}: {what} failed ({exc.meta.status}): {_reason(exc)}") from None


#: Elasticsearch's 403 reason, 7.17 and 8.x: "action [indices:admin/create] is unauthorized for
#: user [u] with (effective) roles [r] on indices [i], this action is granted by the index
#: privileges [create_index,manage,all]".
_UNAUTHORIZED = re.compile(
    r"action \[(?P<action>.+?)\] is unauthorized for (?P<who>user|API key id) "
    r"\[(?P<user>[^\]]*)\]"
    r"(?:.*? on indices \[(?P<indices>[^\]]+)\])?"
    r"(?:.*?granted by the (?P<kind>index|cluster) privileges \[(?P<privileges>[^\]]+)\])?"
)


def privilege_message(host: str, what: str, reason: str) -> str:
    """One line naming the privilege that is missing and where, from a 403's reason."""
    match = _UNAUTHORIZED.search(reason)
    if match is None:
        detail = reason or "HTTP 403 without detail"
        return f"{host}: no privilege for {what}: {detail}"
    who = f"the {match['who']} {match['user']}"
    if match["privileges"]:
        first, *others = match["privileges"].split(",")
        needed = f"the {match['kind']} privilege {first}" + (
            f" (or {', '.join(others)})" if others else ""
        )
    else:
        needed = "a privilege"
    where = f" on {match['indices']}" if match["indices"] else ""
    action = match["action"]
    return f"{host}: no privilege for {what}: {who} lacks {needed}{where} (action {action})"


def lacks_read(client: Any, index: str) -> bool:
    """Does the connected user lack ``read`` on ``index``? (Elasticsearch drops indices a user
    may not read from a wildcard pattern, so "no such index" can mean "no privilege".) False
    when security is off or the answer is unclear."""
    from elastic_transport import TransportError
    from elasticsearch import ApiError

    try:
        answer = client.security.has_privileges(index=[{"names": [index], "privileges": ["read"]}])
    except (ApiError, TransportError, OSError, ValueError):
        return False
    return not bool(answer.get("index", {}).get(index, {}).get("read", True))


def _reason_text(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("reason") or "")
    return ""


def _error_type(exc: Any) -> str | None:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"].get("type")
    return None


def _reason(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return f"{error.get('type')}: {error.get('reason')}"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
