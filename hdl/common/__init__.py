"""Shared building blocks of the generated hardware.

Stream convention (``amaranth.lib.stream``), restated from the Amaranth docs:

1. a transfer happens in a cycle where both ``valid`` and ``ready`` are high;
2. once ``valid`` is asserted it stays asserted, with the same payload, until the transfer;
3. ``valid`` must not depend combinationally on ``ready`` (``ready`` may depend on ``valid``);
4. payloads are only meaningful while ``valid`` is high.

Packets are framed by a ``last`` field in the payload; lane 0 of an ``ArrayLayout`` occupies
the least significant bits. Every component has a synchronous ``sync`` domain with an
active-high synchronous reset (Verilog ports ``clk``/``rst``).

Queues are :class:`~hdl.common.queue.Queue` (a FIFO whose word is the stream's payload
layout), never a FIFO word packed with ``Cat`` by hand.
"""

from .arith import popcount, prefix_sums
from .narrow import fit, shift_round
from .queue import Queue

__all__ = ["Queue", "fit", "popcount", "prefix_sums", "shift_round"]
