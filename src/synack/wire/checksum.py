"""The Internet checksum (RFC 1071) without a per-byte Python loop.

Theory of operation: the one's complement sum of 16-bit big-endian words is the
ordinary sum taken modulo 0xFFFF (because 2**16 == 1 mod 0xFFFF), with the one
exception that a non-zero input whose sum is a multiple of 0xFFFF yields 0xFFFF,
not 0 ("negative zero"). ``int.from_bytes(data, "big")`` is the sum of the words
each weighted by a power of 2**16, so it is congruent to the word sum, and the
whole buffer can be summed by C code in one call. Big integers are first folded
in halves (high half + low half, cut on a 16-bit boundary), which is linear time,
and the last few hundred bits are reduced with ``% 0xFFFF``, which is cheapest
for small numbers. An odd trailing byte is padded with a zero on the right, as
RFC 1071 says, by shifting the integer left 8 bits. :func:`internet_checksum`
reads the bytes little-endian instead (faster in CPython): that sums the
byte-swapped words, which pads an odd byte by itself, and multiplying the folded
remainder by 256 swaps the result back.

Partial sums returned by :func:`ones_sum` may be added together before folding
as long as every piece but the last has an even length.
"""

from __future__ import annotations

import functools

from ._addr import aton, aton6

__all__ = ["internet_checksum", "ones_sum", "pseudo_header_sum"]

Buffer = bytes | bytearray | memoryview

# Below this many bits one `% 0xFFFF` beats halving folds (measured on CPython 3.11).
_FOLD_ABOVE_BITS = 4096
_FOLD_ABOVE_BYTES = _FOLD_ABOVE_BITS // 8


def ones_sum(data: Buffer) -> int:
    """Return an unfolded partial sum of ``data`` as 16-bit big-endian words.

    The result is congruent (mod 0xFFFF) to the one's complement sum and is zero
    only if every byte is zero; pass it as ``initial`` to :func:`internet_checksum`.
    """
    x = int.from_bytes(data, "big")
    if len(data) & 1:
        x <<= 8
    return x


def internet_checksum(data: Buffer, initial: int = 0) -> int:
    """Return the Internet checksum of ``data``: the one's complement of the
    one's complement sum of its 16-bit words.

    ``initial`` is an unfolded partial sum to include, typically
    :func:`pseudo_header_sum`. Computing it over a header whose checksum field
    is filled in gives 0 when the checksum is correct.
    """
    # Read little-endian, which CPython converts faster, and no padding shift: that is
    # the sum of the byte-swapped words, and a byte swap is a multiplication by 256
    # modulo 0xFFFF (RFC 1071 "byte order independence"), done on the small remainder.
    x = int.from_bytes(data, "little")
    size = len(data)
    if size > _FOLD_ABOVE_BYTES:
        n = size << 3  # bits, at most
        while n > _FOLD_ABOVE_BITS:
            k = ((n + 31) >> 5) << 4  # half the width, rounded up to whole 16-bit words
            x = (x & _low_mask(k)) + (x >> k)
            n = k + 1
    if not x and not initial:
        return 0xFFFF
    # (s - 1) % 0xFFFF + 1 maps a non-zero sum s into 1..0xFFFF, as end-around carry does.
    return 0xFFFE - (((x % 0xFFFF) << 8) + initial - 1) % 0xFFFF


@functools.lru_cache(maxsize=32)
def _low_mask(k: int) -> int:
    """``2**k - 1``: segments of one size fold at the same widths, so reuse the big mask."""
    return (1 << k) - 1


@functools.lru_cache(maxsize=4096)
def _address_sum(address: str) -> int:
    """Sum of the 16-bit words of an address: two for dotted-quad IPv4, eight for IPv6
    (any text with a colon)."""
    if ":" in address:
        a = int.from_bytes(aton6(address), "big")
        return (a - 1) % 0xFFFF + 1 if a else 0   # congruent to the word sum, 0 only for ::
    a = aton(address)
    return (a >> 16) + (a & 0xFFFF)


def pseudo_header_sum(src: str, dst: str, proto: int, length: int) -> int:
    """Return the unfolded sum of the IPv4 pseudo-header (RFC 9293 section 3.1) or,
    for IPv6 addresses, of the IPv6 one (RFC 8200 section 8.1: the same four
    quantities, the length a 32-bit word, which sums to the same value).

    ``length`` is the TCP (or UDP, ICMPv6) header plus payload length in bytes.
    Address conversions are cached, so this is cheap per segment.
    """
    return _address_sum(src) + _address_sum(dst) + proto + length
