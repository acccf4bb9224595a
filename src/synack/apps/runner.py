"""A Stack and its applications, seen by a driver as one host.

The simulator's :class:`~synack.sim.Network` and the link event loop both call
``receive`` / ``tick`` / ``transmit`` (or ``transmit_gso``) / ``next_deadline``.
:class:`AppRunner` passes them through to the stack and, just before packets
are collected, polls every application and reports new state changes, so apps
run in the driver's thread and their output leaves in the same batch.

Apps that can (``poll_ready``) are told which descriptors the stack touched
since the last poll, so their work follows events, not connections. The
touched descriptors stay available to the driver (:meth:`AppRunner.take_touched`)
for waking the threads blocked on them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sized
from typing import Any

from synack.apps.base import App
from synack.stack import Key, Offload, Stack
from synack.tcp.connection import StateChange

ChangeHook = Callable[[list[tuple[Key, StateChange]]], None]
PollFn = Callable[[int, Collection[int]], None]

_NONE: set[int] = set()
"""AppRunner._touched while empty: one set, never added to (poll() replaces it)."""


class Apps(list):  # type: ignore[type-arg]
    """:attr:`AppRunner.apps`: a list that marks itself ``dirty`` whenever it changes,
    so that the runner looks up each app's poll and deadline methods once per change
    (:meth:`AppRunner._plan`), not twice per app every batch."""

    __slots__ = ("dirty",)

    def __init__(self, apps: Iterable[App] = ()) -> None:
        super().__init__(apps)
        self.dirty = True


def _dirtying(name: str) -> None:
    base = getattr(list, name)

    def method(self: Apps, *args: Any, **kwargs: Any) -> Any:
        self.dirty = True
        return base(self, *args, **kwargs)

    method.__name__ = name
    setattr(Apps, name, method)


for _name in ("append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse",
              "__setitem__", "__delitem__", "__iadd__", "__imul__"):
    _dirtying(_name)


def _poll_only(app: App) -> PollFn:
    """``poll_ready`` for an app that has only ``poll``: the descriptors go unused."""
    poll = app.poll
    return lambda now, fds: poll(now)


class AppRunner:
    """Wraps a :class:`Stack`; anything not defined here is the stack's."""

    def __init__(self, stack: Stack, apps: Iterable[App] = (), *,
                 on_changes: ChangeHook | None = None, keep_changes: bool = True) -> None:
        self.stack = stack
        self._apps = Apps(apps)
        self._polls: list[PollFn] = []                      # _plan() fills both
        self._deadlines: list[Callable[[], int | None]] = []
        self._on_changes = on_changes
        # A long-running server would grow stack.changes forever; when nothing
        # else reads them, they are dropped once the hook has seen them.
        self._keep_changes = keep_changes
        self._record()
        self._seen = len(stack.changes)
        self._touched: set[int] = _NONE     # handed to the apps, not yet to the driver
        # A driver takes them (take_touched): True, or the collection whose being
        # non-empty says when (hand_touched_while); False: nobody does.
        self._handing_on: Any = False
        # Packets go straight to the stack: a driver calls this per packet, and the
        # wrapper method below would add a call that does nothing.
        self.receive = stack.receive  # type: ignore[method-assign]
        self._stack_deadline = stack.next_deadline     # bound once: asked every batch
        # stack.next_wake(), inline (for a Stack as it is; a subclass may have its own).
        self._stack_wake = (stack.timers.next_wake if type(stack).next_wake is Stack.next_wake
                            else stack.next_wake)

    @property
    def apps(self) -> Apps:
        """The applications polled, in order (a list; change it at will)."""
        return self._apps

    @apps.setter
    def apps(self, apps: Iterable[App]) -> None:
        self._apps = Apps(apps)

    def _plan(self) -> None:
        """Look up each app's poll (``poll_ready``, else ``poll``) and ``next_deadline``:
        once after each change of :attr:`apps` instead of with ``getattr`` every batch."""
        apps = self._apps
        apps.dirty = False
        self._polls = [getattr(app, "poll_ready", None) or _poll_only(app) for app in apps]
        self._deadlines = [nd for app in apps
                           if (nd := getattr(app, "next_deadline", None)) is not None]

    # ------------------------------------------------------------ state changes
    @property
    def on_changes(self) -> ChangeHook | None:
        """Called with each batch's new state changes (None: no hook)."""
        return self._on_changes

    @on_changes.setter
    def on_changes(self, hook: ChangeHook | None) -> None:
        self._on_changes = hook
        self._record()

    @property
    def keep_changes(self) -> bool:
        """Whether ``stack.changes`` keeps what the hook has seen (False: dropped)."""
        return self._keep_changes

    @keep_changes.setter
    def keep_changes(self, keep: bool) -> None:
        self._keep_changes = keep
        self._record()

    def _record(self) -> None:
        # Neither kept nor handed to a hook, a state change is made only to be thrown
        # away: the stack's connections (those made from now on) make none.
        self.stack.record_changes = self._keep_changes or self._on_changes is not None

    # ------------------------------------------------------------ host methods
    def receive(self, packet: bytes, *, now: int, csum_valid: bool = False) -> None:
        """One IPv4 packet in."""
        self.stack.receive(packet, now=now, csum_valid=csum_valid)

    def tick(self, *, now: int) -> None:
        """Run the stack's timers."""
        self.stack.tick(now=now)

    def next_deadline(self) -> int | None:
        """The stack's next timer, or an application's (an idle timeout)."""
        best = self._stack_deadline()
        if self._apps.dirty:
            self._plan()
        for nd in self._deadlines:
            t = nd()
            if t is not None and (best is None or t < best):
                best = t
        return best

    def next_wake(self) -> int | None:
        """Like :meth:`next_deadline`, with the stack's cheaper bound
        (:meth:`Stack.next_wake`): the link event loop's wake-up time."""
        best = self._stack_wake()
        if self._apps.dirty:
            self._plan()
        for nd in self._deadlines:
            t = nd()
            if t is not None and (best is None or t < best):
                best = t
        return best

    def hand_touched_while(self, waiters: Sized) -> None:
        """Keep the touched descriptors for :meth:`take_touched` only while ``waiters``
        is not empty: for a driver that wants them only to wake the threads it has
        blocked on a descriptor (``waiters``, its own table of them; the link event
        loop), and asks only while there are some."""
        self._handing_on = waiters
        self._touched = _NONE

    def take_touched(self) -> set[int]:
        """Descriptors touched since the driver last asked (the apps saw them too).

        Only a driver that asks gets them kept for it: the simulator never does, and a
        set of every descriptor ever touched would grow without bound there.
        """
        if self._handing_on is False:
            self._handing_on = True
        stack = self.stack
        t = stack.touched               # stack.take_touched(), inline: once per batch
        if t:
            stack.touched = set()
        mine = self._touched
        if mine:
            self._touched = _NONE           # never added to: replaced while empty (poll)
            return mine | t if t else mine
        return t

    def transmit(self, *, now: int) -> list[bytes]:
        """Poll the applications, then hand out the stack's packets."""
        self.poll(now)
        return self.stack.transmit(now=now)

    def transmit_gso(self, now: int) -> list[tuple[bytes, int]]:
        """Like :meth:`transmit`, with GSO sizes (``now`` may be passed positionally:
        the link event loop does, once per batch)."""
        # self.poll(now), inline: once per batch of the link event loop.
        stack = self.stack
        fds = stack.touched             # stack.take_touched(), inline
        if fds:
            stack.touched = set()
            if self._handing_on:
                # The stack has a new set: this one is ours to keep (the apps only read it).
                mine = self._touched
                if mine:
                    mine |= fds
                else:
                    self._touched = fds
        if self._apps.dirty:
            self._plan()
        for poll in self._polls:
            poll(now, fds)
        if len(stack.changes) > self._seen:
            self.report_changes()
        return stack.transmit_gso(now)

    @property
    def offload(self) -> Offload | None:
        """The stack's offloads (a driver sets them from its link)."""
        return self.stack.offload

    @offload.setter
    def offload(self, value: Offload | None) -> None:
        self.stack.offload = value

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stack, name)

    # ------------------------------------------------------------ apps
    def add(self, app: App) -> None:
        """Start polling ``app``."""
        self.apps.append(app)

    def poll(self, now: int) -> None:
        """Let every application act, then report state changes."""
        stack = self.stack
        fds = stack.touched             # stack.take_touched(), inline: once per batch
        if fds:
            stack.touched = set()
            if self._handing_on:
                # The stack has a new set: this one is ours to keep (the apps only read it).
                mine = self._touched
                if mine:
                    mine |= fds
                else:
                    self._touched = fds
        if self._apps.dirty:
            self._plan()
        for poll in self._polls:
            poll(now, fds)
        if len(stack.changes) > self._seen:
            self.report_changes()

    def report_changes(self) -> None:
        """Give the state changes not yet seen to the hook."""
        changes = self.stack.changes
        if len(changes) > self._seen:
            if self.on_changes is not None:
                self.on_changes(changes[self._seen:])
            if self.keep_changes:
                self._seen = len(changes)
            else:
                del changes[:]
                self._seen = 0
