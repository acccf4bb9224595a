"""Traces of whole simulated transfers show the textbook shapes.

Slow start doubles cwnd every RTT; after a loss CUBIC grows concave up to the
old maximum, flattens, then convex beyond it; RTO backoff doubles the timeout.
"""

import itertools

from synack.config import Sysctl
from synack.demo.bulk import SENDER, transfer
from synack.demo.driver import drop_next
from synack.sim import LinkParams, Network

MS = 1000


def per_interval(trace, t0: int, step: int, n: int) -> list[int]:
    """cwnd at the end of each interval [t0 + k*step, t0 + (k+1)*step)."""
    out: dict[int, int] = {}
    for p in trace:
        if p.now >= t0:
            out[(p.now - t0) // step] = p.cwnd
    return [out[k] for k in range(n)]


def lose_data_packet(number: int):
    """A setup that loses the sender's ``number``-th data segment, once."""
    seen = {"n": 0}

    def setup(net: Network) -> None:
        def pred(ip, seg) -> bool:
            if ip.src == SENDER and seg.payload:
                seen["n"] += 1
                return seen["n"] == number
            return False
        drop_next(net, pred)
    return setup


def test_slow_start_doubles_cwnd_every_rtt() -> None:
    for cc in ("reno", "cubic"):
        cfg = Sysctl()
        cfg.set("net.ipv4.tcp_congestion_control", cc)
        r = transfer(3_000_000, link=LinkParams(delay_us=50 * MS), sender_cfg=cfg)
        assert r.intact
        cwnd = per_interval(r.trace, r.trace[0].now, 100 * MS, 7)   # RTT 100 ms
        # Each segment ACKed adds one (Linux counts packets, a short one too); an odd
        # segment's delayed ACK (40 ms) may land just past an interval's end.
        for a, b in itertools.pairwise(cwnd):
            assert 2 * a - 1 <= b <= 2 * a, (cc, cwnd)


def test_cubic_concave_then_convex_after_a_loss() -> None:
    r = transfer(12_000_000, link=LinkParams(delay_us=100 * MS), setup=lose_data_packet(100))
    assert r.intact and r.retransmits == 1 and r.rto_count == 0
    recovery = [p for p in r.trace if p.ca_state == "RECOVERY"]
    # ssthresh = 0.7 * W_max (cwnd itself walks down to it with PRR, Linux's rule).
    w_loss = recovery[0].ssthresh
    cwnd = per_interval(r.trace, recovery[0].now, 500 * MS, 22)
    growth = [b - a for a, b in itertools.pairwise(cwnd)]
    w_max = round(w_loss * 1024 / 717)
    # Concave: fast at first, slowing down as cwnd nears W_max ...
    assert growth[0] > growth[2] > growth[4] >= 0
    plateau = [c for c in cwnd if abs(c - w_max) <= 2]
    assert len(plateau) >= 3, (w_max, cwnd)
    # ... then convex: faster and faster once past it (growth per 1.5 s keeps rising).
    last = len(plateau) and max(i for i, c in enumerate(cwnd) if abs(c - w_max) <= 2)
    sums = [sum(growth[i:i + 3]) for i in range(last, len(growth) - 2, 3)]
    assert len(sums) >= 3 and all(b > a for a, b in itertools.pairwise(sums)), (cwnd, sums)
    assert cwnd[-1] > w_max * 1.5


def test_reno_grows_one_segment_per_rtt_after_a_loss() -> None:
    cfg = Sysctl()
    cfg.set("net.ipv4.tcp_congestion_control", "reno")
    r = transfer(4_000_000, link=LinkParams(delay_us=100 * MS), sender_cfg=cfg,
                 setup=lose_data_packet(100))
    recovery = [p for p in r.trace if p.ca_state == "RECOVERY"]
    opened = next(p for p in r.trace if p.now > recovery[-1].now)
    cwnd = per_interval(r.trace, opened.now, 200 * MS, 8)     # RTT 200 ms
    assert [b - a for a, b in itertools.pairwise(cwnd)] == [1] * 7


def test_rto_backoff_doubles_until_the_link_returns() -> None:
    def setup(net: Network) -> None:
        dead = LinkParams(delay_us=10 * MS, loss=1.0)
        net.call_at(45 * MS, lambda now: net.set_link(SENDER, "192.0.2.2", dead))
        net.call_at(30_000 * MS, lambda now: net.set_link(
            SENDER, "192.0.2.2", LinkParams(delay_us=10 * MS)))
    r = transfer(2_000_000, link=LinkParams(delay_us=10 * MS), setup=setup)
    assert r.intact and r.finished
    rtos = [p for p in r.trace if p.event == "rto"]
    gaps = [b.now - a.now for a, b in itertools.pairwise(rtos)]
    assert len(gaps) >= 5
    for a, b in itertools.pairwise(gaps):
        assert b == 2 * a, gaps
    assert all(p.cwnd == 1 for p in rtos)
