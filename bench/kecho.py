"""A kernel echo server in Python with ``selectors``: the baseline of the connection rows.

    python bench/kecho.py ADDR PORT      # prints "listening", serves until killed

One thread, non-blocking sockets, as an event-driven server in Python is usually
written: echo what arrives, close when the peer closes. RLIMIT_NOFILE is raised
as far as the hard limit allows.
"""

from __future__ import annotations

import resource
import selectors
import socket
import sys

BACKLOG = 4096          # as synack serve's default (net.core.somaxconn)


def raise_nofile(want: int) -> None:
    """Raise the open-files limit to ``want`` (root may raise the hard limit too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve(addr: str, port: int) -> None:
    raise_nofile(200_000)
    sel = selectors.DefaultSelector()
    # SO_REUSEPORT: several of these may share the port when one process may not hold
    # every connection (RLIMIT_NOFILE); the kernel spreads new connections among them.
    ls = socket.create_server((addr, port), backlog=BACKLOG, reuse_port=True)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ, None)
    print("listening", flush=True)
    while True:
        for key, _ in sel.select():
            if key.data is None:
                while True:
                    try:
                        c, _ = ls.accept()
                    except BlockingIOError:
                        break
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ, b"")
                continue
            conn = key.fileobj
            assert isinstance(conn, socket.socket)
            try:
                data = conn.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data:
                try:
                    conn.sendall(data)     # 1-byte echoes: the send buffer never fills
                    continue
                except OSError:
                    pass
            sel.unregister(conn)
            conn.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    serve(sys.argv[1], int(sys.argv[2]))
