"""A SYN port scan ("half-open" scan), as nmap -sS does it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from synack.demo.scenarios.base import (
    CLIENT,
    MS,
    SECOND,
    SERVER,
    Outcome,
    RawHost,
    Tunable,
    lab,
    with_note,
)
from synack.sim import LinkParams
from synack.trace.ladder import SegmentStep
from synack.wire.errors import ParseError
from synack.wire.ipv4 import parse_tcp_packet
from synack.wire.tcp import ACK, RST, SYN, TcpSegment

SCAN_PORTS = (21, 22, 23, 80, 443, 8080)
OPEN_PORTS = (22, 80)
FILTERED = 443          # a firewall in front of the server drops SYNs to it
SPORT = 61000


def _to_port(port: int) -> Callable[[SegmentStep], bool]:
    """Picks the probe to ``port`` and the answer from it."""
    def pick(st: SegmentStep) -> bool:
        if st.src == "left":
            return st.seg.dst_port == port and bool(st.seg.flags & SYN)
        return st.seg.src_port == port
    return pick


def syn_scan(seed: int = 1) -> Outcome:
    """SYN probes classify ports: SYN,ACK open, RST closed, silence filtered."""
    L = lab(seed)
    s, net = L.s, L.net
    for port in OPEN_PORTS:
        fd = s.socket()
        s.bind(fd, (SERVER, port))
        s.listen(fd)
    # The scanner crafts SYNs with the client's address as source (a raw socket on
    # the client host): the answers reach the client's own TCP, which knows no such
    # connection and resets it -- so the scan never completes a handshake.
    raw = RawHost()
    net.add_host("198.51.100.7", raw)
    net.add_link("198.51.100.7", SERVER, LinkParams(delay_us=10 * MS))

    def firewall(packet: bytes) -> bool:
        try:
            ip, seg = parse_tcp_packet(packet, verify_checksum=False)
        except ParseError:
            return False
        return ip.dst == SERVER and seg.dst_port == FILTERED

    net.add_drop_rule(firewall)

    def probe(ports: tuple[int, ...]) -> None:
        for i, port in enumerate(ports):
            raw.send(CLIENT, SERVER, TcpSegment(src_port=SPORT, dst_port=port,
                                                seq=0x5CA0 + i, flags=SYN, window=1024,
                                                mss=1460))

    answers: dict[int, int] = {}

    def replies() -> dict[int, int]:
        for rec in net.records:
            if rec.src != SERVER or rec.dst != CLIENT:
                continue
            _ip, seg = parse_tcp_packet(rec.data, verify_checksum=False)
            if seg.dst_port == SPORT and seg.src_port not in answers:
                answers[seg.src_port] = seg.flags
        return answers

    retried: list[int] = []

    def retry(now: int) -> None:     # nmap probes a silent port once more before "filtered"
        silent = tuple(p for p in SCAN_PORTS if p not in replies())
        retried.extend(silent)
        probe(silent)

    net.call_at(0, lambda now: probe(SCAN_PORTS))
    net.call_at(1 * SECOND, retry)
    net.run(until=3 * SECOND)
    got = replies()
    verdict: dict[int, str] = {}
    for port in SCAN_PORTS:
        flags = got.get(port)
        if flags is None:
            verdict[port] = "filtered"
        elif flags & SYN and flags & ACK:
            verdict[port] = "open"
        elif flags & RST:
            verdict[port] = "closed"
        else:
            verdict[port] = "unexpected"
    client_rsts = sum(1 for rec in net.records if rec.src == CLIENT and rec.dst == SERVER
                      and parse_tcp_packet(rec.data, verify_checksum=False)[1].flags & RST)
    established = sum(1 for _k, ch in s.changes if str(ch.new) == "ESTABLISHED")
    f: dict[str, Any] = {"verdict": verdict, "client_rsts": client_rsts,
                         "server_established": established, "retried": retried,
                         "server_rst_stats": s.stats.get("reset: no socket", 0)}
    table = ["nmap-style report:", "  PORT      STATE     (answer)"]
    for port in SCAN_PORTS:
        ans = {"open": "SYN,ACK", "closed": "RST,ACK", "filtered": "none, twice"}.get(
            verdict[port], "?")
        table.append(f"  {port:<5}/tcp {verdict[port]:<9} ({ans})")
    opened = [p for p in SCAN_PORTS if verdict[p] == "open"]
    closed = [p for p in SCAN_PORTS if verdict[p] == "closed"]
    filtered = [p for p in SCAN_PORTS if verdict[p] == "filtered"]
    en = f"""
The seed, after question 5: "RST can be used for port scanning". A SYN scan
sends one SYN per port and reads the answer: SYN,ACK means a listener (open:
{', '.join(map(str, opened))}), RST means no one listens (closed: {', '.join(map(str, closed))}; RFC 9293 3.10.7.1),
and no answer even to a second probe means a firewall dropped it (filtered:
{', '.join(map(str, filtered))}). It is called half-open because it never completes the handshake:
the probes come from a raw socket, so when a SYN,ACK reaches the scanning host its
own TCP finds no connection and answers RST ({client_rsts} RSTs). The server's
half-open entries are reset; {established} connections were ever established, so an
application that logs accepted connections never sees the scan.
"""
    zh = f"""
笔记问题5之后："RST 机制有时候也会被利用"——做端口扫描。SYN 扫描对每个端口发一个 SYN，
看回应：回 SYN,ACK 表示有进程在监听（开放：{', '.join(map(str, opened))}）；回 RST 表示没有监听
（关闭：{', '.join(map(str, closed))}；RFC 9293 3.10.7.1）；两次探测都没有回应，说明被防火墙丢弃
（过滤：{', '.join(map(str, filtered))}）。它叫"半开放扫描"，因为从不完成三次握手：探测报文来自原始
套接字，扫描主机自己的 TCP 收到 SYN,ACK 时找不到对应连接，于是回 RST（共 {client_rsts} 个）。
服务端的半连接被重置；建立过的连接数为 {established}，只记录 accept() 的应用根本看不到这次扫描。
"""
    steps = L.steps()
    for port in SCAN_PORTS:
        steps = with_note(steps, _to_port(port), f"port {port}")
    return Outcome("syn-scan", "A SYN port scan: open, closed, filtered", L.ladder(steps), en, [
        Tunable("listen()", ", ".join(map(str, OPEN_PORTS)), "what shows up as open",
                "被扫描为开放的端口"),
        Tunable("firewall drop", str(FILTERED), "what shows up as filtered",
                "被扫描为过滤的端口")], f, net,
        title_zh="SYN 端口扫描：开放、关闭、过滤", explanation_zh=zh, extra=table)
