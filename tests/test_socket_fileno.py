"""fileno() of a synack socket is an OS descriptor with the socket's readiness.

select, poll, epoll (level and edge triggered), ``selectors`` and asyncio's
selector loop run unchanged on synack sockets of a loopback Host. Waiting is
always select/poll with a deadline, never a sleep.
"""

from __future__ import annotations

import asyncio
import errno
import os
import select
import selectors
import stat
from collections.abc import Iterator

import pytest

import synack.socket as ss
from synack.api_host import Host

IP = "127.0.0.1"
WAIT = 10.0


@pytest.fixture
def host() -> Iterator[Host]:
    h = Host.loopback(IP, seed=11)
    yield h
    h.close()


def ready(sock: ss.socket) -> tuple[bool, bool]:
    """(readable, writable) as select() sees them right now."""
    r, w, _ = select.select([sock], [sock], [], 0)
    return bool(r), bool(w)


def wait_readable(sock: ss.socket) -> None:
    r, _, _ = select.select([sock], [], [], WAIT)
    assert r, f"{sock!r} never became readable"


def wait_writable(sock: ss.socket) -> None:
    _, w, _ = select.select([], [sock], [], WAIT)
    assert w, f"{sock!r} never became writable"


def pair(host: Host, port: int) -> tuple[ss.socket, ss.socket, ss.socket]:
    srv = ss.create_server((IP, port), host=host)
    c = ss.create_connection((IP, port), timeout=WAIT, host=host)
    s, _ = srv.accept()
    return srv, c, s


def test_fileno_is_an_os_descriptor_made_once(host: Host) -> None:
    srv, c, s = pair(host, 8001)
    fd = c.fileno()
    assert fd >= 0 and fd == c.fileno()
    assert stat.S_ISSOCK(os.fstat(fd).st_mode)   # a real descriptor of the OS
    c.close()
    assert c.fileno() == -1
    with pytest.raises(OSError):
        os.fstat(fd)                        # closed with the socket
    s.close()
    srv.close()


def test_readable_exactly_while_data_waits(host: Host) -> None:
    srv, c, s = pair(host, 8002)
    assert ready(c) == (False, True)
    s.sendall(b"hello")
    wait_readable(c)
    assert ready(c) == (True, True)
    assert c.recv(2) == b"he"
    assert ready(c) == (True, True)         # three bytes still wait
    assert c.recv(10) == b"llo"
    assert ready(c) == (False, True)        # at once, not after the next batch
    for x in (c, s, srv):
        x.close()


def test_eof_and_reset_are_readable(host: Host) -> None:
    srv, c, s = pair(host, 8003)
    s.shutdown(ss.SHUT_WR)
    wait_readable(c)
    assert c.recv(10) == b""
    assert ready(c)[0]                      # EOF stays readable, as on Linux
    c.close()
    srv2, c2, s2 = pair(host, 8004)
    s2.sendall(b"unread")
    wait_readable(c2)
    c2.close()                              # unread data: RST to s2
    wait_readable(s2)
    with pytest.raises(ConnectionResetError):
        s2.recv(10)
    for x in (s, srv, s2, srv2):
        x.close()


def test_writable_exactly_while_there_is_send_space(host: Host) -> None:
    srv, c, s = pair(host, 8005)
    s.setsockopt(ss.SOL_SOCKET, ss.SO_RCVBUF, 4096)
    c.setsockopt(ss.SOL_SOCKET, ss.SO_SNDBUF, 4096)
    c.setblocking(False)
    sent = 0
    # Fill the send buffer (and the peer's window): wait for writability between tries.
    for _ in range(1000):
        try:
            sent += c.send(b"x" * 65536)
        except BlockingIOError:
            if not select.select([], [c], [], 0.2)[1]:
                break
    with host.loop.lock:                    # the loop holds still: compare exactly
        assert ready(c) == (host.stack.readable(c.stack_fd), host.stack.writable(c.stack_fd))
    assert sent > 0
    got = 0
    s.settimeout(WAIT)
    while got < sent:
        got += len(s.recv(65536))
        if ready(c)[1]:
            break
    wait_writable(c)
    for x in (c, s, srv):
        x.close()


def test_listener_readable_while_a_connection_waits(host: Host) -> None:
    srv = ss.create_server((IP, 8006), host=host)
    assert ready(srv) == (False, False)
    c = ss.create_connection((IP, 8006), timeout=WAIT, host=host)
    wait_readable(srv)
    s, _ = srv.accept()
    assert ready(srv) == (False, False)
    for x in (c, s, srv):
        x.close()


def test_poll_and_edge_triggered_epoll_see_each_transition(host: Host) -> None:
    srv, c, s = pair(host, 8007)
    p = select.poll()
    p.register(c, select.POLLIN | select.POLLOUT)
    assert p.poll(0) == [(c.fileno(), select.POLLOUT)]
    ep = select.epoll()
    ep.register(c.fileno(), select.EPOLLIN | select.EPOLLET)
    assert ep.poll(0) == []
    for word in (b"one", b"two"):
        s.sendall(word)
        events = ep.poll(WAIT)
        assert events == [(c.fileno(), select.EPOLLIN)]
        assert ep.poll(0) == []             # edge triggered: once per transition
        assert c.recv(10) == word
    assert p.poll(0) == [(c.fileno(), select.POLLOUT)]
    ep.close()
    for x in (c, s, srv):
        x.close()


