"""Closing a connection: four-way close, half-close, simultaneous close, TIME_WAIT, CLOSE_WAIT."""

from __future__ import annotations

from typing import Any

from synack.demo.driver import drop_next, step_marks
from synack.demo.scenarios.base import (
    CLIENT,
    MS,
    SECOND,
    SERVER,
    Lab,
    Outcome,
    Tunable,
    drain,
    first_change,
    knob,
    lab,
    only_ports,
    ss_table,
    state_counts,
)
from synack.stack import SHUT_WR
from synack.tcp.connection import TIME_WAIT_US
from synack.tcp.state import State
from synack.trace.ladder import SegmentStep
from synack.wire.tcp import ACK, FIN, RST


def _tw_len() -> Tunable:
    return Tunable("TIME_WAIT", f"{TIME_WAIT_US // SECOND} s",
                   "2*MSL, Linux's TCP_TIMEWAIT_LEN; not a sysctl",
                   "2MSL，Linux 内核常量 TCP_TIMEWAIT_LEN，不能用 sysctl 修改")


def _client_server_close(L: Lab, *, server_delay_us: int = 0,
                         client_data: bytes = b"hello") -> dict[str, int]:
    """Connect, send a little data, close client-first; the server closes on EOF (+delay)."""
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd)
    fds: dict[str, int] = {}

    def server_close(now: int) -> None:
        s.close(fds["s"], now=now)

    def server(now: int) -> None:
        if "s" not in fds:
            try:
                fds["s"], _ = s.accept(lfd)
            except BlockingIOError:
                return
        _data, eof = drain(s, fds["s"], now)
        if eof and "s_closed" not in fds:
            fds["s_closed"] = 1
            if server_delay_us:
                net.call_later(server_delay_us, server_close)
            else:
                server_close(now)

    cfd = c.socket()
    fds["c"] = cfd

    def client(now: int) -> None:
        if "c_shut" not in fds and c.state(cfd) is State.ESTABLISHED:
            fds["c_shut"] = 1
            if client_data:
                c.send(cfd, client_data, now=now)
                c.close(cfd, now=now)
            else:       # nothing to say: close a little later, on its own
                net.call_later(100 * MS, lambda now: c.close(cfd, now=now))

    L.server.apps.append(server)
    L.client.apps.append(client)
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    return fds


