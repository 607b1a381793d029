"""The per-head attention datapath of SpAtten (Q·K, softmax, local value pruning, prob·V).

Numeric specification: ``docs/numerics.md``; golden model: ``sim.golden.attention``;
the pipeline and its protocol: ``docs/head.md``.
"""

from .adapt import Chunker, ToTopK
from .head import Head
from .pv import ProbV
from .qk import QKArray
from .softmax import Softmax

__all__ = ["Chunker", "Head", "ProbV", "QKArray", "Softmax", "ToTopK"]
