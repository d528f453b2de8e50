"""TLS failures in words a user can act on, for every HTTP client of the package.

The clients (elasticsearch-py over urllib3, and urllib3 itself for Kibana) wrap the handshake's
error two or three levels deep and print "TLS error". :func:`tls_reason` digs out what the
handshake said (unknown CA, hostname mismatch, protocol error); :func:`speaks_tls` tells, after
a plain ``http://`` connection was dropped, whether the server expected HTTPS.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

#: How long the probe that tells "HTTPS server behind an http:// URL" may take.
TLS_PROBE_TIMEOUT_S = 3.0
#: What OpenSSL says when the other side answers a TLS hello in plain HTTP.
PLAIN_HTTP_REASONS = {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE"}
CA_HINT = "set L7_ES_CA_CERTS to the CA bundle that signed the server's certificate"


def tls_reason(exc: BaseException) -> str:
    """What the TLS handshake under ``exc`` said, with what to do about it."""
    for cause in _causes(exc):
        if type(cause).__name__ == "CertificateError":  # urllib3's hostname check
            return f"hostname mismatch: {_first_line(cause)}; use a host name the certificate names"
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = cause.verify_message or cause.reason or "certificate verify failed"
            if "mismatch" in detail.lower():
                return f"hostname mismatch: {detail}; use a host name the certificate names"
            return f"certificate verify failed: {detail}; {CA_HINT}"
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLError):
            if cause.reason in PLAIN_HTTP_REASONS:
                return (
                    f"{cause.reason}: the server does not speak TLS on this port; use http:// "
                    "or the server's HTTPS port"
                )
            return cause.reason or _first_line(cause)
    return _first_line(exc)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything under it (causes, contexts, urllib3's ``reason``, ``errors``)."""
    found: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        nested += list(getattr(current, "errors", ()) or ())
        todo += [e for e in nested if isinstance(e, BaseException)]
    return found


def speaks_tls(url: str, timeout: float = TLS_PROBE_TIMEOUT_S) -> bool:
    """Does ``url``'s host:port complete a TLS handshake? (unverified: only to name the error)"""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        address = (parts.hostname, parts.port or 80)
        with (
            socket.create_connection(address, timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=parts.hostname),
        ):
            return True
    except (OSError, ValueError):
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
