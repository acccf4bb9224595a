"""A :class:`collections.Counter` whose ``c[key] += 1`` runs no Python code.

``Counter`` defines ``__delitem__`` in Python (so that deleting a missing key does
not raise), and a class with either of ``__setitem__``/``__delitem__`` in Python
stores every item through a Python-level dispatch: about three times the cost of a
plain dict store. A host bumps its counters for every packet (``stats["segments
in"]``, the MIB), so its counters are this class: the same Counter in every other
way, but ``__delitem__`` is dict's own, and a missing key raises ``KeyError`` as it
does for a dict. Its repr is Counter's, name included.
"""

from __future__ import annotations

import collections
from typing import TypeVar

__all__ = ["Counter"]

K = TypeVar("K")


class Counter(collections.Counter[K]):
    """``collections.Counter`` with dict's ``__delitem__`` (see the module docstring)."""

    # dict's own slot wrapper: the type's item assignment stays the C function.
    __delitem__ = dict.__delitem__   # type: ignore[assignment]
