"""Servers that run on a synack Stack, event-driven, in the driver's thread.

``SERVERS`` maps the names ``synack serve`` takes to server classes; each is
built as ``cls(stack, port, **options)`` and polled by an
:class:`~synack.apps.runner.AppRunner`.
"""

from __future__ import annotations

from synack.apps.base import Handler, Server
from synack.apps.http import HttpServer
from synack.apps.runner import AppRunner
from synack.apps.simple import ChargenServer, DiscardServer, EchoServer

SERVERS: dict[str, type[Server]] = {
    "echo": EchoServer,
    "discard": DiscardServer,
    "chargen": ChargenServer,
    "http": HttpServer,
}

DEFAULT_PORTS = {"echo": 7, "discard": 9, "chargen": 19, "http": 80}
"""The well-known ports (RFC 862, 863, 864; HTTP)."""

__all__ = ["DEFAULT_PORTS", "SERVERS", "AppRunner", "Handler", "Server"]
