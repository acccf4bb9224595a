"""The fuzz input format for the TCP harness: bytes -> actions on a :mod:`tcp_world`.

See :class:`Actions` for the layout and :mod:`tcp_world` for the world it drives and
the invariants checked after each action.
"""

from __future__ import annotations

import socket as _socket
import struct
from collections.abc import Callable

from tcp_world import (
    LOCAL,
    LOCAL6,
    LPORT,
    REMOTE,
    REMOTE6,
    InvariantError,
    Target,
    World,
    build_raw,
    build_world,
    conn_of,
    drain,
    pattern,
    sent,
)

from synack import seq as sq
from synack.host.calls import MSG_ZEROCOPY
from synack.sockopts import SO_ZEROCOPY, TCP_INQ, TCP_NOTSENT_LOWAT, TCP_USER_TIMEOUT
from synack.stack import SHUT_RD, SHUT_RDWR, SHUT_WR
from synack.tcp.info import ss_info
from synack.tcp.tcpinfo import TcpInfo, ss_line
from synack.wire.icmp import IcmpMessage, build_icmp_packet
from synack.wire.icmp6 import (
    NEIGHBOR_SOLICIT,
    ROUTER_ADVERT,
    Icmp6Message,
    NdMessage,
    build_icmp6_packet,
    encode_icmp6,
    solicited_node,
)
from synack.wire.ipv6 import IPv6Header, build_tcp6_packet, encode_ipv6
from synack.wire.tcp import ACK, FIN, PSH, SYN, URG, TcpSegment, encode_tcp

MAX_ACTIONS = 48
TCP_FASTOPEN_CONNECT = 30      # Linux's number; the socket module may lack it
MAX_PAYLOAD = 3000


# ---------------------------------------------------------------- the input format
class Actions:
    """Reads a fuzz input. Past its end every read gives zeros, so any input is valid.

    Layout: one byte of profile (sysctl set, :data:`PROFILES`), then at most
    :data:`MAX_ACTIONS` actions, each ``op target ...`` (target modulo the number of
    targets); op modulo 16 chooses:

    * 0-6 a segment: flags, control (bit 0: seq absolute, 1: ack absolute, 2: raw
      payload, 3: IP header marked CE; the high nibble goes to the reserved bits), seq and ack as signed
      16-bit offsets from what the peer has seen (32-bit numbers when absolute),
      window, urgent pointer, an option-grammar length and its bytes
      (:func:`_options`), a payload length (and the raw payload's bytes);
    * 7 tick: advance the clock by ``TICKS_US[b & 15]`` and run what fell due;
    * 8 send (size and MSG_OOB from one byte), 9 recv (0xFF: recv(MSG_OOB)),
      10 shutdown, 11 close, 12 a socket option set or read (:func:`_sockopt`);
    * 13 accept, ``ss``, or connect() over the target's 4-tuple (:func:`_host`);
    * 14 an ICMP error about a segment we sent (:func:`_icmp`); with bit 6 of its
      kind byte also an IPv6 packet (:func:`_ipv6`, the kind's bits 3-5 choose which);
    * 15 a segment from a peer that behaves (:func:`_clean`).
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
SOCKOPT_CHOICES = 21
OP_SEGMENT, OP_TICK, OP_SEND, OP_RECV, OP_SHUTDOWN, OP_CLOSE, OP_SOCKOPT, OP_ACCEPT, \
    OP_ICMP, OP_CLEAN = 0, 7, 8, 9, 10, 11, 12, 13, 14, 15
CTL_SEQ_ABS, CTL_ACK_ABS, CTL_RAW_PAYLOAD, CTL_CE = 1, 2, 4, 8
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
            stack.tick(now=w.now)     # a host that slept through its deadlines
            drain(w)
            guard += 1
            if guard > 10_000:
                raise InvariantError("tick() keeps a deadline in the past")
            deadline = stack.next_deadline()
    elif op == OP_SEND:
        a = r.u8()
        n = (a & 0x3F) * (4096 if a & 0x40 else 64)
        flags = _socket.MSG_OOB if a & 0x80 else 0
        if a & 0x3F == 0x3E:                 # size 62 units: a MSG_EOR record's end
            flags |= _socket.MSG_EOR
        elif a & 0x3F == 0x3D:               # size 61 units: MSG_MORE
            flags |= 0x8000
        elif a & 0x3F == 0x3C:               # size 60 units: MSG_ZEROCOPY
            flags |= MSG_ZEROCOPY
        _call(w, t, lambda fd: stack.send(fd, b"z" * n, now=w.now, flags=flags))
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
        _host(w, t, r.u8())
    elif op == OP_ICMP:
        _icmp(w, t, r.u8(), r.u16(), r.s16())
    else:
        _clean(w, t, r.u8(), r.u16())
    drain(w)


def _host(w: World, t: Target, what: int) -> None:
    """0: accept(); 1: list the sockets as ``ss -tie`` does; 2: connect() a new socket
    from the target's 4-tuple (a TIME_WAIT one may be taken over: tcp_tw_reuse)."""
    stack = w.stack
    what %= 3
    if what == 0:
        try:
            fd, (_addr, port) = stack.accept(w.listen_fd)
        except OSError:
            return
        t2 = w.by_port.get(port)
        conn = stack.connection(fd)
        if t2 is not None and t2.fd < 0:
            t2.fd = fd
            if conn is not None and conn.rcv is not None and not t2.tainted:
                t2.stream = sq.add(conn.rcv.irs, 1)
        else:
            stack.close(fd, now=w.now)
    elif what == 1:
        for row in stack.connections():
            str(row.state)
        for conn in list(stack.conns.values()):
            ss_info(conn, w.now)
    elif t.fd < 0:
        fd = stack.socket()
        try:
            stack.setsockopt(fd, _socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1, now=w.now)
            if stack.cfg.int("net.ipv4.tcp_fastopen") & 0x2:
                # Fast Open profiles: a cookie request, or (with a cookie, or 0x4) the
                # SYN waits for the first send and carries it.
                stack.setsockopt(fd, _socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1, now=w.now)
            stack.bind(fd, (LOCAL, t.lport))
            stack.connect_ex(fd, (REMOTE, t.rport), now=w.now)
        except OSError:
            stack.close(fd, now=w.now)
            return
        t.fd = fd
        t.stream = None           # the new connection's stream is not the old one's
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
    if ctl & CTL_SEQ_ABS:
        t.wild = True
    sent(t, seq, n + (1 if flags & SYN else 0) + (1 if flags & FIN else 0))
    w.stack.receive(build_raw(REMOTE, LOCAL, t.rport, t.lport, seq, ack, flags, window, urgent,
                               options, payload, reserved=ctl >> 4,
                               tos=3 if ctl & CTL_CE else 0), now=w.now)


