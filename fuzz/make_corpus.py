"""Write the seed corpus in fuzz/corpus/ from synack's own simulated runs.

    PYTHONPATH=src python fuzz/make_corpus.py [--out DIR]   # rewrites fuzz/corpus/{tcp,capture}

Deterministic: the same files every time (the runs are seeded).

* ``capture/``: a short transfer between two synack hosts in the simulator, saved as
  pcap (little- and big-endian, micro- and nanoseconds) and pcapng (both byte orders,
  with an ``if_tsresol`` option), with the link types the readers strip (raw IP,
  Ethernet, VLAN, Linux cooked SLL and SLL2, BSD loopback).
* ``tcp/``: inputs in the format of ``tcp_actions.Actions``. The segments of simulated
  transfers (clean, lossy, reordered) become segment actions: their flags, window, options
  and payload length as they were, sequence and acknowledgment numbers as offsets from
  what the peer had seen, each sent to the targets whose state fits it (a SYN to the
  listener, a SYN,ACK to SYN_SENT, data and FINs to the synchronized states), with the
  time between them as ticks and reads after data. A few short scripts per target add
  what transfers do not show: RSTs, challenge ACKs, zero windows, urgent data, ICMP
  errors, socket options, close and shutdown, long idle times.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import tcp_actions as tw
import tcp_world

from synack.demo.bulk import transfer
from synack.sim import LinkParams
from synack.wire.ipv4 import parse_tcp_packet
from synack.wire.pcap import PcapReader, PcapRecord
from synack.wire.tcp import ACK, FIN, PSH, RST, SYN, URG, TcpSegment

MS = 1000
TARGET = {t.name: i for i, t in enumerate(tcp_world.build_world().targets)}

# ---------------------------------------------------------------- encoding actions
def s16(v: int) -> bytes:
    return max(-32768, min(32767, v)).to_bytes(2, "big", signed=True)


def options_grammar(seg: TcpSegment) -> bytes:
    g = bytearray()
    if seg.mss is not None:
        g += bytes([0]) + seg.mss.to_bytes(2, "big")
    if seg.sack_permitted:
        g += bytes([2])
    if seg.timestamps is not None:
        g += bytes([5, 5, 3, 0, 0])              # NOP NOP TS (fresh value, echo theirs)
    if seg.wscale is not None:
        g += bytes([5, 1, seg.wscale])
    if seg.sack_blocks:
        n = min(len(seg.sack_blocks), 4)
        g += bytes([5, 5, 4, n - 1])
        for start, end in seg.sack_blocks[:n]:
            g += s16(((start - seg.ack + 0x80000000) & 0xFFFFFFFF) - 0x80000000)
            g += ((end - start) & 0xFFFF).to_bytes(2, "big")
    return bytes(g)


def segment(target: str, flags: int, *, seq: int = 0, ack: int = 0, window: int = 65535,
            urgent: int = 0, grammar: bytes = b"", n: int = 0, ctl: int = 0,
            raw: bytes = b"") -> bytes:
    body = bytes([tw.OP_SEGMENT, TARGET[target], flags, ctl])
    body += s16(seq) + s16(ack) + window.to_bytes(2, "big") + urgent.to_bytes(2, "big")
    body += bytes([len(grammar)]) + grammar + n.to_bytes(2, "big") + raw
    return body


def op(code: int, target: str, *args: int) -> bytes:
    return bytes([code, TARGET[target], *args])


def tick_index(gap_us: int) -> int:
    order = sorted(range(len(tw.TICKS_US)), key=lambda i: abs(tw.TICKS_US[i] - gap_us))
    return order[0]


# ---------------------------------------------------------------- from simulated runs
def run_segments(link: LinkParams, nbytes: int, seed: int) -> list[tuple[int, TcpSegment, bool]]:
    """(time, segment, from the client) of a simulated transfer, as captured."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "run.pcap")
        transfer(nbytes, seed=seed, link=link, back=link, pcap=path)
        with PcapReader(path) as reader:
            records = list(reader)
    out = []
    client = None
    for r in records:
        ip, seg = parse_tcp_packet(r.data, verify_checksum=False)
        if client is None:
            client = ip.src
        out.append((r.ts_us, seg, ip.src == client))
    return out


def inputs_from_run(segs: list[tuple[int, TcpSegment, bool]], profile: int,
                    per_file: int = 40) -> list[bytes]:
    """Two kinds of input from one run. As the receiver: the client's segments go to a
    target that receives (sequence offsets from the highest sequence the client had sent,
    so retransmissions are old data), with reads after data. As the sender: the stack
    first writes 40 kB, then the server's ACKs come in (acknowledgment offsets from the
    highest sequence the client had sent, SACK blocks as they were)."""
    files = []
    for receiving, targets in ((True, ("ESTABLISHED", "ESTABLISHED-noopt", "FIN_WAIT_1")),
                               (False, ("ESTABLISHED", "ESTABLISHED-noopt", "CLOSE_WAIT"))):
        for target in targets:
            high: dict[bool, int | None] = {True: None, False: None}
            cur = bytearray([profile])
            if not receiving:
                cur += op(tw.OP_SEND, target, 0x4A)
            count = 0
            last_t = segs[0][0] if segs else 0
            for t, seg, from_client in segs:
                end = (seg.seq + seg.seg_len) & 0xFFFFFFFF
                h = high[from_client]
                seq_off = 0 if h is None else _signed(seg.seq - h)
                other = high[not from_client]
                ack_off = 0 if other is None or not seg.flags & ACK else _signed(seg.ack - other)
                if h is None or _signed(end - h) > 0:
                    high[from_client] = end
                if from_client != receiving or seg.flags & SYN:
                    continue
                if t - last_t >= 500:
                    cur += op(tw.OP_TICK, target, tick_index(t - last_t))
                last_t = t
                cur += segment(target, seg.flags, seq=seq_off, ack=ack_off, window=seg.window,
                               grammar=options_grammar(seg), n=min(len(seg.payload), 1400))
                if seg.payload:
                    cur += op(tw.OP_RECV, target, 255 if count % 7 == 6 else 100)
                count += 1
                if count >= per_file:
                    files.append(bytes(cur))
                    cur = bytearray([profile])
                    count = 0
            if count:
                files.append(bytes(cur))
    return files


