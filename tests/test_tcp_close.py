"""Closing: active, passive, simultaneous and half close; TIME_WAIT; orphaned FIN_WAIT_2.

Connections are accepted by the stack (ISS 300) from the peer (ISS 100), so our FIN
takes sequence number 301 and the peer's 101 unless data went first. After close()
the descriptor is gone, so states are read as ``ss`` shows them (``conn_state``).
"""

from __future__ import annotations

import socket

from transcript import L_ISN, R_ISN, conn_state, established_server, ours, quiet

from synack.config import Sysctl
from synack.tcp.state import State
from synack.wire.tcp import ACK, FIN, PSH, RST, SYN

ISS, IRS = L_ISN, R_ISN
WIN = 65535
SEC = 1_000_000
TIME_WAIT = 60 * SEC   # Linux TCP_TIMEWAIT_LEN

FIN_301 = ours(seq=ISS + 1, ack=IRS + 1, flags=FIN | ACK, window=WIN)
# The ACK of the peer's FIN at 101 once ours (301) is acknowledged. Nothing is unread,
# so the whole buffer is offered again (the right edge moves with the FIN).
LAST_ACK_302 = ours(seq=ISS + 2, ack=IRS + 2, flags=ACK, window=WIN)


def in_time_wait(**kw):
    """close(), the peer ACKs our FIN and sends its own at 2 s: TIME_WAIT since 2 s."""
    stack, fd, peer = established_server(**kw)
    stack.close(fd, now=0)
    assert peer.out() == [FIN_301]
    assert peer.send(seq=IRS + 1, ack=ISS + 2, flags=ACK, now=1 * SEC) == []
    assert peer.send(seq=IRS + 1, ack=ISS + 2, flags=FIN | ACK, now=2 * SEC) == [LAST_ACK_302]
    assert conn_state(stack) is State.TIME_WAIT
    return stack, peer


# ---------------------------------------------------------------- active close
def test_established_close():
    stack, fd, peer = established_server()
    stack.close(fd, now=0)
    assert peer.out() == [FIN_301]
    assert conn_state(stack) is State.FIN_WAIT_1


def test_established_close_after_data():
    # The FIN follows the queued data and takes the next sequence number.
    stack, fd, peer = established_server()
    stack.send(fd, b"last words", now=0)
    stack.close(fd, now=0)
    assert peer.out() == [
        ours(seq=ISS + 1, ack=IRS + 1, flags=ACK | PSH, window=WIN, payload=b"last words"),
        ours(seq=ISS + 11, ack=IRS + 1, flags=FIN | ACK, window=WIN),
    ]


def test_fin_wait_1_ack():
    stack, fd, peer = established_server()
    stack.close(fd, now=0)
    peer.out()
    assert peer.send(seq=IRS + 1, ack=ISS + 2, flags=ACK) == []
    assert conn_state(stack) is State.FIN_WAIT_2


def test_time_wait_timeout():
    # TIME_WAIT lasts exactly 2*MSL = 60 s from the last ACK, silently.
    stack, peer = in_time_wait()
    quiet(peer, 2 * SEC + TIME_WAIT - 1)
    assert conn_state(stack) is State.TIME_WAIT
    quiet(peer, 2 * SEC + TIME_WAIT)
    assert conn_state(stack) is None


def test_fin_wait_1_fin_ack():
    # The peer ACKs our FIN and sends its own in one segment: straight to TIME_WAIT.
    stack, fd, peer = established_server()
    stack.close(fd, now=0)
    peer.out()
    assert peer.send(seq=IRS + 1, ack=ISS + 2, flags=FIN | ACK) == [LAST_ACK_302]
    assert conn_state(stack) is State.TIME_WAIT


def test_fin_wait_1_retransmits_fin():
    # An unacknowledged FIN is retransmitted at the RTO (200001 us after a 1 us RTT sample).
    stack, fd, peer = established_server()
    stack.close(fd, now=0)
    peer.out()
    assert peer.run_until(200_001) == [(200_001, FIN_301)]


# ---------------------------------------------------------------- simultaneous close
def test_fin_wait_1_fin():
    # Both FINs cross: the peer's FIN does not ACK ours -> CLOSING.
    stack, fd, peer = established_server()
    stack.close(fd, now=0)
    peer.out()
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=FIN | ACK) == [LAST_ACK_302]
    assert conn_state(stack) is State.CLOSING


