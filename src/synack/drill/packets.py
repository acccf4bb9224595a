"""Script packets to wire bytes, and wire bytes checked against script packets.

The rules are packetdrill's (``run_packet.c``), restated:

- The script's side (remote) writes absolute sequence numbers; the runner offsets
  them by the remote ISN, which is the sequence number of the script's own SYN (so a
  script whose SYN says ``0:0(0)`` needs no offset at all).
- The stack's side (local) is written relative to its ISN: an outbound SYN or
  SYN-ACK is compared as written (``0:0(0)``) and teaches the live ISN; every later
  outbound seq, and every inbound ack and SACK block, is offset by it.
- TCP timestamps: an outbound ``TS val X`` maps script value X to the live value
  seen in that packet; an inbound ACK's ``ecr X`` is replaced by the live value
  mapped to X (an unknown X is an error). Outbound TS values are not checked
  unless ``--tcp_ts_tick_usecs`` is given; outbound ``ecr`` never is.
- An outbound packet's checks run in packetdrill's order (IP lengths, ECN/TOS,
  TTL, TCP data offset and flags, seq, ack, window unless omitted, urgent
  pointer, then the options one by one in wire order, then the payload), and the
  first difference is the error: ``live packet field tcp_ack_seq: expected: 1001
  (0x3e9) vs actual: 1 (0x1)``.

:class:`Conn` is the "socket under test": the addresses, ports and ISNs that map
script values to live ones. The runner decides which one is current.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from synack.drill import ast
from synack.wire.checksum import internet_checksum, pseudo_header_sum
from synack.wire.errors import ParseError
from synack.wire.icmp6 import Icmp6Message, encode_icmp6
from synack.wire.ipv4 import PROTO_ICMP, PROTO_TCP, IPv4Header, encode_ipv4, parse_ipv4
from synack.wire.ipv6 import PROTO_ICMPV6, IPv6Header, encode_ipv6, parse_ipv6

_M32 = 0xFFFFFFFF
OPT_KIND = {"eol": 0, "nop": 1, "mss": 2, "wscale": 3, "sackOK": 4, "sack": 5, "TS": 8,
            "md5": 19, "FO": 34, "FOEXP": 254}
_FOEXP_MAGIC = 0xF989            # RFC 7413's experimental-option magic number
_ECN_BITS = {"noecn": 0, "ect1": 1, "ect0": 2, "ce": 3}
_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "U": 0x20, "E": 0x40, "W": 0x80}
_AE = 0x100                      # the AccECN bit, the low reserved bit (RFC 9768)
_ICMP_TYPES = {"echo_reply": 0, "unreachable": 3, "source_quench": 4, "redirect": 5,
               "echo_request": 8, "time_exceeded": 11, "parameter_problem": 12}
_UNREACH_CODES = ("net_unreachable", "host_unreachable", "protocol_unreachable",
                  "port_unreachable", "frag_needed", "source_route_failed", "net_unknown",
                  "host_unknown", "source_host_isolated", "net_prohibited", "host_prohibited",
                  "net_unreachable_for_tos", "host_unreachable_for_tos", "packet_filtered",
                  "precedence_violation", "precedence_cutoff")


class PacketError(Exception):
    """A script packet that cannot be built or a live packet that does not match."""


@dataclass(slots=True)
class Conn:
    """The socket under test: how script values map to live ones (packetdrill's
    ``struct socket``). ``state`` follows packetdrill's socket states by name."""

    state: str = "new"
    local_port: int = 0
    remote_port: int = 0
    script_local_isn: int = 0
    live_local_isn: int = 0
    remote_isn: int = 0
    ts_map: dict[int, int] = field(default_factory=dict)
    first_ts: tuple[int, int] | None = None   # (script val, live val) of the first TS seen
    script_fd: int | None = None
    last_out: Live | None = None

    def local_offset(self, syn: bool) -> int:
        """Script-to-live offset of local sequence numbers (outbound seq, inbound ack)."""
        return (self.live_local_isn - self.script_local_isn) & _M32 if syn else self.live_local_isn

    def remote_offset(self, syn: bool) -> int:
        """Script-to-live offset of remote sequence numbers (inbound seq, outbound ack)."""
        return 0 if syn else self.remote_isn


def options_wire_len(options: tuple[ast.TcpOption, ...]) -> int:
    """Bytes the options take on the wire, as written."""
    return len(encode_options(options, strict=False))