def _signed(v: int) -> int:
    return ((v + 0x80000000) & 0xFFFFFFFF) - 0x80000000


# ---------------------------------------------------------------- scripted seeds
def scripts() -> list[bytes]:
    ts = bytes([5, 5, 3, 0, 0])
    sack_block = bytes([5, 5, 4, 0]) + s16(100) + (200).to_bytes(2, "big")
    out = []
    for profile in range(len(tcp_world.PROFILES)):
        # Every target with the default sysctls, a few with each other set.
        for name in list(TARGET)[::1 if profile == 0 else 4]:
            p = bytes([profile])
            out.append(p + segment(name, ACK | PSH, grammar=ts, n=500) + op(tw.OP_RECV, name, 40)
                       + op(tw.OP_CLEAN, name, 0, 0, 0))
            out.append(p + segment(name, FIN | ACK, grammar=ts) + op(tw.OP_TICK, name, 6)
                       + op(tw.OP_TICK, name, 7))
            out.append(p + segment(name, RST, grammar=ts) + segment(name, RST, seq=5))
            out.append(p + segment(name, SYN, grammar=bytes([0, 5, 0xB4, 2]) + ts)
                       + segment(name, ACK, grammar=ts))
            out.append(p + segment(name, ACK, seq=3000, grammar=ts + sack_block, n=100)
                       + segment(name, ACK, ack=-5000, grammar=ts)
                       + segment(name, ACK, grammar=ts, window=0)
                       + op(tw.OP_TICK, name, 3) + op(tw.OP_TICK, name, 4))
            out.append(p + op(tw.OP_SEND, name, 40) + op(tw.OP_TICK, name, 12)
                       + op(tw.OP_CLEAN, name, 0, 0, 0) + op(tw.OP_SEND, name, 200)
                       + segment(name, ACK, grammar=ts + sack_block)
                       + segment(name, ACK, grammar=ts + sack_block)
                       + segment(name, ACK, grammar=ts + sack_block) + op(tw.OP_TICK, name, 3))
            out.append(p + segment(name, ACK | URG, urgent=5, grammar=ts, n=20)
                       + op(tw.OP_RECV, name, 4) + op(tw.OP_SHUTDOWN, name, 0)
                       + op(tw.OP_CLOSE, name))
            out.append(p + op(tw.OP_ACCEPT, name, 2) + op(tw.OP_ACCEPT, name, 1)
                       + op(tw.OP_SEND, name, 0x45) + op(tw.OP_SEND, name, 0x81)
                       + op(tw.OP_TICK, name, 3) + op(tw.OP_ACCEPT, name, 1))
            out.append(p + op(tw.OP_ICMP, name, 0, 0x02, 0x40, 0, 0)
                       + op(tw.OP_ICMP, name, 1, 0, 0, 0, 0) + op(tw.OP_SEND, name, 30)
                       + op(tw.OP_TICK, name, 13))
            out.append(p + bytes(x for k in range(tw.SOCKOPT_CHOICES)
                                 for x in op(tw.OP_SOCKOPT, name, k, 0, 7))
                       + op(tw.OP_SOCKOPT, name, 0x80, 0, 0) + op(tw.OP_TICK, name, 8))
        for name in ("ESTABLISHED", "ESTABLISHED-noopt", "CLOSE_WAIT"):
            p = bytes([profile])
            loss = (op(tw.OP_SEND, name, 0x44) * 2 + op(tw.OP_TICK, name, 9)
                    + op(tw.OP_CLEAN, name, 1, 0, 0) * 3 + op(tw.OP_TICK, name, 10)
                    + op(tw.OP_CLEAN, name, 2, 0, 0) + op(tw.OP_CLEAN, name, 0, 0, 0))
            grow = (op(tw.OP_SEND, name, 0x44) + op(tw.OP_TICK, name, 11)
                    + op(tw.OP_CLEAN, name, 0, 0, 0)) * 4
            out.append(p + loss + grow)
            out.append(p + op(tw.OP_SEND, name, 0x44) + op(tw.OP_TICK, name, 3) * 3
                       + op(tw.OP_CLEAN, name, 0, 0, 0) + grow)
            out.append(p + op(tw.OP_CLEAN, name, 3, 0, 0) + op(tw.OP_SEND, name, 100)
                       + op(tw.OP_TICK, name, 3) * 4 + op(tw.OP_CLEAN, name, 3 | 8, 0, 0)
                       + op(tw.OP_TICK, name, 3))
            out.append(p + op(tw.OP_CLEAN, name, 0, 5, 0) + op(tw.OP_TICK, name, 12)
                       + (op(tw.OP_CLEAN, name, 0, 5, 0) + op(tw.OP_RECV, name, 200)
                          + op(tw.OP_TICK, name, 1)) * 6)
        p = bytes([profile])
        synack_opts = bytes([0, 5, 0xB4, 2, 1, 7]) + ts
        # SYN_SENT: the SYN retransmitted (an RTT from the TS echo), or shut before the answer.
        out.append(p + op(tw.OP_TICK, "SYN_SENT", 3) + segment("SYN_SENT", SYN | ACK,
                                                             grammar=synack_opts, n=30)
                   + op(tw.OP_RECV, "SYN_SENT", 10))
        out.append(p + op(tw.OP_SHUTDOWN, "SYN_SENT", 1) + segment("SYN_SENT", SYN | ACK,
                                                                 grammar=synack_opts))
        # Urgent data: recv(MSG_OOB) before and after the urgent byte arrives.
        for name in ("ESTABLISHED", "ESTABLISHED-noopt"):
            out.append(p + segment(name, ACK | URG, urgent=400, grammar=ts, n=20)
                       + op(tw.OP_RECV, name, 255) + segment(name, ACK | URG, seq=20, urgent=380,
                                                             grammar=ts, n=1000)
                       + op(tw.OP_RECV, name, 255) + op(tw.OP_RECV, name, 100))
            # Keepalive with data in flight, then with none.
            out.append(p + op(tw.OP_SOCKOPT, name, 2, 0, 1) + op(tw.OP_SOCKOPT, name, 3, 0, 4)
                       + op(tw.OP_SEND, name, 10) + op(tw.OP_TICK, name, 5)
                       + op(tw.OP_CLEAN, name, 0, 0, 0) + op(tw.OP_TICK, name, 5)
                       + op(tw.OP_TICK, name, 5) + op(tw.OP_TICK, name, 14))
        # Five half-open at once: the SYN queue past half, old entries pruned early.
        crowd = b"".join(segment(n, SYN, grammar=bytes([0, 5, 0xB4, 2]) + ts)
                         for n in ("LISTEN-a", "LISTEN-c", "LISTEN-d", "LISTEN-e"))
        out.append(p + crowd + op(tw.OP_TICK, "LISTEN-a", 12) * 4)
        # Records and held tails: MSG_EOR, MSG_MORE, then TCP_NODELAY pushes.
        out.append(p + op(tw.OP_SEND, "ESTABLISHED", 0x3E) + op(tw.OP_SEND, "ESTABLISHED", 0x3D)
                   + op(tw.OP_SEND, "ESTABLISHED", 0x3D) + op(tw.OP_SOCKOPT, "ESTABLISHED", 0, 0, 1)
                   + op(tw.OP_TICK, "ESTABLISHED", 3))
        # IPv6 (issue 14, tcp_actions._ipv6): a handshake with the IPv6 listener, data,
        # Packet Too Big, an extension chain, ping, ND and MLD, a fragment, a bad header.
        def v6(variant: int, a: int, d: int = 0, name: str = "LISTEN-c") -> bytes:
            return op(tw.OP_ICMP, name, 0x40 | variant << 3, a >> 8, a & 0xFF, *s16(d))
        # (a = 1000: none of the bits 0x400-0x2000 that choose flags is set, so a SYN.)
        out.append(p + v6(0, 1000) + v6(1, 300) + v6(3, 200) + v6(5, 1300) + v6(4, 10)
                   + v6(6, 1) + v6(6, 2) + v6(6, 0) + v6(2, 0x1000) + v6(7, 0x0305, 7)
                   + v6(5, 0x4000 | 4) + v6(1, 0x0100 | 0x0400 | FIN | ACK, 3)
                   + op(tw.OP_TICK, "LISTEN-c", 3))
        # An IPv6 connection closed by synack first (no data unread: a FIN, not a RST),
        # through TIME_WAIT (both FINs).
        out.append(p + v6(0, 1000, name="LISTEN-d") + v6(0, 0x2000 | 100, name="LISTEN-d")
                   + v6(0, 0x0400 | FIN | ACK, name="LISTEN-d")
                   + v6(0, 0x0400 | ACK, name="LISTEN-d") + op(tw.OP_TICK, "LISTEN-d", 3)
                   + op(tw.OP_TICK, "LISTEN-d", 6) + op(tw.OP_TICK, "LISTEN-d", 6))
        out += issue10(p, ts)
        out.append(p + segment("LISTEN-b", SYN, grammar=bytes([0, 5, 0xB4, 2]) + ts)
                   + segment("LISTEN-b", ACK, grammar=ts) + op(tw.OP_ACCEPT, "LISTEN-b", 0)
                   + segment("LISTEN-b", ACK | PSH, grammar=ts, n=300)
                   + op(tw.OP_RECV, "LISTEN-b", 20))
        if tcp_world.PROFILES[profile].get("net.ipv4.tcp_fastopen", 1) & 0x2:
            out += fast_open_and_ecn(p, ts)
    out += rack_scripts(ts)
    out += fast_path_scripts(ts)
    return out


