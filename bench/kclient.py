"""The kernel-side clients of the connection rows, run inside a lab namespace.

    python bench/kclient.py rate HOST PORT SECONDS MAXCONN
    python bench/kclient.py hold HOST PORT CONNS BOUND
    python bench/kclient.py probe HOST PORT PROBES BOUND

``rate``: one connection after another -- connect, send 1 byte, read the echo,
close -- for SECONDS or MAXCONN connections, whichever comes first. Prints
``<connections> <seconds>``.

``hold``: open CONNS connections (at most ``INFLIGHT`` handshakes at a time,
for at most BOUND seconds) and leave them idle. Prints a JSON line -- ``held``
(established and not closed by the peer), ``open_s``, ``error`` if any -- then
waits for the end of stdin, prints ``{"held": N}`` again and closes them all.
A process holds as many as its open-files limit allows: run several for more.

``probe``: time up to PROBES 1-byte echo round trips on a new connection, for at
most BOUND seconds. Prints a JSON line: ``rtts`` done, ``p50_us`` and ``p99_us``
(absent if none), ``error`` if any.
"""

from __future__ import annotations

import errno
import json
import selectors
import socket
import sys
import time

from kecho import raise_nofile

INFLIGHT = 256


def rate(host: str, port: int, seconds: float, maxconn: int) -> tuple[int, float]:
    """Sequential connect + 1-byte echo + close; (connections done, seconds)."""
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while n < maxconn and time.perf_counter() < end:
        s = socket.create_connection((host, port), timeout=10)
        try:
            s.sendall(b"x")
            if s.recv(1) != b"x":
                raise RuntimeError(f"connection {n}: no echo")
        finally:
            s.close()
        n += 1
    return n, time.perf_counter() - t0


def _open(host: str, port: int, conns: int, deadline: float) -> tuple[list[socket.socket], str]:
    """Up to ``conns`` established, idle connections, opened before ``deadline``.

    The first failure stops new attempts; those under way are still waited for.
    """
    sel = selectors.DefaultSelector()
    done: list[socket.socket] = []
    started = 0
    error = ""
    while time.monotonic() < deadline:
        while not error and started < conns and len(sel.get_map()) < INFLIGHT:
            s = socket.socket()
            s.setblocking(False)
            rc = s.connect_ex((host, port))
            if rc not in (0, errno.EINPROGRESS):
                s.close()
                error = f"connect: {errno.errorcode.get(rc, rc)} after {len(done)}"
                break
            sel.register(s, selectors.EVENT_WRITE)
            started += 1
        if not sel.get_map():
            break
        for key, _ in sel.select(max(0.0, min(1.0, deadline - time.monotonic()))):
            conn = key.fileobj
            assert isinstance(conn, socket.socket)
            sel.unregister(conn)
            rc = conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if rc:
                conn.close()
                error = error or f"handshake: {errno.errorcode.get(rc, rc)} after {len(done)}"
            else:
                done.append(conn)
    for key in list(sel.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    sel.close()
    return done, error


def _still_open(conns: list[socket.socket]) -> int:
    """How many of the idle connections have seen nothing (no FIN, no RST)."""
    sel = selectors.DefaultSelector()
    for s in conns:
        sel.register(s, selectors.EVENT_READ)
    gone = len(sel.select(0))
    sel.close()
    return len(conns) - gone


def hold(host: str, port: int, conns: int, bound: float) -> None:
    """Open ``conns`` idle connections, report, wait for stdin's end, report again, close."""
    raise_nofile(conns + 100)
    t0 = time.monotonic()
    open_, error = _open(host, port, conns, t0 + bound)
    if len(open_) < conns and not error:
        error = f"only {len(open_)} of {conns} open within {bound:.0f} s"
    doc: dict[str, object] = {"open_s": round(time.monotonic() - t0, 2),
                              "held": _still_open(open_)}
    if error:
        doc["error"] = error
    print(json.dumps(doc), flush=True)
    sys.stdin.read()                 # the probes run meanwhile
    print(json.dumps({"held": _still_open(open_)}), flush=True)
    for s in open_:
        s.close()


def probe(host: str, port: int, probes: int, bound: float) -> dict[str, object]:
    """Time up to ``probes`` 1-byte echo round trips on a new connection, within ``bound`` s."""
    end = time.monotonic() + bound
    rtts: list[float] = []
    out: dict[str, object] = {}
    try:
        conn = socket.create_connection((host, port), timeout=max(1.0, bound))
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while len(rtts) < probes and time.monotonic() < end:
                t = time.perf_counter()
                conn.sendall(b"p")
                if conn.recv(1) != b"p":
                    raise RuntimeError("no echo")
                rtts.append(time.perf_counter() - t)
    except (OSError, RuntimeError) as exc:
        out["error"] = f"probe: {exc}"
    out["rtts"] = len(rtts)
    if rtts:
        rtts.sort()
        out["p50_us"] = round(rtts[len(rtts) // 2] * 1e6)
        out["p99_us"] = round(rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))] * 1e6)
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["rate"] and len(argv) == 5:
        n, dt = rate(argv[1], int(argv[2]), float(argv[3]), int(argv[4]))
        print(n, f"{dt:.6f}", flush=True)
        return 0
    if argv[:1] == ["hold"] and len(argv) == 5:
        hold(argv[1], int(argv[2]), int(argv[3]), float(argv[4]))
        return 0
    if argv[:1] == ["probe"] and len(argv) == 5:
        print(json.dumps(probe(argv[1], int(argv[2]), int(argv[3]), float(argv[4]))),
              flush=True)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
