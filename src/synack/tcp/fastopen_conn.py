"""A connection's side of TCP Fast Open (RFC 7413): the SYN with data, the SYN,ACK.

Mixed into :class:`~synack.tcp.connection.Connection`; the state lives in
``Connection.tfo`` (a :class:`~synack.tcp.fastopen.FastOpenState`, None for a
connection that never used Fast Open). The host decides whether a SYN gets Fast
Open (:mod:`synack.host.fastopen`); this module does what a connection does
with it, as Linux does:

* client: the SYN carries the cookie (or an empty request) and as much of the
  first write as fits (``tcp_send_syn_data()``: the MSS less 40 bytes of option
  room); a retransmitted SYN carries neither; the SYN,ACK's cookie and MSS go to
  the host's cache; data the SYN,ACK did not acknowledge is sent again at once,
  and that segment carries the handshake's ACK (``tcp_rcv_fastopen_synack()``);
* server: the child of a SYN with a good cookie takes the SYN's data, answers with
  a SYN,ACK acknowledging it, and may send before the handshake's last ACK
  (``tcp_fastopen_create_child()``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from synack import seq as sq
from synack.tcp import fastopen as fo
from synack.tcp.icmp_errors import ip_tcp_headers
from synack.tcp.state import Event, State
from synack.wire.tcp import FIN, TcpSegment

if TYPE_CHECKING:
    from synack.tcp.connection import Connection


class FastOpenMixin:
    """Fast Open steps of a connection."""

    __slots__ = ()   # Connection's slots hold the state

    tfo: fo.FastOpenState | None   # a Rare field of Connection; declared for mypy

    # ------------------------------------------------------------------ client
    def syn_data_room(self: Connection, cached_mss: int) -> int:
        """Bytes of data a SYN may carry (Linux tcp_send_syn_data(): the MSS for the
        path, clamped by the cached and the user's MSS, less MAX_TCP_OPTION_SPACE)."""
        mss = self.pmtu - ip_tcp_headers(self.local[0])   # __tcp_mtu_to_mss(): per family
        if cached_mss:
            mss = min(mss, cached_mss)
        if self.opts.maxseg:
            mss = min(mss, self.opts.maxseg)
        return max(mss - fo.MAX_OPTION_SPACE, 0)

    def _tfo_syn(self: Connection) -> tuple[bytes, tuple[tuple[int, bytes], ...]]:
        """Payload and option of our first SYN (a retransmitted one carries neither)."""
        tfo = self.tfo
        if tfo is None or self.retransmits:
            return b"", ()
        payload = self.snd.slice(self.snd.buf_seq, tfo.data_len) if tfo.data_len else b""
        option = (fo.option(tfo.cookie, tfo.exp),) if tfo.cookie is not None else ()
        return payload, option

    def _tfo_synack(self: Connection, seg: TcpSegment, now: int) -> bool:
        """Linux tcp_rcv_fastopen_synack(): the SYN,ACK of a Fast Open SYN. True when
        the SYN's data was not (all) acknowledged: it goes again now, carrying the
        ACK of the handshake."""
        tfo = self.tfo
        assert tfo is not None
        snd = self.snd
        mib = self.cfg.mib
        cookie = fo.find_option(seg) if tfo.cookie is not None else None
        unacked = tfo.data_len > 0 and sq.lt(snd.snd_una, snd.data_end) \
            and sq.le(snd.snd_una, sq.add(snd.iss, tfo.data_len))
        try_exp = 0
        syn_drop = False
        if tfo.cookie is None:
            pass                                  # an unsolicited cookie is ignored
        elif self.total_retrans:
            syn_drop = cookie is None and unacked
        elif cookie is None and not tfo.data_len:
            try_exp = 2 if tfo.exp else 1         # ask the other way next time
        if tfo.write_pending:
            # A writer blocked in sendto() (Linux sk_write_pending): tcp_rcv_synsent_state_
            # process() enters quick-ACK mode, which sets ato, and tcp_finish_connect()
            # stamped lrcvtime: the rest of the write, sent now, turns on ping-pong mode.
            self.ackp.last_data_rcv = now
        if tfo.cache is not None:
            tfo.cache.store(tfo.dst, now=now, mss=seg.mss or 0, cookie=cookie,
                            syn_lost=syn_drop, try_exp=try_exp)
        if unacked:
            tfo.client_fail = fo.TFO_SYN_RETRANSMITTED if self.total_retrans \
                else fo.TFO_DATA_NOT_ACKED
            mib["TcpExtTCPFastOpenActiveFail"] += 1
            snd.snd_nxt = snd.snd_una
            return True
        if tfo.data_len:
            tfo.syn_data_acked = True
            mib["TcpExtTCPFastOpenActive"] += 1
        return False

    def send_syn_data(self: Connection, data: bytes | bytearray | memoryview, *,
                      now: int) -> int:
        """The deferred connect() of TCP_FASTOPEN_CONNECT, or sendto(MSG_FASTOPEN):
        queue what fits in the SYN and send it. Returns the bytes the SYN carries."""
        tfo = self.tfo
        assert tfo is not None and self.state is State.SYN_SENT
        n = self.snd.write(data[:tfo.room]) if tfo.room and data else 0
        tfo.data_len = n
        tfo.defer = False
        self.mem_sync()
        self._send_syn(now)
        return n

    # ------------------------------------------------------------------ server
    def open_fastopen_child(self: Connection, syn: TcpSegment, *, now: int,
                            reply: fo.FastOpenOption | None, ip_ecn: int = 0) -> None:
        """A Fast Open SYN accepted (Linux tcp_fastopen_create_child()): take its data,
        answer SYN,ACK acknowledging it, and be ready to send before the last ACK."""
        self.state = State.LISTEN
        self._take_syn_options(syn, now, passive=True)
        self._ecn_passive(syn, ip_ecn)
        tfo = self.tfo = fo.FastOpenState(child=True)
        rcv = self.rcv
        assert rcv is not None
        if syn.payload or syn.flags & FIN:
            # Linux tcp_fastopen_add_skb() queues the SYN's data whatever the window.
            rcv.rcv_adv = sq.add(rcv.rcv_nxt, max(len(syn.payload), 0xFFFF))
            rcv.accept(sq.add(syn.seq, 1), syn.payload, bool(syn.flags & FIN))
            # The SYN,ACK offers the whole window after the data, as Linux's request
            # did before it (tcp_openreq_init_rwin()).
            rcv.rcv_adv = sq.add(rcv.rcv_nxt, min(self.rcv_capacity, 0xFFFF))
            tfo.syn_data_acked = bool(syn.payload)
            self.mem_sync()
        self.snd.snd_wnd = self.snd.max_wnd = syn.window   # never scaled in a SYN
        self._change(Event.RCV_SYN, now, "rcv SYN (Fast Open)")
        self._send_synack(now, () if reply is None else (fo.option(reply.cookie, reply.exp),))
        if syn.flags & FIN:
            self._change(Event.RCV_FIN, now, "rcv FIN (in the Fast Open SYN)")

    @property
    def tfo_child_pending(self: Connection) -> bool:
        """A Fast Open child still waiting for the handshake's last ACK (Linux
        tp->fastopen_rsk set): it may send, and tcpi_options has TCPI_OPT_TFO_CHILD."""
        tfo = self.tfo
        return tfo is not None and tfo.child and self.state is State.SYN_RECEIVED

