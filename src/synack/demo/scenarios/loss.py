"""Loss that duplicate ACKs cannot reveal: a lost tail (TLP) and a lost retransmission (RACK)."""

from __future__ import annotations

from typing import Any

from synack.demo.driver import step_marks
from synack.demo.scenarios.base import CLIENT, MS, SECOND, SERVER, Lab, Outcome, drain, knob, lab
from synack.tcp.state import State
from synack.trace.ladder import SegmentStep

ONE_WAY_US = 10 * MS   # lab()'s link delay


def _bulk(seed: int, nbytes: int, lose: Any) -> tuple[Lab, dict[str, Any], int]:
    """A client that writes ``nbytes`` once established; ``lose(iss, mss)`` returns the
    predicate of packets to lose (called when the data is written)."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd)
    st: dict[str, Any] = {"got": 0}

    def server(now: int) -> None:
        if "fd" not in st:
            try:
                st["fd"], _ = s.accept(lfd)
            except BlockingIOError:
                return
        data, _eof = drain(s, st["fd"], now)
        st["got"] += len(data)

    cfd = c.socket()

    def client(now: int) -> None:
        if c.state(cfd) is not State.ESTABLISHED:
            return
        if "sent" not in st:
            conn = c.connection(cfd)
            assert conn is not None
            st["mss"] = int(conn.mss)
            st["iss"] = conn.snd.iss
            st["sent"] = 0
            st["sent_at"] = now
            net.add_drop_rule(lose(conn.snd.iss, st["mss"]))
        if st["sent"] < nbytes:               # as the send buffer makes room
            try:
                st["sent"] += c.send(cfd, b"x" * (nbytes - st["sent"]), now=now)
            except BlockingIOError:
                pass

    L.server.apps.append(server)
    L.client.apps.append(client)
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    net.run(until=2 * SECOND)
    return L, st, cfd


def _data(L: Lab) -> list[SegmentStep]:
    return [x for x in L.steps() if isinstance(x, SegmentStep) and x.src == "left"
            and x.seg.payload]


def tail_loss_probe(seed: int = 1, *, nbytes: int = 8192) -> Outcome:
    """The last two segments are lost: the tail loss probe recovers them without the RTO."""
    from synack.wire.ipv4 import parse_tcp_packet

    def lose(iss: int, mss: int) -> Any:
        tail = {iss + 1 + 4 * mss, iss + 1 + 5 * mss}    # segments 5 and 6 of 6

        def rule(packet: bytes) -> bool:
            ip, seg = parse_tcp_packet(packet, verify_checksum=False)
            if ip.src == CLIENT and seg.payload and seg.seq in tail:
                tail.discard(seg.seq)                    # each lost once
                return True
            return False
        return rule

    L, st, cfd = _bulk(seed, nbytes, lose)
    c = L.c
    conn = c.connection(cfd)
    assert conn is not None
    data = _data(L)
    seen: set[int] = set()
    firsts: list[SegmentStep] = []                # each segment's first transmission
    resent: list[SegmentStep] = []
    for x in data:
        (resent if x.seg.seq in seen else firsts).append(x)
        seen.add(x.seg.seq)
    lost = [x for x in firsts if x.fate == "lost"]
    t0 = st["sent_at"]
    # The last ACK before the probe reaches the client one way's delay after it left.
    last_ack = max((x.t_us for x in L.steps() if isinstance(x, SegmentStep)
                    and x.src == "right" and x.t_us < (resent[0].t_us if resent else 0)),
                   default=t0) + ONE_WAY_US
    probe = resent[0] if resent else None
    repaired = resent[1] if len(resent) > 1 else None
    done = max((x.t_us for x in L.steps() if isinstance(x, SegmentStep) and x.src == "right"),
               default=0)
    f: dict[str, Any] = {
        "segments": len(firsts), "lost": [firsts.index(x) + 1 for x in lost],
        "probe_seq": probe.seg.seq if probe else None,
        "probe_is_last": probe is not None and probe.seg.seq == firsts[-1].seg.seq,
        "probe_after_last_ack_ms": (probe.t_us - last_ack) / MS if probe else None,
        "srtt_ms": (conn.rtt.srtt or 0) / MS, "rto_ms": conn.rtt.rto / MS,
        "repaired_seq": repaired.seg.seq if repaired else None,
        "repaired_after_ms": (repaired.t_us - t0) / MS if repaired else None,
        "all_acked_after_ms": (done - t0) / MS,
        "loss_probes": c.cfg.mib["TcpExtTCPLossProbes"], "rto_count": conn.rto_count,
        "received": st["got"], "sent": st.get("sent", 0),
    }
    n, pa = f["segments"], f["probe_after_last_ack_ms"]
    en = f"""
