"""The seeds' worked example: ISNs 100 and 300, 1000 bytes up, 2000 down, 50 after the FIN."""

from __future__ import annotations

from typing import Any

from synack.demo.scenarios.base import (
    MS,
    SECOND,
    SERVER,
    Lab,
    Outcome,
    Tunable,
    drain,
    find,
    first_change,
    knob,
    lab,
)
from synack.stack import SHUT_WR
from synack.tcp.connection import TIME_WAIT_US
from synack.tcp.state import State
from synack.trace.ladder import SegmentStep
from synack.wire.tcp import ACK, FIN, SYN, TcpSegment


def worked_example(seed: int = 1) -> Outcome:
    """The seed's numbers: ISNs 100 and 300, 1000 bytes up, 2000 down, 50 after the FIN."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd, 128)
    srv: dict[str, Any] = {"fd": None, "got": 0, "sent": False, "eof": False}

    def finish(now: int) -> None:
        s.send(srv["fd"], b"z" * 50, now=now)      # the last 50 bytes, then FIN
        s.close(srv["fd"], now=now)

    def server(now: int) -> None:
        if srv["fd"] is None:
            try:
                srv["fd"], _ = s.accept(lfd)
            except BlockingIOError:
                return
        data, eof = drain(s, srv["fd"], now)
        srv["got"] += len(data)
        if srv["got"] == 1000 and not srv["sent"]:
            srv["sent"] = True
            s.send(srv["fd"], b"s" * 2000, now=now)
        if eof and not srv["eof"]:
            srv["eof"] = True                   # CLOSE_WAIT: finish the work, then close
            net.call_later(50 * MS, finish)

    cfd = c.socket()
    cli: dict[str, Any] = {"sent": False, "got": 0, "shut": False, "closed": False}

    def client(now: int) -> None:
        if cli["closed"] or c.state(cfd) is State.SYN_SENT:
            return
        if not cli["sent"]:
            cli["sent"] = True
            c.send(cfd, b"c" * 1000, now=now)
        data, eof = drain(c, cfd, now)
        cli["got"] += len(data)
        if cli["got"] >= 2000 and not cli["shut"]:
            cli["shut"] = True
            c.shutdown(cfd, SHUT_WR, now=now)     # FIN, but keep receiving (half-close)
        if eof:
            cli["closed"] = True
            c.close(cfd, now=now)

    L.server.apps.append(server)
    L.client.apps.append(client)
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    net.run(until=200 * SECOND)

    cseg, sseg = L.segments("left"), L.segments("right")
    syn, synack = find(cseg, SYN), find(sseg, SYN | ACK)
    assert syn is not None and synack is not None
    fin_c, fin_s = find(cseg, FIN), find(sseg, FIN)
    ack_of_fin = next((g for g in sseg if fin_c and g.ack == fin_c.seq + 1
                       and not g.payload and not g.flags & FIN), None)
    last_ack = next((g for g in cseg if fin_s and g.ack == fin_s.seq + 1), None)
    tw_end = next((ch.now for _k, ch in c.changes if ch.old is State.TIME_WAIT), None)
    tw_start = next((ch.now for _k, ch in c.changes if ch.new is State.TIME_WAIT), None)
    facts: dict[str, Any] = {
        "client_syn_seq": syn.seq,
        "server_synack": (synack.seq, synack.ack),
        "client_fin_seq": fin_c.seq if fin_c else None,
        "server_ack_of_fin": (ack_of_fin.seq, ack_of_fin.ack) if ack_of_fin else None,
        "server_fin": (fin_s.seq, fin_s.ack) if fin_s else None,
        "client_last_ack": (last_ack.seq, last_ack.ack) if last_ack else None,
        "client_bytes": srv["got"],
        "server_bytes": cli["got"],
        "time_wait_us": (tw_end - tw_start) if tw_end and tw_start else None,
        # When the client's FIN arrived (the server entered CLOSE_WAIT), when the server's
        # ACK of it left, and when the server's application called close().
        "fin_arrived_us": first_change(s, new="CLOSE_WAIT"),
        "ack_of_fin_us": _sent_at(L, "right", ack_of_fin),
        "server_close_us": first_change(s, new="LAST_ACK"),
    }
    en, zh = _texts(facts)
    return Outcome("worked-example", "The seed's worked example: handshake, data, four-way close",
                   L.ladder(), en, [
                       knob(c.cfg, "net.ipv4.tcp_fin_timeout",
                            "seconds an orphaned FIN_WAIT_2 lives",
                            "已 close() 的连接在 FIN_WAIT_2 最多等多少秒"),
                       Tunable("TIME_WAIT", f"{TIME_WAIT_US // SECOND} s",
                               "2*MSL on Linux (TCP_TIMEWAIT_LEN, not a sysctl)",
                               "2MSL，Linux 内核常量 TCP_TIMEWAIT_LEN，不能用 sysctl 修改"),
                   ], facts, net, title_zh="种子笔记的例子：三次握手、传数据、四次挥手",
                   explanation_zh=zh)


def _sent_at(L: Lab, side: str, seg: TcpSegment | None) -> int | None:
    """When ``seg`` left ``side``, read off the run."""
    return next((st.t_us for st in L.steps() if isinstance(st, SegmentStep)
                 and st.src == side and st.seg == seg), None)


def _texts(f: dict[str, Any]) -> tuple[str, str]:
    sa = f["server_synack"]
    ack_fin = f["server_ack_of_fin"] or (None, None)
    fin = f["server_fin"] or (None, None)
    last = f["client_last_ack"] or (None, None)
    tw = (f["time_wait_us"] or 0) / 1e6
    fin_at, ack_at, close_at = (
        (f[k] or 0) / 1000 for k in ("fin_arrived_us", "ack_of_fin_us", "server_close_us"))
    delay = ack_at - fin_at
    late = close_at > ack_at
    late_en = ("too late, so the ACK goes alone and the close takes four segments" if late
               else "in time: the ACK rides on its FIN")
    late_zh = ("来不及了，所以 ACK 单独发出，挥手是四个报文段" if late
               else "赶上了：ACK 和它的 FIN 一起发出")
    rows = [
        ("client SYN seq", "100", f["client_syn_seq"]),
        ("server SYN,ACK seq / ack", "300 / 101", f"{sa[0]} / {sa[1]}"),
        ("client FIN seq", "1101", f["client_fin_seq"]),
        ("server ACK of the FIN: ack", "1102", ack_fin[1]),
        ("server ACK of the FIN: seq", "2300", ack_fin[0]),
        ("server FIN seq / ack", "2350 / 1102", f"{fin[0]} / {fin[1]}"),
        ("client last ACK seq / ack", "1102 / 2351", f"{last[0]} / {last[1]}"),
    ]
    table = "\n".join(f"  {a:<30} {b:>13} {c!s:>13}" for a, b, c in rows)
    en = f"""
