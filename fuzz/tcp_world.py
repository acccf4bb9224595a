"""A synack host with a connection in every TCP state, and the checks made on it.

Theory of operation
-------------------
:func:`build_world` makes one :class:`~synack.stack.Stack` (192.0.2.2) and plays
its peer (192.0.2.1) through the public API only -- ``connect``, ``listen``,
``accept``, ``send``, ``shutdown``, ``close`` and hand-made segments -- until
it holds a listener and a connection in each of SYN_SENT, SYN_RECEIVED,
ESTABLISHED (one passive with every option, one active with none), FIN_WAIT_1,
FIN_WAIT_2, CLOSE_WAIT, CLOSING, LAST_ACK and TIME_WAIT. Each is a *target*: a
remote port the fuzzer's segments come from.

:func:`tcp_actions.run_input` reads a fuzz input as a list of actions (the format
is in :class:`tcp_actions.Actions`). Most actions are segments from the peer: the fuzzer picks
the flags, the window, the urgent pointer, the options and the payload length,
and gives the sequence and acknowledgment numbers as offsets from what the
peer has seen of the stack (the last ACK it got, the highest sequence the stack
sent), so that they land near the window and pass the checks often; the harness
builds the header and computes the checksums, so the segment reaches TCP. Options
come from a small grammar (MSS, window scale, SACK-permitted, timestamps that
echo the stack's clock, SACK blocks relative to the stack's SND.UNA, NOP, EOL,
raw bytes), so they parse as often as the fuzzer wants. The other actions are
the application's calls and the passing of time: tick, send, recv, shutdown,
close, setsockopt/getsockopt, accept, and an ICMP error about a segment we sent.

Payload bytes are a function of their sequence number (:func:`pattern`), so the
harness can check what ``recv`` returns: the peer's bytes, in order, with nothing
missing or invented (an urgent byte may be left out: it is read with MSG_OOB).
After each action: every packet the stack sent parses with good checksums, none
acknowledges a sequence number the peer never sent (unless the fuzzer gave an
absolute sequence number to that port), the right edge of the window announced
never moves left, and SND.UNA <= SND.NXT <= SND.MAX and cwnd >= 1 on every
connection. A broken invariant raises
:class:`InvariantError`; any exception out of the stack is a crash too. Calls
may raise ``OSError`` (the stdlib's socket errors): that is their contract.
"""

from __future__ import annotations

import random
import socket as _socket
import struct
from dataclasses import dataclass, field

from synack import seq as sq
from synack.config import Sysctl
from synack.stack import SHUT_WR, Stack
from synack.tcp.connection import Connection
from synack.wire.checksum import internet_checksum, pseudo_header_sum
from synack.wire.icmp6 import parse_icmp6
from synack.wire.ipv4 import build_tcp_packet, parse_tcp_packet
from synack.wire.ipv6 import parse_ipv6
from synack.wire.tcp import ACK, FIN, RST, SYN, TcpSegment, parse_tcp

LOCAL, REMOTE = "192.0.2.2", "192.0.2.1"
LOCAL6, REMOTE6 = "2001:db8::2", "2001:db8::1"   # the IPv6 side (issue 14)
LPORT = 80            # the listener (and an IPv6-only one on the same port)
CLOSED_PORT = 81      # nothing listens here: answered with RST
T0 = 1_000_000        # the world is built by this time (µs)


class InvariantError(AssertionError):
    """The stack did something the harness proves wrong (not an exception of its own)."""


# ---------------------------------------------------------------- payload pattern
_PATTERN = random.Random(0x5EED).randbytes(1 << 16)
_PATTERN2 = _PATTERN + _PATTERN


