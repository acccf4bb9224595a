"""Software GRO (synack.link.gro): what merges, what must not, and the TAP path end to end.

Each transcript builds a batch of IPv4 packets as the kernel would send them
(MSS 1448, NOP NOP TS, DF with IP IDs counting up) and asserts the exact
packets GRO hands the stack.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from transcript import L_ISN, R_ISN, REMOTE, established_server

from synack.link.gro import Gro
from synack.link.impair import ImpairedLink
from synack.link.loop import Loop
from synack.link.netns import Lab, netns_exists
from synack.sim import LinkParams
from synack.stack import Stack
from synack.tcp.tcpinfo import TcpInfo
from synack.wire.checksum import internet_checksum
from synack.wire.errors import ParseError
from synack.wire.ipv4 import IPv4Header, build_tcp_packet, parse_tcp_packet
from synack.wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, TcpSegment

SRC, DST = "198.51.100.1", "198.51.100.2"
MSS = 1448
SEQ0 = 1000


def seg(i: int = 0, *, n: int = MSS, size: int = MSS, **fields: Any) -> TcpSegment:
    """The i-th segment of a run of ``size``-byte segments, ``n`` bytes of payload."""
    base: dict[str, Any] = {
        "src_port": 40000, "dst_port": 80, "seq": SEQ0 + i * size, "ack": 5000,
        "flags": ACK, "window": 502, "timestamps": (777, 333),
        "payload": bytes((i * 7 + k) & 0xFF for k in range(n))}
    base.update(fields)
    return TcpSegment(**base)


def pkt(s: TcpSegment, ident: int = 0, *, src: str = SRC, dst: str = DST, **ip: Any) -> bytes:
    return build_tcp_packet(src, dst, s, ident=ident, **ip)


def run(packets: list[bytes]) -> tuple[list[tuple[TcpSegment, int, bool]], Counter[str]]:
    """GRO over one batch: [(segment, IP ident, csum_valid)] as parsed back, and the stats."""
    gro = Gro()
    out: list[tuple[TcpSegment, int, bool]] = []
    for packet, valid in gro.merge(packets):
        parsed = _parse(packet)                 # both checksums verified
        if parsed is None:
            assert not valid, "a packet GRO vouched for must parse"
            out.append((None, -1, valid))   # type: ignore[arg-type]
            continue
        out.append((parsed[1], parsed[0].ident, valid))
    return out, gro.stats


def _parse(packet: bytes) -> tuple[IPv4Header, TcpSegment] | None:
    try:
        return parse_tcp_packet(packet)
    except ParseError:
        return None


def payload_of(*segs: TcpSegment) -> bytes:
    return b"".join(s.payload for s in segs)


def train(k: int, **fields: Any) -> list[TcpSegment]:
    return [seg(i, **fields) for i in range(k)]


# ---------------------------------------------------------------- what merges
def test_in_order_run_becomes_one_super_segment() -> None:
    segs = train(4)
    out, stats = run([pkt(s, 10 + i) for i, s in enumerate(segs)])
    assert len(out) == 1
    s, ident, valid = out[0]
    assert valid and ident == 10
    assert s == replace(segs[0], payload=payload_of(*segs))    # first's headers, all data
    assert stats["gro super-segments"] == 1
    assert stats["gro segments merged"] == 4
    assert stats["gro flush batch end"] == 1


def test_psh_is_kept_on_the_last_and_ends_the_merge() -> None:
    segs = train(3)
    segs[1] = replace(segs[1], flags=ACK | PSH)
    out, stats = run([pkt(s, 10 + i) for i, s in enumerate(segs)])
    assert [(s.seq, s.flags, len(s.payload)) for s, _, _ in out] == [
        (SEQ0, ACK | PSH, 2 * MSS), (SEQ0 + 2 * MSS, ACK, MSS)]
    assert stats["gro flush push"] == 1


def test_fin_joins_as_the_last_and_ends_the_merge() -> None:
    # Linux tcp_gro_receive lets FIN differ and ORs it in, then flushes.
    segs = train(3)
    segs[1] = replace(segs[1], flags=ACK | FIN | PSH)
    out, stats = run([pkt(s, 10 + i) for i, s in enumerate(segs)])
    assert [(s.seq, s.flags, len(s.payload)) for s, _, _ in out] == [
        (SEQ0, ACK | FIN | PSH, 2 * MSS), (SEQ0 + 2 * MSS, ACK, MSS)]
    assert stats["gro flush fin"] == 1


def test_short_segment_joins_and_ends_the_merge() -> None:
    segs = [seg(0), seg(1), seg(2, n=100), seg(3, n=100, size=MSS)]
    segs[3] = replace(segs[3], seq=SEQ0 + 2 * MSS + 100)
    out, stats = run([pkt(s, 10 + i) for i, s in enumerate(segs)])
    assert [(s.seq, len(s.payload)) for s, _, _ in out] == [
        (SEQ0, 2 * MSS + 100), (SEQ0 + 2 * MSS + 100, 100)]
    assert out[0][0].payload == payload_of(*segs[:3])
    assert stats["gro flush short segment"] == 1


def test_fixed_ip_id_with_df_merges() -> None:
    # inet_gro_flush: the second packet with DF and the same ID makes the flow fixed-ID.
    out, _ = run([pkt(s, 99) for s in train(3)])
    assert [(len(s.payload), ident) for s, ident, _ in out] == [(3 * MSS, 99)]


# ---------------------------------------------------------------- what must not merge
def _pair(second: TcpSegment, ident: int = 11, **ip: Any) -> tuple[list[tuple[int, int]], Counter[str]]:
    out, stats = run([pkt(seg(0), 10), pkt(second, ident, **ip)])
    assert all(valid for _, _, valid in out)
    return [(s.seq, len(s.payload)) for s, _, _ in out], stats


@pytest.mark.parametrize(("second", "reason"), [
    (seg(2), "not in sequence"),                                   # a hole
    (seg(0), "not in sequence"),                                   # a duplicate
    (seg(1, ack=6000), "ack"),
    (seg(1, window=501), "window"),
    (seg(1, timestamps=(778, 333)), "options"),                    # TSval: Linux compares it
    (seg(1, timestamps=(777, 334)), "options"),                    # TSecr
    (seg(1, timestamps=None), "options"),
    (seg(1, sack_blocks=((1, 2),)), "options"),
    (seg(1, flags=ACK | SYN), "flags"),
    (seg(1, flags=ACK | RST), "flags"),
    (seg(1, flags=ACK | URG, urgent=5), "flags"),
    (seg(1, flags=ACK | CWR), "flags"),
    (seg(1, flags=ACK | ECE), "flags"),
    (seg(1, n=MSS + 1), "larger than gso size"),
    (seg(1, n=0), "no payload"),
])
def test_second_segment_that_may_not_join(second: TcpSegment, reason: str) -> None:
    got, stats = _pair(second)
    assert len(got) == 2 and got[0] == (SEQ0, MSS)
    assert stats["gro flush " + reason] == 1
    assert stats["gro super-segments"] == 0


@pytest.mark.parametrize(("ident", "ip"), [
    (12, {}),                      # the ID skips one
    (11, {"ttl": 63}),
    (11, {"tos": 4}),
])
def test_ip_header_differences_stop_the_merge(ident: int, ip: dict[str, int]) -> None:
    got, stats = _pair(seg(1), ident, **ip)
    assert len(got) == 2
    assert stats["gro flush ip header"] == 1


@pytest.mark.parametrize("flag", [SYN, FIN, RST, URG, PSH])
def test_segment_with_flag_never_starts_a_merge(flag: int) -> None:
    segs = [seg(0, flags=ACK | flag, urgent=1 if flag == URG else 0), seg(1), seg(2)]
    out, _ = run([pkt(s, 10 + i) for i, s in enumerate(segs)])
    assert [(s.seq, len(s.payload)) for s, _, _ in out] == [(SEQ0, MSS), (SEQ0 + MSS, 2 * MSS)]


def test_bad_checksum_is_passed_through_unvouched() -> None:
    segs = train(4)
    packets = [pkt(s, 10 + i) for i, s in enumerate(segs)]
    bad = bytearray(packets[2])
    bad[-1] ^= 0xFF                                  # one payload byte flipped
    packets[2] = bytes(bad)
    out, stats = run(packets)
    assert [(s.seq if s else None, valid) for s, _, valid in out] == [
        (SEQ0, True), (None, False), (SEQ0 + 3 * MSS, True)]
    assert len(out[0][0].payload) == 2 * MSS
    assert stats["gro bad checksum"] == 1
    assert stats["gro flush bad checksum"] == 1


def test_ip_fragment_and_options_pass_through() -> None:
    frag = bytearray(pkt(seg(1), 11))
    frag[6] |= 0x20                                 # MF
    out = Gro().merge([pkt(seg(0), 10), bytes(frag)])
    assert out == [(pkt(seg(0), 10), True), (bytes(frag), False)]


def test_64k_bound() -> None:
    segs = train(46)                                 # 46 * 1448 + 52 > 65535
    out, stats = run([pkt(s, 10 + i) for i, s in enumerate(segs)])
    sizes = [len(s.payload) for s, _, _ in out]
    assert sizes == [45 * MSS, MSS]
    assert 20 + 32 + 45 * MSS < 65536 <= 20 + 32 + 46 * MSS
    assert stats["gro flush 64k"] == 1


def test_interleaved_flows_each_merge_in_order() -> None:
    a = train(3)
    b = [replace(s, src_port=40001, payload=s.payload[::-1]) for s in train(3)]
    c = [replace(s, seq=s.seq + 1) for s in train(2)]            # another host
    packets = []
    for i in range(3):
        packets += [pkt(a[i], 10 + i), pkt(b[i], 50 + i)]
        if i < 2:
            packets.append(pkt(c[i], 80 + i, src="198.51.100.9"))
    out, stats = run(packets)
    got = {(s.src_port, s.seq): s.payload for s, _, _ in out}
    assert got == {(40000, SEQ0): payload_of(*a), (40001, SEQ0): payload_of(*b),
                   (40000, SEQ0 + 1): payload_of(*c)}
    assert stats["gro super-segments"] == 3


def test_pure_ack_flushes_its_flow_and_keeps_order() -> None:
    out, stats = run([pkt(seg(0), 10), pkt(seg(1), 11), pkt(seg(2, n=0), 12),
                      pkt(seg(2), 13), pkt(seg(3), 14)])
    assert [(s.seq, len(s.payload)) for s, _, _ in out] == [
        (SEQ0, 2 * MSS), (SEQ0 + 2 * MSS, 0), (SEQ0 + 2 * MSS, 2 * MSS)]
    assert stats["gro flush no payload"] == 1


def test_odd_gso_size_checksum() -> None:
    segs = [seg(i, n=1447, size=1447) for i in range(5)]
    out, _ = run([pkt(s, 10 + i) for i, s in enumerate(segs)])
    assert [len(s.payload) for s, _, _ in out] == [5 * 1447]
    assert out[0][0].payload == payload_of(*segs)


# ---------------------------------------------------------------- property
_flow = st.sampled_from([(SRC, 40000), (SRC, 40001), ("198.51.100.7", 40000)])


@st.composite
def batches(draw: st.DrawFn) -> list[bytes]:
    """Several flows' segments interleaved: sizes, flags, gaps, options, TS and IDs varied
    (the usual value first: Hypothesis draws it most)."""
    state: dict[tuple[str, int], list[int]] = {}   # flow -> [next seq, next ident]
    packets = []
    for _ in range(draw(st.integers(0, 40))):
        src, port = draw(_flow)
        nxt = state.setdefault((src, port), [draw(st.integers(0, 2**32 - 1)), 0])
        n = draw(st.sampled_from([1448, 1448, 1448, 1448, 1447, 100, 7, 1, 0]))
        flags = ACK | draw(st.sampled_from([0, 0, 0, 0, PSH, FIN, CWR, ECE, URG]))
        gap = draw(st.sampled_from([0, 0, 0, 0, 0, 1, -1]))
        s = TcpSegment(
            src_port=port, dst_port=80, seq=(nxt[0] + gap) % 2**32, ack=draw(st.sampled_from([1, 1, 2])),
            flags=flags, window=draw(st.sampled_from([9, 9, 9, 8])), urgent=1 if flags & URG else 0,
            timestamps=draw(st.sampled_from([(5, 6), (5, 6), (5, 6), (6, 6), None])),
            payload=random.Random(draw(st.integers(0, 2**16))).randbytes(n))
        ident = (nxt[1] + draw(st.sampled_from([1, 1, 1, 0, 2]))) % 65536
        packet = pkt(s, ident, src=src)
        if draw(st.sampled_from([False] * 15 + [True])):
            b = bytearray(packet)
            b[-1 if n else 30] ^= 0x5A               # a corrupted segment
            packet = bytes(b)
        nxt[0] = (s.seq + n) % 2**32
        nxt[1] = ident
        packets.append(packet)
    return packets


def _stream(packets: list[tuple[bytes, bool]] | list[bytes]) -> dict[tuple[str, int], list[tuple[int, bytes]]]:
    """Per flow, the (seq, payload) of every good segment, as one byte stream where contiguous."""
    flows: dict[tuple[str, int], list[tuple[int, bytes]]] = {}
    for item in packets:
        parsed = _parse(item[0] if isinstance(item, tuple) else item)
        if parsed is None:
            continue
        ip, s = parsed
        runs = flows.setdefault((ip.src, s.src_port), [])
        if runs and (runs[-1][0] + len(runs[-1][1])) % 2**32 == s.seq and s.payload:
            runs[-1] = (runs[-1][0], runs[-1][1] + s.payload)
        else:
            runs.append((s.seq, s.payload))
    return {k: [r for r in v if r[1]] for k, v in flows.items()}


@settings(max_examples=200, deadline=None)
@given(batches())
def test_property_payload_per_flow_preserved_and_checksums_valid(packets: list[bytes]) -> None:
    gro = Gro()
    out = gro.merge(packets)
    for packet, valid in out:
        parsed = _parse(packet)                  # None: a bad checksum
        assert valid == (parsed is not None)     # GRO vouches for exactly the good ones
        if parsed is not None:
            assert parsed[0].total_length == len(packet) <= 65535
    # The good segments' bytes, per flow and in order, are exactly what came in.
    assert _stream(out) == _stream(packets)
    good_in = sum(1 for p in packets if _parse(p))
    good_out = sum(1 for p, _ in out if _parse(p))
    assert good_in == good_out + gro.stats["gro segments merged"] - gro.stats["gro super-segments"]


# ---------------------------------------------------------------- under ImpairedLink
class _Wire:
    """A link stub that hands over one batch, with GRO like a TAP without offloads."""

    offload = None

    def __init__(self, packets: list[bytes]) -> None:
        self.packets = packets
        self.gro: Gro | None = Gro()

    def recv_packets(self, *, now: int) -> list[tuple[bytes, bool]]:
        batch, self.packets = self.packets, []
        if self.gro is not None:
            return self.gro.merge(batch)
        return [(p, False) for p in batch]


@pytest.mark.parametrize(("corrupt", "expect"), [(0.0, [(True, 4 * MSS)]),
                                                 (1.0, [(False, MSS)] * 4)])
def test_impairments_fall_on_wire_packets_before_gro(corrupt: float,
                                                     expect: list[tuple[bool, int]]) -> None:
    wire = _Wire([pkt(s, 10 + i) for i, s in enumerate(train(4))])
    link = ImpairedLink(wire, outbound=LinkParams(delay_us=0),  # type: ignore[arg-type]
                        inbound=LinkParams(delay_us=0, corrupt=corrupt), seed=1)
    assert wire.gro is None                          # GRO moved out to run after the dice
    got = link.recv_packets(now=0)
    assert [(valid, len(p) - 52) for p, valid in got] == expect


# ---------------------------------------------------------------- a real TAP, kernel sending
PEER = r"""
import hashlib, random, socket, sys
n = int(sys.argv[1])
data = random.Random(3).randbytes(n)
ls = socket.create_server(("192.0.2.1", 6001))
print("listening", flush=True)
ls.settimeout(30)
s, _ = ls.accept()
s.sendall(data)
s.shutdown(socket.SHUT_WR)
s.settimeout(30)
s.recv(1)
print(hashlib.sha256(data).hexdigest(), flush=True)
"""


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                    reason="needs root and /dev/net/tun")
@pytest.mark.parametrize("kind", ["tap", "tun"])
def test_kernel_to_synack_over_device_without_offload_is_merged(kind: str) -> None:
    n = 4 << 20
    ns = f"sa-gro-{os.getpid() % 1000}{kind}"
    with Lab(ns, tap=f"sagro{os.getpid() % 1000}{kind[1]}", kind=kind, offload=False) as link:
        stack = Stack("192.0.2.2", seed=1, mtu=link.mtu)
        loop = Loop(stack, link, name=ns)
        loop.start()
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", PEER, str(n)],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
            got = bytearray()
            eof = False
            deadline = time.monotonic() + 60
            with loop.cond:
                fd = stack.socket()
                stack.connect_ex(fd, ("192.0.2.1", 6001), now=loop.now())
                loop.wake()
                while not eof:
                    try:
                        chunk = stack.recv(fd, 1 << 20, now=loop.now())
                    except BlockingIOError:
                        assert time.monotonic() < deadline, f"stalled at {len(got)}"
                        loop.cond.wait(0.5)
                        continue
                    got += chunk
                    eof = not chunk
                    loop.wake()
                stack.close(fd, now=loop.now())
                loop.wake()
            digest = proc.communicate(timeout=30)[0].strip()
        finally:
            loop.stop()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert len(got) == n
        assert hashlib.sha256(got).hexdigest() == digest
        stats = link.stats
        assert stats["gro super-segments"] > 0, stats
        assert stats["gro segments merged"] > 2 * stats["gro super-segments"], stats
        assert stats["gso super-segments in"] == 0
        assert stack.stats["dropped bad checksum"] == 0
    assert not netns_exists(ns)


# ---------------------------------------------------------------- the TCP core behind GRO
def test_core_acks_a_super_segment_at_once_and_keeps_rcv_mss() -> None:
    """Linux __tcp_ack_snd_check: more than one full-sized segment unacknowledged -> ACK now;
    tcp_measure_rcv_mss: a GRO packet counts as its gso size, not its length."""
    stack, fd, peer = established_server()
    seq, now = R_ISN + 1, 0
    # Leave quick-ACK mode: full-sized segments one at a time until one is not ACKed at once.
    for _ in range(64):
        got = peer.send(seq=seq, ack=L_ISN + 1, flags=ACK, payload=b"q" * 1460, now=now)
        stack.recv(fd, 1 << 20, now=now)
        seq += 1460
        if not got:
            break
        now += 1000
    else:
        raise AssertionError("quick-ACK mode never ended")
    (delayed,) = peer.run_until(now + 40_000)         # the delayed ACK
    assert delayed[1].ack == seq
    now += 50_000
    merged = Gro().merge([build_tcp_packet(REMOTE, stack.addr, TcpSegment(
        src_port=peer.port, dst_port=peer.lport, seq=seq + i * 1460, ack=L_ISN + 1, flags=ACK,
        window=65535, payload=bytes([i]) * 1460), ident=i) for i in range(4)])
    assert len(merged) == 1
    stack.receive(merged[0][0], now=now, csum_valid=merged[0][1])
    (reply,) = peer.out(now)                          # at once, not 40 ms later
    assert reply.ack == seq + 4 * 1460 and reply.flags == ACK
    assert stack.recv(fd, 1 << 20, now=now) == b"".join(bytes([i]) * 1460 for i in range(4))
    raw = stack.getsockopt(fd, socket.IPPROTO_TCP, socket.TCP_INFO)
    assert isinstance(raw, bytes)
    info = TcpInfo.unpack(raw)
    assert info.tcpi_rcv_mss == 1460                  # not 4 * 1460


# ---------------------------------------------------------------- a batch of one
def _reference(pkt: bytes) -> bool:
    """Whether GRO vouches for a lone TCP/IPv4 packet, by the rules spelled out plainly:
    a plain header (no options, no fragment) whose checksum and length are right, and a
    right TCP checksum (wire.checksum's own function, not GRO's inline sum)."""
    n = len(pkt)
    thlen = (pkt[32] >> 2) & 0x3C
    header_ok = (pkt[0] == 0x45 and int.from_bytes(pkt[2:4], "big") == n
                 and not pkt[6] & 0xBF and not pkt[7] and pkt[9] == 6
                 and 20 <= thlen <= n - 20 and internet_checksum(pkt[:20]) == 0)
    return header_ok and internet_checksum(pkt, int.from_bytes(pkt[12:20], "big") + 6 + n - 20) == 0


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2000), st.lists(st.tuples(st.integers(0, 59), st.integers(0, 255)),
                                      max_size=3), st.integers(0, 4), st.booleans())
@example(5, [(6, 0xC0)], 0, True)       # the reserved bit, header checksum right
@example(5, [(6, 0x60)], 0, True)       # MF
@example(5, [(7, 0x01)], 0, True)       # a fragment offset
@example(5, [(0, 0x46)], 0, True)       # options
@example(5, [(9, 17)], 0, True)         # not TCP
@example(5, [(3, 0x40)], 1, True)       # the wrong total length
def test_the_inline_checksums_are_the_checksums(n: int, flips: list[tuple[int, int]],
                                                tos: int, fix: bool) -> None:
    # GRO sums the IPv4 header word by word and the TCP segment inline (long ones through
    # internet_checksum): for any header and payload, with damage anywhere in the first
    # 60 bytes (or damage and then a recomputed header checksum), what it vouches for is
    # exactly what the plain rules accept.
    s = seg(0, n=n, flags=ACK | PSH)
    b = bytearray(pkt(s, 77, tos=tos * 4, ttl=1 + tos * 50))
    for i, v in flips:
        b[i % len(b)] = v
    if fix:
        b[10:12] = b"\0\0"
        b[10:12] = internet_checksum(b[:20]).to_bytes(2, "big")
    packet = bytes(b)
    if len(packet) < 40 or packet[0] >> 4 != 4:
        return
    assert Gro().merge([packet]) == [(packet, _reference(packet))]
