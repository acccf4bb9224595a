"""ICMP at the stack: ping, and errors about our segments (RFC 1122 4.2.3.9, RFC 1191,
RFC 5927), as Linux's icmp_echo / tcp_v4_err handle them. Transcripts: feed one ICMP
packet, assert the exact reply or the exact effect."""

from __future__ import annotations

import errno
import socket
import struct

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
    established_server,
    listening,
    new_stack,
    ours,
)

from synack.stack import Stack
from synack.tcp.state import State
from synack.wire.icmp import (
    DEST_UNREACH,
    ECHO_REPLY,
    ECHO_REQUEST,
    TIME_EXCEEDED,
    IcmpMessage,
    build_icmp_packet,
    echo,
    encode_icmp,
    error_for,
    parse_icmp,
)
from synack.wire.ipv4 import (
    PROTO_ICMP,
    IPv4Header,
    build_tcp_packet,
    encode_ipv4,
    parse_ipv4,
    parse_tcp_packet,
)
from synack.wire.tcp import ACK, FIN, PSH, SYN

ROUTER = "198.51.100.1"
ISS, IRS = L_ISN, R_ISN
SEC = 1_000_000


def icmp_out(stack: Stack, now: int = 0) -> list[tuple[IPv4Header, IcmpMessage]]:
    out = []
    for pkt in stack.transmit(now=now):
        ip, body = parse_ipv4(pkt)
        assert ip.proto == PROTO_ICMP
        out.append((ip, parse_icmp(body)))
    return out


def deliver_error(stack: Stack, about: bytes, type_: int, code: int, *, mtu: int = 0,
                  now: int = 0, src: str = ROUTER) -> None:
    """A router's ICMP error about one of the stack's packets."""
    stack.receive(build_icmp_packet(src, stack.addr, error_for(about, type_, code, mtu=mtu)),
                  now=now)


def raw_out(stack: Stack, now: int = 0) -> list[bytes]:
    return stack.transmit(now=now)


def with_seq(packet: bytes, seq: int) -> bytes:
    """The same packet with another TCP sequence number (checksums are not redone:
    an ICMP error embeds only the first bytes anyway)."""
    p = bytearray(packet)
    struct.pack_into("!I", p, 24, seq)
    return bytes(p)


# ------------------------------------------------------------------ ping
def test_echo_request_answered_with_echo_reply() -> None:
    stack = new_stack()
    stack.receive(build_icmp_packet(REMOTE, LOCAL, echo(0x4242, 1, b"abcdefgh" * 7)), now=0)
    ((ip, msg),) = icmp_out(stack)
    assert (ip.src, ip.dst, ip.ttl, ip.proto) == (LOCAL, REMOTE, 64, PROTO_ICMP)
    assert msg == IcmpMessage(ECHO_REPLY, 0, 0x4242, 1, 0, b"abcdefgh" * 7)
    assert stack.stats["icmp: echo replies sent"] == 1


def test_echo_request_for_another_address_is_ignored() -> None:
    stack = new_stack()
    stack.receive(build_icmp_packet(REMOTE, "192.0.2.99", echo(1, 1)), now=0)
    assert stack.transmit(now=0) == []
    assert stack.stats["dropped not for us"] == 1


def test_send_echo_and_record_the_reply() -> None:
    stack = new_stack()
    stack.send_echo(REMOTE, 7, 3, b"payload", now=0)
    ((ip, msg),) = icmp_out(stack)
    assert (ip.src, ip.dst) == (LOCAL, REMOTE)
    assert msg == IcmpMessage(ECHO_REQUEST, 0, 7, 3, 0, b"payload")
    stack.receive(build_icmp_packet(REMOTE, LOCAL, echo(7, 3, b"payload", reply=True)),
                  now=1234)
    (rep,) = stack.echo_replies
    assert (rep.src, rep.ident, rep.seq, rep.payload, rep.now) == (REMOTE, 7, 3, b"payload", 1234)
    assert stack.transmit(now=1234) == []


