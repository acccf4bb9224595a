"""Minimal classic libpcap writer for the simulator's captures.

Deliberately tiny and self-contained: raw IPv4 packets (LINKTYPE_RAW, 101) with
microsecond timestamps taken from virtual time.  Format: a 24-byte global header
(magic 0xa1b2c3d4, version 2.4, zone 0, sigfigs 0, snaplen, linktype), then per
packet a 16-byte header (ts_sec, ts_usec, incl_len, orig_len) and the bytes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from typing import BinaryIO

PCAP_MAGIC = 0xA1B2C3D4
PCAP_VERSION = (2, 4)
SNAPLEN = 262144  # what tcpdump uses by default
LINKTYPE_RAW = 101  # tcpdump.org link-layer header types: raw IPv4/IPv6, no link header

_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")


def write_pcap_records(
    path_or_file: str | os.PathLike[str] | BinaryIO, packets: Iterable[tuple[int, bytes]]
) -> None:
    """Write ``(timestamp_us, ip_packet)`` pairs to a path or a binary file object."""
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, "wb") as f:
            _write(f, packets)
    else:
        _write(path_or_file, packets)


def _write(f: BinaryIO, packets: Iterable[tuple[int, bytes]]) -> None:
    chunks = [_GLOBAL.pack(PCAP_MAGIC, *PCAP_VERSION, 0, 0, SNAPLEN, LINKTYPE_RAW)]
    for ts_us, data in packets:
        sec, usec = divmod(ts_us, 1_000_000)
        incl = data[:SNAPLEN]
        chunks.append(_RECORD.pack(sec, usec, len(incl), len(data)))
        chunks.append(incl)
    f.write(b"".join(chunks))
