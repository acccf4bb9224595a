"""Wireshark's TCP analysis marks, computed over one connection of a capture.

Theory of operation
-------------------
Each direction keeps what Wireshark's ``tcp_analyze_sequence_number()`` keeps
(packet-tcp.c, Wireshark 4.0, with its default preferences): the next expected
sequence number (the highest ``seq + len`` seen) and when it last advanced,
the highest contiguous sequence the peer may acknowledge, the last ACK, raw
window and time of its last segment, its duplicate-ACK count and the marks of
its last segment. A segment is compared with its own direction and the
reverse one, in Wireshark's order:

- ``ZeroWindowProbe``: exactly one byte at the next sequence while the peer's
  window is 0 (the rest of the window tests are skipped, and the probe does
  not advance the next sequence);
- ``ZeroWindow``: it advertises a window of 0 (not on SYN/FIN/RST);
- ``Previous segment not captured``: it starts beyond the next expected sequence;
- ``Keep-Alive``: 0 or 1 byte at next-1 (RFC 9293 3.8.4's probe);
- ``Window Update``: a bare segment at the next sequence repeating the last ACK
  with another, non-zero window;
- ``Window Full``: data that ends exactly at the right edge of the peer's last
  advertised window (once the window scale is known);
- ``Keep-Alive ACK`` / ``ZeroWindowProbeAck``: a bare segment repeating ack and
  window right after the peer's keep-alive / zero-window probe;
- ``Dup ACK N#k``: a bare segment at the next sequence repeating ack and
  (non-zero) window; N is the packet where the ACK value last changed, k counts;
- ``ACKed unseen segment``: it acknowledges beyond what the capture showed the
  peer send (once per gap: the peer's next expected sequence is then taken as
  acknowledgeable);
- for data (or SYN/FIN): ``Spurious Retransmission`` if all of it was already
  acknowledged; otherwise, if it starts below the next expected sequence,
  ``Fast Retransmission`` if it answers two or more duplicate ACKs for exactly
  its sequence within 20 ms of the last of them, ``Out-Of-Order`` if it comes
  within the first round trip (3 ms without a handshake) of the highest segment
  and does not end exactly there, else ``Retransmission``.

A segment that is 2 or more bytes starting at next-1 (data after a zero-window
probe) is none of the last three. Wireshark compares 32-bit sequence numbers;
the comparisons here are on the relative numbers of :mod:`synack.trace.capture`.
"""

from __future__ import annotations

from dataclasses import dataclass

from synack.trace.capture import Connection, Segment
from synack.wire.tcp import ACK, FIN, RST, SYN

OOO_DEFAULT_US = 3_000      # Wireshark's out-of-order threshold without a first RTT
FAST_RETRANS_US = 20_000    # Wireshark: a fast retransmission follows its dup ACKs within 20 ms

RETRANSMISSION = "Retransmission"
FAST_RETRANSMISSION = "Fast Retransmission"
SPURIOUS_RETRANSMISSION = "Spurious Retransmission"
OUT_OF_ORDER = "Out-Of-Order"
DUP_ACK = "Dup ACK"
ZERO_WINDOW = "ZeroWindow"
ZERO_WINDOW_PROBE = "ZeroWindowProbe"
ZERO_WINDOW_PROBE_ACK = "ZeroWindowProbeAck"
WINDOW_UPDATE = "Window Update"
WINDOW_FULL = "Window Full"
KEEP_ALIVE = "Keep-Alive"
KEEP_ALIVE_ACK = "Keep-Alive ACK"
PREVIOUS_NOT_CAPTURED = "Previous segment not captured"
ACKED_UNSEEN = "ACKed unseen segment"

#: Every mark, in the order Wireshark tests them.
MARKS = (ZERO_WINDOW_PROBE, ZERO_WINDOW, PREVIOUS_NOT_CAPTURED, KEEP_ALIVE, WINDOW_UPDATE,
         WINDOW_FULL, KEEP_ALIVE_ACK, ZERO_WINDOW_PROBE_ACK, DUP_ACK, ACKED_UNSEEN,
         SPURIOUS_RETRANSMISSION, FAST_RETRANSMISSION, OUT_OF_ORDER, RETRANSMISSION)

#: Marks that mean a segment was sent again.
RETRANSMISSIONS = (RETRANSMISSION, FAST_RETRANSMISSION, SPURIOUS_RETRANSMISSION)

_NOT_PLAIN = SYN | FIN | RST


@dataclass
class _Flow:
    """One direction's running analysis (Wireshark's ``tcp_flow_t`` and its seq info)."""

    nextseq: int | None = None       # None: nothing seen yet (Wireshark's 0)
    nextseq_us: int = 0
    maxseqtobeacked: int | None = None
    lastack: int | None = None       # None: no ACK yet (Wireshark's 0 of a bare SYN)
    lastack_us: int = 0
    window: int | None = None        # raw, as sent
    window_from_syn: bool = False    # the stored window is a SYN's, never scaled
    wscale: int | None = None        # None: unknown (-1); -2 means no scaling
    dupacks: int = 0
    lastnondupack: int = 0
    lastmarks: tuple[str, ...] = ()


def is_retransmission(s: Segment) -> bool:
    """True if the segment carries one of the retransmission marks."""
    return any(m in RETRANSMISSIONS for m in s.marks)


def first_rtt_us(conn: Connection) -> int | None:
    """The most recent SYN to the first ACK after it (``tcp.analysis.initial_rtt``).

    None without a SYN. (Wireshark also has none when the SYN is stamped 0, its
    "no time"; :func:`analyse` mirrors that, this does not.)"""
    syn_us = None
    for s in conn.segments:
        if s.flags & (SYN | ACK) == SYN:
            syn_us = s.t_us
        elif s.flags & (SYN | ACK) == ACK and syn_us is not None:
            return s.t_us - syn_us
    return None


