"""The simulated target: one synack :class:`~synack.stack.Stack` on a virtual clock.

Nothing real waits. Time moves only when the runner asks (:meth:`advance_to`, or
waiting for an outbound packet or a blocked call), and then jumps from one stack
deadline to the next, running its timers; every packet the stack sends is queued
with the virtual time it was sent at. Script calls are made on the stack
(:mod:`synack.drill.sim_calls`), shell commands read (:mod:`synack.drill.sim_shell`).
Every segment in and out and every state change is kept for the ladder a failure
shows.
"""

from __future__ import annotations

from collections import deque
from dataclasses import fields
from pathlib import Path

from synack.config import Sysctl
from synack.drill.constants import SYMBOLS
from synack.drill.sim_calls import Block, do_call
from synack.drill.sim_epoll import Watch
from synack.drill.sim_files import OpenFile
from synack.drill.sim_proc import proc_net_tcp
from synack.drill.sim_shell import Shell
from synack.drill.target import SysCall, SyscallResult, TargetConfig, Unsupported
from synack.host import errqueue
from synack.host.counters import nstat
from synack.stack import Stack
from synack.tcp.state import State
from synack.trace.ladder import SegmentStep, StateStep, Step, render
from synack.wire.errors import ParseError
from synack.wire.ipv4 import PROTO_TCP, IPv4Header, parse_ipv4
from synack.wire.ipv6 import IPv6Header, parse_ipv6
from synack.wire.tcp import parse_tcp

S = SYMBOLS
IPV4_BESIDE = "192.0.2.254"   # the IPv4 address of the host when the script runs over IPv6
MAX_STEPS = 10_000_000     # timer firings in one wait: a guard against a runaway loop
LADDER_LINES = 80


