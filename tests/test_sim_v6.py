"""Whole transfers over IPv6 in the simulator (issue 14): seeded, impaired, intact."""

from __future__ import annotations

from pathlib import Path

import pytest

from synack.cli import main
from synack.demo.bulk import transfer
from synack.sim import LinkParams
from synack.trace.capture import read_capture
from synack.wire.ipv6 import parse_tcp6_packet
from synack.wire.pcap import PcapReader


@pytest.mark.parametrize("seed", [1, 2])
def test_an_impaired_ipv6_transfer_is_intact(seed: int, tmp_path: Path) -> None:
    link = LinkParams(delay_us=5_000, loss=0.02, reorder=0.05, duplicate=0.01)
    pcap = tmp_path / "t.pcap"
    r = transfer(300_000, seed=seed, link=link, back=link, ipv6=True, pcap=str(pcap))
    assert r.intact and r.finished and r.retransmits > 0
    with PcapReader(pcap) as reader:
        packets = [rec.data for rec in reader]
    assert packets and all(p[0] >> 4 == 6 for p in packets)
    syn = parse_tcp6_packet(packets[0])[1]
    assert syn.mss == 1440
    (conn,) = read_capture(pcap).connections
    assert conn.a[0] == "2001:db8::1" and conn.b == ("2001:db8::2", 5001)


def test_the_same_seed_gives_the_same_ipv6_run() -> None:
    a = transfer(100_000, seed=3, link=LinkParams(delay_us=2_000, loss=0.03), ipv6=True)
    b = transfer(100_000, seed=3, link=LinkParams(delay_us=2_000, loss=0.03), ipv6=True)
    assert (a.sha256, a.packets, a.retransmits, a.duration_us) == (
        b.sha256, b.packets, b.retransmits, b.duration_us)


def test_sim_command_over_ipv6(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--ipv6", "--bytes", "200K", "--delay", "5ms"]) == 0
    out = capsys.readouterr().out
    assert "received      204800 bytes, intact" in out, out
