"""Congestion control, what every algorithm shares: the registry, the loss responses,
idle restart, the cwnd-limited rule, and invariants under random event sequences.

Also home of the synthetic ACK clock the other ``test_cc_*`` files import: a
sender that keeps exactly one window in flight per round trip and gets every
segment of it acknowledged one by one, evenly spread over the next RTT.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synack.tcp.cc import (
    AVAILABLE,
    INFINITE_SSTHRESH,
    REGISTRY,
    CongestionControl,
    Cubic,
    HystartParams,
    Reno,
    create,
)
from synack.tcp.cc.cubic import HYSTART_DELAY

MSS = 1448
RTT = 50_000  # 50 ms


class Clock:
    """The ACK clock: ``round()`` acknowledges one window, one segment per ACK, over one RTT.

    A window's ACKs spread evenly over a whole RTT are what HyStart's ACK-train test
    (Linux hystart_update(), HYSTART_ACK_TRAIN) reads as a full pipe: once ACKs come
    2 ms apart or closer, the train outlasts half the minimum RTT and slow start ends.
    That is right for this clock, but most tests here look at other things, so the
    clock gives CUBIC the delay test only unless ``train`` is set.
    """

    def __init__(self, cc: CongestionControl, rtt: int = RTT, now: int = 0, *,
                 train: bool = False) -> None:
        self.cc, self.rtt, self.now = cc, rtt, now
        if isinstance(cc, Cubic) and not train:
            cc.hystart = HystartParams(detect=HYSTART_DELAY)

    def ack(self, acked: int = 1, *, in_flight: int = 0, rtt: int | None = None,
            limited: bool = True) -> None:
        self.cc.on_ack(acked, now=self.now, rtt_us=self.rtt if rtt is None else rtt,
                       in_flight=in_flight, cwnd_limited=limited)

    def round(self, rtt_of: Callable[[int], int] | None = None, *, upto: int | None = None,
              limited: bool = True) -> int:
        """One RTT: ACK every segment of the window (or the first ``upto``); the new cwnd."""
        start, n = self.now, self.cc.cwnd
        for i in range(n if upto is None else min(upto, n)):
            self.now = start + (i + 1) * self.rtt // n
            self.ack(in_flight=n - 1 - i, rtt=None if rtt_of is None else rtt_of(i),
                     limited=limited)
        self.now = start + self.rtt
        return self.cc.cwnd

    def rounds(self, count: int, rtt_of: Callable[[int], int] | None = None) -> list[int]:
        """cwnd at the end of each of ``count`` rounds."""
        return [self.round(rtt_of) for _ in range(count)]

    def grow_to(self, target: int) -> None:
        """Slow start (flat RTT) until cwnd is exactly ``target``."""
        while self.cc.cwnd < target:
            self.round(upto=target - self.cc.cwnd)
        assert self.cc.cwnd == target and self.cc.ssthresh == INFINITE_SSTHRESH

    def loss(self) -> None:
        """Fast retransmit, one RTT of recovery (the connection's business), the full ACK."""
        self.cc.on_enter_recovery(now=self.now, in_flight=self.cc.cwnd)
        self.now += self.rtt
        self.cc.on_exit_recovery(now=self.now)


ALGORITHMS = [Reno, Cubic]


# -- registry -------------------------------------------------------------------

def test_registry_names() -> None:
    assert REGISTRY == {"reno": Reno, "cubic": Cubic}
    assert AVAILABLE == ("cubic", "reno")
    assert all(cls.name == name for name, cls in REGISTRY.items())


@pytest.mark.parametrize("name", ["reno", "cubic"])
def test_create_by_name_starts_with_iw10_and_infinite_ssthresh(name: str) -> None:
    cc = create(name, mss=MSS, now=123)
    assert type(cc) is REGISTRY[name] and cc.mss == MSS
    assert (cc.cwnd, cc.ssthresh) == (10, 0x7FFFFFFF)
    assert cc.state()["cwnd"] == 10.0


def test_create_unknown_lists_the_available() -> None:
    with pytest.raises(ValueError) as e:
        create("bogus", mss=MSS, now=0)
    assert str(e.value) == "unknown congestion control 'bogus' (available: cubic reno)"


def test_bad_construction_is_local_misuse() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        Reno(mss=0, now=0)


# -- shared behaviour --------------------------------------------------------------

@pytest.mark.parametrize("cls", ALGORITHMS)
def test_slow_start_doubles_per_rtt_from_iw10(cls: type[CongestionControl]) -> None:
    clock = Clock(cls(mss=MSS, now=0))
    assert clock.rounds(5) == [20, 40, 80, 160, 320]


@pytest.mark.parametrize("cls", ALGORITHMS)
def test_no_growth_unless_cwnd_limited(cls: type[CongestionControl]) -> None:
    clock = Clock(cls(mss=MSS, now=0))
    for _ in range(5):
        clock.round(limited=False)
    assert clock.cc.cwnd == 10
    clock.grow_to(40)
    clock.loss()
    cwnd = clock.cc.cwnd
    for _ in range(50):
        clock.round(limited=False)
    assert clock.cc.cwnd == cwnd
    clock.ack(500, limited=False)
    assert clock.cc.cwnd == cwnd


@pytest.mark.parametrize("cls", ALGORITHMS)
def test_slow_start_stops_at_ssthresh_and_spills_the_rest(cls: type[CongestionControl]) -> None:
    cc = cls(mss=MSS, now=0)
    cc.ssthresh = 50
    cc.cwnd = 45
    cc.on_ack(10, now=1, rtt_us=RTT, in_flight=35, cwnd_limited=True)
    assert (cc.cwnd, cc.cwnd_cnt) == (50, 5)  # Linux tcp_slow_start: 5 ACKs left over


@pytest.mark.parametrize("cls", ALGORITHMS)
def test_repeated_timeouts_keep_ssthresh(cls: type[CongestionControl]) -> None:
    clock = Clock(cls(mss=MSS, now=0))
    clock.grow_to(100)
    clock.cc.on_rto(now=clock.now, in_flight=100)
    first = clock.cc.ssthresh
    assert clock.cc.cwnd == 1
    clock.cc.on_rto(now=clock.now + 400_000, in_flight=100)  # the retransmission was lost too
    assert (clock.cc.cwnd, clock.cc.ssthresh) == (1, first)
    clock.ack(0, in_flight=100)  # a duplicate ACK is no progress
    clock.cc.on_rto(now=clock.now + 1_200_000, in_flight=100)
    assert clock.cc.ssthresh == first
    clock.ack(1, in_flight=99)  # progress: the next timeout is a new loss at cwnd 2
    clock.cc.on_rto(now=clock.now + 1_400_000, in_flight=99)
    assert (clock.cc.cwnd, clock.cc.ssthresh) == (1, 2)


@pytest.mark.parametrize("cls", ALGORITHMS)
def test_timeout_during_recovery_is_the_same_loss(cls: type[CongestionControl]) -> None:
    clock = Clock(cls(mss=MSS, now=0))
    clock.grow_to(100)
    clock.cc.on_enter_recovery(now=clock.now, in_flight=100)
    ssthresh = clock.cc.ssthresh
    clock.cc.on_rto(now=clock.now + 300_000, in_flight=60)  # the retransmission was lost
    assert (clock.cc.cwnd, clock.cc.ssthresh) == (1, ssthresh)
    clock.cc.on_exit_recovery(now=clock.now + 400_000)  # recovery is over already: no jump
    assert clock.cc.cwnd == 1


@pytest.mark.parametrize("cls", ALGORITHMS)
def test_exit_without_recovery_changes_nothing(cls: type[CongestionControl]) -> None:
    cc = cls(mss=MSS, now=0)
    cc.on_exit_recovery(now=1)
    assert (cc.cwnd, cc.ssthresh) == (10, INFINITE_SSTHRESH)


@pytest.mark.parametrize("cls", ALGORITHMS)
@pytest.mark.parametrize(("idle_rtos", "cwnd"), [(1.0, 60), (1.5, 30), (2.0, 30), (2.5, 15),
                                                 (3.5, 10), (20, 10)])
def test_idle_restart_halves_per_rto_down_to_the_initial_window(
        cls: type[CongestionControl], idle_rtos: float, cwnd: int) -> None:
    rto = 300_000
    cc = cls(mss=MSS, now=0)
    cc.cwnd, cc.ssthresh = 60, 40
    cc.on_ack(0, now=1_000_000, rtt_us=None, in_flight=0, cwnd_limited=False)  # pipe empties
    cc.on_idle_restart(now=1_000_000 + int(idle_rtos * rto), rto_us=rto)
    assert cc.cwnd == cwnd
    # Linux tcp_current_ssthresh(): slow start back up to 3/4 of the old window.
    assert cc.ssthresh == (40 if idle_rtos <= 1 else 45)


@pytest.mark.parametrize("cls", ALGORITHMS)
def test_idle_restart_never_raises_a_small_window(cls: type[CongestionControl]) -> None:
    cc = cls(mss=MSS, now=0)
    cc.cwnd = 4
    cc.on_idle_restart(now=10_000_000, rto_us=200_000)
    assert cc.cwnd == 4


# -- invariants under random events ----------------------------------------------------

_event = st.one_of(
    st.tuples(st.just("ack"), st.integers(0, 70), st.one_of(st.none(), st.integers(0, 2_000_000)),
              st.integers(0, 3000), st.booleans()),
    st.tuples(st.just("recovery")),
    st.tuples(st.just("exit")),
    st.tuples(st.just("rto")),
    st.tuples(st.just("idle"), st.integers(1, 3_000_000)),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ALGORITHMS), st.integers(1, 40),
       st.lists(st.tuples(st.integers(0, 1_500_000), _event), max_size=300))
def test_random_events_keep_the_window_sane(cls: type[CongestionControl], iw: int,
                                            events: list[tuple[int, tuple]]) -> None:
    now = 0
    cc = cls(mss=MSS, now=now, initial_cwnd=iw)
    for dt, ev in events:
        now += dt
        match ev:
            case ("ack", acked, rtt, in_flight, limited):
                cc.on_ack(acked, now=now, rtt_us=rtt, in_flight=in_flight, cwnd_limited=limited)
            case ("recovery",):
                cc.on_enter_recovery(now=now, in_flight=cc.cwnd)
            case ("exit",):
                cc.on_exit_recovery(now=now)
            case ("rto",):
                cc.on_rto(now=now, in_flight=cc.cwnd)
            case ("idle", rto):
                cc.on_idle_restart(now=now, rto_us=rto)
        assert type(cc.cwnd) is int and 1 <= cc.cwnd < 10_000_000
        assert type(cc.ssthresh) is int and 2 <= cc.ssthresh <= INFINITE_SSTHRESH
        assert cc.cwnd_cnt >= 0
        state = cc.state()
        assert all(isinstance(v, float) for v in state.values())
        assert all(math.isfinite(v) for k, v in state.items() if k != "epoch_start")