def rack_scripts(ts: bytes) -> list[bytes]:
    """RACK-TLP, PRR and undo on the ESTABLISHED target (default sysctls: tcp_recovery = 1).
    Ten full segments (16 KB written, initial window 10, MSS 1448) unless said otherwise."""
    name = "ESTABLISHED"
    p = bytes([0])
    mss = 1448
    ten = op(tw.OP_SEND, name, 0x44)

    def sack(*blocks: tuple[int, int]) -> bytes:   # (offset from SND.UNA, length)
        g = bytes([5, 5, 4, len(blocks) - 1])
        return g + b"".join(s16(a) + (n & 0xFFFF).to_bytes(2, "big") for a, n in blocks)

    out = []
    # Three segments, the last one SACKed: RACK waits out its reordering window, then the
    # reordering timer marks the first two lost and recovery starts from the timer; a
    # full ACK ends it; then new data and a tail loss probe of new data.
    out.append(p + op(tw.OP_SEND, name, 0x3C) + op(tw.OP_TICK, name, 11)
               + op(tw.OP_CLEAN, name, 1 | 4, 0, 0) + op(tw.OP_TICK, name, 1)
               + op(tw.OP_CLEAN, name, 0, 0, 0) + op(tw.OP_SEND, name, 0x44)
               + op(tw.OP_TICK, name, 2) + op(tw.OP_TICK, name, 2) + op(tw.OP_CLEAN, name, 0, 0, 0))
    # One segment, never answered: the probe resends it (nothing new to send), then the
    # ACK of it, with a D-SACK of the probe (both copies arrived).
    out.append(p + op(tw.OP_SEND, name, 10) + op(tw.OP_TICK, name, 2)
               + op(tw.OP_TICK, name, 12)
               + segment(name, ACK, grammar=ts + sack((-640, 640)))
               + op(tw.OP_SEND, name, 10) + op(tw.OP_TICK, name, 12) + op(tw.OP_TICK, name, 12)
               + segment(name, ACK, grammar=ts) + op(tw.OP_CLEAN, name, 0, 0, 0))
    # Nine of ten SACKed: the first is lost at once (DupThresh), PRR lets the fast
    # retransmission out; the ACK then echoes a timestamp from before it: the original
    # arrived, the reduction is undone (tcp_try_undo_recovery()).
    out.append(p + ten + op(tw.OP_TICK, name, 11) + op(tw.OP_CLEAN, name, 1, 0, 0)
               + segment(name, ACK, grammar=bytes([5, 5, 3, 0, 100]))
               + op(tw.OP_TICK, name, 3))
    # The same loss; the retransmission turns out spurious: the ACK covers it and D-SACKs
    # it (tcp_try_undo_dsack()), then more SACKs, a second loss in recovery and a lost
    # retransmission found by RACK, then the RTO and an undo from the loss state.
    out.append(p + ten + op(tw.OP_TICK, name, 11) + op(tw.OP_CLEAN, name, 1, 0, 0)
               + segment(name, ACK, ack=-9 * mss, grammar=ts + sack((0, mss), (2 * mss, 8 * mss)))
               + op(tw.OP_SEND, name, 0x44) + op(tw.OP_TICK, name, 11)
               + op(tw.OP_CLEAN, name, 1 | 8, 0, 0) + op(tw.OP_TICK, name, 11)
               + op(tw.OP_CLEAN, name, 1 | 12, 0, 0) + op(tw.OP_TICK, name, 12)
               + op(tw.OP_CLEAN, name, 2 | 4, 0, 0) + op(tw.OP_TICK, name, 3)
               + segment(name, ACK, ack=-8 * mss, grammar=bytes([5, 5, 3, 0, 120]))
               + op(tw.OP_TICK, name, 3) + op(tw.OP_CLEAN, name, 0, 0, 0))
    # Partial ACKs in recovery with SACK blocks below the highest: reordering is seen and
    # the reordering window grows from D-SACKs.
    out.append(p + ten + op(tw.OP_TICK, name, 11)
               + segment(name, ACK, ack=-10 * mss, grammar=ts + sack((5 * mss, mss)))
               + segment(name, ACK, ack=-10 * mss, grammar=ts + sack((2 * mss, mss), (5 * mss, mss)))
               + segment(name, ACK, ack=-7 * mss, grammar=ts + sack((5 * mss, mss)))
               + segment(name, ACK, ack=-7 * mss, grammar=ts + sack((-mss, mss), (5 * mss, mss)))
               + op(tw.OP_TICK, name, 1) + op(tw.OP_CLEAN, name, 0, 0, 0)
               + ten + op(tw.OP_TICK, name, 11) + op(tw.OP_CLEAN, name, 1, 0, 0)
               + op(tw.OP_SOCKOPT, name, 0x80, 0, 0) + op(tw.OP_TICK, name, 3))
    # A peer whose handshake took 5 ms: RACK's reordering window is min_rtt / 4, so one
    # segment SACKed of three leaves the others waiting; the reordering timer marks them
    # lost and starts recovery.
    syn = bytes([0, 5, 0xB4, 2]) + ts
    out.append(p + segment("LISTEN-b", SYN, grammar=syn) + op(tw.OP_TICK, "LISTEN-b", 11)
               + segment("LISTEN-b", ACK, grammar=ts) + op(tw.OP_ACCEPT, "LISTEN-b", 0)
               + op(tw.OP_SEND, "LISTEN-b", 0x3C) + op(tw.OP_TICK, "LISTEN-b", 11)
               + op(tw.OP_CLEAN, "LISTEN-b", 1 | 4, 0, 0) + op(tw.OP_TICK, "LISTEN-b", 1)
               + op(tw.OP_TICK, "LISTEN-b", 1) + op(tw.OP_CLEAN, "LISTEN-b", 0, 0, 0))
    # A partial ACK in recovery echoing a time before the retransmission: the hole was
    # filled by the original (tcp_try_undo_partial()).
    out.append(p + ten + op(tw.OP_TICK, name, 11) + op(tw.OP_CLEAN, name, 1, 0, 0)
               + segment(name, ACK, ack=-9 * mss, grammar=bytes([5, 5, 3, 0, 100]))
               + op(tw.OP_CLEAN, name, 0, 0, 0))
    # Slow start past hystart_low_window, then one ACK per segment every 0.5 ms: HyStart
    # counts delay samples and the ACK train outlasts half the minimum RTT.
    grow = (ten + op(tw.OP_TICK, name, 0) + op(tw.OP_CLEAN, name, 0, 0, 0)) * 2
    train = b"".join(segment(name, ACK, ack=-(20 - k) * mss, grammar=ts)
                     + op(tw.OP_TICK, name, 10) for k in range(12))
    out.append(p + grow + op(tw.OP_SEND, name, 0x48) + op(tw.OP_TICK, name, 0) + train)
    # The same with HyStart's delay test alone (profile 1): it collects its 8 samples.
    out.append(bytes([1]) + grow + op(tw.OP_SEND, name, 0x48) + op(tw.OP_TICK, name, 0) + train)
    # A timeout with six segments SACKed; the ACK that follows echoes a time before the
    # retransmission: the timeout was spurious (tcp_try_undo_loss()).
    out.append(p + ten + op(tw.OP_TICK, name, 11) + op(tw.OP_CLEAN, name, 1 | 12, 0, 0)
               + op(tw.OP_TICK, name, 12)
               + segment(name, ACK, ack=-9 * mss, grammar=bytes([5, 5, 3, 0, 127]))
               + op(tw.OP_CLEAN, name, 0, 0, 0))
    for ack in (-9 * mss, 0):   # the RTO the first retransmission: a partial, a full ACK
        out.append(p + ten + op(tw.OP_TICK, name, 12) * 2          # the probe, the RTO
                   + segment(name, ACK, ack=ack, grammar=bytes([5, 5, 3, 0, 127]))
                   + op(tw.OP_CLEAN, name, 0, 0, 0))
    return out


