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

from synack.tcp.connection import Connection
from synack.tcp.timeouts import TIME_WAIT_US
from synack.tcp.timewait import TimeWaitTable, bits_expires, bits_key, bits_since

Key = tuple[str, int, str, int]


_SHIFT = 32
_LOW = (1 << _SHIFT) - 1

Entry = Connection | int      # a connection, or a TIME_WAIT entry's packed int


def _key(conn: Connection) -> Key:
    local, remote = conn.local, conn.remote
    return (local[0], local[1], remote[0], remote[1])


class TimerQueue:
    """One lazy min-heap of host deadlines (see the module docstring).

    An entry is ``(when << 32 | n, obj)``: one int orders by time and then by push
    order (``n``, so that two objects are never compared). ``obj`` is a connection
    or a TIME_WAIT entry's packed int (:class:`~synack.tcp.timewait.TimeWaitTable`
    stores those); an int entry is live while the table holds that same value for
    its 4-tuple, so a restarted or ended TIME_WAIT makes it stale by itself.

    TIME_WAIT entries, which can be 100,000, mostly skip the heap: one that lasts
    the full 2*MSL from when it began expires in the order it was made, so it
    joins a FIFO (8 bytes, not a 90-byte heap entry). At the FIFO's head a stale
    entry is dropped (a restarted TIME_WAIT was pushed on the heap when it
    restarted); every entry behind the head began later, so the head's expiry is
    the FIFO's earliest (Linux keeps TIME_WAIT sockets on a timer of their own
    too, ``inet_twsk_schedule()``).
    """

    __slots__ = ("_dead", "_head_ok", "_heap", "_n", "_timewait", "_tw_dead", "_tw_fifo",
                 "_tw_last", "visited")

    def __init__(self, timewait: TimeWaitTable) -> None:
        self._heap: list[tuple[int, Entry]] = []
        self._n = 0
        self._dead = 0                  # entries whose connection has left the host
        self._tw_dead = 0               # TIME_WAIT entries ended or restarted early
        self._timewait = timewait       # the host's TIME_WAIT table, to tell live entries
        self._tw_fifo: deque[int] = deque()
        self._tw_last = -1              # expiry of the FIFO's last entry
        self._head_ok: int | None = None   # the FIFO head, found live
        self.visited = 0

    def __len__(self) -> int:
        return len(self._heap) + len(self._tw_fifo)

    def push(self, t: int, obj: Entry) -> None:
        """A new entry: look at ``obj`` by ``t`` (:meth:`arm` decides when one is due)."""
        self._n = n = (self._n + 1) & _LOW
        heapq.heappush(self._heap, (t << _SHIFT | n, obj))

    def _live(self, bits: int) -> bool:
        return self._timewait.raw(bits_key(bits)) == bits

    def arm(self, conn: Connection) -> None:
        """Make sure the heap looks at ``conn`` by its earliest deadline. Cheap: call it
        after anything that may have changed the connection's timers."""
        t = conn.next()
        if t is not None:
            at = conn.timer_at
            if at is None or t < at:
                conn.timer_at = t
                self.push(t, conn)

    def disarm(self, conn: Connection) -> None:
        """``conn`` left the host: every entry of it is now stale."""
        if conn.timer_at is not None:
            conn.timer_at = None
            self.dead()

    def dead(self, *, timewait: bool = False) -> None:
        """An entry's object left the host before its time (a connection closed; with
        ``timewait``, a TIME_WAIT was reset, reused or restarted). A stale entry would
        keep the object alive until its time comes -- for a keepalive timer, hours --
        so once such entries are an eighth of the heap, they are swept out (O(1)
        amortized). Stale TIME_WAIT entries (ints, mostly in the FIFO) are counted
        apart, against the whole queue: a connection closing does not make the
        FIFO of live TIME_WAIT entries be swept again."""
        if timewait:
            self._head_ok = None        # the FIFO head may be the entry that ended
            self._tw_dead = d = self._tw_dead + 1
            if d > 64 and d * 8 > len(self._heap) + len(self._tw_fifo):
                self.compact()
            return
        self._dead = d = self._dead + 1
        if d > 64 and d * 8 > len(self._heap):
            self._compact_heap()

    def compact(self) -> None:
        """Drop every stale entry now."""
        self._compact_heap()
        self.visited += len(self._tw_fifo)
        self._tw_fifo = deque(b for b in self._tw_fifo if self._live(b))
        self._tw_dead = 0

    def _compact_heap(self) -> None:
        keep = [(tn, obj) for tn, obj in self._heap
                if (self._live(obj) if isinstance(obj, int)
                    else obj.timer_at == tn >> _SHIFT)]
        heapq.heapify(keep)
        self.visited += len(self._heap)
        self._heap = keep
        self._dead = 0

    def add_timewait(self, bits: int) -> None:
        """Look at the TIME_WAIT entry packed in ``bits`` when it expires (again, when
        it was restarted: its old entry is stale now)."""
        self._head_ok = None            # the head may be the restarted entry's old value
        e = bits_expires(bits)
        if e == bits_since(bits) + TIME_WAIT_US and e >= self._tw_last:
            self._tw_fifo.append(bits)
            self._tw_last = e
        else:
            self.push(e, bits)

    def _tw_head(self) -> int | None:
        """The FIFO head's expiry, after dropping stale entries."""
        fifo = self._tw_fifo
        while fifo:
            bits = fifo[0]
            if bits is not self._head_ok:
                self.visited += 1
                if not self._live(bits):
                    fifo.popleft()
                    continue
                self._head_ok = bits
            return bits_expires(bits)
        return None

    def next_deadline(self) -> int | None:
        """The earliest true deadline, or None. Throws away stale entries on the way."""
        t = self._heap_deadline()   # (the link loop asks next_wake() each batch)
        f = self._tw_head() if self._tw_fifo else None
        if f is not None and (t is None or f < t):
            return f
        return t

    def next_wake(self) -> int | None:
        """A time no later than :meth:`next_deadline`, for a driver that wakes up for it
        (the link event loop): the top entry's time, without asking its connection
        whether its timers have moved since. One that moved later (an ACK restarted
        the retransmission timer) or was cleared costs one early wake-up, when
        :meth:`pop_due` finds it out and re-pushes or drops it -- as Linux lets a
        cleared retransmission timer fire and find nothing pending
        (``inet_csk_clear_xmit_timer()`` does not stop it). An earlier one was pushed
        by :meth:`arm`, so the bound holds; an entry whose connection left the host
        is dropped here as in :meth:`next_deadline`."""
        heap = self._heap
        t = None
        while heap:
            tn, obj = heap[0]
            at = tn >> _SHIFT
            self.visited += 1
            if not self._live(obj) if isinstance(obj, int) else obj.timer_at != at:
                heapq.heappop(heap)
                continue
            t = at
            break
        if self._tw_fifo:
            f = self._tw_head()
            if f is not None and (t is None or f < t):
                return f
        return t

    def _heap_deadline(self) -> int | None:
        heap = self._heap
        while heap:
            tn, obj = heap[0]
            t = tn >> _SHIFT
            self.visited += 1
            if isinstance(obj, int):
                if not self._live(obj):
                    heapq.heappop(heap)
                    continue
                return t                 # a packed entry's expiry never changes
            if obj.timer_at != t:
                heapq.heappop(heap)
                continue
            actual = obj.next()
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

    def pop_due(self, now: int) -> Entry | None:
        """The next connection or packed TIME_WAIT entry whose deadline is at or before
        ``now`` (taken out: re-arm a connection after running its timers), or None."""
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