def test_two_stacks_ping_each_other() -> None:
    a, b = Stack("192.0.2.1", seed=1), Stack("192.0.2.2", seed=2)
    a.send_echo("192.0.2.2", 1, 1, b"x" * 56, now=0)
    for pkt in a.transmit(now=0):
        b.receive(pkt, now=10)
    for pkt in b.transmit(now=10):
        a.receive(pkt, now=20)
    assert [(r.src, r.seq, r.payload, r.now) for r in a.echo_replies] == [
        ("192.0.2.2", 1, b"x" * 56, 20)]


# ------------------------------------------------------------------ malformed
def _icmp_packet(body: bytes) -> bytes:
    return encode_ipv4(IPv4Header(src=REMOTE, dst=LOCAL, proto=PROTO_ICMP), body)


@pytest.mark.parametrize(("body", "counter"), [
    (b"\x08\x00", "icmp: dropped truncated"),
    (encode_icmp(echo(1, 1, b"data"))[:-1] + b"b", "icmp: dropped bad checksum"),
    (encode_icmp(IcmpMessage(13, 0)), "icmp: dropped unsupported"),     # timestamp
    (encode_icmp(IcmpMessage(DEST_UNREACH, 3, payload=b"E" + bytes(19))),
     "icmp: dropped truncated"),                                        # no 8 bytes
])
def test_malformed_icmp_is_dropped_and_counted(body: bytes, counter: str) -> None:
    stack, fd, _peer = established_server()
    stack.receive(_icmp_packet(body), now=0)
    assert stack.stats[counter] == 1
    assert stack.transmit(now=0) == []
    assert stack.state(fd) is State.ESTABLISHED


def test_error_about_a_packet_not_ours_or_no_socket() -> None:
    stack = new_stack()
    other = Stack("192.0.2.77", seed=1)
    fd = other.socket()
    other.connect_ex(fd, (REMOTE, 80), now=0)
    (syn,) = other.transmit(now=0)
    deliver_error(stack, syn, DEST_UNREACH, 3)
    assert stack.stats["icmp: dropped error about a packet not ours"] == 1
    fd = stack.socket()
    stack.connect_ex(fd, (REMOTE, 80), now=0)
    (syn,) = stack.transmit(now=0)
    stack.close(fd, now=0)
    deliver_error(stack, syn, DEST_UNREACH, 3)
    assert stack.stats["icmp: dropped no socket"] == 1
    assert stack.transmit(now=0) == []


# ------------------------------------------------------------------ SYN_SENT: hard errors
def connecting() -> tuple[Stack, int, bytes]:
    stack = new_stack()
    fd = stack.socket()
    stack.bind(fd, (LOCAL, LPORT))
    assert stack.connect_ex(fd, (REMOTE, RPORT), now=0) == errno.EINPROGRESS
    (syn,) = raw_out(stack)
    return stack, fd, syn


@pytest.mark.parametrize(("type_", "code", "err"), [
    (DEST_UNREACH, 0, errno.ENETUNREACH),
    (DEST_UNREACH, 1, errno.EHOSTUNREACH),
    (DEST_UNREACH, 2, errno.ENOPROTOOPT),     # Linux icmp_err_convert, not ECONNREFUSED
    (DEST_UNREACH, 3, errno.ECONNREFUSED),
    (DEST_UNREACH, 13, errno.EHOSTUNREACH),   # administratively prohibited
    (TIME_EXCEEDED, 0, errno.EHOSTUNREACH),
])
def test_syn_sent_error_aborts_connect(type_: int, code: int, err: int) -> None:
    stack, fd, syn = connecting()
    deliver_error(stack, syn, type_, code, now=5_000)
    assert stack.transmit(now=5_000) == []           # no RST, nothing
    assert stack.state(fd) is State.CLOSED
    assert conn_state(stack) is None
    assert stack.connect_ex(fd, (REMOTE, RPORT), now=5_000) == err
    assert stack.stats["icmp: hard error"] == 1
    assert stack.next_deadline() is None             # the SYN is not retried


def test_syn_sent_error_reaches_recv_and_so_error() -> None:
    stack, fd, syn = connecting()
    deliver_error(stack, syn, DEST_UNREACH, 1)
    assert stack.getsockopt(fd, socket.SOL_SOCKET, socket.SO_ERROR) == errno.EHOSTUNREACH
    stack2, fd2, syn2 = connecting()
    deliver_error(stack2, syn2, DEST_UNREACH, 3)
    with pytest.raises(ConnectionRefusedError):
        stack2.recv(fd2, 10, now=0)


