"""A listener's side of the host: SYNs, the SYN queue's children, SYN cookies.

:meth:`ListenMixin._to_listener` takes every segment that found no connection
but a listening socket: a SYN becomes a child in the SYN queue (or, when the
queue is full and ``net.ipv4.tcp_syncookies`` allows, a cookie SYN,ACK and no
state at all); the final ACK moves a child to the accept queue, or, when it
carries a valid cookie, creates the connection there directly (Linux
``tcp_v4_rcv`` -> ``tcp_conn_request`` / ``tcp_check_req`` / ``cookie_v4_check``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from synack import seq as sq
from synack.host.fastopen import start_child, try_fastopen
from synack.host.loopback import LO_SRC6
from synack.host.records import Key, Sock, shared_addr
from synack.tcp import fastopen, syncookies
from synack.tcp.connection import Connection
from synack.tcp.listener import COOKIE, Listener
from synack.tcp.state import State
from synack.wire.tcp import ACK, FIN, RST, SYN, TcpSegment

if TYPE_CHECKING:
    from synack.stack import Stack

SOFT_GSO_MAX = 0xFFFF     # synack.stack's: what the stack builds without device TSO

# Members bound once: `State.X` is a class-attribute lookup through the Enum metaclass.
_SYN_RECEIVED = State.SYN_RECEIVED
_CLOSED = State.CLOSED


class ListenMixin:
    """Listener demux and SYN cookies, for :class:`synack.stack.Stack`."""

    _cookie_secret: bytes | None     # set in Stack.__init__; drawn at the first cookie

    def _to_listener(self: Stack, lst: Listener, key: Key, seg: TcpSegment, now: int,
                     ip_ecn: int = 0) -> None:
        flags = seg.flags
        peer = (key[2], key[3])              # the SYN queue's key, and a child's remote
        child = lst.syn_queue.get(peer)
        if child is not None:
            # (lst.accept_queue_full(), inline, first: nearly always False)
            if len(lst.accept_queue) > lst.max_backlog and flags & ACK \
                    and not flags & (SYN | RST) and child.state is _SYN_RECEIVED \
                    and seg.ack == child.snd.snd_max:
                # The final ACK finds the accept queue full (Linux tcp_check_req()).
                lst.listen_overflows += 1
                self.stats["listen overflows"] += 1
                if self.cfg.int("net.ipv4.tcp_abort_on_overflow"):
                    child.abort(now=now, why="accept queue full: tcp_abort_on_overflow",
                                send_rst=False)
                    self._collect_child(lst, key, child, now)
                    self._reset_closed(key[0], key[2], seg, "accept queue overflow")
                return
            if child.opts.defer_accept and self._defer(key, child, seg):
                return
            child.on_segment(seg, now)
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
        # lst.syn_verdict() answers None at once (queue the SYN) while both queues are
        # within the backlog and cookies are the default (1: only for a full queue).
        backlog = lst.max_backlog
        if len(lst.syn_queue) > backlog or len(lst.accept_queue) > backlog \
                or self.cfg.syncookies != 1:
            why = lst.syn_verdict()
            if why == COOKIE:
                self._send_cookie(lst, key, seg, now)
                return
            if why is not None:
                lst.drop_syn()
                self.stats["SYNs dropped: " + why] += 1
                return
        owner = self.socks.get(lst.fd)       # self._listener_sock(lst), inline
        # (owner.listener, a Rare field of the Sock, read from its dict: no descriptor call)
        if owner is None or (rare := owner.rare) is None or rare.get("listener") is not lst:
            raise LookupError("listener without a socket")
        opts = owner.opts   # shared: setsockopt() replaces a socket's record, never edits it
        client = peer[0]
        iss = self.isn(key[0], key[1], client, peer[1], now)
        local = lst.local
        if local[0] != key[0]:               # a wildcard listener: its address per SYN
            # shared_addr((key[0], key[1])), kept by the listener for each address.
            local = lst.addrs.get(key[0])    # type: ignore[assignment]
            if local is None:
                local = shared_addr((key[0], key[1]))
                if len(lst.addrs) < 64:
                    lst.addrs[key[0]] = local
        # self.route_mtu(client), inline for a peer that is not local (is_local()).
        mtu = self.route_mtu(client) if client[:4] == "127." or client == self.addr \
            or client == self.addr6 or client == LO_SRC6 else self.mtu
        # Connection(local=, remote=, cfg=, opts=, iss=, now=, mtu=, ts_offset=, passive=),
        # by position: a class called with keywords builds a dict of them.
        child = Connection(local, peer, self.cfg, opts, iss, now, mtu,
                           self.rng.getrandbits(32), True)
        off = self._offload                  # self._tso_max(), inline
        child.tso_max = self._tso_max() if off is not None and off.tso_max else SOFT_GSO_MAX
        if not self.record_changes:
            child.changes = None
        # Fast Open needs its option or data in the SYN (try_fastopen() is (False, None)
        # for a SYN with neither, and counts nothing).
        fo_reply: tuple[tuple[int, bytes], ...] = ()
        if seg.unknown_options or seg.payload:
            fast, reply = try_fastopen(self, lst, owner, seg, client, key[0])
            if fast:
                # A Fast Open child: accepted at once, in SYN_RECEIVED, with the SYN's data.
                start_child(self, lst, child, seg, now, reply, ip_ecn)
                self.conns[key] = child
                lst.accept_queue.append(child)
                if lst.fd >= 0:
                    self.touched.add(lst.fd)
                self._collect_conn(key, child, now)
                return
            if reply is not None:
                fo_reply = (fastopen.option(reply.cookie, reply.exp),)
        lst.syn_queue[peer] = child
        lst.young += 1
        child.open_passive(seg, now, fo_reply, ip_ecn)
        # self._collect_child(lst, key, child, now), inline: the child is in SYN_RECEIVED
        # with its SYN,ACK to send (always: its outbox holds it) and its timer to arm.
        self._drain(key, child)
        # Its self.timers.arm(child): a new child has no heap entry yet, and of its
        # timers only the SYN,ACK's retransmission one is armed (open_passive(); no
        # persist, delayed ACK, keepalive or close timer), so child.next() is child.rtx.
        t = child.rtx
        if t is not None:
            child.timer_at = t
            self.timers.push(t, child)

    # ------------------------------------------------------------ SYN cookies
    def _secret(self: Stack) -> bytes:
        # Drawn lazily so that runs without cookies consume the seeded RNG as before.
        secret = self._cookie_secret
        if secret is None:
            secret = self._cookie_secret = syncookies.new_secret(self.rng.getrandbits(128))
        return secret

    def _cookie_conn(self: Stack, lst: Listener, key: Key, syn: TcpSegment, iss: int,
                     now: int) -> Connection:
        """A child as a SYN would create it, with the cookie ``iss`` and a TS offset
        the listener can recompute (Linux keeps no request, only the hash key)."""
        owner = self._listener_sock(lst)
        opts = owner.opts   # shared: setsockopt() replaces a socket's record, never edits it
        tup = (key[2], key[3], key[0], key[1])
        local = lst.local if lst.local[0] == key[0] else shared_addr((key[0], key[1]))
        child = Connection(local=local, remote=(key[2], key[3]), cfg=self.cfg,
                           opts=opts, iss=iss, now=now, mtu=self.route_mtu(key[2]),
                           ts_offset=syncookies.ts_offset(self._secret(), tup))
        child.tso_max = self._tso_max()
        if not self.record_changes:
            child.changes = None
        child.open_passive(syn, now=now)
        return child

    def _send_cookie(self: Stack, lst: Listener, key: Key, syn: TcpSegment, now: int) -> None:
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
            # The options go into the clock's low bits and the per-connection offset is
            # added after (Linux cookie_init_timestamp(), then tcp_make_synack() adds
            # ts_off), so they do not show on the wire.
            neg = child
            off = neg.ts_offset
            clock = (synack.timestamps[0] - off) & 0xFFFFFFFF
            tsval = syncookies.encode_ts(clock,
                                         neg.snd_wscale if neg.rcv_wscale is not None else None,
                                         neg.sack_ok)
            synack = replace(synack, timestamps=((tsval + off) & 0xFFFFFFFF,
                                                 synack.timestamps[1]))
        lst.last_cookie_sent = now
        self.stats["syncookies sent"] += 1
        self._emit(key[0], key[2], synack)

    def _cookie_ack(self: Stack, lst: Listener, key: Key, seg: TcpSegment, now: int) -> bool:
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
        # Linux cookie_v4_check(): the echoed TSval less the offset holds the options.
        opts = syncookies.decode_ts((ts[1] - syncookies.ts_offset(self._secret(), tup))
                                    & 0xFFFFFFFF) if ts is not None and ts[1] else None
        syn = TcpSegment(src_port=seg.src_port, dst_port=seg.dst_port, seq=irs, flags=SYN,
                         window=seg.window, mss=mss,
                         wscale=opts.wscale if opts else None,
                         sack_permitted=opts.sack if opts else False,
                         timestamps=(ts[0], 0) if opts and ts is not None else None)
        child = self._cookie_conn(lst, key, syn, iss, now)
        child.outbox = ()           # its SYN,ACK was sent long ago, by the cookie path
        child.segs_out = 0
        child.rtt_seq = None        # no SYN,ACK send time to measure an RTT from
        lst.syn_queue[(key[2], key[3])] = child
        lst.young += 1
        child.on_segment(seg, now=now)
        self._collect_child(lst, key, child, now)
        return True

    def _defer(self: Stack, key: Key, child: Connection, seg: TcpSegment) -> bool:
        """TCP_DEFER_ACCEPT: the handshake's bare ACK is dropped, the entry remembered as
        acked, while fewer SYN,ACK timeouts than the option's count have passed (Linux
        tcp_check_req(): TCPDeferAcceptDrop); data or a FIN completes it as usual."""
        rcv = child.rcv
        if (seg.flags & (ACK | SYN | RST | FIN) != ACK or seg.payload or rcv is None
                or child.state is not _SYN_RECEIVED or seg.ack != child.snd.snd_max
                or seg.seq != rcv.rcv_nxt or child.retransmits >= child.opts.defer_accept):
            return False
        self.deferred.add(key)
        self.cfg.mib["TcpExtTCPDeferAcceptDrop"] += 1
        return True

    def _tick_deferred(self: Stack, lst: Listener, key: Key, child: Connection,
                       now: int) -> None:
        """The SYN,ACK timer of an entry TCP_DEFER_ACCEPT holds (Linux syn_ack_recalc()):
        no SYN,ACK while waiting for data, one more at the end of the period to give
        the peer a last chance; gone once both the period and the retries are over."""
        n, defer = child.retransmits, child.opts.defer_accept
        if n >= self.cfg.int("net.ipv4.tcp_synack_retries") and n >= defer:
            child.abort(now=now, why="TCP_DEFER_ACCEPT: no data", send_rst=False)
        else:
            child.rtx = None
            if n >= defer - 1:
                child._send_synack(now)
                child.total_retrans += 1
            if n == 0:
                lst.young -= 1
            child.retransmits += 1
            child.backoff += 1
            child.rtx = now + child.rtt.backed_off(child.backoff)
        self._collect_child(lst, key, child, now)

    def _tick_child(self: Stack, lst: Listener, key: Key, child: Connection, now: int) -> None:
        """A SYN queue entry's timers fell due: its SYN,ACK again, or, when the queue is
        crowded and it has had its share of retries, gone without a word (Linux
        reqsk_timer_handler())."""
        if key in self.deferred and child.rtx is not None and child.rtx <= now:
            self._tick_deferred(lst, key, child, now)
            return
        limit = lst.synack_retries()
        if child.retransmits >= limit and limit < self.cfg.int("net.ipv4.tcp_synack_retries") \
                and child.rtx is not None and child.rtx <= now:
            self.stats["SYN queue entries pruned"] += 1
            child.abort(now=now, why="SYN queue pruned: old entries give way", send_rst=False)
        else:
            was_young = child.retransmits == 0
            child.tick(now=now)
            if was_young and child.retransmits:
                lst.young -= 1
        self._collect_child(lst, key, child, now)

    def _collect_child(self: Stack, lst: Listener, key: Key, child: Connection, now: int) -> None:
        if child.outbox or child.changes:    # (_drain() has nothing to do otherwise)
            self._drain(key, child)
        state = child.state
        if state is _SYN_RECEIVED:
            # self.timers.arm(child), inline: once per SYN.
            t = child.next()
            if t is not None and ((at := child.timer_at) is None or t < at):
                child.timer_at = t
                self.timers.push(t, child)
            return
        del lst.syn_queue[child.remote]      # (key[2], key[3]): the child's remote
        if self.deferred:
            self.deferred.discard(key)
        if child.retransmits == 0:
            lst.young -= 1
        if state is _CLOSED:
            self.timers.disarm(child)
            return
        self.conns[key] = child
        lst.accept_queue.append(child)
        if lst.fd >= 0:
            self.touched.add(lst.fd)
        self._collect_conn(key, child, now)

    def _listener_sock(self: Stack, lst: Listener) -> Sock:
        sock = self.socks.get(lst.fd)
        if sock is None or sock.listener is not lst:
            raise LookupError("listener without a socket")
        return sock
