"""Classic libpcap files: write what synack sends and receives, read captures back.

Format (https://www.tcpdump.org/manpages/pcap-savefile.5.txt): a 24-byte file
header (magic, version 2.4, zone, sigfigs, snaplen, link type) and per packet a
16-byte record header (seconds, micro- or nanoseconds, captured length, original
length). The writer emits little-endian microsecond files; the reader takes both
byte orders and both time resolutions. pcapng is recognised and refused.

Link types (https://www.tcpdump.org/linktypes.html): synack writes
:data:`LINKTYPE_RAW` (the packet starts with the IP header) unless told otherwise;
:func:`ip_packet` gets the IP packet (IPv4 or IPv6) out of the common link types.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, Self, cast

from .errors import ParseError

__all__ = [
    "LINKTYPE_ETHERNET", "LINKTYPE_IPV4", "LINKTYPE_LINUX_SLL", "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_NULL", "LINKTYPE_RAW", "PcapReader", "PcapRecord", "PcapWriter", "ip_packet",
]  # fmt: skip

LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in the capturing host's order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IP, version from the first nibble
LINKTYPE_LINUX_SLL = 113  # Linux "cooked" capture (tcpdump -i any)
LINKTYPE_IPV4 = 228
LINKTYPE_LINUX_SLL2 = 276

SNAPLEN = 262144  # what tcpdump and Wireshark write today
# A record claiming more than this is corrupt; refuse it rather than allocate it.
MAX_RECORD_LEN = 16 * 1024 * 1024

_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
_MAGIC_PCAPNG = 0x0A0D0D0A
_FILE_HEADER = struct.Struct("<IHHiIII")  # magic, major, minor, zone, sigfigs, snaplen, linktype
_RECORD_LE = struct.Struct("<IIII")  # seconds, fraction, captured length, original length
_RECORD_BE = struct.Struct(">IIII")

_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
_ETHERTYPES_IP = (_ETHERTYPE_IPV4, _ETHERTYPE_IPV6)
_ETHERTYPE_VLAN = (0x8100, 0x88A8)  # 802.1Q, 802.1ad
_AF_INET_NULL = (b"\x02\x00\x00\x00", b"\x00\x00\x00\x02")  # AF_INET, either order
# AF_INET6 of the BSDs (24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS), either order.
_AF_INET6_NULL = tuple(v.to_bytes(4, o) for v in (24, 28, 30) for o in ("little", "big"))
_ETH_TYPE = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class PcapRecord:
    """One captured packet: timestamp in integer microseconds, the captured bytes
    and the file's link type (pass it to :func:`ip_packet`)."""

    ts_us: int
    data: bytes
    linktype: int


def _open(target: str | os.PathLike[str] | BinaryIO, mode: str) -> tuple[BinaryIO, bool]:
    if isinstance(target, (str, os.PathLike)):
        return cast(BinaryIO, open(target, mode)), True  # closed by close()
    return target, False


