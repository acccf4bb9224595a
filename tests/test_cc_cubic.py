"""CUBIC (RFC 9438, Linux tcp_cubic.c) on a synthetic ACK clock: the loss response,
the shape of the curve, the Reno-friendly region, HyStart, timeouts and idle."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from test_cc_common import MSS, Clock

from synack.tcp.cc import INFINITE_SSTHRESH, Cubic, Reno

C = 410 / 1024  # Linux bic_scale 41 * 10 / 1024


def cubic_at(cwnd: int, rtt: int = 50_000) -> Clock:
    clock = Clock(Cubic(mss=MSS, now=0), rtt=rtt)
    clock.grow_to(cwnd)
    return clock


def found(clock: Clock) -> bool:
    """HyStart has ended slow start."""
    return clock.cc.state()["hystart_found"] == 1.0


def per_block(trace: list[int], block: int) -> list[int]:
    """Growth over consecutive blocks of ``block`` rounds (smooths integer steps)."""
    return [trace[i + block] - trace[i] for i in range(0, len(trace) - block, block)]


# -- multiplicative decrease ------------------------------------------------------------

def test_loss_at_100_leaves_70_as_linux_computes() -> None:
    clock = cubic_at(100)
    assert clock.cc.ssthresh_after_loss() == (100 * 717) >> 10 == 70
    clock.loss()
    s = clock.cc.state()
    assert (clock.cc.cwnd, clock.cc.ssthresh, s["w_max"]) == (70, 70, 100.0)
    assert math.isnan(s["epoch_start"])  # the epoch starts at the first ACK, not at the loss
    clock.round()
    assert clock.cc.state()["epoch_start"] > clock.now - clock.rtt
    # K measured from the window the epoch starts at: cbrt((100 - 70) / C).
    assert clock.cc.state()["k"] == pytest.approx(math.cbrt(30 / C), abs=1 / 512)


def test_small_windows_keep_two() -> None:
    for cwnd, ssthresh in [(3, 2), (2, 2), (1, 2), (10, 7), (1000, 700)]:
        assert Cubic(mss=MSS, now=0, initial_cwnd=cwnd).ssthresh_after_loss() == ssthresh


def test_fast_convergence_lowers_w_max_below_the_previous_one() -> None:
    clock = cubic_at(1000, rtt=100_000)
    clock.loss()
    assert clock.cc.state()["w_max"] == 1000
    while clock.cc.cwnd < 900:
        clock.round()
    cwnd = clock.cc.cwnd
    clock.loss()  # below the previous W_max: someone new shares the path
    assert clock.cc.state()["w_max"] == cwnd * (1024 + 717) // 2048 == 765
    assert clock.cc.ssthresh == cwnd * 717 // 1024 == 630
    while clock.cc.cwnd <= 765:
        clock.round()
    cwnd = clock.cc.cwnd
    clock.loss()  # above W_max: the new maximum is the window itself
    assert clock.cc.state()["w_max"] == cwnd


# -- the curve --------------------------------------------------------------------------

def test_concave_up_to_w_max_then_convex_beyond() -> None:
    clock = cubic_at(1000, rtt=100_000)  # K = 9.1 s = 91 RTTs: the cubic region rules
    clock.loss()
    trace = clock.rounds(200)
    reach = next(i for i, w in enumerate(trace) if w >= 1000)
    leave = max(i for i, w in enumerate(trace) if w == 1000)
    assert trace[:reach] == sorted(trace[:reach]) and leave - reach > 10  # a plateau
    concave = per_block(trace[:reach], 5)
    convex = per_block(trace[leave:], 5)
    assert concave == sorted(concave, reverse=True) and concave[0] > 8 * concave[-1]
    assert convex == sorted(convex) and convex[-1] > 8 * max(convex[0], 1)
    # The plateau is centred on K, counted from the loss (recovery took one RTT).
    k = clock.cc.state()["k"]
    assert k == pytest.approx(math.cbrt(300 / C), abs=1 / 512)
    middle = (1 + (reach + leave) / 2 + 1) * clock.rtt / 1e6
    assert abs(middle - k) <= clock.rtt / 1e6


def test_growth_never_exceeds_one_and_a_half_windows_per_rtt() -> None:
    clock = cubic_at(1000, rtt=100_000)
    clock.loss()
    clock.cc.cwnd = clock.cc.ssthresh = 20  # far below W_max: the target is windows away
    trace = [20, *clock.rounds(8)]
    assert all(b <= a * 3 // 2 for a, b in pairwise(trace))
    assert trace[:4] == [20, 30, 45, 67]  # clamped at cnt = 2 until the curve is near


def test_reno_friendly_region_at_small_rtt() -> None:
    clock = cubic_at(100, rtt=1_000)  # K = 4.2 s = 4200 RTTs: the cubic curve barely moves
    clock.loss()
    trace = clock.rounds(400)
    curve_after_400 = 100 - C * (4.2 - 0.4) ** 3
    assert curve_after_400 < 80 and trace[-1] >= 70 + 400 * 8 // 15 - 2  # W_est: +0.53 / RTT
    assert clock.cc.state()["w_est"] >= trace[-1] - 1


@pytest.mark.parametrize("rtt", [1_000, 10_000, 100_000])
def test_at_least_as_fast_as_reno_on_a_small_pipe(rtt: int) -> None:
    """A path that drops whenever cwnd exceeds 100: CUBIC delivers at least Reno's share."""
    delivered = {}
    for cls in (Reno, Cubic):
        clock = Clock(cls(mss=MSS, now=0), rtt=rtt)
        clock.grow_to(100)
        total = 0
        for _ in range(3000):
            total += clock.cc.cwnd
            if clock.cc.cwnd > 100:
                clock.loss()
            else:
                clock.round()
        delivered[cls.name] = total
    assert delivered["cubic"] >= delivered["reno"]


