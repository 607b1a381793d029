"""The SpAtten core around the head pipeline: DMA over AXI4 (``axi``); importance,
pruning and the controller follow (``docs/core.md``)."""

from .axi import Dma, axi4_signature

__all__ = ["Dma", "axi4_signature"]
