"""Every RST of the seeds: closed port, close with unread data, abortive linger, timeout.

The seed's question 5 lists when RST appears: data to a port nobody listens
on, a peer that has already closed, close() with data left unread in the
receive buffer, and a request that timed out. Each scenario here makes one.
"""

from __future__ import annotations

import errno
import socket as _socket
import struct
from typing import Any

from synack.demo.scenarios.base import (
    CLIENT,
    MS,
    SECOND,
    SERVER,
    Lab,
    Outcome,
    Tunable,
    find,
    first_change,
    knob,
    lab,
)
from synack.sim import LinkParams
from synack.tcp.rtt import retries_timeout_us
from synack.tcp.state import State
from synack.wire.tcp import RST


def _errname(code: int) -> str:
    return errno.errorcode.get(code, str(code)) if code else "no error"


def _recv_error(stack: Any, fd: int, now: int) -> int:
    """The errno recv() raises now (0 if it returns)."""
    try:
        stack.recv(fd, 1, now=now)
    except BlockingIOError:
        return errno.EAGAIN
    except OSError as exc:
        return exc.errno or 0
    return 0


def rst_closed_port(seed: int = 1) -> Outcome:
    """A SYN to a port nobody listens on is answered with RST: connection refused."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, net = L.c, L.net
    cfd = c.socket()
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 81), now=now))
    net.run(until=2 * SECOND)
    err = int(c.getsockopt(cfd, _socket.SOL_SOCKET, _socket.SO_ERROR))
    rst = find(L.segments("right"), RST)
    facts: dict[str, Any] = {"so_error": err,
                             "rst": (rst.seq, rst.ack, rst.flags) if rst else None}
    ack = rst.ack if rst else "?"
    en = f"""
Nothing listens on port 81. RFC 9293 (3.10.7.1) answers a segment that belongs
to no connection with RST. A SYN carries no ACK, so the RST takes SEQ=0 and
acknowledges SEG.SEQ + SEG.LEN = {ack} (the SYN counts one) -- that is how
the client knows the RST answers its SYN and not some forged packet. connect()
fails with {_errname(err)} ("Connection refused"). A port scanner reads exactly
this: RST means closed, SYN,ACK means open, silence means filtered (syn-scan).
"""
    zh = f"""
