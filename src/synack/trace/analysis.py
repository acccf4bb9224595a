"""Wireshark's TCP analysis marks, computed over one connection of a capture.

Theory of operation
-------------------
Each direction keeps what Wireshark's ``tcp_analyze_sequence_number`` keeps: the
next expected sequence number (the highest ``seq + len`` seen), the last ACK and
window it sent, its duplicate-ACK count, and when its sequence last advanced.
A segment is compared with its own direction and the reverse one, in this
order, and gets every mark that applies:

- ``ZeroWindowProbe``: one byte at the next sequence while the peer's window is 0;
- ``ZeroWindow``: it advertises a window of 0 (not on SYN/FIN/RST);
- ``Previous segment not captured``: it starts beyond the next expected sequence;
- ``Keep-Alive``: at most one byte at next-1 (RFC 9293 3.8.4's probe);
- ``Window Update``: a bare ACK that only changes the window;
- ``Dup ACK N#k``: a bare ACK repeating ack and window; N is the packet of the
  first ACK of that value, k counts the duplicates;
- ``ACKed unseen segment``: it acknowledges data the capture never showed;
- for data (or SYN/FIN) starting below the next expected sequence:
  ``Spurious Retransmission`` if it carries data the peer had already acknowledged,
  ``Fast Retransmission`` if it answers two or more duplicate ACKs for exactly
  its sequence, ``Out-Of-Order`` if its bytes were never seen and it comes
  within one round trip of the highest segment, else ``Retransmission``.

Two departures from Wireshark, both for captures without a single vantage
point (the simulator records each packet when its sender sends it): the fast
retransmission window is ``max(20 ms, first RTT)`` instead of 20 ms, and a
segment whose bytes were already seen is a retransmission however soon it
comes, never out-of-order.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from synack.trace.capture import Connection, Segment
from synack.wire.tcp import ACK, FIN, RST, SYN

OOO_DEFAULT_US = 3_000      # Wireshark's out-of-order threshold without an RTT
FAST_RETRANS_US = 20_000    # Wireshark: a fast retransmission follows its dup ACKs within 20 ms

RETRANSMISSION = "Retransmission"
FAST_RETRANSMISSION = "Fast Retransmission"
SPURIOUS_RETRANSMISSION = "Spurious Retransmission"
OUT_OF_ORDER = "Out-Of-Order"
DUP_ACK = "Dup ACK"
ZERO_WINDOW = "ZeroWindow"
ZERO_WINDOW_PROBE = "ZeroWindowProbe"
WINDOW_UPDATE = "Window Update"
KEEP_ALIVE = "Keep-Alive"
PREVIOUS_NOT_CAPTURED = "Previous segment not captured"
ACKED_UNSEEN = "ACKed unseen segment"

#: Marks that mean a segment was sent again.
RETRANSMISSIONS = (RETRANSMISSION, FAST_RETRANSMISSION, SPURIOUS_RETRANSMISSION)


@dataclass
class _Flow:
    """One direction's running analysis, in relative (unwrapped) sequence numbers."""

    nextseq: int | None = None
    advanced_us: int = 0
    lastack: int | None = None
    lastack_number: int = 0
    lastack_us: int = 0
    lastwin: int | None = None
    dupacks: int = 0
    seen: list[list[int]] = field(default_factory=list)   # sorted, merged [start, end)

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect_right(self.seen, [start, 1 << 62]) - 1
        if i >= 0 and self.seen[i][1] > start:
            return True
        return i + 1 < len(self.seen) and self.seen[i + 1][0] < end

    def mark_seen(self, start: int, end: int) -> None:
        if end <= start:
            return
        i = bisect_right(self.seen, [start, 1 << 62])
        self.seen.insert(i, [start, end])
        merged: list[list[int]] = []
        for iv in self.seen:
            if merged and iv[0] <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], iv[1])
            else:
                merged.append(iv)
        self.seen = merged


def is_retransmission(s: Segment) -> bool:
    """True if the segment carries one of the retransmission marks."""
    return any(m in RETRANSMISSIONS for m in s.marks)


def first_rtt_us(conn: Connection) -> int | None:
    """SYN to the ACK of the SYN,ACK (Wireshark's ``tcp.analysis.initial_rtt``)."""
    syn = next((s for s in conn.segments if s.flags & (SYN | ACK) == SYN), None)
    if syn is None:
        return None
    for s in conn.segments:
        if s.direction == syn.direction and s.flags & ACK and not s.flags & SYN:
            return s.t_us - syn.t_us
    return None


def analyse(conn: Connection) -> None:
    """Fill in ``marks`` on every segment of ``conn``."""
    flows = (_Flow(), _Flow())
    rtt = first_rtt_us(conn)
    ooo_us = rtt if rtt else OOO_DEFAULT_US
    fast_us = max(FAST_RETRANS_US, rtt or 0)
    for s in conn.segments:
        _mark(s, flows[s.direction], flows[1 - s.direction], ooo_us, fast_us)


def _mark(s: Segment, f: _Flow, rev: _Flow, ooo_us: int, fast_us: int) -> None:
    flags, seq, ack, win, n = s.flags, s.seq, s.ack, s.window, s.length
    plain = not flags & (SYN | FIN | RST)
    occupies = n + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
    marks = s.marks
    probe = keepalive = False
    if f.nextseq is not None and n == 1 and seq == f.nextseq and rev.lastwin == 0:
        probe = True
        marks.append(ZERO_WINDOW_PROBE)
    if win == 0 and plain:
        marks.append(ZERO_WINDOW)
    if f.nextseq is not None and seq > f.nextseq and not flags & RST:
        marks.append(PREVIOUS_NOT_CAPTURED)
    if f.nextseq is not None and n <= 1 and plain and seq == f.nextseq - 1:
        keepalive = True
        marks.append(KEEP_ALIVE)
    dupack = False
    if flags & ACK and n == 0 and plain and f.nextseq is not None and seq == f.nextseq \
            and f.lastack is not None and ack == f.lastack:
        if win != f.lastwin and win != 0:
            marks.append(WINDOW_UPDATE)
        elif win == f.lastwin:
            dupack = True
            f.dupacks += 1
            marks.append(f"{DUP_ACK} {f.lastack_number}#{f.dupacks}")
    if flags & ACK and rev.nextseq is not None and ack > rev.nextseq and not flags & SYN:
        marks.append(ACKED_UNSEEN)
    if occupies and f.nextseq is not None and seq < f.nextseq and not (probe or keepalive):
        end = seq + occupies
        seen = f.overlaps(seq, end)
        if n and rev.lastack is not None and end <= rev.lastack:
            # Only data already acknowledged is spurious: a SYN or FIN sent again is a
            # plain retransmission (as tshark marks them).
            marks.append(SPURIOUS_RETRANSMISSION)
        elif rev.dupacks >= 2 and rev.lastack == seq and s.t_us - rev.lastack_us < fast_us:
            marks.append(FAST_RETRANSMISSION)
        elif not seen and s.t_us - f.advanced_us < ooo_us:
            marks.append(OUT_OF_ORDER)
        else:
            marks.append(RETRANSMISSION)
    # Update the direction's record.
    f.mark_seen(seq, seq + occupies)
    if f.nextseq is None or seq + occupies > f.nextseq:
        f.nextseq = seq + occupies
        f.advanced_us = s.t_us
    if flags & ACK:
        if not dupack:
            f.dupacks = 0
        if f.lastack is None or ack != f.lastack:
            f.lastack_number = s.number
        f.lastack = ack
        f.lastack_us = s.t_us
    f.lastwin = win
