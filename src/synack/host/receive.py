"""The host's IPv4 input: :meth:`Stack.receive <synack.stack.Stack.receive>`.

A packet from the wire is parsed and checked, then goes to TCP
(:meth:`Stack._segment_in <synack.stack.Stack._segment_in>`), UDP, ICMP, fragment
reassembly (:mod:`synack.host.frag`) or, being IPv6, to ``_receive6``
(:mod:`synack.host.ip6`). Nothing a peer sends raises out of it: a malformed packet
is dropped and counted in :attr:`Stack.stats <synack.stack.Stack.stats>`.

Nearly every packet a host gets is TCP from a peer it has heard from before, in an
IPv4 header without options, its TCP options NOP NOP TS (or a SYN's four). Such a
packet takes a path of its own: :func:`~synack.wire.ipv4.parse_ipv4_tcp`'s work,
inline, with what it would look up per packet looked up once per peer instead.
:attr:`ReceiveMixin._peers` maps the pair of raw addresses (source and destination,
one 64-bit field of the unpack) of a peer whose packets passed the martian check
(addressed to us, not from ourselves or the loopback net) to their names and to the
share of both checksums the addresses make. A packet that fails any check on that
path takes the general one, which names its fault.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synack.icmp_host import handle_icmp
from synack.tcp.ecn import CE
from synack.wire._records import TWINS
from synack.wire.checksum import internet_checksum
from synack.wire.errors import ParseError
from synack.wire.ipv4 import (
    IP_MID_PAIR_TCP_TS,
    PROTO_ICMP,
    PROTO_TCP,
    PROTO_UDP,
    parse_ipv4,
    parse_ipv4_route,
    parse_ipv4_tcp,
)
from synack.wire.tcp import (
    _NOP_NOP_TS_KINDS,
    _NOP_NOP_TS_WORD,
    _SYN_KINDS,
    _SYN_WORDS,
    FIN,
    RST,
    SYN,
    URG,
    TcpSegment,
    make_segment,
    parse_tcp,
)

if TYPE_CHECKING:
    from synack.stack import Stack

_new = object.__new__
# Segments that touch their socket whatever they change (synack.stack's).
_WAKE_FLAGS = SYN | FIN | RST | URG
# make_segment()'s twin: TcpSegment's slots, plain stores (KeyError here: an
# interpreter where the twin does not work; see wire/_records.py).
_SegmentFields: Any = TWINS[TcpSegment]

_MF_OFFSET = 0x3FFF     # IPv4 "more fragments" bit and fragment offset
_TS_LEN = 52            # IPv4 header, TCP header, NOP NOP TS
_SYN_LEN = 60           # IPv4 header, TCP header, MSS SACK_PERM TS NOP WS
_INLINE_SUM_MAX = 512   # wire.ipv4's: longer packets are summed by internet_checksum()
# In the IPv4 header's middle 64 bits (ident 16, flags|fragment offset 16, TTL 8,
# protocol 8, checksum 16): the "more fragments" bit and the offset, and the protocol.
_MID_MASK = (_MF_OFFSET << 32) | (0xFF << 16)
_MID_TCP = PROTO_TCP << 16
PEERS_MAX = 4096        # then the table of peers starts afresh


class ReceiveMixin:
    """IPv4 input, for :class:`synack.stack.Stack`."""

    #: Raw address pair (``src << 32 | dst``) of a peer whose packets pass the martian
    #: check -> (source name, destination name, the IPv4 header's fixed words and the
    #: addresses modulo 0xFFFF, the TCP pseudo-header less its length modulo 0xFFFF).
    _peers: dict[int, tuple[str, str, int, int]]

    def receive(self: Stack, packet: bytes, now: int, csum_valid: bool = False) -> None:
        """One IP packet from the wire (IPv6 goes on to :meth:`_receive6`). Never
        raises for anything the peer sent.

        ``csum_valid``: the device has checked (or will fill in) the TCP checksum.
        (``now`` and ``csum_valid`` may be given by position: a driver's call per packet.)
        """
        n = len(packet)
        if n >= _TS_LEN:
            # The usual packet from a known peer (the module docstring says which):
            # parse_ipv4_tcp()'s checks and record, inline, the per-peer work done once.
            # Both headers, and NOP NOP TS if that is what follows, in one unpack: the
            # IPv4 header's middle (ident, flags|fragment offset, TTL, protocol,
            # checksum) as one 64-bit field, the address pair as another.
            (vihl, tos, total, mid, pair, sport, dport, seq, ack, off, flags, window, tcsum,
             urgent, word, tsval, tsecr) = IP_MID_PAIR_TCP_TS.unpack_from(packet)
            peer = self._peers.get(pair)
            # No options, no link padding; TCP and not a fragment (one mask over the
            # middle: its fragment bits 0, its protocol 6); the IPv4 header's checksum
            # right: its words sum to 0 modulo 0xFFFF, and as 2**16 == 1 modulo 0xFFFF
            # a 64-bit field counts as its four words, the pair as the addresses' four.
            if peer is not None and vihl == 0x45 and total == n \
                    and mid & _MID_MASK == _MID_TCP \
                    and not (peer[2] + tos + total + mid) % 0xFFFF:
                src, dst, _, pseudo = peer
                # The TCP checksum (unless the device vouched for it): the whole packet
                # summed at once, its IPv4 header adding nothing (its words sum to 0,
                # checked above); read little-endian, that is the word sum with the bytes
                # swapped, and 256 times it swaps them back (parse_ipv4_tcp() says more).
                if csum_valid:
                    ok = True
                elif n <= _INLINE_SUM_MAX:
                    ok = not (((int.from_bytes(packet, "little") % 0xFFFF) << 8) + pseudo
                              + total) % 0xFFFF
                else:
                    ok = not internet_checksum(packet, pseudo + total)
                if ok:
                    doff = off >> 4
                    if doff == 8 and word == _NOP_NOP_TS_WORD:
                        # parse_tcp()'s record of the usual segment after the handshake:
                        # make_segment(), inline (wire/_records.py says how it works).
                        seg = _new(_SegmentFields)
                        seg.src_port = sport
                        seg.dst_port = dport
                        seg.seq = seq
                        seg.ack = ack
                        seg.flags = flags
                        seg.window = window
                        seg.urgent = urgent
                        seg.payload = bytes(packet[_TS_LEN:]) if n > _TS_LEN else b""
                        seg.mss = None
                        seg.wscale = None
                        seg.sack_permitted = False
                        seg.sack_blocks = ()
                        seg.timestamps = (tsval, tsecr)
                        seg.unknown_options = ()
                        seg.reserved = off & 0x0F
                        seg.data_offset = 8
                        seg.checksum = tcsum
                        seg.option_kinds = _NOP_NOP_TS_KINDS
                        seg.__class__ = TcpSegment
                        key = (dst, dport, src, sport)
                        conn = self.conns.get(key)
                        if conn is None:
                            self._segment_in(src, dst, seg, now, tos & 3)
                            return
                        # self._segment_in()'s way to a connection, inline (no unknown
                        # option here: nothing for its MD5 check).
                        self.stats["segments in"] += 1
                        ecn = conn.ecn
                        if ecn is not None:
                            ecn.ce_pending = tos & 3 == CE
                            if tos & 3:
                                ecn.seen = True
                        state = conn.state
                        conn.on_segment(seg, now)
                        fd = conn.fd
                        # (A pure ACK that changes no state wakes the socket only when
                        # it waits on ACKs: _segment_in() says why.)
                        if fd >= 0 and (n > _TS_LEN or flags & _WAKE_FLAGS
                                        or conn.state is not state or fd in self.wake_on_ack):
                            self.touched.add(fd)
                        self._collect_conn(key, conn, now)
                        return
                    if doff == 10 and n >= _SYN_LEN:
                        # A SYN's usual options (MSS, SACK_PERM, TS, NOP WS), as
                        # parse_tcp() checks them.
                        mss_kl, mss, sp_kl, ts_kl, tsval, tsecr, nop_ws, ws_len, ws = \
                            _SYN_WORDS.unpack_from(packet, _SYN_LEN - 20)
                        if mss_kl == 0x0204 and sp_kl == 0x0402 and ts_kl == 0x080A \
                                and nop_ws == 0x0103 and ws_len == 3:
                            self._segment_in(src, dst, make_segment(
                                sport, dport, seq, ack, flags, window, urgent,
                                bytes(packet[_SYN_LEN:]) if n > _SYN_LEN else b"", mss, ws,
                                True, (), (tsval, tsecr), (), off & 0x0F, 10, tcsum,
                                _SYN_KINDS), now, tos & 3)  # fmt: skip
                            return
                    # (Other options: parse_tcp() below.)
        try:
            # The usual packet (TCP, no IP options, not a fragment, checksums right) in
            # one call; any other, or one with a fault to name, the general way below.
            got = parse_ipv4_tcp(packet, not csum_valid)
            if got is not None:
                src, dst, seg = got
            else:
                # The header record is built only for ICMP; TCP needs four fields of it.
                src, dst, proto, frag, body = parse_ipv4_route(packet)
                if frag & _MF_OFFSET:
                    # A fragment: reassembled (host/frag.py), then received as one packet.
                    whole = self.frags.add(packet, now=now)
                    if whole is None:
                        return
                    packet, csum_valid = whole, False
                    src, dst, proto, frag, body = parse_ipv4_route(packet)
                if proto != PROTO_TCP:
                    if proto == PROTO_UDP:
                        if (dst != self.addr or src == dst or src[:4] == "127.") and (
                                not self._inbound_ok(src, dst, False)):
                            return
                        self.udp.receive(src, dst, body, packet, now=now, csum_valid=csum_valid)
                        return
                    if proto != PROTO_ICMP:
                        raise ParseError("IPv4 protocol", "unsupported", f"{proto}")
                    if (dst != self.addr or src == dst or src[:4] == "127.") and (
                            not self._inbound_ok(src, dst, False)):
                        return
                    ip, body = parse_ipv4(packet)
                    handle_icmp(self, ip, body, now)
                    return
                # With csum_valid the device vouched for the TCP checksum (the IPv4 header's
                # is still checked above): no per-byte sum in Python.
                seg = parse_tcp(body, src, dst, verify_checksum=not csum_valid)
        except ParseError as exc:
            if exc.kind == "bad version" and packet[0] >> 4 == 6:
                self._receive6(packet, now, csum_valid)   # IPv6: no cost to IPv4 before this
                return
            self.stats["dropped " + exc.kind] += 1
            return
        if dst != self.addr or src == dst or src[:4] == "127.":
            if not self._inbound_ok(src, dst, True):
                return          # martian, or not for us (host/loopback.py)
        elif got is not None and n >= _TS_LEN:
            # A peer the path above does not know yet (or a packet it does not take).
            pair = int.from_bytes(packet[12:20], "big")
            peers = self._peers
            if pair not in peers:
                if len(peers) >= PEERS_MAX:
                    peers.clear()
                # (2**32 == 1 modulo 0xFFFF: the pair counts as its two addresses.)
                peers[pair] = (src, dst, (0x4500 + pair) % 0xFFFF,
                               (pair + PROTO_TCP - 20) % 0xFFFF)
        self._segment_in(src, dst, seg, now, packet[1] & 3)
