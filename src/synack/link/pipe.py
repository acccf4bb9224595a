"""Any packet pipe as a link: put synack on a tunnel of your own.

A VPN, a USB tunnel, a WebSocket, a serial line -- anything that can carry whole
IPv4 packets -- becomes a :class:`~synack.link.base.Link` with one of these:

* :class:`PipeLink` takes a ``send(packet: bytes)`` callable for what synack
  transmits, and has a thread-safe :meth:`PipeLink.deliver` for what arrives::

      link = PipeLink(send=tunnel.write)          # synack -> tunnel
      host = Host.on_link("10.0.0.2", link)       # synack.api_host.Host
      threading.Thread(target=lambda: [link.deliver(p) for p in tunnel]).start()

* :class:`AsyncQueueLink` is the asyncio variant: a pair of ``asyncio.Queue``
  objects, ``incoming`` (put packets there for synack) and ``outgoing`` (synack's
  packets appear there), bridged into synack's own loop thread.

``send`` runs in synack's loop thread with the host's lock held, once per packet,
in order: it must not block for long (hand the packet to a queue or a
non-blocking socket) and must not call back into synack. Packets are plain IPv4,
each at most one MTU (super-segments are cut first); nothing below IP is added.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from synack.link.loopback import Inbox
from synack.stack import Offload
from synack.wire.gso import segment_all

__all__ = ["AsyncQueueLink", "PipeLink"]


class PipeLink(Inbox):
    """A :class:`~synack.link.base.Link` over two callables' worth of pipe.

    ``send(packet)`` carries what the stack transmits; :meth:`deliver` (from any
    thread) hands the stack a received IPv4 packet. ``csum_valid`` says whether
    the pipe vouches for TCP checksums (False: the stack verifies each one).
    ``mtu`` is what the stack sizes its segments by.
    """

    offload: Offload | None = None

    def __init__(self, send: Callable[[bytes], object], *, mtu: int = 1500,
                 csum_valid: bool = False, name: str = "pipe") -> None:
        if not callable(send):
            raise TypeError("PipeLink(send=...) needs a callable taking one packet (bytes)")
        super().__init__(csum_valid=csum_valid, name=name)
        self.mtu = mtu
        self._send = send
        self.send_errors = 0

    def deliver(self, packet: bytes | bytearray | memoryview) -> None:
        """Hand one received IPv4 packet to the stack. Thread-safe; never blocks.

        Dropped silently once the link is closed (as a wire drops it).
        """
        self._deliver([bytes(packet)])

    def send_packets(self, packets: list[tuple[bytes, int]], *, now: int) -> None:
        """Cut super-segments to MSS packets and pass each to ``send``, in order.

        An exception from ``send`` counts the packet as lost (TCP retransmits it)
        and is not allowed to stop the loop.
        """
        if self._closed or not packets:
            return
        send = self._send
        for packet in segment_all(packets):
            try:
                send(packet)
            except Exception:  # noqa: BLE001 - a broken pipe loses packets, like a wire
                self.send_errors += 1
                continue
            self.packets_out += 1

    def __repr__(self) -> str:
        return f"<PipeLink {self.name} in={self.packets_in} out={self.packets_out}>"


class AsyncQueueLink(PipeLink):
    """A :class:`PipeLink` whose two ends are ``asyncio.Queue`` objects of one event loop.

    Put received IPv4 packets on :attr:`incoming`; read what synack sends from
    :attr:`outgoing`. Call :meth:`start` from a coroutine (it starts the task that
    feeds ``incoming`` to the stack), and :meth:`close` when done.
    """

    def __init__(self, *, loop: asyncio.AbstractEventLoop | None = None, mtu: int = 1500,
                 csum_valid: bool = False, maxsize: int = 0, name: str = "asyncio") -> None:
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue(maxsize)
        self.outgoing: asyncio.Queue[bytes] = asyncio.Queue(maxsize)
        self._aloop = loop
        self._task: asyncio.Task[None] | None = None
        super().__init__(self._to_outgoing, mtu=mtu, csum_valid=csum_valid, name=name)

    def start(self) -> None:
        """Begin moving :attr:`incoming` into the stack (call inside the event loop)."""
        if self._aloop is None:
            self._aloop = asyncio.get_running_loop()
        if self._task is None:
            self._task = self._aloop.create_task(self._pump())

    async def _pump(self) -> None:
        while True:
            packet = await self.incoming.get()
            self.deliver(packet)

    def _to_outgoing(self, packet: bytes) -> None:
        aloop = self._aloop
        if aloop is None or aloop.is_closed():
            raise ConnectionError("AsyncQueueLink: no running event loop (call start())")
        # The loop thread is not the event loop's: hand the packet over thread-safely.
        aloop.call_soon_threadsafe(self.outgoing.put_nowait, packet)

    def close(self) -> None:
        """Stop the pump task and the link. Idempotent."""
        task, self._task = self._task, None
        if task is not None and self._aloop is not None and not self._aloop.is_closed():
            self._aloop.call_soon_threadsafe(task.cancel)
        super().close()
