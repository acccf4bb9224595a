"""Script packets to bytes and back: options in script order, packetdrill's sequence
mapping, and the first differing field named as packetdrill names it."""

import struct

from synack.drill import ast
from synack.drill.packets import Conn, build_tcp, live_text, parse_live, verify
from synack.drill.parse import parse_text
from synack.wire.ipv4 import parse_ipv4
from synack.wire.tcp import parse_tcp

LOCAL, REMOTE = "192.168.0.1", "192.0.2.1"


def packet(line: str) -> ast.PacketEvent:
    ev = parse_text(f"0 {line}\n", "p.pkt").events[0]
    assert isinstance(ev, ast.PacketEvent)
    return ev


def tcp(ev: ast.PacketEvent) -> ast.TcpPacket:
    assert isinstance(ev.packet, ast.TcpPacket)
    return ev.packet


def test_inbound_bytes_keep_option_order_and_checksums() -> None:
    ev = packet("< S 0:0(0) win 5792 <mss 1460,nop,wscale 2,nop,nop,sackOK>")
    conn = Conn(local_port=8080, remote_port=40000)
    data = build_tcp(tcp(ev), ev.ip, conn, REMOTE, LOCAL)
    hdr, payload = parse_ipv4(data)                      # verifies the IP checksum
    seg = parse_tcp(payload, hdr.src, hdr.dst)           # and the TCP checksum
    assert (seg.src_port, seg.dst_port, seg.seq, seg.window) == (40000, 8080, 0, 5792)
    assert bytes(payload[20:32]) == bytes([2, 4, 5, 180, 1, 3, 3, 2, 1, 1, 4, 2])


def test_inbound_seq_ack_sack_and_ecr_are_mapped() -> None:
    conn = Conn(local_port=8080, remote_port=40000, remote_isn=1000, live_local_isn=5000,
                ts_map={100: 777})
    ev = packet("< P. 1:11(10) ack 21 win 100 <nop,nop,TS val 9 ecr 100,nop,nop,sack 31:41>")
    hdr, payload = parse_ipv4(build_tcp(tcp(ev), ev.ip, conn, REMOTE, LOCAL))
    seg = parse_tcp(payload, hdr.src, hdr.dst)
    assert (seg.seq, seg.ack) == (1001, 5021)            # remote ISN; local ISN
    assert seg.timestamps == (9, 777)                    # ecr: the live TS val of script 100
    assert seg.sack_blocks == ((5031, 5041),)
    assert seg.payload == bytes(10)


def live_of(line: str, conn: Conn) -> bytes:
    """What the stack would send for ``line`` (written as if inbound, then reversed)."""
    ev = packet(line.replace(">", "<", 1))
    rev = Conn(local_port=conn.remote_port, remote_port=conn.local_port,
               remote_isn=conn.live_local_isn, ts_map={5: 5})
    return build_tcp(tcp(ev), ev.ip, rev, LOCAL, REMOTE)


def test_outbound_match_and_first_difference() -> None:
    conn = Conn(local_port=8080, remote_port=40000, live_local_isn=5000, remote_isn=0)
    live = parse_live(live_of("> P. 1:101(100) ack 1 win 300 <nop,nop,TS val 70 ecr 5>", conn))
    want = packet("> P. 1:101(100) ack 1 <nop,nop,TS val 10 ecr 5>")
    err, actual = verify(tcp(want), want.ip, live, conn)
    assert err is None
    assert live_text(actual) == "P. 1:101(100) ack 1 win 300 <nop,nop,TS val 10 ecr 5>"
    assert conn.ts_map == {10: 70}
    want = packet("> P. 1:101(100) ack 2 <nop,nop,TS val 10 ecr 5>")
    err, _ = verify(tcp(want), want.ip, live, conn)
    assert err == "live packet field tcp_ack_seq: expected: 2 (0x2) vs actual: 1 (0x1)"
    want = packet("> P. 1:101(100) ack 1 win 299 <nop,nop,TS val 10 ecr 5>")
    err, _ = verify(tcp(want), want.ip, live, conn)
    assert err == "live packet field tcp_window: expected: 299 (0x12b) vs actual: 300 (0x12c)"
    want = packet("> . 1:101(100) ack 1 <nop,nop,TS val 10 ecr 5>")
    err, _ = verify(tcp(want), want.ip, live, conn)
    assert err == "live packet field tcp_psh: expected: 0 (0x0) vs actual: 1 (0x1)"
    want = packet("> P. 1:101(100) ack 1")
    err, _ = verify(tcp(want), want.ip, live, conn)
    assert err == "live packet field ipv4_total_length: expected: 140 (0x8c) vs actual: " \
                  "152 (0x98)"
    want = packet("> P. 1:101(100) ack 1 <...>")
    assert verify(tcp(want), want.ip, live, conn)[0] is None


def test_outbound_option_values_are_compared() -> None:
    conn = Conn(local_port=8080, remote_port=40000)
    live = parse_live(live_of("> S. 0:0(0) ack 1 win 65535 <mss 1000,nop,nop,sackOK>", conn))
    want = packet("> S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK>")
    err, _ = verify(tcp(want), want.ip, live, conn)
    assert err == "bad value in outbound TCP option (kind=2): expected: mss 1460 actual: mss 1000"
    want = packet("> S. 0:0(0) ack 1 <mss 1000,sackOK,nop,nop>")
    err, _ = verify(tcp(want), want.ip, live, conn)
    assert err == "bad outbound TCP options"


def test_ecn_codepoints_and_payload() -> None:
    conn = Conn(local_port=8080, remote_port=40000)
    data = bytearray(live_of("> [ect0] . 1:11(10) ack 1 win 10", conn))
    assert data[1] & 3 == 2
    live = parse_live(bytes(data))
    want = packet("> [ce] . 1:11(10) ack 1")
    err, _ = verify(tcp(want), want.ip, live, conn)
    assert err == "live packet field ip_ecn: expected: 3 (0x3) vs actual: 2 (0x2)"
    data[-1] = 1                            # a payload byte, checksums aside
    struct.pack_into("!H", data, 10, 0)
    from synack.wire.checksum import internet_checksum
    struct.pack_into("!H", data, 10, internet_checksum(bytes(data[:20])))
    want = packet("> [ect0] . 1:11(10) ack 1")
    err, _ = verify(tcp(want), want.ip, parse_live(bytes(data)), conn)
    assert err == "incorrect outbound data payload"
