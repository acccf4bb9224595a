"""A host: IP packets in and out, connections by 4-tuple, BSD socket calls.

Theory of operation
-------------------
A :class:`Stack` owns one IPv4 address (an IPv6 one too with ``addr6``, and
127.0.0.0/8 and ::1: :mod:`synack.host.loopback`), a sysctl table, and every
connection, listener and TIME_WAIT entry of that host. Drivers (the simulator, a TAP
device loop, the blocking and asyncio APIs, a test) move packets with
:meth:`receive` / :meth:`transmit` and call :meth:`tick` at
:meth:`next_deadline`. Applications use file-descriptor calls shaped like
non-blocking BSD sockets; they raise the exceptions the stdlib's ``socket``
module raises (``BlockingIOError``, ``ConnectionRefusedError``, ...).

Demultiplexing follows RFC 9293 3.10.7: an exact 4-tuple match (a connection,
or a compact TIME_WAIT entry), else a listener on the port, else the segment is
answered with RST (3.10.7.1). A malformed packet is dropped and counted in
:attr:`stats`; nothing a peer sends can raise out of :meth:`receive`.

The host is split by role (:mod:`synack.host`): this module moves packets and
keeps the tables; the socket calls (:mod:`synack.host.opencalls` opens,
:mod:`synack.host.calls` the rest), the listener's
demux and SYN cookies (:mod:`synack.host.listen`), the timer heap
(:mod:`synack.host.timerq`) and the port table (:mod:`synack.host.ports`) live
beside it. Work is proportional to what happens: every deadline sits in one
heap, a segment finds its connection or listener by dictionary, and the
descriptors a packet or timer touched are recorded (:attr:`Stack.touched`) so
that drivers wake only those.
"""

from __future__ import annotations

import random
from collections import deque

from synack import seq as sq
from synack.config import Sysctl
from synack.counts import Counter
from synack.host import errqueue
from synack.host.calls import (
    TW_REUSE_DELAY_US,  # noqa: F401 - re-exported
    SocketCallsMixin,
)
from synack.host.forward import Forwarding
from synack.host.frag import Reassembler
from synack.host.ip6 import Ip6Mixin, _Labels
from synack.host.listen import ListenMixin
from synack.host.loopback import LO_MTU, LoopbackMixin
from synack.host.opencalls import OpenCallsMixin
from synack.host.ports import PortTable
from synack.host.receive import ReceiveMixin
from synack.host.records import (  # noqa: F401 - re-exported: synack.stack is the public path
    ORPHAN,
    SHUT_RD,
    SHUT_RDWR,
    SHUT_WR,
    Addr,
    ConnInfo,
    Key,
    Offload,
    Sock,
)
from synack.host.timerq import TimerQueue
from synack.host.udp import UdpHost
from synack.icmp_host import EchoReply, send_echo
from synack.tcp.connection import TIME_WAIT_US, Connection, StateChange
from synack.tcp.ecn import CE, ECT0, EcnState
from synack.tcp.fastopen import CookieCache
from synack.tcp.isn import IsnSource, Rfc6528
from synack.tcp.listener import Listener
from synack.tcp.state import State
from synack.tcp.timewait import KILL, NEW_SYN, TimeWait, TimeWaitTable, bits_key
from synack.wire.gso import segment
from synack.wire.ipv4 import (
    _build_syn_packet,
    build_tcp_packet,
    build_ts_fields,
    build_ts_packet,
)
from synack.wire.tcp import ACK, FIN, RST, SYN, URG, TcpSegment

# Segments that touch their socket whatever they change (a pure ACK may not: _segment_in).
_WAKE_FLAGS = SYN | FIN | RST | URG
# Super-segments without device TSO: Linux's GSO_LEGACY_MAX_SIZE (65536), less one
# for the 16-bit IPv4 total length.
SOFT_GSO_MAX = 0xFFFF
# Members bound once: `State.X` is a class-attribute lookup through the Enum metaclass.
_TIME_WAIT = State.TIME_WAIT
TCPOPT_MD5SIG = 19          # RFC 2385
_SYN_RECEIVED = State.SYN_RECEIVED
_CLOSED = State.CLOSED


