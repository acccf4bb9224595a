"""One TCP connection (a TCB): segments and calls in, segments and state changes out.

Theory of operation
-------------------
A :class:`Connection` is pure state: it never reads a clock, sleeps or does I/O.
Every input carries ``now`` (integer microseconds):

* ``on_segment(seg, now=)`` -- a validated :class:`TcpSegment` for this 4-tuple;
* ``send`` / ``recv`` / ``shutdown_write`` / ``close`` / ``abort`` -- the application;
* ``tick(now=)`` -- timers that fell due.

Outputs are read back by the owner (the :class:`~synack.stack.Stack`):
``outbox`` holds segments to send, ``changes`` the state transitions with their
reasons (each a list once there is something in it; the owner drains it and puts
back ``()``, so that an idle connection holds no list), ``error`` the errno a socket call should raise, and
:meth:`next_deadline` says when ``tick`` is next needed.

Incoming segments follow RFC 9293 3.10.7 step by step (sequence check, RST,
SYN, ACK, text, FIN), hardened by RFC 5961 (challenge ACKs). Where the RFC
leaves a choice the connection does what Linux does, and says so.

The work is split: :class:`~synack.tcp.sender.Sender` holds SND.* and the send
buffer, :class:`~synack.tcp.receiver.Receiver` holds RCV.* and reassembly,
:class:`~synack.tcp.rtt.RttEstimator` the RTO (the Sender is one: ``rtt`` is
``snd``), :class:`~synack.tcp.options.Negotiated` what the SYNs agreed
(timestamps, SACK, window scale), :class:`~synack.tcp.ackpolicy.AckPolicy` when to
ACK (the Receiver is one: ``ackp`` is ``rcv`` once the peer's SYN is in),
:class:`~synack.tcp.recovery.Recovery` loss recovery over a pluggable
congestion controller (:mod:`synack.tcp.cc`). This module owns the state and
the opening calls; :mod:`synack.tcp.appcalls` has the application's calls,
:mod:`synack.tcp.input` processes what comes in,
:mod:`synack.tcp.output` decides what goes out,
:mod:`synack.tcp.timeouts` runs the timers and :mod:`synack.tcp.icmp_errors`
handles ICMP errors about our segments (PMTU, unreachable).
"""

from __future__ import annotations

from typing import Any

from synack import seq as sq
from synack.config import Sysctl
from synack.tcp.ackpolicy import AckPolicy
from synack.tcp.appcalls import AppCallsMixin
from synack.tcp.ecn import EcnMixin, EcnState
from synack.tcp.fastopen import FastOpenState
from synack.tcp.fastopen_conn import FastOpenMixin
from synack.tcp.icmp_errors import IcmpErrorsMixin
from synack.tcp.input import InputMixin
from synack.tcp.options import Negotiated, SynOptions
from synack.tcp.output import OutputMixin
from synack.tcp.rack import IDLE as IDLE_RACK
from synack.tcp.rare import Brief, Pooled, Rare
from synack.tcp.receiver import Receiver
from synack.tcp.records import (  # noqa: F401 - DEFAULT_OPTS re-exported: its old home
    DEFAULT_OPTS,
    SockOpts,
    StateChange,
    TracePoint,
    make_change,
)
from synack.tcp.recovery import Recovery
from synack.tcp.replies import RepliesMixin
from synack.tcp.rtt import RttEstimator
from synack.tcp.scoreboard import NO_SACKS
from synack.tcp.sender import Sender
from synack.tcp.sizing import DEFAULT_MSS, SYN_TERMS, Derived, derive, syn_terms
from synack.tcp.sizing import OFFER_SACK as _OFFER_SACK
from synack.tcp.sizing import OFFER_TS as _OFFER_TS
from synack.tcp.sizing import PASSIVE as _PASSIVE
from synack.tcp.sizing import PEER_MSS as _PEER_MSS
from synack.tcp.sizing import PMTU as _PMTU
from synack.tcp.sizing import RCV_CAPACITY as _RCV_CAPACITY
from synack.tcp.sizing import RCV_MAX_CAPACITY as _RCV_MAX_CAPACITY
from synack.tcp.sizing import RCV_WSCALE as _RCV_WSCALE
from synack.tcp.state import MOVES_BY_NAME as _MOVES
from synack.tcp.state import Event, State, next_state
from synack.tcp.synack_out import SynAckMixin
from synack.tcp.timeouts import TIME_WAIT_US, TimeoutsMixin
from synack.tcp.timers import RTO, Timers
from synack.wire.tcp import ACK, CWR, ECE, SYN, TcpSegment, make_segment

