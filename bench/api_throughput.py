"""Throughput of a bulk transfer through synack.socket and synack.asyncio over Loopback.

    .venv/bin/python bench/api_throughput.py --bytes 20M                # MTU 1500
    .venv/bin/python bench/api_throughput.py --bytes 20M --mtu 65535    # like Linux's lo

One synack host on an in-process Loopback (client and server on one Stack,
its Loop in a thread). The client sends ``--bytes`` of random data and
half-closes; the server hashes what it reads and answers with the sha256, which
is checked. The figure is payload bytes over the time from the first send to
the digest's arrival, best of ``--runs``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import threading
import time

import synack.asyncio as sa
import synack.socket as ss
from synack.api_host import Host
from synack.units import parse_size

IP = "127.0.0.1"


def via_socket(host: Host, data: bytes, port: int) -> float:
    srv = ss.create_server((IP, port), host=host)

    def serve() -> None:
        c, _ = srv.accept()
        with c:
            digest = hashlib.sha256()
            while chunk := c.recv(1 << 20):
                digest.update(chunk)
            c.sendall(digest.hexdigest().encode())

    t = threading.Thread(target=serve)
    t.start()
    with ss.create_connection((IP, port), timeout=120, host=host) as c:
        t0 = time.perf_counter()
        c.sendall(data)
        c.shutdown(ss.SHUT_WR)
        answer = c.recv(100)
        dt = time.perf_counter() - t0
    t.join()
    srv.close()
    assert answer.decode() == hashlib.sha256(data).hexdigest(), "corrupted transfer"
    return dt


async def _via_asyncio(host: Host, data: bytes, port: int) -> float:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        digest = hashlib.sha256()
        while chunk := await reader.read(1 << 20):
            digest.update(chunk)
        writer.write(digest.hexdigest().encode())
        await writer.drain()
        writer.close()

    async with await sa.start_server(serve, IP, port, stack_host=host):
        reader, writer = await sa.open_connection(IP, port, stack_host=host)
        t0 = time.perf_counter()
        step = 256 * 1024
        for i in range(0, len(data), step):
            writer.write(data[i:i + step])
            await writer.drain()
        writer.write_eof()
        answer = await reader.read()
        dt = time.perf_counter() - t0
        writer.close()
    assert answer.decode() == hashlib.sha256(data).hexdigest(), "corrupted transfer"
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bytes", default="20M", type=parse_size)
    ap.add_argument("--mtu", default=1500, type=int)
    ap.add_argument("--runs", default=3, type=int)
    args = ap.parse_args()
    data = os.urandom(args.bytes)
    mb = args.bytes / 1e6
    for name in ("socket", "asyncio"):
        times = []
        for run in range(args.runs):
            with Host.loopback(IP, seed=run, mtu=args.mtu) as host:
                if name == "socket":
                    times.append(via_socket(host, data, 5000 + run))
                else:
                    times.append(asyncio.run(_via_asyncio(host, data, 6000 + run)))
        best = min(times)
        print(f"synack.{name:8s} {mb:.1f} MB over Loopback, MTU {args.mtu}: "
              f"{mb / best:6.1f} MB/s (best of {args.runs}; "
              f"runs {', '.join(f'{mb / t:.1f}' for t in times)})")


if __name__ == "__main__":
    main()
