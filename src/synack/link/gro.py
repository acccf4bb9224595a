"""Software GRO: merge in-order TCP segments of one flow read in one batch.

Theory of operation
-------------------
Without offloads the kernel hands a TAP/TUN one MTU-sized frame per segment,
and the stack's cost is per packet, not per byte. :class:`Gro` takes the IPv4
packets of one device read and, like Linux's ``dev_gro_receive`` /
``inet_gro_receive`` / ``tcp_gro_receive`` (net/core/gro.c,
net/ipv4/af_inet.c, net/ipv4/tcp_offload.c), holds at most one pending merge
per flow (the kernel's gro lists), appends each following segment of that flow
that may join it, and flushes it when a segment may not, when a segment ends
the merge, or at the end of the batch.

The rules are Linux's:

* the IPv4 header is plain (``0x45``: no options), not a fragment (nor MF, nor
  the reserved bit), its total length is the packet's length, its checksum is
  good (``inet_gro_receive``); TTL, TOS and DF equal the held packet's, and the
  IP ID is the held one's plus the count merged, or, when the second packet has
  DF and the same ID, fixed for the whole merge (``inet_gro_flush``);
* the TCP checksum is verified first (``tcp4_gro_receive``); a bad one is
  passed through unverified so the stack drops and counts it;
* same ports and addresses; the flag word (data offset, flags, window) equal
  apart from CWR, FIN and PSH, and no CWR on a joining segment; the same ACK
  number; every option byte equal -- TSval included, Linux compares the whole
  option area (``tcp_gro_receive``);
* the sequence number continues the held data; the payload is at most the
  first segment's (the gso size) and not empty; the merged IPv4 packet stays
  below 64 KB (``skb_gro_receive``, GRO_LEGACY_MAX_SIZE);
* a joining segment with PSH or FIN, or shorter than the gso size, is merged
  and ends the merge; its PSH/FIN is kept on the super-segment. A segment with
  URG, PSH, RST, SYN or FIN, or no payload, never starts one
  (``tcp_gro_receive`` out_check_final).

A segment that may not join flushes its flow's pending merge and then starts a
new one (or passes through), so order within a flow is kept; a super-segment
takes the place of its first segment in the output. The super-segment keeps
the first segment's headers (its IP ID, TSval) with the last one's PSH/FIN, a
rebuilt IPv4 header (total length, checksum) and a valid TCP checksum computed
from the segments' header sums, without summing the payload again. Every TCP
packet whose checksum was verified here is returned with ``csum_valid=True``.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable

from synack.link.gro6 import Held6, flush6, take6
from synack.wire.checksum import internet_checksum

__all__ = ["Gro"]

_FIN, _SYN, _RST, _PSH, _URG, _CWR = 0x01, 0x02, 0x04, 0x08, 0x20, 0x80
_NO_START = _URG | _PSH | _RST | _SYN | _FIN     # tcp_gro_receive: flush at out_check_final
_MAY_DIFFER = _CWR | _FIN | _PSH                 # bits of the flag word that may differ
_GRO_MAX = 65536                                 # GRO_LEGACY_MAX_SIZE: merged length below it
_IP = struct.Struct("!BBHHHBBHII")               # the IPv4 header without options
# Up to this length a packet's TCP checksum is verified inline: internet_checksum()'s
# sum (read little-endian, the remainder times 256 swaps it back) without the call;
# longer ones go through it, which folds the big integer first.
_SMALL = 512


class _Held:
    """One flow's pending merge (Linux: a packet on a gro list)."""

    __slots__ = ("ackdoff", "count", "fixed_id", "flags", "ip_id", "ipk", "mss", "next_seq",
                 "odd", "opts", "parts", "paysum", "pkt", "slot", "thlen", "total", "window")

    def __init__(self, pkt: bytes, slot: int, thlen: int, plen: int, paysum: int) -> None:
        self.pkt = pkt                          # the first segment: its headers are kept
        self.slot = slot                        # where the result goes in the output
        self.thlen = thlen
        self.mss = plen                         # dev_gro_receive: gso_size = first length
        self.total = 20 + thlen + plen          # IPv4 total length so far
        self.next_seq = (int.from_bytes(pkt[24:28], "big") + plen) & 0xFFFFFFFF
        self.ackdoff = pkt[28:33]               # ACK number and data-offset byte
        self.flags = pkt[33]
        self.window = pkt[34:36]
        self.opts = pkt[40:20 + thlen]
        self.ipk = (pkt[1], pkt[6], pkt[8])     # TOS, DF byte, TTL
        self.ip_id = (pkt[4] << 8) | pkt[5]
        self.fixed_id = False
        self.count = 1
        self.parts: list[memoryview] = [memoryview(pkt)[20 + thlen:]]
        self.paysum = paysum                    # payload sum so far, mod 0xFFFF
        self.odd = plen & 1                     # merged payload length is odd


