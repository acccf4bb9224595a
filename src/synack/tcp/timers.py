"""A connection's timers, as data: one absolute deadline (microseconds) per kind.

Nothing here fires by itself. The connection sets and clears deadlines; its
owner asks :meth:`Timers.next` when to call ``tick(now=...)`` again, and the
connection then runs whichever deadlines have passed (smoltcp's model).
"""

from __future__ import annotations

from synack.tcp.rare import Brief

RTO, TLP, REO = 0, 1, 2   # Linux ICSK_TIME_RETRANS, ICSK_TIME_LOSS_PROBE, ICSK_TIME_REO_TIMEOUT


_DEADLINES = ("delack", "finwait2", "keepalive", "persist", "rtx", "timewait")


class Timers:
    """Deadlines of the retransmission, persist, delayed-ACK, FIN_WAIT_2, keepalive and
    TIME_WAIT timers.

    A :class:`~synack.tcp.connection.Connection` is its own Timers (a base class:
    ``conn.timers`` is ``conn``), one object less per connection; the class works
    on its own as well. The FIN_WAIT_2 and TIME_WAIT deadlines, set only while a
    connection closes, are :class:`~synack.tcp.rare.Brief` fields: no slot each, in
    the dict ``brief`` (which the connection's other Brief fields share).
    """

    __slots__ = ("brief", "delack", "keepalive", "persist", "rtx", "rtx_kind")

    finwait2 = Brief[int | None](None)   # orphaned FIN_WAIT_2: tcp_fin_timeout
    timewait = Brief[int | None](None)   # 2*MSL

    def __init__(self) -> None:
        self.rtx: int | None = None        # retransmission (SYN, SYN-ACK, data, FIN)
        # What the rtx deadline stands for (Linux icsk_pending): RTO, the tail loss probe
        # or RACK's reordering timeout; the three share the timer as in Linux.
        self.rtx_kind = RTO
        self.persist: int | None = None    # zero-window probes
        self.delack: int | None = None     # delayed ACK
        self.keepalive: int | None = None  # SO_KEEPALIVE probes
        self.brief: dict[str, object] | None = None   # the Brief fields' values, once set

    def next(self) -> int | None:
        """The earliest deadline, or None when no timer is armed."""
        # Asked after every packet for every connection: unrolled, no tuple, no loop.
        best = self.rtx
        t = self.persist
        if t is not None and (best is None or t < best):
            best = t
        t = self.delack
        if t is not None and (best is None or t < best):
            best = t
        t = self.keepalive
        if t is not None and (best is None or t < best):
            best = t
        brief = self.brief
        if brief is not None:
            # The Brief fields' dict read directly (None is their default): no call each.
            t = brief.get("finwait2")  # type: ignore[assignment]
            if t is not None and (best is None or t < best):
                best = t
            t = brief.get("timewait")  # type: ignore[assignment]
            if t is not None and (best is None or t < best):
                best = t
        return best

    def clear(self) -> None:
        """Disarm everything (the connection closed)."""
        self.rtx = self.persist = self.delack = self.keepalive = None
        brief = self.brief
        if brief is not None and ("finwait2" in brief or "timewait" in brief):
            self.finwait2 = self.timewait = None

    def armed(self) -> dict[str, int]:
        """The armed timers by name, for display."""
        return {k: v for k in _DEADLINES if (v := getattr(self, k)) is not None}
