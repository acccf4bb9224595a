"""ICMP at the host: ping both ways, and errors routed to the connection they name.

Theory of operation
-------------------
:meth:`Stack.receive <synack.stack.Stack.receive>` hands every ICMP packet for
our address to :func:`handle_icmp`:

* an echo request is answered with an echo reply carrying the same ident,
  sequence number and data (RFC 792; RFC 1122 3.2.2.6), so ``ping`` works;
* an echo reply is recorded in ``stack.echo_replies`` for whoever sent the
  request (:func:`send_echo`);
* an error about a UDP datagram goes to :meth:`synack.host.udp.UdpHost.on_icmp_error`;
* a destination unreachable or time exceeded is demultiplexed by the TCP
  header embedded in it -- our address and port are its source, the peer's its
  destination -- and passed to the connection
  (:meth:`~synack.tcp.icmp_errors.IcmpErrorsMixin.on_icmp_error`), or, for a
  passive open still in SYN_RECEIVED, handled as Linux ``tcp_req_err`` does.

Whatever is malformed, names no connection of ours, or fails RFC 5927's
sequence check is dropped and counted in ``stack.stats`` under ``icmp: ...``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from synack.tcp.icmp_errors import aborts_request
from synack.tcp.state import State
from synack.wire.errors import ParseError
from synack.wire.icmp import (
    ECHO_REPLY,
    ECHO_REQUEST,
    IcmpMessage,
    build_icmp_packet,
    echo,
    parse_icmp,
)
from synack.wire.ipv4 import PROTO_TCP, PROTO_UDP, IPv4Header

if TYPE_CHECKING:
    from synack.stack import Stack

__all__ = ["EchoReply", "handle_icmp", "send_echo"]

_PORTS_SEQ = struct.Struct("!HHI")


@dataclass(frozen=True, slots=True)
class EchoReply:
    """An echo reply that reached us."""

    src: str
    ident: int
    seq: int
    payload: bytes
    now: int
    ttl: int


def send_echo(stack: Stack, dst: str, ident: int, seq: int, payload: bytes, *,
              now: int) -> None:
    """Queue an echo request to ``dst`` (``ping``)."""
    _emit(stack, dst, echo(ident, seq, payload))
    stack.stats["icmp: echo requests sent"] += 1


def _emit(stack: Stack, dst: str, msg: IcmpMessage) -> None:
    stack._ident = (stack._ident + 1) & 0xFFFF
    stack._out.append(build_icmp_packet(stack.addr, dst, msg,
                                        ttl=stack.cfg.int("net.ipv4.ip_default_ttl"),
                                        ident=stack._ident))


def handle_icmp(stack: Stack, ip: IPv4Header, body: memoryview, now: int) -> None:
    """One ICMP message addressed to us. Never raises for anything the peer sent."""
    stats = stack.stats
    try:
        msg = parse_icmp(body)
    except ParseError as exc:
        stats["icmp: dropped " + exc.kind] += 1
        return
    if msg.type == ECHO_REQUEST:
        _emit(stack, ip.src, echo(msg.ident, msg.seq, msg.payload, reply=True))
        stats["icmp: echo replies sent"] += 1
        return
    if msg.type == ECHO_REPLY:
        stack.echo_replies.append(EchoReply(ip.src, msg.ident, msg.seq, msg.payload, now,
                                             ip.ttl))
        stats["icmp: echo replies received"] += 1
        return
    orig = msg.original
    if orig.proto == PROTO_UDP and orig.src == stack.addr:
        sport, dport = struct.unpack_from("!HH", msg.original_data)
        stats["icmp: " + stack.udp.on_icmp_error((orig.src, sport), (orig.dst, dport),
                                                 msg.type, msg.code)] += 1
        return
    if orig.proto != PROTO_TCP:
        stats["icmp: dropped error for another protocol"] += 1
        return
    if orig.src != stack.addr:
        stats["icmp: dropped error about a packet not ours"] += 1
        return
    sport, dport, seq = _PORTS_SEQ.unpack(msg.original_data)
    key = (orig.src, sport, orig.dst, dport)
    conn = stack.conns.get(key)
    if conn is not None:
        verdict = conn.on_icmp_error(type_=msg.type, code=msg.code, mtu=msg.mtu, seq=seq,
                                     now=now)
        stats["icmp: " + verdict] += 1
        stack._after(key, conn, now)
        return
    lst = stack._listener_for(orig.src, sport)
    child = lst.syn_queue.get((orig.dst, dport)) if lst is not None else None
    if lst is not None and child is not None and child.state is State.SYN_RECEIVED:
        # Linux tcp_req_err(): the sequence number must be our ISN exactly.
        if seq != child.snd.iss:
            stats["icmp: out of window"] += 1
        elif aborts_request(msg.type, msg.code):
            child.abort(now=now, why="ICMP error for a half-open connection", send_rst=False)
            stack._collect_child(lst, key, child, now)
            stats["icmp: request dropped"] += 1
        else:
            stats["icmp: ignored"] += 1
        return
    if key in stack.timewait:
        stats["icmp: ignored"] += 1          # Linux: TIME_WAIT sockets ignore ICMP
        return
    stats["icmp: dropped no socket"] += 1


