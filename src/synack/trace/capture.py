"""Read a capture file into TCP connections, each an ordered list of analysed segments.

Theory of operation
-------------------
:func:`read_capture` walks the packets of a pcap (or pcapng) file once. Every
IPv4 or IPv6 TCP packet is keyed by its 4-tuple, both directions together; a SYN on a
4-tuple whose connection is over (or that carries a different ISN) starts a new
connection, so port reuse gives two connections, as in Wireshark. The side that
sent the first SYN is ``a`` (the client), the other ``b``; without a SYN in the
capture, ``a`` is whoever sent the first packet seen.

Numbers are made relative per direction as Wireshark does: the ISN is 0, so the
first data byte after a SYN is 1; a connection caught mid-stream takes its first
sequence number minus one as the base (the first byte seen is 1). Windows are
scaled by the sender's window-scale shift once both SYNs showed the option
(RFC 7323 2.2), never on the SYNs themselves; without the handshake they are raw.

Once a connection is complete, :mod:`synack.trace.analysis` adds Wireshark's
expert marks and :mod:`synack.trace.states` infers each side's state. Packets
that are not TCP over IPv4 or IPv6 are counted; ones that claim to be but do not parse are
listed in :attr:`Capture.skipped` with the reason. A file that is not a capture,
or ends in the middle of a record, raises :class:`CaptureError` (one line).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from synack import seq as sq
from synack.wire.errors import ParseError
from synack.wire.ipv4 import PROTO_TCP, parse_ipv4
from synack.wire.ipv6 import parse_ipv6
from synack.wire.pcap import PcapReader, PcapRecord, ip_packet
from synack.wire.tcp import ACK, FIN, RST, SYN, TcpSegment, parse_tcp

Endpoint = tuple[str, int]


class CaptureError(ValueError):
    """The file cannot be read as a capture; ``str()`` is one line naming the file."""


@dataclass(slots=True)
class Segment:
    """One TCP segment of a connection, with its numbers as a reader wants them.

    ``number`` is the packet's position in the file (1-based, Wireshark's frame
    number); ``direction`` 0 goes from ``a`` to ``b``. ``seq``/``ack`` are
    relative, ``window`` is scaled when the scale is known, ``sack`` holds the
    SACK blocks relative to the receiver's (this segment's peer's) ISN.
    """

    number: int
    t_us: int
    direction: int
    seg: TcpSegment
    seq: int
    ack: int
    window: int
    sack: tuple[tuple[int, int], ...] = ()
    marks: list[str] = field(default_factory=list)

    @property
    def length(self) -> int:
        """Payload bytes."""
        return len(self.seg.payload)

    @property
    def flags(self) -> int:
        """The TCP flags as an int bit mask."""
        return self.seg.flags


@dataclass(slots=True)
class StateChange:
    """``side`` (0 = a, 1 = b) went from ``old`` to ``new`` at ``t_us``.

    ``number`` is the segment it belongs to; ``before`` is true when the change
    happened before that segment was sent (a SYN_SENT before its SYN) and false
    when the segment caused it on arrival. ``old == ""`` marks the state a side
    is in when the connection first appears.
    """

    t_us: int
    side: int
    old: str
    new: str
    why: str
    number: int
    before: bool


@dataclass(slots=True)
class Connection:
    """Every segment of one TCP connection, in capture order."""

    number: int
    a: Endpoint
    b: Endpoint
    segments: list[Segment] = field(default_factory=list)
    base: list[int | None] = field(default_factory=lambda: [None, None])
    syn_seq: list[int | None] = field(default_factory=lambda: [None, None])
    wscale: list[int | None] = field(default_factory=lambda: [None, None])
    syn_seen: list[bool] = field(default_factory=lambda: [False, False])
    fins: list[bool] = field(default_factory=lambda: [False, False])
    reset: bool = False
    changes: list[StateChange] = field(default_factory=list)

    def endpoint(self, side: int) -> Endpoint:
        """``a`` for 0, ``b`` for 1."""
        return self.a if side == 0 else self.b

    def name(self, side: int) -> str:
        """``"192.0.2.1:40000"``, or ``"[2001:db8::1]:40000"`` for IPv6 (RFC 5952 6)."""
        addr, port = self.endpoint(side)
        return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"

    @property
    def scaled(self) -> bool:
        """Both SYNs offered window scaling, so windows after them are shifted."""
        return self.wscale[0] is not None and self.wscale[1] is not None

    @property
    def over(self) -> bool:
        """Closed as far as the capture shows: a RST, or FINs both ways."""
        return self.reset or all(self.fins)

    def payload_bytes(self, direction: int) -> int:
        """Payload bytes sent in ``direction``, retransmissions included."""
        return sum(s.length for s in self.segments if s.direction == direction)

    @property
    def duration_us(self) -> int:
        """From the first segment to the last."""
        return self.segments[-1].t_us - self.segments[0].t_us if self.segments else 0

    def final_states(self) -> tuple[str, str]:
        """Each side's last inferred state."""
        out = ["?", "?"]
        for ch in self.changes:
            out[ch.side] = ch.new
        return out[0], out[1]


