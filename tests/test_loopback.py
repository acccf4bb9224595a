"""Loopback inside one host (host/loopback.py): 127.0.0.0/8 and ::1 as Linux's ``lo``,
the host's own addresses through it, lo's MSS, and martians from the link."""

from __future__ import annotations

import errno
import hashlib
import socket

import pytest

from synack.stack import Stack
from synack.tcp.state import State
from synack.wire.ipv4 import build_tcp_packet
from synack.wire.ipv6 import build_tcp6_packet
from synack.wire.tcp import SYN, TcpSegment
from synack.wire.udp import UdpDatagram, build_udp_packet

A4, A6 = "192.0.2.2", "2001:db8::2"
PEER4, PEER6 = "192.0.2.1", "2001:db8::1"


def host() -> Stack:
    return Stack(A4, addr6=A6, seed=7)


def settle(st: Stack, now: int) -> list[bytes]:
    """Run the host alone: transmit (which loops back) and timers; returns what went to
    the link."""
    wire: list[bytes] = []
    for _ in range(10_000):
        out = st.transmit(now=now)
        wire += out
        if not st._lo:
            return wire
    raise AssertionError("loopback never went quiet")


def pump_until(st: Stack, now: int, cond: object, fds: tuple[int, ...]) -> int:
    """Transmit and run timers until cond() holds; returns the time reached."""
    assert callable(cond)
    for _ in range(100_000):
        assert settle(st, now) == [], "a loopback packet went to the link"
        if cond():
            return now
        nxt = st.next_deadline()
        assert nxt is not None, f"stuck: {[st.state(fd) for fd in fds if fd in st.socks]}"
        now = max(nxt, now + 1)
        st.tick(now=now)
    raise AssertionError("condition never held")


def transfer(family: int, server_ip: str, connect_ip: str, listen_ip: str) -> None:
    st = host()
    lfd = st.socket(family)
    st.bind(lfd, (listen_ip, 8080))
    st.listen(lfd)
    cfd = st.socket(family)
    assert st.connect_ex(cfd, (connect_ip, 8080), now=0) == errno.EINPROGRESS
    assert settle(st, 0) == []
    afd, peer = st.accept(lfd)
    assert st.state(cfd) is State.ESTABLISHED
    local = st.getsockname(cfd)
    assert local[0] == server_ip and peer[:2] == local[:2]
    assert st.getpeername(afd)[:2] == local[:2]
    conn = st.connection(cfd)
    assert conn is not None
    # lo's MTU: 65536 (65535 for IPv4 routes), less the headers (Linux advmss).
    assert conn.adv_mss == (65495 if family == socket.AF_INET else 65476)
    data = bytes(range(256)) * 4000 + b"tail"
    got = bytearray()
    sent = 0
    now = 0
    while len(got) < len(data):
        if sent < len(data):
            try:
                sent += st.send(cfd, data[sent:sent + 300_000], now=now)
            except BlockingIOError:
                pass
        now = pump_until(st, now, lambda: True, (cfd, afd))
        while (chunk := st.recv_some(afd, 1 << 20, now=now)):
            got += chunk
        now += 1000
        st.tick(now=now)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    st.close(cfd, now=now)
    now = pump_until(st, now, lambda: st.recv_some(afd, 10, now=now) == b"", (cfd, afd))
    st.close(afd, now=now)
    key = (local[0], local[1], connect_ip, 8080)
    now = pump_until(st, now, lambda: key in st.timewait, (cfd, afd))
    assert st.stats["loopback packets"] > 0
    assert st.stats["dropped martian source"] == 0
    # TIME_WAIT ends after 60 s, all inside the host.
    now = pump_until(st, now + 1, lambda: key not in st.timewait, ())
    assert not st.conns


@pytest.mark.parametrize(("family", "server_ip", "connect_ip", "listen_ip"), [
    (socket.AF_INET, "127.0.0.1", "127.0.0.1", "127.0.0.1"),
    (socket.AF_INET, "127.0.0.1", "127.0.0.1", "0.0.0.0"),     # wildcard accepts on lo
    (socket.AF_INET, "127.0.0.1", "127.9.8.7", "0.0.0.0"),     # any 127/8, source 127.0.0.1
    (socket.AF_INET, A4, A4, "0.0.0.0"),                        # our own address, through lo
    (socket.AF_INET6, "::1", "::1", "::1"),
    (socket.AF_INET6, "::1", "::1", "::"),
    (socket.AF_INET6, A6, A6, "::"),
])
def test_transfer_over_loopback(family: int, server_ip: str, connect_ip: str,
                                listen_ip: str) -> None:
    transfer(family, server_ip, connect_ip, listen_ip)


def test_connect_to_127_x_uses_127_0_0_1() -> None:
    st = host()
    lfd = st.socket()
    st.bind(lfd, ("127.9.8.7", 81))
    st.listen(lfd)
    cfd = st.socket()
    st.connect_ex(cfd, ("127.9.8.7", 81), now=0)
    settle(st, 0)
    assert st.getsockname(cfd)[0] == "127.0.0.1"
    assert st.state(cfd) is State.ESTABLISHED


