"""In-process links: a loopback (``lo``) and a pair of joined ends.

:class:`Loopback` hands every packet the stack sends straight back to the same
stack, like Linux's ``lo``: a client and a server on one host talk through it.
:class:`LinkPair` joins two ends so two stacks, each driven by its own
:class:`~synack.link.loop.Loop`, talk to each other. No copies, no loss, no
MTU: a packet is a ``bytes`` object moved from one deque to another. Without
TSO (:attr:`Loopback.offload`, None by default) the stack's super-segments are
cut into MSS packets on the way (:mod:`synack.wire.gso`), so the peer sees what
a wire would carry.

Each end's :meth:`Loopback.fileno` is a doorbell descriptor that is readable
exactly while packets are queued for it, so a ``select()``-based loop wakes
when the other side (or the same side) sends.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from synack.link.wakeup import Doorbell
from synack.wire.gso import segment_all

if TYPE_CHECKING:
    from synack.stack import Offload


class Inbox:
    """The receiving half every in-process link shares: packets queued from any thread,
    handed to the loop in one batch, with a doorbell descriptor readable exactly while
    some wait (:meth:`fileno`). Subclasses add how packets leave (``send_packets``)."""

    offload: Offload | None = None

    def __init__(self, *, csum_valid: bool, name: str) -> None:
        self.name = name
        self.csum_valid = csum_valid
        self._queue: collections.deque[bytes] = collections.deque()
        self._lock = threading.Lock()
        self._bell = Doorbell()
        self._closed = False
        self.packets_in = 0
        self.packets_out = 0

    def fileno(self) -> int:
        """Readable while packets are queued for this end."""
        return self._bell.fileno()

    def recv_packets(self, *, now: int) -> list[tuple[bytes, bool]]:
        """Every queued packet, oldest first, in one batch."""
        with self._lock:
            if not self._queue:
                return []
            packets = list(self._queue)
            self._queue.clear()
            # Under the lock, a non-empty queue and a rung bell go together.
            self._bell.clear()
        self.packets_in += len(packets)
        ok = self.csum_valid
        return [(p, ok) for p in packets]

    def _deliver(self, packets: list[bytes]) -> None:
        with self._lock:
            if self._closed:
                return
            was_empty = not self._queue
            self._queue.extend(packets)
            if was_empty:
                self._bell.ring()

    def pending(self) -> int:
        """Packets queued and not yet read."""
        with self._lock:
            return len(self._queue)

    def close(self) -> None:
        """Release the descriptor; queued packets are dropped. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.clear()
        self._bell.close()


class Loopback(Inbox):
    """A :class:`~synack.link.base.Link` whose packets arrive at ``peer`` (itself by default).

    ``csum_valid`` is what :meth:`recv_packets` reports: True by default, as
    Linux's ``lo`` marks its packets CHECKSUM_UNNECESSARY (nothing on the way
    could have corrupted them).
    """

    def __init__(self, *, csum_valid: bool = True, name: str = "lo") -> None:
        super().__init__(csum_valid=csum_valid, name=name)
        self._peer: Loopback = self

    def send_packets(self, packets: list[tuple[bytes, int]], *, now: int) -> None:
        """Queue packets for the peer end. Dropped once either end is closed."""
        if self._closed or not packets:
            return
        off = self.offload
        if off is None or not off.tso_max:
            out = segment_all(packets, csum_partial=off is not None and off.tx_csum)
        else:
            out = [p for p, _gso in packets]
        self.packets_out += len(out)
        self._peer._deliver(out)

    def __repr__(self) -> str:
        return f"<Loopback {self.name} queued={len(self._queue)}>"


class LinkPair:
    """Two :class:`Loopback` ends joined: what ``a`` sends, ``b`` receives, and back.

    ``a, b = LinkPair()`` unpacks the two ends.
    """

    def __init__(self, *, csum_valid: bool = True) -> None:
        self.a = Loopback(csum_valid=csum_valid, name="pair-a")
        self.b = Loopback(csum_valid=csum_valid, name="pair-b")
        self.a._peer, self.b._peer = self.b, self.a

    def __iter__(self) -> Iterator[Loopback]:
        return iter((self.a, self.b))

    def close(self) -> None:
        """Close both ends. Idempotent."""
        self.a.close()
        self.b.close()
