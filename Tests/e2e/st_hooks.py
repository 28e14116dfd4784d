"""Schemathesis hooks for the contract tests (loaded through SCHEMATHESIS_HOOKS).

Keeps every byte of a schemathesis run on this machine: the only base URL
allowed is loopback, and any generated address the gateway would bind or dial
(`listen`, `upstream`, a mediator's or split recipient's `address`, also
inside a listener's `mediators`/`splits` templates) is pointed at 127.0.0.1
(keeping the generated port text), so that the gateway never resolves a
generated host name, binds a non-loopback address or dials off the machine.

The gateway answers 502 when a (generated) mediator or split recipient
address refuses the connection, and 504 when a drain times out; both are
documented outcomes of those operations, not server errors, so schemathesis's
"server error" failures are dropped for exactly those answers (502 with type
`/problems/peer-unreachable`, 504 with `/problems/drain-timeout`). Any other
5xx still fails the run; status_code_conformance still checks that the status
is documented for the operation.

Operations marked `x-splicegate-stream: true` in the spec (the endless
Server-Sent Events stream) are left out of the run: a fuzzer cannot read an
endless response. Tests/e2e/test_operations.py covers the stream.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import schemathesis

ADDRESS_FIELDS = ("listen", "upstream", "address")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
STREAM_MARK = "x-splicegate-stream"
EXPECTED_5XX = {502: "/problems/peer-unreachable", 504: "/problems/drain-timeout"}
# A removal waits for the mediator's drain up to drain_timeout_ms; keep it below the
# run's request timeout (5 s) so a generated hop on a mediator that never finishes its
# output answers 504 instead of timing the request out.
MAX_DRAIN_TIMEOUT_MS = 2000


def loopback(value: Any) -> Any:
    """`anything:PORT` -> `127.0.0.1:PORT`; values without a colon stay (they are rejected as they are)."""
    if isinstance(value, str) and ":" in value:
        return "127.0.0.1:" + value.rsplit(":", 1)[1]
    return value


def confine(body: Any) -> None:
    """Rewrites address fields to loopback and caps drain timeouts, in place, at any depth."""
    if isinstance(body, dict):
        for field in ADDRESS_FIELDS:
            if field in body:
                body[field] = loopback(body[field])
        drain = body.get("drain_timeout_ms")
        if isinstance(drain, int) and not isinstance(drain, bool) and drain > MAX_DRAIN_TIMEOUT_MS:
            body["drain_timeout_ms"] = MAX_DRAIN_TIMEOUT_MS
        for value in body.values():
            confine(value)
    elif isinstance(body, list):
        for value in body:
            confine(value)


@schemathesis.hook
def before_load_schema(ctx: Any, raw_schema: dict[str, Any]) -> None:
    """Drops the operations marked as endless streams (and paths left with none)."""
    paths = raw_schema.get("paths") or {}
    for path in list(paths):
        item = paths[path]
        if not isinstance(item, dict):
            continue
        for method in list(item):
            operation = item[method]
            if isinstance(operation, dict) and operation.get(STREAM_MARK):
                del item[method]
        if not any(method in item for method in ("get", "put", "post", "delete", "options", "head", "patch", "trace")):
            del paths[path]


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    base = case.operation.schema.get_base_url() or os.environ.get("SPLICEGATE_E2E_URL", "")
    host = urlsplit(base).hostname if base else None
    if host is not None and host not in LOOPBACK_HOSTS:
        raise RuntimeError(f"refusing to send a request to {base}: loopback only")
    confine(case.body)


@schemathesis.hook
def filter_failure(ctx: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keeps every failure but a "server error" for a documented 502/504 problem."""
    if type(failure).__name__ != "ServerError":
        return True
    expected = EXPECTED_5XX.get(response.status_code)
    if expected is None:
        return True
    try:
        body = response.json()
    except Exception:  # not JSON: a real failure
        return True
    return not (isinstance(body, dict) and body.get("type") == expected
                and body.get("status") == response.status_code)