def pattern(seq: int, n: int) -> bytes:
    """The ``n`` bytes the peer sends from sequence number ``seq`` on (period 2**16)."""
    off = seq & 0xFFFF
    if n <= 0x10000:
        return _PATTERN2[off:off + n]
    return (_PATTERN2[off:] + _PATTERN * (n // 0x10000 + 1))[:n]


# ---------------------------------------------------------------- the world
@dataclass(slots=True)
class Target:
    """A remote port the fuzzer's segments come from, and what the peer knows there."""

    name: str
    rport: int
    lport: int = LPORT
    fd: int = -1                  # the stack's socket for it (-1: none, or not accepted yet)
    peer_nxt: int = 0             # the peer's next sequence number (the stack's last ACK)
    stack_max: int = 0            # the highest sequence number + length the stack sent
    peer_high: int | None = None  # the highest sequence number + length the peer sent
    wild: bool = False            # the peer sent an absolute sequence number: no ACK check
    edge: int | None = None       # the right edge of the window the stack announced
    ts_stack: int = 0             # the stack's last TSval (the peer echoes it)
    stream: int | None = None     # next sequence number recv() must return (None: unknown)
    urgent: int = 0               # urgent bytes announced: each may be missing from recv()
    tainted: bool = False         # raw payload bytes were sent: recv() is not checked


@dataclass(slots=True)
class World:
    """The stack, its targets, the peer's clock, counters for the summary."""

    stack: Stack
    targets: list[Target]
    listen_fd: int
    listen6_fd: int = -1           # the IPv6 listener (IPV6_V6ONLY, port LPORT)
    now: int = T0
    peer_ts: int = 1000
    by_port: dict[int, Target] = field(default_factory=dict)
    segments: int = 0             # segments the harness sent
    delivered: int = 0            # bytes recv() returned and the harness checked


PROFILES: tuple[dict[str, int | str], ...] = (
    {},
    {"net.ipv4.tcp_syncookies": 2, "tcp_cubic.hystart_detect": 2},
    {"net.ipv4.tcp_sack": 0, "net.ipv4.tcp_timestamps": 0, "net.ipv4.tcp_window_scaling": 0},
    {"net.ipv4.tcp_rfc1337": 1, "net.ipv4.tcp_dsack": 0, "net.ipv4.tcp_abort_on_overflow": 1,
     "net.ipv4.tcp_congestion_control": "reno", "net.ipv4.tcp_recovery": 0,
     "net.ipv4.tcp_early_retrans": 0},
    {"net.ipv4.tcp_max_syn_backlog": 1, "net.ipv4.tcp_syncookies": 0,
     "net.ipv4.tcp_synack_retries": 1, "net.ipv4.tcp_syn_retries": 1, "net.ipv4.tcp_retries2": 2,
     "net.ipv4.tcp_fin_timeout": 2, "net.ipv4.tcp_keepalive_time": 1,
     "net.ipv4.tcp_keepalive_intvl": 1, "net.ipv4.tcp_keepalive_probes": 1},
    # Issue 11's limits within reach: a host-wide challenge-ACK budget, answers to invalid
    # segments without a per-connection interval, and TCP memory of a few pages.
    {"net.ipv4.tcp_challenge_ack_limit": 3, "net.ipv4.tcp_invalid_ratelimit": 0,
     "net.ipv4.tcp_mem": "2 3 4"},
    # TCP Fast Open with cookies (requests answered; connect() with TCP_FASTOPEN_CONNECT
    # asks, then uses the cookie) and ECN asked for; then Fast Open without cookies (any
    # SYN with data makes a child, the first send after connect() rides in the SYN).
    {"net.ipv4.tcp_fastopen": 0x403, "net.ipv4.tcp_ecn": 1},
    {"net.ipv4.tcp_fastopen": 0x607, "net.ipv4.tcp_ecn": 1},
)

FULL_OPTS: dict[str, object] = {"mss": 1460, "sack_permitted": True, "wscale": 7,
                                "timestamps": (1000, 0)}


def build_raw(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
               window: int, urgent: int, options: bytes, payload: bytes, reserved: int = 0,
               ident: int = 0, tos: int = 0) -> bytes:
    """An IPv4 packet holding one TCP segment, checksums right, options as given."""
    options += bytes(-len(options) % 4)
    hlen = 20 + len(options)
    tcp = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                                (hlen // 4) << 4 | (reserved & 0x0F), flags & 0xFF,
                                window & 0xFFFF, 0, urgent & 0xFFFF))
    tcp += options
    tcp += payload
    csum = internet_checksum(tcp, pseudo_header_sum(src, dst, 6, len(tcp)))
    tcp[16:18] = csum.to_bytes(2, "big")
    total = 20 + len(tcp)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, tos, total, ident & 0xFFFF, 0x4000, 64, 6, 0,
                               _socket.inet_aton(src), _socket.inet_aton(dst)))
    ip[10:12] = internet_checksum(ip).to_bytes(2, "big")
    return bytes(ip) + bytes(tcp)


