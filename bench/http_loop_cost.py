"""Server-side CPU per keep-alive HTTP request through the whole driver: issue 8's
``ab -k -c 50`` row without the kernel (``bench/http_cost.py`` times the stack and
apps alone, one connection).

The server is what ``synack serve http`` runs -- :class:`~synack.link.loop.Loop` over a
:class:`~synack.link.tap.TapLink` driving an :class:`~synack.apps.runner.AppRunner`
with ``HttpServer`` -- over the in-memory TAP device of ``bench/loop_cost.py``. A
client :class:`~synack.stack.Stack` keeps ``C`` (50) keep-alive connections and sends
ab's request on each of them every round, so each server batch holds ``C`` requests
as ab's would. Only the server's batches are timed (thread CPU time); the run is
seeded, so callgrind instruction counts are exact (the difference of two N is the
cost per request, client included).

    PYTHONPATH=src python bench/http_loop_cost.py [N] [--profile [tottime|cumulative]]
"""

from __future__ import annotations

import hashlib
import random
import sys
import time

import synack.link.tap as tap_module
from synack.apps.http import HttpServer
from synack.apps.runner import AppRunner
from synack.link.loop import Loop
from synack.link.tap import TapLink
from synack.stack import Stack
from synack.wire.ethernet import mac_aton

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from loop_cost import CLIENT, CLIENT_MAC, SERVER, SERVER_MAC, FakeDevice, _arp_who_has

C = 50
REQ = (b"GET /bytes/1024 HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: 192.0.2.2\r\n"
       b"User-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n")


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("-") and a not in ("tottime", "cumulative")]
    n_requests = int(args[0]) if args else 5000
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
    runner = AppRunner(s, [HttpServer(s, 80, clock=lambda: 1_700_000_000.0)],
                       keep_changes=False)
    now = [0]
    loop = Loop(runner, link, clock=lambda: now[0])
    with loop.lock:
        loop._deadline = loop._next_deadline()
        runner.take_touched()
    c = Stack(CLIENT, seed=1)
    eth = mac_aton(SERVER_MAC) + mac_aton(CLIENT_MAC) + b"\x08\x00"
    spent = [0.0]
    batches = [0]
    digest = hashlib.sha256()      # of every frame the server wrote: a change shows here

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
                digest.update(frame)
                c.receive(frame[14:], now=now[0])

    fds = []
    for _ in range(C):
        fd = c.socket()
        c.connect_ex(fd, (SERVER, 80), now=now[0])
        fds.append(fd)
    shuttle()
    spent[0] = 0.0
    batches[0] = 0
    rounds = max(n_requests // C, 1)
    for _ in range(rounds):
        for fd in fds:
            c.send(fd, REQ, now=now[0])
        shuttle()
        for fd in fds:
            got = c.recv(fd, 1 << 16, now=now[0])
            if not got.startswith(b"HTTP/1.1 200") or len(got) < 1024:
                raise SystemExit(f"bad response {got[:80]!r}")
        now[0] += 200
        d = c.next_deadline()
        if d is not None and d <= now[0]:
            c.tick(now=now[0])
            shuttle()
    n = rounds * C
    print(f"server side (loop + TAP link + stack + http, {C} connections): "
          f"{spent[0] / n * 1e6:.1f} us per request, {batches[0] / rounds:.1f} batches a round; "
          f"frames {digest.hexdigest()[:16]}")
    if prof:
        import pstats

        order = sys.argv[-1] if sys.argv[-1] in ("cumulative", "tottime") else "tottime"
        pstats.Stats(prof).sort_stats(order).print_stats(45)


if __name__ == "__main__":
    main()
