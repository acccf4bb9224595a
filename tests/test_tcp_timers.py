"""Timers, in simulated microseconds: SYN and SYN,ACK retransmission, the RTO
(RFC 6298 with Linux's bounds), Karn's rule, tcp_retries2, and keepalive.

Each test lists exactly when the stack transmits (``peer.run_until``) or asserts
silence up to a time (``quiet``).
"""

from __future__ import annotations

import errno
import socket

import pytest
from transcript import (
    L_ISN,
    LOCAL,
    LPORT,
    R_ISN,
    REMOTE,
    RPORT,
    Peer,
    conn_state,
    established_server,
    first_syn,
    listening,
    new_stack,
    our_syn,
    ours,
    quiet,
)

from synack.config import Sysctl
from synack.tcp.rtt import retries_timeout_us
from synack.tcp.state import State
from synack.wire.tcp import ACK, PSH, RST, SYN

ISS, IRS = L_ISN, R_ISN
WIN = 65535
SEC = 1_000_000
MS = 1_000

SYNACK_SEG = ours(seq=ISS, ack=IRS + 1, flags=SYN | ACK, window=WIN, mss=1460)


def sysctl(**values: int) -> Sysctl:
    cfg = Sysctl()
    for name, value in values.items():
        cfg.set("net.ipv4." + name, value)
    return cfg


def connecting(**kw):
    stack = new_stack(**kw)
    fd = stack.socket()
    stack.bind(fd, (LOCAL, LPORT))
    stack.connect_ex(fd, (REMOTE, RPORT), now=0)
    peer = Peer(stack)
    peer.ts0 = first_syn(peer)
    return stack, fd, peer


def syns(peer: Peer, *seconds: int) -> list:
    """The SYN retransmissions expected at these times (the TS clock moved on, 1 ms a tick)."""
    return [(t * SEC, our_syn(peer.ts0, t * SEC)) for t in seconds]


def server_with_rtt(rtt: int):
    """SYN at 0, the final ACK ``rtt`` later: one clean RTT sample from the handshake."""
    stack, lfd, peer = listening()
    assert peer.send(seq=IRS, flags=SYN, mss=1460) == [SYNACK_SEG]
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, now=rtt)
    fd, _ = stack.accept(lfd)
    return stack, fd, peer


def data(seq: int, payload: bytes):
    return ours(seq=seq, ack=IRS + 1, flags=ACK | PSH, window=WIN, payload=payload)


# ---------------------------------------------------------------- SYN
def test_syn_sent_retransmissions():
    # tcp_syn_retries = 6: RTO 1 s doubling (RFC 6298 2.1, 5.5), then ETIMEDOUT at 127 s.
    stack, fd, peer = connecting()
    assert peer.run_until(127 * SEC - 1) == syns(peer, 1, 3, 7, 15, 31, 63)
    assert stack.state(fd) is State.SYN_SENT
    assert peer.run_until(127 * SEC) == []          # gives up silently
    assert stack.state(fd) is State.CLOSED
    assert stack.getsockopt(fd, socket.SOL_SOCKET, socket.SO_ERROR) == errno.ETIMEDOUT


def test_syn_sent_timeout_recv():
    stack, fd, peer = connecting()
    peer.run_until(127 * SEC)
    with pytest.raises(TimeoutError):
        stack.recv(fd, 10, now=127 * SEC)


def test_syn_sent_retransmissions_sysctl():
    stack, fd, peer = connecting(cfg=sysctl(tcp_syn_retries=2))
    assert peer.run_until(7 * SEC - 1) == syns(peer, 1, 3)
    quiet(peer, 7 * SEC)
    assert stack.state(fd) is State.CLOSED


def test_syn_sent_syn_ack_stops_retransmission():
    stack, fd, peer = connecting()
    peer.send(seq=IRS, ack=ISS + 1, flags=SYN | ACK, mss=1460, now=100 * MS)
    quiet(peer, 1000 * SEC)
    assert stack.state(fd) is State.ESTABLISHED


