"""Where each option sits in a TCP header, the padding after them, and the checksum check."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synack.wire import ParseError, TcpSegment, encode_tcp, parse_tcp
from synack.wire.tcp import ACK, SYN
from synack.wire.tcp_layout import OptionSlot, tcp_checksum_check, tcp_option_layout

SRC, DST = "192.0.2.1", "198.51.100.2"


def header(options: bytes, *, doff: int | None = None) -> bytes:
    """A 20-byte fixed header with ``options`` after it (not padded here)."""
    words = doff if doff is not None else (20 + len(options) + 3) // 4
    return struct.pack("!HHIIBBHHH", 1, 2, 3, 4, words << 4, ACK, 5, 0, 0) + options


def test_linux_syn_layout_offsets() -> None:
    seg = TcpSegment(40000, 80, 100, flags=SYN, window=65535, mss=1460, sack_permitted=True,
                     timestamps=(7, 0), wscale=7)
    layout = tcp_option_layout(encode_tcp(seg, SRC, DST))
    assert [(s.offset, s.kind, s.length) for s in layout.options] == [
        (20, 2, 4), (24, 4, 2), (26, 8, 10), (36, 1, 1), (37, 3, 3)]
    assert [s.value for s in layout.options] == [1460, None, (7, 0), None, 7]
    assert [s.name for s in layout.options] == ["MSS", "SACK_PERM", "TIMESTAMP", "NOP", "WSCALE"]
    assert layout.header_len == 40 and layout.options_len == 20
    assert (layout.padding_offset, layout.padding_len, layout.padding_nonzero) == (40, 0, 0)


def test_eol_padding_after_an_odd_option_run() -> None:
    # MSS (4) + a bare window scale (3) = 7 bytes: one EOL byte pads to 28.
    seg = TcpSegment(1, 2, 3, flags=SYN, mss=536, unknown_options=((3, b"\x02"),))
    raw = encode_tcp(seg, SRC, DST)
    layout = tcp_option_layout(raw)
    assert [(s.offset, s.kind, s.length, s.value) for s in layout.options] == [
        (20, 2, 4, 536), (24, 3, 3, 2), (27, 0, 1, None)]
    assert (layout.header_len, layout.padding_offset, layout.padding_len) == (28, 27, 1)


def test_padding_runs_from_eol_and_counts_nonzero_bytes() -> None:
    raw = header(b"\x02\x04\x05\xb4" + b"\x00\x00\x07\x00")   # MSS, EOL, 0, junk 7, 0
    layout = tcp_option_layout(raw)
    assert [s.kind for s in layout.options] == [2, 0]
    assert (layout.padding_offset, layout.padding_len, layout.padding_nonzero) == (24, 4, 1)


def test_sack_blocks_unknown_kinds_and_repeats_keep_wire_order() -> None:
    opts = (b"\x01\x01\x05\x12" + struct.pack("!IIII", 10, 20, 30, 40)  # NOP NOP SACK x2
            + b"\x1e\x04\xab\xcd"                                       # kind 30, 2 data bytes
            + b"\x02\x04\x00\x10\x02\x04\x00\x20")                      # MSS twice
    layout = tcp_option_layout(header(opts))
    assert [(s.offset, s.kind, s.length) for s in layout.options] == [
        (20, 1, 1), (21, 1, 1), (22, 5, 18), (40, 30, 4), (44, 2, 4), (48, 2, 4)]
    assert layout.options[2].value == ((10, 20), (30, 40))
    assert layout.options[3] == OptionSlot(40, 30, 4, b"\xab\xcd")
    assert layout.options[3].name == "kind 30"
    assert [s.value for s in layout.options[4:]] == [16, 32]   # both listed; parse_tcp keeps 32
    assert layout.padding_len == 0


def test_no_options() -> None:
    layout = tcp_option_layout(header(b"") + b"payload")
    assert layout.options == () and layout.header_len == 20 and layout.padding_len == 0


@pytest.mark.parametrize(("raw", "field", "kind"), [
    (b"\x00" * 19, "TCP header", "truncated"),
    (header(b"", doff=4), "TCP data offset", "bad data offset"),
    (header(b"\x02\x04\x05\xb4", doff=6)[:22], "TCP data offset", "bad data offset"),
    (header(b"\x01\x01\x01\x02"), "TCP option MSS", "bad option length"),    # no length byte
    (header(b"\x02\x01\x00\x00"), "TCP option MSS", "bad option length"),    # length 1
    (header(b"\x02\x08\x00\x00"), "TCP option MSS", "bad option length"),    # past the end
    (header(b"\x02\x03\x00\x00"), "TCP option MSS", "bad option length"),    # wrong for MSS
    (header(b"\x05\x04\x00\x00"), "TCP option SACK", "bad option length"),   # no block
    (header(b"\x1e\x00\x00\x00"), "TCP option kind 30", "bad option length"),
])
def test_malformed_headers_raise_parse_error(raw: bytes, field: str, kind: str) -> None:
    with pytest.raises(ParseError) as info:
        tcp_option_layout(raw)
    assert info.value.field == field and info.value.kind == kind


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=40))
def test_fuzzed_options_agree_with_parse_tcp(options: bytes) -> None:
    """Whatever the bytes, the layout raises ParseError exactly when parse_tcp does,
    and its last MSS / window scale / timestamps are the ones parse_tcp decoded."""
    raw = header(options + bytes(-len(options) & 3))
    try:
        seg = parse_tcp(raw)
    except ParseError:
        with pytest.raises(ParseError):
            tcp_option_layout(raw)
        return
    layout = tcp_option_layout(raw)
    last = {s.kind: s.value for s in layout.options}
    assert last.get(2) == seg.mss and last.get(3) == seg.wscale and last.get(8) == seg.timestamps
    assert sum(s.length for s in layout.options) + layout.padding_len - (
        1 if layout.padding_len else 0) == layout.options_len


def test_checksum_check_correct_and_incorrect() -> None:
    seg = TcpSegment(40000, 80, 1, ack=2, flags=ACK, window=100, payload=b"odd")
    raw = bytearray(encode_tcp(seg, SRC, DST))
    good = struct.unpack_from("!H", raw, 16)[0]
    assert tcp_checksum_check(raw, SRC, DST) == (True, good)
    raw[16] ^= 0x40
    assert tcp_checksum_check(raw, SRC, DST) == (False, good)
    raw[16] ^= 0x40
    assert tcp_checksum_check(raw, SRC, "198.51.100.3")[0] is False   # pseudo-header counts
    with pytest.raises(ParseError):
        tcp_checksum_check(raw[:19], SRC, DST)