def fast_path_scripts(ts: bytes) -> list[bytes]:
    """Header prediction (tcp/fastpath.py) on a connection fresh from LISTEN-b (no hole in
    its stream): in-order data past the quick ACKs (a delayed ACK pending, so the TSval is
    not TS.Recent's), partial ACKs of a segment (RTT from the echo, or with no
    timestamps none), and in-order data over tcp_mem (profile 5)."""
    name = "LISTEN-b"
    syn_ts = bytes([0, 5, 0xB4, 2]) + ts
    syn_no_ts = bytes([0, 5, 0xB4, 2])

    def child(grammar: bytes, opts: bytes, window: int = 65535) -> bytes:
        return (segment(name, SYN, grammar=grammar)
                + segment(name, ACK, window=window, grammar=opts) + op(tw.OP_ACCEPT, name, 0))

    out = []
    p = bytes([0])
    # The quick ACKs used up (the last of the 100-byte segments waits for its ACK), then
    # small segments past what the stack acknowledged: the ACK waits still.
    out.append(p + child(syn_ts, ts) + segment(name, ACK | PSH, grammar=ts, n=100) * 16
               + b"".join(segment(name, ACK | PSH, seq=100 + 10 * k, grammar=ts, n=10)
                          for k in range(3))
               + op(tw.OP_RECV, name, 100))
    # Out-of-order data moves SND.WL1 past RCV.NXT: the ACKs at RCV.NXT that follow (new
    # data acknowledged, then nothing new) leave the window as it is.
    out.append(p + child(syn_ts, ts) + op(tw.OP_SEND, name, 16)
               + segment(name, ACK | PSH, seq=500, ack=-1024, grammar=ts, n=100)
               + segment(name, ACK, ack=-512, grammar=ts) + segment(name, ACK, grammar=ts)
               + segment(name, ACK, grammar=ts) + op(tw.OP_RECV, name, 10))
    for grammar, opts in ((syn_ts, ts), (syn_no_ts, b"")):
        out.append(p + child(grammar, opts) + op(tw.OP_SEND, name, 16)
                   + segment(name, ACK, ack=-600, grammar=opts)
                   + segment(name, ACK | PSH, ack=-300, grammar=opts, n=10)
                   + segment(name, ACK, grammar=opts) + op(tw.OP_RECV, name, 10))
    # Window scaling: ACKs that move the window (past MAX.WND, then back within it),
    # with new data acknowledged and without.
    syn_ws = syn_ts + bytes([1, 7])
    out.append(p + child(syn_ws, ts, window=100) + op(tw.OP_SEND, name, 16)
               + segment(name, ACK, window=1000, grammar=ts) + op(tw.OP_SEND, name, 16)
               + segment(name, ACK, window=600, grammar=ts)
               + segment(name, ACK, window=2000, grammar=ts)
               + segment(name, ACK, window=700, grammar=ts))
    out.append(bytes([5]) + op(tw.OP_CLEAN, "ESTABLISHED-noopt", 0, 5, 0x78) * 16)
    return out


