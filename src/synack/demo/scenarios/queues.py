"""A listener's two queues: the SYN queue (半连接队列) and the accept queue (全连接队列)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from synack.config import Sysctl
from synack.demo.driver import AppHost, ladder_steps
from synack.demo.scenarios.base import (
    MS,
    SECOND,
    SERVER,
    Outcome,
    RawHost,
    Tunable,
    first_change,
    knob,
    lab,
    ss_table,
    state_counts,
)
from synack.sim import LinkParams, Network
from synack.stack import Stack
from synack.tcp.isn import FixedIsn
from synack.trace.ladder import SegmentStep, render
from synack.wire.tcp import ACK, RST, SYN, TcpSegment


def _connector(stack: Stack, fd: int, addr: tuple[str, int]) -> Callable[[int], object]:
    return lambda now: stack.connect_ex(fd, addr, now=now)


def _queue_tunables(cfg: Sysctl, backlog: int) -> list[Tunable]:
    return [
        knob(cfg, "net.core.somaxconn", "caps listen()'s backlog", "listen() backlog 的上限"),
        Tunable("listen(fd, backlog)", str(backlog),
                "the accept queue holds min(backlog, somaxconn) + 1",
                "全连接队列长度为 min(backlog, somaxconn) + 1"),
        knob(cfg, "net.ipv4.tcp_max_syn_backlog", "bounds the SYN queue of half-open connections",
             "半连接队列的上限"),
        knob(cfg, "net.ipv4.tcp_abort_on_overflow",
             "1: RST instead of dropping the final ACK when the accept queue is full",
             "1：全连接队列满时回 RST，而不是丢弃第三次握手的 ACK"),
    ]


def accept_overflow(seed: int = 1, *, abort_on_overflow: int = 0) -> Outcome:
    """A listener that never accepts: the accept queue fills, then SYNs and ACKs are dropped."""
    net = Network(seed)
    cfg = Sysctl()
    cfg.set("net.ipv4.tcp_abort_on_overflow", abort_on_overflow)
    s = Stack(SERVER, seed=seed + 1, cfg=cfg, name="server",
              isn=FixedIsn(range(300, 10**6, 1000)))
    net.add_host(SERVER, AppHost(s))
    clients = []
    for i in range(4):
        addr = f"192.0.2.{11 + i}"
        cs = Stack(addr, seed=seed + 10 + i, isn=FixedIsn([100 * (i + 1)]), name=f"c{i + 1}")
        net.add_host(addr, AppHost(cs))
        net.add_link(addr, SERVER, LinkParams(delay_us=10 * MS))
        clients.append(cs)
    backlog = 2
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd, backlog)
    fds = [cs.socket() for cs in clients]
    for i, (cs, fd) in enumerate(zip(clients, fds)):
        net.call_at(0 if i < 2 else 100 * MS, _connector(cs, fd, (SERVER, 80)))
    snapshot: dict[str, Any] = {}

    def look(now: int) -> None:
        lst = s.listeners[(SERVER, 80)]
        snapshot["accept_queue"] = len(lst.accept_queue)
        snapshot["client_states"] = ", ".join(str(cs.state(fd)) for cs, fd in zip(clients, fds))
        snapshot["overflows"] = lst.listen_overflows

    net.call_at(1500 * MS, look)
    accepted: list[int] = []

    def accept_all(now: int) -> None:
        while True:
            try:
                fd, _ = s.accept(lfd)
            except BlockingIOError:
                break
            accepted.append(fd)
    net.call_at(2500 * MS, accept_all)
    net.call_at(5 * SECOND, accept_all)
    net.run(until=6 * SECOND)
    last = clients[3]
    steps = ladder_steps(net, last, s)
    lines = render(steps, left=f"c4 {last.addr}", right=f"server {SERVER}")
    resets = sum(1 for st in steps if isinstance(st, SegmentStep) and st.src == "right"
                 and st.seg.flags & RST)
    c4_acks = [st.t_us for st in steps if isinstance(st, SegmentStep) and st.src == "left"
               and st.seg.flags == ACK and not st.seg.payload]
    got_in = next((ch.now for key, ch in s.changes if key[2] == last.addr
                   and str(ch.new) == "ESTABLISHED"), None)
    facts: dict[str, Any] = {**snapshot, "accepted": len(accepted), "resets_to_c4": resets,
                             "final_c4": str(last.state(fds[3])), "c4_acks_us": c4_acks,
                             "c4_in_us": got_in}
    ok = max((t for t in c4_acks if got_in is not None and t < got_in), default=None)
    dropped = [t for t in c4_acks if ok is None or t < ok]
    facts["c4_acks_dropped_us"] = dropped
    ms = ", ".join(f"{t / MS:.0f}" for t in dropped)
    if abort_on_overflow:
        how = ("With net.ipv4.tcp_abort_on_overflow = 1 the server answers that ACK with RST\n"
               "instead, and c4's connection is reset at once.")
        how_zh = "开启 net.ipv4.tcp_abort_on_overflow = 1 后，服务端改为用 RST 回应这个 ACK，c4 的连接立即被重置。"
    else:
        arrived = (got_in or 0) / MS
        how = ("By default (net.ipv4.tcp_abort_on_overflow = 0) the server drops that ACK and\n"
               "keeps c4 in its SYN queue; c4 believes it is connected. Each SYN,ACK the server\n"
               f"retransmits draws another ACK: c4's ACKs sent at {ms} ms are dropped\n"
               f"({snapshot.get('overflows')} listen overflows at 1.5 s); after accept() made room at 2.5 s,"
               f" the one\nsent at {(ok or 0) / MS:.0f} ms gets in (the server's side of c4 is ESTABLISHED"
               f" at {arrived:.0f} ms).")
        how_zh = ("默认（net.ipv4.tcp_abort_on_overflow = 0）服务端丢弃这个 ACK，c4 仍留在半连接队列里；\n"
                  "c4 却以为自己已经连上了。服务端每次重传 SYN,ACK 都引出一个新的 ACK：c4 在\n"
                  f"{ms} ms 发出的 ACK 都被丢弃（1.5 秒时计了 {snapshot.get('overflows')} 次 listen overflow）；"
                  f"2.5 秒 accept()\n腾出位置后，{(ok or 0) / MS:.0f} ms 发出的 ACK 才成功"
                  f"（服务端这一侧的 c4 连接在 {arrived:.0f} ms 进入 ESTABLISHED）。")
    en = f"""