def test_bind_addresses() -> None:
    st = host()
    for ip in ("127.0.0.1", "127.1.2.3"):
        fd = st.socket()
        st.bind(fd, (ip, 0))
    fd6 = st.socket(socket.AF_INET6)
    st.bind(fd6, ("::1", 0))
    fd = st.socket()
    with pytest.raises(OSError) as exc:
        st.bind(fd, ("192.0.2.77", 0))
    assert exc.value.errno == errno.EADDRNOTAVAIL


def test_refused_over_loopback() -> None:
    st = host()
    fd = st.socket()
    st.connect_ex(fd, ("127.0.0.1", 9), now=0)
    assert settle(st, 0) == []
    with pytest.raises(ConnectionRefusedError):
        st.send(fd, b"x", now=0)


def test_udp_over_loopback() -> None:
    st = host()
    srv = st.udp.socket()
    st.udp.bind(srv, ("127.0.0.1", 5353))
    cli = st.udp.socket()
    st.udp.sendto(cli, b"hello", ("127.0.0.1", 5353), now=0)
    assert settle(st, 0) == []
    data, src = st.udp.recvfrom(srv, 100) or (b"", ("", 0))
    assert data == b"hello" and src[0] == "127.0.0.1"
    st.udp.sendto(srv, b"back", src, now=0)
    settle(st, 0)
    assert st.udp.recvfrom(cli, 100) == (b"back", ("127.0.0.1", 5353))
    # A closed port: ICMP port unreachable, looped back, refuses a connected socket.
    c2 = st.udp.socket()
    st.udp.connect(c2, ("127.0.0.1", 9))
    st.udp.sendto(c2, b"x", None, now=0)
    assert settle(st, 0) == []
    with pytest.raises(ConnectionRefusedError):
        st.udp.recvfrom(c2, 10)


def test_ping_loopback() -> None:
    st = host()
    st.send_echo("127.0.0.1", 1, 1, b"abc", now=0)
    st.send_echo("::1", 2, 1, b"def", now=0)
    assert settle(st, 0) == []
    got = {(r.src, r.ident, r.payload) for r in st.echo_replies}
    assert got == {("127.0.0.1", 1, b"abc"), ("::1", 2, b"def")}


def test_link_output_unchanged_for_other_peers() -> None:
    st = host()
    fd = st.socket()
    st.connect_ex(fd, (PEER4, 80), now=0)
    wire = settle(st, 0)
    assert len(wire) == 1 and wire[0][12:16] == socket.inet_aton(A4)


def test_martians_from_the_link_are_dropped() -> None:
    st = host()
    lfd = st.socket(socket.AF_INET6)
    st.bind(lfd, ("::", 80))
    st.listen(lfd)
    syn = TcpSegment(src_port=1234, dst_port=80, seq=1, flags=SYN, window=1000)
    cases = [
        (build_tcp_packet("127.0.0.1", A4, syn), "dropped martian source"),
        (build_tcp_packet(A4, A4, syn), "dropped martian source"),
        (build_tcp_packet(PEER4, "127.0.0.1", syn), "dropped martian destination"),
        (build_tcp6_packet("::1", A6, syn), "dropped martian source"),
        (build_tcp6_packet(PEER6, "::1", syn), "dropped martian destination"),
        (build_udp_packet("127.0.0.1", A4, UdpDatagram(1, 53, b"q")),
         "dropped martian source"),
        (build_udp_packet(PEER4, "127.0.0.2", UdpDatagram(1, 53, b"q")),
         "dropped martian destination"),
    ]
    for packet, counter in cases:
        before = st.stats[counter]
        st.receive(packet, now=0)
        assert st.stats[counter] == before + 1, counter
        assert st.transmit(now=0) == []        # no SYN,ACK, no RST, no ICMP
    assert not st.listeners[("::", 80)].syn_queue
    # The same SYN from a real peer is answered.
    st.receive(build_tcp_packet(PEER4, A4, syn), now=0)
    assert len(st.transmit(now=0)) == 1


def test_a_forwarder_does_not_take_loopback_syns() -> None:
    from synack.host.forward import Forwarding

    st = host()
    fwd = Forwarding(st)
    fwd.install()
    fd = st.socket()
    st.connect_ex(fd, ("127.0.0.1", 7), now=0)
    assert settle(st, 0) == []
    assert fwd.take_new() == []                 # refused by RST, as lo with no listener
    with pytest.raises(ConnectionRefusedError):
        st.send(fd, b"x", now=0)


def test_lo_mtu_sets_the_loopback_mss() -> None:
    from synack.api_host import Host

    st = Stack(A4, addr6=A6, seed=7, lo_mtu=1500)     # ip link set lo mtu 1500
    for family, ip, mss in ((socket.AF_INET, "127.0.0.1", 1460), (socket.AF_INET6, "::1", 1440)):
        lfd = st.socket(family)
        st.bind(lfd, (ip, 80))
        st.listen(lfd)
        cfd = st.socket(family)
        st.connect_ex(cfd, (ip, 80), now=0)
        settle(st, 0)
        conn = st.connection(cfd)
        assert conn is not None and conn.adv_mss == mss and conn.mss == mss - 12   # TS
    h = Host.loopback("127.0.0.1", mtu=9000)           # the link is lo: its MTU is lo's
    try:
        assert h.stack.lo_mtu == 9000
    finally:
        h.close()
