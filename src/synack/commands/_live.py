"""What the live network commands (serve, connect, scan) share.

* :func:`running` opens the link from the shared options, builds the Stack,
  starts the event loop and the control socket, and undoes all of it on exit.
* :class:`ControlServer` is the control socket: every ``serve``/``connect``
  process listens on ``RUN_DIR/<pid>.sock`` and answers each connection with
  one JSON document holding its ``stack.connections()`` rows, its counters under
  nstat's names and ``ss -s``'s summary; ``synack ss`` and ``synack nstat``
  (:func:`query_all`) ask them all.
* :class:`StateLog` prints state changes as they happen (``--trace``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from synack.host.counters import nstat, summary
from synack.host.ssrows import ss_rows
from synack.stack import ConnInfo, Key, Stack
from synack.tcp.connection import StateChange
from synack.tcp.state import State

SS_STATES = {
    State.ESTABLISHED: "ESTAB", State.SYN_SENT: "SYN-SENT", State.SYN_RECEIVED: "SYN-RECV",
    State.FIN_WAIT_1: "FIN-WAIT-1", State.FIN_WAIT_2: "FIN-WAIT-2",
    State.TIME_WAIT: "TIME-WAIT", State.CLOSED: "UNCONN", State.CLOSE_WAIT: "CLOSE-WAIT",
    State.LAST_ACK: "LAST-ACK", State.LISTEN: "LISTEN", State.CLOSING: "CLOSING",
}
"""State names as ``ss`` prints them (iproute2's sstate_name)."""

QUERY_TIMEOUT_S = 2.0


def run_dir() -> Path:
    """Where live processes put their control sockets.

    ``$SYNACK_RUN_DIR``; else /run/synack for root; else ``$XDG_RUNTIME_DIR/synack``;
    else a per-user directory under /tmp.
    """
    env = os.environ.get("SYNACK_RUN_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/run/synack")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "synack"
    return Path(f"/tmp/synack-{os.getuid()}")


def row_dict(r: ConnInfo) -> dict[str, Any]:
    """One ``connections()`` row as JSON."""
    return {"state": r.state.value, "recv_q": r.recv_q, "send_q": r.send_q,
            "local": list(r.local), "peer": list(r.peer)}


class ControlServer:
    """Answers ``synack ss``: a unix socket in :func:`run_dir` named by pid."""

    def __init__(self, label: str, rows: Callable[[], list[ConnInfo]], *,
                 directory: Path | None = None,
                 counters: Callable[[], dict[str, Any]] | None = None,
                 details: Callable[[bool], list[dict[str, Any]]] | None = None) -> None:
        self.label = label
        self.rows = rows
        self.counters = counters
        self.details = details      # rows with descriptors (and tcp_info lines if asked)
        self.dir = directory or run_dir()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"{os.getpid()}.sock"
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()              # a previous process with our pid died uncleanly
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        self.sock.listen(16)
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="synack-control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(QUERY_TIMEOUT_S)
                    want = _read_request(conn)
                    rows = (self.details(bool(want.get("info"))) if self.details is not None
                            else [row_dict(r) for r in self.rows()])
                    doc = {"pid": os.getpid(), "command": self.label, "netns": netns_id(),
                           "uid": os.getuid(), "rows": rows}
                    if self.counters is not None:
                        doc.update(self.counters())
                    conn.sendall(json.dumps(doc).encode())
                except Exception as exc:  # noqa: BLE001 - one bad query must not end the server
                    print(f"synack: control socket: {exc}", file=sys.stderr)

    def close(self) -> None:
        """Stop answering and remove the socket file."""
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def netns_id() -> int:
    """The inode of this process's network namespace (0 if unknown)."""
    try:
        return os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return 0


def _read_request(conn: socket.socket) -> dict[str, Any]:
    """The asker's one JSON line (what to include); {} when it sent none."""
    data = b""
    with contextlib.suppress(OSError):
        while len(data) < 4096 and (chunk := conn.recv(4096)):
            data += chunk
    try:
        want = json.loads(data) if data.strip() else {}
    except ValueError:
        return {}
    return want if isinstance(want, dict) else {}


def query_all(directory: Path | None = None, *, info: bool = False,
              any_netns: bool = True) -> list[dict[str, Any]]:
    """Ask every live process in ``directory``; remove the sockets of dead ones.

    ``info``: rows carry their ``tcp_info`` line; ``any_netns`` False keeps only the
    processes in the caller's network namespace (as ``ss`` shows only its own)."""
    d = directory or run_dir()
    docs = []
    here = netns_id()
    for path in sorted(d.glob("*.sock")) if d.is_dir() else []:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(QUERY_TIMEOUT_S)
        try:
            s.connect(str(path))
            s.sendall(json.dumps({"info": info}).encode())
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
            doc = json.loads(b"".join(chunks))
            if any_netns or doc.get("netns", here) == here:
                docs.append(doc)
        except (ConnectionRefusedError, FileNotFoundError):
            # Nobody listens: the process died without cleaning up.
            with contextlib.suppress(OSError):
                path.unlink()
        except (OSError, ValueError) as exc:
            print(f"synack: {path}: no answer ({exc})", file=sys.stderr)
        finally:
            s.close()
    return docs


class StateLog:
    """Prints each state change: time, 4-tuple, ``OLD -> NEW (why)``."""

    def __init__(self, out: TextIO | None = None, *,
                 to_wall: Callable[[int], float] | None = None) -> None:
        self.out = out or sys.stdout
        # The loop's clock is CLOCK_MONOTONIC; this maps it to the wall clock.
        offset = time.time() - time.monotonic()
        self.to_wall = to_wall or (lambda us: us / 1e6 + offset)

    def __call__(self, changes: list[tuple[Key, StateChange]]) -> None:
        """Print ``changes`` (an AppRunner ``on_changes`` hook)."""
        for key, ch in changes:
            self.out.write(self.line(key, ch) + "\n")
        self.out.flush()

    def line(self, key: Key, ch: StateChange) -> str:
        """One change as a line."""
        t = self.to_wall(ch.now)
        stamp = time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1e6) % 1_000_000:06d}"
        local, peer = (f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
                       for ip, port in ((key[0], key[1]), (key[2], key[3])))
        why = f" ({ch.why})" if ch.why else ""
        return f"{stamp} {local:<21} {peer:<21} {ch.old} -> {ch.new}{why}"


