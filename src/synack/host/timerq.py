"""Every deadline of a host in one heap: connection timers, SYN-queue entries, TIME_WAIT.

Theory of operation
-------------------
A connection's timers change on almost every segment (the retransmission timer
restarts on each ACK, the delayed-ACK timer comes and goes), so the heap is
*lazy*: an entry is a promise to look at ``obj`` no later than ``when``, and
nothing is ever removed from the middle.

* A connection records in ``conn.timer_at`` the time of its one valid entry.
  :meth:`TimerQueue.arm` pushes a new entry only when the connection's earliest
  deadline is *earlier* than that (or it has none); the older entry is then
  stale (its time no longer equals ``timer_at``) and is dropped when it reaches
  the top. A timer that moved *later* keeps its entry, which is re-pushed at the
  true time when it reaches the top. :meth:`disarm` (the connection left the
  host's tables) makes every entry of it stale at once.
* A TIME_WAIT entry is valid while the host's TIME_WAIT table still maps its key
  to it; a re-ACKed FIN that extends it is found the same way, at the top.

So :meth:`next_deadline` is O(1) apart from stale entries it throws away (each
pushed once, dropped once), and :meth:`pop_due` touches only what fell due --
never the connections that merely exist. :attr:`visited` counts the entries
looked at, so a test can prove the work does not grow with idle connections.
This is the role of Linux's timer wheel (``kernel/time/timer.c``) for
``icsk_retransmit_timer`` and friends, and of ``inet_twsk_schedule()`` for
TIME_WAIT.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping

from synack.tcp.connection import Connection
from synack.tcp.timeouts import TIME_WAIT_US
from synack.tcp.timewait import TimeWait

Key = tuple[str, int, str, int]


_SHIFT = 32
_LOW = (1 << _SHIFT) - 1


def _key(obj: Connection | TimeWait) -> Key:
    local, remote = obj.local, obj.remote
    return (local[0], local[1], remote[0], remote[1])


class TimerQueue:
    """One lazy min-heap of host deadlines (see the module docstring).

    An entry is ``(when << 32 | n, obj)``: one int orders by time and then by push
    order (``n``, so that two objects are never compared), and the 4-tuple key is
    recomputed from ``obj`` when needed.

    TIME_WAIT entries, which can be 100,000, mostly skip the heap: one that lasts
    the full 2*MSL from when it began expires in the order it was made, so it
    joins a FIFO (8 bytes, not a 90-byte heap entry). At the FIFO's head an entry
    that ended early is dropped, and one whose TIME_WAIT was restarted (a FIN
    again) moves to the heap; every entry behind the head began later, so the
    head's expiry is the FIFO's earliest (Linux keeps TIME_WAIT sockets on a
    timer of their own too, ``inet_twsk_schedule()``).
    """

    __slots__ = ("_dead", "_head_ok", "_heap", "_n", "_timewait", "_tw_fifo", "_tw_last",
                 "visited")

    def __init__(self, timewait: Mapping[Key, TimeWait]) -> None:
        self._heap: list[tuple[int, Connection | TimeWait]] = []
        self._n = 0
        self._dead = 0                  # entries whose object has left the host
        self._timewait = timewait       # the host's TIME_WAIT table, to tell live entries
        self._tw_fifo: deque[TimeWait] = deque()
        self._tw_last = -1              # expiry of the FIFO's last entry
        self._head_ok: TimeWait | None = None   # the FIFO head, found live
        self.visited = 0

    def __len__(self) -> int:
        return len(self._heap) + len(self._tw_fifo)

    def _push(self, t: int, obj: Connection | TimeWait) -> None:
        self._n = n = (self._n + 1) & _LOW
        heapq.heappush(self._heap, (t << _SHIFT | n, obj))

    def arm(self, conn: Connection) -> None:
        """Make sure the heap looks at ``conn`` by its earliest deadline. Cheap: call it
        after anything that may have changed the connection's timers."""
        t = conn.timers.next()
        if t is not None:
            at = conn.timer_at
            if at is None or t < at:
                conn.timer_at = t
                self._push(t, conn)

    def disarm(self, conn: Connection) -> None:
        """``conn`` left the host: every entry of it is now stale."""
        if conn.timer_at is not None:
            conn.timer_at = None
            self.dead()

    def dead(self) -> None:
        """An entry's object left the host before its time (a connection closed, a
        TIME_WAIT was reset or reused). A stale entry would keep the object alive
        until its time comes -- for a keepalive timer, hours -- so once such
        entries are an eighth of the heap, they are swept out (O(1) amortized)."""
        self._dead += 1
        self._head_ok = None
        if self._dead > 64 and self._dead * 8 > len(self):
            self.compact()

    def compact(self) -> None:
        """Drop every stale entry now."""
        tw = self._timewait
        keep = [(tn, obj) for tn, obj in self._heap
                if (tw.get(_key(obj)) is obj if isinstance(obj, TimeWait)
                    else obj.timer_at == tn >> _SHIFT)]
        heapq.heapify(keep)
        self.visited += len(self._heap) + len(self._tw_fifo)
        self._heap = keep
        self._tw_fifo = deque(t for t in self._tw_fifo if tw.get(_key(t)) is t)
        self._dead = 0

    def add_timewait(self, tw: TimeWait) -> None:
        """Look at ``tw`` when it expires."""
        e = tw.expires
        if e == tw.since + TIME_WAIT_US and e >= self._tw_last:
            self._tw_fifo.append(tw)
            self._tw_last = e
        else:
            self._push(e, tw)

    def _tw_head(self) -> int | None:
        """The FIFO head's expiry, after dropping ended and moving restarted entries."""
        fifo = self._tw_fifo
        while fifo:
            tw = fifo[0]
            if tw is not self._head_ok:
                self.visited += 1
                if self._timewait.get(_key(tw)) is not tw:
                    fifo.popleft()
                    continue
                self._head_ok = tw
            e = tw.expires
            if e != tw.since + TIME_WAIT_US:        # restarted: the heap takes it
                fifo.popleft()
                self._head_ok = None
                self._push(e, tw)
                continue
            return e
        return None

    def next_deadline(self) -> int | None:
        """The earliest true deadline, or None. Throws away stale entries on the way."""
        t = self._heap_deadline()
        f = self._tw_head() if self._tw_fifo else None
        if f is not None and (t is None or f < t):
            return f
        return t

    def _heap_deadline(self) -> int | None:
        heap = self._heap
        while heap:
            tn, obj = heap[0]
            t = tn >> _SHIFT
            self.visited += 1
            actual: int | None
            if isinstance(obj, TimeWait):
                if self._timewait.get(_key(obj)) is not obj:
                    heapq.heappop(heap)
                    continue
                actual = obj.expires
            else:
                if obj.timer_at != t:
                    heapq.heappop(heap)
                    continue
                actual = obj.timers.next()
                if actual is None:
                    obj.timer_at = None
                    heapq.heappop(heap)
                    continue
                obj.timer_at = actual
            if actual == t:
                return t
            self._n = n = (self._n + 1) & _LOW
            heapq.heapreplace(heap, (actual << _SHIFT | n, obj))
        return None

    def pop_due(self, now: int) -> Connection | TimeWait | None:
        """The next object whose deadline is at or before ``now`` (taken out of the
        heap: re-arm a connection after running its timers), or None."""
        t = self._heap_deadline()
        f = self._tw_head() if self._tw_fifo else None
        if f is not None and f <= now and (t is None or f < t):
            self._head_ok = None
            return self._tw_fifo.popleft()
        if t is None or t > now:
            return None
        _, obj = heapq.heappop(self._heap)
        if isinstance(obj, Connection):
            obj.timer_at = None
        return obj
