"""ICMPv6 (RFC 4443) and Neighbor Discovery (RFC 4861) messages."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synack.wire import ParseError, PcapWriter, TcpSegment
from synack.wire.icmp6 import (
    DEST_UNREACH,
    ECHO_REPLY,
    ECHO_REQUEST,
    NEIGHBOR_ADVERT,
    NEIGHBOR_SOLICIT,
    PACKET_TOO_BIG,
    PARAM_PROBLEM,
    ROUTER_ADVERT,
    ROUTER_SOLICIT,
    TIME_EXCEEDED,
    Icmp6Message,
    NdMessage,
    build_icmp6_packet,
    encode_icmp6,
    error_for6,
    multicast_mac,
    parse_icmp6,
    solicited_node,
)
from synack.wire.ipv6 import build_tcp6_packet, parse_ipv6

SRC, DST = "2001:db8::1", "2001:db8::2"
MAC = bytes.fromhex("020000000002")
addresses = st.binary(min_size=16, max_size=16).map(
    lambda b: socket.inet_ntop(socket.AF_INET6, b))
u16 = st.integers(0, 0xFFFF)
INVOKING = build_tcp6_packet(DST, SRC, TcpSegment(80, 40000, 1000, 0, 0x12, 100), flow_label=5)


def _naive(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _pseudo(src: str, dst: str, n: int) -> bytes:
    return (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
            + struct.pack("!I3xB", n, 58))


echoes = st.builds(lambda t, i, s, p: Icmp6Message(t, 0, i, s, payload=p),
                   st.sampled_from([ECHO_REQUEST, ECHO_REPLY]), u16, u16, st.binary(max_size=100))
errors = st.one_of(
    st.builds(lambda c, n: Icmp6Message(DEST_UNREACH, c, payload=INVOKING[:n]),
              st.integers(0, 7), st.integers(48, len(INVOKING))),
    st.builds(lambda m: Icmp6Message(PACKET_TOO_BIG, 0, mtu=m, payload=INVOKING),
              st.integers(0, 2**32 - 1)),
    st.builds(lambda c: Icmp6Message(TIME_EXCEEDED, c, payload=INVOKING), st.integers(0, 1)),
    st.builds(lambda c, p: Icmp6Message(PARAM_PROBLEM, c, pointer=p, payload=INVOKING),
              st.integers(0, 3), st.integers(0, 2**32 - 1)),
)
lladdr = st.one_of(st.just(b""), st.binary(min_size=6, max_size=6))
other_options = st.lists(st.tuples(st.integers(3, 255), st.integers(0, 3).flatmap(
    lambda n: st.binary(min_size=6 + 8 * n, max_size=6 + 8 * n))), max_size=3).map(tuple)
nds = st.one_of(
    st.builds(lambda t, f, s, tl, o: NdMessage(t, "", 0, s, tl, o),
              st.just(ROUTER_SOLICIT), st.none(), lladdr, st.just(b""), other_options),
    st.builds(lambda tgt, s, o: NdMessage(NEIGHBOR_SOLICIT, tgt, 0, s, b"", o),
              addresses, lladdr, other_options),
    st.builds(lambda tgt, f, tl, o: NdMessage(NEIGHBOR_ADVERT, tgt, f, b"", tl, o),
              addresses, st.sampled_from([0, 0x20, 0x40, 0x60, 0xE0]), lladdr, other_options),
    st.builds(lambda h, f, life, r, rt, s: NdMessage(ROUTER_ADVERT, "", f, s, b"", (), h,
                                                     life, r, rt),
              st.integers(0, 255), st.integers(0, 255), u16, st.integers(0, 2**32 - 1),
              st.integers(0, 2**32 - 1), lladdr),
)


@settings(max_examples=300)
@given(st.one_of(echoes, errors, nds), addresses, addresses)
def test_round_trip(msg: Icmp6Message | NdMessage, src: str, dst: str) -> None:
    data = encode_icmp6(msg, src, dst)
    assert _naive(_pseudo(src, dst, len(data)) + data) == 0     # checksum by the book
    back = parse_icmp6(data, src, dst)
    assert back == msg
    assert back.checksum == int.from_bytes(data[2:4], "big")


def test_error_decodes_the_invoking_packet() -> None:
    msg = parse_icmp6(encode_icmp6(error_for6(INVOKING, PACKET_TOO_BIG, 0, mtu=1280), SRC, DST),
                      SRC, DST)
    assert isinstance(msg, Icmp6Message) and msg.mtu == 1280 and msg.is_error
    assert msg.original == parse_ipv6(INVOKING)[0]
    assert msg.original_data == INVOKING[40:48]


def test_error_for_cuts_at_the_minimum_mtu() -> None:
    big = build_tcp6_packet(DST, SRC, TcpSegment(80, 1, 2, 3, 0x10, 1, payload=bytes(3000)))
    packet = build_icmp6_packet(SRC, DST, error_for6(big, TIME_EXCEEDED, 0))
    assert len(packet) == 1280


def test_known_neighbor_solicitation() -> None:
    """An NS for 2001:db8::2 from 2001:db8::1 (MAC 02:00:00:00:00:01) to its
    solicited-node group, bytes as Linux sends them."""
    group = solicited_node(DST)
    assert group == "ff02::1:ff00:2" and multicast_mac(group) == bytes.fromhex("3333ff000002")
    msg = NdMessage(NEIGHBOR_SOLICIT, DST, source_lladdr=bytes.fromhex("020000000001"))
    packet = build_icmp6_packet(SRC, group, msg)
    assert packet[7] == 255                         # hop limit 255 (RFC 4861 7.1.1)
    body = packet[40:]
    assert body[:2] == bytes((135, 0)) and body[4:8] == bytes(4)
    assert body[8:24] == socket.inet_pton(socket.AF_INET6, DST)
    assert body[24:] == bytes.fromhex("0101020000000001")
    assert parse_icmp6(body, SRC, group) == msg


@pytest.mark.parametrize(
    ("data", "kind", "field"),
    [
        (bytes(7), "truncated", "ICMPv6 header"),
        (bytes((143, 0, 0, 0)) + bytes(4), "unsupported", "ICMPv6 type"),       # MLDv2 report
        (bytes((1, 9, 0, 0)) + bytes(4) + INVOKING, "unsupported", "ICMPv6 code"),
        (bytes((1, 0, 0, 0)) + bytes(4) + INVOKING[:30], "truncated", "ICMPv6 invoking packet"),
        (bytes((135, 1, 0, 0)) + bytes(20), "unsupported", "ND code"),
        (bytes((135, 0, 0, 0)) + bytes(12), "truncated", "ND type 135"),
        (bytes((135, 0, 0, 0)) + bytes(20) + bytes((1, 0)) + bytes(6), "bad option length",
         "ND option 1"),
        (bytes((136, 0, 0, 0)) + bytes(20) + bytes((2, 2)) + bytes(6), "truncated",
         "ND option 2"),
    ],
)
def test_malformed(data: bytes, kind: str, field: str) -> None:
    raw = bytearray(data)
    if len(raw) >= 8:
        raw[2:4] = _naive(_pseudo(SRC, DST, len(raw)) + data).to_bytes(2, "big")
    with pytest.raises(ParseError) as e:
        parse_icmp6(raw, SRC, DST)
    assert (e.value.kind, e.value.field) == (kind, field)


def test_bad_checksum() -> None:
    data = bytearray(encode_icmp6(Icmp6Message(ECHO_REQUEST, 0, 1, 2, payload=b"hi"), SRC, DST))
    with pytest.raises(ParseError, match="ICMPv6 checksum: bad checksum"):
        parse_icmp6(data, SRC, "2001:db8::3")          # the pseudo-header counts
    data[9] ^= 1
    with pytest.raises(ParseError, match="bad checksum"):
        parse_icmp6(data, SRC, DST)
    back = parse_icmp6(data, SRC, DST, verify_checksum=False)
    assert isinstance(back, Icmp6Message) and back.payload == b"hh"


@settings(max_examples=500)
@given(st.binary(max_size=100), st.integers(0, 255))
def test_garbage_raises_only_parse_error(data: bytes, type_: int) -> None:
    for raw in (data, bytes((type_, 0, 0, 0)) + data):
        try:
            parse_icmp6(raw, SRC, DST, verify_checksum=False)
        except ParseError:
            pass


@pytest.mark.parametrize(
    "msg",
    [
        Icmp6Message(ECHO_REQUEST, 0, 70000, 1),
        Icmp6Message(PACKET_TOO_BIG, 0, mtu=-1),
        Icmp6Message(300, 0),
        NdMessage(NEIGHBOR_SOLICIT, "192.0.2.1"),
        NdMessage(NEIGHBOR_SOLICIT, DST, options=((3, b"x"),)),
        NdMessage(137, DST),
    ],
)
def test_bad_records_raise_value_error(msg: Icmp6Message | NdMessage) -> None:
    with pytest.raises(ValueError):
        encode_icmp6(msg, SRC, DST)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_decodes_every_kind_without_complaint(tmp_path: Path) -> None:
    """An independent decoder: tshark checks the ICMPv6 and TCP checksums and flags
    malformed packets; every field it shows must be what was encoded."""
    packets = [
        build_icmp6_packet(SRC, DST, Icmp6Message(ECHO_REQUEST, 0, 0x1234, 7, payload=b"ping")),
        build_icmp6_packet(SRC, DST, error_for6(INVOKING, PACKET_TOO_BIG, 0, mtu=1400)),
        build_icmp6_packet(SRC, DST, error_for6(INVOKING, DEST_UNREACH, 4)),
        build_icmp6_packet(SRC, solicited_node(DST),
                           NdMessage(NEIGHBOR_SOLICIT, DST, source_lladdr=MAC)),
        build_icmp6_packet(DST, SRC, NdMessage(NEIGHBOR_ADVERT, DST, 0x60, target_lladdr=MAC)),
        build_icmp6_packet(SRC, "ff02::2", NdMessage(ROUTER_SOLICIT, source_lladdr=MAC)),
        INVOKING,
    ]
    path = tmp_path / "v6.pcap"
    with PcapWriter(path) as w:
        for i, p in enumerate(packets):
            w.write(p, i)
    out = subprocess.run(
        ["tshark", "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-T", "fields",
         "-E", "separator=|", "-e", "icmpv6.type", "-e", "icmpv6.checksum.status",
         "-e", "icmpv6.mtu", "-e", "icmpv6.nd.ns.target_address",
         "-e", "icmpv6.opt.linkaddr", "-e", "tcp.checksum.status", "-e", "_ws.malformed",
         "-e", "_ws.expert.severity"],
        capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    rows = [line.split("|") for line in out.stdout.splitlines()]
    assert len(rows) == len(packets), out.stdout
    for row in rows[:-1]:
        assert row[1] == "1", out.stdout                        # checksum good
    assert rows[-1][5] == "1", out.stdout                       # TCP checksum good
    assert [r[0] for r in rows[:-1]] == ["128", "2", "1", "135", "136", "133"], out.stdout
    assert rows[1][2] == "1400" and rows[3][3] == DST
    assert rows[3][4] == "02:00:00:00:00:02" and rows[4][4] == "02:00:00:00:00:02"
    assert not any(r[6] for r in rows), out.stdout