def _cookie(opt: ast.TcpOption) -> bytes:
    text = opt.cookie or ""
    if len(text) % 2:
        raise PacketError(f"{opt.kind} cookie {text!r} has an odd number of hex digits")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise PacketError(f"{opt.kind} cookie {text!r} is not hex (a -D symbol missing?)")\
            from None


def encode_options(options: tuple[ast.TcpOption, ...], *, strict: bool = True,
                   ack_offset: int = 0, ecr: int | None = None) -> bytes:
    """The options in script order; SACK blocks offset by ``ack_offset``; ``ecr``
    (when given) replaces the TS echo reply."""
    out = bytearray()
    for opt in options:
        k = opt.kind
        if k in ("nop", "eol"):
            out.append(OPT_KIND[k])
        elif k == "mss":
            out += struct.pack("!BBH", 2, 4, (opt.value or 0) & 0xFFFF)
        elif k == "wscale":
            out += struct.pack("!BBB", 3, 3, (opt.value or 0) & 0xFF)
        elif k == "sackOK":
            out += b"\x04\x02"
        elif k == "sack":
            out += bytes((5, 2 + 8 * len(opt.blocks)))
            for a, b in opt.blocks:
                out += struct.pack("!II", (a + ack_offset) & _M32, (b + ack_offset) & _M32)
        elif k == "TS":
            e = opt.ecr if ecr is None else ecr
            out += struct.pack("!BBII", 8, 10, (opt.val or 0) & _M32, (e or 0) & _M32)
        elif k == "FO":
            data = _cookie(opt) if strict else bytes(len(opt.cookie or "") // 2)
            out += bytes((34, 2 + len(data))) + data
        elif k == "FOEXP":
            data = _cookie(opt) if strict else bytes(len(opt.cookie or "") // 2)
            out += struct.pack("!BBH", 254, 4 + len(data), _FOEXP_MAGIC) + data
        elif k == "md5":
            out += bytes((19, 18)) + bytes(16)
    return bytes(out)


# --- inbound -----------------------------------------------------------------------

def tcp_flags(pkt: ast.TcpPacket) -> int:
    """The header's flag bits (with AE as bit 8) for a script segment."""
    bits = 0x10 if pkt.ack_flag else 0
    for ch in pkt.flags:
        bits |= _AE if ch == "A" else _FLAG_BITS[ch]
    return bits


def build_tcp(pkt: ast.TcpPacket, ip: ast.IpInfo, conn: Conn, src: str, dst: str,
              ts_ecr_scaled: bool = False) -> bytes:
    """The live IPv4 packet for an inbound script segment (packetdrill's
    ``map_inbound_packet``)."""
    if pkt.win is None:
        raise PacketError("window must be specified for inbound packets")
    flags = tcp_flags(pkt)
    syn = bool(flags & 0x02)
    seq = (pkt.seq + conn.remote_offset(syn)) & _M32
    ack_offset = conn.local_offset(syn)
    ack = ((pkt.ack or 0) + ack_offset) & _M32 if flags & 0x10 else (pkt.ack or 0) & _M32
    ecr = None
    options = pkt.options or ()
    ts = next((o for o in options if o.kind == "TS"), None)
    if ts is not None and flags & 0x10:
        script_ecr = (ts.ecr or 0) & _M32
        if script_ecr in conn.ts_map:
            ecr = conn.ts_map[script_ecr]
        elif ts_ecr_scaled and conn.first_ts is not None:
            ecr = (script_ecr - conn.first_ts[0] + conn.first_ts[1]) & _M32
        else:
            raise PacketError(f"unable to infer live TS ecr for script TS ecr {script_ecr};  "
                              f"no matching or preceding outbound TS val")
    opts = encode_options(options, ack_offset=ack_offset, ecr=ecr)
    if len(opts) % 4:
        raise PacketError(f"TCP options are not padded correctly to ensure TCP header is a "
                          f"multiple of 4 bytes: {len(opts) % 4} excess bytes")
    sport = pkt.src_port if pkt.src_port is not None else conn.remote_port
    dport = pkt.dst_port if pkt.dst_port is not None else conn.local_port
    hlen = 20 + len(opts)
    header = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq, ack,
                                   (hlen // 4) << 4 | (flags >> 8), flags & 0xFF,
                                   pkt.win & 0xFFFF, 0, (pkt.urg or 0) & 0xFFFF)) + opts
    payload = bytes(pkt.length)
    total = hlen + len(payload)
    csum = internet_checksum(bytes(header) + payload, pseudo_header_sum(src, dst, PROTO_TCP, total))
    struct.pack_into("!H", header, 16, csum)
    if ":" in src:      # --ip_version=ipv6: the traffic class carries what IPv4's TOS does
        return encode_ipv6(IPv6Header(src=src, dst=dst, proto=PROTO_TCP,
                                      traffic_class=_tos(ip)), bytes(header) + payload)
    return encode_ipv4(IPv4Header(src=src, dst=dst, proto=PROTO_TCP, tos=_tos(ip)),
                       bytes(header) + payload)


def _tos(ip: ast.IpInfo) -> int:
    if ip.tos is not None:
        return ip.tos & 0xFF
    return _ECN_BITS.get(ip.ecn or "noecn", 0)


# packetdrill's ICMP names in IPv6 mode (its icmpv6 table): type, and the codes by name.
_ICMP6_TYPES = {"unreachable": 1, "packet_too_big": 2, "time_exceeded": 3,
                "parameter_problem": 4, "echo_request": 128, "echo_reply": 129}
_UNREACH6_CODES = ("no_route", "admin_prohibited", "beyond_scope", "address_unreachable",
                   "port_unreachable")


def _build_icmp6(pkt: ast.IcmpPacket, ip: ast.IpInfo, conn: Conn, src: str,
                 dst: str) -> bytes:
    """An inbound ICMPv6 error quoting the stack's segment (its IPv6 header and TCP
    ports and sequence number). IPv4 names map as Linux's icmpv6 does: frag_needed is
    packet too big, port_unreachable and the like keep their meaning."""
    name = pkt.type_name
    code_name = pkt.code_name
    if name == "unreachable" and code_name == "frag_needed":
        name, code_name = "packet_too_big", None
    if name not in _ICMP6_TYPES:
        raise PacketError(f"unsupported: ICMP type {pkt.type_name!r} in IPv6")
    type_ = _ICMP6_TYPES[name]
    code = 0
    if code_name is not None:
        if type_ == 1 and code_name in _UNREACH6_CODES:
            code = _UNREACH6_CODES.index(code_name)
        elif type_ == 1 and code_name in ("net_unreachable", "host_unreachable"):
            code = 3 if code_name == "host_unreachable" else 0
        elif code_name.isdigit():
            code = int(code_name)
        else:
            raise PacketError(f"unknown ICMP code {code_name!r} for {pkt.type_name} in IPv6")
    seq, _end, length = pkt.echoed or (0, 0, 0)
    live_seq = (seq + conn.local_offset(False)) & _M32
    quoted = encode_ipv6(IPv6Header(src=dst, dst=src, proto=PROTO_TCP), struct.pack(
        "!HHI", conn.local_port, conn.remote_port, live_seq) + bytes(12 + length))[:48]
    msg = Icmp6Message(type_, code, mtu=(pkt.mtu or 0) if type_ == 2 else 0, payload=quoted)
    return encode_ipv6(IPv6Header(src=src, dst=dst, proto=PROTO_ICMPV6,
                                  traffic_class=_tos(ip)), encode_icmp6(msg, src, dst))


def build_icmp(pkt: ast.IcmpPacket, ip: ast.IpInfo, conn: Conn, src: str, dst: str) -> bytes:
    """An inbound ICMP error quoting the stack's segment (IP header + 8 bytes)."""
    if ":" in src:
        return _build_icmp6(pkt, ip, conn, src, dst)
    if pkt.type_name not in _ICMP_TYPES:
        raise PacketError(f"unsupported: ICMP type {pkt.type_name!r} in IPv4")
    type_ = _ICMP_TYPES[pkt.type_name]
    code = 0
    if pkt.code_name is not None:
        if type_ == 3 and pkt.code_name in _UNREACH_CODES:
            code = _UNREACH_CODES.index(pkt.code_name)
        elif pkt.code_name.isdigit():
            code = int(pkt.code_name)
        else:
            raise PacketError(f"unknown ICMP code {pkt.code_name!r} for {pkt.type_name}")
    seq, _end, length = pkt.echoed or (0, 0, 0)
    live_seq = (seq + conn.local_offset(False)) & _M32
    quoted_ip = IPv4Header(src=dst, dst=src, proto=PROTO_TCP)
    quoted = encode_ipv4(quoted_ip, struct.pack("!HHI", conn.local_port, conn.remote_port,
                                                live_seq) + bytes(12 + length))[:28]
    rest = (pkt.mtu or 0) & 0xFFFF if pkt.mtu is not None else 0
    body = bytearray(struct.pack("!BBHHH", type_, code, 0, 0, rest)) + quoted
    struct.pack_into("!H", body, 2, internet_checksum(bytes(body)))
    return encode_ipv4(IPv4Header(src=src, dst=dst, proto=PROTO_ICMP, tos=_tos(ip),
                                  dont_fragment=False), bytes(body))


# --- outbound ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Live:
    """An outbound packet as seen on the wire (TCP only; ``tcp`` False otherwise)."""

    src: str
    dst: str
    tos: int
    ttl: int
    ihl: int
    total_length: int
    proto: int
    tcp: bool = False
    sport: int = 0
    dport: int = 0
    seq: int = 0
    ack: int = 0
    doff: int = 0
    flags: int = 0
    win: int = 0
    urg: int = 0
    options: tuple[tuple[int, bytes], ...] = ()    # (kind, data) in wire order
    payload: bytes = b""

    @property
    def syn(self) -> bool:
        return bool(self.flags & 0x02)

    def ts(self) -> tuple[int, int] | None:
        for kind, data in self.options:
            if kind == 8 and len(data) == 8:
                val, ecr = struct.unpack("!II", data)
                return val, ecr
        return None


def parse_live(packet: bytes) -> Live:
    """Decode an outbound IPv4 or IPv6 packet; :class:`PacketError` if it is malformed.
    For IPv6, ``tos`` is the traffic class, ``ttl`` the hop limit, ``ihl`` the header
    length in 32-bit words (10 without extension headers)."""
    try:
        if packet and packet[0] >> 4 == 6:
            hdr6, payload = parse_ipv6(packet)
            base: tuple[str, str, int, int, int, int, int] = (
                hdr6.src, hdr6.dst, hdr6.traffic_class, hdr6.hop_limit,
                hdr6.header_length // 4, 40 + hdr6.payload_length, hdr6.proto)
        else:
            hdr, payload = parse_ipv4(packet)
            base = (hdr.src, hdr.dst, hdr.tos, hdr.ttl, hdr.header_length // 4,
                    hdr.total_length, hdr.proto)
    except ParseError as exc:
        raise PacketError(f"bad outbound IP packet: {exc}") from None
    data = bytes(payload)
    if base[6] != PROTO_TCP or len(data) < 20:
        return Live(*base)
    sport, dport, seq, ack, off, fl, win, _csum, urg = struct.unpack_from("!HHIIBBHHH", data)
    doff = off >> 4
    flags = fl | ((off & 0x01) << 8)
    opts: list[tuple[int, bytes]] = []
    i, end = 20, min(doff * 4, len(data))
    while i < end:
        kind = data[i]
        if kind in (0, 1):
            opts.append((kind, b""))
            i += 1
            continue
        length = data[i + 1] if i + 1 < end else 0
        if length < 2 or i + length > end:
            raise PacketError(f"bad outbound TCP option kind {kind} length {length}")
        opts.append((kind, data[i + 2:i + length]))
        i += length
    return Live(*base, True, sport, dport, seq, ack, doff, flags, win, urg, tuple(opts),
                data[doff * 4:])


def _field(name: str, expected: int, actual: int) -> str | None:
    if expected == actual:
        return None
    return (f"live packet field {name}: expected: {expected} ({expected:#x}) "
            f"vs actual: {actual} ({actual:#x})")


def verify(pkt: ast.TcpPacket, ip: ast.IpInfo, live: Live, conn: Conn,
           ts_tick_us: int = 0, ts_tolerance_us: int = 0) -> tuple[str | None, Live]:
    """Map ``live`` into script space and compare it with the script segment.

    Returns (the first difference or None, the live packet in script space, for
    the ``actual packet:`` line). Records the TS val mapping as a side effect.
    """
    syn = live.syn
    seq = (live.seq - conn.local_offset(syn)) & _M32
    ack = (live.ack - conn.remote_offset(syn)) & _M32 if live.flags & 0x10 else live.ack
    ack_back = (-conn.remote_offset(syn)) & _M32
    options = tuple(
        (k, b"".join(struct.pack("!I", (v + ack_back) & _M32)
                     for v in struct.unpack(f"!{len(d) // 4}I", d))) if k == 5 else (k, d)
        for k, d in live.options)
    script_opts = pkt.options
    script_ts = next((o for o in script_opts or () if o.kind == "TS"), None)
    live_ts = live.ts()
    if script_ts is not None and live_ts is not None:
        sval = (script_ts.val or 0) & _M32
        conn.ts_map[sval] = live_ts[0]
        if conn.first_ts is None:
            conn.first_ts = (sval, live_ts[0])
        mapped = (conn.first_ts[0] + live_ts[0] - conn.first_ts[1]) & _M32
        options = tuple((k, struct.pack("!II", mapped, live_ts[1]) if k == 8 else d)
                        for k, d in options)
    actual = Live(live.src, live.dst, live.tos, live.ttl, live.ihl, live.total_length,
                  live.proto, True, live.sport, live.dport, seq, ack, live.doff, live.flags,
                  live.win, live.urg, options, live.payload)
    return _compare(pkt, ip, actual, ts_tick_us, ts_tolerance_us), actual


def _compare(pkt: ast.TcpPacket, ip: ast.IpInfo, a: Live, ts_tick_us: int,
             ts_tolerance_us: int) -> str | None:
    nocheck = pkt.options is None
    script_opts = b"" if pkt.options is None else encode_options(pkt.options, strict=False)
    allowance = a.doff * 4 - 20 if nocheck else 0
    script_doff = (20 + len(script_opts) + allowance) // 4
    v6 = ":" in a.src
    expected_total = (60 if v6 else 40) + len(script_opts) + allowance + pkt.length
    if a.proto != PROTO_TCP:
        return f"live packet header layer 1: expected: TCP header vs actual: proto {a.proto}"
    flags = tcp_flags(pkt)
    checks = [
        ("ipv6_header_length", 10, a.ihl) if v6 else ("ipv4_header_length", 5, a.ihl),
        ("ipv6_total_length" if v6 else "ipv4_total_length", expected_total, a.total_length),
    ]
    for name, exp, act in checks:
        err = _field(name, exp, act)
        if err:
            return err
    ecn = a.tos & 3
    if ip.ecn == "ect01":
        if ecn not in (1, 2):
            return f"live packet field ip_ecn: expected: 0x1 or 0x2 vs actual: {ecn:#x}"
    elif ip.tos is not None:
        err = _field("tos", ip.tos, a.tos)
        if err:
            return err
    elif ip.ecn is not None:
        err = _field("ip_ecn", _ECN_BITS[ip.ecn], ecn)
        if err:
            return err
    if ip.ttl is not None and (err := _field("ttl", ip.ttl, a.ttl)):
        return err
    bit_checks = [("tcp_data_offset", script_doff, a.doff)]
    for name, bit in (("tcp_fin", 0x01), ("tcp_syn", 0x02), ("tcp_rst", 0x04), ("tcp_psh", 0x08),
                      ("tcp_ack", 0x10), ("tcp_urg", 0x20), ("tcp_ece", 0x40), ("tcp_cwr", 0x80),
                      ("tcp_ae", _AE)):
        bit_checks.append((name, int(bool(flags & bit)), int(bool(a.flags & bit))))
    bit_checks.append(("tcp_seq", pkt.seq & _M32, a.seq))
    bit_checks.append(("tcp_ack_seq", (pkt.ack or 0) & _M32 if flags & 0x10 else a.ack, a.ack))
    if pkt.win is not None:
        bit_checks.append(("tcp_window", pkt.win, a.win))
    bit_checks.append(("tcp_urg_ptr", pkt.urg or 0, a.urg))
    for name, exp, act in bit_checks:
        err = _field(name, exp, act)
        if err:
            return err
    if not nocheck:
        err = _compare_options(pkt.options or (), a, ts_tick_us, ts_tolerance_us)
        if err:
            return err
    if a.payload != bytes(pkt.length):
        return "incorrect outbound data payload"
    return None


def _wire_len(options: tuple[tuple[int, bytes], ...]) -> int:
    return sum(1 if k in (0, 1) else 2 + len(d) for k, d in options)


def _compare_options(script: tuple[ast.TcpOption, ...], a: Live, ts_tick_us: int,
                     ts_tolerance_us: int) -> str | None:
    actual = list(a.options)
    for i, opt in enumerate(script):
        if i >= len(actual) or actual[i][0] != OPT_KIND[opt.kind]:
            return "bad outbound TCP options"
        kind, data = actual[i]
        if kind == 8:
            if ts_tick_us:
                val = struct.unpack("!I", data[:4])[0]
                dev = abs(((val - (opt.val or 0) + 2**31) & _M32) - 2**31)
                if dev * ts_tick_us > ts_tolerance_us:
                    return f"bad outbound TCP timestamp value, tolerance {ts_tolerance_us}"
            continue
        if kind in (0, 1):
            continue
        want = encode_options((opt,), strict=False)[2:]
        if kind in (34, 254) and opt.cookie:
            try:
                want = encode_options((opt,))[2:]
            except PacketError as exc:
                return str(exc)
        if want != data:
            what = "bad length" if len(want) != len(data) else "bad value"
            return (f"{what} in outbound TCP option (kind={kind}): expected: {opt.text()} "
                    f"actual: {option_text(kind, data)}")
    if len(actual) > len(script):
        return "bad outbound TCP options"
    return None


def aggregate(parts: list[Live]) -> Live:
    """Segments the stack split, as one (packetdrill's ``aggregate_packets``): the last
    one's headers, the first one's seq and CWR bit, every payload in order."""
    first, last = parts[0], parts[-1]
    payload = b"".join(p.payload for p in parts)
    flags = (last.flags & ~0x80) | (first.flags & 0x80)
    return Live(last.src, last.dst, last.tos, last.ttl, last.ihl,
                last.total_length + len(payload) - len(last.payload), last.proto, True,
                last.sport, last.dport, first.seq, last.ack, last.doff, flags, last.win,
                last.urg, last.options, payload)


# --- text --------------------------------------------------------------------------

def option_text(kind: int, data: bytes) -> str:
    """One live option in script syntax."""
    if kind == 0:
        return "eol"
    if kind == 1:
        return "nop"
    if kind == 2 and len(data) == 2:
        return f"mss {struct.unpack('!H', data)[0]}"
    if kind == 3 and len(data) == 1:
        return f"wscale {data[0]}"
    if kind == 4:
        return "sackOK"
    if kind == 5:
        vals = struct.unpack(f"!{len(data) // 4}I", data[:len(data) // 4 * 4])
        return "sack " + " ".join(f"{vals[i]}:{vals[i + 1]}" for i in range(0, len(vals) - 1, 2))
    if kind == 8 and len(data) == 8:
        val, ecr = struct.unpack("!II", data)
        return f"TS val {val} ecr {ecr}"
    if kind == 34:
        return f"FO {data.hex()}" if data else "FO"
    if kind == 254 and len(data) >= 2:
        return f"FOEXP {data[2:].hex()}" if len(data) > 2 else "FOEXP"
    if kind == 19:
        return "md5"
    return f"kind {kind} len {len(data) + 2}"


def live_text(a: Live) -> str:
    """A live packet (already in script space) as a script line, like packetdrill's dump."""
    if not a.tcp:
        return "icmpv4" if a.proto == PROTO_ICMP else f"proto {a.proto}"
    flags = "".join(ch for bit, ch in ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"),
                                       (0x10, "."), (0x20, "U"), (0x40, "E"), (0x80, "W"),
                                       (_AE, "A")) if a.flags & bit)
    n = len(a.payload)
    text = f"{flags} {a.seq}:{(a.seq + n) & _M32}({n}) "
    if a.flags & 0x10:
        text += f"ack {a.ack} "
    text += f"win {a.win} "
    if a.options:
        text += "<" + ",".join(option_text(k, d) for k, d in a.options) + ">"
    return text.rstrip()


def script_text(pkt: ast.TcpPacket) -> str:
    """A script segment in the same layout as :func:`live_text`."""
    flags = tcp_flags(pkt)
    fl = "".join(ch for bit, ch in ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"),
                                    (0x10, "."), (0x20, "U"), (0x40, "E"), (0x80, "W"),
                                    (_AE, "A")) if flags & bit)
    text = f"{fl} {pkt.seq}:{pkt.end_seq}({pkt.length}) "
    if pkt.ack is not None and flags & 0x10:
        text += f"ack {pkt.ack} "
    if pkt.win is not None:
        text += f"win {pkt.win} "
    if pkt.options is None:
        text += "<...>"
    elif pkt.options:
        text += "<" + ",".join(o.text() for o in pkt.options) + ">"
    return text.rstrip()