class SimTarget:
    """A synack host under test (implements :class:`~synack.drill.target.Target`)."""

    def __init__(self, cfg: TargetConfig, *, bind_port: int = 8080, connect_port: int = 8080,
                 sysctl: Sysctl | None = None, seed: int = 1) -> None:
        self.cfg = cfg
        self.bind_port = bind_port
        self.connect_port = connect_port
        self.sysctl = sysctl or Sysctl()
        if ":" in cfg.local_ip:     # --ip_version=ipv6: a dual-stack host, tested over IPv6
            self.stack = Stack(IPV4_BESIDE, cfg=self.sysctl, seed=seed, mtu=cfg.mtu,
                               name="synack", addr6=cfg.local_ip)
        else:
            self.stack = Stack(cfg.local_ip, cfg=self.sysctl, seed=seed, mtu=cfg.mtu,
                               name="synack")
        v6 = ":" in cfg.local_ip or cfg.mapped      # the script's sockets are AF_INET6
        self.now = 0
        self.out: deque[tuple[int, bytes]] = deque()
        self.fdmap: dict[int, int] = {}       # this target's fds (Linux numbering) -> stack fds
        self.nonblock: set[int] = set()
        self.block: Block | None = None
        self.done: tuple[int, SyscallResult] | None = None
        self.steps: list[Step] = []
        self.shell_runner = Shell(self.sysctl, Path(cfg.script_path or ".").parent,
                                  proc=lambda: proc_net_tcp(self.stack, v6),
                                  metrics_flush=self.stack.tfo_cache.flush,
                                  counters=lambda: nstat(self.stack))
        self.epoll = Watch()
        self.files: dict[int, OpenFile] = {}     # script fd -> open file or pipe end

    # --- descriptors -----------------------------------------------------------------

    def new_fd(self, stack_fd: int) -> int:
        fd = 3
        while fd in self.fdmap:
            fd += 1
        self.fdmap[fd] = stack_fd
        return fd

    def free_fd(self, fd: int) -> None:
        self.fdmap.pop(fd, None)
        self.nonblock.discard(fd)

    def sfd(self, call: SysCall) -> int:
        """The stack fd behind a call's first argument (EBADF if none)."""
        fd = call.args[0] if call.args else None
        if not isinstance(fd, int) or fd not in self.fdmap:
            raise OSError(9, "Bad file descriptor")
        return self.fdmap[fd]

    def maybe_block(self, script_fd: int, attempt: object) -> SyscallResult | Block:
        assert callable(attempt)
        res = attempt()
        if res is not None:
            return res  # type: ignore[no-any-return]
        if script_fd in self.nonblock:
            return SyscallResult(-1, "EAGAIN")
        return Block(attempt)

    # --- time and packets ----------------------------------------------------------------

    def now_us(self) -> int:
        return self.now

    def collect(self) -> None:
        """Queue what the stack sent; note its state changes for the ladder."""
        for _key, ch in self.stack.changes:      # the change caused what is sent now
            self.steps.append(StateStep(ch.now, "left", ch.old.name, ch.new.name, ch.why))
        self.stack.changes.clear()
        for p in self.stack.transmit(now=self.now):
            self.out.append((self.now, p))
            self._step("left", p)
        self.epoll.scan(self)

    def _step(self, side: str, packet: bytes) -> None:
        try:
            hdr: IPv4Header | IPv6Header
            if packet[0] >> 4 == 6:
                hdr, payload = parse_ipv6(packet)
            else:
                hdr, payload = parse_ipv4(packet, verify_checksum=False)
            if hdr.proto != PROTO_TCP:
                return
            seg = parse_tcp(payload, hdr.src, hdr.dst, verify_checksum=False)
        except (ParseError, TypeError):
            return
        self.steps.append(SegmentStep(self.now, side, seg))

    def _poke(self) -> None:
        """Let a blocked call finish if it now can."""
        if self.block is not None and self.done is None:
            res = self.block.retry()
            self.collect()
            if res is not None:
                self.done = (self.now, res)
                self.block = None

    def _next_wake(self) -> int | None:
        times = [t for t in (self.stack.next_deadline(),
                             self.block.deadline_us if self.block is not None else None)
                 if t is not None]
        return min(times) if times else None

    def _step_once(self, limit: int) -> bool:
        """Run the next timer due by ``limit``; False if there is none."""
        wake = self._next_wake()
        if wake is None or wake > limit:
            return False
        self.now = max(self.now, wake)
        self.stack.tick(now=self.now)
        self.collect()
        self._poke()
        b = self.block
        if b is not None and b.deadline_us is not None and self.now >= b.deadline_us:
            assert b.on_timeout is not None
            self.done = (self.now, b.on_timeout())
            self.block = None
        return True

    def advance_to(self, t_us: int) -> None:
        for _ in range(MAX_STEPS):
            if not self._step_once(t_us):
                break
        self.now = max(self.now, t_us)

    def inject(self, packet: bytes) -> None:
        self._step("right", packet)
        self.stack.receive(packet, now=self.now)
        self.collect()
        self._poke()

    def outbound(self, deadline_us: int) -> tuple[int, bytes] | None:
        for _ in range(MAX_STEPS):
            if self.out:
                return self.out.popleft()
            if not self._step_once(deadline_us):
                break
        if self.out:
            return self.out.popleft()
        self.now = max(self.now, deadline_us)
        return None

    # --- calls -----------------------------------------------------------------------

    def syscall(self, call: SysCall) -> SyscallResult | None:
        if self.block is not None:
            raise Unsupported("unsupported: a second call while one is blocked")
        res = do_call(self, call)
        self.collect()
        if isinstance(res, Block):
            self.block, self.done = res, None
            return None
        return res

    def blocked(self, deadline_us: int) -> tuple[int, SyscallResult] | None:
        for _ in range(MAX_STEPS):
            if self.done is not None:
                done, self.done = self.done, None
                return done
            if self.block is None or not self._step_once(deadline_us):
                break
        if self.done is not None:
            done, self.done = self.done, None
            return done
        return None

    def revents(self, pollfd: object) -> int:
        """Linux's ``tcp_poll`` mask for one pollfd, masked by its events."""
        if not isinstance(pollfd, dict) or not isinstance(pollfd.get("fd"), int):
            raise Unsupported(f"unsupported: pollfd {pollfd!r}")
        fd, events = pollfd["fd"], pollfd.get("events") or 0
        if fd not in self.fdmap:
            return S["POLLNVAL"]
        sfd = self.fdmap[fd]
        sock = self.stack.socks[sfd]
        mask = 0
        if sock.listener is not None:
            mask = S["POLLIN"] | S["POLLRDNORM"] if sock.listener.accept_queue else 0
        else:
            c = sock.conn
            if c is None or c.state is State.CLOSED and not c.recv_q:
                mask |= S["POLLHUP"]
                if c is None:
                    mask |= S["POLLOUT"] | S["POLLWRNORM"]
            if c is not None:
                if c.wr_shut and (c.eof or c.rd_shut) or c.state is State.CLOSED:
                    mask |= S["POLLHUP"]
                # Linux: RCV_SHUTDOWN once the FIN is in (read or not), and tcp_done()
                # (a reset, a timeout) shuts both ways.
                if c.eof or c.rd_shut or c.state is State.CLOSED or (
                        c.rcv is not None and c.rcv.fin_received):
                    mask |= S["POLLIN"] | S["POLLRDNORM"] | S["POLLRDHUP"]
                # Linux tcp_poll(): a Fast Open child in SYN_RECV counts as connected,
                # and a deferred Fast Open connect is writable (write() sends the SYN).
                if c.state not in (State.SYN_SENT, State.SYN_RECEIVED) or c.tfo_child_pending:
                    if c.recv_q >= sock.opts.rcvlowat:      # tcp_stream_is_readable()
                        mask |= S["POLLIN"] | S["POLLRDNORM"]
                    if c.wr_shut or self.stack.writable(sfd):
                        mask |= S["POLLOUT"] | S["POLLWRNORM"]
                elif c.tfo is not None and c.tfo.defer:
                    mask |= S["POLLOUT"] | S["POLLWRNORM"]
                if c.error is not None and not sock.error_reported:
                    mask |= S["POLLERR"]
            if errqueue.pending_error(sock):
                mask |= S["POLLERR"]          # sk_error_queue not empty (tcp_poll)
        return mask & (events | S["POLLERR"] | S["POLLHUP"] | S["POLLNVAL"])

    def shell(self, command: str) -> str | None:
        return self.shell_runner.run(command)

    def tcp_info(self, fd: int) -> dict[str, int]:
        from synack.tcp.info import tcp_info
        from synack.tcp.tcpinfo import LINUX_STATES, TcpInfo

        sfd = self.fdmap.get(fd)
        sock = self.stack.socks.get(sfd) if sfd is not None else None
        if sock is None:
            raise Unsupported(f"unsupported: TCP_INFO of a closed fd {fd}")
        if sock.conn is None:
            info = TcpInfo(tcpi_state=LINUX_STATES["LISTEN" if sock.listener else "CLOSED"])
        else:
            info = tcp_info(sock.conn, self.now)
        return {f.name: getattr(info, f.name) for f in fields(info)}

    def describe_failure(self) -> str:
        if not self.steps:
            return ""
        base: dict[str, int] = {}
        for st in self.steps:
            if isinstance(st, SegmentStep) and st.seg.flags & 0x02 and st.src not in base:
                base[st.src] = st.seg.seq
        lines = render(self.steps, left=f"synack {self.cfg.local_ip}",
                       right=f"script {self.cfg.remote_ip}", base=base)
        if len(lines) > LADDER_LINES + 1:
            lines = [lines[0], f"   ... ({len(lines) - LADDER_LINES - 1} earlier lines)",
                     *lines[-LADDER_LINES:]]
        notes = [f"note: {n}" for n in self.shell_runner.notes] if self.cfg.verbose else []
        return "\n".join(["ladder of the run so far (synack's states on the left):",
                          *lines, *notes])

    def close(self) -> None:
        self.out.clear()
