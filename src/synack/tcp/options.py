"""What the SYNs agreed on: window scaling, timestamps, SACK (RFC 7323, RFC 2018).

An option is used only if both SYNs carried it (RFC 7323 2.2 / 3.2, RFC 2018 2).
Timestamps serve two purposes here: an RTT sample from the echo (TSecr) of
every ACK, even of retransmitted data, and PAWS (RFC 7323 5), which drops an
old duplicate segment whose TSval is behind the last one we accepted.

The TSval clock ticks in milliseconds with a random per-connection offset, as
Linux's ``tcp_time_stamp_ms()`` with ``tcp_timestamps = 1``.
"""

from __future__ import annotations

from synack.wire.tcp import TcpSegment

PAWS_IDLE_US = 24 * 24 * 3600 * 1_000_000  # RFC 7323 5.5: after 24 days ts_recent is stale
TS_HALF = 1 << 31


#: The options of our SYN or SYN,ACK, in TcpSegment's field order: (mss, wscale,
#: sack_permitted, timestamps).
SynOptions = tuple[int, int | None, bool, tuple[int, int] | None]


def ts_before(a: int, b: int) -> bool:
    """32-bit timestamp comparison: ``a`` is older than ``b``."""
    return ((a - b) & 0xFFFFFFFF) >= TS_HALF


class Negotiated:
    """Options offered in our SYN and the ones both sides agreed to.

    A base class of :class:`~synack.tcp.connection.Connection`, whose slots hold
    these fields (``conn.neg`` is ``conn``): one object less per connection.
    ``offer_ts``, ``offer_sack`` and ``rcv_wscale``, alike in most connections and
    read only around the SYNs, are pooled fields of the connection (rare.py).
    """

    __slots__ = ()

    offer_ts: bool
    offer_sack: bool
    rcv_wscale: int | None         # None: we do not offer window scaling
    ts_ok: bool
    sack_ok: bool
    snd_wscale: int
    ts_offset: int
    ts_recent: int
    ts_recent_stamp: int
    # (Connection.__init__ sets them: nothing agreed, the TS clock ``ts_offset`` ahead;
    # Connection._take_syn_options agrees them with the peer's SYN.)

    def tsval(self, now: int) -> int:
        """Our timestamp clock at ``now`` (milliseconds plus the offset)."""
        return (now // 1000 + self.ts_offset) & 0xFFFFFFFF

    def syn_options(self, *, mss: int, now: int) -> SynOptions:
        """Options for our SYN. (A SYN,ACK's, only what the peer's SYN offered, are
        made where it is sent: Connection._send_synack().)"""
        ts = (self.tsval(now), 0) if self.offer_ts else None
        return (mss, self.rcv_wscale, self.offer_sack, ts)

    @property
    def rcv_shift(self) -> int:
        """Our window scale, once agreed (0 otherwise)."""
        return self.rcv_wscale or 0

    def option_len(self) -> int:
        """Bytes of options on every data segment (the MSS is reduced by this)."""
        return 12 if self.ts_ok else 0

    def paws_reject(self, seg: TcpSegment, now: int) -> bool:
        """RFC 7323 5.3 R1: an old TSval means an old duplicate (RSTs are exempt)."""
        if not self.ts_ok or seg.timestamps is None or seg.flags & 0x04:
            return False
        if not ts_before(seg.timestamps[0], self.ts_recent):
            return False
        return now - self.ts_recent_stamp < PAWS_IDLE_US

    def ack_timestamps(self, now: int) -> tuple[int, int] | None:
        """The TS option for an outgoing non-SYN segment."""
        return (self.tsval(now), self.ts_recent) if self.ts_ok else None
