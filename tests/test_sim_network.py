"""synack.sim.Network: timing, the event loop, routing, determinism, pcap output."""

from __future__ import annotations

import io
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from synack.sim import LinkParams, Network, PacketRecord

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"


# -- fakes -------------------------------------------------------------------------


def ipv4(src: str, dst: str, payload: bytes = b"", ident: int = 0) -> bytes:
    """A minimal IPv4 packet (protocol 253, experimental; checksum left zero)."""
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0, 64, 253, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )
    return header + payload


def ident_of(packet: bytes) -> int:
    return int.from_bytes(packet[4:6], "big")


class Sink:
    """Records what arrives; sends whatever the test queues with send()."""

    def __init__(self) -> None:
        self.got: list[tuple[int, bytes]] = []
        self.outbox: list[bytes] = []

    def send(self, packet: bytes) -> None:
        self.outbox.append(packet)

    def receive(self, packet: bytes, *, now: int) -> None:
        self.got.append((now, packet))

    def transmit(self, *, now: int) -> list[bytes]:
        out, self.outbox = self.outbox, []
        return out

    def next_deadline(self) -> int | None:
        return None

    def tick(self, *, now: int) -> None:
        raise AssertionError("a sink has no timers")


class Echo(Sink):
    """Answers b"ping..." with b"pong..." back to the sender."""

    def receive(self, packet: bytes, *, now: int) -> None:
        super().receive(packet, now=now)
        if packet[20:24] == b"ping":
            reply = packet[:12] + packet[16:20] + packet[12:16] + b"pong" + packet[24:]
            self.outbox.append(reply)


class Timer(Sink):
    """Sends one packet when its deadline comes."""

    def __init__(self, deadline: int | None, packet: bytes) -> None:
        super().__init__()
        self.deadline = deadline
        self.packet = packet
        self.ticks: list[int] = []

    def next_deadline(self) -> int | None:
        return self.deadline

    def tick(self, *, now: int) -> None:
        self.ticks.append(now)
        self.outbox.append(self.packet)
        self.deadline = None


class Runaway(Sink):
    """Always wants a tick now, and never does anything about it."""

    def next_deadline(self) -> int | None:
        return 7

    def tick(self, *, now: int) -> None:
        pass


def pair(params: LinkParams | None = None, seed: int = 0) -> tuple[Network, Sink, Sink]:
    net = Network(seed)
    a, b = Sink(), Sink()
    net.add_host(A, a)
    net.add_host(B, b)
    net.add_link(A, B, params or LinkParams())
    return net, a, b


def send_at(net: Network, t: int, host: Sink, packet: bytes) -> None:
    net.call_at(t, lambda now: host.send(packet))


# -- timing ------------------------------------------------------------------------


def test_propagation_delay_is_exact() -> None:
    net, a, b = pair(LinkParams(delay_us=1500))
    send_at(net, 0, a, ipv4(A, B, b"x", ident=1))
    send_at(net, 10_000, a, ipv4(A, B, b"y", ident=2))
    assert net.run() == 11_500
    assert [(t, ident_of(p)) for t, p in b.got] == [(1500, 1), (11_500, 2)]
    assert net.records[0] == PacketRecord(
        0, A, B, ipv4(A, B, b"x", ident=1), "delivered", 1500, 0, ipv4(A, B, b"x", ident=1)
    )


def test_echo_round_trip_uses_each_directions_delay() -> None:
    net = Network()
    a, b = Sink(), Echo()
    net.add_host(A, a)
    net.add_host(B, b)
    net.add_link(A, B, LinkParams(delay_us=1000), b_to_a=LinkParams(delay_us=3000))
    send_at(net, 0, a, ipv4(A, B, b"ping"))
    net.run()
    assert [(t, p[20:]) for t, p in a.got] == [(4000, b"pong")]
    assert [(r.src, r.dst, r.sent_us, r.delivered_us) for r in net.records] == [
        (A, B, 0, 1000), (B, A, 1000, 4000),
    ]


def test_serialization_queues_packets_back_to_back() -> None:
    net, a, b = pair(LinkParams(delay_us=500, rate_bps=1_000_000))
    packet = ipv4(A, B, bytes(105))  # 125 bytes = 1000 bits = 1000 us at 1 Mbit/s
    for i in range(3):
        send_at(net, 0, a, packet)
    send_at(net, 10_000, a, packet)  # the link is idle again by then
    net.run()
    assert [t for t, _ in b.got] == [1500, 2500, 3500, 11_500]


