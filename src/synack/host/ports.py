"""Which sockets hold which local port, and how many TIME_WAIT entries hold each port.

``bind()``, the ephemeral port search and ``connect()`` ask "is this port taken?";
answering by scanning every socket made each of them O(sockets). The table keeps
the sockets by port (Linux keeps a bind hash, ``inet_bind_bucket``, for the same
reason), so each question looks only at the sockets on that one port.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar


class Bound(Protocol):
    """What the table keeps: a socket with a descriptor and maybe a local address
    (:class:`~synack.host.records.Sock`, :class:`~synack.host.udp.UdpSock`)."""

    fd: int
    local: tuple[str, int] | None


Sock = TypeVar("Sock", bound=Bound)


class PortTable(Generic[Sock]):
    """Sockets by local port, and TIME_WAIT entries counted by local port.

    A port held by one socket (every client connection's ephemeral port) maps to
    that :class:`Sock` itself; only a shared port (a listener and its accepted
    connections) gets a dict by descriptor, kept until the port is free -- a dict per
    port would cost 200 bytes for each of 50,000 client connections.
    """

    __slots__ = ("_by_port", "timewait", "visited")

    def __init__(self) -> None:
        self._by_port: dict[int, Sock | dict[int, Sock]] = {}
        self.timewait: Counter[int] = Counter()
        self.visited = 0          # sockets handed out by on(): tests count the work

    def add(self, sock: Sock) -> None:
        """``sock`` now has a local address."""
        assert sock.local is not None
        port = sock.local[1]
        held = self._by_port.get(port)
        if held is None:
            self._by_port[port] = sock
        elif isinstance(held, dict):
            held[sock.fd] = sock
        elif held is not sock:
            self._by_port[port] = {held.fd: held, sock.fd: sock}

    def remove(self, sock: Sock) -> None:
        """``sock`` is closed (or loses its address)."""
        if sock.local is None:
            return
        port = sock.local[1]
        held = self._by_port.get(port)
        if held is sock:
            del self._by_port[port]
        elif isinstance(held, dict):
            held.pop(sock.fd, None)
            # A shared port keeps its dict down to one socket (a listener between
            # connections would otherwise make a new one for each it accepts).
            if not held:
                del self._by_port[port]

    def on(self, port: int) -> Iterable[Sock]:
        """The sockets bound to ``port``."""
        held = self._by_port.get(port)
        if held is None:
            return ()
        if isinstance(held, dict):
            self.visited += len(held)
            return held.values()
        self.visited += 1
        return (held,)

    def tw_add(self, port: int) -> None:
        """A TIME_WAIT entry holds ``port``."""
        self.timewait[port] += 1

    def tw_remove(self, port: int) -> None:
        """A TIME_WAIT entry on ``port`` ended."""
        n = self.timewait[port] - 1
        if n > 0:
            self.timewait[port] = n
        else:
            del self.timewait[port]