# ---------------------------------------------------------------- SYN,ACK
def test_syn_received_retransmissions():
    # tcp_synack_retries = 5: SYN,ACK again at 1, 3, 7, 15, 31 s; dropped at 63 s.
    stack, lfd, peer = listening()
    assert peer.send(seq=IRS, flags=SYN, mss=1460) == [SYNACK_SEG]
    assert peer.run_until(63 * SEC - 1) == [
        (t * SEC, SYNACK_SEG) for t in (1, 3, 7, 15, 31)
    ]
    assert conn_state(stack) is State.SYN_RECEIVED
    assert peer.run_until(63 * SEC) == []
    assert conn_state(stack) is None
    # The request is gone: its final ACK now meets only the listener.
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, now=64 * SEC) == [
        ours(seq=ISS + 1, flags=RST)
    ]
    with pytest.raises(BlockingIOError):
        stack.accept(lfd)


def test_syn_received_retransmissions_sysctl():
    stack, _lfd, peer = listening(cfg=sysctl(tcp_synack_retries=2))
    peer.send(seq=IRS, flags=SYN, mss=1460)
    assert peer.run_until(7 * SEC - 1) == [(1 * SEC, SYNACK_SEG), (3 * SEC, SYNACK_SEG)]
    quiet(peer, 7 * SEC)
    assert conn_state(stack) is None


# ---------------------------------------------------------------- RTO
def test_established_rto_from_handshake_rtt():
    # One 300 ms sample (RFC 6298 2.2): SRTT = 300 ms, RTTVAR = 150 ms,
    # RTO = SRTT + max(4 * RTTVAR, 200 ms) = 900 ms; then it doubles (5.5).
    stack, fd, peer = server_with_rtt(300 * MS)
    stack.send(fd, b"tick", now=1 * SEC)
    assert peer.out(1 * SEC) == [data(ISS + 1, b"tick")]
    assert peer.run_until(8 * SEC) == [
        (1 * SEC + 900 * MS, data(ISS + 1, b"tick")),
        (1 * SEC + 2700 * MS, data(ISS + 1, b"tick")),
        (1 * SEC + 6300 * MS, data(ISS + 1, b"tick")),
    ]


def test_established_rto_floor():
    # A 1 us sample: 4 * RTTVAR is below Linux's 200 ms TCP_RTO_MIN, so RTO = 1 + 200000 us.
    stack, fd, peer = established_server()
    stack.send(fd, b"tock", now=0)
    peer.out()
    assert peer.run_until(1 * SEC) == [
        (200_001, data(ISS + 1, b"tock")),
        (600_003, data(ISS + 1, b"tock")),
    ]


def test_established_rto_second_sample():
    # RFC 6298 2.3 with the old SRTT: RTTVAR = (3*0 + |1 - 50000|) / 4 = 12499,
    # SRTT = (7*1 + 50000) / 8 = 6250, RTO = 6250 + max(49996, 200000) = 206250.
    stack, fd, peer = established_server()
    stack.send(fd, b"a", now=0)
    peer.out()
    peer.send(seq=IRS + 1, ack=ISS + 2, flags=ACK, now=50 * MS)
    stack.send(fd, b"b", now=1 * SEC)
    peer.out(1 * SEC)
    assert peer.run_until(1 * SEC + 206_250) == [(1 * SEC + 206_250, data(ISS + 2, b"b"))]


def test_established_ack_stops_rto():
    stack, fd, peer = server_with_rtt(300 * MS)
    stack.send(fd, b"tick", now=1 * SEC)
    peer.out(1 * SEC)
    peer.send(seq=IRS + 1, ack=ISS + 5, flags=ACK, now=1 * SEC + 100 * MS)
    quiet(peer, 1000 * SEC)


def test_karn_ack_of_retransmission_gives_no_sample():
    # Karn's rule: the ACK of a retransmitted segment is ambiguous, so no RTT sample,
    # and the backed-off RTO stays for the next data (RFC 6298 5.5; Linux resets
    # icsk_backoff only on a valid sample).
    stack, fd, peer = established_server()                   # RTO 200001 us
    stack.send(fd, b"a", now=0)
    peer.out()
    assert peer.run_until(300 * MS) == [(200_001, data(ISS + 1, b"a"))]
    peer.send(seq=IRS + 1, ack=ISS + 2, flags=ACK, now=300 * MS)   # 300 ms would be a sample
    stack.send(fd, b"b", now=300 * MS)
    assert peer.out(300 * MS) == [data(ISS + 2, b"b")]
    assert peer.run_until(2 * SEC) == [
        (300 * MS + 400_002, data(ISS + 2, b"b")),           # RTO still doubled
        (300 * MS + 400_002 + 800_004, data(ISS + 2, b"b")),
    ]


