"""Every error status of the admin API, over real HTTP, as problem+json.

Each failed request is also checked to leave the listener table unchanged.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from typing import Any

import pytest
import requests

from conftest import (BIN, TOKEN, Gateway, assert_problem, free_port, split_address)


def listener_table(gateway: Gateway) -> list[tuple[Any, ...]]:
    return sorted((item["id"], item["listen"], item["upstream"], item.get("name"),
                   item["connect_timeout_ms"]) for item in gateway.listeners())


class Unchanged:
    """Context manager: the listener table is the same after the block."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def __enter__(self) -> "Unchanged":
        self.before = listener_table(self.gateway)
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            assert listener_table(self.gateway) == self.before, "a failed request changed the listeners"
            self.gateway.assert_alive()


def raw_http(gateway: Gateway, request: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Sends bytes as they are; returns (status, lower-cased headers, body) of the answer."""
    with socket.create_connection((gateway.host, gateway.port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer before reading everything
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
                if length and len(body) >= int(length.group(1)):
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines and lines[0].startswith("HTTP/1."), f"no HTTP answer: {data[:300]!r}"
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


VALID = {"listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}


# -- happy path sanity (what the errors are measured against) ---------------


def test_health_is_json_and_open(token_gateway: Gateway) -> None:
    response = token_gateway.get("/api/v1/health", auth=False)
    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    body = response.json()
    assert body["status"] == "ok"
    assert isinstance(body["version"], str) and body["version"]
    assert isinstance(body["uptime_s"], (int, float)) and body["uptime_s"] >= 0


def test_create_get_delete_listener(gateway: Gateway) -> None:
    assert gateway.listeners() == []
    response = gateway.post("/api/v1/listeners", json={**VALID, "name": "sink", "connect_timeout_ms": 1234})
    assert response.status_code == 201, response.text
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    created = response.json()
    assert re.fullmatch(r"l[1-9][0-9]*", created["id"])
    assert response.headers["Location"] == f"/api/v1/listeners/{created['id']}"
    host, port = split_address(created["listen"])
    assert host == "127.0.0.1" and port != 0, f"listen should be the bound address: {created}"
    assert created["upstream"] == "127.0.0.1:9"
    assert created["name"] == "sink"
    assert created["connect_timeout_ms"] == 1234
    assert created["sessions"] == {"active": 0, "total": 0}
    assert created["upstream_failures"] == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", created["created_at"])
    # The port is really bound.
    with socket.create_connection((host, port), timeout=5):
        pass
    assert gateway.get(f"/api/v1/listeners/{created['id']}").json()["id"] == created["id"]
    assert [item["id"] for item in gateway.listeners()] == [created["id"]]
    # Defaults and no name.
    other = gateway.create_listener(**VALID)
    assert "name" not in other and other["connect_timeout_ms"] == 5000
    assert gateway.delete(f"/api/v1/listeners/{created['id']}").status_code == 204
    assert_problem(gateway.get(f"/api/v1/listeners/{created['id']}"), 404)
    assert_problem(gateway.delete(f"/api/v1/listeners/{created['id']}"), 404)
    assert [item["id"] for item in gateway.listeners()] == [other["id"]]
    # Stopped accepting.
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=2).close()


def test_json_with_charset_is_accepted(gateway: Gateway) -> None:
    response = gateway.post("/api/v1/listeners", data=json.dumps(VALID),
                            headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 201, response.text


def test_openapi_yaml_is_served_verbatim(token_gateway: Gateway) -> None:
    from conftest import SPEC
    response = token_gateway.get("/openapi.yaml", auth=False)
    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] == "application/yaml"
    assert response.content == SPEC.read_bytes()


def test_console_index_is_served(token_gateway: Gateway) -> None:
    response = token_gateway.get("/", auth=False)
    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] == "text/html"


# -- 400 ----------------------------------------------------------------------


def test_400_malformed_json_reports_line_and_column(gateway: Gateway) -> None:
    body = b'{\n  "listen": "127.0.0.1:0",\n  "upstream" "127.0.0.1:9"\n}\n'
    with Unchanged(gateway):
        problem = assert_problem(gateway.post("/api/v1/listeners", data=body,
                                              headers={"Content-Type": "application/json"}), 400)
    detail = problem["detail"].lower()
    assert re.search(r"line\D{0,3}3\b", detail), f"detail should name line 3: {problem['detail']!r}"
    assert re.search(r"col(umn)?\D{0,3}\d+", detail), f"detail should name a column: {problem['detail']!r}"


@pytest.mark.parametrize("body", [b"", b"{", b"nul", b'{"listen": "127.0.0.1:0",}', b"\xff\xfe{}",
                                  b'{"listen": "a\x00b"}', b'{"a":1} {"b":2}'])
def test_400_other_malformed_bodies(gateway: Gateway, body: bytes) -> None:
    with Unchanged(gateway):
        response = gateway.post("/api/v1/listeners", data=body, headers={"Content-Type": "application/json"})
        # An empty body is arguably "no JSON" (400) or "missing fields" (422); both are documented.
        expected = response.status_code if body == b"" and response.status_code in (400, 422) else 400
        assert_problem(response, expected)


# -- 401 ----------------------------------------------------------------------


PROTECTED = [("GET", "/api/v1/listeners"), ("POST", "/api/v1/listeners"), ("GET", "/api/v1/listeners/l1"),
             ("DELETE", "/api/v1/listeners/l1"), ("GET", "/api/v1/sessions"), ("GET", "/api/v1/sessions/s1"),
             ("DELETE", "/api/v1/sessions/s1"), ("GET", "/api/v1/nope"), ("GET", "/metrics")]


@pytest.mark.parametrize("method,path", PROTECTED)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Bearer {TOKEN}x", f"Basic {TOKEN}",
                                           "Bearer", f"bearer{TOKEN}", ""])
def test_401_without_the_right_token(token_gateway: Gateway, method: str, path: str,
                                     authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    kwargs: dict[str, Any] = {"json": VALID} if method == "POST" else {}
    with Unchanged(token_gateway):
        response = token_gateway.request(method, path, auth=False, headers=headers, **kwargs)
        assert_problem(response, 401)
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), dict(response.headers)


def test_token_from_env_and_right_token_works(start_gateway) -> None:
    gateway = start_gateway(token="from-env", token_via="env")
    assert_problem(gateway.get("/api/v1/listeners", auth=False), 401)
    assert gateway.get("/api/v1/listeners").status_code == 200
    assert gateway.get("/api/v1/health", auth=False).status_code == 200
    created = gateway.create_listener(**VALID)
    assert gateway.get(f"/api/v1/listeners/{created['id']}").status_code == 200


def test_token_file_trailing_newline_is_ignored(token_gateway: Gateway) -> None:
    # The fixture wrote TOKEN + "\n" to the file; the bare token must work.
    assert token_gateway.get("/api/v1/listeners").status_code == 200
    assert_problem(token_gateway.get("/api/v1/listeners", auth=False,
                                     headers={"Authorization": f"Bearer {TOKEN}\\n"}), 401)


# -- 404 ----------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/v1/nope"), ("GET", "/nope"), ("GET", "/api/v2/health"), ("POST", "/api/v1/nope"),
    ("GET", "/api/v1/listeners/l999"), ("DELETE", "/api/v1/listeners/l999"),
    ("GET", "/api/v1/listeners/x1"), ("GET", "/api/v1/listeners/l0"), ("GET", "/api/v1/listeners/L1"),
    ("GET", "/api/v1/listeners/s1"), ("GET", "/api/v1/listeners/l1x"),
    ("GET", "/api/v1/listeners/l99999999999999999999999999"),
    ("GET", "/api/v1/sessions/s999"), ("DELETE", "/api/v1/sessions/s999"), ("GET", "/api/v1/sessions/l1"),
    ("DELETE", "/api/v1/sessions/s0"), ("GET", "/api/v1/sessions/s-1"), ("GET", "/api/v1/sessions/s%201"),
    ("GET", "/api/v1/listeners/l1/extra"),
])
def test_404_problem(demo_gateway: Gateway, method: str, path: str) -> None:
    with Unchanged(demo_gateway):
        assert_problem(demo_gateway.request(method, path), 404)


# -- 405 ----------------------------------------------------------------------


@pytest.mark.parametrize("method,path,allowed", [
    ("PUT", "/api/v1/listeners", {"GET", "POST"}),
    ("DELETE", "/api/v1/listeners", {"GET", "POST"}),
    ("PATCH", "/api/v1/listeners", {"GET", "POST"}),
    ("POST", "/api/v1/health", {"GET"}),
    ("DELETE", "/api/v1/health", {"GET"}),
    ("POST", "/api/v1/listeners/l1", {"GET", "DELETE"}),
    ("PUT", "/api/v1/listeners/l1", {"GET", "DELETE"}),
    ("POST", "/api/v1/sessions", {"GET"}),
    ("DELETE", "/api/v1/sessions", {"GET"}),
    ("PATCH", "/api/v1/sessions/s1", {"GET", "DELETE"}),
])
def test_405_with_allow(demo_gateway: Gateway, method: str, path: str, allowed: set[str]) -> None:
    with Unchanged(demo_gateway):
        response = demo_gateway.request(method, path, json={} if method in ("POST", "PUT", "PATCH") else None)
        assert_problem(response, 405)
    allow = {part.strip().upper() for part in response.headers.get("Allow", "").split(",") if part.strip()}
    assert allowed <= allow, f"Allow {response.headers.get('Allow')!r} should list {sorted(allowed)}"
    assert method not in allow


# -- 409 ----------------------------------------------------------------------


def test_409_listen_address_bound_by_another_process(gateway: Gateway) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with Unchanged(gateway):
            assert_problem(gateway.post("/api/v1/listeners",
                                        json={"listen": f"127.0.0.1:{port}", "upstream": "127.0.0.1:9"}), 409)


def test_409_listen_address_of_another_listener(gateway: Gateway) -> None:
    first = gateway.create_listener(**VALID)
    with Unchanged(gateway):
        assert_problem(gateway.post("/api/v1/listeners",
                                    json={"listen": first["listen"], "upstream": "127.0.0.1:9"}), 409)


def test_409_listen_on_the_admin_port(gateway: Gateway) -> None:
    with Unchanged(gateway):
        assert_problem(gateway.post("/api/v1/listeners",
                                    json={"listen": f"127.0.0.1:{gateway.port}", "upstream": "127.0.0.1:9"}),
                       409)


# -- 413 ----------------------------------------------------------------------


def big_body(size: int) -> bytes:
    body = json.dumps({**VALID, "name": "x" * size}).encode()
    assert len(body) > size
    return body


def test_413_body_over_64k(gateway: Gateway) -> None:
    with Unchanged(gateway):
        assert_problem(gateway.post("/api/v1/listeners", data=big_body(70 * 1024),
                                    headers={"Content-Type": "application/json"}), 413)


def test_413_chunked_body_over_64k(gateway: Gateway) -> None:
    body = big_body(70 * 1024)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                      for part in (body[i:i + 8192] for i in range(0, len(body), 8192)))
    request = (b"POST /api/v1/listeners HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\n\r\n")
    with Unchanged(gateway):
        status, headers, payload = raw_http(gateway, request)
    assert status == 413, (status, headers, payload[:300])
    assert headers.get("content-type", "").startswith("application/problem+json")
    assert json.loads(payload)["status"] == 413


def test_body_just_under_the_cap_is_read(gateway: Gateway) -> None:
    # 60 KiB of valid JSON: not 413; the long name makes it a 422.
    with Unchanged(gateway):
        assert_problem(gateway.post("/api/v1/listeners", data=big_body(60 * 1024),
                                    headers={"Content-Type": "application/json"}), 422)


# -- 415 ----------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/xml", "multipart/form-data; boundary=x"])
def test_415_not_json(gateway: Gateway, content_type: str) -> None:
    with Unchanged(gateway):
        assert_problem(gateway.post("/api/v1/listeners", data=json.dumps(VALID),
                                    headers={"Content-Type": content_type}), 415)


# -- 422 ----------------------------------------------------------------------


@pytest.mark.parametrize("body,field", [
    ({**VALID, "bogus": 1}, "bogus"),
    ({**VALID, "mediators": []}, None),  # planned field, not accepted yet... or accepted: see below
    ({"listen": "127.0.0.1:0"}, "upstream"),
    ({"upstream": "127.0.0.1:9"}, "listen"),
    ({}, None),
    ([], None),
    ("127.0.0.1:0", None),
    (None, None),
    ({**VALID, "listen": "nope"}, "listen"),
    ({**VALID, "listen": "127.0.0.1"}, "listen"),
    ({**VALID, "listen": "127.0.0.1:99999"}, "listen"),
    ({**VALID, "listen": "127.0.0.1:-1"}, "listen"),
    ({**VALID, "listen": ":80"}, "listen"),
    ({**VALID, "listen": "::1:80"}, "listen"),
    ({**VALID, "listen": "[::1:80"}, "listen"),
    ({**VALID, "listen": "127.0.0.1:8x"}, "listen"),
    ({**VALID, "listen": "bad host:80"}, "listen"),
    ({**VALID, "listen": ""}, "listen"),
    ({**VALID, "listen": 80}, "listen"),
    ({**VALID, "upstream": "nope"}, "upstream"),
    ({**VALID, "upstream": "127.0.0.1:65536"}, "upstream"),
    ({**VALID, "upstream": None}, "upstream"),
    ({**VALID, "name": ""}, "name"),
    ({**VALID, "name": "n" * 65}, "name"),
    ({**VALID, "name": 5}, "name"),
    ({**VALID, "connect_timeout_ms": 0}, "connect_timeout_ms"),
    ({**VALID, "connect_timeout_ms": 600001}, "connect_timeout_ms"),
    ({**VALID, "connect_timeout_ms": -5}, "connect_timeout_ms"),
    ({**VALID, "connect_timeout_ms": "5000"}, "connect_timeout_ms"),
    ({**VALID, "connect_timeout_ms": 1.5}, "connect_timeout_ms"),
    ({**VALID, "connect_timeout_ms": True}, "connect_timeout_ms"),
    ({**VALID, "connect_timeout_ms": 10 ** 30}, None),
    # ports are digits only: no sign, no leading zero, no blank (Int() took "+80" as 80)
    ({**VALID, "listen": "127.0.0.1:+80"}, "listen"),
    ({**VALID, "listen": "127.0.0.1:+0"}, "listen"),
    ({**VALID, "listen": "127.0.0.1:08"}, "listen"),
    # IPv4 only as a dotted quad: a resolver would bind these to 127.0.0.1
    ({**VALID, "listen": "127.1:0"}, "listen"),
    ({**VALID, "listen": "2130706433:0"}, "listen"),
    ({**VALID, "listen": "127.0.0.01:0"}, "listen"),
    ({**VALID, "listen": "127.0.0.1:00"}, "listen"),
    ({**VALID, "listen": "127.0.0.1: 80"}, "listen"),
    ({**VALID, "upstream": "127.0.0.1:+9"}, "upstream"),
    ({**VALID, "upstream": "127.0.0.1:09"}, "upstream"),
    # no request field is nullable: null is not "absent"
    ({**VALID, "idle_timeout_ms": None}, "idle_timeout_ms"),
    ({**VALID, "connect_timeout_ms": None}, "connect_timeout_ms"),
    ({**VALID, "max_sessions": None}, "max_sessions"),
    ({**VALID, "name": None}, "name"),
    ({**VALID, "mediators": None}, "mediators"),
])
def test_422_invalid_listener_body(gateway: Gateway, body: Any, field: str | None) -> None:
    with Unchanged(gateway):
        response = gateway.post("/api/v1/listeners", data=json.dumps(body),
                                headers={"Content-Type": "application/json"})
        if body == {**VALID, "mediators": []} and response.status_code == 201:
            pytest.skip("listener templates accepted (a later issue); nothing to check here")
        if body == {**VALID, "connect_timeout_ms": 10 ** 30} and response.status_code == 400:
            # jansson rejects integers beyond int64 as a parse error: also fine.
            assert_problem(response, 400)
            return
        problem = assert_problem(response, 422)
    if field is not None:
        assert field in problem["detail"], f"detail should name {field!r}: {problem['detail']!r}"


@pytest.mark.parametrize("templates", [
    [{"mediator": "upper", "direction": "both", "position": 5}],
    [{"mediator": "upper", "direction": "both", "position": 1}, {"mediator": "upper", "direction": "both", "position": 0}],
])
def test_409_listener_template_position_past_the_templates_before_it(gateway: Gateway, templates: list) -> None:
    """Accepted, such a listener reset every client: its first template could not be spliced.
    A 409, as a splice past the end of a live stack: the body is valid, the stack refuses it."""
    with Unchanged(gateway):
        problem = assert_problem(gateway.post("/api/v1/listeners", json={**VALID, "mediators": templates}), 409)
    assert "position" in problem["detail"], problem["detail"]


@pytest.mark.parametrize("body,field", [
    ({"name": "m", "address": "127.0.0.1:9", "proxy_protocol": None}, "proxy_protocol"),
    ({"name": "m", "address": "127.0.0.1:9", "kind": None}, "kind"),
    ({"name": "m", "address": "127.0.0.1:+9"}, "address"),
    ({"name": "m", "address": "127.0.0.1:0009"}, "address"),
])
def test_422_invalid_mediator_body(gateway: Gateway, body: Any, field: str) -> None:
    problem = assert_problem(gateway.post("/api/v1/mediators", json=body), 422)
    assert field in problem["detail"], problem["detail"]
    response = gateway.get("/api/v1/mediators")
    assert response.status_code == 200 and response.json()["mediators"] == [], response.text


@pytest.mark.parametrize("query", [
    "limit=0", "limit=1001", "limit=-1", "limit=abc", "limit=", "limit=1.5", "limit=05", "limit=%2B5",
    "cursor=x", "cursor=l1", "cursor=s0", "cursor=", "listener=x", "listener=s1", "listener=l0", "listener=",
    "bogus=1", "limit=10&bogus=1", "limit=1&limit=2", "scope=local&scope=cluster", "limit=5&limit=5",
])
def test_422_bad_session_query(demo_gateway: Gateway, query: str) -> None:
    with Unchanged(demo_gateway):
        assert_problem(demo_gateway.get(f"/api/v1/sessions?{query}"), 422)


@pytest.mark.parametrize("query", ["close_sessions=maybe", "close_sessions=", "bogus=1",
                                   "close_sessions=true&close_sessions=false"])
def test_422_bad_delete_listener_query(demo_gateway: Gateway, query: str) -> None:
    listener = demo_gateway.listeners()[0]["id"]
    with Unchanged(demo_gateway):
        assert_problem(demo_gateway.delete(f"/api/v1/listeners/{listener}?{query}"), 422)


@pytest.mark.parametrize("query", ["limit=1", "limit=1000", "listener=l1", "listener=l999", "cursor=s999",
                                   "limit=5&cursor=s1&listener=l1",
                                   # the largest id: the page after it must not overflow
                                   "cursor=s18446744073709551615"])
def test_good_session_queries(demo_gateway: Gateway, query: str) -> None:
    response = demo_gateway.get(f"/api/v1/sessions?{query}")
    assert response.status_code == 200, response.text
    assert set(response.json()) >= {"sessions", "next_cursor"}


# -- oversized request line and headers (libmicrohttpd's own errors) ---------
# The contract: whatever the gateway answers is problem+json, never MHD's HTML.
# The Swift side (HTTPServer.Configuration) answers a target over 8 KiB with 414
# and a header block over 32 KiB with 431; 20 KiB of headers is under that cap,
# so health answers 200 there. Both outcomes are accepted when they are JSON.


def test_20k_uri_gets_problem_json(gateway: Gateway) -> None:
    with Unchanged(gateway):
        response = gateway.get("/api/v1/listeners?x=" + "a" * 20 * 1024)
        assert response.status_code in (414, 422), response.status_code
        assert_problem(response, response.status_code)


def test_20k_path_gets_problem_json(gateway: Gateway) -> None:
    response = gateway.get("/" + "a" * 20 * 1024)
    assert response.status_code in (404, 414), response.status_code
    assert_problem(response, response.status_code)


def test_20k_headers_get_json(gateway: Gateway) -> None:
    headers = {f"X-Pad-{i}": "v" * 1000 for i in range(20)}
    response = gateway.get("/api/v1/health", headers=headers)
    if response.status_code == 200:
        assert response.json()["status"] == "ok"
    else:
        assert_problem(response, 431)


def test_huge_headers_get_problem_json(gateway: Gateway) -> None:
    headers = {f"X-Pad-{i}": "v" * 1000 for i in range(100)}  # 100 KiB
    try:
        response = gateway.get("/api/v1/health", headers=headers)
    except requests.ConnectionError as error:
        pytest.fail(f"100 KiB of headers: connection dropped instead of a 431 problem ({error})")
    assert response.status_code in (413, 431), (response.status_code, response.text[:300])
    assert_problem(response, response.status_code)


# Every head is read and checked by the gateway before libmicrohttpd sees it, so
# what MHD 0.9.75 used to answer with its own HTML page (bad request line, unknown
# version, header without colon, ...) is answered as problem+json too.
GARBAGE = [
    pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, id="tls-hello"),
    pytest.param(b"GET\r\n\r\n", id="bare-method"),
    pytest.param(b"HELLO WORLD\r\n\r\n", id="not-http"),
    pytest.param(b"GET /api/v1/health HTTP/9.9\r\n\r\n", id="http-9.9"),
    pytest.param(b"GET /api/v1/health HTTP/1.1\r\nBad Header\r\n\r\n", id="bad-header"),
    pytest.param(b"GET /api/v1/health HTTP/1.1\r\n\r\n", id="no-host"),
    pytest.param(b"\r\n" * 100, id="crlfs"),
]


def send_garbage(gateway: Gateway, junk: bytes) -> bytes:
    with socket.create_connection((gateway.host, gateway.port), timeout=2) as sock:
        sock.sendall(junk)
        try:
            sock.shutdown(socket.SHUT_WR)
            return sock.recv(65536)
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            return b""


def test_garbage_on_the_admin_port_does_not_hurt(gateway: Gateway) -> None:
    for param in GARBAGE:
        send_garbage(gateway, param.values[0])
    gateway.assert_alive()
    assert gateway.get("/api/v1/health").status_code == 200


@pytest.mark.parametrize("junk", GARBAGE)
def test_protocol_errors_are_not_html(gateway: Gateway, junk: bytes) -> None:
    """DESIGN: libmicrohttpd's own answers come out as problem+json too (or no answer at all)."""
    data = send_garbage(gateway, junk)
    if data.startswith(b"HTTP/1.") and int(data.split()[1]) >= 400:
        head = data.split(b"\r\n\r\n", 1)[0].lower()
        assert b"<html" not in data.lower() and b"text/html" not in head, \
            f"MHD HTML error page for {junk[:40]!r}: {data[:400]!r}"


def read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, bool]:
    """Everything the gateway sends within limit_s; whether it closed the connection by then."""
    data = b""
    deadline = time.monotonic() + limit_s
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def answers(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """The HTTP responses in `data`: (status, head, body), bodies cut by Content-Length."""
    found = []
    while data.startswith(b"HTTP/1."):
        head, _, rest = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
        size = int(length.group(1)) if length else len(rest)
        found.append((int(head.split()[1]), head, rest[:size]))
        data = rest[size:]
    return found


def assert_problem_answer(data: bytes, statuses: set[int]) -> int:
    """`data` is exactly one problem+json answer with one of `statuses`."""
    found = answers(data)
    assert len(found) == 1, f"expected one answer, got {len(found)}: {data[:600]!r}"
    status, head, body = found[0]
    assert status in statuses, f"status {status}, expected one of {statuses}: {data[:400]!r}"
    assert b"content-type: application/problem+json" in head.lower(), data[:400]
    problem = json.loads(body)
    assert problem["status"] == status and problem["title"] and problem["type"], problem
    return status


SMUGGLED = b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\n\r\n"
# Each head below is refused with problem+json and the connection closed, so the
# request smuggled behind it is never answered.
BAD_HEADS = [
    pytest.param(b"POST /api/v1/listeners HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}, id="cl-and-te"),
    pytest.param(b"POST /api/v1/listeners HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n"
                 b"0\r\n\r\n", {400}, id="space-before-colon"),
    pytest.param(b"POST /api/v1/listeners HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\n",
                 {400}, id="two-lengths"),
    pytest.param(b"POST /api/v1/listeners HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", {400},
                 id="negative-length"),
    pytest.param(b"POST /api/v1/listeners HTTP/1.1\r\nHost: t\r\nContent-Length: +0\r\n\r\n", {400},
                 id="plus-length"),
    pytest.param(b"POST /api/v1/listeners HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n",
                 {400, 413}, id="huge-length"),
    pytest.param(b"POST /api/v1/listeners HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n",
                 {400, 501}, id="te-xchunked"),
    pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {400, 505}, id="http2-preface"),
    pytest.param(b"HELLO WORLD\r\n\r\n", {400}, id="not-http"),
    pytest.param(b"GET /api/v1/health HTTP/9.9\r\nHost: t\r\n\r\n", {400, 505}, id="http-9.9"),
    pytest.param(b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n", {400}, id="no-colon"),
    pytest.param(b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n", {400}, id="obs-fold"),
    pytest.param(b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\nX: a\nb\r\n\r\n", {400}, id="bare-lf"),
    pytest.param(b"GET /api/v1/health HTTP/1.1\r\n" + b"".join(
        b"X-Pad-%d: %s\r\n" % (i, b"v" * 1000) for i in range(200)) + b"Host: t\r\n\r\n",
        {431}, id="headers-past-the-pool"),
    pytest.param(b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\n" + b"a: b\r\n" * 3000 + b"\r\n",
                 {431}, id="many-small-headers"),
]


@pytest.mark.parametrize("head,statuses", BAD_HEADS)
def test_bad_heads_get_problem_json_and_a_closed_connection(
        gateway: Gateway, head: bytes, statuses: set[int]) -> None:
    with Unchanged(gateway):
        with socket.create_connection((gateway.host, gateway.port), timeout=5) as sock:
            sock.sendall(head + SMUGGLED)
            data, closed = read_until_closed(sock, 5)
        assert_problem_answer(data, statuses)
        assert closed, f"connection left open after {data[:200]!r}"


@pytest.mark.parametrize("junk", [
    pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, id="tls-hello"),
    pytest.param(b"POST /api/v1/listeners HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n",
                 id="te-xchunked"),
])
def test_what_cannot_be_http_is_answered_promptly(gateway: Gateway, junk: bytes) -> None:
    """The client keeps its side open: the gateway must not wait for more (it used to, for 30 s)."""
    with socket.create_connection((gateway.host, gateway.port), timeout=5) as sock:
        sock.sendall(junk)
        data, closed = read_until_closed(sock, 3)
    assert closed, f"no close within 3 s, got {data[:200]!r}"
    if data:
        assert_problem_answer(data, {400, 501})


def test_one_request_per_connection(gateway: Gateway) -> None:
    """Every head passes the gateway's checks: a second request on a connection is not served."""
    with socket.create_connection((gateway.host, gateway.port), timeout=5) as sock:
        sock.sendall(SMUGGLED)
        data, closed = read_until_closed(sock, 5)
        assert closed and [status for status, _, _ in answers(data)] == [200], data[:300]


# -- start-up refusal -----------------------------------------------------------


def test_non_loopback_admin_without_token_is_refused(start_gateway) -> None:
    gateway = start_gateway(admin="0.0.0.0:0", wait=False)
    try:
        rc = gateway.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("gateway kept running on 0.0.0.0 without a token")
    gateway.stop()
    assert rc != 0 and rc > 0, f"expected a non-zero exit, got {rc}"
    text = (gateway.output()).lower()
    assert "token" in text, f"the refusal should say a token is needed:\n{gateway.output()}"
    assert not any(line.startswith("admin listening") for line in gateway.stdout_lines)


def test_non_loopback_admin_with_token_starts(start_gateway) -> None:
    gateway = start_gateway(admin="0.0.0.0:0", token=TOKEN, wait=False)
    line = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and gateway.alive():
        line = next((l for l in gateway.stdout_lines if l.startswith("admin listening on")), None)
        if line:
            break
        time.sleep(0.05)
    assert line, f"did not start on 0.0.0.0 with a token:\n{gateway.output()}"
    port = int(line.rsplit(":", 1)[1])
    response = requests.get(f"http://127.0.0.1:{port}/api/v1/listeners", timeout=5,
                            headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    gateway.url = f"http://127.0.0.1:{port}"  # let the fixture's crash check cover it


def test_bad_flags_exit_non_zero(tmp_path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"admin": {"address": "127.0.0.1:+0"}}))
    for args in (["--admin", "nonsense"], ["--no-such-flag"], ["--config", "/nonexistent/splicegate.json"],
                 ["--admin", "127.0.0.1:+0"], ["--admin", "127.0.0.1:00"], ["--config", str(config)]):
        result = subprocess.run([str(BIN), *args], capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
        assert result.returncode != 0, f"{args}: exit 0\n{result.stdout!r}\n{result.stderr!r}"
        assert result.returncode > 0, f"{args}: crashed with signal {-result.returncode}\n{result.stderr!r}"
