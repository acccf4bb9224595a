"""When to acknowledge: Linux's delayed ACK, quick-ACK mode and ping-pong mode.

RFC 9293 3.8.6.3 lets a receiver delay an ACK (up to 500 ms, and at least
every second full-sized segment). Linux (``__tcp_ack_snd_check``) ACKs at once
when

* more than one full-sized segment is unacknowledged (every second segment),
* it is in quick-ACK mode: the first segments of a connection, up to
  ``rcv_wnd / (2 * rcv_mss)`` but at most 16 of them (``tcp_incr_quickack``),
  and again after out-of-order data, so slow start is not slowed by delays,
* the segment is out of order or fills a hole (RFC 5681 4.2: immediately),

and otherwise arms the delayed-ACK timer for ``ato``, 40 ms at least
(``TCP_DELACK_MIN``). An ACK that leaves with data (piggybacked) cancels it.
In ping-pong (interactive) mode -- we answered received data quickly, or the
peer sent its FIN -- quick ACKs are off, so ACKs ride on the replies; the
delayed-ACK timer firing ends ping-pong mode.
"""

from __future__ import annotations

DELACK_MIN_US = 40_000   # Linux TCP_DELACK_MIN = HZ/25; also TCP_ATO_MIN
MAX_QUICKACKS = 16       # Linux TCP_MAX_QUICKACKS


class AckPolicy:
    """The receive side's decision: ACK now, or arm the delayed-ACK timer."""

    __slots__ = ("deadline", "last_data_rcv", "pingpong", "quick", "rcv_mss")

    def __init__(self, rcv_mss: int) -> None:
        self.quick = 0
        self.pingpong = False
        self.deadline: int | None = None
        self.rcv_mss = rcv_mss
        self.last_data_rcv: int | None = None

    def enter_quickack(self, rcv_wnd: int) -> None:
        """Linux tcp_enter_quickack_mode(): ACK the next segments at once."""
        # (Comparisons, not min() and max(): once per connection and more.)
        mss = self.rcv_mss
        quick = rcv_wnd // (2 * mss) if mss > 1 else rcv_wnd // 2
        if quick > MAX_QUICKACKS:  # noqa: PLR1730
            quick = MAX_QUICKACKS
        if quick < 2:  # noqa: PLR1730
            quick = 2
        if quick > self.quick:  # noqa: PLR1730
            self.quick = quick
        self.pingpong = False

    def observe(self, payload_len: int) -> None:
        """Linux tcp_measure_rcv_mss(): the largest segment seen sets 'full-sized'."""
        self.rcv_mss = max(self.rcv_mss, payload_len)

    def on_data(self, *, unacked: int, out_of_order: bool, now: int) -> bool:
        """In-sequence-space data arrived; True means ACK it now."""
        self.last_data_rcv = now
        if out_of_order:
            return True
        if unacked > self.rcv_mss:
            return True                       # a second full-sized segment
        if self.quick > 0 and not self.pingpong:
            return True
        if self.deadline is None:
            self.deadline = now + DELACK_MIN_US
        return False

    def on_fin(self, *, now: int) -> bool:
        """Linux tcp_fin() in ESTABLISHED: ping-pong mode, the ACK of the FIN is delayed;
        True means ACK now. Before any data arrived Linux's delayed-ACK engine has no
        ato yet (tcp_event_data_recv() sets it with the first data), so its delayed-ACK
        timer fires at the next tick (tcp_send_delayed_ack()): the FIN is ACKed at once."""
        self.pingpong = True
        if self.last_data_rcv is None:
            return True
        if self.deadline is None:
            self.deadline = now + DELACK_MIN_US
        return False

    def on_data_sent(self, now: int) -> None:
        """Linux tcp_event_data_sent(): answering within ato means an interactive flow."""
        if self.last_data_rcv is not None and now - self.last_data_rcv < DELACK_MIN_US:
            self.pingpong = True

    def on_ack_sent(self) -> None:
        """Any segment carrying our current ACK went out."""
        self.deadline = None
        if self.quick:
            self.quick -= 1

    def on_timer(self) -> None:
        """The delayed-ACK timer fired (Linux tcp_delack_timer_handler)."""
        self.deadline = None
        self.pingpong = False