def test_karn_valid_sample_collapses_backoff():
    # After the ambiguous ACK, a segment sent once and ACKed gives a sample again.
    stack, fd, peer = established_server()
    stack.send(fd, b"a", now=0)
    peer.out()
    peer.run_until(300 * MS)
    peer.send(seq=IRS + 1, ack=ISS + 2, flags=ACK, now=300 * MS)
    stack.send(fd, b"b", now=300 * MS)
    peer.out(300 * MS)
    peer.send(seq=IRS + 1, ack=ISS + 3, flags=ACK, now=301 * MS)    # 1 ms sample
    stack.send(fd, b"c", now=1 * SEC)
    assert peer.out(1 * SEC) == [data(ISS + 3, b"c")]
    # RTTVAR = (3*0 + |1 - 1000|) / 4 = 249, SRTT = (7 + 1000) / 8 = 125, RTO = 200125.
    assert peer.run_until(1 * SEC + 200_125) == [(1 * SEC + 200_125, data(ISS + 3, b"c"))]


def test_karn_retransmitted_syn_rto_fallback():
    # SYN retransmitted at 1 s, SYN,ACK at 1.5 s: no sample (Karn), so data starts with
    # RFC 6298 (5.7)'s 3 s RTO, as Linux tcp_init_metrics() does (TCP_TIMEOUT_FALLBACK).
    stack, fd, peer = connecting()
    assert peer.run_until(1500 * MS) == syns(peer, 1)
    assert peer.send(seq=IRS, ack=ISS + 1, flags=SYN | ACK, mss=1460, now=1500 * MS) == [
        ours(seq=ISS + 1, ack=IRS + 1, flags=ACK, window=WIN)
    ]
    stack.send(fd, b"late", now=2 * SEC)
    assert peer.out(2 * SEC) == [data(ISS + 1, b"late")]
    assert peer.run_until(11 * SEC) == [
        (5 * SEC, data(ISS + 1, b"late")),
        (11 * SEC, data(ISS + 1, b"late")),
    ]


def test_karn_retransmitted_syn_ack_rto_fallback():
    stack, lfd, peer = listening()
    peer.send(seq=IRS, flags=SYN, mss=1460)
    assert peer.run_until(1200 * MS) == [(1 * SEC, SYNACK_SEG)]
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, now=1200 * MS)
    fd, _ = stack.accept(lfd)
    stack.send(fd, b"x", now=1200 * MS)
    peer.out(1200 * MS)
    assert peer.run_until(4200 * MS) == [(4200 * MS, data(ISS + 1, b"x"))]


# ---------------------------------------------------------------- tcp_retries2
def test_established_retries2_timeout():
    # Linux retransmits_timed_out(): give up at the first RTO at least
    # tcp_model_timeout(tcp_retries2) after the first retransmission; no RST is sent.
    stack, fd, peer = established_server(cfg=sysctl(tcp_retries2=3))
    limit = retries_timeout_us(3)
    assert limit == 3 * SEC                   # (2^4 - 1) * 200 ms
    stack.send(fd, b"void", now=0)
    peer.out()
    retransmits = [200_001, 600_003, 1_400_007, 3_000_015]
    give_up = 6_200_031
    assert retransmits[-1] - retransmits[0] < limit <= give_up - retransmits[0]
    assert peer.run_until(give_up - 1) == [(t, data(ISS + 1, b"void")) for t in retransmits]
    assert stack.state(fd) is State.ESTABLISHED
    assert peer.run_until(give_up) == []
    assert stack.state(fd) is State.CLOSED
    with pytest.raises(TimeoutError):
        stack.recv(fd, 10, now=give_up)


