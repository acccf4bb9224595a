"""``/proc/net/tcp`` of the simulated host, and the ``grep`` pipelines scripts run on it.

Scripts check a socket's state from the shell (``grep " 0A " /proc/net/tcp |
grep ":1F90"``: is something listening on port 8080?). The file is rendered from
the stack's sockets in Linux's ``tcp4_seq_show()`` layout -- addresses as the
kernel prints a ``__be32`` on a little-endian host, ports and states in hex -- and
a pipeline of ``grep`` stages is evaluated on it without a shell: success when the
last stage selects a line, as grep's exit status says.
"""

from __future__ import annotations

import re
import shlex
import socket
import struct
from collections.abc import Callable

from synack.stack import Stack
from synack.tcp.tcpinfo import LINUX_STATES

HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
          "   uid  timeout inode")
FILES = ("/proc/net/tcp", "/proc/net/tcp6")


def _addr(ip: str, port: int) -> str:
    return f"{struct.unpack('<I', socket.inet_aton(ip))[0]:08X}:{port:04X}"


def _addr6(ip: str, port: int) -> str:
    """tcp6_seq_show(): the address as four __be32 words printed on a little-endian
    host; an IPv4 one (an AF_INET6 socket's IPv4 side) IPv4-mapped, 0.0.0.0 as ::."""
    if ":" not in ip:
        ip = "::" if ip == "0.0.0.0" else "::ffff:" + ip
    words = struct.unpack("<4I", socket.inet_pton(socket.AF_INET6, ip))
    return "".join(f"{w:08X}" for w in words) + f":{port:04X}"


def proc_net_tcp(stack: Stack, v6: bool = False) -> dict[str, list[str]]:
    """The two files' lines. With ``v6`` (the script's sockets are AF_INET6: the ipv6
    and ipv4-mapped-ipv6 runs) every socket is in /proc/net/tcp6, else in /proc/net/tcp."""
    rows = [HEADER]
    show = _addr6 if v6 else _addr
    for i, c in enumerate(stack.connections()):
        rows.append(f"{i:4d}: {show(*c.local)} {show(*c.peer)} "
                    f"{LINUX_STATES[c.state.name]:02X} {c.send_q:08X}:{c.recv_q:08X} "
                    f"00:00000000 00000000     0        0 0 1 0000000000000000")
    return {FILES[0]: [HEADER], FILES[1]: rows} if v6 else {FILES[0]: rows, FILES[1]: [HEADER]}


def grep_pipeline(cmd: str, files: Callable[[], dict[str, list[str]]]) -> str | None:
    """``grep PAT FILE... | grep PAT ...`` over the /proc files: None when lines are
    selected at the end, else why not; ``unsupported: ...`` for anything else."""
    lines: list[str] | None = None
    for stage in cmd.split("|"):
        words = shlex.split(stage)
        if len(words) < 2 or words[0].rsplit("/", 1)[-1] != "grep" or words[1].startswith("-"):
            return f"unsupported: shell command {cmd.strip()!r} in simulation"
        pattern, names = words[1], words[2:]
        if "\\" in pattern:
            return f"unsupported: grep pattern {pattern!r} in simulation"
        if lines is None:
            if not names or any(n not in FILES for n in names):
                return f"unsupported: shell command {cmd.strip()!r} in simulation"
            table = files()
            lines = [f"{n}:{line}" if len(names) > 1 else line
                     for n in names for line in table[n]]
        elif names:
            return f"unsupported: shell command {cmd.strip()!r} in simulation"
        lines = [line for line in lines if re.search(pattern, line)]
    return None if lines else "exit status 1 (grep selected nothing)"
