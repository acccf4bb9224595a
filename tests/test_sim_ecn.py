"""ECN in the simulator: a link queue that marks CE (LinkParams.ecn_mark_bytes), and
ECN end to end over IPv6 (ECT(0) in the traffic class, CE echoed with ECE)."""

from __future__ import annotations

import random
import re
import socket
import struct

import pytest

from synack.config import Sysctl
from synack.demo.scenarios.base import CLIENT6, SERVER6, drain, lab
from synack.sim import LinkParams
from synack.sim.link import LinkDirection
from synack.tcp.ecn import CE, ECT0, ECT1, NOT_ECT
from synack.tcp.state import State
from synack.wire.checksum import internet_checksum
from synack.wire.ecn import ip_ecn, mark_ce
from synack.wire.ipv4 import parse_ipv4
from synack.wire.ipv6 import parse_tcp6_packet
from synack.wire.tcp import CWR, ECE

A, B = "10.0.0.1", "10.0.0.2"
SIZE = 1000


def ipv4(ecn: int, ident: int = 0) -> bytes:
    """A SIZE-byte A -> B IPv4 packet with a valid header checksum."""
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0xB8 | ecn, SIZE, ident, 0, 64, 253,
                                   0, socket.inet_aton(A), socket.inet_aton(B)))
    header[10:12] = internet_checksum(header).to_bytes(2, "big")
    return bytes(header) + bytes(SIZE - 20)


def ipv6(ecn: int) -> bytes:
    """A SIZE-byte IPv6 packet, traffic class DSCP 46 with ``ecn``, flow label 0x12345."""
    tc = 46 << 2 | ecn
    word = 6 << 28 | tc << 20 | 0x12345
    return (struct.pack("!IHBB", word, SIZE - 40, 253, 64)
            + socket.inet_pton(socket.AF_INET6, "2001:db8::1")
            + socket.inet_pton(socket.AF_INET6, "2001:db8::2") + bytes(SIZE - 40))


def direction(**params: int) -> LinkDirection:
    # 8 Mbit/s: a 1000-byte packet serializes in 1 ms.
    return LinkDirection(A, B, LinkParams(rate_bps=8_000_000, **params), random.Random(1))


def test_ect_packets_above_the_threshold_are_marked_ce_with_a_valid_checksum() -> None:
    link = direction(ecn_mark_bytes=2 * SIZE)
    fates = [link.offer(ipv4(ECT0 if i % 2 else ECT1, ident=i), 0) for i in range(6)]
    # The backlog before packet i is i * SIZE: above 2000 from the fourth on.
    assert [ip_ecn(t.data or b"") for t in fates] == [ECT1, ECT0, ECT1, CE, CE, CE]
    assert all(t.fate == "delivered" for t in fates)
    assert link.stats.ce_marked == 3 and link.stats.queue_drops == 0
    for i, t in enumerate(fates):
        assert t.data is not None
        ip, _ = parse_ipv4(t.data)                 # verifies the header checksum
        assert ip.tos >> 2 == 0xB8 >> 2            # DSCP untouched
        assert t.data[20:] == ipv4(ECT0, i)[20:]   # the rest of the packet too
    assert ip_ecn(ipv4(ECT0)) == ECT0              # what was offered is not changed


def test_not_ect_packets_above_the_threshold_are_dropped_not_marked() -> None:
    link = direction(ecn_mark_bytes=2 * SIZE)
    fates = [link.offer(ipv4(NOT_ECT, ident=i), 0) for i in range(5)]
    assert [t.fate for t in fates] == ["delivered"] * 3 + ["queue-drop"] * 2
    assert [ip_ecn(t.data) for t in fates if t.data is not None] == [NOT_ECT] * 3
    assert link.stats.queue_drops == 2 and link.stats.ce_marked == 0
    # A dropped packet never occupied the link: the queue drains in 3 ms, then marks no more.
    assert link.offer(ipv4(ECT0), 3000).data == ipv4(ECT0)


def test_ce_packets_pass_as_they_are_and_tail_drop_comes_first() -> None:
    link = direction(ecn_mark_bytes=0, queue_bytes=3 * SIZE)
    fates = [link.offer(ipv4(CE if i == 1 else ECT0, ident=i), 0) for i in range(4)]
    assert [t.fate for t in fates] == ["delivered"] * 3 + ["queue-drop"]
    assert fates[1].data == ipv4(CE, 1)            # already CE: not counted, not rewritten
    assert link.stats.ce_marked == 1               # the third (backlog 2000 > 0)
    assert fates[0].data == ipv4(ECT0, 0)          # an empty queue marks nothing


