"""System-call events: their arguments evaluated, their results checked.

A script names values (``SOL_SOCKET``, ``O_RDWR|O_NONBLOCK``), writes structs
(``{l_onoff=1, l_linger=0}``, ``[{fd=4, events=POLLIN}]``) and leaves inputs to the
runner with ``...``. :func:`make_call` turns an event into a
:class:`~synack.drill.target.SysCall` of plain Python values (see its docstring)
with the script's fds replaced by the target's; :func:`check_result` compares what
the target returned with what the script expects, with packetdrill's messages
(``Expected result 0 but got -1 with errno 111 (Connection refused)``).
"""

from __future__ import annotations

from synack.drill import ast
from synack.drill.constants import ERRNO, strerror, symbol
from synack.drill.target import SysCall, SyscallResult

# Calls whose first argument is a descriptor.
_FD_FIRST = frozenset((
    "bind", "listen", "accept", "accept4", "connect", "read", "write", "send", "recv",
    "sendto", "recvfrom", "sendmsg", "recvmsg", "readv", "writev", "shutdown", "close",
    "setsockopt", "getsockopt", "fcntl", "ioctl", "getsockname", "getpeername",
    "epoll_ctl", "epoll_wait", "sendfile", "splice"))
# Calls that create a descriptor: their result is a script fd (packetdrill's CHECK_FD).
FD_RESULT = frozenset(("socket", "accept", "accept4", "epoll_create", "epoll_create1", "open"))


class CallError(Exception):
    """A call the runner cannot make as written (unknown symbol, bad fd, ...)."""


def evaluate(expr: ast.Expr) -> object:
    """The Python value of an argument expression."""
    if isinstance(expr, ast.Int):
        return expr.value
    if isinstance(expr, ast.Str):
        return expr.value.encode("latin-1", "replace")
    if isinstance(expr, ast.Ellipsis_):
        return None
    if isinstance(expr, ast.Name):
        value = symbol(expr.name)
        if value is None:
            raise CallError(f"bad symbol: unknown name {expr.name!r}")
        return value
    if isinstance(expr, ast.BinOp):
        left, right = evaluate(expr.left), evaluate(expr.right)
        if not isinstance(left, int) or not isinstance(right, int):
            raise CallError("'|' needs integers on both sides")
        return left | right
    if isinstance(expr, ast.ListExpr):
        return [evaluate(item) for item in expr.items]
    if isinstance(expr, ast.Struct):
        if expr.items and all(isinstance(i, ast.Field) for i in expr.items):
            return {i.name: evaluate(i.value) for i in expr.items if isinstance(i, ast.Field)}
        return tuple(evaluate(i) for i in expr.items)
    if isinstance(expr, ast.Field):
        return {expr.name: evaluate(expr.value)}
    if isinstance(expr, ast.Call):
        if expr.name == "htons" and len(expr.args) == 1:
            return evaluate(expr.args[0])
        if expr.name in ("inet_addr", "inet6_addr") and len(expr.args) == 1:
            arg = expr.args[0]
            if isinstance(arg, ast.Str):
                return arg.value
        raise CallError(f"unsupported: function {expr.name}() in an argument")
    raise CallError(f"unsupported expression {expr!r}")


def _fd(value: object, fds: dict[int, int], what: str) -> object:
    if not isinstance(value, int):
        return value
    if value not in fds:
        raise CallError(f"unable to find fd with script fd {value}" + (f" ({what})" if what else ""))
    return fds[value]


def make_call(ev: ast.SyscallEvent, fds: dict[int, int]) -> SysCall:
    """The call with evaluated arguments, script fds mapped to the target's."""
    args = [evaluate(a) for a in ev.args]
    name = ev.name
    if name in _FD_FIRST and args:
        args[0] = _fd(args[0], fds, "")
    if name == "epoll_ctl" and len(args) > 2:
        args[2] = _fd(args[2], fds, "")
    if name == "poll" and args and isinstance(args[0], list):
        args[0] = [dict(p, fd=_fd(p.get("fd"), fds, "pollfd")) if isinstance(p, dict) else p
                   for p in args[0]]
    return SysCall(name, tuple(args), ev.line, ev.end is not None)


def expected_int(expr: ast.Expr) -> int | None:
    """The script's expected return value (None for ``...``)."""
    value = evaluate(expr)
    if value is None:
        return None
    if not isinstance(value, int):
        raise CallError(f"bad result: expected an integer, not {value!r}")
    return value


