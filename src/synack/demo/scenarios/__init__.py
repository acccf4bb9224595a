"""The scenario library: each mechanism of the seeds, happening in the simulator.

``SCENARIOS`` maps a name to a function ``(seed) -> Outcome``; ``DESCRIPTIONS``
and ``DESCRIPTIONS_ZH`` give each a one-line description in English and in
Chinese (``synack demo --list --lang zh``). The scenarios live in modules by
group: worked (the seeds' example), open, fastopen, close, ports, rst, queues, timers,
data, loss, ecn and scan; :mod:`.base` holds what they share.
"""

from __future__ import annotations

from collections.abc import Callable

from synack.demo.scenarios import (
    close,
    data,
    ecn,
    fastopen,
    ipv6,
    loss,
    open,
    ports,
    queues,
    rst,
    scan,
    timers,
    worked,
)
from synack.demo.scenarios.base import LANGS, Lab, Outcome, Tunable, lab

SCENARIOS: dict[str, Callable[[int], Outcome]] = {
    "worked-example": worked.worked_example,
    "three-way-handshake": open.three_way_handshake,
    "lost-synack": open.lost_synack,
    "why-not-two-way": open.why_not_two_way,
    "simultaneous-open": open.simultaneous_open,
    "fast-open": fastopen.fast_open,
    "handshake-ipv6": ipv6.handshake_ipv6,
    "four-way-close": close.four_way_close,
    "half-close": close.half_close,
    "simultaneous-close": close.simultaneous_close,
    "close-wait-leak": close.close_wait_leak,
    "lost-last-ack": close.lost_last_ack,
    "port-exhaustion": ports.port_exhaustion,
    "port-exhaustion-tw-reuse": ports.port_exhaustion_tw_reuse,
    "rst-closed-port": rst.rst_closed_port,
    "rst-unread-data": rst.rst_unread_data,
    "rst-linger-zero": rst.rst_linger_zero,
    "rst-timeout": rst.rst_timeout,
    "syn-flood": queues.syn_flood,
    "syn-flood-no-cookies": queues.syn_flood_no_cookies,
    "accept-overflow": queues.accept_overflow,
    "accept-overflow-abort": queues.accept_overflow_abort,
    "keepalive": timers.keepalive,
    "zero-window": data.zero_window,
    "fast-retransmit": data.fast_retransmit,
    "tail-loss-probe": loss.tail_loss_probe,
    "rack-lost-retransmit": loss.rack_lost_retransmit,
    "ecn": ecn.ecn_marking,
    "syn-scan": scan.syn_scan,
}

DESCRIPTIONS: dict[str, str] = {
    name: (fn.__doc__ or "").strip().splitlines()[0] for name, fn in SCENARIOS.items()
}

DESCRIPTIONS_ZH: dict[str, str] = {
    "worked-example": "笔记中的例子：ISN 100 和 300，上行 1000 字节，下行 2000 字节，FIN 之后再发 50 字节",
    "three-way-handshake": "三次握手：SYN、SYN,ACK、ACK，双方交换 ISN 和选项",
    "lost-synack": "为什么要三次握手：SYN,ACK 丢失，只有客户端重传才能恢复",
    "why-not-two-way": "为什么不能两次握手：已失效的旧 SYN 到达，客户端的 RST 阻止了幽灵连接",
    "simultaneous-open": "同时打开：双方同时 connect()，两个 SYN 交错，不需要 listen()",
    "fast-open": "TCP Fast Open：先取 cookie，再把请求放进 SYN，省一个往返时间",
    "handshake-ipv6": "IPv6 上的三次握手：40 字节首部，MSS 1440，流标签，用邻居发现代替 ARP",
    "four-way-close": "四次挥手：FIN、ACK、FIN、ACK，两个方向分别关闭",
    "half-close": "半关闭：shutdown(SHUT_WR) 后服务端仍可继续发送数据",
    "simultaneous-close": "同时关闭：双方同时 close()，FIN 交错，都经过 CLOSING",
    "close-wait-leak": "大量 CLOSE_WAIT：服务端从不调用 close()，连接堆积",
    "lost-last-ack": "为什么需要 TIME_WAIT：最后的 ACK 丢失，服务端重传 FIN",
    "port-exhaustion": "临时端口耗尽：大量短连接主动关闭，TIME_WAIT 占满端口，connect() 失败",
    "port-exhaustion-tw-reuse": "同上，开启 net.ipv4.tcp_tw_reuse = 1：connect() 复用 TIME_WAIT",
    "rst-closed-port": "RST：SYN 发往没有监听的端口，连接被拒绝",
    "rst-unread-data": "RST：接收缓冲区还有未读数据时 close()",
    "rst-linger-zero": "RST：SO_LINGER 为 0，close() 异常关闭，跳过 TIME_WAIT",
    "rst-timeout": "超时后的 RST：tcp_retries2 用尽，连接死亡，对端之后收到 RST",
    "syn-flood": "SYN 泛洪：伪造的 SYN 占满半连接队列，SYN cookie 让正常客户端立即连上",
    "syn-flood-no-cookies": "同上，net.ipv4.tcp_syncookies = 0：正常客户端要等伪造的半连接超时",
    "accept-overflow": "全连接队列溢出：应用不 accept()，第三次握手的 ACK 被丢弃",
    "accept-overflow-abort": "同上，net.ipv4.tcp_abort_on_overflow = 1：回 RST",
    "keepalive": "保活计时器：默认 7200 / 75 / 9，发现宕机的对端",
    "zero-window": "零窗口：接收方不读数据，窗口关闭，发送方用坚持计时器探测",
    "fast-retransmit": "丢失一个报文段：重复 ACK 触发快速重传，远早于超时重传",
    "tail-loss-probe": "最后两个报文段丢失：尾部丢失探测不等超时就把它们找回",
    "rack-lost-retransmit": "重传也丢了：RACK 按时间发现它，远早于超时重传",
    "ecn": "ECN：队列标记 CE 而不丢包，发送方减小窗口，没有任何丢失和重传",
    "syn-scan": "SYN 端口扫描：SYN,ACK 表示开放，RST 表示关闭，无回应表示过滤",
}


def describe(name: str, lang: str = "en") -> str:
    """The one-line description of scenario ``name`` in ``lang``."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r} (choose from: {', '.join(LANGS)})")
    return DESCRIPTIONS_ZH[name] if lang == "zh" else DESCRIPTIONS[name]


def worked_example(seed: int = 1) -> Outcome:
    """The seed's worked example (kept importable from here, as before the split)."""
    return worked.worked_example(seed)


__all__ = ["DESCRIPTIONS", "DESCRIPTIONS_ZH", "LANGS", "SCENARIOS", "Lab", "Outcome",
           "Tunable", "describe", "lab", "worked_example"]
