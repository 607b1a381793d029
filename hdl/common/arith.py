"""Generation-time helpers that build balanced arithmetic trees."""

from __future__ import annotations

from amaranth.hdl import Value

__all__ = ["popcount", "prefix_sums", "tree_or", "tree_sum"]


def tree_or(values) -> Value:
    """Bitwise OR of ``values`` as a balanced tree (depth ``ceil(log2(len))``); a chain of
    255 ORs (a radix-8 one-hot pick) overflowed YoWASP Yosys' stack in ECP5 mapping."""
    terms = [Value.cast(v) for v in values]
    if not terms:
        raise ValueError("tree_or needs at least one value")
    while len(terms) > 1:
        terms = [terms[i] | terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def tree_sum(values) -> Value:
    """Sum of unsigned ``values`` as a balanced adder tree (depth ``ceil(log2(len))``), not
    a chain of ``len - 1`` adders (slower, and hard for ABC's SAT sweeping)."""
    terms = [Value.cast(v).as_unsigned() for v in values]
    if not terms:
        raise ValueError("tree_sum needs at least one value")
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def popcount(bits) -> Value:
    """Number of set bits, as a balanced adder tree (depth ``ceil(log2(len))``)."""
    terms = list(bits)
    if not terms:
        raise ValueError("popcount needs at least one bit")
    return tree_sum(terms)


def prefix_sums(values, *, exclusive: bool = True) -> list[Value]:
    """Running sums of ``values`` by a Hillis–Steele scan (``log2`` levels of adders).

    With ``exclusive`` the ``i``-th result sums ``values[:i]`` (the first is 0).
    """
    acc = [Value.cast(v).as_unsigned() for v in values]
    n, step = len(acc), 1
    while step < n:
        acc = [acc[i] + acc[i - step] if i >= step else acc[i] for i in range(n)]
        step *= 2
    if exclusive:
        return [Value.cast(0)] + acc[:-1]
    return acc
