"""Files and pipes in simulation: ``open``, ``sendfile``, ``pipe`` and ``splice``.

The simulated host has no disk: files are the ones the script's shell lines made
(:class:`~synack.drill.sim_shell.Shell` keeps them in memory), and a pipe is a
buffer. ``sendfile()`` sends a file's bytes on a socket; ``splice()`` moves bytes
between a socket and a pipe. A socket read by splice stops at the urgent mark, as
Linux's ``tcp_read_sock()`` does: with the urgent byte next and nothing before it,
``splice()`` returns 0 rather than blocking (tcp_splice_read(): an skb is queued
but nothing can be read from it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from synack.drill.constants import SYMBOLS
from synack.drill.target import SysCall, SyscallResult, Unsupported

if TYPE_CHECKING:
    from synack.drill.sim_target import SimTarget

S = SYMBOLS
FILE_BASE = -2_000_000       # stand-in stack fds of files and pipe ends (never a socket's)
PIPE_SIZE = 65536            # Linux's default pipe capacity (16 pages)


@dataclass(slots=True)
class _Pipe:
    data: bytearray = field(default_factory=bytearray)


@dataclass(slots=True)
class OpenFile:
    """An open file (``data``, ``pos``) or one end of a pipe."""

    data: bytes = b""
    pos: int = 0
    pipe: _Pipe | None = None
    writer: bool = False


def _new(t: SimTarget, end: OpenFile) -> int:
    fd = t.new_fd(FILE_BASE - len(t.files) - 1)
    t.files[fd] = end
    return fd


def _end(t: SimTarget, v: object) -> OpenFile:
    end = t.files.get(v) if isinstance(v, int) else None
    if end is None:
        raise OSError(9, "Bad file descriptor")
    return end


def open_(t: SimTarget, call: SysCall) -> SyscallResult:
    path = call.args[0] if call.args else None
    flags = call.args[1] if len(call.args) > 1 else 0
    if isinstance(path, bytes):
        path = path.decode("latin-1")
    if not isinstance(path, str) or not isinstance(flags, int):
        raise Unsupported(f"unsupported: open({path!r}, {flags!r})")
    if flags & 3 != S["O_RDONLY"]:
        raise Unsupported("unsupported: open() for writing in simulation")
    data = t.shell_runner.files.get(path)
    if data is None:
        return SyscallResult(-1, "ENOENT")
    return SyscallResult(_new(t, OpenFile(data)))


def pipe(t: SimTarget, call: SysCall) -> SyscallResult:
    p = _Pipe()
    fds = [_new(t, OpenFile(pipe=p)), _new(t, OpenFile(pipe=p, writer=True))]
    return SyscallResult(0, out={"fds": fds})


def sendfile(t: SimTarget, call: SysCall) -> SyscallResult:
    """sendfile(out, in, offset, count): bytes of an open file sent on a socket."""
    if len(call.args) < 4:
        raise Unsupported("unsupported: sendfile() with fewer than 4 arguments")
    sfd = t.sfd(call)
    src = _end(t, call.args[1])
    offset, count = call.args[2], call.args[3]
    if isinstance(offset, list) and len(offset) == 1:
        offset = offset[0]
    if not isinstance(count, int) or offset is not None and not isinstance(offset, int):
        raise Unsupported(f"unsupported: sendfile() offset {offset!r} count {count!r}")
    start = src.pos if offset is None else offset
    chunk = src.data[start:start + count]
    if not chunk:
        return SyscallResult(0)
    n = t.stack.send(sfd, chunk, now=t.now)
    if offset is None:
        src.pos += n
    return SyscallResult(n)


def splice(t: SimTarget, call: SysCall) -> SyscallResult:
    """splice(in, off_in, out, off_out, len, flags) from a socket into a pipe."""
    if len(call.args) < 5:
        raise Unsupported("unsupported: splice() with fewer than 5 arguments")
    fd_in, fd_out, n = call.args[0], call.args[2], call.args[4]
    if not isinstance(n, int) or not isinstance(fd_out, int):
        raise Unsupported(f"unsupported: splice() arguments {call.args!r}")
    dst = _end(t, fd_out)
    if dst.pipe is None or not dst.writer or isinstance(fd_in, int) and fd_in in t.files:
        raise Unsupported("unsupported: splice() other than from a socket into a pipe")
    sfd = t.sfd(call)
    room = PIPE_SIZE - len(dst.pipe.data)
    conn = t.stack.connection(sfd)
    if conn is not None and conn.rcv is not None and not conn.recv_q \
            and conn.rcv.oob is not None:
        return SyscallResult(0)       # at the urgent mark: tcp_read_sock() reads nothing
    data = t.stack.recv_some(sfd, min(n, room), now=t.now)
    t.collect()
    if data is None:
        return SyscallResult(-1, "EAGAIN")
    dst.pipe.data += data
    return SyscallResult(len(data))


def close(t: SimTarget, fd: int) -> bool:
    """``close()`` of a file or pipe end (True), else False."""
    return t.files.pop(fd, None) is not None
