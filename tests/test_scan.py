"""The SYN scanner against a synack stack in the simulator: exact open/closed/filtered sets."""

from __future__ import annotations

import itertools
import socket

import pytest

from synack.scan import ScanHost, SynScanner, parse_ports, service_name
from synack.sim import LinkParams, Network
from synack.stack import Stack
from synack.wire.errors import ParseError
from synack.wire.icmp import DEST_UNREACH, build_icmp_packet, error_for
from synack.wire.ipv4 import parse_tcp_packet
from synack.wire.tcp import ACK, RST, SYN

SCANNER, TARGET = "192.0.2.1", "192.0.2.2"
MS = 1000
OPEN = {22, 80, 443, 8080}
DROPPED = {135, 139, 445}


def target_stack() -> Stack:
    st = Stack(TARGET, seed=7, name="target")
    for port in OPEN:
        fd = st.socket()
        st.bind(fd, ("0.0.0.0", port))
        st.listen(fd)
    return st


def scan(ports: list[int], *, dropped: set[int] = DROPPED, link: LinkParams | None = None,
         **kw: object) -> tuple[Network, SynScanner, Stack]:
    net = Network(3)
    target = target_stack()
    scanner = SynScanner(SCANNER, TARGET, ports, seed=5, **kw)
    host = ScanHost(Stack(SCANNER, seed=1), scanner)
    net.add_host(SCANNER, host)
    net.add_host(TARGET, target)
    net.add_link(SCANNER, TARGET, link or LinkParams(delay_us=2 * MS))

    def firewall(packet: bytes) -> bool:
        try:
            ip, seg = parse_tcp_packet(packet, verify_checksum=False)
        except ParseError:
            return False
        return ip.dst == TARGET and seg.dst_port in dropped

    net.add_drop_rule(firewall)
    net.run(until=120_000 * MS, stop=lambda: scanner.done)
    assert scanner.done
    return net, scanner, target


def states(scanner: SynScanner, state: str) -> set[int]:
    return {p for p, r in scanner.results.items() if r.state == state}


def test_exact_open_closed_filtered_sets() -> None:
    ports = parse_ports("1-1024,8080")
    net, scanner, target = scan(ports)
    assert states(scanner, "open") == OPEN
    assert states(scanner, "filtered") == DROPPED
    assert states(scanner, "closed") == set(ports) - OPEN - DROPPED
    assert {r.reason for r in scanner.results.values() if r.state == "closed"} == {"reset"}
    # Every SYN,ACK was answered with a RST: nothing is left half-open on the target.
    net.run(until=net.now + 100 * MS)
    assert not target.conns and all(not lst.syn_queue and not lst.accept_queue
                                    for lst in target.listeners.values())
    assert target.stats["segments in"] >= len(ports)


def test_open_port_is_torn_down_with_rst_at_the_synacks_ack() -> None:
    net, scanner, _ = scan([80, 81], dropped=set())
    pkts = [parse_tcp_packet(r.data) for r in net.records]
    synack = next(seg for ip, seg in pkts if ip.src == TARGET and seg.flags == SYN | ACK)
    rst = next(seg for ip, seg in pkts if ip.src == SCANNER and seg.flags & RST)
    assert rst.flags == RST and rst.seq == synack.ack and rst.dst_port == 80
    probe = next(seg for ip, seg in pkts if ip.src == SCANNER and seg.dst_port == 80)
    assert probe.flags == SYN and probe.mss == 1460 and probe.window == 1024
    assert synack.ack == (probe.seq + 1) & 0xFFFFFFFF
    assert scanner.results[81].state == "closed"


def test_filtered_ports_are_retried_then_given_up() -> None:
    net, scanner, _ = scan([22, 135], retries=2)
    syns_135 = [r for r in net.records
                if parse_tcp_packet(r.data)[1].dst_port == 135]
    assert len(syns_135) == 3                     # the probe and two retries
    assert scanner.results[135].reason == "no-response"
    # The timeout followed the measured RTT (4 ms), not nmap's 1 s initial value.
    assert scanner.timeout_us == 100 * MS
    assert net.now < 1_000 * MS


