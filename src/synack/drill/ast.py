"""A parsed packetdrill script, as plain frozen records.

A script is a header of ``--name=value`` options, an optional init command (the
first backquoted line, usually ``../common/defaults.sh``), then events, each a
time and an action:

- :class:`SyscallEvent`: ``connect(3, ..., ...) = -1 EINPROGRESS (note)``, whose
  arguments and result are :data:`Expr` trees (ints, strings, lists, structs,
  names of constants, ``...``, ``a|b``, ``name=value`` fields);
- :class:`PacketEvent`: ``< S 0:0(0) win 1000 <mss 1460,nop>`` (TCP) or an
  :class:`IcmpEvent` (``< icmp unreachable frag_needed mtu 800 [1:1001(1000)]``);
- :class:`ShellEvent`: a backquoted shell command;
- :class:`CodeEvent`: a ``%{ python }%`` block.

Times are integer microseconds, as packetdrill keeps them (``.1`` is 100000).
Every record carries the script line it came from. Nothing here knows about a
stack: :mod:`synack.drill.parse` builds these records, the runner reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class TimeKind(Enum):
    """How an event's time is written (packetdrill's ``time_type``)."""

    ABSOLUTE = "absolute"          # ``0.100``: since the first event
    RELATIVE = "relative"          # ``+0.1``: since the previous event
    ANY = "any"                    # ``*``: outbound packets only, whenever they come
    ABSOLUTE_RANGE = "abs-range"   # ``0.1~0.2``
    RELATIVE_RANGE = "rel-range"   # ``+0.1~+0.2``


@dataclass(frozen=True, slots=True)
class Time:
    """When an event happens; ``end_us`` is the far end of a range."""

    kind: TimeKind
    us: int = 0
    end_us: int | None = None

    def text(self) -> str:
        def sec(us: int) -> str:
            return f"{us / 1e6:.6f}".rstrip("0").rstrip(".") or "0"
        if self.kind is TimeKind.ANY:
            return "*"
        plus = "+" if self.kind in (TimeKind.RELATIVE, TimeKind.RELATIVE_RANGE) else ""
        if self.end_us is None:
            return f"{plus}{sec(self.us)}"
        return f"{plus}{sec(self.us)}~{plus}{sec(self.end_us)}"


# --- expressions (syscall arguments and results) ------------------------------------

@dataclass(frozen=True, slots=True)
class Int:
    """An integer literal; ``hex`` keeps how it was written."""

    value: int
    hex: bool = False


@dataclass(frozen=True, slots=True)
class Str:
    """A quoted string; ``"abc"...`` (``truncated``) matches any string starting so."""

    value: str
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Name:
    """A bare word: a constant (``SOL_SOCKET``), ``NULL``, or a -D symbol left as text."""

    name: str


@dataclass(frozen=True, slots=True)
class Ellipsis_:
    """``...``: any value (an input argument the runner fills, or an unchecked result)."""


ELLIPSIS = Ellipsis_()


@dataclass(frozen=True, slots=True)
class BinOp:
    """``left | right`` (the only operator the language has)."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Field:
    """``name=value`` inside a struct, or ``name(arg)=value`` (``msg_iov(1)=[...]``)."""

    name: str
    value: Expr
    arg: Expr | None = None


