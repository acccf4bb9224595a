"""UDP (RFC 768): the codec, the host's datagram sockets, and the kernel as a peer.

Codec round trips with hypothesis; echo, truncation, port sharing, readiness
and ICMP port unreachable -> ECONNREFUSED over a loopback Host; and a kernel
UDP echo (and client) in a namespace over a TAP, offloads off and on.
"""

from __future__ import annotations

import errno
import os
import re
import select
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

import synack.socket as ss
from synack.api_host import Host
from synack.wire import ParseError, internet_checksum, pseudo_header_sum
from synack.wire.ipv4 import PROTO_UDP, parse_ipv4
from synack.wire.udp import UdpDatagram, build_udp_packet, encode_udp, parse_udp

IP = "127.0.0.1"
WAIT = 10.0
u16 = st.integers(0, 0xFFFF)
addresses = st.integers(0, 2**32 - 1).map(lambda a: socket.inet_ntoa(a.to_bytes(4, "big")))
datagrams = st.builds(UdpDatagram, u16, u16, st.binary(max_size=2000))


# ---------------------------------------------------------------- codec
@given(datagrams, addresses, addresses)
def test_codec_round_trip(d: UdpDatagram, src: str, dst: str) -> None:
    raw = encode_udp(d, src, dst)
    assert len(raw) == 8 + len(d.payload)
    assert struct.unpack_from("!H", raw, 4)[0] == len(raw)
    assert parse_udp(raw, src, dst) == d
    # The checksum covers the pseudo-header: summing it all gives zero.
    assert internet_checksum(raw, pseudo_header_sum(src, dst, PROTO_UDP, len(raw))) == 0
    assert struct.unpack_from("!H", raw, 6)[0] != 0       # zero means "no checksum"


@given(datagrams, addresses, addresses, st.data())
def test_codec_any_flipped_bit_is_a_bad_checksum(d: UdpDatagram, src: str, dst: str,
                                                 data: st.DataObject) -> None:
    raw = bytearray(encode_udp(d, src, dst))
    i = data.draw(st.integers(0, len(raw) - 1))
    if i in (4, 5):
        return                              # the length field: a length error instead
    raw[i] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(ParseError) as exc:
        parse_udp(bytes(raw), src, dst)
    assert exc.value.kind == "bad checksum"


@given(datagrams, addresses, addresses, st.binary(min_size=1, max_size=20))
def test_codec_trailing_bytes_are_cut_and_zero_checksum_is_none(
        d: UdpDatagram, src: str, dst: str, extra: bytes) -> None:
    raw = bytearray(encode_udp(d, src, dst, checksum=False))
    assert raw[6:8] == b"\0\0"
    assert parse_udp(bytes(raw) + extra, src, dst) == d


def test_codec_malformed_input_names_the_field() -> None:
    with pytest.raises(ParseError, match="UDP header: truncated"):
        parse_udp(b"\0" * 7, "192.0.2.1", "192.0.2.2")
    with pytest.raises(ParseError, match="UDP length: bad total length 7"):
        parse_udp(struct.pack("!HHHH", 1, 2, 7, 0), "192.0.2.1", "192.0.2.2")
    with pytest.raises(ParseError, match="UDP length: bad total length 20"):
        parse_udp(struct.pack("!HHHH", 1, 2, 20, 0) + b"abc", "192.0.2.1", "192.0.2.2")
    with pytest.raises(ValueError, match="port"):
        encode_udp(UdpDatagram(70000, 1), "192.0.2.1", "192.0.2.2")


def test_packet_carries_df_and_protocol_17() -> None:
    packet = build_udp_packet("192.0.2.1", "192.0.2.2", UdpDatagram(5, 53, b"q"), ttl=9)
    ip, body = parse_ipv4(packet)
    assert (ip.proto, ip.ttl, ip.dont_fragment) == (PROTO_UDP, 9, True)
    assert parse_udp(body, ip.src, ip.dst) == UdpDatagram(5, 53, b"q")


def test_checksum_matches_a_known_vector() -> None:
    # Computed by hand from RFC 768: pseudo-header 192.0.2.1 -> 192.0.2.2, proto 17,
    # length 9; header 0x3039 0x0035 0x0009; data "a" padded to 0x6100.
    total = 0xC000 + 0x0201 + 0xC000 + 0x0202 + 17 + 9 + 0x3039 + 0x0035 + 0x0009 + 0x6100
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    raw = encode_udp(UdpDatagram(12345, 53, b"a"), "192.0.2.1", "192.0.2.2")
    assert struct.unpack_from("!H", raw, 6)[0] == (~total & 0xFFFF)


# ---------------------------------------------------------------- host
@pytest.fixture
def host() -> Iterator[Host]:
    h = Host.loopback(IP, seed=5)
    yield h
    h.close()


