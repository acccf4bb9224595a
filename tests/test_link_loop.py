"""The event loop (synack.link.loop) and the in-process links (synack.link.loopback).

Real threads, bounded by timeouts of a few seconds; synchronisation is by the
loop's condition variable, never by sleeping.
"""

from __future__ import annotations

import errno
import select
import threading
import time
from collections.abc import Iterator

import pytest

from synack.apps.runner import AppRunner
from synack.link.loop import Loop, _takes_now_positionally
from synack.link.loopback import LinkPair, Loopback
from synack.stack import Offload, Stack
from synack.tcp.state import State

WAIT = 5.0   # seconds: generous, only reached when something is broken


class FakeHost:
    """A host with one timer at ``deadline``; records every tick."""

    def __init__(self, deadline: int | None = None) -> None:
        self.deadline = deadline
        self.ticks: list[int] = []
        self.received: list[tuple[bytes, bool]] = []
        self.offload: object = "unset"

    def receive(self, packet: bytes, *, now: int, csum_valid: bool = False) -> None:
        self.received.append((packet, csum_valid))

    def transmit_gso(self, *, now: int) -> list[tuple[bytes, int]]:
        return []

    def next_deadline(self) -> int | None:
        return self.deadline

    def tick(self, *, now: int) -> None:
        self.ticks.append(now)
        self.deadline = None


@pytest.fixture
def lo() -> Iterator[Loopback]:
    link = Loopback()
    yield link
    link.close()


def started(host: object, link: Loopback, **kw: object) -> Loop:
    loop = Loop(host, link, **kw)  # type: ignore[arg-type]
    loop.start()
    return loop


# ---------------------------------------------------------------- the clock
def test_now_never_goes_backwards(lo: Loopback) -> None:
    readings = iter([100, 50, 200, 199, 300])
    loop = Loop(FakeHost(), lo, clock=lambda: next(readings))
    assert [loop.now() for _ in range(5)] == [100, 100, 200, 200, 300]


def test_default_clock_is_monotonic_microseconds(lo: Loopback) -> None:
    loop = Loop(FakeHost(), lo)
    a = loop.now()
    b = loop.now()
    assert isinstance(a, int) and 0 <= b - a < 1_000_000


def test_construction_hands_the_link_offload_to_the_stack(lo: Loopback) -> None:
    host = FakeHost()
    Loop(host, lo)
    assert host.offload is None          # Loopback.offload
    lo.offload = Offload(tx_csum=True)   # type: ignore[misc]
    Loop(host, lo)
    assert host.offload == Offload(tx_csum=True)


# ---------------------------------------------------------------- timers and callbacks
def test_tick_runs_once_the_deadline_passes(lo: Loopback) -> None:
    host = FakeHost()
    loop = started(host, lo)
    try:
        with loop.lock:
            due = loop.now() + 30_000        # 30 ms from now
            host.deadline = due
        loop.wake()                          # the loop must recompute its select timeout
        with loop.cond:
            assert loop.cond.wait_for(lambda: host.ticks, WAIT)
        assert len(host.ticks) == 1 and host.ticks[0] >= due
    finally:
        loop.stop()


def test_call_soon_runs_in_the_loop_thread_with_the_lock(lo: Loopback) -> None:
    loop = started(FakeHost(), lo)
    seen: list[tuple[threading.Thread, bool, int]] = []

    def probe(now: int) -> None:
        # Another thread must not be able to take the lock while we run.
        free: list[bool] = []
        t = threading.Thread(target=lambda: free.append(loop.lock.acquire(blocking=False)))
        t.start()
        t.join()
        seen.append((threading.current_thread(), free[0], now))

    try:
        loop.call_soon(probe)
        with loop.cond:
            assert loop.cond.wait_for(lambda: seen, WAIT)
        thread, other_could_lock, now = seen[0]
        assert thread is not threading.current_thread() and thread.name == loop.name
        assert other_could_lock is False
        assert loop.in_loop_thread() is False
        assert now <= loop.now()
    finally:
        loop.stop()