@dataclass(frozen=True, slots=True)
class ListExpr:
    """``[a, b]``: an array, an int pointer (``[1]``) or an iovec list."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Struct:
    """``{a, b}`` or ``{l_onoff=1, l_linger=0}``: items are expressions or :class:`Field`."""

    items: tuple[Expr, ...]

    def field(self, name: str) -> Expr | None:
        for item in self.items:
            if isinstance(item, Field) and item.name == name:
                return item.value
        return None


@dataclass(frozen=True, slots=True)
class Call:
    """``htons(8080)``, ``inet_addr("1.2.3.4")``: a function applied to arguments."""

    name: str
    args: tuple[Expr, ...]


Expr = Int | Str | Name | Ellipsis_ | BinOp | Field | ListExpr | Struct | Call


# --- packets -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TcpOption:
    """One TCP option as written.

    ``kind`` is the script word: ``nop``, ``eol``, ``mss``, ``wscale``, ``sackOK``,
    ``sack``, ``TS``, ``FO``, ``FOEXP``, ``md5``. ``value`` holds mss / wscale,
    ``val``/``ecr`` the timestamps, ``blocks`` the SACK blocks, ``cookie`` the Fast
    Open cookie or MD5 signature as hex text (``""`` for an empty cookie).
    """

    kind: str
    value: int | None = None
    val: int | None = None
    ecr: int | None = None
    blocks: tuple[tuple[int, int], ...] = ()
    cookie: str | None = None

    def text(self) -> str:
        k = self.kind
        if k in ("mss", "wscale"):
            return f"{k} {self.value}"
        if k == "TS":
            return f"TS val {self.val} ecr {self.ecr}"
        if k == "sack":
            return "sack " + " ".join(f"{a}:{b}" for a, b in self.blocks)
        if k in ("FO", "FOEXP", "md5"):
            return f"{k} {self.cookie}" if self.cookie else k
        return k


@dataclass(frozen=True, slots=True)
class IpInfo:
    """``[ect0]``, ``(tos 0x10)``, ``[ttl 64]``: checks and values for the IP header.

    ``ecn`` is one of ``noecn ect0 ect1 ce ect01`` (``ect01``: either ECT codepoint).
    """

    ecn: str | None = None
    tos: int | None = None
    ttl: int | None = None
    flowlabel: int | None = None


@dataclass(frozen=True, slots=True)
class TcpPacket:
    """A TCP segment as written: ``S. 0:0(0) ack 1 win 5792 <mss 1460,...>``.

    ``flags`` is the flag text without the ack dot (``S``, ``P``, ``F``, ``R``, ``E``,
    ``W``, ``U``, ``-`` for none); ``ack_flag`` says the ``.`` (ACK) was there.
    ``options`` is ``None`` for ``<...>`` (not checked); an empty tuple means the
    segment has no options. ``win`` is ``None`` when not given (not checked outbound).
    """

    flags: str
    ack_flag: bool
    seq: int
    end_seq: int
    length: int
    ack: int | None = None
    win: int | None = None
    urg: int | None = None
    options: tuple[TcpOption, ...] | None = ()
    src_port: int | None = None
    dst_port: int | None = None

    def flags_text(self) -> str:
        return (self.flags if self.flags != "-" else "") + ("." if self.ack_flag else "") or "-"


@dataclass(frozen=True, slots=True)
class IcmpPacket:
    """``icmp unreachable frag_needed mtu 800 [1:1001(1000)]``.

    ``echoed`` is the sequence range of the TCP segment quoted in the ICMP payload
    (``None`` when not written: the runner quotes the last segment sent).
    """

    type_name: str
    code_name: str | None = None
    mtu: int | None = None
    echoed: tuple[int, int, int] | None = None


@dataclass(frozen=True, slots=True)
class PacketEvent:
    """An inbound (``<``, injected) or outbound (``>``, expected) packet."""

    line: int
    time: Time
    direction: str            # "<" or ">"
    packet: TcpPacket | IcmpPacket
    ip: IpInfo = field(default_factory=IpInfo)
    text: str = ""            # the packet as written, for messages

    @property
    def inbound(self) -> bool:
        return self.direction == "<"


@dataclass(frozen=True, slots=True)
class SyscallEvent:
    """``[...END] name(args) = result [ERRNO] [(note)]``.

    ``end`` is set for a blocking call (``+.1...0.200 connect(...)``): the call
    starts at ``time`` and must return at ``end`` (same kind of time as the start).
    """

    line: int
    time: Time
    name: str
    args: tuple[Expr, ...]
    result: Expr
    errno: str | None = None
    note: str | None = None
    end: Time | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class ShellEvent:
    """A backquoted command, run at its time."""

    line: int
    time: Time
    command: str


@dataclass(frozen=True, slots=True)
class CodeEvent:
    """A ``%{ }%`` Python block, run at the end of the script with TCP_INFO names."""

    line: int
    time: Time
    code: str


Event = PacketEvent | SyscallEvent | ShellEvent | CodeEvent


@dataclass(frozen=True, slots=True)
class Script:
    """A whole script: header options, init/cleanup commands, events in order."""

    path: str
    options: tuple[tuple[str, str | None], ...]
    init_command: str | None
    events: tuple[Event, ...]
    cleanup_command: str | None = None
    init_line: int = 0

    def option(self, name: str) -> str | None:
        """The last value given to ``--name`` in the header (None if absent)."""
        found = None
        for key, value in self.options:
            if key == name:
                found = value if value is not None else ""
        return found
