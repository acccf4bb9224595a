"""``synack header FILE``: every field of a TCP header, as the seed notes name them.

Like the detail pane of Wireshark, in the seed's terms ("头文件解析"): ports,
sequence and acknowledgment numbers (absolute, and relative to the ISN of their
direction when the capture shows the SYN), data offset, reserved bits, each
flag with its meaning, window (scaled when the handshake showed window scaling),
checksum verified over the IPv4 (or IPv6) pseudo-header, urgent pointer, each
option with its byte offset, the padding, the payload, and the IPv4 header's
length with the total -- or, for IPv6, every field of its 40-byte header (traffic
class, flow label, payload length, next header and the extension chain, hop
limit, addresses). ``--hex`` adds the header bytes in 32-bit rows, like RFC 9293's diagram.

The connection bookkeeping (ISNs, window scale) comes from
:func:`synack.trace.capture.read_capture`; the raw header bytes are read again
from the file for the selected packets only, and every byte-level walk is done
by :mod:`synack.wire` (:func:`~synack.wire.tcp_layout.tcp_option_layout`,
:func:`~synack.wire.tcp_layout.tcp_checksum_check`).
"""

from __future__ import annotations

import argparse
import os
import sys
import unicodedata
from collections.abc import Iterator
from typing import cast

from synack import seq as sq
from synack.commands._header_text import (
    FLAG_MEANINGS,
    HEX_PADDING,
    HEX_ROWS,
    LABELS,
    LANGS,
    NEXT_HEADERS,
    OTHER_KINDS,
    TEXT,
)
from synack.trace.capture import Capture, Connection, Segment, read_capture
from synack.wire.errors import ParseError
from synack.wire.ipv4 import parse_ipv4
from synack.wire.ipv6 import IPv6Header, parse_ipv6
from synack.wire.pcap import PcapReader, PcapRecord, ip_packet
from synack.wire.tcp import (
    ACK,
    OPT_EOL,
    OPT_MSS,
    OPT_NOP,
    OPT_SACK,
    OPT_SACK_PERM,
    OPT_TIMESTAMP,
    OPT_WSCALE,
    SYN,
    URG,
    flags_str,
)
from synack.wire.tcp_layout import OptionLayout, OptionSlot, tcp_checksum_check, tcp_option_layout