def udp(host: Host) -> ss.socket:
    s = ss.socket(ss.AF_INET, ss.SOCK_DGRAM, host=host)
    s.settimeout(WAIT)
    return s


def test_echo_over_a_loopback_host(host: Host) -> None:
    with udp(host) as srv, udp(host) as cli:
        srv.bind((IP, 5353))
        assert cli.sendto(b"hello", (IP, 5353)) == 5
        data, addr = srv.recvfrom(100)
        assert data == b"hello" and addr == (IP, cli.getsockname()[1])
        assert cli.getsockname()[0] == "0.0.0.0"      # autobound to the wildcard, as Linux
        srv.sendto(data.upper(), addr)
        assert cli.recvfrom(100) == (b"HELLO", (IP, 5353))
        assert cli.type == ss.SOCK_DGRAM and cli.family == ss.AF_INET
        assert cli.getsockopt(ss.SOL_SOCKET, ss.SO_TYPE) == ss.SOCK_DGRAM
        assert host.stack.cfg.mib["UdpInDatagrams"] == 2


def test_recvmsg_into_spreads_one_datagram_over_buffers(host: Host) -> None:
    with udp(host) as srv, udp(host) as cli:
        srv.bind((IP, 5354))
        cli.sendmsg([b"abc", b"defgh"], [], 0, (IP, 5354))
        a, b = bytearray(4), bytearray(10)
        n, anc, _flags, addr = srv.recvmsg_into([a, b])
        assert (n, anc, addr) == (8, [], (IP, cli.getsockname()[1]))
        assert bytes(a) == b"abcd" and bytes(b[:4]) == b"efgh"


def test_datagram_boundaries_truncation_and_peek(host: Host) -> None:
    with udp(host) as srv, udp(host) as cli:
        srv.bind((IP, 5354))
        cli.connect((IP, 5354))
        for d in (b"first", b"second"):
            cli.send(d)
        assert srv.recv(100, ss.MSG_PEEK) == b"first"
        assert srv.recv(2) == b"fi"                 # the rest of "first" is gone
        buf = bytearray(10)
        n, addr = srv.recvfrom_into(buf)
        assert (bytes(buf[:n]), addr) == (b"second", cli.getsockname())
        srv.setblocking(False)
        with pytest.raises(BlockingIOError):
            srv.recv(10)


def test_connected_socket_gets_econnrefused_from_port_unreachable(host: Host) -> None:
    with udp(host) as cli:
        cli.connect((IP, 5355))                     # nobody there
        cli.send(b"anyone?")
        with pytest.raises(ConnectionRefusedError):
            cli.recv(10)                            # the ICMP came back
        assert host.stack.cfg.mib["UdpNoPorts"] == 1
        cli.settimeout(0.0)
        with pytest.raises(BlockingIOError):
            cli.recv(10)                            # reported once, as sock_error()
        assert host.stack.stats["icmp: udp error reported"] == 1


def test_unconnected_socket_ignores_port_unreachable(host: Host) -> None:
    with udp(host) as cli, udp(host) as probe:
        cli.sendto(b"x", (IP, 5356))
        probe.bind((IP, 5357))
        cli.sendto(b"y", (IP, 5357))                # sent after: arrives after the ICMP
        assert probe.recv(10) == b"y"
        with host.loop.cond:                        # the ICMP may still be on its way
            assert host.loop.cond.wait_for(
                lambda: host.stack.stats["icmp: ignored"] == 1, WAIT), host.stack.stats
        assert cli.getsockopt(ss.SOL_SOCKET, ss.SO_ERROR) == 0


def test_ports_are_per_protocol_and_bind_conflicts(host: Host) -> None:
    with udp(host) as a, udp(host) as b, ss.create_server((IP, 5358), host=host) as t:
        a.bind((IP, 5358))                          # TCP holds 5358 too: another table
        with pytest.raises(OSError) as exc:
            b.bind((IP, 5358))
        assert exc.value.errno == errno.EADDRINUSE
        assert t.getsockname() == a.getsockname()


def test_errors_are_linux_errnos(host: Host) -> None:
    with udp(host) as s:
        with pytest.raises(OSError) as exc:
            s.send(b"x")
        assert exc.value.errno == errno.EDESTADDRREQ
        with pytest.raises(OSError) as exc:
            s.sendto(b"x" * 65508, (IP, 9))
        assert exc.value.errno == errno.EMSGSIZE
        with pytest.raises(OSError) as exc:
            s.listen()
        assert exc.value.errno == errno.EOPNOTSUPP
        with pytest.raises(OSError) as exc:
            s.getpeername()
        assert exc.value.errno == errno.ENOTCONN
    with pytest.raises(OSError) as exc:
        ss.socket(ss.AF_INET, ss.SOCK_DGRAM, ss.IPPROTO_TCP, host=host)
    assert exc.value.errno == errno.EPROTONOSUPPORT


