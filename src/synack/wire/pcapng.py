"""Reading pcapng files (what Wireshark and dumpcap write by default), packets only.

Format (IETF draft-ietf-opsawg-pcapng): a sequence of blocks, each ``type,
total length, body, total length`` in the byte order the Section Header Block's
magic 0x1A2B3C4D shows. Interface Description Blocks give each interface's link
type and timestamp resolution (option ``if_tsresol``, default microseconds);
Enhanced, Simple and (obsolete) Packet Blocks carry the packets. Every other
block is skipped. Records come out as :class:`~synack.wire.pcap.PcapRecord` with
the packet's interface link type, so :func:`~synack.wire.pcap.ip_packet` applies.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from .errors import ParseError
from .pcap import MAX_RECORD_LEN, PcapRecord, end_of

__all__ = ["PcapngReader", "is_pcapng"]

_SHB, _IDB, _PB, _SPB, _EPB = 0x0A0D0D0A, 1, 2, 3, 6
_BOM = 0x1A2B3C4D
_OPT_TSRESOL = 9
_SHB_MIN = 28   # type, length, byte-order magic, version, section length, length again


def is_pcapng(path_or_file: str | os.PathLike[str] | BinaryIO) -> bool:
    """True if the file starts with a pcapng Section Header Block."""
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, "rb") as f:
            return f.read(4) == b"\x0a\x0d\x0d\x0a"
    pos = path_or_file.tell()
    head = path_or_file.read(4)
    path_or_file.seek(pos)
    return head == b"\x0a\x0d\x0d\x0a"


class PcapngReader:
    """Iterate over the packets of a pcapng file as :class:`PcapRecord`.

    Raises :class:`ParseError` (field "pcapng block" or "pcapng option") for a
    truncated or corrupt block: every length is checked before it is used, a block
    length against what is left of the file before anything is read. Timestamps
    are converted to integer microseconds.
    """

    def __init__(self, path_or_file: str | os.PathLike[str] | BinaryIO) -> None:
        self._target = path_or_file

    def __iter__(self) -> Iterator[PcapRecord]:
        if isinstance(self._target, (str, os.PathLike)):
            with open(self._target, "rb") as f:
                yield from self._records(f)
        else:
            yield from self._records(self._target)

    def _records(self, f: BinaryIO) -> Iterator[PcapRecord]:
        order = "<"
        # Per interface: (link type, ticks per second).
        interfaces: list[tuple[int, int]] = []
        first = True
        end = end_of(f)
        while True:
            head = f.read(8)
            if not head:
                return
            if len(head) < 8:
                raise ParseError("pcapng block", "truncated", f"(header of {len(head)} bytes)")
            if head[:4] == b"\x0a\x0d\x0d\x0a":
                bom = f.read(4)
                if len(bom) < 4:
                    raise ParseError("pcapng block", "truncated", "(section header)")
                if int.from_bytes(bom, "little") == _BOM:
                    order = "<"
                elif int.from_bytes(bom, "big") == _BOM:
                    order = ">"
                else:
                    raise ParseError("pcapng block", "unsupported", "byte-order magic")
                interfaces = []                    # a new section numbers interfaces anew
                btype, length = struct.unpack(order + "II", head)
                _check_length(f, end, length, 12, _SHB_MIN)
                body = bom + _read_exact(f, length - 12, length)
            else:
                if first:
                    raise ParseError("pcapng block", "unsupported",
                                     "no section header block first (not a pcapng file)")
                btype, length = struct.unpack(order + "II", head)
                _check_length(f, end, length, 8, 12)
                body = _read_exact(f, length - 8, length)
            first = False
            if struct.unpack_from(order + "I", body, len(body) - 4)[0] != length:
                raise ParseError("pcapng block", "bad total length",
                                 f"{length} (the trailing copy differs)")
            body = body[:-4]                       # the trailing copy of the length
            if btype == _IDB:
                interfaces.append(_interface(body, order))
            elif btype in (_EPB, _PB):
                if len(body) < 20:
                    raise ParseError("pcapng block", "truncated",
                                     f"(packet block of {length} bytes, the fields take 32)")
                if btype == _EPB:
                    iface, hi, lo, caplen = struct.unpack_from(order + "IIII", body)
                else:
                    iface, _drops, hi, lo, caplen = struct.unpack_from(order + "HHIII", body)
                if iface >= len(interfaces):
                    raise ParseError("pcapng block", "bad total length",
                                     f"packet block on interface {iface} of {len(interfaces)}")
                if 20 + caplen > len(body):
                    raise ParseError("pcapng block", "bad total length",
                                     f"packet block: captured length {caplen} runs past the "
                                     f"block of {length} bytes")
                linktype, per_second = interfaces[iface]
                ticks = (hi << 32) | lo
                yield PcapRecord(ticks * 1_000_000 // per_second, body[20:20 + caplen], linktype)
            elif btype == _SPB:
                if not interfaces or len(body) < 4:
                    raise ParseError("pcapng block", "bad total length", "simple packet block")
                (orig,) = struct.unpack_from(order + "I", body)
                yield PcapRecord(0, body[4:4 + orig], interfaces[0][0])


def _check_length(f: BinaryIO, end: int | None, length: int, have: int, least: int) -> None:
    """A block's total length must be whole words, hold its own fields, and fit in what is
    left of the file (checked before reading: a corrupt length must not make us allocate
    gigabytes). ``have`` bytes of the block are read already; ``end`` is the file's size."""
    if length < least or length % 4 or length > MAX_RECORD_LEN:
        raise ParseError("pcapng block", "bad total length", f"{length}")
    if end is not None:
        left = end - f.tell()
        if left < length - have:
            raise ParseError("pcapng block", "truncated",
                             f"({max(left, 0) + have} of {length} bytes present)")


def _read_exact(f: BinaryIO, n: int, length: int) -> bytes:
    data = f.read(n)
    if len(data) < n:
        raise ParseError("pcapng block", "truncated",
                         f"({length - n + len(data)} of {length} bytes present)")
    return data


def _interface(body: bytes, order: str) -> tuple[int, int]:
    if len(body) < 8:
        raise ParseError("pcapng block", "truncated", "(interface description)")
    linktype = struct.unpack_from(order + "H", body)[0]
    per_second = 1_000_000
    pos = 8
    # The body is whole words (the block length is checked), so an option header fits
    # whenever a word is left.
    while pos + 4 <= len(body):
        code, olen = struct.unpack_from(order + "HH", body, pos)
        if code == 0:
            break
        if pos + 4 + olen > len(body):
            raise ParseError("pcapng option", "bad option length",
                             f"{olen} (code {code}: {len(body) - pos - 4} bytes left)")
        if code == _OPT_TSRESOL and olen >= 1:
            v = body[pos + 4]
            per_second = 2 ** (v & 0x7F) if v & 0x80 else 10 ** v
        pos += 4 + (olen + 3) // 4 * 4
    return linktype, per_second
