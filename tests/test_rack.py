"""RACK-TLP (RFC 8985) as Linux's default loss detection, driven segment by segment.

The stack accepts a connection from the peer (MSS 1000, SACK, no timestamps unless
said): the SYN at 0, the handshake's ACK at 10 ms, so the RTT, SRTT and min RTT
are 10 ms. Data goes out at 10 ms; sequence numbers below are offsets from our ISN
(the first data byte is 1), as packetdrill writes them.
"""

from __future__ import annotations

from transcript import L_ISN, R_ISN, listening

from synack.config import Sysctl
from synack.tcp.info import tcp_info
from synack.tcp.rack import Rack
from synack.wire.tcp import ACK, SYN

MS = 1000
ISS = L_ISN
CA_OPEN, CA_DISORDER, CA_RECOVERY, CA_LOSS = 0, 1, 3, 4


def server(nbytes: int, *, ts: bool = False, **sysctls: int):
    """An accepted connection that has just sent ``nbytes`` at 10 ms."""
    stack, lfd, peer = listening(cfg=Sysctl(**{"net.ipv4.tcp_wmem": (4096, 200_000, 4194304),
                                               **sysctls}))
    opts = {"timestamps": (1000, 0)} if ts else {}
    (synack,) = peer.send(seq=R_ISN, flags=SYN, mss=1000, sack_permitted=True, now=0, **opts)
    echo = {"timestamps": (1010, synack.timestamps[0])} if ts else {}
    peer.send(seq=R_ISN + 1, ack=ISS + 1, flags=ACK, now=10 * MS, **echo)
    fd, _ = stack.accept(lfd)
    assert stack.send(fd, b"x" * nbytes, now=10 * MS) == nbytes
    sent = peer.out(10 * MS)
    return stack, fd, peer, sent


def rel(segs):
    """(offset of seq, payload length) of each segment we sent."""
    return [((s.seq - ISS) & 0xFFFFFFFF, len(s.payload)) for s in segs]


def sack(peer, ack: int, *blocks: tuple[int, int], now: int, **kw):
    """The peer's ACK for offset ``ack`` with SACK blocks given as offsets."""
    return peer.send(seq=R_ISN + 1, ack=ISS + ack, flags=ACK, now=now,
                     sack_blocks=tuple((ISS + a, ISS + b) for a, b in blocks), **kw)


def info(stack, fd, now: int):
    conn = stack.connection(fd)
    assert conn is not None
    return tcp_info(conn, now)


def test_sacked_segments_reaching_tcp_reordering_mark_the_holes_lost_at_once() -> None:
    """Linux tcp_rack_reo_wnd(): with no reordering seen, the reordering window is zero
    once sacked_out >= tcp_reordering (3): the DupThresh rule as a shortcut of RACK. All
    unSACKed segments sent before the last SACKed one are lost; PRR lets one out."""
    stack, fd, peer, sent = server(10_000)
    assert len(sent) == 10
    assert sack(peer, 1, (2001, 3001), now=110 * MS) == []
    assert sack(peer, 1, (2001, 3001), (6001, 7001), now=111 * MS) == []
    out = sack(peer, 1, (2001, 3001), (6001, 7001), (8001, 9001), now=112 * MS)
    assert rel(out) == [(1, 1000)]                          # the fast retransmission only
    i = info(stack, fd, 112 * MS)
    assert i.tcpi_ca_state == CA_RECOVERY
    assert i.tcpi_lost == 6 and i.tcpi_sacked == 3 and i.tcpi_retrans == 1


def test_a_single_sack_waits_for_the_reordering_window_then_the_timer_fires() -> None:
    """Linux tcp_rack_detect_loss() + tcp_rack_mark_lost(): one SACKed segment of three
    leaves the others to wait RACK.rtt + min_rtt/4 from their sending; the reordering
    timer (rounded up to jiffies, plus TCP_TIMEOUT_MIN = 2 ms) marks them lost, recovery
    starts from the timer (tcp_rack_reo_timeout()) and the first is resent."""
    stack, fd, peer, sent = server(3000)
    assert rel(sent) == [(1, 1000), (1001, 1000), (2001, 1000)]
    # At 20 ms: RACK.rtt = 10 ms, reo_wnd = 2.5 ms, 1 and 1001 have waited 10 ms:
    # 2.5 ms remain -> a timer 3 ms (whole jiffies) + 2 ms away, at 25 ms.
    assert sack(peer, 1, (2001, 3001), now=20 * MS) == []
    conn = stack.connection(fd)
    assert conn is not None and conn.timers.rtx == 25 * MS
    assert peer.run_until(24_999) == []
    fired = peer.run_until(25 * MS)
    assert [(t, *r) for t, r in zip([t for t, _ in fired], rel([s for _, s in fired]))] == [
        (25 * MS, 1, 1000)]
    i = info(stack, fd, 25 * MS)
    assert i.tcpi_ca_state == CA_RECOVERY and i.tcpi_lost == 2


