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

from collections.abc import Callable, Iterable
from typing import Any

from synack.apps.base import App
from synack.stack import Key, Offload, Stack
from synack.tcp.connection import StateChange

ChangeHook = Callable[[list[tuple[Key, StateChange]]], None]


class AppRunner:
    """Wraps a :class:`Stack`; anything not defined here is the stack's."""

    def __init__(self, stack: Stack, apps: Iterable[App] = (), *,
                 on_changes: ChangeHook | None = None, keep_changes: bool = True) -> None:
        self.stack = stack
        self.apps: list[App] = list(apps)
        self._on_changes = on_changes
        # A long-running server would grow stack.changes forever; when nothing
        # else reads them, they are dropped once the hook has seen them.
        self._keep_changes = keep_changes
        self._record()
        self._seen = len(stack.changes)
        self._touched: set[int] = set()     # handed to the apps, not yet to the driver
        self._handing_on = False           # a driver takes them (take_touched)
        # Packets go straight to the stack: a driver calls this per packet, and the
        # wrapper method below would add a call that does nothing.
        self.receive = stack.receive  # type: ignore[method-assign]

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
        best = self.stack.next_deadline()
        for app in self.apps:
            nd = getattr(app, "next_deadline", None)
            t = nd() if nd is not None else None
            if t is not None and (best is None or t < best):
                best = t
        return best

    def take_touched(self) -> set[int]:
        """Descriptors touched since the driver last asked (the apps saw them too).

        Only a driver that asks gets them kept for it: the simulator never does, and a
        set of every descriptor ever touched would grow without bound there.
        """
        self._handing_on = True
        stack = self.stack
        t = stack.touched               # stack.take_touched(), inline: once per batch
        if t:
            stack.touched = set()
        mine = self._touched
        if mine:
            self._touched = set()
            return mine | t if t else mine
        return t

    def transmit(self, *, now: int) -> list[bytes]:
        """Poll the applications, then hand out the stack's packets."""
        self.poll(now)
        return self.stack.transmit(now=now)

    def transmit_gso(self, *, now: int) -> list[tuple[bytes, int]]:
        """Like :meth:`transmit`, with GSO sizes."""
        self.poll(now)
        return self.stack.transmit_gso(now=now)

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
                self._touched |= fds
        for app in self.apps:
            ready = getattr(app, "poll_ready", None)
            if ready is not None:
                ready(now, fds)
            else:
                app.poll(now)
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
