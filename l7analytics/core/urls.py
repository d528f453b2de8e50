"""URL handling: split Calico's ``url`` field, normalize paths against evasion, template ids.

Calico writes ``url`` as ``<authority><path>`` (``frontend/product/OLJCESPC7Z``), with the query
string dropped and the path cut to 5 segments and 250 characters by default. Three functions
turn that into what detectors reason about:

- :func:`split_url` - authority and path;
- :func:`normalize_path` - the path as a server would resolve it, so that encoding tricks
  (``/%2e%67it/config``, ``//.env``, ``/a/../.git``, ``/.env;x=1``, ``/.env.``) cannot evade
  a restricted-path rule;
- :func:`path_template` - identifiers replaced by placeholders so that
  ``/product/OLJCESPC7Z`` and ``/product/66VCHSJNUP`` are the same route.

They are plain Python over one string each; the callers apply them to the *distinct* values of
an Arrow column (:func:`l7analytics.core.arrowutil.map_unique`), which is what makes them fast.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from urllib.parse import unquote

import pyarrow as pa

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
_NUMBER = re.compile(r"^[+-]?\d+$")
_HEX = re.compile(r"^(?:0x)?[0-9a-fA-F]{8,}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T_ ]\d{2}:?\d{2}(?::?\d{2})?Z?)?$")
_ALNUM_TOKEN = re.compile(r"^[A-Za-z0-9_~-]+$")
_EMAIL = re.compile(r"^[^@/]+@[^@/]+\.[A-Za-z]{2,}$")
_EXTENSION = re.compile(r"^(.+?)(\.[A-Za-z][A-Za-z0-9]{0,5})$")

#: Anything that can make a path resolve to something other than its text.
_NEEDS_RESOLVING = re.compile(r"[%\\;\x00]|//|/\.|\.(?:/|$)|[ \t](?:/|$)|^[^/]")
#: The same for Arrow's RE2 (:func:`normalize_paths`), widened to every control and non-ASCII
#: character, where RE2's ``$`` and case folding could differ from Python's: those paths
#: take :func:`normalize_path`, so both give the same answer.
NEEDS_RESOLVING_RE2 = r"[%\\;\x00-\x1f\x7f-\x{10FFFF}]|//|/\.|\.(?:/|$)|[ \t](?:/|$)|^[^/]"

#: Placeholders used in path templates.
PLACEHOLDERS = ("{num}", "{uuid}", "{hex}", "{id}", "{token}", "{date}", "{email}")


def split_url(url: str | None) -> tuple[str | None, str | None]:
    """Split Calico's ``url`` into ``(authority, path)``.

    >>> split_url("paymentservice:50051/hipstershop.PaymentService/Charge")
    ('paymentservice:50051', '/hipstershop.PaymentService/Charge')
    >>> split_url("frontend")
    ('frontend', '/')
    >>> split_url("/healthz")
    (None, '/healthz')
    """
    if not url or url == "-":
        return None, None
    rest = _SCHEME.sub("", url, count=1)
    slash = rest.find("/")
    if slash < 0:
        return (rest or None), "/"
    return (rest[:slash] or None), rest[slash:]


def normalize_path(path: str | None) -> str | None:
    """Resolve a request path the way a lenient server would, defeating common evasions.

    Steps: drop the query and fragment; percent-decode twice (double encoding); treat ``\\`` as
    ``/``; cut at a NUL byte; drop ``;params`` of each segment; collapse ``//``; resolve ``.``
    and ``..`` (never above the root); drop trailing dots and spaces of each segment and the
    trailing slash. Case is kept: rules decide whether they compare case-insensitively.

    >>> normalize_path("/%252e%2565nv")
    '/.env'
    >>> normalize_path("//static/../.git/./config;jsessionid=1")
    '/.git/config'
    >>> normalize_path("/backup.sql./")
    '/backup.sql'
    """
    if path is None:
        return None
    path = path.split("?", 1)[0].split("#", 1)[0]
    if not _NEEDS_RESOLVING.search(path):
        # The common case (no encoding, no dot segments, no parameters): only the trailing
        # slash to drop. Checked with one regex so millions of distinct ids stay cheap.
        return path.rstrip("/") or "/"
    for _ in range(2):
        decoded = unquote(path, errors="replace")
        if decoded == path:
            break
        path = decoded
    path = path.replace("\\", "/").split("\x00", 1)[0]
    segments: list[str] = []
    for raw in path.split("/"):
        segment = raw.split(";", 1)[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        stripped = segment.rstrip(". \t")
        if stripped:
            segments.append(stripped)
    return "/" + "/".join(segments)


def normalize_paths(paths: pa.Array) -> pa.Array:
    """:func:`normalize_path` of every value of ``paths`` (distinct values, say): the common
    ones (no encoding, no dot segment, nothing but a trailing slash to drop) with Arrow's
    kernels, the rest with :func:`normalize_path` itself. Same answers, 10x fewer Python calls
    on traffic whose paths are mostly plain ids."""
    import numpy as np
    import pyarrow.compute as pc

    stripped = paths
    if _may_contain(paths, b"?#"):  # paths in the lake carry no query: skip a regex pass
        stripped = pc.replace_substring_regex(paths, pattern=r"(?s)[?#].*$", replacement="")
    needs = pc.fill_null(pc.match_substring_regex(stripped, NEEDS_RESOLVING_RE2), True)
    trimmed = pc.utf8_rtrim(stripped, characters="/")
    plain = pc.if_else(pc.equal(trimmed, ""), "/", trimmed)
    resolve = np.flatnonzero(needs.to_numpy(zero_copy_only=False))
    if not len(resolve):
        return plain
    # Only the paths that need it go through Python; the others stay in Arrow's buffers.
    resolved = [normalize_path(p) for p in paths.take(pa.array(resolve)).to_pylist()]
    return pc.replace_with_mask(plain, needs, pa.array(resolved, type=pa.string()))


def _may_contain(strings: pa.Array, characters: bytes) -> bool:
    """Whether any of the ``characters`` (bytes) may occur in ``strings``: a ``bytes.find``
    over the data buffer (bytes a slice does not use included, so "may"), 30x cheaper than a
    kernel pass over the strings."""
    if not pa.types.is_string(strings.type):
        return True
    data = strings.buffers()[2]
    if data is None:  # every value null or empty
        return False
    raw = data.to_pybytes()
    return any(raw.find(bytes([c])) >= 0 for c in characters)


def _entropy(text: str) -> float:
    counts = Counter(text)
    total = len(text)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def _segment_placeholder(segment: str) -> str | None:
    """The placeholder for one path segment, or ``None`` when it looks like a route word."""
    if _NUMBER.match(segment):
        return "{num}"
    if _UUID.match(segment):
        return "{uuid}"
    if _DATE.match(segment):
        return "{date}"
    if _EMAIL.match(segment):
        return "{email}"
    has_digit = any(c.isdigit() for c in segment)
    if _HEX.match(segment) and has_digit:
        return "{hex}"
    if not _ALNUM_TOKEN.match(segment):
        return None
    has_alpha = any(c.isalpha() for c in segment)
    letters = "".join(c for c in segment if c.isalpha())
    if len(segment) >= 16 and has_digit and _entropy(segment) >= 3.0:
        return "{token}"
    if len(segment) >= 6 and has_digit and has_alpha and not _looks_like_word(segment):
        return "{id}"
    if (
        len(segment) >= 8
        and letters.isupper()
        and segment.isalnum()
        and _vowel_share(letters) < 0.25
    ):
        return "{id}"
    return None


def _vowel_share(letters: str) -> float:
    """Random codes (``OLJCESPC``) have few vowels; words (``CHANGELOG``) have many."""
    return sum(c in "AEIOUaeiou" for c in letters) / max(len(letters), 1)


def _looks_like_word(segment: str) -> bool:
    """Route words with a short version in them: ``v2``, ``oauth2``, ``base64``, ``sha256``.

    Only lower-case words with enough vowels qualify: ``8WUDHLOIVG`` or ``ABCDEFGH12`` are
    codes, not words.
    """
    if re.fullmatch(r"[vV]\d+", segment):
        return True
    match = re.fullmatch(r"([a-z][a-zA-Z]*)(\d{1,3})", segment)
    return bool(match) and _vowel_share(match.group(1)) >= 0.2


def template_segment(segment: str) -> str:
    """Template one segment, keeping a file extension: ``main.8f3a2c1b.js`` -> ``main.{hex}.js``."""
    if not segment:
        return segment
    placeholder = _segment_placeholder(segment)
    if placeholder:
        return placeholder
    if "." in segment:
        match = _EXTENSION.match(segment)
        if match and "." not in match.group(1):
            head = _segment_placeholder(match.group(1))
            return (head or match.group(1)) + match.group(2)
        if match:
            parts = match.group(1).split(".")
            return ".".join(_segment_placeholder(p) or p for p in parts) + match.group(2)
    return segment


def path_template(path: str | None) -> str | None:
    """Replace identifiers in a path with placeholders; the query string is dropped.

    >>> path_template("/product/OLJCESPC7Z")
    '/product/{id}'
    >>> path_template("/api/v1/customers/3f2b6c1e-8a4d-4b8e-9c1a-2d5e6f7a8b9c/invoices/42")
    '/api/v1/customers/{uuid}/invoices/{num}'
    """
    if path is None:
        return None
    path = path.split("?", 1)[0]
    return "/".join(template_segment(s) for s in path.split("/"))