笔记的问题5："RST 是什么，为什么会出现"——第一种情况：向一个未被监听的端口发送数据。
81 端口没有进程监听。RFC 9293（3.10.7.1）规定：不属于任何连接的报文段用 RST 回应。
SYN 不带 ACK，所以 RST 的序号为 0，确认号为 SEG.SEQ + SEG.LEN = {ack}（SYN 占一个序号），
客户端据此知道这个 RST 回应的是自己的 SYN，而不是伪造的报文。connect() 失败，
错误为 {_errname(err)}（"Connection refused"，连接被拒绝）。端口扫描正是利用这一点：
回 RST 表示端口关闭，回 SYN,ACK 表示端口开放，没有回应表示被过滤（见 syn-scan）。
"""
    return Outcome("rst-closed-port", "RST: a SYN to a closed port", L.ladder(), en, [
        Tunable("listen()", "nobody on port 81", "a listener turns this RST into SYN,ACK",
                "有进程 listen() 时，回的就是 SYN,ACK 而不是 RST")],
        facts, net, title_zh="RST：SYN 发往未监听的端口", explanation_zh=zh)


def _accepting_server(L: Lab, fds: dict[str, int]) -> int:
    s = L.s
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd)

    def server(now: int) -> None:
        if "s" not in fds:
            try:
                fds["s"], _ = s.accept(lfd)
            except BlockingIOError:
                return
    L.server.apps.append(server)
    return lfd


def rst_unread_data(seed: int = 1) -> Outcome:
    """close() with unread data in the receive buffer sends RST, not FIN."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, s, net = L.c, L.s, L.net
    fds: dict[str, int] = {}
    _accepting_server(L, fds)
    cfd = c.socket()
    got: dict[str, Any] = {}

    def client(now: int) -> None:
        if "sent" not in got and c.state(cfd) is State.ESTABLISHED:
            got["sent"] = c.send(cfd, b"GET / HTTP/1.0\r\n\r\n", now=now)

    def server_close(now: int) -> None:     # the server closes without reading the request
        got["unread"] = s.connection(fds["s"]).recv_q  # type: ignore[union-attr]
        s.close(fds["s"], now=now)

    L.client.apps.append(client)
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    net.call_at(100 * MS, server_close)
    net.call_at(200 * MS, lambda now: got.__setitem__("client_errno",
                                                      _recv_error(c, cfd, now)))
    net.run(until=2 * SECOND)
    rst = find(L.segments("right"), RST)
    f: dict[str, Any] = {"unread_bytes": got["unread"],
                         "server_rst": (rst.seq, rst.flags) if rst else None,
                         "server_fins": sum(1 for g in L.segments("right") if g.flags & 1),
                         "client_errno": got["client_errno"],
                         "time_wait": first_change(s, new="TIME_WAIT")}
    en = f"""
The client sends a request of {got['sent']} bytes; the server accepts, but closes the socket at
100 ms without reading it: {got['unread']} bytes are still in its receive buffer. RFC 2525
(2.17) and Linux's tcp_close() say: data the application will never read means
the peer's data was lost, so tell it -- send RST instead of FIN. The ladder shows
no FIN from the server, only RST,ACK seq=SND.NXT; the connection skips the
four-way close and TIME_WAIT. The client's next recv() fails with
{_errname(got['client_errno'])} ("Connection reset by peer"). Read the request before closing,
or shutdown(SHUT_WR) and drain, to close gracefully.
"""
    zh = f"""
笔记的问题5，第三种情况：存在一些数据未处理（接收缓冲区），请求关闭连接时，会发送 RST 强制关闭。
客户端发送 {got['sent']} 字节的请求；服务端 accept() 了，却在 100 ms 时不读就 close()：
接收缓冲区里还有 {got['unread']} 字节。RFC 2525（2.17）和 Linux 的 tcp_close() 的做法是：
应用再也不会读这些数据，等于对方的数据丢了，要告诉对方——发 RST 而不是 FIN。
梯形图里服务端没有 FIN，只有 RST,ACK（seq=SND.NXT）；连接不经过四次挥手，也没有 TIME_WAIT。
客户端下一次 recv() 失败：{_errname(got['client_errno'])}（"Connection reset by peer"，连接被对方重置）。
要正常关闭，应先读完数据，或先 shutdown(SHUT_WR) 再读到 EOF。
"""
    return Outcome("rst-unread-data", "RST: close() with unread data", L.ladder(), en, [
        Tunable("recv() before close()", "not called",
                "reading everything first makes close() send FIN",
                "close() 之前读完数据，就会发 FIN 而不是 RST")],
        f, net, title_zh="RST：接收缓冲区还有数据时 close()", explanation_zh=zh)


def rst_linger_zero(seed: int = 1) -> Outcome:
    """SO_LINGER on with 0 s: close() aborts with RST and skips TIME_WAIT."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, s, net = L.c, L.s, L.net
    fds: dict[str, int] = {}
    _accepting_server(L, fds)
    cfd = c.socket()
    linger = struct.pack("ii", 1, 0)
    c.setsockopt(cfd, _socket.SOL_SOCKET, _socket.SO_LINGER, linger)
    got: dict[str, Any] = {}
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    net.call_at(100 * MS, lambda now: c.close(cfd, now=now))
    net.call_at(200 * MS, lambda now: got.__setitem__("server_errno",
                                                      _recv_error(s, fds["s"], now)))
    net.run(until=2 * SECOND)
    rst = find(L.segments("left"), RST)
    f: dict[str, Any] = {"client_rst": (rst.seq, rst.flags) if rst else None,
                         "client_fins": sum(1 for g in L.segments("left") if g.flags & 1),
                         "client_states": [str(ch.new) for _k, ch in c.changes],
                         "server_errno": got["server_errno"],
                         "client_time_wait": first_change(c, new="TIME_WAIT")}
    en = f"""
