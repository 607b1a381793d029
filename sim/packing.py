"""Pack and unpack stream payloads with the hardware's own ``amaranth.lib.data`` layouts."""

from __future__ import annotations

import enum

from amaranth.lib import data

__all__ = ["pack", "unpack", "const_to_py"]


def const_to_py(value):
    """A ``data.Const`` (struct/array), an enumeration member or an int → plain Python
    dicts, lists and ints (an enumeration field as its value)."""
    if isinstance(value, data.Const):
        layout = value.shape()
        if isinstance(layout, data.ArrayLayout):
            return [const_to_py(value[j]) for j in range(layout.length)]
        return {name: const_to_py(value[name]) for name, _ in layout}
    return value.value if isinstance(value, enum.Enum) else int(value)


def pack(layout: data.Layout, item) -> int:
    """A dict/list item → the payload's bits as an unsigned int (lane 0 in the LSBs)."""
    return layout.const(item).as_value().value & ((1 << layout.size) - 1)


def unpack(layout: data.Layout, bits: int):
    """The payload's bits → plain Python dicts, lists and ints (signed fields signed)."""
    return const_to_py(layout.from_bits(bits))
