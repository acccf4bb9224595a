"""synack.socket: blocking sockets shaped like the stdlib's, over a Stack and its Loop.

Every test runs real threads on an in-process Loopback (or a LinkPair), bounded
by timeouts of a few seconds; nothing sleeps to synchronise. The expected
errors are what the stdlib raises on Linux for the same calls.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import synack.socket as ss
from synack.api_host import Host
from synack.link.loopback import LinkPair
from synack.tcp.state import State

IP = "127.0.0.1"
WAIT = 10.0


@pytest.fixture
def host() -> Iterator[Host]:
    h = Host.loopback(IP, seed=7)
    yield h
    h.close()


def raises_errno(exc: type[OSError], code: int):
    return pytest.raises(exc, check=lambda e: e.errno == code)


class Worker(threading.Thread):
    """A thread whose exception (or result) the test gets back from join_result()."""

    def __init__(self, fn: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.result: object = None
        self.exc: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.exc = exc

    def join_result(self, timeout: float = WAIT) -> object:
        self.join(timeout)
        assert not self.is_alive(), "worker still blocked"
        if self.exc is not None:
            raise self.exc
        return self.result


def echo_server(srv: ss.socket, conns: int = 1) -> list[Worker]:
    """Accept ``conns`` clients, each echoed by its own thread until EOF."""
    workers: list[Worker] = []

    def serve(c: ss.socket) -> int:
        n = 0
        with c:
            while data := c.recv(1 << 20):
                c.sendall(data)
                n += len(data)
        return n

    def acceptor() -> None:
        for _ in range(conns):
            c, _addr = srv.accept()
            workers.append(Worker(lambda c=c: serve(c)))

    Worker(acceptor).join_result()
    return workers


def echo_round_trip(h: Host, port: int, size: int, seed: int,
                    ip: str = IP) -> tuple[str, str]:
    """Send ``size`` random bytes through an echo server; both sha256 digests."""
    data = os.urandom(size) if seed < 0 else bytes((i * seed) & 0xFF for i in range(size))
    with ss.create_connection((ip, port), timeout=WAIT, host=h) as c:
        sender = Worker(lambda: (c.sendall(data), c.shutdown(ss.SHUT_WR)))
        digest = hashlib.sha256()
        while chunk := c.recv(1 << 20):
            digest.update(chunk)
        sender.join_result()
    return hashlib.sha256(data).hexdigest(), digest.hexdigest()


# ---------------------------------------------------------------- data
def test_echo_5_mb_intact(host: Host) -> None:
    srv = ss.create_server((IP, 7000), host=host)
    done = Worker(lambda: echo_server(srv))
    sent, echoed = echo_round_trip(host, 7000, 5 * 1024 * 1024, seed=-1)
    assert sent == echoed
    (worker,) = done.join_result()  # type: ignore[misc]
    assert worker.join_result() == 5 * 1024 * 1024
    srv.close()


def test_several_client_threads_at_once(host: Host) -> None:
    srv = ss.create_server((IP, 7001), host=host)
    n = 6
    server = Worker(lambda: echo_server(srv, conns=n))
    clients = [Worker(lambda i=i: echo_round_trip(host, 7001, 300_000 + i, seed=i + 1))
               for i in range(n)]
    for c in clients:
        sent, echoed = c.join_result()  # type: ignore[misc]
        assert sent == echoed
    for w in server.join_result():  # type: ignore[attr-defined]
        assert w.join_result() >= 300_000
    srv.close()


def test_makefile_readline_text_and_binary(host: Host) -> None:
    srv = ss.create_server((IP, 7002), host=host)

    def serve() -> list[str]:
        c, _ = srv.accept()
        # Separate text files: a TextIOWrapper drops its read-ahead when written to.
        with c, c.makefile("r", encoding="utf-8", newline="\n") as rf, \
                c.makefile("w", encoding="utf-8", newline="\n") as wf:
            lines = []
            for line in rf:
                lines.append(line)
                wf.write(line.upper())
                wf.flush()
            return lines

    server = Worker(serve)
    with ss.create_connection((IP, 7002), timeout=WAIT, host=host) as c:
        w = c.makefile("wb", buffering=0)
        assert isinstance(w, ss.SocketIO)
        r = c.makefile("rwb")               # a BufferedRWPair, as the stdlib builds it
        w.write(b"hello world\n")
        assert r.readline() == b"HELLO WORLD\n"
        w.write("caf\u00e9\nsecond line\n".encode())
        assert r.readline() == "CAF\u00c9\n".encode()
        assert r.readline() == b"SECOND LINE\n"
        w.close()
        c.shutdown(ss.SHUT_WR)
        assert r.readline() == b""          # the server closed after our EOF
        r.close()
    assert server.join_result() == ["hello world\n", "caf\u00e9\n", "second line\n"]
    srv.close()


def test_makefile_keeps_the_socket_open_until_files_close(host: Host) -> None:
    srv = ss.create_server((IP, 7003), host=host)
    c = ss.create_connection((IP, 7003), timeout=WAIT, host=host)
    f = c.makefile("rb")
    c.close()
    assert c.fileno() != -1                 # the stdlib's io_refs rule
    f.close()
    assert c.fileno() == -1
    srv.close()


def test_recv_into_and_waitall(host: Host) -> None:
    srv = ss.create_server((IP, 7004), host=host)
    c = ss.create_connection((IP, 7004), timeout=WAIT, host=host)
    s, addr = srv.accept()
    assert addr == c.getsockname() and s.getpeername() == addr
    sender = Worker(lambda: [c.sendall(bytes([i]) * 1000) for i in range(10)])
    got = s.recv(10_000, ss.MSG_WAITALL)
    assert got == b"".join(bytes([i]) * 1000 for i in range(10))
    sender.join_result()
    c.sendall(b"abc")
    buf = bytearray(8)
    assert s.recv_into(buf) == 3 and buf[:3] == b"abc"
    for x in (c, s, srv):
        x.close()


# ---------------------------------------------------------------- timeouts and blocking
def test_recv_timeout_raises_timeout_error(host: Host) -> None:
    srv = ss.create_server((IP, 7010), host=host)
    c = ss.create_connection((IP, 7010), timeout=WAIT, host=host)
    s, _ = srv.accept()
    s.settimeout(0.05)
    with pytest.raises(TimeoutError, match="timed out"):
        s.recv(10)
    assert ss.timeout is TimeoutError and ss.error is OSError
    srv.settimeout(0.05)
    with pytest.raises(TimeoutError):
        srv.accept()
    for x in (c, s, srv):
        x.close()


def test_non_blocking_calls_raise_blocking_io_error(host: Host) -> None:
    srv = ss.create_server((IP, 7011), host=host)
    srv.setblocking(False)
    assert srv.gettimeout() == 0.0 and not srv.getblocking()
    with raises_errno(BlockingIOError, errno.EAGAIN):
        srv.accept()
    c = ss.socket(host=host)
    c.setblocking(False)
    with raises_errno(BlockingIOError, errno.EINPROGRESS):
        c.connect((IP, 7011))
    c.setblocking(True)
    with raises_errno(BlockingIOError, errno.EAGAIN):
        c.recv(10, ss.MSG_DONTWAIT)
    for x in (c, srv):
        x.close()


def test_connect_timeout_when_syns_go_unanswered(host: Host) -> None:
    # A listener whose accept queue is full drops SYNs (tcp_max_syn_backlog rules aside,
    # Linux does the same): the connect never completes.
    srv = ss.create_server((IP, 7012), backlog=0, host=host)
    first = ss.create_connection((IP, 7012), timeout=WAIT, host=host)
    with ss.socket(host=host) as c:
        c.settimeout(0.1)
        with pytest.raises(TimeoutError):
            c.connect((IP, 7012))
    with ss.socket(host=host) as c:
        c.settimeout(0.1)
        assert c.connect_ex((IP, 7012)) == errno.EAGAIN   # CPython's connect_ex on timeout
    first.close()
    srv.close()


def test_close_wakes_a_thread_blocked_in_recv(host: Host) -> None:
    srv = ss.create_server((IP, 7013), host=host)
    c = ss.create_connection((IP, 7013), timeout=WAIT, host=host)
    s, _ = srv.accept()
    s.settimeout(None)
    cond, fd = host.loop.cond, s.stack_fd
    blocked = Worker(lambda: s.recv(10))
    # Wait until the worker really waits on its descriptor.
    with cond:
        assert cond.wait_for(lambda: host.loop.waiters(fd) > 0 or not blocked.is_alive(), WAIT)
    s.close()
    with raises_errno(OSError, errno.EBADF):
        blocked.join_result()
    for x in (c, srv):
        x.close()


def test_shutdown_rd_wakes_a_blocked_recv_with_eof(host: Host) -> None:
    srv = ss.create_server((IP, 7014), host=host)
    c = ss.create_connection((IP, 7014), timeout=WAIT, host=host)
    s, _ = srv.accept()
    cond, fd = host.loop.cond, s.stack_fd
    blocked = Worker(lambda: s.recv(10))
    with cond:
        assert cond.wait_for(lambda: host.loop.waiters(fd) > 0 or not blocked.is_alive(), WAIT)
    s.shutdown(ss.SHUT_RD)
    assert blocked.join_result() == b""
    for x in (c, s, srv):
        x.close()


# ---------------------------------------------------------------- errors as the stdlib
def test_connect_to_a_closed_port_is_refused(host: Host) -> None:
    with pytest.raises(ConnectionRefusedError):
        ss.create_connection((IP, 7020), timeout=WAIT, host=host)
    with ss.socket(host=host) as c:
        assert c.connect_ex((IP, 7020)) == errno.ECONNREFUSED


def test_bad_calls_raise_what_the_stdlib_raises(host: Host) -> None:
    srv = ss.create_server((IP, 7021), host=host)
    c = ss.create_connection((IP, 7021), timeout=WAIT, host=host)
    with raises_errno(OSError, errno.EINVAL):
        c.listen()                          # listen on a connected socket
    fresh = ss.socket(host=host)
    with raises_errno(BrokenPipeError, errno.EPIPE):
        fresh.send(b"x")                    # Linux: EPIPE, not ENOTCONN
    with raises_errno(OSError, errno.ENOTCONN):
        fresh.recv(1)
    with raises_errno(OSError, errno.ENOTCONN):
        fresh.getpeername()
    with raises_errno(OSError, errno.ENOTCONN):
        fresh.shutdown(ss.SHUT_WR)
    with raises_errno(OSError, errno.EADDRINUSE), ss.socket(host=host) as other:
        other.bind((IP, 7021))
    with pytest.raises(OverflowError):
        fresh.bind((IP, 70000))
    with pytest.raises(TypeError):
        fresh.bind(IP)                      # type: ignore[arg-type]
    with pytest.raises(ss.gaierror):
        fresh.connect(("no.such.name", 1))
    with pytest.raises(ValueError):
        fresh.settimeout(-1)
    with raises_errno(OSError, errno.ESOCKTNOSUPPORT):
        ss.socket(ss.AF_INET6, ss.SOCK_SEQPACKET, host=host)
    fresh.close()
    with raises_errno(OSError, errno.EBADF):
        fresh.recv(1)
    assert fresh.fileno() == -1 and "[closed]" in repr(fresh)
    c.close()
    srv.close()


def test_close_with_unread_data_resets_the_peer(host: Host) -> None:
    srv = ss.create_server((IP, 7022), host=host)
    c = ss.create_connection((IP, 7022), timeout=WAIT, host=host)
    s, _ = srv.accept()
    c.sendall(b"unread")
    # Wait until the bytes sit in s's receive queue, then close without reading.
    with host.loop.cond:
        assert host.loop.cond.wait_for(lambda: host.stack.readable(s.stack_fd), WAIT)
    s.close()
    with pytest.raises(ConnectionResetError):
        c.recv(10)
    c.close()
    srv.close()


# ---------------------------------------------------------------- options, names, hosts
def test_options_names_and_repr(host: Host) -> None:
    srv = ss.create_server((IP, 7030), host=host)
    assert srv.getsockopt(ss.SOL_SOCKET, ss.SO_REUSEADDR) == 1
    assert srv.getsockopt(ss.SOL_SOCKET, ss.SO_ACCEPTCONN) == 1
    with ss.create_connection((IP, 7030), timeout=WAIT, host=host) as c:
        c.setsockopt(ss.IPPROTO_TCP, ss.TCP_NODELAY, 1)
        assert c.getsockopt(ss.IPPROTO_TCP, ss.TCP_NODELAY) == 1
        assert c.getsockopt(ss.SOL_SOCKET, ss.SO_TYPE) == ss.SOCK_STREAM
        c.setsockopt(ss.IPPROTO_TCP, ss.TCP_CONGESTION, b"reno")
        assert c.getsockopt(ss.IPPROTO_TCP, ss.TCP_CONGESTION, 16).rstrip(b"\0") == b"reno"
        info = c.getsockopt(ss.IPPROTO_TCP, ss.TCP_INFO, 104)
        assert isinstance(info, bytes) and len(info) == 104
        assert info[0] == 1                 # tcpi_state: TCP_ESTABLISHED
        assert c.getpeername() == (IP, 7030)
        assert f"raddr=('{IP}', 7030)" in repr(c) and "laddr=" in repr(c)
        assert c.family == ss.AF_INET and c.type == ss.SOCK_STREAM
        assert host.stack.state(c.stack_fd) is State.ESTABLISHED
    srv.close()


def test_default_host() -> None:
    ss.set_default_host(None)
    with raises_errno(OSError, errno.ENETDOWN):
        ss.socket()
    with Host.loopback("192.0.2.2", seed=5) as h:
        ss.set_default_host(h)
        try:
            with ss.create_server(("", 7040)) as srv:
                assert srv.getsockname() == ("0.0.0.0", 7040)
                with ss.create_connection(("192.0.2.2", 7040), timeout=WAIT) as c:
                    s, _ = srv.accept()
                    c.sendall(b"via the default host")
                    assert s.recv(100) == b"via the default host"
                    s.close()
        finally:
            ss.set_default_host(None)


def test_two_hosts_over_a_link_pair() -> None:
    pair = LinkPair()
    with Host.on_link("203.0.113.1", pair.a, seed=1) as a, \
            Host.on_link("203.0.113.2", pair.b, seed=2) as b:
        srv = ss.create_server(("203.0.113.2", 7050), host=b)
        done = Worker(lambda: echo_server(srv))
        sent, echoed = echo_round_trip(a, 7050, 500_000, seed=3, ip="203.0.113.2")
        assert sent == echoed
        (worker,) = done.join_result()  # type: ignore[misc]
        assert worker.join_result() == 500_000
        assert b.stack.stats["segments in"] > 0 and a.stack.stats["segments in"] > 0
        srv.close()


def test_sendfile_and_descriptor_calls_as_the_stdlib(tmp_path: Path) -> None:
    # sendfile sends the file (the stdlib's own fallback path); dup/detach and an
    # inheritable descriptor are refused with an OSError, never an AttributeError.
    host = Host.loopback("192.0.2.9", seed=3)
    try:
        path = tmp_path / "f"
        payload = bytes(range(256)) * 400
        path.write_bytes(payload)
        srv = ss.socket(host=host)
        srv.bind(("192.0.2.9", 8088))
        srv.listen()
        cli = ss.create_connection(("192.0.2.9", 8088), timeout=10, host=host)
        conn, _ = srv.accept()
        conn.settimeout(10)
        with open(path, "rb") as f:
            assert cli.sendfile(f, offset=100, count=50_000) == 50_000
            assert f.tell() == 50_100
        cli.shutdown(ss.SHUT_WR)
        got = b""
        while chunk := conn.recv(65536):
            got += chunk
        assert got == payload[100:50_100]
        with open(path) as text, pytest.raises(ValueError):
            cli.sendfile(text)
        assert cli.get_inheritable() is False
        for call in (cli.dup, cli.detach, lambda: cli.set_inheritable(True)):
            with pytest.raises(OSError) as exc:
                call()
            assert exc.value.errno == errno.EOPNOTSUPP
        for s in (cli, conn, srv):
            s.close()
    finally:
        host.close()


def test_sendto_msg_fastopen_as_linux() -> None:
    # Linux tcp_sendmsg_fastopen(): the first sendto(MSG_FASTOPEN) to a server asks for
    # a cookie (the data follows the handshake), the next one carries its data in the
    # SYN and the server (TCP_FASTOPEN) takes it there; blocking, each returns the bytes.
    from synack.config import Sysctl

    host = Host.loopback("192.0.2.9", seed=3, cfg=Sysctl(net__ipv4__tcp_fastopen=3))
    mib = host.stack.cfg.mib
    try:
        srv = ss.socket(host=host)
        srv.bind(("192.0.2.9", 8089))
        srv.setsockopt(ss.IPPROTO_TCP, ss.TCP_FASTOPEN, 5)
        srv.listen()
        for i in range(2):
            cli = ss.socket(host=host)
            cli.settimeout(10)
            assert cli.sendto(b"hello %d" % i, ss.MSG_FASTOPEN, ("192.0.2.9", 8089)) == 7
            conn, _ = srv.accept()
            conn.settimeout(10)
            assert conn.recv(100) == b"hello %d" % i
            assert mib["TcpExtTCPFastOpenPassive"] == i     # the second: data in the SYN
            for s in (cli, conn):
                s.close()
        assert mib["TcpExtTCPFastOpenCookieReqd"] == 1
        srv.close()
    finally:
        host.close()
