"""Resets: to closed ports, for data after close(), abortive close, and RFC 5961's
blind-attack rules (exact-sequence RST, challenge ACKs).

Connections are accepted by the stack (ISS 300) from the peer (ISS 100); the
window is 65535. Replies to closed ports follow RFC 9293 3.10.7.1 with Linux's
zero window (tcp_v4_send_reset()).
"""

from __future__ import annotations

import errno
import socket
import struct

import pytest
from transcript import (
    L_ISN,
    R_ISN,
    Peer,
    conn_state,
    established_server,
    new_stack,
    ours,
)

from synack.tcp.state import State
from synack.wire.tcp import ACK, FIN, RST, SYN

ISS, IRS = L_ISN, R_ISN
WIN = 65535


def closed_port():
    stack = new_stack()
    return stack, Peer(stack)


# ---------------------------------------------------------------- closed port
def test_closed_syn():
    stack, peer = closed_port()
    assert peer.send(seq=IRS, flags=SYN, mss=1460) == [ours(seq=0, ack=IRS + 1, flags=RST | ACK)]
    assert stack.stats["reset: no socket"] == 1


def test_closed_syn_with_data():
    # SEG.LEN counts the SYN and every byte: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
    _stack, peer = closed_port()
    assert peer.send(seq=IRS, flags=SYN, payload=b"ab") == [
        ours(seq=0, ack=IRS + 3, flags=RST | ACK)
    ]


def test_closed_fin():
    _stack, peer = closed_port()
    assert peer.send(seq=IRS, flags=FIN) == [ours(seq=0, ack=IRS + 1, flags=RST | ACK)]


def test_closed_ack():
    # With an ACK the RST takes its sequence number from it: <SEQ=SEG.ACK><CTL=RST>.
    _stack, peer = closed_port()
    assert peer.send(seq=IRS, ack=5000, flags=ACK) == [ours(seq=5000, flags=RST)]


def test_closed_rst():
    # Never answer a RST with a RST.
    _stack, peer = closed_port()
    assert peer.send(seq=IRS, flags=RST) == []
    assert peer.send(seq=IRS, ack=5000, flags=RST | ACK) == []


def test_listen_ack():
    # An ACK for a listener with no matching half-open connection: RST <SEQ=SEG.ACK>.
    stack, _fd, _peer = established_server()
    other = Peer(stack, port=40001)
    assert other.send(seq=IRS, ack=777, flags=ACK) == [ours(seq=777, flags=RST, dst_port=40001)]


# ---------------------------------------------------------------- data after close()
def test_fin_wait_1_orphan_data():
    # RFC 1122 4.2.2.13 / Linux tcp_rcv_state_process(): new data for a socket that was
    # close()d is answered by RST (in reply to the segment: SEQ=SEG.ACK, window 0).
    stack, fd, peer = established_server()
    stack.close(fd, now=0)
    assert peer.out() == [ours(seq=ISS + 1, ack=IRS + 1, flags=FIN | ACK, window=WIN)]
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"xyz") == [
        ours(seq=ISS + 1, flags=RST)
    ]
    assert conn_state(stack) is None


def test_fin_wait_2_orphan_data():
    stack, fd, peer = established_server()
    stack.close(fd, now=0)
    peer.out()
    peer.send(seq=IRS + 1, ack=ISS + 2, flags=ACK)
    assert peer.send(seq=IRS + 1, ack=ISS + 2, flags=ACK, payload=b"q") == [
        ours(seq=ISS + 2, flags=RST)
    ]
    assert conn_state(stack) is None


def test_fin_wait_2_orphan_old_data():
    # Data already received before is a duplicate, not new data: ACKed, no RST.
    stack, fd, peer = established_server()
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"ab")
    assert stack.recv(fd, 10, now=0) == b"ab"
    stack.close(fd, now=0)
    peer.out()
    peer.send(seq=IRS + 3, ack=ISS + 2, flags=ACK)
    assert peer.send(seq=IRS + 1, ack=ISS + 2, flags=ACK, payload=b"ab") == [
        ours(seq=ISS + 2, ack=IRS + 3, flags=ACK, window=WIN)
    ]
    assert conn_state(stack) is State.FIN_WAIT_2


