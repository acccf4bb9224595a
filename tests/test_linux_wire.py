"""Wire and API differences from Linux found in issue 10, each checked as Linux 6.18
behaves (the kernel function it mirrors is named in synack's code)."""

from __future__ import annotations

import errno

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
    listening,
    new_stack,
)

from synack.stack import SHUT_RDWR
from synack.tcp.info import tcp_info
from synack.tcp.state import State
from synack.wire.tcp import ACK, FIN, SYN

SOL_SOCKET, SO_REUSEADDR, SO_SNDBUF = 1, 2, 7


def test_bind_with_reuseaddr_beside_an_accepted_connection():
    """Linux inet_bind_conflict(): with SO_REUSEADDR on both sockets, a socket that is
    not listening (the accepted connection, which inherits the listener's flag) does
    not stop a bind to its port; without the flag, or beside a listener, EADDRINUSE."""
    stack, lfd, peer = listening()
    stack.setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, 1)
    (sa,) = peer.send(seq=R_ISN, flags=SYN, mss=1460)
    peer.send(seq=R_ISN + 1, ack=sa.seq + 1, flags=ACK)
    fd, _ = stack.accept(lfd)
    assert stack.getsockopt(fd, SOL_SOCKET, SO_REUSEADDR) == 1
    busy = stack.socket()
    stack.setsockopt(busy, SOL_SOCKET, SO_REUSEADDR, 1)
    with pytest.raises(OSError) as exc:
        stack.bind(busy, (LOCAL, LPORT))              # the listener is still there
    assert exc.value.errno == errno.EADDRINUSE
    stack.close(lfd, now=0)
    plain = stack.socket()
    with pytest.raises(OSError) as exc:
        stack.bind(plain, (LOCAL, LPORT))             # no SO_REUSEADDR on the new one
    assert exc.value.errno == errno.EADDRINUSE
    stack.bind(busy, (LOCAL, LPORT))
    stack.listen(busy, 4)
    assert stack.state(busy) is State.LISTEN and stack.state(fd) is State.ESTABLISHED


def test_shutdown_with_a_full_cwnd_sends_the_fin_at_once():
    """Linux tcp_cwnd_test(): the congestion window is not enforced for the final FIN
    (a one-segment skb carrying it), so shutdown() with all data sent and cwnd full
    sends the FIN alone at once."""
    stack, fd, peer = established_server()
    stack.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, 1 << 20)
    conn = stack.connection(fd)
    assert conn is not None
    stack.send(fd, b"x" * 10 * conn.mss, now=0)
    sent = peer.out()
    assert sum(len(s.payload) for s in sent) == 10 * conn.mss and conn.snd.unsent() == 0
    stack.shutdown(fd, SHUT_RDWR, now=1000)
    (fin,) = peer.out(1000)
    assert fin.flags == FIN | ACK and not fin.payload
    assert fin.seq == conn.snd.iss + 1 + 10 * conn.mss


def _ts_server():
    stack, lfd, peer = listening()
    (sa,) = peer.send(seq=R_ISN, flags=SYN, mss=1000, sack_permitted=True,
                      timestamps=(100, 0))
    assert sa.timestamps is not None
    peer.send(seq=R_ISN + 1, ack=sa.seq + 1, flags=ACK, timestamps=(200, sa.timestamps[0]),
              now=100_000)
    fd, _ = stack.accept(lfd)
    return stack, fd, peer, sa


def test_unacceptable_ack_does_not_set_ts_recent():
    """Linux tcp_ack() returns before tcp_replace_ts_recent() for an ACK of data never
    sent: the challenge ACK echoes the last valid TSval, and a later segment with a
    smaller TSval than the bogus one is not PAWS-dropped (gtests ts_recent/invalid_ack)."""
    stack, fd, peer, sa = _ts_server()
    ecr = sa.timestamps[0]
    (reply,) = peer.send(seq=R_ISN + 1, ack=sa.seq + 9999, flags=ACK | FIN,
                         timestamps=(200_000, ecr), now=100_100)
    assert reply.flags == ACK and reply.ack == R_ISN + 1
    assert reply.timestamps is not None and reply.timestamps[1] == 200
    (ack,) = peer.send(seq=R_ISN + 1, ack=sa.seq + 1, flags=ACK, payload=b"d" * 1000,
                       timestamps=(201, ecr), now=100_200)
    assert ack.ack == R_ISN + 1001 and ack.timestamps is not None and ack.timestamps[1] == 201
    assert stack.recv(fd, 2000, now=100_300) == b"d" * 1000