@dataclass(slots=True)
class Capture:
    """What :func:`read_capture` found in a file."""

    path: str
    packets: int = 0
    other: int = 0                                  # packets that are not IPv4 TCP
    connections: list[Connection] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (packet number, reason)
    cut_short: str | None = None    # the file ends mid-record: why (its good packets are in)

    def warnings(self) -> list[str]:
        """One line per thing a reader should be told, as tshark tells it."""
        if self.cut_short is None:
            return []
        return [(f"{self.path} appears to have been cut short after packet {self.packets} "
                 f"({self.cut_short}): showing the {self.packets} packets before it")]


def _open_records(path: str | os.PathLike[str] | BinaryIO) -> Iterator[PcapRecord]:
    """The file's records, pcap or pcapng, as :class:`PcapRecord`."""
    from synack.wire.pcapng import PcapngReader, is_pcapng

    if is_pcapng(path):
        yield from PcapngReader(path)
        return
    with PcapReader(path) as reader:
        yield from reader


def read_capture(path: str | os.PathLike[str] | BinaryIO, *,
                 progress: Callable[[int], object] | None = None) -> Capture:
    """Read every TCP connection in a capture file, analysed and with states inferred.

    Raises :class:`CaptureError` for a file that is missing, not a capture, or
    corrupt at the record level. A file cut short in the middle of a record (tcpdump
    killed mid-write) keeps its good packets and says so in ``cut_short``, as tshark
    reads such a file and warns. ``progress``, if given, is told now and then how
    many bytes of the file were read (about: record headers counted as pcap's).
    """
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "<capture>"
    cap = Capture(str(name))
    live: dict[tuple[Endpoint, Endpoint], Connection] = {}
    try:
        done = 24
        for number, record in enumerate(_open_records(path), 1):
            cap.packets = number
            _add_packet(cap, live, number, record)
            if progress is not None:
                done += 16 + len(record.data)
                if not number & 1023:
                    progress(done)
    except ParseError as exc:
        if exc.kind == "truncated" and exc.field in ("pcap record", "pcapng block") \
                and cap.packets:
            cap.cut_short = str(exc)
        else:
            where = f" after packet {cap.packets}" if cap.packets else ""
            raise CaptureError(f"{name}: {exc}{where}") from None
    except OSError as exc:
        raise CaptureError(f"{name}: {exc.strerror or exc}") from None
    from synack.trace.analysis import analyse
    from synack.trace.states import infer_states

    for conn in cap.connections:
        analyse(conn)
        infer_states(conn)
    return cap


def _add_packet(cap: Capture, live: dict[tuple[Endpoint, Endpoint], Connection],
                number: int, record: PcapRecord) -> None:
    packet = ip_packet(record)
    if packet is None or not packet or packet[0] >> 4 not in (4, 6):
        cap.other += 1
        return
    if packet[0] >> 4 == 6:
        _add_packet6(cap, live, number, record, packet)
        return
    try:
        # Checksums are not verified: a capture on the sending host shows them
        # unfilled (offloaded to the NIC), which is no fault of the segment.
        ip, payload = parse_ipv4(packet, verify_checksum=False)
        if ip.proto != PROTO_TCP:
            cap.other += 1
            return
        if ip.more_fragments or ip.frag_offset:
            cap.skipped.append((number, "IPv4 fragment (not reassembled)"))
            return
        seg = parse_tcp(payload, verify_checksum=False)
    except ParseError as exc:
        cap.skipped.append((number, str(exc)))
        return
    _add_segment(cap, live, number, record, (ip.src, seg.src_port), (ip.dst, seg.dst_port),
                 seg)