def test_cnt_is_at_most_once_per_window_when_at_target() -> None:
    clock = cubic_at(1000, rtt=100_000)
    clock.loss()
    while clock.cc.cwnd < 1000:
        clock.round()
    before = clock.cc.cwnd
    clock.round()
    assert clock.cc.cwnd - before <= 1  # on the plateau: +1 per 100 windows at most


# -- HyStart ---------------------------------------------------------------------------

def test_hystart_stays_in_slow_start_while_rtt_is_flat() -> None:
    clock = Clock(Cubic(mss=MSS, now=0))
    assert clock.rounds(8) == [20, 40, 80, 160, 320, 640, 1280, 2560]
    assert clock.cc.ssthresh == INFINITE_SSTHRESH and not found(clock)


def test_hystart_leaves_slow_start_when_rtt_rises() -> None:
    clock = Clock(Cubic(mss=MSS, now=0))
    assert clock.rounds(4) == [20, 40, 80, 160]
    clock.round(lambda i: 70_000)  # the queue starts to fill: +20 ms
    # 8 samples to learn the round's minimum; the 9th ACK's cwnd becomes ssthresh.
    assert found(clock) and clock.cc.ssthresh == 160 + 8
    assert clock.rounds(3)[-1] < 168 * 1.3  # congestion avoidance, not doubling


@pytest.mark.parametrize(("base", "rise", "leaves"), [
    (50_000, 6_000, False), (50_000, 7_000, True),      # min_rtt / 8 = 6.25 ms
    (10_000, 3_900, False), (10_000, 4_100, True),      # clamped up to 4 ms
    (200_000, 15_900, False), (200_000, 16_100, True),  # clamped down to 16 ms
])
def test_hystart_delay_threshold(base: int, rise: int, leaves: bool) -> None:
    clock = Clock(Cubic(mss=MSS, now=0), rtt=base)
    clock.rounds(3)
    clock.rounds(2, lambda i: base + rise)
    assert found(clock) is leaves
    assert (clock.cc.ssthresh == INFINITE_SSTHRESH) is not leaves


def test_hystart_waits_for_a_window_of_16() -> None:
    clock = Clock(Cubic(mss=MSS, now=0, initial_cwnd=2))
    clock.ack(0, rtt=50_000)  # min RTT 50 ms; everything after is 100 ms
    assert clock.rounds(3, lambda i: 100_000) == [4, 8, 16]
    assert clock.cc.ssthresh == INFINITE_SSTHRESH
    clock.round(lambda i: 100_000)
    assert clock.cc.ssthresh == 16 + 8