def four_way_close(seed: int = 1) -> Outcome:
    """FIN, ACK, FIN, ACK: each direction is closed on its own."""
    L = lab(seed, client_isn=100, server_isn=300)
    fds = _client_server_close(L, server_delay_us=100 * MS, client_data=b"")
    L.net.run(until=120 * SECOND)
    c, s = L.c, L.s
    del fds
    steps = [st for st in L.steps() if isinstance(st, SegmentStep)]
    fin_c = next(st for st in steps if st.src == "left" and st.seg.flags & FIN)
    close_segs = [st for st in steps if st.t_us >= fin_c.t_us]
    f: dict[str, Any] = {
        "close_segments": [(st.src, str(st.seg.flags), st.seg.seq, st.seg.ack)
                           for st in close_segs],
        "client_states": [str(ch.new) for _k, ch in c.changes],
        "server_states": [str(ch.new) for _k, ch in s.changes],
        "close_wait_us": (first_change(s, old="CLOSE_WAIT") or 0)
        - (first_change(s, new="CLOSE_WAIT") or 0),
        "time_wait_us": (first_change(c, old="TIME_WAIT") or 0)
        - (first_change(c, new="TIME_WAIT") or 0),
        "server_closed_us": first_change(s, old="LAST_ACK"),
        "ack_of_fin_delay_us": next(st.t_us for st in close_segs if st.src == "right")
        - fin_c.t_us - L.net.link(CLIENT, SERVER).params.delay_us,
    }
    n = len(close_segs)
    cw, tw = f["close_wait_us"] / MS, f["time_wait_us"] / SECOND
    en = f"""
The seed's question 1, "why four messages to close": TCP is full duplex and each
direction is closed separately.
1. The client calls close(): FIN (FIN_WAIT_1), "I will send no more".
2. The server enters CLOSE_WAIT as the FIN arrives, and its TCP ACKs the FIN
   {f['ack_of_fin_delay_us'] / MS:.0f} ms later (a delayed ACK, as Linux's tcp_fin() arranges); with that ACK
   the client is in FIN_WAIT_2. The server's application learns of the FIN as end
   of file, but may still have data to send, so its FIN cannot ride on this ACK.
3. {cw:.0f} ms later the server's application calls close(): its FIN (LAST_ACK).
4. The client ACKs it and enters TIME_WAIT for 2*MSL ({tw:.0f} s); the server is
   CLOSED as soon as that ACK arrives.
{n} segments from the first FIN on. (When the passive side closes within the
delayed-ACK time, {f['ack_of_fin_delay_us'] / MS:.0f} ms here, its ACK rides on its FIN and the close
takes three segments.)
"""
    zh = f"""
笔记的问题1："为什么是四次挥手"——因为 TCP 是全双工的，两个方向要分别关闭。
第一次挥手：客户端调用 close()，发出 FIN（FIN_WAIT_1），表示"我不再发数据"。
第二次挥手：服务端收到 FIN 即进入 CLOSE_WAIT，TCP 在 {f['ack_of_fin_delay_us'] / MS:.0f} ms 后才确认它
（延迟确认，Linux 的 tcp_fin() 就是这样安排的）；客户端收到这个 ACK 后进入 FIN_WAIT_2。
服务端应用读到文件结束，但可能还有数据要发，所以 FIN 不能和这个 ACK 合并。
第三次挥手：{cw:.0f} ms 后服务端应用调用 close()，发出自己的 FIN（LAST_ACK）。
第四次挥手：客户端确认后进入 TIME_WAIT，等待 2MSL（{tw:.0f} 秒）；服务端收到这个 ACK
立即进入 CLOSED，所以服务端比客户端更早释放连接。
从第一个 FIN 起共 {n} 个报文段。（如果被动关闭方在延迟确认的时间内（这里是
{f['ack_of_fin_delay_us'] / MS:.0f} ms）调用 close()，ACK 会搭在它的 FIN 上，只需要三个报文段。）
"""
    return Outcome("four-way-close", "The four-way close", L.ladder(), en, [
        knob(c.cfg, "net.ipv4.tcp_fin_timeout", "an orphaned FIN_WAIT_2's lifetime",
             "应用已 close() 的连接在 FIN_WAIT_2 的最长时间"), _tw_len(),
        knob(c.cfg, "net.ipv4.tcp_max_tw_buckets", "size of the TIME_WAIT table",
             "TIME_WAIT 连接数的上限")], f, L.net,
        title_zh="四次挥手", explanation_zh=zh)


