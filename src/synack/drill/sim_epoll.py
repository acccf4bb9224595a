"""epoll in simulation: ``epoll_create``, ``epoll_ctl`` and ``epoll_wait`` over the
stack's sockets, as Linux's ``fs/eventpoll.c`` behaves.

An item is on its instance's ready list after a *wakeup* of its socket whose key
shares a bit with the item's events (``ep_poll_callback()``), or when ADD/MOD finds
it ready already. ``epoll_wait`` polls each ready item (``tcp_poll``, the same mask
``poll()`` sees): a level-triggered item stays on the list while it is ready, an
edge-triggered one (EPOLLET) leaves it until the next wakeup, a one-shot one
(EPOLLONESHOT) is disabled until ``EPOLL_CTL_MOD``. ADD and MOD add EPOLLERR and
EPOLLHUP to the events, as ``epoll_ctl`` does.

Wakeups are what Linux's socket callbacks would have sent, found by comparing each
watched socket before and after every packet, timer and call:

- in-order data or a FIN arrived: ``sk_data_ready`` (EPOLLIN|EPOLLRDNORM|...);
- a notification was queued on the error queue: ``sk_error_report`` (EPOLLERR);
- the state changed or an error was set: ``sk_state_change`` (every event);
- the socket became writable: ``sk_write_space`` (EPOLLOUT|...) -- Linux sends it
  from ``tcp_check_space()`` when a writer had found no room (SOCK_NOSPACE).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from synack.drill.constants import SYMBOLS
from synack.drill.sim_block import Block
from synack.drill.target import SysCall, SyscallResult, Unsupported

if TYPE_CHECKING:
    from synack.drill.sim_target import SimTarget

S = SYMBOLS
_IN = S["EPOLLIN"] | S["EPOLLRDNORM"] | S["EPOLLRDBAND"] | S["EPOLLPRI"]
_OUT = S["EPOLLOUT"] | S["EPOLLWRNORM"] | S["EPOLLWRBAND"]
_ALL = 0xFFFFFFFF
_PRIVATE = S["EPOLLONESHOT"] | S["EPOLLET"] | S["EPOLLEXCLUSIVE"] | S["EPOLLWAKEUP"]
_EXCLUSIVE_OK = (S["EPOLLIN"] | S["EPOLLOUT"] | S["EPOLLERR"] | S["EPOLLHUP"]
                 | S["EPOLLWAKEUP"] | S["EPOLLET"] | S["EPOLLEXCLUSIVE"])
EPOLL_BASE = -1_000_000      # epoll instances' stand-in stack fds (never a socket's)


@dataclass(slots=True)
class _Item:
    fd: int                   # the script's fd of the socket watched
    events: int
    data: object
    disabled: bool = False    # a one-shot item after it fired


@dataclass(slots=True)
class Epoll:
    """One epoll instance: its items by watched fd and its ready list (in order)."""

    items: dict[int, _Item] = field(default_factory=dict)
    ready: list[int] = field(default_factory=list)

    def wake(self, fd: int, key: int) -> None:
        item = self.items.get(fd)
        if item is None or item.disabled or not item.events & key & ~_PRIVATE:
            return
        if fd not in self.ready:
            self.ready.append(fd)


class Watch:
    """The wakeups of every watched socket (see the module docstring)."""

    def __init__(self) -> None:
        self.instances: dict[int, Epoll] = {}       # script epfd -> instance
        self.seen: dict[int, tuple[object, ...] | None] = {}

    def signature(self, t: SimTarget, fd: int) -> tuple[object, ...] | None:
        sfd = t.fdmap.get(fd)
        sock = t.stack.socks.get(sfd) if sfd is not None else None
        if sock is None:
            return None
        c = sock.conn
        errq = sock.errq
        wakes = errq.wakes if errq is not None else 0
        writable = bool(t.revents({"fd": fd, "events": S["POLLOUT"]}) & S["POLLOUT"])
        if sock.listener is not None:
            return (len(sock.listener.accept_queue), 0, wakes, "LISTEN", None, writable)
        if c is None:
            return (None, False, wakes, None, None, writable)
        rcv = c.rcv
        return (rcv.rcv_nxt if rcv else None, bool(rcv and rcv.fin_received), wakes,
                c.state, c.error, writable)

    def scan(self, t: SimTarget) -> None:
        """Compare every watched socket with what it was; send the wakeups."""
        if not self.instances:
            return
        fds = {fd for ep in self.instances.values() for fd in ep.items}
        for fd in fds:
            now = self.signature(t, fd)
            before = self.seen.get(fd)
            self.seen[fd] = now
            if before is None or now is None or before == now:
                continue
            key = 0
            if before[0] != now[0] or before[1] != now[1]:
                key |= _IN
            if before[2] != now[2]:
                key |= S["EPOLLERR"]
            if before[3] != now[3] or before[4] != now[4]:
                key |= _ALL
            if now[5] and not before[5]:
                key |= _OUT
            if key:
                for ep in self.instances.values():
                    ep.wake(fd, key)


def _epfd(t: SimTarget, call: SysCall) -> tuple[int, Epoll]:
    fd = call.args[0] if call.args else None
    ep = t.epoll.instances.get(fd) if isinstance(fd, int) else None
    if ep is None:
        raise OSError(9 if not isinstance(fd, int) or fd not in t.fdmap else 22,
                      "not an epoll fd")
    assert isinstance(fd, int)
    return fd, ep


def epoll_create(t: SimTarget, call: SysCall) -> SyscallResult:
    size = call.args[0] if call.args else 1
    if call.name == "epoll_create" and (not isinstance(size, int) or size <= 0):
        return SyscallResult(-1, "EINVAL")       # epoll_create(): size must be positive
    n = len(t.epoll.instances)
    fd = t.new_fd(EPOLL_BASE - n)
    t.epoll.instances[fd] = Epoll()
    return SyscallResult(fd)


def epoll_ctl(t: SimTarget, call: SysCall) -> SyscallResult:
    _, ep = _epfd(t, call)
    if len(call.args) < 3:
        raise Unsupported("unsupported: epoll_ctl() without an fd")
    op, fd = call.args[1], call.args[2]
    ev = call.args[3] if len(call.args) > 3 else None
    if not isinstance(fd, int) or fd not in t.fdmap:
        return SyscallResult(-1, "EBADF")
    if fd in t.epoll.instances:
        raise Unsupported("unsupported: epoll watching an epoll fd")
    events = ev.get("events", 0) if isinstance(ev, dict) else 0
    if not isinstance(events, int):
        raise Unsupported(f"unsupported: epoll events {events!r}")
    data = ev.get("fd", ev.get("ptr", ev.get("u64"))) if isinstance(ev, dict) else None
    if op == S["EPOLL_CTL_DEL"]:
        if ep.items.pop(fd, None) is None:
            return SyscallResult(-1, "ENOENT")
        if fd in ep.ready:
            ep.ready.remove(fd)
        return SyscallResult(0)
    if events & S["EPOLLEXCLUSIVE"] and (op != S["EPOLL_CTL_ADD"] or events & ~_EXCLUSIVE_OK):
        return SyscallResult(-1, "EINVAL")       # do_epoll_ctl(): EPOLLEXCLUSIVE's rules
    events |= S["EPOLLERR"] | S["EPOLLHUP"]
    if op == S["EPOLL_CTL_ADD"]:
        if fd in ep.items:
            return SyscallResult(-1, "EEXIST")
        ep.items[fd] = _Item(fd, events, data)
    elif op == S["EPOLL_CTL_MOD"]:
        item = ep.items.get(fd)
        if item is None:
            return SyscallResult(-1, "ENOENT")
        if item.events & S["EPOLLEXCLUSIVE"]:
            return SyscallResult(-1, "EINVAL")   # Linux: no MOD of an exclusive item
        item.events, item.data, item.disabled = events, data, False
    else:
        return SyscallResult(-1, "EINVAL")
    t.epoll.seen[fd] = t.epoll.signature(t, fd)
    if _mask(t, ep.items[fd]) and fd not in ep.ready:
        ep.ready.append(fd)                      # ep_insert() / ep_modify(): ready now
    return SyscallResult(0)


def _mask(t: SimTarget, item: _Item) -> int:
    return t.revents({"fd": item.fd, "events": item.events & ~_PRIVATE}) & item.events


def epoll_wait(t: SimTarget, call: SysCall) -> SyscallResult | Block:
    """Ready items now; with a timeout (-1: none), blocks until one is ready or the
    time is up (0 events), as poll() does here."""
    _, ep = _epfd(t, call)
    maxevents = call.args[2] if len(call.args) > 2 else 1
    timeout = call.args[3] if len(call.args) > 3 else 0
    if not isinstance(maxevents, int) or maxevents <= 0:
        return SyscallResult(-1, "EINVAL")
    if not isinstance(timeout, int):
        raise Unsupported(f"unsupported: epoll_wait() timeout {timeout!r}")
    first = _collect(t, ep, maxevents)
    if first.ret or timeout == 0:
        return first

    def attempt() -> SyscallResult | None:
        res = _collect(t, ep, maxevents)
        return res if res.ret else None

    def timed_out() -> SyscallResult:
        return SyscallResult(0, out={"events": []})
    return Block(attempt, None if timeout < 0 else t.now + timeout * 1000, timed_out)


def _collect(t: SimTarget, ep: Epoll, maxevents: int) -> SyscallResult:
    t.epoll.scan(t)
    out: list[dict[str, object]] = []
    keep: list[int] = []
    for fd in ep.ready:
        item = ep.items.get(fd)
        if item is None or item.disabled:
            continue
        if len(out) >= maxevents:
            keep.append(fd)
            continue
        mask = _mask(t, item)
        if not mask:
            continue
        out.append({"events": mask, "fd": fd})
        if item.events & S["EPOLLONESHOT"]:
            item.disabled = True
        elif not item.events & S["EPOLLET"]:
            keep.append(fd)                      # level-triggered: back on the list
    ep.ready = keep
    return SyscallResult(len(out), out={"events": out})


def close(t: SimTarget, fd: int) -> bool:
    """``close()`` of an epoll fd (True), or forget a socket fd in every instance."""
    if t.epoll.instances.pop(fd, None) is not None:
        return True
    for ep in t.epoll.instances.values():
        ep.items.pop(fd, None)
        if fd in ep.ready:
            ep.ready.remove(fd)
    t.epoll.seen.pop(fd, None)
    return False
