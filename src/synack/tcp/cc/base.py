"""Congestion control: the interface the connection drives, and what every algorithm shares.

Theory of operation
-------------------
A controller owns two numbers, ``cwnd`` and ``ssthresh``, counted in segments
like Linux's ``snd_cwnd`` and ``snd_ssthresh`` (RFC 5681 counts bytes; the
sender may keep up to ``cwnd`` packets in flight). Loss detection,
retransmission and the shape of the window during recovery (PRR, RFC 6937, or
NewReno inflation, RFC 6582) belong to the connection. The controller is told
about events, each with ``now`` in integer microseconds, and never reads a clock:

``on_ack``
    New data acknowledged (cumulatively or by SACK) outside recovery. Nothing
    grows unless the sender was cwnd-limited (Linux ``tcp_is_cwnd_limited``;
    RFC 7661): an application-limited sender has not tested the window. Below
    ``ssthresh`` slow start (RFC 5681 3.1) as Linux ``tcp_slow_start()`` does:
    ``cwnd = min(cwnd + acked, ssthresh)`` and the ACKs left over go to the
    algorithm's congestion avoidance.
``on_enter_recovery``
    Fast retransmit (RFC 5681 3.2 step 2): ``ssthresh = ssthresh_after_loss()``
    and, to keep this object simple, ``cwnd = ssthresh`` at once. Linux walks
    cwnd down with PRR and ends there (``tcp_end_cwnd_reduction``); the
    connection does that walk itself.
``on_exit_recovery``
    The full ACK (RFC 6582 3.2 step 3, option 2): ``cwnd = ssthresh``.
``on_rto``
    RFC 5681 3.1: ``ssthresh = ssthresh_after_loss()``, ``cwnd = 1`` (the loss
    window). A timeout that repeats with no new data acknowledged since the
    last one keeps ssthresh, as RFC 5681 3.1 asks and Linux ``tcp_enter_loss``
    does, so back-to-back timeouts do not collapse ssthresh to 2; so does a
    timeout during fast recovery, whose loss already lowered it (Linux again).
``on_idle_restart``
    RFC 5681 4.1 and Linux ``tcp_cwnd_restart()``: see the method.

``ssthresh_after_loss`` has no side effects (Linux's ``->ssthresh()`` hook
records CUBIC's W_max as a side effect; here the loss handlers do that), so the
connection may call it for its own arithmetic.
"""

from __future__ import annotations

from typing import ClassVar, Self

INFINITE_SSTHRESH = 0x7FFFFFFF  # Linux TCP_INFINITE_SSTHRESH
INITIAL_CWND = 10               # RFC 6928; Linux TCP_INIT_CWND
_new = object.__new__


