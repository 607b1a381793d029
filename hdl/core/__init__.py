"""The SpAtten core around the head pipeline (``docs/core.md``).

``core.SpAttenCore`` composes the parts: the DMA over AXI4 (``axi``), the host
registers (``regs``), the read router (``reads``), the keep-list copies
(``keeplist``), the key and query sweeps (``keys``, ``queries``), the job
controller (``job``), the V server (``vserve``), the output path (``output``),
the write-back mux (``writeback``) and the layer controller (``layer``), with
importance accumulation and cascade selection (``importance``, ``select``)."""

from .axi import Dma, axi4_signature

__all__ = ["Dma", "axi4_signature"]