def _seg_packet(seg: TcpSegment) -> bytes:
    return build_tcp_packet(REMOTE, LOCAL, seg)


class _Setup:
    """Plays the peer while the world is built (hand-made, well-formed segments)."""

    def __init__(self, world: World) -> None:
        self.w = world

    def send(self, t: Target, **fields: object) -> list[TcpSegment]:
        seg = TcpSegment(src_port=t.rport, dst_port=t.lport, window=65535,
                         **fields)  # type: ignore[arg-type]
        w = self.w
        sent(t, seg.seq, seg.seg_len)
        w.stack.receive(_seg_packet(seg), now=w.now)
        return drain(w)


def sent(t: Target, seq: int, seg_len: int) -> None:
    """The peer sent ``seg_len`` sequence numbers from ``seq`` to ``t``: remember the top."""
    end = sq.add(seq, seg_len)
    if t.peer_high is None or sq.gt(end, t.peer_high):
        t.peer_high = end


def drain(w: World) -> list[TcpSegment]:
    """Take what the stack sent; check it parses; update the peer's view of each target."""
    out = []
    for packet in w.stack.transmit(now=w.now):
        if packet[0] >> 4 == 6:
            _check_ipv6(packet)
            continue
        try:
            ip, seg = parse_tcp_packet(packet)
        except Exception as exc:  # noqa: BLE001 - any failure to parse our own packet
            raise InvariantError(f"the stack sent a packet that does not parse: {exc}: "
                                 f"{packet.hex()}") from None
        if ip.src != LOCAL or ip.dst != REMOTE:
            raise InvariantError(f"packet from {ip.src} to {ip.dst}")
        t = w.by_port.get(seg.dst_port)
        if t is not None:
            if seg.flags & ACK and not t.wild and t.peer_high is not None \
                    and sq.gt(seg.ack, t.peer_high):
                raise InvariantError(
                    f"{t.name}: the stack acknowledges {seg.ack}, past everything the peer "
                    f"sent (up to {t.peer_high}): {seg}")
            if seg.flags & ACK and not seg.flags & RST:
                t.peer_nxt = seg.ack
            _check_edge(w, t, seg)
            end = sq.add(seg.seq, seg.seg_len)
            if seg.flags & SYN or sq.gt(end, t.stack_max):
                t.stack_max = end
            if seg.timestamps is not None:
                t.ts_stack = seg.timestamps[0]
        out.append(seg)
    return out


def _check_ipv6(packet: bytes) -> None:
    """An IPv6 packet the stack sent: it must parse, checksums right, from LOCAL6."""
    try:
        hdr, body = parse_ipv6(packet)
        if hdr.proto == 58:
            parse_icmp6(body, hdr.src, hdr.dst)
        else:
            parse_tcp(body, hdr.src, hdr.dst)
    except Exception as exc:  # noqa: BLE001 - any failure to parse our own packet
        raise InvariantError(f"the stack sent an IPv6 packet that does not parse: {exc}: "
                             f"{packet.hex()}") from None
    if hdr.src != LOCAL6 or hdr.dst != REMOTE6:
        raise InvariantError(f"IPv6 packet from {hdr.src} to {hdr.dst}")


def _check_edge(w: World, t: Target, seg: TcpSegment) -> None:
    """RFC 9293 3.8.6.2.2: the right edge of the window announced never moves left.

    With a window scale of ``s`` the field is rounded down, so an edge may read up to
    ``2**s - 1`` below the one announced before. A SYN or a RST starts anew (a new
    connection on the port, or none); TIME_WAIT entries are not checked."""
    if seg.flags & (SYN | RST) or not seg.flags & ACK:
        t.edge = None
        return
    conn = conn_of(w.stack, (LOCAL, t.lport, REMOTE, t.rport))
    if conn is None:
        return
    shift = conn.neg.rcv_shift
    edge = sq.add(seg.ack, seg.window << shift)
    if t.edge is not None and sq.le(sq.add(edge, 1 << shift), t.edge):
        raise InvariantError(f"{t.name}: the window's right edge moved left, from {t.edge} to "
                             f"{edge} (window scale {shift}): {seg}")
    if t.edge is None or sq.gt(edge, t.edge):
        t.edge = edge