def test_closing_ack():
    stack, fd, peer = established_server()
    stack.close(fd, now=0)
    peer.out()
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=FIN | ACK, now=1 * SEC)
    assert peer.send(seq=IRS + 2, ack=ISS + 2, flags=ACK, now=2 * SEC) == []
    assert conn_state(stack) is State.TIME_WAIT
    quiet(peer, 2 * SEC + TIME_WAIT - 1)
    assert conn_state(stack) is State.TIME_WAIT
    quiet(peer, 2 * SEC + TIME_WAIT)
    assert conn_state(stack) is None


# ---------------------------------------------------------------- passive close
def test_established_fin():
    # Linux tcp_fin(): CLOSE_WAIT and ping-pong mode, so the ACK of the FIN waits for the
    # delayed-ACK timer (40 ms) in case the application closes and a FIN can carry it --
    # once data has arrived (before that the delayed-ACK engine has no timeout yet and
    # the FIN is ACKed at once: test_established_fin_before_any_data).
    stack, fd, peer = established_server()
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"hi") == [
        ours(seq=ISS + 1, ack=IRS + 3, flags=ACK, window=WIN - 2)]  # quick-ACK mode
    assert stack.recv(fd, 100, now=0) == b"hi"
    assert peer.send(seq=IRS + 3, ack=ISS + 1, flags=FIN | ACK, now=1000) == []
    assert stack.state(fd) is State.CLOSE_WAIT
    assert peer.run_until(41_000) == [
        (41_000, ours(seq=ISS + 1, ack=IRS + 4, flags=ACK, window=WIN))
    ]
    assert stack.state(fd) is State.CLOSE_WAIT
    assert stack.recv(fd, 100, now=41_000) == b""
    assert stack.readable(fd)


def test_established_fin_before_any_data():
    # No data received yet: Linux's delayed-ACK timeout (ato) is set by the first data
    # segment (tcp_event_data_recv()), so without one tcp_send_delayed_ack() fires at
    # the next tick: the FIN is ACKed at once (packetdrill's close-remote-fin-then-close).
    stack, fd, peer = established_server()
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=FIN | ACK) == [
        ours(seq=ISS + 1, ack=IRS + 2, flags=ACK, window=WIN)]
    assert stack.state(fd) is State.CLOSE_WAIT


def test_close_wait_close_within_ato_merges_ack_and_fin():
    # The application closes before the delayed ACK is due: one FIN,ACK both acknowledges
    # the peer's FIN and carries ours -- the three-segment close seen in Linux captures.
    stack, fd, peer = established_server()
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"hi", now=0)
    assert stack.recv(fd, 100, now=0) == b"hi"
    assert peer.send(seq=IRS + 3, ack=ISS + 1, flags=FIN | ACK, now=1000) == []
    stack.close(fd, now=10_000)
    assert peer.out(10_000) == [ours(seq=ISS + 1, ack=IRS + 4, flags=FIN | ACK, window=WIN)]
    assert conn_state(stack) is State.LAST_ACK
    quiet(peer, 50_000)                  # no separate ACK left to send


def test_close_wait_send():
    # CLOSE_WAIT may still send (the peer only closed its half).
    stack, fd, peer = established_server()
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=FIN | ACK)
    assert stack.send(fd, b"late", now=0) == 4
    assert peer.out() == [ours(seq=ISS + 1, ack=IRS + 2, flags=ACK | PSH, window=WIN,
                               payload=b"late")]


def test_close_wait_close():
    stack, fd, peer = established_server()
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=FIN | ACK)
    stack.close(fd, now=0)
    assert peer.out() == [ours(seq=ISS + 1, ack=IRS + 2, flags=FIN | ACK, window=WIN)]
    assert conn_state(stack) is State.LAST_ACK


def test_last_ack_ack():
    stack, fd, peer = established_server()
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=FIN | ACK)
    stack.close(fd, now=0)
    peer.out()
    assert peer.send(seq=IRS + 2, ack=ISS + 2, flags=ACK) == []
    assert conn_state(stack) is None          # CLOSED at once, no TIME_WAIT
    # A late segment now meets a closed port.
    assert peer.send(seq=IRS + 2, ack=ISS + 2, flags=ACK) == [ours(seq=ISS + 2, flags=RST)]


