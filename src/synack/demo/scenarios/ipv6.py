"""The handshake over IPv6 (issue 14), and what differs from IPv4 on the same listener."""

from __future__ import annotations

import socket
from typing import Any

from synack.demo.scenarios.base import (
    CLIENT,
    CLIENT6,
    MS,
    SECOND,
    SERVER,
    SERVER6,
    Outcome,
    find,
    first_change,
    knob,
    lab,
)
from synack.link.arp import RETRANS_US, SOLICIT
from synack.tcp.isn import FixedIsn
from synack.tcp.state import State
from synack.wire.icmp6 import multicast_mac, solicited_node
from synack.wire.ipv4 import parse_tcp_packet
from synack.wire.ipv6 import parse_ipv6, parse_tcp6_packet
from synack.wire.tcp import ACK, SYN


def handshake_ipv6(seed: int = 1) -> Outcome:
    """The handshake over IPv6: a 40-byte header, MSS 1440, flow labels, ND instead of ARP."""
    L = lab(seed, server_isn=[300, 500], ipv6=True)
    c, s, net = L.c, L.s, L.net
    c.isn = FixedIsn([100, 700])              # the seed's ISNs, and one for the IPv4 client
    lfd = s.socket(socket.AF_INET6)          # a dual-stack listener: IPV6_V6ONLY is 0
    s.bind(lfd, ("::", 80))
    s.listen(lfd)
    c6 = c.socket(socket.AF_INET6)
    c4 = c.socket()
    got: dict[str, Any] = {"peers": []}

    def server(now: int) -> None:
        while (a := s.accept_some(lfd)) is not None:
            got["peers"].append(a[1])

    def client(now: int) -> None:
        if "sent" not in got and c.state(c6) is State.ESTABLISHED:
            got["sent"] = c.send(c6, b"GET /", now=now)

    L.server.apps.append(server)
    L.client.apps.append(client)
    net.call_at(0, lambda now: c.connect_ex(c6, (SERVER6, 80), now=now))
    # The same listener, from an IPv4 socket: the comparison in the last lines.
    net.call_at(200 * MS, lambda now: c.connect_ex(c4, (SERVER, 80), now=now))
    net.run(until=1 * SECOND)
    v6 = [r.data for r in net.records if r.data[0] >> 4 == 6]
    v4 = [r.data for r in net.records if r.data[0] >> 4 == 4]
    syn6_p = next(p for p in v6 if parse_tcp6_packet(p)[1].flags == SYN)
    synack6_p = next(p for p in v6 if parse_tcp6_packet(p)[1].flags == SYN | ACK)
    syn4_p = next(p for p in v4 if parse_tcp_packet(p)[1].flags == SYN)
    h6, syn6 = parse_tcp6_packet(syn6_p)
    hs6, synack6 = parse_tcp6_packet(synack6_p)
    _h4, syn4 = parse_tcp_packet(syn4_p)
    ack6 = find([parse_tcp6_packet(p)[1] for p in v6], ACK, without=SYN, payload=False)
    assert ack6 is not None and len(got["peers"]) == 2
    conn6 = c.connection(c6)
    assert conn6 is not None
    group = solicited_node(SERVER6)
    f: dict[str, Any] = {
        "syn_len": (len(syn6_p), len(syn4_p)), "ip_header": (40, (syn4_p[0] & 0x0F) * 4),
        "mss": (syn6.mss, synack6.mss, syn4.mss), "send_mss": conn6.mss,
        "flow": (h6.flow_label, hs6.flow_label), "hop_limit": h6.hop_limit,
        "payload_length": parse_ipv6(syn6_p)[0].payload_length,
        "peers": tuple(got["peers"]), "established_us": first_change(c, new="ESTABLISHED"),
        "nd_group": group, "nd_mac": multicast_mac(group).hex(":"),
    }
    peer6, peer4 = f["peers"]
    ce = f["established_us"] / MS
    en = f"""
The same three segments as over IPv4 (three-way-handshake), between {CLIENT6}
and {SERVER6}; the client is ESTABLISHED at {ce:.0f} ms. IPv6 changes what is below TCP:
1. The IPv6 header is a fixed {f['ip_header'][0]} bytes (IPv4: {f['ip_header'][1]} without options),
   so this SYN is {f['syn_len'][0]} bytes on the wire (the IPv4 SYN at {SECOND // 5 // MS} ms: {f['syn_len'][1]}).
   The payload length field ({f['payload_length']}) counts only what follows the header;
   options go into extension headers.
2. The MSS is the MTU less 40 + 20: {syn6.mss} at MTU 1500 (IPv4 announces {syn4.mss});
   with timestamps each segment carries {f['send_mss']} bytes of data.
3. No header checksum: the TCP checksum covers a pseudo-header with both 128-bit
   addresses (RFC 8200 8.1). The hop limit ({f['hop_limit']}) plays the TTL's part.
4. Each direction has its flow label, 0x{f['flow'][0]:05x} and 0x{f['flow'][1]:05x}: as Linux
   (net.ipv6.auto_flowlabels), synack hashes the 4-tuple, so that routers keep a
   flow on one path.
5. On Ethernet the client finds the server's MAC by Neighbor Discovery, not ARP:
   a neighbor solicitation to the solicited-node group {group}
   (MAC {f['nd_mac']}), answered by a neighbor advertisement; {SOLICIT} tries
   {RETRANS_US // MS} ms apart, as ARP. synack's TAP does this (synack.link.nd); the
   simulator has no link layer.
6. The listener is one AF_INET6 socket on :: without IPV6_V6ONLY
   (net.ipv6.bindv6only = 0): accept() gave {peer6}
   for the IPv6 client and {peer4} for the IPv4 one,
   whose packets stay IPv4 ({CLIENT} -> {SERVER}, MSS {syn4.mss}).
"""
    zh = f"""
与 IPv4 的三次握手（three-way-handshake）是同样的三个报文段，
只是在 {CLIENT6} 和 {SERVER6} 之间；客户端在 {ce:.0f} ms 进入 ESTABLISHED。
IPv6 改变的是 TCP 之下的部分：
1. IPv6 首部固定 {f['ip_header'][0]} 字节（IPv4 不带选项时 {f['ip_header'][1]} 字节），
   所以这个 SYN 在线路上是 {f['syn_len'][0]} 字节，{SECOND // 5 // MS} ms 时的 IPv4 SYN 是 {f['syn_len'][1]} 字节。
   有效载荷长度字段（{f['payload_length']}）只计算首部之后的部分；
   选项改放在扩展首部里。
2. MSS 是 MTU 减去 40 + 20：MTU 1500 时为 {syn6.mss}（IPv4 通告 {syn4.mss}）；
   带时间戳时每个报文段携带 {f['send_mss']} 字节数据。
3. IPv6 首部没有校验和：TCP 校验和覆盖一个包含两个 128 位地址的伪首部
   （RFC 8200 8.1）。跳数限制（{f['hop_limit']}）相当于 TTL。
4. 每个方向各有一个流标签：0x{f['flow'][0]:05x} 和 0x{f['flow'][1]:05x}。
   和 Linux 一样（net.ipv6.auto_flowlabels），synack 由四元组哈希得出，
   使路由器把同一条流留在同一路径上。
5. 在以太网上，客户端用邻居发现（ND）而不是 ARP 找到服务端的 MAC：
   向请求节点组播地址 {group}（MAC {f['nd_mac']}）发送邻居请求，
   对方回复邻居通告；与 ARP 一样最多 {SOLICIT} 次、间隔 {RETRANS_US // MS} ms。
   synack 的 TAP 实现了它（synack.link.nd）；模拟器没有链路层。
6. 监听的是一个绑定 :: 的 AF_INET6 套接字，没有设置 IPV6_V6ONLY
   （net.ipv6.bindv6only = 0）：accept() 对 IPv6 客户端返回
   {peer6}，对 IPv4 客户端返回 {peer4}，
   后者的报文仍是 IPv4（{CLIENT} -> {SERVER}，MSS {syn4.mss}）。
"""
    cfg = s.cfg
    return Outcome("handshake-ipv6", "The handshake over IPv6", L.ladder(), en, [
        knob(cfg, "net.ipv6.bindv6only", "default IPV6_V6ONLY: 0 lets :: take IPv4 too",
             "IPV6_V6ONLY 的默认值：0 时 :: 也接受 IPv4"),
        knob(cfg, "net.ipv6.auto_flowlabels", "flow labels from a hash of the 4-tuple",
             "由四元组哈希生成流标签"),
        knob(cfg, "net.ipv6.conf.all.hop_limit", "hop limit of outgoing packets",
             "发出报文的跳数限制"),
    ], f, net, title_zh="IPv6 上的三次握手", explanation_zh=zh)