def test_established_retries2_ack_resets():
    # An ACK of new data restarts the count: the connection survives.
    stack, fd, peer = established_server(cfg=sysctl(tcp_retries2=3))
    stack.send(fd, b"void", now=0)
    peer.out()
    peer.run_until(3 * SEC)
    peer.send(seq=IRS + 1, ack=ISS + 5, flags=ACK, now=4 * SEC)
    quiet(peer, 100 * SEC)
    assert stack.state(fd) is State.ESTABLISHED


# ---------------------------------------------------------------- keepalive
def keepalive(stack, fd, idle: int | None = 10, intvl: int | None = 2, cnt: int | None = 3):
    stack.setsockopt(fd, socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for opt, value in ((socket.TCP_KEEPIDLE, idle), (socket.TCP_KEEPINTVL, intvl),
                       (socket.TCP_KEEPCNT, cnt)):
        if value is not None:
            stack.setsockopt(fd, socket.IPPROTO_TCP, opt, value)


# A probe is an ACK one byte below SND.UNA, which the peer must answer.
PROBE = ours(seq=ISS, ack=IRS + 1, flags=ACK, window=WIN)
KEEPALIVE_RST = ours(seq=ISS + 1, ack=IRS + 1, flags=RST | ACK, window=WIN)


def test_established_keepalive_probes():
    # Linux tcp_keepalive_timer(): probes at idle, idle + intvl, ...; after TCP_KEEPCNT
    # unanswered probes, RST and ETIMEDOUT.
    stack, fd, peer = established_server()
    keepalive(stack, fd)
    assert peer.run_until(16 * SEC - 1) == [
        (10 * SEC, PROBE), (12 * SEC, PROBE), (14 * SEC, PROBE),
    ]
    assert peer.run_until(16 * SEC) == [(16 * SEC, KEEPALIVE_RST)]
    assert stack.state(fd) is State.CLOSED
    with pytest.raises(TimeoutError):
        stack.recv(fd, 10, now=16 * SEC)


def test_established_keepalive_counts_from_last_segment():
    stack, fd, peer = established_server()
    keepalive(stack, fd)
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, now=5 * SEC)
    assert peer.run_until(21 * SEC) == [
        (15 * SEC, PROBE), (17 * SEC, PROBE), (19 * SEC, PROBE), (21 * SEC, KEEPALIVE_RST),
    ]


def test_established_keepalive_answered():
    # An answer to a probe is a segment received: the count and the idle time restart.
    stack, fd, peer = established_server()
    keepalive(stack, fd)
    assert peer.run_until(12 * SEC) == [(10 * SEC, PROBE), (12 * SEC, PROBE)]
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, now=12_500 * MS) == []
    assert peer.run_until(28_500 * MS) == [
        (22_500 * MS, PROBE), (24_500 * MS, PROBE), (26_500 * MS, PROBE),
        (28_500 * MS, KEEPALIVE_RST),
    ]


def test_established_keepalive_defaults():
    # SO_KEEPALIVE alone: tcp_keepalive_time 7200 s, tcp_keepalive_intvl 75 s, 9 probes.
    stack, fd, peer = established_server()
    keepalive(stack, fd, idle=None, intvl=None, cnt=None)
    assert stack.getsockopt(fd, socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 7200
    assert stack.getsockopt(fd, socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 75
    assert stack.getsockopt(fd, socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 9
    quiet(peer, 7200 * SEC - 1)
    assert peer.run_until(7875 * SEC) == [
        ((7200 + 75 * k) * SEC, PROBE) for k in range(9)
    ] + [(7875 * SEC, KEEPALIVE_RST)]


def test_established_keepalive_sysctls():
    cfg = sysctl(tcp_keepalive_time=60, tcp_keepalive_intvl=5, tcp_keepalive_probes=2)
    stack, fd, peer = established_server(cfg=cfg)
    keepalive(stack, fd, idle=None, intvl=None, cnt=None)
    assert peer.run_until(70 * SEC) == [
        (60 * SEC, PROBE), (65 * SEC, PROBE), (70 * SEC, KEEPALIVE_RST),
    ]


def test_established_keepalive_turned_off():
    stack, fd, peer = established_server()
    keepalive(stack, fd)
    stack.setsockopt(fd, socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
    quiet(peer, 1000 * SEC)
