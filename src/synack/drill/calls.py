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

import struct

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


def check_result(ev: ast.SyscallEvent, res: SyscallResult,
                 fds: dict[int, int] | None = None,
                 clock: tuple[int, int] = (0, 4000)) -> str | None:
    """packetdrill's ``end_syscall`` checks and the per-call output checks (``fds``:
    script fd -> target fd, for the fds epoll_wait reports; ``clock``: the target's
    time at script time 0 and the tolerance, for SCM_TIMESTAMPING times)."""
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
    return _check_outputs(ev, res, fds or {}, clock)


def _check_outputs(ev: ast.SyscallEvent, res: SyscallResult,
                   fds: dict[int, int], clock: tuple[int, int]) -> str | None:
    if ev.name == "ioctl" and len(ev.args) == 3 and res.ret >= 0:
        want = evaluate(ev.args[2])
        if isinstance(want, list) and len(want) == 1:
            want = want[0]
        got = res.out.get("value")
        if isinstance(want, int) and want != got:
            return f"Bad ioctl optval: expected: {want} actual: {got}"
    if ev.name == "getsockopt" and len(ev.args) >= 4 and res.ret >= 0:
        return _check_optval(ev.args[3], ev.args[4] if len(ev.args) > 4 else None, res)
    if ev.name == "recvmsg" and len(ev.args) >= 2 and res.ret >= 0:
        return _check_msg(evaluate(ev.args[1]), res, clock)
    if ev.name == "epoll_wait" and len(ev.args) >= 2 and res.ret >= 0:
        return _check_epoll(evaluate(ev.args[1]), res, fds)
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


_EE_FIELDS = ("ee_errno", "ee_origin", "ee_type", "ee_code", "ee_pad", "ee_info", "ee_data")


def _check_msg(msg: object, res: SyscallResult, clock: tuple[int, int]) -> str | None:
    """recvmsg's msg_flags and control messages, as packetdrill's syscall_recvmsg checks
    them (only what the target reported: ``msg_flags`` and ``cmsgs`` in ``out``)."""
    if not isinstance(msg, dict):
        return None
    want_flags, live_flags = msg.get("msg_flags"), res.out.get("msg_flags")
    if isinstance(want_flags, int) and isinstance(live_flags, int) and want_flags != live_flags:
        return f"Expected msg_flags 0x{want_flags:08X} but got 0x{live_flags:08X}"
    want = msg.get("msg_control")
    live = res.out.get("cmsgs")
    if not isinstance(want, list) or not isinstance(live, list):
        return None
    if len(want) != len(live):
        return f"Expected {len(want)} control messages but got {len(live)}"
    for i, (w, got) in enumerate(zip(want, live, strict=True)):
        if not isinstance(w, dict):
            continue
        level, type_, data = got
        if (w.get("cmsg_level"), w.get("cmsg_type")) != (level, type_):
            return (f"Bad cmsg {i}: expected level {w.get('cmsg_level')} type "
                    f"{w.get('cmsg_type')} but got level {level} type {type_}")
        err = _check_cmsg_data(i, w.get("cmsg_data"), data, clock)
        if err:
            return err
    return None


def _check_cmsg_data(i: int, want: object, data: bytes, clock: tuple[int, int]) -> str | None:
    if isinstance(want, list) and len(want) == 1:
        want = want[0]
    if isinstance(want, dict) and set(want) <= {"scm_sec", "scm_nsec"} and len(data) >= 16:
        # scm_timestamping: the first (software) time, within the tolerance of the
        # script's time; 0 means any (packetdrill's scm_timestamping_expect_eq()).
        sec, nsec = int(want.get("scm_sec") or 0), int(want.get("scm_nsec") or 0)
        if sec or nsec:
            live0, tolerance = clock
            expected = live0 + sec * 1_000_000 + nsec // 1000
            got_sec, got_nsec = struct.unpack("=qq", data[:16])
            actual = got_sec * 1_000_000 + got_nsec // 1000
            if abs(expected - actual) > tolerance:
                return (f"Bad timestamp 0 in scm_timestamping {i}: expected={expected} "
                        f"actual={actual}")
        return None
    if isinstance(want, int):
        got = int.from_bytes(data[:4], "little", signed=True) if len(data) >= 4 else None
        if got != want:
            return f"Bad cmsg {i} data: expected: {want} actual: {got}"
    elif isinstance(want, dict) and set(want) <= set(_EE_FIELDS) and len(data) >= 16:
        got_ee = dict(zip(_EE_FIELDS, struct.unpack("=IBBBBII", data[:16]), strict=True))
        bad = {k: v for k, v in want.items() if isinstance(v, int) and got_ee[k] != v}
        if bad:
            return (f"Bad cmsg {i} sock_extended_err: expected "
                    f"{ {k: want[k] for k in bad} } actual { {k: got_ee[k] for k in bad} }")
    return None


def _check_epoll(want: object, res: SyscallResult, fds: dict[int, int]) -> str | None:
    """The first event epoll_wait returned: its mask and, when the script names one,
    its fd (packetdrill's syscall_epoll_wait)."""
    live = res.out.get("events")
    if isinstance(want, list) and want:
        want = want[0]
    if not isinstance(want, dict) or not isinstance(live, list):
        return None
    got = live[0] if live else {"events": 0}     # nothing returned: the struct stays 0
    if isinstance(want.get("events"), int) and want["events"] != got.get("events"):
        return (f"epoll_event->events does not match script: expected: {want['events']:#x} "
                f"actual: {got.get('events', 0):#x}")
    if not live:
        return None
    fd = want.get("fd")
    if isinstance(fd, int) and fds.get(fd, fd) != got.get("fd"):
        return f"epoll_event->data.fd does not match: expected: {fd} actual: {got.get('fd')}"
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
