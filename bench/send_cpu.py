"""Sender-side CPU per MB of the core, no offload: what building the packets costs.

    .venv/bin/python bench/send_cpu.py --bytes 50M

One stack sends over an established connection to a peer played by hand, which
acknowledges each flight with one ACK (a stretch ACK, as the kernel sends them
behind GRO); ``Stack.transmit()`` hands out MTU-sized packets, every checksum
summed in Python. No simulator, no receiver: only the sending half is timed.
"""

from __future__ import annotations

import argparse
import time

from synack.stack import Stack
from synack.tcp.isn import FixedIsn
from synack.units import parse_size
from synack.wire.ipv4 import build_tcp_packet, parse_tcp_packet
from synack.wire.tcp import ACK, SYN, TcpSegment

US, PEER = "192.0.2.2", "192.0.2.1"


def run(nbytes: int) -> tuple[float, int]:
    """CPU seconds and packets sent for ``nbytes`` of payload."""
    stack = Stack(US, seed=1, isn=FixedIsn([1000]))
    lfd = stack.socket()
    stack.bind(lfd, (US, 80))
    stack.listen(lfd)

    def deliver(seq: int, ack: int, flags: int, now: int, **kw: object) -> list[bytes]:
        seg = TcpSegment(src_port=40000, dst_port=80, seq=seq, ack=ack, flags=flags,
                         window=65535, **kw)  # type: ignore[arg-type]
        stack.receive(build_tcp_packet(PEER, US, seg), now=now)
        return stack.transmit(now=now)

    (synack,) = deliver(100, 0, SYN, 0, mss=1460)
    deliver(101, 1001, ACK, 0)
    fd, _ = stack.accept(lfd)
    block = b"x" * (1 << 20)
    sent = packets = 0
    now = 1000
    snd_nxt = parse_tcp_packet(synack)[1].seq + 1
    t0 = time.process_time()
    out: list[bytes] = []
    while sent < nbytes:
        try:
            sent += stack.send(fd, block, now=now)
        except BlockingIOError:
            pass
        out = stack.transmit(now=now)
        packets += len(out)
        snd_nxt += sum(len(p) - 40 for p in out)
        now += 1000
        out = deliver(101, snd_nxt & 0xFFFFFFFF, ACK, now)
        packets += len(out)
        snd_nxt += sum(len(p) - 40 for p in out)
    return time.process_time() - t0, packets


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bytes", default="50M")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    nbytes = parse_size(args.bytes)
    best = min(run(nbytes) for _ in range(args.runs))
    cpu, packets = best
    print(f"send, no offload: {cpu * 1000 / (nbytes / 1e6):.1f} ms/MB, "
          f"{cpu * 1e6 / packets:.2f} us/packet ({packets} packets, best of {args.runs})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