@pytest.mark.parametrize("seq", [ISS - 1, ISS + 2, ISS + 100_000])
def test_syn_sent_error_with_wrong_seq_is_dropped(seq: int) -> None:
    # RFC 5927 4.1: the embedded sequence number must lie in [SND.UNA, SND.NXT].
    stack, fd, syn = connecting()
    deliver_error(stack, with_seq(syn, seq), DEST_UNREACH, 3)
    assert stack.state(fd) is State.SYN_SENT
    assert stack.stats["icmp: out of window"] == 1
    (again,) = Peer(stack, port=RPORT, lport=LPORT).tick(1 * SEC)   # the SYN is retried
    assert again.flags == SYN and again.seq == ISS


# ------------------------------------------------------------------ ESTABLISHED: soft errors
def test_established_unreachable_is_soft_then_reported_on_timeout() -> None:
    stack, fd, peer = established_client()
    stack.send(fd, b"hello", now=20_000)
    (pkt,) = raw_out(stack, 20_000)
    deliver_error(stack, pkt, DEST_UNREACH, 1, now=30_000)
    assert stack.stats["icmp: soft error"] == 1
    assert stack.state(fd) is State.ESTABLISHED      # RFC 1122 4.2.3.9: keep trying
    assert stack.transmit(now=30_000) == []
    with pytest.raises(BlockingIOError):
        stack.recv(fd, 10, now=30_000)
    assert stack.getsockopt(fd, socket.SOL_SOCKET, socket.SO_ERROR) == 0
    resent = peer.run_until(2000 * SEC)              # tcp_retries2: about 924 s
    assert len(resent) == 15 and all(s.payload == b"hello" for _, s in resent)
    assert stack.state(fd) is State.CLOSED
    with pytest.raises(OSError) as e:
        stack.recv(fd, 10, now=2000 * SEC)
    assert e.value.errno == errno.EHOSTUNREACH       # Linux tcp_write_err: sk_err_soft


def test_established_port_unreachable_is_soft_too() -> None:
    stack, fd, peer = established_client()
    stack.send(fd, b"hello", now=20_000)
    (pkt,) = raw_out(stack, 20_000)
    deliver_error(stack, pkt, DEST_UNREACH, 3, now=30_000)
    assert stack.state(fd) is State.ESTABLISHED
    assert stack.connection(fd).soft_error == errno.ECONNREFUSED
    # The peer answers after all: the connection carries on.
    assert peer.send(seq=R_ISN + 1, ack=L_ISN + 6, flags=ACK, now=40_000) == []
    assert stack.state(fd) is State.ESTABLISHED


def test_established_error_out_of_window_is_dropped() -> None:
    stack, fd, peer = established_client()
    stack.send(fd, b"hello", now=20_000)
    (pkt,) = raw_out(stack, 20_000)
    deliver_error(stack, with_seq(pkt, ISS + 10), DEST_UNREACH, 1)   # beyond SND.NXT (ISS+6)
    deliver_error(stack, with_seq(pkt, ISS), DEST_UNREACH, 1)        # before SND.UNA (ISS+1)
    assert stack.stats["icmp: out of window"] == 2
    assert stack.connection(fd).soft_error is None
    peer.run_until(2000 * SEC)
    with pytest.raises(TimeoutError):
        stack.recv(fd, 10, now=2000 * SEC)


