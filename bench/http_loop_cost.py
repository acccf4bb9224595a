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
import sys

from synack.apps.http import HttpServer

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from loop_cost import SERVER, ServerLab, count_arg, print_profile, profiler

C = 50
REQ = (b"GET /bytes/1024 HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: 192.0.2.2\r\n"
       b"User-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n")


def main() -> None:
    n_requests = count_arg(5000)
    prof = profiler()
    digest = hashlib.sha256()      # of every frame the server wrote: a change shows here
    lab = ServerLab(lambda s: [HttpServer(s, 80, clock=lambda: 1_700_000_000.0)], prof,
                    on_frame=digest.update)
    c, now = lab.client, lab.now
    fds = []
    for _ in range(C):
        fd = c.socket()
        c.connect_ex(fd, (SERVER, 80), now=now[0])
        fds.append(fd)
    lab.shuttle()
    lab.spent = 0.0
    lab.batches = 0
    rounds = max(n_requests // C, 1)
    for _ in range(rounds):
        for fd in fds:
            c.send(fd, REQ, now=now[0])
        lab.shuttle()
        for fd in fds:
            got = c.recv(fd, 1 << 16, now=now[0])
            if not got.startswith(b"HTTP/1.1 200") or len(got) < 1024:
                raise SystemExit(f"bad response {got[:80]!r}")
        now[0] += 200
        d = c.next_deadline()
        if d is not None and d <= now[0]:
            c.tick(now=now[0])
            lab.shuttle()
    n = rounds * C
    print(f"server side (loop + TAP link + stack + http, {C} connections): "
          f"{lab.spent / n * 1e6:.1f} us per request, {lab.batches / rounds:.1f} batches a round; "
          f"frames {digest.hexdigest()[:16]}")
    print_profile(prof)


if __name__ == "__main__":
    main()
