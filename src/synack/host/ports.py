"""Which sockets hold which local port, and how many TIME_WAIT entries hold each port.

``bind()``, the ephemeral port search and ``connect()`` ask "is this port taken?";
answering by scanning every socket made each of them O(sockets). The table keeps
the sockets by port (Linux keeps a bind hash, ``inet_bind_bucket``, for the same
reason), so each question looks only at the sockets on that one port.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synack.stack import Sock


class PortTable:
    """Sockets by local port, and TIME_WAIT entries counted by local port."""

    __slots__ = ("_by_port", "timewait", "visited")

    def __init__(self) -> None:
        self._by_port: dict[int, dict[int, Sock]] = {}
        self.timewait: Counter[int] = Counter()
        self.visited = 0          # sockets handed out by on(): tests count the work

    def add(self, sock: Sock) -> None:
        """``sock`` now has a local address."""
        assert sock.local is not None
        self._by_port.setdefault(sock.local[1], {})[sock.fd] = sock

    def remove(self, sock: Sock) -> None:
        """``sock`` is closed (or loses its address)."""
        if sock.local is None:
            return
        port = sock.local[1]
        socks = self._by_port.get(port)
        if socks is not None:
            socks.pop(sock.fd, None)
            if not socks:
                del self._by_port[port]

    def on(self, port: int) -> Iterable[Sock]:
        """The sockets bound to ``port``."""
        socks = self._by_port.get(port)
        if not socks:
            return ()
        self.visited += len(socks)
        return socks.values()

    def tw_add(self, port: int) -> None:
        self.timewait[port] += 1

    def tw_remove(self, port: int) -> None:
        n = self.timewait[port] - 1
        if n > 0:
            self.timewait[port] = n
        else:
            del self.timewait[port]