def build_world(profile: int = 0) -> World:
    """The stack with a connection in every state; see the module's docstring."""
    cfg = Sysctl(**PROFILES[profile % len(PROFILES)])  # type: ignore[arg-type]
    stack = Stack(LOCAL, cfg=cfg, seed=11, addr6=LOCAL6)
    lfd = stack.socket()
    stack.bind(lfd, ("0.0.0.0", LPORT))
    stack.listen(lfd, 4)
    names = ["LISTEN-a", "LISTEN-b", "LISTEN-c", "SYN_SENT", "SYN_RECEIVED", "ESTABLISHED",
             "ESTABLISHED-noopt", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING",
             "LAST_ACK", "TIME_WAIT", "CLOSED-port",
             # Two more peers for the listener: five half-open at once crowd the SYN
             # queue past half, where old entries get fewer SYN,ACK retries.
             "LISTEN-d", "LISTEN-e"]
    targets = [Target(n, 50000 + i) for i, n in enumerate(names)]
    targets[names.index("CLOSED-port")].lport = CLOSED_PORT
    w = World(stack, targets, lfd, now=0)
    w.by_port = {t.rport: t for t in targets}
    p = _Setup(w)
    by = {t.name: t for t in targets}
    isn = 7000

    def passive(t: Target, opts: dict[str, object]) -> None:
        nonlocal isn
        isn += 100_000
        t.peer_nxt = isn
        p.send(t, seq=isn, flags=SYN, **opts)
        p.send(t, seq=isn + 1, ack=t.stack_max, flags=ACK, **_ts(w, t, opts))
        t.fd, _ = stack.accept(lfd)
        t.stream = isn + 1
        w.now += 1000

    # SYN_SENT: connect() to a port that never answers.
    t = by["SYN_SENT"]
    t.fd = stack.socket()
    stack.bind(t.fd, (LOCAL, 40000 + 3))
    t.lport = 40003
    stack.connect_ex(t.fd, (REMOTE, t.rport), now=w.now)
    drain(w)
    # SYN_RECEIVED: a SYN, no final ACK.
    t = by["SYN_RECEIVED"]
    t.peer_nxt = 3_000_000_000          # an ISN past 2**31: the wrap matters
    p.send(t, seq=t.peer_nxt, flags=SYN, **FULL_OPTS)
    t.stream = t.peer_nxt + 1
    # ESTABLISHED, passive, every option; data in flight both ways, a hole in reassembly.
    t = by["ESTABLISHED"]
    passive(t, FULL_OPTS)
    stack.send(t.fd, b"x" * 5000, now=w.now)
    drain(w)
    p.send(t, seq=t.peer_nxt, ack=t.stack_max - 2000, flags=ACK, payload=pattern(t.peer_nxt, 100),
           **_ts(w, t, FULL_OPTS))
    hole = sq.add(t.peer_nxt, 500)
    p.send(t, seq=hole, ack=t.stack_max - 2000, flags=ACK, payload=pattern(hole, 300),
           **_ts(w, t, FULL_OPTS))
    # ESTABLISHED, active, no options at all (no TS, no SACK, no window scale).
    t = by["ESTABLISHED-noopt"]
    t.fd = stack.socket()
    stack.bind(t.fd, (LOCAL, 40006))
    t.lport = 40006
    stack.setsockopt(t.fd, _socket.IPPROTO_TCP, _socket.TCP_CONGESTION, b"reno", now=w.now)
    stack.connect_ex(t.fd, (REMOTE, t.rport), now=w.now)
    drain(w)
    t.peer_nxt = 900_000
    p.send(t, seq=t.peer_nxt, ack=t.stack_max, flags=SYN | ACK)
    t.stream = 900_001
    # FIN_WAIT_1: shutdown(SHUT_WR), the FIN not acknowledged (it can still receive).
    t = by["FIN_WAIT_1"]
    passive(t, FULL_OPTS)
    stack.send(t.fd, b"y" * 800, now=w.now)
    stack.shutdown(t.fd, SHUT_WR, now=w.now)
    drain(w)
    # FIN_WAIT_2: close(), the FIN acknowledged (an orphan: fin_timeout runs).
    t = by["FIN_WAIT_2"]
    passive(t, {"mss": 1200})
    stack.close(t.fd, now=w.now)
    drain(w)
    p.send(t, seq=t.peer_nxt, ack=t.stack_max, flags=ACK)
    t.fd = -1
    # CLOSE_WAIT: the peer's FIN.
    t = by["CLOSE_WAIT"]
    passive(t, FULL_OPTS)
    p.send(t, seq=t.peer_nxt, ack=t.stack_max, flags=FIN | ACK, payload=pattern(t.peer_nxt, 10),
           **_ts(w, t, FULL_OPTS))
    # CLOSING: our FIN and theirs cross.
    t = by["CLOSING"]
    passive(t, FULL_OPTS)
    stack.shutdown(t.fd, SHUT_WR, now=w.now)
    drain(w)
    fin_seq = sq.add(t.stack_max, -1)
    p.send(t, seq=t.peer_nxt, ack=fin_seq, flags=FIN | ACK, **_ts(w, t, FULL_OPTS))
    # LAST_ACK: their FIN, then our close().
    t = by["LAST_ACK"]
    passive(t, {"mss": 536, "sack_permitted": True})
    p.send(t, seq=t.peer_nxt, ack=t.stack_max, flags=FIN | ACK)
    stack.close(t.fd, now=w.now)
    drain(w)
    t.fd = -1
    # TIME_WAIT: we close first, they ACK and FIN.
    t = by["TIME_WAIT"]
    passive(t, FULL_OPTS)
    stack.close(t.fd, now=w.now)
    drain(w)
    p.send(t, seq=t.peer_nxt, ack=t.stack_max, flags=FIN | ACK, **_ts(w, t, FULL_OPTS))
    t.fd = -1
    for t in targets:
        if t.name.startswith("LISTEN"):
            t.peer_nxt = 20_000 + t.rport * 1000
    # Last, so that the IPv4 targets are built as before: an IPv6 listener on the same
    # port (V6ONLY: the IPv4 one keeps IPv4), which tcp_actions._ipv6 talks to.
    w.listen6_fd = stack.socket(_socket.AF_INET6)
    stack.setsockopt(w.listen6_fd, _socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 1)
    stack.bind(w.listen6_fd, ("::", LPORT))
    stack.listen(w.listen6_fd, 4)
    w.now = T0
    return w


