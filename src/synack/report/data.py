"""A capture (and synack's own congestion trace) as the data of one report page.

Everything the page shows is computed here, in Python, from the same code the
other tools use: the segments and Wireshark-like marks come from
:func:`synack.trace.capture.read_capture`, the header dissection from
:func:`synack.commands.header.dissect` (in English and Chinese, as ``synack
header`` prints it), the reasons of the marks from :mod:`synack.report.reasons`.
The page only draws. Times are microseconds since the connection's first packet.

From the capture alone, for the direction that carries the data, come bytes in
flight (highest sequence sent minus the peer's last ACK, as Wireshark's
``tcp.analysis.bytes_in_flight``), RTT samples (an ACK that covers exactly the end
of a segment sent once, Karn's rule), and the SACK scoreboard (the SACKed ranges
above the cumulative ACK, remembered until the ACK passes them, RFC 6675). Where
synack was the sender, its trace adds cwnd, ssthresh, SRTT and RTO.
"""

from __future__ import annotations

import os
from typing import Any

from synack.trace.capture import Capture, Connection, read_capture
from synack.trace.cctrace import CcSample
from synack.wire.tcp import ACK, FIN, SYN, flags_str

SSTHRESH_INFINITE = 0x7FFFFFFF      # Linux TCP_INFINITE_SSTHRESH: "not set yet"
TRACE_SLACK_US = 1_000_000          # a trace within 1 s of the capture shares its clock


def choose(cap: Capture, number: int | None) -> Connection:
    """Connection ``number`` (1-based), or the one with the most segments."""
    if not cap.connections:
        raise ValueError(f"{cap.path}: no TCP connections in {cap.packets} packets")
    if number is None:
        return max(cap.connections, key=lambda c: len(c.segments))
    if not 1 <= number <= len(cap.connections):
        raise ValueError(f"--conn {number}: the file has connections 1 to "
                         f"{len(cap.connections)} (see synack ladder --list)")
    return cap.connections[number - 1]


def build_report(path: str | os.PathLike[str], *, conn: int | None = None,
                 trace: tuple[dict[str, Any], list[CcSample]] | None = None,
                 title: str | None = None, notes: dict[str, str] | None = None
                 ) -> dict[str, Any]:
    """The page's data for connection ``conn`` of the capture at ``path``.

    ``trace`` is ``(metadata, samples)`` of synack's cc trace (the data sender's);
    ``notes`` an explanation per language (a demo scenario's), shown above the graphs.
    Raises :class:`~synack.trace.capture.CaptureError` / ValueError with one line.
    """
    from synack.commands.header import dissect, raw_packets
    from synack.report.reasons import mark_reasons

    cap = read_capture(path)
    c = choose(cap, conn)
    segs = c.segments
    t0 = min(s.t_us for s in segs)      # the first packet (a capture's clock may step back)
    data_dir = 0 if c.payload_bytes(0) >= c.payload_bytes(1) else 1
    raw = raw_packets(os.fspath(path), {s.number for s in segs})
    dis: dict[str, list[str]] = {"en": [], "zh": []}
    for s in segs:
        for lang in ("en", "zh"):
            packet = raw.get(s.number)
            dis[lang].append("\n".join(dissect(c, s, packet, lang=lang)) if packet else "")
    offset, cc = _trace_data(trace, t0, max(s.t_us for s in segs))
    rto_times = None
    rto_values: dict[int, int] = {}
    if trace is not None:
        rto_times = [x.t_us + offset for x in trace[1] if x.event == "rto"]
        rto_values = {x.t_us + offset: x.rto_us for x in trace[1] if x.event == "rto"}
    trace_start = trace[1][0].t_us + offset if trace is not None and trace[1] else None
    reasons = mark_reasons(c, t0, rto_times, rto_values, trace_start)
    mss = _mss(c, data_dir, trace)
    return {
        "format": "synack-report", "version": 1,
        "title": title or f"synack report: {os.path.basename(os.fspath(path))}",
        "file": os.path.basename(os.fspath(path)),
        "packets": cap.packets, "connections": len(cap.connections),
        "warnings": cap.warnings(),
        "conn": {"number": c.number, "a": c.name(0), "b": c.name(1)},
        "notes": notes or {},
        "data_dir": data_dir, "mss": mss,
        "owd_us": _one_way_us(c),
        "duration_us": max(s.t_us for s in segs) - t0,
        "seg": [[s.number, s.t_us - t0, s.direction, s.seq, s.ack, s.length, s.flags,
                 flags_str(s.flags), s.window, list(s.marks), [list(b) for b in s.sack]]
                for s in segs],
        "reasons": {str(i): r for i, r in reasons.items()},
        "dis": dis,
        # The page looks these series up by time: sorted (stable) whatever the capture's order.
        "inflight": sorted(_inflight(c, data_dir, t0), key=lambda p: p[0]),
        "rtt": sorted(_rtt_samples(c, data_dir, t0), key=lambda p: p[0]),
        "sack": sorted(_scoreboard(c, data_dir, t0), key=lambda p: p[0]),
        "cc": cc,
    }


