"""ICMPv4 codec (RFC 792, RFC 1191): round trips, exact bytes, malformed input."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synack.wire import ACK, ParseError, TcpSegment, build_tcp_packet, internet_checksum
from synack.wire.icmp import (
    CODE_FRAG_NEEDED,
    CODE_PORT_UNREACH,
    DEST_UNREACH,
    ECHO_REPLY,
    ECHO_REQUEST,
    TIME_EXCEEDED,
    IcmpMessage,
    build_icmp_packet,
    echo,
    encode_icmp,
    error_for,
    parse_icmp,
)
from synack.wire.ipv4 import PROTO_ICMP, parse_ipv4

u16 = st.integers(0, 0xFFFF)
addresses = st.integers(0, 2**32 - 1).map(lambda a: socket.inet_ntoa(a.to_bytes(4, "big")))


@st.composite
def originals(draw: st.DrawFn) -> bytes:
    """An embedded datagram: an IPv4 header (maybe with options) and 8+ payload bytes."""
    opts = draw(st.binary(max_size=40).map(lambda b: b[: len(b) - len(b) % 4]))
    hlen = 20 + len(opts)
    header = struct.pack("!BBHHHBBHII", 0x40 | hlen // 4, draw(st.integers(0, 255)),
                         draw(u16), draw(u16), draw(u16), draw(st.integers(0, 255)),
                         draw(st.integers(0, 255)), draw(u16),
                         draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)))
    return header + opts + draw(st.binary(min_size=8, max_size=64))


@given(st.sampled_from([ECHO_REQUEST, ECHO_REPLY]), st.integers(0, 255), u16, u16,
       st.binary(max_size=200))
def test_echo_round_trip(type_: int, code: int, ident: int, seq: int, data: bytes) -> None:
    msg = IcmpMessage(type_, code, ident, seq, 0, data)
    wire = encode_icmp(msg)
    assert internet_checksum(wire) == 0
    back = parse_icmp(wire)
    assert back == msg and not back.is_error
    assert encode_icmp(back) == wire


@given(st.one_of(st.tuples(st.just(DEST_UNREACH), st.integers(0, 15)),
                 st.tuples(st.just(TIME_EXCEEDED), st.integers(0, 1))), u16, originals())
def test_error_round_trip(tc: tuple[int, int], mtu: int, orig: bytes) -> None:
    type_, code = tc
    mtu = mtu if (type_, code) == (DEST_UNREACH, CODE_FRAG_NEEDED) else 0
    msg = IcmpMessage(type_, code, mtu=mtu, payload=orig)
    wire = encode_icmp(msg)
    back = parse_icmp(wire)
    assert back == msg and back.is_error
    hlen = (orig[0] & 0x0F) * 4
    assert back.original.header_length == hlen
    assert back.original.total_length == struct.unpack_from("!H", orig, 2)[0]
    assert back.original_data == orig[hlen:hlen + 8]
    assert encode_icmp(back) == wire


def test_echo_request_exact_bytes() -> None:
    wire = encode_icmp(echo(0x1234, 7, b"hi"))
    # type 8, code 0, checksum, ident 0x1234, seq 7, "hi"
    assert wire[:2] == b"\x08\x00" and wire[4:] == b"\x12\x34\x00\x07hi"
    assert internet_checksum(wire) == 0
    reply = parse_icmp(encode_icmp(echo(0x1234, 7, b"hi", reply=True)))
    assert (reply.type, reply.ident, reply.seq, reply.payload) == (ECHO_REPLY, 0x1234, 7, b"hi")


def test_frag_needed_carries_next_hop_mtu_and_the_tcp_header() -> None:
    seg = TcpSegment(src_port=40000, dst_port=80, seq=0xDEADBEEF, ack=5, flags=ACK,
                     payload=b"x" * 1000)
    pkt = build_tcp_packet("192.0.2.2", "198.51.100.9", seg)
    msg = error_for(pkt, DEST_UNREACH, CODE_FRAG_NEEDED, mtu=1280)
    wire = encode_icmp(msg)
    # RFC 1191: unused (16 bits) then the next-hop MTU (16 bits).
    assert wire[4:8] == b"\x00\x00\x05\x00"
    back = parse_icmp(wire)
    assert back.mtu == 1280
    assert back.original.src == "192.0.2.2" and back.original.dst == "198.51.100.9"
    assert back.original.total_length == len(pkt)
    sport, dport, seq = struct.unpack("!HHI", back.original_data)
    assert (sport, dport, seq) == (40000, 80, 0xDEADBEEF)


def test_mtu_is_only_read_for_frag_needed() -> None:
    pkt = build_tcp_packet("192.0.2.2", "192.0.2.1", TcpSegment(1, 2, 3))
    wire = bytearray(encode_icmp(error_for(pkt, DEST_UNREACH, CODE_PORT_UNREACH)))
    wire[6:8] = b"\x05\xdc"
    wire[2:4] = b"\0\0"
    struct.pack_into("!H", wire, 2, internet_checksum(wire))
    assert parse_icmp(bytes(wire)).mtu == 0


def test_build_icmp_packet() -> None:
    pkt = build_icmp_packet("192.0.2.2", "192.0.2.1", echo(1, 2, b"abc", reply=True), ttl=64)
    ip, payload = parse_ipv4(pkt)
    assert ip.proto == PROTO_ICMP and not ip.dont_fragment and ip.ttl == 64
    assert parse_icmp(payload) == echo(1, 2, b"abc", reply=True)


@pytest.mark.parametrize("data, field, kind", [
    (b"", "ICMP header", "truncated"),
    (b"\x08\x00\x00", "ICMP header", "truncated"),
])
def test_truncated(data: bytes, field: str, kind: str) -> None:
    with pytest.raises(ParseError) as e:
        parse_icmp(data)
    assert (e.value.field, e.value.kind) == (field, kind)


def _fix(wire: bytes | bytearray) -> bytes:
    w = bytearray(wire)
    w[2:4] = b"\0\0"
    struct.pack_into("!H", w, 2, internet_checksum(w))
    return bytes(w)


def test_bad_checksum_names_the_field() -> None:
    wire = bytearray(encode_icmp(echo(1, 1, b"data")))
    wire[-1] ^= 1
    with pytest.raises(ParseError) as e:
        parse_icmp(bytes(wire))
    assert (e.value.field, e.value.kind) == ("ICMP checksum", "bad checksum")
    assert parse_icmp(bytes(wire), verify_checksum=False).payload == b"dat`"


def test_unsupported_type_and_code() -> None:
    with pytest.raises(ParseError) as e:
        parse_icmp(_fix(b"\x05\x00\x00\x00" + bytes(4) + bytes(28)))   # redirect
    assert (e.value.field, e.value.kind) == ("ICMP type", "unsupported")
    with pytest.raises(ParseError) as e:
        parse_icmp(_fix(b"\x03\x10\x00\x00" + bytes(4) + bytes(28)))   # code 16
    assert (e.value.field, e.value.kind) == ("ICMP code", "unsupported")


def test_error_without_enough_original_datagram() -> None:
    pkt = build_tcp_packet("192.0.2.2", "192.0.2.1", TcpSegment(1, 2, 3))
    with pytest.raises(ParseError) as e:
        parse_icmp(_fix(b"\x03\x03" + bytes(6) + pkt[:27]))   # header + 7 bytes
    assert (e.value.field, e.value.kind) == ("ICMP original datagram", "truncated")
    bad = bytearray(pkt[:28])
    bad[0] = 0x65
    with pytest.raises(ParseError) as e:
        parse_icmp(_fix(b"\x0b\x00" + bytes(6) + bad))
    assert e.value.kind == "bad version"
    bad[0] = 0x44
    with pytest.raises(ParseError) as e:
        parse_icmp(_fix(b"\x0b\x00" + bytes(6) + bad))
    assert e.value.kind == "bad header length"


@given(st.binary(max_size=80))
def test_garbage_raises_only_parse_error(data: bytes) -> None:
    for blob in (data, _fix(data) if len(data) >= 4 else data):
        try:
            msg = parse_icmp(blob)
        except ParseError:
            continue
        if msg.is_error:
            assert len(msg.original_data) == 8


@given(addresses, addresses, u16, u16, st.binary(max_size=100))
def test_packet_round_trip(src: str, dst: str, ident: int, seq: int, data: bytes) -> None:
    ip, payload = parse_ipv4(build_icmp_packet(src, dst, echo(ident, seq, data)))
    assert (ip.src, ip.dst) == (src, dst)
    assert parse_icmp(payload) == echo(ident, seq, data)
