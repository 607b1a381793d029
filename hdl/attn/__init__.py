"""The per-head attention datapath of SpAtten (Q·K, softmax, local value pruning, prob·V).

Numeric specification: ``docs/numerics.md``; golden model: ``sim.golden.attention``.
"""