class PcapWriter:
    """Write packets to a classic pcap file (little-endian, microseconds).

    ``path_or_file`` is a path (opened and closed here) or a binary file object
    (left open). Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self, path_or_file: str | os.PathLike[str] | BinaryIO, linktype: int = LINKTYPE_RAW
    ) -> None:
        self._file, self._owned = _open(path_or_file, "wb")
        self.linktype = linktype
        self._file.write(_FILE_HEADER.pack(_MAGIC_US, 2, 4, 0, 0, SNAPLEN, linktype))

    def write(self, packet: bytes | bytearray | memoryview, ts_us: int) -> None:
        """Append one packet captured at ``ts_us`` (integer microseconds, e.g. the
        simulator's virtual clock). Packets over the snaplen are cut, as a capture
        would, with the original length recorded."""
        if ts_us < 0:
            raise ValueError(f"pcap timestamp must not be negative: {ts_us}")
        seconds, micros = divmod(ts_us, 1_000_000)
        length = len(packet)
        captured = min(length, SNAPLEN)
        self._file.write(_RECORD_LE.pack(seconds, micros, captured, length))
        self._file.write(packet if captured == length else packet[:captured])

    def flush(self) -> None:
        """Flush the underlying file, so a running capture can be read."""
        self._file.flush()

    def close(self) -> None:
        """Flush, and close the file if this writer opened it."""
        if self._owned:
            self._file.close()
        else:
            self._file.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class PcapReader:
    """Iterate over the records of a classic pcap file as :class:`PcapRecord`.

    Reads either byte order and microsecond or nanosecond files (nanoseconds are
    truncated to microseconds). Raises :class:`ParseError` with field
    "pcap header" for a file that is not classic pcap (kind "unsupported" for
    pcapng) and "pcap record" for a truncated or corrupt record.
    """

    def __init__(self, path_or_file: str | os.PathLike[str] | BinaryIO) -> None:
        self._file, self._owned = _open(path_or_file, "rb")
        try:
            self._read_header()
        except BaseException:
            self.close()
            raise

    def _read_header(self) -> None:
        head = self._file.read(_FILE_HEADER.size)
        if len(head) >= 4 and head[:4] == b"\x0a\x0d\x0d\x0a":
            raise ParseError("pcap header", "unsupported", "pcapng: convert with `editcap -F pcap`")
        if len(head) < _FILE_HEADER.size:
            raise ParseError(
                "pcap header", "truncated", f"({len(head)} bytes, a pcap file starts with 24)"
            )
        magic = int.from_bytes(head[:4], "little")
        if magic in (_MAGIC_US, _MAGIC_NS):
            order = "<"
        elif magic in (_swap32(_MAGIC_US), _swap32(_MAGIC_NS)):
            order, magic = ">", _swap32(magic)
        else:
            raise ParseError("pcap header", "unsupported", f"magic 0x{magic:08x} (not a pcap file)")
        _, major, minor, _, _, snaplen, linktype = struct.unpack(order + "IHHiIII", head)
        if major != 2:
            raise ParseError("pcap header", "bad version", f"{major}.{minor} (expected 2.4)")
        self.nanoseconds = magic == _MAGIC_NS
        self.big_endian = order == ">"
        self.snaplen = snaplen
        # The upper bits may carry an FCS length (pcap-savefile(5)); the link type is the low 16.
        self.linktype = linktype & 0xFFFF
        self._record = _RECORD_BE if self.big_endian else _RECORD_LE
        self._end = end_of(self._file)

    def __iter__(self) -> Iterator[PcapRecord]:
        read = self._file.read
        unpack = self._record.unpack
        divisor = 1000 if self.nanoseconds else 1
        linktype = self.linktype
        end, tell = self._end, self._file.tell
        while True:
            head = read(16)
            if not head:
                return
            if len(head) < 16:
                raise ParseError(
                    "pcap record", "truncated", f"(header of {len(head)} bytes, need 16)"
                )
            seconds, fraction, captured, _original = unpack(head)
            if captured > MAX_RECORD_LEN:
                raise ParseError(
                    "pcap record", "bad total length", f"captured length {captured} is corrupt"
                )
            # A length past the end of the file is refused before the read allocates it.
            if captured > 65536 and end is not None and captured > end - tell():
                raise ParseError(
                    "pcap record", "truncated", f"({max(end - tell(), 0)} of {captured} bytes "
                    "present)")
            data = read(captured)
            if len(data) < captured:
                raise ParseError(
                    "pcap record", "truncated", f"({len(data)} of {captured} bytes present)"
                )
            yield PcapRecord(seconds * 1_000_000 + fraction // divisor, data, linktype)

    def close(self) -> None:
        """Close the file if this reader opened it."""
        if self._owned:
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def end_of(f: BinaryIO) -> int | None:
    """The size of the file ``f`` reads, or None for a stream that cannot seek (a pipe)."""
    try:
        if not f.seekable():
            return None
        pos = f.tell()
        end = f.seek(0, os.SEEK_END)
        f.seek(pos)
    except (OSError, ValueError):
        return None
    return end


def _swap32(value: int) -> int:
    return int.from_bytes(value.to_bytes(4, "little"), "big")


def ip_packet(record: PcapRecord) -> bytes | None:
    """Return the IP packet (IPv4 or IPv6) inside ``record``, or None if it carries
    something else.

    Strips Ethernet II (one 802.1Q/802.1ad tag allowed), Linux cooked SLL and
    SLL2, and BSD loopback headers; raw IP (101) and IPv4 (228) records are
    returned as they are. Ethernet type 0x86DD and the BSDs' AF_INET6 are IPv6. The result may end with link padding (Ethernet pads
    frames to 60 bytes): :func:`~synack.wire.parse_ipv4` cuts at the total length.
    """
    data, linktype = record.data, record.linktype
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4):
        return data
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return None
        ethertype = _ETH_TYPE.unpack_from(data, 12)[0]
        start = 14
        if ethertype in _ETHERTYPE_VLAN:
            if len(data) < 18:
                return None
            ethertype = _ETH_TYPE.unpack_from(data, 16)[0]
            start = 18
    elif linktype == LINKTYPE_LINUX_SLL:
        if len(data) < 16:
            return None
        ethertype, start = _ETH_TYPE.unpack_from(data, 14)[0], 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        if len(data) < 20:
            return None
        ethertype, start = _ETH_TYPE.unpack_from(data, 0)[0], 20
    elif linktype == LINKTYPE_NULL:
        # The family is in the byte order of the host that captured: try both.
        return data[4:] if data[:4] in _AF_INET_NULL or data[:4] in _AF_INET6_NULL else None
    else:
        return None
    return data[start:] if ethertype in _ETHERTYPES_IP else None
