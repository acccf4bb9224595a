"""Data transfer: flow control stalls (zero window, persist) and loss (fast retransmit)."""

from __future__ import annotations

import socket as _socket
from itertools import pairwise
from typing import Any

from synack.demo.driver import drop_next, step_marks
from synack.demo.scenarios.base import (
    CLIENT,
    MS,
    SECOND,
    SERVER,
    Outcome,
    Tunable,
    drain,
    knob,
    lab,
)
from synack.tcp.state import State
from synack.trace.ladder import SegmentStep
from synack.wire.tcp import SYN


def zero_window(seed: int = 1, *, total: int = 24_000, read_at_us: int = 3 * SECOND) -> Outcome:
    """A receiver that stops reading: the window closes, the sender probes until it opens."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    rcvbuf = 4096
    s.setsockopt(lfd, _socket.SOL_SOCKET, _socket.SO_RCVBUF, rcvbuf)   # Linux doubles it
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd)
    st: dict[str, Any] = {"got": 0, "reading": False, "sent": 0}

    def server(now: int) -> None:
        if "fd" not in st:
            try:
                st["fd"], _ = s.accept(lfd)
            except BlockingIOError:
                return
        if st["reading"]:
            data, _eof = drain(s, st["fd"], now)
            st["got"] += len(data)

    def start_reading(now: int) -> None:
        st["reading"] = True
        server(now)

    cfd = c.socket()

    def client(now: int) -> None:
        if c.state(cfd) is State.ESTABLISHED and st["sent"] < total:
            try:
                st["sent"] += c.send(cfd, b"d" * (total - st["sent"]), now=now)
            except BlockingIOError:
                pass

    L.server.apps.append(server)
    L.client.apps.append(client)
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    net.call_at(read_at_us, start_reading)
    net.run(until=read_at_us + 2 * SECOND)
    steps = [x for x in L.steps() if isinstance(x, SegmentStep)]
    zero = next((x for x in steps if x.src == "right" and x.seg.window == 0), None)
    probes = [x for x in steps if x.src == "left" and zero is not None and x.t_us > zero.t_us
              and x.t_us < read_at_us and len(x.seg.payload) <= 1]
    reopened = next((x for x in steps if x.src == "right" and x.t_us >= read_at_us
                     and x.seg.window > 0), None)
    gaps = [round((b.t_us - a.t_us) / MS) for a, b in pairwise(probes)]
    first_gap = round((probes[0].t_us - zero.t_us) / MS) if probes and zero else None
    probe_marks = sorted({m for x in probes for m in step_marks(x)})
    answers = [x for x in steps if x.src == "right" and zero is not None
               and zero.t_us < x.t_us < read_at_us]
    answer_marks = sorted({"Dup ACK" if m.startswith("Dup ACK") else m
                           for x in answers for m in step_marks(x)})
    child_buf = int(s.getsockopt(st["fd"], _socket.SOL_SOCKET, _socket.SO_RCVBUF))  # type: ignore[arg-type]
    f: dict[str, Any] = {
        "rcvbuf": child_buf, "zero_window_at_us": zero.t_us if zero else None,
        "probes": len(probes), "probe_gaps_ms": gaps,
        "reopened_at_us": reopened.t_us if reopened else None,
        "received": st["got"], "sent": st["sent"], "first_probe_after_ms": first_gap,
        "probe_marks": probe_marks, "answer_marks": answer_marks,
    }
    # Probes without an answer before the next probe: the receiver held its duplicate
    # ACK back (tcp_invalid_ratelimit; Linux tcp_oow_rate_limited()).
    unanswered = [p for i, p in enumerate(probes)
                  if not any(p.t_us < a.t_us < (probes[i + 1].t_us if i + 1 < len(probes)
                                                else read_at_us) for a in answers)]
    f["unanswered_probes_ms"] = [round(p.t_us / MS) for p in unanswered]
    limit_ms = s.cfg.int("net.ipv4.tcp_invalid_ratelimit")
    quiet_en = quiet_zh = ""
    if unanswered:
        when = ", ".join(f"{t} ms" for t in f["unanswered_probes_ms"])
        quiet_en = (f"\nThe probe at {when} draws no answer: a probe is an old segment (seq\n"
                    f"below RCV.NXT), and the receiver answers such segments at most once per\n"
                    f"tcp_invalid_ratelimit = {limit_ms} ms (Linux tcp_oow_rate_limited(), against\n"
                    f"ACK loops); the next probe, later, gets its answer.")
        quiet_zh = (f"\n{when} 的探测没有得到回答：探测报文是旧报文（seq 小于 RCV.NXT），接收端对这类\n"
                    f"报文每 tcp_invalid_ratelimit = {limit_ms} ms 最多回答一次（Linux 的\n"
                    f"tcp_oow_rate_limited()，防止 ACK 循环）；后面的探测会得到回答。")
    zt = (f["zero_window_at_us"] or 0) / MS
    marks_en = marks_zh = ""
    if "Keep-Alive" in probe_marks:
        marks_en = ("\nThe ladder (like Wireshark) marks the probes [Keep-Alive]: a probe of\n"
                    "SND.UNA - 1 is byte for byte a keepalive (Linux sends both with\n"
                    "tcp_xmit_probe_skb()); each answer repeats the closed window"
                    f" ({' '.join(f'[{m}]' for m in answer_marks)}).")
        marks_zh = ("\n梯形图（和 Wireshark 一样）把这些探测标为 [Keep-Alive]：seq = SND.UNA - 1 的探测\n"
                    "和保活探测一模一样（Linux 都用 tcp_xmit_probe_skb() 发送）；每个回答都重复零窗口"
                    f"（{' '.join(f'[{m}]' for m in answer_marks)}）。")
    en = f"""