def test_serialization_time_rounds_up() -> None:
    net, a, b = pair(LinkParams(delay_us=0, rate_bps=3))
    send_at(net, 0, a, ipv4(A, B))  # 160 bits at 3 bit/s = 53_333_333.3 us
    net.run()
    assert b.got[0][0] == 53_333_334


def test_timer_host_is_ticked_at_its_deadline() -> None:
    net = Network()
    t, b = Timer(5000, ipv4(A, B, b"t")), Sink()
    net.add_host(A, t)
    net.add_host(B, b)
    net.add_link(A, B)
    net.run()
    assert t.ticks == [5000]
    assert [time for time, _ in b.got] == [6000]


def test_deadline_in_the_past_is_served_now() -> None:
    net = Network()
    t, b = Timer(None, ipv4(A, B)), Sink()
    net.add_host(A, t)
    net.add_host(B, b)
    net.add_link(A, B)
    net.run(until=9000)

    def arm(now: int) -> None:
        t.deadline = 3  # long gone
    net.call_at(9500, arm)
    net.run()
    assert t.ticks == [9500]


def test_arrival_is_processed_before_a_timer_due_at_the_same_time() -> None:
    events: list[str] = []

    class Both(Timer):
        def receive(self, packet: bytes, *, now: int) -> None:
            events.append(f"receive@{now}")

        def tick(self, *, now: int) -> None:
            events.append(f"tick@{now}")
            self.deadline = None

    net = Network()
    a, b = Sink(), Both(1000, b"")
    net.add_host(A, a)
    net.add_host(B, b)
    net.add_link(A, B)
    send_at(net, 0, a, ipv4(A, B))
    net.run()
    assert events == ["receive@1000", "tick@1000"]


# -- run() -------------------------------------------------------------------------


def test_run_until_processes_events_at_until_and_stops_there() -> None:
    net, a, b = pair()
    for t in (0, 1000, 2000):
        send_at(net, t, a, ipv4(A, B, ident=t))
    assert net.run(until=2000) == 2000
    assert [t for t, _ in b.got] == [1000, 2000]
    assert net.run(until=2500) == 2500
    assert len(b.got) == 2
    assert net.run() == 3000
    assert [t for t, _ in b.got] == [1000, 2000, 3000]


def test_run_until_lets_time_pass_on_an_idle_network() -> None:
    net, _, _ = pair()
    assert net.run(until=123_456) == 123_456
    assert net.now == 123_456


def test_run_returns_when_nothing_is_pending() -> None:
    net, a, _ = pair()
    assert net.run() == 0
    send_at(net, 40, a, ipv4(A, B))
    assert net.run() == 1040


def test_run_until_in_the_past_is_an_error() -> None:
    net, _, _ = pair()
    net.run(until=100)
    with pytest.raises(ValueError, match="before now"):
        net.run(until=99)


def test_run_stop_is_checked_after_each_step() -> None:
    net, a, b = pair()
    for t in (0, 10, 20):
        send_at(net, t, a, ipv4(A, B))
    assert net.run(stop=lambda: len(b.got) >= 1) == 1000
    assert len(b.got) == 1
    assert net.run(stop=lambda: False) == 1020
    assert len(b.got) == 3


def test_run_stop_already_true_does_nothing() -> None:
    net, a, _ = pair()
    send_at(net, 0, a, ipv4(A, B))
    assert net.run(stop=lambda: True) == 0
    assert net.records == []


def test_run_max_steps_raises() -> None:
    net, a, _ = pair()
    for t in range(10):
        send_at(net, t, a, ipv4(A, B))
    with pytest.raises(RuntimeError, match="5 steps"):
        net.run(max_steps=5)


def test_runaway_deadline_raises_naming_the_host() -> None:
    net = Network()
    net.add_host(C, Runaway())
    with pytest.raises(RuntimeError, match=r"10\.0\.0\.3.*1000 times at 7 us"):
        net.run()
    assert net.now == 7


# -- call_at -----------------------------------------------------------------------


def test_call_at_ties_run_in_scheduling_order() -> None:
    net = Network()
    seen: list[tuple[int, str]] = []
    net.call_at(50, lambda now: seen.append((now, "first")))
    net.call_at(20, lambda now: seen.append((now, "early")))
    net.call_at(50, lambda now: seen.append((now, "second")))
    net.call_later(50, lambda now: seen.append((now, "third")))
    net.run()
    assert seen == [(20, "early"), (50, "first"), (50, "second"), (50, "third")]


