"""The host's side of a forwarder: SYNs to any address and port, held for the application.

Theory of operation
-------------------
With a :class:`Forwarding` in ``stack.forward``, the stack takes IPv4 packets
for every destination address, not only its own, and every segment that finds
neither a connection nor a listener comes here (:meth:`Forwarding.segment`)
instead of being answered with RST. This is gVisor's ``tcp.Forwarder`` shape:

* a new SYN becomes a *request*, held (nothing is sent) until the application
  decides; its 4-tuple is queued in :attr:`Forwarding.new` and the forwarder's
  descriptor is marked touched so the driver (:mod:`synack.forwarder`) wakes.
  A retransmitted SYN for a request still held is absorbed; at most
  ``max_in_flight`` requests are held (gVisor's maxInFlight), more SYNs are
  dropped and counted, and the peer's SYN retries ask again later.
* :meth:`accept` replays the held SYN into a listener made for that
  destination (address, port): the ordinary handshake follows (SYN,ACK,
  retransmissions, SYN cookies are not used), and :meth:`take` hands the
  established connection a descriptor, as ``accept()`` would.
* :meth:`reject` answers the held SYN with RST,ACK, as a closed port does
  (RFC 9293 3.10.7.1).

Per-destination listeners live here, not in ``stack.listeners``: they must not
catch the next SYN to the same address and port, which is a request of its own.
The stack finds a SYN_RECEIVED child's listener through :meth:`listener_of`.
"""

from __future__ import annotations

import collections
import errno
import os
from typing import TYPE_CHECKING

from synack.host.records import Addr, Key, Sock
from synack.tcp.listener import Listener
from synack.tcp.state import State
from synack.wire.tcp import ACK, RST, SYN, TcpSegment

if TYPE_CHECKING:
    from synack.stack import Stack

MAX_IN_FLIGHT = 1024
"""Requests held at once by default (gVisor's tcp.NewForwarder maxInFlight is the caller's)."""


