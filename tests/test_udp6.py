"""UDP over IPv6 (host/udp.py): the IPv6 pseudo-header checksum, AF_INET6 datagram
sockets over a loopback Host (::1 and the host's own address), dual-stack sockets and
IPv4-mapped addresses, ICMPv6 port unreachable both ways, and the kernel as a peer
over a TAP (2001:db8::1 kernel, 2001:db8::2 synack)."""

from __future__ import annotations

import errno
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

import synack.socket as ss
from synack.api_host import Host
from synack.stack import Stack
from synack.wire import internet_checksum, pseudo_header_sum
from synack.wire.icmp6 import DEST_UNREACH, Icmp6Message, parse_icmp6
from synack.wire.ipv6 import parse_ipv6
from synack.wire.udp import UdpDatagram, build_udp6_packet, parse_udp

KERNEL6, US6 = "2001:db8::1", "2001:db8::2"
PEER6 = "2001:db8::9"
WAIT = 10.0
u16 = st.integers(0, 0xFFFF)


@pytest.fixture
def host() -> Iterator[Host]:
    h = Host.loopback("127.0.0.1", addr6=US6, seed=5)
    yield h
    h.close()


def udp6(host: Host) -> ss.socket:
    s = ss.socket(ss.AF_INET6, ss.SOCK_DGRAM, host=host)
    s.settimeout(WAIT)
    return s


# ---------------------------------------------------------------- the codec
@given(u16, u16, st.binary(max_size=1500))
def test_udp6_checksum_covers_the_ipv6_pseudo_header(sport: int, dport: int,
                                                     payload: bytes) -> None:
    packet = build_udp6_packet(US6, PEER6, UdpDatagram(sport, dport, payload), hop_limit=9)
    hdr, body = parse_ipv6(packet)
    assert hdr.proto == 17 and hdr.hop_limit == 9 and hdr.src == US6 and hdr.dst == PEER6
    # RFC 8200 8.1: the sum over the pseudo-header and the datagram is 0; never 0 sent.
    assert internet_checksum(bytes(body), pseudo_header_sum(US6, PEER6, 17, len(body))) == 0
    assert body[6:8] != b"\0\0"
    assert parse_udp(body, US6, PEER6) == UdpDatagram(sport, dport, payload)


# ---------------------------------------------------------------- the host, sans I/O
def test_port_unreachable_and_zero_checksum_sans_io() -> None:
    st6 = Stack("192.0.2.2", addr6=US6, seed=1)
    probe = build_udp6_packet(PEER6, US6, UdpDatagram(4000, 9, b"anyone?"))
    st6.receive(probe, now=0)
    (reply,) = st6.transmit(now=0)
    hdr, body = parse_ipv6(reply)
    assert (hdr.src, hdr.dst) == (US6, PEER6)
    msg = parse_icmp6(body, hdr.src, hdr.dst)
    assert isinstance(msg, Icmp6Message) and (msg.type, msg.code) == (DEST_UNREACH, 4)
    assert bytes(msg.payload).startswith(probe[:48])
    # A zero checksum is not "no checksum" over IPv6: dropped, nothing answered.
    zero = bytearray(probe)
    zero[46:48] = b"\0\0"
    st6.receive(bytes(zero), now=0)
    assert st6.transmit(now=0) == []
    assert st6.stats["udp: dropped zero checksum over IPv6"] == 1
    # A bound socket gets the datagram, the sender as a 4-tuple.
    fd = st6.udp.socket(socket.AF_INET6)
    st6.udp.bind(fd, ("::", 9))
    st6.receive(probe, now=0)
    assert st6.udp.recvfrom(fd, 100) == (b"anyone?", (PEER6, 4000, 0, 0))
    assert st6.udp.getsockname(fd) == ("::", 9, 0, 0)


# ---------------------------------------------------------------- a loopback host
@pytest.mark.parametrize("server_ip", ["::1", US6])
def test_echo_over_ipv6(host: Host, server_ip: str) -> None:
    with udp6(host) as srv, udp6(host) as cli:
        srv.bind((server_ip, 0))
        port = srv.getsockname()[1]
        assert srv.getsockname() == (server_ip, port, 0, 0)
        for data in (b"", b"x", os.urandom(1400), os.urandom(60_000)):
            cli.sendto(data, (server_ip, port))
            got, peer = srv.recvfrom(65535)
            assert got == data and peer[0] == server_ip and len(peer) == 4
            srv.sendto(got[::-1], peer)
            assert cli.recvfrom(65535) == (data[::-1], (server_ip, port, 0, 0))
        assert srv.getsockopt(ss.SOL_SOCKET, ss.SO_DOMAIN) == ss.AF_INET6


def test_dual_stack_socket_and_mapped_addresses(host: Host) -> None:
    with udp6(host) as dual, ss.socket(ss.AF_INET, ss.SOCK_DGRAM, host=host) as four:
        four.settimeout(WAIT)
        dual.bind(("::", 0))
        port = dual.getsockname()[1]
        four.sendto(b"from v4", ("127.0.0.1", port))
        got, peer = dual.recvfrom(100)
        assert got == b"from v4"
        assert peer == ("::ffff:127.0.0.1", four.getsockname()[1], 0, 0)
        dual.sendto(b"to v4", peer)                 # a mapped address: sent over IPv4
        assert four.recvfrom(100) == (b"to v4", ("127.0.0.1", port))
    with udp6(host) as only, ss.socket(ss.AF_INET, ss.SOCK_DGRAM, host=host) as four:
        only.setsockopt(ss.IPPROTO_IPV6, ss.IPV6_V6ONLY, 1)
        only.bind(("::", 0))
        port = only.getsockname()[1]
        # Not dual-stack: an IPv4 socket may share the port, and IPv4 goes to it alone.
        four.bind(("0.0.0.0", port))
        with pytest.raises(OSError) as exc:
            only.sendto(b"x", ("::ffff:127.0.0.1", port))
        assert exc.value.errno == errno.ENETUNREACH


