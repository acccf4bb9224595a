"""The ARP resolver as transcripts: frames in, the exact frames out, in simulated time."""

from __future__ import annotations

from synack.link.arp import ArpResolver, NeighState
from synack.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket, encode_arp, parse_arp
from synack.wire.ethernet import BROADCAST, ETHERTYPE_ARP, ETHERTYPE_IPV4, parse_ethernet

US_MAC, US_IP = "02:00:00:00:00:02", "192.0.2.2"
PEER_MAC, PEER_IP = "2a:00:00:00:00:01", "192.0.2.1"
OTHER_MAC, OTHER_IP = "2a:00:00:00:00:03", "192.0.2.3"
ZERO = "00:00:00:00:00:00"
S = 1_000_000


def resolver() -> ArpResolver:
    return ArpResolver(US_MAC, US_IP)


def sent(r: ArpResolver) -> list[tuple[str, int, object]]:
    """What the resolver put on the wire: (dst MAC, EtherType, ArpPacket or payload bytes)."""
    out = []
    for frame, _gso in r.transmit():
        eth, payload = parse_ethernet(frame)
        assert eth.src == US_MAC
        body = parse_arp(payload) if eth.ethertype == ETHERTYPE_ARP else bytes(payload)
        out.append((eth.dst, eth.ethertype, body))
    return out


def who_has(target: str, *, sender_ip: str = PEER_IP, sender_mac: str = PEER_MAC) -> bytes:
    return encode_arp(ArpPacket(OP_REQUEST, sender_mac, sender_ip, ZERO, target))


def is_at(ip: str, mac: str, *, to_ip: str = US_IP) -> bytes:
    return encode_arp(ArpPacket(OP_REPLY, mac, ip, US_MAC, to_ip))


def test_answers_request_for_our_address_and_learns_the_asker() -> None:
    r = resolver()
    r.receive(who_has(US_IP), now=0)
    assert sent(r) == [(PEER_MAC, ETHERTYPE_ARP,
                        ArpPacket(OP_REPLY, US_MAC, US_IP, PEER_MAC, PEER_IP))]
    assert r.lookup(PEER_IP, now=0) == PEER_MAC
    assert r.output(b"ip", PEER_IP, now=1) == bytes.fromhex("2a0000000001020000000002") + b"\x08\x00"
    assert sent(r) == []


def test_ignores_request_for_another_address_and_does_not_learn() -> None:
    r = resolver()
    r.receive(who_has(OTHER_IP), now=0)
    assert sent(r) == [] and r.lookup(PEER_IP, now=0) is None


def test_request_for_another_updates_an_existing_entry() -> None:
    r = resolver()
    r.receive(who_has(US_IP), now=0)
    r.transmit()
    r.receive(who_has(OTHER_IP, sender_mac="2a:00:00:00:00:99"), now=5)   # peer changed NIC
    assert sent(r) == [] and r.lookup(PEER_IP, now=5) == "2a:00:00:00:00:99"


def test_unresolved_next_hop_queues_requests_then_releases_in_order() -> None:
    r = resolver()
    assert r.output(b"first", PEER_IP, now=0, gso_size=1448) is None
    assert r.output(b"second", PEER_IP, now=10) is None
    # One broadcast request, not one per packet.
    assert sent(r) == [(BROADCAST, ETHERTYPE_ARP,
                        ArpPacket(OP_REQUEST, US_MAC, US_IP, ZERO, PEER_IP))]
    assert r.state(PEER_IP, now=10) is NeighState.INCOMPLETE
    assert r.next_deadline() == S
    r.receive(is_at(PEER_IP, PEER_MAC), now=300)
    frames = r.transmit()
    assert [gso for _, gso in frames] == [1448, 0]
    parsed = [parse_ethernet(frame) for frame, _ in frames]
    assert [(eth.dst, eth.ethertype, bytes(p)) for eth, p in parsed] == [
        (PEER_MAC, ETHERTYPE_IPV4, b"first"), (PEER_MAC, ETHERTYPE_IPV4, b"second")]
    assert r.state(PEER_IP, now=300) is NeighState.REACHABLE
    assert r.next_deadline() is None


