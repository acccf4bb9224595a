"""Explicit Congestion Notification (RFC 3168), as Linux does it.

Theory of operation
-------------------
ECN lets a router mark a packet Congestion Experienced (CE, the IP header's two
ECN bits both set) instead of dropping it. TCP carries the news back:

1. The handshake agrees to it: an *ECN-setup SYN* has ECE and CWR, the *ECN-setup
   SYN,ACK* ECE alone. ``net.ipv4.tcp_ecn``: 1 asks for ECN in our SYNs and agrees
   when asked, 2 (Linux's default) only agrees, 0 neither. A SYN,ACK with CWR or
   without ECE turns it off (``tcp_ecn_rcv_synack()``); an ECN-setup SYN that is
   itself ECN-capable (ECT or CE in its IP header, a sign of a broken middlebox)
   gets no ECN unless a reserved bit is set too -- AccECN's AE: Linux then falls
   back to classic ECN (``tcp_ecn_create_request()``). With
   ``net.ipv4.tcp_ecn_fallback`` a retransmitted SYN drops ECE and CWR, in case
   a middlebox drops ECN-setup SYNs.
2. Data segments go out ECT(0) (never retransmissions, pure ACKs or SYNs:
   ``tcp_ecn_send()``).
3. A receiver that gets CE sets ECE on every ACK until a segment with CWR arrives,
   and ACKs at once (``tcp_ecn_check_ce()``, ``tcp_ecn_accept_cwr()``).
4. A sender that gets ECE reduces its window as for one loss, once per window of
   data (Linux ``tcp_enter_cwr()``: ssthresh from the congestion controller), and
   sets CWR on its next new data segment.

:class:`EcnState` is one connection's ECN state (``Connection.ecn``; None when
ECN was neither asked for nor agreed); :class:`EcnMixin` the connection's steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from synack import seq as sq
from synack.tcp.recovery import CaState
from synack.wire.tcp import CWR, ECE, TcpSegment

if TYPE_CHECKING:
    from synack.tcp.connection import Connection

NOT_ECT, ECT1, ECT0, CE = 0, 1, 2, 3     # the IP header's ECN field (RFC 3168 5)
AE = 0x1                                  # AccECN's flag: the low reserved bit (RFC 9768)


class EcnState:
    """What one connection knows of ECN."""

    __slots__ = ("ce_pending", "cwr_high", "demand_cwr", "no_ect", "ok", "queue_cwr", "seen")

    def __init__(self, *, ok: bool) -> None:
        self.ok = ok                 # agreed (a client: after the SYN,ACK)
        self.demand_cwr = False      # CE received: ECE on our ACKs until CWR comes
        self.queue_cwr = False       # window reduced: CWR on the next new data segment
        self.cwr_high: int | None = None   # reduced once until SND.UNA passes this
        self.ce_pending = False      # the segment being processed came CE-marked
        self.seen = False            # an ECT or CE packet arrived (TCPI_OPT_ECN_SEEN)
        self.no_ect: set[int] = set()  # ids of retransmissions in the outbox: not ECT


def ecn_setup_syn(seg: TcpSegment) -> bool:
    """An ECN-setup SYN: ECE and CWR both set (RFC 3168 6.1.1)."""
    return seg.flags & (ECE | CWR) == ECE | CWR


class EcnMixin:
    """ECN steps of a connection."""

    __slots__ = ()   # Connection's slots hold the state

    ecn: EcnState | None   # set in Connection.__init__; declared for mypy

    def _ecn_syn_flags(self: Connection) -> int:
        """ECE|CWR for our SYN when net.ipv4.tcp_ecn asks for ECN (Linux
        tcp_ecn_send_syn(); tcp_ecn_clear_syn() on a retransmission with fallback)."""
        if self.cfg.int("net.ipv4.tcp_ecn") != 1:
            return 0
        if self.retransmits and self.cfg.int("net.ipv4.tcp_ecn_fallback"):
            return 0
        if self.ecn is None:
            self.ecn = EcnState(ok=False)
        return ECE | CWR

    def _ecn_rcv_synack(self: Connection, seg: TcpSegment) -> None:
        """Linux tcp_ecn_rcv_synack(): ECN is on when our SYN asked for it and the
        SYN,ACK has ECE and not CWR."""
        ecn = self.ecn
        assert ecn is not None
        if seg.flags & (ECE | CWR) == ECE:
            ecn.ok = True
        else:
            self.ecn = None

    def _ecn_passive(self: Connection, syn: TcpSegment, ip_ecn: int) -> int:
        """Linux tcp_ecn_create_request(): agree to an ECN-setup SYN; returns the flags
        the SYN,ACK adds (ECE)."""
        if not ecn_setup_syn(syn) or not self.cfg.int("net.ipv4.tcp_ecn"):
            return 0
        if ip_ecn != NOT_ECT and not syn.reserved:
            return 0                  # an ECT SYN: a middlebox rewrote it, no ECN
        self.ecn = EcnState(ok=True)
        return ECE

    def _ecn_rcv(self: Connection, seg: TcpSegment) -> bool:
        """A segment in a synchronized state (Linux tcp_ecn_accept_cwr() and
        tcp_ecn_check_ce()); True when it must be ACKed at once."""
        ecn = self.ecn
        assert ecn is not None
        ack_now = False
        if seg.flags & CWR:
            ecn.demand_cwr = False
            ack_now = bool(seg.payload)       # the sender's window may be tiny now
        if ecn.ce_pending:
            ecn.ce_pending = False
            if not ecn.demand_cwr:
                self.ackp.enter_quickack(self.rcv_capacity)
            ecn.demand_cwr = True
            ack_now = True
        return ack_now

    def _ecn_echo(self: Connection, now: int) -> None:
        """ECE on an ACK: Linux tcp_enter_cwr(), once per window of data."""
        ecn = self.ecn
        assert ecn is not None
        snd = self.snd
        if ecn.cwr_high is not None and sq.lt(snd.snd_una, ecn.cwr_high):
            return
        rec = self.rec
        if rec.state is not CaState.OPEN and rec.state is not CaState.DISORDER:
            return                    # recovery already reduces the window
        cc = rec.cc
        # tcp_init_cwnd_reduction(): ssthresh from the congestion controller; PRR then
        # brings cwnd down to it over the next round trip (here: at once).
        cc.on_enter_recovery(now=now, in_flight=max(snd.in_flight() // max(self.mss, 1), 1))
        cc.on_exit_recovery(now=now)
        ecn.cwr_high = snd.snd_max
        ecn.queue_cwr = True