def test_call_later_is_relative_to_now() -> None:
    net = Network()
    seen: list[int] = []
    net.call_at(100, lambda now: net.call_later(25, seen.append))
    net.run()
    assert seen == [125]


def test_call_at_in_the_past_is_an_error() -> None:
    net = Network()
    net.run(until=10)
    with pytest.raises(ValueError, match="before now"):
        net.call_at(9, lambda now: None)
    with pytest.raises(ValueError):
        net.call_later(-1, lambda now: None)


def test_an_action_calling_a_host_is_drained_at_once() -> None:
    net, a, _ = pair()
    send_at(net, 777, a, ipv4(A, B))
    net.run()
    assert net.records[0].sent_us == 777


# -- routing -----------------------------------------------------------------------


def test_missing_link_raises_naming_both_addresses() -> None:
    net, a, _ = pair()
    net.add_host(C, Sink())
    send_at(net, 0, a, ipv4(A, C))
    with pytest.raises(LookupError, match=r"10\.0\.0\.1.*10\.0\.0\.3"):
        net.run()


def test_packet_to_an_address_without_a_host_is_no_route() -> None:
    net, a, _ = pair()
    net.add_link(A, C)  # a link, but nobody at C
    send_at(net, 0, a, ipv4(A, C))
    send_at(net, 0, a, ipv4(A, "192.0.2.9"))  # neither link nor host
    net.run()
    assert [(r.dst, r.fate, r.delivered_us) for r in net.records] == [
        (C, "lost", None), ("192.0.2.9", "lost", None),
    ]
    assert net.no_route == 2
    assert net.stats[(A, C)].no_route == 1


def test_packet_shorter_than_an_ip_header_is_an_error() -> None:
    net, a, _ = pair()
    send_at(net, 0, a, b"\x45" * 19)
    with pytest.raises(ValueError, match="19 bytes"):
        net.run()


def test_topology_errors() -> None:
    net, _, _ = pair()
    with pytest.raises(ValueError, match="already has a host"):
        net.add_host(A, Sink())
    with pytest.raises(ValueError, match="already exists"):
        net.add_link(B, A)
    with pytest.raises(ValueError, match="not an IPv4 address"):
        net.add_host("10.0.0.300", Sink())
    with pytest.raises(ValueError, match="two different"):
        net.add_link(A, A)
    with pytest.raises(LookupError):
        net.set_link(A, C, LinkParams())


def test_a_host_with_two_addresses_sends_from_the_one_in_its_source_field() -> None:
    net = Network()
    multi, b, c = Sink(), Sink(), Sink()
    net.add_host(A, multi)
    net.add_host("10.0.1.1", multi)
    net.add_host(B, b)
    net.add_host(C, c)
    net.add_link(A, B, LinkParams(delay_us=100))
    net.add_link("10.0.1.1", C, LinkParams(delay_us=200))
    send_at(net, 0, multi, ipv4(A, B))
    send_at(net, 0, multi, ipv4("10.0.1.1", C))
    net.run()
    assert [t for t, _ in b.got] == [100]
    assert [t for t, _ in c.got] == [200]


def test_set_link_cuts_one_direction_mid_run() -> None:
    net = Network()
    a, b = Sink(), Echo()
    net.add_host(A, a)
    net.add_host(B, b)
    net.add_link(A, B)
    for t in range(0, 10_000, 1000):
        send_at(net, t, a, ipv4(A, B, b"ping", ident=t))
    net.call_at(4500, lambda now: net.set_link(B, A, LinkParams(loss=1.0)))
    net.run()
    assert len(b.got) == 10
    # Replies sent at 1000..4000 were already on their way; later ones are lost.
    assert [t for t, _ in a.got] == [2000, 3000, 4000, 5000]
    assert net.stats[(B, A)].lost == 6


# -- determinism -------------------------------------------------------------------


def lossy_ping_run(seed: int, extra_link: bool = False) -> Network:
    net = Network(seed)
    a, b = Sink(), Echo()
    net.add_host(A, a)
    net.add_host(B, b)
    params = LinkParams(delay_us=2000, rate_bps=10_000_000, loss=0.1, duplicate=0.05,
                        reorder=0.05, corrupt=0.05, jitter_us=700, queue_bytes=3000)
    net.add_link(A, B, params)
    if extra_link:
        c = Echo()
        net.add_host(C, c)
        net.add_link(A, C, params)
    for i in range(300):
        send_at(net, i * 50, a, ipv4(A, B, b"ping" + bytes(i % 200), ident=i))
        if extra_link:
            send_at(net, i * 50, a, ipv4(A, C, b"ping" + bytes(300), ident=i))
    net.run()
    return net


