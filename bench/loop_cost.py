"""Server-side CPU per short connection through the whole driver: issue 8's conn/s row
without the kernel (``bench/conn_cost.py`` times the stack and apps alone).

The server is what ``synack serve echo`` runs -- :class:`~synack.link.loop.Loop` over
a :class:`~synack.link.tap.TapLink` (software GRO, ARP and ND as the lab has them)
driving an :class:`~synack.apps.runner.AppRunner` with ``EchoServer`` -- but its TAP
device is a stand-in that hands over the frames a client :class:`~synack.stack.Stack`
sent and keeps what the server writes, and the loop's batches are run by hand
(``Loop._batch``), so there are no syscalls, no threads and no other process: the
figure moves only with the Python the server runs. A client does sequential
connect + 1-byte echo + close; only the server's batches are timed (thread CPU time).
The run is seeded, so ``valgrind --tool=callgrind`` instruction counts are exact
(the difference of two N is the cost per connection, client included).

    PYTHONPATH=src python bench/loop_cost.py [N] [--profile [tottime|cumulative]]
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import synack.link.tap as tap_module
from synack.apps.runner import AppRunner
from synack.apps.simple import EchoServer
from synack.link.loop import Loop
from synack.link.tap import TapLink
from synack.stack import Stack
from synack.wire.ethernet import mac_aton

CLIENT, SERVER = "192.0.2.1", "192.0.2.2"
CLIENT_MAC, SERVER_MAC = "2a:00:00:00:00:01", "02:00:00:00:00:02"


class FakeDevice:
    """A TunTapDevice's interface, in memory: frames to read in ``inq``, written in ``outq``."""

    def __init__(self, name: str, *, tap: bool, offload: bool, mtu: int) -> None:
        self.name = "fake0"
        self.vnet = False
        self.offload = None
        self.stats: Counter[str] = Counter()
        self.inq: list[bytes] = []
        self.outq: list[bytes] = []

    def fileno(self) -> int:
        return -1

    def read_batch(self, limit: int) -> list[bytes]:
        got, self.inq = self.inq[:limit], self.inq[limit:]
        return got

    def write(self, parts: list[bytes]) -> None:
        self.outq.append(b"".join(parts))

    def write_many(self, frames: list[bytes]) -> None:
        self.outq.extend(frames)

    def close(self) -> None:
        pass


class ServerLab:
    """What both loop benches run: the server (Loop over a TapLink on a :class:`FakeDevice`,
    driving an AppRunner with ``apps``) and a client Stack. :meth:`shuttle` hands the
    client's packets to the server as frames, runs one server batch per hand-over (timed in
    thread CPU time, under ``prof`` if given) and hands the server's frames back, until the
    client is quiet; ``on_frame`` sees every frame the server wrote."""

    def __init__(self, apps: Callable[[Stack], list[Any]], prof: Any = None,
                 on_frame: Callable[[bytes], object] | None = None) -> None:
        tap_module.TunTapDevice = FakeDevice  # type: ignore[misc,assignment]
        link = TapLink(addr=SERVER, mac=SERVER_MAC, addr6="2001:db8::2", dad_transmits=0,
                       rng=random.Random(1))
        link.arp.receive(_arp_who_has(), now=0)      # the client's request teaches us its MAC
        link.arp.transmit()
        dev = link.dev
        assert isinstance(dev, FakeDevice)
        self.dev = dev
        s = Stack(SERVER, seed=2)
        runner = AppRunner(s, apps(s), keep_changes=False)
        self.now = [0]
        now = self.now
        self.loop = Loop(runner, link, clock=lambda: now[0])
        with self.loop.lock:
            self.loop._deadline = self.loop._next_deadline()
            runner.take_touched()
        self.client = Stack(CLIENT, seed=1)
        self.eth = mac_aton(SERVER_MAC) + mac_aton(CLIENT_MAC) + b"\x08\x00"
        self.prof = prof
        self.on_frame = on_frame
        self.spent = 0.0
        self.batches = 0

    def shuttle(self) -> None:
        c, dev, now, prof = self.client, self.dev, self.now, self.prof
        while True:
            sent = c.transmit(now=now[0])
            if not sent:
                return
            dev.inq.extend(self.eth + p for p in sent)
            t = time.thread_time()
            if prof:
                prof.enable()
            self.loop._batch(True)
            if prof:
                prof.disable()
            self.spent += time.thread_time() - t
            self.batches += 1
            got, dev.outq = dev.outq, []
            for frame in got:
                if self.on_frame is not None:
                    self.on_frame(frame)
                c.receive(frame[14:], now=now[0])


def profiler() -> Any:
    """A cProfile.Profile with --profile on the command line, else None."""
    if "--profile" not in sys.argv:
        return None
    import cProfile

    return cProfile.Profile()


def print_profile(prof: Any) -> None:
    if prof:
        import pstats

        order = sys.argv[-1] if sys.argv[-1] in ("cumulative", "tottime") else "tottime"
        pstats.Stats(prof).sort_stats(order).print_stats(45)


def count_arg(default: int) -> int:
    """The count given on the command line (the first plain argument), else ``default``."""
    args = [a for a in sys.argv[1:] if not a.startswith("-") and a not in ("tottime", "cumulative")]
    return int(args[0]) if args else default


def main() -> None:
    n_conns = count_arg(3000)
    prof = profiler()
    digest = hashlib.sha256()      # of every frame the server wrote: a change shows here
    lab = ServerLab(lambda s: [EchoServer(s, 7)], prof, on_frame=digest.update)
    c, now = lab.client, lab.now
    c.cfg.set("net.ipv4.tcp_tw_reuse", 1)
    for _ in range(n_conns):
        fd = c.socket()
        c.connect_ex(fd, (SERVER, 7), now=now[0])
        lab.shuttle()
        c.send(fd, b"x", now=now[0])
        lab.shuttle()
        if c.recv(fd, 10, now=now[0]) != b"x":
            raise SystemExit("no echo")
        c.close(fd, now=now[0])
        lab.shuttle()
        now[0] += 100
        d = c.next_deadline()
        if d is not None and d <= now[0]:
            c.tick(now=now[0])
        c.changes.clear()
    print(f"server side (loop + TAP link + stack + echo): {lab.spent / n_conns * 1e6:.1f} us "
          f"per connection, {lab.batches / n_conns:.1f} batches each; "
          f"frames {digest.hexdigest()[:16]}")
    print_profile(prof)


def _arp_who_has() -> bytes:
    from synack.wire.arp import OP_REQUEST, ArpPacket, encode_arp

    return encode_arp(ArpPacket(OP_REQUEST, CLIENT_MAC, CLIENT, "00:00:00:00:00:00", SERVER))


if __name__ == "__main__":
    main()
