"""Reading captures into connections: relative numbers, Wireshark's marks, inferred states."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

from synack.demo.bulk import transfer
from synack.sim import LinkParams, Network
from synack.trace.analysis import OUT_OF_ORDER, RETRANSMISSIONS, is_retransmission
from synack.trace.capture import Connection, read_capture
from synack.wire.ipv4 import build_tcp_packet, parse_tcp_packet
from synack.wire.pcap import LINKTYPE_LINUX_SLL2, LINKTYPE_RAW, PcapWriter
from synack.wire.tcp import ACK, FIN, PSH, SYN, TcpSegment

A, B = "192.0.2.1", "192.0.2.2"


def worked_example_pcap(tmp_path: Path) -> Path:
    """The seeds' worked example (ISNs 100 and 300) run in the simulator, saved."""
    from synack.demo.scenarios import SCENARIOS

    outcome = SCENARIOS["worked-example"](1)
    path = tmp_path / "worked.pcap"
    assert outcome.net is not None
    outcome.net.write_pcap(path)
    return path


def rows(conn: Connection, direction: int) -> list[tuple[str, int, int, int]]:
    """(flags, seq, ack, len) of every segment sent in ``direction``."""
    from synack.wire.tcp import flags_str

    return [(flags_str(s.flags), s.seq, s.ack, s.length)
            for s in conn.segments if s.direction == direction]


def test_worked_example_relative_numbers(tmp_path: Path) -> None:
    cap = read_capture(worked_example_pcap(tmp_path))
    assert cap.packets == 15 and cap.other == 0 and not cap.skipped
    [conn] = cap.connections
    assert conn.a[0] == A and conn.b == (B, 80)
    assert conn.base == [100, 300]
    client = rows(conn, 0)
    server = rows(conn, 1)
    assert client[0] == ("SYN", 0, 0, 0)
    assert ("PSH,ACK", 1, 1, 1000) in client
    assert ("FIN,ACK", 1001, 2001, 0) in client
    assert client[-1] == ("ACK", 1002, 2052, 0)
    assert server[0] == ("SYN,ACK", 0, 1, 0)
    assert ("ACK", 1, 1001, 1448) in server and ("PSH,ACK", 1449, 1001, 552) in server
    assert ("ACK", 2001, 1002, 0) in server          # the ACK of the client's FIN
    assert ("PSH,ACK", 2001, 1002, 50) in server
    assert ("FIN,ACK", 2051, 1002, 0) in server
    # Windows are scaled after the handshake (both SYNs offered wscale 7), raw on the SYNs.
    assert conn.wscale == [7, 7]
    assert conn.segments[0].window == conn.segments[0].seg.window
    third = conn.segments[2]
    assert third.window == third.seg.window << 7
    assert not any(s.marks for s in conn.segments)


def test_worked_example_states(tmp_path: Path) -> None:
    [conn] = read_capture(worked_example_pcap(tmp_path)).connections
    seen = [(("client", "server")[ch.side], ch.old, ch.new) for ch in conn.changes]
    assert seen == [
        ("client", "", "CLOSED"), ("server", "", "LISTEN"),
        ("client", "CLOSED", "SYN_SENT"), ("server", "LISTEN", "SYN_RECEIVED"),
        ("client", "SYN_SENT", "ESTABLISHED"), ("server", "SYN_RECEIVED", "ESTABLISHED"),
        ("client", "ESTABLISHED", "FIN_WAIT_1"), ("server", "ESTABLISHED", "CLOSE_WAIT"),
        ("client", "FIN_WAIT_1", "FIN_WAIT_2"), ("server", "CLOSE_WAIT", "LAST_ACK"),
        ("client", "FIN_WAIT_2", "TIME_WAIT"), ("server", "LAST_ACK", "CLOSED"),
    ]
    by_number = {s.number: s for s in conn.segments}
    fin_wait_1 = next(ch for ch in conn.changes if ch.new == "FIN_WAIT_1")
    assert fin_wait_1.before and by_number[fin_wait_1.number].flags & FIN


def lossy_run(tmp_path: Path, seed: int, loss: float) -> tuple[Path, Network]:
    nets: list[Network] = []
    path = tmp_path / f"loss{seed}.pcap"
    r = transfer(150_000, seed=seed, link=LinkParams(delay_us=10_000, rate_bps=10_000_000,
                                                      loss=loss),
                 back=LinkParams(delay_us=10_000), pcap=str(path), setup=nets.append)
    assert r.intact and r.finished
    return path, nets[0]