The client writes {f['sent']} bytes: {n} segments, sent at once. The last two ({f['lost'][0]} and {f['lost'][1]}) are lost. The server acknowledges the others and then has nothing to say: no duplicate ACK, no SACK, nothing for fast retransmit to count. Before RACK-TLP such a tail waited for the retransmission timeout ({f['rto_ms']:.0f} ms here, at least 200 ms on Linux).
Linux arms the tail loss probe instead (RFC 8985 section 7; net.ipv4.tcp_early_retrans = 3): PTO = 2 x SRTT, plus 2 ms, or plus 200 ms for a delayed ACK when one segment is out, and never later than the RTO. Here SRTT is {f['srtt_ms']:.0f} ms and two segments are out, so {pa:.0f} ms after the last ACK arrived the client sends a probe: with no new data to send, the last segment again (seq={f['probe_seq']}) [Retransmission].
The probe arrives; the server answers with another ACK for the hole, which SACKs it. That is what RACK needs: a segment sent after segment {f['lost'][0]} has been delivered, and segment {f['lost'][0]} has not, for longer than an RTT plus the reordering window. It is marked lost, fast recovery starts and resends it {f['repaired_after_ms']:.0f} ms after the original. Everything is acknowledged {f['all_acked_after_ms']:.0f} ms after the write, with {f['rto_count']} timeouts.
"""
    zh = f"""
尾部丢失探测（TLP）。客户端写入 {f['sent']} 字节：{n} 个报文段，一次发出。最后两个（第 {f['lost'][0]} 和第 {f['lost'][1]} 个）丢了。服务端确认了前面的报文段，之后就没有话说：没有重复 ACK，没有 SACK，快速重传无从计数。在 RACK-TLP 之前，这样的尾部只能等重传超时（这里是 {f['rto_ms']:.0f} ms，Linux 最少 200 ms）。
Linux 改为设置尾部丢失探测计时器（RFC 8985 第 7 节；net.ipv4.tcp_early_retrans = 3）：PTO = 2 x SRTT 再加 2 ms；只有一个报文段在途时改加 200 ms，留给对方的延迟确认；且不晚于 RTO。这里 SRTT 是 {f['srtt_ms']:.0f} ms，在途两个报文段，所以在最后一个 ACK 到达之后 {pa:.0f} ms，客户端发出探测：没有新数据可发，就把最后一个报文段再发一次（seq={f['probe_seq']}）[Retransmission]。
探测到达后，服务端再回一个指向空洞的 ACK，并 SACK 了它。这正是 RACK 需要的：比第 {f['lost'][0]} 个晚发出的报文段已经送达，而第 {f['lost'][0]} 个超过一个 RTT 加重排序窗口仍未送达，于是判定它丢失，进入快速恢复，在原报文发出 {f['repaired_after_ms']:.0f} ms 后重传它。写入后 {f['all_acked_after_ms']:.0f} ms 全部得到确认，超时重传 {f['rto_count']} 次。
"""
    return Outcome("tail-loss-probe", "A lost tail and the tail loss probe", L.ladder(), en, [
        knob(c.cfg, "net.ipv4.tcp_early_retrans", "3 or 4: tail loss probes on",
             "3 或 4：开启尾部丢失探测"),
        knob(c.cfg, "net.ipv4.tcp_recovery", "1: RACK marks losses by time",
             "1：RACK 按时间判定丢包"),
        knob(c.cfg, "net.ipv4.tcp_sack", "the probe needs SACK to reveal the hole",
             "探测需要 SACK 才能揭示空洞")], f, L.net,
        title_zh="尾部丢失与尾部丢失探测", explanation_zh=zh)


def rack_lost_retransmit(seed: int = 1, *, nbytes: int = 40_000, lose: int = 3) -> Outcome:
    """A retransmission is lost too: RACK finds it by time, long before the RTO."""
    from synack.wire.ipv4 import parse_tcp_packet

    def rule_for(iss: int, mss: int) -> Any:
        target = iss + 1 + (lose - 1) * mss
        left = [2]                                    # the original and its first resend

        def rule(packet: bytes) -> bool:
            ip, seg = parse_tcp_packet(packet, verify_checksum=False)
            if left[0] and ip.src == CLIENT and seg.payload and seg.seq == target:
                left[0] -= 1
                return True
            return False
        return rule

    L, st, cfd = _bulk(seed, nbytes, rule_for)
    c = L.c
    conn = c.connection(cfd)
    assert conn is not None
    data = _data(L)
    target = st["iss"] + 1 + (lose - 1) * st["mss"]
    tries = [x for x in data if x.seg.seq == target]
    t0 = tries[0].t_us
    rack = conn.rec.rack
    after = next((x for x in data if x.t_us > tries[1].t_us and x.seg.seq != target), None) \
        if len(tries) > 1 else None
    f: dict[str, Any] = {
        "marks": [step_marks(x) for x in tries],
        "new_data_after_ms": (after.t_us - t0) / MS if after is not None else None,
        "lost_index": lose, "seq": target, "transmissions": len(tries),
        "fates": [x.fate for x in tries],
        "after_ms": [(x.t_us - t0) / MS for x in tries],
        "srtt_ms": (conn.rtt.srtt or 0) / MS, "rto_ms": conn.rtt.rto / MS,
        "lost_retransmits": rack.lost_retrans if rack is not None else 0,
        "rto_count": conn.rto_count, "received": st["got"], "sent": st.get("sent", 0),
    }
    a, nd = f["after_ms"], f["new_data_after_ms"]
    m1, m2 = ("[" + ", ".join(m) + "]" for m in f["marks"][1:3])
    en = f"""