SECOND = 1_000_000
# What Connection._segment() puts in the outbox for the usual segment, the timestamp
# its only option: (flags, seq, ack, window, urgent, payload, tsval, tsecr), the values
# the stack builds its packet from (Stack._drain); out_record() makes it a TcpSegment.
OutTs = tuple[int, int, int, int, int, bytes, int, int]
_MASK, _HALF = sq.MASK, sq.HALF   # for the inlined arithmetic of the per-segment paths
# Members bound once: `State.X` is a class-attribute lookup through the Enum metaclass.
_CLOSED = State.CLOSED
_ESTABLISHED = State.ESTABLISHED
_FIN_WAIT_2 = State.FIN_WAIT_2
_LAST_ACK = State.LAST_ACK
_LISTEN = State.LISTEN
_SYN_RECEIVED = State.SYN_RECEIVED
_SYN_SENT = State.SYN_SENT
_TIME_WAIT = State.TIME_WAIT
# State, Event, CaState members bound once (a member lookup on an Enum class is slow).
_EV_ACTIVE_OPEN = Event.ACTIVE_OPEN
_EV_CLOSE = Event.CLOSE
_EV_RCV_SYN = Event.RCV_SYN
# Indices in Connection.pool (the Pooled fields below; sizing.derive() makes it):
# _take_syn_options reads the tuple at once.
# The ACK policy a listener's child names until its Receiver takes over, in the same
# call that makes it (never written: nothing runs in between).
_NO_ACKP = AckPolicy(DEFAULT_MSS)
_ECE_CWR = ECE | CWR


