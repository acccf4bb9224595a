"""A synack host with a connection in every TCP state, and a byte format that drives it.

Theory of operation
-------------------
:func:`build_world` makes one :class:`~synack.stack.Stack` (192.0.2.2) and plays
its peer (192.0.2.1) through the public API only -- ``connect``, ``listen``,
``accept``, ``send``, ``shutdown``, ``close`` and hand-made segments -- until
it holds a listener and a connection in each of SYN_SENT, SYN_RECEIVED,
ESTABLISHED (one passive with every option, one active with none), FIN_WAIT_1,
FIN_WAIT_2, CLOSE_WAIT, CLOSING, LAST_ACK and TIME_WAIT. Each is a *target*: a
remote port the fuzzer's segments come from.

:func:`run_input` reads a fuzz input as a list of actions (the format is in
:class:`Actions`). Most actions are segments from the peer: the fuzzer picks
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
After each action: every packet the stack sent parses with good checksums, and
SND.UNA <= SND.NXT <= SND.MAX on every connection. A broken invariant raises
:class:`InvariantError`; any exception out of the stack is a crash too. Calls
may raise ``OSError`` (the stdlib's socket errors): that is their contract.
"""

from __future__ import annotations

import random
import socket as _socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from synack import seq as sq
from synack.config import Sysctl
from synack.stack import SHUT_RD, SHUT_RDWR, SHUT_WR, Stack
from synack.tcp.connection import Connection
from synack.tcp.info import ss_info
from synack.tcp.tcpinfo import TcpInfo, ss_line
from synack.wire.checksum import internet_checksum, pseudo_header_sum
from synack.wire.icmp import IcmpMessage, build_icmp_packet
from synack.wire.ipv4 import build_tcp_packet, parse_tcp_packet
from synack.wire.tcp import ACK, FIN, PSH, RST, SYN, URG, TcpSegment

LOCAL, REMOTE = "192.0.2.2", "192.0.2.1"
LPORT = 80            # the listener
CLOSED_PORT = 81      # nothing listens here: answered with RST
T0 = 1_000_000        # the world is built by this time (µs)
MAX_ACTIONS = 48
MAX_PAYLOAD = 3000


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
    now: int = T0
    peer_ts: int = 1000
    by_port: dict[int, Target] = field(default_factory=dict)
    segments: int = 0             # segments the harness sent
    delivered: int = 0            # bytes recv() returned and the harness checked


PROFILES: tuple[dict[str, int | str], ...] = (
    {},
    {"net.ipv4.tcp_syncookies": 2},
    {"net.ipv4.tcp_sack": 0, "net.ipv4.tcp_timestamps": 0, "net.ipv4.tcp_window_scaling": 0},
    {"net.ipv4.tcp_rfc1337": 1, "net.ipv4.tcp_dsack": 0, "net.ipv4.tcp_abort_on_overflow": 1,
     "net.ipv4.tcp_congestion_control": "reno"},
    {"net.ipv4.tcp_max_syn_backlog": 1, "net.ipv4.tcp_syncookies": 0,
     "net.ipv4.tcp_synack_retries": 1, "net.ipv4.tcp_syn_retries": 1, "net.ipv4.tcp_retries2": 2,
     "net.ipv4.tcp_fin_timeout": 2, "net.ipv4.tcp_keepalive_time": 1,
     "net.ipv4.tcp_keepalive_intvl": 1, "net.ipv4.tcp_keepalive_probes": 1},
)

FULL_OPTS: dict[str, object] = {"mss": 1460, "sack_permitted": True, "wscale": 7,
                                "timestamps": (1000, 0)}


def _build_raw(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
               window: int, urgent: int, options: bytes, payload: bytes, reserved: int = 0,
               ident: int = 0) -> bytes:
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
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident & 0xFFFF, 0x4000, 64, 6, 0,
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
        w.stack.receive(_seg_packet(seg), now=w.now)
        return drain(w)


