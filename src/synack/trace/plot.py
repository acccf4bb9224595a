"""Time-sequence (Stevens / tcptrace) graphs and congestion-window plots, with matplotlib.

matplotlib is an optional dependency (``pip install 'synack[plot]'``): it is
imported when a figure is made, never by the rest of synack. Figures are built
on ``matplotlib.figure.Figure`` with the Agg canvas, without pyplot, so nothing
global changes and a test can inspect the returned Figure before saving it.

The Stevens graph of one direction plots, against time since the connection's
first segment: every data segment as a vertical bar from its first to its last
relative sequence number (retransmissions red), the receiver's cumulative ACK
as a step line, the advertised window's right edge (ack + scaled window) as a
second step line kept inside the frame, and the SACK blocks the receiver
reported as thin cyan bars, each SACKed byte once, at the ACK that first
reported it (repeating every block of every ACK fills the area between the
lines with one solid blob).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from synack.trace.capture import Connection
from synack.trace.cctrace import CcSample
from synack.wire.tcp import ACK

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SSTHRESH_INFINITE = 0x7FFFFFFF     # Linux TCP_INFINITE_SSTHRESH: "not set yet"


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed; ``str()`` says how to get it."""


def _matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotUnavailable("plotting needs matplotlib: pip install 'synack[plot]'") from None
    return matplotlib, Figure


