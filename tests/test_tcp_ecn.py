"""ECN (RFC 3168) as transcripts, each checking what Linux does.

The stack under test is 192.0.2.2 (ISS 300); the peer, 192.0.2.1 (ISS 100).
Timestamps are off so that segments compare simply. Packets are read whole here
(IP header included): ECN lives in the IP header's two low TOS bits.
"""

from __future__ import annotations

import errno
import socket

from transcript import L_ISN, LOCAL, LPORT, R_ISN, REMOTE, RPORT, new_stack

from synack.config import Sysctl
from synack.tcp.ecn import CE, ECT0, NOT_ECT
from synack.tcp.tcpinfo import TCPI_OPT_ECN, TCPI_OPT_ECN_SEEN, TcpInfo
from synack.wire.ipv4 import build_tcp_packet, parse_tcp_packet
from synack.wire.tcp import ACK, CWR, ECE, PSH, SYN, TcpSegment


class EcnPeer:
    """The peer, sending packets with a given IP ECN field and reading (ecn, segment)."""

    def __init__(self, stack) -> None:
        self.stack = stack

    def send(self, *, now: int = 0, ecn: int = NOT_ECT, **fields) -> list[tuple[int, TcpSegment]]:
        base = {"src_port": RPORT, "dst_port": LPORT, "seq": 0, "window": 65535}
        base.update(fields)
        self.stack.receive(build_tcp_packet(REMOTE, LOCAL, TcpSegment(**base), tos=ecn),
                           now=now)
        return self.out(now)

    def out(self, now: int = 0) -> list[tuple[int, TcpSegment]]:
        got = []
        for packet in self.stack.transmit(now=now):
            ip, seg = parse_tcp_packet(packet)
            got.append((ip.tos & 3, seg))
        return got


def stack_with(**sysctls: int):
    return new_stack(cfg=Sysctl(net__ipv4__tcp_timestamps=0, **sysctls))


def server(**sysctls: int):
    stack = stack_with(**sysctls)
    lfd = stack.socket()
    stack.bind(lfd, (LOCAL, LPORT))
    stack.listen(lfd, 8)
    return stack, lfd, EcnPeer(stack)


def established_server(**sysctls: int):
    """The peer opens with an ECN-setup SYN; returns (stack, accepted fd, peer)."""
    stack, lfd, peer = server(**sysctls)
    ((_, synack),) = peer.send(seq=R_ISN, flags=SYN | ECE | CWR, mss=1460)
    assert synack.flags == SYN | ACK | ECE
    peer.send(seq=R_ISN + 1, ack=L_ISN + 1, flags=ACK)
    fd, _ = stack.accept(lfd)
    return stack, fd, peer


def info(stack, fd) -> TcpInfo:
    return TcpInfo.unpack(stack.getsockopt(fd, socket.IPPROTO_TCP, socket.TCP_INFO))


def test_default_2_agrees_to_ecn_when_asked() -> None:
    # net.ipv4.tcp_ecn = 2 (Linux's default): an ECN-setup SYN (ECE, CWR) gets an
    # ECN-setup SYN,ACK (ECE alone), itself not ECT; a plain SYN a plain SYN,ACK.
    _stack, _lfd, peer = server()
    ((ecn, synack),) = peer.send(seq=R_ISN, flags=SYN | ECE | CWR, mss=1460)
    assert (ecn, synack.flags) == (NOT_ECT, SYN | ACK | ECE)
    _stack, _lfd, peer = server()
    ((_, synack),) = peer.send(seq=R_ISN, flags=SYN, mss=1460)
    assert synack.flags == SYN | ACK


def test_ecn_0_never_agrees() -> None:
    _stack, _lfd, peer = server(net__ipv4__tcp_ecn=0)
    ((_, synack),) = peer.send(seq=R_ISN, flags=SYN | ECE | CWR, mss=1460)
    assert synack.flags == SYN | ACK


def test_ect_marked_syn_gets_no_ecn_unless_a_reserved_bit_is_set() -> None:
    # Linux tcp_ecn_create_request(): an ECN-setup SYN that is itself ECT was rewritten
    # by a middlebox, no ECN. An AccECN SYN (AE, the low reserved bit, with ECE and CWR)
    # gets classic ECN: Linux without AccECN falls back to RFC 3168.
    _stack, _lfd, peer = server()
    ((_, synack),) = peer.send(seq=R_ISN, flags=SYN | ECE | CWR, mss=1460, ecn=ECT0)
    assert synack.flags == SYN | ACK
    _stack, _lfd, peer = server()
    ((_, synack),) = peer.send(seq=R_ISN, flags=SYN | ECE | CWR, reserved=1, mss=1460)
    assert (synack.flags, synack.reserved) == (SYN | ACK | ECE, 0)


