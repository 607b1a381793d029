"""The core's status codes: one definition for the hardware (``hdl.core``), the golden model
(``sim.golden.core``), the register map and the testbenches.

:class:`Status` is a plain :class:`enum.IntEnum`, so NumPy-only code can use it without
Amaranth; Amaranth casts such an enumeration to the unsigned shape of its widest member, so
the hardware declares ``Signal(Status)`` (:data:`STATUS_BITS` bits) and compares with the
members directly.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Status", "STATUS_BITS"]


class Status(IntEnum):
    """A layer's outcome; a code other than ``OK`` is a descriptor that breaks a rule (the
    hardware reports it and skips the layer) or a bus error (``docs/core.md``, Errors)."""

    OK = 0
    KEEP_RANGE = 1     # token_keep or head_keep is 0 or more than the candidates
    VALUE_KEEP = 2     # value_keep is more than token_keep
    POLICY = 3         # more protected tokens (sinks + recent window) than token_keep
    GEOMETRY = 4       # more tokens than topk.capacity or more heads than core.heads
    PARAMS = 5         # scale, shift, threshold or msb_only out of range
    ALIGN = 6          # a base address not aligned (generators.dram.base_align)
    BUS = 7            # an AXI4 read or write response other than OKAY during the layer


# The width of a status code: what Amaranth's cast of the enumeration gives.
STATUS_BITS = max(Status).bit_length()
