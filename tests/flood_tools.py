"""The two kernel-side programs of the SYN-flood test (tests/test_flood.py).

    python tests/flood_tools.py flood DST PORT RATE SECONDS SEED
        Spoofed SYNs from random addresses in 198.51.100.0/24 and random ports to
        DST:PORT, RATE per second, through a raw socket (IP_HDRINCL: the headers and
        checksums are built here, not by synack). Paced by a token bucket against the
        monotonic clock, so a late wake-up is made up at once instead of lowering the
        rate. Prints "ready", then, after SECONDS or at SIGTERM, "sent N in T s (E errors)".

    python tests/flood_tools.py clients DST PORT N SPREAD TIMEOUT
        N legitimate clients started evenly over SPREAD seconds; each connects, sends one
        byte, reads it back and closes, all within TIMEOUT seconds. Prints "ready", then
        one JSON line: [[ok, connect_seconds, error, local_port], ...] in start order.

Both run inside the test's namespace (``ip netns exec``) and need root for the raw socket.
Nothing here imports synack: the packets synack is tested with are not built by synack.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import struct
import sys
import threading
import time
from types import FrameType

SPOOF_NET = (198 << 24) | (51 << 16) | (100 << 8)   # 198.51.100.0/24 (RFC 5737 TEST-NET-2)
MAX_BURST = 200         # SYNs sent back to back at most when catching up after a late wake-up


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def syn_packet(src: int, sport: int, dst: int, dport: int, seq: int, ident: int) -> bytes:
    """An IPv4 packet holding a SYN with an MSS option (1460), both checksums filled in.

    Addresses are 32-bit integers. The TCP header is 24 bytes: 20 and the MSS option.
    """
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 6 << 4, 0x02, 64240, 0, 0)
    tcp += struct.pack("!BBH", 2, 4, 1460)
    pseudo = struct.pack("!IIBBH", src, dst, 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(tcp), ident, 0, 64,
                     socket.IPPROTO_TCP, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def flood(dst: str, port: int, rate: float, seconds: float, seed: int) -> None:
    """Send spoofed SYNs at ``rate`` per second for ``seconds`` (or until SIGTERM)."""
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    rng = random.Random(seed)
    daddr = struct.unpack("!I", socket.inet_aton(dst))[0]
    # IPPROTO_RAW implies IP_HDRINCL: the kernel sends our header as it is, but for the
    # IP checksum, which raw(7) says it always fills in (ours is right anyway).
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    print("ready", flush=True)
    sent = errors = 0
    t0 = time.monotonic()
    end = t0 + seconds
    while not stop.is_set():
        now = time.monotonic()
        if now >= end:
            break
        # Token bucket: everything due by now, at most MAX_BURST at once.
        due = min(int((now - t0) * rate) - sent, MAX_BURST)
        for _ in range(due):
            pkt = syn_packet(SPOOF_NET | rng.randrange(1, 255), rng.randrange(1024, 65536),
                             daddr, port, rng.getrandbits(32), rng.getrandbits(16))
            try:
                sock.sendto(pkt, (dst, 0))
            except OSError:        # ENOBUFS: the device queue is full; the SYN is lost
                errors += 1
            sent += 1
        # Sleep until the next SYN is due (or a little, if we are behind).
        wait = t0 + (sent + 1) / rate - time.monotonic()
        if wait > 0:
            stop.wait(min(wait, end - time.monotonic(), 0.05))
    elapsed = time.monotonic() - t0
    sock.close()
    print(f"sent {sent} in {elapsed:.3f} s ({errors} errors)", flush=True)


def clients(dst: str, port: int, n: int, spread: float, timeout: float) -> None:
    """``n`` connect + 1-byte echo + close, started evenly over ``spread`` seconds."""
    results: list[list[object]] = [[False, None, "not run", None] for _ in range(n)]

    def one(i: int) -> None:
        deadline = time.monotonic() + timeout
        t0 = time.monotonic()
        try:
            with socket.socket() as s:
                s.settimeout(timeout)
                try:
                    s.connect((dst, port))
                finally:                # the port stays bound even if the connect failed
                    results[i][3] = s.getsockname()[1]
                took = time.monotonic() - t0
                results[i][1] = took
                s.settimeout(max(deadline - time.monotonic(), 0.001))
                s.sendall(b"x")
                got = s.recv(1)
                if got != b"x":
                    results[i][2] = f"echo returned {got!r}"
                    return
            results[i][0] = True
            results[i][2] = ""
        except OSError as exc:
            results[i][2] = f"{type(exc).__name__}: {exc}"

    print("ready", flush=True)
    threads = []
    t0 = time.monotonic()
    for i in range(n):
        start = t0 + i * spread / n
        delay = start - time.monotonic()
        if delay > 0:
            time.sleep(delay)       # pacing the starts; each connect has its own timeout
        th = threading.Thread(target=one, args=(i,), daemon=True)
        th.start()
        threads.append(th)
    for th in threads:
        th.join(timeout + 5)
    print(json.dumps(results), flush=True)


TS_WSCALE_NONE = 0xF    # Linux cookie_init_timestamp(): low TSval bits 0-3, "no window scaling"
TS_SACK = 1 << 4        # bit 4: SACK permitted (bit 5, ECN, stays 0: the clients do not ask)


def cookie_bits(wscale: int | None, sack: bool) -> int:
    """The low 6 bits of a cookie SYN,ACK's TSval for a SYN with these options (Linux
    ``cookie_init_timestamp()``): where a listener without state keeps them."""
    return (TS_WSCALE_NONE if wscale is None else wscale) | (TS_SACK if sack else 0)


def _tcp_options(opts: bytes) -> tuple[int | None, bool, int | None]:
    """(window scale, SACK permitted, TSval) from a TCP option list."""
    wscale, sack, tsval = None, False, None
    i = 0
    while i < len(opts):
        kind = opts[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2:
            break
        size = opts[i + 1]
        body = opts[i + 2:i + size]
        if kind == 3 and len(body) == 1:
            wscale = body[0]
        elif kind == 4:
            sack = True
        elif kind == 8 and len(body) == 8:
            tsval = struct.unpack("!I", body[:4])[0]
        i += size
    return wscale, sack, tsval


def handshakes(pcap: bytes, port: int) -> dict[int, tuple[int, int]]:
    """Client port -> (cookie bits its SYN asks for, low 6 bits of the TSval of the
    SYN,ACK its handshake completed with: the one whose ISN its first ACK acknowledges),
    for every client of ``port`` whose SYN, SYN,ACK (with timestamps) and ACK are in
    ``pcap`` (classic pcap, Ethernet: what ``tcpdump -w`` writes for a TAP or lo). Not the
    first SYN,ACK: under load one can be lost after the capture saw it, and the client's
    retransmitted SYN be answered differently (a cookie, or a queued request)."""
    magic = pcap[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    if struct.unpack(endian + "I", magic)[0] not in (0xA1B2C3D4, 0xA1B23C4D):
        raise ValueError("not a classic pcap file")
    if struct.unpack(endian + "I", pcap[20:24])[0] != 1:
        raise ValueError("not an Ethernet capture")
    asked: dict[int, int] = {}
    synacks: dict[tuple[int, int], int] = {}     # (client port, ISN) -> TSval bits
    answered: dict[int, int] = {}
    off = 24
    while off + 16 <= len(pcap):
        incl = struct.unpack(endian + "I", pcap[off + 8:off + 12])[0]
        frame = pcap[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00" or frame[14 + 9] != 6:
            continue
        ip = frame[14:]
        tcp = ip[(ip[0] & 0xF) * 4:]
        if len(tcp) < 20:
            continue
        sport, dport = struct.unpack("!HH", tcp[:4])
        flags = tcp[13]
        wscale, sack, tsval = _tcp_options(tcp[20:(tcp[12] >> 4) * 4])
        if flags & 0x12 == 0x02 and dport == port:
            asked.setdefault(sport, cookie_bits(wscale, sack))
        elif flags & 0x12 == 0x12 and sport == port and tsval is not None:
            synacks[(dport, struct.unpack("!I", tcp[4:8])[0])] = tsval & 0x3F
        elif flags & 0x16 == 0x10 and dport == port and sport not in answered:
            ack = struct.unpack("!I", tcp[8:12])[0]
            bits = synacks.get((sport, (ack - 1) & 0xFFFFFFFF))
            if bits is not None:
                answered[sport] = bits
    return {p: (bits, answered[p]) for p, bits in asked.items() if p in answered}


def main(argv: list[str]) -> int:
    if len(argv) == 6 and argv[0] == "flood":
        flood(argv[1], int(argv[2]), float(argv[3]), float(argv[4]), int(argv[5]))
        return 0
    if len(argv) == 6 and argv[0] == "clients":
        clients(argv[1], int(argv[2]), int(argv[3]), float(argv[4]), float(argv[5]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
