"""The words of ``synack header``, in English and in Chinese (the seeds' terms).

The Chinese labels and flag meanings follow the seed notes' "头文件解析" section
(序号, 确认号, 数据偏移, 标志位, 紧急指针, 选项, 填充); CWR and ECE, which the
notes leave out, are described from RFC 3168. Two departures from the notes: URG
does not make a segment be handled first (RFC 6093 warns of that reading: it
only says where urgent data ends in the stream), and an ISN is not necessarily
random (Linux derives it from a keyed hash and a clock, RFC 6528; synack's
demos fix it to the notes' 100 and 300).
"""

from __future__ import annotations

LANGS = ("en", "zh")

#: Field labels, in header order.
LABELS: dict[str, dict[str, str]] = {
    "en": {
        "ip": "IPv4 header", "tos": "type of service", "sport": "source port", "dport": "destination port",
        "seq": "sequence number", "ack": "acknowledgment number", "doff": "data offset",
        "reserved": "reserved", "flags": "flags", "window": "window",
        "checksum": "checksum", "urgent": "urgent pointer", "options": "options",
        "padding": "padding", "payload": "payload", "headers": "headers",
        "ip6": "IPv6 header", "ip6_tc": "traffic class", "ip6_flow": "flow label",
        "ip6_plen": "payload length", "ip6_next": "next header", "ip6_hops": "hop limit",
        "ip6_src": "source address", "ip6_dst": "destination address",
    },
    "zh": {
        "ip": "IPv4 首部", "tos": "服务类型", "sport": "源端口", "dport": "目的端口",
        "seq": "序号", "ack": "确认号", "doff": "数据偏移",
        "reserved": "保留位", "flags": "标志位", "window": "窗口",
        "checksum": "校验和", "urgent": "紧急指针", "options": "选项",
        "padding": "填充", "payload": "数据", "headers": "首部合计",
        "ip6": "IPv6 首部", "ip6_tc": "流量类别", "ip6_flow": "流标签",
        "ip6_plen": "有效载荷长度", "ip6_next": "下一个首部", "ip6_hops": "跳数限制",
        "ip6_src": "源地址", "ip6_dst": "目的地址",
    },
}  # fmt: skip

#: One line per flag, from the most significant bit (CWR) to FIN, as in RFC 9293's diagram.
FLAG_MEANINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "en": (
        ("CWR", "congestion window reduced: the sender slowed down after an ECN echo"),
        ("ECE", "ECN echo: congestion experienced on the path (on a SYN: ECN capable)"),
        ("URG", "urgent: the urgent pointer is valid, urgent data to handle first"),
        ("ACK", "acknowledgment: the acknowledgment number is valid"),
        ("PSH", "push: deliver to the application now, without waiting to fill a buffer"),
        ("RST", "reset: the connection is in error, refuse or abort it"),
        ("SYN", "synchronize: opens a connection, the sequence number is the ISN"),
        ("FIN", "finish: the sender has no more data, releases its direction"),
    ),
    "zh": (
        ("CWR", "拥塞窗口减小：发送方收到 ECN 回显后已降低发送速率"),
        ("ECE", "ECN 回显：路径上出现拥塞（在 SYN 中表示支持 ECN）"),
        ("URG", "紧急标志位：紧急指针有效，流中有紧急数据（报文段并不被优先处理，RFC 6093）"),
        ("ACK", "确认标志位：开启时表明确认号有效，否则忽略确认号"),
        ("PSH", "推送标志位：开启时表明应该尽快交付给应用进程，而不必等到缓存区填满"),
        ("RST", "复位标志位：开启时表明连接出现错误，数据包非法拒绝连接"),
        ("SYN", "同步标志位：开启时表明连接建立的标志"),
        ("FIN", "终止标志位：开启时表明释放一个连接"),
    ),
}

