"""Every deadline of a host in one heap: connection timers, SYN-queue entries, TIME_WAIT.

Theory of operation
-------------------
A connection's timers change on almost every segment (the retransmission timer
restarts on each ACK, the delayed-ACK timer comes and goes), so the heap is
*lazy*: an entry ``(when, n, obj, key)`` is a promise to look at ``obj`` no
later than ``when``, and nothing is ever removed from the middle.

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
import itertools
from collections.abc import Mapping
from typing import Any

from synack.tcp.connection import Connection
from synack.tcp.timewait import TimeWait


class TimerQueue:
    """One lazy min-heap of host deadlines (see the module docstring)."""

    __slots__ = ("_heap", "_n", "_timewait", "visited")

    def __init__(self, timewait: Mapping[Any, TimeWait]) -> None:
        self._heap: list[tuple[int, int, Connection | TimeWait, Any]] = []
        self._n = itertools.count()
        self._timewait = timewait       # the host's TIME_WAIT table, to tell live entries
        self.visited = 0

    def __len__(self) -> int:
        return len(self._heap)

    def arm(self, conn: Connection, key: Any) -> None:
        """Make sure the heap looks at ``conn`` by its earliest deadline. Cheap: call it
        after anything that may have changed the connection's timers."""
        t = conn.timers.next()
        if t is not None:
            at = conn.timer_at
            if at is None or t < at:
                conn.timer_at = t
                heapq.heappush(self._heap, (t, next(self._n), conn, key))

    @staticmethod
    def disarm(conn: Connection) -> None:
        """``conn`` left the host: every entry of it is now stale."""
        conn.timer_at = None

    def add_timewait(self, tw: TimeWait, key: Any) -> None:
        """Look at ``tw`` when it expires."""
        heapq.heappush(self._heap, (tw.expires, next(self._n), tw, key))

    def next_deadline(self) -> int | None:
        """The earliest true deadline, or None. Throws away stale entries on the way."""
        heap = self._heap
        while heap:
            t, _, obj, key = heap[0]
            self.visited += 1
            actual: int | None
            if isinstance(obj, TimeWait):
                if self._timewait.get(key) is not obj:
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
            heapq.heapreplace(heap, (actual, next(self._n), obj, key))
        return None

    def pop_due(self, now: int) -> tuple[Connection | TimeWait, Any] | None:
        """The next object whose deadline is at or before ``now`` (taken out of the
        heap: re-arm a connection after running its timers), or None."""
        t = self.next_deadline()
        if t is None or t > now:
            return None
        _, _, obj, key = heapq.heappop(self._heap)
        if isinstance(obj, Connection):
            obj.timer_at = None
        return obj, key
