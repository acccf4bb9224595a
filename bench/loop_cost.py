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

import random
import sys
import time
from collections import Counter

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
        got, self.inq = self.inq, []
        return got

    def write(self, parts: list[bytes]) -> None:
        self.outq.append(b"".join(parts))

    def close(self) -> None:
        pass


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("-") and a not in ("tottime", "cumulative")]
    n_conns = int(args[0]) if args else 3000
    prof = None
    if "--profile" in sys.argv:
        import cProfile

        prof = cProfile.Profile()

    tap_module.TunTapDevice = FakeDevice  # type: ignore[misc,assignment]
    link = TapLink(addr=SERVER, mac=SERVER_MAC, addr6="2001:db8::2", dad_transmits=0,
                   rng=random.Random(1))
    link.arp.receive(_arp_who_has(), now=0)      # the client's request teaches us its MAC
    link.arp.transmit()
    dev = link.dev
    assert isinstance(dev, FakeDevice)
    s = Stack(SERVER, seed=2)
    runner = AppRunner(s, [EchoServer(s, 7)], keep_changes=False)
    now = [0]
    loop = Loop(runner, link, clock=lambda: now[0])
    with loop.lock:
        loop._deadline = loop._next_deadline()
        runner.take_touched()
    c = Stack(CLIENT, seed=1)
    c.cfg.set("net.ipv4.tcp_tw_reuse", 1)
    eth = mac_aton(SERVER_MAC) + mac_aton(CLIENT_MAC) + b"\x08\x00"
    spent = [0.0]
    batches = [0]

    def shuttle() -> None:
        while True:
            sent = c.transmit(now=now[0])
            if not sent:
                return
            dev.inq.extend(eth + p for p in sent)
            t = time.thread_time()
            if prof:
                prof.enable()
            loop._batch(True)
            if prof:
                prof.disable()
            spent[0] += time.thread_time() - t
            batches[0] += 1
            got, dev.outq = dev.outq, []
            for frame in got:
                c.receive(frame[14:], now=now[0])

    for _ in range(n_conns):
        fd = c.socket()
        c.connect_ex(fd, (SERVER, 7), now=now[0])
        shuttle()
        c.send(fd, b"x", now=now[0])
        shuttle()
        if c.recv(fd, 10, now=now[0]) != b"x":
            raise SystemExit("no echo")
        c.close(fd, now=now[0])
        shuttle()
        now[0] += 100
        d = c.next_deadline()
        if d is not None and d <= now[0]:
            c.tick(now=now[0])
        c.changes.clear()
    print(f"server side (loop + TAP link + stack + echo): {spent[0] / n_conns * 1e6:.1f} us "
          f"per connection, {batches[0] / n_conns:.1f} batches each")
    if prof:
        import pstats

        order = sys.argv[-1] if sys.argv[-1] in ("cumulative", "tottime") else "tottime"
        pstats.Stats(prof).sort_stats(order).print_stats(45)


def _arp_who_has() -> bytes:
    from synack.wire.arp import OP_REQUEST, ArpPacket, encode_arp

    return encode_arp(ArpPacket(OP_REQUEST, CLIENT_MAC, CLIENT, "00:00:00:00:00:00", SERVER))


if __name__ == "__main__":
    main()
