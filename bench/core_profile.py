"""Where the TCP core spends its time, and what an idle connection costs in memory.

    PYTHONPATH=src .venv/bin/python bench/core_profile.py core     # us per packet, stacks only
    PYTHONPATH=src .venv/bin/python bench/core_profile.py cpu      # us per packet, simulator
    PYTHONPATH=src .venv/bin/python bench/core_profile.py profile  # cProfile, top functions
    PYTHONPATH=src .venv/bin/python bench/core_profile.py memory   # bytes per idle connection
    PYTHONPATH=src .venv/bin/python bench/core_profile.py ack      # us per pure ACK built

``core`` wires two stacks back to back (no simulator, no impairments) and divides
the CPU time of a bulk transfer by the packets exchanged. ``cpu`` and ``profile``
run a seeded bulk transfer between two synack stacks in
the simulator (5 ms link, no impairments, no offloads); the figure is process CPU
time divided by the packets on the wire. ``memory`` opens N connections between
two stacks, lets them go idle, and divides the tracemalloc delta by the number of
connection endpoints; then it closes them so the client holds N TIME_WAIT entries
and divides again. ``ack`` times building the bytes of a pure ACK, the way the
stack does it after a connection emits one.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time
import timeit
import tracemalloc

from synack.demo.bulk import transfer
from synack.host.timerq import TimerQueue
from synack.sim import LinkParams
from synack.stack import Stack
from synack.tcp.state import State
from synack.units import parse_size

CLIENT, SERVER, PORT = "192.0.2.1", "192.0.2.2", 5001


def _transfer(nbytes: int, seed: int) -> tuple[float, int]:
    t0 = time.process_time()
    r = transfer(nbytes, seed=seed, link=LinkParams(delay_us=5_000))
    cpu = time.process_time() - t0
    assert r.intact and r.finished, "transfer failed"
    return cpu, r.packets


def core_transfer(nbytes: int) -> tuple[float, int]:
    """Two stacks wired back to back (no simulator): CPU seconds and packets for moving
    ``nbytes``. A round carries every packet each way; the clock moves 100 us a round,
    or to the next deadline when nothing moves."""
    cli, srv = Stack(CLIENT, seed=1), Stack(SERVER, seed=2)
    lfd = srv.socket()
    srv.bind(lfd, (SERVER, PORT))
    srv.listen(lfd)
    fd = cli.socket()
    now = 0
    cli.connect_ex(fd, (SERVER, PORT), now=now)
    _pump(cli, srv, now)
    sfd = srv.accept(lfd)[0]
    data = memoryview(bytes(nbytes))
    sent = got = packets = 0
    t0 = time.process_time()
    while got < nbytes:
        while sent < nbytes:
            try:
                sent += cli.send(fd, data[sent:], now=now)
            except BlockingIOError:
                break
        moved = False
        for x, y in ((cli, srv), (srv, cli)):
            out = x.transmit(now=now)
            packets += len(out)
            for p in out:
                y.receive(p, now=now)
                moved = True
        while True:
            try:
                chunk = srv.recv(sfd, 1 << 20, now=now)
            except BlockingIOError:
                break
            got += len(chunk)
        now += 100
        if not moved:
            deadlines = [t for t in (cli.next_deadline(), srv.next_deadline()) if t is not None]
            if deadlines:
                now = max(now, min(deadlines))
                cli.tick(now=now)
                srv.tick(now=now)
    return time.process_time() - t0, packets


def core(nbytes: int, runs: int) -> None:
    best = None
    for run in range(1, runs + 1):
        secs, packets = core_transfer(nbytes)
        us = secs * 1e6 / packets
        best = us if best is None else min(best, us)
        print(f"run {run}: {secs:.2f} s CPU, {packets} packets, {us:.2f} us/packet")
    print(f"best: {best:.2f} us per packet (stacks only, no simulator)")


def cpu(nbytes: int, runs: int) -> None:
    best = None
    for run in range(1, runs + 1):
        secs, packets = _transfer(nbytes, 1)     # the same seeded transfer each time
        us = secs * 1e6 / packets
        best = us if best is None else min(best, us)
        print(f"run {run}: {secs:.2f} s CPU, {packets} packets, {us:.2f} us/packet")
    print(f"best: {best:.2f} us per packet on the wire (simulator included)")


def profile(nbytes: int, top: int) -> None:
    prof = cProfile.Profile()
    prof.enable()
    _transfer(nbytes, 1)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


# ------------------------------------------------------------------ memory
def _pump(a: Stack, b: Stack, now: int) -> None:
    """Carry packets both ways until both stacks are quiet."""
    while True:
        moved = False
        for x, y in ((a, b), (b, a)):
            for p in x.transmit(now=now):
                y.receive(p, now=now)
                moved = True
        if not moved:
            return


def open_idle(n: int) -> tuple[Stack, Stack, list[int], list[int], int]:
    """Two stacks with ``n`` established, idle connections; returns the fds and the time."""
    cli, srv = Stack(CLIENT, seed=1), Stack(SERVER, seed=2)
    lfd = srv.socket()
    srv.bind(lfd, (SERVER, PORT))
    srv.listen(lfd, 4096)
    now = 0
    cfds, sfds = [], []
    for _ in range(n):
        fd = cli.socket()
        cli.connect_ex(fd, (SERVER, PORT), now=now)
        cfds.append(fd)
        _pump(cli, srv, now)
        sfds.append(srv.accept(lfd)[0])
        now += 10
    # Let delayed ACKs and quick-ACK state settle; nothing is in flight.
    now += 1_000_000
    cli.tick(now=now)
    srv.tick(now=now)
    _pump(cli, srv, now)
    assert all(cli.state(fd) is State.ESTABLISHED for fd in cfds)
    cli.changes.clear()
    srv.changes.clear()
    return cli, srv, cfds, sfds, now


def measure_idle(n: int) -> float:
    """tracemalloc bytes per idle ESTABLISHED endpoint (both stacks, all they hold)."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    held = open_idle(n)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del held
    return used / (2 * n)


