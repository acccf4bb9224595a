"""Opening a connection: passive, active and simultaneous open, as transcripts.

The stack under test uses ISS 300 (``L_ISN``); the peer uses 100 (``R_ISN``).
Every reply is compared as a whole segment record.
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
    established_client,
    first_syn,
    listening,
    new_stack,
    ours,
)

from synack.tcp.state import State
from synack.wire.tcp import ACK, FIN, PSH, RST, SYN

ISS, IRS = L_ISN, R_ISN
WIN = 65535           # 128 KiB tcp_rmem default, half kept for overhead, capped to 16 bits
WSCALE = 7            # tcp_rmem max 6 MiB needs a shift of 7 to fit in 16 bits
SYN_OPTS = {"mss": 1460, "wscale": WSCALE}


def connecting(**kw):
    """connect() from port 80 to the peer; returns (stack, fd, peer) with the SYN consumed."""
    stack = new_stack(**kw)
    fd = stack.socket()
    stack.bind(fd, (LOCAL, LPORT))
    assert stack.connect_ex(fd, (REMOTE, RPORT), now=0) == errno.EINPROGRESS
    peer = Peer(stack)
    first_syn(peer)                     # mss, sackOK, TS, nop, wscale, as Linux sends them
    return stack, fd, peer


# ---------------------------------------------------------------- passive open
def test_listen_syn():
    stack, lfd, peer = listening()
    assert peer.send(seq=IRS, flags=SYN, mss=1460, wscale=7) == [
        ours(seq=ISS, ack=IRS + 1, flags=SYN | ACK, window=WIN, **SYN_OPTS)
    ]
    assert conn_state(stack) is State.SYN_RECEIVED
    with pytest.raises(BlockingIOError):
        stack.accept(lfd)                 # nothing to accept before the final ACK


def test_listen_syn_without_wscale():
    # RFC 7323 2.2: window scaling is offered in a SYN,ACK only if the SYN offered it.
    _stack, _lfd, peer = listening()
    assert peer.send(seq=IRS, flags=SYN, mss=1460) == [
        ours(seq=ISS, ack=IRS + 1, flags=SYN | ACK, window=WIN, mss=1460)
    ]


def test_listen_syn_without_mss():
    # We announce our own MSS whatever the peer did; we send at most 536 (RFC 9293 3.7.1).
    stack, lfd, peer = listening()
    assert peer.send(seq=IRS, flags=SYN) == [
        ours(seq=ISS, ack=IRS + 1, flags=SYN | ACK, window=WIN, mss=1460)
    ]
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK)
    fd, _ = stack.accept(lfd)
    assert stack.getsockopt(fd, socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 536


def test_syn_received_ack():
    stack, lfd, peer = listening()
    peer.send(seq=IRS, flags=SYN, mss=1460)
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK) == []
    fd, addr = stack.accept(lfd)
    assert addr == (REMOTE, RPORT)
    assert stack.state(fd) is State.ESTABLISHED
    assert stack.getpeername(fd) == (REMOTE, RPORT)
    assert stack.getsockname(fd) == (LOCAL, LPORT)


def test_syn_received_ack_with_data():
    stack, lfd, peer = listening()
    peer.send(seq=IRS, flags=SYN, mss=1460)
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK | PSH, payload=b"hi") == [
        ours(seq=ISS + 1, ack=IRS + 3, flags=ACK, window=WIN - 2)
    ]
    fd, _ = stack.accept(lfd)
    assert stack.recv(fd, 10, now=0) == b"hi"


def test_syn_received_duplicate_syn():
    # The peer lost our SYN,ACK and retransmitted its SYN: answer with the same SYN,ACK.
    stack, _lfd, peer = listening()
    first = peer.send(seq=IRS, flags=SYN, mss=1460)
    assert peer.send(seq=IRS, flags=SYN, mss=1460, now=500_000) == first
    assert conn_state(stack) is State.SYN_RECEIVED


def test_syn_received_ack_bad_ack():
    # RFC 9293 3.10.7.4: an unacceptable ACK in SYN_RECEIVED gets <SEQ=SEG.ACK><CTL=RST>;
    # Linux (tcp_v4_send_reset) sends it with a zero window.
    stack, lfd, peer = listening()
    peer.send(seq=IRS, flags=SYN, mss=1460)
    assert peer.send(seq=IRS + 1, ack=ISS + 7, flags=ACK) == [ours(seq=ISS + 7, flags=RST)]
    assert conn_state(stack) is State.SYN_RECEIVED
    with pytest.raises(BlockingIOError):
        stack.accept(lfd)


def test_syn_received_new_syn():
    # Linux tcp_check_req(): an in-window SYN that is not a retransmission resets the
    # embryonic connection (RST as for a closed port) and drops it.
    stack, _lfd, peer = listening()
    peer.send(seq=IRS, flags=SYN, mss=1460)
    assert peer.send(seq=IRS + 5, flags=SYN, mss=1460) == [
        ours(seq=0, ack=IRS + 6, flags=RST | ACK)
    ]
    assert conn_state(stack) is None
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK) == [ours(seq=ISS + 1, flags=RST)]


def test_syn_received_rst():
    # A passive open goes back to its listener: nothing to accept, nothing sent.
    stack, lfd, peer = listening()
    peer.send(seq=IRS, flags=SYN, mss=1460)
    assert peer.send(seq=IRS + 1, flags=RST) == []
    assert conn_state(stack) is None
    with pytest.raises(BlockingIOError):
        stack.accept(lfd)


def test_syn_received_fin():
    # The final ACK and a FIN in one segment: ESTABLISHED and at once CLOSE_WAIT. Linux's
    # tcp_fin() delays the ACK of a FIN (ping-pong mode), but with no data received yet
    # its delayed-ACK engine has no timeout (ato 0), so the ACK goes at once.
    stack, lfd, peer = listening()
    peer.send(seq=IRS, flags=SYN, mss=1460)
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=FIN | ACK) == [
        ours(seq=ISS + 1, ack=IRS + 2, flags=ACK, window=WIN)]
    fd, _ = stack.accept(lfd)
    assert stack.state(fd) is State.CLOSE_WAIT
    assert stack.recv(fd, 10, now=0) == b""


# ---------------------------------------------------------------- active open
def test_syn_sent_syn_ack():
    stack, fd, peer = connecting()
    assert peer.send(seq=IRS, ack=ISS + 1, flags=SYN | ACK, mss=1460, now=10_000) == [
        ours(seq=ISS + 1, ack=IRS + 1, flags=ACK, window=WIN)
    ]
    assert stack.state(fd) is State.ESTABLISHED
    assert stack.getsockopt(fd, socket.SOL_SOCKET, socket.SO_ERROR) == 0


def test_syn_sent_syn_ack_wscale():
    # Both sides offered scaling: from now on our window field is shifted by 7.
    _stack, _fd, peer = connecting()
    assert peer.send(seq=IRS, ack=ISS + 1, flags=SYN | ACK, mss=1460, wscale=2) == [
        ours(seq=ISS + 1, ack=IRS + 1, flags=ACK, window=(128 * 1024 // 2) >> WSCALE)
    ]


def test_syn_sent_syn_ack_bad_ack():
    # RFC 9293 3.10.7.3: <SEQ=SEG.ACK><CTL=RST>, and stay in SYN_SENT.
    stack, fd, peer = connecting()
    assert peer.send(seq=IRS, ack=ISS + 5, flags=SYN | ACK) == [ours(seq=ISS + 5, flags=RST)]
    assert stack.state(fd) is State.SYN_SENT


def test_syn_sent_rst_ack():
    stack, fd, peer = connecting()
    assert peer.send(seq=0, ack=ISS + 1, flags=RST | ACK) == []
    assert stack.state(fd) is State.CLOSED
    assert stack.getsockopt(fd, socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
    assert stack.getsockopt(fd, socket.SOL_SOCKET, socket.SO_ERROR) == 0   # read and cleared
    assert stack.recv(fd, 10, now=0) == b""                                 # as on Linux


def test_syn_sent_rst_ack_recv():
    stack, fd, peer = connecting()
    peer.send(seq=0, ack=ISS + 1, flags=RST | ACK)
    with pytest.raises(ConnectionRefusedError):
        stack.recv(fd, 10, now=0)
    assert stack.recv(fd, 10, now=0) == b""
    with pytest.raises(BrokenPipeError):
        stack.send(fd, b"x", now=0)


def test_syn_sent_rst_without_ack():
    # RFC 9293 3.10.7.3: a RST without an acceptable ACK is dropped.
    stack, fd, peer = connecting()
    assert peer.send(seq=0, flags=RST) == []
    assert stack.state(fd) is State.SYN_SENT


def test_syn_sent_rst_ack_bad_ack():
    stack, fd, peer = connecting()
    assert peer.send(seq=0, ack=ISS + 9, flags=RST | ACK) == []
    assert stack.state(fd) is State.SYN_SENT


def test_syn_sent_close():
    # close() in SYN_SENT just forgets the connection (no RST: nothing synchronized).
    stack, fd, peer = connecting()
    stack.close(fd, now=0)
    assert peer.out() == []
    assert conn_state(stack) is None
    assert peer.send(seq=IRS, ack=ISS + 1, flags=SYN | ACK) == [ours(seq=ISS + 1, flags=RST)]


# ---------------------------------------------------------------- simultaneous open
def test_syn_sent_syn():
    # RFC 9293 Figure 8: a SYN without ACK in SYN_SENT -> SYN,ACK with our ISS again.
    stack, fd, peer = connecting()
    assert peer.send(seq=IRS, flags=SYN, mss=1460, wscale=7) == [
        ours(seq=ISS, ack=IRS + 1, flags=SYN | ACK, window=WIN, **SYN_OPTS)
    ]
    assert stack.state(fd) is State.SYN_RECEIVED


def test_syn_received_ack_simultaneous():
    stack, fd, peer = connecting()
    peer.send(seq=IRS, flags=SYN, mss=1460)
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK) == []
    assert stack.state(fd) is State.ESTABLISHED
    assert stack.send(fd, b"go", now=0) == 2
    assert peer.out() == [ours(seq=ISS + 1, ack=IRS + 1, flags=ACK | PSH, window=WIN,
                               payload=b"go")]


def test_syn_received_syn_ack_simultaneous():
    # The peer's own SYN,ACK (Figure 8 line 6) completes the open; Linux (since
    # "tcp: Don't drop SYN+ACK for simultaneous connect()") answers it with an ACK.
    stack, fd, peer = connecting()
    peer.send(seq=IRS, flags=SYN, mss=1460)
    assert peer.send(seq=IRS, ack=ISS + 1, flags=SYN | ACK, mss=1460) == [
        ours(seq=ISS + 1, ack=IRS + 1, flags=ACK, window=WIN)
    ]
    assert stack.state(fd) is State.ESTABLISHED


# ---------------------------------------------------------------- sequence space
def test_syn_and_fin_take_one_sequence_number_each():
    """SYN and FIN each consume one sequence number, a bare ACK none (RFC 9293 3.4)."""
    stack, fd, peer = established_client()          # SYN 300, SYN,ACK 100, ACK 301/101
    assert stack.send(fd, b"abc", now=20_000) == 3
    assert peer.out() == [ours(seq=ISS + 1, ack=IRS + 1, flags=ACK | PSH, window=WIN,
                               payload=b"abc")]
    # The peer ACKs with a bare ACK at 101 and then sends data at 101: the ACK took nothing.
    assert peer.send(seq=IRS + 1, ack=ISS + 4, flags=ACK, now=30_000) == []
    assert peer.send(seq=IRS + 1, ack=ISS + 4, flags=ACK, payload=b"xy", now=40_000) == [
        ours(seq=ISS + 4, ack=IRS + 3, flags=ACK, window=WIN - 2)
    ]
    stack.shutdown(fd, socket.SHUT_WR, now=50_000)
    assert peer.out() == [ours(seq=ISS + 4, ack=IRS + 3, flags=FIN | ACK, window=WIN - 2)]
    # Our FIN took 304; the peer's FIN takes 103 and our last ACK covers it with 104
    # (the right edge stays put, so the window shrinks by the FIN's sequence number too).
    assert peer.send(seq=IRS + 3, ack=ISS + 5, flags=FIN | ACK, now=60_000) == [
        ours(seq=ISS + 5, ack=IRS + 4, flags=ACK, window=WIN - 3)
    ]
    assert stack.state(fd) is State.TIME_WAIT
