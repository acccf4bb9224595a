"""TIME_WAIT, compactly: what is left of a connection for its last 2*MSL.

A connection in TIME_WAIT has nothing to send and nothing to read; all it must
do is answer a retransmitted FIN with an ACK (the peer lost our last ACK) and
keep the 4-tuple from being reused too early. Linux replaces the full socket by
a small ``inet_timewait_sock``; so does synack, with :class:`TimeWait`.
The rules are Linux's ``tcp_timewait_state_process()``.
"""

from __future__ import annotations

from dataclasses import dataclass

from synack import seq as sq
from synack.wire.tcp import ACK, FIN, RST, SYN, TcpSegment

KEEP, KILL, NEW_SYN = "keep", "kill", "syn"


@dataclass(slots=True)
class TimeWait:
    """The few fields a TIME_WAIT connection needs."""

    local: tuple[str, int]
    remote: tuple[str, int]
    snd_nxt: int
    rcv_nxt: int
    window: int       # the window field to repeat in our ACKs
    expires: int
    since: int
    ts: bool = False  # the connection used timestamps: tcp_tw_reuse may take it over

    def ack(self) -> TcpSegment:
        """The ACK of the peer's FIN, as sent again."""
        return TcpSegment(src_port=self.local[1], dst_port=self.remote[1], seq=self.snd_nxt,
                          ack=self.rcv_nxt, flags=ACK, window=self.window)

    def on_segment(self, seg: TcpSegment, *, now: int, rfc1337: bool,
                   time_wait_us: int) -> tuple[str, TcpSegment | None]:
        """What TIME_WAIT does with ``seg``: (verdict, reply)."""
        flags = seg.flags
        seg_len = len(seg.payload) + (1 if flags & FIN else 0) + (1 if flags & SYN else 0)
        if seg.seq == self.rcv_nxt and (seg_len == 0 or flags & RST):
            # In window, which only a RST or a bare ACK can be.
            if flags & RST:
                # RFC 1337 describes the hazard; Linux kills the TIME_WAIT unless tcp_rfc1337 = 1.
                return (KEEP if rfc1337 else KILL), None
            self.expires = now + time_wait_us
            return KEEP, None
        if flags & SYN and not flags & (ACK | RST) and sq.gt(seg.seq, self.rcv_nxt):
            return NEW_SYN, None       # a new incarnation may take over the 4-tuple
        if flags & RST:
            return KEEP, None
        # Anything else is out of window (a retransmitted FIN, old data, an old ACK): it
        # is ACKed, and one carrying an ACK restarts 2*MSL (the peer is still there).
        if flags & ACK:
            self.expires = now + time_wait_us
        return KEEP, self.ack()