#: Meanings of option kinds that synack does not decode (IANA "TCP Option Kind Numbers").
OTHER_KINDS: dict[int, tuple[str, str]] = {
    19: ("MD5 signature (RFC 2385)", "MD5 签名 (RFC 2385)"),
    28: ("user timeout (RFC 5482)", "用户超时 (RFC 5482)"),
    29: ("TCP authentication option (RFC 5925)", "TCP 认证选项 (RFC 5925)"),
    30: ("Multipath TCP (RFC 8684)", "多路径 TCP (RFC 8684)"),
    34: ("TCP Fast Open cookie (RFC 7413)", "TCP 快速打开 cookie (RFC 7413)"),
    253: ("experimental (RFC 4727)", "实验用 (RFC 4727)"),
    254: ("experimental (RFC 4727)", "实验用 (RFC 4727)"),
}

#: Value texts, ``str.format`` templates keyed by what they describe.
TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "packet {n}: connection {c}, {src} -> {dst} ({who}), {flags}",
        "client": "client -> server", "server": "server -> client",
        "ip": "{ihl} x 4 = {hlen} bytes; total length {total} = {hlen} IPv4 + {thlen} TCP"
              " + {plen} payload",
        "seq_rel": "{abs} (relative {rel}: counted from the ISN {isn} of this direction)",
        "seq_abs": "{abs} (no SYN of this direction in the capture: no relative number)",
        "seq_syn": "{abs} (the ISN of this direction: relative 0)",
        "ack_rel": "{abs} (relative {rel}; valid: ACK is set; next byte expected from the peer)",
        "ack_abs": "{abs} (valid: ACK is set; peer's SYN not in the capture)",
        "ack_off": "{abs} (not valid: ACK is not set, the field is ignored)",
        "doff": "{doff} x 4 = {hlen} bytes of header (20 fixed + {olen} of options)",
        "reserved_ok": "{bits} (must be zero)",
        "reserved_bad": "{bits} (NOT zero: a sender must send zeros)",
        "flags": "0x{value:02x} = {names}",
        "flag_set": "set", "flag_unset": "not set",
        "win_syn": "{raw} (never scaled on a SYN, RFC 7323 2.2)",
        "win_scaled": "{raw} x 2^{shift} = {scaled} bytes (window scale {shift} from the handshake)",
        "win_noscale": "{raw} bytes (no window scaling: not offered by both SYNs)",
        "win_unknown": "{raw} (raw: the handshake is not in the capture, scale unknown)",
        "csum_ok": "0x{value:04x} correct (verified over the IPv4 pseudo-header)",
        "csum_bad": "0x{value:04x} incorrect (should be 0x{expected:04x}; a capture on the"
                    " sending host may show it before the NIC fills it in)",
        "urg_on": "{value} (URG set: urgent data ends {value} bytes after the sequence number)",
        "urg_off": "{value} (meaningless: URG is not set)",
        "opts": "{olen} bytes", "opts_none": "none (data offset 5: the 20-byte header only)",
        "pad_none": "0 bytes (the options end on a 32-bit boundary)",
        "pad": "{plen} byte{s} at offset {off} (EOL and zeros) make the header {hlen} = {doff} x 4",
        "pad_nonzero": "; {count} of them not zero (RFC 9293 says zeros)",
        "payload": "{plen} bytes",
        "headers": "{total} bytes = {ip} IPv4 + {tcp} TCP (at least 20 + 20 = 40)",
        "hex": "header bytes, 32 bits a row (offset: bytes  fields):",
        "EOL": "end of option list: what follows is padding",
        "NOP": "no-operation: aligns the next option",
        "MSS": "maximum segment size {value}: the largest segment this side will receive",
        "SACK_PERM": "SACK permitted: selective acknowledgments may be used",
        "SACK": "SACK blocks {blocks}: data received beyond the ACK",
        "TIMESTAMP": "timestamps TSval {val} TSecr {ecr}: RTT measurement and PAWS (RFC 7323)",
        "WSCALE": "window scale {value}: this side's windows are x {factor}",
        "unknown": "kind {kind} {meaning}, {size} bytes of data {data}",
        "unknown_meaning": "(not decoded)",
        "ip6": "version 6, 40 bytes fixed (no options, no checksum: TCP's covers the"
               " addresses){ext}",
        "ip6_ext": "; extension headers {chain} ({elen} bytes)",
        "ip6_tc": "0x{tc:02x} (DSCP {dscp}, ECN {ecn} = {ecn_text})",
        "tos": "0x{tc:02x} (DSCP {dscp}, ECN {ecn} = {ecn_text})",
        "ecn0": "Not-ECT: not ECN-capable",
        "ecn1": "ECT(1): ECN-capable transport",
        "ecn2": "ECT(0): ECN-capable transport (RFC 3168; what Linux TCP sends)",
        "ecn3": "CE: congestion experienced, marked by a router's queue (RFC 3168)",
        "ip6_flow": "0x{flow:05x} ({what})",
        "ip6_flow_set": "one label per flow: the socket's random hash, new after a timeout (auto_flowlabels)",
        "ip6_flow_none": "none",
        "ip6_plen": "{plen} = {elen} extension + {thlen} TCP + {dlen} payload (the 40-byte"
                    " header is not counted)",
        "ip6_next": "{nxt} ({name})",
        "ip6_hops": "{hops} (IPv4's TTL)",
        "csum_ok6": "0x{value:04x} correct (verified over the IPv6 pseudo-header, RFC 8200 8.1)",
        "headers6": "{total} bytes = {ip} IPv6 + {tcp} TCP (at least 40 + 20 = 60: an MSS"
                    " of 1440 at MTU 1500)",
    },
    "zh": {
        "title": "第 {n} 个包：连接 {c}，{src} -> {dst}（{who}），{flags}",
        "client": "客户端 -> 服务端", "server": "服务端 -> 客户端",
        "ip": "{ihl} x 4 = {hlen} 字节；总长度 {total} = {hlen} IPv4 + {thlen} TCP + {plen} 数据",
        "seq_rel": "{abs}（相对序号 {rel}：从本方向的 ISN {isn} 算起）",
        "seq_abs": "{abs}（抓包中没有本方向的 SYN，无相对序号）",
        "seq_syn": "{abs}（本方向的初始序号 ISN：相对序号 0）",
        "ack_rel": "{abs}（相对确认号 {rel}；ACK 已置位，有效：期待对端发送的下一个字节）",
        "ack_abs": "{abs}（ACK 已置位，有效；抓包中没有对端的 SYN）",
        "ack_off": "{abs}（无效：ACK 未置位，忽略确认号）",
        "doff": "{doff} x 4 = {hlen} 字节首部（固定 20 + 选项 {olen}）",
        "reserved_ok": "{bits}（必须为零）",
        "reserved_bad": "{bits}（不为零：发送方应当置零）",
        "flags": "0x{value:02x} = {names}",
        "flag_set": "置位", "flag_unset": "未置位",
        "win_syn": "{raw}（SYN 中的窗口从不缩放，RFC 7323 2.2）",
        "win_scaled": "{raw} x 2^{shift} = {scaled} 字节（握手中协商的窗口扩大因子 {shift}）",
        "win_noscale": "{raw} 字节（未启用窗口扩大：双方 SYN 没有都带该选项）",
        "win_unknown": "{raw}（原始值：抓包中没有握手，缩放因子未知）",
        "csum_ok": "0x{value:04x} 正确（含 IPv4 伪首部校验）",
        "csum_bad": "0x{value:04x} 错误（应为 0x{expected:04x}；在发送主机上抓的包可能在网卡"
                    "填写校验和之前）",
        "urg_on": "{value}（URG 已置位：紧急数据的末端在序号之后 {value} 字节）",
        "urg_off": "{value}（无意义：URG 未置位）",
        "opts": "{olen} 字节", "opts_none": "无（数据偏移 5：只有 20 字节的固定首部）",
        "pad_none": "0 字节（选项已经是 32 bit 的整数倍）",
        "pad": "偏移 {off} 处 {plen} 字节（EOL 和零），使首部为 {hlen} = {doff} x 4 字节",
        "pad_nonzero": "；其中 {count} 字节不为零（RFC 9293 要求为零）",
        "payload": "{plen} 字节",
        "headers": "{total} 字节 = {ip} IPv4 + {tcp} TCP（至少 20 + 20 = 40 字节）",
        "hex": "首部字节，每行 32 位（偏移：字节  字段）：",
        "EOL": "选项列表结束：其后为填充",
        "NOP": "空操作：用于对齐下一个选项",
        "MSS": "最大报文段长度 {value}：本端能接收的最大分段",
        "SACK_PERM": "允许 SACK：可以使用选择性确认",
        "SACK": "SACK 块 {blocks}：已收到确认号之后的数据",
        "TIMESTAMP": "时间戳 TSval {val} TSecr {ecr}：用于测量 RTT 和 PAWS (RFC 7323)",
        "WSCALE": "窗口扩大因子 {value}：本端的窗口乘以 {factor}",
        "unknown": "类型 {kind} {meaning}，{size} 字节数据 {data}",
        "unknown_meaning": "（未解码）",
        "ip6": "版本 6，固定 40 字节（没有选项，也没有校验和：由 TCP 校验和覆盖地址）{ext}",
        "ip6_ext": "；扩展首部 {chain}（{elen} 字节）",
        "ip6_tc": "0x{tc:02x}（DSCP {dscp}，ECN {ecn} = {ecn_text}）",
        "tos": "0x{tc:02x}（DSCP {dscp}，ECN {ecn} = {ecn_text}）",
        "ecn0": "Not-ECT：不支持 ECN",
        "ecn1": "ECT(1)：支持 ECN 的传输",
        "ecn2": "ECT(0)：支持 ECN 的传输（RFC 3168；Linux TCP 发送的就是它）",
        "ecn3": "CE：经历拥塞，由路由器的队列标记（RFC 3168）",
        "ip6_flow": "0x{flow:05x}（{what}）",
        "ip6_flow_set": "每条流一个标签：套接字的随机哈希，超时重传后重新选取 (auto_flowlabels)",
        "ip6_flow_none": "无",
        "ip6_plen": "{plen} = {elen} 扩展首部 + {thlen} TCP + {dlen} 数据（不含 40 字节的固定首部）",
        "ip6_next": "{nxt}（{name}）",
        "ip6_hops": "{hops}（相当于 IPv4 的 TTL）",
        "csum_ok6": "0x{value:04x} 正确（含 IPv6 伪首部校验，RFC 8200 8.1）",
        "headers6": "{total} 字节 = {ip} IPv6 + {tcp} TCP（至少 40 + 20 = 60 字节：MTU 1500 时"
                    " MSS 为 1440）",
    },
}

#: What each 32-bit row of the header holds, for ``--hex`` (RFC 9293 section 3.1).
HEX_ROWS: dict[str, tuple[str, ...]] = {
    "en": ("source port | destination port", "sequence number", "acknowledgment number",
           "data offset, reserved, flags | window", "checksum | urgent pointer"),
    "zh": ("源端口 | 目的端口", "序号", "确认号", "数据偏移、保留位、标志位 | 窗口",
           "校验和 | 紧急指针"),
}
HEX_PADDING = {"en": "EOL + padding", "zh": "EOL + 填充"}

#: Names of IPv6 next-header values (IANA "Assigned Internet Protocol Numbers").
NEXT_HEADERS: dict[int, tuple[str, str]] = {
    0: ("hop-by-hop options", "逐跳选项"), 6: ("TCP", "TCP"), 43: ("routing", "路由"),
    44: ("fragment", "分片"), 58: ("ICMPv6", "ICMPv6"), 59: ("no next header", "无下一个首部"),
    60: ("destination options", "目的选项"),
}