def test_readiness_through_fileno(host: Host) -> None:
    with udp(host) as srv, udp(host) as cli:
        srv.bind((IP, 5359))
        assert select.select([srv], [srv], [], 0)[:2] == ([], [srv])   # always writable
        cli.sendto(b"ping", (IP, 5359))
        assert select.select([srv], [], [], WAIT)[0] == [srv]
        assert srv.recv(10) == b"ping"
        assert select.select([srv], [], [], 0)[0] == []


# ---------------------------------------------------------------- the kernel as a peer
KERNEL, US = "192.0.2.1", "192.0.2.2"
ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(20)
print("ready", flush=True)
for _ in range(int(sys.argv[2])):
    data, addr = s.recvfrom(65535)
    s.sendto(data[::-1], addr)
print("done", flush=True)
"""
CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
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
_counter = iter(range(1, 10_000))


@pytest.fixture(params=[False, True], ids=["plain", "offload"])
def lab_host(request: pytest.FixtureRequest) -> Iterator[tuple[Host, object]]:
    from synack.link.loop import Loop
    from synack.link.netns import Lab, netns_exists
    from synack.stack import Stack

    n = f"{os.getpid() % 1000}u{next(_counter)}"
    ns = f"sa-udp-{n}"
    lab = Lab(ns, tap=f"saudp{n}", offload=request.param)
    with lab as link:
        stack = Stack(US, seed=3, mtu=link.mtu)
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


def udp_counter(lab: object, name: str) -> int:
    out = lab.exec("nstat", "-az", name)  # type: ignore[attr-defined]
    m = re.search(rf"^{name}\s+(\d+)", out, re.MULTILINE)
    assert m, out
    return int(m.group(1))


@needs_root
def test_kernel_echo_server(lab_host: tuple[Host, object]) -> None:
    host, lab = lab_host
    sizes = [0, 1, 100, 1472, 1473, 8000, 65507]    # 1472 fills 1500 bytes; then fragments
    proc = kernel_run(lab, ECHO, "7777", str(len(sizes)))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", finish(proc)
    with udp(host) as s:
        for size in sizes:
            data = os.urandom(size)
            s.sendto(data, (KERNEL, 7777))
            assert s.recvfrom(65535) == (data[::-1], (KERNEL, 7777))
    assert "done" in finish(proc)
    assert udp_counter(lab, "UdpInCsumErrors") == 0
    assert udp_counter(lab, "UdpInDatagrams") >= len(sizes)
    assert udp_counter(lab, "IpReasmOKs") >= 3       # the kernel put ours together
    assert host.stack.stats["frag: datagrams reassembled"] >= 3   # and we the kernel's


@needs_root
def test_kernel_client_and_port_unreachable_both_ways(lab_host: tuple[Host, object]) -> None:
    host, lab = lab_host
    with udp(host) as srv:
        srv.bind(("0.0.0.0", 6666))
        proc = kernel_run(lab, CLIENT, US, "6666")
        data, addr = srv.recvfrom(100)
        assert data == b"from the kernel" and addr[0] == KERNEL
        srv.sendto(data.upper(), addr)
        assert finish(proc).strip() == "FROM THE KERNEL"
    # The kernel to a closed synack port: our ICMP makes its connected socket refuse.
    assert finish(kernel_run(lab, CLIENT, US, "6667")).strip() == f"error {errno.ECONNREFUSED}"
    # synack to a closed kernel port: the kernel's ICMP makes ours refuse.
    with udp(host) as cli:
        cli.connect((KERNEL, 6668))
        cli.send(b"x")
        with pytest.raises(ConnectionRefusedError):
            cli.recv(10)


# ---------------------------------------------------------------- the host, sans I/O
def test_port_unreachables_are_rate_limited_as_linux() -> None:
    from synack.stack import Stack
    from synack.wire.icmp import CODE_PORT_UNREACH, DEST_UNREACH, parse_icmp

    stack = Stack(US, seed=1)
    probe = build_udp_packet(KERNEL, US, UdpDatagram(4000, 9, b"?"))

    def unreachables(n: int, now: int) -> int:
        for _ in range(n):
            stack.receive(probe, now=now)
        out = stack.transmit(now=now)
        for p in out:
            ip, body = parse_ipv4(p)
            msg = parse_icmp(body)
            assert (ip.dst, msg.type, msg.code) == (KERNEL, DEST_UNREACH, CODE_PORT_UNREACH)
            assert msg.payload[:len(probe)] == probe[:28]   # IP header + 8 bytes of UDP
        return len(out)

    assert unreachables(60, 0) == 50                 # the burst
    assert unreachables(60, 10_000) == 10            # 10 ms later: 1000/s refilled ten
    assert unreachables(60, 2_000_000) == 50         # never more than the burst
    assert stack.cfg.mib["UdpNoPorts"] == 180


def test_delivery_prefers_connected_then_specific_then_wildcard() -> None:
    from synack.stack import Stack

    stack = Stack(US, seed=1)
    udp = stack.udp
    wild, specific, connected = udp.socket(), udp.socket(), udp.socket()
    for fd in (wild, specific, connected):
        udp.setsockopt(fd, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    udp.bind(wild, ("0.0.0.0", 53))
    udp.bind(specific, (US, 53))
    udp.bind(connected, (US, 53))
    udp.connect(connected, (KERNEL, 1111))

    def deliver(sport: int) -> list[int]:
        stack.receive(build_udp_packet(KERNEL, US, UdpDatagram(sport, 53, b"d")), now=0)
        return [fd for fd in (wild, specific, connected)
                if udp.owns(fd) and udp.recvfrom(fd, 10)]

    assert deliver(1111) == [connected]
    assert deliver(2222) == [specific]
    udp.close(specific)
    assert deliver(2222) == [wild]
    assert stack.take_touched() == {connected, wild}   # a closed one is forgotten


# ---------------------------------------------------------------- fragments
@given(st.binary(min_size=1, max_size=9000), st.integers(68, 1500), st.randoms())
def test_fragments_in_any_order_reassemble(payload: bytes, mtu: int, rnd: object) -> None:
    from collections import Counter

    from synack.host.frag import Reassembler
    from synack.wire.frag import fragment

    frags = fragment(KERNEL, US, PROTO_UDP, payload, mtu=mtu, ident=77)
    assert all(len(f) <= mtu for f in frags)
    rnd.shuffle(frags)  # type: ignore[attr-defined]
    r = Reassembler(Counter())
    got = [r.add(f, now=0) for f in frags]
    whole = got[-1]
    assert all(g is None for g in got[:-1]) or len(frags) == 1
    if len(frags) == 1:
        return                      # a lone piece with MF clear and offset 0 is not a fragment
    assert whole is not None
    ip, body = parse_ipv4(whole)
    assert (ip.src, ip.dst, ip.proto, ip.ident) == (KERNEL, US, PROTO_UDP, 77)
    assert (ip.more_fragments, ip.frag_offset, bytes(body)) == (False, 0, payload)
    assert r.held == 0 and not r.queues


def test_overlaps_duplicates_and_timeouts_as_linux() -> None:
    from collections import Counter

    from synack.host.frag import IPFRAG_TIME_US, Reassembler
    from synack.wire.frag import fragment

    a, b, c = fragment(KERNEL, US, PROTO_UDP, (bytes(range(256)) * 8)[:2000], mtu=700, ident=1)
    stats: Counter[str] = Counter()
    r = Reassembler(stats)
    assert r.add(a, now=0) is None and r.add(a, now=0) is None      # a duplicate: ignored
    assert stats["frag: duplicate"] == 1
    assert r.add(b, now=0) is None
    assert r.add(c, now=0) is not None
    # Overlap: a fragment covering part of one already held discards the datagram.
    a2, b2, c2 = fragment(KERNEL, US, PROTO_UDP, bytes(2000), mtu=700, ident=2)
    shifted = bytearray(b2)
    shifted[6:8] = struct.pack("!H", 0x2000 | (680 // 8 - 1))       # 8 bytes too early
    shifted[10:12] = b"\0\0"
    shifted[10:12] = struct.pack("!H", internet_checksum(bytes(shifted[:20])))
    assert r.add(a2, now=0) is None and r.add(bytes(shifted), now=0) is None
    assert stats["frag: dropped overlapping datagram"] == 1 and not r.queues
    assert r.add(b2, now=0) is None and r.add(c2, now=0) is None   # a new queue, no head
    # A queue not finished within ipfrag_time is dropped when the next fragment comes.
    assert r.add(a, now=IPFRAG_TIME_US) is None
    assert stats["frag: dropped reassembly timeout"] == 1 and len(r.queues) == 1


def test_large_datagrams_over_a_loopback_host(host: Host) -> None:
    with udp(host) as srv, udp(host) as cli:
        srv.bind((IP, 5360))
        for size in (1473, 8000, 65507):
            data = os.urandom(size)
            cli.sendto(data, (IP, 5360))
            assert srv.recvfrom(65535) == (data, (IP, cli.getsockname()[1]))
        with pytest.raises(OSError) as exc:
            cli.sendto(bytes(65508), (IP, 5360))
        assert exc.value.errno == errno.EMSGSIZE
        assert host.stack.stats["frag: datagrams reassembled"] == 3
