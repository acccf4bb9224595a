"""A descriptor other threads can make readable: the event loop's doorbell.

``selectors`` can only wait on descriptors, so anything that must interrupt a
``select()`` from another thread (a packet queued in-process, ``Loop.wake()``)
rings one of these. An eventfd where Linux has it (one descriptor, one counter),
a non-blocking pipe elsewhere.
"""

from __future__ import annotations

import os
import threading


class Doorbell:
    """A readable-when-rung descriptor; :meth:`ring` and :meth:`clear` are thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        if hasattr(os, "eventfd"):
            self._r = self._w = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:  # pragma: no cover - non-Linux
            self._r, self._w = os.pipe()
            os.set_blocking(self._r, False)
            os.set_blocking(self._w, False)

    def fileno(self) -> int:
        """The descriptor to select on (readable once rung, until cleared)."""
        return self._r

    def ring(self) -> None:
        """Make :meth:`fileno` readable. A no-op once closed."""
        with self._lock:
            if self._closed:
                return
            try:
                os.write(self._w, (1).to_bytes(8, "little"))
            except BlockingIOError:
                pass  # already full of rings: it is readable, which is all we want

    def clear(self) -> None:
        """Make :meth:`fileno` unreadable again (until the next :meth:`ring`)."""
        with self._lock:
            if self._closed:
                return
            try:
                while os.read(self._r, 4096):
                    if self._r == self._w:
                        break  # an eventfd is reset by a single read
            except BlockingIOError:
                pass

    def close(self) -> None:
        """Release the descriptor(s). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self._r)
            if self._w != self._r:
                os.close(self._w)
