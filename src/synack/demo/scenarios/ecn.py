"""Explicit Congestion Notification: a router marks instead of dropping (RFC 3168)."""

from __future__ import annotations

import dataclasses
from typing import Any

from synack.config import Sysctl
from synack.demo.scenarios.base import CLIENT, MS, SECOND, SERVER, Outcome, drain, knob, lab
from synack.sim import LinkParams
from synack.tcp.state import State
from synack.trace.ladder import SegmentStep
from synack.wire.ecn import CE, NAMES, ip_ecn
from synack.wire.ipv4 import parse_tcp_packet
from synack.wire.tcp import CWR, ECE, SYN

ONE_WAY_US = 10 * MS          # lab()'s link delay
RATE_BPS = 10_000_000         # the bottleneck, client -> server
MARK_BYTES = 15_000           # the AQM marks CE above this backlog (about 10 segments)


def ecn_marking(seed: int = 1, *, nbytes: int = 100_000) -> Outcome:
    """ECN: a queue marks CE instead of dropping; the sender slows down, nothing is lost."""
    cfg = Sysctl()
    cfg.set("net.ipv4.tcp_ecn", 1)                    # the client asks; the server (2) agrees
    L = lab(seed, client_isn=100, server_isn=300, client_cfg=cfg)
    c, s, net = L.c, L.s, L.net
    net.set_link(CLIENT, SERVER, LinkParams(delay_us=ONE_WAY_US, rate_bps=RATE_BPS,
                                            ecn_mark_bytes=MARK_BYTES))
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
            conn.trace = []                   # the sender's cwnd and ssthresh after every ACK
            st["sent"] = 0
            st["sent_at"] = now
        if st["sent"] < nbytes:               # as the send buffer makes room
            try:
                st["sent"] += c.send(cfd, b"x" * (nbytes - st["sent"]), now=now)
            except BlockingIOError:
                pass

    L.server.apps.append(server)
    L.client.apps.append(client)
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    net.run(until=2 * SECOND)

    conn = c.connection(cfd)
    assert conn is not None and conn.trace is not None
    # Which packets the queue marked: the bytes that arrived carry CE, those sent did not.
    marked = [r for r in net.records if r.src == CLIENT and r.delivered_data is not None
              and ip_ecn(r.delivered_data) == CE and ip_ecn(r.data) != CE]
    data_recs = [r for r in net.records if r.src == CLIENT and r.fate != "duplicate"
                 and parse_tcp_packet(r.data, verify_checksum=False)[1].payload]
    ce_keys = {(r.sent_us, parse_tcp_packet(r.data, verify_checksum=False)[1].seq): r
               for r in marked}
    steps = [dataclasses.replace(x, label=_with_mark(x.label, "CE"))
             if isinstance(x, SegmentStep) and x.src == "left"
             and (x.t_us, x.seg.seq) in ce_keys else x for x in L.steps()]
    segs = [x for x in steps if isinstance(x, SegmentStep)]
    syn = next(x.seg for x in segs if x.src == "left" and x.seg.flags & SYN)
    synack = next(x.seg for x in segs if x.src == "right" and x.seg.flags & SYN)
    data = [x for x in segs if x.src == "left" and x.seg.payload]
    first_ce = marked[0] if marked else None
    first_ce_step = next((x for x in data if (x.t_us, x.seg.seq) in ce_keys), None)
    ce_index = data.index(first_ce_step) + 1 if first_ce_step is not None else None
    eces = [x for x in segs if x.src == "right" and x.seg.flags & ECE and not x.seg.flags & SYN]
    cwrs = [x for x in data if x.seg.flags & CWR]
    trace = conn.trace
    # The window reductions ECE made: ssthresh lowered by an ACK with ECE as it arrives.
    ece_in = {x.t_us + ONE_WAY_US for x in eces}
    cut_at = [i for i, p in enumerate(trace)
              if i and p.now in ece_in and p.ssthresh < trace[i - 1].ssthresh]
    cut = cut_at[0] if cut_at else None
    cuts = len(cut_at)
    seqs = [x.seg.seq for x in data]
    first_ece = eces[0] if eces else None
    f: dict[str, Any] = {
        "syn_flags": syn.flags & (ECE | CWR), "synack_flags": synack.flags & (ECE | CWR),
        "ecn_ok": conn.ecn is not None and conn.ecn.ok,
        "sent": st.get("sent", 0), "received": st["got"], "segments": len(data),
        "data_ect": sorted({NAMES[ip_ecn(r.data)] for r in data_recs}),
        "ce_marked": len(marked), "link_ce_marked": net.link(CLIENT, SERVER).stats.ce_marked,
        "ce_index": ce_index,
        "ce_seq": first_ce_step.seg.seq if first_ce_step is not None else None,
        "ce_sent_ms": first_ce_step.t_us / MS if first_ce_step is not None else None,
        "ce_arrived_ms": (first_ce.delivered_us or 0) / MS if first_ce is not None else None,
        "ece_acks": len(eces),
        "ece_sent_ms": first_ece.t_us / MS if first_ece is not None else None,
        "ece_ack": first_ece.seg.ack if first_ece is not None else None,
        "ece_arrives_ms": (first_ece.t_us + ONE_WAY_US) / MS if first_ece is not None else None,
        "cwnd_before": trace[cut - 1].cwnd if cut else None,
        "ssthresh": trace[cut].ssthresh if cut is not None else None,
        "cwnd_after": trace[cut].cwnd if cut is not None else None,
        "reductions": cuts,
        "cut_acked_segments": -(-(trace[cut].snd_una - trace[cut - 1].snd_una) // max(
            len(data[0].seg.payload), 1)) if cut and data else 0,
        "cwr_segments": len(cwrs),
        "cwr_seq": cwrs[0].seg.seq if cwrs else None,
        "cwr_sent_ms": cwrs[0].t_us / MS if cwrs else None,
        "retransmissions": len(seqs) - len(set(seqs)),
        "total_retrans": conn.total_retrans,
        "lost": sum(1 for r in net.records if r.fate != "delivered" and r.fate != "duplicate"),
        "backlog_mark": MARK_BYTES, "rate_mbps": RATE_BPS // 1_000_000,
        "mark_threshold_segments": round(MARK_BYTES / (len(data[0].seg.payload) + 52))
        if data else 0,
        "cc": str(c.cfg["net.ipv4.tcp_congestion_control"]),
        "server_ecn": s.cfg.int("net.ipv4.tcp_ecn"),
    }
    # The ssthresh comes from the cwnd when the ECE is handled: synack applies the ACK
    # (slow start adds what it acknowledges) before its ECE, so say so when that shows.
    c0, c1 = f["cwnd_before"], f["cwnd_before"]
    grew_en = grew_zh = ""
    if c0 is not None and f["ssthresh"] != max(c0 * 717 // 1024, 2):
        c1 = c0 + f["cut_acked_segments"]
        n = f["cut_acked_segments"]
        grew_en = (f" The ACK that carries it first acknowledges {n} more"
                   f" segment{'' if n == 1 else 's'}, which slow start adds to the window:"
                   f" cwnd = {c0} +"
                   f" {f['cut_acked_segments']} = {c1}.")
        grew_zh = (f"携带它的 ACK 先确认了 {f['cut_acked_segments']} 个报文段，慢启动把它们加进"
                   f"窗口：cwnd = {c0} + {f['cut_acked_segments']} = {c1}。")
    f["cwnd_reduced_from"] = c1
    late = f["reductions"] - f["cwr_segments"]
    late_en = (f" A reduction made after the last new data has left has no segment to carry"
               f" its CWR: {late} here." if late > 0 else "")
    late_zh = (f"最后的新数据发出之后才发生的减小没有报文段可以携带 CWR：这里有 {late} 次。"
               if late > 0 else "")
    en = f"""
The client has net.ipv4.tcp_ecn = 1: its SYN asks for ECN with ECE and CWR both set (RFC 3168 section 6.1.1, an "ECN-setup SYN"). The server has Linux's default {f['server_ecn']}, which agrees when asked: its SYN,ACK carries ECE alone. From then on the client's new data leaves ECT(0) in the IP header's ECN field (the low two bits of the TOS byte); SYNs, pure ACKs and retransmissions stay Not-ECT.
The link towards the server is a {f['rate_mbps']} Mbit/s bottleneck whose queue marks like an AQM qdisc with ecn (RED, CoDel): above {f['backlog_mark']} bytes of backlog (about {f['mark_threshold_segments']} segments) an ECT packet is marked CE (both ECN bits set) instead of being dropped; a Not-ECT one would be dropped.
The client writes {f['sent']} bytes. Slow start fills the queue: data segment {f['ce_index']} (seq={f['ce_seq']}) leaves at {f['ce_sent_ms']:.3f} ms and arrives at {f['ce_arrived_ms']:.3f} ms marked CE [CE]; the ladder shows the packets as sent, the mark is made in the queue. The server does not slow down anything itself: it echoes the news with ECE on its ACKs, the first at {f['ece_sent_ms']:.3f} ms (ack={f['ece_ack']}), and keeps setting ECE until a segment with CWR arrives. The queue marked {f['ce_marked']} packets in all; the server sent {f['ece_acks']} ACKs with ECE.
The first ECE reaches the client at {f['ece_arrives_ms']:.3f} ms. Its cwnd is {c0}.{grew_en} It reacts as to one loss, at most once per window of data (Linux tcp_enter_cwr()): {f['cc']} sets ssthresh = cwnd x 0.7 = {c1} x 0.7 = {f['ssthresh']} (717/1024, RFC 9438), and cwnd goes down to {f['cwnd_after']}. Its next new data segment (seq={f['cwr_seq']}, at {f['cwr_sent_ms']:.3f} ms) carries CWR, which tells the server to stop echoing. Window reductions by ECE in the run: {f['reductions']}; data segments with CWR: {f['cwr_segments']}.{late_en}
Nothing was lost: {f['lost']} packets dropped, {f['retransmissions']} retransmissions, and the server received all {f['received']} bytes. Without ECN the same queue would have had to drop a segment to say the same thing, and the sender would have learned it only from duplicate ACKs or a timeout.
"""
    zh = f"""
显式拥塞通知（ECN）。客户端设置了 net.ipv4.tcp_ecn = 1：它的 SYN 同时置 ECE 和 CWR，请求使用 ECN（RFC 3168 第 6.1.1 节，"ECN-setup SYN"）。服务端是 Linux 的默认值 {f['server_ecn']}，对方请求时同意：它的 SYN,ACK 只置 ECE。此后客户端的新数据在 IP 首部的 ECN 字段（TOS 字节的低两位）标为 ECT(0)；SYN、纯 ACK 和重传仍是 Not-ECT。
通往服务端的链路是 {f['rate_mbps']} Mbit/s 的瓶颈，它的队列像开启 ecn 的 AQM 队列规则（RED、CoDel）那样标记：积压超过 {f['backlog_mark']} 字节（约 {f['mark_threshold_segments']} 个报文段）时，ECT 报文被标为 CE（两个 ECN 位都置 1），而不是被丢弃；Not-ECT 报文则会被丢弃。
客户端写入 {f['sent']} 字节。慢启动把队列填满：第 {f['ce_index']} 个数据报文段（seq={f['ce_seq']}）在 {f['ce_sent_ms']:.3f} ms 发出，{f['ce_arrived_ms']:.3f} ms 到达时带着 CE [CE]；梯形图画的是发出时的报文，标记是在队列里打上的。服务端自己不减速：它在 ACK 上置 ECE 把消息传回去，第一个在 {f['ece_sent_ms']:.3f} ms（ack={f['ece_ack']}），并一直置 ECE，直到收到带 CWR 的报文段。队列一共标记了 {f['ce_marked']} 个报文；服务端发出 {f['ece_acks']} 个带 ECE 的 ACK。
第一个 ECE 在 {f['ece_arrives_ms']:.3f} ms 到达客户端。此时它的 cwnd 是 {c0}。{grew_zh}客户端像遇到一次丢包那样反应，每个数据窗口最多一次（Linux tcp_enter_cwr()）：{f['cc']} 设 ssthresh = cwnd x 0.7 = {c1} x 0.7 = {f['ssthresh']}（717/1024，RFC 9438），cwnd 降到 {f['cwnd_after']}。它的下一个新数据报文段（seq={f['cwr_seq']}，{f['cwr_sent_ms']:.3f} ms）带 CWR，通知服务端停止回显。本次运行中 ECE 使窗口减小了 {f['reductions']} 次；带 CWR 的数据报文段：{f['cwr_segments']} 个。{late_zh}
没有任何丢失：丢弃 {f['lost']} 个报文，重传 {f['retransmissions']} 次，服务端收到全部 {f['received']} 字节。没有 ECN 时，同一个队列只能丢掉一个报文段来传达同样的信息，发送方要靠重复 ACK 或超时才能知道。
"""
    return Outcome("ecn", "ECN marking without loss", L.ladder(steps), en, [
        knob(c.cfg, "net.ipv4.tcp_ecn", f"client: 1 asks for ECN in its SYN; the server has"
             f" {f['server_ecn']}: agrees when asked (Linux's default)",
             f"客户端：1 在 SYN 中请求 ECN；服务端是 {f['server_ecn']}：对方请求时同意（Linux 的默认值）"),
        knob(c.cfg, "net.ipv4.tcp_ecn_fallback", "1: a retransmitted SYN drops ECE and CWR",
             "1：重传的 SYN 去掉 ECE 和 CWR"),
        knob(c.cfg, "net.ipv4.tcp_congestion_control", "sets ssthresh on ECE (cubic: x 0.7)",
             "收到 ECE 时决定 ssthresh（cubic：x 0.7）")], f, net,
        title_zh="ECN：只标记，不丢包", explanation_zh=zh)



def _with_mark(label: str, mark: str) -> str:
    """An arrow label with ``[mark]`` before its options (where a narrow line cuts)."""
    head, sep, opts = label.partition(" <")
    return f"{head} [{mark}]{sep}{opts}"
