"""Opening a connection: the three-way handshake, why not two, simultaneous open."""

from __future__ import annotations

import errno
from typing import Any

from synack.demo.driver import drop_next, step_marks
from synack.demo.scenarios.base import (
    CLIENT,
    MS,
    SECOND,
    SERVER,
    Outcome,
    RawHost,
    find,
    first_change,
    knob,
    lab,
    with_note,
)
from synack.sim import LinkParams
from synack.tcp.state import State
from synack.trace.ladder import SegmentStep
from synack.wire.tcp import ACK, RST, SYN, TcpSegment


def three_way_handshake(seed: int = 1) -> Outcome:
    """SYN, SYN,ACK, ACK: each side learns the other's ISN and options."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd)
    cfd = c.socket()
    got: dict[str, Any] = {}

    def client(now: int) -> None:
        if "sent" not in got and c.state(cfd) is State.ESTABLISHED:
            got["sent"] = c.send(cfd, b"GET /", now=now)

    L.client.apps.append(client)
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    net.run(until=1 * SECOND)
    cseg, sseg = L.segments("left"), L.segments("right")
    syn, synack = find(cseg, SYN), find(sseg, SYN | ACK)
    ack = find(cseg, ACK, without=SYN, payload=False)
    data = find(cseg, ACK, payload=True)
    assert syn and synack and ack and data
    f: dict[str, Any] = {
        "syn": (syn.seq, syn.flags), "synack": (synack.seq, synack.ack),
        "ack": (ack.seq, ack.ack), "first_data_seq": data.seq,
        "client_established_us": first_change(c, new="ESTABLISHED"),
        "server_established_us": first_change(s, new="ESTABLISHED"),
        "mss": (syn.mss, synack.mss), "wscale": (syn.wscale, synack.wscale),
        "sack_ok": syn.sack_permitted and synack.sack_permitted,
        "timestamps": syn.timestamps is not None and synack.timestamps is not None,
    }
    ce, se = f["client_established_us"] / MS, f["server_established_us"] / MS
    # The client's ACK is scaled by the client's shift, once both SYNs offered scaling.
    ack_shift = syn.wscale if syn.wscale is not None and synack.wscale is not None else 0
    yes_no = {True: ("yes", "是"), False: ("no", "否")}
    sack_en, sack_zh = yes_no[f["sack_ok"]]
    ts_en, ts_zh = yes_no[f["timestamps"]]
    scaled = ack.window << ack_shift
    scale_en = (f"From the third segment on, windows are scaled: the ACK's window field {ack.window}\n"
                f"means {ack.window} x 2^{ack_shift} = {scaled} bytes (RFC 7323), which is what the\n"
                f"ladder prints; the SYNs' own windows are never scaled."
                if ack_shift else "Window scaling was not agreed: windows are the raw field.")
    scale_zh = (f"从第三个报文段起窗口要乘以扩大因子：ACK 的窗口字段是 {ack.window}，\n"
                f"表示 {ack.window} x 2^{ack_shift} = {scaled} 字节（RFC 7323），梯形图里印的就是这个值；\n"
                f"SYN 本身的窗口从不缩放。"
                if ack_shift else "双方没有协商窗口扩大：窗口就是字段的原始值。")
    en = f"""
1. The client picks its ISN ({syn.seq}) and sends SYN seq={syn.seq}: "I want to talk,
   my bytes will be numbered from {syn.seq + 1}". It enters SYN_SENT. (The ISNs are fixed
   here to the seed's example; a real stack picks an unpredictable one, RFC 6528.)
2. The server (LISTEN) answers SYN,ACK seq={synack.seq} ack={synack.ack}: ack = the client's ISN
   + 1 (a SYN uses one sequence number) says "I got your SYN"; SYN with its own
   ISN {synack.seq} says "and here is mine". The request waits in the SYN queue (SYN_RECEIVED).
3. The client ACKs seq={ack.seq} ack={ack.ack} and is ESTABLISHED at {ce:.0f} ms; the server
   is ESTABLISHED when that ACK arrives, at {se:.0f} ms, and the connection moves to the
   accept queue. A bare ACK uses no sequence number: the first data byte is {data.seq}.
Both SYNs carry the options that can only be agreed on here: MSS {syn.mss}/{synack.mss},
window scale {syn.wscale}/{synack.wscale}, SACK permitted by both: {sack_en}, timestamps by both: {ts_en}.
{scale_en}
Three messages is the least that lets each side know the other received its ISN.
"""
    zh = f"""