def fast_open_and_ecn(p: bytes, ts: bytes) -> list[bytes]:
    """Seeds for the Fast Open and ECN profiles: cookie requests and cookies (the raw
    option grammar: 7, length, kind 34 or 254 ...), SYN data, ECN-setup SYNs, CE marks
    (control bit 3), and connect() with TCP_FASTOPEN_CONNECT (accept op 2)."""
    mss = bytes([0, 5, 0xB4, 2])
    request = bytes([7, 2, 34, 2])
    cookie = bytes([7, 10, 34, 10]) + bytes(range(1, 9))
    exp_request = bytes([7, 4, 254, 4, 0xF9, 0x89])
    ece_cwr = 0xC0
    out = [
        p + segment("LISTEN-a", SYN, grammar=mss + ts + request) + segment("LISTEN-a", ACK,
                                                                         grammar=ts)
        + op(tw.OP_ACCEPT, "LISTEN-a", 0),
        p + segment("LISTEN-b", SYN, grammar=mss + ts + cookie, n=200)
        + op(tw.OP_ACCEPT, "LISTEN-b", 0) + op(tw.OP_SOCKOPT, "LISTEN-b", 0x80, 0, 0)
        + op(tw.OP_RECV, "LISTEN-b", 100)
        + op(tw.OP_SEND, "LISTEN-b", 30) + segment("LISTEN-b", ACK, grammar=ts)
        + op(tw.OP_SOCKOPT, "LISTEN-b", 0x80, 0, 0),
        p + segment("LISTEN-c", SYN, grammar=mss + exp_request, n=50)
        + segment("LISTEN-c", ACK) + op(tw.OP_ACCEPT, "LISTEN-c", 0),
        p + segment("LISTEN-d", SYN | ece_cwr, grammar=mss + ts) + segment("LISTEN-d", ACK,
                                                                         grammar=ts)
        + op(tw.OP_ACCEPT, "LISTEN-d", 0) + op(tw.OP_SOCKOPT, "LISTEN-d", 0x80, 0, 0)
        + op(tw.OP_SEND, "LISTEN-d", 100)
        + segment("LISTEN-d", ACK | PSH, grammar=ts, n=100, ctl=8)
        + segment("LISTEN-d", ACK | PSH | 0x80, grammar=ts, n=100)
        + segment("LISTEN-d", ACK | 0x40, grammar=ts) + op(tw.OP_SEND, "LISTEN-d", 100)
        + segment("LISTEN-d", ACK | 0x40, grammar=ts) + op(tw.OP_SOCKOPT, "LISTEN-d", 0x80, 0, 0),
        # Fast Open options of a length Linux ignores: odd, and a cookie over 16 bytes.
        p + segment("LISTEN-a", SYN, grammar=mss + bytes([7, 5, 34, 5, 1, 2, 3]), n=10)
        + segment("LISTEN-c", SYN, grammar=bytes([7, 15, 34, 20]) + bytes(range(11)), n=10),
        # An ECN-setup SYN that is itself CE-marked: a middlebox's doing, no ECN.
        p + segment("LISTEN-e", SYN | ece_cwr, grammar=mss, ctl=8) + segment("LISTEN-e", ACK),
    ]
    synack = mss + bytes([1, 7]) + ts
    name = "CLOSED-port"              # the one target connect() can start from afresh
    ask = op(tw.OP_ACCEPT, name, 2) + op(tw.OP_SEND, name, 40)
    again = op(tw.OP_CLOSE, name) + op(tw.OP_ACCEPT, name, 2) + op(tw.OP_SEND, name, 40)
    reset = segment(name, RST)
    out += [
        # A cookie comes; the next SYN carries it and data, acknowledged; ECN agreed.
        p + ask + segment(name, SYN | ACK | 0x40, grammar=synack + cookie) + reset + again
        + segment(name, SYN | ACK | 0x40, grammar=synack) + op(tw.OP_TICK, name, 3),
        # ... or only the SYN acknowledged: the data again, with the ACK.
        p + ask + segment(name, SYN | ACK, grammar=synack + cookie) + reset + again
        + segment(name, SYN | ACK, ack=-40, grammar=synack) + op(tw.OP_TICK, name, 3),
        # The SYN with data retransmitted (plain), then answered without a cookie.
        p + ask + segment(name, SYN | ACK, grammar=synack + cookie) + reset + again
        + op(tw.OP_TICK, name, 3) + segment(name, SYN | ACK, ack=-40, grammar=synack),
        # The SYN with data too big for the path: a plain SYN again at once.
        p + ask + segment(name, SYN | ACK, grammar=synack + cookie) + reset + again
        + op(tw.OP_ICMP, name, 0, 0x02, 0x40, 0, 0) + segment(name, SYN | ACK, grammar=synack)
        + op(tw.OP_SOCKOPT, name, 0x80, 0, 0),
        # No cookie in the answer to a request: ask in the other form next time.
        p + ask + segment(name, SYN | ACK, grammar=synack) + reset + again
        + segment(name, SYN | ACK, grammar=synack + exp_request),
    ]
    return out