LABEL_WIDTH = 24  # display columns of the label column (CJK characters count 2)
_KNOWN_TEXT = {OPT_EOL: "EOL", OPT_NOP: "NOP", OPT_MSS: "MSS", OPT_SACK_PERM: "SACK_PERM",
               OPT_SACK: "SACK", OPT_TIMESTAMP: "TIMESTAMP", OPT_WSCALE: "WSCALE"}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``header`` to the ``synack`` command."""
    p = sub.add_parser("header", help="dissect TCP headers of a capture field by field")
    p.add_argument("file", help="a pcap or pcapng file")
    pick = p.add_mutually_exclusive_group()
    pick.add_argument("--packet", metavar="N[,M...]",
                      help="packets by their number in the file (1-based, as Wireshark; "
                           "ranges like 3-5 too)")
    pick.add_argument("--conn", type=int, metavar="N",
                      help="every packet of connection N (synack ladder --list; default 1)")
    p.add_argument("--lang", default="en", choices=LANGS, help="language of the labels")
    p.add_argument("--hex", action="store_true", help="also show the header bytes, 32 bits a row")
    p.set_defaults(func=run)


def parse_packet_list(text: str) -> list[int]:
    """``"1,3,5-7"`` -> ``[1, 3, 5, 6, 7]``; ValueError naming the bad item."""
    out: list[int] = []
    for item in text.split(","):
        lo, sep, hi = item.strip().partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"--packet {text!r}: {item.strip()!r} is not a packet number "
                             "(N, N,M or N-M; numbers start at 1)")
        first, last = int(lo), int(hi) if sep else int(lo)
        if first < 1 or last < first:
            raise ValueError(f"--packet {text!r}: {item.strip()!r} is not a packet number "
                             "(N, N,M or N-M; numbers start at 1)")
        out.extend(range(first, last + 1))
    return out


def _records(path: str) -> Iterator[PcapRecord]:
    from synack.wire.pcapng import PcapngReader, is_pcapng

    if is_pcapng(path):
        yield from PcapngReader(path)
        return
    with PcapReader(path) as reader:
        yield from reader


def raw_packets(path: str, numbers: set[int]) -> dict[int, bytes]:
    """The IP packets with the given 1-based numbers, read again from ``path``."""
    out: dict[int, bytes] = {}
    try:
        for number, record in enumerate(_records(path), 1):
            if number in numbers:
                packet = ip_packet(record)
                if packet is not None:
                    out[number] = packet
                if len(out) == len(numbers):
                    break
    except ParseError as exc:
        if exc.kind != "truncated":   # a file cut short: its good packets are all here
            raise
    return out


def select(cap: Capture, packets: list[int] | None,
           conn: int | None) -> list[tuple[Connection, Segment]]:
    """The segments to show: ``packets`` by number, else every one of connection ``conn``."""
    if packets is None:
        if not cap.connections:
            raise ValueError(f"{cap.path}: no TCP connections in {cap.packets} packets")
        n = 1 if conn is None else conn
        if not 1 <= n <= len(cap.connections):
            raise ValueError(f"--conn {n}: the file has connections 1 to {len(cap.connections)}"
                             " (see synack ladder --list)")
        c = cap.connections[n - 1]
        return [(c, s) for s in c.segments]
    index = {s.number: (c, s) for c in cap.connections for s in c.segments}
    skipped = dict(cap.skipped)
    out = []
    for number in packets:
        if number > cap.packets:
            raise ValueError(f"--packet {number}: the file has packets 1 to {cap.packets}")
        if number in skipped:
            raise ValueError(f"packet {number} cannot be dissected: {skipped[number]}")
        if number not in index:
            raise ValueError(f"packet {number} is not a TCP segment over IPv4 or IPv6")
        out.append(index[number])
    return out


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _row(label: str, value: str) -> str:
    return f"  {label}{' ' * max(1, LABEL_WIDTH - _width(label))}{value}"


def _option_text(slot: OptionSlot, lang: str, peer_isn: int | None) -> str:
    t = TEXT[lang]
    key = _KNOWN_TEXT.get(slot.kind)
    v = slot.value
    if key == "MSS" or key == "WSCALE":
        assert isinstance(v, int)
        return t[key].format(value=v, factor=1 << min(v, 14))
    if key == "TIMESTAMP":
        assert isinstance(v, tuple)
        return t[key].format(val=v[0], ecr=v[1])
    if key == "SACK":
        blocks = []
        for left, right in cast("tuple[tuple[int, int], ...]", v):
            text = f"{left}-{right}"
            if peer_isn is not None:
                text += f" (rel {sq.diff(left, peer_isn) & 0xFFFFFFFF}-" \
                        f"{sq.diff(right, peer_isn) & 0xFFFFFFFF})"
            blocks.append(text)
        return t[key].format(blocks=", ".join(blocks))
    if key is not None:
        return t[key]
    data = v if isinstance(v, bytes) else b""
    meaning = OTHER_KINDS.get(slot.kind)
    return t["unknown"].format(
        kind=slot.kind, size=len(data), data=data.hex() or "-",
        meaning=(meaning[LANGS.index(lang)] if meaning else t["unknown_meaning"]))


def _hex_rows(header: bytes, layout: OptionLayout, lang: str) -> list[str]:
    names = HEX_ROWS[lang]
    out = [f"  {TEXT[lang]['hex']}"]
    for start in range(0, len(header), 4):
        word = " ".join(f"{b:02x}" for b in header[start:start + 4])
        if start < 20:
            what = names[start // 4]
        else:
            # The options (and padding) that have at least one byte in this row.
            parts = [slot.name for slot in layout.options if slot.kind != OPT_EOL
                     and slot.offset < start + 4 and slot.offset + slot.length > start]
            if layout.padding_len and start + 4 > layout.padding_offset:
                parts.append(HEX_PADDING[lang])
            what = ", ".join(parts)
        out.append(f"    {start:>2}: {word:<11}  {what}")
    return out


def dissect(conn: Connection, s: Segment, packet: bytes, *, lang: str = "en",
            hex_rows: bool = False) -> list[str]:
    """The lines describing one segment, field by field, in ``lang``.

    ``packet`` is the IPv4 packet the segment came in; raises ParseError if its
    header bytes do not hold together (the capture already parsed it, so only a
    file changed in between could).
    """
    t, lab = TEXT[lang], LABELS[lang]
    if packet[0] >> 4 == 6:
        ip6, payload = parse_ipv6(packet)
        src, dst, ip_hlen = ip6.src, ip6.dst, ip6.header_length
    else:
        ip, payload = parse_ipv4(packet, verify_checksum=False)
        src, dst, ip_hlen = ip.src, ip.dst, ip.header_length
        ip6 = None
    tcp = bytes(payload)
    layout = tcp_option_layout(tcp)
    correct, expected = tcp_checksum_check(tcp, src, dst)
    seg, d = s.seg, s.direction
    hlen, plen = layout.header_len, len(tcp) - layout.header_len
    doff = hlen // 4
    flags = seg.flags
    out = [t["title"].format(n=s.number, c=conn.number, src=conn.name(d), dst=conn.name(1 - d),
                             who=t["client" if d == 0 else "server"], flags=flags_str(flags))]
    if ip6 is not None:
        out.extend(_ip6_rows(ip6, lang, hlen, plen))
    else:
        out.append(_row(lab["ip"], t["ip"].format(ihl=ip.header_length // 4,
                                                  hlen=ip.header_length, total=ip.total_length,
                                                  thlen=hlen, plen=plen)))
        tos = ip.tos                 # RFC 2474 DSCP and RFC 3168 ECN
        out.append(_row(lab["tos"], t["tos"].format(tc=tos, dscp=tos >> 2, ecn=tos & 3,
                                                    ecn_text=t[f"ecn{tos & 3}"])))
    out.append(_row(lab["sport"], str(seg.src_port)))
    out.append(_row(lab["dport"], str(seg.dst_port)))
    isn, peer_isn = conn.syn_seq[d], conn.syn_seq[1 - d]
    if flags & SYN:
        seq_text = t["seq_syn"].format(abs=seg.seq)
    elif isn is not None:
        seq_text = t["seq_rel"].format(abs=seg.seq, rel=sq.diff(seg.seq, isn) & 0xFFFFFFFF,
                                       isn=isn)
    else:
        seq_text = t["seq_abs"].format(abs=seg.seq)
    out.append(_row(lab["seq"], seq_text))
    if not flags & ACK:
        ack_text = t["ack_off"].format(abs=seg.ack)
    elif peer_isn is not None:
        ack_text = t["ack_rel"].format(abs=seg.ack, rel=sq.diff(seg.ack, peer_isn) & 0xFFFFFFFF)
    else:
        ack_text = t["ack_abs"].format(abs=seg.ack)
    out.append(_row(lab["ack"], ack_text))
    out.append(_row(lab["doff"], t["doff"].format(doff=doff, hlen=hlen, olen=hlen - 20)))
    out.append(_row(lab["reserved"], t["reserved_bad" if seg.reserved else "reserved_ok"]
                    .format(bits=f"{seg.reserved:04b}")))
    out.append(_row(lab["flags"], t["flags"].format(value=flags, names=flags_str(flags))))
    for i, (name, meaning) in enumerate(FLAG_MEANINGS[lang]):
        bit = 7 - i
        on = flags >> bit & 1
        mask = "".join(str(on) if j == i else "." for j in range(8))
        state = t["flag_set" if on else "flag_unset"]
        pad = " " * (9 - _width(state))
        out.append(f"    {mask[:4]} {mask[4:]} {name}  {state}{pad}{meaning}")
    out.append(_row(lab["window"], _window_text(conn, s, t)))
    ok = "csum_ok6" if ip6 is not None else "csum_ok"
    out.append(_row(lab["checksum"], (t[ok] if correct else t["csum_bad"])
                    .format(value=seg.checksum, expected=expected)))
    out.append(_row(lab["urgent"], t["urg_on" if flags & URG else "urg_off"]
                    .format(value=seg.urgent)))
    if layout.options:
        out.append(_row(lab["options"], t["opts"].format(olen=layout.options_len)))
        for slot in layout.options:
            out.append(f"    @{slot.offset:<3} kind {slot.kind:<3} len {slot.length:<3} "
                       f"{_option_text(slot, lang, peer_isn)}")
    else:
        out.append(_row(lab["options"], t["opts_none"]))
    if layout.padding_len:
        pad = t["pad"].format(plen=layout.padding_len, off=layout.padding_offset,
                              hlen=hlen, doff=doff, s="" if layout.padding_len == 1 else "s")
        if layout.padding_nonzero:
            pad += t["pad_nonzero"].format(count=layout.padding_nonzero)
    else:
        pad = t["pad_none"]
    out.append(_row(lab["padding"], pad))
    out.append(_row(lab["payload"], t["payload"].format(plen=plen)))
    out.append(_row(lab["headers"], t["headers6" if ip6 is not None else "headers"].format(
        total=ip_hlen + hlen, ip=ip_hlen, tcp=hlen)))
    if hex_rows:
        out.extend(_hex_rows(tcp[:hlen], layout, lang))
    return out


def _ip6_rows(ip6: IPv6Header, lang: str, thlen: int, dlen: int) -> list[str]:
    """The IPv6 header field by field (RFC 8200 section 3)."""
    t, lab, i = TEXT[lang], LABELS[lang], LANGS.index(lang)

    def name(n: int) -> str:
        known = NEXT_HEADERS.get(n)
        return known[i] if known else str(n)

    elen = ip6.header_length - 40
    ext = ""
    if ip6.extensions:
        chain = " -> ".join(name(k) for k, _ in ip6.extensions)
        ext = t["ip6_ext"].format(chain=chain, elen=elen)
    tc = ip6.traffic_class
    return [
        _row(lab["ip6"], t["ip6"].format(ext=ext)),
        _row(lab["ip6_tc"], t["ip6_tc"].format(tc=tc, dscp=tc >> 2, ecn=tc & 3,
                                                 ecn_text=t[f"ecn{tc & 3}"])),
        _row(lab["ip6_flow"], t["ip6_flow"].format(
            flow=ip6.flow_label, what=t["ip6_flow_set" if ip6.flow_label else "ip6_flow_none"])),
        _row(lab["ip6_plen"], t["ip6_plen"].format(plen=ip6.payload_length, elen=elen,
                                                   thlen=thlen, dlen=dlen)),
        _row(lab["ip6_next"], t["ip6_next"].format(nxt=ip6.next_header,
                                                   name=name(ip6.next_header))),
        _row(lab["ip6_hops"], t["ip6_hops"].format(hops=ip6.hop_limit)),
        _row(lab["ip6_src"], ip6.src),
        _row(lab["ip6_dst"], ip6.dst),
    ]


def _window_text(conn: Connection, s: Segment, t: dict[str, str]) -> str:
    raw = s.seg.window
    if s.seg.flags & SYN:
        return t["win_syn"].format(raw=raw)
    if conn.scaled:
        shift = conn.wscale[s.direction] or 0
        return t["win_scaled"].format(raw=raw, shift=shift, scaled=raw << shift)
    if all(conn.syn_seen):
        return t["win_noscale"].format(raw=raw)
    return t["win_unknown"].format(raw=raw)


def run(args: argparse.Namespace) -> int:
    """Print the selected segments field by field."""
    packets = parse_packet_list(args.packet) if args.packet is not None else None
    if args.conn is not None and args.conn < 1:
        raise ValueError(f"--conn {args.conn}: connections are numbered from 1")
    if not os.path.isfile(args.file):
        raise ValueError(f"{args.file}: no such file")
    cap = read_capture(args.file)
    for line in cap.warnings():
        print(f"synack: {line}", file=sys.stderr)
    chosen = select(cap, packets, args.conn)
    raw = raw_packets(args.file, {s.number for _, s in chosen})
    blocks = []
    for conn, s in chosen:
        try:
            blocks.append("\n".join(dissect(conn, s, raw[s.number], lang=args.lang,
                                            hex_rows=args.hex)))
        except (ParseError, KeyError) as exc:
            print(f"synack: packet {s.number}: {exc}", file=sys.stderr)
            return 1
    print("\n\n".join(blocks))
    return 0