第一次握手：客户端选择初始序号 ISN（这里是 {syn.seq}），发送 SYN seq={syn.seq}，进入 SYN_SENT。
（笔记说 ISN "随机生成"：真实的协议栈按 RFC 6528 选一个无法预测的 ISN；这里为了和笔记的例子
对照，固定为 {syn.seq} 和 {synack.seq}。）
第二次握手：服务端（LISTEN）回复 SYN,ACK seq={synack.seq} ack={synack.ack}：ack = 客户端 ISN + 1
（SYN 占一个序号），表示"收到了你的 SYN"；SYN 带上自己的 ISN {synack.seq}。
这个请求进入半连接队列（SYN_RECEIVED）。
第三次握手：客户端回复 ACK seq={ack.seq} ack={ack.ack}，在 {ce:.0f} ms 进入 ESTABLISHED；
服务端在 {se:.0f} ms 收到这个 ACK 后也进入 ESTABLISHED，连接移入全连接队列等待 accept()。
不带数据的 ACK 不占序号，所以第一个数据字节的序号仍是 {data.seq}。
只有 SYN 能协商的选项：MSS {syn.mss}/{synack.mss}，窗口扩大因子 {syn.wscale}/{synack.wscale}，
双方都允许 SACK：{sack_zh}，双方都带时间戳：{ts_zh}。
{scale_zh}
三次是让双方都确认"对方收到了我的 ISN"所需的最少报文数。
"""
    cfg = c.cfg
    return Outcome("three-way-handshake", "The three-way handshake", L.ladder(), en, [
        knob(cfg, "net.ipv4.tcp_syn_retries", "SYN retransmissions of connect()",
             "connect() 重传 SYN 的次数"),
        knob(cfg, "net.ipv4.tcp_synack_retries", "SYN,ACK retransmissions of a listener",
             "服务端重传 SYN,ACK 的次数"),
        knob(cfg, "net.ipv4.tcp_window_scaling", "offer window scaling in the SYN",
             "SYN 中是否带窗口扩大选项"),
        knob(cfg, "net.ipv4.tcp_sack", "offer SACK in the SYN", "SYN 中是否带 SACK 选项"),
        knob(cfg, "net.ipv4.tcp_timestamps", "offer timestamps in the SYN",
             "SYN 中是否带时间戳选项"),
    ], f, net, title_zh="三次握手", explanation_zh=zh)


def lost_synack(seed: int = 1) -> Outcome:
    """Why a third message: the SYN-ACK is lost and only the client's retry recovers."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd)
    drop_next(net, lambda ip, seg: bool(seg.flags & SYN and seg.flags & ACK))
    cfd = c.socket()
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    states: dict[str, Any] = {}

    def look(now: int) -> None:
        states["server_at_500ms"] = ", ".join(str(r.state) for r in s.connections()
                                              if r.state is not State.LISTEN)
        states["client_at_500ms"] = str(c.state(cfd))

    net.call_at(500 * MS, look)
    net.run(until=5 * SECOND)
    established = first_change(c, new="ESTABLISHED")
    synacks = [g for g in L.segments("right") if g.flags & SYN]
    facts: dict[str, Any] = {**states, "client_established_us": established,
                             "synacks_sent": len(synacks),
                             "syns_sent": len([g for g in L.segments("left") if g.flags & SYN])}
    est = (established or 0) / 1000
    syn_times = [x.t_us for x in L.steps() if isinstance(x, SegmentStep) and x.src == "left"
                 and x.seg.flags & SYN]
    facts["syn_retry_after_us"] = syn_times[1] - syn_times[0] if len(syn_times) > 1 else None
    retry = (facts["syn_retry_after_us"] or 0) / SECOND
    en = f"""
The server's SYN,ACK is lost. Half a second in, the server is in
{states['server_at_500ms']} and the client still in {states['client_at_500ms']}:
neither may treat the connection as open. With a two-way handshake the server
would already be "connected" and sending to a client that knows nothing of it
(and a delayed duplicate SYN from an old connection would open a ghost one; see
why-not-two-way). The third message -- the client's ACK of the server's ISN --
is what proves to the server that the client received its SYN,ACK. Here the
client retransmits its SYN after the {retry:g} s initial RTO, the server answers with its
SYN,ACK again, and the connection opens at {est:.0f} ms.
"""
    zh = f"""
笔记的问题："为什么TCP连接的时候是3次？2次不可以吗？"
这里第二次握手的 SYN,ACK 丢了。500 ms 时服务端处于 {states['server_at_500ms']}，
客户端仍在 {states['client_at_500ms']}：双方都不能认为连接已建立。如果只握手两次，
服务端此时已经"连接成功"并可能开始发数据，而客户端根本不知道服务端是否准备好了，
会忽略这些数据（已失效的旧 SYN 还会让服务端白白建立连接，见 why-not-two-way）。
第三次握手——客户端对服务端 ISN 的确认——正是让服务端知道"客户端收到了我的 SYN,ACK"。
本例中客户端在 {retry:g} 秒的初始 RTO 后重传 SYN，服务端再次回复 SYN,ACK，连接在 {est:.0f} ms 建立。
"""
    return Outcome("lost-synack", "Why three messages: a lost SYN,ACK", L.ladder(), en, [
        knob(c.cfg, "net.ipv4.tcp_syn_retries", "SYN retransmissions, 1 s doubling: 127 s",
             "SYN 重传次数，间隔 1 秒起翻倍，共 127 秒"),
        knob(s.cfg, "net.ipv4.tcp_synack_retries", "SYN,ACK retransmissions",
             "SYN,ACK 重传次数")], facts, net,
        title_zh="为什么要三次握手：SYN,ACK 丢失", explanation_zh=zh)