def issue10(p: bytes, ts: bytes) -> list[bytes]:
    """Seeds for issue 10's options (indices into tcp_actions._sockopt's choices) and
    the Linux wire rules that came with them."""
    est, out = "ESTABLISHED", []
    ut, lowat, quick, clamp, inq, zc, defer = 12, 13, 14, 15, 16, 17, 20
    # TCP_USER_TIMEOUT: retransmissions clamped to it and the connection ended; then
    # zero-window probes ended by it.
    out.append(p + op(tw.OP_SOCKOPT, est, ut, 0, 100) + op(tw.OP_SEND, est, 40)
               + op(tw.OP_TICK, est, 3) * 6)
    for name in (est, "ESTABLISHED-noopt"):      # noopt: nothing in flight, so probes
        out.append(p + op(tw.OP_CLEAN, name, 3, 0, 0) + op(tw.OP_SOCKOPT, name, ut, 0, 200)
                   + op(tw.OP_SEND, name, 10) + op(tw.OP_TICK, name, 3) * 8)
    # TCP_NOTSENT_LOWAT: a large write stops at the mark; acks let more in.
    out.append(p + op(tw.OP_SOCKOPT, est, 9, 0x40, 0) + op(tw.OP_SOCKOPT, est, lowat, 0, 20)
               + op(tw.OP_SEND, est, 0x48) + op(tw.OP_CLEAN, est, 0, 0, 0)
               + op(tw.OP_SEND, est, 0x48) + op(tw.OP_TICK, est, 3))
    # SO_ZEROCOPY sends, acked, their completions read; TCP_INQ read after data.
    out.append(p + op(tw.OP_SOCKOPT, est, zc, 0, 1) + op(tw.OP_SEND, est, 0x3C)
               + op(tw.OP_SEND, est, 0x3C) + op(tw.OP_CLEAN, est, 0, 0, 0)
               + op(tw.OP_SOCKOPT, est, inq, 0, 1) + segment(est, ACK | PSH, grammar=ts, n=300)
               + op(tw.OP_SOCKOPT, est, 0x90, 0, 0) + op(tw.OP_CLOSE, est)
               + op(tw.OP_TICK, est, 3))
    # A write under the mark that fills whole skbs until it must stop.
    out.append(p + op(tw.OP_SOCKOPT, est, 9, 0xFF, 0xFF) + op(tw.OP_SOCKOPT, est, lowat, 0, 20)
               + op(tw.OP_SEND, est, 0x7F) + op(tw.OP_CLEAN, est, 0, 0, 0)
               + op(tw.OP_SEND, est, 0x7F))
    # TCP_QUICKACK with an ACK pending (data in order, delayed in ping-pong mode): read
    # then pushed; not read (held), and an even value back to ping-pong.
    # (ESTABLISHED-noopt: ESTABLISHED has a hole in reassembly, so its data is ACKed at once.)
    bare = "ESTABLISHED-noopt"
    out.append(p + op(tw.OP_SOCKOPT, bare, quick, 0, 0) + op(tw.OP_CLEAN, bare, 0, 0, 100)
               + op(tw.OP_RECV, bare, 10) + op(tw.OP_SOCKOPT, bare, quick, 0, 1))
    out.append(p + op(tw.OP_SOCKOPT, bare, quick, 0, 0) + op(tw.OP_CLEAN, bare, 0, 0, 100)
               + op(tw.OP_SOCKOPT, bare, quick, 0, 2) + op(tw.OP_SOCKOPT, bare, quick, 0, 1))
    # TCP_WINDOW_CLAMP on the listener: its next child starts clamped.
    out.append(p + op(tw.OP_SOCKOPT, "LISTEN-a", clamp, 0, 200)
               + segment("LISTEN-d", SYN, grammar=bytes([0, 5, 0xB4, 2]) + ts)
               + segment("LISTEN-d", ACK, grammar=ts) + op(tw.OP_ACCEPT, "LISTEN-d", 0))
    # TCP_QUICKACK: ping-pong, data delayed, read, then the pending ACK pushed; clamp.
    out.append(p + op(tw.OP_SOCKOPT, est, quick, 0, 0) + segment(est, ACK | PSH, grammar=ts, n=100)
               + op(tw.OP_RECV, est, 10) + op(tw.OP_SOCKOPT, est, quick, 0, 2)
               + op(tw.OP_SOCKOPT, est, clamp, 0, 100) + segment(est, ACK | PSH, grammar=ts, n=100)
               + op(tw.OP_SOCKOPT, est, quick, 0, 1) + op(tw.OP_SOCKOPT, est, 0x84, 0, 0))
    # An ACK of data never sent (its TSval not taken), a full cwnd then shutdown (the
    # FIN goes anyway), TIME_WAIT answering a retransmitted FIN and taking an ACK's TSval.
    out.append(p + segment(est, ACK, ack=5000, grammar=ts) + op(tw.OP_SOCKOPT, est, 9, 0x40, 0)
               + op(tw.OP_SEND, est, 0x44) + op(tw.OP_SHUTDOWN, est, 2) + op(tw.OP_TICK, est, 3))
    out.append(p + segment("TIME_WAIT", ACK, grammar=ts) + segment("TIME_WAIT", FIN | ACK,
                                                                  seq=-1, grammar=ts))
    # TCP_DEFER_ACCEPT on the listener: a bare ACK held, SYN,ACK timeouts, then data.
    out.append(p + op(tw.OP_SOCKOPT, "LISTEN-a", defer, 0, 3)
               + segment("LISTEN-c", SYN, grammar=bytes([0, 5, 0xB4, 2]) + ts)
               + segment("LISTEN-c", ACK, grammar=ts) + op(tw.OP_TICK, "LISTEN-c", 3) * 4
               + segment("LISTEN-c", ACK | PSH, grammar=ts, n=50) + op(tw.OP_TICK, "LISTEN-c", 4)
               + op(tw.OP_TICK, "LISTEN-c", 5))
    return out


