"""Ephemeral ports run out under many short connections; what tcp_tw_reuse changes."""

from __future__ import annotations

import errno
from typing import Any

from synack.config import Sysctl
from synack.demo.scenarios.base import (
    MS,
    SECOND,
    SERVER,
    Outcome,
    Tunable,
    drain,
    knob,
    lab,
    only_ports,
    ss_table,
    state_counts,
)
from synack.stack import TW_REUSE_DELAY_US
from synack.tcp.connection import TIME_WAIT_US
from synack.tcp.state import State

PORTS = (40000, 40003)     # a deliberately tiny net.ipv4.ip_local_port_range
ATTEMPTS = 6
EVERY_US = 300 * MS


def port_exhaustion(seed: int = 1, *, tw_reuse: int | None = None) -> Outcome:
    """Short connections closed by the client: TIME_WAIT holds every port, connect() fails."""
    cfg = Sysctl()
    cfg.set("net.ipv4.ip_local_port_range", PORTS)
    if tw_reuse is not None:
        cfg.set("net.ipv4.tcp_tw_reuse", tw_reuse)
    L = lab(seed, client_cfg=cfg)
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd)
    served: list[int] = []
    closed: set[int] = set()

    def server(now: int) -> None:     # a well-behaved server: answer, close on EOF
        while True:
            try:
                fd, _ = s.accept(lfd)
            except BlockingIOError:
                break
            served.append(fd)
        for fd in served:
            if fd in closed:
                continue
            data, eof = drain(s, fd, now)
            if data:
                s.send(fd, b"ok", now=now)
            if eof:
                closed.add(fd)
                s.close(fd, now=now)

    attempts: list[dict[str, Any]] = []
    snap: dict[str, Any] = {}

    def client(now: int) -> None:
        for a in attempts:
            fd = a.get("fd")
            if fd is None or a.get("done") or c.state(fd) is not State.ESTABLISHED:
                continue
            if not a.get("asked"):
                a["asked"] = c.send(fd, b"GET", now=now)
            data, _eof = drain(c, fd, now)
            if data:
                a["done"] = True
                c.close(fd, now=now)          # the client closes first: TIME_WAIT is its

    def attempt(now: int) -> None:
        fd = c.socket()
        a: dict[str, Any] = {"t_us": now}
        attempts.append(a)
        old = {k[1]: tw.snd_nxt for k, tw in c.timewait.items()}
        try:
            code = c.connect_ex(fd, (SERVER, 80), now=now)
        except OSError as exc:
            code = exc.errno or 0
        if code == errno.EINPROGRESS:
            a["fd"] = fd
            a["port"] = c.getsockname(fd)[1]
            conn = c.connection(fd)
            a["reused"] = a["port"] in old
            if a["reused"] and conn is not None:
                a["iss_minus_old_snd_nxt"] = (conn.snd.iss - old[a["port"]]) & 0xFFFFFFFF
        else:
            a["errno"] = code
            c.close(fd, now=now)
            if "table" not in snap:
                snap["table"] = ss_table(c, title=f"client: ss -tan at {now / MS:.0f} ms, "
                                                  f"when connect() failed")
                snap["time_wait"] = state_counts(c).get("TIME_WAIT", 0)

    L.client.apps.append(client)
    L.server.apps.append(server)
    for i in range(ATTEMPTS):
        net.call_at(i * EVERY_US, attempt)
    net.run(until=ATTEMPTS * EVERY_US + 1 * SECOND)
    ok = [a for a in attempts if "port" in a]
    failed = [a for a in attempts if "errno" in a]
    reused = [a for a in ok if a["reused"]]
    f: dict[str, Any] = {
        "ports": PORTS[1] - PORTS[0] + 1,
        "connected": len(ok), "failed": len(failed),
        "errnos": sorted({errno.errorcode.get(a["errno"], str(a["errno"])) for a in failed}),
        "reused_ports": [a["port"] for a in reused],
        "iss_offsets": [a.get("iss_minus_old_snd_nxt") for a in reused],
        "time_wait_at_failure": snap.get("time_wait"),
        "completed": sum(1 for a in attempts if a.get("done")),
        "tw_reuse": cfg.int("net.ipv4.tcp_tw_reuse"),
    }
    show = {reused[0]["port"]} if reused else {ok[0]["port"]}
    steps = only_ports(L.steps(), c, s, show)
    lines = [f"connect() every {EVERY_US // MS} ms, {f['ports']} ephemeral ports:"]
    for i, a in enumerate(attempts, 1):
        if "port" in a:
            how = " (took over a TIME_WAIT: tcp_tw_reuse)" if a["reused"] else ""
            lines.append(f"  #{i} at {a['t_us'] / MS:6.0f} ms: port {a['port']}{how}")
        else:
            lines.append(f"  #{i} at {a['t_us'] / MS:6.0f} ms: "
                         f"{errno.errorcode.get(a['errno'], a['errno'])}")
    extra = lines + ([""] + snap["table"] if "table" in snap else [])
    tw_s = TIME_WAIT_US // SECOND
    if reused:
        name, title = "port-exhaustion-tw-reuse", "Port exhaustion, with net.ipv4.tcp_tw_reuse = 1"
        title_zh = "端口耗尽：开启 net.ipv4.tcp_tw_reuse = 1"
        en = f"""
The same client as in port-exhaustion ({f['ports']} ephemeral ports, a connection every
{EVERY_US // MS} ms, each closed by the client), now with net.ipv4.tcp_tw_reuse = 1.
When no port is free, connect() may take over a TIME_WAIT 4-tuple if the old
connection used timestamps and its TIME_WAIT is at least {TW_REUSE_DELAY_US // MS} ms old
(Linux's tcp_twsk_unique()). {f['connected']} of {ATTEMPTS} connects succeed; ports
{', '.join(map(str, f['reused_ports']))} were reused. The new connection's ISN is the old SND.NXT + 65537
(offsets {f['iss_offsets']}), so its sequence numbers lie beyond the old one's,
and the timestamps carried by every segment let PAWS (RFC 7323) discard any
stray segment of the old incarnation. The ladder shows both incarnations of
port {reused[0]['port']}. tcp_tw_reuse only helps the side that connects; it is not
tcp_tw_recycle (removed from Linux in 4.12, it broke clients behind NAT).
"""
        zh = f"""
与 port-exhaustion 相同的客户端（{f['ports']} 个临时端口，每 {EVERY_US // MS} ms 一个连接，
都由客户端主动关闭），这次开启 net.ipv4.tcp_tw_reuse = 1——笔记中"参数调优，比如开启
tcp_tw_reuse 选项支持 timewait 连接的重复使用"。
没有空闲端口时，如果旧连接使用了时间戳、且它的 TIME_WAIT 已持续至少 {TW_REUSE_DELAY_US // MS} ms，
connect() 可以接管这个 TIME_WAIT 四元组（Linux 的 tcp_twsk_unique()）。{ATTEMPTS} 次 connect()
成功 {f['connected']} 次；复用的端口：{', '.join(map(str, f['reused_ports']))}。新连接的 ISN = 旧连接的 SND.NXT + 65537
（偏移 {f['iss_offsets']}），序号在旧连接之后；每个报文段都带时间戳，PAWS（RFC 7323）会丢弃
旧连接残留的报文。梯形图画出了端口 {reused[0]['port']} 的前后两个连接。
tcp_tw_reuse 只对发起连接的一方有效；它不是 tcp_tw_recycle（Linux 4.12 已删除，会让 NAT 后的
客户端连不上）。
"""
    else:
        name, title = "port-exhaustion", "Ephemeral port exhaustion: TIME_WAIT holds the ports"
        title_zh = "临时端口耗尽：TIME_WAIT 占住了端口"
        en = f"""
The seed's question 4, "what problems does TIME_WAIT bring". The client has a
tiny net.ipv4.ip_local_port_range ({PORTS[0]}-{PORTS[1]}, {f['ports']} ports) and opens a short
connection every {EVERY_US // MS} ms to the same server: request, response, close(). The
client closes first, so each of its connections ends in TIME_WAIT for {tw_s} s
(2*MSL), and a 4-tuple in TIME_WAIT cannot be used by a new connect().
After {f['connected']} connections every port is held ({f['time_wait_at_failure']} in TIME_WAIT at the
first failure), and the next {f['failed']} connect()s fail with {', '.join(f['errnos'])}
("Cannot assign requested address"). net.ipv4.tcp_tw_reuse is {f['tw_reuse']} here; Linux's
default 2 allows reuse for loopback only, and this peer is not on loopback (see
port-exhaustion-tw-reuse for 1). Remedies: reuse connections (keep-alive, a pool),
a wider port range, let the server close first, or tcp_tw_reuse = 1.
The seed says a TIME_WAIT holds a handle and some memory and can end in "too many
open files". On Linux it holds no file descriptor: close() gave that back, and
what stays is a small kernel record of the 4-tuple. What runs out is the ports
for this server,
hence EADDRNOTAVAIL; "too many open files" is CLOSE_WAIT's symptom, where the
application still holds the descriptor (close-wait-leak).
"""
        zh = f"""
笔记的问题4："timewait 会带来什么问题"。客户端的 net.ipv4.ip_local_port_range 很小
（{PORTS[0]}-{PORTS[1]}，{f['ports']} 个端口），每 {EVERY_US // MS} ms 向同一个服务器发起一个短连接：
请求、响应、close()。客户端是主动关闭方，每个连接都以 TIME_WAIT 结束并持续 {tw_s} 秒（2MSL），
TIME_WAIT 占用的四元组不能被新的 connect() 使用。
{f['connected']} 个连接之后所有端口都被占住（第一次失败时有 {f['time_wait_at_failure']} 个 TIME_WAIT），
接下来的 {f['failed']} 次 connect() 失败：{', '.join(f['errnos'])}（"Cannot assign requested address"）。
这里 net.ipv4.tcp_tw_reuse = {f['tw_reuse']}；Linux 默认值 2 只对回环地址允许复用，而对端不在回环上
（开启为 1 的效果见 port-exhaustion-tw-reuse）。解决办法正如笔记所说：重用连接（HTTP
keep-alive、连接池）、参数调优（扩大端口范围、tcp_tw_reuse = 1），或让服务端先关闭。
笔记说 TIME_WAIT 的连接占用一个句柄和少量内存，可能导致 "too many open files"。在 Linux 上
TIME_WAIT 不占文件描述符：close() 已经归还了它，留下的只是内核里记录这个四元组的一小块内存。
耗尽的是端口，所以报 EADDRNOTAVAIL；"too many open files" 是 CLOSE_WAIT 的症状——
应用还握着描述符（见 close-wait-leak）。
"""
    return Outcome(name, title, L.ladder(steps), en, [
        knob(cfg, "net.ipv4.ip_local_port_range", "the ephemeral ports connect() may use",
             "connect() 可用的临时端口范围"),
        knob(cfg, "net.ipv4.tcp_tw_reuse",
             "0 off, 1 reuse TIME_WAIT for connect() (needs timestamps), 2 loopback only",
             "0 关闭，1 允许 connect() 复用 TIME_WAIT（需要时间戳），2 仅回环地址"),
        knob(cfg, "net.ipv4.tcp_timestamps", "tcp_tw_reuse relies on them",
             "tcp_tw_reuse 依赖时间戳"),
        knob(cfg, "net.ipv4.tcp_max_tw_buckets", "size of the TIME_WAIT table",
             "TIME_WAIT 连接数的上限"),
        Tunable("TIME_WAIT", f"{tw_s} s", "2*MSL, TCP_TIMEWAIT_LEN; not a sysctl",
                "2MSL（内核常量 TCP_TIMEWAIT_LEN）")],
        f, net, title_zh=title_zh, explanation_zh=zh, extra=extra)


def port_exhaustion_tw_reuse(seed: int = 1) -> Outcome:
    """The same with net.ipv4.tcp_tw_reuse = 1: connect() takes over old TIME_WAITs."""
    return port_exhaustion(seed, tw_reuse=1)