def _sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _stop_once(signum: int, frame: Any) -> None:
    """The first SIGINT/SIGTERM unwinds; later ones are ignored so cleanup can finish.

    (``timeout(1)`` and process-group kills deliver SIGTERM twice; a second
    exception in the middle of tearing the lab down would leave it behind.)
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


@dataclass
class Live:
    """A running stack on a real link."""

    addr: str
    stack: Stack
    host: Any
    loop: Any
    link: Any

    def serve_forever(self) -> None:
        """Block until the loop ends (Ctrl-C stops a server). Unlike :meth:`wait` this
        is not woken by every batch of packets, so it costs the loop nothing.

        Raises RuntimeError if the loop died.
        """
        while not self.loop.done.wait(0.5):     # wake now and then: a SIGINT must land
            pass
        raise RuntimeError(f"the event loop stopped: {self.loop.error!r}")

    def wait(self, pred: Callable[[], bool], timeout: float | None = None) -> bool:
        """Block until ``pred()`` (checked with the loop's lock held) or the timeout.

        Raises RuntimeError if the loop died.
        """
        end = None if timeout is None else time.monotonic() + timeout
        with self.loop.cond:
            while True:
                if pred():
                    return True
                if self.loop.error is not None or not self.loop.running:
                    raise RuntimeError(f"the event loop stopped: {self.loop.error!r}")
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                # Wake now and then regardless: a SIGINT must get a chance to land.
                self.loop.cond.wait(0.5 if left is None else min(left, 0.5))


def link_addr6(link: Any) -> str | None:
    """synack's IPv6 address on ``link`` (through an impairment wrapper), if it has one."""
    return getattr(link, "addr6", None) or getattr(getattr(link, "inner", None), "addr6", None)


@contextlib.contextmanager
def running(args: Any, label: str, *, wrap: Callable[[Stack], Any] | None = None,
            control: bool = True) -> Iterator[Live]:
    """Open the link, start a Stack (wrapped by ``wrap``) under a Loop; clean up after."""
    from synack.cli import load_sysctl
    from synack.link.loop import Loop
    from synack.link.netns import open_link

    old = signal.signal(signal.SIGTERM, _sigterm)   # SIGTERM unwinds the with blocks too
    old_int = signal.getsignal(signal.SIGINT)
    try:
        with open_link(args) as (addr, wire):
            link: Any = wire
            if getattr(args, "pcap", None):     # --pcap: record every packet in and out
                from synack.link.record import RecordingLink

                link = RecordingLink(wire, args.pcap)
            signal.signal(signal.SIGTERM, _stop_once)
            signal.signal(signal.SIGINT, _stop_once)
            stack = Stack(addr, cfg=load_sysctl(), mtu=getattr(link, "mtu", 1500), name=label,
                          addr6=link_addr6(link))
            host = wrap(stack) if wrap is not None else stack
            loop = Loop(host, link, name=label)
            ctl = None
            if control:
                def rows() -> list[ConnInfo]:
                    with loop.lock:
                        return stack.connections()
                def counters() -> dict[str, Any]:
                    with loop.lock:
                        return {"nstat": nstat(stack), "summary": summary(stack)}

                def details(info: bool) -> list[dict[str, Any]]:
                    with loop.lock:
                        return ss_rows(stack, loop.now(), info=info)
                ctl = ControlServer(label, rows, counters=counters, details=details)
            loop.start()
            try:
                yield Live(addr, stack, host, loop, link)
            finally:
                loop.stop()
                if ctl is not None:
                    ctl.close()
                if link is not wire:
                    link.close()                # the recording's file too
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, old_int)
