"""Work per event does not grow with the number of idle connections.

Two stacks wired back to back hold N idle ESTABLISHED connections (and some in
TIME_WAIT); then one more connection carries traffic. Counted, not timed: the
timer heap's ``visited`` counter (entries looked at by ``next_deadline``/``tick``),
the sockets the port table hands to ``bind``/``connect``, and the handlers an
echo server polls. Each must be the same for N = 50 and N = 1,500.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from synack.apps.runner import AppRunner
from synack.apps.simple import EchoServer
from synack.stack import Stack
from synack.tcp.state import State

A, B = "192.0.2.1", "192.0.2.2"
MS = 1000


def shuttle(a: Stack | AppRunner, b: Stack | AppRunner, now: int) -> int:
    """Move packets both ways until both are quiet; returns how many moved."""
    moved = 0
    while True:
        pa, pb = a.transmit(now=now), b.transmit(now=now)
        if not pa and not pb:
            return moved
        for p in pa:
            b.receive(p, now=now)
        for p in pb:
            a.receive(p, now=now)
        moved += len(pa) + len(pb)


@dataclass
class Host:
    client: Stack
    server: Stack
    runner: AppRunner
    echo: EchoServer
    now: int


def hosts_with_idle(n: int, timewait: int = 20) -> Host:
    """A client and an echo server with ``n`` idle connections and ``timewait``
    client-side TIME_WAIT entries; every timer of them has run out."""
    c, s = Stack(A, seed=1), Stack(B, seed=2)
    echo = EchoServer(s, 7)
    runner = AppRunner(s, [echo])
    now = 0
    fds = []
    for _ in range(n + timewait):
        fd = c.socket()
        c.connect_ex(fd, (B, 7), now=now)
        fds.append(fd)
    shuttle(c, runner, now)
    for fd in fds[:timewait]:
        c.close(fd, now=now)              # the client closes first: its side TIME_WAITs
    shuttle(c, runner, now)
    # Let delayed ACKs and every other short timer run out (TIME_WAIT stays 60 s).
    for now in range(0, 2000 * MS, 50 * MS):
        for st in (c, s):
            d = st.next_deadline()
            if d is not None and d <= now:
                st.tick(now=now)
        shuttle(c, runner, now)
    assert sum(st.state(fd) is State.ESTABLISHED for fd in fds[timewait:]
               for st in (c,)) == n
    assert len(c.timewait) == timewait
    return Host(c, s, runner, echo, now)


def one_echo(h: Host, fd: int, now: int) -> tuple[int, int]:
    """Send 100 bytes on ``fd`` and let the echo come back: (heap entries visited,
    handlers polled) on the server side."""
    s = h.server
    v0, p0 = s.timers.visited, h.echo.polled
    h.client.send(fd, b"x" * 100, now=now)
    for t in range(now, now + 400 * MS, 10 * MS):
        for st in (h.client, s):
            d = st.next_deadline()
            if d is not None and d <= t:
                st.tick(now=t)
        shuttle(h.client, h.runner, t)
    assert h.client.recv(fd, 1000, now=t) == b"x" * 100
    return s.timers.visited - v0, h.echo.polled - p0


@pytest.mark.parametrize("what", ["timers", "handlers"])
def test_work_per_echo_does_not_grow_with_idle_connections(what: str) -> None:
    counts = []
    for n in (50, 1500):
        h = hosts_with_idle(n)
        fd = h.client.socket()
        h.client.connect_ex(fd, (B, 7), now=h.now)
        shuttle(h.client, h.runner, h.now)
        visited, polled = one_echo(h, fd, h.now + 100 * MS)
        counts.append(visited if what == "timers" else polled)
    assert counts[0] == counts[1], f"{what} visited for 50 vs 1500 idle connections: {counts}"
    assert counts[0] > 0


def test_next_deadline_is_the_earliest_timer_among_many() -> None:
    h = hosts_with_idle(300)
    c = h.client
    # The client's earliest deadline is its oldest TIME_WAIT entry's expiry.
    assert c.next_deadline() == min(tw.expires for tw in c.timewait.values())
    before = c.timers.visited
    for _ in range(100):
        c.next_deadline()
    assert c.timers.visited - before <= 100      # at most one look at the top a call


def test_next_wake_is_never_later_than_the_next_deadline() -> None:
    # The loop's cheap bound: the heap's top as pushed. A retransmission timer that an
    # ACK cleared leaves its entry; the bound stays at it (one early wake-up, no work),
    # and the tick at that time finds nothing due and drops the entry.
    c, s = Stack(A, seed=1), Stack(B, seed=2)
    runner = AppRunner(s, [EchoServer(s, 7)])
    fd = c.socket()
    c.connect_ex(fd, (B, 7), now=0)
    syn = c.transmit(now=0)
    assert c.next_wake() == c.next_deadline() is not None     # the SYN's RTO
    rto = c.next_deadline()
    for p in syn:
        runner.receive(p, now=0)
    for p in runner.transmit(now=0):
        c.receive(p, now=0)                   # the SYN-ACK: the client's RTO is cleared
    assert c.next_wake() == rto               # not asked again: the old entry's time
    c.transmit(now=0)                         # (the handshake's ACK)
    c.tick(now=rto)
    assert c.transmit(now=rto) == []          # nothing ran
    d = c.next_deadline()
    assert d is None or d > rto               # found out and dropped (or re-pushed)
    assert c.next_wake() == d
    # With many connections, the bound is never later than the deadline either.
    h = hosts_with_idle(50)
    for st in (h.client, h.server):
        d, w = st.next_deadline(), st.next_wake()
        assert d is None and w is None or w is not None and (d is None or w <= d)
    assert h.runner.next_wake() == h.server.next_wake()  # (the echo server has no timer)


def test_timewait_expiry_visits_only_what_expires() -> None:
    h = hosts_with_idle(400, timewait=30)
    c = h.client
    expiry = max(tw.expires for tw in c.timewait.values())
    before = c.timers.visited
    c.tick(now=expiry)
    assert not c.timewait
    # 30 expiries, each looked at once or twice (top check, pop), and the
    # 400 idle connections never.
    assert c.timers.visited - before <= 2 * 30 + 2


def test_bind_and_connect_look_only_at_their_port() -> None:
    h = hosts_with_idle(500)
    c = h.client
    before = c.ports.visited
    fd = c.socket()
    c.bind(fd, ("0.0.0.0", 5555))
    fd2 = c.socket()
    c.connect_ex(fd2, (B, 7), now=h.now)
    looked = c.ports.visited - before
    assert looked <= 2, f"sockets looked at by bind + connect: {looked}"


def test_a_simulated_server_keeps_no_record_of_touched_descriptors() -> None:
    # Nobody takes them in the simulator: a set of every descriptor ever touched would
    # grow with every connection a long simulation makes.
    h = hosts_with_idle(200)
    assert not h.server.touched
    assert not h.runner._touched     # nothing kept for a driver that never asks


def test_time_wait_fifo_keeps_order_when_an_entry_is_restarted() -> None:
    # Two TIME_WAIT entries, a second apart; the first is restarted by a FIN again
    # 30 s in (Linux restarts the 2*MSL timer). The second must still expire first,
    # on time, and the first at its new time.
    from synack.host.timerq import TimerQueue
    from synack.tcp.timeouts import TIME_WAIT_US
    from synack.tcp.timewait import TimeWait, TimeWaitTable

    table = TimeWaitTable()
    q = TimerQueue(table)
    keys = [(A, 40000, B, 80), (A, 40001, B, 80)]
    for key, since in zip(keys, (0, 1_000_000)):
        tw = TimeWait(local=key[:2], remote=key[2:], snd_nxt=1, rcv_nxt=2, window=100,
                      expires=since + TIME_WAIT_US, since=since, ts=True)
        table[key] = tw
        q.add_timewait(tw.bits)
    assert q.next_deadline() == TIME_WAIT_US
    first = table[keys[0]]
    first.expires = 30_000_000 + TIME_WAIT_US          # restarted at 30 s, as the stack does
    table[keys[0]] = first
    q.add_timewait(first.bits)
    assert q.next_deadline() == 1_000_000 + TIME_WAIT_US
    assert q.pop_due(TIME_WAIT_US + 999_999) is None
    due = q.pop_due(1_000_000 + TIME_WAIT_US)
    assert due == table.raw(keys[1])
    del table[keys[1]]
    assert q.next_deadline() == 30_000_000 + TIME_WAIT_US
    assert q.pop_due(30_000_000 + TIME_WAIT_US) == table.raw(keys[0])
    assert q.next_deadline() is None


def test_closing_connections_do_not_sweep_live_timewait_entries() -> None:
    # Each connection that closes leaves a stale heap entry; sweeping those must not
    # look again and again at the TIME_WAIT entries, all live (the FIFO).
    counts = []
    for timewait in (50, 500):
        h = hosts_with_idle(0, timewait=timewait)
        c = h.client
        before = c.timers.visited
        now = h.now
        for _ in range(300):
            fd = c.socket()
            c.connect_ex(fd, (B, 7), now=now)
            shuttle(c, h.runner, now)
            c.close(fd, now=now)
            shuttle(c, h.runner, now)
            now += 100
        assert len(c.timewait) == timewait + 300
        counts.append(c.timers.visited - before)
    # One sweep of the 450 extra live entries would show; the heaps differ by a few
    # stale entries at the start.
    assert counts[1] - counts[0] < 50, f"visited with 50 vs 500 TIME_WAIT entries: {counts}"
