"""Answers to segments the connection rejects (RFC 9293 3.10.7, RFC 5961): the
challenge ACK, RST replies, and Linux's rate limit on answers to invalid segments."""

from __future__ import annotations

from typing import TYPE_CHECKING

from synack import seq as sq
from synack.wire.tcp import ACK, RST, SYN, TcpSegment

if TYPE_CHECKING:
    from synack.tcp.connection import Connection


class RepliesMixin:
    """Challenge ACKs, RST replies and the out-of-window answer limit of a connection."""

    __slots__ = ()

    def _oow_limited(self: Connection, seg: TcpSegment, now: int, counter: str) -> bool:
        """Whether an ACK in answer to the invalid ``seg`` must wait (Linux
        tcp_oow_rate_limited()): a segment carrying data is always answered (it is not
        part of an ACK loop); anything else at most once per tcp_invalid_ratelimit."""
        if seg.payload and not seg.flags & SYN:
            return False
        return self._oow_rate_limited(now, counter)

    def _oow_rate_limited(self: Connection, now: int, counter: str) -> bool:
        # Linux __tcp_oow_rate_limited(): per connection, one answer per interval.
        last = self.last_oow_ack
        if last >= 0 and 0 <= now - last < self.cfg.int("net.ipv4.tcp_invalid_ratelimit") * 1000:
            self.cfg.mib[counter] += 1
            return True
        self.last_oow_ack = now
        return False

    def _send_challenge_ack(self: Connection, now: int) -> None:
        """RFC 5961 3.2 / 4.2 / 5.2, limited as Linux tcp_send_challenge_ack() limits it:
        first per connection, then by the host-wide budget of tcp_challenge_ack_limit a
        second (drawn at random between half and one and a half times the limit, so that
        an attacker cannot count it; no budget at all when the limit is 2^31 - 1)."""
        cfg = self.cfg
        if self._oow_rate_limited(now, "TcpExtTCPACKSkippedChallenge"):
            return
        limit = cfg.int("net.ipv4.tcp_challenge_ack_limit")
        if limit != 2**31 - 1:
            budget = cfg.challenge_budget
            second = now // 1_000_000
            if budget[0] != second:
                # The draw: this connection's random timestamp offset mixed with the
                # second (the core has no random source of its own).
                mix = (self.ts_offset ^ (second * 2654435761)) & 0xFFFFFFFF
                budget[0], budget[1] = second, (limit + 1) // 2 + (mix % limit if limit else 0)
            if budget[1] <= 0:
                return
            budget[1] -= 1
        cfg.mib["TcpExtTCPChallengeACK"] += 1
        self._send_ack()

    def _send_reset_reply(self: Connection, seg: TcpSegment) -> None:
        """RST in reply to ``seg`` (RFC 9293 3.10.7.1), built as Linux tcp_v4_send_reset()
        builds it: <SEQ=SEG.ACK><CTL=RST>, or <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
        without an ACK, and a zero window either way."""
        if seg.flags & ACK:
            rst = TcpSegment(src_port=self.local[1], dst_port=self.remote[1], seq=seg.ack,
                             flags=RST)
        else:
            rst = TcpSegment(src_port=self.local[1], dst_port=self.remote[1], seq=0,
                             ack=sq.add(seg.seq, seg.seg_len), flags=RST | ACK)
        self._emit(rst)
        self.segs_out += 1

    def _send_active_reset(self: Connection) -> None:
        # Linux tcp_send_active_reset(): RST|ACK at SND.NXT acknowledging RCV.NXT.
        self._segment(RST | ACK, self.snd.snd_nxt)
