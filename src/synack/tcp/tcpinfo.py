"""Linux ``struct tcp_info`` (``getsockopt(TCP_INFO)``) as a dataclass, and ``ss -ti`` lines.

:class:`TcpInfo` has every field of ``struct tcp_info`` from
``include/uapi/linux/tcp.h`` as of Linux 6.18, in kernel order and under its
kernel name, so synack can report its connections the way Linux does and tests
can read a real kernel socket with the same type.

Layout notes
------------
* The struct is in native byte order; its fields are naturally aligned with no
  holes, and it ends on an 8-byte boundary (280 bytes in 6.18; 248 in 6.7 to
  6.17, where it ended at ``tcpi_total_rto_time``).
* Two bytes are C bitfields: ``tcpi_snd_wscale:4, tcpi_rcv_wscale:4`` and
  ``tcpi_delivery_rate_app_limited:1, tcpi_fastopen_client_fail:2``. GCC packs
  bitfields from the least significant bit on little-endian targets and from
  the most significant bit on big-endian ones; :func:`_members` follows that.
* Older kernels return a shorter struct (the kernel copies
  ``min(optlen, sizeof(struct tcp_info))`` bytes); :meth:`TcpInfo.unpack` pads
  with zeros, as ``ss`` does, so the fields an old kernel lacks read as 0. A
  longer buffer from a newer kernel is cut to :data:`SIZE`.
* The 6.18 AccECN tail (``tcpi_received_ce`` .. ``tcpi_accecn_opt_seen``) was
  checked against a 6.18 kernel: with classic ECN on loopback the receiver's
  ``tcpi_received_e0_bytes`` counts the payload and the last four bytes are two
  zero ``__u16`` (net-next has since proposed repacking those four bytes as a
  ``__u32`` bitfield with ``tcpi_ecn_mode``; the size would not change).
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass

__all__ = [
    "CA_STATES",
    "LINUX_STATES",
    "SIZE",
    "TCPI_OPT_ECN",
    "TCPI_OPT_ECN_SEEN",
    "TCPI_OPT_SACK",
    "TCPI_OPT_SYN_DATA",
    "TCPI_OPT_TFO_CHILD",
    "TCPI_OPT_TIMESTAMPS",
    "TCPI_OPT_USEC_TS",
    "TCPI_OPT_WSCALE",
    "TcpInfo",
    "ss_line",
]

# tcpi_options bits, include/uapi/linux/tcp.h.
TCPI_OPT_TIMESTAMPS = 1
TCPI_OPT_SACK = 2
TCPI_OPT_WSCALE = 4
TCPI_OPT_ECN = 8  # ECN was negotiated at TCP session init
TCPI_OPT_ECN_SEEN = 16  # at least one packet with ECT was received
TCPI_OPT_SYN_DATA = 32  # SYN-ACK acked data in SYN sent or received
TCPI_OPT_USEC_TS = 64  # microsecond timestamps (Linux 6.7)
TCPI_OPT_TFO_CHILD = 128  # child socket of a Fast Open SYN

# include/net/tcp_states.h. TCP_NEW_SYN_RECV (12) is a request socket, never a
# connection's state, and TCP_BOUND_INACTIVE (13) is an unconnected socket.
TCP_ESTABLISHED = 1
TCP_SYN_SENT = 2
TCP_SYN_RECV = 3
TCP_FIN_WAIT1 = 4
TCP_FIN_WAIT2 = 5
TCP_TIME_WAIT = 6
TCP_CLOSE = 7
TCP_CLOSE_WAIT = 8
TCP_LAST_ACK = 9
TCP_LISTEN = 10
TCP_CLOSING = 11

#: ``tcpi_state`` for each state, keyed by the names of ``synack.tcp.state.State``.
LINUX_STATES: dict[str, int] = {
    "ESTABLISHED": TCP_ESTABLISHED,
    "SYN_SENT": TCP_SYN_SENT,
    "SYN_RECEIVED": TCP_SYN_RECV,
    "FIN_WAIT_1": TCP_FIN_WAIT1,
    "FIN_WAIT_2": TCP_FIN_WAIT2,
    "TIME_WAIT": TCP_TIME_WAIT,
    "CLOSED": TCP_CLOSE,
    "CLOSE_WAIT": TCP_CLOSE_WAIT,
    "LAST_ACK": TCP_LAST_ACK,
    "LISTEN": TCP_LISTEN,
    "CLOSING": TCP_CLOSING,
}

#: ``tcpi_ca_state`` values, ``enum tcp_ca_state`` in include/uapi/linux/tcp.h.
CA_STATES: dict[str, int] = {"Open": 0, "Disorder": 1, "CWR": 2, "Recovery": 3, "Loss": 4}

# The struct in kernel order as (field, struct code); a bitfield byte is written
# as its C members "name:width ..." in declaration order.
_LAYOUT: tuple[tuple[str, str], ...] = (
    ("tcpi_state", "B"),
    ("tcpi_ca_state", "B"),
    ("tcpi_retransmits", "B"),
    ("tcpi_probes", "B"),
    ("tcpi_backoff", "B"),
    ("tcpi_options", "B"),
    ("tcpi_snd_wscale:4 tcpi_rcv_wscale:4", "B"),
    ("tcpi_delivery_rate_app_limited:1 tcpi_fastopen_client_fail:2", "B"),
    ("tcpi_rto", "I"),
    ("tcpi_ato", "I"),
    ("tcpi_snd_mss", "I"),
    ("tcpi_rcv_mss", "I"),
    ("tcpi_unacked", "I"),
    ("tcpi_sacked", "I"),
    ("tcpi_lost", "I"),
    ("tcpi_retrans", "I"),
    ("tcpi_fackets", "I"),
    ("tcpi_last_data_sent", "I"),
    ("tcpi_last_ack_sent", "I"),
    ("tcpi_last_data_recv", "I"),
    ("tcpi_last_ack_recv", "I"),
    ("tcpi_pmtu", "I"),
    ("tcpi_rcv_ssthresh", "I"),
    ("tcpi_rtt", "I"),
    ("tcpi_rttvar", "I"),
    ("tcpi_snd_ssthresh", "I"),
    ("tcpi_snd_cwnd", "I"),
    ("tcpi_advmss", "I"),
    ("tcpi_reordering", "I"),
    ("tcpi_rcv_rtt", "I"),
    ("tcpi_rcv_space", "I"),
    ("tcpi_total_retrans", "I"),
    ("tcpi_pacing_rate", "Q"),
    ("tcpi_max_pacing_rate", "Q"),
    ("tcpi_bytes_acked", "Q"),
    ("tcpi_bytes_received", "Q"),
    ("tcpi_segs_out", "I"),
    ("tcpi_segs_in", "I"),
    ("tcpi_notsent_bytes", "I"),
    ("tcpi_min_rtt", "I"),
    ("tcpi_data_segs_in", "I"),
    ("tcpi_data_segs_out", "I"),
    ("tcpi_delivery_rate", "Q"),
    ("tcpi_busy_time", "Q"),
    ("tcpi_rwnd_limited", "Q"),
    ("tcpi_sndbuf_limited", "Q"),
    ("tcpi_delivered", "I"),
    ("tcpi_delivered_ce", "I"),
    ("tcpi_bytes_sent", "Q"),
    ("tcpi_bytes_retrans", "Q"),
    ("tcpi_dsack_dups", "I"),
    ("tcpi_reord_seen", "I"),
    ("tcpi_rcv_ooopack", "I"),
    ("tcpi_snd_wnd", "I"),
    ("tcpi_rcv_wnd", "I"),
    ("tcpi_rehash", "I"),
    ("tcpi_total_rto", "H"),
    ("tcpi_total_rto_recoveries", "H"),
    ("tcpi_total_rto_time", "I"),
    ("tcpi_received_ce", "I"),
    ("tcpi_delivered_e1_bytes", "I"),
    ("tcpi_delivered_e0_bytes", "I"),
    ("tcpi_delivered_ce_bytes", "I"),
    ("tcpi_received_e1_bytes", "I"),
    ("tcpi_received_e0_bytes", "I"),
    ("tcpi_received_ce_bytes", "I"),
    ("tcpi_accecn_fail_mode", "H"),
    ("tcpi_accecn_opt_seen", "H"),
)

# Native byte order, standard sizes, no implicit padding: the kernel struct has
# none (test_tcpinfo checks the offsets against the header's).
_STRUCT = struct.Struct("=" + "".join(code for _, code in _LAYOUT))

#: Bytes of ``struct tcp_info`` this module knows (Linux 6.18).
SIZE = _STRUCT.size


def _members(decl: str) -> tuple[tuple[str, int, int], ...]:
    """(field, shift, width) of each member of one struct slot; width 0 is a plain field.

    GCC allocates bitfields from the least significant bit on little-endian
    targets and from the most significant bit on big-endian ones.
    """
    if ":" not in decl:
        return ((decl, 0, 0),)
    out = []
    used = 0
    for member in decl.split():
        name, width_text = member.split(":")
        width = int(width_text)
        shift = used if sys.byteorder == "little" else 8 - used - width
        out.append((name, shift, width))
        used += width
    return tuple(out)


_SLOTS = tuple(_members(decl) for decl, _ in _LAYOUT)


@dataclass(frozen=True, slots=True)
class TcpInfo:
    """One ``struct tcp_info``; every field defaults to 0. Units are the kernel's.

    Times are microseconds (``tcpi_rto``, ``tcpi_ato``, ``tcpi_rtt``,
    ``tcpi_rttvar``, ``tcpi_rcv_rtt``, ``tcpi_min_rtt``, ``tcpi_busy_time``,
    ``tcpi_rwnd_limited``, ``tcpi_sndbuf_limited``) or milliseconds
    (``tcpi_last_*``, ``tcpi_total_rto_time``); rates are bytes per second;
    ``tcpi_unacked``, ``tcpi_sacked``, ``tcpi_lost``, ``tcpi_retrans``,
    ``tcpi_snd_cwnd`` and ``tcpi_reordering`` count segments.
    """

    tcpi_state: int = 0
    tcpi_ca_state: int = 0
    tcpi_retransmits: int = 0
    tcpi_probes: int = 0
    tcpi_backoff: int = 0
    tcpi_options: int = 0
    tcpi_snd_wscale: int = 0  # :4
    tcpi_rcv_wscale: int = 0  # :4
    tcpi_delivery_rate_app_limited: int = 0  # :1
    tcpi_fastopen_client_fail: int = 0  # :2
    tcpi_rto: int = 0
    tcpi_ato: int = 0
    tcpi_snd_mss: int = 0
    tcpi_rcv_mss: int = 0
    tcpi_unacked: int = 0
    tcpi_sacked: int = 0
    tcpi_lost: int = 0
    tcpi_retrans: int = 0
    tcpi_fackets: int = 0
    tcpi_last_data_sent: int = 0
    tcpi_last_ack_sent: int = 0  # Linux never fills it ("Not remembered, sorry.")
    tcpi_last_data_recv: int = 0
    tcpi_last_ack_recv: int = 0
    tcpi_pmtu: int = 0
    tcpi_rcv_ssthresh: int = 0
    tcpi_rtt: int = 0
    tcpi_rttvar: int = 0
    tcpi_snd_ssthresh: int = 0
    tcpi_snd_cwnd: int = 0
    tcpi_advmss: int = 0
    tcpi_reordering: int = 0
    tcpi_rcv_rtt: int = 0
    tcpi_rcv_space: int = 0
    tcpi_total_retrans: int = 0
    tcpi_pacing_rate: int = 0
    tcpi_max_pacing_rate: int = 0
    tcpi_bytes_acked: int = 0
    tcpi_bytes_received: int = 0
    tcpi_segs_out: int = 0
    tcpi_segs_in: int = 0
    tcpi_notsent_bytes: int = 0
    tcpi_min_rtt: int = 0
    tcpi_data_segs_in: int = 0
    tcpi_data_segs_out: int = 0
    tcpi_delivery_rate: int = 0
    tcpi_busy_time: int = 0
    tcpi_rwnd_limited: int = 0
    tcpi_sndbuf_limited: int = 0
    tcpi_delivered: int = 0
    tcpi_delivered_ce: int = 0
    tcpi_bytes_sent: int = 0
    tcpi_bytes_retrans: int = 0
    tcpi_dsack_dups: int = 0
    tcpi_reord_seen: int = 0
    tcpi_rcv_ooopack: int = 0
    tcpi_snd_wnd: int = 0
    tcpi_rcv_wnd: int = 0
    tcpi_rehash: int = 0
    tcpi_total_rto: int = 0
    tcpi_total_rto_recoveries: int = 0
    tcpi_total_rto_time: int = 0
    tcpi_received_ce: int = 0
    tcpi_delivered_e1_bytes: int = 0
    tcpi_delivered_e0_bytes: int = 0
    tcpi_delivered_ce_bytes: int = 0
    tcpi_received_e1_bytes: int = 0
    tcpi_received_e0_bytes: int = 0
    tcpi_received_ce_bytes: int = 0
    tcpi_accecn_fail_mode: int = 0
    tcpi_accecn_opt_seen: int = 0

    def pack(self) -> bytes:
        """The :data:`SIZE` bytes the kernel would return for these values.

        Raises ``struct.error`` if a field does not fit its C type; bitfield
        values are masked to their width, as a C assignment would.
        """
        args: list[int] = []
        for members in _SLOTS:
            value = 0
            for name, shift, width in members:
                field = getattr(self, name)
                value |= field if not width else (field & ((1 << width) - 1)) << shift
            args.append(value)
        return _STRUCT.pack(*args)

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> TcpInfo:
        """Read ``getsockopt(TCP_INFO)`` bytes; missing trailing fields read as 0."""
        raw = bytes(data[:SIZE]).ljust(SIZE, b"\0")
        fields: dict[str, int] = {}
        for members, value in zip(_SLOTS, _STRUCT.unpack(raw)):
            for name, shift, width in members:
                fields[name] = value if not width else (value >> shift) & ((1 << width) - 1)
        return cls(**fields)


_U64_MAX = (1 << 64) - 1
_U32_MAX = (1 << 32) - 1
_SSTHRESH_INFINITE = 0xFFFF  # ss prints ssthresh only below this (TCP_INFINITE_SSTHRESH is 0x7fffffff)
_RTO_INITIAL_US = 3_000_000  # ss hides rto while it is the old 3 s initial value


def _bw(bits_per_s: float, numeric: bool) -> str:
    """A rate as ``ss`` prints it: ``%.0f`` with ``-n``, else 3 digits and a unit."""
    if numeric:
        return f"{bits_per_s:.0f}"
    for scale, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if bits_per_s >= scale:
            return f"{bits_per_s / scale:.3g}{unit}"
    return f"{bits_per_s:g}"


def ss_line(
    info: TcpInfo, cc: str = "", *, numeric: bool = False, show_options: bool = False
) -> str:
    """The ``tcp_info`` part of an ``ss -ti`` line (iproute2 ``tcp_stats_print``).

    ``cc`` is the congestion control name (``ss`` gets it from
    ``INET_DIAG_CONG``, not from ``tcp_info``); ``numeric`` is ``ss -n`` (rates
    as plain bits per second); ``show_options`` adds ``ts sack ecn ...`` as
    ``ss -o``/``-e`` do. Algorithm-private blocks (``bbr:(...)``,
    ``dctcp:(...)``) come from other netlink attributes and are not printed.
    Fields are printed only when non-zero, as ``ss`` does.
    """
    i = info
    out: list[str] = []
    if show_options:
        for bit, word in (
            (TCPI_OPT_TIMESTAMPS, "ts"),
            (TCPI_OPT_USEC_TS, "usec_ts"),
            (TCPI_OPT_SACK, "sack"),
            (TCPI_OPT_ECN, "ecn"),
            (TCPI_OPT_ECN_SEEN, "ecnseen"),
            (TCPI_OPT_SYN_DATA, "fastopen"),
            (TCPI_OPT_TFO_CHILD, "fastopen_child"),
        ):
            if i.tcpi_options & bit:
                out.append(word)
    if cc:
        out.append(cc)
    if i.tcpi_options & TCPI_OPT_WSCALE:
        out.append(f"wscale:{i.tcpi_snd_wscale},{i.tcpi_rcv_wscale}")
    if i.tcpi_rto and i.tcpi_rto != _RTO_INITIAL_US:
        out.append(f"rto:{i.tcpi_rto / 1000:g}")
    if i.tcpi_backoff:
        out.append(f"backoff:{i.tcpi_backoff}")
    if i.tcpi_rtt:
        out.append(f"rtt:{i.tcpi_rtt / 1000:g}/{i.tcpi_rttvar / 1000:g}")
    if i.tcpi_ato:
        out.append(f"ato:{i.tcpi_ato / 1000:g}")
    counters: tuple[tuple[str, int], ...] = (
        ("mss", i.tcpi_snd_mss),
        ("pmtu", i.tcpi_pmtu),
        ("rcvmss", i.tcpi_rcv_mss),
        ("advmss", i.tcpi_advmss),
        ("cwnd", i.tcpi_snd_cwnd),
        ("ssthresh", i.tcpi_snd_ssthresh if i.tcpi_snd_ssthresh < _SSTHRESH_INFINITE else 0),
        ("bytes_sent", i.tcpi_bytes_sent),
        ("bytes_retrans", i.tcpi_bytes_retrans),
        ("bytes_acked", i.tcpi_bytes_acked),
        ("bytes_received", i.tcpi_bytes_received),
        ("segs_out", i.tcpi_segs_out),
        ("segs_in", i.tcpi_segs_in),
        ("data_segs_out", i.tcpi_data_segs_out),
        ("data_segs_in", i.tcpi_data_segs_in),
    )
    out += [f"{name}:{value}" for name, value in counters if value]
    if i.tcpi_rtt and i.tcpi_snd_mss and i.tcpi_snd_cwnd:
        send_bps = i.tcpi_snd_cwnd * i.tcpi_snd_mss * 8_000_000 / i.tcpi_rtt
        out.append(f"send {_bw(send_bps, numeric)}bps")
    for name, value in (
        ("lastsnd", i.tcpi_last_data_sent),
        ("lastrcv", i.tcpi_last_data_recv),
        ("lastack", i.tcpi_last_ack_recv),
    ):
        if value:
            out.append(f"{name}:{value}")
    if i.tcpi_pacing_rate and i.tcpi_pacing_rate != _U64_MAX:
        pacing = f"pacing_rate {_bw(i.tcpi_pacing_rate * 8, numeric)}bps"
        if i.tcpi_max_pacing_rate and i.tcpi_max_pacing_rate != _U64_MAX:
            pacing += f"/{_bw(i.tcpi_max_pacing_rate * 8, numeric)}bps"
        out.append(pacing)
    if i.tcpi_delivery_rate:
        out.append(f"delivery_rate {_bw(i.tcpi_delivery_rate * 8, numeric)}bps")
    if i.tcpi_delivered:
        out.append(f"delivered:{i.tcpi_delivered}")
    if i.tcpi_delivered_ce:
        out.append(f"delivered_ce:{i.tcpi_delivered_ce}")
    if i.tcpi_delivery_rate_app_limited:
        out.append("app_limited")
    if i.tcpi_busy_time:
        busy = i.tcpi_busy_time
        out.append(f"busy:{busy // 1000}ms")
        for name, value in (("rwnd_limited", i.tcpi_rwnd_limited),
                            ("sndbuf_limited", i.tcpi_sndbuf_limited)):
            if value:
                out.append(f"{name}:{value // 1000}ms({100.0 * value / busy:.1f}%)")
    if i.tcpi_unacked:
        out.append(f"unacked:{i.tcpi_unacked}")
    if i.tcpi_retrans or i.tcpi_total_retrans:
        out.append(f"retrans:{i.tcpi_retrans}/{i.tcpi_total_retrans}")
    if i.tcpi_lost:
        out.append(f"lost:{i.tcpi_lost}")
    if i.tcpi_sacked and i.tcpi_state != TCP_LISTEN:
        out.append(f"sacked:{i.tcpi_sacked}")
    if i.tcpi_dsack_dups:
        out.append(f"dsack_dups:{i.tcpi_dsack_dups}")
    if i.tcpi_fackets:
        out.append(f"fackets:{i.tcpi_fackets}")
    if i.tcpi_reordering != 3:
        out.append(f"reordering:{i.tcpi_reordering}")
    if i.tcpi_reord_seen:
        out.append(f"reord_seen:{i.tcpi_reord_seen}")
    if i.tcpi_rcv_rtt:
        out.append(f"rcv_rtt:{i.tcpi_rcv_rtt / 1000:g}")
    if i.tcpi_rcv_space:
        out.append(f"rcv_space:{i.tcpi_rcv_space}")
    if i.tcpi_rcv_ssthresh:
        out.append(f"rcv_ssthresh:{i.tcpi_rcv_ssthresh}")
    if i.tcpi_notsent_bytes:
        out.append(f"notsent:{i.tcpi_notsent_bytes}")
    if i.tcpi_min_rtt and i.tcpi_min_rtt != _U32_MAX:
        out.append(f"minrtt:{i.tcpi_min_rtt / 1000:g}")
    for name, value in (
        ("rcv_ooopack", i.tcpi_rcv_ooopack),
        ("snd_wnd", i.tcpi_snd_wnd),
        ("rcv_wnd", i.tcpi_rcv_wnd),
        ("rehash", i.tcpi_rehash),
    ):
        if value:
            out.append(f"{name}:{value}")
    return " ".join(out)
