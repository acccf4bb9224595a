"""The socket calls raise what the stdlib's ``socket`` raises on Linux, and nothing a
peer sends (malformed or merely hostile) raises out of ``Stack.receive``.

The expected errors were checked against Linux 6.18 with real non-blocking sockets.
"""

from __future__ import annotations

import errno
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transcript import (
    L_ISN,
    LOCAL,
    LPORT,
    R_ISN,
    REMOTE,
    RPORT,
    Peer,
    established_client,
    established_server,
    listening,
    new_stack,
    ours,
)

from synack.stack import SHUT_WR, Stack
from synack.tcp.state import State
from synack.wire.checksum import internet_checksum, pseudo_header_sum
from synack.wire.ipv4 import IPv4Header, build_tcp_packet, encode_ipv4
from synack.wire.tcp import ACK, FIN, RST, SYN, TcpSegment, encode_tcp

ISS, IRS = L_ISN, R_ISN
SEC = 1_000_000


def raises_errno(exc: type[OSError], code: int):
    return pytest.raises(exc, check=lambda e: e.errno == code)


# ---------------------------------------------------------------- errors of socket calls
def test_recv_fresh_socket_enotconn():
    stack = new_stack()
    fd = stack.socket()
    with raises_errno(OSError, errno.ENOTCONN):
        stack.recv(fd, 10, now=0)


def test_recv_nothing_yet():
    stack, fd, _peer = established_server()
    with raises_errno(BlockingIOError, errno.EAGAIN):
        stack.recv(fd, 10, now=0)


def test_send_fresh_socket_epipe():
    # Linux sk_stream_wait_connect(): an unconnected TCP socket says EPIPE, not ENOTCONN.
    stack = new_stack()
    fd = stack.socket()
    with raises_errno(BrokenPipeError, errno.EPIPE):
        stack.send(fd, b"x", now=0)


def test_send_after_shutdown_write():
    stack, fd, _peer = established_server()
    stack.shutdown(fd, SHUT_WR, now=0)
    with raises_errno(BrokenPipeError, errno.EPIPE):
        stack.send(fd, b"x", now=0)


def test_send_while_connecting():
    stack = new_stack()
    fd = stack.socket()
    stack.connect_ex(fd, (REMOTE, RPORT), now=0)
    with raises_errno(BlockingIOError, errno.EAGAIN):
        stack.send(fd, b"x", now=0)


def test_empty_send_while_connecting_eagain():
    # Linux: the wait for the handshake comes before the length is looked at.
    stack = new_stack()
    fd = stack.socket()
    stack.connect_ex(fd, (REMOTE, RPORT), now=0)
    with raises_errno(BlockingIOError, errno.EAGAIN):
        stack.send(fd, b"", now=0)
    assert stack._send(fd, b"", 0) == -1


def test_send_full_buffer_eagain_and_the_apps_call_says_minus_one():
    stack, fd, _peer = established_server()
    taken = 0
    while True:
        n = stack._send(fd, b"x" * 65536, 0)
        if n < 0:
            break
        assert n > 0
        taken += n
    assert taken > 0
    with raises_errno(BlockingIOError, errno.EAGAIN):
        stack.send(fd, b"x", now=0)
    assert stack.send(fd, b"", now=0) == 0      # nothing to take: no error


def test_bind_twice_einval():
    stack = new_stack()
    fd = stack.socket()
    stack.bind(fd, (LOCAL, 8080))
    with raises_errno(OSError, errno.EINVAL):
        stack.bind(fd, (LOCAL, 8081))


def test_bind_port_in_use_eaddrinuse():
    stack = new_stack()
    a, b = stack.socket(), stack.socket()
    stack.bind(a, (LOCAL, 8080))
    with raises_errno(OSError, errno.EADDRINUSE):
        stack.bind(b, (LOCAL, 8080))
    with raises_errno(OSError, errno.EADDRINUSE):
        stack.bind(b, ("0.0.0.0", 8080))


