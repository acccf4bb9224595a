"""The two ends of one benchmark transfer, the same for every stack measured.

    python bench/peer.py client HOST PORT up|down NBYTES   # the kernel side, timed
    python bench/peer.py server ADDR PORT CONNS            # a kernel server (veth reference)

The client (always the Linux kernel's TCP, run in a namespace) connects, sends
a 16-byte header -- ``u`` or ``d`` and the byte count -- and starts its clock.
``up``: it writes NBYTES, half-closes and waits for the server's FIN (the server
closes once it has read everything). ``down``: it reads until the server's FIN.
It prints ``<bytes> <seconds>``. Timing on the kernel side, by one program,
keeps the figures of synack, PyTCP and the kernel comparable.

:func:`serve_conn` is the server's half for any object with the stdlib socket
methods (the stdlib's sockets and :mod:`synack.socket`).
"""

from __future__ import annotations

import socket
import sys
import time
from typing import Any

HEADER = 16
BLOCK = 1 << 20


def parse_header(raw: bytes) -> tuple[str, int]:
    """(``"up"`` or ``"down"``, byte count) from a 16-byte header."""
    mode = {b"u": "up", b"d": "down"}[raw[:1]]
    return mode, int(raw[1:HEADER])


def make_header(mode: str, nbytes: int) -> bytes:
    """The header :func:`parse_header` reads."""
    return mode[:1].encode() + str(nbytes).rjust(HEADER - 1).encode()


def serve_conn(conn: Any) -> int:
    """Serve one accepted connection as the header asks; returns the bytes moved."""
    raw = b""
    while len(raw) < HEADER:
        chunk = conn.recv(HEADER - len(raw))
        if not chunk:
            return 0
        raw += chunk
    mode, nbytes = parse_header(raw)
    moved = 0
    if mode == "up":
        while chunk := conn.recv(BLOCK):
            moved += len(chunk)
    else:
        block = memoryview(b"d" * BLOCK)
        while moved < nbytes:
            n = min(nbytes - moved, BLOCK)
            conn.sendall(block[:n])
            moved += n
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(BLOCK):
            pass
    conn.close()
    return moved


def client(host: str, port: int, mode: str, nbytes: int, timeout: float = 120) -> tuple[int, float]:
    """One timed transfer from the kernel's side: (bytes moved, seconds)."""
    s = socket.create_connection((host, port), timeout=timeout)
    with s:
        s.sendall(make_header(mode, nbytes))
        t0 = time.perf_counter()
        moved = 0
        if mode == "up":
            block = memoryview(b"u" * BLOCK)
            while moved < nbytes:
                moved += s.send(block[:min(nbytes - moved, BLOCK)])
            s.shutdown(socket.SHUT_WR)
            while s.recv(BLOCK):
                pass
        else:
            while chunk := s.recv(BLOCK):
                moved += len(chunk)
        return moved, time.perf_counter() - t0


def server(addr: str, port: int, conns: int) -> None:
    """Accept ``conns`` connections one after the other and serve each."""
    ls = socket.create_server((addr, port))
    print("listening", flush=True)
    with ls:
        for _ in range(conns):
            c, _ = ls.accept()
            serve_conn(c)


def main(argv: list[str]) -> int:
    if argv[:1] == ["client"] and len(argv) == 5:
        moved, dt = client(argv[1], int(argv[2]), argv[3], int(argv[4]))
        print(moved, f"{dt:.6f}", flush=True)
        return 0
    if argv[:1] == ["server"] and len(argv) == 4:
        server(argv[1], int(argv[2]), int(argv[3]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
