"""synack.socket and synack.asyncio with IPv6 addresses (issue 14), on a loopback host
that has 127.0.0.1 and ::1."""

from __future__ import annotations

import asyncio
import errno
import socket as _socket
import threading
from collections.abc import Iterator

import pytest

import synack.asyncio as sa
import synack.socket as ss
from synack.api_host import Host


@pytest.fixture
def host() -> Iterator[Host]:
    h = Host.loopback("127.0.0.1", addr6="::1", seed=7)
    try:
        yield h
    finally:
        h.close()


def echo_once(server: ss.socket, got: list[object]) -> threading.Thread:
    def run() -> None:
        conn, peer = server.accept()
        got.append(peer)
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_ipv6_echo_with_four_tuples(host: Host) -> None:
    server = ss.create_server(("::1", 0), family=ss.AF_INET6, host=host)
    port = server.getsockname()[1]
    assert server.family == _socket.AF_INET6 and server.getsockname() == ("::1", port, 0, 0)
    assert server.getsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY) == 1   # as the stdlib
    got: list[object] = []
    t = echo_once(server, got)
    c = ss.create_connection(("::1", port), timeout=10, host=host)
    assert c.family == _socket.AF_INET6 and f"family={_socket.AF_INET6!s}," in repr(c)
    assert c.getsockopt(ss.SOL_SOCKET, _socket.SO_DOMAIN) == _socket.AF_INET6
    assert c.getpeername() == ("::1", port, 0, 0)
    data = bytes(range(256)) * 4000

    def send() -> None:     # from its own thread: the echo must be read while it comes
        c.sendall(data)
        c.shutdown(ss.SHUT_WR)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    back = bytearray()
    while chunk := c.recv(1 << 20):
        back += chunk
    sender.join(10)
    assert bytes(back) == data
    c.close()
    t.join(10)
    assert got == [("::1", c_port(got), 0, 0)]
    server.close()


def c_port(got: list[object]) -> int:
    peer = got[0]
    assert isinstance(peer, tuple)
    return int(peer[1])


def test_dual_stack_server_sees_ipv4_clients_as_mapped(host: Host) -> None:
    server = ss.create_server(("", 0), family=ss.AF_INET6, dualstack_ipv6=True, host=host)
    port = server.getsockname()[1]
    assert server.getsockname() == ("::", port, 0, 0)
    got: list[object] = []
    t = echo_once(server, got)
    c = ss.create_connection(("127.0.0.1", port), timeout=10, host=host)
    assert c.family == _socket.AF_INET
    c.sendall(b"hi")
    assert c.recv(10) == b"hi"
    c.close()
    t.join(10)
    assert got == [("::ffff:127.0.0.1", c_port(got), 0, 0)]
    server.close()


def test_v6only_server_refuses_ipv4(host: Host) -> None:
    server = ss.create_server(("::", 0), family=ss.AF_INET6, host=host)
    port = server.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        ss.create_connection(("127.0.0.1", port), timeout=10, host=host)
    server.close()


def test_bad_ipv6_addresses_raise_what_the_stdlib_raises(host: Host) -> None:
    s = ss.socket(ss.AF_INET6, host=host)
    with pytest.raises(TypeError, match="AF_INET6 address must be a tuple"):
        s.bind(("::1",))                      # type: ignore[arg-type]
    with pytest.raises(_socket.gaierror):
        s.bind(("not-an-address", 0))
    with pytest.raises(OverflowError):
        s.bind(("::1", 70000))
    with pytest.raises(OSError) as e:
        s.bind(("2001:db8::99", 0))           # not this host's
    assert e.value.errno == errno.EADDRNOTAVAIL
    s.close()
    with pytest.raises(ValueError, match="dualstack_ipv6 requires AF_INET6"):
        ss.create_server(("", 0), dualstack_ipv6=True, host=host)


def test_asyncio_over_ipv6(host: Host) -> None:
    async def main() -> tuple[object, bytes]:
        peers: list[object] = []

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            peers.append(w.get_extra_info("peername"))
            w.write(await r.read(100))
            await w.drain()
            w.close()

        server = await sa.start_server(handle, "::", 0, stack_host=host)
        (info,) = server.sockets
        assert info.family == _socket.AF_INET6
        port = info.getsockname()[1]
        r, w = await sa.open_connection("::1", port, stack_host=host)
        w.write(b"over IPv6")
        await w.drain()
        data = await r.read(100)
        w.close()
        server.close()
        return peers[0], data

    peer, data = asyncio.run(asyncio.wait_for(main(), 30))
    assert data == b"over IPv6"
    assert isinstance(peer, tuple) and peer[0] == "::1" and len(peer) == 4
