"""Why each analysis mark was given, in English and Chinese, for the report page.

:mod:`synack.trace.analysis` says *what* a segment is (``Retransmission``,
``Dup ACK 12#3``...). This module walks the connection once more and says *which
rule* made it so, with the packets and numbers that triggered the rule:

- a fast retransmission answers N duplicate ACKs for its sequence (RFC 5681 3.2);
- a retransmission with SACK blocks above its bytes reported since it was last
  sent was deemed lost by SACK loss detection (RFC 6675; Linux's RACK, RFC 8985,
  reaches the same verdict from the same SACKs);
- a retransmission at the moment synack's own trace shows a timeout is an RTO
  (RFC 6298); without the trace, one that no duplicate ACK or SACK asked for is
  put down to the retransmission timer, with the time since the previous send;
- a spurious one resends bytes the peer had already acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from synack.trace import analysis as an
from synack.trace.capture import Connection, Segment
from synack.wire.tcp import ACK, FIN, SYN

RTO_MATCH_US = 1_000   # a resend within 1 ms after a traced timeout is that timeout's


@dataclass
class _Side:
    """What one direction's receiver told the other so far."""

    lastack: int | None = None
    lastack_number: int = 0
    dups: list[int] = field(default_factory=list)        # packet numbers of the dup ACKs
    sacks: list[tuple[int, int, int, int]] = field(default_factory=list)  # (t, number, l, r)


def _ms(us: int) -> str:
    return f"{us / 1000:.3f}".rstrip("0").rstrip(".")


def mark_reasons(conn: Connection, t0: int, rto_times: list[int] | None,
                 rto_values: dict[int, int] | None = None, trace_start: int | None = None
                 ) -> dict[int, dict[str, list[str]]]:
    """``{index in conn.segments: {"en": [...], "zh": [...]}}`` for every marked segment.

    ``rto_times`` are the absolute times of synack's traced timeouts (the sender
    of the data), ``rto_values`` their RTO in microseconds; None without a trace.
    ``trace_start`` is the trace's first sample: before it (the handshake) the trace
    cannot say whether a timer fired.
    """
    out: dict[int, dict[str, list[str]]] = {}
    acks = (_Side(), _Side())          # acks[d]: ACKs sent in direction d (about 1 - d's data)
    last_sent: tuple[dict[int, tuple[int, int]], dict[int, tuple[int, int]]] = ({}, {})
    for i, s in enumerate(conn.segments):
        d = s.direction
        if s.marks:
            en: list[str] = []
            zh: list[str] = []
            for m in s.marks:
                e, z = _reason(m, s, acks[1 - d], last_sent[d], t0, rto_times,
                               rto_values or {}, trace_start)
                en.append(f"{m}: {e}")
                zh.append(f"{m}：{z}")
            out[i] = {"en": en, "zh": zh}
        _update(s, acks[d], last_sent[d])
    return out


def _update(s: Segment, side: _Side, sent: dict[int, tuple[int, int]]) -> None:
    if s.length or s.flags & (SYN | FIN):
        sent[s.seq] = (s.t_us, s.number)
    if s.flags & ACK:
        if any(m.startswith(an.DUP_ACK) for m in s.marks):
            side.dups.append(s.number)
        elif side.lastack != s.ack:
            side.dups = []
            side.lastack_number = s.number
        side.lastack = s.ack
        for left, right in s.sack:
            side.sacks.append((s.t_us, s.number, left, right))
        if len(side.sacks) > 64:
            del side.sacks[:-64]