def test_ipv6_traffic_class_ecn_field_is_marked() -> None:
    link = direction(ecn_mark_bytes=SIZE)
    fates = [link.offer(ipv6(ECT0), 0) for _ in range(3)]
    marked = fates[2].data
    assert marked is not None and ip_ecn(marked) == CE
    assert ip_ecn(fates[0].data or b"") == ECT0
    word = int.from_bytes(marked[:4], "big")
    assert (word >> 20 & 0xFF, word & 0xFFFFF) == (46 << 2 | CE, 0x12345)
    assert marked[4:] == ipv6(ECT0)[4:]
    assert mark_ce(ipv6(NOT_ECT))[1] >> 4 & 3 == CE


def test_without_the_field_nothing_changes() -> None:
    # Same packets, same dice: no marking, no drops, bytes as offered.
    for params in ({}, {"queue_bytes": 100 * SIZE}):
        link = direction(**params)
        fates = [link.offer(ipv4(ecn, ident=i), 0) for i, ecn in enumerate((0, 1, 2, 3) * 4)]
        assert [t.data for t in fates] == [ipv4(ecn, i) for i, ecn in enumerate((0, 1, 2, 3) * 4)]
        assert link.stats.ce_marked == 0 and link.stats.queue_drops == 0
    with pytest.raises(ValueError, match="ecn_mark_bytes"):
        LinkParams(ecn_mark_bytes=-1)


def test_ipv6_data_goes_ect0_and_ce_comes_back_as_ece_then_cwr() -> None:
    cfg = Sysctl()
    cfg.set("net.ipv4.tcp_ecn", 1)     # Linux: net.ipv4.tcp_ecn covers IPv6 too
    L = lab(1, client_cfg=cfg, ipv6=True)
    c, s, net = L.c, L.s, L.net
    net.set_link(CLIENT6, SERVER6, LinkParams(delay_us=10_000, rate_bps=10_000_000,
                                              ecn_mark_bytes=15_000))
    lfd = s.socket(socket.AF_INET6)
    s.bind(lfd, (SERVER6, 80))
    s.listen(lfd)
    st: dict[str, int] = {"got": 0, "sent": 0}
    total = 100_000

    def server(now: int) -> None:
        if "fd" not in st:
            try:
                st["fd"], _ = s.accept(lfd)
            except BlockingIOError:
                return
        st["got"] += len(drain(s, st["fd"], now)[0])

    cfd = c.socket(socket.AF_INET6)

    def client(now: int) -> None:
        if c.state(cfd) is State.ESTABLISHED and st["sent"] < total:
            try:
                st["sent"] += c.send(cfd, b"x" * (total - st["sent"]), now=now)
            except BlockingIOError:
                pass

    L.server.apps.append(server)
    L.client.apps.append(client)
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER6, 80), now=now))
    net.run(until=2_000_000)
    assert st["got"] == total
    up = [(r, parse_tcp6_packet(r.data)) for r in net.records if r.src == CLIENT6]
    down = [parse_tcp6_packet(r.data)[1] for r in net.records if r.src == SERVER6]
    data = [(r, seg) for r, (_, seg) in up if seg.payload]
    assert data and all(ip.traffic_class & 3 == ECT0 for _, (ip, seg) in up if seg.payload)
    assert all(ip.traffic_class & 3 == NOT_ECT for _, (ip, seg) in up if not seg.payload)
    assert any(r.delivered_data is not None and ip_ecn(r.delivered_data) == CE for r, _ in data)
    assert any(seg.flags & ECE for seg in down[1:])          # past the SYN,ACK
    assert any(seg.flags & CWR for _, seg in data)
    assert len({seg.seq for _, seg in data}) == len(data)    # no retransmission


def test_sim_cli_ecn_mark_and_ecn(capsys: pytest.CaptureFixture[str]) -> None:
    from synack.cli import main
    args = ["sim", "--bytes", "1M", "--delay", "10ms", "--rate", "20mbit", "--ecn-mark", "30K"]
    assert main([*args, "--ecn"]) == 0
    with_ecn = capsys.readouterr().out
    marked = re.search(r"^ECN +(\d+) packets marked CE", with_ecn, re.MULTILINE)
    assert marked and int(marked.group(1)) > 0, with_ecn
    assert "retransmitted 0 segments" in with_ecn, with_ecn
    # Without ECN the same queue has nothing to mark: it drops (Not-ECT) instead.
    assert main(args) == 0
    without = capsys.readouterr().out
    assert "ECN           0 packets marked CE" in without, without
    assert "retransmitted 0 segments" not in without, without
    assert main(["sim", "--bytes", "1M"]) == 0                 # no marking: no ECN line
    assert "ECN " not in capsys.readouterr().out
    assert main([*args[:-1], "3x"]) == 2
    assert "bad size unit in '3x'" in capsys.readouterr().err