The client writes {f['sent']} bytes. Segment {lose} (seq={target}) is lost; the SACKs for the segments after it make RACK mark it lost, and the client retransmits it {a[1]:.0f} ms after the original {m1}. That retransmission is lost as well.
Counting duplicate ACKs cannot tell: they keep coming for the hole whether the retransmission is on its way or gone, and RFC 6675 resends a segment only once per recovery; before RACK the sender waited for the retransmission timeout ({f['rto_ms']:.0f} ms from the last ACK here).
RACK (RFC 8985, Linux's default: net.ipv4.tcp_recovery = 1) treats the retransmission as one more transmission with its own send time. The new data sent in the same instant went out before it; the next new data, {nd:.0f} ms after the original, left after it. When that data is SACKed and the retransmission still is not, the retransmission has been out longer than the round trip just measured on the data (the reordering window is zero during recovery): it is lost too. The client sends it a third time, {a[2]:.0f} ms after the original {m2} (Linux counts TCPLostRetransmit: {f['lost_retransmits']}). No timeout fires ({f['rto_count']}); the server receives all {f['received']} bytes.
"""
    zh = f"""
重传也丢了。客户端写入 {f['sent']} 字节。第 {lose} 个报文段（seq={target}）丢失；它之后的报文段被 SACK，RACK 据此判定它丢失，客户端在原报文发出 {a[1]:.0f} ms 后重传 {m1}。这个重传也丢了。
数重复 ACK 分辨不出来：不论重传还在路上还是已经丢了，指向空洞的 ACK 都会继续到来，而 RFC 6675 在一次恢复中只重传一次；在 RACK 之前，发送方只能等重传超时（这里是最后一个 ACK 之后 {f['rto_ms']:.0f} ms）。
RACK（RFC 8985，Linux 的默认：net.ipv4.tcp_recovery = 1）把重传当作又一次发送，有它自己的发送时间。同一时刻发出的新数据排在它之前；下一批新数据在原报文发出 {nd:.0f} ms 后发出，排在它之后。等这批数据被 SACK 而重传仍未被确认时，重传在途的时间已超过刚在这批数据上测得的往返时间（恢复期间重排序窗口为零）：它也丢了。客户端在原报文发出 {a[2]:.0f} ms 后第三次发送它 {m2}（Linux 计入 TCPLostRetransmit：{f['lost_retransmits']}）。没有发生超时（{f['rto_count']} 次）；服务端收到全部 {f['received']} 字节。
"""
    return Outcome("rack-lost-retransmit", "RACK finds a lost retransmission", L.ladder(), en, [
        knob(c.cfg, "net.ipv4.tcp_recovery", "1: RACK, which also times retransmissions",
             "1：RACK，重传也按时间判定"),
        knob(c.cfg, "net.ipv4.tcp_sack", "RACK needs SACK", "RACK 需要 SACK")], f, L.net,
        title_zh="RACK 发现丢失的重传", explanation_zh=zh)