def _trace_data(trace: tuple[dict[str, Any], list[CcSample]] | None, t0: int,
                t_end: int) -> tuple[int, dict[str, Any] | None]:
    """(offset to add to trace times for the capture's clock, the series for the page)."""
    if trace is None or not trace[1]:
        return 0, None
    meta, samples = trace
    first, last = samples[0].t_us, samples[-1].t_us
    aligned = first <= t_end + TRACE_SLACK_US and last >= t0 - TRACE_SLACK_US
    offset = 0 if aligned else t0 - first
    return offset, {
        "name": meta.get("cc") or "", "aligned": aligned,
        "t": [x.t_us + offset - t0 for x in samples],
        "event": [x.event for x in samples],
        "cwnd": [x.cwnd for x in samples],
        "ssthresh": [None if x.ssthresh >= SSTHRESH_INFINITE else x.ssthresh for x in samples],
        "srtt": [x.srtt_us for x in samples],
        "rto": [x.rto_us for x in samples],
        "state": [x.ca_state for x in samples],
    }


def _mss(c: Connection, d: int, trace: tuple[dict[str, Any], list[CcSample]] | None) -> int:
    """Bytes per segment for in-flight-in-segments: the trace's, the SYN's, else the largest."""
    if trace is not None and trace[0].get("mss"):
        return int(trace[0]["mss"])
    peer_syn = next((s for s in c.segments if s.direction != d and s.flags & SYN), None)
    if peer_syn is not None and peer_syn.seg.mss:
        return int(peer_syn.seg.mss)
    return max((s.length for s in c.segments if s.direction == d), default=0) or 536


def _one_way_us(c: Connection) -> int:
    """Half the first round trip: where the ladder draws a segment's arrival."""
    from synack.trace.analysis import first_rtt_us

    rtt = first_rtt_us(c)
    if rtt:
        return max(rtt // 2, 1)
    return max(c.duration_us // 200, 1)


def _inflight(c: Connection, d: int, t0: int) -> list[list[int]]:
    """``[t, bytes]`` after every segment either way (Wireshark's bytes in flight)."""
    out: list[list[int]] = []
    high: int | None = None
    acked: int | None = None
    for s in c.segments:
        if s.direction == d:
            occupies = s.length + (1 if s.flags & SYN else 0) + (1 if s.flags & FIN else 0)
            if occupies and (high is None or s.seq + occupies > high):
                high = s.seq + occupies
        elif s.flags & ACK and (acked is None or s.ack > acked):
            acked = s.ack
        if high is not None:
            out.append([s.t_us - t0, max(high - (acked or 0), 0)])
    return out


def _rtt_samples(c: Connection, d: int, t0: int) -> list[list[int]]:
    """``[t, rtt_us]`` at each ACK that covers exactly the end of a segment sent once."""
    sent: dict[int, int | None] = {}        # end seq -> send time; None once sent again
    out: list[list[int]] = []
    for s in c.segments:
        if s.direction == d:
            occupies = s.length + (1 if s.flags & SYN else 0) + (1 if s.flags & FIN else 0)
            if occupies:
                end = s.seq + occupies
                sent[end] = None if end in sent else s.t_us
        elif s.flags & ACK and s.ack in sent:
            t = sent.pop(s.ack)
            if t is not None:
                out.append([s.t_us - t0, s.t_us - t])
    return out


def _scoreboard(c: Connection, d: int, t0: int) -> list[list[Any]]:
    """``[t, ack, [[left, right], ...]]`` at every peer ACK that changes the SACKed ranges."""
    board: list[list[int]] = []
    out: list[list[Any]] = []
    for s in c.segments:
        if s.direction == d or not s.flags & ACK:
            continue
        merged: list[list[int]] = []
        for left, right in sorted([*board, *([a, b] for a, b in s.sack)]):
            left = max(left, s.ack)
            if right <= left:
                continue
            if merged and left <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], right)
            else:
                merged.append([left, right])
        if merged != board or (s.sack and merged):
            out.append([s.t_us - t0, s.ack, merged])
        board = merged
    return out