def test_bind_clashes_across_the_families(host: Host) -> None:
    with udp6(host) as dual, ss.socket(ss.AF_INET, ss.SOCK_DGRAM, host=host) as four:
        dual.bind(("::", 0))
        with pytest.raises(OSError) as exc:
            four.bind(("0.0.0.0", dual.getsockname()[1]))   # the dual socket holds IPv4 too
        assert exc.value.errno == errno.EADDRINUSE
    with udp6(host) as s, pytest.raises(OSError) as exc:
        s.bind(("2001:db8::77", 0))
    assert exc.value.errno == errno.EADDRNOTAVAIL
    with udp6(host) as s:
        s.bind(("::1", 0))
        with pytest.raises(OSError) as exc:
            s.sendto(b"x", ("::ffff:127.0.0.1", 9))     # an IPv6 source for IPv4
        assert exc.value.errno == errno.ENETUNREACH


def test_connected_socket_refused_by_icmpv6(host: Host) -> None:
    with udp6(host) as cli:
        cli.connect(("::1", 9))
        assert cli.getpeername() == ("::1", 9, 0, 0) and cli.getsockname()[0] == "::1"
        cli.send(b"x")
        with pytest.raises(ConnectionRefusedError):
            cli.recv(10)
    assert host.stack.cfg.mib["UdpNoPorts"] >= 1


# ---------------------------------------------------------------- the kernel
ECHO6 = r"""
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("::", int(sys.argv[1])))
s.settimeout(20)
print("ready", flush=True)
for _ in range(int(sys.argv[2])):
    data, addr = s.recvfrom(65535)
    s.sendto(data[::-1], addr)
print("done", flush=True)
"""
CLIENT6 = r"""
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(20)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b"from the kernel")
try:
    print(s.recv(100).decode(), flush=True)
except OSError as exc:
    print("error", exc.errno, flush=True)
"""

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                                reason="needs root and /dev/net/tun")


@pytest.fixture
def lab_host() -> Iterator[tuple[Host, object]]:
    from synack.link.loop import Loop
    from synack.link.netns import Lab, netns_exists

    n = f"{os.getpid() % 1000}"
    ns = f"sa-udp6-{n}"
    lab = Lab(ns, tap=f"saudp6{n}")
    with lab as link:
        stack = Stack("192.0.2.2", addr6=US6, seed=3, mtu=link.mtu)
        loop = Loop(stack, link, name=ns)
        loop.start()
        try:
            yield Host(stack, loop), lab
        finally:
            loop.stop()
    assert not netns_exists(ns)


def kernel_run(lab: object, script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", lab.netns,  # type: ignore[attr-defined]
                             sys.executable, "-c", script, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> str:
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    assert proc.returncode == 0, f"kernel side failed: {out!r} {err!r}"
    return out


@needs_root
def test_kernel_udp6_echo_client_and_unreachables(lab_host: tuple[Host, object]) -> None:
    host, lab = lab_host
    sizes = [0, 1, 100, 1452]                     # 1452 fills a 1500-byte IPv6 packet
    proc = kernel_run(lab, ECHO6, "7777", str(len(sizes)))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", finish(proc)
    with udp6(host) as s:
        for size in sizes:
            data = os.urandom(size)
            s.sendto(data, (KERNEL6, 7777))
            assert s.recvfrom(65535) == (data[::-1], (KERNEL6, 7777, 0, 0))
        with pytest.raises(OSError) as exc:
            s.sendto(bytes(1453), (KERNEL6, 7777))  # no IPv6 fragmentation
        assert exc.value.errno == errno.EMSGSIZE
    assert "done" in finish(proc)
    # The kernel as a client; then to a closed synack port: our ICMPv6 refuses it.
    with udp6(host) as srv:
        srv.bind(("::", 6666))
        proc = kernel_run(lab, CLIENT6, US6, "6666")
        data, addr = srv.recvfrom(100)
        assert data == b"from the kernel" and addr[0] == KERNEL6
        srv.sendto(data.upper(), addr)
        assert finish(proc).strip() == "FROM THE KERNEL"
    assert finish(kernel_run(lab, CLIENT6, US6, "6667")).strip() == (
        f"error {errno.ECONNREFUSED}")
    # synack to a closed kernel port: the kernel's ICMPv6 makes ours refuse.
    with udp6(host) as cli:
        cli.connect((KERNEL6, 6668))
        cli.send(b"x")
        with pytest.raises(ConnectionRefusedError):
            cli.recv(10)
    out = lab.exec("nstat", "-az", "Udp6InCsumErrors")  # type: ignore[attr-defined]
    m = re.search(r"^Udp6InCsumErrors\s+(\d+)", out, re.MULTILINE)
    assert m and int(m.group(1)) == 0, out