def test_last_ack_shutdown():
    # The same through shutdown(): the descriptor shows every state.
    stack, fd, peer = established_server()
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=FIN | ACK)
    stack.shutdown(fd, socket.SHUT_WR, now=0)
    assert peer.out() == [ours(seq=ISS + 1, ack=IRS + 2, flags=FIN | ACK, window=WIN)]
    assert stack.state(fd) is State.LAST_ACK
    peer.send(seq=IRS + 2, ack=ISS + 2, flags=ACK)
    assert stack.state(fd) is State.CLOSED
    assert stack.recv(fd, 10, now=0) == b""


# ---------------------------------------------------------------- TIME_WAIT
def test_time_wait_retransmitted_fin():
    # Our last ACK was lost: the peer's FIN again gets the exact same ACK, and 2*MSL restarts.
    stack, peer = in_time_wait()
    assert peer.send(seq=IRS + 1, ack=ISS + 2, flags=FIN | ACK, now=30 * SEC) == [LAST_ACK_302]
    quiet(peer, 30 * SEC + TIME_WAIT - 1)
    assert conn_state(stack) is State.TIME_WAIT
    quiet(peer, 30 * SEC + TIME_WAIT)
    assert conn_state(stack) is None


def test_time_wait_old_ack():
    # Linux tcp_timewait_state_process(): any out-of-window segment but a RST is ACKed.
    _stack, peer = in_time_wait()
    assert peer.send(seq=IRS - 10, ack=ISS + 2, flags=ACK, now=3 * SEC) == [LAST_ACK_302]


def test_time_wait_bare_ack_restarts():
    # Linux: an in-window bare ACK is not answered but restarts the 60 s.
    stack, peer = in_time_wait()
    assert peer.send(seq=IRS + 2, ack=ISS + 2, flags=ACK, now=10 * SEC) == []
    quiet(peer, 10 * SEC + TIME_WAIT - 1)
    assert conn_state(stack) is State.TIME_WAIT
    quiet(peer, 10 * SEC + TIME_WAIT)
    assert conn_state(stack) is None


def test_time_wait_rst():
    # TIME_WAIT assassination (RFC 1337): Linux lets an exact RST end TIME_WAIT at once.
    stack, peer = in_time_wait()
    assert peer.send(seq=IRS + 2, flags=RST, now=3 * SEC) == []
    assert conn_state(stack) is None
    assert peer.send(seq=IRS + 2, ack=ISS + 2, flags=ACK, now=4 * SEC) == [
        ours(seq=ISS + 2, flags=RST)
    ]


def test_time_wait_rst_wrong_seq():
    stack, peer = in_time_wait()
    assert peer.send(seq=IRS + 50, flags=RST, now=3 * SEC) == []
    assert conn_state(stack) is State.TIME_WAIT


def test_time_wait_rst_rfc1337():
    cfg = Sysctl()
    cfg.set("net.ipv4.tcp_rfc1337", 1)
    stack, peer = in_time_wait(cfg=cfg)
    assert peer.send(seq=IRS + 2, flags=RST, now=3 * SEC) == []
    assert conn_state(stack) is State.TIME_WAIT


def test_time_wait_new_syn():
    # A SYN above RCV.NXT may reopen the 4-tuple (RFC 1122 4.2.2.13): the listener,
    # still open, answers it as a new connection (the next ISN of the fixed source).
    stack, peer = in_time_wait()
    assert peer.send(seq=IRS + 10_000, flags=SYN, mss=1460, now=3 * SEC) == [
        ours(seq=ISS + 10_000, ack=IRS + 10_001, flags=SYN | ACK, window=WIN, mss=1460)
    ]
    assert conn_state(stack) is State.SYN_RECEIVED


# ---------------------------------------------------------------- half close
def test_established_shutdown_write():
    stack, fd, peer = established_server()
    stack.shutdown(fd, socket.SHUT_WR, now=0)
    assert peer.out() == [FIN_301]
    assert stack.state(fd) is State.FIN_WAIT_1


def test_fin_wait_2_receives_after_shutdown():
    # Half close: after SHUT_WR the socket still receives, ACKs and reads data.
    stack, fd, peer = established_server()
    stack.shutdown(fd, socket.SHUT_WR, now=0)
    peer.out()
    peer.send(seq=IRS + 1, ack=ISS + 2, flags=ACK)
    assert stack.state(fd) is State.FIN_WAIT_2
    assert peer.send(seq=IRS + 1, ack=ISS + 2, flags=ACK | PSH, payload=b"hello") == [
        ours(seq=ISS + 2, ack=IRS + 6, flags=ACK, window=WIN - 5)
    ]
    assert stack.recv(fd, 100, now=0) == b"hello"
    assert peer.send(seq=IRS + 6, ack=ISS + 2, flags=FIN | ACK) == [
        ours(seq=ISS + 2, ack=IRS + 7, flags=ACK, window=WIN)
    ]
    assert stack.state(fd) is State.TIME_WAIT
    assert stack.recv(fd, 100, now=0) == b""


