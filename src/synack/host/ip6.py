"""IPv6 at the host: packets in and out, ICMPv6 (ping, Packet Too Big, errors).

Theory of operation
-------------------
A :class:`~synack.stack.Stack` given an ``addr6`` is dual-stack. An IPv6 packet
reaches :meth:`Ip6Mixin._receive6` (``receive()`` hands over whatever fails its
IPv4 parse with version 6), which walks the extension headers
(:mod:`synack.wire.ipv6`), drops fragments (synack does not reassemble) and
passes a TCP segment to the same demultiplexing as IPv4: connections, TIME_WAIT
entries and listeners are keyed by address text, which for IPv6 is the
compressed form of all 128 bits. IPv4 connections accepted by a dual-stack
listener keep IPv4 keys; only the socket API shows them as ``::ffff:a.b.c.d``.

ICMPv6 (RFC 4443): an echo request is answered, an echo reply recorded in
``stack.echo_replies``; errors are demultiplexed by the TCP header they embed,
converted to the errno Linux gives (``icmpv6_err_convert()``), and Packet Too
Big lowers the path MTU, never below 1280 (RFC 8200 5). Neighbor Discovery and
MLD belong to the link (:mod:`synack.link.nd`); any that reach the host are
dropped quietly and counted (``icmp6: ignored ND/MLD``), not counted as errors.

Output: the IPv6 header carries the hop limit ``net.ipv6.conf.all.hop_limit`` and,
with ``net.ipv6.auto_flowlabels``, a flow label (Linux ``ip6_make_flowlabel()``, one
label per flow, so ECMP routers keep a connection on one path). A connection's label
comes from Linux's ``sk_txhash``: random per socket (``net_tx_rndhash()``; a SYN queue
entry draws it and the accepted connection keeps it), drawn again after each
retransmission timeout (``sk_rethink_txhash()`` with ``net.core.txrehash`` = 1: a new
label may find a new path around a failure). Replies outside a connection (a RST to a
closed port, a TIME_WAIT ACK) carry a keyed hash of the 4-tuple.
"""

from __future__ import annotations

import errno
import hashlib
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from synack.icmp_host import EchoReply
from synack.tcp.state import State
from synack.wire.errors import ParseError
from synack.wire.icmp6 import (
    DEST_UNREACH,
    ECHO_REPLY,
    ECHO_REQUEST,
    MIN_MTU,
    PACKET_TOO_BIG,
    PARAM_PROBLEM,
    Icmp6Message,
    build_icmp6_packet,
    parse_icmp6,
)
from synack.wire.ipv6 import PROTO_ICMPV6, PROTO_TCP, build_tcp6_packet, parse_ipv6_route
from synack.wire.tcp import RST, TcpSegment, parse_tcp

if TYPE_CHECKING:
    from synack.stack import Stack

__all__ = ["Ip6Mixin", "flow_label", "icmp6_errno"]

_PORTS_SEQ = struct.Struct("!HHI")
_PORTS = struct.Struct("!HH")
PROTO_UDP = 17
# ICMPv6 types a host sees on a link without caring: MLD (130-132, 143), router and
# neighbor discovery (133-137).
_LINK_NOISE = frozenset({130, 131, 132, 133, 134, 135, 136, 137, 143})

#: Linux icmpv6_err_convert() tab_unreach: destination unreachable code -> errno.
UNREACH6_ERRNO = (errno.ENETUNREACH, errno.EACCES, errno.EHOSTUNREACH, errno.EHOSTUNREACH,
                  errno.ECONNREFUSED, errno.EACCES, errno.EACCES, errno.EHOSTUNREACH)


def icmp6_errno(type_: int, code: int) -> int:
    """The errno an ICMPv6 error stands for (Linux ``icmpv6_err_convert()``)."""
    if type_ == DEST_UNREACH:
        return UNREACH6_ERRNO[code] if code < len(UNREACH6_ERRNO) else errno.EHOSTUNREACH
    if type_ == PARAM_PROBLEM:
        return errno.EPROTO
    return errno.EHOSTUNREACH          # time exceeded


def flow_label(secret: bytes, src: str, sport: int, dst: str, dport: int) -> int:
    """A 20-bit flow label for one flow: a keyed hash of the 4-tuple (Linux hashes
    the flow keys with a boot-time secret; never 0, which means "no label")."""
    h = hashlib.blake2s(f"{src}|{sport}|{dst}|{dport}".encode(), key=secret, digest_size=4)
    return (int.from_bytes(h.digest(), "big") & 0xFFFFF) or 1