def lost_last_ack(seed: int = 1) -> Outcome:
    """Why TIME_WAIT: the last ACK is lost and the server's FIN comes again."""
    L = lab(seed, client_isn=100, server_isn=300)
    _client_server_close(L)
    fins: dict[str, int] = {}

    def is_last_ack(ip: Any, seg: Any) -> bool:
        if ip.src == SERVER and seg.flags & FIN:
            fins["server_fin_end"] = seg.seq + 1
        return bool(ip.src == CLIENT and seg.flags == ACK
                    and seg.ack == fins.get("server_fin_end"))

    drop_next(L.net, is_last_ack)
    L.net.run(until=120 * SECOND)
    s_fins = [g for g in L.segments("right") if g.flags & FIN]
    tw_acks = [g for g in L.segments("left") if g.flags == ACK and s_fins
               and g.ack == s_fins[0].seq + 1]
    server_closed = first_change(L.s, old="LAST_ACK")
    facts: dict[str, Any] = {"server_fins": len(s_fins), "client_acks_of_fin": len(tw_acks),
                             "server_closed_us": server_closed,
                             "resets": sum(1 for g in L.segments("left") if g.flags & RST)}
    sc = (server_closed or 0) / 1000
    steps = [x for x in L.steps() if isinstance(x, SegmentStep)]
    fin_steps = [x for x in steps if x.src == "right" and x.seg.flags & FIN]
    rto_ms = (fin_steps[1].t_us - fin_steps[0].t_us) / MS if len(fin_steps) > 1 else None
    facts["fin_retransmit_after_ms"] = rto_ms
    answer = next((x for x in steps if x.src == "left" and len(fin_steps) > 1
                   and x.t_us > fin_steps[1].t_us and x.seg.flags == ACK), None)
    dup = answer is not None and any(m.startswith("Dup ACK") for m in step_marks(answer))
    dup_en = (" (a repeat of the\nlost one, so the ladder marks it [Dup ACK])" if dup else "")
    dup_zh = ("（和丢失的那个一样，所以梯形图把它标为 [Dup ACK]）" if dup else "")
    en = f"""
The client's last ACK is lost. The server, in LAST_ACK, does not know whether
its FIN arrived, so it retransmits it when its RTO expires, {rto_ms:.0f} ms later ({len(s_fins)} FINs
in all).
The client is in TIME_WAIT and still remembers the connection: it answers the
retransmitted FIN with the same ACK{dup_en}, and the server closes cleanly at
{sc:.0f} ms. Had the client gone straight to CLOSED, that FIN would have met no
connection and been answered with RST: the server would report an error for a
connection that had in fact ended well.
TIME_WAIT lasts 2*MSL so that an ACK can be lost and the FIN come again, and so
that stray segments of this connection die out before the 4-tuple is reused.
"""
    zh = f"""
笔记的问题："为什么客户端发出第四次挥手的确认报文后要等2MSL的时间才能释放TCP连接？"
这里客户端最后的 ACK 丢了。处于 LAST_ACK 的服务端不知道自己的 FIN 是否送达，
RTO 超时后（{rto_ms:.0f} ms 后）重传 FIN（一共 {len(s_fins)} 个 FIN）。客户端处于 TIME_WAIT，仍记得这个连接，
于是用同样的 ACK 回应重传的 FIN{dup_zh}，服务端在 {sc:.0f} ms 正常关闭。
如果客户端直接进入 CLOSED，重传的 FIN 找不到连接，就会被回以 RST 而不是 ACK，
服务端会把一个其实正常结束的连接报告为错误——这正是笔记所说"影响关闭流程"。
TIME_WAIT 持续 2MSL：既让丢失的 ACK 有机会随重传的 FIN 补发，也让这个连接在网络中
残留的报文全部消失，之后同一个四元组才能再被使用。
"""
    c = L.c
    return Outcome("lost-last-ack", "Why TIME_WAIT: the last ACK of the close is lost",
                   L.ladder(), en, [
                       _tw_len(),
                       knob(c.cfg, "net.ipv4.tcp_tw_reuse",
                            "reuse a TIME_WAIT port for new connect()s",
                            "允许 connect() 复用 TIME_WAIT 的端口"),
                       knob(c.cfg, "net.ipv4.tcp_max_tw_buckets", "size of the TIME_WAIT table",
                            "TIME_WAIT 连接数的上限")],
                   facts, L.net, title_zh="为什么需要 TIME_WAIT：最后的 ACK 丢失",
                   explanation_zh=zh)


def half_close(seed: int = 1) -> Outcome:
    """shutdown(SHUT_WR): the client's side is closed, the server keeps sending."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd)
    st: dict[str, Any] = {"got": 0, "chunks": 0}

    def server(now: int) -> None:
        if "fd" not in st:
            try:
                st["fd"], _ = s.accept(lfd)
            except BlockingIOError:
                return
        fd = st["fd"]
        _data, eof = drain(s, fd, now)
        if eof and "eof" not in st:
            st["eof"] = now

            def chunk(now: int) -> None:
                s.send(fd, b"x" * 100, now=now)
                st["chunks"] += 1
                if st["chunks"] == 3:
                    s.close(fd, now=now)
                else:
                    net.call_later(200 * MS, chunk)
            net.call_later(200 * MS, chunk)

    cfd = c.socket()

    def client(now: int) -> None:
        if "c_eof" in st:
            return
        if "shut" not in st and c.state(cfd) is State.ESTABLISHED:
            st["shut"] = True
            c.send(cfd, b"request", now=now)
            c.shutdown(cfd, SHUT_WR, now=now)
        if "shut" in st:
            data, eof = drain(c, cfd, now)
            st["got"] += len(data)
            if eof:
                st["c_eof"] = now
                c.close(cfd, now=now)

    L.server.apps.append(server)
    L.client.apps.append(client)
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    net.run(until=100 * SECOND)
    fw2 = first_change(c, new="FIN_WAIT_2")
    cw = first_change(s, new="CLOSE_WAIT") or 0
    segs = [x for x in L.steps() if isinstance(x, SegmentStep)]
    fin = next((x for x in segs if x.src == "left" and x.seg.flags & FIN), None)
    ack = next((x for x in segs if x.src == "right" and fin is not None
                and x.seg.ack == fin.seg.seq + 1), None)
    chunks = [x for x in segs if x.src == "right" and x.seg.payload and x.t_us > cw]
    facts: dict[str, Any] = {"client_received": st["got"], "fin_wait_2_at_us": fw2,
                             "chunks_after_fin": st["chunks"], "close_wait_at_us": cw,
                             "ack_of_fin_at_us": ack.t_us if ack else None,
                             "chunk_times_ms": [x.t_us / MS for x in chunks]}
    ack_ms = (ack.t_us if ack else 0) / MS
    times = ", ".join(f"{t:.0f}" for t in facts["chunk_times_ms"])
    en = f"""
