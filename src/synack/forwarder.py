"""Terminate a whole network's TCP: accept connections to any address and port.

This is gVisor's ``tcp.Forwarder`` for a synack :class:`~synack.api_host.Host`.
Every SYN that finds no listener -- to any destination address, any port --
becomes a :class:`ForwardRequest` handed to your handler, in a thread of its
own. The handler sees the 4-tuple and either accepts (the handshake completes
and it gets a :class:`synack.socket.socket`) or rejects (the client gets RST)::

    def handler(req: ForwardRequest) -> None:
        if req.dst[1] != 80:
            req.reject()
            return
        conn = req.accept()                       # a synack.socket.socket
        upstream = socket.create_connection(...)  # e.g. the host's own kernel socket
        splice(conn, upstream)

    fwd = Forwarder(host, handler)                # host: synack.api_host.Host

Until the handler decides, nothing is sent: the client's SYN retries keep the
request alive (a rejected or undecided one is answered with RST when the
handler returns). Put the stack where the traffic goes -- the default route of
a namespace over a TUN or TAP, or a :class:`synack.link.pipe.PipeLink` on your
own tunnel -- and this is tun2socks or a transparent proxy.
"""

from __future__ import annotations

import errno
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

from synack.host.forward import MAX_IN_FLIGHT, Forwarding
from synack.host.records import Addr, Key

if TYPE_CHECKING:
    from synack.api_host import Host
    from synack.socket import socket

__all__ = ["ForwardRequest", "Forwarder", "splice"]

ACCEPT_TIMEOUT_S = 75.0
"""How long :meth:`ForwardRequest.accept` waits for the handshake by default
(Linux gives up a SYN,ACK after 5 retries, about 63 s)."""


class ForwardRequest:
    """One connection attempt: :attr:`id` is (local ip, local port, remote ip, remote port),
    where "local" is the destination the client asked for."""

    def __init__(self, forwarder: Forwarder, key: Key) -> None:
        self._fwd = forwarder
        self.id: Key = key
        self.decided = False

    @property
    def dst(self) -> Addr:
        """The address and port the client connected to."""
        return self.id[0], self.id[1]

    @property
    def src(self) -> Addr:
        """The client's address and port."""
        return self.id[2], self.id[3]

    def accept(self, timeout: float | None = ACCEPT_TIMEOUT_S) -> socket:
        """Complete the handshake and return the connection as a :class:`synack.socket.socket`.

        Raises ConnectionResetError if the client went away first, TimeoutError
        if the handshake outlasted ``timeout`` seconds, OSError(EINVAL) if the
        request was decided already.
        """
        from synack.socket import socket as synack_socket

        fwd = self._fwd
        host = fwd.host
        loop = host.loop
        if self.decided:
            raise OSError(errno.EINVAL, "request already accepted or rejected")
        self.decided = True
        end = None if timeout is None else time.monotonic() + timeout
        with loop.lock:
            lst_fd = fwd.fwd.accept(self.id, now=loop.now())
        loop.wake()
        with loop.lock:
            while True:
                fd = fwd.fwd.take(self.id)
                if fd is not None:
                    break
                if not loop.running:
                    raise OSError(errno.ENETDOWN, "synack loop is not running")
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("timed out")
                # Success touches the listener's descriptor; failure does not, so look again
                # now and then.
                loop.wait_fd(lst_fd, 0.25 if left is None else min(left, 0.25))
        return synack_socket(host=host, _fd=fd)

    def reject(self, *, reset: bool = True) -> None:
        """Refuse: the client gets RST,ACK (``reset``) or no answer at all."""
        if self.decided:
            return
        self.decided = True
        loop = self._fwd.host.loop
        with loop.lock:
            self._fwd.fwd.reject(self.id, reset=reset)
        loop.wake()

    def __repr__(self) -> str:
        return f"<ForwardRequest {self.src[0]}:{self.src[1]} -> {self.dst[0]}:{self.dst[1]}>"


class Forwarder:
    """Hand every connection to any address and port on ``host`` to ``handler``.

    ``handler(request)`` runs in a new daemon thread per request; when it
    returns without deciding, the request is rejected. ``max_in_flight`` caps
    the requests waiting for a decision (more SYNs are dropped; the client
    retries). :meth:`close` uninstalls it (held requests get RST).
    """

    def __init__(self, host: Host, handler: Callable[[ForwardRequest], Any], *,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.host = host
        self.handler = handler
        loop = host.loop
        with loop.lock:
            if host.stack.forward is not None:
                raise RuntimeError("this host has a forwarder already")
            self.fwd = Forwarding(host.stack, max_in_flight=max_in_flight,
                                  backlog=max_in_flight)
            self.fwd.install()
        self._closed = False
        loop.watch(self.fwd.fd, self._on_requests)

    def _on_requests(self, now: int) -> None:
        """In the loop thread: start a handler thread for each new request."""
        for key in self.fwd.take_new():
            req = ForwardRequest(self, key)
            threading.Thread(target=self._run, args=(req,), daemon=True,
                             name=f"synack-forward-{key[2]}:{key[3]}").start()

    def _run(self, req: ForwardRequest) -> None:
        try:
            self.handler(req)
        except Exception:  # noqa: BLE001 - one handler's bug must not end the forwarder
            print(f"synack forwarder: handler failed for {req!r}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
        finally:
            if not req.decided and not self._closed:
                req.reject()

    def close(self) -> None:
        """Stop forwarding: held requests are reset, half-open handshakes dropped."""
        if self._closed:
            return
        self._closed = True
        loop = self.host.loop
        loop.unwatch(self.fwd.fd, self._on_requests)
        with loop.lock:
            self.fwd.close(now=loop.now())
        loop.wake()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def splice(a: Any, b: Any, *, bufsize: int = 1 << 16) -> tuple[int, int]:
    """Copy both ways between two connected sockets until both directions end.

    Each end's EOF is passed on as a shutdown(SHUT_WR) of the other, so half-closes
    carry through; both sockets are closed at the end. Returns (bytes a->b, bytes b->a).
    Works with any mix of synack and stdlib sockets.
    """
    counts = [0, 0]

    def pump(src: Any, dst: Any, i: int) -> None:
        try:
            while True:
                data = src.recv(bufsize)
                if not data:
                    break
                dst.sendall(data)
                counts[i] += len(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(1)   # SHUT_WR
            except OSError:
                pass

    t = threading.Thread(target=pump, args=(b, a, 1), daemon=True, name="synack-splice")
    t.start()
    pump(a, b, 0)
    t.join()
    for s in (a, b):
        try:
            s.close()
        except OSError:
            pass
    return counts[0], counts[1]
