"""Progress bars for the long-running commands, on the terminal only.

:func:`bar` returns a bar drawn with tqdm on standard error when both standard
output and standard error are terminals and tqdm is installed (``pip install
'synack[cli]'``); otherwise a stand-in that does nothing, so a command works the
same without tqdm and prints nothing extra into a pipe or a file. The bar is
cleared when it closes, leaving the command's own output as it was.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import TracebackType
from typing import Any, Self

__all__ = ["BIG_FILE", "Bar", "bar", "file_bar", "wanted"]

BIG_FILE = 1 << 20      # captures from this size on get a bar while they are read


def wanted() -> bool:
    """True when a bar would be seen: stdout and stderr are terminals, and the
    environment does not ask for quiet (``NO_PROGRESS``, ``TERM=dumb``)."""
    if os.environ.get("NO_PROGRESS") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return sys.stdout.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):        # replaced or closed streams
        return False


class Bar:
    """A progress bar (or nothing). ``update(n)`` adds, ``to(value)`` sets."""

    def __init__(self, impl: Any | None = None) -> None:
        self._impl = impl
        self._n = 0

    @property
    def shown(self) -> bool:
        """True if a bar is being drawn."""
        return self._impl is not None

    def update(self, n: int = 1) -> None:
        """Advance by ``n``."""
        self._n += n
        if self._impl is not None:
            self._impl.update(n)

    def to(self, value: int) -> None:
        """Advance to ``value`` (never backwards)."""
        if value > self._n:
            self.update(value - self._n)

    def note(self, text: str) -> None:
        """A short status after the bar (e.g. the script running now)."""
        if self._impl is not None:
            self._impl.set_postfix_str(text)

    def write(self, line: str, *, err: bool = False) -> None:
        """Print ``line`` on stdout (``err``: stderr) without tearing the bar."""
        stream = sys.stderr if err else sys.stdout
        if self._impl is not None:
            self._impl.write(line, file=stream)
        else:
            print(line, file=stream, flush=err)

    def close(self) -> None:
        """Remove the bar from the terminal."""
        if self._impl is not None:
            self._impl.close()
            self._impl = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def bar(total: int | None, desc: str, *, unit: str = "it", scale: bool = False) -> Bar:
    """A bar of ``total`` ``unit``s (``scale``: 1.2MB rather than 1200000B)."""
    if not wanted():
        return Bar()
    try:
        tqdm = importlib.import_module("tqdm").tqdm     # optional: synack[cli]
    except ImportError:
        return Bar()
    return Bar(tqdm(total=total, desc=desc, unit=unit, unit_scale=scale, leave=False,
                    file=sys.stderr, dynamic_ncols=True, mininterval=0.2))


def file_bar(path: object, desc: str) -> Bar:
    """A bar over the bytes of the file at ``path`` if it is big (:data:`BIG_FILE`)."""
    if not isinstance(path, (str, os.PathLike)) or not wanted():
        return Bar()
    try:
        size = os.path.getsize(path)
    except OSError:
        return Bar()            # the reader reports it
    return bar(size, desc, unit="B", scale=True) if size >= BIG_FILE else Bar()