def test_parallelism_and_rate_are_bounded() -> None:
    ports = list(range(1000, 1100))
    in_flight: list[int] = []
    net = Network(1)
    scanner = SynScanner(SCANNER, TARGET, ports, seed=1, max_parallel=7, rate=2000)
    host = ScanHost(Stack(SCANNER, seed=1), scanner)
    net.add_host(SCANNER, host)
    net.add_host(TARGET, target_stack())
    net.add_link(SCANNER, TARGET, LinkParams(delay_us=5 * MS))
    sent_at: list[int] = []

    def watch(packet: bytes) -> bool:
        in_flight.append(len(scanner._flight))
        if parse_tcp_packet(packet)[1].flags == SYN:
            sent_at.append(net.now)
        return False

    net.add_drop_rule(watch)
    net.run(until=60_000 * MS, stop=lambda: scanner.done)
    assert scanner.done and states(scanner, "closed") == set(ports)
    assert max(in_flight) <= 7
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert min(gaps) >= 500                       # 2000 probes/s: 500 us apart at least


def test_icmp_unreachable_means_filtered() -> None:
    class Router:
        """Answers every SYN to port 23 with ICMP administratively prohibited."""

        def __init__(self, stack: Stack) -> None:
            self.stack, self.out = stack, []

        def receive(self, packet: bytes, *, now: int) -> None:
            ip, seg = parse_tcp_packet(packet)
            if seg.dst_port == 23:
                msg = error_for(packet, DEST_UNREACH, 13)
                self.out.append(build_icmp_packet(TARGET, ip.src, msg))
            else:
                self.stack.receive(packet, now=now)

        def transmit(self, *, now: int) -> list[bytes]:
            out, self.out = self.out + self.stack.transmit(now=now), []
            return out

        def next_deadline(self) -> int | None:
            return self.stack.next_deadline()

        def tick(self, *, now: int) -> None:
            self.stack.tick(now=now)

    net = Network(1)
    scanner = SynScanner(SCANNER, TARGET, [22, 23, 24], seed=1)
    net.add_host(SCANNER, ScanHost(Stack(SCANNER, seed=1), scanner))
    net.add_host(TARGET, Router(target_stack()))
    net.add_link(SCANNER, TARGET)
    net.run(until=10_000 * MS, stop=lambda: scanner.done)
    assert [scanner.results[p].state for p in (22, 23, 24)] == ["open", "filtered", "closed"]
    assert scanner.results[23].reason == "admin-prohibited"
    assert net.now < 100 * MS                     # no waiting for a timeout


def test_report_looks_like_nmap() -> None:
    ports = parse_ports("1-1024,8080")
    _, scanner, _ = scan(ports)
    lines = scanner.report().splitlines()
    assert lines[0] == f"synack scan report for {TARGET}"
    assert lines[1].startswith("Host is up (0.00") and lines[1].endswith("s latency).")
    assert lines[2] == "Not shown: 1018 closed tcp ports (reset)"
    assert lines[3].split() == ["PORT", "STATE", "SERVICE"]
    table = [ln.split() for ln in lines[4:]]
    assert table == [["22/tcp", "open", service_name(22)],
                     ["80/tcp", "open", service_name(80)],
                     ["135/tcp", "filtered", service_name(135)],
                     ["139/tcp", "filtered", service_name(139)],
                     ["443/tcp", "open", service_name(443)],
                     ["445/tcp", "filtered", service_name(445)],
                     ["8080/tcp", "open", service_name(8080)]]
    # nmap's columns: each as wide as its longest entry plus one space.
    assert lines[3].index("STATE") == len("8080/tcp ") and lines[3].index("SERVICE") == len(
        "8080/tcp filtered ")


