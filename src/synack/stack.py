"""A host: IP packets in and out, connections by 4-tuple, BSD socket calls.

Theory of operation
-------------------
A :class:`Stack` owns one IPv4 address, a sysctl table, and every connection,
listener and TIME_WAIT entry of that host. Drivers (the simulator, a TAP
device loop, the blocking and asyncio APIs, a test) move packets with
:meth:`receive` / :meth:`transmit` and call :meth:`tick` at
:meth:`next_deadline`. Applications use file-descriptor calls shaped like
non-blocking BSD sockets; they raise the exceptions the stdlib's ``socket``
module raises (``BlockingIOError``, ``ConnectionRefusedError``, ...).

Demultiplexing follows RFC 9293 3.10.7: an exact 4-tuple match (a connection,
or a compact TIME_WAIT entry), else a listener on the port, else the segment is
answered with RST (3.10.7.1). A malformed packet is dropped and counted in
:attr:`stats`; nothing a peer sends can raise out of :meth:`receive`.
"""

from __future__ import annotations

import errno
import random
import socket as _socket
from collections import Counter, deque
from dataclasses import dataclass, field, replace

from synack import seq as sq
from synack.config import Sysctl
from synack.host.ports import PortTable
from synack.host.timerq import TimerQueue
from synack.icmp_host import EchoReply, handle_icmp, send_echo
from synack.sockopts import get_option, set_option
from synack.sockopts import oserror as _oserror
from synack.tcp import syncookies
from synack.tcp.connection import TIME_WAIT_US, Connection, SockOpts, StateChange
from synack.tcp.isn import IsnSource, Rfc6528
from synack.tcp.listener import COOKIE, Listener
from synack.tcp.state import CAN_SEND, State
from synack.tcp.timewait import KILL, NEW_SYN, TimeWait
from synack.wire.errors import ParseError
from synack.wire.gso import segment
from synack.wire.ipv4 import (
    PROTO_ICMP,
    PROTO_TCP,
    build_tcp_packet,
    parse_ipv4,
    parse_ipv4_route,
)
from synack.wire.tcp import ACK, FIN, RST, SYN, TcpSegment, parse_tcp

Addr = tuple[str, int]
Key = tuple[str, int, str, int]  # local ip, local port, remote ip, remote port

SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2
TW_REUSE_DELAY_US = 1_000_000  # Linux net.ipv4.tcp_tw_reuse_delay default, 1000 ms
# A plain int: `flags & socket.MSG_OOB` would go through the IntFlag's Python-level
# __rand__ on every send() and recv().
_MSG_OOB = int(_socket.MSG_OOB)
_CAN_SEND = tuple(CAN_SEND)  # `in` a tuple: no Enum.__hash__ (Python code) per send()
_MF_OFFSET = 0x3FFF  # IPv4 "more fragments" bit and fragment offset
# Super-segments without device TSO: Linux's GSO_LEGACY_MAX_SIZE (65536), less one
# for the 16-bit IPv4 total length.
SOFT_GSO_MAX = 0xFFFF


@dataclass
class Sock:
    """What a file descriptor refers to."""

    fd: int
    opts: SockOpts = field(default_factory=SockOpts)
    local: Addr | None = None
    remote: Addr | None = None
    conn: Connection | None = None
    listener: Listener | None = None
    reuseaddr: bool = False
    error_reported: bool = False
    connecting: bool = False        # connect() started; its outcome not yet reported


@dataclass(frozen=True, slots=True)
class Offload:
    """What the device under the stack does for it (virtio-net offloads)."""

    tx_csum: bool = False   # the device fills in TCP checksums: we put the pseudo-header sum
    tso_max: int = 0        # largest IPv4 packet the device cuts into MSS segments (0: no TSO)


@dataclass(frozen=True, slots=True)
class ConnInfo:
    """One row of ``ss -tan``."""

    state: State
    recv_q: int
    send_q: int
    local: Addr
    peer: Addr