The client (ISN {f['client_syn_seq']}) and the server (ISN {sa[0]}) shake hands. The ISNs are fixed here
to the seed's example; a real stack picks an unpredictable ISN (RFC 6528, which
is what the seed's "randomly generated" means). SYN and SYN,ACK each use one
sequence number, the bare ACK none, so the first data byte is {f['client_syn_seq'] + 1}.
The client sends {f['client_bytes']} bytes, the server {f['server_bytes'] - 50} (+50 later).
The client half-closes with shutdown(SHUT_WR): its FIN says "no more data from
me" and it keeps receiving. The FIN reaches the server at {fin_at:.0f} ms (CLOSE_WAIT), but
its ACK leaves only at {ack_at:.0f} ms, {delay:.0f} ms later: a delayed ACK (Linux's tcp_fin()
switches off quick ACKs, hoping the ACK can ride on data or on the server's own
FIN). The server's application sends its last 50 bytes and calls close() only at
{close_at:.0f} ms, {late_en};
the client moves to FIN_WAIT_2 when that ACK arrives. The server's FIN follows
its data (LAST_ACK). The client ACKs it and waits in TIME_WAIT for 2*MSL
({tw:.0f} s of virtual time) before the 4-tuple is free.

  {'':<30} {'the seed says':>13} {'synack sent':>13}
{table}

The seed's server-side numbers are one lower than TCP's: it computes 300 + 2000
= 2300, forgetting that the server's SYN used sequence number 300 itself, so
its data occupies 301..2300 and the next sequence number is 300 + 1 + 2000 =
2301 -- the same "+1" the seed applies on the client side (100 + 1 + 1000 =
1101). The Linux kernel sends exactly these numbers too.
"""
    zh_rows = [("客户端 SYN seq", *rows[0][1:]), ("服务端 SYN,ACK seq / ack", *rows[1][1:]),
               ("客户端 FIN seq", *rows[2][1:]), ("服务端确认 FIN 的 ack", *rows[3][1:]),
               ("服务端确认 FIN 的 seq", *rows[4][1:]), ("服务端 FIN seq / ack", *rows[5][1:]),
               ("客户端最后的 ACK seq / ack", *rows[6][1:])]
    zh_table = "\n".join(f"  {a:<24} {b:>13} {c!s:>13}" for a, b, c in zh_rows)
    zh = f"""
客户端（ISN={f['client_syn_seq']}）和服务端（ISN={sa[0]}）三次握手。这里的 ISN 固定为笔记中的例子；
真实的协议栈按 RFC 6528 选一个无法预测的 ISN（笔记说的"随机生成"就是指这个）。
SYN 和 SYN,ACK 各占一个序号，不带数据的 ACK 不占序号，所以第一个数据字节的序号是 {f['client_syn_seq'] + 1}。
客户端发送 {f['client_bytes']} 字节，服务端回复 {f['server_bytes'] - 50} 字节（之后再发 50 字节）。
第一次挥手：客户端调用 shutdown(SHUT_WR) 发出 FIN，表示"我不再发数据"，但仍可收数据（半关闭）。
第二次挥手：FIN 在 {fin_at:.0f} ms 到达服务端（进入 CLOSE_WAIT），但它的 ACK 在 {ack_at:.0f} ms 才发出，
晚了 {delay:.0f} ms：这是延迟确认（Linux 的 tcp_fin() 关闭快速确认，希望这个 ACK 能搭上数据或
服务端自己的 FIN 一起发）。服务端应用到 {close_at:.0f} ms 才发完最后 50 字节并调用 close()，
{late_zh}；客户端收到这个 ACK 后进入 FIN_WAIT_2。
第三次挥手：服务端在数据之后发出自己的 FIN（LAST_ACK）。
第四次挥手：客户端确认后进入 TIME_WAIT，等待 2MSL（本次虚拟时间 {tw:.0f} 秒）才释放四元组。

  {'':<24} {'笔记中的数字':>13} {'synack 实际发送':>13}
{zh_table}

笔记里服务端的序号比 TCP 实际的小 1：笔记算的是 300 + 2000 = 2300，忘了服务端的
SYN 本身占用了序号 300，所以数据占 301..2300，下一个序号是 300 + 1 + 2000 = 2301——
和笔记在客户端一侧加的那个 "+1"（100 + 1 + 1000 = 1101）是同一个道理。
Linux 内核发出的也正是这些数字。
"""
    return en, zh
