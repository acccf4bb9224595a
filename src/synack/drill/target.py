"""What a drill runner drives: one stack under test, seen from the wire and the API.

Two targets implement :class:`Target`: the simulated synack host
(:mod:`synack.drill.sim_target`, a virtual clock, nothing real waits) and the Linux
kernel (:mod:`synack.drill.kernel`, a TUN device in a fresh namespace, real syscalls
and the wall clock). The runner (:mod:`synack.drill.runner`) owns the script
semantics -- timing rules, sequence-number mapping, comparing packets and results --
and talks to a target only through these calls.

Protocol
--------
Times are integer microseconds since the script's time 0 (the target's start).

``now_us() -> int``
    The current time.
``advance_to(t_us) -> None``
    Let time pass until ``t_us`` (no-op if already past): the simulated target runs
    its timers up to ``t_us``, queueing what the stack sends with the time it was
    sent; the kernel target sleeps.
``inject(packet: bytes) -> None``
    One IPv4 packet (checksums filled in) from the remote side, arriving now.
``outbound(deadline_us) -> tuple[int, bytes] | None``
    The next IPv4 packet the stack sent (oldest first, never the same one twice)
    with the time it was sent; waits (advancing time) until ``deadline_us`` at most,
    and answers ``None`` if nothing was sent by then.
``syscall(call: SysCall) -> SyscallResult | None``
    Make one call at the current time. ``None`` means the call blocked (a blocking
    socket with nothing to do): it goes on in the background, one at a time.
``blocked(deadline_us) -> tuple[int, SyscallResult] | None``
    The end of the call that blocked: when it returned and what it returned, if it
    has returned by ``deadline_us`` (time advances to the return or the deadline).
``shell(command: str) -> str | None``
    Run a script's backquoted command now. ``None`` on success, else the one-line
    reason it failed (exit status, or ``unsupported: ...`` in simulation).
``tcp_info(fd: int) -> dict[str, int]``
    TCP_INFO of a script fd, keyed by the ``tcpi_*`` field names of Linux's
    ``struct tcp_info`` (plus the ``TCPI_OPT_*`` constants), for ``%{ }%`` blocks.
``describe_failure() -> str``
    What the target can show after a failure (synack: the ladder of the run so far
    with its states; the kernel: may be empty).
``close() -> None``
    Tear everything down (idempotent).

Making a target
---------------
``synack.drill.session`` makes one target per script with a factory
``(TargetConfig, RunOptions) -> Target``: ``session.sim_factory`` for synack,
``synack.drill.kernel.make_target`` for the kernel (``--kernel``). Ports come from
``RunOptions`` (``bind_port``/``connect_port``, 8080 as packetdrill's): ``bind(fd,
..., ...)`` binds ``local_ip:bind_port`` and ``connect(fd, ..., ...)`` connects to
``remote_ip:connect_port``; the script's side of a passive connection uses ports
from 40000 up. Shell commands run in the script's directory.

Syscalls reach a target already evaluated (:class:`SysCall`): the runner resolves
constant names (``SOL_SOCKET``) to Linux's numbers, ``...`` to ``None``, and keeps
the script's fd numbers; the target maps them to its own descriptors. What a call
returns beyond its return value (bytes read, an option's value, poll's revents)
comes back in ``SyscallResult.out`` for the runner to compare with the script.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SysCall:
    """One evaluated system call of a script.

    ``args`` holds Python values: ``int``; ``bytes``/``str``; ``None`` for ``...``;
    ``list`` for ``[..]`` (``[1]`` int pointers, iovecs, pollfds); ``dict`` for a
    struct with named fields (``{"l_onoff": 1, "l_linger": 0}``, ``{"fd": 3,
    "events": 1}``); ``tuple`` for a struct of positional items (``{..., 1000}``).
    ``blocking`` says the script expects the call may block (packetdrill runs such
    calls in a thread of their own and the others inline).
    """

    name: str
    args: tuple[object, ...]
    line: int = 0
    blocking: bool = False      # the script gives an end time (``+0...0.2 accept(...)``)


@dataclass(frozen=True, slots=True)
class SyscallResult:
    """What a call returned: ``ret`` (-1 on error), Linux's ``errno`` name, outputs.

    ``out`` keys by call: ``data`` (bytes read / received), ``optval`` (getsockopt:
    int or bytes), ``revents`` (poll: one int per pollfd), ``flags`` (fcntl
    F_GETFL: same as ret), ``value`` (ioctl's int result), ``msg_flags`` and
    ``cmsgs`` (recvmsg: ``[(level, type, data)]``, SCM_TIMESTAMPING times on the
    target's clock), ``events`` (epoll_wait: ``[{"events": mask, "fd": fd}]``),
    ``fds`` (pipe: its two fds).
    """

    ret: int
    errno: str | None = None
    out: dict[str, object] = field(default_factory=dict)


class Unsupported(Exception):
    """The target cannot do what the script asks (message: ``unsupported: ...``)."""


class Target(Protocol):
    """The stack under test, as the runner sees it (see the module docstring)."""

    def now_us(self) -> int: ...

    def advance_to(self, t_us: int) -> None: ...

    def inject(self, packet: bytes) -> None: ...

    def outbound(self, deadline_us: int) -> tuple[int, bytes] | None: ...

    def syscall(self, call: SysCall) -> SyscallResult | None: ...

    def blocked(self, deadline_us: int) -> tuple[int, SyscallResult] | None: ...

    def shell(self, command: str) -> str | None: ...

    def tcp_info(self, fd: int) -> dict[str, int]: ...

    def describe_failure(self) -> str: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TargetConfig:
    """What every target needs to know before the first event.

    Addresses are the stack's own (``local_ip``) and the script's side
    (``remote_ip``); ``sysctls`` are applied at start (from the init script);
    ``defines`` are the ``-D NAME=VAL`` symbols (shell commands see them as
    environment variables, as packetdrill exports them); ``options`` holds the
    header and command-line options the runner does not use itself, in order
    (``gateway_ip``, ``netmask_ip``, ``mss``, ``speed``...), for targets that do;
    ``mapped`` is ``--ip_version=ipv4-mapped-ipv6``.
    """

    local_ip: str = "192.168.0.1"
    remote_ip: str = "192.0.2.1"
    mtu: int = 1500
    script_path: str = ""
    init_command: str | None = None
    defines: tuple[tuple[str, str], ...] = ()
    verbose: bool = False
    options: tuple[tuple[str, str | None], ...] = ()   # the rest (gateway_ip, netmask_ip, ...)
    # --ip_version=ipv4-mapped-ipv6: IPv4 on the wire, the script's sockets AF_INET6 and
    # the addresses their calls see IPv4-mapped (::ffff:192.0.2.1).
    mapped: bool = False