def why_not_two_way(seed: int = 1) -> Outcome:
    """An old duplicate SYN arrives: the client's RST is what stops a ghost connection."""
    L = lab(seed, client_isn=100, server_isn=[300, 400])
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd)
    cfd = c.socket()
    c.bind(cfd, (CLIENT, 40000))
    # The network still holds a SYN of an earlier incarnation of this 4-tuple (seq 90)
    # and it arrives first; the client's new SYN is held up 50 ms (RFC 9293 3.5, fig. 8).
    old = RawHost()
    net.add_host("198.51.100.9", old)
    net.add_link("198.51.100.9", SERVER, LinkParams(delay_us=1 * MS))
    old.send(CLIENT, SERVER, TcpSegment(src_port=40000, dst_port=80, seq=90, flags=SYN,
                                        window=65535, mss=1460))
    net.set_link(CLIENT, SERVER, LinkParams(delay_us=10 * MS, reorder=1.0,
                                            reorder_delay_us=50 * MS))
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    net.call_at(1, lambda now: net.set_link(CLIENT, SERVER, LinkParams(delay_us=10 * MS)))
    net.run(until=1 * SECOND)
    steps = with_note(L.steps(), lambda st: st.src == "left" and st.seg.seq == 90
                      and bool(st.seg.flags & SYN), "old duplicate")
    cseg, sseg = L.segments("left"), L.segments("right")
    synacks = [g for g in sseg if g.flags & SYN]
    rst = find(cseg, RST)
    f: dict[str, Any] = {
        "synack_acks": [g.ack for g in synacks],
        "client_rst": (rst.seq, rst.flags) if rst else None,
        "server_child_closed_by_rst": any(ch.new is State.CLOSED and "RST" in ch.why.upper()
                                          for _k, ch in s.changes),
        "client_state": str(c.state(cfd)),
        "client_established_us": first_change(c, new="ESTABLISHED"),
        "connect_result": c.connect_ex(cfd, (SERVER, 80), now=net.now),
        # Linux tcp_check_req(): an acceptable RST frees the request; the listener stays.
        "server_still_listening": str(s.state(lfd)),
    }
    first = synacks[0] if synacks else None
    fa = first.ack if first else "?"
    syn = find(cseg, SYN)
    real = synacks[-1] if synacks else None
    last = [g for g in cseg if g.flags == ACK]
    final = last[-1] if last else None
    ws = (syn.wscale if syn is not None and real is not None and real.wscale is not None
          and syn.wscale is not None else 0)
    f["final_ack_window"] = (final.window, final.window << ws) if final else None
    labels = [st.label for st in steps if isinstance(st, SegmentStep)]
    f["not_captured_marks"] = sum("[Previous segment not captured]" in x for x in labels)
    raw, scaled = f["final_ack_window"] or ("?", "?")
    rs = real.seq if real else "?"
    scale_en = (f"The final ACK's win={scaled} is its window field {raw} x 2^{ws}: scaling was agreed by the\n"
                f"SYN seq=100 and the SYN,ACK seq={rs} that answered it (the SYN,ACK to the old SYN\n"
                f"had no window scale, as that SYN offered none).")
    scale_zh = (f"最后那个 ACK 的 win={scaled} 是窗口字段 {raw} x 2^{ws}：窗口扩大是由 SYN seq=100 和回答它的\n"
                f"SYN,ACK seq={rs} 协商的（回答旧 SYN 的 SYN,ACK 不带窗口扩大选项，因为旧 SYN 没有提供）。")
    if f["not_captured_marks"]:
        scale_en += ("\nThe [Previous segment not captured] marks are the capture analysis's (synack ladder's,\n"
                     "and Wireshark's) view: it files the new SYN,ACK under the conversation that\n"
                     "the old SYN started on the same 4-tuple, and so sees a gap. Nothing was lost.")
        scale_zh += ("\n[Previous segment not captured] 是抓包分析（synack ladder 和 Wireshark）的看法：\n"
                     "它把新的 SYN,ACK 归入旧 SYN 在同一四元组上开始的那个会话，于是以为中间缺了报文。\n"
                     "其实什么也没有丢。")
    rseq = rst.seq if rst else "?"
    est = (f["client_established_us"] or 0) / MS
    en = f"""
RFC 9293 section 3.5 gives the main reason for the three-way handshake: "to
prevent old duplicate connection initiations from causing confusion".
A SYN of an earlier connection on the same 4-tuple (seq 90) wanders out of the
network first, while the client's new SYN (seq 100) is held up for 50 ms. The
server cannot tell it is old: it answers SYN,ACK ack={fa}. With a two-way handshake that would be the end: the server would hold an open
connection (and allocate its buffers, maybe send data) for a peer that never
asked. But the client is in SYN_SENT with ISN 100, and ack={fa} does not
acknowledge its SYN, so it answers RST seq={rseq} (SEQ = the bad ACK, RFC 9293
3.10.7.3). The server, in SYN_RECEIVED, drops the request: Linux frees the
request and nothing else; the listening socket stays in {f['server_still_listening']}
(RFC 9293 3.10.7.4's "return to LISTEN"). When the client's
real SYN (seq 100) arrives, a normal handshake follows; the client is
ESTABLISHED at {est:.0f} ms, connect() reports {errno.errorcode.get(f['connect_result'], 'OK')}.
The third message is the client's chance to say "not that one".
{scale_en}
"""
    zh = f"""
笔记的问题："为什么TCP连接的时候是3次？2次不可以吗？"RFC 9293 第 3.5 节给出的
主要原因是：防止已失效的连接请求（旧的重复 SYN）造成混乱。
同一四元组上一次连接的旧 SYN（seq=90）先到达服务端，而客户端新的 SYN（seq=100）
在网络中滞留了 50 ms。服务端无法分辨新旧，回复
SYN,ACK ack={fa}。如果只握手两次，此时服务端就认为连接已建立，为一个根本没有发起
连接的客户端分配资源甚至发送数据。但客户端正处于 SYN_SENT，它的 ISN 是 100，
ack={fa} 确认的不是自己的 SYN，于是回复 RST seq={rseq}（序号取对方的 ack 值）。
处于 SYN_RECEIVED 的服务端收到 RST 后丢弃这个半连接：Linux 只释放这个请求，
监听套接字仍处于 {f['server_still_listening']}（即 RFC 9293 3.10.7.4 所说的"回到 LISTEN"）。随后客户端真正的
SYN（seq=100）到达，正常完成三次握手，客户端在 {est:.0f} ms 进入 ESTABLISHED。
第三次握手给了客户端说"不是这个连接"的机会。
{scale_zh}
"""
    return Outcome("why-not-two-way", "Why not two messages: an old duplicate SYN",
                   L.ladder(steps), en, [
                       knob(s.cfg, "net.ipv4.tcp_synack_retries",
                            "how long a half-open request is kept without the third message",
                            "收不到第三次握手时服务端重传 SYN,ACK 的次数"),
                       knob(s.cfg, "net.ipv4.tcp_max_syn_backlog",
                            "bound of the SYN queue of such half-open requests",
                            "半连接队列的上限")],
                   f, net, title_zh="为什么不能两次握手：已失效的旧 SYN", explanation_zh=zh)