def test_same_seed_gives_identical_records() -> None:
    one, two = lossy_ping_run(42), lossy_ping_run(42)
    assert one.records == two.records
    assert one.stats == two.stats
    one_pcap, two_pcap = io.BytesIO(), io.BytesIO()
    one.write_pcap(one_pcap)
    two.write_pcap(two_pcap)
    assert one_pcap.getvalue() == two_pcap.getvalue()


def test_different_seeds_give_different_records() -> None:
    assert lossy_ping_run(1).records != lossy_ping_run(2).records


def test_adding_a_link_does_not_perturb_the_others() -> None:
    def ab(net: Network) -> list[PacketRecord]:
        return [r for r in net.records if {r.src, r.dst} == {A, B}]

    alone, crowded = lossy_ping_run(7), lossy_ping_run(7, extra_link=True)
    strip = [(r.sent_us, r.data, r.fate, r.delivered_us, r.delivered_data) for r in ab(alone)]
    assert strip == [
        (r.sent_us, r.data, r.fate, r.delivered_us, r.delivered_data) for r in ab(crowded)
    ]


# -- pcap --------------------------------------------------------------------------


def read_pcap(blob: bytes) -> tuple[tuple[int, ...], list[tuple[int, int, int, bytes]]]:
    header = struct.unpack("<IHHiIII", blob[:24])
    packets = []
    offset = 24
    while offset < len(blob):
        sec, usec, incl, orig = struct.unpack("<IIII", blob[offset:offset + 16])
        offset += 16
        packets.append((sec * 1_000_000 + usec, incl, orig, blob[offset:offset + incl]))
        offset += incl
    assert offset == len(blob)
    return header, packets


def test_pcap_sent_has_every_packet_at_its_send_time(tmp_path: Path) -> None:
    net, a, _ = pair(LinkParams(delay_us=2_500_000))
    send_at(net, 1_000_001, a, ipv4(A, B, b"one"))
    net.call_at(1_500_000, lambda now: net.set_link(A, B, LinkParams(loss=1.0)))
    send_at(net, 2_000_000, a, ipv4(A, B, b"two"))  # lost, but captured
    net.run()
    path = tmp_path / "sent.pcap"
    net.write_pcap(path)
    header, packets = read_pcap(path.read_bytes())
    assert header == (0xA1B2C3D4, 2, 4, 0, 0, 262144, 101)
    assert packets == [
        (1_000_001, 23, 23, ipv4(A, B, b"one")),
        (2_000_000, 23, 23, ipv4(A, B, b"two")),
    ]


def test_pcap_delivered_uses_arrival_times_and_received_bytes() -> None:
    net, a, _ = pair(LinkParams(delay_us=1000, corrupt=1.0))
    send_at(net, 0, a, ipv4(A, B, b"abc"))
    send_at(net, 100, a, ipv4(A, B, b"def"))
    net.run(until=1050)  # the second is still in flight
    out = io.BytesIO()
    net.write_pcap(out, include="delivered")
    _, packets = read_pcap(out.getvalue())
    assert [(t, data) for t, _, _, data in packets] == [(1000, net.records[0].delivered_data)]
    assert packets[0][3] != ipv4(A, B, b"abc")


def test_pcap_include_must_be_known() -> None:
    net, _, _ = pair()
    with pytest.raises(ValueError, match="include"):
        net.write_pcap(io.BytesIO(), include="everything")


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_pcap_is_readable_by_tshark(tmp_path: Path) -> None:
    net, a, _ = pair()
    for i in range(3):
        send_at(net, i * 1_500_000, a, ipv4(A, B, b"hello", ident=i))
    net.run()
    path = tmp_path / "sim.pcap"
    net.write_pcap(path)
    out = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_relative",
         "-e", "ip.src", "-e", "ip.dst", "-e", "ip.id"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split("\n")
    rows = [line.split("\t") for line in out if line]
    assert [(float(t), s, d, int(i, 16)) for t, s, d, i in rows] == [
        (0.0, A, B, 0), (1.5, A, B, 1), (3.0, A, B, 2),
    ]