def test_fin_wait_2_not_orphaned_stays():
    # Without close() nothing times FIN_WAIT_2 out: the application may still read.
    stack, fd, peer = established_server()
    stack.shutdown(fd, socket.SHUT_WR, now=0)
    peer.out()
    peer.send(seq=IRS + 1, ack=ISS + 2, flags=ACK, now=1 * SEC)
    quiet(peer, 100_000 * SEC)
    assert stack.state(fd) is State.FIN_WAIT_2


# ---------------------------------------------------------------- orphaned FIN_WAIT_2
def test_fin_wait_2_orphan_timeout():
    # close() and the peer never sends its FIN: gone tcp_fin_timeout (60 s) after our
    # FIN was ACKed, silently (Linux tcp_time_wait(TCP_FIN_WAIT2, tmo)).
    stack, fd, peer = established_server()
    stack.close(fd, now=0)
    peer.out()
    peer.send(seq=IRS + 1, ack=ISS + 2, flags=ACK, now=1 * SEC)
    quiet(peer, 61 * SEC - 1)
    assert conn_state(stack) is State.FIN_WAIT_2
    quiet(peer, 61 * SEC)
    assert conn_state(stack) is None


def test_fin_wait_2_orphan_timeout_sysctl():
    cfg = Sysctl()
    cfg.set("net.ipv4.tcp_fin_timeout", 5)
    stack, fd, peer = established_server(cfg=cfg)
    stack.close(fd, now=0)
    peer.out()
    peer.send(seq=IRS + 1, ack=ISS + 2, flags=ACK, now=1 * SEC)
    quiet(peer, 6 * SEC - 1)
    assert conn_state(stack) is State.FIN_WAIT_2
    quiet(peer, 6 * SEC)
    assert conn_state(stack) is None


def test_fin_wait_2_close_later():
    # shutdown() first, close() at 10 s: the orphan's clock starts at close().
    cfg = Sysctl()
    cfg.set("net.ipv4.tcp_fin_timeout", 5)
    stack, fd, peer = established_server(cfg=cfg)
    stack.shutdown(fd, socket.SHUT_WR, now=0)
    peer.out()
    peer.send(seq=IRS + 1, ack=ISS + 2, flags=ACK, now=1 * SEC)
    quiet(peer, 10 * SEC)
    stack.close(fd, now=10 * SEC)
    assert peer.out() == []
    quiet(peer, 15 * SEC - 1)
    assert conn_state(stack) is State.FIN_WAIT_2
    quiet(peer, 15 * SEC)
    assert conn_state(stack) is None




def test_last_ack_orphan_data_and_fin_acked_at_once():
    # An orphan in LAST_ACK whose data and FIN one ACK covers: CLOSED, and every byte
    # charged to the host's TCP memory given back (the ACK ends the connection without
    # the congestion and RTT bookkeeping).
    stack, fd, peer = established_server()
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=FIN | ACK)
    stack.send(fd, b"bye", now=0)
    assert stack.cfg.mem_used == 3
    stack.close(fd, now=0)
    peer.out()
    assert peer.send(seq=IRS + 2, ack=ISS + 4, flags=ACK) == []     # the data, not the FIN
    assert conn_state(stack) is State.LAST_ACK
    assert stack.cfg.mem_used == 0
    assert peer.send(seq=IRS + 2, ack=ISS + 5, flags=ACK) == []     # the FIN
    assert conn_state(stack) is None
    assert stack.cfg.mem_used == 0


def test_last_ack_orphan_acked_whole_releases_memory():
    stack, fd, peer = established_server()
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=FIN | ACK)
    stack.send(fd, b"bye", now=0)
    stack.close(fd, now=0)
    peer.out()
    assert stack.cfg.mem_used == 3
    assert peer.send(seq=IRS + 2, ack=ISS + 5, flags=ACK) == []
    assert conn_state(stack) is None
    assert stack.cfg.mem_used == 0