def test_marks_on_a_lossy_run_are_where_the_simulator_dropped(tmp_path: Path) -> None:
    path, net = lossy_run(tmp_path, seed=1, loss=0.03)
    lost: set[int] = set()
    for rec in net.records:
        if rec.fate == "lost" and rec.src == A:
            _, seg = parse_tcp_packet(rec.data, verify_checksum=False)
            if seg.payload:
                lost.add(seg.seq)
    assert lost, "the seed drops some data segments"
    [conn] = read_capture(path).connections
    base = conn.base[0]
    assert base is not None
    # A resend within 3 ms of the highest segment is Wireshark's Out-Of-Order (the
    # capture's SYN is stamped 0, so no first RTT); at the sender it is a resend too.
    retrans = {s.seg.seq for s in conn.segments if s.direction == 0
               and (is_retransmission(s) or OUT_OF_ORDER in s.marks)}
    # Every dropped data segment is sent again and marked; nothing else is marked
    # (the ACK path is lossless, so no retransmission can be spurious here).
    assert lost <= retrans, sorted((x - base) for x in lost - retrans)
    assert retrans <= lost, sorted((x - base) for x in retrans - lost)
    for s in conn.segments:
        if is_retransmission(s) or OUT_OF_ORDER in s.marks:
            first = next(x for x in conn.segments if x.direction == 0 and x.seg.seq == s.seg.seq)
            assert first.number < s.number and not first.marks
    # The receiver's duplicate ACKs: numbered from 1, repeating the ACK of the hole.
    dups = [s for s in conn.segments if any(m.startswith("Dup ACK") for m in s.marks)]
    assert dups and all(s.direction == 1 and s.length == 0 for s in dups)
    counts = [int(next(m for m in s.marks if m.startswith("Dup ACK")).split("#")[1]) for s in dups]
    assert 1 in counts and max(counts) >= 3
    for s in dups:
        assert (s.ack + base) & 0xFFFFFFFF in lost
    assert any("Fast Retransmission" in s.marks for s in conn.segments)


def test_lossless_run_has_no_marks(tmp_path: Path) -> None:
    path, _ = lossy_run(tmp_path, seed=5, loss=0.0)
    [conn] = read_capture(path).connections
    marked = [(s.number, s.marks) for s in conn.segments if s.marks
              and s.marks != ["Window Update"]]
    assert marked == []


# ----------------------------------------------------------------------------- hand-made captures

def pcap_of(segs: list[tuple[int, str, TcpSegment]], linktype: int = LINKTYPE_RAW) -> io.BytesIO:
    """Packets (time, source address, segment) between A:1000 and B:80 as a pcap in memory."""
    buf = io.BytesIO()
    w = PcapWriter(buf, linktype)
    for t, src, seg in segs:
        dst = B if src == A else A
        pkt = build_tcp_packet(src, dst, seg)
        if linktype == LINKTYPE_LINUX_SLL2:   # protocol, reserved, ifindex, ..., 20 bytes
            pkt = struct.pack("!HHIHBB8s", 0x0800, 0, 1, 1, 0, 6, b"\0" * 8) + pkt
        w.write(pkt, t)
    w.close()
    buf.seek(0)
    return buf


def up(seq: int, ack: int, flags: int = ACK, payload: bytes = b"", window: int = 1000,
       **kw: Any) -> TcpSegment:
    return TcpSegment(1000, 80, seq, ack, flags, window, payload=payload, **kw)


def down(seq: int, ack: int, flags: int = ACK, payload: bytes = b"", window: int = 1000,
         **kw: Any) -> TcpSegment:
    return TcpSegment(80, 1000, seq, ack, flags, window, payload=payload, **kw)


def handshake(t: int = 0) -> list[tuple[int, str, TcpSegment]]:
    return [(t, A, up(5000, 0, SYN)), (t + 1000, B, down(9000, 5001, SYN | ACK)),
            (t + 2000, A, up(5001, 9001))]


def marks(conn: Connection) -> list[tuple[int, list[str]]]:
    return [(s.number, s.marks) for s in conn.segments if s.marks]


