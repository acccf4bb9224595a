"""Ethernet II and ARP codecs: round trips, known bytes, and ParseError for bad input."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synack.wire import ParseError
from synack.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket, encode_arp, parse_arp
from synack.wire.ethernet import (
    BROADCAST,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    EthernetHeader,
    encode_ethernet,
    header_bytes,
    is_multicast,
    mac_aton,
    mac_ntoa,
    parse_ethernet,
    random_mac,
    split_frame,
)

macs = st.binary(min_size=6, max_size=6).map(mac_ntoa)
ipv4s = st.integers(0, 2**32 - 1).map(lambda n: ".".join(str(b) for b in n.to_bytes(4, "big")))


# ---------------------------------------------------------------- MAC addresses
def test_mac_text_forms() -> None:
    assert mac_aton("02:00:5E:00:53:01") == bytes.fromhex("02005e005301")
    assert mac_aton("02-00-5e-00-53-01") == bytes.fromhex("02005e005301")
    assert mac_ntoa(bytes.fromhex("02005e005301")) == "02:00:5e:00:53:01"


@pytest.mark.parametrize("bad", ["", "02:00:5e:00:53", "02:00:5e:00:53:01:02", "0g:00:00:00:00:00",
                                 "2:00:5e:00:53:01", "+1:00:5e:00:53:01", " 1:00:5e:00:53:01"])
def test_mac_aton_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        mac_aton(bad)


def test_random_mac_is_local_unicast() -> None:
    rng = random.Random(7)
    for _ in range(200):
        raw = mac_aton(random_mac(rng))
        assert raw[0] & 0x02 and not raw[0] & 0x01
    assert is_multicast(BROADCAST) and is_multicast("01:00:5e:00:00:01")
    assert not is_multicast("02:00:00:00:00:01")


# ---------------------------------------------------------------- Ethernet
def test_ethernet_known_bytes() -> None:
    hdr = EthernetHeader(BROADCAST, "02:00:5e:00:53:01", ETHERTYPE_ARP)
    frame = encode_ethernet(hdr, b"xyz")
    assert frame == bytes.fromhex("ffffffffffff02005e0053010806") + b"xyz"
    parsed, payload = parse_ethernet(frame)
    assert parsed == hdr and bytes(payload) == b"xyz"
    assert split_frame(frame)[0] == ETHERTYPE_ARP


@given(macs, macs, st.integers(0x0600, 0xFFFF), st.binary(max_size=100))
def test_ethernet_round_trip(dst: str, src: str, ethertype: int, payload: bytes) -> None:
    hdr = EthernetHeader(dst, src, ethertype)
    frame = encode_ethernet(hdr, payload)
    assert frame[:14] == header_bytes(dst, src, ethertype)
    parsed, rest = parse_ethernet(frame)
    assert parsed == hdr and bytes(rest) == payload
    etype, rest2 = split_frame(frame)
    assert etype == ethertype and bytes(rest2) == payload


@given(st.binary(max_size=13))
def test_ethernet_truncated(frame: bytes) -> None:
    with pytest.raises(ParseError) as err:
        parse_ethernet(frame)
    assert err.value.kind == "truncated" and err.value.field == "Ethernet header"
    with pytest.raises(ParseError):
        split_frame(frame)


def test_ethernet_8023_length_is_unsupported() -> None:
    frame = bytes(12) + (100).to_bytes(2, "big") + bytes(100)
    with pytest.raises(ParseError) as err:
        parse_ethernet(frame)
    assert err.value.kind == "unsupported" and "Ethernet type" in str(err.value)


@given(st.binary(max_size=80))
def test_ethernet_never_raises_anything_else(frame: bytes) -> None:
    try:
        parse_ethernet(frame)
    except ParseError:
        pass


def test_header_bytes_rejects_bad_type() -> None:
    with pytest.raises(ValueError):
        header_bytes(BROADCAST, BROADCAST, 0x10000)


# ---------------------------------------------------------------- ARP
# A real request captured from Linux: who-has 192.0.2.2 tell 192.0.2.1.
REQUEST = bytes.fromhex(
    "0001" "0800" "06" "04" "0001" "2a7e1f4d3c01" "c0000201" "000000000000" "c0000202")


def test_arp_known_request() -> None:
    pkt = parse_arp(REQUEST + bytes(18))  # Ethernet padding after the 28 bytes is ignored
    assert pkt == ArpPacket(OP_REQUEST, "2a:7e:1f:4d:3c:01", "192.0.2.1",
                            "00:00:00:00:00:00", "192.0.2.2")
    assert pkt.is_request and not pkt.is_gratuitous
    assert encode_arp(pkt) == REQUEST


@given(st.sampled_from([OP_REQUEST, OP_REPLY]), macs, ipv4s, macs, ipv4s)
def test_arp_round_trip(op: int, sha: str, spa: str, tha: str, tpa: str) -> None:
    pkt = ArpPacket(op, sha, spa, tha, tpa)
    data = encode_arp(pkt)
    assert len(data) == 28
    assert parse_arp(data) == pkt


@given(st.binary(max_size=27))
def test_arp_truncated(data: bytes) -> None:
    with pytest.raises(ParseError) as err:
        parse_arp(data)
    assert err.value.kind == "truncated"


@pytest.mark.parametrize("offset,value,field", [
    (0, b"\x00\x06", "ARP hardware type"),        # IEEE 802 networks
    (2, b"\x86\xdd", "ARP protocol type"),        # IPv6 over ARP does not exist
    (4, b"\x08", "ARP address lengths"),
    (5, b"\x10", "ARP address lengths"),
    (6, b"\x00\x03", "ARP operation"),            # RARP request
])
def test_arp_unsupported(offset: int, value: bytes, field: str) -> None:
    data = bytearray(REQUEST)
    data[offset:offset + len(value)] = value
    with pytest.raises(ParseError) as err:
        parse_arp(bytes(data))
    assert err.value.kind == "unsupported" and err.value.field == field


@given(st.binary(min_size=28, max_size=60))
def test_arp_never_raises_anything_else(data: bytes) -> None:
    try:
        pkt = parse_arp(data)
    except ParseError:
        return
    assert encode_arp(pkt) == data[:28]


def test_arp_encode_rejects_bad_op() -> None:
    with pytest.raises(ValueError):
        encode_arp(ArpPacket(3, BROADCAST, "192.0.2.1", BROADCAST, "192.0.2.2"))
    assert ETHERTYPE_IPV4 == 0x0800