def drain(w: World) -> list[TcpSegment]:
    """Take what the stack sent; check it parses; update the peer's view of each target."""
    out = []
    for packet in w.stack.transmit(now=w.now):
        try:
            ip, seg = parse_tcp_packet(packet)
        except Exception as exc:  # noqa: BLE001 - any failure to parse our own packet
            raise InvariantError(f"the stack sent a packet that does not parse: {exc}: "
                                 f"{packet.hex()}") from None
        if ip.src != LOCAL or ip.dst != REMOTE:
            raise InvariantError(f"packet from {ip.src} to {ip.dst}")
        t = w.by_port.get(seg.dst_port)
        if t is not None:
            if seg.flags & ACK and not seg.flags & RST:
                t.peer_nxt = seg.ack
            end = sq.add(seg.seq, seg.seg_len)
            if seg.flags & SYN or sq.gt(end, t.stack_max):
                t.stack_max = end
            if seg.timestamps is not None:
                t.ts_stack = seg.timestamps[0]
        out.append(seg)
    return out


def build_world(profile: int = 0) -> World:
    """The stack with a connection in every state; see the module's docstring."""
    cfg = Sysctl(**PROFILES[profile % len(PROFILES)])  # type: ignore[arg-type]
    stack = Stack(LOCAL, cfg=cfg, seed=11)
    lfd = stack.socket()
    stack.bind(lfd, ("0.0.0.0", LPORT))
    stack.listen(lfd, 4)
    names = ["LISTEN-a", "LISTEN-b", "LISTEN-c", "SYN_SENT", "SYN_RECEIVED", "ESTABLISHED",
             "ESTABLISHED-noopt", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING",
             "LAST_ACK", "TIME_WAIT", "CLOSED-port"]
    targets = [Target(n, 50000 + i) for i, n in enumerate(names)]
    targets[-1].lport = CLOSED_PORT
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
        conn = _conn(stack, key)
        if conn is not None:
            out[t.name] = conn.state.name
        elif key in stack.timewait:
            out[t.name] = "TIME_WAIT"
        elif t.lport == LPORT and t.name.startswith("LISTEN"):
            out[t.name] = "LISTEN"
        else:
            out[t.name] = "CLOSED"
    return out


def _conn(stack: Stack, key: tuple[str, int, str, int]) -> Connection | None:
    conn = stack.conns.get(key)
    if conn is not None:
        return conn
    for lst in stack.listeners.values():
        child = lst.syn_queue.get((key[2], key[3]))
        if child is not None and key[1] == lst.local[1]:
            return child
    return None


# ---------------------------------------------------------------- the input format
class Actions:
    """Reads a fuzz input. Past its end every read gives zeros, so any input is valid.

    Layout: one byte of profile (sysctl set, :data:`PROFILES`), then actions, each
    ``op target ...``; op modulo 16 chooses (0-6 segment, 7 tick, 8 send, 9 recv,
    10 shutdown, 11 close, 12 socket option, 13 accept, 14 ICMP error, 15 a clean
    segment that acknowledges everything the stack sent, with in-order data).
    A segment: flags, control, seq and ack as signed 16-bit offsets (or 32-bit
    absolute numbers when the control byte says), window, urgent pointer, an
    option-grammar length and its bytes, a payload length (and, when the control
    byte says, the payload's own bytes).
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def more(self) -> bool:
        return self.pos < len(self.data)

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk + bytes(n - len(chunk)) if len(chunk) < n else chunk

    def u8(self) -> int:
        b = self.data[self.pos] if self.pos < len(self.data) else 0
        self.pos += 1
        return b

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def s16(self) -> int:
        return int.from_bytes(self.take(2), "big", signed=True)

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")


# Encoding helpers for the corpus generator (the inverse of the reader above).
OP_SEGMENT, OP_TICK, OP_SEND, OP_RECV, OP_SHUTDOWN, OP_CLOSE, OP_SOCKOPT, OP_ACCEPT, \
    OP_ICMP, OP_CLEAN = 0, 7, 8, 9, 10, 11, 12, 13, 14, 15
CTL_SEQ_ABS, CTL_ACK_ABS, CTL_RAW_PAYLOAD = 1, 2, 4
TICKS_US = (1_000, 40_000, 200_000, 1_000_000, 3_000_000, 10_000_000, 60_000_000,
            130_000_000, 7_200_000_000, 0, 500, 5_000, 400_000, 2_000_000, 30_000_000,
            75_000_000)
ICMP_KINDS = ((3, 4), (3, 1), (3, 3), (11, 0), (3, 0), (3, 2), (12, 0), (3, 13))


def run_input(data: bytes, on_built: Callable[[World], None] | None = None) -> World:
    """Build the world for ``data``'s profile and apply its actions."""
    r = Actions(data)
    w = build_world(r.u8())
    if on_built is not None:
        on_built(w)
    for _ in range(MAX_ACTIONS):
        if not r.more():
            break
        step(w, r)
        check(w)
    return w


