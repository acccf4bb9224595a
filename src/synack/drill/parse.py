"""packetdrill scripts to :mod:`synack.drill.ast` records, by recursive descent.

The grammar is packetdrill's (its ``parser.y``), restated for the parts the Linux
``gtests/net/tcp`` scripts use::

    script     := option* [BACKQUOTED] event* [BACKQUOTED]
    option     := OPTION ['=' value]
    event      := time action
    time       := '+' t ['~' '+' t] | t ['~' t] | '*'
    action     := packet | syscall | BACKQUOTED | CODE
    packet     := ('<'|'>') [ipinfo] (tcp | 'icmp' ...)
    tcp        := [port '>' port] flags seq ['ack' N] ['win' N] ['urg' N] ['<' opts '>']
    syscall    := ['...' t] WORD '(' [expr {',' expr}] ')' '=' expr [ERRNO] ['(' note ')']
    expr       := primary {'|' primary}
    primary    := '...' | INT | STRING+ ['...'] | '[' exprs ']' | '{' exprs '}'
                | WORD ['(' exprs ')'] ['=' expr]

An error raises :class:`~synack.drill.lexer.DrillSyntaxError` naming the file and
line, as packetdrill does (``script.pkt:12: error: ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from synack.drill import ast
from synack.drill.lexer import DrillSyntaxError, Token, tokenize

MAX_DEPTH = 64            # nesting of [ { ( and terms of |: far beyond any real script
_ECN_WORDS = ("noecn", "ect0", "ect1", "ce", "ect01")
_IP_WORDS = (*_ECN_WORDS, "tos", "ttl", "flowlabel")


def parse_file(path: str | Path, defines: Mapping[str, str] | None = None) -> ast.Script:
    """Parse the script at ``path`` (an unreadable file is a one-line error)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        raise DrillSyntaxError(str(path), 0, f"cannot read script: {exc.strerror}") from None
    return parse_text(text, str(path), defines)


def parse_text(text: str, path: str = "<script>",
               defines: Mapping[str, str] | None = None) -> ast.Script:
    """Parse a whole script held in a string."""
    return _Parser(tokenize(text, path, defines), path, text).script()