def test_reordering_seen_keeps_the_window_open_even_with_three_sacked() -> None:
    """Linux tcp_check_sack_reordering(): a never-retransmitted segment SACKed below the
    highest SACK is reordering (tcpi_reordering grows to the distance); from then on
    RACK keeps its min_rtt/4 window even when three or more segments are SACKed."""
    stack, fd, peer, _ = server(10_000)
    sack(peer, 1, (8001, 9001), now=20 * MS)
    sack(peer, 1, (3001, 4001), (8001, 9001), now=20 * MS)     # below 9001: reordered
    assert info(stack, fd, 20 * MS).tcpi_reordering == 6       # (9001 - 3001) / 1000
    assert sack(peer, 1, (3001, 4001), (6001, 7001), (8001, 9001), now=20 * MS) == []
    assert info(stack, fd, 20 * MS).tcpi_lost == 0
    assert [rel([s])[0] for _, s in peer.run_until(30 * MS)][:1] == [(1, 1000)]


def test_rack_finds_a_lost_retransmission_without_the_rto() -> None:
    """RFC 8985 6.2 / Linux tcp_rack_detect_loss(): a retransmission is one more
    transmission; once data sent after it is SACKed and it is not acknowledged within
    RACK.rtt (the reordering window is zero in recovery), it is lost again
    (TCPLostRetransmit) and resent, long before the 210 ms RTO."""
    stack, fd, peer, sent = server(20_000)
    assert len(sent) == 10                                   # the initial window
    # Each SACK in Disorder lets a new segment out (what is SACKed left the network).
    assert rel(sack(peer, 1, (1001, 2001), now=20 * MS)) == [(10_001, 1000)]
    assert rel(sack(peer, 1, (1001, 3001), now=20 * MS)) == [(11_001, 1000)]
    out = sack(peer, 1, (1001, 4001), now=20 * MS)
    assert rel(out) == [(1, 1000)]                           # fast retransmission at 20 ms
    # More SACKs at 21 ms: PRR lets new data out after the retransmission.
    out = sack(peer, 1, (1001, 10_001), now=21 * MS)
    assert rel(out) == [(12_001, 1000), (13_001, 1000), (14_001, 1000), (15_001, 1000)]
    # At 30 ms what was sent at 20 and 21 ms is SACKed; the retransmission is not: the
    # data sent after it arrived 9 ms after it was sent, the retransmission has had 10.
    out = sack(peer, 1, (1001, 13_001), now=30 * MS)
    assert (1, 1000) in rel(out)
    conn = stack.connection(fd)
    assert conn is not None and conn.rec.rack is not None
    assert conn.rec.rack.lost_retrans == 1 and conn.rto_count == 0


def test_the_tail_loss_probe_resends_the_last_segment_after_two_rtts() -> None:
    """Linux tcp_schedule_loss_probe(): with three segments out and SRTT 10 ms the probe
    timer is 2 * SRTT + 2 ms (TCP_TIMEOUT_MIN), not the 210 ms RTO; with nothing new to
    send tcp_send_loss_probe() resends the last segment. Its SACK shows the others lost:
    RACK marks them and recovery repairs them, all without a timeout."""
    stack, fd, peer, _sent = server(3000)
    conn = stack.connection(fd)
    assert conn is not None
    assert peer.run_until(31_999) == []
    probe = peer.run_until(32 * MS)
    assert [(t, *rel([s])[0]) for t, s in probe] == [(32 * MS, 2001, 1000)]
    assert stack.cfg.mib["TcpExtTCPLossProbes"] == 1
    out = sack(peer, 1, (2001, 3001), now=42 * MS)
    assert rel(out) == [(1, 1000)]
    assert info(stack, fd, 42 * MS).tcpi_ca_state == CA_RECOVERY
    assert rel(sack(peer, 1001, (2001, 3001), now=52 * MS)) == [(1001, 1000)]
    sack(peer, 3001, now=62 * MS)
    assert conn.rto_count == 0 and info(stack, fd, 62 * MS).tcpi_ca_state == CA_OPEN