def step(w: World, r: Actions) -> None:
    """Apply one action."""
    op = r.u8() & 0x0F
    t = w.targets[r.u8() % len(w.targets)]
    stack = w.stack
    if op <= 6:
        _segment(w, t, r)
    elif op == OP_TICK:
        w.now += TICKS_US[r.u8() & 0x0F]
        deadline = stack.next_deadline()
        guard = 0
        while deadline is not None and deadline <= w.now:
            stack.tick(now=max(deadline, w.now - 0))
            drain(w)
            guard += 1
            if guard > 10_000:
                raise InvariantError("tick() keeps a deadline in the past")
            deadline = stack.next_deadline()
    elif op == OP_SEND:
        n = r.u8() * 64
        oob = bool(n & 64)
        _call(w, t, lambda fd: stack.send(fd, b"z" * n, now=w.now,
                                          **({"flags": _socket.MSG_OOB} if oob else {})))
    elif op == OP_RECV:
        arg = r.u8()
        if t.fd >= 0 and arg == 0xFF:
            try:              # recv(MSG_OOB): the urgent byte, out of the stream
                stack.recv(t.fd, 1, now=w.now, flags=_socket.MSG_OOB)
            except OSError:
                pass
        elif t.fd >= 0:
            try:
                data = stack.recv(t.fd, (arg + 1) * 32, now=w.now)
            except OSError:
                data = b""
            _check_stream(w, t, data)
    elif op == OP_SHUTDOWN:
        how = (SHUT_RD, SHUT_WR, SHUT_RDWR)[r.u8() % 3]
        _call(w, t, lambda fd: stack.shutdown(fd, how, now=w.now))
    elif op == OP_CLOSE:
        _call(w, t, lambda fd: stack.close(fd, now=w.now))
        if t.fd >= 0:
            t.fd = -1
    elif op == OP_SOCKOPT:
        _sockopt(w, t, r.u8(), r.u16())
    elif op == OP_ACCEPT:
        try:
            fd, (_addr, port) = stack.accept(w.listen_fd)
        except OSError:
            pass
        else:
            t2 = w.by_port.get(port)
            conn = stack.connection(fd)
            if t2 is not None and t2.fd < 0:
                t2.fd = fd
                if conn is not None and conn.rcv is not None and not t2.tainted:
                    t2.stream = sq.add(conn.rcv.irs, 1)
            else:
                stack.close(fd, now=w.now)
    elif op == OP_ICMP:
        _icmp(w, t, r.u8(), r.u16(), r.s16())
    else:
        _clean(w, t, r.u8(), r.u16())
    drain(w)


def _call(w: World, t: Target, fn: object) -> None:
    if t.fd < 0:
        return
    try:
        fn(t.fd)  # type: ignore[operator]
    except OSError:
        pass                      # the calls' contract: the stdlib's socket errors
    drain(w)


def _segment(w: World, t: Target, r: Actions) -> None:
    flags = r.u8()
    ctl = r.u8()
    seq = r.u32() if ctl & CTL_SEQ_ABS else sq.add(t.peer_nxt, r.s16())
    ack = r.u32() if ctl & CTL_ACK_ABS else sq.add(t.stack_max, r.s16())
    window = r.u16()
    urgent = r.u16()
    options = _options(w, t, r.take(r.u8() & 0x3F))
    n = r.u16() % (MAX_PAYLOAD + 1)
    if ctl & CTL_RAW_PAYLOAD:
        payload = r.take(n)
        t.tainted = True
    else:
        payload = pattern(sq.add(seq, 1 if flags & SYN else 0), n)
    if flags & URG:
        t.urgent += 1
    w.segments += 1
    w.stack.receive(_build_raw(REMOTE, LOCAL, t.rport, t.lport, seq, ack, flags, window, urgent,
                               options, payload, reserved=ctl >> 4), now=w.now)