def _reason(mark: str, s: Segment, peer: _Side, sent: dict[int, tuple[int, int]], t0: int,
            rto_times: list[int] | None, rto_values: dict[int, int],
            trace_start: int | None) -> tuple[str, str]:
    seq, n = s.seq, s.length
    if mark == an.FAST_RETRANSMISSION:
        nums = ", ".join(f"#{x}" for x in peer.dups[-6:])
        k = len(peer.dups)
        return ((f"sent again after {k} duplicate ACKs asking for seq {seq} (the ACK in "
                f"#{peer.lastack_number}; duplicates {nums}): fast retransmit (RFC 5681 3.2, "
                f"three duplicate ACKs, or SACKs saying as much)"),
                (f"收到 {k} 个要求序号 {seq} 的重复确认（#{peer.lastack_number} 的确认；重复：{nums}）"
                f"后重发：快速重传（RFC 5681 3.2，三个重复确认或同等的 SACK）"))
    if mark == an.SPURIOUS_RETRANSMISSION:
        return ((f"the peer had already acknowledged bytes up to {peer.lastack} "
                f"(#{peer.lastack_number}) before these ({seq}-{seq + n}) were sent again: "
                "the resend was not needed (a timer too short, or a lost ACK)"),
                (f"对端已在 #{peer.lastack_number} 确认到 {peer.lastack}，这些字节（{seq}-{seq + n}）"
                "却又被重发：这次重传是多余的（定时器过短，或确认丢失）"))
    if mark == an.RETRANSMISSION:
        return _retransmission(s, peer, sent, t0, rto_times, rto_values, trace_start)
    if mark == an.OUT_OF_ORDER:
        return (("it starts below the highest sequence sent and came within one round trip "
                "(or 3 ms when the capture shows none) of it, so Wireshark's rule calls it "
                "out of order: reordered by the network, or (captured at the sender) a quick resend"),
                ("起始序号低于已发出的最高序号，且与之相隔不到一个往返时间（抓包看不出往返时间时为 3 毫秒），"
                "按 Wireshark 的规则记为乱序：网络把它乱序了，或（在发送端抓包时）是一次很快的重发"))
    if mark.startswith(an.DUP_ACK):
        first, _, nth = mark[len(an.DUP_ACK):].strip().partition("#")
        return ((f"duplicate number {nth} of the ACK in #{first}: same ack {s.ack} and window, no "
                f"data; the receiver got data beyond {s.ack} and is still missing byte {s.ack}"),
                (f"#{first} 那个确认的第 {nth} 个重复：确认号 {s.ack} 与窗口都相同且不带数据；"
                f"接收方收到了 {s.ack} 之后的数据，仍缺字节 {s.ack}"))
    return _FIXED.get(mark, ("", ""))