def _ts(w: World, t: Target, opts: dict[str, object]) -> dict[str, object]:
    if "timestamps" not in opts:
        return {}
    w.peer_ts += 1
    return {"timestamps": (w.peer_ts, t.ts_stack)}


def states(w: World) -> dict[str, str]:
    """Each target's state now (for the harness's own test)."""
    stack = w.stack
    out = {}
    for t in w.targets:
        key = (LOCAL, t.lport, REMOTE, t.rport)
        conn = conn_of(stack, key)
        if conn is not None:
            out[t.name] = conn.state.name
        elif key in stack.timewait:
            out[t.name] = "TIME_WAIT"
        elif t.lport == LPORT and t.name.startswith("LISTEN"):
            out[t.name] = "LISTEN"
        else:
            out[t.name] = "CLOSED"
    return out


def conn_of(stack: Stack, key: tuple[str, int, str, int]) -> Connection | None:
    conn = stack.conns.get(key)
    if conn is not None:
        return conn
    for lst in stack.listeners.values():
        child = lst.syn_queue.get((key[2], key[3]))
        if child is not None and key[1] == lst.local[1]:
            return child
    return None


__all__ = ["InvariantError", "Target", "World", "build_raw", "build_world", "conn_of", "drain",
           "pattern", "sent",
           "states"]
