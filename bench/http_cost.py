"""Server-side cost of one keep-alive HTTP request, in process (no link, no kernel).

Runs ab's request (HTTP/1.0 with ``Connection: Keep-Alive``) N times on one
connection between two Stacks and times only the server's calls. ``--profile``
prints cProfile's view of those calls.
"""
import cProfile
import pstats
import sys
import time

from synack.apps.http import HttpServer
from synack.apps.runner import AppRunner
from synack.stack import Stack

A, B = "192.0.2.1", "192.0.2.2"
PROFILE = "--profile" in sys.argv
c = Stack(A, seed=1)
s = Stack(B, seed=2)
r = AppRunner(s, [HttpServer(s, 80)], keep_changes=False)
now = [0]
spent = [0.0]
pc = time.perf_counter
prof = cProfile.Profile()


def server(fn, *a, **kw):
    t = pc()
    if PROFILE:
        prof.enable()
    out = fn(*a, **kw)
    if PROFILE:
        prof.disable()
    spent[0] += pc() - t
    return out


def shuttle():
    while True:
        pa = c.transmit(now=now[0])
        pb = server(r.transmit, now=now[0])
        if not pa and not pb:
            return
        for p in pa:
            server(r.receive, p, now=now[0])
        for p in pb:
            c.receive(p, now=now[0])


fd = c.socket()
c.connect_ex(fd, (B, 80), now=0)
shuttle()
req = (b"GET /bytes/1024 HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: 192.0.2.2\r\n"
       b"User-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n")
N = 5000
spent[0] = 0
for _ in range(N):
    c.send(fd, req, now=now[0])
    shuttle()
    got = c.recv(fd, 1 << 16, now=now[0])
    assert got.startswith(b"HTTP/1.1 200"), got[:50]
    assert b"Connection: keep-alive" in got, got[:300]
    now[0] += 50
    for st in (c, s):
        d = st.next_deadline()
        if d is not None and d <= now[0]:
            if st is s:
                server(st.tick, now=now[0])
            else:
                st.tick(now=now[0])
    shuttle()
print(f"server side: {spent[0] / N * 1e6:.1f} us per request")
if PROFILE:
    pstats.Stats(prof).sort_stats("tottime").print_stats(int(sys.argv[-1]) if sys.argv[-1].isdigit() else 30)
