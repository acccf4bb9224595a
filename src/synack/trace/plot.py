"""Time-sequence (Stevens / tcptrace) graphs and congestion-window plots, with matplotlib.

matplotlib is an optional dependency (``pip install 'synack[plot]'``): it is
imported when a figure is made, never by the rest of synack. Figures are built
on ``matplotlib.figure.Figure`` with the Agg canvas, without pyplot, so nothing
global changes and a test can inspect the returned Figure before saving it.

The Stevens graph of one direction plots, against time since the connection's
first segment: every data segment as a vertical bar from its first to its last
relative sequence number (retransmissions red), the receiver's cumulative ACK
as a step line, the advertised window's right edge (ack + scaled window) as a
second step line, and the SACK blocks the receiver reported as green bars.
"""

from __future__ import annotations

import math
import os
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
            for a, b in s.sack:
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
        ax.plot(ack_t, win_v, drawstyle="steps-post", color="#ff7f0e", linewidth=1.0,
                label="receive window (ack + rwnd)")
    if sack[0]:
        ax.vlines(*sack, colors="#17becf", linewidth=1.5, alpha=0.6, label="SACK blocks")
    top = max(data[2] + again[2] + ack_v, default=0)
    if win_v and max(win_v) > 1.3 * top > 0:
        # The last ACKs often open a window far above the data: keep the data in view.
        ax.set_ylim(bottom=-0.02 * top, top=1.3 * top)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("relative sequence number (bytes)")
    ax.set_title(title or f"time-sequence graph: {conn.name(direction)} -> "
                          f"{conn.name(1 - direction)}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    fig.tight_layout()
    return fig


def cc_figure(samples: list[CcSample], *, title: str = "congestion control") -> Figure:
    """cwnd and ssthresh (segments) above, smoothed RTT and RTO (ms) below, over time."""
    _, figure_cls = _matplotlib()
    fig = figure_cls(figsize=(10, 6), dpi=100)
    top = fig.add_subplot(2, 1, 1)
    bottom = fig.add_subplot(2, 1, 2, sharex=top)
    t = [s.t_us / 1e6 for s in samples]
    top.plot(t, [s.cwnd for s in samples], drawstyle="steps-post", color="#1f3a93",
             label="cwnd", zorder=3)
    # An unset ssthresh is "infinite": leave a gap rather than a line off the chart.
    top.plot(t, [math.nan if s.ssthresh >= SSTHRESH_INFINITE else s.ssthresh for s in samples],
             drawstyle="steps-post", color="#ff7f0e", linestyle="--", label="ssthresh")
    rto = [(s.t_us / 1e6, s.cwnd) for s in samples if s.event == "rto"]
    if rto:
        top.plot(*zip(*rto, strict=True), linestyle="none", marker="x", color="#d62728",
                 label="RTO")
    top.set_ylabel("segments")
    top.set_title(title)
    top.legend(loc="upper left", fontsize="small")
    top.grid(True, alpha=0.3)
    bottom.plot(t, [math.nan if s.srtt_us is None else s.srtt_us / 1000 for s in samples],
                color="#2ca02c", label="smoothed RTT")
    bottom.plot(t, [s.rto_us / 1000 for s in samples], color="#9467bd", linewidth=0.8,
                label="RTO")
    bottom.set_xlabel("time (s)")
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