def simultaneous_open(seed: int = 1) -> Outcome:
    """Both ends connect() to each other at once: SYNs cross, no listener needed."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, s, net = L.c, L.s, L.net
    a, b = c.socket(), s.socket()
    c.bind(a, (CLIENT, 5000))
    s.bind(b, (SERVER, 6000))
    net.call_at(0, lambda now: c.connect_ex(a, (SERVER, 6000), now=now))
    net.call_at(0, lambda now: s.connect_ex(b, (CLIENT, 5000), now=now))
    net.run(until=1 * SECOND)
    path = {side: [str(ch.new) for _k, ch in st.changes] for side, st in (("a", c), ("b", s))}
    segs = [(st.src, st.seg.flags) for st in L.steps() if isinstance(st, SegmentStep)]
    f: dict[str, Any] = {"a_states": path["a"], "b_states": path["b"],
                         "segments": len(segs),
                         "synacks": sum(1 for _s, fl in segs if fl & SYN and fl & ACK),
                         "a_state": str(c.state(a)), "b_state": str(s.state(b))}
    labels = [st for st in L.steps() if isinstance(st, SegmentStep)]
    f["synack_marks"] = sorted({m for st in labels if st.seg.flags & SYN and st.seg.flags & ACK
                                for m in step_marks(st)})
    marks_en = marks_zh = ""
    if f["synack_marks"]:
        shown = " and ".join(f"[{m}]" for m in f["synack_marks"])
        marks_en = (f"\nThe ladder marks the SYN,ACKs {shown} (Wireshark calls both\n"
                    "retransmissions): each repeats its side's SYN, with the same sequence number.")
        marks_zh = (f"\n梯形图把两个 SYN,ACK 标为 {shown.replace(' and ', '、')}（Wireshark 都标为重传）：\n"
                    "每个 SYN,ACK 都重复了本方的 SYN，序号相同。")
    f["window_updates"] = sum("Window Update" in step_marks(st) for st in labels)
    if f["window_updates"]:
        marks_en += ("\nThe final ACKs are [Window Update]s: the same ack as that side's SYN,ACK, and a\n"
                     "window that changed (now scaled; a SYN's window never is).")
        marks_zh += ("\n最后两个 ACK 被标为 [Window Update]：确认号和本方的 SYN,ACK 相同，窗口却变了\n"
                     "（现在按扩大因子缩放；SYN 的窗口从不缩放）。")
    en = f"""
