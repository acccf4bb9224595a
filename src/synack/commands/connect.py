"""``synack connect HOST PORT``: netcat over a live synack stack.

Standard input goes to the connection and the connection to standard output;
at end of input the write side is shut (a FIN), and the command ends when the
peer closes. With ``--keep-open`` it behaves like OpenBSD nc instead: after the
peer's FIN it keeps sending standard input until that ends, so the connection
stays half-closed (synack in CLOSE_WAIT, the peer in FIN_WAIT_2) meanwhile.

``-w SECS`` is nc's timeout: a connection not established within SECS fails
("Connection timed out"), and one idle both ways for SECS is closed quietly.
Without it the stack's SYN retries decide (Linux: 127 s). A neighbour that never
answers ARP fails the connect after 3 s with "No route to host", as on Linux.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import socket
import sys
import threading
import time

from synack.commands._live import Live, StateLog, running
from synack.stack import SHUT_WR
from synack.tcp.state import State

CONNECT_TIMEOUT_S = 150.0     # beyond Linux's 127 s of SYN retries: the stack decides
CLOSE_WAIT_S = 5.0            # how long to let our FIN be acknowledged before exiting


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``synack connect HOST PORT [--keep-open] [--trace] <link options>``."""
    from synack.link.netns import add_link_args

    p = sub.add_parser("connect", help="like nc: stdin to a TCP connection, the connection "
                                       "to stdout")
    p.add_argument("host", help="IPv4 or IPv6 address to connect to")
    p.add_argument("port", type=int, help="TCP port")
    p.add_argument("--keep-open", action="store_true",
                   help="after the peer closes, keep sending stdin until its end (OpenBSD nc)")
    p.add_argument("--trace", action="store_true", help="print state changes on stderr")
    p.add_argument("-w", dest="wait", type=_seconds, metavar="SECS",
                   help="like nc -w: give up on a connect, or close a connection idle "
                        "both ways, after SECS seconds")
    add_link_args(p)
    p.set_defaults(func=run)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"-w {text!r}: not a number of seconds") from None
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"-w {text!r}: give a positive number of seconds")
    return value


def run(args: argparse.Namespace) -> int:
    """Connect, pump both ways, close."""
    try:
        host = str(ipaddress.ip_address(args.host.strip("[]")))
    except ValueError:
        raise ValueError(f"{args.host!r} is not an IPv4 or IPv6 address") from None
    if not 0 < args.port < 65536:
        raise ValueError(f"port {args.port}: ports are 1-65535")
    log = StateLog(sys.stderr) if args.trace else None
    try:
        with running(args, f"connect {host}:{args.port}") as live:
            if log is not None:
                live.loop.add_watcher(lambda now: _report(live, log))
            return _session(live, host, args.port, args.keep_open, args.wait)
    except KeyboardInterrupt:
        return 130


def _report(live: Live, log: StateLog) -> None:
    changes = live.stack.changes
    if changes:
        log(list(changes))
        changes.clear()


def connect_error(err: int | bytes, state: State) -> int:
    """The errno a finished handshake wait means, or 0 for success.

    Established is success even if the connection has moved on since: a peer that
    sends its data and FIN at once can put it in CLOSE_WAIT (or, reset, CLOSED with
    data to read) before this thread looks -- as connect() returns 0 on Linux and
    the reads that follow see the data, the EOF or the reset.
    """
    if isinstance(err, int) and err:
        return err
    return errno.ETIMEDOUT if state in (State.SYN_SENT, State.SYN_RECEIVED) else 0


def _session(live: Live, host: str, port: int, keep_open: bool,
             wait: float | None = None) -> int:
    stack, loop = live.stack, live.loop
    with loop.lock:
        fd = stack.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        code = stack.connect_ex(fd, (host, port), now=loop.now())
    if code not in (0, errno.EINPROGRESS):
        print(f"synack: connect to {host} port {port} failed: {os.strerror(code)}",
              file=sys.stderr)
        return 1
    loop.wake()
    live.wait(lambda: stack.state(fd) not in (State.SYN_SENT, State.SYN_RECEIVED),
              CONNECT_TIMEOUT_S if wait is None else wait)
    with loop.lock:
        err = stack.getsockopt(fd, socket.SOL_SOCKET, socket.SO_ERROR)
        state = stack.state(fd)
    code = connect_error(err, state)
    if code:
        with loop.lock:
            stack.close(fd, now=loop.now())     # a connect given up on: no more SYNs
        loop.wake()
        print(f"synack: connect to {host} port {port} failed: {os.strerror(code)}",
              file=sys.stderr)
        return 1
    stdin_done = threading.Event()
    active = [time.monotonic()]                 # last data either way (for -w)
    sender = threading.Thread(target=_pump_stdin, args=(live, fd, stdin_done, active),
                              name="synack-stdin", daemon=True)
    sender.start()
    out = sys.stdout.buffer
    status = 0
    while True:
        left = None if wait is None else max(wait - (time.monotonic() - active[0]), 0.01)
        if not live.wait(lambda: stack.readable(fd), left):
            assert wait is not None
            if time.monotonic() - active[0] >= wait:
                break                           # nc -w: idle both ways, close quietly
            continue
        with loop.lock:
            try:
                data = stack.recv(fd, 1 << 20, now=loop.now())
            except BlockingIOError:
                continue
            except OSError as exc:
                print(f"synack: {exc.strerror or exc}", file=sys.stderr)
                data, status = b"", 1
        loop.wake()            # reading opened the window: let the update go out
        if not data:
            break
        active[0] = time.monotonic()
        out.write(data)
        out.flush()
    if keep_open and status == 0:
        stdin_done.wait()
    with loop.lock:
        stack.close(fd, now=loop.now())
    loop.wake()
    # Let the FIN (ours, or the answer to theirs) be acknowledged before the link goes.
    live.wait(lambda: _finished(live, fd), CLOSE_WAIT_S)
    return status


def _finished(live: Live, fd: int) -> bool:
    return not live.stack.conns


def _pump_stdin(live: Live, fd: int, done: threading.Event, active: list[float]) -> None:
    stack, loop = live.stack, live.loop
    # os.read on the descriptor, not the buffered reader: with -w the command can end
    # while this daemon thread still waits for input, and Python's shutdown aborts on
    # a thread holding the reader's lock.
    try:
        stdin_fd: int | None = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        stdin_fd = None
    src = sys.stdin.buffer
    try:
        while True:
            if stdin_fd is not None:
                chunk = os.read(stdin_fd, 1 << 16)
            else:
                chunk = src.read1(1 << 16) if hasattr(src, "read1") else src.read(1 << 16)
            if not chunk:
                break
            view = memoryview(chunk)
            while view:
                live.wait(lambda: stack.writable(fd))
                with loop.lock:
                    try:
                        n = stack.send(fd, view, now=loop.now())
                    except BlockingIOError:
                        continue
                    except OSError:
                        return          # the connection is gone; the reader reports it
                loop.wake()
                active[0] = time.monotonic()
                view = view[n:]
        with loop.lock:
            try:
                stack.shutdown(fd, SHUT_WR, now=loop.now())
            except OSError:
                pass
        loop.wake()
    except RuntimeError:
        return                          # the loop stopped: we are exiting
    finally:
        done.set()