def test_zero_window_probe_update_and_keepalive() -> None:
    segs = handshake() + [
        (3000, A, up(5001, 9001, PSH | ACK, b"x" * 100)),
        (4000, B, down(9001, 5101, window=0)),                  # 5: ZeroWindow
        (300_000, A, up(5101, 9001, ACK, b"y")),                # 6: ZeroWindowProbe
        (301_000, B, down(9001, 5101, window=0)),               # 7: ZeroWindow, probe's ACK
        (400_000, B, down(9001, 5101, window=500)),             # 8: Window Update
        # 9: the probe did not advance the next sequence: a bare ACK there is a Dup ACK
        (9_000_000, A, up(5101, 9001)),
        (9_100_000, A, up(5100, 9001)),                         # 10: Keep-Alive (seq = next-1)
        (9_101_000, B, down(9001, 5101, window=500)),           # 11: its ACK
    ]
    [conn] = read_capture(pcap_of(segs)).connections
    assert marks(conn) == [(5, ["ZeroWindow"]), (6, ["ZeroWindowProbe"]),
                           (7, ["ZeroWindow", "ZeroWindowProbeAck"]), (8, ["Window Update"]),
                           (9, ["Dup ACK 3#1"]), (10, ["Keep-Alive"]), (11, ["Keep-Alive ACK"])]


def test_out_of_order_previous_not_captured_spurious() -> None:
    segs = handshake() + [
        (3000, A, up(5001, 9001, ACK, b"a" * 100)),
        (3100, A, up(5201, 9001, ACK, b"c" * 100)),             # 5: gap: previous not captured
        (3200, A, up(5101, 9001, ACK, b"b" * 100)),             # 6: fills it 100us later: OOO
        (4000, B, down(9001, 5301)),
        (900_000, A, up(5201, 9001, ACK, b"c" * 100)),          # 8: already ACKed: spurious
        (1_900_000, A, up(5301, 9001, ACK, b"d" * 10)),
        (3_000_000, A, up(5301, 9001, ACK, b"d" * 10)),         # 10: plain retransmission
    ]
    [conn] = read_capture(pcap_of(segs)).connections
    assert marks(conn) == [(5, ["Previous segment not captured"]), (6, ["Out-Of-Order"]),
                           (8, ["Spurious Retransmission"]), (10, ["Retransmission"])]
    assert set(RETRANSMISSIONS) >= {"Retransmission", "Spurious Retransmission"}


def test_sll2_link_and_port_reuse_make_two_connections() -> None:
    first = handshake() + [(3000, A, up(5001, 9001, FIN | ACK)),
                           (4000, B, down(9001, 5002, FIN | ACK)), (5000, A, up(5002, 9002))]
    again = [(t + 100_000, src, seg.__class__(seg.src_port, seg.dst_port,
                                              seg.seq + 70_000 if src == A else seg.seq + 1234,
                                              (seg.ack + 1234 if src == A else seg.ack + 70_000)
                                              if seg.flags & ACK else 0,
                                              seg.flags, seg.window))
             for t, src, seg in handshake()]
    cap = read_capture(pcap_of(first + again, LINKTYPE_LINUX_SLL2))
    assert [len(c.segments) for c in cap.connections] == [6, 3]
    assert cap.connections[0].final_states() == ("TIME_WAIT", "CLOSED")
    assert cap.connections[1].final_states() == ("ESTABLISHED", "ESTABLISHED")
    assert [s.seq for s in cap.connections[1].segments] == [0, 0, 1]


def test_mid_stream_capture_starts_established_with_seq_1() -> None:
    segs = [(0, A, up(777, 555, PSH | ACK, b"z" * 10)), (1000, B, down(555, 787))]
    [conn] = read_capture(pcap_of(segs)).connections
    assert [(s.seq, s.ack, s.length) for s in conn.segments] == [(1, 1, 10), (1, 11, 0)]
    assert conn.final_states() == ("ESTABLISHED", "ESTABLISHED")


def test_pcapng_is_read(tmp_path: Path) -> None:
    """A pcapng file (nanosecond resolution) reads as the same connection as the pcap."""
    segs = handshake()
    blocks = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
              _block(1, struct.pack("<HHI", LINKTYPE_RAW, 0, 65535)
                     + struct.pack("<HHB3x", 9, 1, 9) + b"\0\0\0\0")]
    for t, src, seg in segs:
        pkt = build_tcp_packet(src, B if src == A else A, seg)
        ns = t * 1000 + 1_600_000_000_000_000_000
        pad = b"\0" * (-len(pkt) % 4)
        blocks.append(_block(6, struct.pack("<IIIII", 0, ns >> 32, ns & 0xFFFFFFFF, len(pkt),
                                            len(pkt)) + pkt + pad))
    path = tmp_path / "x.pcapng"
    path.write_bytes(b"".join(blocks))
    [conn] = read_capture(path).connections
    assert [(s.seq, s.ack) for s in conn.segments] == [(0, 0), (0, 1), (1, 1)]
    assert [s.t_us - conn.segments[0].t_us for s in conn.segments] == [0, 1000, 2000]
    assert conn.final_states() == ("ESTABLISHED", "ESTABLISHED")


def _block(btype: int, body: bytes) -> bytes:
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)
