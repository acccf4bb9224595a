"""Neighbor Discovery (RFC 4861) on synack's TAP: the resolver, sans I/O, with Linux's timings."""

from __future__ import annotations

from synack.link.arp import NeighState
from synack.link.nd import NdResolver, is_link_chatter
from synack.wire.ethernet import mac_aton
from synack.wire.icmp6 import (
    NA_OVERRIDE,
    NA_SOLICITED,
    NEIGHBOR_ADVERT,
    NEIGHBOR_SOLICIT,
    NdMessage,
    build_icmp6_packet,
    encode_icmp6,
    parse_icmp6,
    solicited_node,
)
from synack.wire.ipv6 import IPv6Header, build_tcp6_packet, encode_ipv6, parse_ipv6
from synack.wire.tcp import SYN, TcpSegment

US, THEM = "2001:db8::2", "2001:db8::1"
OUR_MAC, THEIR_MAC = "02:00:00:00:00:02", "02:00:00:00:00:01"


def nd_of(frame: bytes) -> tuple[str, str, IPv6Header, NdMessage]:
    """(Ethernet destination, ethertype, IPv6 header, message) of a frame the resolver sent."""
    dst = ":".join(f"{b:02x}" for b in frame[:6])
    etype = frame[12:14].hex()
    hdr, body = parse_ipv6(frame[14:])
    msg = parse_icmp6(body, hdr.src, hdr.dst)
    assert isinstance(msg, NdMessage)
    return dst, etype, hdr, msg


def ns_from_them(target: str = US, *, hop_limit: int = 255, src: str = THEM,
                 lladdr: bytes = mac_aton(THEIR_MAC)) -> bytes:
    dst = solicited_node(target)
    msg = NdMessage(NEIGHBOR_SOLICIT, target, source_lladdr=lladdr)
    return encode_ipv6(IPv6Header(src, dst, proto=58, hop_limit=hop_limit),
                       encode_icmp6(msg, src, dst))


def test_a_solicitation_for_us_is_answered_and_teaches_the_sender() -> None:
    r = NdResolver(OUR_MAC, US, dad_transmits=0)
    r.receive(ns_from_them(), now=0)
    (frame, gso), = r.transmit()
    dst, etype, hdr, msg = nd_of(frame)
    assert (dst, etype, gso) == (THEIR_MAC, "86dd", 0)
    assert (hdr.src, hdr.dst, hdr.hop_limit) == (US, THEM, 255)
    assert msg == NdMessage(NEIGHBOR_ADVERT, US, NA_SOLICITED | NA_OVERRIDE,
                            target_lladdr=mac_aton(OUR_MAC))
    assert r.lookup(THEM, now=1) == THEIR_MAC
    assert r.state(THEM, now=1) is NeighState.REACHABLE


def test_solicitations_for_others_or_from_routers_are_not_answered() -> None:
    r = NdResolver(OUR_MAC, US, dad_transmits=0)
    r.receive(ns_from_them("2001:db8::77"), now=0)
    r.receive(ns_from_them(hop_limit=64), now=0)       # came through a router: RFC 4861 7.1.1
    assert r.transmit() == []
    assert r.stats["nd dropped hop limit"] == 1


def test_duplicate_address_detection_gets_an_unsolicited_advert_to_all_nodes() -> None:
    r = NdResolver(OUR_MAC, US, dad_transmits=0)
    r.receive(ns_from_them(src="::", lladdr=b""), now=0)
    (frame, _), = r.transmit()
    dst, _etype, hdr, msg = nd_of(frame)
    assert (dst, hdr.dst, msg.flags) == ("33:33:00:00:00:01", "ff02::1", NA_OVERRIDE)


def test_resolution_solicits_three_times_a_second_apart_then_gives_up() -> None:
    r = NdResolver(OUR_MAC, US, dad_transmits=0)
    packet = build_tcp6_packet(US, THEM, TcpSegment(1, 2, 3, 0, SYN, 100))
    assert r.output(packet, THEM, now=0) is None        # queued
    times = []
    now = 0
    while True:
        for frame, _ in r.transmit():
            dst, _e, hdr, msg = nd_of(frame)
            assert (dst, hdr.dst, msg.target) == ("33:33:ff:00:00:01", "ff02::1:ff00:1", THEM)
            assert msg.source_lladdr == mac_aton(OUR_MAC)
            times.append(now)
        nxt = r.next_deadline()
        if nxt is None:
            break
        now = nxt
        r.tick(now=now)
    assert times == [0, 1_000_000, 2_000_000]          # Linux mcast_solicit 3, retrans 1 s
    assert r.stats["arp queued packets dropped"] == 1 and r.state(THEM, now=now) is None


def test_an_advertisement_releases_the_queue() -> None:
    r = NdResolver(OUR_MAC, US, dad_transmits=0)
    packet = build_tcp6_packet(US, THEM, TcpSegment(1, 2, 3, 0, SYN, 100))
    r.output(packet, THEM, now=0, gso_size=0)
    r.transmit()
    na = NdMessage(NEIGHBOR_ADVERT, THEM, NA_SOLICITED | NA_OVERRIDE,
                   target_lladdr=mac_aton(THEIR_MAC))
    assert r.busy() and r.next_deadline() == 1_000_000     # resolving THEM
    r.receive(build_icmp6_packet(THEM, US, na), now=500)
    assert r.next_deadline() is None
    (frame, _), = r.transmit()
    assert not r.busy()
    assert frame[:6] == mac_aton(THEIR_MAC) and frame[12:14] == b"\x86\xdd"
    assert frame[14:] == packet
    assert r.output(packet, THEM, now=600) == frame[:14]