class _Parser:
    def __init__(self, tokens: list[Token], path: str, text: str) -> None:
        self.toks = tokens
        self.i = 0
        self.path = path
        self.lines = text.splitlines()
        self.depth = 0

    # --- token helpers ---------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> Token:
        t = self.toks[self.i]
        if t.kind != "EOF":
            self.i += 1
        return t

    def error(self, reason: str, tok: Token | None = None) -> DrillSyntaxError:
        return DrillSyntaxError(self.path, (tok or self.tok).line, reason)

    def is_char(self, ch: str, tok: Token | None = None) -> bool:
        t = tok or self.tok
        return t.kind == "CHAR" and t.value == ch

    def is_word(self, *words: str, tok: Token | None = None) -> bool:
        t = tok or self.tok
        return t.kind == "WORD" and (not words or t.value in words)

    def expect_char(self, ch: str, what: str = "") -> Token:
        if not self.is_char(ch):
            raise self.error(f"syntax error: expected '{ch}'{what} but found {self.tok.text!r}")
        return self.next()

    def expect_int(self, what: str) -> int:
        t = self.tok
        if t.kind not in ("INTEGER", "HEX"):
            raise self.error(f"syntax error: expected {what} (an integer) but found {t.text!r}")
        self.next()
        assert isinstance(t.value, int)
        return t.value

    def expect_word(self, what: str, *words: str) -> str:
        if not self.is_word(*words):
            raise self.error(f"syntax error: expected {what} but found {self.tok.text!r}")
        return str(self.next().value)

    def source(self, start: int) -> str:
        """The script text from token ``start`` to the end of that line, no comment."""
        tok = self.toks[start]
        if not 0 < tok.line <= len(self.lines):
            return tok.text
        line = self.lines[tok.line - 1]
        col = line.find(tok.text)
        text = line[col:] if col >= 0 else line
        return text.split("//", 1)[0].strip()

    # --- script ------------------------------------------------------------------------

    def script(self) -> ast.Script:
        options: list[tuple[str, str | None]] = []
        while self.tok.kind == "OPTION":
            options.append(self.option())
        init, init_line = None, 0
        if self.tok.kind == "BACKQUOTED":
            init_line = self.tok.line
            init = str(self.next().value)
        events: list[ast.Event] = []
        cleanup = None
        while self.tok.kind != "EOF":
            if self.tok.kind == "BACKQUOTED" and self.peek().kind == "EOF":
                cleanup = str(self.next().value)
                break
            events.append(self.event())
        if not events:
            raise self.error("syntax error: the script has no events")
        if events[0].time.us != 0 or events[0].time.kind is ast.TimeKind.ANY:
            raise DrillSyntaxError(self.path, events[0].line, "first event should be at time 0")
        return ast.Script(self.path, tuple(options), init, tuple(events), cleanup, init_line)

    def option(self) -> tuple[str, str | None]:
        name = str(self.next().value)
        if not self.is_char("="):
            return name, None
        self.next()
        t = self.next()
        if t.kind in ("EOF", "CHAR"):
            raise self.error(f"syntax error: bad value for option --{name}", t)
        value = t.text if t.kind not in ("STRING", "BACKQUOTED") else str(t.value)
        if t.kind == "WORD" and self.is_char("="):       # --define=NAME=VALUE
            self.next()
            v = self.next()
            value = f"{value}={v.text}"
        return name, value

    # --- events ------------------------------------------------------------------------

    def time_value(self) -> int:
        t = self.tok
        if t.kind == "FLOAT":
            assert isinstance(t.value, float)
            us = round(t.value * 1_000_000)
        elif t.kind == "INTEGER":
            assert isinstance(t.value, int)
            us = t.value * 1_000_000
        else:
            raise self.error(f"syntax error: expected a time but found {t.text!r}")
        if us < 0:
            raise self.error("negative time")
        self.next()
        return us

    def event_time(self) -> ast.Time:
        if self.is_char("*"):
            self.next()
            return ast.Time(ast.TimeKind.ANY)
        if self.is_char("+"):
            self.next()
            start = self.time_value()
            if self.is_char("~"):
                self.next()
                self.expect_char("+", " (a relative range is +a~+b)")
                end = self.time_value()
                return self._range(ast.TimeKind.RELATIVE_RANGE, start, end)
            return ast.Time(ast.TimeKind.RELATIVE, start)
        start = self.time_value()
        if self.is_char("~"):
            self.next()
            end = self.time_value()
            return self._range(ast.TimeKind.ABSOLUTE_RANGE, start, end)
        return ast.Time(ast.TimeKind.ABSOLUTE, start)

    def _range(self, kind: ast.TimeKind, start: int, end: int) -> ast.Time:
        if end < start:
            raise self.error("time range is backwards")
        return ast.Time(kind, start, end)

    def event(self) -> ast.Event:
        line = self.tok.line
        if self.tok.kind not in ("FLOAT", "INTEGER") and not (
                self.is_char("+") or self.is_char("*")):
            raise self.error(f"syntax error: expected an event time but found {self.tok.text!r}")
        time = self.event_time()
        t = self.tok
        event: ast.Event
        if self.is_char("<") or self.is_char(">"):
            event = self.packet(line, time)
        elif t.kind == "BACKQUOTED":
            self.next()
            event = ast.ShellEvent(line, time, str(t.value))
        elif t.kind == "CODE":
            self.next()
            event = ast.CodeEvent(line, time, str(t.value))
        elif t.kind == "ELLIPSIS" or (t.kind == "WORD" and self.is_char("(", self.peek())):
            event = self.syscall(line, time)
        else:
            raise self.error(f"syntax error: expected a packet, a system call, a `command` "
                             f"or %{{ code }}% but found {t.text!r}")
        outbound = isinstance(event, ast.PacketEvent) and not event.inbound
        if time.kind is ast.TimeKind.ANY and not outbound:
            raise DrillSyntaxError(self.path, line,
                                   "event time <star> can only be used with outbound packets")
        if time.end_us is not None and not outbound:
            raise DrillSyntaxError(self.path, line,
                                   "event time range can only be used with outbound packets")
        return event

    # --- packets -----------------------------------------------------------------------

    def packet(self, line: int, time: ast.Time) -> ast.PacketEvent:
        direction = str(self.next().value)
        start = self.i
        ip = self.ip_info()
        if self.is_word("ipv4", "ipv6", "gre", "GREv0", "mpls"):
            raise self.error(f"unsupported: encapsulated packets ({self.tok.text})")
        pkt: ast.TcpPacket | ast.IcmpPacket
        if self.is_word("icmp"):
            self.next()
            pkt = self.icmp()
        elif self.is_word("udp"):
            raise self.error("unsupported: UDP packets")
        else:
            pkt = self.tcp(direction)
        return ast.PacketEvent(line, time, direction, pkt, ip, self.source(start - 1))

    def ip_info(self) -> ast.IpInfo:
        close = {"[": "]", "(": ")"}
        if not (self.tok.kind == "CHAR" and self.tok.value in close
                and self.is_word(*_IP_WORDS, tok=self.peek())):
            return ast.IpInfo()
        end = close[str(self.next().value)]
        ecn = tos = ttl = flowlabel = None
        while not self.is_char(end):
            word = self.expect_word("an IP field (ect0, ect1, ce, noecn, ect01, tos, ttl, "
                                    "flowlabel)", *_IP_WORDS)
            if word in _ECN_WORDS:
                ecn = word
            elif word == "tos":
                tos = self.expect_int("a tos value")
            elif word == "ttl":
                ttl = self.expect_int("a ttl")
            else:
                flowlabel = self.expect_int("a flow label")
            if self.is_char(","):
                self.next()
        self.next()
        return ast.IpInfo(ecn, tos, ttl, flowlabel)

    def tcp(self, direction: str) -> ast.TcpPacket:
        src_port = dst_port = None
        if self.tok.kind == "INTEGER" and self.is_char(">", self.peek()):
            src_port = self.expect_int("a port")
            self.next()
            dst_port = self.expect_int("a port")
        flags, ack_flag = self.flags()
        seq_tok = self.tok
        seq = self.expect_int("a sequence number (start:end(length))")
        self.expect_char(":", " in start:end(length)")
        end = self.expect_int("an end sequence number")
        self.expect_char("(", " in start:end(length)")
        length = self.expect_int("a payload length")
        self.expect_char(")", " in start:end(length)")
        if (end - seq) % (1 << 32) != length:
            raise self.error(f"inconsistent segment: {seq}:{end} holds {end - seq} bytes, "
                             f"not ({length})", seq_tok)
        ack = win = urg = None
        if self.is_word("ack"):
            self.next()
            ack = self.expect_int("an ack number")
        if self.is_word("win"):
            self.next()
            win = self.expect_int("a window")
        if self.is_word("urg"):
            self.next()
            urg = self.expect_int("an urgent pointer")
        options: tuple[ast.TcpOption, ...] | None = ()
        if self.is_char("<"):
            self.next()
            if self.tok.kind == "ELLIPSIS":
                self.next()
                options = None
            else:
                opts = [self.tcp_option()]
                while self.is_char(","):
                    self.next()
                    opts.append(self.tcp_option())
                options = tuple(opts)
            self.expect_char(">", " to end the option list")
        return ast.TcpPacket(flags, ack_flag, seq, end, length, ack, win, urg, options,
                             src_port, dst_port)

    def flags(self) -> tuple[str, bool]:
        t = self.tok
        if self.is_char("."):
            self.next()
            return "", True
        if self.is_char("-"):
            self.next()
            return "", False
        if t.kind == "WORD":
            self.next()
            word = str(t.value)
            bad = set(word) - set("SPFRUEWA")
            if bad:
                raise self.error(f"syntax error: bad TCP flags {word!r}", t)
            if self.is_char("."):
                self.next()
                return word, True
            return word, False
        if t.kind == "FLOAT":                       # AccECN ".1" style: not supported
            raise self.error("unsupported: AccECN flag syntax")
        raise self.error(f"syntax error: expected TCP flags (S, S., ., P., F., R, -) "
                         f"but found {t.text!r}")

    def hex_blob(self) -> str:
        t = self.tok
        if t.kind in ("WORD", "INTEGER", "HEX"):
            self.next()
            return t.text if t.kind != "WORD" else str(t.value)
        return ""

    def tcp_option(self) -> ast.TcpOption:
        t = self.tok
        if t.kind != "WORD":
            raise self.error(f"syntax error: expected a TCP option but found {t.text!r}")
        kind = str(self.next().value)
        if kind in ("nop", "eol", "sackOK"):
            return ast.TcpOption(kind)
        if kind in ("mss", "wscale"):
            return ast.TcpOption(kind, value=self.expect_int(f"the {kind} value"))
        if kind == "TS":
            self.expect_word("'val'", "val")
            val = self.expect_int("the TS value")
            self.expect_word("'ecr'", "ecr")
            return ast.TcpOption(kind, val=val, ecr=self.expect_int("the TS echo reply"))
        if kind == "sack":
            blocks = []
            while self.tok.kind == "INTEGER" and self.is_char(":", self.peek()):
                left = self.expect_int("a SACK block start")
                self.next()
                blocks.append((left, self.expect_int("a SACK block end")))
            if not blocks:
                raise self.error("syntax error: sack needs blocks like 1001:2001")
            return ast.TcpOption(kind, blocks=tuple(blocks))
        if kind in ("FO", "FOEXP", "md5"):
            cookie = self.hex_blob()
            if kind == "md5" and not cookie:
                raise self.error("syntax error: md5 needs a signature")
            return ast.TcpOption(kind, cookie=cookie)
        if kind == "ECN":
            raise self.error("unsupported: AccECN option")
        raise self.error(f"syntax error: unknown TCP option {kind!r}", t)

    def icmp(self) -> ast.IcmpPacket:
        type_name = self.expect_word("an ICMP type (unreachable, time_exceeded, ...)")
        code = None
        if self.tok.kind == "WORD" and not self.is_word("mtu", "id"):
            code = str(self.next().value)
        mtu = None
        if self.is_word("mtu"):
            self.next()
            mtu = self.expect_int("an MTU")
        if self.is_word("id"):
            self.next()
            self.expect_int("an echo id")
        echoed = None
        if self.is_char("["):
            self.next()
            if self.is_word("udp", "raw"):
                raise self.error("unsupported: ICMP quoting a UDP or raw packet")
            seq = self.expect_int("a sequence number")
            self.expect_char(":")
            end = self.expect_int("an end sequence number")
            self.expect_char("(")
            length = self.expect_int("a payload length")
            self.expect_char(")")
            self.expect_char("]")
            echoed = (seq, end, length)
        return ast.IcmpPacket(type_name, code, mtu, echoed)

    # --- system calls --------------------------------------------------------------------

    def syscall(self, line: int, time: ast.Time) -> ast.SyscallEvent:
        start = self.i
        end = None
        if self.tok.kind == "ELLIPSIS":
            self.next()
            end_us = self.time_value()
            kind = (ast.TimeKind.RELATIVE if time.kind is ast.TimeKind.RELATIVE
                    else ast.TimeKind.ABSOLUTE)
            end = ast.Time(kind, end_us)
        name = self.expect_word("a system call name")
        self.expect_char("(")
        args: list[ast.Expr] = []
        if not self.is_char(")"):
            args = self.expr_list(")")
        self.expect_char(")", " to end the arguments")
        self.expect_char("=", " before the expected result")
        result = self.expr()
        errno = note = None
        if self.tok.kind == "WORD" and self.tok.line == self.toks[self.i - 1].line:
            errno = str(self.next().value)
        if self.is_char("(") and self.tok.line == self.toks[self.i - 1].line:
            note = self.note()
        text = self.source(start)
        return ast.SyscallEvent(line, time, name, tuple(args), result, errno, note, end, text)

    def note(self) -> str:
        self.next()
        words: list[str] = []
        depth = 1
        while True:
            t = self.next()
            if t.kind == "EOF":
                raise self.error("syntax error: unterminated note ( ... )", t)
            if self.is_char("(", t):
                depth += 1
            elif self.is_char(")", t):
                depth -= 1
                if not depth:
                    return " ".join(words)
            words.append(t.text)

    def expr_list(self, close: str) -> list[ast.Expr]:
        items = [self.expr()]
        while self.is_char(","):
            self.next()
            if self.is_char(close):        # a trailing comma
                break
            items.append(self.expr())
        return items

    def expr(self) -> ast.Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested more than {MAX_DEPTH} deep")
        left = self.primary()
        terms = 1
        while self.is_char("|"):
            self.next()
            terms += 1
            if terms > MAX_DEPTH:
                raise self.error(f"more than {MAX_DEPTH} terms joined by '|'")
            left = ast.BinOp("|", left, self.primary())
        self.depth -= 1
        return left

    def primary(self) -> ast.Expr:
        t = self.tok
        if t.kind == "ELLIPSIS":
            self.next()
            return ast.ELLIPSIS
        if t.kind in ("INTEGER", "HEX"):
            self.next()
            assert isinstance(t.value, int)
            return ast.Int(t.value, t.kind == "HEX")
        if t.kind == "STRING":
            parts = []
            while self.tok.kind == "STRING":
                parts.append(str(self.next().value))
            truncated = self.tok.kind == "ELLIPSIS"
            if truncated:
                self.next()
            return ast.Str(_unescape("".join(parts)), truncated)
        if self.is_char("["):
            self.next()
            items = [] if self.is_char("]") else self.expr_list("]")
            self.expect_char("]", " to end the list")
            return ast.ListExpr(tuple(items))
        if self.is_char("{"):
            self.next()
            items = [] if self.is_char("}") else self.expr_list("}")
            self.expect_char("}", " to end the struct")
            return ast.Struct(tuple(items))
        if t.kind == "WORD":
            self.next()
            name = str(t.value)
            arg: ast.Call | None = None
            if self.is_char("("):
                self.next()
                args = [] if self.is_char(")") else self.expr_list(")")
                self.expect_char(")")
                arg = ast.Call(name, tuple(args))
            if self.is_char("="):
                self.next()
                value = self.expr()
                inner = None
                if arg is not None:
                    inner = arg.args[0] if len(arg.args) == 1 else ast.ListExpr(arg.args)
                return ast.Field(name, value, inner)
            return arg if arg is not None else ast.Name(name)
        raise self.error(f"syntax error: expected an expression but found {t.text!r}")


def _unescape(s: str) -> str:
    """C escapes in a script string (``\\n``, ``\\0``, ``\\x41``, ``\\"``)."""
    if "\\" not in s:
        return s
    try:
        return s.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        return s