def test_client_with_ecn_1_asks_and_falls_back_on_retransmission() -> None:
    # tcp_ecn = 1: our SYN has ECE and CWR; a retransmitted SYN drops them
    # (net.ipv4.tcp_ecn_fallback = 1, Linux tcp_ecn_clear_syn()).
    stack = stack_with(net__ipv4__tcp_ecn=1)
    fd = stack.socket()
    assert stack.connect_ex(fd, (REMOTE, RPORT), now=0) == errno.EINPROGRESS
    peer = EcnPeer(stack)
    ((ecn, syn),) = peer.out()
    assert (ecn, syn.flags) == (NOT_ECT, SYN | ECE | CWR)
    stack.tick(now=1_000_000)
    ((_, again),) = peer.out(1_000_000)
    assert again.flags == SYN


def test_client_ecn_agreed_by_synack_and_data_goes_ect0() -> None:
    # Linux tcp_ecn_rcv_synack() / tcp_ecn_send(): ECE alone in the SYN,ACK turns ECN
    # on; new data goes ECT(0), pure ACKs do not.
    stack = stack_with(net__ipv4__tcp_ecn=1)
    fd = stack.socket()
    stack.connect_ex(fd, (REMOTE, RPORT), now=0)
    peer = EcnPeer(stack)
    ((_, syn),) = peer.out()
    ((ecn, ack),) = peer.send(seq=R_ISN, ack=syn.seq + 1, flags=SYN | ACK | ECE, mss=1460,
                              dst_port=syn.src_port, now=10_000)
    assert (ecn, ack.flags) == (NOT_ECT, ACK)
    assert info(stack, fd).tcpi_options & TCPI_OPT_ECN
    stack.send(fd, b"data", now=10_000)
    ((ecn, seg),) = peer.out(10_000)
    assert (ecn, seg.payload) == (ECT0, b"data")


def test_synack_with_cwr_leaves_ecn_off() -> None:
    stack = stack_with(net__ipv4__tcp_ecn=1)
    fd = stack.socket()
    stack.connect_ex(fd, (REMOTE, RPORT), now=0)
    peer = EcnPeer(stack)
    ((_, syn),) = peer.out()
    peer.send(seq=R_ISN, ack=syn.seq + 1, flags=SYN | ACK | ECE | CWR, mss=1460,
              dst_port=syn.src_port, now=10_000)
    assert not info(stack, fd).tcpi_options & TCPI_OPT_ECN
    stack.send(fd, b"data", now=10_000)
    ((ecn, _),) = peer.out(10_000)
    assert ecn == NOT_ECT


def test_ce_is_echoed_with_ece_until_cwr() -> None:
    # RFC 3168 6.1.3 / Linux tcp_ecn_check_ce(): CE-marked data is ACKed at once with
    # ECE, and every ACK keeps ECE until a segment with CWR arrives.
    stack, fd, peer = established_server()
    ((_, a1),) = peer.send(seq=R_ISN + 1, ack=L_ISN + 1, flags=ACK | PSH, payload=b"x" * 100,
                           ecn=CE, now=1000)
    assert a1.flags == ACK | ECE and a1.ack == R_ISN + 101
    ((_, a2),) = peer.send(seq=R_ISN + 101, ack=L_ISN + 1, flags=ACK | PSH,
                           payload=b"y" * 100, ecn=ECT0, now=2000)
    assert a2.flags & ECE                      # still echoing
    got = peer.send(seq=R_ISN + 201, ack=L_ISN + 1, flags=ACK | PSH | CWR,
                    payload=b"z" * 100, ecn=ECT0, now=3000)
    assert [seg.flags & ECE for _, seg in got] == [0]   # CWR seen: ACKed at once, no ECE
    assert info(stack, fd).tcpi_options & TCPI_OPT_ECN_SEEN


def test_ece_reduces_the_window_once_per_window_and_cwr_follows() -> None:
    # Linux tcp_enter_cwr(): ECE on an ACK halves (CUBIC: x0.7) the window once per
    # window of data; the next new data segment carries CWR.
    stack, fd, peer = established_server()
    conn = stack.connection(fd)
    assert conn is not None
    cwnd0 = conn.cwnd_segments
    stack.send(fd, bytes(4 * 1460), now=10_000)
    sent = peer.out(10_000)
    assert [ecn for ecn, _ in sent] == [ECT0] * len(sent)
    end = L_ISN + 1 + 4 * 1460
    peer.send(seq=R_ISN + 1, ack=L_ISN + 1 + 1460, flags=ACK | ECE, now=20_000)
    cwnd1 = conn.cwnd_segments
    assert cwnd1 < cwnd0 and conn.ssthresh == cwnd1
    peer.send(seq=R_ISN + 1, ack=L_ISN + 1 + 2 * 1460, flags=ACK | ECE, now=21_000)
    assert conn.cwnd_segments >= cwnd1                # the same window: no second cut
    stack.send(fd, b"more", now=22_000)
    ((ecn, seg),) = peer.out(22_000)
    assert seg.flags & CWR and ecn == ECT0 and seg.seq == end
