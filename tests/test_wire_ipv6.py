"""IPv6 headers (RFC 8200), the extension-header walk, and whole IPv6 + TCP packets."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synack.wire import ACK, SYN, ParseError, TcpSegment, encode_tcp
from synack.wire.ipv6 import (
    EXT_DSTOPTS,
    EXT_FRAGMENT,
    EXT_HOPOPTS,
    EXT_ROUTING,
    IPv6Header,
    build_tcp6_packet,
    encode_ipv6,
    parse_ipv6,
    parse_ipv6_route,
    parse_tcp6_packet,
)

SRC, DST = "2001:db8::1", "2001:db8::2"

addresses = st.binary(min_size=16, max_size=16).map(
    lambda b: socket.inet_ntop(socket.AF_INET6, b))
u8 = st.integers(0, 255)
_options_body = st.integers(0, 4).flatmap(lambda n: st.binary(min_size=6 + 8 * n,
                                                              max_size=6 + 8 * n))
extension = st.one_of(
    st.tuples(st.sampled_from([EXT_ROUTING, EXT_DSTOPTS]), _options_body),
    st.tuples(st.just(EXT_FRAGMENT), st.binary(min_size=6, max_size=6)),
)


@st.composite
def headers(draw: st.DrawFn) -> IPv6Header:
    exts = draw(st.lists(extension, max_size=4))
    if draw(st.booleans()):
        exts.insert(0, (EXT_HOPOPTS, draw(_options_body)))
    proto = draw(u8.filter(lambda p: p not in (0, 43, 44, 60)))
    return IPv6Header(
        src=draw(addresses), dst=draw(addresses), proto=proto, hop_limit=draw(u8),
        traffic_class=draw(u8), flow_label=draw(st.integers(0, 0xFFFFF)), extensions=tuple(exts))


def naive_checksum(data: bytes) -> int:
    """RFC 1071 word by word: the oracle for the fast one."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


@settings(max_examples=300)
@given(headers(), st.binary(max_size=300), st.binary(max_size=20))
def test_round_trip(hdr: IPv6Header, payload: bytes, padding: bytes) -> None:
    packet = encode_ipv6(hdr, payload)
    back, body = parse_ipv6(packet + padding)       # link padding is cut off
    assert back == hdr
    assert bytes(body) == payload
    assert back.payload_length == len(packet) - 40 == int.from_bytes(packet[4:6], "big")
    assert back.header_length == len(packet) - len(payload)
    assert packet[6] == hdr.next_header
    src, dst, proto, frag, hops, body2 = parse_ipv6_route(packet)
    assert (src, dst, proto, hops, bytes(body2)) == (hdr.src, hdr.dst, hdr.proto,
                                                       hdr.hop_limit, payload)
    assert (frag == -1) == (hdr.fragment is None)


def test_known_header_fields() -> None:
    # version 6, traffic class 0xb8 (EF), flow label 0x12345, 8 bytes, TCP, hop limit 64
    raw = bytes.fromhex("6b812345" "0008" "06" "40") + socket.inet_pton(
        socket.AF_INET6, SRC) + socket.inet_pton(socket.AF_INET6, DST) + b"abcdefgh"
    hdr, body = parse_ipv6(raw)
    assert (hdr.traffic_class, hdr.flow_label, hdr.proto, hdr.hop_limit) == (0xB8, 0x12345, 6, 64)
    assert (hdr.src, hdr.dst, bytes(body)) == (SRC, DST, b"abcdefgh")
    assert encode_ipv6(hdr, body) == raw


@settings(max_examples=200)
@given(addresses, addresses, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
       st.binary(max_size=200), st.booleans())
def test_tcp_checksum_over_the_ipv6_pseudo_header(
    src: str, dst: str, seq: int, ack: int, payload: bytes, ts: bool
) -> None:
    seg = TcpSegment(src_port=40000, dst_port=80, seq=seq, ack=ack, flags=ACK, window=512,
                     timestamps=(1, 2) if ts else None, payload=payload)
    packet = build_tcp6_packet(src, dst, seg)
    tcp = packet[40:]
    pseudo = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
              + struct.pack("!I3xB", len(tcp), 6))
    assert naive_checksum(pseudo + tcp) == 0
    hdr, back = parse_tcp6_packet(packet)
    assert back == seg and hdr.src == src and hdr.dst == dst
    assert encode_tcp(seg, src, dst) == tcp


def test_bad_tcp_checksum_is_named() -> None:
    packet = bytearray(build_tcp6_packet(SRC, DST, TcpSegment(1, 2, 3, 0, SYN, 100)))
    packet[40 + 16] ^= 0xFF
    with pytest.raises(ParseError) as e:
        parse_tcp6_packet(packet)
    assert e.value.kind == "bad checksum" and e.value.field == "TCP checksum"
    parse_tcp6_packet(packet, verify_checksum=False)


def test_tcp_after_extension_headers() -> None:
    seg = TcpSegment(1, 2, 3, 0, SYN, 100)
    tcp = encode_tcp(seg, SRC, DST)
    hdr = IPv6Header(SRC, DST, extensions=((EXT_HOPOPTS, bytes(6)), (EXT_DSTOPTS, bytes(14)),
                                           (EXT_ROUTING, bytes(6))))
    packet = encode_ipv6(hdr, tcp)
    assert packet[6] == EXT_HOPOPTS and packet[40] == EXT_DSTOPTS and packet[48] == EXT_ROUTING
    assert parse_tcp6_packet(packet) == (hdr, seg)