class Stack:
    """One TCP/IPv4 host, sans I/O."""

    def __init__(
        self,
        addr: str,
        *,
        cfg: Sysctl | None = None,
        seed: int | None = None,
        isn: IsnSource | None = None,
        mtu: int = 1500,
        name: str | None = None,
    ) -> None:
        self.addr = addr
        self.name = name or addr
        self.cfg = cfg or Sysctl()
        self.rng = random.Random(seed)
        self.isn: IsnSource = isn or Rfc6528(self.rng)
        self.mtu = mtu
        self.socks: dict[int, Sock] = {}
        self.conns: dict[Key, Connection] = {}
        self.listeners: dict[Addr, Listener] = {}
        self.timewait: dict[Key, TimeWait] = {}
        self.changes: list[tuple[Key, StateChange]] = []
        self.stats: Counter[str] = Counter()
        self._out: list[bytes] = []
        self._next_fd = 3
        self._ident = self.rng.getrandbits(16)
        self._gso: dict[int, int] = {}        # index in _out -> GSO size, for super-segments
        self._offload: Offload | None = None
        self.echo_replies: deque[EchoReply] = deque(maxlen=4096)   # ping answers, newest last
        self._cookie_secret: bytes | None = None   # drawn at the first SYN cookie
        self.timers = TimerQueue(self.timewait)   # every deadline of the host
        self.ports = PortTable()
        # Descriptors whose readability or writability may have changed because of a
        # packet or a timer (not because of the owner's own calls). Drivers take them
        # with take_touched() to wake only the sockets something happened to.
        self.touched: set[int] = set()

    @property
    def offload(self) -> Offload | None:
        """What the device does for us (set by the driver from its link); None: nothing."""
        return self._offload

    @offload.setter
    def offload(self, value: Offload | None) -> None:
        self._offload = value
        for conn in self.conns.values():
            conn.tso_max = self._tso_max()
        for lst in self.listeners.values():
            for child in lst.syn_queue.values():
                child.tso_max = self._tso_max()

    def _tso_max(self) -> int:
        # Without device TSO the stack still builds super-segments (software GSO):
        # the link, or transmit(), cuts them (synack.wire.gso).
        off = self._offload
        return min(off.tso_max, 0xFFFF) if off is not None and off.tso_max else SOFT_GSO_MAX

    # ============================================================ packets
    def receive(self, packet: bytes, *, now: int, csum_valid: bool = False) -> None:
        """One IPv4 packet from the wire. Never raises for anything the peer sent.

        ``csum_valid``: the device has checked (or will fill in) the TCP checksum.
        """
        try:
            # The header record is built only for ICMP; TCP needs four fields of it.
            src, dst, proto, frag, body = parse_ipv4_route(packet)
            if frag & _MF_OFFSET:
                raise ParseError("IPv4 fragment", "unsupported", f"offset {(frag & 0x1FFF) * 8}"
                                 ", fragments are not reassembled")
            if proto != PROTO_TCP:
                if proto != PROTO_ICMP:
                    raise ParseError("IPv4 protocol", "unsupported", f"{proto}")
                if dst != self.addr:
                    self.stats["dropped not for us"] += 1
                    return
                ip, body = parse_ipv4(packet)
                handle_icmp(self, ip, body, now)
                return
            # With csum_valid the device vouched for the TCP checksum (the IPv4 header's
            # is still checked above): no per-byte sum in Python.
            seg = parse_tcp(body, src, dst, verify_checksum=not csum_valid)
        except ParseError as exc:
            self.stats["dropped " + exc.kind] += 1
            return
        if dst != self.addr:
            self.stats["dropped not for us"] += 1
            return
        self.stats["segments in"] += 1
        key = (dst, seg.dst_port, src, seg.src_port)
        conn = self.conns.get(key)
        if conn is not None:
            self._to_conn(key, conn, seg, now)
            return
        tw = self.timewait.get(key)
        if tw is not None:
            verdict, reply = tw.on_segment(
                seg, now=now, rfc1337=self.cfg.int("net.ipv4.tcp_rfc1337") == 1,
                time_wait_us=TIME_WAIT_US)
            if reply is not None:
                self._emit(dst, src, reply)
            if verdict == KILL:
                self._end_timewait(key, now, "rcv RST")
                return
            if verdict != NEW_SYN:
                return
            self._end_timewait(key, now, "new SYN reuses the 4-tuple")
        listener = self.listeners.get((dst, seg.dst_port)) or self.listeners.get(
            ("0.0.0.0", seg.dst_port))
        if listener is not None:
            self._to_listener(listener, key, seg, now)
            return
        self._reset_closed(dst, src, seg, "no socket")

    def transmit(self, *, now: int) -> list[bytes]:
        """IPv4 packets ready for the wire, oldest first, each at most one MSS of data:
        super-segments are cut here in software (:func:`synack.wire.gso.segment`).
        A driver whose device cuts them itself uses :meth:`transmit_gso`."""
        out, self._out = self._out, []
        gso, self._gso = self._gso, {}
        if not gso:
            return out
        off = self._offload
        partial = off is not None and off.tx_csum
        frames: list[bytes] = []
        for i, p in enumerate(out):
            size = gso.get(i)
            if size:
                frames += segment(p, size, csum_partial=partial)
            else:
                frames.append(p)
        return frames

    def transmit_gso(self, *, now: int) -> list[tuple[bytes, int]]:
        """Like :meth:`transmit`, with each packet's GSO size: 0 for an ordinary packet,
        else the MSS the super-segment is to be cut into. Super-segments come whether
        or not the device has TSO (then up to 64 KB); a link without TSO cuts them
        (:mod:`synack.wire.gso`). Their TCP checksum holds the pseudo-header sum only."""
        out, self._out = self._out, []
        gso, self._gso = self._gso, {}
        if not gso:
            return [(p, 0) for p in out]
        return [(p, gso.get(i, 0)) for i, p in enumerate(out)]

    def send_echo(self, dst: str, ident: int, seq: int, payload: bytes = b"", *,
                  now: int) -> None:
        """Send an ICMP echo request; the reply lands in :attr:`echo_replies`."""
        send_echo(self, dst, ident, seq, payload, now=now)

    def next_deadline(self) -> int | None:
        """The earliest time :meth:`tick` must run, or None when nothing is pending.

        O(1): one timer heap holds every deadline (:mod:`synack.host.timerq`)."""
        return self.timers.next_deadline()

    def tick(self, *, now: int) -> None:
        """Run every timer due at ``now``; touches only what fell due."""
        timers = self.timers
        ran: set[int] = set()
        while True:
            due = timers.pop_due(now)
            if due is None:
                break
            obj, key = due
            if isinstance(obj, TimeWait):
                if obj.expires <= now:
                    self._end_timewait(key, now, "2*MSL")
                continue
            if id(obj) in ran:
                # Its timers are due again at once: leave it for the next tick.
                timers.arm(obj, key)
                break
            ran.add(id(obj))
            obj.tick(now=now)
            self._after(key, obj, now)

    def take_touched(self) -> set[int]:
        """The descriptors something happened to since the last call (and forget them)."""
        t = self.touched
        if t:
            self.touched = set()
        return t

    # ------------------------------------------------------------ internals
    def _emit(self, src: str, dst: str, seg: TcpSegment, gso: int = 0) -> None:
        self._ident = (self._ident + 1) & 0xFFFF
        off = self._offload
        self._out.append(build_tcp_packet(
            src, dst, seg, ttl=self.cfg.int("net.ipv4.ip_default_ttl"), ident=self._ident,
            csum_partial=gso > 0 or (off is not None and off.tx_csum)))
        if gso:
            # The device gives each segment of a super-segment the next IP id.
            segs = -(-len(seg.payload) // gso)
            self._gso[len(self._out) - 1] = gso
            self._ident = (self._ident + segs - 1) & 0xFFFF
            self.stats["segments out"] += segs
            self.stats["TSO super-segments out" if off is not None and off.tso_max
                       else "GSO super-segments out"] += 1
            return
        self.stats["segments out"] += 1
        if seg.flags & RST:
            self.stats["resets sent"] += 1

    def _reset_closed(self, local: str, remote: str, seg: TcpSegment, why: str) -> None:
        """RFC 9293 3.10.7.1: answer a segment for no connection with RST."""
        self.stats[f"reset: {why}"] += 1
        if seg.flags & RST:
            return
        if seg.flags & ACK:
            rst = TcpSegment(src_port=seg.dst_port, dst_port=seg.src_port, seq=seg.ack,
                             flags=RST)
        else:
            seg_len = len(seg.payload) + (1 if seg.flags & SYN else 0) + (
                1 if seg.flags & FIN else 0)
            rst = TcpSegment(src_port=seg.dst_port, dst_port=seg.src_port, seq=0,
                             ack=sq.add(seg.seq, seg_len), flags=RST | ACK)
        self._emit(local, remote, rst)

    def _to_conn(self, key: Key, conn: Connection, seg: TcpSegment, now: int) -> None:
        conn.on_segment(seg, now=now)
        if conn.fd >= 0:
            self.touched.add(conn.fd)
        self._collect_conn(key, conn, now)

    def _after(self, key: Key, conn: Connection, now: int) -> None:
        """Collect what a timer or an ICMP error did to ``conn``, wherever it lives."""
        if conn.fd >= 0:
            self.touched.add(conn.fd)
        if self.conns.get(key) is conn:
            self._collect_conn(key, conn, now)
            return
        lst = self.listeners.get((key[0], key[1])) or self.listeners.get(("0.0.0.0", key[1]))
        if lst is not None and lst.syn_queue.get((key[2], key[3])) is conn:
            self._collect_child(lst, key, conn, now)
        else:
            self._drain(key, conn)

    def _to_listener(self, lst: Listener, key: Key, seg: TcpSegment, now: int) -> None:
        flags = seg.flags
        child = lst.syn_queue.get((key[2], key[3]))
        if child is not None:
            if flags & ACK and not flags & (SYN | RST) and child.state is State.SYN_RECEIVED \
                    and lst.accept_queue_full() and seg.ack == child.snd.snd_max:
                # The final ACK finds the accept queue full (Linux tcp_check_req()).
                lst.listen_overflows += 1
                self.stats["listen overflows"] += 1
                if self.cfg.int("net.ipv4.tcp_abort_on_overflow"):
                    child.abort(now=now, why="accept queue full: tcp_abort_on_overflow",
                                send_rst=False)
                    self._collect_child(lst, key, child, now)
                    self._reset_closed(key[0], key[2], seg, "accept queue overflow")
                return
            child.on_segment(seg, now=now)
            self._collect_child(lst, key, child, now)
            return
        if flags & RST:
            return
        if flags & ACK:
            if not flags & SYN and self._cookie_ack(lst, key, seg, now):
                return
            self._reset_closed(key[0], key[2], seg, "ACK to listener")
            return
        if not flags & SYN:
            return
        why = lst.syn_verdict()
        if why == COOKIE:
            self._send_cookie(lst, key, seg, now)
            return
        if why is not None:
            lst.drop_syn()
            self.stats["SYNs dropped: " + why] += 1
            return
        owner = self._listener_sock(lst)
        opts = SockOpts(**{f: getattr(owner.opts, f) for f in owner.opts.__slots__})
        iss = self.isn(key[0], key[1], key[2], key[3], now)
        child = Connection(local=(key[0], key[1]), remote=(key[2], key[3]), cfg=self.cfg,
                           opts=opts, iss=iss, now=now, mtu=self.mtu,
                           ts_offset=self.rng.getrandbits(32))
        child.tso_max = self._tso_max()
        lst.syn_queue[(key[2], key[3])] = child
        child.open_passive(seg, now=now)
        self._collect_child(lst, key, child, now)

    # ------------------------------------------------------------ SYN cookies
    def _secret(self) -> bytes:
        # Drawn lazily so that runs without cookies consume the seeded RNG as before.
        if self._cookie_secret is None:
            self._cookie_secret = syncookies.new_secret(self.rng.getrandbits(128))
        return self._cookie_secret

    def _cookie_conn(self, lst: Listener, key: Key, syn: TcpSegment, iss: int,
                     now: int) -> Connection:
        """A child as a SYN would create it, with the cookie ``iss`` and a TS offset
        the listener can recompute (Linux keeps no request, only the hash key)."""
        owner = self._listener_sock(lst)
        opts = SockOpts(**{f: getattr(owner.opts, f) for f in owner.opts.__slots__})
        tup = (key[2], key[3], key[0], key[1])
        child = Connection(local=(key[0], key[1]), remote=(key[2], key[3]), cfg=self.cfg,
                           opts=opts, iss=iss, now=now, mtu=self.mtu,
                           ts_offset=syncookies.ts_offset(self._secret(), tup))
        child.tso_max = self._tso_max()
        child.open_passive(syn, now=now)
        return child

    def _send_cookie(self, lst: Listener, key: Key, syn: TcpSegment, now: int) -> None:
        """Answer ``syn`` with a SYN,ACK whose ISN is a cookie; keep nothing
        (Linux tcp_conn_request() with want_cookie, cookie_v4_init_sequence())."""
        tup = (key[2], key[3], key[0], key[1])
        mss = syn.mss if syn.mss else 536
        iss = syncookies.make_cookie(self._secret(), tup, syn.seq, mss, now)
        if syn.timestamps is None:
            # Linux tcp_clear_options(): without timestamps there is nowhere to keep
            # window scaling and SACK, so the SYN,ACK does not agree to them.
            syn = replace(syn, wscale=None, sack_permitted=False)
        child = self._cookie_conn(lst, key, syn, iss, now)
        (synack,) = child.outbox
        if synack.timestamps is not None:
            neg = child.neg
            tsval = syncookies.encode_ts(synack.timestamps[0],
                                         neg.snd_wscale if neg.rcv_wscale is not None else None,
                                         neg.sack_ok)
            synack = replace(synack, timestamps=(tsval, synack.timestamps[1]))
        lst.last_cookie_sent = now
        self.stats["syncookies sent"] += 1
        self._emit(key[0], key[2], synack)

    def _cookie_ack(self, lst: Listener, key: Key, seg: TcpSegment, now: int) -> bool:
        """A final ACK that may carry a cookie (Linux cookie_v4_check()). True when it
        was consumed (a connection made, or dropped for a full accept queue); False
        leaves it to the listener, which answers RST."""
        if not self.cfg.int("net.ipv4.tcp_syncookies") or lst.last_cookie_sent is None \
                or now - lst.last_cookie_sent > syncookies.VALID_US:
            return False            # tcp_synq_no_recent_overflow(): no cookie to expect
        tup = (key[2], key[3], key[0], key[1])
        irs, iss = sq.add(seg.seq, -1), sq.add(seg.ack, -1)
        mss = syncookies.check_cookie(self._secret(), tup, irs, iss, now)
        if mss is None:
            self.stats["syncookies failed"] += 1
            return False
        self.stats["syncookies received"] += 1
        if lst.accept_queue_full():
            # tcp_v4_syn_recv_sock(): the ACK is dropped; the client will send more.
            lst.listen_overflows += 1
            lst.listen_drops += 1
            self.stats["listen overflows"] += 1
            return True
        ts = seg.timestamps
        opts = syncookies.decode_ts(ts[1]) if ts is not None and ts[1] else None
        syn = TcpSegment(src_port=seg.src_port, dst_port=seg.dst_port, seq=irs, flags=SYN,
                         window=seg.window, mss=mss,
                         wscale=opts.wscale if opts else None,
                         sack_permitted=opts.sack if opts else False,
                         timestamps=(ts[0], 0) if opts and ts is not None else None)
        child = self._cookie_conn(lst, key, syn, iss, now)
        child.outbox.clear()        # its SYN,ACK was sent long ago, by the cookie path
        child.segs_out = 0
        child.rtt_seq = None        # no SYN,ACK send time to measure an RTT from
        lst.syn_queue[(key[2], key[3])] = child
        child.on_segment(seg, now=now)
        self._collect_child(lst, key, child, now)
        return True

    def _collect_child(self, lst: Listener, key: Key, child: Connection, now: int) -> None:
        self._drain(key, child)
        if child.state is State.SYN_RECEIVED:
            self.timers.arm(child, key)
            return
        del lst.syn_queue[(key[2], key[3])]
        if child.state is State.CLOSED:
            self.timers.disarm(child)
            return
        self.conns[key] = child
        lst.accept_queue.append(child)
        if lst.fd >= 0:
            self.touched.add(lst.fd)
        self._collect_conn(key, child, now)

    def _listener_sock(self, lst: Listener) -> Sock:
        sock = self.socks.get(lst.fd)
        if sock is None or sock.listener is not lst:
            raise LookupError("listener without a socket")
        return sock

    def _drain(self, key: Key, conn: Connection) -> None:
        if conn.outbox:
            # A segment longer than the MSS is a TSO super-segment (tcp/output.py).
            mss = conn.mss if conn.tso_max else 1 << 30
            for seg in conn.outbox:
                self._emit(key[0], key[2], seg, mss if len(seg.payload) > mss else 0)
            conn.outbox.clear()
        if conn.changes:
            for ch in conn.changes:
                self.changes.append((key, ch))
            conn.changes.clear()

    def _collect_conn(self, key: Key, conn: Connection, now: int) -> None:
        self._drain(key, conn)
        state = conn.state
        if state is State.TIME_WAIT:
            rcv = conn.rcv
            assert rcv is not None
            tw = self.timewait[key] = TimeWait(
                local=conn.local, remote=conn.remote, snd_nxt=conn.snd.snd_nxt,
                rcv_nxt=rcv.rcv_nxt, window=rcv.window_field(), since=now,
                expires=conn.timers.timewait or now + TIME_WAIT_US, ts=conn.neg.ts_ok)
            self.timers.add_timewait(tw, key)
            self.ports.tw_add(key[1])
            self.timers.disarm(conn)
            del self.conns[key]
        elif state is State.CLOSED:
            self.timers.disarm(conn)
            del self.conns[key]
        else:
            self.timers.arm(conn, key)

    def _end_timewait(self, key: Key, now: int, why: str) -> None:
        del self.timewait[key]
        self.ports.tw_remove(key[1])
        self.changes.append((key, StateChange(now, State.TIME_WAIT, State.CLOSED, why)))

    # ============================================================ socket calls
    def _sock(self, fd: int) -> Sock:
        sock = self.socks.get(fd)
        if sock is None:
            raise _oserror(errno.EBADF)
        return sock

    def socket(self) -> int:
        """A new TCP socket; returns its file descriptor."""
        fd = self._next_fd
        self._next_fd += 1
        self.socks[fd] = Sock(fd)
        return fd

    def _port_in_use(self, ip: str, port: int) -> bool:
        for s in self.ports.on(port):
            if (s.local and s.local[1] == port
                    and (s.local[0] in (ip, "0.0.0.0") or ip == "0.0.0.0")
                    and (s.conn is None or s.conn.state is not State.CLOSED)):
                return True
        return False

    def bind(self, fd: int, addr: Addr) -> None:
        """Bind to ``(ip, port)``; port 0 picks an ephemeral port."""
        sock = self._sock(fd)
        if sock.local is not None:
            raise _oserror(errno.EINVAL, "already bound")
        ip, port = addr
        if ip not in (self.addr, "0.0.0.0", ""):
            raise _oserror(errno.EADDRNOTAVAIL, ip)
        ip = ip or "0.0.0.0"
        if not 0 <= port <= 0xFFFF:
            raise OverflowError("bind(): port must be 0-65535.")
        if port == 0:
            port = self._ephemeral(None)
        elif self._port_in_use(ip, port) or (
            not sock.reuseaddr and port in self.ports.timewait):
            raise _oserror(errno.EADDRINUSE, f"{ip}:{port}")
        sock.local = (ip, port)
        self.ports.add(sock)

    def listen(self, fd: int, backlog: int = 128) -> None:
        """Start listening; the accept queue holds min(backlog, somaxconn) connections."""
        sock = self._sock(fd)
        if sock.conn is not None:
            raise _oserror(errno.EINVAL, "socket is connected")
        if sock.local is None:
            self.bind(fd, ("0.0.0.0", 0))
        assert sock.local is not None
        if sock.listener is not None:
            sock.listener.max_backlog = max(min(backlog, self.cfg.int("net.core.somaxconn")), 0)
            return
        lst = Listener(sock.local, backlog, self.cfg)
        lst.fd = fd
        sock.listener = lst
        self.listeners[sock.local] = lst

    def accept(self, fd: int) -> tuple[int, Addr]:
        """Take an established connection from the accept queue."""
        sock = self._sock(fd)
        lst = sock.listener
        if lst is None:
            raise _oserror(errno.EINVAL, "socket is not listening")
        while lst.accept_queue:
            conn = lst.accept_queue.popleft()
            child = Sock(self.socket(), opts=conn.opts, local=conn.local, remote=conn.remote,
                         conn=conn)
            self.socks[child.fd] = child
            self.ports.add(child)
            conn.fd = child.fd
            return child.fd, conn.remote
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    def _ephemeral(self, remote: Addr | None, now: int | None = None) -> int:
        lo, hi = self.cfg.triple("net.ipv4.ip_local_port_range")
        span = hi - lo + 1
        start = self.rng.randrange(span)
        reusable: int | None = None
        for i in range(span):
            port = lo + (start + i) % span
            if remote is None:
                if not self._port_in_use(self.addr, port):
                    return port
                continue
            key = (self.addr, port, remote[0], remote[1])
            if key in self.timewait and reusable is None and self._tw_reusable(key, now):
                reusable = port
            if key in self.conns or key in self.timewait or (self.addr, port) in self.listeners:
                continue
            if any(s.remote is None for s in self.ports.on(port)):
                continue
            return port
        if reusable is not None:       # every port is taken, but a TIME_WAIT may be reused
            return reusable
        raise _oserror(errno.EADDRNOTAVAIL, "no free ephemeral port")

    def _tw_reusable(self, key: Key, now: int | None) -> bool:
        """Linux tcp_twsk_unique(): may connect() take over this TIME_WAIT 4-tuple?

        Only with net.ipv4.tcp_tw_reuse (2: loopback peers only), only if the old
        connection used timestamps (PAWS then rejects its stray segments), and only
        once the TIME_WAIT is a second old (Linux's tcp_tw_reuse_delay default).
        """
        reuse = self.cfg.int("net.ipv4.tcp_tw_reuse")
        tw = self.timewait.get(key)
        if tw is None or now is None or reuse == 0 or not tw.ts:
            return False
        if reuse == 2 and not key[2].startswith("127."):
            return False
        return now - tw.since >= TW_REUSE_DELAY_US

    def connect_ex(self, fd: int, addr: Addr, *, now: int) -> int:
        """Start an active open; returns EINPROGRESS (or another errno) like the stdlib."""
        sock = self._sock(fd)
        if sock.listener is not None:
            return errno.EISCONN            # Linux: a listener is not TCP_CLOSE
        conn = sock.conn
        if conn is not None:
            if conn.state in (State.SYN_SENT, State.SYN_RECEIVED):
                return errno.EALREADY
            if sock.connecting:
                # Linux __inet_stream_connect(): the first call after the handshake
                # ended reports how it ended (0 or the error); later ones say EISCONN.
                sock.connecting = False
                if conn.error is not None and not sock.error_reported:
                    sock.error_reported = True
                    return conn.error
                return errno.ECONNABORTED if conn.state is State.CLOSED else 0
            return errno.EISCONN
        ip, port = addr
        if sock.local is None or sock.local[1] == 0:
            sock.local = (self.addr, self._ephemeral((ip, port), now))
            self.ports.add(sock)
        local = (self.addr if sock.local[0] == "0.0.0.0" else sock.local[0], sock.local[1])
        key = (local[0], local[1], ip, port)
        iss: int | None = None
        if key in self.timewait and self._tw_reusable(key, now):
            # Linux tcp_twsk_unique(): start beyond anything the old connection sent.
            iss = sq.add(self.timewait[key].snd_nxt, 65535 + 2)
            self._end_timewait(key, now, "reused by connect(): tcp_tw_reuse")
        if key in self.conns or key in self.timewait:
            return errno.EADDRNOTAVAIL
        self.ports.remove(sock)
        sock.local, sock.remote = local, (ip, port)
        self.ports.add(sock)
        conn = Connection(local=local, remote=(ip, port), cfg=self.cfg, opts=sock.opts,
                          iss=self.isn(local[0], local[1], ip, port, now) if iss is None else iss,
                          now=now, mtu=self.mtu, ts_offset=self.rng.getrandbits(32))
        conn.tso_max = self._tso_max()
        conn.fd = fd
        sock.conn = conn
        sock.connecting = True
        self.conns[key] = conn
        conn.open_active(now=now)
        self._collect_conn(key, conn, now)
        return errno.EINPROGRESS

    def connect(self, fd: int, addr: Addr, *, now: int) -> None:
        """Non-blocking connect(): raises BlockingIOError(EINPROGRESS) as the stdlib does."""
        code = self.connect_ex(fd, addr, now=now)
        if code:
            raise _oserror(code)

    def _conn(self, fd: int) -> tuple[Sock, Connection]:
        sock = self._sock(fd)
        if sock.conn is None:
            raise _oserror(errno.ENOTCONN)
        return sock, sock.conn

    def _raise_error(self, sock: Sock, conn: Connection) -> None:
        if conn.error is not None and not sock.error_reported:
            sock.error_reported = True
            raise _oserror(conn.error)

    def send(self, fd: int, data: bytes | bytearray | memoryview, *, now: int,
             flags: int = 0) -> int:
        """Queue bytes; returns how many were taken. Raises when nothing can be.

        ``flags`` may hold ``MSG_OOB``: the last byte is sent as urgent data.
        """
        sock = self._sock(fd)
        conn = sock.conn
        if conn is None:
            # Linux sk_stream_wait_connect(): EPIPE, not ENOTCONN, on an unconnected socket.
            raise _oserror(errno.EPIPE)
        self._raise_error(sock, conn)
        if conn.wr_shut or conn.state not in _CAN_SEND and conn.state not in (
                State.SYN_SENT, State.SYN_RECEIVED):
            raise _oserror(errno.EPIPE)
        if conn.state in (State.SYN_SENT, State.SYN_RECEIVED):
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        if not data:
            return 0
        n = conn.send(data, now=now, oob=bool(flags & _MSG_OOB))
        if n == 0:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        self._collect_key(conn, now)
        return n

    def recv(self, fd: int, n: int, *, now: int, flags: int = 0) -> bytes:
        """Up to ``n`` bytes; b"" at end of stream; BlockingIOError when none yet.

        With ``MSG_OOB`` the urgent byte (Linux: EINVAL when there is none).
        """
        sock, conn = self._conn(fd)
        if n < 0:
            raise ValueError("negative buffersize in recv")
        if flags & _MSG_OOB:
            return bytes([conn.recv_oob()]) if n else b""
        if conn.recv_q:
            data = conn.recv(n, now=now)
            self._collect_key(conn, now)
            return data
        self._raise_error(sock, conn)
        if conn.eof or conn.rd_shut or conn.state is State.CLOSED:
            return b""
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    def shutdown(self, fd: int, how: int, *, now: int) -> None:
        """SHUT_WR sends a FIN after queued data; SHUT_RD stops reading."""
        _sock, conn = self._conn(fd)
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            raise _oserror(errno.EINVAL)
        if how in (SHUT_RD, SHUT_RDWR):
            conn.rd_shut = True
        if how in (SHUT_WR, SHUT_RDWR):
            conn.shutdown_write(now=now)
        self._collect_key(conn, now)

    def close(self, fd: int, *, now: int) -> None:
        """Release the descriptor; the connection closes in the background (or resets)."""
        sock = self._sock(fd)
        del self.socks[fd]
        self.ports.remove(sock)
        self.touched.discard(fd)
        if sock.listener is not None:
            lst = sock.listener
            del self.listeners[lst.local]
            # Linux inet_csk_listen_stop(): children waiting for accept() are reset,
            # half-open requests are freed without a word.
            for child in list(lst.syn_queue.values()) + list(lst.accept_queue):
                child.abort(now=now, why="listener closed",
                            send_rst=child.state is not State.SYN_RECEIVED)
                key = (child.local[0], child.local[1], child.remote[0], child.remote[1])
                self._drain(key, child)
                self.timers.disarm(child)
                self.conns.pop(key, None)
            return
        conn = sock.conn
        if conn is not None:
            conn.fd = -1
            conn.close(now=now)
            self._collect_key(conn, now)

    def _collect_key(self, conn: Connection, now: int) -> None:
        key = (conn.local[0], conn.local[1], conn.remote[0], conn.remote[1])
        if key in self.conns:
            self._collect_conn(key, conn, now)
        else:
            self._drain(key, conn)

    # ------------------------------------------------------------ options
    def setsockopt(self, fd: int, level: int, option: int, value: int | bytes, *,
                   now: int = 0) -> None:
        """Set SOL_SOCKET / IPPROTO_TCP options by their Linux constants (:mod:`synack.sockopts`)."""
        set_option(self, self._sock(fd), level, option, value, now=now)

    def getsockopt(self, fd: int, level: int, option: int) -> int | bytes:
        """Read an option back (SO_ERROR reports and clears a pending error)."""
        return get_option(self, self._sock(fd), level, option)

    # ------------------------------------------------------------ queries
    def getsockname(self, fd: int) -> Addr:
        """The local address (0.0.0.0:0 before bind)."""
        return self._sock(fd).local or ("0.0.0.0", 0)

    def getpeername(self, fd: int) -> Addr:
        """The peer's address; ENOTCONN when there is none."""
        sock = self._sock(fd)
        if sock.remote is None or sock.conn is None or sock.conn.state in (
                State.SYN_SENT, State.CLOSED):
            raise _oserror(errno.ENOTCONN)
        return sock.remote

    def state(self, fd: int) -> State:
        """The TCP state behind a descriptor."""
        sock = self._sock(fd)
        if sock.listener is not None:
            return State.LISTEN
        return sock.conn.state if sock.conn else State.CLOSED

    def connection(self, fd: int) -> Connection | None:
        """The connection behind a descriptor (for statistics and tests)."""
        return self._sock(fd).conn

    def connections(self) -> list[ConnInfo]:
        """Every socket as ``ss -tan`` lists it: listeners, connections, TIME_WAIT."""
        rows = [ConnInfo(State.LISTEN, len(lst.accept_queue), lst.max_backlog, lst.local,
                         ("0.0.0.0", 0)) for lst in self.listeners.values()]
        for lst in self.listeners.values():
            rows += [ConnInfo(c.state, 0, 0, c.local, c.remote) for c in lst.syn_queue.values()]
        rows += [ConnInfo(c.state, c.recv_q, c.send_q, c.local, c.remote)
                 for c in self.conns.values()]
        rows += [ConnInfo(State.TIME_WAIT, 0, 0, tw.local, tw.remote)
                 for tw in self.timewait.values()]
        return rows

    def readable(self, fd: int) -> bool:
        """recv()/accept() would not raise BlockingIOError."""
        sock = self._sock(fd)
        if sock.listener is not None:
            return bool(sock.listener.accept_queue)
        c = sock.conn
        if c is None:
            return False
        return bool(c.recv_q or c.eof or c.state is State.CLOSED or
                    (c.error is not None and not sock.error_reported))

    def writable(self, fd: int) -> bool:
        """send() would take at least one byte (or raise an error at once)."""
        sock = self._sock(fd)
        c = sock.conn
        if c is None:
            return False
        if c.state in (State.SYN_SENT, State.SYN_RECEIVED):
            return False
        return c.snd.space() > 0 or c.state not in _CAN_SEND or c.error is not None

