"""The classic test services: echo (RFC 862), discard (RFC 863), chargen (RFC 864)."""

from __future__ import annotations

from collections.abc import Iterator

from synack.apps.base import Handler, Server


class EchoHandler(Handler):
    """Send back every byte received; close once the peer has closed and all is echoed."""

    def on_data(self, data: bytes, now: int) -> None:
        self.out += data             # write(), inline

    def on_eof(self, now: int) -> None:
        self.closing = True          # Handler.on_eof(): finish(), inline


class EchoServer(Server):
    """RFC 862: "send back any data it receives" until the calling user terminates."""

    handler = EchoHandler
    name = "echo"


class DiscardHandler(Handler):
    """Throw away every byte received; close when the peer closes."""


class DiscardServer(Server):
    """RFC 863: "simply throw away any data it receives"."""

    handler = DiscardHandler
    name = "discard"


CHARGEN_LINE = 72
"""RFC 864's "popular pattern": 72 printable characters per line, then CR LF."""

_PRINTABLE = bytes(range(32, 127))   # the 95 printing ASCII characters


def chargen_cycle() -> bytes:
    """The 95 lines of the pattern; each starts one character further on, then it repeats."""
    ring = _PRINTABLE * 2
    return b"".join(ring[i:i + CHARGEN_LINE] + b"\r\n" for i in range(len(_PRINTABLE)))


_CYCLE = chargen_cycle()


def chargen_stream(chunk: int = 64 * 1024) -> Iterator[bytes]:
    """The endless chargen pattern in chunks of about ``chunk`` bytes, without building it."""
    reps = max(chunk // len(_CYCLE), 1)
    block = _CYCLE * reps
    while True:
        yield block


class ChargenHandler(Handler):
    """Stream the pattern until the peer closes; anything received is discarded."""

    def on_open(self, now: int) -> None:
        self.send_body(chargen_stream())

    def on_eof(self, now: int) -> None:
        # RFC 864: the stream "continues until the calling user terminates the connection".
        self.body = None
        self.out.clear()
        self.finish()


class ChargenServer(Server):
    """RFC 864 over TCP."""

    handler = ChargenHandler
    name = "chargen"
