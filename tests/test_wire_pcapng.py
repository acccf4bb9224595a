"""pcapng and pcap readers on broken files: every length is checked before it is used.

Issue 11 found two crashes with mutated pcapng files: a ``struct.error`` from a
packet block too short for its own fields, and a 4 GiB read for a block whose
total length was huge, before the length was checked. Both are tests here, with
the rest of the ways a capture can be broken: a block length smaller than its
header or not a multiple of 4, a trailing length that differs, truncated
options, a bad byte-order magic, a file cut anywhere. Each gives
:class:`ParseError`, and the CLI that reads captures prints one line for it and
exits non-zero.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synack import cli
from synack.wire import (
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    ParseError,
    PcapReader,
    PcapRecord,
    PcapWriter,
    TcpSegment,
    build_tcp_packet,
    ip_packet,
)
from synack.wire.pcap import MAX_RECORD_LEN
from synack.wire.pcapng import PcapngReader
from synack.wire.tcp import ACK, SYN

PACKETS = [
    build_tcp_packet("192.0.2.1", "192.0.2.2", TcpSegment(40000, 80, 100, 0, SYN, 65535,
                                                          mss=1460)),
    build_tcp_packet("192.0.2.2", "192.0.2.1", TcpSegment(80, 40000, 300, 101, SYN | ACK,
                                                          65535, mss=1460)),
    build_tcp_packet("192.0.2.1", "192.0.2.2", TcpSegment(40000, 80, 101, 301, ACK, 65535,
                                                          payload=b"hello")),
]


# --- building pcapng by hand -------------------------------------------------------------


def block(btype: int, body: bytes, order: str = "<", length: int | None = None,
          trailer: int | None = None) -> bytes:
    body += bytes(-len(body) % 4)
    total = 12 + len(body)
    return (struct.pack(order + "II", btype, total if length is None else length) + body
            + struct.pack(order + "I", total if trailer is None else trailer))


def shb(order: str = "<") -> bytes:
    return block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)


def idb(linktype: int = LINKTYPE_RAW, order: str = "<", options: bytes = b"") -> bytes:
    return block(1, struct.pack(order + "HHI", linktype, 0, 0) + options, order)


def epb(data: bytes, ts_us: int, order: str = "<", iface: int = 0) -> bytes:
    body = struct.pack(order + "IIIII", iface, ts_us >> 32, ts_us & 0xFFFFFFFF, len(data),
                       len(data)) + data
    return block(6, body, order)


def good_file(order: str = "<") -> bytes:
    return shb(order) + idb(order=order) + b"".join(
        epb(p, 1_000_000 + i, order) for i, p in enumerate(PACKETS))


def read_ng(data: bytes) -> list[PcapRecord]:
    return list(PcapngReader(io.BytesIO(data)))


class CountingFile(io.BytesIO):
    """A file that remembers the largest read asked of it."""

    largest = 0

    def read(self, n: int | None = -1) -> bytes:  # type: ignore[override]
        self.largest = max(self.largest, n if n is not None and n >= 0 else 0)
        return super().read(n)


# --- good files --------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
def test_reads_both_byte_orders(order: str) -> None:
    records = read_ng(good_file(order))
    assert records == [PcapRecord(1_000_000 + i, p, LINKTYPE_RAW) for i, p in enumerate(PACKETS)]


def test_tsresol_option_sets_the_tick() -> None:
    # if_tsresol 9: nanoseconds; an 8-byte padded option, then opt_endofopt.
    options = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
    data = shb() + idb(options=options) + epb(PACKETS[0], 5_000_000_000)
    assert read_ng(data) == [PcapRecord(5_000_000, PACKETS[0], LINKTYPE_RAW)]


# --- the two crashes of issue 11 ----------------------------------------------------------


def test_short_packet_block_is_a_parse_error_not_struct_error() -> None:
    # An Enhanced Packet Block of 12 bytes: no room for its interface, time and lengths.
    data = shb() + idb() + block(6, b"")
    with pytest.raises(ParseError, match="truncated.*packet block of 12 bytes"):
        read_ng(data)


def test_huge_block_length_is_refused_before_reading() -> None:
    # A block claiming 4 GiB - 4 bytes in a file of a few hundred.
    data = shb() + idb() + struct.pack("<II", 6, 0xFFFFFFFC) + bytes(40)
    f = CountingFile(data)
    with pytest.raises(ParseError, match="bad total length 4294967292"):
        list(PcapngReader(f))
    assert f.largest <= len(data)


def test_block_length_past_the_end_is_refused_before_reading() -> None:
    # Under the 16 MiB sanity cap, but still more than the file holds.
    data = shb() + idb() + struct.pack("<II", 6, MAX_RECORD_LEN - 4) + bytes(40)
    f = CountingFile(data)
    with pytest.raises(ParseError, match=r"truncated \(48 of 16777212 bytes present\)"):
        list(PcapngReader(f))
    assert f.largest <= len(data)


def test_section_header_with_a_huge_length() -> None:
    data = struct.pack("<III", 0x0A0D0D0A, 0xFFFFFFF0, 0x1A2B3C4D) + bytes(20)
    f = CountingFile(data)
    with pytest.raises(ParseError, match="bad total length"):
        list(PcapngReader(f))
    assert f.largest <= len(data)


# --- every other broken length -----------------------------------------------------------


@pytest.mark.parametrize("length", [0, 4, 8, 13, 14])
def test_block_length_smaller_than_its_header_or_not_whole_words(length: int) -> None:
    data = shb() + idb() + struct.pack("<II", 6, length) + bytes(32)
    with pytest.raises(ParseError, match=f"pcapng block: bad total length {length}"):
        read_ng(data)


def test_section_header_shorter_than_its_fields() -> None:
    data = block(0x0A0D0D0A, struct.pack("<I", 0x1A2B3C4D) + bytes(4))   # 20 bytes, needs 28
    with pytest.raises(ParseError, match="bad total length 20"):
        read_ng(data)


def test_trailing_length_must_match() -> None:
    data = shb() + idb() + block(6, bytes(24), trailer=28)
    with pytest.raises(ParseError, match="trailing copy differs"):
        read_ng(data)


def test_captured_length_past_the_block() -> None:
    body = struct.pack("<IIIII", 0, 0, 0, 1000, 1000) + bytes(8)
    with pytest.raises(ParseError, match="captured length 1000 runs past"):
        read_ng(shb() + idb() + block(6, body))


def test_packet_on_an_undeclared_interface() -> None:
    with pytest.raises(ParseError, match="interface 3 of 1"):
        read_ng(shb() + idb() + epb(PACKETS[0], 0, iface=3))


def test_truncated_interface_options() -> None:
    # if_tsresol claiming 8 bytes of value where the block holds 4.
    with pytest.raises(ParseError, match="pcapng option: bad option length 8"):
        read_ng(shb() + idb(options=struct.pack("<HHB3x", 9, 8, 6)))


def test_bad_byte_order_magic() -> None:
    data = bytearray(good_file())
    data[8:12] = b"\xde\xad\xbe\xef"
    with pytest.raises(ParseError, match="unsupported byte-order magic"):
        read_ng(bytes(data))


def test_a_file_must_start_with_a_section_header() -> None:
    with pytest.raises(ParseError, match="no section header block first"):
        read_ng(idb() + epb(PACKETS[0], 0))


@pytest.mark.parametrize("order", ["<", ">"])
def test_a_file_cut_anywhere(order: str) -> None:
    """Cut at every byte: the packets before the cut come out, then ParseError
    "truncated", unless the cut falls between blocks."""
    whole = good_file(order)
    expected = read_ng(whole)
    bounds = _block_ends(whole, order)
    for cut in range(len(whole)):
        got: list[PcapRecord] = []
        try:
            got.extend(PcapngReader(io.BytesIO(whole[:cut])))   # keeps what came before
        except ParseError as exc:
            assert cut not in bounds, (cut, exc)
            assert exc.kind == "truncated", (cut, exc)   # a cut file says so (issue 13)
        else:
            assert cut in bounds, cut
        assert got == expected[:len(got)]


def _block_ends(data: bytes, order: str) -> set[int]:
    ends, pos = {0}, 0
    while pos < len(data):
        pos += struct.unpack_from(order + "I", data, pos + 4)[0]
        ends.add(pos)
    return ends


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_files_raise_only_parse_error(data: st.DataObject) -> None:
    raw = bytearray(good_file(data.draw(st.sampled_from("<>"))))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    f = CountingFile(bytes(raw))
    try:
        list(PcapngReader(f))
    except ParseError:
        pass
    assert f.largest <= len(raw)


# --- classic pcap and the cooked (SLL) headers ------------------------------------------


def pcap_file(linktype: int = LINKTYPE_RAW, frames: list[bytes] = PACKETS) -> bytes:
    buffer = io.BytesIO()
    with PcapWriter(buffer, linktype) as writer:
        for i, frame in enumerate(frames):
            writer.write(frame, 1_000_000 + i)
    return buffer.getvalue()


def test_pcap_huge_captured_length_in_a_short_file() -> None:
    data = pcap_file()[:24] + struct.pack("<IIII", 0, 0, MAX_RECORD_LEN, MAX_RECORD_LEN) + b"x"
    f = CountingFile(data)
    with pytest.raises(ParseError, match=r"pcap record: truncated \(1 of 16777216"):
        list(PcapReader(f))
    assert f.largest <= len(data)


def test_pcap_cut_anywhere() -> None:
    whole = pcap_file()
    expected = list(PcapReader(io.BytesIO(whole)))
    ends = {24}
    for p in PACKETS:
        ends.add(max(ends) + 16 + len(p))
    for cut in range(len(whole)):
        got: list[PcapRecord] = []
        try:
            got.extend(PcapReader(io.BytesIO(whole[:cut])))
        except ParseError as exc:
            assert cut not in ends and exc.kind == "truncated", (cut, exc)
        else:
            assert cut in ends, cut
        assert got == expected[:len(got)]


def sll(packet: bytes) -> bytes:
    return struct.pack("!HHH8sH", 0, 1, 6, bytes(8), 0x0800) + packet


def sll2(packet: bytes) -> bytes:
    return struct.pack("!HHIHBB8s", 0x0800, 0, 1, 1, 0, 6, bytes(8)) + packet


@pytest.mark.parametrize(("linktype", "wrap"), [(LINKTYPE_LINUX_SLL, sll),
                                                (LINKTYPE_LINUX_SLL2, sll2)])
def test_cooked_headers_cut_anywhere(linktype: int, wrap: object) -> None:
    frame = wrap(PACKETS[2])  # type: ignore[operator]
    assert ip_packet(PcapRecord(0, frame, linktype)) == PACKETS[2]
    header = len(frame) - len(PACKETS[2])
    for cut in range(len(frame)):
        got = ip_packet(PcapRecord(0, frame[:cut], linktype))
        assert got == (None if cut < header else PACKETS[2][:cut - header])


# --- the CLI: one line, non-zero ---------------------------------------------------------

BROKEN = {
    "short-block.pcapng": shb() + idb() + block(6, b""),
    "huge-block.pcapng": shb() + idb() + struct.pack("<II", 6, 0xFFFFFFFC) + bytes(40),
    "bad-magic.pcapng": good_file()[:8] + b"\xde\xad\xbe\xef" + good_file()[12:],
    "huge-record.pcap": pcap_file()[:24] + struct.pack("<IIII", 0, 0, 0xFFFFFFF0, 40),
}


@pytest.mark.parametrize("command", ["ladder", "header", "plot"])
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_cli_says_one_line_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     command: str, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(BROKEN[name])
    argv = [command, str(path)] + (["-o", str(tmp_path / "out.png")] if command == "plot" else [])
    assert cli.main(argv) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("synack: ") and name in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["ladder", "header", "plot"])
def test_cli_reads_a_cut_file_to_its_last_good_packet(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     command: str) -> None:
    path = tmp_path / "cut.pcap"
    path.write_bytes(pcap_file()[:-3])
    argv = [command, str(path)] + (["-o", str(tmp_path / "out.png")] if command == "plot" else [])
    status = cli.main(argv)
    err = capsys.readouterr().err
    assert "appears to have been cut short" in err and err.count("\n") == 1, err
    assert status == 0, err