def test_time_wait_reacks_a_retransmitted_fin_with_timestamps():
    """Linux tcp_v4_timewait_ack(): TIME_WAIT answers a retransmitted FIN with an ACK
    carrying the timestamp option: its own clock and tw_ts_recent (the last TSval
    taken while connected, not the retransmission's)."""
    stack, fd, peer, _sa = _ts_server()
    stack.close(fd, now=100_100)
    (fin,) = peer.out(100_100)
    assert fin.flags == FIN | ACK and fin.timestamps is not None
    peer.send(seq=R_ISN + 1, ack=fin.seq + 1, flags=ACK | FIN,
              timestamps=(300, fin.timestamps[0]), now=100_200)
    assert conn_state(stack) is State.TIME_WAIT
    (again,) = peer.send(seq=R_ISN + 1, ack=fin.seq + 1, flags=ACK | FIN,
                         timestamps=(400, fin.timestamps[0]), now=300_200)
    assert again.flags == ACK and again.ack == R_ISN + 2 and again.seq == fin.seq + 1
    assert again.timestamps == ((fin.timestamps[0] + 200) & 0xFFFFFFFF, 300)


def test_tcp_info_counts_busy_and_rwnd_limited_time():
    """Linux tcp_chrono_*: busy from the first byte queued until all is acknowledged,
    rwnd-limited while the peer's window keeps the next segment back; tcpi_busy_time
    is their sum, tcpi_rwnd_limited the window's part (gtests tcp-info-rwnd-limited)."""
    stack = new_stack()
    fd = stack.socket()
    stack.bind(fd, (LOCAL, LPORT))
    stack.connect_ex(fd, (REMOTE, RPORT), now=0)
    peer = Peer(stack)
    peer.out()
    peer.send(seq=R_ISN, ack=L_ISN + 1, flags=SYN | ACK, mss=1000, window=0, now=10_000)
    conn = stack.connection(fd)
    assert conn is not None
    assert tcp_info(conn, 10_000).tcpi_busy_time == 0
    stack.send(fd, b"x" * 1000, now=10_000)
    assert peer.out(10_000) == []                      # the window is shut
    info = tcp_info(conn, 110_000)
    assert (info.tcpi_busy_time, info.tcpi_rwnd_limited) == (100_000, 100_000)
    (data,) = peer.send(seq=R_ISN + 1, ack=L_ISN + 1, flags=ACK, window=2000, now=210_000)
    assert len(data.payload) == 1000
    peer.send(seq=R_ISN + 1, ack=L_ISN + 1001, flags=ACK, window=2000, now=240_000)
    info = tcp_info(conn, 400_000)                     # idle since 240 ms
    assert (info.tcpi_busy_time, info.tcpi_rwnd_limited) == (230_000, 200_000)


def test_tcp_info_busy_time_ends_when_the_data_is_acknowledged_with_sack():
    """With SACK (RACK's records, so the ACK finds nothing at all to send) the busy
    time still stops at the ACK of the last byte: Linux tcp_chrono_stop() from
    tcp_clean_rtx_queue()."""
    stack = new_stack()
    fd = stack.socket()
    stack.bind(fd, (LOCAL, LPORT))
    stack.connect_ex(fd, (REMOTE, RPORT), now=0)
    peer = Peer(stack)
    peer.out()
    peer.send(seq=R_ISN, ack=L_ISN + 1, flags=SYN | ACK, mss=1000, window=8000,
              sack_permitted=True, now=10_000)
    conn = stack.connection(fd)
    assert conn is not None and conn.sack_ok
    stack.send(fd, b"x" * 500, now=10_000)
    (data,) = peer.out(10_000)
    assert len(data.payload) == 500
    peer.send(seq=R_ISN + 1, ack=L_ISN + 501, flags=ACK, window=8000, now=50_000)
    assert tcp_info(conn, 400_000).tcpi_busy_time == 40_000     # idle since 50 ms


def test_segment_signed_with_md5_is_dropped_without_a_key():
    """Linux tcp_inbound_md5_hash(): a segment carrying an RFC 2385 MD5 option for a
    socket with no MD5 key is dropped before the socket sees it (TCPMD5Unexpected), so
    such a final ACK does not complete the handshake; a plain one does."""
    stack, lfd, peer = listening()
    (sa,) = peer.send(seq=R_ISN, flags=SYN, mss=1460)
    signed = ((19, bytes(16)),)
    assert peer.send(seq=R_ISN + 1, ack=sa.seq + 1, flags=ACK, unknown_options=signed) == []
    assert stack.cfg.mib["TcpExtTCPMD5Unexpected"] == 1
    with pytest.raises(BlockingIOError):
        stack.accept(lfd)
    assert peer.send(seq=R_ISN + 1, ack=sa.seq + 1, flags=ACK) == []
    fd, _ = stack.accept(lfd)
    assert peer.send(seq=R_ISN + 1, ack=sa.seq + 1, flags=ACK | FIN,
                     unknown_options=signed) == []          # dropped: no ACK of the FIN
    assert stack.state(fd) is State.ESTABLISHED