# ---------------------------------------------------------------- captures
def capture_files() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "run.pcap")
        transfer(600, seed=4, link=LinkParams(delay_us=2 * MS), pcap=path)
        with PcapReader(path) as reader:
            records = list(reader)[:10]
    packets = [r.data for r in records]
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"
    links = {
        "raw": (101, lambda p: p),
        "ipv4": (228, lambda p: p),
        "ether": (1, lambda p: eth + b"\x08\x00" + p),
        "vlan": (1, lambda p: eth + b"\x81\x00\x00\x05\x08\x00" + p),
        "sll": (113, lambda p: struct.pack("!HHH8sH", 0, 1, 6, bytes(8), 0x0800) + p),
        "sll2": (276, lambda p: struct.pack("!HHIHBB8s", 0x0800, 0, 1, 1, 0, 6, bytes(8)) + p),
        "null": (0, lambda p: b"\x02\x00\x00\x00" + p),
    }
    out = {}
    for name, (linktype, wrap) in links.items():
        frames = [PcapRecord(r.ts_us, wrap(r.data), linktype) for r in records]
        out[f"{name}.pcap"] = pcap(frames, "<", False)
        out[f"{name}.pcapng"] = pcapng(frames, "<")
    raw = [PcapRecord(r.ts_us, r.data, 101) for r in records]
    out["raw-be-ns.pcap"] = pcap(raw, ">", True)
    out["raw-be.pcapng"] = pcapng(raw, ">")
    out["raw-cut.pcap"] = out["raw.pcap"][:-7]
    assert len(packets) == len(records)
    return out