def test_the_probe_timer_allows_for_a_delayed_ack_when_one_segment_is_out() -> None:
    """Linux tcp_schedule_loss_probe(): one segment in flight adds tcp_rto_min (200 ms)
    for the peer's delayed ACK; the RTO (210 ms) is sooner, so the probe takes its time."""
    stack, fd, _peer, _sent = server(1000)
    conn = stack.connection(fd)
    assert conn is not None and conn.timers.rtx == 10 * MS + 210 * MS


def test_the_probe_sends_new_data_when_there_is_some() -> None:
    """Linux tcp_send_loss_probe(): a segment waiting beyond cwnd goes out as the probe
    (the window allows it); the lost tail is then found by RACK from its SACK."""
    stack, fd, peer, sent = server(11_000)
    assert len(sent) == 10
    probe = peer.run_until(32 * MS)
    assert [rel([s])[0] for _, s in probe] == [(10_001, 1000)]
    conn = stack.connection(fd)
    assert conn is not None and conn.rec.tlp_high_seq == ISS + 11_001
    assert not conn.rec.tlp_retrans


def test_a_probe_that_repaired_a_loss_reduces_cwnd_once() -> None:
    """Linux tcp_process_tlp_ack(): the probe was a retransmission and a later ACK goes
    beyond tlp_high_seq without a D-SACK: the probe repaired a real loss, so cwnd drops
    to ssthresh once (CWR, then tcp_end_cwnd_reduction())."""
    stack, fd, peer, _sent = server(3000)
    peer.run_until(32 * MS)                                  # the probe resends 2001
    sack(peer, 2001, now=40 * MS)                            # 2001:3001 still missing
    conn = stack.connection(fd)
    assert conn is not None
    sack(peer, 3001, now=42 * MS)                            # the probe filled it
    cwnd = conn.rec.cc.cwnd
    stack.send(fd, b"y" * 1000, now=43 * MS)
    peer.out(43 * MS)
    sack(peer, 4001, now=53 * MS)                            # beyond tlp_high_seq
    assert conn.rec.tlp_high_seq is None
    assert conn.rec.cc.ssthresh == cwnd * 717 // 1024        # CUBIC's beta
    assert conn.rec.cc.cwnd <= conn.rec.cc.ssthresh


def test_a_dsack_of_the_probe_means_no_loss() -> None:
    """Linux tcp_process_tlp_ack(): a D-SACK for the probe says both copies arrived:
    no loss, no reduction."""
    stack, fd, peer, _sent = server(3000)
    conn = stack.connection(fd)
    assert conn is not None
    peer.run_until(32 * MS)
    cwnd = conn.rec.cc.cwnd
    sack(peer, 3001, (2001, 3001), now=42 * MS)              # D-SACK: below the ACK
    assert conn.rec.tlp_high_seq is None
    assert conn.rec.cc.cwnd >= cwnd and conn.rec.cc.ssthresh > 1000


def test_timestamps_prove_the_fast_retransmission_spurious_and_undo_it() -> None:
    """Linux tcp_try_undo_recovery() / tcp_packet_delayed(): the ACK that ends recovery
    echoes a TSval older than the first retransmission (retrans_stamp): the original
    arrived, the loss was reordering; cwnd and ssthresh come back."""
    stack, fd, peer, sent = server(10_000, ts=True)
    conn = stack.connection(fd)
    assert conn is not None
    mss = conn.mss                                           # 988: the TS option takes 12
    before = conn.rec.cc.cwnd
    tsval_sent = sent[0].timestamps[0]
    for k in (2, 3, 4):
        out = sack(peer, 1, (1 + mss, 1 + k * mss), now=20 * MS,
                   timestamps=(2000, tsval_sent))
    assert rel(out) == [(1, mss)] and conn.rec.cc.ssthresh < before
    assert conn.rec.undo_stamp == 20 * MS
    # The ACK of everything echoes the TSval of the original transmission (10 ms).
    sack(peer, 10_001, now=21 * MS, timestamps=(2001, tsval_sent))
    assert conn.rec.cc.cwnd >= before and conn.rec.cc.ssthresh > 1000
    assert conn.rec.undos == 1 and info(stack, fd, 21 * MS).tcpi_ca_state == CA_OPEN


