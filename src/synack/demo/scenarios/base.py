"""What every scenario shares: the lab network, the Outcome, and small helpers.

A scenario builds a small network (client 192.0.2.1, server 192.0.2.2, 10 ms
each way unless said otherwise), runs applications on synack stacks, and
returns an :class:`Outcome`: the ladder, an explanation in English and in
Chinese (the language of the seeds), the sysctls and socket options that change
the behaviour with their values in the run, and ``facts`` -- numbers read off
the run that the tests check and the explanations quote. Nothing printed is
written by hand: every number comes from the segments and states of the run.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from synack.config import Sysctl
from synack.demo.driver import AppHost, ladder_steps
from synack.sim import LinkParams, Network
from synack.stack import Stack
from synack.tcp.isn import FixedIsn
from synack.trace.ladder import SegmentStep, StateStep, Step, render
from synack.wire.ipv4 import build_tcp_packet
from synack.wire.tcp import TcpSegment

CLIENT, SERVER = "192.0.2.1", "192.0.2.2"
CLIENT6, SERVER6 = "2001:db8::1", "2001:db8::2"   # with lab(ipv6=True)
MS = 1000
SECOND = 1_000_000
LANGS = ("en", "zh")

_HEADINGS = {"en": "What changes it (= the value in this run):",
             "zh": "相关参数（等号后是本次运行的取值）："}

# Scenarios pin their sysctls: Linux's defaults, plus what each scenario sets for its
# lesson (port-exhaustion's 4 ports, syn-flood-no-cookies' tcp_syncookies = 0, ...). A
# value saved with ``synack sysctl -w`` would make a run disagree with its explanation
# (fast-retransmit with tcp_sack = 0, keepalive with another tcp_keepalive_time), so
# ``synack demo`` does not read them, and says so.
PINNED = {
    "en": "Scenarios pin these values (Linux's defaults unless the scenario sets them), so that\n"
          "the explanation matches the run: values saved with `synack sysctl -w` are not used\n"
          "by `synack demo` (sim, serve, connect, scan and ping use them).",
    "zh": "这些取值由场景固定（除场景自己设置的以外都是 Linux 的默认值），以保证讲解与运行一致：\n"
          "`synack sysctl -w` 保存的值不用于 `synack demo`（sim、serve、connect、scan、ping 会用）。",
}
_IGNORED = {"en": "Saved with `synack sysctl -w` but not used here: {items}.",
            "zh": "已用 `synack sysctl -w` 保存、但本场景没有使用的值：{items}。"}
_THIS_RUN = {"en": "this run", "zh": "本次运行"}


@dataclass(frozen=True, slots=True)
class Tunable:
    """A sysctl or socket option that changes what a scenario shows, and its value in the run."""

    name: str
    value: str
    en: str
    zh: str

    def line(self, lang: str = "en") -> str:
        """``name = value  (what it does)``."""
        note = self.zh if lang == "zh" else self.en
        return f"{self.name} = {self.value}  ({note})"


def knob(cfg: Sysctl, name: str, en: str, zh: str) -> Tunable:
    """A sysctl with its current value read from ``cfg`` (the run's table)."""
    return Tunable(name, cfg.format(name).split(" = ", 1)[1].replace("\t", " "), en, zh)


@dataclass
class Outcome:
    """What a scenario produced."""

    name: str
    title: str
    ladder: list[str]
    explanation: str
    sysctls: list[Tunable]
    facts: dict[str, Any] = field(default_factory=dict)
    net: Network | None = None
    title_zh: str = ""
    explanation_zh: str = ""
    extra: list[str] = field(default_factory=list)   # e.g. ss-like tables, after the ladder

    def text(self, lang: str = "en", *, saved: dict[str, str] | None = None) -> str:
        """Everything a user sees from ``synack demo NAME --lang LANG``.

        ``saved`` maps the sysctls saved with ``synack sysctl -w`` that differ from
        Linux's defaults to their saved values; those this scenario lists are named
        as not used, with the value the run had.
        """
        if lang not in LANGS:
            raise ValueError(f"unknown language {lang!r} (choose from: {', '.join(LANGS)})")
        zh = lang == "zh"
        title = self.title_zh if zh and self.title_zh else self.title
        expl = self.explanation_zh if zh and self.explanation_zh else self.explanation
        out = [f"== {title} ==", "", *self.ladder]
        if self.extra:
            out += ["", *self.extra]
        out += ["", fold(expl.strip())]
        if self.sysctls:
            out += ["", _HEADINGS[lang]] + [f"  {t.line(lang)}" for t in self.sysctls]
        out += ["", PINNED[lang]]
        ignored = [f"{t.name} = {saved[t.name]} ({_THIS_RUN[lang]}: {t.value})"
                   for t in self.sysctls if saved and t.name in saved and saved[t.name] != t.value]
        if ignored:
            out.append(_IGNORED[lang].format(items="; ".join(ignored)))
        return "\n".join(out)


TEXT_WIDTH = 90   # display columns of an explanation line (a CJK character counts 2)
_BREAK_AFTER = " ，。；：、）"
_NO_BREAK_BEFORE = ",.;:!?)，。；：、）"


def _columns(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in "WF" else 1


def fold(text: str, width: int = TEXT_WIDTH) -> str:
    """Lines longer than ``width`` columns broken after a space or CJK punctuation.

    Explanations interpolate numbers from the run, so a line's length is only
    known at run time; shorter lines (and so tables) are left as they are. A
    line never breaks inside ``[...]`` (an analysis mark) or before punctuation.
    """
    out: list[str] = []
    for line in text.splitlines():
        while sum(map(_columns, line)) > width:
            cols, cut, depth = 0, 0, 0
            for i, ch in enumerate(line):
                cols += _columns(ch)
                if cols > width:
                    break
                depth += (ch == "[") - (ch == "]")
                nxt = line[i + 1] if i + 1 < len(line) else ""
                glued = ch == " " and "=" in (line[i - 1] if i else "", nxt)   # keep a = b
                if ch in _BREAK_AFTER and depth == 0 and nxt not in _NO_BREAK_BEFORE \
                        and not glued:
                    cut = i + 1
            if cut == 0:
                break                               # one unbreakable run: leave it long
            out.append(line[:cut].rstrip())
            line = line[cut:].lstrip(" ")
        out.append(line)
    return "\n".join(out)


@dataclass
class Lab:
    """A client and a server stack joined by one link."""

    net: Network
    client: AppHost
    server: AppHost
    ipv6: bool = False

    @property
    def c(self) -> Stack:
        """The client's stack."""
        return self.client.stack

    @property
    def s(self) -> Stack:
        """The server's stack."""
        return self.server.stack

    def steps(self) -> list[Step]:
        """Segments between client and server and both sides' state changes."""
        return ladder_steps(self.net, self.c, self.s)

    def ladder(self, steps: Iterable[Step] | None = None, *, left: str = "client",
               right: str = "server") -> list[str]:
        """The diagram of ``steps`` (default: everything)."""
        return render(self.steps() if steps is None else steps,
                      left=f"{left} {CLIENT6 if self.ipv6 else CLIENT}",
                      right=f"{right} {SERVER6 if self.ipv6 else SERVER}")

    def segments(self, src: str = "left") -> list[TcpSegment]:
        """The segments sent by one side ("left" is the client)."""
        return [st.seg for st in self.steps() if isinstance(st, SegmentStep) and st.src == src]


def lab(seed: int = 1, *, delay_us: int = 10 * MS, client_isn: int | None = None,
        server_isn: int | Iterable[int] | None = None, client_cfg: Sysctl | None = None,
        server_cfg: Sysctl | None = None, back: LinkParams | None = None,
        ipv6: bool = False) -> Lab:
    """Two stacks and a link; fixed ISNs when given. ``ipv6``: both hosts dual-stack
    (CLIENT6, SERVER6 beside their IPv4 addresses), the ladder named by IPv6."""
    net = Network(seed)
    s_isn = [server_isn] if isinstance(server_isn, int) else server_isn
    c = Stack(CLIENT, seed=seed, cfg=client_cfg, name="client",
              isn=FixedIsn([client_isn]) if client_isn is not None else None,
              addr6=CLIENT6 if ipv6 else None)
    s = Stack(SERVER, seed=seed + 1, cfg=server_cfg, name="server",
              isn=FixedIsn(s_isn) if s_isn is not None else None,
              addr6=SERVER6 if ipv6 else None)
    ch, sh = AppHost(c), AppHost(s)
    net.add_host(CLIENT, ch)
    net.add_host(SERVER, sh)
    net.add_link(CLIENT, SERVER, LinkParams(delay_us=delay_us), b_to_a=back)
    if ipv6:
        net.add_host(CLIENT6, ch)
        net.add_host(SERVER6, sh)
        net.add_link(CLIENT6, SERVER6, LinkParams(delay_us=delay_us), b_to_a=back)
    return Lab(net, ch, sh, ipv6)


def drain(stack: Stack, fd: int, now: int) -> tuple[bytes, bool]:
    """Read everything available: (data, eof). An error counts as the end."""
    chunks: list[bytes] = []
    while True:
        try:
            data = stack.recv(fd, 65536, now=now)
        except BlockingIOError:
            return b"".join(chunks), False
        except OSError:
            return b"".join(chunks), True
        if not data:
            return b"".join(chunks), True
        chunks.append(data)


def find(segs: Iterable[TcpSegment], flags: int, *, without: int = 0,
         payload: bool | None = None) -> TcpSegment | None:
    """The first segment with all of ``flags``, none of ``without``."""
    for seg in segs:
        if seg.flags & flags == flags and not seg.flags & without and (
                payload is None or bool(seg.payload) == payload):
            return seg
    return None


def first_change(stack: Stack, *, new: str | None = None, old: str | None = None,
                 port: int | None = None) -> int | None:
    """When ``stack`` first entered ``new`` (or left ``old``), optionally for one local port."""
    for key, ch in stack.changes:
        if port is not None and key[1] != port:
            continue
        if (new is None or str(ch.new) == new) and (old is None or str(ch.old) == old):
            return ch.now
    return None


def only_ports(steps: Iterable[Step], left: Stack, right: Stack, ports: set[int]) -> list[Step]:
    """Keep the segments and state changes of the left side's connections on ``ports``.

    State steps carry no port, so they are matched back to each stack's
    ``changes`` by time, old and new state (good enough for a ladder).
    """
    keep = {("left", ch.now, str(ch.old), str(ch.new)) for key, ch in left.changes
            if key[1] in ports}
    keep |= {("right", ch.now, str(ch.old), str(ch.new)) for key, ch in right.changes
             if key[3] in ports}
    out: list[Step] = []
    for st in steps:
        if isinstance(st, SegmentStep):
            port = st.seg.src_port if st.src == "left" else st.seg.dst_port
            if port in ports:
                out.append(st)
        elif (st.side, st.t_us, st.old, st.new) in keep:
            out.append(st)
    return out


def with_note(steps: list[Step], pick: Callable[[SegmentStep], bool], note: str) -> list[Step]:
    """The steps with ``note`` on every segment step that ``pick`` selects."""
    return [dataclasses.replace(st, note=note) if isinstance(st, SegmentStep) and pick(st)
            else st for st in steps]


def ss_table(stack: Stack, *, title: str) -> list[str]:
    """``ss -tan``-like rows of one host, with a heading line."""
    head = f"  {'State':<13}{'Recv-Q':>7}{'Send-Q':>7}  {'Local Address:Port':<23}"
    rows = [title, head + "Peer Address:Port"]
    for r in stack.connections():
        local = f"{r.local[0]}:{r.local[1]}"
        rows.append(f"  {r.state!s:<13}{r.recv_q:>7}{r.send_q:>7}  {local:<23}"
                    f"{r.peer[0]}:{r.peer[1]}")
    return rows


def state_counts(stack: Stack) -> dict[str, int]:
    """How many sockets of the host are in each state."""
    counts: dict[str, int] = {}
    for r in stack.connections():
        counts[str(r.state)] = counts.get(str(r.state), 0) + 1
    return counts


class RawHost:
    """A host without a TCP stack: it sends crafted segments and keeps what comes back.

    It stands for a packet generator (a scanner, a flood, a network that
    delivers an old duplicate): ``send`` queues a segment with any source
    address, ``received`` collects every packet addressed to it.
    """

    def __init__(self) -> None:
        self._out: list[bytes] = []
        self.received: list[bytes] = []
        self._ident = 0

    def send(self, src: str, dst: str, seg: TcpSegment) -> None:
        """Queue one segment from ``src`` (which may be spoofed) to ``dst``."""
        self._ident = (self._ident + 1) & 0xFFFF
        self._out.append(build_tcp_packet(src, dst, seg, ttl=64, ident=self._ident))

    def receive(self, packet: bytes, *, now: int) -> None:
        """Keep every packet that arrives."""
        self.received.append(packet)

    def transmit(self, *, now: int) -> list[bytes]:
        """What was queued since the last call."""
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> int | None:
        """A raw host has no timers."""
        return None

    def tick(self, *, now: int) -> None:
        """Nothing to do."""


def is_state(step: Step, side: str, new: str) -> bool:
    """True for a state step of ``side`` entering ``new``."""
    return isinstance(step, StateStep) and step.side == side and step.new == new