@dataclass(slots=True)
class _Labels:
    """The flow-label secret and the labels of recent flows."""

    secret: bytes
    cache: dict[tuple[str, int, str, int], tuple[int, int]]   # 4-tuple -> (label, RTOs)


class Ip6Mixin:
    """IPv6 input and output for :class:`synack.stack.Stack`."""

    _flow_labels: _Labels | None     # set in Stack.__init__; drawn at the first IPv6 segment

    def _receive6(self: Stack, packet: bytes, now: int, csum_valid: bool) -> None:
        stats = self.stats
        try:
            src, dst, proto, frag, hops, body = parse_ipv6_route(packet)
            if frag >= 0 and frag & 0xFFF9:
                stats["IPv6 fragments dropped"] += 1
                raise ParseError("IPv6 fragment", "unsupported",
                                 f"offset {frag & 0xFFF8}, fragments are not reassembled")
            if proto == PROTO_ICMPV6:
                self._icmp6_in(src, dst, hops, body, now)
                return
            if proto == PROTO_UDP:
                if (dst != self.addr6 or src == dst or src == "::1") and (
                        not self._inbound_ok(src, dst, False)):
                    return
                self.udp.receive(src, dst, body, packet, now=now, csum_valid=csum_valid)
                return
            if proto != PROTO_TCP:
                raise ParseError("IPv6 next header", "unsupported", f"{proto}")
            seg = parse_tcp(body, src, dst, verify_checksum=not csum_valid)
        except ParseError as exc:
            stats["dropped " + exc.kind] += 1
            return
        if (dst != self.addr6 or src == dst or src == "::1") and (
                not self._inbound_ok(src, dst, True)):
            return          # martian, or not for us (host/loopback.py)
        # The ECN field: the low two bits of the traffic class (RFC 3168 5).
        self._segment_in(src, dst, seg, now, (packet[1] >> 4) & 3)

    def _emit6(self: Stack, src: str, dst: str, seg: TcpSegment, gso: int,
               ecn: int = 0) -> None:
        """One TCP segment out over IPv6; ``ecn`` is the traffic class's ECN field
        (ECT(0) on new data of an ECN connection, as IPv4's TOS byte)."""
        off = self._offload
        cfg = self.cfg
        label = 0
        if cfg.int("net.ipv6.auto_flowlabels") in (1, 3):
            label = self._flow_label_for((src, seg.src_port, dst, seg.dst_port))
        if dst == "::1" or dst == self.addr6:
            # Loopback (host/loopback.py): whole, with the pseudo-header sum only.
            self._lo.append(build_tcp6_packet(
                src, dst, seg, hop_limit=cfg.int("net.ipv6.conf.all.hop_limit"),
                flow_label=label, traffic_class=ecn, csum_partial=True))
            self.stats["segments out"] += -(-len(seg.payload) // gso) if gso else 1
            if seg.flags & RST:
                self.stats["resets sent"] += 1
            return
        self._out.append(build_tcp6_packet(
            src, dst, seg, hop_limit=cfg.int("net.ipv6.conf.all.hop_limit"), flow_label=label,
            traffic_class=ecn, csum_partial=gso > 0 or (off is not None and off.tx_csum)))
        if gso:
            segs = -(-len(seg.payload) // gso)
            self._gso[len(self._out) - 1] = gso
            self.stats["segments out"] += segs
            self.stats["TSO super-segments out" if off is not None and off.tso_max
                       else "GSO super-segments out"] += 1
            return
        self.stats["segments out"] += 1
        if seg.flags & RST:
            self.stats["resets sent"] += 1

    def _flow_label_for(self: Stack, key: tuple[str, int, str, int]) -> int:
        """The flow label of a segment from ``key`` (local ip, port, remote ip, port)."""
        labels = self._label_state()
        conn = self.conns.get(key)
        if conn is None:
            lst = self._listener_for(key[0], key[1])
            conn = lst.syn_queue.get((key[2], key[3])) if lst is not None else None
        if conn is None:
            return flow_label(labels.secret, *key)   # no socket: a hash of the flow
        got = labels.cache.get(key)
        rtos = conn.rto_count
        if got is not None and got[1] == rtos:
            return got[0]
        if got is None and len(labels.cache) > 4096:
            # Forget the labels of flows that are gone (a connection's stays).
            for k in [k for k in labels.cache if k not in self.conns]:
                del labels.cache[k]
        # Linux net_tx_rndhash() at the socket's birth, sk_rethink_txhash() after an RTO.
        label = self.rng.getrandbits(20) or 1
        labels.cache[key] = (label, rtos)
        return label

    def _label_state(self: Stack) -> _Labels:
        labels = self._flow_labels
        if labels is None:
            # Drawn at the first IPv6 segment, so IPv4-only runs consume the seeded RNG
            # as before.
            labels = self._flow_labels = _Labels(self.rng.getrandbits(128).to_bytes(16, "big"),
                                                 {})
        return labels

    # ------------------------------------------------------------ ICMPv6
    def send_echo6(self: Stack, dst: str, ident: int, seq: int, payload: bytes = b"", *,
                   now: int) -> None:
        """Send an ICMPv6 echo request from :attr:`addr6` (::1 to ::1); the reply lands
        in :attr:`echo_replies`."""
        if self.addr6 is None and dst != "::1":
            raise OSError(errno.EADDRNOTAVAIL, "this host has no IPv6 address")
        self._icmp6_out(dst, Icmp6Message(ECHO_REQUEST, 0, ident, seq, payload=payload))
        self.stats["icmp6: echo requests sent"] += 1

    def _icmp6_out(self: Stack, dst: str, msg: Icmp6Message, src: str | None = None) -> None:
        src = src or self.source_for(dst)
        assert src is not None
        self.queue_out(dst, build_icmp6_packet(
            src, dst, msg, hop_limit=self.cfg.int("net.ipv6.conf.all.hop_limit")))

    def _icmp6_in(self: Stack, src: str, dst: str, hops: int, body: memoryview,
                  now: int) -> None:
        stats = self.stats
        if len(body) and body[0] in _LINK_NOISE:
            stats["icmp6: ignored ND/MLD"] += 1
            return
        if (dst != self.addr6 or src == dst or src == "::1") and (
                not self._inbound_ok(src, dst, False)):
            return
        try:
            msg = parse_icmp6(body, src, dst)
        except ParseError as exc:
            stats["icmp6: dropped " + exc.kind] += 1
            return
        if not isinstance(msg, Icmp6Message):     # router advertisement and the like
            stats["icmp6: ignored ND/MLD"] += 1
            return
        if msg.type == ECHO_REQUEST:
            self._icmp6_out(src, Icmp6Message(ECHO_REPLY, 0, msg.ident, msg.seq,
                                              payload=msg.payload), dst)
            stats["icmp6: echo replies sent"] += 1
            return
        if msg.type == ECHO_REPLY:
            self.echo_replies.append(EchoReply(src, msg.ident, msg.seq, msg.payload, now, hops))
            stats["icmp6: echo replies received"] += 1
            return
        self._icmp6_error(msg, now)

    def _icmp6_error(self: Stack, msg: Icmp6Message, now: int) -> None:
        """An error about one of our segments: to its connection, as icmp_host does
        for IPv4 (Linux tcp_v6_err())."""
        stats = self.stats
        orig = msg.original
        if orig.proto == PROTO_UDP and len(msg.original_data) >= 4 and self.owns(orig.src):
            sport, dport = _PORTS.unpack_from(msg.original_data)
            err = icmp6_errno(msg.type, msg.code) if msg.type == DEST_UNREACH else 0
            stats["icmp6: " + self.udp.on_icmp_error((orig.src, sport), (orig.dst, dport),
                                                     msg.type, msg.code, err6=err)] += 1
            return
        if orig.proto != PROTO_TCP or len(msg.original_data) < 8:
            stats["icmp6: dropped error for another protocol"] += 1
            return
        if not self.owns(orig.src):
            stats["icmp6: dropped error about a packet not ours"] += 1
            return
        sport, dport, seq = _PORTS_SEQ.unpack(msg.original_data)
        key = (orig.src, sport, orig.dst, dport)
        conn = self.conns.get(key)
        if conn is None:
            lst = self._listener_for(orig.src, sport)
            child = lst.syn_queue.get((orig.dst, dport)) if lst is not None else None
            if child is not None and child.state is State.SYN_RECEIVED:
                stats["icmp6: ignored"] += 1    # Linux tcp_req_err() for ND-style errors
                return
            stats["icmp6: ignored" if key in self.timewait else "icmp6: dropped no socket"] += 1
            return
        if msg.type == PACKET_TOO_BIG:
            # RFC 8200 5: a link MTU below 1280 is no reason to go below 1280.
            verdict = conn.on_icmp_error(type_=3, code=4, mtu=max(msg.mtu, MIN_MTU), seq=seq,
                                         now=now)
        else:
            verdict = conn.on_icmp_error(type_=msg.type, code=msg.code, mtu=0, seq=seq,
                                         now=now, err=icmp6_errno(msg.type, msg.code))
        stats["icmp6: " + verdict] += 1
        self._after(key, conn, now)
