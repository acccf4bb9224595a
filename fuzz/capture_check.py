"""What the capture fuzzer checks for one input (shared by the harness and the tests).

Each input is a whole file: pcap (either byte order, micro- or nanoseconds) or pcapng,
with any link type (raw IP, Ethernet, Linux cooked SLL and SLL2, BSD loopback). It goes
through :class:`PcapReader` / :class:`PcapngReader`, :func:`ip_packet` and the IPv4 and
TCP parsers, then through :func:`synack.trace.capture.read_capture` (what ``synack
ladder``, ``header`` and ``plot`` call). Allowed outcomes: records, ``ParseError`` from
the readers, ``CaptureError`` from ``read_capture``. Anything else is a crash, and so is
a read larger than the file (a length trusted before it was checked).
"""

from __future__ import annotations

import io

from synack.trace.capture import CaptureError, read_capture
from synack.wire.errors import ParseError
from synack.wire.ipv4 import parse_ipv4
from synack.wire.pcap import PcapReader, ip_packet
from synack.wire.pcapng import PcapngReader, is_pcapng
from synack.wire.tcp import parse_tcp


class SizedFile(io.BytesIO):
    """A file that refuses a read far larger than itself: the readers must check a length
    against what is left before they read it (up to 64 KiB may be read unchecked)."""

    def read(self, n: int | None = -1) -> bytes:  # type: ignore[override]
        if n is not None and n > len(self.getbuffer()) + 65536:
            raise AssertionError(f"read({n}) from a file of {len(self.getbuffer())} bytes")
        return super().read(n)


def check_capture(data: bytes) -> tuple[int, bool]:
    """Read ``data`` as the CLI would; return (records read, whether a ParseError ended it).
    Raises for anything but ParseError / CaptureError."""
    records = 0
    failed = False
    f = SizedFile(data)
    try:
        reader = PcapngReader(f) if is_pcapng(f) else PcapReader(f)
        for record in reader:
            records += 1
            packet = ip_packet(record)
            if packet and packet[0] >> 4 == 4:
                ip, body = parse_ipv4(packet, verify_checksum=False)
                if ip.proto == 6 and not ip.frag_offset:
                    parse_tcp(body, verify_checksum=False)
    except ParseError:
        failed = True
    try:
        read_capture(SizedFile(data))
    except CaptureError:
        pass
    return records, failed
