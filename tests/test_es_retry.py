"""One retry layer with one budget: the client never retries, RetryPolicy does, with backoff,
so the tries of a request never multiply (the real server's 429s are in the integration
tests of the sinks and the source)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig, TlsError
from elasticsearch import ApiError

from l7analytics.adapters.elasticsearch.connection import EsConnection, RetryPolicy, connect


def api_error(status: int) -> ApiError:
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "es", 9200))
    return ApiError("failed", meta, {"error": {"type": "x"}})


class Always:
    def __init__(self, error: Exception) -> None:
        self.error, self.calls = error, 0

    def __call__(self) -> None:
        self.calls += 1
        raise self.error


def test_a_failing_request_is_tried_attempts_times_with_backoff():
    sleeps: list[float] = []
    request = Always(api_error(429))
    with pytest.raises(ApiError):
        RetryPolicy(attempts=4).call(request, sleeps.append)
    assert request.calls == 4 and sleeps == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("error", [api_error(400), api_error(403), TlsError("bad cert")])
def test_what_a_retry_cannot_fix_fails_at_once(error):
    request = Always(error)
    with pytest.raises(type(error)):
        RetryPolicy(attempts=4).call(request, lambda _: None)
    assert request.calls == 1


class Overloaded(BaseHTTPRequestHandler):
    """Answers every request 503, as an overloaded Elasticsearch does, and counts them."""

    calls = 0

    def do_GET(self) -> None:
        type(self).calls += 1
        body = b'{"error":{"type":"unavailable"},"status":503}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


def test_the_client_itself_never_retries_and_the_setting_sets_the_budget():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Overloaded)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = EsConnection(
            hosts=[f"http://127.0.0.1:{server.server_address[1]}"], max_retries=2
        )
        client = connect(settings)
        with pytest.raises(ApiError):
            client.count(index="x")
        assert Overloaded.calls == 1  # the client sent it once
        with pytest.raises(ApiError):
            settings.retry.call(lambda: client.count(index="x"), lambda _: None)
        assert Overloaded.calls == 1 + 3  # the policy: max_retries + 1 tries, no more
    finally:
        server.shutdown()
        server.server_close()
    assert EsConnection().retry == RetryPolicy()  # the documented default: 4 tries
