"""Memory row (issue 8): bytes per idle established connection and per TIME_WAIT entry.

Two synack Stacks in this process, joined by hand (each one's ``transmit``
handed to the other's ``receive``, in batches, with a virtual clock), under
``tracemalloc``:

* A: both stacks made, the server listening;
* B: N connections established and accepted, idle: ``(B - A) / 2N`` per
  connection (both ends hold one each);
* C: the client closed all N first, the server then closed its ends: the
  client holds N TIME_WAIT entries, the server nothing;
* D: the client's TIME_WAIT table, its timer heap and its port counts dropped:
  ``(C - D) / N`` per entry -- the entry, its 4-tuple key and table slot, its
  place in the timer heap and in the port counts. (C - A would also charge the
  entries with the capacity the emptied connection tables keep: a Python dict
  does not shrink.)

What a stack keeps about the past for tools (``changes``, the state-change log
``synack ss --trace`` reads) is cleared before each measurement, as
``synack serve`` does, and the descriptors touched are taken as a driver takes
them after each batch. Issue 8's bounds are 2048 B and 256 B; Linux's own
figures are constants, not a measurement, so they are not a baseline here.
"""

from __future__ import annotations

import gc
import tracemalloc

from synack.config import Sysctl
from synack.host.timerq import TimerQueue
from synack.stack import Stack

CLIENT, SERVER = "192.0.2.1", "192.0.2.2"
PORT = 7
STEP_US = 1000
TARGET_ESTABLISHED = 2048
TARGET_TIME_WAIT = 256


def _forget(*stacks: Stack) -> None:
    for st in stacks:
        log = getattr(st, "changes", None)
        if isinstance(log, list):
            log.clear()
        st.take_touched()


def _settle(a: Stack, b: Stack, now: int, rounds: int = 100) -> int:
    """Exchange packets (and serve due timers) until both are quiet; the new time."""
    for _ in range(rounds):
        moved = False
        for src, dst in ((a, b), (b, a)):
            dl = src.next_deadline()
            if dl is not None and dl <= now:
                src.tick(now=now)
            out = src.transmit(now=now)
            for pkt in out:
                dst.receive(pkt, now=now)
            moved = moved or bool(out)
        _forget(a, b)
        if not moved:
            return now
        now += STEP_US
    raise RuntimeError(f"the stacks still talk after {rounds} rounds")


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def measure(n: int) -> tuple[float, float]:
    """(bytes per idle established connection, bytes per TIME_WAIT entry) with N of each."""
    cfg = Sysctl()
    for name in ("net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog"):
        cfg.set(name, max(n, cfg.int(name)))
    tracemalloc.start()
    try:
        cli = Stack(CLIENT, cfg=cfg, seed=1, name="client")
        srv = Stack(SERVER, cfg=cfg, seed=2, name="server")
        lfd = srv.socket()
        srv.bind(lfd, ("0.0.0.0", PORT))
        srv.listen(lfd, n)
        now = 1_000_000
        a = _traced()
        fds = []
        for _ in range(n):
            fd = cli.socket()
            cli.connect_ex(fd, (SERVER, PORT), now=now)
            fds.append(fd)
        now = _settle(cli, srv, now)
        accepted = []
        while True:
            try:
                accepted.append(srv.accept(lfd)[0])
            except BlockingIOError:
                break
        if len(accepted) != n:
            raise RuntimeError(f"{len(accepted)} of {n} connections accepted")
        b = _traced()
        for fd in fds:
            cli.close(fd, now=now)
        now = _settle(cli, srv, now)
        for fd in accepted:
            if srv.recv(fd, 1, now=now) != b"":
                raise RuntimeError("the server did not see the client's FIN")
            srv.close(fd, now=now)
        now = _settle(cli, srv, now)
        tw = sum(1 for r in cli.connections() if r.state.name == "TIME_WAIT")
        if tw != n or len(srv.connections()) != 1:
            raise RuntimeError(f"{tw} of {n} in TIME_WAIT, server holds "
                               f"{len(srv.connections()) - 1}")
        c = _traced()
        cli.timewait.clear()
        cli.timers = TimerQueue(cli.timewait)
        cli.ports.timewait.clear()
        d = _traced()
        return (b - a) / (2 * n), (c - d) / n
    finally:
        tracemalloc.stop()