Flow control. The server sets SO_RCVBUF = {rcvbuf} (Linux doubles it: {child_buf} bytes) and
its application does not read until {read_at_us / SECOND:.0f} s; the client writes {total} bytes. Every ACK
carries the receive window: the room left in the server's buffer. It shrinks as
data piles up unread, and at {zt:.0f} ms the server advertises win=0: "stop".
The client stops, but a window update could be lost and both would wait forever,
so it starts the persist timer and sends zero-window probes (seq = SND.UNA - 1,
or one byte of new data), each meant to draw an ACK with the current window:
{len(probes)} probes before the application reads, the first {first_gap} ms after the zero window, then
{_gaps(gaps)}: the persist timer backs off like the RTO.{marks_en}{quiet_en}
At {read_at_us / SECOND:.0f} s the application reads, the buffer empties, and the server sends a window
update (win={reopened.seg.window if reopened else '?'}); the transfer resumes and all {st['got']} bytes arrive.
"""
    zh = f"""
流量控制（笔记："TCP的流量控制由连接的每一端通过声明的窗口大小来提供"）。
服务端设置 SO_RCVBUF = {rcvbuf}（Linux 会翻倍：{child_buf} 字节），应用直到 {read_at_us / SECOND:.0f} 秒才读数据；
客户端写入 {total} 字节。每个 ACK 都带着接收窗口：服务端缓冲区剩余的空间。数据不被读取、
越积越多，窗口越来越小，{zt:.0f} ms 时服务端通告 win=0："停"。
客户端停止发送；但窗口更新报文可能丢失，双方就会永远互相等待，所以客户端启动坚持计时器
（persist timer），发送零窗口探测报文（seq = SND.UNA - 1，或一个字节的新数据），
每个探测都是为了引出一个带当前窗口的 ACK：应用读取之前共 {len(probes)} 个探测，第一个在零窗口之后
{first_gap} ms，之后{_gaps(gaps, "zh")}：坚持计时器像 RTO 一样退避。{marks_zh}{quiet_zh}
{read_at_us / SECOND:.0f} 秒时应用读取数据，缓冲区腾空，服务端发出窗口更新（win={reopened.seg.window if reopened else '?'}），
传输恢复，{st['got']} 字节全部到达。
"""
    return Outcome("zero-window", "Zero window and persist probes", L.ladder(), en, [
        Tunable("SO_RCVBUF", f"{child_buf}", "the receive buffer, hence the largest window",
                "接收缓冲区大小，决定最大窗口"),
        knob(s.cfg, "net.ipv4.tcp_rmem", "receive buffer min / default / max (autotuning)",
             "接收缓冲区的最小 / 默认 / 最大值（自动调整）"),
        knob(s.cfg, "net.ipv4.tcp_window_scaling", "windows above 64 KB",
             "允许超过 64 KB 的窗口")], f, net,
        title_zh="零窗口与坚持计时器的探测", explanation_zh=zh)


def _gaps(gaps: list[int], lang: str = "en") -> str:
    if not gaps:
        return "no gap to measure" if lang == "en" else "无间隔可测"
    ms = ", ".join(f"{g} ms" for g in gaps)
    return f"spaced {ms}" if lang == "en" else f"间隔 {ms}"


def fast_retransmit(seed: int = 1, *, nbytes: int = 8192, lost: int = 3) -> Outcome:
    """One segment is lost: duplicate ACKs trigger a retransmission long before the RTO."""
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
        if "sent" not in st and c.state(cfd) is State.ESTABLISHED:
            conn = c.connection(cfd)
            assert conn is not None
            conn.trace = []                   # the sender's cwnd and ssthresh after every ACK
            st["mss"] = int(conn.mss)         # MSS 1460 less the 12 bytes of timestamps
            st["sent"] = c.send(cfd, b"x" * nbytes, now=now)
            target = conn.snd.iss + 1 + (lost - 1) * st["mss"]
            drop_next(net, lambda ip, seg: ip.src == CLIENT and seg.seq == target
                      and bool(seg.payload))

    L.server.apps.append(server)
    L.client.apps.append(client)
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    net.run(until=2 * SECOND)
    steps = [x for x in L.steps() if isinstance(x, SegmentStep)]
    seen: set[int] = set()
    originals: list[SegmentStep] = []             # each data segment's first transmission
    for x in steps:
        if x.src == "left" and x.seg.payload and x.seg.seq not in seen:
            seen.add(x.seg.seq)
            originals.append(x)
    lost_step = next(x for x in steps if x.fate == "lost")
    rtx_i, rtx = next((i, x) for i, x in enumerate(steps) if x.src == "left"
                      and x.seg.seq == lost_step.seg.seq and x is not lost_step
                      and x.t_us > lost_step.t_us)
    hole = lost_step.seg.seq
    # ACKs for the hole before the retransmission: the first moved ACK up to it, the rest repeat it.
    hole_acks = [x for x in steps[:rtx_i] if x.src == "right" and x.seg.ack == hole
                 and not x.seg.payload]
    repeats = hole_acks[1:]
    marks = [step_marks(x) for x in repeats]
    sacked = [x for x in originals if x.seg.seq != hole and repeats and any(
        a <= x.seg.seq and x.seg.seq + len(x.seg.payload) <= b
        for a, b in repeats[-1].seg.sack_blocks)]
    conn = c.connection(cfd)
    assert conn is not None and conn.trace is not None
    trace = conn.trace
    enter = next((i for i, p in enumerate(trace) if p.ca_state == "RECOVERY"), None)
    cwnd_before = trace[enter - 1].cwnd if enter else None
    cwnd_recovery = trace[enter].cwnd if enter is not None else None
    after = next((p for p in trace[enter or 0:] if p.ca_state == "OPEN"), None)
    cwnd_after = after.cwnd if after is not None and enter is not None else None
    cwnd_initial = conn.rec.cc.initial_cwnd
    cc = str(c.cfg["net.ipv4.tcp_congestion_control"])
    f: dict[str, Any] = {
        "mss": st["mss"], "segments": len(originals),
        "segment_sizes": [len(x.seg.payload) for x in originals],
        "lost_index": originals.index(lost_step) + 1, "lost_seq": hole,
        "retransmit_after_ms": (rtx.t_us - lost_step.t_us) / MS,
        "retransmit_marks": step_marks(rtx),
        "acks_for_hole": len(hole_acks), "repeat_acks": len(repeats),
        "wireshark_dup_acks": sum(any(m.startswith("Dup ACK") for m in ms) for ms in marks),
        "window_updates": sum("Window Update" in ms for ms in marks),
        "windows": [x.seg.window << _server_shift(steps) for x in hole_acks],
        "sack_in_repeats": all(x.seg.sack_blocks for x in repeats) and bool(repeats),
        "sacked_segments": len(sacked),
        "cc": cc, "cwnd_initial": cwnd_initial, "cwnd_before": cwnd_before,
        "cwnd_recovery": cwnd_recovery, "cwnd_after": cwnd_after,
        "tcp_recovery": c.cfg.int("net.ipv4.tcp_recovery"),
        "ssthresh_recovery": trace[enter].ssthresh if enter is not None else None,
        "rto_ms": conn.rtt.rto / MS, "received": st["got"], "sent": st.get("sent", 0),
    }
    sizes = _sizes(f["segment_sizes"])
    wins = f["windows"]
    w_from = wins[0] if wins else "?"
    w_to = wins[1] if len(wins) > 1 else "?"
    ss = f["ssthresh_recovery"]
    cwnd_after = f["cwnd_after"]
    rule_en, rule_zh = (r.format(c0=cwnd_before, ss=ss) for r in _DECREASE.get(
        cc, ("ssthresh = {ss} by {cc}'s own rule", "按 {cc} 的规则 ssthresh = {ss}")))
    n_rep, n_dup = f["repeat_acks"], f["wireshark_dup_acks"]
    wu_en = (f"the first of them is a [Window Update] (it also raised the window from {w_from}"
             f" to {w_to}, and RFC 5681 counts an ACK as a duplicate only if the window is"
             f" unchanged), the other {n_dup} are [Dup ACK]s"
             if f["window_updates"] else f"all {n_dup} are [Dup ACK]s")
    wu_zh = (f"第一个被标为 [Window Update]（它同时把窗口从 {w_from} 增大到 {w_to}，而 RFC 5681"
             f" 只把窗口不变的 ACK 算作重复 ACK），其余 {n_dup} 个是 [Dup ACK]"
             if f["window_updates"] else f"{n_dup} 个都是 [Dup ACK]")
    mark = "[Fast Retransmission]" if "Fast Retransmission" in f["retransmit_marks"] else ""
    # One line per thought: Outcome.text() folds them to the terminal's width.
    en = f"""
