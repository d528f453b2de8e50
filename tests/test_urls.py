"""URL splitting, evasion-resistant path normalization and path templates."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l7analytics.core.urls import normalize_path, path_template, split_url, template_segment

# -- split_url ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "paymentservice:50051/hipstershop.PaymentService/Charge",
            ("paymentservice:50051", "/hipstershop.PaymentService/Charge"),
        ),
        ("frontend/product/OLJCESPC7Z", ("frontend", "/product/OLJCESPC7Z")),
        ("frontend", ("frontend", "/")),
        ("/healthz", (None, "/healthz")),
        ("http://shop.example.com:8080/cart", ("shop.example.com:8080", "/cart")),
        ("https://api/v1/x", ("api", "/v1/x")),
        ("-", (None, None)),
        ("", (None, None)),
        (None, (None, None)),
    ],
)
def test_split_url(url, expected):
    assert split_url(url) == expected


# -- normalize_path: evasion ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # percent-encoding of the dot and a letter
        ("/%2e%67it/config", "/.git/config"),
        # double encoding: %25 -> %, then %2e -> .
        ("/%252e%2565nv", "/.env"),
        ("/%252e%252e/%252e%252e/etc/passwd", "/etc/passwd"),
        # empty segments
        ("//.env", "/.env"),
        ("///static//..//.env", "/.env"),
        # dot segments, also never above the root
        ("/foo/../.git/HEAD", "/.git/HEAD"),
        ("/../../../etc/passwd", "/etc/passwd"),
        ("/a/./b/./c", "/a/b/c"),
        ("/..%2f.git/config", "/.git/config"),
        # path parameters
        ("/.env;jsessionid=1", "/.env"),
        ("/.git;x=1/config;y=2", "/.git/config"),
        # trailing dots, spaces and slashes
        ("/.env.", "/.env"),
        ("/.env..", "/.env"),
        ("/.env%20", "/.env"),
        ("/backup.sql/", "/backup.sql"),
        ("/backup.sql./", "/backup.sql"),
        # backslashes, raw and encoded
        ("\\.git\\config", "/.git/config"),
        ("/static\\..\\.env", "/.env"),
        ("/%5c.git%5cconfig", "/.git/config"),
        # NUL byte, raw and encoded: everything after it is dropped
        ("/.env\x00.jpg", "/.env"),
        ("/.env%00.jpg", "/.env"),
        # query and fragment
        ("/.env?download=1", "/.env"),
        ("/.git/config#frag", "/.git/config"),
        # nothing left
        ("/", "/"),
        ("", "/"),
        ("/./..", "/"),
    ],
)
def test_normalize_path_defeats_evasion(raw, expected):
    assert normalize_path(raw) == expected


def test_normalize_path_keeps_case_and_none():
    # Case is for the rules to decide (see test_restricted_url: /ACTUATOR/ENV still matches).
    assert normalize_path("/ACTUATOR/ENV") == "/ACTUATOR/ENV"
    assert normalize_path(None) is None


def test_normalize_path_decodes_at_most_twice():
    # Two rounds, as the docstring says: a third level of encoding stays as text.
    assert normalize_path("/%25252e/x") == "/%2e/x"


def test_normalize_path_is_idempotent():
    for raw in ["/%252e%2565nv", "//a/../.git/./config;x", "\\.env.", "/backup.sql/"]:
        once = normalize_path(raw)
        assert normalize_path(once) == once


def test_normalize_path_ordinary_paths_unchanged():
    for path in ["/product/OLJCESPC7Z", "/api/v2/oauth2/token", "/static/main.8f3a2c1b.js"]:
        assert normalize_path(path) == path


# -- path_template -----------------------------------------------------------------------------


def test_product_ids_share_one_template():
    ids = ["OLJCESPC7Z", "66VCHSJNUP", "1YMWWN1N4O", "L9ECAV7KIM", "2ZYFJ3GM2N", "9SIQT8TOJO"]
    templates = {path_template(f"/product/{i}") for i in ids}
    assert templates == {"/product/{id}"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/users/12345", "/users/{num}"),
        ("/orders/0/items/7", "/orders/{num}/items/{num}"),
        (
            "/api/v1/customers/3f2b6c1e-8a4d-4b8e-9c1a-2d5e6f7a8b9c/invoices/42",
            "/api/v1/customers/{uuid}/invoices/{num}",
        ),
        ("/x/3F2B6C1E8A4D4B8E9C1A2D5E6F7A8B9C", "/x/{uuid}"),
        ("/commit/deadbeefcafe1234", "/commit/{hex}"),
        ("/x/0x1a2b3c4d", "/x/{hex}"),
        ("/reset/eyJhbGciOiJIUzI1NiJ9abc123XYZ", "/reset/{token}"),
        ("/reports/2024-01-31", "/reports/{date}"),
        ("/reports/2024-01-31T10:00:00Z", "/reports/{date}"),
        ("/users/alice@example.com/prefs", "/users/{email}/prefs"),
        ("/static/main.8f3a2c1b.js", "/static/main.{hex}.js"),
        ("/img/a1b2c3d4e5f6.png", "/img/{hex}.png"),
    ],
)
def test_identifiers_become_placeholders(path, expected):
    assert path_template(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/api/v2/oauth2/token",
        "/hipstershop.PaymentService/Charge",
        "/hipstershop.CartService/GetCart",
        "/wp-admin",
        "/wp-login.php",
        "/CHANGELOG",
        "/README",
        "/html5/player",
        "/api/v1/namespaces",
        "/robots.txt",
        "/favicon.ico",
        "/.git/config",
        "/_next/static",
        "/",
    ],
)
def test_route_words_are_kept(path):
    assert path_template(path) == path


def test_different_routes_stay_different():
    assert path_template("/product/OLJCESPC7Z") != path_template("/cart/OLJCESPC7Z")
    assert path_template("/users/1") != path_template("/users/1/orders")


def test_template_drops_query_and_keeps_none():
    assert path_template("/product/OLJCESPC7Z?currency=EUR") == "/product/{id}"
    assert path_template(None) is None


def test_template_segment_short_values():
    assert template_segment("") == ""
    assert template_segment("v1") == "v1"
    assert template_segment("42") == "{num}"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="/.%2eEgG\\;?#\x00\n\t üK\u212aab0", max_size=20) | st.none(),
                min_size=1, max_size=30))  # fmt: skip
def test_normalizing_distinct_paths_at_once_equals_normalizing_each(paths):
    import pyarrow as pa

    from l7analytics.core.urls import normalize_paths

    assert normalize_paths(pa.array(paths, type=pa.string())).to_pylist() == [
        normalize_path(p) for p in paths
    ]