def check_result(ev: ast.SyscallEvent, res: SyscallResult) -> str | None:
    """packetdrill's ``end_syscall`` checks and the per-call output checks."""
    expected = expected_int(ev.result)
    actual_err = strerror(res.errno)
    if expected is not None:
        if ev.name in FD_RESULT and expected >= 0:
            if res.ret < 0:
                return (f"Expected non-negative result but got {res.ret} "
                        f"with errno {actual_err}")
        elif res.ret != expected:
            return f"Expected result {expected} but got {res.ret} with errno {actual_err}"
    if ev.errno is not None:
        if ev.errno not in ERRNO:
            return f"bad errno symbol {ev.errno!r}"
        if res.errno != ev.errno and ERRNO.get(res.errno or "", 0) != ERRNO[ev.errno]:
            return f"Expected errno {strerror(ev.errno)} but got {actual_err}"
    return _check_outputs(ev, res)


def _check_outputs(ev: ast.SyscallEvent, res: SyscallResult) -> str | None:
    if ev.name == "ioctl" and len(ev.args) == 3 and res.ret >= 0:
        want = evaluate(ev.args[2])
        if isinstance(want, list) and len(want) == 1:
            want = want[0]
        got = res.out.get("value")
        if isinstance(want, int) and want != got:
            return f"Bad ioctl optval: expected: {want} actual: {got}"
    if ev.name == "getsockopt" and len(ev.args) >= 4 and res.ret >= 0:
        return _check_optval(ev.args[3], ev.args[4] if len(ev.args) > 4 else None, res)
    if ev.name == "poll" and ev.args and isinstance(ev.args[0], ast.ListExpr) and res.ret >= 0:
        revents = res.out.get("revents")
        if not isinstance(revents, list):
            return None
        for i, item in enumerate(ev.args[0].items):
            want_expr = item.field("revents") if isinstance(item, ast.Struct) else None
            want = evaluate(want_expr) if want_expr is not None else 0
            got = revents[i] if i < len(revents) else 0
            if want != got:
                return (f"Expected revents of {_poll_text(want)} but got {_poll_text(got)} "
                        f"for pollfd {i}")
    return None


def _check_optval(val: ast.Expr, length: ast.Expr | None, res: SyscallResult) -> str | None:
    live = res.out.get("optval")
    want_len = evaluate(length) if length is not None else None
    if isinstance(want_len, list):
        want_len = want_len[0] if want_len else None
    live_len = res.out.get("optlen")
    if isinstance(want_len, int) and isinstance(live_len, int) and want_len != live_len:
        return f"Bad getsockopt optlen: expected: {want_len} actual: {live_len}"
    if isinstance(val, ast.Ellipsis_):
        return None
    if isinstance(val, ast.ListExpr) and len(val.items) == 1:
        want = evaluate(val.items[0])
        if isinstance(live, bytes) and len(live) >= 4:
            live = int.from_bytes(live[:4], "little", signed=True)
        if want != live:
            return f"Bad getsockopt optval: expected: {want} actual: {live}"
        return None
    if isinstance(val, ast.Struct):
        want_s = evaluate(val)
        if isinstance(want_s, dict) and isinstance(live, bytes) and len(live) >= 8:
            onoff = int.from_bytes(live[:4], "little", signed=True)
            secs = int.from_bytes(live[4:8], "little", signed=True)
            got = {"l_onoff": onoff, "l_linger": secs}
            want_d = {_LINGER_KEYS.get(str(k), str(k)): v for k, v in want_s.items()}
            if any(got.get(k) != v for k, v in want_d.items() if v is not None):
                return f"Bad getsockopt optval: expected: {want_d} actual: {got}"
        return None
    if isinstance(val, ast.Str):
        want_b = val.value.encode("latin-1", "replace")
        got_b = live if isinstance(live, bytes) else b""
        if (got_b[:len(want_b)] if val.truncated else got_b.rstrip(b"\0")) != want_b.rstrip(b"\0"):
            return (f"Bad getsockopt optval: expected: '{val.value}' "
                    f"actual: '{got_b.rstrip(bytes(1)).decode('latin-1')}'")
    return None


_LINGER_KEYS = {"onoff": "l_onoff", "linger": "l_linger"}
_POLL_NAMES = ((0x1, "POLLIN"), (0x2, "POLLPRI"), (0x4, "POLLOUT"), (0x8, "POLLERR"),
               (0x10, "POLLHUP"), (0x20, "POLLNVAL"), (0x40, "POLLRDNORM"),
               (0x80, "POLLRDBAND"), (0x100, "POLLWRNORM"), (0x200, "POLLWRBAND"),
               (0x400, "POLLMSG"), (0x2000, "POLLRDHUP"))


def _poll_text(bits: object) -> str:
    if not isinstance(bits, int) or not bits:
        return "0"
    names = [name for bit, name in _POLL_NAMES if bits & bit]
    return "|".join(names) or hex(bits)
