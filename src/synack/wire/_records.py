"""A faster way for parsers to build frozen slotted records.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``
(a global lookup, an attribute lookup and a generic setattr per field). Parsers
build one record per packet with every field known, so they use a constructor
that skips all of that: about three times as fast for the 18 fields of a TCP
segment. It skips ``__post_init__`` and defaults, which the wire records do not
rely on; the public ``__init__`` is untouched.

How: a twin class -- a subclass of the record adding no slots, its ``__setattr__``
object's own, not the frozen one -- takes plain attribute stores (which CPython
specialises for slots), and the finished object's ``__class__`` is then set to the
record class. CPython allows that only between classes whose layouts are identical
and raises ``TypeError`` otherwise, so a record never has its fields in the wrong
places; a subclass that adds nothing passes its cheapest check (no comparison of the
slot lists, as two unrelated classes with the same slots would need). The twin is
checked once here, and where it could not work the constructor calls each slot's
descriptor instead (half the speed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["TWINS", "positional_constructor"]

T = TypeVar("T")

#: Record class -> the twin its constructor fills (where the twin works): for a hot
#: caller that inlines the constructor's body (``obj = object.__new__(twin)``, every
#: field stored, then ``obj.__class__ = cls``).
TWINS: dict[type, type] = {}


def positional_constructor(cls: type[T]) -> Callable[..., T]:
    """Return ``make(*values)`` building a ``cls`` from every field, in field order."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    args = ", ".join(f"v{i}" for i in range(len(names)))
    twin = type(f"_{cls.__name__}Fields", (cls,), {
        "__slots__": (), "__setattr__": object.__setattr__, "__delattr__": object.__delattr__})
    body = "".join(f"    obj.{name} = v{i}\n" for i, name in enumerate(names))
    source = f"def make({args}):\n    obj = new(twin)\n{body}    obj.__class__ = cls\n    return obj\n"
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls, "twin": twin}
    exec(source, namespace)  # noqa: S102 - source built above from field names only
    make: Callable[..., T] = namespace["make"]
    probe = list(range(len(names)))
    try:
        obj = make(*probe)
        ok = type(obj) is cls and [getattr(obj, n) for n in names] == probe
    except TypeError:
        ok = False
    if ok:
        TWINS[cls] = twin
    else:
        body = "".join(f"    set{i}(obj, v{i})\n" for i in range(len(names)))
        source = f"def make({args}):\n    obj = new(cls)\n{body}    return obj\n"
        namespace = {"new": object.__new__, "cls": cls}
        for i, name in enumerate(names):
            namespace[f"set{i}"] = cls.__dict__[name].__set__  # the slot's member descriptor
        exec(source, namespace)  # noqa: S102 - source built above from field names only
        make = namespace["make"]
    make.__qualname__ = f"{cls.__name__}._make"
    return make