class Forwarding:
    """Catch-all for a :class:`~synack.stack.Stack`: install with :meth:`install`."""

    def __init__(self, stack: Stack, *, max_in_flight: int = MAX_IN_FLIGHT,
                 backlog: int = 128) -> None:
        self.stack = stack
        self.max_in_flight = max_in_flight
        self.backlog = backlog
        self.fd = stack.socket()            # marked touched when a request arrives
        self.pending: dict[Key, TcpSegment] = {}    # held SYNs, by 4-tuple
        self.new: collections.deque[Key] = collections.deque()
        self.lsts: dict[Addr, Listener] = {}        # per destination (address, port)
        self.requests = 0
        self.accepted = 0
        self.rejected = 0

    def install(self) -> None:
        """Make the stack send unmatched segments (to any address) here."""
        self.stack.forward = self

    # ------------------------------------------------------------ called by the stack
    def segment(self, stack: Stack, key: Key, seg: TcpSegment, now: int) -> None:
        """A segment that found no connection and no listener (Stack.receive)."""
        flags = seg.flags
        lst = self.lsts.get((key[0], key[1]))
        if lst is not None and (key[2], key[3]) in lst.syn_queue:
            stack._to_listener(lst, key, seg, now)
            return
        held = self.pending.get(key)
        if held is not None:
            if flags & RST:                   # the peer gave up before we decided
                del self.pending[key]
                stack.stats["forward: requests reset by peer"] += 1
            return                            # a retransmitted SYN: still deciding
        if flags & SYN and not flags & (ACK | RST):
            if len(self.pending) >= self.max_in_flight:
                stack.stats["forward: SYNs dropped, too many in flight"] += 1
                return
            self.pending[key] = seg
            self.new.append(key)
            self.requests += 1
            stack.touched.add(self.fd)
            return
        stack._reset_closed(key[0], key[2], seg, "no socket")

    def listener_of(self, key: Key) -> Listener | None:
        """The listener whose SYN queue holds ``key``'s child (Stack._syn_queue_of)."""
        lst = self.lsts.get((key[0], key[1]))
        if lst is not None and (key[2], key[3]) in lst.syn_queue:
            return lst
        return None

    # ------------------------------------------------------------ called by the driver
    def take_new(self) -> list[Key]:
        """The requests that arrived since the last call, oldest first."""
        out = list(self.new)
        self.new.clear()
        return [k for k in out if k in self.pending]

    def accept(self, key: Key, *, now: int) -> int:
        """Answer the held SYN (SYN,ACK); returns the descriptor to wait on for :meth:`take`.

        ConnectionResetError if ``key`` is no longer held (the client reset it, or it
        was decided already).
        """
        stack = self.stack
        syn = self.pending.pop(key, None)
        if syn is None:
            raise ConnectionResetError(errno.ECONNRESET,
                                       f"{os.strerror(errno.ECONNRESET)}: no request {key}")
        lst = self._listener((key[0], key[1]))
        self.accepted += 1
        stack._to_listener(lst, key, syn, now)
        return lst.fd

    def take(self, key: Key) -> int | None:
        """The established connection's new descriptor; None while the handshake runs.

        Raises ConnectionResetError when it ended before completing (reset, or the
        SYN,ACK retries ran out) -- the peer is gone.
        """
        stack = self.stack
        lst = self.lsts.get((key[0], key[1]))
        remote = (key[2], key[3])
        if lst is None:
            raise ConnectionResetError(errno.ECONNRESET, "the handshake did not complete")
        if remote in lst.syn_queue:
            return None
        for conn in lst.accept_queue:
            if conn.remote == remote:
                lst.accept_queue.remove(conn)
                break
        else:
            self._maybe_drop(lst)
            raise ConnectionResetError(errno.ECONNRESET, "the handshake did not complete")
        fd = stack.socket()
        child = Sock(fd, opts=conn.opts, local=conn.local, remote=conn.remote, conn=conn)
        stack.socks[fd] = child
        stack.ports.add(child)
        conn.fd = fd
        self._maybe_drop(lst)
        return fd

    def reject(self, key: Key, *, reset: bool = True) -> None:
        """Refuse a held request: RST,ACK (``reset``), or drop it without a word."""
        syn = self.pending.pop(key, None)
        if syn is None:
            return
        self.rejected += 1
        if reset:
            self.stack._reset_closed(key[0], key[2], syn, "forwarder rejected")

    def close(self, *, now: int) -> None:
        """Uninstall: held requests are reset, half-open handshakes dropped."""
        stack = self.stack
        if stack.forward is self:
            stack.forward = None
        for key in list(self.pending):
            self.reject(key)
        for lst in list(self.lsts.values()):
            for child in list(lst.syn_queue.values()) + list(lst.accept_queue):
                # As Stack.close does for a listener (Linux inet_csk_listen_stop()).
                child.abort(now=now, why="forwarder closed",
                            send_rst=child.state is not State.SYN_RECEIVED)
                key = (child.local[0], child.local[1], child.remote[0], child.remote[1])
                stack._drain(key, child)
                stack.timers.disarm(child)
                child.mem_release()
                stack.conns.pop(key, None)
            lst.syn_queue.clear()
            lst.accept_queue.clear()
            self._maybe_drop(lst)
        stack.socks.pop(self.fd, None)

    # ------------------------------------------------------------ internals
    def _listener(self, local: Addr) -> Listener:
        lst = self.lsts.get(local)
        if lst is None:
            stack = self.stack
            fd = stack.socket()
            lst = Listener(local, self.backlog, stack.cfg)
            lst.fd = fd
            stack.socks[fd].listener = lst
            self.lsts[local] = lst
        return lst

    def _maybe_drop(self, lst: Listener) -> None:
        """Forget a destination's listener once nothing is in its queues."""
        if lst.syn_queue or lst.accept_queue:
            return
        if self.lsts.get(lst.local) is lst:
            del self.lsts[lst.local]
        self.stack.socks.pop(lst.fd, None)