The client writes {f['sent']} bytes at once. They leave as {f['segments']} segments ({sizes}), all in the first round trip: the congestion window is {cwnd_initial} segments, Linux's initial window. The two ACKs that arrive before the hole grow it to {cwnd_before}: in slow start Linux lets a sender that did not fill its window grow cwnd up to twice the segments it had out (tcp_is_cwnd_limited()).
Segment {f['lost_index']} (seq={hole}) is lost. The server ACKs what arrived in order, up to ack={hole}, and answers each of the {n_rep} segments that arrive after the hole at once with another ACK for the hole, ack={hole}, each carrying SACK blocks for the bytes beyond it. On the ladder, as in Wireshark, {wu_en}.
The sender counts differently. Its loss detection is RACK (RFC 8985; Linux's default, net.ipv4.tcp_recovery = 1): a segment is lost once a segment sent after it has been delivered and it has not been within one round trip plus a reordering window of a quarter of the minimum RTT. The window is zero, though, while no reordering has been seen and as many segments as tcp_reordering = 3 are SACKed: RFC 6675's DupThresh rule, kept as a shortcut. After the first two of these ACKs RACK is waiting out the window; after the last {f['sacked_segments']} segments are SACKed, the hole is taken as lost at once, and the client retransmits it {mark} {f['retransmit_after_ms']:.0f} ms after the original -- one round trip -- instead of waiting for the retransmission timeout ({f['rto_ms']:.0f} ms now, and at least 200 ms on Linux).
Congestion control ({cc}) enters fast recovery: {rule_en}, not back to 1 as after a timeout. Linux gets there with PRR (RFC 6937): on each ACK, cwnd = segments in flight + what PRR lets out. Nothing else is in flight (the SACKed segments have left the network), so cwnd = {cwnd_recovery}: room for the retransmission only. The ACK for everything ends recovery with cwnd = ssthresh = {cwnd_after}.
The server receives all {st['got']} bytes in order.
"""
    zh = f"""
快速重传。客户端一次写入 {f['sent']} 字节，分成 {f['segments']} 个报文段（{_sizes(f['segment_sizes'], 'zh')}），在第一个往返时间内全部发出：拥塞窗口是 {cwnd_initial} 个报文段，即 Linux 的初始窗口。空洞之前到达的两个 ACK 把它增大到 {cwnd_before}：慢启动时，即使发送方没有用满窗口，Linux 也允许 cwnd 增长到已发出报文段数的两倍（tcp_is_cwnd_limited()）。
第 {f['lost_index']} 个（seq={hole}）丢了。服务端确认按序到达的数据，直到 ack={hole}；空洞之后到达的 {n_rep} 个报文段，每一个都立即引出一个同样指向空洞的 ACK（ack={hole}），并带 SACK 块说明空洞之后哪些字节已经收到。在梯形图里（和 Wireshark 一样），{wu_zh}。
发送方的计数方式不同。它的丢包检测是 RACK（RFC 8985；Linux 的默认，net.ipv4.tcp_recovery = 1）：比某个报文段晚发出的报文段已经送达，而它在一个往返时间加上重排序窗口（最小 RTT 的四分之一）内仍未送达，就判定它丢失。不过在没见过乱序、且被 SACK 的报文段达到 tcp_reordering = 3 个时，这个窗口为零：这是 RFC 6675 的 DupThresh 规则，作为捷径保留下来。前两个 ACK 到达后 RACK 还在等重排序窗口；最后一个到达后已有 {f['sacked_segments']} 个报文段被 SACK，空洞立即被判定丢失，客户端在原报文发出 {f['retransmit_after_ms']:.0f} ms 后（一个往返时间）重传它 {mark}，而不必等重传超时（当前 RTO {f['rto_ms']:.0f} ms，Linux 最少 200 ms）。
拥塞控制（{cc}）进入快速恢复：{rule_zh}，而不是像超时那样回到 1。Linux 用 PRR（RFC 6937）逐步降到这个值：每个 ACK 到来时，cwnd = 在途报文段数 + PRR 允许发出的数量。此时没有别的报文段在途（被 SACK 的已经离开网络），所以 cwnd = {cwnd_recovery}：只够发这个重传。确认全部数据的 ACK 结束恢复，cwnd = ssthresh = {cwnd_after}。
服务端按顺序收到全部 {st['got']} 字节。
"""
    return Outcome("fast-retransmit", "A lost segment and fast retransmit", L.ladder(), en, [
        knob(c.cfg, "net.ipv4.tcp_sack", "SACK tells the sender exactly what is missing",
             "SACK 告诉发送方具体缺了哪些数据"),
        knob(c.cfg, "net.ipv4.tcp_congestion_control", "how the window shrinks after the loss",
             "丢包后窗口如何缩小"),
        knob(c.cfg, "net.ipv4.tcp_recovery", "1: RACK decides what is lost (0: DupThresh alone)",
             "1：由 RACK 判定丢包（0：只用 DupThresh）"),
        Tunable("DupThresh", "3", "segments SACKed (or duplicate ACKs) that mean a loss at once;"
                " Linux's net.ipv4.tcp_reordering, not a sysctl in synack",
                "立即判定丢包所需的被 SACK 报文段数（或重复 ACK 数）；即 Linux 的"
                " net.ipv4.tcp_reordering，synack 中不可调"),
        knob(c.cfg, "net.ipv4.tcp_retries2", "how many timeouts before giving up",
             "超时重传多少次后放弃")], f, net,
        title_zh="丢失一个报文段与快速重传", explanation_zh=zh)


def _server_shift(steps: list[SegmentStep]) -> int:
    """The server's window scale shift, if both SYNs offered scaling (RFC 7323)."""
    syn = next((x.seg for x in steps if x.src == "left" and x.seg.flags & SYN), None)
    synack = next((x.seg for x in steps if x.src == "right" and x.seg.flags & SYN), None)
    if syn is None or synack is None or syn.wscale is None or synack.wscale is None:
        return 0
    return synack.wscale


#: How each congestion control sets ssthresh at a fast retransmit (en, zh).
_DECREASE = {
    "cubic": (("ssthresh = cwnd x 717/1024 = {c0} x 0.7 = {ss} (CUBIC's beta = 0.7, RFC 9438,"
               " Linux bictcp_recalc_ssthresh(); Reno would halve it)"),
              ("ssthresh = cwnd x 717/1024 = {c0} x 0.7 = {ss}（CUBIC 的 β = 0.7，RFC 9438，"
               "Linux bictcp_recalc_ssthresh()；Reno 才是减半）")),
    "reno": ("ssthresh = cwnd / 2 = {c0} / 2 = {ss} (Reno halves it, RFC 5681 3.2)",
             "ssthresh = cwnd / 2 = {c0} / 2 = {ss}（Reno 减半，RFC 5681 3.2）"),
}


def _sizes(sizes: list[int], lang: str = "en") -> str:
    """``5 x 1448 + 952 bytes``: runs of equal sizes."""
    runs: list[list[int]] = []
    for n in sizes:
        if runs and runs[-1][0] == n:
            runs[-1][1] += 1
        else:
            runs.append([n, 1])
    text = " + ".join(f"{k} x {n}" if k > 1 else f"{n}" for n, k in runs)
    return f"{text} bytes" if lang == "en" else f"{text} 字节"
