"""What a new connection takes from its host's configuration: the buffer sizes, the
window scale it offers, the options of its SYN, adv_mss and the congestion control.

The same for every connection of a listener (same sysctls, socket options, MTU and
address family), so :class:`~synack.tcp.connection.Connection` computes them once per
configuration with :func:`derive` and keeps the result in ``Sysctl.derived``, which
every sysctl write empties (Linux reads these sysctls per SYN: a value set after
listen() shows in the next connection).
"""

from __future__ import annotations

from typing import Any

from synack.config import Sysctl
from synack.tcp import cc as ccmod
from synack.tcp.ackpolicy import MAX_QUICKACKS
from synack.tcp.icmp_errors import IP6_TCP_HEADERS, IP_TCP_HEADERS, ip_tcp_headers
from synack.tcp.rare import pooled
from synack.tcp.records import SockOpts
from synack.tcp.sender import shared

DEFAULT_MSS = 536  # RFC 9293 3.7.1: assume 536 when the peer sends no MSS option
# The order of the pool tuple (Connection's Pooled fields, rare.py) that derive() makes.
PEER_MSS, PMTU, RCVBUF, RCV_CAPACITY, RCV_MAX_CAPACITY, PASSIVE = 0, 1, 2, 3, 4, 5
OFFER_TS, OFFER_SACK, RCV_WSCALE = 6, 7, 8

#: derive()'s result, kept in Sysctl.derived.
Derived = tuple[tuple[object, ...], int, int, int, ccmod.CongestionControl]


def derive(cfg: Sysctl, opts: SockOpts, mtu: int, local_ip: str) -> Derived:
    """A new connection's fields that depend only on the sysctls, the socket options,
    the MTU and the address family: (pool, snd_max_capacity, the send buffer's
    capacity, adv_mss, a prototype congestion controller for a connection's first
    MSS: each connection's is its ``fresh()`` copy)."""
    rmem = cfg.triple("net.ipv4.tcp_rmem")
    wmem = cfg.triple("net.ipv4.tcp_wmem")
    rcvbuf = opts.rcvbuf or rmem[1]
    sndbuf = opts.sndbuf or wmem[1]
    # Linux keeps half of a buffer for overhead (tcp_adv_win_scale = 1): the payload
    # capacity is half of SO_RCVBUF / SO_SNDBUF; set by the user it is locked, else
    # it grows up to half of tcp_rmem[2] / tcp_wmem[2].
    # pooled() and shared(): the same objects for the same sizes in every connection
    # (an int above 256 is a 28-byte object of its own each time it is computed).
    rcv_capacity = max(rcvbuf // 2, 1)
    rcv_max_capacity = rcv_capacity if opts.rcvbuf else max(rmem[2] // 2, 1)
    if opts.window_clamp:
        # Linux tcp_select_initial_window(): the window never exceeds the clamp.
        rcv_capacity = min(rcv_capacity, opts.window_clamp)
        rcv_max_capacity = min(rcv_max_capacity, opts.window_clamp)
    pool = pooled((      # in the order of PEER_MSS ... RCV_WSCALE above
        DEFAULT_MSS, mtu, rcvbuf, rcv_capacity, rcv_max_capacity, False,
        cfg.int("net.ipv4.tcp_timestamps") == 1, cfg.int("net.ipv4.tcp_sack") == 1,
        _wscale_for(min(opts.rcvbuf or rmem[2], opts.window_clamp or 1 << 30))
        if cfg.int("net.ipv4.tcp_window_scaling") == 1 else None))
    snd_max_capacity = shared(max(sndbuf // 2, 1) if opts.sndbuf else max(wmem[2] // 2, 1))
    # What we announce in our SYN: the MTU less the IP and TCP headers (1460 over IPv4,
    # 1440 over IPv6 at MTU 1500).
    adv_mss = shared(opts.maxseg or (mtu - ip_tcp_headers(local_ip)))
    cc_name = opts.congestion or str(cfg["net.ipv4.tcp_congestion_control"])
    # (Connection.__init__'s first MSS: the peer's MSS is not known yet.)
    proto = ccmod.create(cc_name, mss=DEFAULT_MSS if DEFAULT_MSS <= adv_mss else adv_mss,  # noqa: FURB136
                         now=0, hystart=hystart(cfg))
    return (pool, snd_max_capacity, shared(max(sndbuf // 2, 1)), adv_mss, proto)


_HYSTART: dict[tuple[int, int, int, int], ccmod.HystartParams] = {}


def hystart(cfg: Sysctl) -> ccmod.HystartParams:
    """CUBIC's HyStart module parameters from the host's table (one object per set of
    values, shared by every connection that has them)."""
    key = (cfg.int("tcp_cubic.hystart"), cfg.int("tcp_cubic.hystart_detect"),
           cfg.int("tcp_cubic.hystart_low_window"), cfg.int("tcp_cubic.hystart_ack_delta_us"))
    got = _HYSTART.get(key)
    if got is None:
        got = _HYSTART[key] = ccmod.HystartParams(bool(key[0]), *key[1:])
    return got


def _wscale_for(space: int) -> int:
    """Linux tcp_select_initial_window(): the smallest shift that fits ``space`` in 16 bits."""
    ws = 0
    while space > 0xFFFF and ws < 14:
        space >>= 1
        ws += 1
    return ws


_SynKey = tuple[tuple[object, ...], bool, int | None, bool, bool, int, bool]
_SynTerms = tuple[tuple[object, ...], int, int]
SYN_TERMS: dict[_SynKey, _SynTerms] = {}


def syn_terms(key: _SynKey) -> _SynTerms:
    """For Connection._take_syn_options(): the connection's new pool, its MSS and its
    first quick-ACK count from (pool, window scaling refused, the SYN's MSS option,
    passive, timestamps agreed, adv_mss, IPv6). Kept in SYN_TERMS (bounded)."""
    old, no_wscale, seg_mss, passive, ts_ok, adv_mss, v6 = key
    # The pooled fields (rare.py) that change: rcv_wscale, peer_mss, and passive for
    # a child, written in one new tuple.
    pool: list[Any] = list(old)
    if no_wscale:
        pool[RCV_WSCALE] = None
    peer_mss = pool[PEER_MSS] = shared(seg_mss) if seg_mss else DEFAULT_MSS
    if passive:
        pool[PASSIVE] = True
    new = pooled(tuple(pool))
    # Linux tcp_sync_mss(): the payload per segment leaves room for the TS option
    # (_mss_for_path(), inline; ip_tcp_headers() too).
    clamp = min(pool[PMTU] - (IP6_TCP_HEADERS if v6 else IP_TCP_HEADERS), peer_mss, adv_mss)
    if ts_ok:
        clamp -= 12
    mss = shared(max(clamp, 64))
    # AckPolicy.enter_quickack(rcv_capacity) of a new Receiver (quick 0, rcv_mss mss).
    quick = min(max(pool[RCV_CAPACITY] // (2 * mss), 2), MAX_QUICKACKS)
    terms = (new, mss, quick)
    if len(SYN_TERMS) < 4096:
        SYN_TERMS[key] = terms
    return terms