def _options(w: World, t: Target, grammar: bytes) -> bytes:
    """Options from a byte grammar, values relative to what the peer has seen."""
    out = bytearray()
    i = 0
    conn = _conn(w.stack, (LOCAL, t.lport, REMOTE, t.rport))
    una = conn.snd.snd_una if conn is not None else t.stack_max
    while i < len(grammar) and len(out) < 40:
        sel = grammar[i] & 7
        arg = grammar[i + 1:i + 5].ljust(4, b"\0")
        i += 1
        if sel == 0:
            out += b"\x02\x04" + arg[:2]
            i += 2
        elif sel == 1:
            out += b"\x03\x03" + arg[:1]
            i += 1
        elif sel == 2:
            out += b"\x04\x02"
        elif sel == 3:
            w.peer_ts = (w.peer_ts + 1 + (arg[0] >> 4)) & 0xFFFFFFFF
            tsval = (w.peer_ts - (arg[0] & 0x0F) * 0x1000_0000) & 0xFFFFFFFF
            tsecr = (t.ts_stack - (arg[1] if arg[1] < 128 else 0)) & 0xFFFFFFFF
            out += struct.pack("!BBII", 8, 10, tsval, tsecr)
            i += 2
        elif sel == 4:
            n = (arg[0] & 3) + 1
            blocks = grammar[i + 1:i + 1 + 4 * n].ljust(4 * n, b"\0")
            out += bytes((5, 2 + 8 * n))
            for k in range(n):
                start_off, length = struct.unpack_from("!hH", blocks, 4 * k)
                start = sq.add(una, start_off)
                out += struct.pack("!II", start, sq.add(start, length))
            i += 1 + 4 * n
        elif sel == 5:
            out += b"\x01"
        elif sel == 6:
            out += b"\x00"
        else:
            n = arg[0] & 0x0F
            out += grammar[i + 1:i + 1 + n]
            i += 1 + n
    return bytes(out[:40])


def _clean(w: World, t: Target, mode: int, n: int) -> None:
    """A well-formed segment from a peer that behaves, in one of four ways (``mode & 3``):
    0 acknowledges all the stack sent and carries ``n`` bytes of in-order data; 1 is a
    duplicate ACK whose SACK block says the first ``k + 1`` segments in flight were lost
    (``k = mode >> 2 & 3``); 2 acknowledges ``k + 1`` segments and SACKs the rest; 3 is a
    window update to ``(mode >> 2) * 1024`` bytes (0: a zero window)."""
    stack = w.stack
    conn = _conn(stack, (LOCAL, t.lport, REMOTE, t.rport))
    kind, k = mode & 3, (mode >> 2) & 3
    n = n % 1500 if kind == 0 else 0
    ack, window, sack = t.stack_max, 65535, b""
    if conn is not None and kind:
        una, mss = conn.snd.snd_una, conn.mss
        lost_end = sq.add(una, (k + 1) * mss)
        if kind == 2:
            ack = lost_end if sq.lt(lost_end, t.stack_max) else t.stack_max
            lost_end = sq.add(ack, mss)
        else:
            ack = una
        if kind == 3:
            window = (mode >> 2) * 1024 >> conn.neg.snd_wscale
        elif conn.neg.sack_ok and sq.lt(lost_end, t.stack_max):
            sack = struct.pack("!BBBBII", 1, 1, 5, 10, lost_end, t.stack_max)
    opts = b""
    if conn is not None and conn.neg.ts_ok:
        w.peer_ts += 1
        opts = struct.pack("!BBBBII", 1, 1, 8, 10, w.peer_ts, t.ts_stack)
    w.segments += 1
    stack.receive(_build_raw(REMOTE, LOCAL, t.rport, t.lport, t.peer_nxt, ack,
                             ACK | (PSH if n else 0), window, 0, opts + sack,
                             pattern(t.peer_nxt, n)), now=w.now)


