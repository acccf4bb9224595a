"""Running a parsed script against a :class:`~synack.drill.target.Target`.

Theory of operation
-------------------
Events run in script order, as packetdrill's ``run.c`` runs them:

- A relative time (``+0.1``) counts from the end of the previous event (the
  current time), except that consecutive inbound packets count from each other's
  script times, so they do not drift. ``*`` is any time; ranges ``a~b`` accept
  anything between. Tolerance is ``--tolerance_usecs`` (4000 us), widened to
  ``--tolerance_percent`` (12.5 %) of the gap since the previous event.
- An inbound packet, a call, a command or a code block first waits until its time
  and is then checked to be on time (it is late when an earlier outbound packet
  came late). An outbound packet is not waited for: the next packet the stack
  sent is taken at once (up to 2 s past its time) and checked for content, then
  for time. Segments the stack split are joined to the length the script expects
  (packetdrill's aggregation), unless ``--strict_segments``.
- A call with an end time (``+0...0.2 accept(...)``) may block: the runner goes on
  with the next events and checks, when the call returns, that it returned at its
  end time with the expected result.
- ``%{ }%`` blocks take a TCP_INFO snapshot of the socket under test at their time
  and run, in order, in one Python namespace, after the last event.

The socket under test and the mapping of script sequence numbers to live ones are
packetdrill's (:class:`~synack.drill.packets.Conn`): a script SYN to a listener
starts a new passive connection, an outbound SYN after ``connect`` an active one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from synack.drill import ast
from synack.drill.calls import (
    FD_RESULT,
    CallError,
    check_result,
    evaluate,
    expected_int,
    make_call,
)
from synack.drill.constants import SYMBOLS
from synack.drill.packets import (
    Conn,
    Live,
    PacketError,
    aggregate,
    build_icmp,
    build_tcp,
    live_text,
    parse_live,
    script_text,
    verify,
)
from synack.drill.target import SyscallResult, Target, Unsupported

SNIFF_SLACK_US = 2_000_000     # packetdrill waits this long past an outbound packet's time
AWAIT_IDLE_US = 1_000_000      # ... and this long for a blocked call (await_idle_thread)
EPHEMERAL_BASE = 40000         # remote ports of passive connections the script opens


@dataclass(frozen=True, slots=True)
class RunOptions:
    """The command-line and header options that change how a script runs."""

    tolerance_us: int = 4000
    tolerance_percent: float = 12.5
    ts_tick_us: int = 0
    ts_ecr_scaled: bool = False
    strict_segments: bool = False
    local_ip: str = "192.168.0.1"
    remote_ip: str = "192.0.2.1"
    bind_port: int = 8080
    connect_port: int = 8080


class Failure(Exception):
    """The script failed; ``str()`` is packetdrill's message (``FILE:LINE: error ...``)."""

    def __init__(self, message: str, *, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


@dataclass(slots=True)
class Outcome:
    """How one script went."""

    path: str
    passed: bool
    message: str = ""
    unsupported: bool = False
    detail: str = ""


@dataclass(slots=True)
class _Pending:
    ev: ast.SyscallEvent
    start_us: int
    end_us: int


@dataclass(slots=True)
class _Code:
    ev: ast.CodeEvent
    info: dict[str, int] = field(default_factory=dict)


def _sec(us: int) -> str:
    return f"{us / 1e6:.6f}"


class Runner:
    """One script against one target."""

    def __init__(self, script: ast.Script, target: Target, opts: RunOptions,
                 log: Callable[[str], None] | None = None) -> None:
        self.script = script
        self.target = target
        self.opts = opts
        self.log = log
        self.conns: list[Conn] = []
        self.sut: Conn | None = None
        self.by_fd: dict[int, Conn] = {}
        self.fds: dict[int, int] = {}          # script fd -> target fd
        self.pending: _Pending | None = None
        self.codes: list[_Code] = []
        self.live0 = 0
        self.last_ev: ast.Event | None = None
        self.last_us = 0                       # script time of the previous event
        self.ev_line = 0
        self.next_port = EPHEMERAL_BASE
        self.init_done = False

    # --- driving ---------------------------------------------------------------------

    def run(self) -> Outcome:
        """Every event, then the code blocks, then the cleanup command (packetdrill runs
        it whether the script passed or not, once the init command ran); never raises
        for a script's failure."""
        out = self._run()
        if self.init_done and self.script.cleanup_command:
            err = self.target.shell(self.script.cleanup_command)
            if err and out.passed:
                return Outcome(out.path, False, f"{out.path}: error executing cleanup "
                                                f"command: {err}", err.startswith("unsupported"))
        return out

    def _run(self) -> Outcome:
        path = self.script.path
        try:
            if self.script.init_command:
                err = self.target.shell(self.script.init_command)
                if err:
                    raise Failure(f"{path}:{self.script.init_line}: error executing init "
                                  f"command: {err}", unsupported=err.startswith("unsupported"))
            self.init_done = True
            self.live0 = self.target.now_us()
            for ev in self.script.events:
                self.ev_line = ev.line
                self.event(ev)
                self.check_pending()
                self.last_ev = ev
            self.finish_pending()
            self.run_codes()
            return Outcome(path, True)
        except Failure as exc:
            return Outcome(path, False, str(exc), exc.unsupported, self._detail())
        except (CallError, PacketError, Unsupported) as exc:
            text = str(exc)
            return Outcome(path, False, f"{path}:{self.ev_line}: error: {text}",
                           text.startswith("unsupported") or isinstance(exc, Unsupported),
                           self._detail())
        except Exception as exc:  # noqa: BLE001 - a bug of ours must not hide the others
            return Outcome(path, False, f"{path}:{self.ev_line}: internal error: "
                                        f"{type(exc).__name__}: {exc}", False, self._detail())

    def _detail(self) -> str:
        try:
            return self.target.describe_failure()
        except Exception as exc:  # noqa: BLE001 - a ladder must never hide the failure
            return f"(no ladder: {exc})"

    def now(self) -> int:
        """Script time now."""
        return self.target.now_us() - self.live0

    def fail(self, ev: ast.Event, text: str, *, unsupported: bool = False) -> Failure:
        return Failure(f"{self.script.path}:{ev.line}: {text}", unsupported=unsupported)

    def times(self, ev: ast.Event) -> tuple[int, int | None, int]:
        """(start, end of range or None, offset) in script time, packetdrill's
        ``adjust_relative_event_times``."""
        t = ev.time
        if t.kind in (ast.TimeKind.ABSOLUTE, ast.TimeKind.ABSOLUTE_RANGE):
            return t.us, t.end_us, 0
        prev = self.last_ev
        if (prev is not None and isinstance(prev, ast.PacketEvent) and prev.inbound
                and isinstance(ev, ast.PacketEvent) and ev.inbound):
            offset = self.last_us
        else:
            offset = self.now()
        end = t.end_us + offset if t.end_us is not None else None
        return t.us + offset, end, offset

    def verify_time(self, ev: ast.Event, kind: ast.TimeKind, start: int, end: int | None,
                    actual: int, last: int | None, what: str, offset: int = 0) -> None:
        """packetdrill's ``verify_time``: raise a timing error if ``actual`` is off."""
        if kind is ast.TimeKind.ANY:
            return
        tol = self.opts.tolerance_us
        if last is not None:
            tol = max(tol, int(self.opts.tolerance_percent / 100 * (start - last)))
        if end is not None:
            if actual < start - tol or actual > end + tol:
                if kind is ast.TimeKind.ABSOLUTE_RANGE:
                    raise self.fail(ev, f"timing error: expected {what} in time range "
                                        f"{_sec(start)}~{_sec(end)} sec but happened at "
                                        f"{_sec(actual)} sec")
                raise self.fail(ev, f"timing error: expected {what} in relative time range "
                                    f"+{_sec(start - offset)}~+{_sec(end - offset)} sec but "
                                    f"happened at {(actual - offset) / 1e6:+.6f} sec")
            return
        if actual < start - tol or actual > start + tol:
            raise self.fail(ev, f"timing error: expected {what} at {_sec(start)} sec but "
                                f"happened at {_sec(actual)} sec; tolerance {_sec(tol)} sec")

    def wait_for(self, ev: ast.Event, start: int, what: str) -> None:
        self.target.advance_to(self.live0 + start)
        self.verify_time(ev, ev.time.kind, start, None, self.now(),
                         self.last_us if self.last_ev is not None else None, what)

    def event(self, ev: ast.Event) -> None:
        start, end, offset = self.times(ev)
        if isinstance(ev, ast.PacketEvent):
            if ev.inbound:
                self.wait_for(ev, start, "inbound packet")
                self.inbound(ev)
            else:
                self.outbound(ev, start, end, offset)
        elif isinstance(ev, ast.SyscallEvent):
            self.wait_for(ev, start, "system call start")
            self.syscall(ev, start, offset)
        elif isinstance(ev, ast.ShellEvent):
            self.wait_for(ev, start, "command")
            err = self.target.shell(ev.command)
            if err:
                raise self.fail(ev, f"error executing `{ev.command.strip()}` command: {err}",
                                unsupported=err.startswith("unsupported"))
        else:
            self.wait_for(ev, start, "data collection for code")
            self.codes.append(_Code(ev, self.code_info(ev)))
        self.last_us = start

    # --- packets -----------------------------------------------------------------------

    def conn_for(self, ev: ast.PacketEvent) -> Conn:
        """packetdrill's ``find_or_create_socket_for_script_packet``."""
        pkt = ev.packet
        # Any inbound segment (not only a SYN) to a listener starts a new passive
        # connection (packetdrill's handle_listen_for_script_packet).
        if isinstance(pkt, ast.TcpPacket) and ev.inbound and (
                self.sut is None or self.sut.state == "listening"):
            conn = Conn(state="passive_pkt_received", local_port=self.opts.bind_port,
                        remote_port=self.next_port, remote_isn=pkt.seq)
            self.next_port += 1
            self.conns.append(conn)
            self.sut = conn
            return conn
        if self.sut is None:
            raise self.fail(ev, "error handling packet: no matching socket for script packet")
        return self.sut

    def inbound(self, ev: ast.PacketEvent) -> None:
        conn = self.conn_for(ev)
        pkt = ev.packet
        o = self.opts
        try:
            if isinstance(pkt, ast.IcmpPacket):
                data = build_icmp(pkt, ev.ip, conn, o.remote_ip, o.local_ip)
            else:
                if conn.state == "synack_sent" and pkt.ack_flag:
                    conn.state = "synack_acked"
                elif conn.state == "syn_sent" and "S" in pkt.flags and pkt.ack_flag:
                    conn.state = "syn_acked"
                    conn.remote_isn = pkt.seq
                data = build_tcp(pkt, ev.ip, conn, o.remote_ip, o.local_ip, o.ts_ecr_scaled)
        except PacketError as exc:
            raise self.fail(ev, f"error handling packet: {exc}",
                            unsupported=str(exc).startswith("unsupported")) from None
        if self.log:
            self.log(f"inbound injected packet: {_sec(self.now()):>9} {ev.text}")
        self.target.inject(data)

    def _mine(self, conn: Conn, live: Live) -> bool:
        """Is this outbound packet from the socket under test? (Others are ignored.)"""
        o = self.opts
        if not live.tcp or live.src != o.local_ip or live.dst != o.remote_ip:
            return False
        if conn.state == "connecting" and live.syn and not live.flags & 0x10 \
                and live.dport == o.connect_port:
            return not any(c is not conn and c.local_port == live.sport for c in self.conns)
        return live.sport == conn.local_port and live.dport == conn.remote_port

    def outbound(self, ev: ast.PacketEvent, start: int, end: int | None, offset: int) -> None:
        pkt = ev.packet
        if not isinstance(pkt, ast.TcpPacket):
            raise self.fail(ev, "unsupported: outbound ICMP packets", unsupported=True)
        conn = self.conn_for(ev)
        if ev.time.kind is ast.TimeKind.ANY:
            deadline = self.now() + 3600_000_000
        else:
            deadline = max(start, end or start) + SNIFF_SLACK_US
        parts: list[tuple[int, Live]] = []
        got = 0
        while True:
            item = self.target.outbound(self.live0 + deadline)
            if item is None:
                raise self.fail(ev, "error handling packet: Timed out waiting for packet"
                                    f"\nscript packet: {_sec(start):>9} {script_text(pkt)}")
            t_live, data = item
            try:
                live = parse_live(data)
            except PacketError as exc:
                raise self.fail(ev, f"error handling packet: {exc}") from None
            if not self._mine(conn, live):
                if self.log:
                    self.log(f"outbound ignored packet: {_sec(t_live - self.live0):>9} "
                             f"{live.src}:{live.sport} > {live.dst}:{live.dport}")
                continue
            if conn.state == "connecting" and live.syn:
                conn.state = "syn_sent"
                conn.local_port, conn.remote_port = live.sport, live.dport
                conn.script_local_isn, conn.live_local_isn = pkt.seq, live.seq
            elif conn.state == "passive_pkt_received" and live.syn and "S" in pkt.flags \
                    and pkt.ack_flag:
                conn.state = "synack_sent"
                conn.script_local_isn, conn.live_local_isn = pkt.seq, live.seq
            parts.append((t_live - self.live0, live))
            got += len(live.payload)
            if got >= pkt.length or self.opts.strict_segments:
                break
        t_actual = parts[0][0] if len(parts) == 1 else parts[-1][0]
        live = parts[0][1] if len(parts) == 1 else aggregate([p for _, p in parts])
        if got != pkt.length:
            _, shown = verify(pkt, ev.ip, live, conn)     # mapped, for the message only
            raise self.fail(ev, f"error handling packet: live packet payload: expected "
                                f"{pkt.length} bytes vs actual {got} bytes"
                                f"\nscript packet: {_sec(start):>9} {script_text(pkt)}"
                                f"\nactual packet: {_sec(t_actual):>9} {live_text(shown)}")
        ts_tol = max(self.opts.tolerance_us, int(self.opts.tolerance_percent / 100 * start))
        err, actual = verify(pkt, ev.ip, live, conn, self.opts.ts_tick_us, ts_tol)
        conn.last_out = live
        if self.log:
            self.log(f"outbound sniffed packet: {_sec(t_actual):>9} {live_text(actual)}")
        dump = (f"\nscript packet: {_sec(start):>9} {script_text(pkt)}"
                f"\nactual packet: {_sec(t_actual):>9} {live_text(actual)}")
        if err:
            raise self.fail(ev, f"error handling packet: {err}{dump}")
        try:
            self.verify_time(ev, ev.time.kind, start, end, t_actual,
                             self.last_us if self.last_ev is not None else None,
                             "outbound packet", offset)
        except Failure as exc:
            where, _, what = str(exc).partition(": ")
            raise Failure(f"{where}: error handling packet: {what}{dump}") from None

    # --- calls -------------------------------------------------------------------------

    def syscall(self, ev: ast.SyscallEvent, start: int, offset: int) -> None:
        if self.pending is not None:
            self.finish_pending(exiting=False)
        self.before_call(ev)
        try:
            call = make_call(ev, self.fds)
        except CallError as exc:
            raise self.fail(ev, f"runtime error in {ev.name} call: {exc}",
                            unsupported=str(exc).startswith("unsupported")) from None
        res = self.target.syscall(call)
        end = None
        if ev.end is not None:
            end = ev.end.us + (offset if ev.end.kind is ast.TimeKind.RELATIVE else 0)
        if res is None:
            if end is None:
                done = self.target.blocked(self.target.now_us() + 10_000_000)
                if done is None:
                    raise self.fail(ev, f"runtime error in {ev.name} call: the call blocked "
                                        f"(the script expects it not to)")
                res = done[1]
            else:
                self.pending = _Pending(ev, start, end)
                return
        elif end is not None:
            self.verify_time(ev, ev.time.kind, end, None, self.now(), start,
                             "system call return")
        self.after_call(ev, res)

    def check_pending(self) -> None:
        if self.pending is None:
            return
        done = self.target.blocked(self.target.now_us())
        if done is not None:
            self._finish(done)

    def finish_pending(self, *, exiting: bool = True) -> None:
        """Wait for the blocked call to return, at most 1 s (packetdrill's
        ``await_idle_thread``), before another call or at the end of the script."""
        p = self.pending
        if p is None:
            return
        done = self.target.blocked(self.target.now_us() + AWAIT_IDLE_US)
        if done is None:
            if exiting:
                raise self.fail(p.ev, "runtime error: exiting while a blocking system call "
                                      "is in progress")
            raise self.fail(p.ev, "unsupported: a call while this blocking call is still in "
                                  "progress after 1 s", unsupported=True)
        self._finish(done)

    def _finish(self, done: tuple[int, SyscallResult]) -> None:
        p = self.pending
        assert p is not None
        self.pending = None
        self.verify_time(p.ev, p.ev.time.kind, p.end_us, None, done[0] - self.live0,
                         p.start_us, "system call return")
        self.after_call(p.ev, done[1])

    def before_call(self, ev: ast.SyscallEvent) -> None:
        """Socket bookkeeping packetdrill does before the live call."""
        fd = ev.args[0] if ev.args else None
        conn = self.by_fd.get(fd.value) if isinstance(fd, ast.Int) else None
        if conn is None:
            return
        if ev.name == "listen":
            conn.state = "listening"
        elif ev.name in ("connect", "sendto", "sendmsg") and conn.state == "new" and (
                ev.name == "connect" or _has_fastopen(ev)):
            conn.state = "connecting"
            conn.remote_port = self.opts.connect_port

    def after_call(self, ev: ast.SyscallEvent, res: SyscallResult) -> None:
        err = check_result(ev, res, self.fds, (self.live0, self.opts.tolerance_us))
        if err:
            raise self.fail(ev, f"runtime error in {ev.name} call: {err}")
        fds = res.out.get("fds")
        if ev.name == "pipe" and res.ret == 0 and isinstance(fds, list) and ev.args:
            want = evaluate(ev.args[0])          # pipe([5, 6]): the script's two fds
            if isinstance(want, list):
                self.fds.update((w, f) for w, f in zip(want, fds, strict=False)
                                if isinstance(w, int))
        if ev.name in FD_RESULT and res.ret >= 0:
            script_fd = expected_int(ev.result)
            if script_fd is None or script_fd < 0:
                return
            self.fds[script_fd] = res.ret
            if ev.name in ("socket",):
                conn = Conn(state="new", script_fd=script_fd)
                self.conns.append(conn)
                self.by_fd[script_fd] = conn
                self.sut = conn
            elif ev.name.startswith("accept"):
                for conn in reversed(self.conns):
                    if conn.state in ("synack_sent", "synack_acked") and conn.script_fd is None:
                        conn.script_fd = script_fd
                        self.by_fd[script_fd] = conn
                        break
        elif ev.name == "close" and res.ret == 0 and ev.args and isinstance(ev.args[0], ast.Int):
            self.fds.pop(ev.args[0].value, None)
            self.by_fd.pop(ev.args[0].value, None)

    # --- code ----------------------------------------------------------------------------

    def code_info(self, ev: ast.CodeEvent) -> dict[str, int]:
        self.check_pending()
        conn = self.sut
        if conn is None or conn.script_fd is None or conn.script_fd not in self.fds:
            raise self.fail(ev, "runtime error in code: no socket under test to read "
                                "TCP_INFO from")
        return self.target.tcp_info(self.fds[conn.script_fd])

    def run_codes(self) -> None:
        env: dict[str, object] = {k: v for k, v in SYMBOLS.items()
                                  if k.startswith(("TCPI_", "TCP_"))}
        for code in self.codes:
            env.update(code.info)
            try:
                # The script's own Python, as packetdrill runs it (python3 on its snippets).
                # A block may end in a line continuation before its closing }%.
                source = code.ev.code.rstrip().rstrip("\\")
                exec(compile(source, f"{self.script.path}:{code.ev.line}", "exec"),  # noqa: S102
                     env)
            except Exception as exc:  # noqa: BLE001 - the script's own Python
                # packetdrill: "FILE:LINE: error in Python code" and the traceback's end.
                detail = f": {exc}" if str(exc) else ""
                raise self.fail(code.ev, f"error in Python code: {type(exc).__name__}{detail}"
                                         f"\n    {code.ev.code.strip()}") from None


def _names(expr: ast.Expr) -> set[str]:
    """Every constant name in an expression (``MSG_FASTOPEN|MSG_DONTWAIT``)."""
    if isinstance(expr, ast.Name):
        return {expr.name}
    if isinstance(expr, ast.BinOp):
        return _names(expr.left) | _names(expr.right)
    return set()


def _has_fastopen(ev: ast.SyscallEvent) -> bool:
    """sendto/sendmsg with MSG_FASTOPEN connects, as connect() does."""
    if any("MSG_FASTOPEN" in _names(a) for a in ev.args):
        return True
    try:                               # the flag written as a number (0x20000000)
        flags = evaluate(ev.args[3]) if len(ev.args) > 3 else None
    except CallError:
        return False
    return isinstance(flags, int) and bool(flags & SYMBOLS["MSG_FASTOPEN"])
