"""Each side's TCP state, inferred from the segments a capture shows.

Theory of operation
-------------------
An observer between two hosts sees every segment once and cannot see inside
either host, so each side runs the RFC 9293 state diagram (section 3.3.2) fed
with two kinds of evidence:

- what the side *sends* changes it before the segment: a SYN means it called
  ``connect()`` (SYN_SENT); its first FIN means ``close()`` or
  ``shutdown()`` (ESTABLISHED -> FIN_WAIT_1, CLOSE_WAIT -> LAST_ACK); a RST
  means it is done (CLOSED);
- what the side *receives* changes it after the segment arrives: a SYN in
  LISTEN (SYN_RECEIVED), the ACK of its SYN (ESTABLISHED), the ACK of its FIN
  (FIN_WAIT_1 -> FIN_WAIT_2, CLOSING -> TIME_WAIT, LAST_ACK -> CLOSED), the
  peer's first FIN (ESTABLISHED -> CLOSE_WAIT, FIN_WAIT_1 -> CLOSING,
  FIN_WAIT_2 -> TIME_WAIT), a RST (CLOSED, or back to LISTEN for a passive side).

A side that answers a SYN with SYN,ACK was listening before the capture shows
it, so it starts in LISTEN; without a handshake in the capture both sides start
ESTABLISHED. TIME_WAIT's 2*MSL expiry sends nothing, so a capture ends with
the active closer in TIME_WAIT. Every change is appended to ``conn.changes``.
"""

from __future__ import annotations

from dataclasses import dataclass

from synack import seq as sq
from synack.trace.capture import Connection, Segment, StateChange
from synack.wire.tcp import ACK, FIN, RST, SYN

CLOSED, LISTEN, SYN_SENT, SYN_RECEIVED = "CLOSED", "LISTEN", "SYN_SENT", "SYN_RECEIVED"
ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2 = "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2"
CLOSING, TIME_WAIT, CLOSE_WAIT, LAST_ACK = "CLOSING", "TIME_WAIT", "CLOSE_WAIT", "LAST_ACK"


@dataclass
class _Side:
    state: str
    passive: bool = False
    iss: int | None = None          # absolute: its SYN's sequence number
    fin_end: int | None = None      # absolute: the sequence number after its FIN


class _Inference:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        first = conn.segments[0]
        handshake = any(s.flags & SYN for s in conn.segments)
        # A side that sends SYN,ACK to a pure SYN was listening: the passive opener.
        passive = [False, False]
        for s in conn.segments:
            if s.flags & (SYN | ACK) == SYN | ACK and conn.syn_seq[1 - s.direction] is not None \
                    and not _sent_pure_syn(conn, s.direction):
                passive[s.direction] = True
        self.sides = []
        for side in (0, 1):
            start = (LISTEN if passive[side] else CLOSED) if handshake else ESTABLISHED
            self.sides.append(_Side(start, passive[side]))
            why = "" if handshake else "before the capture"
            conn.changes.append(StateChange(first.t_us, side, "", start, why, first.number, True))

    def move(self, side: int, new: str, why: str, s: Segment, *, before: bool) -> None:
        st = self.sides[side]
        if st.state != new:
            self.conn.changes.append(
                StateChange(s.t_us, side, st.state, new, why, s.number, before))
            st.state = new

    def sent(self, s: Segment) -> None:
        d, seg = s.direction, s.seg
        me = self.sides[d]
        if seg.flags & SYN:
            me.iss = seg.seq
            if not seg.flags & ACK and me.state in (CLOSED, LISTEN):
                self.move(d, SYN_SENT, "connect()", s, before=True)
        if seg.flags & FIN and me.fin_end is None:
            me.fin_end = sq.add(seg.seq, seg.seg_len)
            nxt = {ESTABLISHED: FIN_WAIT_1, SYN_RECEIVED: FIN_WAIT_1, CLOSE_WAIT: LAST_ACK}
            if me.state in nxt:
                self.move(d, nxt[me.state], "close()", s, before=True)
        if seg.flags & RST:
            self.move(d, CLOSED, "sent RST", s, before=True)

    def received(self, s: Segment) -> None:
        d, seg = 1 - s.direction, s.seg
        me = self.sides[d]
        flags = seg.flags
        if flags & RST:
            back = LISTEN if me.passive and me.state == SYN_RECEIVED else CLOSED
            if me.state not in (CLOSED, TIME_WAIT):
                self.move(d, back, "rcv RST", s, before=False)
            return
        if flags & SYN and not flags & ACK:
            if me.state == LISTEN:
                self.move(d, SYN_RECEIVED, "rcv SYN", s, before=False)
            elif me.state == SYN_SENT:
                self.move(d, SYN_RECEIVED, "rcv SYN, simultaneous open", s, before=False)
        if flags & ACK:
            acked = me.iss is not None and sq.gt(seg.ack, me.iss)
            if me.state == SYN_SENT and flags & SYN and acked:
                self.move(d, ESTABLISHED, "rcv SYN,ACK", s, before=False)
            elif me.state == SYN_RECEIVED and acked:
                self.move(d, ESTABLISHED, "rcv ACK of SYN", s, before=False)
            fin_acked = me.fin_end is not None and sq.ge(seg.ack, me.fin_end)
            if fin_acked:
                nxt = {FIN_WAIT_1: FIN_WAIT_2, CLOSING: TIME_WAIT, LAST_ACK: CLOSED}
                if me.state in nxt:
                    self.move(d, nxt[me.state], "rcv ACK of FIN", s, before=False)
        if flags & FIN:
            nxt = {ESTABLISHED: CLOSE_WAIT, SYN_RECEIVED: CLOSE_WAIT,
                   FIN_WAIT_1: CLOSING, FIN_WAIT_2: TIME_WAIT}
            if me.state in nxt:
                self.move(d, nxt[me.state], "rcv FIN", s, before=False)


def _sent_pure_syn(conn: Connection, side: int) -> bool:
    return any(s.direction == side and s.flags & (SYN | ACK) == SYN for s in conn.segments)


def infer_states(conn: Connection) -> None:
    """Append to ``conn.changes`` each side's initial state and every change after it."""
    if not conn.segments:
        return
    inf = _Inference(conn)
    for s in conn.segments:
        inf.sent(s)
        inf.received(s)
