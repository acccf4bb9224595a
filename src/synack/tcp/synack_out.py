"""Our SYN,ACK: the passive side's half of the handshake's sending, for
:class:`~synack.tcp.connection.Connection` (a mixin: the connection's slots hold the state).

What ``Connection._segment()`` would make of it, inline (its SYN branch, with a SYN,ACK's
options: only what the peer's SYN offered), and the bookkeeping after: SND.NXT past the
SYN, the handshake's RTT sample started, the retransmission timer armed (Linux
tcp_v4_send_synack() and inet_csk_reqsk_queue_hash_add()'s timer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from synack import seq as sq
from synack.tcp.rtt import RTO_MAX_US
from synack.tcp.sizing import PASSIVE as _PASSIVE
from synack.tcp.sizing import RCV_WSCALE as _RCV_WSCALE
from synack.wire.tcp import ACK, ECE, SYN, TcpSegment, make_segment

if TYPE_CHECKING:
    from synack.tcp.connection import Connection

_SYN_ACK = SYN | ACK                   # (one global, not two and an OR, per SYN,ACK)


class SynAckMixin:
    """Sends the SYN,ACK of a connection opened passively."""

    __slots__ = ()   # Connection's slots hold the state

    # Connection's fields set here, declared so that mypy types them as Connection does.
    rtx: int | None
    delack: int | None
    brief: dict[str, object] | None
    outbox: list[TcpSegment] | tuple[()]

    def _send_synack(self: Connection, now: int, fo_reply: tuple[tuple[int, bytes], ...] = ()) -> None:
        snd = self.snd
        rcv = self.rcv
        assert rcv is not None, "a SYN,ACK follows the peer's SYN (_take_syn_options())"
        ecn = self.ecn
        flags = _SYN_ACK | ECE if ecn is not None and ecn.ok else _SYN_ACK
        # self._segment(flags, snd.iss, unknown_options=fo_reply, syn=...), inline:
        # _segment()'s SYN branch, with a SYN,ACK's options (only what the peer's SYN
        # offered: the MSS, our window scale, SACK and timestamps if agreed).
        rcv_nxt = rcv.rcv_nxt
        # rcv.window(): a Receiver that has taken nothing and announced nothing (the
        # first SYN,ACK) offers its whole buffer.
        window = rcv.capacity if rcv.rcv_adv == rcv_nxt and not rcv.ready \
            and not rcv.ooo_bytes else rcv.window()
        if window > 0xFFFF:  # noqa: PLR1730 - cheaper than min()
            window = 0xFFFF
        # The right edge is what the SYN,ACK announced, not the 16-bit overflow.
        # (sq.add(), inline; both below 2**32: one subtraction wraps, and a compare is
        # cheaper than an AND with a two-digit int)
        adv = rcv_nxt + window
        rcv.rcv_adv = adv if adv <= 0xFFFFFFFF else adv - 0x100000000
        ts: tuple[int, int] | None = None
        if self.ts_ok:
            tsval = now // 1000 + self.ts_offset
            ts = (tsval if tsval <= 0xFFFFFFFF else tsval & 0xFFFFFFFF, self.ts_recent)
        pool = self.pool
        seg = make_segment(self.local[1], self.remote[1], snd.iss, rcv_nxt, flags, window, 0,
                           b"", self.adv_mss, pool[_RCV_WSCALE], self.sack_ok, (), ts,
                           fo_reply, 0, 0, 0, ())
        out = self.outbox                    # self._emit(seg), inline
        if out:                              # (a list with segments; else () or empty)
            out.append(seg)  # type: ignore[union-attr]
        else:
            self.outbox = [seg]
        self.segs_out += 1
        self.last_ack_sent = rcv_nxt
        rcv.dsack = None                     # rcv.sent_ack(), inline
        ackp = self.ackp                     # ackp.on_ack_sent(), inline
        ackp.deadline = None
        if ackp.quick:
            ackp.quick -= 1
        self.delack = None
        # (end of _segment())
        iss = snd.iss                        # snd.after_syn(), inline: iss + 1 mod 2**32
        nxt = iss + 1 if iss != 0xFFFFFFFF else 0
        if nxt == snd.buf_seq:
            nxt = snd.buf_seq
        if pool[_PASSIVE] or not sq.gt(snd.snd_max, nxt):
            snd.snd_nxt = snd.snd_max = nxt
        # (else a simultaneous open after a Fast Open SYN: its data stays sent, as the
        # SYN,ACK Linux makes of the SYN alone leaves snd_nxt where it was)
        if self.retransmits == 0:
            # self.rtt_seq, self.rtt_time = snd.iss, now: the Brief fields, inline.
            brief = self.brief
            if brief is None:
                self.brief = {"rtt_seq": snd.iss, "rtt_time": now}
            else:
                brief["rtt_seq"] = snd.iss
                brief["rtt_time"] = now
        # self.rtt.backed_off(self.backoff), inline (no shift for the first SYN,ACK: 0)
        backoff = self.backoff
        rto = snd.rto << backoff if backoff else snd.rto
        self.rtx = now + (rto if rto < RTO_MAX_US else RTO_MAX_US)  # noqa: FURB136