def test_a_failing_callback_does_not_kill_the_loop(lo: Loopback, capsys) -> None:
    loop = started(FakeHost(), lo)
    ran: list[int] = []
    try:
        loop.call_soon(lambda now: 1 // 0)
        loop.call_soon(ran.append)
        with loop.cond:
            assert loop.cond.wait_for(lambda: ran, WAIT)
        assert loop.running and loop.error is None
    finally:
        loop.stop()
    err = capsys.readouterr().err
    assert "ZeroDivisionError" in err and "call_soon callback" in err


def test_a_broken_host_stops_the_loop_and_wakes_waiters(lo: Loopback, capsys) -> None:
    class Broken(FakeHost):
        def tick(self, *, now: int) -> None:
            raise RuntimeError("stack bug")

    host = Broken(deadline=0)
    loop = started(host, lo)
    with loop.cond:
        assert loop.cond.wait_for(lambda: not loop.running, WAIT)
    loop.stop()
    assert isinstance(loop.error, RuntimeError)
    assert "stack bug" in capsys.readouterr().err


def test_stop_is_idempotent_and_joins(lo: Loopback) -> None:
    loop = started(FakeHost(), lo)
    assert loop.running
    loop.stop()
    loop.stop()
    assert not loop.running
    assert not any(t.name == loop.name for t in threading.enumerate())
    with pytest.raises(RuntimeError):
        loop.start()


def test_run_in_the_calling_thread_until_stop(lo: Loopback) -> None:
    loop = Loop(FakeHost(), lo, name="sa-api-run")
    t = threading.Thread(target=loop.run)
    t.start()
    ran: list[int] = []
    loop.call_soon(ran.append)
    with loop.cond:
        assert loop.cond.wait_for(lambda: ran, WAIT)
    loop.stop()
    t.join(WAIT)
    assert not t.is_alive()


def test_received_packets_reach_the_host_with_csum_valid(lo: Loopback) -> None:
    host = FakeHost()
    loop = started(host, lo)
    try:
        lo.send_packets([(b"one", 0), (b"two", 0)], now=0)
        with loop.cond:
            assert loop.cond.wait_for(lambda: len(host.received) == 2, WAIT)
        assert host.received == [(b"one", True), (b"two", True)]
    finally:
        loop.stop()


# ---------------------------------------------------------------- the links
def test_loopback_fileno_is_readable_exactly_while_packets_wait(lo: Loopback) -> None:
    def readable() -> bool:
        return bool(select.select([lo.fileno()], [], [], 0)[0])

    assert not readable() and lo.recv_packets(now=0) == []
    lo.send_packets([(b"a", 0)], now=0)
    lo.send_packets([(b"b", 0)], now=0)
    assert readable() and lo.pending() == 2
    assert lo.recv_packets(now=0) == [(b"a", True), (b"b", True)]
    assert not readable()


def test_link_pair_crosses_and_closed_ends_drop() -> None:
    a, b = pair = LinkPair(csum_valid=False)
    a.send_packets([(b"to b", 0)], now=0)
    b.send_packets([(b"to a", 0)], now=0)
    assert b.recv_packets(now=0) == [(b"to b", False)]
    assert a.recv_packets(now=0) == [(b"to a", False)]
    pair.close()
    pair.close()
    a.send_packets([(b"lost", 0)], now=0)   # no error once closed
    assert a.pending() == b.pending() == 0


# ---------------------------------------------------------------- a real stack
def wait(loop: Loop, pred, what: str) -> None:
    with loop.cond:
        assert loop.cond.wait_for(pred, WAIT), what


def test_one_stack_talks_to_itself_over_loopback(lo: Loopback) -> None:
    stack = Stack("192.0.2.2", seed=1)
    loop = started(stack, lo)
    try:
        with loop.lock:
            lfd = stack.socket()
            stack.bind(lfd, ("192.0.2.2", 7))
            stack.listen(lfd, 8)
            cfd = stack.socket()
            assert stack.connect_ex(cfd, ("192.0.2.2", 7), now=loop.now()) == errno.EINPROGRESS
        loop.wake()
        wait(loop, lambda: stack.readable(lfd), "handshake")
        with loop.lock:
            sfd, peer = stack.accept(lfd)
            assert peer == stack.getsockname(cfd)
            stack.send(cfd, b"ping", now=loop.now())
        loop.wake()
        wait(loop, lambda: stack.readable(sfd), "data")
        with loop.lock:
            assert stack.recv(sfd, 100, now=loop.now()) == b"ping"
            assert stack.state(cfd) is State.ESTABLISHED
    finally:
        loop.stop()


def test_two_stacks_with_their_own_loops_over_a_link_pair() -> None:
    pair = LinkPair()
    a, b = Stack("198.51.100.1", seed=1), Stack("198.51.100.2", seed=2)
    la, lb = started(a, pair.a, name="sa-api-a"), started(b, pair.b, name="sa-api-b")
    try:
        with lb.lock:
            lfd = b.socket()
            b.bind(lfd, ("0.0.0.0", 80))
            b.listen(lfd, 8)
        with la.lock:
            cfd = a.socket()
            a.connect_ex(cfd, ("198.51.100.2", 80), now=la.now())
        la.wake()
        wait(lb, lambda: b.readable(lfd), "accept queue")
        with lb.lock:
            sfd, _ = b.accept(lfd)
        payload = memoryview(b"x" * 100_000)
        sent = 0

        def pushed() -> bool:     # on b's loop: send as ACKs make room, then close
            nonlocal sent
            while sent < len(payload) and b.writable(sfd):
                sent += b.send(sfd, payload[sent:], now=lb.now())
            if sent == len(payload):
                b.close(sfd, now=lb.now())
            lb.wake()
            return sent == len(payload)

        sender = threading.Thread(target=wait, args=(lb, pushed, "send all"))
        sender.start()
        got = bytearray()

        def drained() -> bool:
            while a.readable(cfd):
                chunk = a.recv(cfd, 65536, now=la.now())
                if not chunk:
                    return True
                got.extend(chunk)
            la.wake()   # reading reopened the window: the update must go out
            return False

        wait(la, drained, "data and FIN")
        sender.join(WAIT)
        assert bytes(got) == b"x" * 100_000
    finally:
        la.stop()
        lb.stop()
        pair.close()


def test_a_wrapper_around_a_stack_can_be_driven() -> None:
    class Counting:
        """Delegates to a Stack and counts the loop's calls."""

        def __init__(self, stack: Stack) -> None:
            self.stack = stack
            self.calls = 0

        def receive(self, packet: bytes, *, now: int, csum_valid: bool = False) -> None:
            self.calls += 1
            self.stack.receive(packet, now=now, csum_valid=csum_valid)

        def transmit_gso(self, *, now: int) -> list[tuple[bytes, int]]:
            return self.stack.transmit_gso(now=now)

        def next_deadline(self) -> int | None:
            return self.stack.next_deadline()

        def tick(self, *, now: int) -> None:
            self.stack.tick(now=now)

    # Two stacks over a link pair: a host's own and loopback addresses never reach
    # its link (host/loopback.py), so the wrapped stack talks to another.
    pair = LinkPair()
    stack, other = Stack("198.51.100.1", seed=3), Stack("198.51.100.2", seed=4)
    host = Counting(stack)
    loop, lb = started(host, pair.a), started(other, pair.b, name="wrapper-peer")
    try:
        with loop.lock:
            lfd = stack.socket()
            stack.bind(lfd, ("198.51.100.1", 9))
            stack.listen(lfd, 1)
        with lb.lock:
            other.connect_ex(other.socket(), ("198.51.100.1", 9), now=lb.now())
        lb.wake()
        wait(loop, lambda: stack.readable(lfd), "handshake through the wrapper")
        assert host.calls >= 2     # SYN and ACK went through the wrapper's receive()
    finally:
        loop.stop()
        lb.stop()
        pair.close()


def test_an_app_runner_host_wakes_threads_blocked_on_a_descriptor() -> None:
    # The runner keeps the touched descriptors for the loop only while a thread waits
    # on one (hand_touched_while): with one blocked on the listener, the connection
    # queued there wakes it (not the wait's time-out); before, none were kept.
    pair = LinkPair()
    stack, other = Stack("198.51.100.1", seed=5), Stack("198.51.100.2", seed=6)
    runner = AppRunner(stack, [])
    loop, lb = started(runner, pair.a), started(other, pair.b, name="runner-peer")
    try:
        with loop.lock:
            lfd = stack.socket()
            stack.bind(lfd, ("198.51.100.1", 9))
            stack.listen(lfd, 4)
        with lb.lock:
            other.connect_ex(other.socket(), ("198.51.100.1", 9), now=lb.now())
        lb.wake()
        wait(loop, lambda: stack.readable(lfd), "the first connection, nobody blocked")
        with loop.lock:
            assert runner._touched == set()      # nothing kept while nobody waited
            stack.accept(lfd)
        woke: list[tuple[bool, bool]] = []
        registered = threading.Event()

        def blocked() -> None:
            with loop.lock:
                registered.set()
                deadline = time.monotonic() + WAIT
                while not stack.readable(lfd) and time.monotonic() < deadline:
                    loop.wait_fd(lfd, deadline - time.monotonic())
                woke.append((stack.readable(lfd), time.monotonic() < deadline))

        t = threading.Thread(target=blocked)
        t.start()
        assert registered.wait(WAIT)
        with lb.lock:                            # (the blocked thread holds loop.lock
            other.connect_ex(other.socket(), ("198.51.100.1", 9), now=lb.now())
        lb.wake()                                # until it waits: then it is a waiter)
        t.join(2 * WAIT)
        assert woke == [(True, True)], woke
    finally:
        loop.stop()
        lb.stop()
        pair.close()


def test_no_wake_up_is_lost_under_contention(lo: Loopback) -> None:
    # Threads hammer call_soon(); each waits for its own callback. A lost ring would
    # leave a callback queued with the loop asleep in select() (no timer pending).
    loop = started(FakeHost(), lo)
    failures: list[int] = []

    def client(k: int) -> None:
        for i in range(1000):
            done: list[int] = []
            loop.call_soon(done.append)
            with loop.cond:
                if not loop.cond.wait_for(lambda done=done: done, WAIT):
                    failures.append(k * 100_000 + i)
                    return

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(4 * WAIT)
    finally:
        loop.stop()
    assert not failures


# ---------------------------------------------------------------- a link's own timers
class TimedLink(Loopback):
    """A Loopback with a timer of its own, as TapLink's ARP retries: ``deadline``,
    and every ``tick`` and read recorded with the batch's time."""

    def __init__(self) -> None:
        super().__init__()
        self.deadline: int | None = None
        self.ticks: list[int] = []
        self.reads: list[int] = []

    def next_deadline(self) -> int | None:
        return self.deadline

    def tick(self, *, now: int) -> None:
        self.ticks.append(now)
        self.deadline = None

    def recv_packets(self, *, now: int) -> list[tuple[bytes, bool]]:
        self.reads.append(now)
        return super().recv_packets(now=now)


def test_a_link_timer_set_by_a_callback_runs_in_that_batch() -> None:
    # Batches run by hand on a clock that moves by one on every reading: a tick in the
    # callback's own batch has the callback's time. The link's deadline as the last
    # batch left it is stale once a callback has used the link.
    clock = iter(range(100, 10**6))
    link = TimedLink()
    loop = Loop(FakeHost(), link, clock=lambda: next(clock))
    try:
        seen: list[int] = []

        def arm(now: int) -> None:
            seen.append(now)
            link.deadline = now

        loop._batch(False)
        assert link.ticks == [] and link.reads == []
        loop.call_soon(arm)
        loop._batch(False)
        assert link.ticks == seen and link.reads == seen   # ticked, then read, at once
        assert loop._deadline is None                      # nothing left pending
    finally:
        link.close()


def test_a_link_timer_runs_once_due_and_not_before() -> None:
    now = [0]
    link = TimedLink()
    link.deadline = 50
    loop = Loop(FakeHost(), link, clock=lambda: now[0])
    try:
        loop._batch(False)
        assert loop._deadline == 50 and link.ticks == []
        now[0] = 49
        loop._batch(False)
        assert link.ticks == [] and link.reads == []
        now[0] = 50
        loop._batch(False)
        assert link.ticks == [50] and link.reads == [50]
        assert loop._deadline is None
    finally:
        link.close()


def test_after_a_batch_that_read_the_loop_reads_again_before_asking_epoll(
        lo: Loopback, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests and replies: each packet the host takes makes the peer's next one wait on
    the link at once (as the kernel's ACK is made inside our write of the reply). The loop
    then reads it without an epoll_wait first; only a read that finds nothing goes back."""
    import synack.link.loop as loop_module

    polls = [0]
    real = loop_module._poller

    def counting(*fds: int):  # type: ignore[no-untyped-def]
        closer, poll = real(*fds)

        def counted(timeout: float | None, n: int) -> list[tuple[int, int]]:
            polls[0] += 1
            return poll(timeout, n)
        return closer, counted

    monkeypatch.setattr(loop_module, "_poller", counting)

    class PingPong(FakeHost):
        def receive(self, packet: bytes, *, now: int, csum_valid: bool = False) -> None:
            super().receive(packet, now=now, csum_valid=csum_valid)
            if len(self.received) < 200:
                lo.send_packets([(b"%d" % len(self.received), 0)], now=now)

    host = PingPong()
    loop = started(host, lo)
    try:
        lo.send_packets([(b"0", 0)], now=0)
        with loop.cond:
            assert loop.cond.wait_for(lambda: len(host.received) == 200, WAIT)
        assert [p for p, _ in host.received] == [b"%d" % i for i in range(200)]
        assert polls[0] < 20, f"{polls[0]} epoll_waits for 200 packets in a row"
    finally:
        loop.stop()


def test_the_host_is_called_with_now_positionally_where_it_takes_it(lo: Loopback) -> None:
    # Stack and AppRunner take transmit_gso's ``now`` positionally (a cheaper call); a
    # host whose ``now`` is keyword-only (FakeHost) is still called with the keyword.
    stack = Stack("192.0.2.2", seed=1)
    assert _takes_now_positionally(stack.transmit_gso)
    assert _takes_now_positionally(AppRunner(stack, []).transmit_gso)
    assert not _takes_now_positionally(FakeHost().transmit_gso)
    calls: list[int] = []

    class KeywordOnly(FakeHost):
        def transmit_gso(self, *, now: int) -> list[tuple[bytes, int]]:
            calls.append(now)
            return []

    loop = Loop(KeywordOnly(), lo, clock=lambda: 7)
    loop._batch(False)
    assert calls == [7]


def test_watchers_and_pokes_run_after_batches_with_nothing_to_watch(lo: Loopback) -> None:
    # A batch with nothing poked or watched skips all of it (Loop._plain); watch(),
    # poke() and add_watcher() each make the next batch look again.
    loop = Loop(FakeHost(), lo, clock=lambda: 1)
    seen: list[str] = []
    loop._batch(False)
    loop._batch(False)
    loop.watch(5, lambda now: seen.append("fd 5"))       # runs once soon after
    loop._batch(False)
    loop._batch(False)                                   # not touched since: not again
    assert seen == ["fd 5"]
    loop.poke(5)
    loop._batch(False)
    assert seen == ["fd 5", "fd 5"]
    loop.add_watcher(lambda now: seen.append("every batch"))
    loop._batch(False)
    loop._batch(False)
    assert seen == ["fd 5", "fd 5", "every batch", "every batch"]


def test_a_host_taking_now_by_position_receives_so(lo: Loopback) -> None:
    got: list[tuple[bytes, int, bool]] = []

    class Positional(FakeHost):
        def receive(self, packet: bytes, now: int, csum_valid: bool = False) -> None:
            got.append((packet, now, csum_valid))

    assert _takes_now_positionally(Positional().receive, "packet", "now", "csum_valid")
    assert not _takes_now_positionally(FakeHost().receive, "packet", "now", "csum_valid")
    loop = Loop(Positional(), lo, clock=lambda: 9)
    lo.send_packets([(b"one", 0), (b"two", 0)], now=0)
    loop._batch(True)
    assert got == [(b"one", 9, True), (b"two", 9, True)]