class CongestionControl:
    """Base of every algorithm: slow start, the loss responses, idle restart.

    Subclasses set ``name`` and implement :meth:`ssthresh_after_loss` and
    :meth:`_cong_avoid`; they may hook :meth:`_on_loss` and
    :meth:`_on_tx_start`.
    """

    name: ClassVar[str]

    __slots__ = ("_in_recovery", "_last_busy", "_rto_repeat", "cwnd", "cwnd_cnt",
                 "initial_cwnd", "mss", "ssthresh")

    def __init__(self, *, mss: int, now: int, initial_cwnd: int = INITIAL_CWND) -> None:
        if mss <= 0 or initial_cwnd <= 0:
            raise ValueError(f"mss ({mss}) and initial_cwnd ({initial_cwnd}) must be positive")
        self.mss = mss
        self.initial_cwnd = initial_cwnd
        self.cwnd = initial_cwnd                #: segments the sender may have in flight
        self.ssthresh = INFINITE_SSTHRESH       #: segments; slow start while cwnd < ssthresh
        self.cwnd_cnt = 0                       #: Linux snd_cwnd_cnt: ACKs toward the next +1
        self._last_busy = now                   # stands in for Linux lsndtime
        self._rto_repeat = False                # timed out, no new data acknowledged since
        self._in_recovery = False               # between on_enter_recovery and its exit

    def fresh(self, mss: int, now: int) -> Self:
        """A new controller of this one's class and parameters, as __init__ would make it
        for ``mss`` and ``now``: once per connection, from a prototype the host keeps
        per configuration (tcp/sizing.py), without __init__'s keyword arguments,
        checks and super() chain."""
        new = _new(type(self))
        new.mss = mss
        new.initial_cwnd = self.initial_cwnd
        new.cwnd = self.initial_cwnd
        new.ssthresh = INFINITE_SSTHRESH
        new.cwnd_cnt = 0
        new._last_busy = now
        new._rto_repeat = False
        new._in_recovery = False
        return new

    # -- events ----------------------------------------------------------------

    def on_ack(self, acked: int, now: int, rtt_us: int | None, in_flight: int,
               cwnd_limited: bool) -> None:
        """``acked`` segments newly acknowledged outside recovery (Linux tcp_cong_avoid).
        (Its arguments may be positional: the per-ACK callers pass them so, as CPython
        3.11 inlines no Python call with keyword arguments.)

        ``in_flight`` is the packets still in flight after this ACK, before the
        sender uses it to send more; ``rtt_us`` is this ACK's RTT sample, if any.
        """
        self._last_busy = now
        if acked <= 0:
            return
        self._rto_repeat = False
        if not cwnd_limited:
            return
        if self.cwnd < self.ssthresh:
            # Linux tcp_slow_start(): grow to ssthresh at most, spill the rest.
            cwnd = min(self.cwnd + acked, self.ssthresh)
            acked -= cwnd - self.cwnd
            self.cwnd = cwnd
            if not acked:
                return
        self._cong_avoid(acked, now)

    def on_enter_recovery(self, *, now: int, in_flight: int) -> None:
        """Fast retransmit: set ssthresh for this loss and drop cwnd to it (see module doc)."""
        ssthresh = self.ssthresh_after_loss()
        self._on_loss(now, in_flight, timeout=False)
        self.ssthresh = ssthresh
        self.cwnd = ssthresh
        self.cwnd_cnt = 0
        self._in_recovery = True
        self._last_busy = now

    def on_exit_recovery(self, *, now: int) -> None:
        """Recovery ended with a full ACK: deflate to ssthresh (RFC 6582 3.2 step 3).

        A no-op unless recovery is under way: a timeout during recovery ended it
        (Linux moves to the Loss state and never runs tcp_end_cwnd_reduction).
        """
        if self._in_recovery:
            self._in_recovery = False
            self.cwnd = self.ssthresh
        self._last_busy = now

    def on_rto(self, *, now: int, in_flight: int) -> None:
        """Retransmission timeout: ssthresh for the loss (once per episode), cwnd = 1."""
        if not (self._rto_repeat or self._in_recovery):
            self.ssthresh = self.ssthresh_after_loss()
        self._on_loss(now, in_flight, timeout=True)
        self._rto_repeat = True
        self._in_recovery = False
        self.cwnd = 1
        self.cwnd_cnt = 0
        self._last_busy = now

    def on_idle_restart(self, now: int, rto_us: int) -> None:   # (positional: inlined)
        """The sender is about to send with nothing in flight.

        Call it each time that happens (Linux ``CA_EVENT_TX_START`` and
        ``tcp_slow_start_after_idle_check``). Idle time runs from the last
        event this object saw, normally the ACK that emptied the pipe; Linux
        counts from the last send, at most one RTT earlier. After more than one
        RTO idle, Linux ``tcp_cwnd_restart()``: ssthresh keeps at least 3/4 of
        the old cwnd, and cwnd halves once for every RTO, or part of one, idle
        beyond the first, but never below ``min(initial_cwnd, cwnd)``, RFC 5681
        4.1's restart window (which the RFC applies at once).
        """
        idle = now - self._last_busy
        self._last_busy = now
        self._on_tx_start(idle, now)
        if idle <= rto_us:
            return
        cwnd = self.cwnd
        restart = min(self.initial_cwnd, cwnd)
        self.ssthresh = max(self.ssthresh, (cwnd >> 1) + (cwnd >> 2))  # tcp_current_ssthresh
        idle -= rto_us
        while idle > 0 and cwnd > restart:
            cwnd >>= 1
            idle -= rto_us
        self.cwnd = max(cwnd, restart)

    # -- for subclasses -------------------------------------------------------

    def ssthresh_after_loss(self) -> int:
        """The slow start threshold a loss at the current cwnd calls for (no side effects)."""
        raise NotImplementedError

    def _cong_avoid(self, acked: int, now: int) -> None:
        """Grow cwnd above ssthresh for ``acked`` segments."""
        raise NotImplementedError

    def _on_loss(self, now: int, in_flight: int, *, timeout: bool) -> None:
        """A loss is being handled; cwnd is still the value it was detected at."""

    def _on_tx_start(self, idle: int, now: int) -> None:
        """Sending resumes into an empty pipe after ``idle`` microseconds."""

    def _cong_avoid_ai(self, w: int, acked: int) -> None:
        """Linux tcp_cong_avoid_ai(): cwnd grows by 1 for every ``w`` segments acked."""
        if self.cwnd_cnt >= w:
            # Credit accumulated at a larger w: apply it gently.
            self.cwnd_cnt = 0
            self.cwnd += 1
        self.cwnd_cnt += acked
        if self.cwnd_cnt >= w:
            delta = self.cwnd_cnt // w
            self.cwnd_cnt -= delta * w
            self.cwnd += delta

    # -- observation -----------------------------------------------------------

    def state(self) -> dict[str, float]:
        """Numbers for traces and plots (segments)."""
        return {"cwnd": float(self.cwnd), "ssthresh": float(self.ssthresh),
                "cwnd_cnt": float(self.cwnd_cnt)}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} cwnd={self.cwnd} ssthresh={self.ssthresh}>"