def test_selectors_default_selector(host: Host) -> None:
    srv, c, s = pair(host, 8008)
    with selectors.DefaultSelector() as sel:
        sel.register(c, selectors.EVENT_READ, "c")
        sel.register(srv, selectors.EVENT_READ, "srv")
        assert sel.select(0) == []
        s.sendall(b"ping")
        events = sel.select(WAIT)
        assert [(k.data, ev) for k, ev in events] == [("c", selectors.EVENT_READ)]
        assert c.recv(10) == b"ping"
        sel.unregister(c)
    for x in (c, s, srv):
        x.close()


def test_nonblocking_connect_as_asyncio_does_it(host: Host) -> None:
    srv = ss.create_server((IP, 8009), host=host)
    c = ss.socket(host=host)
    c.setblocking(False)
    fd = c.fileno()                         # asked before connect: must follow the handshake
    with pytest.raises(BlockingIOError):
        c.connect((IP, 8009))
    assert fd == c.fileno()
    wait_writable(c)
    assert c.getsockopt(ss.SOL_SOCKET, ss.SO_ERROR) == 0
    assert c.getpeername() == (IP, 8009)
    refused = ss.socket(host=host)
    refused.setblocking(False)
    assert refused.connect_ex((IP, 8010)) == errno.EINPROGRESS
    wait_writable(refused)
    assert refused.getsockopt(ss.SOL_SOCKET, ss.SO_ERROR) == errno.ECONNREFUSED
    for x in (c, refused, srv):
        x.close()


def test_asyncio_selector_loop_runs_unchanged(host: Host) -> None:
    async def main() -> tuple[bytes, bytes, bytes]:
        loop = asyncio.get_running_loop()

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.read(100)
            writer.write(data.upper())
            await writer.drain()
            writer.close()

        lsock = ss.socket(host=host)
        lsock.bind((IP, 8011))
        lsock.listen()
        server = await asyncio.start_server(echo, sock=lsock)
        # loop.sock_* calls on a raw non-blocking socket.
        raw = ss.socket(host=host)
        raw.setblocking(False)
        await loop.sock_connect(raw, (IP, 8011))
        await loop.sock_sendall(raw, b"raw")
        got_raw = await loop.sock_recv(raw, 100)
        raw.close()
        # Streams over a connected synack socket.
        s2 = ss.create_connection((IP, 8011), timeout=WAIT, host=host)
        reader, writer = await asyncio.open_connection(sock=s2)
        writer.write(b"stream")
        await writer.drain()
        got_stream = await reader.read(100)
        eof = await reader.read(100)
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return got_raw, got_stream, eof

    async def bounded() -> tuple[bytes, bytes, bytes]:
        return await asyncio.wait_for(main(), WAIT)

    assert asyncio.run(bounded()) == (b"RAW", b"STREAM", b"")


def test_asyncio_connect_refused(host: Host) -> None:
    async def main() -> None:
        sock = ss.socket(host=host)
        sock.setblocking(False)
        try:
            with pytest.raises(ConnectionRefusedError):
                await asyncio.wait_for(asyncio.get_running_loop().sock_connect(
                    sock, (IP, 8012)), WAIT)
        finally:
            sock.close()

    asyncio.run(main())


def test_asyncio_datagram_endpoint_and_sock_recvfrom(host: Host) -> None:
    async def main() -> tuple[bytes, tuple[str, int], bytes]:
        loop = asyncio.get_running_loop()
        got: asyncio.Future[tuple[bytes, tuple[str, int]]] = loop.create_future()

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                self.transport.sendto(data[::-1], addr)  # type: ignore[attr-defined]

        srv = ss.socket(ss.AF_INET, ss.SOCK_DGRAM, host=host)
        srv.bind((IP, 8013))
        transport, _ = await loop.create_datagram_endpoint(Echo, sock=srv)
        cli = ss.socket(ss.AF_INET, ss.SOCK_DGRAM, host=host)
        cli.setblocking(False)
        await loop.sock_sendto(cli, b"datagram", (IP, 8013))
        data, addr = await loop.sock_recvfrom(cli, 100)
        got.set_result((data, addr))
        cli.connect((IP, 8013))
        await loop.sock_sendall(cli, b"again")
        again = await loop.sock_recv(cli, 100)
        cli.close()
        transport.close()
        data, addr = await got
        return data, addr, again

    async def bounded() -> tuple[bytes, tuple[str, int], bytes]:
        return await asyncio.wait_for(main(), WAIT)

    assert asyncio.run(bounded()) == (b"margatad", (IP, 8013), b"niaga")


def test_stdlib_servers_built_on_selectors_run_unchanged(
        host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    # socketserver waits in a selectors.Selector on the server's fileno(); http.client
    # uses create_connection. Both get synack.socket in place of the stdlib's module.
    import http.client
    import http.server
    import socketserver
    import threading

    monkeypatch.setattr(socketserver, "socket", ss)
    monkeypatch.setattr(http.client, "socket", ss)
    ss.set_default_host(host)

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello " + self.path.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer((IP, 8014), Hello)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        conn = http.client.HTTPConnection(IP, 8014, timeout=WAIT)
        got = []
        for path in ("/one", "/two"):
            conn.request("GET", path)
            resp = conn.getresponse()
            got.append((resp.status, resp.read()))
        conn.close()
        assert got == [(200, b"hello /one"), (200, b"hello /two")]
        assert isinstance(srv.socket, ss.socket)
    finally:
        srv.shutdown()
        srv.server_close()
        ss.set_default_host(None)
        t.join(WAIT)
