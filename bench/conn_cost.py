"""Server-side CPU per short connection, in process (issue 8's conn/s row, without the link).

A client Stack does sequential connect + 1-byte echo + close against ``EchoServer``
behind an ``AppRunner``; only the server's calls are timed (receive, transmit with
the app poll, tick): 6 packets in, 4 out per connection.

    PYTHONPATH=src python bench/conn_cost.py [N] [--profile [tottime|cumulative]]
"""

import sys
import time

from synack.apps.runner import AppRunner
from synack.apps.simple import EchoServer
from synack.stack import Stack

A, B = "192.0.2.1", "192.0.2.2"
c = Stack(A, seed=1)
s = Stack(B, seed=2)
r = AppRunner(s, [EchoServer(s, 7)], keep_changes=False)
c.cfg.set("net.ipv4.tcp_tw_reuse", 1)
now = [0]
spent = [0.0]
pc = time.perf_counter
prof = None
if "--profile" in sys.argv:
    import cProfile

    prof = cProfile.Profile()


def on() -> None:
    if prof:
        prof.enable()


def off() -> None:
    if prof:
        prof.disable()


def shuttle() -> None:
    while True:
        pa = c.transmit(now=now[0])
        t = pc()
        on()
        pb = r.transmit(now=now[0])
        off()
        spent[0] += pc() - t
        if not pa and not pb:
            return
        t = pc()
        on()
        for p in pa:
            r.receive(p, now=now[0])
        off()
        spent[0] += pc() - t
        for p in pb:
            c.receive(p, now=now[0])


def one() -> None:
    fd = c.socket()
    c.connect_ex(fd, (B, 7), now=now[0])
    shuttle()
    c.send(fd, b"x", now=now[0])
    shuttle()
    assert c.recv(fd, 10, now=now[0]) == b"x"
    c.close(fd, now=now[0])
    shuttle()
    now[0] += 100
    for st in (c, s):
        d = st.next_deadline()
        if d is not None and d <= now[0]:
            t = pc()
            if st is s:
                on()
            st.tick(now=now[0])
            if st is s:
                off()
                spent[0] += pc() - t
    c.changes.clear()


args = [a for a in sys.argv[1:] if not a.startswith("-") and a not in ("tottime", "cumulative")]
N = int(args[0]) if args else 5000
for _ in range(N):
    one()
print(f"server side: {spent[0] / N * 1e6:.1f} us per connection")
if prof:
    import pstats

    order = sys.argv[-1] if sys.argv[-1] in ("cumulative", "tottime") else "tottime"
    st = pstats.Stats(prof).sort_stats(order)
    st.print_stats(45)
    if "--callers" in sys.argv:
        st.print_callers("len|max|make")
