"""A connection's statistics as Linux reports them: ``struct tcp_info`` and ``ss -ti``.

:func:`tcp_info` fills :class:`~synack.tcp.tcpinfo.TcpInfo` from a
:class:`~synack.tcp.connection.Connection` with the kernel's units (times in
microseconds or milliseconds, windows in segments), so
``getsockopt(IPPROTO_TCP, TCP_INFO)`` on a synack socket returns the bytes a
Linux socket would, and ``ss``-style lines come out of the same record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from synack import seq as sq
from synack.tcp import chrono
from synack.tcp.icmp_errors import ip_tcp_headers
from synack.tcp.tcpinfo import (
    LINUX_STATES,
    TCPI_OPT_ECN,
    TCPI_OPT_ECN_SEEN,
    TCPI_OPT_SACK,
    TCPI_OPT_SYN_DATA,
    TCPI_OPT_TFO_CHILD,
    TCPI_OPT_TIMESTAMPS,
    TCPI_OPT_WSCALE,
    TcpInfo,
    ss_line,
)

if TYPE_CHECKING:
    from synack.tcp.connection import Connection


def tcp_info(conn: Connection, now: int) -> TcpInfo:
    """The connection's ``struct tcp_info`` at ``now``."""
    neg, snd, rcv, rec, rtt = conn.neg, conn.snd, conn.rcv, conn.rec, conn.rtt
    options = 0
    if neg.ts_ok:
        options |= TCPI_OPT_TIMESTAMPS
    if neg.sack_ok:
        options |= TCPI_OPT_SACK
    if neg.rcv_wscale is not None and conn.rcv is not None:
        options |= TCPI_OPT_WSCALE
    ecn = conn.ecn
    if ecn is not None and ecn.ok:
        options |= TCPI_OPT_ECN
        if ecn.seen:
            options |= TCPI_OPT_ECN_SEEN
    tfo = conn.tfo
    if tfo is not None:
        if tfo.syn_data_acked:
            options |= TCPI_OPT_SYN_DATA
        if conn.tfo_child_pending:
            options |= TCPI_OPT_TFO_CHILD
    mss = conn.mss
    board = rec.board
    flight = max(sq.diff(snd.snd_max, snd.snd_una), 0)
    lost = 0
    retrans = 0
    rack = rec.rack
    if rack is not None:
        lost, retrans = rack.lost_bytes, rack.retrans_bytes   # the lost and resent marks
    elif board is not None and flight:
        lost_end = board.lost_boundary(snd.snd_una)
        lost = sum(sq.diff(b, a) for a, b in board.holes(snd.snd_una, lost_end))
    ms = 1000
    busy, rwnd_limited = chrono.totals(conn.chrono, now)
    return TcpInfo(
        tcpi_state=LINUX_STATES[conn.state.value],
        tcpi_ca_state=rec.state.value,
        tcpi_retransmits=conn.retransmits,
        tcpi_probes=conn.probes_out,
        tcpi_backoff=conn.backoff,
        tcpi_options=options,
        tcpi_snd_wscale=neg.snd_wscale if options & TCPI_OPT_WSCALE else 0,
        tcpi_rcv_wscale=neg.rcv_shift if options & TCPI_OPT_WSCALE else 0,
        tcpi_rto=conn.rtt.backed_off(conn.backoff),
        tcpi_ato=40_000,   # synack's delayed-ACK timeout is fixed at TCP_ATO_MIN
        tcpi_snd_mss=mss,
        tcpi_rcv_mss=conn.ackp.rcv_mss,
        tcpi_unacked=-(-flight // mss) if flight else 0,
        tcpi_sacked=(board.sacked_bytes // mss) if board else rec.dupacks,
        tcpi_lost=-(-lost // mss) if lost else 0,
        tcpi_retrans=-(-retrans // mss) if retrans else 0,
        tcpi_last_data_sent=max(now - conn.last_data_sent, 0) // ms,
        tcpi_last_data_recv=max(now - conn.last_rcv, 0) // ms,
        tcpi_last_ack_recv=max(now - conn.last_rcv, 0) // ms,
        tcpi_pmtu=conn.adv_mss + ip_tcp_headers(conn.local[0]),
        tcpi_rcv_ssthresh=rcv.capacity if rcv else conn.rcv_capacity,
        tcpi_rtt=rtt.srtt or 0,
        tcpi_rttvar=rtt.rttvar,
        tcpi_snd_ssthresh=min(rec.cc.ssthresh, 0xFFFFFFFF),
        tcpi_snd_cwnd=rec.cc.cwnd,
        tcpi_advmss=conn.adv_mss - neg.option_len(),
        tcpi_reordering=rack.reordering if rack is not None else 3,
        tcpi_rcv_space=rcv.capacity if rcv else conn.rcv_capacity,
        tcpi_total_retrans=conn.total_retrans,
        tcpi_bytes_acked=snd.bytes_acked,
        tcpi_bytes_received=rcv.bytes_received if rcv else 0,
        tcpi_segs_out=conn.segs_out,
        tcpi_segs_in=conn.segs_in,
        tcpi_notsent_bytes=snd.unsent(),
        tcpi_min_rtt=rtt.min_rtt or 0,
        tcpi_data_segs_in=conn.data_segs_in,
        tcpi_data_segs_out=conn.data_segs_out,
        tcpi_delivery_rate=conn.delivery_rate,
        # Linux counts packets, the SYN (with any data in it) as one of them.
        tcpi_delivered=-(-conn.delivered // mss) + (snd.snd_una != snd.iss),
        tcpi_bytes_sent=snd.bytes_sent + snd.bytes_retrans,
        tcpi_bytes_retrans=snd.bytes_retrans,
        tcpi_dsack_dups=conn.dsack_dups,
        tcpi_rcv_ooopack=rcv.ooo_packets if rcv else 0,
        tcpi_snd_wnd=snd.snd_wnd,
        tcpi_rcv_wnd=sq.diff(rcv.rcv_adv, rcv.rcv_nxt) if rcv else 0,
        tcpi_total_rto=min(conn.rto_count, 0xFFFF),
        tcpi_total_rto_recoveries=min(conn.rto_count, 0xFFFF),
        tcpi_fastopen_client_fail=tfo.client_fail if tfo is not None else 0,
        tcpi_busy_time=busy,
        tcpi_rwnd_limited=rwnd_limited,
    )


def ss_info(conn: Connection, now: int) -> str:
    """``ss -ti``'s second line for this connection."""
    return ss_line(tcp_info(conn, now), conn.cc_name, show_options=True)
