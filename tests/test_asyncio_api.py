"""synack.asyncio: real asyncio StreamReader/StreamWriter over a synack host.

Each test runs its own asyncio loop (``asyncio.run``) against a Loopback host
whose synack Loop runs in a thread; every await is bounded by ``wait_for``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Iterator
from typing import TypeVar

import pytest

import synack.asyncio as sa
from synack.api_host import Host
from synack.config import Sysctl

IP = "127.0.0.1"
WAIT = 10.0
T = TypeVar("T")


@pytest.fixture
def host() -> Iterator[Host]:
    h = Host.loopback(IP, seed=11)
    yield h
    h.close()


def run(coro: Awaitable[T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, WAIT)
    return asyncio.run(bounded())


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo until EOF, then half-close back and close."""
    while data := await reader.read(1 << 16):
        writer.write(data)
        await writer.drain()
    writer.write_eof()
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def round_trip(h: Host, port: int, data: bytes) -> bytes:
    reader, writer = await sa.open_connection(IP, port, stack_host=h)

    async def send() -> None:
        for i in range(0, len(data), 100_000):
            writer.write(data[i:i + 100_000])
            await writer.drain()
        assert writer.can_write_eof()
        writer.write_eof()

    sender = asyncio.create_task(send())
    got = await reader.read()             # until EOF
    await sender
    writer.close()
    await writer.wait_closed()
    return got


def test_echo_2_mb_intact(host: Host) -> None:
    data = os.urandom(2 * 1024 * 1024)

    async def main() -> bytes:
        async with await sa.start_server(echo, IP, 8000, stack_host=host) as srv:
            assert srv.is_serving() and srv.sockets[0].getsockname() == (IP, 8000)
            return await round_trip(host, 8000, data)

    got = run(main())
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()


def test_concurrent_clients(host: Host) -> None:
    payloads = [bytes([i]) * (150_000 + 1000 * i) for i in range(8)]

    async def main() -> list[bytes]:
        srv = await sa.start_server(echo, IP, 8001, stack_host=host)
        try:
            return await asyncio.gather(*(round_trip(host, 8001, p) for p in payloads))
        finally:
            srv.close()
            await srv.wait_closed()

    assert run(main()) == payloads


def test_half_close_then_reply_until_eof(host: Host) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.read()     # the client's FIN ends the request
        assert reader.at_eof()
        writer.write(b"got %d bytes: " % len(request) + request[::-1])
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> tuple[bytes, tuple[str, int], tuple[str, int]]:
        async with await sa.start_server(handler, IP, 8002, stack_host=host):
            reader, writer = await sa.open_connection(IP, 8002, stack_host=host)
            writer.write(b"abc")
            writer.write(b"def")
            writer.write_eof()
            with pytest.raises(RuntimeError):
                writer.write(b"too late")
            reply = await reader.read()
            names = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
            writer.close()
            await writer.wait_closed()
            return reply, names[0], names[1]

    reply, peer, local = run(main())
    assert reply == b"got 6 bytes: fedcba"
    assert peer == (IP, 8002) and local[0] == IP and local[1] != 8002


def test_drain_waits_for_a_slow_reader() -> None:
    # Small buffers so that a peer that does not read fills them quickly.
    cfg = Sysctl(**{"net.ipv4.tcp_rmem": (4096, 32768, 32768),
                    "net.ipv4.tcp_wmem": (4096, 32768, 32768)})
    h = Host.loopback(IP, seed=12, cfg=cfg)
    size = 1_000_000
    go = asyncio.Event()
    received = bytearray()

    async def lazy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await go.wait()
        while data := await reader.read(1 << 16):
            received.extend(data)
        writer.close()

    async def main() -> tuple[bool, int]:
        async with await sa.start_server(lazy, IP, 8003, stack_host=h):
            reader, writer = await sa.open_connection(IP, 8003, stack_host=h)
            writer.write(b"z" * size)
            buffered = writer.transport.get_write_buffer_size()
            drain = asyncio.create_task(writer.drain())
            # Nobody reads: after the stack's buffers fill, drain() cannot finish.
            done, _ = await asyncio.wait([drain], timeout=0.3)
            blocked = not done
            go.set()
            await drain
            writer.write_eof()
            await reader.read()
            writer.close()
            await writer.wait_closed()
            return blocked, buffered

    try:
        blocked, buffered = run(main())
    finally:
        h.close()
    assert buffered > 64 * 1024          # above the high-water mark: writing was paused
    assert blocked
    assert received == b"z" * size


def test_refused_and_reset(host: Host) -> None:
    async def slam(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(5)
        writer.transport.abort()          # RST

    async def main() -> None:
        with pytest.raises(ConnectionRefusedError):
            await sa.open_connection(IP, 8004, stack_host=host)
        async with await sa.start_server(slam, IP, 8005, stack_host=host):
            reader, writer = await sa.open_connection(IP, 8005, stack_host=host)
            writer.write(b"hello")
            with pytest.raises(ConnectionResetError):
                await reader.read()
            writer.close()

    run(main())


def test_serve_forever_ends_with_close(host: Host) -> None:
    async def main() -> None:
        srv = await sa.start_server(echo, IP, 8006, stack_host=host)
        task = asyncio.create_task(srv.serve_forever())
        reader, writer = await sa.open_connection(IP, 8006, stack_host=host)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        srv.close()
        with pytest.raises(asyncio.CancelledError):
            await task
        await srv.wait_closed()
        assert not srv.is_serving() and srv.sockets == ()
        # The accepted connection outlives the listener, as in asyncio.
        writer.write(b"pong")
        assert await reader.readexactly(4) == b"pong"
        writer.close()
        await writer.wait_closed()
        with pytest.raises(ConnectionRefusedError):
            await sa.open_connection(IP, 8006, stack_host=host)

    run(main())