def test_stack_keeps_working_beside_the_scanner() -> None:
    """Segments that are not replies to the probe port reach the stack untouched."""
    net = Network(1)
    scanner = SynScanner(SCANNER, TARGET, [22], seed=1, src_port=50000)
    me = Stack(SCANNER, seed=1)
    net.add_host(SCANNER, ScanHost(me, scanner))
    net.add_host(TARGET, target_stack())
    net.add_link(SCANNER, TARGET)
    fd = me.socket()
    net.call_at(0, lambda now: me.connect_ex(fd, (TARGET, 80), now=now))
    net.run(until=1_000 * MS, stop=lambda: scanner.done and me.state(fd).name == "ESTABLISHED")
    assert scanner.results[22].state == "open"
    assert me.state(fd).name == "ESTABLISHED"


@pytest.mark.parametrize("spec, ports", [
    ("22", [22]), ("1-3", [1, 2, 3]), ("80,22,80", [22, 80]), ("65534-", [65534, 65535]),
])
def test_parse_ports(spec: str, ports: list[int]) -> None:
    assert parse_ports(spec) == ports


@pytest.mark.parametrize("spec", ["x", "5-1", "70000", "1-2-3", ""])
def test_parse_ports_rejects(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_ports(spec)


# ----------------------------------------------------------------------------- IPv6
SCANNER6, TARGET6, ROUTER6 = "2001:db8::1", "2001:db8::2", "2001:db8:1::1"


class _Router:
    """A host that only sends what the test queues (ICMPv6 errors)."""

    def __init__(self) -> None:
        self.out: list[bytes] = []

    def receive(self, packet: bytes, *, now: int) -> None:
        pass

    def transmit(self, *, now: int) -> list[bytes]:
        out, self.out = self.out, []
        return out

    def next_deadline(self) -> int | None:
        return None

    def tick(self, *, now: int) -> None:
        pass


def test_ipv6_scan_finds_open_closed_and_filtered() -> None:
    """Issue 14: ``scan`` of an IPv6 target (nmap -6 -sS): SYN,ACK open, RST closed,
    ICMPv6 destination unreachable filtered (reason as nmap names it)."""
    from synack.wire.icmp6 import build_icmp6_packet, error_for6
    from synack.wire.ipv6 import parse_tcp6_packet

    net = Network(3)
    target = Stack(TARGET, seed=7, name="target", addr6=TARGET6)
    for port in (22, 80):
        fd = target.socket(socket.AF_INET6)
        target.bind(fd, ("::", port))
        target.listen(fd)
    scanner = SynScanner(SCANNER6, TARGET6, [21, 22, 80, 81, 135, 445], seed=5)
    host = ScanHost(Stack(SCANNER, seed=1, addr6=SCANNER6), scanner)
    net.add_host(SCANNER6, host)
    net.add_host(TARGET6, target)
    net.add_link(SCANNER6, TARGET6, LinkParams(delay_us=2 * MS))
    router = _Router()
    net.add_host(ROUTER6, router)
    net.add_link(ROUTER6, SCANNER6, LinkParams(delay_us=1 * MS))

    def firewall(packet: bytes) -> bool:
        if packet[0] >> 4 != 6 or packet[6] != 6:
            return False
        ip, seg = parse_tcp6_packet(packet, verify_checksum=False)
        if ip.dst == TARGET6 and seg.dst_port == 135:
            # A router on the path answers: administratively prohibited.
            router.out.append(build_icmp6_packet(ROUTER6, SCANNER6, error_for6(packet, 1, 1)))
        return ip.dst == TARGET6 and seg.dst_port in (135, 445)

    net.add_drop_rule(firewall)
    net.run(until=120_000 * MS, stop=lambda: scanner.done)
    assert scanner.done
    assert states(scanner, "open") == {22, 80}
    assert states(scanner, "closed") == {21, 81}
    assert states(scanner, "filtered") == {135, 445}
    assert scanner.results[135].reason == "admin-prohibited"
    assert scanner.results[445].reason == "no-response"
    assert "synack scan report for 2001:db8::2" in scanner.report()
    # The open ports' half-open connections were torn down with RST: nothing left behind.
    assert not target.conns and all(not lst.syn_queue for lst in target.listeners.values())
