"""Reno (RFC 5681) on a synthetic ACK clock: exact windows round by round."""

from __future__ import annotations

from itertools import pairwise

from test_cc_common import MSS, Clock

from synack.tcp.cc import Reno


def reno_at(cwnd: int) -> Clock:
    clock = Clock(Reno(mss=MSS, now=0))
    clock.grow_to(cwnd)
    return clock


def test_fast_retransmit_halves() -> None:
    clock = reno_at(100)
    assert clock.cc.ssthresh_after_loss() == 50
    clock.cc.on_enter_recovery(now=clock.now, in_flight=100)
    assert (clock.cc.cwnd, clock.cc.ssthresh) == (50, 50)
    clock.cc.on_exit_recovery(now=clock.now + 50_000)
    assert (clock.cc.cwnd, clock.cc.ssthresh) == (50, 50)


def test_odd_and_tiny_windows_halve_down_to_two() -> None:
    for cwnd, ssthresh in [(101, 50), (5, 2), (3, 2), (1, 2)]:
        cc = Reno(mss=MSS, now=0, initial_cwnd=cwnd)
        assert cc.ssthresh_after_loss() == ssthresh


def test_congestion_avoidance_adds_one_segment_per_rtt() -> None:
    clock = reno_at(100)
    clock.loss()
    assert clock.rounds(10) == list(range(51, 61))


def test_timeout_then_slow_start_to_ssthresh_then_one_per_rtt() -> None:
    clock = reno_at(100)
    clock.cc.on_rto(now=clock.now, in_flight=100)
    assert (clock.cc.cwnd, clock.cc.ssthresh) == (1, 50)
    # 1, 2, 4, ... 32, then capped at 50; the 14 ACKs beyond ssthresh count toward 51.
    assert clock.rounds(10) == [2, 4, 8, 16, 32, 50, 51, 52, 53, 54]


def test_stretch_acks_count_every_segment() -> None:
    clock = reno_at(100)
    clock.loss()
    for expected in range(51, 56):
        n = clock.cc.cwnd
        for i in range(0, n, 2):  # an ACK every other segment (RFC 5681 4.2 delayed ACKs)
            clock.ack(min(2, n - i), in_flight=n - i - 2)
        assert clock.cc.cwnd == expected
    clock.ack(4 * 55)  # one ACK for four windows (say, after a reordering hole fills)
    assert clock.cc.cwnd == 59


def test_growth_is_linear_over_many_rounds() -> None:
    clock = reno_at(20)
    clock.loss()
    trace = clock.rounds(200)
    assert trace[0] == 11 and trace[-1] == 210
    assert {b - a for a, b in pairwise(trace)} == {1}