def test_retries_one_second_apart_then_gives_up_and_drops_the_queue() -> None:
    r = resolver()
    r.output(b"a", PEER_IP, now=0)
    r.output(b"b", PEER_IP, now=0)
    request = (BROADCAST, ETHERTYPE_ARP, ArpPacket(OP_REQUEST, US_MAC, US_IP, ZERO, PEER_IP))
    assert sent(r) == [request]
    r.tick(now=S - 1)                 # not yet due
    assert sent(r) == []
    r.tick(now=S)
    assert sent(r) == [request]
    assert r.next_deadline() == 2 * S
    r.tick(now=2 * S)
    assert sent(r) == [request]       # the third and last try (Linux mcast_solicit 3)
    r.tick(now=3 * S)
    assert sent(r) == [] and r.state(PEER_IP, now=3 * S) is None
    assert r.stats["arp resolution failed"] == 1
    assert r.stats["arp queued packets dropped"] == 2
    assert r.next_deadline() is None
    # A late reply resolves nothing that was dropped; the next packet starts over.
    r.output(b"c", PEER_IP, now=4 * S)
    assert sent(r) == [request]


def test_queue_is_bounded_by_bytes_dropping_the_oldest() -> None:
    r = ArpResolver(US_MAC, US_IP, queue_bytes=10)
    for i in range(5):
        r.output(bytes([65 + i]) * 4, PEER_IP, now=0)
    r.transmit()
    r.receive(is_at(PEER_IP, PEER_MAC), now=1)
    assert [bytes(parse_ethernet(f)[1]) for f, _ in r.transmit()] == [b"DDDD", b"EEEE"]
    assert r.stats["arp queue overflow"] == 3


def test_entry_goes_stale_is_reconfirmed_by_unicast_then_ages_out() -> None:
    r = resolver()
    r.receive(is_at(PEER_IP, PEER_MAC), now=0)   # unsolicited reply to us: learned
    assert r.state(PEER_IP, now=29 * S) is NeighState.REACHABLE
    assert r.state(PEER_IP, now=30 * S) is NeighState.STALE
    header = r.output(b"x", PEER_IP, now=31 * S)
    assert header is not None and header[:6] == bytes.fromhex("2a0000000001")
    probe = (PEER_MAC, ETHERTYPE_ARP, ArpPacket(OP_REQUEST, US_MAC, US_IP, ZERO, PEER_IP))
    assert sent(r) == [probe]
    r.output(b"y", PEER_IP, now=32 * S)
    assert sent(r) == []                          # one probe, not one per packet
    r.receive(is_at(PEER_IP, PEER_MAC), now=32 * S)
    assert r.state(PEER_IP, now=33 * S) is NeighState.REACHABLE
    # Unused and unconfirmed for reachable + stale time: forgotten.
    r.tick(now=32 * S + 90 * S)
    assert r.state(PEER_IP, now=32 * S + 90 * S) is None
    assert r.stats["arp entries aged out"] == 1


def test_gratuitous_and_conflicts_and_garbage() -> None:
    r = resolver()
    r.receive(b"\x00\x01garbage", now=0)
    assert r.stats["arp dropped truncated"] == 1
    r.receive(who_has(US_IP, sender_ip=US_IP, sender_mac=OTHER_MAC), now=0)
    assert r.stats["arp address conflict"] == 1 and sent(r) == []
    r.receive(who_has(US_IP, sender_mac=US_MAC), now=0)          # our own, looped back
    assert sent(r) == []
    # RFC 5227 probe from a host with no address yet: answered, nothing learned.
    r.receive(who_has(US_IP, sender_ip="0.0.0.0", sender_mac=OTHER_MAC), now=0)
    assert sent(r) == [(OTHER_MAC, ETHERTYPE_ARP,
                        ArpPacket(OP_REPLY, US_MAC, US_IP, OTHER_MAC, "0.0.0.0"))]
    assert r.entries == {}


def test_busy_only_while_resolving_or_holding_output() -> None:
    # A link skips the resolver's timers and queues on every batch unless busy().
    r = resolver()
    assert not r.busy() and r.next_deadline() is None
    assert r.output(b"ip", PEER_IP, now=0) is None          # queued: a request goes out
    assert r.busy() and r.next_deadline() == S
    r.receive(is_at(PEER_IP, PEER_MAC), now=10)
    assert r.busy() and r.next_deadline() is None           # resolved; frames to take
    assert [body for _, _, body in sent(r)][-1] == b"ip"
    assert not r.busy()
    r.output(b"ip", OTHER_IP, now=20)                        # never answers
    for t in (20 + S, 20 + 2 * S, 20 + 3 * S):
        r.tick(now=t)
        r.transmit()
    assert r.unreachable() == [b"ip"]
    assert not r.busy() and r.next_deadline() is None