The client sends its request and calls shutdown(SHUT_WR): a FIN, meaning "I
will send no more". The server enters CLOSE_WAIT when it arrives, at {cw / MS:.0f} ms, and
ACKs it at {ack_ms:.0f} ms ({ack_ms - cw / MS:.0f} ms later: a delayed ACK, as Linux's); the client is in
FIN_WAIT_2 from {(fw2 or 0) / MS:.0f} ms -- this is the half-close. The connection still carries data
the other way: the server sends {len(chunks)} more chunks, at {times} ms, and the client
receives all {st['got']} bytes. Only the server's own close() sends the second
FIN. This is why closing takes four messages while opening takes three: the
ACK of the first FIN cannot wait for the second, which only the server's
application decides.
The seed says FIN_WAIT_2 times out after tcp_fin_timeout (60 s). On Linux that
holds only for an orphan, a FIN_WAIT_2 whose socket the application has closed:
after net.ipv4.tcp_fin_timeout Linux drops it. A socket that only called
shutdown(SHUT_WR), like this client's until the server's FIN, waits as long as
it takes (see close-wait-leak for the orphan's timeout).
"""
    zh = f"""
笔记的问题2："什么是半关闭"。客户端发出请求后调用 shutdown(SHUT_WR)：发出 FIN，
表示"我不再发数据了"。服务端确认后进入 CLOSE_WAIT，客户端进入 FIN_WAIT_2——
这就是半关闭（FIN 在 {cw / MS:.0f} ms 到达服务端，它的 ACK 在 {ack_ms:.0f} ms 发出，晚了 {ack_ms - cw / MS:.0f} ms：
和 Linux 一样的延迟确认；客户端从 {(fw2 or 0) / MS:.0f} ms 起处于 FIN_WAIT_2）。
另一个方向仍可传数据：服务端又在 {times} ms 发了 {len(chunks)} 块数据，
客户端全部收到，共 {st['got']} 字节。直到服务端自己调用 close() 才发出第二个 FIN。
这也是"握手三次、挥手四次"的原因：对第一个 FIN 的 ACK 不能等第二个 FIN，
第二个 FIN 何时发由服务端应用决定。
笔记说 FIN_WAIT_2 等待 tcp_fin_timeout（60 秒）后超时。在 Linux 上这只对"孤儿连接"成立，
即应用已经 close() 的 FIN_WAIT_2：超过 net.ipv4.tcp_fin_timeout 后 Linux 丢弃它。
只调用了 shutdown(SHUT_WR) 的套接字（比如本例中收到服务端 FIN 之前的客户端）会一直等下去
（孤儿连接的超时见 close-wait-leak）。
"""
    return Outcome("half-close", "Half-close: shutdown(SHUT_WR) and FIN_WAIT_2 / CLOSE_WAIT",
                   L.ladder(), en, [
                       knob(c.cfg, "net.ipv4.tcp_fin_timeout", "orphaned FIN_WAIT_2 lifetime",
                            "孤儿连接在 FIN_WAIT_2 的最长时间"),
                       Tunable("shutdown(fd, how)", "SHUT_WR",
                               "SHUT_WR closes only our sending direction",
                               "SHUT_WR 只关闭本端的发送方向")],
                   facts, net, title_zh="半关闭：shutdown(SHUT_WR)，FIN_WAIT_2 与 CLOSE_WAIT",
                   explanation_zh=zh)


def simultaneous_close(seed: int = 1) -> Outcome:
    """Both ends close() at once: the FINs cross and both pass through CLOSING."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd)
    cfd = c.socket()
    fds: dict[str, int] = {}

    def server(now: int) -> None:
        if "s" not in fds:
            try:
                fds["s"], _ = s.accept(lfd)
            except BlockingIOError:
                return

    def both_close(now: int) -> None:
        c.close(cfd, now=now)
        s.close(fds["s"], now=now)

    L.server.apps.append(server)
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    net.call_at(100 * MS, both_close)
    net.run(until=120 * SECOND)
    f: dict[str, Any] = {
        "client_states": [str(ch.new) for _k, ch in c.changes],
        "server_states": [str(ch.new) for _k, ch in s.changes if ch.old is not State.LISTEN
                          or ch.new is not State.SYN_RECEIVED],
        "fins": sum(1 for g in L.segments("left") + L.segments("right") if g.flags & FIN),
        "client_time_wait_us": first_change(c, new="TIME_WAIT"),
        "server_time_wait_us": first_change(s, new="TIME_WAIT"),
    }
    en = f"""
Both applications call close() at 100 ms. Each sends a FIN (FIN_WAIT_1) before
it has seen the other's. A FIN arriving in FIN_WAIT_1 that does not acknowledge
our own FIN moves the connection to CLOSING (RFC 9293 figure 13): "the other side
is done too, but my FIN is not yet acknowledged". Each side ACKs the other's FIN;
when the ACK of its own FIN arrives it goes to TIME_WAIT. Both sides were active
closers, so both wait 2*MSL: the client entered TIME_WAIT at
{(f['client_time_wait_us'] or 0) / MS:.0f} ms, the server at {(f['server_time_wait_us'] or 0) / MS:.0f} ms.
Client: {' -> '.join(f['client_states'])}.
"""
    zh = f"""
双方应用都在 100 ms 调用 close()，各自在看到对方的 FIN 之前发出自己的 FIN（FIN_WAIT_1）。
在 FIN_WAIT_1 收到一个没有确认自己 FIN 的 FIN，连接进入 CLOSING（RFC 9293 图 13）：
"对方也关闭了，但我的 FIN 还没被确认"。双方互相确认对方的 FIN，收到对自己 FIN 的确认后
进入 TIME_WAIT。两边都是主动关闭方，所以都要等待 2MSL：客户端在
{(f['client_time_wait_us'] or 0) / MS:.0f} ms、服务端在 {(f['server_time_wait_us'] or 0) / MS:.0f} ms 进入 TIME_WAIT。
客户端的状态：{' -> '.join(f['client_states'])}。
"""
    return Outcome("simultaneous-close", "Simultaneous close: FINs cross, CLOSING",
                   L.ladder(), en, [_tw_len()], f, net,
                   title_zh="同时关闭：FIN 交错，CLOSING 状态", explanation_zh=zh)


def close_wait_leak(seed: int = 1, *, clients: int = 4) -> Outcome:
    """A server that never calls close(): its connections pile up in CLOSE_WAIT."""
    L = lab(seed)
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd)
    served: list[int] = []

    def server(now: int) -> None:      # answers each request and forgets the socket: the bug
        while True:
            try:
                fd, _ = s.accept(lfd)
            except BlockingIOError:
                break
            served.append(fd)
        for fd in served:
            data, _eof = drain(s, fd, now)
            if data:
                s.send(fd, b"response", now=now)

    L.server.apps.append(server)
    cfds: list[int] = []
    ports: list[int] = []
    asked: set[int] = set()
    done: set[int] = set()

    def client(now: int) -> None:
        for fd in cfds:
            if fd in done or c.state(fd) is not State.ESTABLISHED:
                continue
            if fd not in asked:
                asked.add(fd)
                c.send(fd, b"request", now=now)
            data, _eof = drain(c, fd, now)
            if data:
                done.add(fd)
                c.close(fd, now=now)           # the client closes properly

    def start(now: int) -> None:
        fd = c.socket()
        cfds.append(fd)
        c.connect_ex(fd, (SERVER, 80), now=now)
        ports.append(c.getsockname(fd)[1])

    L.client.apps.append(client)
    for i in range(clients):
        net.call_at(i * 100 * MS, start)
    snap: dict[str, Any] = {}

    def look(now: int) -> None:
        snap["server_1s"] = state_counts(s)
        snap["client_1s"] = state_counts(c)
        snap["table"] = ss_table(s, title=f"server: ss -tan at {now / SECOND:.0f} s")

    net.call_at(1 * SECOND, look)
    fin_timeout = c.cfg.int("net.ipv4.tcp_fin_timeout")
    net.run(until=(fin_timeout + 10) * SECOND)
    steps = only_ports(L.steps(), c, s, {ports[0]})
    f: dict[str, Any] = {
        "server_close_wait_1s": snap["server_1s"].get("CLOSE_WAIT", 0),
        "client_fin_wait_2_1s": snap["client_1s"].get("FIN_WAIT_2", 0),
        "server_close_wait_end": state_counts(s).get("CLOSE_WAIT", 0),
        "client_sockets_end": sum(state_counts(c).values()),
        "fin_wait_2_end_us": first_change(c, old="FIN_WAIT_2"),
        "end_s": net.now / SECOND,
    }
    end_table = ss_table(s, title=f"server: ss -tan at {net.now / SECOND:.0f} s")
    fw2 = (f["fin_wait_2_end_us"] or 0) / SECOND
    en = f"""
The seed's question 3, "why does a server have many CLOSE_WAIT connections".
{clients} clients each send a request, read the response and close(). The server
answers but has a bug: it never calls close(). Each client FIN is ACKed by the
server's TCP, which cannot send its own FIN until the application closes, so each
connection stays in CLOSE_WAIT. At 1 s the server has {f['server_close_wait_1s']} in CLOSE_WAIT and the
client {f['client_fin_wait_2_1s']} in FIN_WAIT_2 (the ladder shows the first connection only).
The client side cleans up: its orphaned FIN_WAIT_2 gives up after
net.ipv4.tcp_fin_timeout (the first at {fw2:.1f} s); at {f['end_s']:.0f} s the client has
{f['client_sockets_end']} sockets left. The server still has {f['server_close_wait_end']} in CLOSE_WAIT:
no timer ends CLOSE_WAIT, only close() does (or the process exiting). Each one
holds a descriptor and buffers -- the leak grows until "too many open files".
The fix is in the application: close every socket (finally / with), or make a
server that is too busy to close keep up.
"""
    zh = f"""
笔记的问题3："为什么服务器会有大量 closewait"。
{clients} 个客户端各发一个请求、读取响应后调用 close()。服务端回复了请求，但有个 bug：
从不调用 close()。服务端 TCP 确认了每个客户端的 FIN，但在应用 close() 之前不能发出自己的
FIN，于是每个连接都停在 CLOSE_WAIT。1 秒时服务端有 {f['server_close_wait_1s']} 个 CLOSE_WAIT，
客户端有 {f['client_fin_wait_2_1s']} 个 FIN_WAIT_2（梯形图只画了第一个连接）。
客户端一侧会自行清理：孤儿 FIN_WAIT_2 在 net.ipv4.tcp_fin_timeout 后放弃（第一个在
{fw2:.1f} 秒）；到 {f['end_s']:.0f} 秒客户端只剩 {f['client_sockets_end']} 个套接字。服务端仍有
{f['server_close_wait_end']} 个 CLOSE_WAIT：没有任何计时器能结束 CLOSE_WAIT，只有 close()（或进程退出）能。
每个连接都占着一个文件描述符和缓冲区，泄露会一直增长到 "too many open files"。
正如笔记所说，原因是连接泄露（bug）或服务器压力太大来不及 close，要在应用里解决：
确保每个套接字都被关闭（finally / with）。
"""
    return Outcome("close-wait-leak", "CLOSE_WAIT piles up: a server that never closes",
                   L.ladder(steps), en, [
                       Tunable("close(fd)", "never called",
                               "the only way out of CLOSE_WAIT",
                               "离开 CLOSE_WAIT 的唯一方法"),
                       knob(c.cfg, "net.ipv4.tcp_fin_timeout",
                            "how long the peer's orphaned FIN_WAIT_2 waits",
                            "对端孤儿 FIN_WAIT_2 的等待时间"),
                       knob(s.cfg, "net.ipv4.tcp_keepalive_time",
                            "with SO_KEEPALIVE on, a probe this long after the last segment "
                            "would meet the peer's RST -- hours late, and off here",
                            "若开启 SO_KEEPALIVE，空闲这么久后的探测会遇到对端的 RST——"
                            "要等几个小时，本例未开启")],
                   f, net, title_zh="CLOSE_WAIT 堆积：服务端从不 close()", explanation_zh=zh,
                   extra=[*snap["table"], "", *end_table])
