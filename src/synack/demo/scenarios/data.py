"""Data transfer: flow control stalls (zero window, persist) and loss (fast retransmit)."""

from __future__ import annotations

import socket as _socket
from itertools import pairwise
from typing import Any

from synack.demo.driver import drop_next
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
    child_buf = int(s.getsockopt(st["fd"], _socket.SOL_SOCKET, _socket.SO_RCVBUF))  # type: ignore[arg-type]
    f: dict[str, Any] = {
        "rcvbuf": child_buf, "zero_window_at_us": zero.t_us if zero else None,
        "probes": len(probes), "probe_gaps_ms": gaps,
        "reopened_at_us": reopened.t_us if reopened else None,
        "received": st["got"], "sent": st["sent"],
    }
    zt = (f["zero_window_at_us"] or 0) / MS
    en = f"""
Flow control. The server sets SO_RCVBUF = {rcvbuf} (Linux doubles it: {child_buf} bytes) and
its application does not read until {read_at_us / SECOND:.0f} s; the client writes {total} bytes. Every ACK
carries the receive window: the room left in the server's buffer. It shrinks as
data piles up unread, and at {zt:.0f} ms the server advertises win=0: "stop".
The client stops, but a window update could be lost and both would wait forever,
so it starts the persist timer and sends zero-window probes (seq = SND.UNA - 1,
or one byte of new data), each drawing an ACK with the current window:
{len(probes)} probes before the application reads, {_gaps(gaps)} -- backing off like the RTO.
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
每个探测都会引出一个带当前窗口的 ACK：应用读取之前共 {len(probes)} 个探测，{_gaps(gaps, "zh")}，像 RTO 一样退避。
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


def fast_retransmit(seed: int = 1, *, segments: int = 8, lost: int = 3) -> Outcome:
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
    mss: dict[str, int] = {}

    def client(now: int) -> None:
        if "sent" not in st and c.state(cfd) is State.ESTABLISHED:
            conn = c.connection(cfd)
            assert conn is not None
            # 1448 = MSS 1460 less the 12 bytes of the timestamp option in every segment.
            mss["mss"] = 1448
            st["sent"] = c.send(cfd, b"x" * (1448 * segments), now=now)
            first = conn.snd.iss + 1
            target = first + (lost - 1) * 1448
            drop_next(net, lambda ip, seg: ip.src == CLIENT and seg.seq == target
                      and bool(seg.payload))

    L.server.apps.append(server)
    L.client.apps.append(client)
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    net.run(until=2 * SECOND)
    steps = [x for x in L.steps() if isinstance(x, SegmentStep)]
    lost_step = next(x for x in steps if x.fate == "lost")
    rtx = next(x for x in steps if x.src == "left" and x.seg.seq == lost_step.seg.seq
               and x is not lost_step and x.t_us > lost_step.t_us)
    dupacks = [x for x in steps if x.src == "right" and x.seg.ack == lost_step.seg.seq
               and not x.seg.payload and x.t_us < rtx.t_us]
    conn = c.connection(cfd)
    rto_us = conn.rtt.rto if conn is not None else 0
    f: dict[str, Any] = {
        "lost_seq": lost_step.seg.seq, "retransmit_after_ms": (rtx.t_us - lost_step.t_us) / MS,
        "acks_for_hole": len(dupacks), "dup_acks": max(len(dupacks) - 1, 0),
        "sack_in_dupacks": any(x.seg.sack_blocks for x in dupacks),
        "rto_ms": rto_us / MS, "received": st["got"], "sent": st.get("sent", 0),
        "segment_sizes": sorted({len(x.seg.payload) for x in steps if x.src == "left"
                                 and x.seg.payload}),
    }
    en = f"""
The client sends {segments} segments of {mss['mss']} bytes at once; segment {lost} (seq={f['lost_seq']}) is
lost. Each later segment reaches the server out of order, and the server answers
each at once with an ACK for the hole, ack={f['lost_seq']}: {f['dup_acks']} duplicate ACKs, carrying SACK
blocks that say which bytes beyond the hole did arrive ({f['sack_in_dupacks']}).
Three duplicate ACKs are taken as a loss signal (RFC 5681 3.2, fast retransmit): the
client resends the missing segment {f['retransmit_after_ms']:.0f} ms after the original, about one
round trip, instead of waiting for the retransmission timeout ({f['rto_ms']:.0f} ms now, and at
least 200 ms on Linux). Congestion control enters fast recovery and halves its
window instead of starting over from one segment. The server receives all
{st['got']} bytes in order.
"""
    zh = f"""
快速重传。客户端一次发出 {segments} 个 {mss['mss']} 字节的报文段；第 {lost} 个（seq={f['lost_seq']}）丢了。
后面的报文段乱序到达服务端，服务端对每个都立即回一个指向"空洞"的 ACK（ack={f['lost_seq']}）：
{f['dup_acks']} 个重复 ACK，并带 SACK 块说明空洞之后哪些字节已经收到（{f['sack_in_dupacks']}）。
收到三个重复 ACK 就认为报文丢失（RFC 5681 3.2，快速重传）：客户端在原报文发出
{f['retransmit_after_ms']:.0f} ms 后（大约一个往返时间）重传丢失的报文段，而不必等重传超时
（当前 RTO {f['rto_ms']:.0f} ms，Linux 最少 200 ms）。拥塞控制进入快速恢复，窗口减半，而不是从一个
报文段重新开始。服务端按顺序收到全部 {st['got']} 字节。
"""
    return Outcome("fast-retransmit", "A lost segment and fast retransmit", L.ladder(), en, [
        knob(c.cfg, "net.ipv4.tcp_sack", "SACK tells the sender exactly what is missing",
             "SACK 告诉发送方具体缺了哪些数据"),
        knob(c.cfg, "net.ipv4.tcp_congestion_control", "how the window shrinks after the loss",
             "丢包后窗口如何缩小"),
        knob(c.cfg, "net.ipv4.tcp_retries2", "how many timeouts before giving up",
             "超时重传多少次后放弃")], f, net,
        title_zh="丢失一个报文段与快速重传", explanation_zh=zh)