The server listens with backlog {backlog} and its application does not call accept()
until 2.5 s. Linux lets the accept queue hold backlog + 1 = {backlog + 1} connections.
c1 and c2 connect at 0 ms, c3 and c4 at 100 ms; c3's handshake completes and
fills the queue, so c4's final ACK finds it full. At 1.5 s the accept queue
holds {snapshot.get('accept_queue')} connections and the four clients are
{snapshot.get('client_states')}.
{how}
The ladder shows c4's connection only. The seed's net.core.somaxconn (128) caps this
queue; 128 was Linux's default before 5.4, now it is {cfg.int("net.core.somaxconn")}.
"""
    zh = f"""
全连接队列（accept 队列）溢出。服务端 listen() 的 backlog 为 {backlog}，应用直到 2.5 秒才调用
accept()。Linux 的全连接队列最多容纳 backlog + 1 = {backlog + 1} 个连接。
c1、c2 在 0 ms 连接，c3、c4 在 100 ms 连接；c3 完成握手后队列满了，c4 的第三次握手 ACK
到达时队列已满。1.5 秒时全连接队列里有 {snapshot.get('accept_queue')} 个连接，
四个客户端的状态是 {snapshot.get('client_states')}。
{how_zh}
梯形图只画了 c4 的连接。笔记中的 somaxconn 就是这个队列长度的上限；笔记写的 128 是 Linux 5.4
之前的默认值，现在是 {cfg.int("net.core.somaxconn")}。
"""
    return Outcome("accept-overflow", "Accept queue overflow", lines, en,
                   _queue_tunables(cfg, backlog), facts, net,
                   title_zh="全连接队列溢出", explanation_zh=zh)


def accept_overflow_abort(seed: int = 1) -> Outcome:
    """The same with net.ipv4.tcp_abort_on_overflow = 1: RST instead of a dropped ACK."""
    out = accept_overflow(seed, abort_on_overflow=1)
    out.name = "accept-overflow-abort"
    out.title = "Accept queue overflow with tcp_abort_on_overflow = 1"
    out.title_zh = "全连接队列溢出，tcp_abort_on_overflow = 1"
    return out


PRUNED_RETRIES = 2  # Linux reqsk_timer_handler(): old entries keep at least 2 SYN,ACK retries


def syn_flood(seed: int = 1, *, spoofed: int = 40, backlog: int = 8,
              syncookies: int = 1) -> Outcome:
    """Spoofed SYNs fill the SYN queue; SYN cookies let the real client in at once."""
    cfg = Sysctl()
    cfg.set("net.ipv4.tcp_syncookies", syncookies)
    L = lab(seed, client_isn=100, server_cfg=cfg)
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd, backlog)
    attacker = RawHost()
    net.add_host("198.51.100.66", attacker)
    net.add_link("198.51.100.66", SERVER, LinkParams(delay_us=5 * MS))

    def flood(now: int) -> None:
        for i in range(spoofed):     # forged sources that do not exist: no one answers
            attacker.send(f"203.0.113.{10 + i}", SERVER,
                          TcpSegment(src_port=50000 + i, dst_port=80, seq=1000 * i, flags=SYN,
                                     window=65535, mss=1460))

    net.call_at(0, flood)
    cfd = c.socket()
    net.call_at(100 * MS, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    snap: dict[str, Any] = {}

    def look(now: int) -> None:
        lst = s.listeners[(SERVER, 80)]
        snap["syn_queue"] = len(lst.syn_queue)
        snap["syn_drops"] = lst.syn_drops
        snap["cookies"] = s.stats["syncookies sent"]
        snap["table"] = ss_table(s, title=f"server: ss -tan at {now / SECOND:.0f} s "
                                          f"(first rows)")[:6] + ["  ..."]
        snap["counts"] = state_counts(s)
    net.call_at(1 * SECOND, look)
    net.run(until=130 * SECOND)
    lst = s.listeners[(SERVER, 80)]
    syns = [st for st in L.steps() if isinstance(st, SegmentStep) and st.src == "left"
            and st.seg.flags & SYN]
    est = first_change(c, new="ESTABLISHED")
    synack_to_spoofed = sum(1 for r in net.records if r.src == SERVER
                            and r.dst.startswith("203.0.113."))
    f: dict[str, Any] = {
        "syn_queue_1s": snap["syn_queue"], "syn_drops_1s": snap["syn_drops"],
        "syn_recv_1s": snap["counts"].get("SYN_RECEIVED", 0),
        "cookies_sent_1s": snap["cookies"],
        "cookies_received": s.stats["syncookies received"],
        "client_syns": len(syns), "client_established_us": est,
        "synacks_to_spoofed": synack_to_spoofed, "syn_drops_total": lst.syn_drops,
        "syncookies": syncookies,
    }
    est_s = (est or 0) / SECOND
    retries = s.cfg.int("net.ipv4.tcp_synack_retries")
    queued = f["syn_queue_1s"]
    f["client_syn_times_s"] = [st.t_us / SECOND for st in syns]
    retry_at = ", ".join(f"{(st.t_us - syns[0].t_us) / SECOND:g} s" for st in syns[1:])
    hold_s = sum(1 << i for i in range(retries + 1))        # 1 + 2 + ... + 32 = 63 s
    prune_s = sum(1 << i for i in range(PRUNED_RETRIES + 1))  # 1 + 2 + 4 = 7 s
    backlog_cfg = s.cfg.int("net.ipv4.tcp_max_syn_backlog")
    seed_en = (f"The seed counts the SYN queue with tcp_max_syn_backlog (1024 half-open\n"
               f"connections). On Linux today the listen() backlog bounds it first (backlog + 1 =\n"
               f"{backlog + 1} here); tcp_max_syn_backlog (sized from memory, at least 128; {backlog_cfg} in\n"
               f"this run) only adds a limit when SYN cookies are off: a SYN is dropped when less\n"
               f"than a quarter of it is left.")
    seed_zh = (f"笔记用 tcp_max_syn_backlog（1024 个半连接）来算半连接队列。在现在的 Linux 上，它首先受\n"
               f"listen() 的 backlog 限制（这里 backlog + 1 = {backlog + 1}）；tcp_max_syn_backlog（按内存大小设定，\n"
               f"至少 128，本次运行为 {backlog_cfg}）只在关闭 SYN cookie 时再加一道限制：剩余不到四分之一时丢弃 SYN。")
    en_head = f"""