def stevens_figure(conn: Connection, direction: int, *, title: str | None = None) -> Figure:
    """The time-sequence graph of the data ``conn`` sends in ``direction`` (0: a to b)."""
    _, figure_cls = _matplotlib()
    fig = figure_cls(figsize=(10, 6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    t0 = conn.segments[0].t_us if conn.segments else 0
    data: tuple[list[float], list[int], list[int]] = ([], [], [])
    again: tuple[list[float], list[int], list[int]] = ([], [], [])
    sack: tuple[list[float], list[int], list[int]] = ([], [], [])
    ack_t: list[float] = []
    ack_v: list[int] = []
    win_v: list[int] = []
    highest = 0                 # tcptrace's rule: data below the highest sent is sent again
    sacked: list[list[int]] = []    # the ranges SACKed so far, sorted, disjoint
    for s in conn.segments:
        t = (s.t_us - t0) / 1e6
        if s.direction == direction and s.length:
            bucket = again if s.seq < highest else data
            highest = max(highest, s.seq + s.length)
            bucket[0].append(t)
            bucket[1].append(s.seq)
            bucket[2].append(s.seq + s.length)
        elif s.direction != direction and s.flags & ACK:
            ack_t.append(t)
            ack_v.append(s.ack)
            win_v.append(s.ack + s.window)
            for a, b in _newly_sacked(sacked, s.ack, s.sack):
                sack[0].append(t)
                sack[1].append(a)
                sack[2].append(b)
    if data[0]:
        ax.vlines(*data, colors="#1f3a93", linewidth=1.2, label="data segments")
        ax.plot(data[0], data[2], linestyle="none", marker="_", color="#1f3a93", markersize=4)
    if again[0]:
        # A segment is a sliver at the scale of a transfer: circle the retransmissions.
        ax.vlines(*again, colors="#d62728", linewidth=2.0, zorder=4)
        ax.plot(again[0], again[2], linestyle="none", marker="o", markerfacecolor="none",
                color="#d62728", markersize=7, zorder=4, label="retransmissions")
    if ack_t:
        ax.plot(ack_t, ack_v, drawstyle="steps-post", color="#2ca02c", linewidth=1.0,
                label="ACK")
    top = max(data[2] + again[2] + ack_v, default=0)
    if win_v:
        _window_line(ax, ack_t, win_v, top)
    if sack[0]:
        # Each SACKed byte once, when first reported, a thin bar above the ACK line;
        # bars get thinner as the graph holds more ACKs, so they never merge into a blob.
        width = max(0.4, min(1.5, 400 / max(1, len(ack_t))))
        ax.vlines(*sack, colors="#17becf", linewidth=width, alpha=0.8, zorder=3,
                  label="SACK blocks (new bytes)")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("relative sequence number (bytes)")
    ax.set_title(title or f"time-sequence graph: {conn.name(direction)} -> "
                          f"{conn.name(1 - direction)}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    fig.tight_layout()
    return fig


def _newly_sacked(sacked: list[list[int]], ack: int,
                  blocks: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``blocks`` above ``ack`` not SACKed before; adds them to ``sacked``."""
    new: list[tuple[int, int]] = []
    for a, b in blocks:
        a = max(a, ack)
        for lo, hi in sacked:               # cut what is already known out of [a, b)
            if b <= lo or a >= b:
                break
            if a < lo:
                new.append((a, lo))
            a = max(a, hi)
        if a < b:
            new.append((a, b))
        for lo, hi in new:                  # a later block of the same ACK may overlap
            _add(sacked, lo, hi)
    return new


def _add(ranges: list[list[int]], a: int, b: int) -> None:
    """Merge ``[a, b)`` into the sorted, disjoint ``ranges``."""
    ranges.append([a, b])
    ranges.sort()
    merged: list[list[int]] = []
    for lo, hi in ranges:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    ranges[:] = merged


def _window_line(ax: Any, ack_t: list[float], win_v: list[int], top: int) -> None:
    """ack + rwnd as a step line kept inside the frame.

    A window at most three times the data's height is drawn whole (the y axis
    makes room); a higher one (the last ACKs often open a window far above the
    data) is drawn flat along the top of the frame, with its largest value
    written there, so the data stays in view and no line leaves the axes.
    """
    high = max(win_v)
    if top <= 0 or high <= 3 * top:
        ax.plot(ack_t, win_v, drawstyle="steps-post", color="#ff7f0e", linewidth=1.0,
                label="receive window (ack + rwnd)")
        ax.set_ylim(bottom=-0.02 * max(high, top), top=1.04 * max(high, top))
        return
    cap = 1.3 * top
    ax.set_ylim(bottom=-0.02 * top, top=cap)
    edge = 0.995 * cap                      # on the top edge, still inside the frame
    ax.plot(ack_t, [min(v, edge) for v in win_v], drawstyle="steps-post", color="#ff7f0e",
            linewidth=1.0, label="receive window (ack + rwnd)")
    first = next(t for t, v in zip(ack_t, win_v, strict=True) if v > edge)
    ax.annotate(f"receive window above the frame (up to {high:,} bytes)",
                xy=(first, edge), xytext=(4, -12), textcoords="offset points",
                fontsize="small", color="#b35900")


def cc_figure(samples: list[CcSample], *, title: str = "congestion control",
              start_us: int | None = None) -> Figure:
    """cwnd and ssthresh (segments) above, smoothed RTT and RTO (ms) below, over time.

    Time 0 is ``start_us``: the moment the connection began (its SYN; ``synack sim``
    records it in the trace), so the axis lines up with the Stevens graph of the same
    run, whose time 0 is the capture's first packet. Without it, the first point.
    """
    _, figure_cls = _matplotlib()
    fig = figure_cls(figsize=(10, 6), dpi=100)
    top = fig.add_subplot(2, 1, 1)
    bottom = fig.add_subplot(2, 1, 2, sharex=top)
    t0 = start_us if start_us is not None else (samples[0].t_us if samples else 0)
    t = [(s.t_us - t0) / 1e6 for s in samples]
    top.plot(t, [s.cwnd for s in samples], drawstyle="steps-post", color="#1f3a93",
             linewidth=2.4, label="cwnd", zorder=3)
    # An unset ssthresh is "infinite": leave a gap rather than a line off the chart.
    # Drawn above cwnd, thinner and dashed, so it shows where the two are equal.
    top.plot(t, [math.nan if s.ssthresh >= SSTHRESH_INFINITE else s.ssthresh for s in samples],
             drawstyle="steps-post", color="#ff7f0e", linestyle=(0, (5, 3)), linewidth=1.4,
             label="ssthresh", zorder=4)
    rto = [((s.t_us - t0) / 1e6, s.cwnd) for s in samples if s.event == "rto"]
    if rto:
        top.plot(*zip(*rto, strict=True), linestyle="none", marker="x", color="#d62728",
                 label="RTO", zorder=5)
    top.set_ylabel("segments")
    top.set_title(title)
    top.legend(loc="upper left", fontsize="small")
    top.grid(True, alpha=0.3)
    bottom.plot(t, [math.nan if s.srtt_us is None else s.srtt_us / 1000 for s in samples],
                color="#2ca02c", label="smoothed RTT")
    bottom.plot(t, [s.rto_us / 1000 for s in samples], color="#9467bd", linewidth=0.8,
                label="RTO")
    bottom.set_xlabel("time since the connection's SYN (s)" if start_us is not None
                      else "time since the trace's first point (s)")
    bottom.set_xlim(left=0)
    bottom.set_ylabel("ms")
    bottom.legend(loc="upper left", fontsize="small")
    bottom.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def save_png(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Render ``fig`` with the Agg backend into a PNG file."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, format="png")