The client sets SO_LINGER to {{l_onoff=1, l_linger=0}} and calls close() at 100 ms.
This is the abortive close: instead of a FIN it sends RST (RST,ACK seq=SND.NXT),
drops whatever was unsent, and the connection goes straight to CLOSED
({' -> '.join(f['client_states'])}): no FIN_WAIT, no TIME_WAIT, the port is free at once.
The server learns of it when its recv() fails with {_errname(got['server_errno'])}.
Some servers use it to avoid TIME_WAIT; the price is that the peer sees an error
and any data in flight is lost -- which is why TIME_WAIT exists (lost-last-ack).
"""
    zh = f"""
笔记的问题5 列出了 RST 的几种来源；这里是应用主动的一种（笔记中"对方已经调用 close 关闭连接"
说的是另一种：向已经 close() 的一端继续发数据，Linux 也回 RST）。客户端设置 SO_LINGER 为
{{l_onoff=1, l_linger=0}}，在 100 ms 调用 close()。这是"异常关闭"：不发 FIN，而发
RST（RST,ACK，seq=SND.NXT），丢弃未发送的数据，连接直接进入 CLOSED
（{' -> '.join(f['client_states'])}）：没有 FIN_WAIT，也没有 TIME_WAIT，端口立即可用。
服务端在 recv() 失败时得知：{_errname(got['server_errno'])}。
有的服务器用这个办法避免 TIME_WAIT；代价是对方看到错误，途中的数据全部丢失——
这正是 TIME_WAIT 存在的原因（见 lost-last-ack）。
"""
    return Outcome("rst-linger-zero", "RST: SO_LINGER 0, the abortive close", L.ladder(), en, [
        Tunable("SO_LINGER", "{l_onoff=1, l_linger=0}",
                "off (the default) makes close() send FIN",
                "关闭（默认）时 close() 发 FIN，正常四次挥手")],
        f, net, title_zh="RST：SO_LINGER 为 0 的异常关闭", explanation_zh=zh)


def rst_timeout(seed: int = 1) -> Outcome:
    """Retransmissions run out (tcp_retries2): the connection dies, its peer later gets RST."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, s, net = L.c, L.s, L.net
    fds: dict[str, int] = {}
    _accepting_server(L, fds)
    cfd = c.socket()
    got: dict[str, Any] = {}
    down = LinkParams(delay_us=10 * MS, loss=1.0)
    up = LinkParams(delay_us=10 * MS)

    def cut(now: int) -> None:
        net.set_link(CLIENT, SERVER, down)
        net.set_link(SERVER, CLIENT, down)

    def heal(now: int) -> None:
        got["client_errno"] = _recv_error(c, cfd, now)
        net.set_link(CLIENT, SERVER, up)
        net.set_link(SERVER, CLIENT, up)
        s.send(fds["s"], b"are you there?", now=now)

    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    net.call_at(100 * MS, cut)
    net.call_at(200 * MS, lambda now: c.send(cfd, b"request", now=now))
    heal_at = 1000 * SECOND
    net.call_at(heal_at, heal)
    net.call_at(heal_at + 100 * MS, lambda now: got.__setitem__(
        "server_errno", _recv_error(s, fds["s"], now)))
    net.run(until=heal_at + 1 * SECOND)
    sent = [g for g in L.segments("left") if g.payload]
    dead = first_change(c, new="CLOSED")
    rst = find(L.segments("left"), RST)
    probes = c.cfg.mib["TcpExtTCPLossProbes"]
    f: dict[str, Any] = {"transmissions": len(sent), "retransmissions": len(sent) - 1,
                         "loss_probes": probes, "rto_retransmissions": len(sent) - 1 - probes,
                         "gave_up_s": (dead - 200 * MS) / SECOND if dead else None,
                         "client_errno": got["client_errno"],
                         "client_rst": (rst.seq, rst.ack, rst.flags) if rst else None,
                         "server_errno": got["server_errno"]}
    r2 = c.cfg.int("net.ipv4.tcp_retries2")
    g = f["gave_up_s"] or 0
    budget = retries_timeout_us(r2) / SECOND     # Linux tcp_model_timeout()
    f["budget_s"] = budget
    en = f"""
The link dies at 100 ms. At 200 ms the client sends a request; it is never
ACKed. First the tail loss probe (RFC 8985 TLP, net.ipv4.tcp_early_retrans) sends it
again {f['loss_probes']} time, in case only the tail of the data was lost; then the RTO timer
retransmits it, doubling the timeout each time (RFC 6298 5.5), {f['rto_retransmissions']} times:
net.ipv4.tcp_retries2 = {r2}. Linux turns that count into a time
budget ({budget:g} s for {r2} with a 200 ms minimum RTO), checked when a timeout fires:
the first to fire after it, {g:.1f} s after the request, ends it. The client gives up: the
connection is CLOSED and recv() fails with {_errname(got['client_errno'])}. No RST is sent -- there
is nobody to hear it. The server never noticed: it had nothing to send, so it
stays ESTABLISHED (a half-open connection). When the link comes back at
{heal_at // SECOND} s and the server writes, the client's TCP has no such connection and
answers RST (seq = the ACK it received); the server's recv() fails with
{_errname(got['server_errno'])}. Keepalive (see keepalive) finds such peers without waiting for data.
"""
    zh = f"""
笔记的问题5，第四种情况：某些请求发生了超时。
链路在 100 ms 断开。客户端在 200 ms 发出请求，始终收不到确认。先是尾部丢失探测（RFC 8985 TLP，
net.ipv4.tcp_early_retrans）再发一次（共 {f['loss_probes']} 次），以防只是数据末尾丢了；之后 RTO 计时器一次次重传，
每次超时时间翻倍（RFC 6298 5.5），共重传 {f['rto_retransmissions']} 次：net.ipv4.tcp_retries2 = {r2}。
Linux 把这个次数换算成时间（{r2} 次、最小 RTO 200 ms 时为 {budget:g} 秒），在超时触发时检查：
超出之后的第一次超时（请求发出后 {g:.1f} 秒）结束连接。客户端放弃：
连接进入 CLOSED，recv() 失败：{_errname(got['client_errno'])}。此时不发 RST——没人能收到。
服务端毫不知情：它没有数据要发，一直处于 ESTABLISHED（半开连接）。
{heal_at // SECOND} 秒时链路恢复，服务端发数据，客户端 TCP 已没有这个连接，回以 RST
（序号取收到的 ack 值）；服务端的 recv() 失败：{_errname(got['server_errno'])}。
保活计时器（见 keepalive）可以在没有数据时发现这种对端。
"""
    return Outcome("rst-timeout", "RST after a timeout: tcp_retries2 runs out", L.ladder(), en, [
        knob(c.cfg, "net.ipv4.tcp_retries2",
             "retransmissions of data before the connection is dropped",
             "数据重传多少次后放弃连接"),
        knob(c.cfg, "net.ipv4.tcp_retries1",
             "retransmissions before the route is suspected",
             "重传多少次后开始怀疑路由"),
        Tunable("TCP_USER_TIMEOUT", "not set",
                "per socket: a time limit instead of a count (not implemented in synack)",
                "按套接字设置超时时间代替次数（synack 尚未实现）")],
        f, net, title_zh="超时后的 RST：tcp_retries2 用尽", explanation_zh=zh)
