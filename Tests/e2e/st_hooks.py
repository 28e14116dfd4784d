"""Schemathesis hooks for the contract tests (loaded through SCHEMATHESIS_HOOKS).

Keeps every byte of a schemathesis run on this machine: the only base URL
allowed is loopback, and any generated `listen`/`upstream` address is pointed
at 127.0.0.1 (keeping the generated port text), so that the gateway never
resolves a generated host name or binds a non-loopback address.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import schemathesis

ADDRESS_FIELDS = ("listen", "upstream")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def loopback(value: Any) -> Any:
    """`anything:PORT` -> `127.0.0.1:PORT`; values without a colon stay (they are rejected as they are)."""
    if isinstance(value, str) and ":" in value:
        return "127.0.0.1:" + value.rsplit(":", 1)[1]
    return value


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    base = case.operation.schema.get_base_url() or os.environ.get("SPLICEGATE_E2E_URL", "")
    host = urlsplit(base).hostname if base else None
    if host is not None and host not in LOOPBACK_HOSTS:
        raise RuntimeError(f"refusing to send a request to {base}: loopback only")
    body = case.body
    if isinstance(body, dict):
        for field in ADDRESS_FIELDS:
            if field in body:
                body[field] = loopback(body[field])