def test_a_dsack_of_every_retransmission_undoes_the_reduction() -> None:
    """Linux tcp_check_dsack() + tcp_try_undo_dsack(): each D-SACK of a retransmitted
    segment takes one off undo_retrans; at zero every retransmission was unnecessary
    and the cwnd reduction is undone while recovery goes on."""
    stack, fd, peer, _sent = server(10_000)
    conn = stack.connection(fd)
    assert conn is not None
    before = conn.rec.cc.cwnd
    for blocks in (((1001, 2001),), ((1001, 3001),), ((1001, 4001),)):
        out = sack(peer, 1, *blocks, now=20 * MS)
    assert rel(out) == [(1, 1000)]
    sack(peer, 4001, (1, 1001), now=25 * MS)                 # D-SACK of the resent 1:1001
    assert conn.rec.undos == 1 and conn.rec.cc.cwnd >= before


def test_tcp_recovery_0_keeps_rfc_6675_dupthresh() -> None:
    """net.ipv4.tcp_recovery = 0: no RACK; RFC 6675 IsLost with DupThresh 3 decides, so
    after three SACKed segments only what has three SACKed ranges (or 3 * MSS) above it
    is lost, and no probe timer is armed (the RTO is)."""
    stack, fd, peer, _sent = server(10_000, **{"net.ipv4.tcp_recovery": 0})
    conn = stack.connection(fd)
    assert conn is not None and conn.rec.rack is None
    assert conn.timers.rtx == 10 * MS + 210 * MS
    sack(peer, 1, (2001, 3001), now=110 * MS)
    sack(peer, 1, (2001, 3001), (6001, 7001), now=111 * MS)
    out = sack(peer, 1, (2001, 3001), (6001, 7001), (8001, 9001), now=112 * MS)
    assert rel(out)[0] == (1, 1000)
    assert info(stack, fd, 112 * MS).tcpi_lost == 2              # 1:2001 only


def test_dsacks_widen_the_reordering_window_once_per_round_trip() -> None:
    """Linux tcp_rack_update_reo_wnd(): a D-SACK seen on an ACK widens reo_wnd by one
    min_rtt/4 step (at most once per round trip), and it stays wide for 16 recoveries."""
    rack = Rack(1000)
    rack.on_send(1, 1001, 0, retrans=False)
    rack.on_send(1001, 2001, 0, retrans=False)
    rack.on_ack(1001, [], True, 10 * MS, 10 * MS)
    rack.update_reo_wnd(10 * MS)
    assert rack.reo_wnd_steps == 2 and rack.reo_wnd_persist == 16
    rack.reord_seen = 1
    assert rack.reo_wnd(in_recovery=True, min_rtt=10 * MS, srtt=10 * MS) == 5 * MS
    # Another D-SACK for data sent before the step: not a round trip later, ignored.
    rack.dsack_seen = True
    rack.update_reo_wnd(11 * MS)
    assert rack.reo_wnd_steps == 2
    # Never wider than SRTT.
    rack.reo_wnd_steps = 9
    assert rack.reo_wnd(in_recovery=True, min_rtt=10 * MS, srtt=12 * MS) == 12 * MS


def test_timestamps_prove_a_timeout_spurious_and_undo_it() -> None:
    """Linux tcp_try_undo_loss(): after an RTO, an ACK that advances SND.UNA and echoes a
    TSval from before the timeout's retransmission shows the originals arrived (the
    path was only slow): cwnd and ssthresh come back and the Loss state ends."""
    stack, fd, peer, sent = server(3000, ts=True)
    conn = stack.connection(fd)
    assert conn is not None
    before_cwnd, before_ssthresh = conn.rec.cc.cwnd, conn.rec.cc.ssthresh
    peer.run_until(32 * MS)                                  # the loss probe
    fired = peer.run_until(300 * MS)                         # then the RTO
    assert fired and conn.rto_count == 1 and conn.rec.cc.cwnd == 1
    assert info(stack, fd, 300 * MS).tcpi_ca_state == CA_LOSS
    tsval_sent = sent[0].timestamps[0]
    mss = conn.mss
    sack(peer, 1 + mss, now=301 * MS, timestamps=(3000, tsval_sent))   # echo: the original
    assert conn.rec.undos == 1
    assert conn.rec.cc.cwnd >= before_cwnd and conn.rec.cc.ssthresh == before_ssthresh
    assert info(stack, fd, 301 * MS).tcpi_ca_state == CA_OPEN
