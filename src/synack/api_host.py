"""A host for the socket APIs: one Stack bound to the Loop that drives it.

:mod:`synack.socket` and :mod:`synack.asyncio` call the stack only through a
:class:`Host`: with ``host.loop.lock`` held, at ``host.loop.now()``, followed by
``host.loop.wake()``. :func:`set_default_host` chooses the host used when a
call is given none, the way the stdlib's ``socket`` has one kernel.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from synack.link.base import Link
    from synack.link.loop import Loop
    from synack.stack import Stack

_default: Host | None = None


class Host:
    """A :class:`~synack.stack.Stack` and its running :class:`~synack.link.loop.Loop`."""

    def __init__(self, stack: Stack, loop: Loop) -> None:
        self.stack = stack
        self.loop = loop
        # Where synack.socket's resolver sends DNS queries (over this host's UDP) for
        # names not in /etc/hosts; None: none are sent. E.g.
        # synack.dns.nameserver_from_resolv_conf() for the one of /etc/resolv.conf.
        self.nameserver: str | None = None

    @classmethod
    def loopback(cls, addr: str = "127.0.0.1", **stack_kwargs: Any) -> Host:
        """A started host whose packets come back to itself (like Linux's ``lo``).

        ``stack_kwargs`` go to :class:`~synack.stack.Stack` (``cfg``, ``seed``,
        ``mtu``, ...); ``mtu`` is the loopback's too (``lo_mtu``), as ``ip link set lo
        mtu N`` would make it. Stop it with :meth:`close`.
        """
        if "mtu" in stack_kwargs:
            stack_kwargs.setdefault("lo_mtu", stack_kwargs["mtu"])
        from synack.link.loop import Loop
        from synack.link.loopback import Loopback
        from synack.stack import Stack

        stack = Stack(addr, **stack_kwargs)
        loop = Loop(stack, Loopback(), name=f"synack-lo-{addr}")
        loop.start()
        return cls(stack, loop)

    @classmethod
    def on_link(cls, addr: str, link: Link, **stack_kwargs: Any) -> Host:
        """A started host at ``addr`` on ``link`` (e.g. one end of a LinkPair)."""
        from synack.link.loop import Loop
        from synack.stack import Stack

        stack = Stack(addr, **stack_kwargs)
        loop = Loop(stack, link, name=f"synack-{addr}")
        loop.start()
        return cls(stack, loop)

    def close(self) -> None:
        """Stop the loop and release the link (sockets still open simply go quiet)."""
        self.loop.stop()
        self.loop.link.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Host {self.stack.addr} {self.loop!r}>"


def set_default_host(host: Host | None) -> None:
    """Use ``host`` wherever a socket API call is given ``host=None``."""
    global _default
    _default = host


def get_default_host() -> Host | None:
    """The host set by :func:`set_default_host`, or None."""
    return _default


def resolve_host(host: Host | None) -> Host:
    """``host``, else the default one; OSError(ENETDOWN) when there is neither."""
    h = host if host is not None else _default
    if h is None:
        raise OSError(errno.ENETDOWN, os.strerror(errno.ENETDOWN)
                      + ": no synack host (call synack.socket.set_default_host())")
    return h