def test_bind_foreign_address_eaddrnotavail():
    stack = new_stack()
    with raises_errno(OSError, errno.EADDRNOTAVAIL):
        stack.bind(stack.socket(), ("10.9.9.9", 80))


def test_bind_port_in_time_wait():
    # Without SO_REUSEADDR a port with a TIME_WAIT entry is still in use.
    stack, lfd, peer = listening()
    peer.send(seq=IRS, flags=SYN, mss=1460)
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK)
    fd, _ = stack.accept(lfd)
    stack.close(fd, now=0)
    peer.out()
    peer.send(seq=IRS + 1, ack=ISS + 2, flags=FIN | ACK)
    stack.close(lfd, now=0)
    assert [row.state for row in stack.connections()] == [State.TIME_WAIT]
    with raises_errno(OSError, errno.EADDRINUSE):
        stack.bind(stack.socket(), (LOCAL, LPORT))
    reuse = stack.socket()
    stack.setsockopt(reuse, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    stack.bind(reuse, (LOCAL, LPORT))


def test_accept_not_listening_einval():
    stack = new_stack()
    fd = stack.socket()
    with raises_errno(OSError, errno.EINVAL):
        stack.accept(fd)


def test_accept_nothing_yet():
    stack, lfd, _peer = listening()
    with raises_errno(BlockingIOError, errno.EAGAIN):
        stack.accept(lfd)


def test_listen_connected_einval():
    stack, fd, _peer = established_client()
    with raises_errno(OSError, errno.EINVAL):
        stack.listen(fd, 5)


def test_unknown_fd_ebadf():
    stack = new_stack()
    for call in (lambda: stack.recv(99, 1, now=0), lambda: stack.send(99, b"x", now=0),
                 lambda: stack.close(99, now=0), lambda: stack.accept(99),
                 lambda: stack.bind(99, (LOCAL, 1))):
        with raises_errno(OSError, errno.EBADF):
            call()


def test_connect_einprogress():
    stack = new_stack()
    fd = stack.socket()
    with raises_errno(BlockingIOError, errno.EINPROGRESS):
        stack.connect(fd, (REMOTE, RPORT), now=0)


def test_connect_again_while_connecting_ealready():
    stack = new_stack()
    fd = stack.socket()
    assert stack.connect_ex(fd, (REMOTE, RPORT), now=0) == errno.EINPROGRESS
    assert stack.connect_ex(fd, (REMOTE, RPORT), now=0) == errno.EALREADY
    with raises_errno(BlockingIOError, errno.EALREADY):
        stack.connect(fd, (REMOTE, RPORT), now=0)


def test_connect_again_after_handshake():
    # Linux: the first connect() after completion returns 0, later ones EISCONN.
    stack, fd, _peer = established_client()
    assert stack.connect_ex(fd, (REMOTE, RPORT), now=0) == 0
    assert stack.connect_ex(fd, (REMOTE, RPORT), now=0) == errno.EISCONN
    with raises_errno(OSError, errno.EISCONN):
        stack.connect(fd, (REMOTE, RPORT), now=0)


def test_connect_again_after_refusal():
    stack = new_stack()
    fd = stack.socket()
    stack.bind(fd, (LOCAL, LPORT))
    stack.connect_ex(fd, (REMOTE, RPORT), now=0)
    peer = Peer(stack)
    peer.out()
    peer.send(seq=0, ack=ISS + 1, flags=RST | ACK)
    assert stack.connect_ex(fd, (REMOTE, RPORT), now=0) == errno.ECONNREFUSED
    assert stack.getsockopt(fd, socket.SOL_SOCKET, socket.SO_ERROR) == 0


def test_connect_listening_socket_eisconn():
    stack, lfd, _peer = listening()
    assert stack.connect_ex(lfd, (REMOTE, RPORT), now=0) == errno.EISCONN


def test_shutdown_unconnected_enotconn():
    stack = new_stack()
    with raises_errno(OSError, errno.ENOTCONN):
        stack.shutdown(stack.socket(), SHUT_WR, now=0)


def test_shutdown_bad_how_einval():
    stack, fd, _peer = established_server()
    with raises_errno(OSError, errno.EINVAL):
        stack.shutdown(fd, 7, now=0)


def test_setsockopt_unknown_option_enoprotoopt():
    stack = new_stack()
    fd = stack.socket()
    with raises_errno(OSError, errno.ENOPROTOOPT):
        stack.setsockopt(fd, socket.IPPROTO_TCP, 9999, 1)
    with raises_errno(OSError, errno.ENOPROTOOPT):
        stack.setsockopt(fd, socket.SOL_SOCKET, 9999, 1)
    with raises_errno(OSError, errno.ENOPROTOOPT):
        stack.getsockopt(fd, socket.IPPROTO_TCP, 9999)


@pytest.mark.parametrize(("option", "value"), [
    (socket.TCP_KEEPCNT, 0), (socket.TCP_KEEPCNT, 128),
    (socket.TCP_KEEPIDLE, 0), (socket.TCP_KEEPIDLE, 32768),
    (socket.TCP_KEEPINTVL, 0), (socket.TCP_MAXSEG, 10),
])
def test_setsockopt_out_of_range_einval(option, value):
    stack = new_stack()
    with raises_errno(OSError, errno.EINVAL):
        stack.setsockopt(stack.socket(), socket.IPPROTO_TCP, option, value)


def test_setsockopt_linger_wrong_size_einval():
    stack = new_stack()
    with raises_errno(OSError, errno.EINVAL):
        stack.setsockopt(stack.socket(), socket.SOL_SOCKET, socket.SO_LINGER, b"\0" * 4)


# ---------------------------------------------------------------- malformed packets
def valid_syn() -> TcpSegment:
    return TcpSegment(src_port=RPORT, dst_port=LPORT, seq=IRS, flags=SYN, window=65535,
                      mss=1460)


def ip_packet(tcp: bytes | bytearray, *, fix_checksum: bool = True) -> bytes:
    """IPv4 around raw TCP bytes, the TCP checksum recomputed unless told not to."""
    tcp = bytearray(tcp)
    if fix_checksum:
        tcp[16:18] = b"\0\0"
        csum = internet_checksum(tcp, pseudo_header_sum(REMOTE, LOCAL, 6, len(tcp)))
        tcp[16:18] = csum.to_bytes(2, "big")
    return encode_ipv4(IPv4Header(src=REMOTE, dst=LOCAL), bytes(tcp))


def assert_dropped(stack: Stack, packet: bytes, key: str) -> None:
    before = stack.stats[key]
    stack.receive(packet, now=0)
    assert stack.stats[key] == before + 1
    assert stack.transmit(now=0) == []


def assert_still_works(stack: Stack, peer: Peer) -> None:
    assert peer.send(seq=IRS, flags=SYN, mss=1460) == [
        ours(seq=ISS, ack=IRS + 1, flags=SYN | ACK, window=65535, mss=1460)
    ]


def test_receive_truncated_ip_packet():
    stack, _lfd, peer = listening()
    packet = build_tcp_packet(REMOTE, LOCAL, valid_syn())
    assert_dropped(stack, packet[:12], "dropped truncated")
    assert_still_works(stack, peer)


def test_receive_truncated_tcp_header():
    stack, _lfd, peer = listening()
    tcp = encode_tcp(valid_syn(), REMOTE, LOCAL)
    assert_dropped(stack, ip_packet(tcp[:14], fix_checksum=False), "dropped truncated")
    assert_still_works(stack, peer)


def test_receive_bad_tcp_checksum():
    stack, _lfd, peer = listening()
    packet = bytearray(build_tcp_packet(REMOTE, LOCAL, valid_syn()))
    packet[20 + 4] ^= 0x01                                  # a bit of the sequence number
    assert_dropped(stack, bytes(packet), "dropped bad checksum")
    assert_still_works(stack, peer)


@pytest.mark.parametrize("doff", [0, 4, 15])
def test_receive_bad_data_offset(doff):
    # Below 5 words, or more words than the segment has.
    stack, _lfd, peer = listening()
    tcp = bytearray(encode_tcp(valid_syn(), REMOTE, LOCAL))
    tcp[12] = doff << 4
    assert_dropped(stack, ip_packet(tcp), "dropped bad data offset")
    assert_still_works(stack, peer)


@pytest.mark.parametrize("length", [0, 1, 3, 5, 40])
def test_receive_bad_option_length(length):
    # The MSS option (kind 2) must be 4 bytes long; the checksum is right, so the
    # option itself is what gets the packet dropped.
    stack, _lfd, peer = listening()
    tcp = bytearray(encode_tcp(valid_syn(), REMOTE, LOCAL))
    assert tcp[20:22] == bytes([2, 4])
    tcp[21] = length
    assert_dropped(stack, ip_packet(tcp), "dropped bad option length")
    assert_still_works(stack, peer)


def test_receive_not_for_us():
    stack, _lfd, _peer = listening()
    packet = build_tcp_packet(REMOTE, "192.0.2.99", valid_syn())
    assert_dropped(stack, packet, "dropped not for us")


def drops(stack: Stack) -> int:
    return sum(n for key, n in stack.stats.items() if key.startswith("dropped "))


@settings(derandomize=True, database=None, deadline=None, max_examples=300)
@given(st.binary(max_size=120))
def test_receive_random_bytes_never_raises(blob):
    stack, _fd, _peer = established_server()
    before = drops(stack) + stack.stats["segments in"]
    stack.receive(blob, now=0)
    stack.transmit(now=0)
    assert drops(stack) + stack.stats["segments in"] == before + 1


@settings(derandomize=True, database=None, deadline=None, max_examples=300)
@given(st.binary(min_size=20, max_size=80))
def test_receive_random_tcp_bytes_never_raises(tcp):
    # Valid IPv4 and a correct TCP checksum around random TCP bytes.
    stack, _fd, _peer = established_server()
    before = drops(stack) + stack.stats["segments in"]
    stack.receive(ip_packet(tcp), now=0)
    stack.transmit(now=0)
    assert drops(stack) + stack.stats["segments in"] == before + 1


u32 = st.integers(0, 2**32 - 1)
near = st.sampled_from([0, 1, 2, 3, 100, 65535]) | u32
hostile = st.builds(
    dict,
    seq=st.builds(lambda d, r: (IRS + 1 + d if r else d) % 2**32, near, st.booleans()),
    ack=st.builds(lambda d, r: (ISS + 1 + d if r else d) % 2**32, near, st.booleans()),
    flags=st.integers(0, 0x3F),
    window=st.integers(0, 65535),
    payload=st.binary(max_size=40),
    mss=st.none() | st.integers(0, 65535),
    wscale=st.none() | st.integers(0, 255),
)


@settings(derandomize=True, database=None, deadline=None, max_examples=200)
@given(st.sampled_from(["server", "client", "listen"]),
       st.lists(st.tuples(hostile, st.integers(0, 5 * SEC)), max_size=8))
def test_hostile_segment_sequences_never_raise(start, steps):
    # Well-formed but arbitrary segments, with time passing between them: whatever
    # the state, the core answers as the RFC says and never raises.
    fixture = {"server": established_server, "client": established_client,
               "listen": listening}[start]
    _stack, _fd, peer = fixture()
    now = 0
    for fields, dt in steps:
        now += dt
        peer.run_until(now)
        peer.send(now=now, **fields)
    peer.run_until(now + 200 * SEC)