# ------------------------------------------------------------------ fragmentation needed
def test_frag_needed_lowers_mss_and_resends_in_flight_at_new_size() -> None:
    stack, fd, peer = established_server()
    data = bytes(range(256)) * 16        # 4096 bytes: 1460 + 1460 + 1176
    stack.send(fd, data, now=0)
    first, _, _ = raw_out(stack)
    deliver_error(stack, first, DEST_UNREACH, 4, mtu=1000, now=10_000)
    # MSS 960 = 1000 - 40; everything in flight again at once, cwnd untouched.
    win = peer.out(10_000)
    assert [(s.seq, len(s.payload), s.flags) for s in win] == [
        (ISS + 1, 960, ACK), (ISS + 961, 960, ACK), (ISS + 1921, 960, ACK),
        (ISS + 2881, 960, ACK), (ISS + 3841, 256, ACK | PSH)]
    assert win[0] == ours(seq=ISS + 1, ack=IRS + 1, flags=ACK, window=win[0].window,
                          payload=data[:960])
    assert stack.getsockopt(fd, socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 960
    assert stack.stats["icmp: pmtu"] == 1
    # New data goes at the new size too.
    peer.send(seq=IRS + 1, ack=ISS + 4097, flags=ACK, now=20_000)
    stack.send(fd, b"y" * 2000, now=20_000)
    assert [len(s.payload) for s in peer.out(20_000)] == [960, 960, 80]


@pytest.mark.parametrize(("mtu", "mss"), [(300, 512), (0, 512), (576, 536), (1400, 1360)])
def test_frag_needed_never_below_linux_min_pmtu(mtu: int, mss: int) -> None:
    stack, fd, peer = established_server()
    stack.send(fd, b"z" * 3000, now=0)
    first = raw_out(stack)[0]
    deliver_error(stack, first, DEST_UNREACH, 4, mtu=mtu)
    assert stack.getsockopt(fd, socket.IPPROTO_TCP, socket.TCP_MAXSEG) == mss
    assert {len(s.payload) for s in peer.out()[:-1]} == {mss}


def test_frag_needed_with_a_higher_mtu_changes_nothing() -> None:
    stack, fd, peer = established_server()
    stack.send(fd, b"z" * 3000, now=0)
    first = raw_out(stack)[0]
    deliver_error(stack, first, DEST_UNREACH, 4, mtu=1000)
    peer.out()
    deliver_error(stack, first, DEST_UNREACH, 4, mtu=1200)
    assert stack.transmit(now=0) == []
    assert stack.getsockopt(fd, socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 960
    assert stack.stats["icmp: pmtu not lower"] == 1


def test_frag_needed_in_syn_sent_applies_when_the_handshake_ends() -> None:
    stack, fd, syn = connecting()
    deliver_error(stack, syn, DEST_UNREACH, 4, mtu=1200)
    assert stack.state(fd) is State.SYN_SENT and stack.transmit(now=0) == []
    peer = Peer(stack)
    (_ack,) = peer.send(seq=R_ISN, ack=L_ISN + 1, flags=SYN | ACK, mss=1460, now=10_000)
    assert stack.getsockopt(fd, socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 1160


# ------------------------------------------------------------------ passive open in SYN_RECEIVED
def half_open() -> tuple[Stack, int, bytes]:
    stack, lfd, peer = listening()
    stack.receive(build_tcp_packet(REMOTE, LOCAL, peer.seg(seq=R_ISN, flags=SYN, mss=1460)),
                  now=0)
    (synack,) = raw_out(stack)
    _, seg = parse_tcp_packet(synack)
    assert seg.flags == SYN | ACK and seg.seq == ISS
    return stack, lfd, synack


def test_syn_received_dropped_silently_by_host_unreachable() -> None:
    # Linux tcp_req_err(): net/host unreachable and time exceeded drop the request.
    stack, _lfd, synack = half_open()
    deliver_error(stack, synack, DEST_UNREACH, 1)
    assert stack.transmit(now=0) == []
    assert conn_state(stack) is None
    assert stack.stats["icmp: request dropped"] == 1


def test_syn_received_keeps_going_after_port_unreachable_or_wrong_seq() -> None:
    stack, _lfd, synack = half_open()
    deliver_error(stack, synack, DEST_UNREACH, 3)
    deliver_error(stack, with_seq(synack, ISS + 1), DEST_UNREACH, 1)
    assert conn_state(stack) is State.SYN_RECEIVED
    assert stack.stats["icmp: ignored"] == 1 and stack.stats["icmp: out of window"] == 1


def test_time_wait_ignores_icmp() -> None:
    stack, fd, peer = established_client()
    stack.shutdown(fd, socket.SHUT_WR, now=20_000)
    (fin,) = raw_out(stack, 20_000)
    peer.send(seq=R_ISN + 1, ack=L_ISN + 2, flags=ACK | FIN, now=30_000)
    assert conn_state(stack) is State.TIME_WAIT
    deliver_error(stack, fin, DEST_UNREACH, 3, now=40_000)
    assert conn_state(stack) is State.TIME_WAIT
    assert stack.stats["icmp: ignored"] == 1
