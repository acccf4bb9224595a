"""The event loop: one thread that moves packets between a link and a stack.

Theory of operation
-------------------
The stack is sans-I/O: it never reads a clock and never waits. This loop is
the driver that does both for a real (or in-process) link. Each iteration:

1. ``select()`` on the link's descriptor and a doorbell, with a timeout that
   ends at ``stack.next_deadline()`` (or the cheaper, maybe earlier, ``next_wake()``
   where the stack has one) or the link's own ``next_deadline()`` (ARP retries,
   packets an impairment holds back), or none when nothing is pending;
   a link timer that is due gets ``link.tick(now=)`` and then a read;
2. with :attr:`Loop.lock` held, run the callbacks queued by :meth:`call_soon`,
   feed every packet the link has ready to ``stack.receive`` (one batch), run
   ``stack.tick`` when a deadline has passed, run the watchers, and hand what
   the stack wants to send to the link in one batch;
3. wake the threads blocked on a descriptor something happened to.

Waking is per descriptor, as the kernel wakes a socket's wait queue
(``sk_data_ready``, ``sk_write_space``): the stack marks the descriptors a
packet or a timer touched (``take_touched()``), and only threads waiting on
those (:meth:`Loop.wait_fd`) and watchers of those (:meth:`Loop.watch`) run.
Threads that wait for "any batch" use :attr:`Loop.cond`, notified after each.

Other threads touch the stack only with the lock held and then call
:meth:`wake`, which rings the doorbell so the loop transmits what they queued
and recomputes its deadline. The lock is an RLock so that code running inside
the loop (callbacks, watchers) may call the same helpers as other threads.

If the loop body itself raises (a bug in the stack, a dead device) the loop
stops, keeps the exception in :attr:`Loop.error` and notifies every waiter, so
blocked callers fail instead of hanging.
"""

from __future__ import annotations

import collections
import inspect
import select
import selectors
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, Protocol

from synack.link.base import Link
from synack.link.wakeup import Doorbell

Callback = Callable[[int], Any]


class PacketHost(Protocol):
    """What the loop drives: a :class:`~synack.stack.Stack`, or a wrapper around one."""

    def receive(self, packet: bytes, *, now: int, csum_valid: bool = False) -> None: ...
    def transmit_gso(self, *, now: int) -> list[tuple[bytes, int]]: ...  # (or positional)
    def next_deadline(self) -> int | None: ...
    def tick(self, *, now: int) -> None: ...