Neither side listens: both call connect() at the same instant, A from port 5000
to B's port 6000 and B from 6000 to A's 5000. The two SYNs cross in the network.
A SYN arriving in SYN_SENT is the simultaneous open of RFC 9293 (figure 7): each
side moves to SYN_RECEIVED and answers SYN,ACK, repeating its own SYN and
acknowledging the other's. Each SYN,ACK completes the other side's handshake.
A went {' -> '.join(f['a_states'])}; B went {' -> '.join(f['b_states'])}.
{f['segments']} segments instead of 3: two SYNs and {f['synacks']} SYN,ACKs. One connection results,
not two, because a TCP connection is named by its 4-tuple alone.{marks_en}
"""
    zh = f"""
双方都没有 listen()：A 从端口 5000 连接 B 的 6000，B 同时从 6000 连接 A 的 5000，
两个 SYN 在网络中交错而过。在 SYN_SENT 状态收到 SYN，就是 RFC 9293 所说的
"同时打开"（图 7）：双方都进入 SYN_RECEIVED，各自回复 SYN,ACK（重复自己的 SYN，
同时确认对方的 SYN），每个 SYN,ACK 都完成了对方的握手。
A 的状态：{' -> '.join(f['a_states'])}；B 的状态：{' -> '.join(f['b_states'])}。
一共 {f['segments']} 个报文段而不是 3 个：两个 SYN 和 {f['synacks']} 个 SYN,ACK。结果只有一个连接，
因为 TCP 连接只由四元组唯一确定。{marks_zh}
"""
    return Outcome("simultaneous-open", "Simultaneous open: two SYNs cross",
                   L.ladder(left="A", right="B"), en, [
        knob(c.cfg, "net.ipv4.tcp_syn_retries", "SYN retransmissions of either connect()",
             "任一方 connect() 重传 SYN 的次数")], f, net,
        title_zh="同时打开：两个 SYN 交错", explanation_zh=zh)