def _add_packet6(cap: Capture, live: dict[tuple[Endpoint, Endpoint], Connection],
                 number: int, record: PcapRecord, packet: bytes) -> None:
    """An IPv6 packet: TCP after any extension headers; fragments are listed, not
    reassembled."""
    try:
        ip6, payload = parse_ipv6(packet)
        if ip6.proto != PROTO_TCP:
            cap.other += 1
            return
        frag = ip6.fragment
        if frag is not None and (frag[0] or frag[1]):
            cap.skipped.append((number, "IPv6 fragment (not reassembled)"))
            return
        seg = parse_tcp(payload, verify_checksum=False)
    except ParseError as exc:
        cap.skipped.append((number, str(exc)))
        return
    _add_segment(cap, live, number, record, (ip6.src, seg.src_port), (ip6.dst, seg.dst_port),
                 seg)


def _add_segment(cap: Capture, live: dict[tuple[Endpoint, Endpoint], Connection],
                 number: int, record: PcapRecord, src: Endpoint, dst: Endpoint,
                 seg: TcpSegment) -> None:
    key = (src, dst) if src <= dst else (dst, src)
    conn = live.get(key)
    if conn is None or _starts_anew(conn, src, seg):
        conn = Connection(len(cap.connections) + 1, src, dst)
        if seg.flags & (SYN | ACK) == SYN | ACK:
            conn.a, conn.b = dst, src    # caught from the SYN,ACK: the client is its receiver
        cap.connections.append(conn)
        live[key] = conn
    _append(conn, number, record.ts_us, src, seg)


def _starts_anew(conn: Connection, src: Endpoint, seg: TcpSegment) -> bool:
    """A SYN (not SYN,ACK) that cannot belong to ``conn``: the 4-tuple is reused."""
    if seg.flags & (SYN | ACK) != SYN:
        return False
    d = 0 if src == conn.a else 1
    if conn.over:
        return True
    isn = conn.syn_seq[d]
    if isn is not None:
        return isn != seg.seq                       # same ISN: a retransmitted SYN
    # No SYN from this side yet: only a simultaneous open (nothing but SYNs so far) fits.
    return any(not s.flags & SYN or s.length for s in conn.segments)


def _append(conn: Connection, number: int, t_us: int, src: Endpoint, seg: TcpSegment) -> None:
    d = 0 if src == conn.a else 1
    flags = seg.flags
    if flags & SYN:
        if conn.syn_seq[d] is None:
            conn.syn_seq[d] = seg.seq
            conn.wscale[d] = seg.wscale
            conn.syn_seen[d] = True
        if conn.base[d] is None:
            conn.base[d] = seg.seq
    if conn.base[d] is None:
        conn.base[d] = sq.add(seg.seq, -1)          # caught mid-stream: first byte seen is 1
    if flags & ACK and conn.base[1 - d] is None:
        conn.base[1 - d] = sq.add(seg.ack, -1)
    if flags & FIN:
        conn.fins[d] = True
    if flags & RST:
        conn.reset = True
    base, peer = conn.base[d] or 0, conn.base[1 - d] or 0
    shift = (conn.wscale[d] or 0) if conn.scaled and not flags & SYN else 0
    conn.segments.append(Segment(
        number=number, t_us=t_us, direction=d, seg=seg,
        seq=sq.diff(seg.seq, base) & 0xFFFFFFFF,
        ack=(sq.diff(seg.ack, peer) & 0xFFFFFFFF) if flags & ACK else 0,
        window=seg.window << shift,
        sack=tuple((sq.diff(x, peer) & 0xFFFFFFFF, sq.diff(y, peer) & 0xFFFFFFFF)
                   for x, y in seg.sack_blocks)))
