"""PRR (RFC 6937) as Linux's tcp_cwnd_reduction(): the window during fast recovery.

Each test states the rule of tcp_cwnd_reduction() it checks; counts are segments.
The last ones drive a connection (see tests/test_rack.py for the setup).
"""

from __future__ import annotations

from test_rack import MS, rel, sack, server

from synack.tcp.prr import Prr


def test_nothing_delivered_changes_nothing() -> None:
    """An ACK that delivers nothing leaves cwnd alone (newly_acked_sacked <= 0)."""
    prr = Prr(prior_cwnd=10)
    assert prr.on_ack(newly_acked_sacked=0, newly_lost=False, una_advanced=False,
                      in_flight=9, ssthresh=7) is None
    assert prr.delivered == 0


def test_above_ssthresh_the_sending_is_proportional() -> None:
    """In flight above ssthresh: sndcnt = ceil(ssthresh * prr_delivered / prior_cwnd)
    - prr_out, so ssthresh segments leave in the round trip that delivers prior_cwnd."""
    prr = Prr(prior_cwnd=10)
    # First ACK of recovery: 7 * 1 / 10 rounds up to 1: the fast retransmission.
    assert prr.on_ack(newly_acked_sacked=1, newly_lost=True, una_advanced=False,
                      in_flight=9, ssthresh=7) == 10
    prr.out += 1
    sent = 1
    for delivered in range(2, 11):
        cwnd = prr.on_ack(newly_acked_sacked=1, newly_lost=False, una_advanced=False,
                          in_flight=9, ssthresh=7)
        assert cwnd is not None
        allowed = cwnd - 9
        assert allowed == -(-7 * delivered // 10) - sent
        prr.out += allowed
        sent += allowed
    assert sent == 7                                      # ssthresh after prior_cwnd delivered


def test_below_ssthresh_slow_start_reduction_bound() -> None:
    """In flight below ssthresh: send what was delivered (at least what this ACK
    delivered), plus one when SND.UNA advanced and nothing new was lost, but never
    beyond ssthresh (the slow start reduction bound)."""
    prr = Prr(prior_cwnd=10)
    prr.delivered, prr.out = 3, 1
    # una advanced, no new loss: max(5 - 1, 2) + 1 = 5, within delta = 7 - 1 = 6.
    assert prr.on_ack(newly_acked_sacked=2, newly_lost=False, una_advanced=True,
                      in_flight=1, ssthresh=7) == 1 + 5
    prr = Prr(prior_cwnd=10)
    prr.delivered, prr.out = 3, 1
    # A new loss on this ACK: no extra segment.
    assert prr.on_ack(newly_acked_sacked=2, newly_lost=True, una_advanced=True,
                      in_flight=1, ssthresh=7) == 1 + 4
    prr = Prr(prior_cwnd=10)
    prr.delivered, prr.out = 3, 1
    # Bounded by delta = ssthresh - in_flight.
    assert prr.on_ack(newly_acked_sacked=9, newly_lost=False, una_advanced=True,
                      in_flight=5, ssthresh=7) == 7


def test_the_first_ack_always_lets_the_fast_retransmission_out() -> None:
    """sndcnt is at least 1 while prr_out is 0 ("force a fast retransmit upon entering
    fast recovery"), even when the proportional share rounds to nothing; after that it
    is at least 0."""
    prr = Prr(prior_cwnd=100)
    assert prr.on_ack(newly_acked_sacked=1, newly_lost=True, una_advanced=False,
                      in_flight=99, ssthresh=0) == 100
    prr.out = 1
    assert prr.on_ack(newly_acked_sacked=1, newly_lost=False, una_advanced=False,
                      in_flight=99, ssthresh=0) == 99     # then never below in flight


def test_recovery_sends_one_segment_per_ack_and_a_burst_on_a_partial_ack() -> None:
    """Linux's PRR on the wire (packetdrill fast_recovery/prr-ss-ack-below-snd_una): ten
    segments, 1, 4001:8001 presumed lost after three SACKs (ssthresh 7 for CUBIC); the
    first ACK sends only the fast retransmission; the partial ACK to 4001 lets three out
    at once (in flight 1 < ssthresh: slow start reduction bound, +1 for SND.UNA)."""
    stack, fd, peer, _sent = server(10_000)
    assert sack(peer, 1, (1001, 2001), now=20 * MS) == []
    assert sack(peer, 1, (1001, 3001), now=20 * MS) == []
    out = sack(peer, 1, (1001, 3001), (8001, 9001), now=20 * MS)
    assert rel(out) == [(1, 1000)]
    conn = stack.connection(fd)
    assert conn is not None and conn.rec.cc.ssthresh == 7
    out = sack(peer, 4001, (8001, 9001), now=32 * MS)
    assert rel(out) == [(4001, 3000)] or rel(out) == [(4001, 1000), (5001, 1000), (6001, 1000)]
    # Recovery ends on the ACK of everything with cwnd = ssthresh.
    sack(peer, 10_001, now=50 * MS)
    assert conn.rec.cc.cwnd == 7 and conn.rec.prr is None
