"""synack.wire: bytes <-> frozen records. No state, no clocks, no I/O but pcap files.

Parsers raise :class:`ParseError` (with ``field`` and ``kind``) for malformed
input and nothing else; encoders raise ``ValueError`` for records that cannot be
encoded. Checksums use :func:`internet_checksum`, which sums whole buffers as
one integer instead of looping over bytes.
"""

from .checksum import internet_checksum, ones_sum, pseudo_header_sum
from .errors import KINDS, ParseError
from .ipv4 import (
    PROTO_ICMP,
    PROTO_TCP,
    PROTO_UDP,
    IPv4Header,
    build_tcp_packet,
    encode_ipv4,
    parse_ipv4,
    parse_tcp_packet,
)
from .pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    PcapReader,
    PcapRecord,
    PcapWriter,
    ip_packet,
)
from .tcp import (
    ACK,
    CWR,
    ECE,
    FIN,
    PSH,
    RST,
    SYN,
    URG,
    Flags,
    TcpSegment,
    encode_tcp,
    flags_short,
    flags_str,
    parse_tcp,
)

__all__ = [
    "ACK",
    "CWR",
    "ECE",
    "FIN",
    "KINDS",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "PROTO_ICMP",
    "PROTO_TCP",
    "PROTO_UDP",
    "PSH",
    "RST",
    "SYN",
    "URG",
    "Flags",
    "IPv4Header",
    "ParseError",
    "PcapReader",
    "PcapRecord",
    "PcapWriter",
    "TcpSegment",
    "build_tcp_packet",
    "encode_ipv4",
    "encode_tcp",
    "flags_short",
    "flags_str",
    "internet_checksum",
    "ip_packet",
    "ones_sum",
    "parse_ipv4",
    "parse_tcp",
    "parse_tcp_packet",
    "pseudo_header_sum",
]  # fmt: skip