# ---------------------------------------------------------------- abortive close
def test_established_close_unread():
    # Linux tcp_close(): unread data makes close() send RST,ACK at SND.NXT / RCV.NXT
    # instead of a FIN (RFC 2525 2.17); close() itself raises nothing.
    stack, fd, peer = established_server()
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"abc") == [
        ours(seq=ISS + 1, ack=IRS + 4, flags=ACK, window=WIN - 3)
    ]
    stack.close(fd, now=0)
    assert peer.out() == [ours(seq=ISS + 1, ack=IRS + 4, flags=RST | ACK, window=WIN - 3)]
    assert conn_state(stack) is None
    # The connection is gone: the peer's next segment meets a closed port.
    assert peer.send(seq=IRS + 4, ack=ISS + 1, flags=ACK) == [ours(seq=ISS + 1, flags=RST)]


def test_established_close_unread_after_sending():
    # The RST carries SND.NXT, past everything already sent.
    stack, fd, peer = established_server()
    stack.send(fd, b"12345", now=0)
    peer.out()
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"abc")
    stack.close(fd, now=0)
    assert peer.out() == [ours(seq=ISS + 6, ack=IRS + 4, flags=RST | ACK, window=WIN - 3)]


def test_established_close_linger_zero():
    # SO_LINGER {on, 0}: close() aborts with RST,ACK.
    stack, fd, peer = established_server()
    stack.setsockopt(fd, socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stack.close(fd, now=0)
    assert peer.out() == [ours(seq=ISS + 1, ack=IRS + 1, flags=RST | ACK, window=WIN)]
    assert conn_state(stack) is None


def test_established_close_linger_nonzero():
    # SO_LINGER {on, 5} is an orderly close as far as the wire shows.
    stack, fd, peer = established_server()
    stack.setsockopt(fd, socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 5))
    stack.close(fd, now=0)
    assert peer.out() == [ours(seq=ISS + 1, ack=IRS + 1, flags=FIN | ACK, window=WIN)]


# ---------------------------------------------------------------- RFC 5961
def test_established_rst_exact():
    stack, fd, peer = established_server()
    assert peer.send(seq=IRS + 1, flags=RST) == []
    assert stack.state(fd) is State.CLOSED
    with pytest.raises(ConnectionResetError):
        stack.recv(fd, 10, now=0)
    assert stack.recv(fd, 10, now=0) == b""      # reported once, as on Linux


def test_established_rst_ack_exact():
    stack, fd, peer = established_server()
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=RST | ACK) == []
    assert stack.getsockopt(fd, socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNRESET


def test_established_rst_in_window():
    # RFC 5961 3.2: in the window but not exactly RCV.NXT -> challenge ACK, no reset.
    stack, fd, peer = established_server()
    assert peer.send(seq=IRS + 100, flags=RST) == [
        ours(seq=ISS + 1, ack=IRS + 1, flags=ACK, window=WIN)
    ]
    assert stack.state(fd) is State.ESTABLISHED


def test_established_rst_out_of_window():
    stack, fd, peer = established_server()
    assert peer.send(seq=IRS + 1 + 100_000, flags=RST) == []
    assert peer.send(seq=IRS - 1, flags=RST) == []
    assert stack.state(fd) is State.ESTABLISHED


def test_established_syn():
    # RFC 5961 4.2: any SYN in a synchronized state gets a challenge ACK.
    stack, fd, peer = established_server()
    assert peer.send(seq=IRS + 500, flags=SYN) == [
        ours(seq=ISS + 1, ack=IRS + 1, flags=ACK, window=WIN)
    ]
    assert stack.state(fd) is State.ESTABLISHED


def test_close_wait_rst():
    # Linux tcp_reset(): a RST in CLOSE_WAIT reports EPIPE.
    stack, fd, peer = established_server()
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=FIN | ACK)
    assert peer.send(seq=IRS + 2, flags=RST) == []
    assert stack.state(fd) is State.CLOSED
    with pytest.raises(BrokenPipeError):
        stack.send(fd, b"x", now=0)


def test_fin_wait_1_rst():
    stack, fd, peer = established_server()
    stack.close(fd, now=0)
    peer.out()
    assert peer.send(seq=IRS + 1, flags=RST) == []
    assert conn_state(stack) is None