class Gro:
    """Merge one batch of IPv4 packets (see the module docstring).

    ``stats`` (shared with the link) counts ``gro segments in`` (TCP segments
    examined), ``gro segments merged`` (segments that went into a
    super-segment), ``gro super-segments``, ``gro bad checksum`` and
    ``gro flush <reason>`` for every pending merge ended.
    """

    def __init__(self, stats: Counter[str] | None = None) -> None:
        self.stats: Counter[str] = stats if stats is not None else Counter()

    def merge(self, packets: Iterable[bytes]) -> list[tuple[bytes, bool]]:
        """(IP packet, csum_valid) pairs for ``stack.receive``, the batch merged (IPv6
        by :mod:`synack.link.gro6`)."""
        out: list[tuple[bytes, bool]] = []
        held: dict[bytes, _Held] = {}
        held6: dict[bytes, Held6] = {}
        stats = self.stats
        seen = 0
        for pkt in packets:
            n = len(pkt)
            if n < 40 or pkt[9] != 6 or pkt[0] >> 4 != 4:
                if n and pkt[0] >> 4 == 6:      # IPv6: the same rules (synack.link.gro6)
                    seen += take6(pkt, out, held6, stats)
                    continue
                out.append((pkt, False))        # not TCP over IPv4 (or too short to be)
                continue
            thlen = (pkt[32] >> 2) & 0x3C
            vi, tos, total, ident, frag, ttl, _, csum, src, dst = _IP.unpack_from(pkt)
            # The header (protocol 6) sums to zero, a good checksum, exactly when its
            # words add up to a multiple of 0xFFFF (an address is worth its two words).
            if (vi != 0x45 or total != n or frag & 0xBFFF or thlen < 20 or 20 + thlen > n
                    or (0x4506 + tos + total + ident + frag + (ttl << 8) + csum
                        + src + dst) % 0xFFFF):
                # inet_gro_receive / tcp_gro_pull_header refuse it: to the stack as it is.
                if held:
                    ihl = (pkt[0] & 0x0F) << 2
                    h = held.pop(pkt[12:20] + pkt[ihl:ihl + 4], None)
                    if h is not None:
                        self._flush(h, out, "not mergeable")
                out.append((pkt, False))
                continue
            seen += 1
            # The flow (addresses and ports) is looked up only while merges are held,
            # or to hold this one: most small batches never build it.
            key = pkt[12:24] if held else b""
            pseudo = src + dst + 6 + n - 20            # pseudo header: addresses,
            #                                            protocol and TCP length
            if (((int.from_bytes(pkt, "little") % 0xFFFF << 8) + pseudo) % 0xFFFF
                    if n <= _SMALL else internet_checksum(pkt, pseudo)):
                # The IPv4 header sums to zero, so this is the TCP checksum alone.
                stats["gro bad checksum"] += 1
                if key:
                    h = held.pop(key, None)
                    if h is not None:
                        self._flush(h, out, "bad checksum")
                out.append((pkt, False))
                continue
            plen = n - 20 - thlen
            f = pkt[33]
            h = held.get(key) if key else None
            if h is not None:
                if (int.from_bytes(pkt[24:28], "big") == h.next_seq and 0 < plen <= h.mss
                        and h.total + plen < _GRO_MAX and thlen == h.thlen
                        and not (f ^ h.flags) & ~_MAY_DIFFER and not f & _CWR
                        and pkt[28:33] == h.ackdoff and pkt[34:36] == h.window
                        and pkt[40:20 + thlen] == h.opts
                        and (pkt[1], pkt[6], pkt[8]) == h.ipk and self._id_ok(h, pkt)):
                    # The payload's sum: the segment sums to zero, so it is minus the
                    # pseudo header and the TCP header (checksum field included).
                    s = -(pseudo + int.from_bytes(pkt[20:20 + thlen], "big")) % 0xFFFF
                    h.paysum += s << 8 if h.odd else s    # an odd offset swaps bytes
                    h.odd ^= plen & 1
                    h.parts.append(memoryview(pkt)[20 + thlen:])
                    h.total += plen
                    h.count += 1
                    h.flags |= f & (_PSH | _FIN)
                    h.next_seq = (h.next_seq + plen) & 0xFFFFFFFF
                    if f & (_PSH | _FIN) or plen < h.mss:
                        del held[key]
                        self._flush(h, out, "fin" if f & _FIN else "push" if f & _PSH
                                    else "short segment")
                    continue
                del held[key]
                self._flush(h, out, self._why(h, pkt, plen, thlen))
            if not plen or f & _NO_START:
                out.append((pkt, True))
                continue
            s = -(pseudo + int.from_bytes(pkt[20:20 + thlen], "big")) % 0xFFFF
            held[key or pkt[12:24]] = _Held(pkt, len(out), thlen, plen, s)
            out.append((pkt, True))             # replaced if more segments join it
        for h in held.values():
            self._flush(h, out, "batch end")
        for h6 in held6.values():
            flush6(h6, out, "batch end", stats)
        stats["gro segments in"] += seen
        return out

    # ------------------------------------------------------------ internals
    @staticmethod
    def _id_ok(h: _Held, pkt: bytes) -> bool:
        """inet_gro_flush(): IP IDs count up, or stay fixed if the second packet says so (DF).

        The DF condition is the include/net/gro.h of current kernels; a 2025 netdev
        patch (R. Gobert) lets fixed IDs merge without DF too.
        """
        offset = (((pkt[4] << 8) | pkt[5]) - h.ip_id) & 0xFFFF
        df = pkt[6] & 0x40
        if h.count == 1 and df and not offset:
            h.fixed_id = True
        if h.fixed_id and df:
            return not offset
        return offset == h.count

    def _why(self, h: _Held, pkt: bytes, plen: int, thlen: int) -> str:
        """The first rule a segment broke (for the flush counters)."""
        f = pkt[33]
        if not plen:
            return "no payload"
        if int.from_bytes(pkt[24:28], "big") != h.next_seq:
            return "not in sequence"
        if plen > h.mss:
            return "larger than gso size"
        if h.total + plen >= _GRO_MAX:
            return "64k"
        if pkt[28:32] != h.ackdoff[:4]:
            return "ack"
        if f & _CWR or (f ^ h.flags) & ~_MAY_DIFFER:
            return "flags"
        if pkt[34:36] != h.window:
            return "window"
        if thlen != h.thlen or pkt[32] != h.ackdoff[4] or pkt[40:20 + thlen] != h.opts:
            return "options"
        return "ip header"

    def _flush(self, h: _Held, out: list[tuple[bytes, bool]], reason: str) -> None:
        """End ``h``: put the super-segment (or its lone segment) in its slot."""
        stats = self.stats
        stats["gro flush " + reason] += 1
        if h.count == 1:
            return                              # the segment is already in its slot
        stats["gro super-segments"] += 1
        stats["gro segments merged"] += h.count
        pkt, thlen, total = h.pkt, h.thlen, h.total
        ip = bytearray(pkt[:20])
        ip[2:4] = total.to_bytes(2, "big")
        ip[10:12] = b"\0\0"
        ip[10:12] = internet_checksum(ip).to_bytes(2, "big")
        tcp = bytearray(pkt[20:20 + thlen])
        tcp[13] = h.flags
        tcp[16:18] = b"\0\0"
        r = (int.from_bytes(pkt[12:20], "big") + 6 + total - 20
             + int.from_bytes(tcp, "big") + h.paysum) % 0xFFFF
        tcp[16:18] = ((0xFFFF - r) % 0xFFFF).to_bytes(2, "big")
        out[h.slot] = (b"".join((ip, tcp, *h.parts)), True)