def _sockopt(w: World, t: Target, which: int, value: int) -> None:
    stack = w.stack
    fd = t.fd if t.fd >= 0 else w.listen_fd
    tcp, sol = _socket.IPPROTO_TCP, _socket.SOL_SOCKET
    choices: list[tuple[int, int, int | bytes]] = [
        (tcp, _socket.TCP_NODELAY, value & 1), (tcp, _socket.TCP_CORK, value & 1),
        (sol, _socket.SO_KEEPALIVE, value & 1), (tcp, _socket.TCP_KEEPIDLE, value % 40 + 1),
        (tcp, _socket.TCP_KEEPINTVL, value % 40 + 1), (tcp, _socket.TCP_KEEPCNT, value % 9 + 1),
        (sol, _socket.SO_LINGER, struct.pack("ii", value & 1, value >> 8)),
        (tcp, _socket.TCP_CONGESTION, (b"reno", b"cubic", b"reno\0", b"bogus")[value & 3]),
        (sol, _socket.SO_RCVBUF, value * 4), (sol, _socket.SO_SNDBUF, value * 4),
        (sol, _socket.SO_OOBINLINE, value & 1), (tcp, _socket.TCP_MAXSEG, value),
    ]
    reads = [(tcp, _socket.TCP_INFO), (sol, _socket.SO_ERROR), (tcp, _socket.TCP_MAXSEG),
             (sol, _socket.SO_RCVBUF)]
    try:
        if which & 0x80:
            level, opt = reads[which % len(reads)]
            got = stack.getsockopt(fd, level, opt)
            if opt == _socket.TCP_INFO and isinstance(got, bytes):
                # What `synack ss -ti` prints from it.
                ss_line(TcpInfo.unpack(got), "cubic", numeric=bool(which & 0x40),
                        show_options=bool(which & 0x20))
                conn = stack.connection(fd) if t.fd >= 0 else None
                if conn is not None:
                    ss_info(conn, w.now)
        else:
            level, opt, v = choices[which % len(choices)]
            if opt == _socket.SO_OOBINLINE and t.fd >= 0:
                t.tainted = True      # the urgent byte comes back inline from here on
            stack.setsockopt(fd, level, opt, v, now=w.now)
    except OSError:
        pass
    drain(w)


def _icmp(w: World, t: Target, kind: int, mtu: int, delta: int) -> None:
    """An ICMP error about a segment the stack sent to ``t`` (seq near SND.UNA)."""
    type_, code = ICMP_KINDS[kind % len(ICMP_KINDS)]
    conn = _conn(w.stack, (LOCAL, t.lport, REMOTE, t.rport))
    una = conn.snd.snd_una if conn is not None else t.stack_max
    quoted = _build_raw(LOCAL, REMOTE, t.lport, t.rport, sq.add(una, delta), 0, ACK, 0, 0, b"",
                        b"")[:28]
    msg = IcmpMessage(type_, code, 0, 0, mtu if type_ == 3 and code == 4 else 0, quoted)
    w.stack.receive(build_icmp_packet("203.0.113.1" if kind & 0x80 else REMOTE, LOCAL, msg),
                    now=w.now)


def _check_stream(w: World, t: Target, data: bytes) -> None:
    """What recv() returned must be the peer's next bytes (an urgent byte may be missing)."""
    if not data or t.tainted or t.stream is None:
        return
    expect = pattern(t.stream, len(data) + t.urgent)
    if expect.startswith(data):
        t.stream = sq.add(t.stream, len(data))
    else:
        # Each urgent byte announced may have been taken out of the stream (read with
        # MSG_OOB instead): accept data equal to the pattern with at most t.urgent bytes
        # skipped.
        i = j = skipped = 0
        while i < len(data):
            if j < len(expect) and data[i] == expect[j]:
                i += 1
                j += 1
            elif skipped < t.urgent and j < len(expect):
                j += 1
                skipped += 1
            else:
                raise InvariantError(
                    f"{t.name}: recv() returned bytes the peer never sent at that place: "
                    f"stream at {t.stream}, got {data[:32].hex()}..., "
                    f"expected {expect[:32].hex()}...")
        t.urgent -= skipped
        t.stream = sq.add(t.stream, j)
    w.delivered += len(data)


def check(w: World) -> None:
    """Invariants over every connection after an action."""
    for conn in w.stack.conns.values():
        snd = conn.snd
        if not (sq.le(snd.snd_una, snd.snd_nxt) and sq.le(snd.snd_nxt, snd.snd_max)):
            raise InvariantError(
                f"{conn.remote}: SND.UNA {snd.snd_una} <= SND.NXT {snd.snd_nxt} <= SND.MAX "
                f"{snd.snd_max} does not hold in {conn.state.name}")


__all__ = ["InvariantError", "World", "build_world", "check", "run_input", "states"]