def test_a_request_and_response_start_no_curve() -> None:
    # The ACK of a short reply (cwnd 10, not cwnd-limited) starts HyStart's next round,
    # and the round's end is kept without the curve's fields: an idle connection that
    # answered a request holds no _Epoch. Its numbers are the starting ones.
    cc = Cubic(mss=MSS, now=0)
    cc.on_ack(1, now=1_000, rtt_us=1_000, in_flight=0, cwnd_limited=False)
    assert cc._ep is None
    s = cc.state()
    assert (cc.cwnd, s["delay_min"], s["w_max"], s["cnt"]) == (10, 1_000.0, 0.0, 0.0)
    # The next ACK goes past that round's end (1 segment acked in all): another round,
    # ending once the 2 segments in flight are acked too; an ACK up to there stays in it.
    cc.on_ack(1, now=2_000, rtt_us=1_000, in_flight=2, cwnd_limited=False)
    assert (cc._round_start, cc._round_end) == (2_000, 4)
    cc.on_ack(2, now=3_000, rtt_us=1_000, in_flight=0, cwnd_limited=False)
    assert (cc._round_start, cc._round_end) == (2_000, 4)
    assert cc._ep is None


def test_hystart_ack_train_ends_slow_start_when_the_acks_fill_half_the_min_rtt() -> None:
    """Linux hystart_update() (HYSTART_ACK_TRAIN): ACKs no more than hystart_ack_delta_us
    (2 ms) apart are one train; once a round's train lasts longer than half the minimum
    RTT (plus at most 1 ms for pacing), the pipe is full and ssthresh = cwnd. With a
    window's ACKs spread over a 50 ms RTT, that is the round whose ACKs come 2 ms apart
    or closer (cwnd >= 25), after about 13 ms of train past the middle."""
    clock = Clock(Cubic(mss=MSS, now=0), train=True)
    assert clock.rounds(2) == [20, 40]                   # ACKs 2.5 ms apart: no train
    clock.round()
    assert found(clock)
    # The ACK whose train passed 25.5 ms: 21 ACKs 1.25 ms apart in (0, 50 ms].
    assert clock.cc.ssthresh == 40 + 21


def test_hystart_ack_train_needs_acks_close_together() -> None:
    """ACKs further apart than hystart_ack_delta_us never form a train; the parameter
    widened to 3 ms makes the same ACKs one."""
    from synack.tcp.cc import HystartParams
    # RTT 500 ms: the fifth round's 160 ACKs come 3.125 ms apart.
    clock = Clock(Cubic(mss=MSS, now=0), rtt=500_000, train=True)
    assert clock.rounds(5)[-1] == 320
    assert not found(clock)
    wide = Clock(Cubic(mss=MSS, now=0, hystart=HystartParams(ack_delta_us=3_200)),
                 rtt=500_000, train=True)
    wide.rounds(5)
    assert found(wide) and wide.cc.ssthresh < 320


def test_hystart_ignores_missing_rtt_samples() -> None:
    clock = Clock(Cubic(mss=MSS, now=0))
    clock.rounds(4)
    for i in range(160):
        clock.cc.on_ack(1, now=clock.now + i, rtt_us=None, in_flight=159 - i, cwnd_limited=True)
    assert clock.cc.cwnd == 320 and not found(clock)


# -- timeouts and idle -------------------------------------------------------------------

def test_timeout_forgets_the_curve_like_linux() -> None:
    clock = cubic_at(100)
    clock.cc.on_rto(now=clock.now, in_flight=100)
    s = clock.cc.state()
    assert (clock.cc.cwnd, clock.cc.ssthresh) == (1, 70)
    assert (s["w_max"], s["k"], s["delay_min"], s["hystart_found"]) == (0, 0, 0, 0)
    trace = clock.rounds(30)
    assert trace[:6] == [2, 4, 8, 16, 32, 64]
    # RFC 9438 4.8: K = 0 from the epoch's own window; Linux grows >= 5% per RTT meanwhile.
    after = trace[6:]
    assert all(b >= a * 1.04 for a, b in pairwise(after))


def test_idle_shifts_the_epoch_instead_of_jumping_along_the_curve() -> None:
    clock = cubic_at(100)
    clock.loss()
    clock.rounds(5)
    epoch, cwnd = clock.cc.state()["epoch_start"], clock.cc.cwnd
    # The last ACK came at the end of the last round, at clock.now; idle < RTO.
    clock.cc.on_idle_restart(now=clock.now + 150_000, rto_us=250_000)
    assert clock.cc.state()["epoch_start"] == epoch + 150_000
    assert clock.cc.cwnd == cwnd
    clock.cc.on_idle_restart(now=clock.now + 10_000_000, rto_us=250_000)  # idle > RTO too
    assert clock.cc.state()["epoch_start"] == epoch + 10_000_000
    assert (clock.cc.cwnd, clock.cc.ssthresh) == (10, 70)  # restart window; back up to 70
