"""Timers that act on an idle connection: keepalive (保活计时器)."""

from __future__ import annotations

import errno
import socket as _socket
from typing import Any

from synack.demo.scenarios.base import (
    CLIENT,
    MS,
    SECOND,
    SERVER,
    Outcome,
    Tunable,
    first_change,
    knob,
    lab,
)
from synack.sim import LinkParams
from synack.trace.ladder import SegmentStep
from synack.wire.tcp import ACK


def keepalive(seed: int = 1) -> Outcome:
    """Keepalive with Linux's defaults (7200 / 75 / 9) finds a dead peer."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd)
    cfd = c.socket()
    c.setsockopt(cfd, _socket.SOL_SOCKET, _socket.SO_KEEPALIVE, 1)
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))

    def crash(now: int) -> None:          # the server host dies: nothing gets through
        net.set_link(CLIENT, SERVER, LinkParams(delay_us=10 * MS, loss=1.0))
        net.set_link(SERVER, CLIENT, LinkParams(delay_us=10 * MS, loss=1.0))
    net.call_at(1 * SECOND, crash)
    net.run(until=9000 * SECOND)
    probe_times = [st.t_us for st in L.steps() if isinstance(st, SegmentStep)
                   and st.src == "left" and st.seg.flags == ACK and not st.seg.payload
                   and st.seg.seq == 100]
    dead = first_change(c, new="CLOSED")
    try:
        c.recv(cfd, 1, now=net.now)
        err = 0
    except OSError as e:
        err = e.errno or 0
    facts: dict[str, Any] = {
        "probes": len(probe_times),
        "first_probe_s": probe_times[0] / 1e6 if probe_times else None,
        "interval_s": (probe_times[1] - probe_times[0]) / 1e6 if len(probe_times) > 1 else None,
        "dead_s": dead / 1e6 if dead else None, "errno": err}
    idle = int(c.getsockopt(cfd, _socket.IPPROTO_TCP, _socket.TCP_KEEPIDLE))  # type: ignore[arg-type]
    intvl = int(c.getsockopt(cfd, _socket.IPPROTO_TCP, _socket.TCP_KEEPINTVL))  # type: ignore[arg-type]
    cnt = int(c.getsockopt(cfd, _socket.IPPROTO_TCP, _socket.TCP_KEEPCNT))  # type: ignore[arg-type]
    last_us = max((st.t_us for st in L.steps() if isinstance(st, SegmentStep)
                   and st.t_us < (probe_times[0] if probe_times else 0)), default=0)
    facts["idle_since_s"] = last_us / 1e6
    syn = next((st.seg for st in L.steps() if isinstance(st, SegmentStep) and st.src == "left"),
               None)
    probe_seq = next((st.seg.seq for st in L.steps() if isinstance(st, SegmentStep)
                      and st.t_us in probe_times), None)
    what_en = ("the SYN's own number: no data was sent" if syn is not None
               and syn.seq == probe_seq else "a byte it already sent")
    what_zh = ("即 SYN 自己的序号：没有发过数据" if syn is not None and syn.seq == probe_seq
               else "一个已经发过的字节")
    en = f"""
The client turned on SO_KEEPALIVE and the server host died at 1 s without a
word. After net.ipv4.tcp_keepalive_time (TCP_KEEPIDLE) = {idle} s of silence the
client sends a probe: an ACK with SEQ = SND.UNA - 1 (seq {probe_seq},
{what_en}), an old sequence number that a live peer must answer with an ACK.
No answer: it probes
again every tcp_keepalive_intvl (TCP_KEEPINTVL) = {intvl} s, {len(probe_times)} probes in
all (tcp_keepalive_probes, TCP_KEEPCNT = {cnt}). At {facts['dead_s']} s = {facts['idle_since_s']:g} + {idle} + {cnt} x {intvl}
(idle since the last segment, at {facts['idle_since_s']:g} s) it gives up: it sends RST (as Linux
does) and the next recv() fails with {errno.errorcode.get(err, err)}.
(The seed's note says 10 probes; Linux's default is 9.)
"""
    zh = f"""
笔记的问题："如果已经建立了连接，但是客户端突然出现故障了怎么办？"——保活计时器。
客户端开启了 SO_KEEPALIVE，服务端主机在 1 秒时无声无息地宕机。连接空闲
net.ipv4.tcp_keepalive_time（TCP_KEEPIDLE）= {idle} 秒（2 小时）后，客户端发出探测报文：
一个 SEQ = SND.UNA - 1 的 ACK（seq={probe_seq}，{what_zh}），这是个旧序号，活着的对端必须回一个 ACK。
没有回应：每隔 tcp_keepalive_intvl（TCP_KEEPINTVL）= {intvl} 秒再探测一次，一共 {len(probe_times)} 次
（tcp_keepalive_probes，TCP_KEEPCNT = {cnt}）。在 {facts['dead_s']} 秒 = {facts['idle_since_s']:g} + {idle} + {cnt} x {intvl}
（从最后一个报文段，即 {facts['idle_since_s']:g} 秒起算）时放弃：
发送 RST（与 Linux 相同），下一次 recv() 失败：{errno.errorcode.get(err, err)}。
笔记说"一连发送10个探测报文"，Linux 默认是 9 个；
笔记后文说 TCP_KEEPCNT 默认 9 次，这是对的。
在 Linux 上可以用笔记中的 sysctl -w net.ipv4.tcp_keepalive_time=3600 修改，
或用 setsockopt 按套接字设置（synack 的 sim、serve、connect 使用 synack sysctl -w
保存的值；demo 固定使用默认值）。
"""
    return Outcome("keepalive", "Keepalive finds a dead peer (7200 / 75 / 9)", L.ladder(), en, [
        knob(c.cfg, "net.ipv4.tcp_keepalive_time", "or TCP_KEEPIDLE per socket",
             "或按套接字设置 TCP_KEEPIDLE"),
        knob(c.cfg, "net.ipv4.tcp_keepalive_intvl", "or TCP_KEEPINTVL", "或 TCP_KEEPINTVL"),
        knob(c.cfg, "net.ipv4.tcp_keepalive_probes", "or TCP_KEEPCNT", "或 TCP_KEEPCNT"),
        Tunable("SO_KEEPALIVE", "1", "off by default: no probes at all",
                "默认关闭：不开启就不会探测")], facts, net,
        title_zh="保活计时器发现宕机的对端（7200 / 75 / 9）", explanation_zh=zh)