def _takes_now_positionally(fn: Callable[..., Any], *names: str) -> bool:
    """Whether ``fn`` accepts ``names`` (default: ``now``) as its first positional
    arguments: the loop then passes them so (a call with keywords costs more, and
    CPython 3.11 does not inline it)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    names = names or ("now",)
    return len(params) >= len(names) and all(
        p.name == name and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        for p, name in zip(params, names))


def _poller(*fds: int) -> tuple[Any, Callable[[float | None, int], list[tuple[int, int]]]]:
    """Something to close, and ``poll(timeout, maxevents)`` giving (descriptor, events)
    for those of ``fds`` readable (or in error) within ``timeout`` seconds: epoll itself
    where there is one (selectors' wrapper costs a microsecond a batch)."""
    if hasattr(select, "epoll"):
        ep = select.epoll(len(fds))
        for fd in fds:
            ep.register(fd, select.EPOLLIN)
        return ep, ep.poll
    sel = selectors.DefaultSelector()  # pragma: no cover - non-Linux
    for fd in fds:  # pragma: no cover - non-Linux
        sel.register(fd, selectors.EVENT_READ)

    def poll(timeout: float | None, _: int) -> list[tuple[int, int]]:  # pragma: no cover
        return [(key.fd, ev) for key, ev in sel.select(timeout)]

    return sel, poll  # pragma: no cover - non-Linux


class _Always:
    """A host's loopback set that is never known empty (its take_lo_touched() is always
    called)."""

    lo_touched = True


_ALWAYS = _Always()
_ALWAYS_WAITING = [None]     # Loop._cond_waiters where Condition's waiters are not known
_NO_FDS: frozenset[int] = frozenset()


def monotonic_us() -> int:
    """The default clock: CLOCK_MONOTONIC in integer microseconds."""
    return time.monotonic_ns() // 1000


class Loop:
    """Drive ``stack`` over ``link`` in one thread (see the module docstring)."""

    def __init__(self, stack: PacketHost, link: Link, *, name: str | None = None,
                 clock: Callable[[], int] | None = None) -> None:
        self.stack = stack
        self.link = link
        self.name = name or f"synack-loop-{getattr(stack, 'name', id(stack))}"
        try:
            stack.offload = link.offload  # type: ignore[attr-defined]
        except AttributeError:
            pass  # a wrapper host with __slots__ and no offload: it builds full packets
        # A link may have timers of its own (ARP retries, packets held back by an
        # impairment): ``next_deadline()`` and ``tick(now=)``, both optional.
        self._link_deadline: Callable[[], int | None] | None = getattr(link, "next_deadline", None)
        self._link_tick: Callable[..., None] | None = getattr(link, "tick", None)
        # A TapLink whose ARP and ND have nothing pending says so in ``_quiet`` (and its
        # next_deadline() is None until they get work): read once a batch, not called.
        self._quiet_link: Any = (link if isinstance(getattr(link, "_quiet", None), bool)
                                 else None)
        # The link's own deadline as the last batch left it (the first: as it is now).
        self._link_due: int | None = (self._link_deadline() if self._link_deadline is not None
                                      else None)
        self._clock = clock or monotonic_us
        # CLOCK_MONOTONIC never goes backwards, whichever thread reads it: only another
        # clock needs the last reading kept (under a lock) to hold now() to that promise.
        self._steady = clock is None
        self._clock_lock = threading.Lock()
        self._last_now: int | None = None
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        # CPython's Condition keeps its waiters in ``_waiters``: when it is empty a batch
        # skips notify_all() (not known: always notify).
        waiting = getattr(self.cond, "_waiters", None)
        self._cond_waiters: Any = waiting if waiting is not None else _ALWAYS_WAITING
        self.error: BaseException | None = None
        self._bell = Doorbell()
        self._rung = False           # a ring is pending: spare further writes to the eventfd
        self._callbacks: collections.deque[Callback] = collections.deque()
        self._watchers: list[Callback] = []
        self._fd_watchers: dict[int, list[Callback]] = {}
        self._fd_waits: dict[int, list[Any]] = {}    # fd -> [Condition, threads waiting]
        self._poked: set[int] = set()
        self._deadline: int | None = None
        self._lo_pending: set[int] = set()   # descriptors loopback touched (host/loopback.py)
        # None of the four above has anything: a batch skips them. Anything that adds
        # to one (with the lock held) clears it; the batch that then sees them sets it
        # again once they are empty.
        self._plain = True
        # The optional parts of the host and link, looked up once, not on every batch
        # (through AppRunner.__getattr__ a missing name costs an exception each time).
        take_lo = getattr(stack, "take_lo_touched", None)
        # (never called without one: _lo_owner is None then)
        self._take_lo: Callable[[], set[int]] = take_lo if take_lo is not None else set
        if take_lo is not None:
            take_lo()           # from now on the stack keeps them for this loop
        # Where the stack keeps them (Stack.lo_touched): looked at before the call, which
        # a batch without loopback traffic (nearly all) then spares.
        owner = getattr(take_lo, "__self__", None)
        self._lo_owner: Any = (owner if owner is not None and hasattr(owner, "lo_touched")
                               else _ALWAYS if take_lo is not None else None)
        # The host's wake-up time: a bound no later than its next deadline that is cheaper
        # to find (Stack.next_wake), where the host's class has one; else next_deadline.
        # (Looked up on the class: a wrapper's __getattr__ must not hand over the wrapped
        # stack's, which would leave out the wrapper's own deadlines.)
        wake = getattr(type(stack), "next_wake", None)
        self._host_wake: Callable[[], int | None] = (
            wake.__get__(stack) if wake is not None else stack.next_deadline)
        # The link's read and write and the host's receive, where they take now (and
        # csum_valid) by position: called so (else None: with keywords).
        recv: Callable[..., list[tuple[bytes, bool]]] = link.recv_packets
        self._recv_now: Callable[[int], list[tuple[bytes, bool]]] | None = (
            recv if _takes_now_positionally(recv) else None)
        send: Callable[..., None] = link.send_packets
        self._send_now: Callable[[list[tuple[bytes, int]], int], None] | None = (
            send if _takes_now_positionally(send, "packets", "now") else None)
        receive: Callable[..., None] = stack.receive
        self._receive_now: Callable[[bytes, int, bool], None] | None = (
            receive if _takes_now_positionally(receive, "packet", "now", "csum_valid")
            else None)
        transmit: Callable[..., list[tuple[bytes, int]]] = stack.transmit_gso
        self._transmit: Callable[[int], list[tuple[bytes, int]]] = (
            transmit if _takes_now_positionally(transmit)       # (Stack, AppRunner)
            else lambda now: transmit(now=now))
        self._take_touched: Callable[[], set[int]] | None = getattr(stack, "take_touched", None)
        # A host that can keep the touched descriptors only while threads wait on some
        # (AppRunner) is asked for them only then: no set a batch when nobody waits.
        hand = getattr(type(stack), "hand_touched_while", None)
        self._touch_kept = hand is not None and self._take_touched is not None
        if self._touch_kept:
            hand(stack, self._fd_waits)   # type: ignore[misc]
        self._take_local: Callable[[], list[bytes]] | None = getattr(link, "take_local", None)
        self._receive_local: Callable[..., None] | None = getattr(stack, "receive_local", None)
        self._stopping = False
        self._running = False
        self._finished = False
        self.done = threading.Event()   # set when the loop has ended (stopped or failed)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # ------------------------------------------------------------ the clock
    def now(self) -> int:
        """Microseconds on the loop's clock; never goes backwards. Thread-safe."""
        t = self._clock()
        if self._steady:
            return t
        with self._clock_lock:
            last = self._last_now
            if last is not None and t < last:
                return last
            self._last_now = t
            return t

    # ------------------------------------------------------------ control
    @property
    def running(self) -> bool:
        """True while the loop is serving (started and neither stopped nor failed)."""
        return self._running and not self._stopping

    def in_loop_thread(self) -> bool:
        """True when called from the loop's own thread (where blocking would deadlock)."""
        t = self._thread
        return t is not None and t is threading.current_thread()

    def start(self) -> None:
        """Run the loop in a daemon thread."""
        with self._start_lock:
            if self._thread is not None or self._running or self._finished:
                raise RuntimeError("loop already started")
            self._running = True   # before the thread exists: running is True on return
            self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
            self._thread.start()

    def run(self) -> None:
        """Run the loop in the calling thread until :meth:`stop`."""
        with self._start_lock:
            if self._running or self._finished:
                raise RuntimeError("loop already started")
            self._running = True
        self._serve()

    def stop(self) -> None:
        """End the loop (and join its thread). Idempotent; closes nothing but the loop."""
        self._stopping = True
        self._bell.ring()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join()

    def wake(self) -> None:
        """Make the loop transmit what the stack queued and recompute its deadline.

        Thread-safe; call it after any stack call made from another thread.
        """
        if not self._rung:
            self._rung = True
            self._bell.ring()

    def call_soon(self, fn: Callback) -> None:
        """Run ``fn(now)`` in the loop thread with the lock held. Thread-safe."""
        self._callbacks.append(fn)
        self.wake()

    def add_watcher(self, fn: Callback) -> None:
        """Run ``fn(now)`` in the loop thread, lock held, after every batch (until removed).

        Watchers see the stack after packets and timers were processed and before
        the loop transmits, so what they send goes out in the same batch. Call
        with the lock held or from the loop thread.
        """
        with self.lock:
            self._watchers.append(fn)
            self._plain = False
        self.wake()

    def watch(self, fd: int, fn: Callback) -> None:
        """Run ``fn(now)`` in the loop thread, lock held, after a batch in which something
        happened to ``fd`` (and once soon after this call), before the loop transmits."""
        with self.lock:
            self._fd_watchers.setdefault(fd, []).append(fn)
            self._plain = False
        self.poke(fd)

    def unwatch(self, fd: int, fn: Callback) -> None:
        """Stop calling ``fn`` for ``fd``. Harmless if it is not registered."""
        with self.lock:
            fns = self._fd_watchers.get(fd)
            if fns is not None and fn in fns:
                fns.remove(fn)
                if not fns:
                    del self._fd_watchers[fd]

    def poke(self, fd: int) -> None:
        """Treat ``fd`` as touched in the next batch (its watchers run, its waiters wake).
        Thread-safe; for state changes the stack cannot see (a paused reader resumed)."""
        with self.lock:
            self._poked.add(fd)
            self._plain = False
        self.wake()

    def wait_fd(self, fd: int, timeout: float | None = None) -> None:
        """With the lock held: release it until something happens to ``fd`` (a batch
        touched it, :meth:`notify_fd`, the loop stopped) or ``timeout`` seconds pass."""
        entry = self._fd_waits.get(fd)
        if entry is None:
            entry = self._fd_waits[fd] = [threading.Condition(self.lock), 0]
        entry[1] += 1
        try:
            entry[0].wait(timeout)
        finally:
            entry[1] -= 1
            if entry[1] == 0 and self._fd_waits.get(fd) is entry:
                del self._fd_waits[fd]

    def waiters(self, fd: int) -> int:
        """How many threads wait on ``fd`` now (lock held)."""
        entry = self._fd_waits.get(fd)
        return entry[1] if entry is not None else 0

    def notify_fd(self, fd: int) -> None:
        """With the lock held: wake the threads waiting on ``fd``."""
        entry = self._fd_waits.get(fd)
        if entry is not None:
            entry[0].notify_all()

    def _notify_all_fds(self) -> None:
        for entry in list(self._fd_waits.values()):
            entry[0].notify_all()

    def remove_watcher(self, fn: Callback) -> None:
        """Stop calling ``fn``. Harmless if it is not registered."""
        with self.lock:
            try:
                self._watchers.remove(fn)
            except ValueError:
                pass

    # ------------------------------------------------------------ the loop
    def _serve(self) -> None:
        link_fd = self.link.fileno()
        poller, poll = _poller(link_fd, self._bell.fileno())
        try:
            with self.lock:
                self._deadline = self._next_deadline()
                take = self._take_touched
                if take is not None:
                    take()          # from now on the host keeps them for this loop
            eager = False
            while not self._stopping:
                if eager and not self._rung:
                    # The last batch read packets: in an exchange of requests and
                    # replies the next one is usually waiting already (the kernel makes
                    # its ACK inside our write of the reply), so read without asking
                    # epoll first. A read that finds nothing sends the loop back to
                    # epoll_wait; a ring of the bell (the flag is up) does too.
                    eager = self._batch(True)
                    continue
                deadline = self._deadline
                timeout = None
                if deadline is not None:
                    timeout = max(deadline - self.now(), 0) / 1e6
                events = poll(timeout, 2)
                if self._stopping:
                    break
                link_ready = False
                for fd, _ in events:
                    if fd == link_fd:
                        link_ready = True
                    else:
                        # Empty the bell first, then drop the flag: a wake() that rang
                        # before the clear did its stack work before this batch takes
                        # the lock, and one that sees the flag down rings again. (The
                        # other order can swallow a ring and leave the flag up forever.)
                        self._bell.clear()
                        self._rung = False
                eager = self._batch(link_ready)
        except BaseException as exc:  # noqa: BLE001 - reported to waiters, not swallowed
            self.error = exc
            print(f"synack loop {self.name}: stopped by an exception", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
        finally:
            poller.close()
            self._running = False
            self._finished = True
            self.done.set()
            with self.cond:
                self.cond.notify_all()
                self._notify_all_fds()
            self._bell.close()

    def _next_deadline(self) -> int | None:
        """The stack's next timer, or the link's own (ARP retries, held packets); the
        link's alone is kept in ``_link_due`` for the next batch's link tick."""
        deadline = self._host_wake()
        link_deadline = self._link_deadline
        if link_deadline is not None:
            t = self._link_due = link_deadline()
            if t is not None and (deadline is None or t < deadline):
                deadline = t
        return deadline

    def _batch(self, link_ready: bool) -> bool:
        """One batch (see the module's theory of operation); True if it read packets."""
        stack = self.stack
        got: Any = ()
        with self.lock:
            now = self._clock()                  # self.now(), inline
            if not self._steady:
                with self._clock_lock:
                    last = self._last_now
                    if last is not None and now < last:
                        now = last
                    else:
                        self._last_now = now
            link_due = self._link_due
            if self._callbacks:
                while self._callbacks:
                    fn = self._callbacks.popleft()
                    self._guarded(fn, now, "call_soon callback")
                if self._link_deadline is not None:
                    link_due = self._link_deadline()     # a callback may have used the link
            # Else the link's deadline is the one the previous batch ended with: only the
            # loop thread drives the link, and it has not since.
            if link_due is not None and link_due <= now and self._link_tick is not None:
                self._link_tick(now=now)
                link_ready = True            # what the link held back may be due now
            if link_ready:
                recv = self._recv_now
                got = recv(now) if recv is not None else self.link.recv_packets(now=now)
                take_local = self._take_local
                # A link's own packets come from its timers (ARP giving up), and it has
                # a deadline while any wait (TapLink: 0): none without one, no call.
                if take_local is not None and link_due is not None and (local := take_local()):
                    # The host's own ICMP errors (ARP/ND failed): older than what was
                    # read, and from ourselves, so not through the martian check.
                    receive_local = self._receive_local
                    for packet in local:
                        if receive_local is not None:
                            receive_local(packet, now=now)
                        else:
                            stack.receive(packet, now=now, csum_valid=True)
                receive_now = self._receive_now
                if receive_now is not None:
                    for packet, csum_valid in got:
                        receive_now(packet, now, csum_valid)
                else:
                    receive = stack.receive
                    for packet, csum_valid in got:
                        receive(packet, now=now, csum_valid=csum_valid)
            deadline = self._deadline
            if deadline is not None and deadline <= now:
                stack.tick(now=now)
            poked: Any = _NO_FDS
            if not self._plain:          # something to poke or watch (else: nothing to do)
                poked = self._poked
                if poked:
                    self._poked = set()
                fd_watchers = self._fd_watchers
                lo_pending = self._lo_pending
                if lo_pending:
                    self._lo_pending = set()
                if fd_watchers:
                    touched: Any = getattr(stack, "touched", None)
                    ready = (touched & fd_watchers.keys()) if touched else set()
                    if lo_pending:
                        ready |= lo_pending & fd_watchers.keys()
                    if poked:
                        ready |= poked & fd_watchers.keys()
                    for fd in ready:
                        for fn in list(fd_watchers.get(fd, ())):
                            self._guarded(fn, now, "watcher")
                if self._watchers:
                    for fn in list(self._watchers):
                        self._guarded(fn, now, "watcher")
                # (after the watchers, which may have poked or added watchers)
                self._plain = not (self._poked or fd_watchers or self._watchers)
            out = self._transmit(now)                # stack.transmit_gso(now=now)
            if out:
                send = self._send_now
                if send is not None:
                    send(out, now)
                else:
                    self.link.send_packets(out, now=now)
            take = self._take_touched
            if take is None:
                self._notify_all_fds()
            else:
                waits = self._fd_waits
                if waits:
                    done = take()
                    if done or poked:
                        for fd in (done | poked) & waits.keys():
                            waits[fd][0].notify_all()
                elif not self._touch_kept:
                    take()                    # nobody to wake: the host forgets them
            if self._cond_waiters:
                self.cond.notify_all()       # (an empty wait queue spares the call)
            # self._next_deadline(), inline: once per batch
            deadline = self._host_wake()
            link_deadline = self._link_deadline
            if link_deadline is not None:
                quiet = self._quiet_link
                if quiet is not None and quiet._quiet:
                    self._link_due = None     # TapLink.next_deadline()'s first test, inline
                else:
                    t = self._link_due = link_deadline()
                    if t is not None and (deadline is None or t < deadline):
                        deadline = t
            self._deadline = deadline
            lo_owner = self._lo_owner
            # take_lo_touched(), called only when the stack's set has something in it
            lo_touched = (self._take_lo() if lo_owner is not None and lo_owner.lo_touched
                          else None)
            if lo_touched:
                # Packets to the host's own addresses were received inside transmit()
                # (host/loopback.py): another batch at once lets the watchers see
                # them, as a loopback link's doorbell would.
                self._lo_pending |= lo_touched
                self._plain = False
                self._deadline = now
        return bool(got)

    def _guarded(self, fn: Callback, now: int, what: str) -> None:
        """User code must not kill the loop: report its exception and carry on."""
        try:
            fn(now)
        except Exception:  # noqa: BLE001 - user code must not kill the loop
            print(f"synack loop {self.name}: exception in {what} {fn!r}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)

    def __repr__(self) -> str:
        state = "running" if self.running else ("failed" if self.error else "stopped")
        return f"<Loop {self.name} {state}>"
