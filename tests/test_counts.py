"""synack.counts.Counter: a collections.Counter whose item stores stay in C."""

from __future__ import annotations

import collections

import pytest

from synack.config import Sysctl
from synack.counts import Counter
from synack.stack import Stack


def test_counts_like_collections_counter() -> None:
    c: Counter[str] = Counter()
    assert c["missing"] == 0 and "missing" not in c
    c["a"] += 1
    c["a"] += 2
    c["b"] += 1
    assert c == collections.Counter(a=3, b=1)
    assert c.most_common(1) == [("a", 3)]
    assert repr(c) == "Counter({'a': 3, 'b': 1})"
    assert isinstance(c, collections.Counter)
    del c["b"]
    assert c == {"a": 3}


def test_item_deletion_is_dicts_own() -> None:
    # Counter's __delitem__ is Python code, which routes every store through Python;
    # this one is dict's, so a missing key raises as for a dict.
    assert Counter.__delitem__ is dict.__delitem__
    with pytest.raises(KeyError):
        del Counter()["missing"]


def test_the_hosts_counters_are_this_class() -> None:
    assert type(Stack("192.0.2.1").stats) is Counter
    assert type(Sysctl().mib) is Counter
