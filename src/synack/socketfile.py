"""File objects over a synack socket: what ``synack.socket.socket.makefile`` returns.

Built the way the stdlib builds them: a :class:`SocketIO` (``io.RawIOBase``)
under an ``io.BufferedReader`` / ``BufferedWriter`` / ``BufferedRWPair``, and an
``io.TextIOWrapper`` for text modes. The socket stays open until every file
made from it is closed (its ``_io_refs`` count), as with the stdlib.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synack.socket import socket


def make_file(sock: socket, mode: str = "r", buffering: int | None = None, *,
              encoding: str | None = None, errors: str | None = None,
              newline: str | None = None) -> Any:
    """``sock.makefile(...)``: a raw, buffered or text file object on the socket."""
    if not set(mode) <= {"r", "w", "b"}:
        raise ValueError(f"invalid mode {mode!r} (only r, w, b allowed)")
    writing = "w" in mode
    reading = "r" in mode or not writing
    raw = SocketIO(sock, ("r" if reading else "") + ("w" if writing else ""))
    sock._io_refs += 1
    if buffering is None or buffering < 0:
        buffering = io.DEFAULT_BUFFER_SIZE
    binary = "b" in mode
    if buffering == 0:
        if not binary:
            raise ValueError("unbuffered streams must be binary")
        return raw
    buffer: io.BufferedIOBase
    if reading and writing:
        buffer = io.BufferedRWPair(raw, raw, buffering)
    elif reading:
        buffer = io.BufferedReader(raw, buffering)
    else:
        buffer = io.BufferedWriter(raw, buffering)
    if binary:
        return buffer
    text = io.TextIOWrapper(buffer, encoding, errors, newline)  # type: ignore[type-var]
    text.mode = mode  # type: ignore[misc]
    return text


class SocketIO(io.RawIOBase):
    """Raw I/O over a :class:`socket`, for :meth:`socket.makefile`.

    After a timeout the stream is left in an unknown state, so (as the
    stdlib's ``SocketIO``) further reads raise.
    """

    def __init__(self, sock: socket, mode: str) -> None:
        if mode not in ("r", "w", "rw", "rb", "wb", "rwb"):
            raise ValueError(f"invalid mode: {mode!r}")
        super().__init__()
        self._sock: socket | None = sock
        self._mode = mode.replace("b", "") + "b"
        self._reading = "r" in mode
        self._writing = "w" in mode
        self._timeout_occurred = False

    def _socket(self) -> socket:
        if self._sock is None:
            raise ValueError("I/O operation on closed socket.")
        return self._sock

    def readinto(self, b: Any) -> int | None:
        """Receive into ``b``; None when non-blocking and nothing is there."""
        self._checkClosed()  # type: ignore[attr-defined]
        if self._timeout_occurred:
            raise OSError("cannot read from timed out object")
        try:
            return self._socket().recv_into(b)
        except TimeoutError:
            self._timeout_occurred = True
            raise
        except BlockingIOError:
            return None

    def write(self, b: Any) -> int | None:
        """Send some of ``b``; None when non-blocking and the buffer is full."""
        self._checkClosed()  # type: ignore[attr-defined]
        try:
            return self._socket().send(b)
        except BlockingIOError:
            return None

    def readable(self) -> bool:
        """True for a reading stream."""
        if self.closed:
            raise ValueError("I/O operation on closed socket.")
        return self._reading

    def writable(self) -> bool:
        """True for a writing stream."""
        if self.closed:
            raise ValueError("I/O operation on closed socket.")
        return self._writing

    def seekable(self) -> bool:
        """False: a stream."""
        if self.closed:
            raise ValueError("I/O operation on closed socket.")
        return False

    def fileno(self) -> int:
        """The socket's (stack) descriptor."""
        return self._socket().fileno()

    @property
    def name(self) -> int:
        """The descriptor, or -1 once closed."""
        return -1 if self.closed or self._sock is None else self._sock.fileno()

    @property
    def mode(self) -> str:
        """The raw mode, e.g. ``"rb"``."""
        return self._mode

    def close(self) -> None:
        """Close the stream; the socket closes when its last user lets go."""
        if self.closed:
            return
        super().close()
        sock, self._sock = self._sock, None
        if sock is not None:
            sock._decref_socketios()