def pcap(records: list[PcapRecord], order: str, ns: bool) -> bytes:
    b = io.BytesIO()
    linktype = records[0].linktype
    b.write(struct.pack(order + "IHHiIII", 0xA1B23C4D if ns else 0xA1B2C3D4, 2, 4, 0, 0,
                        262144, linktype))
    for r in records:
        sec, us = divmod(r.ts_us, 1_000_000)
        b.write(struct.pack(order + "IIII", sec, us * 1000 if ns else us, len(r.data),
                            len(r.data)) + r.data)
    return b.getvalue()


def _block(order: str, btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)


def pcapng(records: list[PcapRecord], order: str) -> bytes:
    out = _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = struct.pack(order + "HHB3x", 9, 1, 6) + struct.pack(order + "HH", 0, 0)
    out += _block(order, 1, struct.pack(order + "HHI", records[0].linktype, 0, 0) + opts)
    for i, r in enumerate(records):
        if i == 3:   # one Simple Packet Block among the Enhanced ones
            out += _block(order, 3, struct.pack(order + "I", len(r.data)) + r.data)
            continue
        body = struct.pack(order + "IIIII", 0, r.ts_us >> 32, r.ts_us & 0xFFFFFFFF, len(r.data),
                           len(r.data)) + r.data
        out += _block(order, 6, body)
    return out


# ---------------------------------------------------------------- main
def write(root: Path, dirname: str, blobs: list[bytes] | dict[str, bytes]) -> int:
    d = root / dirname
    d.mkdir(parents=True, exist_ok=True)
    for old in d.iterdir():
        old.unlink()
    items = blobs.items() if isinstance(blobs, dict) else (
        (hashlib.sha1(b).hexdigest()[:16], b) for b in blobs)
    n = 0
    for name, data in items:
        (d / name).write_bytes(data)
        n += 1
    return n


def main() -> None:
    root = Path(sys.argv[sys.argv.index("--out") + 1]) if "--out" in sys.argv else HERE / "corpus"
    tcp_inputs: list[bytes] = []
    runs = [
        (LinkParams(delay_us=5 * MS), 6000, 1, 0),
        (LinkParams(delay_us=5 * MS, loss=0.1), 9000, 2, 0),
        (LinkParams(delay_us=5 * MS, reorder=0.2, duplicate=0.05), 9000, 3, 2),
        (LinkParams(delay_us=5 * MS, loss=0.05), 5000, 4, 3),
    ]
    for link, nbytes, seed, profile in runs:
        tcp_inputs += inputs_from_run(run_segments(link, nbytes, seed), profile)
    tcp_inputs += scripts()
    tcp_inputs = sorted(set(tcp_inputs))
    n_tcp = write(root, "tcp", tcp_inputs)
    n_cap = write(root, "capture", capture_files())
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    print(f"{root}: {n_tcp} tcp inputs, {n_cap} capture files, {size} bytes")


if __name__ == "__main__":
    main()