def analyse(conn: Connection) -> None:
    """Fill in ``marks`` on every segment of ``conn``."""
    flows = (_Flow(), _Flow())
    syn_us: int | None = None
    first_rtt = 0
    for s in conn.segments:
        # Wireshark learns the first RTT as the packets pass (dissect_tcp()); a time
        # of 0 is its "unset", so a SYN stamped at the epoch (as the simulator's
        # captures start) gives no RTT and the 3 ms threshold stays.
        if s.flags & (SYN | ACK) == SYN:
            syn_us = s.t_us or None
        elif s.flags & (SYN | ACK) == ACK and syn_us is not None and not first_rtt:
            first_rtt = s.t_us - syn_us
        f, rev = flows[s.direction], flows[1 - s.direction]
        if s.flags & SYN:
            _learn_wscale(s, f, rev)
        _mark(s, f, rev, first_rtt or OOO_DEFAULT_US)


def _learn_wscale(s: Segment, f: _Flow, rev: _Flow) -> None:
    """Mirrors verify_tcp_window_scaling(): -2 once a SYN shows scaling is off."""
    ws = s.seg.wscale
    if ws is not None and f.wscale is None:
        f.wscale = ws
    if ws is None:
        f.wscale = rev.wscale = -2
    elif s.flags & ACK and rev.wscale == -2:
        f.wscale = -2


def _shift(flow: _Flow) -> int:
    if flow.window_from_syn or flow.wscale is None or flow.wscale < 0:
        return 0
    return flow.wscale


def _mark(s: Segment, f: _Flow, rev: _Flow, ooo_us: int) -> None:
    """Mirrors tcp_analyze_sequence_number() for one segment."""
    flags, seq, n, win = s.flags, s.seq, s.length, s.seg.window
    ack: int | None = s.ack if flags & ACK else None
    marks = s.marks
    if n == 1 and seq == f.nextseq and rev.window == 0:
        marks.append(ZERO_WINDOW_PROBE)
    else:
        _mark_window(s, f, rev, ack, marks)
    if ack != f.lastack:                  # the ACK moved: count duplicates afresh
        f.lastnondupack = s.number
        f.dupacks = 0
    if ack is not None and rev.maxseqtobeacked is not None and ack > rev.maxseqtobeacked:
        marks.append(ACKED_UNSEEN)
        rev.maxseqtobeacked = rev.nextseq      # so the same gap is told once
    if (n or flags & (SYN | FIN)) and KEEP_ALIVE not in marks:
        kind = _resend_kind(s, f, rev, ooo_us)
        if kind:
            marks.append(kind)
    # Update the direction's record.
    probe = ZERO_WINDOW_PROBE in marks
    end = seq + n + (1 if flags & (SYN | FIN) else 0)
    if (f.nextseq is None or end > f.nextseq) and not probe:
        f.nextseq, f.nextseq_us = end, s.t_us
    if (f.maxseqtobeacked is None or seq == f.maxseqtobeacked) and not probe:
        f.maxseqtobeacked = f.nextseq
    f.window, f.window_from_syn = win, bool(flags & SYN)
    f.lastack, f.lastack_us = ack, s.t_us
    f.lastmarks = tuple(marks)


def _mark_window(s: Segment, f: _Flow, rev: _Flow, ack: int | None, marks: list[str]) -> None:
    """The tests between the zero-window probe and ``finished_fwd``."""
    flags, seq, n, win = s.flags, s.seq, s.length, s.seg.window
    plain = not flags & _NOT_PLAIN
    if win == 0 and plain:
        marks.append(ZERO_WINDOW)
    if f.nextseq is not None and seq > f.nextseq and not flags & RST:
        marks.append(PREVIOUS_NOT_CAPTURED)
    if n <= 1 and f.nextseq is not None and seq == f.nextseq - 1 and plain:
        marks.append(KEEP_ALIVE)
    bare = n == 0 and plain and seq == f.nextseq and ack == f.lastack
    if bare and win and win != f.window:
        marks.append(WINDOW_UPDATE)
    if n and plain and rev.wscale is not None and rev.lastack is not None \
            and rev.window is not None and seq + n == rev.lastack + (rev.window << _shift(rev)):
        marks.append(WINDOW_FULL)
    if bare and win and win == f.window and KEEP_ALIVE in rev.lastmarks:
        marks.append(KEEP_ALIVE_ACK)
        return
    if bare and win == 0 and f.window == 0 and ZERO_WINDOW_PROBE in rev.lastmarks:
        marks.append(ZERO_WINDOW_PROBE_ACK)
        return
    if bare and win and win == f.window:
        f.dupacks += 1
        marks.append(f"{DUP_ACK} {f.lastnondupack}#{f.dupacks}")


def _resend_kind(s: Segment, f: _Flow, rev: _Flow, ooo_us: int) -> str | None:
    """Spurious, fast, out-of-order or plain retransmission, or None."""
    flags, seq, n = s.flags, s.seq, s.length
    behind = f.nextseq is not None and seq < f.nextseq
    if n > 1 and f.nextseq is not None and seq == f.nextseq - 1:
        behind = False              # new data after a zero-window probe
    if n and rev.lastack and seq + n <= rev.lastack:
        return SPURIOUS_RETRANSMISSION
    if behind and rev.dupacks >= 2 and rev.lastack == seq \
            and s.t_us - rev.lastack_us < FAST_RETRANS_US:
        return FAST_RETRANSMISSION
    end = seq + n + (1 if flags & (SYN | FIN) else 0)
    if behind and s.t_us - f.nextseq_us < ooo_us and f.nextseq != end:
        return OUT_OF_ORDER
    return RETRANSMISSION if behind else None
