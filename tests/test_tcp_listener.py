"""A listener's SYN queue and accept queue, bounded as Linux bounds them
(tcp_conn_request() with SYN cookies off, tcp_check_req() for the final ACK).

Several peers connect from ports 40000, 40001, ...; the stack hands out ISNs
300, 10300, 20300, ... in the order SYNs are accepted.
"""

from __future__ import annotations

import pytest
from transcript import LOCAL, LPORT, R_ISN, REMOTE, Peer, conn_state, ours

from synack.config import Sysctl
from synack.stack import Stack
from synack.tcp.isn import FixedIsn
from synack.tcp.state import State
from synack.wire.tcp import ACK, RST, SYN

IRS = R_ISN
WIN = 65535
SEC = 1_000_000


def isn(k: int) -> int:
    return 300 + 10_000 * k


def listener(backlog: int, **sysctls: int) -> tuple[Stack, int]:
    cfg = Sysctl()
    cfg.set("net.ipv4.tcp_syncookies", 0)        # the drops below; cookies: test_syncookies.py
    for name, value in sysctls.items():
        cfg.set(name.replace("__", "."), value)
    stack = Stack(LOCAL, seed=7, cfg=cfg, isn=FixedIsn(isn(k) for k in range(50)))
    fd = stack.socket()
    stack.bind(fd, (LOCAL, LPORT))
    stack.listen(fd, backlog)
    return stack, fd


def synack(k: int, port: int) -> object:
    return ours(seq=isn(k), ack=IRS + 1, flags=SYN | ACK, window=WIN, mss=1460, dst_port=port)


def syn(stack: Stack, port: int, now: int = 0) -> list:
    return Peer(stack, port=port).send(seq=IRS, flags=SYN, mss=1460, now=now)


def final_ack(stack: Stack, port: int, k: int, now: int = 0) -> list:
    return Peer(stack, port=port).send(seq=IRS + 1, ack=isn(k) + 1, flags=ACK, now=now)


def connect(stack: Stack, port: int, k: int) -> None:
    assert syn(stack, port) == [synack(k, port)]
    assert final_ack(stack, port, k) == []


def accept_all(stack: Stack, fd: int) -> list[int]:
    ports = []
    while True:
        try:
            _, (_, port) = stack.accept(fd)
        except BlockingIOError:
            return ports
        ports.append(port)


# ---------------------------------------------------------------- accept queue
def test_listen_accept_queue_bound():
    # listen(fd, 2): Linux sk_acceptq_is_full() tests ">", so 3 connections wait; the
    # 4th SYN is dropped without an answer (the client will retransmit it).
    stack, fd = listener(2)
    for k, port in enumerate((40000, 40001, 40002)):
        connect(stack, port, k)
    assert syn(stack, 40003) == []
    assert stack.stats["SYNs dropped: accept queue full"] == 1
    assert accept_all(stack, fd) == [40000, 40001, 40002]


def test_listen_syn_after_accept_made_room():
    stack, fd = listener(0)                      # backlog 0 still queues one
    connect(stack, 40000, 0)
    assert syn(stack, 40001) == []
    stack.accept(fd)
    assert syn(stack, 40001, now=1 * SEC) == [synack(1, 40001)]


def test_syn_received_ack_accept_queue_full():
    # backlog 1: A waits; B and C get SYN,ACKs; B's ACK fills the queue (2 > 1), so C's
    # final ACK is dropped (tcp_check_req(): listen overflow) and C stays half-open.
    stack, fd = listener(1)
    connect(stack, 40000, 0)
    assert syn(stack, 40001) == [synack(1, 40001)]
    assert syn(stack, 40002) == [synack(2, 40002)]
    assert final_ack(stack, 40001, 1) == []
    assert final_ack(stack, 40002, 2) == []
    assert conn_state(stack, 40002) is State.SYN_RECEIVED
    assert stack.stats["listen overflows"] == 1
    # Once accept() makes room, C's next ACK completes the handshake.
    assert stack.accept(fd)[1] == (REMOTE, 40000)
    assert final_ack(stack, 40002, 2, now=100_000) == []
    assert conn_state(stack, 40002) is State.ESTABLISHED
    assert accept_all(stack, fd) == [40001, 40002]


def test_syn_received_ack_dropped_synack_retransmitted():
    # The half-open connection keeps retransmitting its SYN,ACK, which makes the client
    # ACK again.
    stack, _fd = listener(1)
    connect(stack, 40000, 0)
    syn(stack, 40001)
    syn(stack, 40002)
    final_ack(stack, 40001, 1)
    final_ack(stack, 40002, 2)
    sent = Peer(stack, port=40002).run_until(1 * SEC)
    assert sent == [(1 * SEC, synack(2, 40002))]


def test_syn_received_ack_accept_queue_full_abort():
    # tcp_abort_on_overflow = 1: the overflowing ACK gets one RST <SEQ=SEG.ACK> and the
    # half-open connection is dropped.
    stack, fd = listener(1, net__ipv4__tcp_abort_on_overflow=1)
    connect(stack, 40000, 0)
    syn(stack, 40001)
    syn(stack, 40002)
    final_ack(stack, 40001, 1)
    assert final_ack(stack, 40002, 2) == [ours(seq=isn(2) + 1, flags=RST, dst_port=40002)]
    assert conn_state(stack, 40002) is None
    # A second ACK meets the listener alone, which answers any ACK with RST.
    assert final_ack(stack, 40002, 2) == [ours(seq=isn(2) + 1, flags=RST, dst_port=40002)]
    assert accept_all(stack, fd) == [40000, 40001]