def test_fragments_are_refused_but_atomic_fragments_pass() -> None:
    seg = TcpSegment(1, 2, 3, 0, SYN, 100)
    tcp = encode_tcp(seg, SRC, DST)
    for word, refused in ((0x0001, True), (0x0008, True), (0x0000, False)):
        frag = (EXT_FRAGMENT, struct.pack("!HI", word, 7))
        packet = encode_ipv6(IPv6Header(SRC, DST, extensions=(frag,)), tcp)
        hdr, _ = parse_ipv6(packet)
        assert hdr.fragment == (word & 0xFFF8, bool(word & 1), 7)
        assert parse_ipv6_route(packet)[3] == word
        if refused:
            with pytest.raises(ParseError, match="IPv6 fragment: unsupported"):
                parse_tcp6_packet(packet)
        else:
            assert parse_tcp6_packet(packet)[1] == seg


def test_hop_by_hop_must_come_first() -> None:
    packet = encode_ipv6(IPv6Header(SRC, DST, extensions=((EXT_DSTOPTS, bytes(6)),)), b"")
    bad = bytearray(packet)
    bad[40] = EXT_HOPOPTS          # destination options followed by hop-by-hop
    bad[4:6] = (16).to_bytes(2, "big")
    bad += bytes(8)
    with pytest.raises(ParseError, match="hop-by-hop"):
        parse_ipv6(bad)


@pytest.mark.parametrize(
    ("mutate", "kind", "field"),
    [
        (lambda p: p[:39], "truncated", "IPv6 header"),
        (lambda p: b"\x40" + p[1:], "bad version", "IPv6 version"),
        (lambda p: p[:4] + b"\x01\x00" + p[6:], "bad total length", "IPv6 payload length"),
        (lambda p: p[:4] + b"\x00\x01" + p[6:7].replace(b"\x06", b"\x3c") + p[7:],
         "truncated", "IPv6 extension header"),
        (lambda p: p[:6] + b"\x2b" + p[7:40] + b"\x06\x02" + p[42:], "truncated", "IPv6 extension header"),
    ],
)
def test_malformed(mutate: object, kind: str, field: str) -> None:
    good = build_tcp6_packet(SRC, DST, TcpSegment(1, 2, 3, 0, SYN, 100))
    bad = mutate(good)  # type: ignore[operator]
    with pytest.raises(ParseError) as e:
        parse_ipv6(bad)
    assert (e.value.kind, e.value.field) == (kind, field)
    with pytest.raises(ParseError):
        parse_ipv6_route(bad)


@settings(max_examples=500)
@given(st.binary(max_size=120))
def test_garbage_raises_only_parse_error(data: bytes) -> None:
    for raw in (data, b"\x60" + data[1:], bytes.fromhex("60000000") + data[4:]):
        for parse in (parse_ipv6, parse_ipv6_route, parse_tcp6_packet):
            try:
                parse(raw)  # type: ignore[operator]
            except ParseError:
                pass


@pytest.mark.parametrize(
    "hdr",
    [
        IPv6Header("192.0.2.1", DST),
        IPv6Header(SRC, DST, flow_label=0x100000),
        IPv6Header(SRC, DST, traffic_class=256),
        IPv6Header(SRC, DST, hop_limit=256),
        IPv6Header(SRC, DST, extensions=((EXT_DSTOPTS, bytes(5)),)),
        IPv6Header(SRC, DST, extensions=((EXT_FRAGMENT, bytes(8)),)),
        IPv6Header(SRC, DST, extensions=((17, bytes(6)),)),
    ],
)
def test_bad_records_raise_value_error(hdr: IPv6Header) -> None:
    with pytest.raises(ValueError):
        encode_ipv6(hdr, b"")


def test_payload_over_65535_is_refused() -> None:
    with pytest.raises(ValueError, match="65535"):
        encode_ipv6(IPv6Header(SRC, DST), bytes(65536))


@settings(max_examples=200)
@given(addresses, addresses, st.integers(0, 2**32 - 1), st.binary(max_size=100),
       st.booleans(), st.integers(0, 0xFFFFF), st.integers(0, 255))
def test_the_timestamp_fast_path_builds_what_the_general_path_builds(
    src: str, dst: str, seq: int, payload: bytes, partial: bool, label: int, tc: int
) -> None:
    from synack.wire.ipv6 import _header_bytes
    from synack.wire.tcp import _encode_tcp_parts

    seg = TcpSegment(1, 2, seq, 9, ACK, 300, timestamps=(seq ^ 5, 7), payload=payload)
    fast = build_tcp6_packet(src, dst, seg, flow_label=label, traffic_class=tc,
                             csum_partial=partial)
    tcp, body = _encode_tcp_parts(seg, src, dst, partial)
    general = _header_bytes(src, dst, 6, 64, tc, label, (), len(tcp) + len(body)) + tcp + body
    assert fast == general