def _options(w: World, t: Target, grammar: bytes) -> bytes:
    """Options from a byte grammar, values relative to what the peer has seen."""
    out = bytearray()
    i = 0
    conn = conn_of(w.stack, (LOCAL, t.lport, REMOTE, t.rport))
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
    conn = conn_of(stack, (LOCAL, t.lport, REMOTE, t.rport))
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
    sent(t, t.peer_nxt, n)
    stack.receive(build_raw(REMOTE, LOCAL, t.rport, t.lport, t.peer_nxt, ack,
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
        # Issue 10's options, from index 12 (SOCKOPT_CHOICES in all).
        (tcp, TCP_USER_TIMEOUT, value * 16), (tcp, TCP_NOTSENT_LOWAT, value * 64),
        (tcp, _socket.TCP_QUICKACK, value & 3), (tcp, _socket.TCP_WINDOW_CLAMP, value * 16),
        (tcp, TCP_INQ, value & 1), (sol, SO_ZEROCOPY, value & 1),
        (sol, _socket.SO_RCVLOWAT, value), (_socket.IPPROTO_IP, _socket.IP_TOS, value & 0xFF),
        (tcp, _socket.TCP_DEFER_ACCEPT, value % 8),
    ]
    reads = [(tcp, _socket.TCP_INFO), (sol, _socket.SO_ERROR), (tcp, _socket.TCP_MAXSEG),
             (sol, _socket.SO_RCVBUF), (tcp, _socket.TCP_WINDOW_CLAMP),
             (tcp, _socket.TCP_QUICKACK), (tcp, _socket.TCP_DEFER_ACCEPT)]
    try:
        if which & 0x80 and which & 0x10 and t.fd >= 0:
            stack.inq(fd)
            try:                  # recvmsg(MSG_ERRQUEUE): a zerocopy completion, if any
                stack.recv_errqueue(fd)
            except BlockingIOError:
                pass
        elif which & 0x80:
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
    conn = conn_of(w.stack, (LOCAL, t.lport, REMOTE, t.rport))
    una = conn.snd.snd_una if conn is not None else t.stack_max
    quoted = build_raw(LOCAL, REMOTE, t.lport, t.rport, sq.add(una, delta), 0, ACK, 0, 0, b"",
                        b"")[:28]
    msg = IcmpMessage(type_, code, 0, 0, mtu if type_ == 3 and code == 4 else 0, quoted)
    w.stack.receive(build_icmp_packet("203.0.113.1" if kind & 0x80 else REMOTE, LOCAL, msg),
                    now=w.now)
    if kind & 0x40:
        _ipv6(w, t, (kind >> 3) & 7, mtu, delta)


# IPv6 extension chains for _ipv6: hop-by-hop, destination options, routing, an atomic
# fragment (offset 0, M clear: not a fragment at all, RFC 6946).
_CHAINS: tuple[tuple[tuple[int, bytes], ...], ...] = (
    (), ((0, bytes(6)),), ((0, bytes(6)), (60, bytes(14)), (43, bytes(6))),
    ((44, bytes(6)),))


def _ipv6(w: World, t: Target, variant: int, a: int, delta: int) -> None:
    """An IPv6 packet for the world's IPv6 side (issue 14), from the values already read
    (so the bytes after the action mean what they did): a handshake with the IPv6
    listener and data on the connection it makes, extension chains, a fragment (dropped
    and counted), ping, ICMPv6 errors, Neighbor Discovery and MLD noise, and malformed
    headers. ``t``'s remote port is the IPv6 peer's port."""
    stack = w.stack
    lst = stack.listeners[("::", LPORT)]
    key = (LOCAL6, LPORT, REMOTE6, t.rport)
    conn = stack.conns.get(key) or lst.syn_queue.get((REMOTE6, t.rport))
    seq = 50_000 + t.rport * 1000
    ack = 0
    if conn is not None and conn.rcv is not None:
        seq = sq.add(conn.rcv.rcv_nxt, delta if a & 0x100 else 0)
        ack = sq.add(conn.snd.snd_nxt, delta if a & 0x200 else 0)
    packet: bytes
    if variant <= 3:
        flags = (SYN if conn is None else ACK | (a & (FIN | PSH))) if not a & 0x400 else a & 0xFF
        payload = pattern(seq, a % 1500) if conn is not None and variant & 1 else b""
        seg = TcpSegment(t.rport, LPORT if not a & 0x800 else t.lport, seq, ack, flags,
                         a, mss=a if flags & SYN else None, payload=payload)
        chain = _CHAINS[variant]
        packet = (build_tcp6_packet(REMOTE6, LOCAL6, seg) if not chain else
                  encode_ipv6(IPv6Header(REMOTE6, LOCAL6, extensions=chain),
                              encode_tcp(seg, REMOTE6, LOCAL6)))
        if a & 0x1000:   # a first fragment instead: dropped and counted
            packet = encode_ipv6(IPv6Header(REMOTE6, LOCAL6, extensions=(
                (44, struct.pack("!HI", 1, a)),)), encode_tcp(seg, REMOTE6, LOCAL6))
        if a & 0x2000:   # the application accepts and closes: FIN_WAIT, then TIME_WAIT
            stack.receive(packet, now=w.now)
            got = stack.accept_some(w.listen6_fd)
            if got is not None:
                stack.close(got[0], now=w.now)
            return
    elif variant == 4:
        packet = build_icmp6_packet(REMOTE6, LOCAL6, Icmp6Message(128, 0, a, delta & 0xFFFF,
                                                                  payload=bytes(a % 64)))
    elif variant == 5:
        quoted = build_tcp6_packet(LOCAL6, REMOTE6, TcpSegment(
            LPORT, t.rport, ack if conn is not None else delta & 0xFFFFFFFF, seq, ACK, 0))
        type_, code = ((2, 0), (1, a & 7), (3, a & 1), (4, a & 3))[a >> 14]
        packet = build_icmp6_packet(REMOTE6, LOCAL6, Icmp6Message(
            type_, code, 0, 0, mtu=a if type_ == 2 else 0, pointer=delta & 0xFF,
            payload=quoted))
    elif variant == 6:
        nd: NdMessage | Icmp6Message = (
            NdMessage(NEIGHBOR_SOLICIT, LOCAL6, source_lladdr=bytes(6)) if a & 1 else
            NdMessage(ROUTER_ADVERT, "", router_lifetime=a) if a & 2 else
            Icmp6Message(143, 0))   # an MLDv2 report: encoded as an unknown type
        dst = solicited_node(LOCAL6) if a & 1 else "ff02::1"
        packet = encode_ipv6(IPv6Header(REMOTE6, dst, proto=58, hop_limit=255),
                             encode_icmp6(nd, REMOTE6, dst))
    else:
        good = bytearray(build_tcp6_packet(REMOTE6, LOCAL6, TcpSegment(t.rport, LPORT, seq, 0,
                                                                       SYN, 100)))
        at = 4 + a % 40                   # a header byte overwritten
        good[at] = delta & 0xFF
        packet = bytes(good[:len(good) - (a >> 8) % 30])
    stack.receive(packet, now=w.now)


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
        if conn.rec.cc.cwnd < 1:
            raise InvariantError(f"{conn.remote}: cwnd {conn.rec.cc.cwnd} in {conn.state.name}")


__all__ = ["Actions", "check", "run_input", "step"]
