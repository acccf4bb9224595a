"""The send buffer's chunks behave exactly like one bytearray (hypothesis model test)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from synack.tcp.sender import SendBuffer

ops = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(0, 150_000)),
    st.tuples(st.just("drop"), st.integers(0, 200_000)),
    st.tuples(st.just("slice"), st.integers(0, 200_000), st.integers(0, 140_000)),
), max_size=40)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_send_buffer_matches_a_bytearray(script: list[tuple[str, int] | tuple[str, int, int]]) -> None:
    model = bytearray()
    buf = SendBuffer()
    counter = 0
    for op in script:
        if op[0] == "append":
            data = bytes((counter + k) & 0xFF for k in range(op[1] % 300)) * (op[1] // 300 + 1)
            data = data[:op[1]]
            counter += 7
            model += data
            buf.append(memoryview(data))
        elif op[0] == "drop":
            n = min(op[1], len(model))
            del model[:n]
            buf.drop(n)
        else:
            off = min(op[1], len(model))
            length = min(op[2], len(model) - off)   # type: ignore[misc]
            assert buf.slice(off, length) == bytes(model[off:off + length])
        assert len(buf) == len(model)
