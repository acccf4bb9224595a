"""Fields most objects never move from their default, or hold alike, kept out of the
object's slots (:class:`Rare`, :class:`Brief` and :class:`Pooled`).

An idle connection is mostly slots: 8 bytes each, whether the field ever changes or
not. A :class:`Rare` field costs its class one descriptor instead; its value lives in
the object's ``rare`` slot, a dict made at the first write of a value that is not the
default (``is``: the defaults are None, False or small ints, one object each) and
holding only the fields so written; writing the default back takes the field out,
and the last one out drops the dict. Reads and writes go through Python code, so a
field read or written for every segment should stay a slot -- or, if it is at its
default nearly always (a :class:`Brief` field), a per-segment test reads the
dict's slot first (``if conn.brief is not None and conn.rtt_seq is not None``).

The owner declares a ``rare`` slot, sets it to None in ``__init__`` and never
assigns a :class:`Rare` field there (the default is what it reads until then)::

    class Thing:
        __slots__ = ("rare", ...)
        soft_error = Rare[int | None](None)
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class Rare(Generic[T]):
    """A field kept in its owner's ``rare`` dict while it is not ``default``; writing
    the default back removes it, and the last one out leaves ``rare`` None again."""

    __slots__ = ("default", "name")

    def __init__(self, default: T) -> None:
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Rare[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: Any, owner: type | None = None) -> Rare[T] | T:
        if obj is None:
            return self
        side = obj.rare
        if side is None:
            return self.default
        return side.get(self.name, self.default)  # type: ignore[no-any-return]

    def __set__(self, obj: Any, value: T) -> None:
        side = obj.rare
        if value is self.default:
            if side is not None and self.name in side:
                del side[self.name]
                if not side:
                    obj.rare = None
        elif side is None:
            obj.rare = {self.name: value}
        else:
            side[self.name] = value


class Brief(Rare[T]):
    """A :class:`Rare` field of the owner's second dict, ``brief``: for fields that
    leave their default only for a while, so that ``brief`` is None nearly always and
    a per-segment test can look at it first. ``drops``: Brief fields that mean nothing
    once this one is back at its default, and go with it."""

    __slots__ = ("drops",)

    def __init__(self, default: T, drops: tuple[str, ...] = ()) -> None:
        super().__init__(default)
        self.drops = drops

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Brief[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: Any, owner: type | None = None) -> Brief[T] | T:
        if obj is None:
            return self
        side = obj.brief
        if side is None:
            return self.default
        return side.get(self.name, self.default)  # type: ignore[no-any-return]

    def __set__(self, obj: Any, value: T) -> None:
        side = obj.brief
        if value is self.default:
            if side is not None and self.name in side:
                del side[self.name]
                for name in self.drops:
                    side.pop(name, None)
                if not side:
                    obj.brief = None
        elif side is None:
            obj.brief = {self.name: value}
        else:
            side[self.name] = value


_POOL: dict[tuple[Any, ...], tuple[Any, ...]] = {}


def pooled(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """One tuple object for the same ``values`` (of :class:`Pooled` fields) in every
    object that holds them; equal tuples are one (so a field must not hold both
    ``True`` and ``1``). Bounded: once the table holds 4096 tuples, new ones are
    returned as they are (still correct, no longer shared)."""
    got = _POOL.get(values)
    if got is not None:
        return got
    if len(_POOL) < 4096:
        _POOL[values] = values
    return values


class Pooled(Generic[T]):
    """A field whose value many objects share (sizes from the same configuration, a
    flag): element ``index`` of the owner's ``pool`` slot, a tuple from :func:`pooled`.

    Eight fields cost one slot; a write makes (or finds) the tuple with the new value.
    Reads and writes run Python code: for fields that no segment's path touches.
    """

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Pooled[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: Any, owner: type | None = None) -> Pooled[T] | T:
        if obj is None:
            return self
        return obj.pool[self.index]  # type: ignore[no-any-return]

    def __set__(self, obj: Any, value: T) -> None:
        pool = obj.pool
        i = self.index
        if pool[i] is not value:
            values = list(pool)
            values[i] = value
            obj.pool = pooled(tuple(values))
