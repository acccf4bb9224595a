"""TCP Fast Open (RFC 7413): the request rides in the SYN, one round trip saved."""

from __future__ import annotations

import errno
import socket
from typing import Any

from synack.config import Sysctl
from synack.demo.scenarios.base import SERVER, Outcome, knob, lab
from synack.wire.tcp import ACK, SYN

TCP_FASTOPEN = 23
REQUEST = b"GET / HTTP/1.0\r\n\r\n"
RESPONSE = b"HTTP/1.0 200 OK\r\n\r\nhello"
SECOND_AT_US = 200_000


def fast_open(seed: int = 1) -> Outcome:
    """TCP Fast Open: a cookie first, then the request in the SYN, one round trip saved."""
    # Linux's defaults are client-only Fast Open (net.ipv4.tcp_fastopen = 1); the server
    # turns its side on (0x2) and gives its listener a Fast Open queue (TCP_FASTOPEN).
    L = lab(seed, server_cfg=Sysctl(net__ipv4__tcp_fastopen=3))
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd)
    s.setsockopt(lfd, socket.IPPROTO_TCP, TCP_FASTOPEN, 16)
    served: dict[int, bool] = {}

    def server(now: int) -> None:
        while True:
            try:
                fd, _ = s.accept(lfd)
            except BlockingIOError:
                break
            served[fd] = False
        for fd, done in list(served.items()):
            try:
                data = s.recv(fd, 4096, now=now)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data and not done:
                s.send(fd, RESPONSE, now=now)     # even before the handshake's last ACK
                served[fd] = True
            elif not data:
                s.close(fd, now=now)
                del served[fd]

    runs: list[dict[str, Any]] = []

    def start(now: int) -> None:
        fd = c.socket()
        run: dict[str, Any] = {"fd": fd, "start": now, "got": b""}
        try:
            run["in_syn"] = c.sendto_fastopen(fd, REQUEST, (SERVER, 80), now=now)
        except BlockingIOError as exc:
            assert exc.errno == errno.EINPROGRESS
            run["in_syn"] = 0                     # no cookie yet: the SYN asks for one
        runs.append(run)

    def client(now: int) -> None:
        for run in runs:
            fd = run["fd"]
            if "closed" in run:
                continue
            if run["in_syn"] == 0 and "sent" not in run and c.writable(fd):
                run["sent"] = c.send(fd, REQUEST, now=now)
            try:
                data = c.recv(fd, 4096, now=now)
            except BlockingIOError:
                continue
            run["got"] += data
            if data and "answer_us" not in run:
                run["answer_us"] = now - run["start"]
            if run["got"] == RESPONSE or not data:
                c.close(fd, now=now)
                run["closed"] = now

    L.client.apps.append(client)
    L.server.apps.append(server)
    net.call_at(0, start)
    net.call_at(SECOND_AT_US, start)
    net.run(until=2_000_000)
    segs = L.segments("left")
    syns = [g for g in segs if g.flags & SYN]
    synacks = [g for g in L.segments("right") if g.flags & SYN and g.flags & ACK]
    first, second = runs
    cookie = next(data for kind, data in synacks[0].unknown_options if kind == 34)
    rtt_ms = 2 * 10
    f: dict[str, Any] = {
        "answers": [first["got"], second["got"]],
        "answer_us": [first["answer_us"], second["answer_us"]],
        "syn_data": [len(g.payload) for g in syns],
        "cookie": cookie.hex(),
        "syn_options": [g.unknown_options for g in syns],
        "synack_acks": [g.ack - g_syn.seq - 1 for g, g_syn in zip(synacks, syns, strict=True)],
        "fastopen_active": c.cfg.mib["TcpExtTCPFastOpenActive"],
        "fastopen_passive": s.cfg.mib["TcpExtTCPFastOpenPassive"],
        "cookie_requests": s.cfg.mib["TcpExtTCPFastOpenCookieReqd"],
    }
    a1, a2 = (t // 1000 for t in f["answer_us"])
    n = f["syn_data"][1]
    en = f"""
Connection 1 (at 0 ms) is a first visit. The client calls sendto(MSG_FASTOPEN), but it
has no cookie for this server, so its SYN carries an empty Fast Open option instead
of data: a cookie request (sendto() says EINPROGRESS). The server answers in its
SYN,ACK with the cookie {f['cookie']} (8 bytes: Linux's SipHash of both addresses under
the server's secret key, net.ipv4.tcp_fastopen_key), which the client keeps for this
server. The request then goes after the handshake, as always: the answer arrives
{a1} ms after the call, two round trips of {rtt_ms} ms.
Connection 2 (at {SECOND_AT_US // 1000} ms) has the cookie: its SYN carries it and the
whole request ({n} bytes, seq 1 to {n}). The server checks the cookie, creates the
connection at once, gives the request to accept()/recv() and acknowledges it in its
SYN,ACK (ack = ISN + 1 + {n}); it answers before the handshake's last ACK, while it is
still in SYN_RECEIVED. The answer arrives {a2} ms after the call: one round trip saved.
A server that does not know the cookie just acknowledges the SYN alone and the client
sends the data again after the handshake -- Fast Open can cost nothing but its saving.
Data in a SYN may arrive twice (a duplicated or retransmitted SYN), so RFC 7413 is
for requests that are safe to repeat.
"""
    zh = f"""
第 1 个连接（0 ms）是第一次访问。客户端调用 sendto(MSG_FASTOPEN)，但还没有这个服务器的
cookie，所以 SYN 里不带数据，只带一个空的 Fast Open 选项：请求 cookie（sendto() 返回
EINPROGRESS）。服务端在 SYN,ACK 里给出 cookie {f['cookie']}（8 字节：Linux 用服务端的密钥
net.ipv4.tcp_fastopen_key 对双方地址做 SipHash），客户端把它记下。请求照常在三次握手之后
发送：调用后 {a1} ms 收到回答，即两个 {rtt_ms} ms 的往返。
第 2 个连接（{SECOND_AT_US // 1000} ms）已有 cookie：SYN 带着 cookie 和整个请求（{n} 字节，
序号 1 到 {n}）。服务端验证 cookie 后立即创建连接，accept()/recv() 马上拿到请求，
并在 SYN,ACK 中确认这些数据（ack = ISN + 1 + {n}）；它在第三次握手的 ACK 到达之前、
仍处于 SYN_RECEIVED 时就发出回答。调用后 {a2} ms 收到回答：省了一个往返时间。
服务端如果不认这个 cookie，只确认 SYN 本身，客户端在握手后重发数据——最坏情况只是没有节省。
SYN 里的数据可能到达两次（SYN 重复或重传），所以 RFC 7413 只适合可以重复执行的请求。
"""
    return Outcome("fast-open", "TCP Fast Open: data in the SYN", L.ladder(), en, [
        knob(c.cfg, "net.ipv4.tcp_fastopen",
             "the client's: 0x1 client, 0x2 server, 0x4 SYN data without a cookie, "
             "0x200 no cookie needed, 0x400 every listener",
             "客户端的值：0x1 客户端，0x2 服务端，0x4 无 cookie 也发数据，0x200 服务端不要求 "
             "cookie，0x400 所有监听套接字"),
        knob(s.cfg, "net.ipv4.tcp_fastopen", "the server's: client and server on",
             "服务端的值：客户端和服务端都开启"),
        knob(s.cfg, "net.ipv4.tcp_fastopen_key", "the server's cookie key (drawn at random)",
             "服务端生成 cookie 的密钥（随机生成）"),
    ], f, net, title_zh="TCP Fast Open：SYN 携带数据", explanation_zh=zh)