def _retransmission(s: Segment, peer: _Side, sent: dict[int, tuple[int, int]], t0: int,
                    rto_times: list[int] | None, rto_values: dict[int, int],
                    trace_start: int | None) -> tuple[str, str]:
    seq = s.seq
    if s.flags & (SYN | FIN) and not s.length:
        what_en, what_zh = ("SYN" if s.flags & SYN else "FIN"), ("SYN" if s.flags & SYN else "FIN")
    else:
        what_en, what_zh = f"bytes {seq}-{seq + s.length}", f"字节 {seq}-{seq + s.length}"
    prev = sent.get(seq)
    since_en = since_zh = ""
    if prev is not None:
        since_en = f", {_ms(s.t_us - prev[0])} ms after the previous send (#{prev[1]})"
        since_zh = f"，距上次发送（#{prev[1]}）{_ms(s.t_us - prev[0])} ms"
    if trace_start is not None and s.t_us < trace_start:
        rto_times = None            # before the trace began (the handshake): it cannot say
    if rto_times is not None:
        fired = [t for t in rto_times if 0 <= s.t_us - t <= RTO_MATCH_US]
        if fired:
            t = fired[-1]
            rto = rto_values.get(t)
            val = f" (RTO {_ms(rto)} ms, backed off)" if rto else ""
            val_zh = f"（RTO {_ms(rto)} ms，已退避）" if rto else ""
            return ((f"{what_en} sent again because synack's retransmission timer expired at "
                    f"{_ms(t - t0)} ms{val}{since_en} (RFC 6298 5.4; synack's trace says so)"),
                    (f"{what_zh}被重发：synack 的重传定时器在 {_ms(t - t0)} ms 超时{val_zh}{since_zh}"
                    "（RFC 6298 5.4；来自 synack 自己的记录）"))
    since_t = prev[0] if prev is not None else 0
    above = [(n, left) for t, n, left, _ in peer.sacks if t >= since_t and left > seq]
    if above:
        nums = ", ".join(f"#{n}" for n in sorted({n for n, _ in above})[-6:])
        return ((f"{what_en} deemed lost because the peer SACKed data above them ({nums}) "
                f"after they were sent{since_en}: SACK loss detection (RFC 6675; RACK, "
                "RFC 8985, decides the same from these SACKs)"),
                (f"{what_zh}被判定丢失：发送之后对端用 SACK 确认了更高的数据（{nums}）{since_zh}："
                "基于 SACK 的丢失检测（RFC 6675；RACK，RFC 8985，据同样的 SACK 作出同样判断）"))
    if peer.dups:
        k = len(peer.dups)
        return ((f"{what_en} sent again after {k} duplicate ACKs (last #{peer.dups[-1]}) but "
                f"too late to count as a fast retransmission{since_en}"),
                (f"{what_zh}在 {k} 个重复确认之后重发（最后一个是 #{peer.dups[-1]}），但间隔太久，"
                f"不算快速重传{since_zh}"))
    if rto_times is not None:
        return ((f"{what_en} sent again with no timeout in synack's trace, no duplicate ACK and no "
                f"SACK asking for them{since_en}: a probe or a resend after a path event"),
                (f"{what_zh}被重发，但 synack 的记录里没有超时，也没有重复确认或 SACK 要求它"
                f"{since_zh}：探测或路径事件后的重发"))
    return ((f"{what_en} sent again with no duplicate ACK or SACK asking for them{since_en}: "
            "the retransmission timer (RTO, RFC 6298) expired (or a tail loss probe)"),
            (f"{what_zh}被重发，没有重复确认或 SACK 要求它{since_zh}："
            "重传定时器（RTO，RFC 6298）超时（或尾部丢失探测）"))


_FIXED: dict[str, tuple[str, str]] = {
    an.ZERO_WINDOW_PROBE: (("one byte at the next sequence while the peer's window is 0: "
                           "the persist timer probes whether the window opened (RFC 9293 3.8.6.1)"),
                           ("对端窗口为 0 时在下一个序号发送一个字节：坚持定时器探测窗口是否打开"
                           "（RFC 9293 3.8.6.1）")),
    an.ZERO_WINDOW: (("it advertises a receive window of 0: the receiver's buffer is full, "
                     "the sender must stop"), "通告的接收窗口为 0：接收缓存已满，发送方必须停止"),
    an.PREVIOUS_NOT_CAPTURED: (("it starts beyond the next expected sequence: bytes before it "
                               "were lost, or not captured"), ("起始序号超过了期望的下一个序号："
                               "之前的字节丢失了，或没有被抓到")),
    an.KEEP_ALIVE: (("at most one byte at the next sequence minus 1: a keep-alive probe "
                    "(RFC 9293 3.8.4)"), "在下一个序号减 1 处最多一个字节：保活探测（RFC 9293 3.8.4）"),
    an.ZERO_WINDOW_PROBE_ACK: (("the ACK answering a zero-window probe: the window is "
                               "still closed, the probe's byte not taken"),
                               "对零窗口探测的确认：窗口仍然关闭，探测的字节没有被接收"),
    an.WINDOW_FULL: (("it fills the peer's advertised window to the last byte: the sender "
                     "must now wait for an ACK that opens the window"),
                     "它正好填满了对端通告的窗口：发送方必须等到打开窗口的确认"),
    an.KEEP_ALIVE_ACK: (("the ACK answering a keep-alive probe: the peer is still there "
                        "(RFC 9293 3.8.4)"), "对保活探测的确认：对端还在（RFC 9293 3.8.4）"),
    an.WINDOW_UPDATE: ("a bare ACK that only changes the window: the receiver made room",
                       "只改变窗口的纯确认：接收方腾出了空间"),
    an.ACKED_UNSEEN: ("it acknowledges data the capture never showed: the capture missed it",
                      "它确认了抓包中从未出现的数据：抓包漏掉了"),
}