def measure_timewait(n: int) -> tuple[float, float]:
    """tracemalloc bytes per TIME_WAIT entry: the client closes first and keeps ``n``.

    Two figures: what dropping the entries frees (each entry and what only it holds,
    like Linux's ``tcp_timewait_sock``), and what dropping the whole table frees (that
    plus the stack's 4-tuple keys and the dict).
    """
    gc.collect()
    tracemalloc.start()
    cli, srv, cfds, sfds, now = open_idle(n)
    for fd in cfds:
        cli.close(fd, now=now)
    _pump(cli, srv, now)
    for fd in sfds:
        srv.close(fd, now=now)
    _pump(cli, srv, now)
    assert len(cli.timewait) == n and not cli.conns and not srv.conns
    cli.changes.clear()
    srv.changes.clear()
    cli.timers.compact()              # stale entries of the closed connections
    gc.collect()
    table = cli.timewait
    held = tracemalloc.get_traced_memory()[0]
    for key in table:
        table[key] = None  # type: ignore[assignment]
    cli.timers = TimerQueue(table)    # the entries' places in the timer heap go too
    gc.collect()
    entries = held - tracemalloc.get_traced_memory()[0]
    cli.timewait = {}
    del table
    gc.collect()
    freed = held - tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return entries / n, freed / n


def memory(n: int) -> None:
    print(f"idle ESTABLISHED: {measure_idle(n):.0f} bytes per endpoint (N={n} connections)")
    entry, table = measure_timewait(n)
    print(f"TIME_WAIT:        {entry:.0f} bytes per entry, {table:.0f} with key and table"
          f" (N={n})")


# ------------------------------------------------------------------ pure ACK
def ack(n: int) -> None:
    """Microseconds for the pure ACK's record, its packet, and both through the stack."""
    from synack.wire.ipv4 import build_tcp_packet
    from synack.wire.tcp import ACK, make_segment

    cli, _srv, cfds, _sfds, now = open_idle(1)
    conn = cli.connection(cfds[0])
    assert conn is not None
    seg = make_segment(40000, PORT, 123456789, 987654321, ACK, 500, 0, b"", None, None,
                       False, (), (111111, 2222222), (), 0, 0, 0, ())

    def best(f: object) -> float:
        return min(timeit.repeat(f, number=n, repeat=7)) * 1e6 / n  # type: ignore[arg-type]

    def record() -> None:
        conn._segment(ACK, conn.snd.snd_nxt)
        conn.outbox.clear()

    def both() -> None:
        conn._send_ack()
        cli.transmit(now=now)

    print(f"pure ACK record (Connection._segment): {best(record):.2f} us")
    print(f"pure ACK packet (build_tcp_packet):     "
          f"{best(lambda: build_tcp_packet(CLIENT, SERVER, seg, ttl=64, ident=5)):.2f} us")
    print(f"both, through Stack.transmit:           {best(both):.2f} us")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["core", "cpu", "profile", "memory", "ack"])
    ap.add_argument("--bytes", default="20M", help="payload of the transfer (default 20M)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("-n", type=int, default=2000, help="connections for memory (default 2000)")
    args = ap.parse_args()
    nbytes = parse_size(args.bytes)
    if args.what == "core":
        core(nbytes, args.runs)
    elif args.what == "cpu":
        cpu(nbytes, args.runs)
    elif args.what == "profile":
        profile(nbytes, args.top)
    elif args.what == "memory":
        memory(args.n)
    else:
        ack(20_000)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
