"""Ethernet II headers (IEEE 802.3 framing as Linux TAP devices carry it) and MAC addresses.

A MAC address is a lowercase colon-separated string ("02:00:5e:00:53:01"), the
way IPv4 addresses are dotted-quad strings elsewhere in :mod:`synack.wire`, so
records print and compare readably. :func:`parse_ethernet` returns a record and a
zero-copy view of the payload; the link's per-frame path uses :func:`split_frame`
and :func:`header_bytes` instead, which skip building a record.
"""

from __future__ import annotations

import functools
import random
import struct
from dataclasses import dataclass

from .checksum import Buffer
from .errors import ParseError

__all__ = [
    "BROADCAST",
    "ETHERTYPE_ARP",
    "ETHERTYPE_IPV4",
    "ETHERTYPE_IPV6",
    "ETHERTYPE_VLAN",
    "ETH_HEADER_LEN",
    "EthernetHeader",
    "encode_ethernet",
    "header_bytes",
    "is_multicast",
    "mac_aton",
    "mac_ntoa",
    "parse_ethernet",
    "random_mac",
    "split_frame",
]  # fmt: skip

ETH_HEADER_LEN = 14
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_VLAN = 0x8100  # IEEE 802.1Q; synack does not use VLANs, the link drops them
ETHERTYPE_IPV6 = 0x86DD
# Values below 1536 are an 802.3 length field, not a type (IEEE 802.3 clause 3.2.6).
_MIN_ETHERTYPE = 0x0600

BROADCAST = "ff:ff:ff:ff:ff:ff"

_HEADER = struct.Struct("!6s6sH")
_U16 = struct.Struct("!H")
_HEX = frozenset("0123456789abcdefABCDEF")


@functools.lru_cache(maxsize=1024)
def mac_aton(mac: str) -> bytes:
    """"aa:bb:cc:dd:ee:ff" (or with dashes, any case) -> 6 bytes. ``ValueError`` otherwise."""
    parts = mac.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 and set(p) <= _HEX for p in parts):
        raise ValueError(f"not a MAC address: {mac!r}")
    return bytes.fromhex("".join(parts))


@functools.lru_cache(maxsize=1024)
def mac_ntoa(raw: bytes) -> str:
    """6 bytes -> "aa:bb:cc:dd:ee:ff"."""
    if len(raw) != 6:
        raise ValueError(f"a MAC address is 6 bytes, not {len(raw)}")
    return raw.hex(":")


def is_multicast(mac: str) -> bool:
    """True for group addresses (the I/G bit, lowest bit of the first octet), broadcast included."""
    return bool(mac_aton(mac)[0] & 1)


def random_mac(rng: random.Random | None = None) -> str:
    """A random locally administered unicast address (first octet x2, x6, xA or xE).

    Locally administered so it can never collide with a vendor's burned-in
    address (IEEE 802 U/L bit); unicast because a group address as a source is invalid.
    """
    rng = rng or random.Random()
    raw = bytearray(rng.getrandbits(48).to_bytes(6, "big"))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return mac_ntoa(bytes(raw))


@dataclass(frozen=True, slots=True)
class EthernetHeader:
    """An Ethernet II header: destination, source, EtherType."""

    dst: str
    src: str
    ethertype: int = ETHERTYPE_IPV4


def parse_ethernet(frame: Buffer) -> tuple[EthernetHeader, memoryview]:
    """Split a frame (no preamble, no FCS: what a TAP delivers) into header and payload.

    Raises :class:`ParseError`: "truncated" below 14 bytes, "unsupported" for an
    802.3 length field where an EtherType belongs (LLC frames).
    """
    n = len(frame)
    if n < ETH_HEADER_LEN:
        raise ParseError("Ethernet header", "truncated", f"({n} bytes, need 14)")
    dst, src, ethertype = _HEADER.unpack_from(frame)
    if ethertype < _MIN_ETHERTYPE:
        raise ParseError(
            "Ethernet type", "unsupported", f"0x{ethertype:04x} (an 802.3 length, not Ethernet II)"
        )
    return EthernetHeader(mac_ntoa(dst), mac_ntoa(src), ethertype), memoryview(frame)[14:]


def header_bytes(dst: str, src: str, ethertype: int) -> bytes:
    """The 14 header bytes. Links build this once per neighbour and prepend it to each packet."""
    if not 0 <= ethertype <= 0xFFFF:
        raise ValueError(f"EtherType must be 0..0xffff, not {ethertype}")
    return _HEADER.pack(mac_aton(dst), mac_aton(src), ethertype)


def encode_ethernet(hdr: EthernetHeader, payload: Buffer) -> bytes:
    """The frame: header then payload. No padding to 60 bytes: the device adds it when needed."""
    return b"".join((header_bytes(hdr.dst, hdr.src, hdr.ethertype), payload))


def split_frame(frame: Buffer) -> tuple[int, memoryview]:
    """(EtherType, payload view) without building a record: the per-frame fast path.

    Raises :class:`ParseError` ("truncated") for a frame shorter than a header.
    """
    if len(frame) < ETH_HEADER_LEN:
        raise ParseError("Ethernet header", "truncated", f"({len(frame)} bytes, need 14)")
    return _U16.unpack_from(frame, 12)[0], memoryview(frame)[ETH_HEADER_LEN:]
