"""Throughput between synack and the Linux kernel over a TAP (or TUN) in a lab namespace.

    sudo .venv/bin/python bench/tap_throughput.py --bytes 50M            # offloads off and on
    sudo .venv/bin/python bench/tap_throughput.py --bytes 50M --kind tun

For each direction the kernel side is a plain Python socket in the namespace
(sink or source); synack runs on its Loop, driven from this thread through the
Stack's non-blocking calls. The figure is payload bytes over the time from the
connection's first byte to its last (the FIN), measured on synack's side.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from synack.link.loop import Loop
from synack.link.netns import Lab
from synack.stack import SHUT_WR, Stack
from synack.units import parse_size

KERNEL, SYNACK = "192.0.2.1", "192.0.2.2"
PEER = r"""
import socket, sys
mode, n = sys.argv[1], int(sys.argv[2])
ls = socket.create_server(("192.0.2.1", 6000))
print("listening", flush=True)
s, _ = ls.accept()
if mode == "sink":
    total = 0
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        total += len(d)
    print(total, flush=True)
else:
    block = b"k" * (1 << 20)
    left = n
    while left:
        left -= s.send(block[:min(left, len(block))])
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    print(n, flush=True)
s.close()
"""


def run_one(kind: str, offload: bool, direction: str, nbytes: int) -> float:
    ns = f"sa-dev-bench{os.getpid() % 1000}"
    with Lab(ns, tap=f"sadevb{os.getpid() % 1000}", kind=kind, offload=offload) as link:
        stack = Stack(SYNACK, seed=1, mtu=link.mtu)
        loop = Loop(stack, link, name="bench")
        loop.start()
        try:
            mode = "source" if direction == "kernel->synack" else "sink"
            proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", PEER,
                                     mode, str(nbytes)], stdout=subprocess.PIPE, text=True)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
            with loop.cond:
                fd = stack.socket()
                stack.connect_ex(fd, (KERNEL, 6000), now=loop.now())
                loop.wake()
                assert loop.cond.wait_for(lambda: stack.writable(fd), 10)
                t0 = time.perf_counter()
                block = b"s" * (256 * 1024)
                sent = got = 0
                shut = eof = False
                if mode == "source":
                    shut = True    # synack only reads
                while not (shut and eof):
                    now = loop.now()
                    while not shut and sent < nbytes:
                        try:
                            sent += stack.send(fd, block[:nbytes - sent], now=now)
                        except BlockingIOError:
                            break
                    if not shut and sent == nbytes:
                        stack.shutdown(fd, SHUT_WR, now=now)
                        shut = True
                    while not eof:
                        try:
                            chunk = stack.recv(fd, 1 << 20, now=now)
                        except BlockingIOError:
                            break
                        got += len(chunk)
                        eof = not chunk
                    loop.wake()
                    if not (shut and eof):
                        loop.cond.wait(0.5)
                elapsed = time.perf_counter() - t0
                stack.close(fd, now=loop.now())
            loop.wake()
            out = proc.communicate(timeout=60)[0].strip()
            moved = got if mode == "source" else int(out)
            assert moved == nbytes, (moved, nbytes)
            return nbytes / elapsed / 1e6
        finally:
            loop.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bytes", default="50M")
    p.add_argument("--kind", choices=["tap", "tun"], default="tap")
    p.add_argument("--offload", choices=["off", "on", "both"], default="both")
    a = p.parse_args()
    nbytes = parse_size(a.bytes)
    for off in ([False, True] if a.offload == "both" else [a.offload == "on"]):
        for direction in ("kernel->synack", "synack->kernel"):
            rate = run_one(a.kind, off, direction, nbytes)
            print(f"{a.kind} offload={'on ' if off else 'off'} {direction:15} "
                  f"{nbytes / 1e6:.1f} MB  {rate:8.1f} MB/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