# ---------------------------------------------------------------- SYN queue
def test_listen_syn_queue_bound():
    # Half-open requests are bounded like the accept queue: backlog 2 holds 3 (Linux 6.x
    # inet_csk_reqsk_queue_is_full() tests ">"); the 4th SYN is dropped.
    stack, _fd = listener(2)
    for k, port in enumerate((40000, 40001, 40002)):
        assert syn(stack, port) == [synack(k, port)]
    assert syn(stack, 40003) == []
    assert stack.stats["SYNs dropped: SYN queue full (backlog)"] == 1


def test_listen_tcp_max_syn_backlog():
    # Without cookies the last quarter of tcp_max_syn_backlog is kept free: with 8,
    # 7 requests fit (8 - 6 = 2 is not below 8 / 4), the 8th is dropped.
    stack, _fd = listener(100, net__ipv4__tcp_max_syn_backlog=8)
    for k in range(7):
        assert syn(stack, 40000 + k) == [synack(k, 40000 + k)]
    assert syn(stack, 40007) == []
    assert stack.stats["SYNs dropped: SYN queue full (tcp_max_syn_backlog)"] == 1


def test_listen_syn_queue_drains_on_ack():
    # backlog 0: one request fits in each queue.
    stack, fd = listener(0)
    assert syn(stack, 40000) == [synack(0, 40000)]
    assert syn(stack, 40001) == []                      # SYN queue full (1 > 0)
    assert final_ack(stack, 40000, 0) == []
    assert syn(stack, 40001) == []                      # now the accept queue is full
    stack.accept(fd)
    assert syn(stack, 40001) == [synack(1, 40001)]


# ---------------------------------------------------------------- somaxconn
def test_listen_somaxconn_caps_backlog():
    stack, fd = listener(16, net__core__somaxconn=1)
    (row,) = [r for r in stack.connections() if r.state is State.LISTEN]
    assert row.send_q == 1          # ss shows a listener's backlog as Send-Q
    connect(stack, 40000, 0)
    connect(stack, 40001, 1)
    assert syn(stack, 40002) == []
    assert accept_all(stack, fd) == [40000, 40001]


def test_listen_again_changes_backlog():
    stack, fd = listener(0)
    connect(stack, 40000, 0)
    assert syn(stack, 40001) == []
    stack.listen(fd, 5)
    assert syn(stack, 40001) == [synack(1, 40001)]


# ---------------------------------------------------------------- closing the listener
def test_listen_close():
    # Linux inet_csk_listen_stop(): a connection nobody accepted is reset; a half-open
    # request is freed silently; the port is closed afterwards.
    stack, fd = listener(4)
    connect(stack, 40000, 0)
    syn(stack, 40001)
    stack.close(fd, now=0)
    assert Peer(stack, port=40000).out() == [
        ours(seq=isn(0) + 1, ack=IRS + 1, flags=RST | ACK, window=WIN, dst_port=40000)
    ]
    assert conn_state(stack, 40001) is None
    assert final_ack(stack, 40001, 1) == [ours(seq=isn(1) + 1, flags=RST, dst_port=40001)]
    assert syn(stack, 40002) == [ours(seq=0, ack=IRS + 1, flags=RST | ACK, dst_port=40002)]


@pytest.mark.parametrize("backlog", [-5, 0])
def test_listen_negative_or_zero_backlog(backlog):
    stack, _fd = listener(backlog)
    connect(stack, 40000, 0)
    assert syn(stack, 40001) == []


def test_sysctls_written_after_listen_shape_the_next_synack():
    # Linux reads these per SYN: a value set after listen() shows in the next SYN,ACK
    # (synack computes a child's buffer sizes and options once per configuration and
    # must forget them at every write).
    stack, _fd = listener(8)
    peer = Peer(stack, port=40000)
    first = peer.send(seq=IRS, flags=SYN, mss=1460, wscale=7, sack_permitted=True,
                      timestamps=(5, 0))
    assert [(s.wscale, s.sack_permitted, s.timestamps is not None, s.window)
            for s in first] == [(7, True, True, WIN)]
    stack.cfg.set("net.ipv4.tcp_rmem", "4096 16384 65536")
    stack.cfg.set("net.ipv4.tcp_sack", 0)
    peer = Peer(stack, port=40001)
    second = peer.send(seq=IRS, flags=SYN, mss=1460, wscale=7, sack_permitted=True,
                       timestamps=(5, 0))
    assert [(s.wscale, s.sack_permitted, s.timestamps is not None, s.window)
            for s in second] == [(1, False, True, 8192)]
    stack.cfg.set("net.ipv4.tcp_timestamps", 0)
    stack.cfg.set("net.ipv4.tcp_window_scaling", 0)
    peer = Peer(stack, port=40002)
    third = peer.send(seq=IRS, flags=SYN, mss=1460, wscale=7, sack_permitted=True,
                      timestamps=(5, 0))
    assert [(s.wscale, s.sack_permitted, s.timestamps, s.window)
            for s in third] == [(None, False, None, 8192)]
