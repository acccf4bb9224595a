"""The ceiling of the conn/s row: a do-nothing responder behind a TUN device.

``synack serve echo`` answers the kernel's client through a TAP device, so every
connection costs round trips through the device and the wake-ups that go with
them (the client sleeps in ``connect`` and ``recv`` until the responder's
packets come back), which a kernel server on loopback does not pay: there the
SYN,ACK is made while the client's SYN is still being sent. This responder
keeps no TCP state at all -- it answers a SYN with a SYN,ACK (MSS and
timestamps, so the client's ``tcp_tw_reuse`` works as with the other servers),
one byte of data with an ACK and the byte echoed, a FIN with a FIN,ACK, and
reads nothing else -- so its rate, taken with the same client as the other
conn/s figures, is what a program answering through a TUN/TAP device can reach
on this machine when its own work costs next to nothing.

    python bench/tunfloor.py serve      (inside a namespace; prints "listening")
"""

from __future__ import annotations

import os
import selectors
import struct
import subprocess
import sys
import time

from labs import KERNEL_IP, SRC, SYNACK_IP, TAG, in_ns, netns, ns_sysctl, script, stop, wait_line
from table import Figure

DEV = "floor0"
_TCP = struct.Struct("!HHIIBBHHH")
_IP = struct.Struct("!BBHHHBBH4s4s")
_MSS = b"\x02\x04\x05\xb4"          # option: MSS 1460
_TS = struct.Struct("!BBBBII")      # NOP, NOP, timestamps (kind 8, length 10)


def _tsval(packet: bytes) -> int | None:
    """The TSval of ``packet``'s timestamp option, if it has one."""
    i, end = 40, 20 + ((packet[32] >> 4) << 2)
    while i < end:
        kind = packet[i]
        if kind == 0:
            return None
        if kind == 1:
            i += 1
            continue
        if i + 1 >= end or packet[i + 1] < 2:
            return None
        if kind == 8 and packet[i + 1] == 10 and i + 10 <= end:
            return int.from_bytes(packet[i + 2:i + 6], "big")
        i += packet[i + 1]
    return None


def _answer(packet: bytes, flags: int, seq: int, ack: int, data: bytes = b"") -> bytes:
    """A reply to ``packet`` (IPv4/TCP, ports and addresses swapped)."""
    from synack.wire.checksum import internet_checksum

    src, dst = packet[16:20], packet[12:16]
    sport, dport = struct.unpack_from("!HH", packet, 20)
    opts = _MSS if flags & 0x02 else b""
    ecr = _tsval(packet)
    if ecr is not None:             # timestamps: the client may then reuse TIME_WAIT ports
        opts += _TS.pack(1, 1, 8, 10, time.monotonic_ns() // 1_000_000 & 0xFFFFFFFF, ecr)
    thlen = 20 + len(opts)
    tcp = bytearray(_TCP.pack(dport, sport, seq, ack, thlen << 2, flags, 65535, 0, 0))
    tcp += opts + data
    pseudo = int.from_bytes(src + dst, "big") + 6 + len(tcp)
    struct.pack_into("!H", tcp, 16, internet_checksum(tcp, pseudo))
    ip = bytearray(_IP.pack(0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst))
    struct.pack_into("!H", ip, 10, internet_checksum(ip, 0))
    return bytes(ip + tcp)


def serve() -> None:
    """Answer through a new TUN device until killed (run inside a lab namespace)."""
    from synack.link.tundev import TunTapDevice

    dev = TunTapDevice(DEV, tap=False)
    for cmd in (["addr", "add", f"{KERNEL_IP}/24", "dev", DEV], ["link", "set", DEV, "up"]):
        subprocess.run(["ip", *cmd], check=True, capture_output=True, timeout=30)
    sel = selectors.DefaultSelector()
    sel.register(dev.fileno(), selectors.EVENT_READ)
    print("listening", flush=True)
    isn = int.from_bytes(os.urandom(4), "big")
    while True:
        sel.select()
        for p in dev.read_batch():
            if len(p) < 40 or p[0] != 0x45 or p[9] != 6:
                continue
            flags = p[33]
            seq, ack = struct.unpack_from("!II", p, 24)
            plen = len(p) - 20 - ((p[32] >> 4) << 2)
            if flags & 0x02:                                     # SYN
                isn = (isn + 64_000) & 0xFFFFFFFF
                dev.write([_answer(p, 0x12, isn, (seq + 1) & 0xFFFFFFFF)])
            elif flags & 0x01:                                   # FIN
                dev.write([_answer(p, 0x11, ack, (seq + plen + 1) & 0xFFFFFFFF)])
            elif plen:                                           # data: ACK, then echo
                end = (seq + plen) & 0xFFFFFFFF
                dev.write([_answer(p, 0x10, ack, end)])
                dev.write([_answer(p, 0x18, ack, end, p[len(p) - plen:])])


def floor_rate(seconds: float, maxconn: int) -> Figure:
    """conn/s of the kernel rate client against :func:`serve` in a fresh namespace."""
    from conns import rate

    ns = f"{TAG}-f"
    try:
        with netns(ns):
            ns_sysctl(ns, "net.ipv4.ip_local_port_range=1024 65535")
            ns_sysctl(ns, "net.ipv4.tcp_tw_reuse=1")
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                p for p in (SRC, os.environ.get("PYTHONPATH", "")) if p))
            proc = subprocess.Popen(in_ns(ns, sys.executable, script("tunfloor.py"), "serve"),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=env)
            try:
                wait_line(proc.stdout, "listening", 20)
                return rate(ns, SYNACK_IP, seconds, maxconn)
            finally:
                stop(proc)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return Figure([], f"TUN ceiling: {exc}")


if __name__ == "__main__":
    if sys.argv[1:] != ["serve"]:
        sys.exit("usage: tunfloor.py serve")
    serve()