class Connection(AppCallsMixin, InputMixin, OutputMixin, TimeoutsMixin, IcmpErrorsMixin,
                 FastOpenMixin, EcnMixin, RepliesMixin, SynAckMixin, Negotiated, Timers):
    """A TCP control block driven by segments, calls and time."""

    # Slots, not a __dict__: a few hundred bytes less for each of many idle connections.
    # The mixins have empty __slots__, so an attribute not listed here is an error.
    __slots__ = (
        "ackp", "adv_mss", "backoff", "cfg", "changes", "chrono",
        "cwnd_limited", "cwnd_usage_seq", "data_segs_in", "data_segs_out", "delivered",
        "delivery_rate", "ecn", "last_ack_sent", "last_data_sent", "last_rcv", "local",
        "max_packets_out", "mem_charged", "mss", "now", "opts", "outbox", "pool",
        "rare", "rate_mark_delivered", "rate_mark_time", "rcv", "rec", "remote",
        "retransmits", "rtt", "segs_in", "segs_out", "snd", "snd_max_capacity",
        "state", "trace", "tso_max",
    ) + ("fd", "timer_at") + (       # the host's (see __init__)
        # Negotiated's (a base class without slots of its own; Timers has its own).
        "sack_ok", "snd_wscale", "ts_offset", "ts_ok", "ts_recent", "ts_recent_stamp")

    # A Connection is its own Negotiated and its own Timers. These name it so, as
    # properties: a slot holding ``self`` made every connection a reference cycle, left
    # for the garbage collector instead of freed when the host lets it go (its memory
    # then comes back cold, and each collection walked every dead connection).
    @property
    def neg(self) -> Negotiated:
        """The agreed options (``self``)."""
        return self

    @property
    def timers(self) -> Timers:
        """The connection's timers (``self``)."""
        return self

    # Fields that stay at their default in most connections (rare.py): no slot each.
    # None of them is read or written for every segment.
    error = Rare[int | None](None)       # the errno a socket call should raise
    soft_error = Rare[int | None](None)  # Linux sk_err_soft: an ICMP error, told on timeout
    tfo = Rare[FastOpenState | None](None)   # TCP Fast Open (tcp/fastopen_conn.py)
    wr_shut = Rare[bool](False)          # shutdown(SHUT_WR) or close()
    rd_shut = Rare[bool](False)          # shutdown(SHUT_RD) or close()
    total_retrans = Rare[int](0)         # counters, as `nstat` / `ss -ti` would show them
    rto_count = Rare[int](0)
    dsack_dups = Rare[int](0)
    last_oow_ack = Rare[int](-1)         # when we last answered an invalid segment
    # Fields at their default but for a while (the handshake, a timeout, probing) or in
    # connections that are closing: in the dict ``brief``, None nearly always, which
    # the per-segment tests read first.
    rtt_seq = Brief[int | None](None, drops=("rtt_time",))  # the SYN timed (Karn's rule)
    rtt_time = Brief[int](0)                 # when it left
    retrans_stamp = Brief[int | None](None)  # when the head was first retransmitted
    # TCP_USER_TIMEOUT's clocks (Linux: the head skb's first send time once it is
    # retransmitted, icsk_probes_tstamp for zero-window probes).
    ut_start = Brief[int | None](None)
    probe_start = Brief[int | None](None)
    persist_backoff = Brief[int](0)          # zero-window probes sent since it closed
    probes_out = Brief[int](0)               # keepalive probes unanswered
    app_closed = Brief[bool](False)          # close() called: the socket is an orphan
    # Fields that many connections hold alike, and no segment's path reads (rare.py):
    # one shared tuple in the slot ``pool``, in this order.
    peer_mss = Pooled[int](_PEER_MSS)    # the MSS option of the peer's SYN
    pmtu = Pooled[int](_PMTU)            # lowered by ICMP "fragmentation needed"
    rcvbuf = Pooled[int](2)              # SO_RCVBUF (Linux sk_rcvbuf)
    rcv_capacity = Pooled[int](_RCV_CAPACITY)   # receive buffer payload bytes, before the SYN
    rcv_max_capacity = Pooled[int](_RCV_MAX_CAPACITY)  # what the receive buffer may grow to
    passive = Pooled[bool](_PASSIVE)     # opened by a listener
    offer_ts = Pooled[bool](_OFFER_TS)   # Negotiated's: what our SYN offers
    offer_sack = Pooled[bool](_OFFER_SACK)
    rcv_wscale = Pooled[int | None](_RCV_WSCALE)   # None: we do not offer window scaling

    def __init__(
        self,
        local: tuple[str, int],
        remote: tuple[str, int],
        cfg: Sysctl,
        opts: SockOpts,
        iss: int,
        now: int,
        mtu: int = 1500,
        ts_offset: int = 0,
        passive: bool = False,
    ) -> None:
        # (Positional arguments too: the host makes a connection per SYN, and a class
        # called with keywords builds a dict of them. ``passive``: a listener's child,
        # whose open_passive() or open_fastopen_child() follows at once.)
        self.local = local
        self.remote = remote
        self.now = now
        self.cfg = cfg
        self.opts = opts
        self.state = _CLOSED
        # What the sysctls, the socket's options, the MTU and the family make of a new
        # connection: alike for every connection of a listener, so computed once per
        # configuration (the host's cache, emptied by every sysctl write: a value set
        # after listen() shows in the next connection, as Linux reads them per SYN).
        okey = (opts.rcvbuf, opts.sndbuf, opts.window_clamp, opts.maxseg, opts.congestion,
                mtu, ":" in local[0])
        got: Derived | None = cfg.derived.get(okey)  # type: ignore[assignment]
        if got is None:
            got = derive(cfg, opts, mtu, local[0])
            if len(cfg.derived) < 64:
                cfg.derived[okey] = got
        pool, snd_max_capacity, snd_capacity, adv_mss, cc_proto = got
        self.pool: tuple[object, ...] = pool
        self.snd_max_capacity: int = snd_max_capacity
        self.adv_mss: int = adv_mss          # what we announce in our SYN (_derive)
        self.snd = snd = Sender(iss, snd_capacity)
        self.rtt: RttEstimator = snd        # the Sender is the RTT estimator too
        # Timers.__init__(self), inline (it also makes brief None: its slot).
        self.rtx: int | None = None
        self.rtx_kind = RTO
        self.persist: int | None = None
        self.delack: int | None = None
        self.keepalive: int | None = None
        self.brief: dict[str, object] | None = None
        # Both made on first use and dropped (set back to ()) by the owner that drains
        # them: an idle connection holds no list (56 bytes each).
        self.outbox: list[TcpSegment] | tuple[()] = ()
        # None: nobody reads this connection's state changes, so none are recorded.
        self.changes: list[StateChange] | tuple[()] | None = ()
        self.rare: dict[str, object] | None = None   # the Rare fields' values, once set
        self.tso_max = 0                     # IP packet bytes the device cuts (0: no TSO)
        # Handshake results.
        # The effective send MSS (payload bytes). (Comparisons here, not min() and max():
        # those parse their arguments, several times the cost.)
        mss = self.mss = DEFAULT_MSS if DEFAULT_MSS <= adv_mss else adv_mss  # noqa: FURB136
        # self._init_negotiated(ts_offset), inline: nothing agreed yet.
        self.ts_offset = ts_offset
        self.ts_recent = 0
        self.ts_recent_stamp = 0
        if passive:
            # A listener's child takes the peer's SYN before anything else (open_passive()
            # and open_fastopen_child() call _take_syn_options() first), which sets what
            # the SYNs agreed (ts_ok, sack_ok, snd_wscale), the Receiver, and the ACK
            # policy (the Receiver): not set here, and no ACK policy of its own meanwhile.
            self.ackp = _NO_ACKP
        else:
            self.rcv: Receiver | None = None
            self.ts_ok = False
            self.sack_ok = False
            self.snd_wscale = 0
            self.ackp = AckPolicy(mss)
        self.last_ack_sent = 0               # RCV.NXT of the last ACK we sent (Linux rcv_wup)
        # ccmod.create(name, mss=, now=, hystart=) without its keyword calls: a copy
        # of the configuration's prototype (sizing.derive()), made for this MSS.
        self.rec = Recovery(cc_proto.fresh(mss, now), None, mss)
        # Retransmission bookkeeping.
        self.backoff = 0
        self.retransmits = 0                 # consecutive timeouts of the head segment
        self.cwnd_limited = False            # Linux is_cwnd_limited, this window
        self.max_packets_out = 0             # Linux max_packets_out, this window
        self.cwnd_usage_seq = iss            # Linux cwnd_usage_seq: where the window ends
        self.chrono: list[int] | None = None  # tcp_chrono_*: made at the first write
        # Keepalive.
        self.last_rcv = now
        self.last_data_sent = now
        # Counters, as `nstat` / `ss -ti` would show them.
        self.segs_in = 0
        self.segs_out = 0
        self.data_segs_in = 0
        self.data_segs_out = 0
        self.mem_charged = 0                 # queue bytes charged to the host (tcp_mem)
        self.delivered = 0
        self.rate_mark_time = now            # start of the delivery-rate interval
        self.rate_mark_delivered = 0          # self.delivered then
        self.delivery_rate = 0                # bytes per second
        self.trace: list[TracePoint] | None = None  # set to [] to record cwnd over time
        self.ecn: EcnState | None = None         # ECN, asked for or agreed (tcp/ecn.py)
        # Host-side bookkeeping, owned by the stack (never read here): the descriptor of
        # the socket (-1 until there is one) and the time of this connection's entry in
        # the stack's timer heap (None: no valid entry).
        self.fd = -1
        self.timer_at: int | None = None

    # ------------------------------------------------------------------ helpers
    def _change(self, event: Event, now: int, why: str = "") -> None:
        old = self.state
        # next_state(old, event), its table read inline; it raises for a move not there.
        new = self.state = _MOVES[old._name_].get(event._name_) or next_state(old, event)
        changes = self.changes
        if changes is not None:
            # (event._value_: Enum's value property is Python code)
            change = make_change(now, old, new, why or event._value_)
            if isinstance(changes, list):
                changes.append(change)
            else:
                self.changes = [change]
        if new is _CLOSED:
            self.clear()
        elif new is _TIME_WAIT:
            self.clear()
            self.timewait = now + TIME_WAIT_US
        elif new is _FIN_WAIT_2 and self.app_closed:
            self._arm_fin_timeout(now)

    def _arm_fin_timeout(self, now: int) -> None:
        # Linux tcp_close()/tcp_rcv_state_process(): an orphan waits tcp_fin_timeout in FIN_WAIT_2.
        self.finwait2 = now + self.cfg.int("net.ipv4.tcp_fin_timeout") * SECOND

    def _segment(self, flags: int, seq: int, payload: bytes = b"", urgent: int = 0,
                 syn: SynOptions | None = None,   # (not keyword-only: calls inlined)
                 unknown_options: tuple[tuple[int, bytes], ...] = ()) -> TcpSegment | OutTs:
        rcv = self.rcv
        seg: TcpSegment | OutTs
        ack = rcv.rcv_nxt if (rcv is not None and flags & ACK) else 0
        if flags & SYN:
            assert syn is not None, "a SYN carries the options of syn_options()"
            window = rcv.window() if rcv else self.rcv_capacity
            if window > 0xFFFF:  # noqa: PLR1730 - cheaper than min()
                window = 0xFFFF
            if rcv is not None:
                # The right edge is what the SYN,ACK announced, not the 16-bit overflow.
                rcv.rcv_adv = (rcv.rcv_nxt + window) & _MASK     # sq.add(), inline
            mss, wscale, sack_permitted, timestamps = syn
            seg = make_segment(self.local[1], self.remote[1], seq, ack, flags, window, urgent,
                               payload, mss, wscale, sack_permitted, (), timestamps,
                               unknown_options, 0, 0, 0, ())
        else:
            assert syn is None and not unknown_options, "only a SYN carries options"
            ecn = self.ecn
            if ecn is not None and ecn.demand_cwr and flags & ACK:
                flags |= ECE                 # RFC 3168 6.1.3: echo CE until CWR comes
            window = rcv.window_field() if rcv else 0
            if self.ts_ok and ecn is None and (rcv is None or not (rcv.ooo or rcv.dsack)
                                                or not self.sack_ok or not flags & ACK):
                # The usual segment (the timestamp its only option, no SACK blocks, no
                # ECN): its field values as an OutTs tuple, not a record; the stack
                # builds the packet straight from them (Stack._drain) and makes a
                # TcpSegment of them only for its rarer ways out (out_record()).
                # (self.ack_timestamps(now), inline.)
                # (The mask only when the sum wraps: an operation on a number above
                # 2**30 makes a new int.)
                if (tsval := self.now // 1000 + self.ts_offset) > 0xFFFFFFFF:
                    tsval &= 0xFFFFFFFF
                seg = (flags, seq, ack, window, urgent, payload, tsval, self.ts_recent)
            else:
                neg = self
                # neg.ack_timestamps(now), inline: once per segment sent.
                ts = ((self.now // 1000 + neg.ts_offset) & 0xFFFFFFFF, neg.ts_recent) \
                    if neg.ts_ok else None
                sack: tuple[tuple[int, int], ...] = ()
                if neg.sack_ok and rcv is not None and flags & ACK and (rcv.ooo or rcv.dsack):
                    sack = rcv.sack_blocks(3 if neg.ts_ok else 4)
                # One record per segment sent: every field positionally, in field order,
                # instead of the frozen dataclass's keyword __init__ (twice as slow).
                seg = make_segment(self.local[1], self.remote[1], seq, ack, flags, window,
                                   urgent, payload, None, None, False, sack, ts, (), 0, 0,
                                   0, ())
        out = self.outbox                    # self._emit(seg), inline: every segment
        # (The outbox holds TcpSegment | OutTs entries; __init__'s annotation says list.)
        if out:                              # (a list with segments; else () or empty)
            out.append(seg)  # type: ignore[union-attr,arg-type]
        else:
            self.outbox = [seg]  # type: ignore[list-item]
        self.segs_out += 1
        if flags & ACK and rcv is not None:
            self.last_ack_sent = rcv.rcv_nxt
            rcv.dsack = None                 # rcv.sent_ack(), inline
            ackp = self.ackp                 # ackp.on_ack_sent(), inline
            ackp.deadline = None
            if ackp.quick:
                ackp.quick -= 1
            self.delack = None
        return seg

    def _emit(self, seg: TcpSegment) -> None:
        out = self.outbox
        if out:                              # (a list with segments; else () or empty)
            out.append(seg)  # type: ignore[union-attr]
        else:
            self.outbox = [seg]

    def _send_ack(self) -> None:
        """A pure ACK (Linux tcp_send_ack())."""
        rcv = self.rcv
        if rcv is None or not self.ts_ok or self.ecn is not None or rcv.ooo or rcv.dsack:
            self._segment(ACK, self.snd.snd_nxt)
            return
        # self._segment(ACK, snd_nxt), inline for the usual pure ACK (the timestamp its
        # only option, no SACK blocks, no ECN): its OutTs entry, then the bookkeeping of
        # an ACK sent.
        nxt = rcv.rcv_nxt
        if (tsval := self.now // 1000 + self.ts_offset) > 0xFFFFFFFF:   # (mask if it wraps)
            tsval &= 0xFFFFFFFF
        seg = (ACK, self.snd.snd_nxt, nxt, rcv.window_field(), 0, b"", tsval, self.ts_recent)
        out = self.outbox
        if out:
            out.append(seg)  # type: ignore[union-attr,arg-type]
        else:
            self.outbox = [seg]  # type: ignore[list-item]
        self.segs_out += 1
        self.last_ack_sent = nxt
        ackp = self.ackp                     # ackp.on_ack_sent(), inline
        ackp.deadline = None
        if ackp.quick:
            ackp.quick -= 1
        self.delack = None                   # (rcv.dsack is None already)

    def mem_sync(self) -> None:
        """Charge the host for the bytes this connection's queues hold now (send buffer,
        data received and not read, out-of-order blocks); Linux charges skb truesize
        to tcp_memory_allocated, synack the payload bytes."""
        used = self.snd.buf.nbytes
        rcv = self.rcv
        if rcv is not None:
            used += len(rcv.ready)
            if rcv.ooo:
                used += sum(len(block[1]) for block in rcv.ooo)
        delta = used - self.mem_charged
        if delta:
            self.mem_charged = used
            self.cfg.mem_add(delta)

    def mem_release(self) -> None:
        """The connection is gone: give back everything it was charged."""
        if self.mem_charged:
            self.cfg.mem_add(-self.mem_charged)
            self.mem_charged = 0

    def _take_syn_options(self, seg: TcpSegment, now: int, passive: bool = False) -> None:
        """The peer's SYN (``passive``: we are a listener's child) or SYN,ACK is in."""
        pool: tuple[Any, ...] = self.pool
        # Agree with the peer's SYN or SYN,ACK: an option is used only if both SYNs
        # carried it (RFC 7323 2.2 / 3.2, RFC 2018 2).
        rcv_wscale = pool[_RCV_WSCALE]
        ws = seg.wscale
        if ws is not None and rcv_wscale is not None:
            self.snd_wscale = ws if ws < 14 else 14  # noqa: FURB136 - RFC 7323 2.3: 14 at most
        else:
            rcv_wscale = None
            self.snd_wscale = 0
        sack_ok = self.sack_ok = pool[_OFFER_SACK] and seg.sack_permitted
        ts = seg.timestamps
        ts_ok = self.ts_ok = pool[_OFFER_TS] and ts is not None
        if ts_ok and ts is not None:
            self.ts_recent = ts[0]
            self.ts_recent_stamp = now
        # What follows depends on these alone, alike for the connections of a listener:
        # kept per key (sizing.syn_terms()), not computed again for every SYN.
        key = (pool, rcv_wscale is None, seg.mss, passive, ts_ok, self.adv_mss,
               ":" in self.local[0])
        terms = SYN_TERMS.get(key)
        if terms is None:
            terms = syn_terms(key)
        self.pool, mss, quick = terms
        self.mss = mss
        rcv = self.rcv = Receiver(seg.seq, pool[_RCV_CAPACITY], mss, rcv_wscale or 0,
                                  pool[_RCV_MAX_CAPACITY])
        if self.opts.oobinline:
            rcv.oobinline = True
        rec = self.rec
        rec.mss = rec.cc.mss = mss
        if sack_ok:
            rec.board = NO_SACKS             # a board of its own at the first SACK block
            if self.cfg.recovery & 1:
                rec.rack = IDLE_RACK         # Linux tcp_is_rack(): RACK with SACK only
        self.ackp = rcv                      # the Receiver is the ACK policy too
        # rcv.enter_quickack(rcv_capacity), inline: a new Receiver's quick is 0 and
        # pingpong False.
        rcv.quick = quick

    def _fail(self, err: int, now: int, event: Event, why: str) -> None:
        self.error = err
        self._change(event, now, why)

    # ------------------------------------------------------------------ opening
    def open_active(self, *, now: int, defer: bool = False) -> None:
        """connect(): send a SYN and wait in SYN_SENT (RFC 9293 3.10.1). ``defer``
        (TCP_FASTOPEN_CONNECT with a cookie): the SYN waits for the first write."""
        self._change(_EV_ACTIVE_OPEN, now, "connect()")
        if not defer:
            self._send_syn(now)

    def _send_syn(self, now: int) -> None:
        snd = self.snd
        payload, fo_opt = self._tfo_syn() if self.tfo is not None else (b"", ())
        self._segment(SYN | self._ecn_syn_flags(), snd.iss, payload, unknown_options=fo_opt,
                      syn=self.syn_options(mss=self.adv_mss, now=now))
        nxt = snd.after_syn()
        if payload:
            # Fast Open: the data rides in the SYN (Linux tcp_send_syn_data()).
            nxt = sq.add(nxt, len(payload))
            snd.bytes_sent += len(payload)
            self.data_segs_out += 1
            snd.log_sent(nxt, now)
        snd.snd_nxt = nxt
        if sq.gt(nxt, snd.snd_max) or self.retransmits == 0:
            snd.snd_max = nxt
        if self.retransmits == 0 and self.state is _SYN_SENT:
            self.retrans_stamp = now         # Linux tcp_connect(): when the first SYN left
        if self.retransmits == 0:
            self.rtt_seq, self.rtt_time = snd.iss, now
        self.rtx = now + self.rtt.backed_off(self.backoff)

    def open_passive(self, syn: TcpSegment, now: int,
                     fo_reply: tuple[tuple[int, bytes], ...] = (), ip_ecn: int = 0) -> None:
        """A listener's child for an incoming SYN: answer SYN-ACK, enter SYN_RECEIVED.
        ``fo_reply``: a Fast Open cookie option for the SYN,ACK; ``ip_ecn``: the ECN
        field of the SYN's IP header."""
        self.state = _LISTEN
        self._take_syn_options(syn, now, True)
        if syn.flags & _ECE_CWR == _ECE_CWR:   # ecn_setup_syn(): else nothing to agree
            self._ecn_passive(syn, ip_ecn)
        # self._change(_EV_RCV_SYN, now, "rcv SYN") from LISTEN, inline: once per SYN,
        # and SYN_RECEIVED asks nothing more of _change().
        self.state = _SYN_RECEIVED
        changes = self.changes
        if changes is not None:
            change = make_change(now, _LISTEN, _SYN_RECEIVED, "rcv SYN")
            if isinstance(changes, list):
                changes.append(change)
            else:
                self.changes = [change]
        self._send_synack(now, fo_reply)

    # ------------------------------------------------------------------ segments in
    def on_segment(self, seg: TcpSegment, now: int) -> None:
        """Process one incoming segment (RFC 9293 3.10.7). (``now`` may be given by
        position: the host's call per segment, which CPython 3.11 then inlines.)"""
        self.now = now
        self.segs_in += 1
        if seg.payload:
            self.data_segs_in += 1
        state = self.state
        if state is _ESTABLISHED:
            self._rcv_synchronized(seg, now)  # the fast path's entries (tcp/fastpath.py)
        elif state is _SYN_RECEIVED:
            self._rcv_handshake_ack(seg, now)
        elif state is _LAST_ACK:
            self._rcv_last_ack(seg, now)
        elif state is _SYN_SENT:
            self._rcv_syn_sent(seg, now)
        elif state is not _CLOSED:
            self._rcv_slow(seg, now)         # (the fast path takes no other state)
        if self.state is not _CLOSED:
            self._output(now)

    def _trace(self, event: str, now: int) -> None:
        assert self.trace is not None
        cc = self.rec.cc
        self.trace.append(TracePoint(now, event, cc.cwnd, cc.ssthresh, self.rtt.srtt,
                                     self.rtt.backed_off(self.backoff), self.snd.snd_una,
                                     self.rec.state.name))

    def _queue_fin(self, now: int) -> None:
        self.snd.fin_queued = True
        self._change(_EV_CLOSE, now, "close()" if self.app_closed else "shutdown(SHUT_WR)")