def test_mld_and_router_chatter_is_swallowed_and_counted() -> None:
    r = NdResolver(OUR_MAC, US, dad_transmits=0)
    mld = encode_ipv6(IPv6Header("fe80::1", "ff02::16", proto=58, hop_limit=1,
                                 extensions=((0, bytes.fromhex("050200000100")),)),
                      bytes((143, 0, 0, 0)) + bytes(4))
    rs = build_icmp6_packet("fe80::1", "ff02::2", NdMessage(133))
    assert is_link_chatter(mld) and is_link_chatter(rs) and is_link_chatter(ns_from_them())
    assert not is_link_chatter(build_tcp6_packet(THEM, US, TcpSegment(1, 2, 3, 0, SYN, 1)))
    for p in (mld, rs):
        r.receive(p, now=0)
    assert r.stats["nd ignored"] == 2 and r.transmit() == []
    r.receive(b"\x60garbage", now=0)
    assert r.stats["nd dropped truncated"] == 1


# ---------------------------------------------------------------- duplicate address detection
def _dad_start(r: NdResolver) -> bytes:
    """Tick a fresh resolver at 0 and return the one frame it sends (its DAD solicitation)."""
    assert r.next_deadline() == 0                       # DAD has not started: due at once
    r.tick(now=0)
    (frame, gso), = r.transmit()
    assert gso == 0
    return frame


def test_dad_first_sends_one_solicitation_from_the_unspecified_address() -> None:
    r = NdResolver(OUR_MAC, US)
    dst, etype, hdr, msg = nd_of(_dad_start(r))
    assert (dst, etype) == ("33:33:ff:00:00:02", "86dd")
    assert (hdr.src, hdr.dst, hdr.hop_limit) == ("::", solicited_node(US), 255)
    assert msg == NdMessage(NEIGHBOR_SOLICIT, US)       # target us, no source link-layer option
    assert r.dad == "tentative" and r.next_deadline() == 1_000_000


def test_dad_without_answer_makes_the_address_usable_and_releases_held_packets() -> None:
    r = NdResolver(OUR_MAC, US)
    assert r.busy()                                     # DAD to run: a link must tick it
    _dad_start(r)
    packet = build_tcp6_packet(US, THEM, TcpSegment(1, 2, 3, 0, SYN, 100))
    assert r.output(packet, THEM, now=10) is None       # held: the address is tentative
    assert r.stats["ipv6 held (dad)"] == 1
    r.receive(ns_from_them(), now=20)                   # not answered while tentative
    assert r.transmit() == []
    r.tick(now=999_999)
    assert r.dad == "tentative" and r.transmit() == []
    r.tick(now=1_000_000)
    assert r.dad == "preferred" and r.stats["ipv6 dad completed"] == 1
    # The held packet now resolves its next hop: a normal solicitation from our address.
    (frame, _), = r.transmit()
    _dst, _e, hdr, msg = nd_of(frame)
    assert (hdr.src, msg.target, msg.source_lladdr) == (US, THEM, mac_aton(OUR_MAC))
    na = NdMessage(NEIGHBOR_ADVERT, THEM, NA_SOLICITED | NA_OVERRIDE,
                   target_lladdr=mac_aton(THEIR_MAC))
    r.receive(build_icmp6_packet(THEM, US, na), now=1_000_500)
    (frame, _), = r.transmit()
    assert frame[:6] == mac_aton(THEIR_MAC) and frame[14:] == packet
    r.receive(ns_from_them(), now=1_000_600)            # and solicitations are answered now
    (frame, _), = r.transmit()
    assert nd_of(frame)[3].type == NEIGHBOR_ADVERT


def test_dad_an_advertisement_for_our_address_means_a_duplicate() -> None:
    r = NdResolver(OUR_MAC, US)
    _dad_start(r)
    packet = build_tcp6_packet(US, THEM, TcpSegment(1, 2, 3, 0, SYN, 100))
    r.output(packet, THEM, now=10)
    na = NdMessage(NEIGHBOR_ADVERT, US, NA_OVERRIDE, target_lladdr=mac_aton(THEIR_MAC))
    r.receive(build_icmp6_packet(US, "ff02::1", na), now=500_000)
    assert r.dad == "failed" and r.stats["ipv6 dad failed"] == 1
    assert r.stats["ipv6 dropped (dad failed)"] == 1    # the held packet
    assert r.next_deadline() is None
    r.tick(now=2_000_000)
    assert r.dad == "failed" and r.transmit() == []
    assert r.output(packet, THEM, now=2_000_000) is None and r.transmit() == []
    assert r.stats["ipv6 dropped (dad failed)"] == 2
    r.receive(ns_from_them(), now=2_000_000)            # the address is not ours to answer for
    assert r.transmit() == []


def test_dad_a_solicitation_from_unspecified_for_our_address_means_a_duplicate() -> None:
    r = NdResolver(OUR_MAC, US)
    _dad_start(r)
    r.receive(ns_from_them(src="2001:db8::99"), now=1)  # resolution by another node: ignored
    assert r.dad == "tentative" and r.transmit() == []
    r.receive(ns_from_them(src="::", lladdr=b""), now=2)   # another node's DAD at the same time
    assert r.dad == "failed" and r.stats["ipv6 dad failed"] == 1 and r.transmit() == []
