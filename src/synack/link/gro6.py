"""Software GRO for TCP over IPv6: :mod:`synack.link.gro`'s rules for the 40-byte header.

Linux's ``ipv6_gro_receive`` / ``tcp6_gro_receive`` (net/ipv6/ip6_offload.c,
net/ipv6/tcpv6_offload.c) with the TCP rules of ``tcp_gro_receive`` unchanged. What
differs from IPv4: TCP must follow the fixed header directly (no extension headers
here), the payload length must be the packet's, and a segment joins only if the
first word (version, traffic class, flow label) and the hop limit equal the held
packet's -- there is no header checksum and no identification to count. The TCP
checksum is verified over the IPv6 pseudo-header (the header itself is not summed);
the merged packet gets a new payload length and a TCP checksum computed from the
segments' header sums, as for IPv4.
"""

from __future__ import annotations

from collections import Counter

from synack.wire.checksum import internet_checksum

__all__ = ["Held6", "flush6", "take6"]

_FIN, _SYN, _RST, _PSH, _URG, _CWR = 0x01, 0x02, 0x04, 0x08, 0x20, 0x80
_NO_START = _URG | _PSH | _RST | _SYN | _FIN
_MAY_DIFFER = _CWR | _FIN | _PSH
_MAX_PAYLOAD = 0xFFFF                 # the 16-bit payload length (no jumbograms)


class Held6:
    """One IPv6 flow's pending merge."""

    __slots__ = ("ackdoff", "count", "first", "flags", "mss", "next_seq", "odd", "opts",
                 "parts", "paysum", "pkt", "slot", "thlen", "total", "window")

    def __init__(self, pkt: bytes, slot: int, thlen: int, plen: int, paysum: int) -> None:
        self.pkt = pkt
        self.slot = slot
        self.thlen = thlen
        self.mss = plen
        self.total = thlen + plen                 # payload length so far
        self.next_seq = (int.from_bytes(pkt[44:48], "big") + plen) & 0xFFFFFFFF
        self.ackdoff = pkt[48:53]
        self.flags = pkt[53]
        self.window = pkt[54:56]
        self.opts = pkt[60:40 + thlen]
        self.first = (pkt[:4], pkt[7])            # version|class|flow label, hop limit
        self.count = 1
        self.parts: list[memoryview] = [memoryview(pkt)[40 + thlen:]]
        self.paysum = paysum
        self.odd = plen & 1


def take6(pkt: bytes, out: list[tuple[bytes, bool]], held: dict[bytes, Held6],
          stats: Counter[str]) -> bool:
    """Put one IPv6 packet through GRO; True if it was a TCP segment examined."""
    n = len(pkt)
    if n < 60 or pkt[6] != 6:
        out.append((pkt, False))            # not TCP right after the header
        return False
    key = pkt[8:44]                         # addresses and ports
    thlen = (pkt[52] >> 2) & 0x3C
    if 40 + ((pkt[4] << 8) | pkt[5]) != n or thlen < 20 or 40 + thlen > n:
        h = held.pop(key, None)
        if h is not None:
            flush6(h, out, "not mergeable", stats)
        out.append((pkt, False))
        return False
    pseudo = int.from_bytes(pkt[8:40], "big") + 6 + n - 40
    if internet_checksum(memoryview(pkt)[40:], pseudo):
        stats["gro bad checksum"] += 1
        h = held.pop(key, None)
        if h is not None:
            flush6(h, out, "bad checksum", stats)
        out.append((pkt, False))
        return True
    plen = n - 40 - thlen
    f = pkt[53]
    h = held.get(key)
    if h is not None:
        if (int.from_bytes(pkt[44:48], "big") == h.next_seq and 0 < plen <= h.mss
                and h.total + plen <= _MAX_PAYLOAD and thlen == h.thlen
                and not (f ^ h.flags) & ~_MAY_DIFFER and not f & _CWR
                and pkt[48:53] == h.ackdoff and pkt[54:56] == h.window
                and pkt[60:40 + thlen] == h.opts and (pkt[:4], pkt[7]) == h.first):
            s = -(pseudo + int.from_bytes(pkt[40:40 + thlen], "big")) % 0xFFFF
            h.paysum += s << 8 if h.odd else s
            h.odd ^= plen & 1
            h.parts.append(memoryview(pkt)[40 + thlen:])
            h.total += plen
            h.count += 1
            h.flags |= f & (_PSH | _FIN)
            h.next_seq = (h.next_seq + plen) & 0xFFFFFFFF
            if f & (_PSH | _FIN) or plen < h.mss:
                del held[key]
                flush6(h, out, "fin" if f & _FIN else "push" if f & _PSH else "short segment",
                       stats)
            return True
        del held[key]
        flush6(h, out, "not mergeable", stats)
    if not plen or f & _NO_START:
        out.append((pkt, True))
        return True
    s = -(pseudo + int.from_bytes(pkt[40:40 + thlen], "big")) % 0xFFFF
    held[key] = Held6(pkt, len(out), thlen, plen, s)
    out.append((pkt, True))
    return True


def flush6(h: Held6, out: list[tuple[bytes, bool]], reason: str,
           stats: Counter[str]) -> None:
    """End ``h``: the super-segment (or its lone segment) in its slot."""
    stats["gro flush " + reason] += 1
    if h.count == 1:
        return
    stats["gro super-segments"] += 1
    stats["gro segments merged"] += h.count
    pkt, thlen, total = h.pkt, h.thlen, h.total
    ip = bytearray(pkt[:40])
    ip[4:6] = total.to_bytes(2, "big")
    tcp = bytearray(pkt[40:40 + thlen])
    tcp[13] = h.flags
    tcp[16:18] = b"\0\0"
    r = (int.from_bytes(pkt[8:40], "big") + 6 + total + int.from_bytes(tcp, "big")
         + h.paysum) % 0xFFFF
    tcp[16:18] = ((0xFFFF - r) % 0xFFFF).to_bytes(2, "big")
    out[h.slot] = (b"".join((ip, tcp, *h.parts)), True)