class Stack(ReceiveMixin, ListenMixin, OpenCallsMixin, SocketCallsMixin, Ip6Mixin,
            LoopbackMixin):
    """One TCP host, sans I/O: IPv4 at ``addr``, and IPv6 too with ``addr6``."""

    def __init__(
        self,
        addr: str,
        *,
        cfg: Sysctl | None = None,
        seed: int | None = None,
        isn: IsnSource | None = None,
        mtu: int = 1500,
        name: str | None = None,
        addr6: str | None = None,
        lo_mtu: int = LO_MTU,
    ) -> None:
        self.addr = addr
        self.addr6 = addr6          # IPv6 (synack.host.ip6), in inet_ntop's spelling
        self.name = name or addr
        self.cfg = cfg or Sysctl()
        self.rng = random.Random(seed)
        self.isn: IsnSource = isn or Rfc6528(self.rng)
        self.mtu = mtu
        self.lo_mtu = lo_mtu                # the loopback's MTU (host/loopback.py)
        self.socks: dict[int, Sock] = {}
        self.conns: dict[Key, Connection] = {}
        self.listeners: dict[Addr, Listener] = {}
        self.timewait = TimeWaitTable()     # 4-tuple -> TIME_WAIT entry (a packed int)
        self.orphans = 0                    # closed by the application, still closing
        self.changes: list[tuple[Key, StateChange]] = []
        #: False when nothing reads :attr:`changes` (a server without a state log, see
        #: AppRunner): connections made from then on record no state changes at all.
        self.record_changes = True
        self.stats: Counter[str] = Counter()
        self._out: list[bytes] = []
        self._next_fd = 3
        self._ident = self.rng.getrandbits(16)
        self._gso: dict[int, int] = {}        # index in _out -> GSO size, for super-segments
        self._offload: Offload | None = None
        self.echo_replies: deque[EchoReply] = deque(maxlen=4096)   # ping answers, newest last
        self._cookie_secret: bytes | None = None   # drawn at the first SYN cookie
        self.tfo_cache = CookieCache()    # TCP Fast Open cookies of the servers we met
        self._flow_labels: _Labels | None = None   # drawn at the first IPv6 segment
        self.deferred: set[Key] = set()     # SYN queue entries whose bare ACK TCP_DEFER_ACCEPT dropped
        self.tstamping: dict[Connection, Sock] = {}   # SO_TIMESTAMPING reports still due
        self.timers = TimerQueue(self.timewait)   # every deadline of the host
        self.ports: PortTable[Sock] = PortTable()
        # Descriptors whose readability or writability may have changed because of a
        # packet or a timer (not because of the owner's own calls). Drivers take them
        # with take_touched() to wake only the sockets something happened to.
        self.touched: set[int] = set()
        # Descriptors a pure ACK must touch too (host/calls.py): a writer waits for room
        # (Linux SOCK_NOSPACE), or completions come with ACKs (an error queue).
        self.wake_on_ack: set[int] = set()
        self.forward: Forwarding | None = None   # a catch-all for any address (forwarder)
        self.udp = UdpHost(self)            # the UDP sockets (host/udp.py)
        self.frags = Reassembler(self.stats)   # IPv4 fragments being put together
        self._lo: list[bytes] = []          # packets to our own addresses (host/loopback.py)
        self._on_lo = False                 # receive() is taking a looped packet
        self.lo_touched: set[int] = set()   # descriptors loopback delivery touched
        self._lo_taker = False              # a driver takes lo_touched (link/loop.py)
        self._peers: dict[int, tuple[str, str, int, int]] = {}   # host/receive.py

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
    def _segment_in(self, src: str, dst: str, seg: TcpSegment, now: int,
                    ip_ecn: int = 0) -> None:
        """A TCP segment for one of our addresses, to its connection, TIME_WAIT entry or
        listener (RFC 9293 3.10.7); either IP version. ``ip_ecn``: the ECN field of
        its IP header (RFC 3168)."""
        self.stats["segments in"] += 1
        key = (dst, seg.dst_port, src, seg.src_port)
        conn = self.conns.get(key)
        if seg.unknown_options and _has_md5(seg) and (
                conn is not None or self.listeners.get((dst, seg.dst_port))
                or self.listeners.get(("0.0.0.0", seg.dst_port))):
            # RFC 2385's signature on a segment for a socket with no MD5 key (synack has
            # none): Linux tcp_inbound_md5_hash() drops it before the socket sees it.
            self.cfg.mib["TcpExtTCPMD5Unexpected"] += 1
            return
        if conn is not None:
            ecn = conn.ecn
            if ecn is not None:
                ecn.ce_pending = ip_ecn == CE
                if ip_ecn:
                    ecn.seen = True
            # self._to_conn(key, conn, seg, now), inline: the usual segment's way.
            state = conn.state
            conn.on_segment(seg, now)
            fd = conn.fd
            # A pure ACK that changes no state wakes the socket only when it waits on
            # ACKs (wake_on_ack, host/calls.py): Linux's SOCK_NOSPACE rule.
            if fd >= 0 and (seg.payload or seg.flags & _WAKE_FLAGS or conn.state is not state
                            or fd in self.wake_on_ack):
                self.touched.add(fd)
            self._collect_conn(key, conn, now)
            return
        tw = self.timewait.get(key) if key in self.timewait else None   # (get(): Python)
        if tw is not None:
            cfg = self.cfg
            verdict, reply = tw.on_segment(
                seg, now=now, rfc1337=cfg.int("net.ipv4.tcp_rfc1337") == 1,
                time_wait_us=TIME_WAIT_US,
                ratelimit_us=cfg.int("net.ipv4.tcp_invalid_ratelimit") * 1000, mib=cfg.mib)
            if reply is not None:
                self._emit(dst, src, reply)
            if verdict != KILL and verdict != NEW_SYN and tw.bits != self.timewait.raw(key):
                # 2*MSL restarted: store it, and time it anew (the old timer entry is
                # stale now: it no longer matches the table).
                self.timewait[key] = tw
                self.timers.add_timewait(tw.bits)
                self.timers.dead(timewait=True)
            if verdict == KILL:
                self._end_timewait(key, now, "rcv RST")
                return
            if verdict != NEW_SYN:
                return
            self._end_timewait(key, now, "new SYN reuses the 4-tuple")
        # self._listener_for(dst, port), inline for a listener bound to the address or
        # to IPv4's wildcard; the call for the rest (IPv6, a dual-stack "::").
        port = seg.dst_port
        listeners = self.listeners
        listener = listeners.get((dst, port)) or (
            listeners.get(("0.0.0.0", port)) if ":" not in dst else None) \
            or self._listener_for(dst, port)
        if listener is not None:
            self._to_listener(listener, key, seg, now, ip_ecn)
            return
        if self.forward is not None and not self._on_lo:   # any address: host/forward.py
            self.forward.segment(self, key, seg, now)
            return
        self._reset_closed(dst, src, seg, "no socket")

    def transmit(self, *, now: int) -> list[bytes]:
        """IPv4 packets ready for the wire, oldest first, each at most one MSS of data:
        super-segments are cut here in software (:func:`synack.wire.gso.segment`).
        A driver whose device cuts them itself uses :meth:`transmit_gso`. Packets to
        the host's own addresses are received here, never handed out (loopback)."""
        if self._lo:
            self._run_loopback(now)
        out = self._out
        if not out:
            return []           # nothing queued (a driver's idle poll): no new containers
        self._out = []
        gso = self._gso
        if not gso:
            return out
        self._gso = {}
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

    def transmit_gso(self, now: int) -> list[tuple[bytes, int]]:
        """Like :meth:`transmit`, with each packet's GSO size: 0 for an ordinary packet,
        else the MSS the super-segment is to be cut into. Super-segments come whether
        or not the device has TSO (then up to 64 KB); a link without TSO cuts them
        (:mod:`synack.wire.gso`). Their TCP checksum holds the pseudo-header sum only."""
        if self._lo:
            self._run_loopback(now)
        out = self._out
        if not out:
            return []
        self._out = []
        gso = self._gso
        if not gso:
            if len(out) == 1:
                return [(out[0], 0)]            # (the usual case: no list comprehension)
            return [(p, 0) for p in out]
        self._gso = {}
        return [(p, gso.get(i, 0)) for i, p in enumerate(out)]

    def send_echo(self, dst: str, ident: int, seq: int, payload: bytes = b"", *,
                  now: int) -> None:
        """Send an ICMP echo request (ICMPv6 to an IPv6 address); the reply lands in
        :attr:`echo_replies`."""
        if ":" in dst:
            self.send_echo6(dst, ident, seq, payload, now=now)
            return
        send_echo(self, dst, ident, seq, payload, now=now)

    def next_deadline(self) -> int | None:
        """The earliest time :meth:`tick` must run, or None when nothing is pending.

        O(1): one timer heap holds every deadline (:mod:`synack.host.timerq`)."""
        return self.timers.next_deadline()

    def next_wake(self) -> int | None:
        """A time no later than :meth:`next_deadline` and cheaper to find, for a driver
        that only wakes up for it (:meth:`~synack.host.timerq.TimerQueue.next_wake`:
        a timer that moved later may cost one early wake-up and an idle :meth:`tick`)."""
        return self.timers.next_wake()

    def tick(self, *, now: int) -> None:
        """Run every timer due at ``now``; touches only what fell due."""
        timers = self.timers
        ran: set[int] = set()
        while True:
            obj = timers.pop_due(now)
            if obj is None:
                break
            if isinstance(obj, int):              # a TIME_WAIT entry's packed int
                self._end_timewait(bits_key(obj), now, "2*MSL", expired=True)
                continue
            local, remote = obj.local, obj.remote
            key = (local[0], local[1], remote[0], remote[1])
            if id(obj) in ran:
                # Its timers are due again at once: leave it for the next tick.
                timers.arm(obj)
                break
            ran.add(id(obj))
            lst = self._syn_queue_of(key, obj) if obj.state is _SYN_RECEIVED else None
            if lst is not None:
                self._tick_child(lst, key, obj, now)
                continue
            obj.tick(now=now)
            self._after(key, obj, now)

    def take_touched(self) -> set[int]:
        """The descriptors something happened to since the last call (and forget them)."""
        t = self.touched
        if t:
            self.touched = set()
        return t

    # ------------------------------------------------------------ internals
    def _emit(self, src: str, dst: str, seg: TcpSegment, gso: int = 0, tos: int = 0) -> None:
        if ":" in src:
            # IP_TOS's DSCP is IPv4's only (IPV6_TCLASS is not modelled); the ECN
            # field is the stack's in either family (ECT(0) on new data).
            self._emit6(src, dst, seg, gso, tos & 3)
            return
        self._ident = (self._ident + 1) & 0xFFFF
        off = self._offload
        if dst[:4] == "127." or dst == self.addr:
            self._emit_lo(src, dst, seg, gso, tos)
            return
        partial = gso > 0 or (off is not None and off.tx_csum)
        ts = seg.timestamps
        # build_tcp_packet()'s usual case (the timestamp the only option), called directly.
        packet = build_ts_packet(src, dst, seg, ts, self.cfg.ip_ttl, self._ident, tos, partial) \
            if ts is not None and seg.mss is None and seg.wscale is None \
            and not seg.sack_permitted and not seg.sack_blocks and not seg.unknown_options \
            else None
        self._out.append(packet if packet is not None else build_tcp_packet(
            src, dst, seg, ttl=self.cfg.ip_ttl, ident=self._ident, csum_partial=partial,
            tos=tos))
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

    def _emit_lo(self, src: str, dst: str, seg: TcpSegment, gso: int, tos: int) -> None:
        """A TCP segment to one of our IPv4 addresses: looped back whole (a
        super-segment too, as lo with GSO), with the pseudo-header checksum only."""
        self._lo.append(build_tcp_packet(
            src, dst, seg, ttl=self.cfg.ip_ttl, ident=self._ident,
            csum_partial=True, tos=tos))
        segs = -(-len(seg.payload) // gso) if gso else 1
        self._ident = (self._ident + segs - 1) & 0xFFFF
        self.stats["segments out"] += segs
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
        lst = self._syn_queue_of(key, conn)
        if lst is not None:
            self._collect_child(lst, key, conn, now)
        else:
            self._drain(key, conn)

    def _syn_queue_of(self, key: Key, conn: Connection) -> Listener | None:
        """The listener whose SYN queue holds ``conn``, if one does."""
        lst = self._listener_for(key[0], key[1])
        if lst is None and self.forward is not None:
            lst = self.forward.listener_of(key)
        if lst is not None and lst.syn_queue.get((key[2], key[3])) is conn:
            return lst
        return None

    def _listener_for(self, ip: str, port: int) -> Listener | None:
        """The listener for a segment to ``ip``:``port``: bound to the address, else the
        wildcard of its family; an IPv4 segment also finds a dual-stack listener on
        ``::`` (one without IPV6_V6ONLY, Linux's default net.ipv6.bindv6only = 0)."""
        lst = self.listeners.get((ip, port))
        if lst is not None:
            return lst
        if ":" in ip:
            return self.listeners.get(("::", port))
        lst = self.listeners.get(("0.0.0.0", port))
        if lst is None and self.addr6 is not None:
            lst = self.listeners.get(("::", port))
            if lst is not None and self.socks[lst.fd].v6only:
                return None
        return lst

    def _drain(self, key: Key, conn: Connection) -> None:
        out = conn.outbox
        if out:
            ecn = conn.ecn
            src, dst = key[0], key[2]
            # A segment longer than the MSS is a TSO super-segment (tcp/output.py).
            mss = conn.mss if conn.tso_max else 1 << 30
            if ecn is not None and ecn.ok:
                self._drain_ecn(key, conn, ecn)
            elif ":" in src or dst == self.addr or dst[2] == "7" and dst[:4] == "127.":
                # (dst[2] first: a one-character index allocates nothing, a slice does)
                tos = conn.opts.tos          # IP_TOS
                for entry in out:
                    seg = conn.out_record(entry) if type(entry) is tuple else entry
                    # (A Fast Open SYN's data is no super-segment: it goes whole.)
                    self._emit(src, dst, seg,
                               mss if len(seg.payload) > mss and not seg.flags & SYN else 0, tos)
            else:
                # self._emit(), inline for IPv4 to another host: every segment a
                # connection sends there.
                tos = conn.opts.tos          # IP_TOS
                ttl = self.cfg.ip_ttl
                off = self._offload
                partial = off is not None and off.tx_csum
                packets = self._out
                plain = resets = 0
                for entry in out:
                    if type(entry) is tuple:
                        # The usual segment (Connection._segment()'s OutTs): its packet
                        # straight from the values, no TcpSegment record.
                        flags, seq, ack, window, urgent, payload, tsval, tsecr = entry
                        if len(payload) <= mss:
                            ident = self._ident = (self._ident + 1) & 0xFFFF
                            packets.append(build_ts_fields(
                                src, dst, key[1], key[3], seq, ack, flags, window, urgent,
                                payload, tsval, tsecr, ttl, ident, tos, partial,
                            ) or build_tcp_packet(src, dst, conn.out_record(entry), ttl=ttl,
                                                  ident=ident, csum_partial=partial, tos=tos))
                            plain += 1
                            if flags & RST:
                                resets += 1
                            continue
                    seg = conn.out_record(entry) if type(entry) is tuple else entry
                    payload = seg.payload
                    if len(payload) > mss and not seg.flags & SYN:
                        self._emit(src, dst, seg, mss, tos)
                        continue
                    ident = self._ident = (self._ident + 1) & 0xFFFF
                    ts = seg.timestamps
                    # build_tcp_packet()'s usual cases, its tests inline (a call with
                    # keywords is not inlined): the timestamp the only option, or a SYN's
                    # (SYN,ACK's) four options in Linux's layout.
                    if ts is None or seg.sack_blocks or seg.unknown_options:
                        packet = None
                    elif seg.mss is None and seg.wscale is None and not seg.sack_permitted:
                        packet = build_ts_packet(src, dst, seg, ts, ttl, ident, tos, partial)
                    elif seg.mss is not None and seg.wscale is not None and seg.sack_permitted:
                        packet = _build_syn_packet(src, dst, seg, ts, ttl, ident, tos, partial)
                    else:
                        packet = None
                    packets.append(packet if packet is not None else build_tcp_packet(
                        src, dst, seg, ttl=ttl, ident=ident, csum_partial=partial, tos=tos))
                    plain += 1
                    if seg.flags & RST:
                        resets += 1
                if plain:
                    self.stats["segments out"] += plain
                    if resets:
                        self.stats["resets sent"] += resets
            conn.outbox = ()   # not clear(): an idle connection keeps no list
        if conn.changes:
            for ch in conn.changes:
                self.changes.append((key, ch))
            conn.changes = ()

    def _drain_ecn(self, key: Key, conn: Connection, ecn: EcnState) -> None:
        """:meth:`_drain` for a connection with ECN: its new data goes out ECT(0)
        (Linux tcp_ecn_send(); not SYNs, pure ACKs or retransmissions)."""
        mss = conn.mss if conn.tso_max else 1 << 30
        skip = ecn.no_ect
        dscp = conn.opts.tos & 0xFC          # IP_TOS; the ECN field is the stack's
        for entry in conn.outbox:
            seg = conn.out_record(entry) if type(entry) is tuple else entry
            ect = ECT0 if seg.payload and not seg.flags & SYN and id(seg) not in skip else 0
            self._emit(key[0], key[2], seg,
                       mss if len(seg.payload) > mss and not seg.flags & SYN else 0,
                       tos=dscp | ect)
        skip.clear()
        conn.outbox = ()

    def _collect_conn(self, key: Key, conn: Connection, now: int) -> None:
        if self.tstamping and conn in self.tstamping and not errqueue.tx_events(
                self.tstamping[conn], now):
            del self.tstamping[conn]
        if conn.outbox or conn.changes:
            self._drain(key, conn)
        state = conn.state
        if state is not _TIME_WAIT and state is not _CLOSED:
            # (the common case first) self.timers.arm(conn), inline: after every segment,
            # and in it conn.next() (Timers.next(): the earliest deadline), inline too.
            best = conn.rtx
            if (t := conn.delack) is not None and (best is None or t < best):
                best = t
            if (t := conn.persist) is not None and (best is None or t < best):
                best = t
            if (t := conn.keepalive) is not None and (best is None or t < best):
                best = t
            if (brief := conn.brief) is not None:
                # (the Brief fields' dict read directly, as Timers.next() does)
                t = brief.get("finwait2")  # type: ignore[assignment]
                if t is not None and (best is None or t < best):
                    best = t
                t = brief.get("timewait")  # type: ignore[assignment]
                if t is not None and (best is None or t < best):
                    best = t
            if best is not None and ((at := conn.timer_at) is None or best < at):
                conn.timer_at = best
                self.timers.push(best, conn)
            return
        conn.mem_release()
        if conn.fd == ORPHAN:
            self.orphans -= 1
        if state is _TIME_WAIT and len(self.timewait) >= self.cfg.int(
                "net.ipv4.tcp_max_tw_buckets"):
            # Linux tcp_time_wait(): no room in the TIME_WAIT table, so the connection
            # closes at once (TcpExtTCPTimeWaitOverflow).
            self.cfg.mib["TcpExtTCPTimeWaitOverflow"] += 1
            self.timers.disarm(conn)
            del self.conns[key]
            if self.record_changes:
                self.changes.append((key, StateChange(
                    now, _TIME_WAIT, _CLOSED, "TIME_WAIT table full: tcp_max_tw_buckets")))
        elif state is _TIME_WAIT:
            rcv = conn.rcv
            assert rcv is not None
            bits = TimeWait(
                local=conn.local, remote=conn.remote, snd_nxt=conn.snd.snd_nxt,
                rcv_nxt=rcv.rcv_nxt, window=rcv.window_field(), since=now,
                expires=conn.timewait or now + TIME_WAIT_US, ts=conn.ts_ok,
                ts_recent=conn.ts_recent, ts_offset=conn.ts_offset).bits
            self.timewait[key] = bits
            self.timers.add_timewait(bits)
            self.ports.tw_add(key[1])
            self.timers.disarm(conn)
            del self.conns[key]
        else:                               # CLOSED
            self.timers.disarm(conn)
            del self.conns[key]

    def _end_timewait(self, key: Key, now: int, why: str, *, expired: bool = False) -> None:
        del self.timewait[key]
        if not expired:
            self.timers.dead(timewait=True)    # its timer entry is stale now
        self.ports.tw_remove(key[1])
        if self.record_changes:
            self.changes.append((key, StateChange(now, _TIME_WAIT, _CLOSED, why)))


def _has_md5(seg: TcpSegment) -> bool:
    return any(kind == TCPOPT_MD5SIG for kind, _ in seg.unknown_options)
