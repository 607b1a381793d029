"""The core's status codes: one definition for the hardware (``hdl.core``), the golden model
(``sim.golden.core``) and the testbenches."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Status"]


class Status(IntEnum):
    """A layer descriptor that breaks a rule; the hardware reports the code and skips the
    layer (``docs/core.md``, Errors)."""

    OK = 0
    KEEP_RANGE = 1     # token_keep or head_keep is 0 or more than the candidates
    VALUE_KEEP = 2     # value_keep is more than token_keep
    POLICY = 3         # more protected tokens (sinks + recent window) than token_keep
    GEOMETRY = 4       # more tokens than topk.capacity or more heads than core.heads
    PARAMS = 5         # scale, shift, threshold or msb_only out of range
    ALIGN = 6          # a base address not aligned (sim.golden.core.base_align)
    BUS = 7            # an AXI4 read or write response other than OKAY during the layer