A SYN flood: {spoofed} SYNs from forged addresses (203.0.113.x) that will never send the
third message. With listen backlog {backlog} the SYN queue holds {backlog + 1}: the first {queued}
take its places (SYN_RECEIVED), and the server retransmits their SYN,ACKs into the void:
up to tcp_synack_retries = {retries} times, but only 2 once the queue is over half full of
entries whose SYN,ACK already timed out (Linux reqsk_timer_handler() prunes old entries
so that young ones find room); {synack_to_spoofed} SYN,ACKs to forged addresses in all.
"""
    zh_head = f"""
SYN 泛洪攻击：{spoofed} 个来自伪造地址（203.0.113.x）的 SYN，永远不会有第三次握手。
listen() 的 backlog 为 {backlog}，半连接队列最多 {backlog + 1} 个：前 {queued} 个占满了队列（SYN_RECEIVED），
服务端向不存在的地址重传它们的 SYN,ACK：最多 tcp_synack_retries = {retries} 次；但当队列过半、
且其中的条目都已超时过一次时，每个旧条目只重传 2 次（Linux 的 reqsk_timer_handler() 修剪旧条目，
给新来的连接腾出位置）；发往伪造地址的 SYN,ACK 共 {synack_to_spoofed} 个。
"""
    if syncookies:
        en = en_head + f"""With net.ipv4.tcp_syncookies = {syncookies} (Linux's default) every SYN that finds the
SYN queue full is answered with a SYN cookie: the ISN of the SYN,ACK encodes the
request (a keyed hash of the addresses and ports, a minute counter, the MSS; the
timestamp carries window scale and SACK), and the server keeps no state. By 1 s it has
sent {f['cookies_sent_1s']} cookies and dropped {f['syn_drops_1s']} SYNs. The real client (192.0.2.1) connects at 100 ms:
its SYN gets a cookie too, its ACK returns the cookie + 1, the server checks it and
creates the connection straight into the accept queue. It is ESTABLISHED at
{est_s * 1000:.0f} ms, after {len(syns)} SYN. Compare syn-flood-no-cookies.
{seed_en}
"""
        zh = zh_head + f"""在 net.ipv4.tcp_syncookies = {syncookies}（Linux 默认值）时，遇到半连接队列已满的 SYN 都用
SYN cookie 回应：SYN,ACK 的 ISN 编码了这个请求（地址和端口的带密钥哈希、分钟计数器、MSS；
时间戳携带窗口扩大因子和 SACK），服务端不保存任何状态。到 1 秒时它发出了 {f['cookies_sent_1s']} 个 cookie，
丢弃了 {f['syn_drops_1s']} 个 SYN。真正的客户端（192.0.2.1）在 100 ms 发起连接：它的 SYN 同样得到 cookie，
它的 ACK 带回 cookie + 1，服务端校验后直接把连接放进全连接队列。客户端在 {est_s * 1000:.0f} ms
进入 ESTABLISHED，只发了 {len(syns)} 个 SYN。对比 syn-flood-no-cookies。
{seed_zh}
"""
    else:
        en = en_head + f"""With net.ipv4.tcp_syncookies = 0 the rest is dropped: at 1 s the queue has
{queued} half-open entries and {f['syn_drops_1s']} SYNs were dropped. The real client (192.0.2.1)
connects at 100 ms: its SYN is dropped too, and so are its retries ({retry_at} later,
the RTO doubling), until the forged entries are pruned after their second SYN,ACK
retry ({prune_s} s; without pruning they would hold the queue for {hold_s} s); it gets in
at {est_s:.1f} s, on SYN number {len(syns)}. The default, tcp_syncookies = 1, lets it in at once
(scenario syn-flood).
{seed_en}
"""
        zh = zh_head + f"""在 net.ipv4.tcp_syncookies = 0 时，其余的 SYN 都被丢弃：1 秒时队列里有 {queued} 个半连接，
已丢弃 {f['syn_drops_1s']} 个 SYN。真正的客户端（192.0.2.1）在 100 ms 发起连接：它的 SYN 也被丢弃，
之后的重传（{retry_at.replace(" s", " 秒")}之后，RTO 翻倍）同样被丢弃，直到伪造的半连接在第二次 SYN,ACK
重传后被修剪（{prune_s} 秒；若不修剪，它们会占住队列 {hold_s} 秒）；
它在 {est_s:.1f} 秒、第 {len(syns)} 个 SYN 才连上。默认的 tcp_syncookies = 1 能让它立即连上（见 syn-flood）。
{seed_zh}
"""
    return Outcome("syn-flood", "SYN flood: SYN cookies answer when the SYN queue is full",
                   L.ladder(), en, [
                       knob(s.cfg, "net.ipv4.tcp_max_syn_backlog",
                            "bound of the SYN queue (3/4 of it without cookies)",
                            "半连接队列的上限（不用 cookie 时为其 3/4）"),
                       Tunable("listen(fd, backlog)", str(backlog),
                               "also bounds the SYN queue: backlog + 1",
                               "同样限制半连接队列：backlog + 1"),
                       knob(s.cfg, "net.ipv4.tcp_synack_retries",
                            "how long each forged entry occupies the queue",
                            "每个伪造的半连接占用队列多久"),
                       knob(s.cfg, "net.ipv4.tcp_syncookies",
                            "1: stateless SYN cookies when the SYN queue is full; 2: always; "
                            "0: drop",
                            "1：半连接队列满时使用无状态的 SYN cookie；2：总是使用；0：丢弃")],
                   f, net, title_zh="SYN 泛洪：半连接队列满时用 SYN cookie 应答",
                   explanation_zh=zh, extra=snap["table"])


def syn_flood_no_cookies(seed: int = 1) -> Outcome:
    """The same with net.ipv4.tcp_syncookies = 0: the real client waits for the flood to expire."""
    out = syn_flood(seed, syncookies=0)
    out.name = "syn-flood-no-cookies"
    out.title = "SYN flood with tcp_syncookies = 0: the SYN queue fills with half-open connections"
    out.title_zh = "SYN 泛洪，tcp_syncookies = 0：半连接队列被占满"
    return out
