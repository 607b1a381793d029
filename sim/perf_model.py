"""The SpAtten authors' top-k latency model, re-implemented in NumPy (a cycle model, not RTL).

Our benchmark puts the latency measured on our top-k RTL beside the number the SpAtten authors'
own model gives for their quick-select engine. This module is that model. It counts cycles
with a formula; it simulates no hardware and knows nothing of our design.

Source
------
``mit-han-lab/spatten`` (MIT licence), file
``spatten_hardware/hardware/src/main/scala/spatten/sim/TopKLatencyModel.scala``
(commit b5669e27b33d4b0d2b299091e82bcd3d4be1642f), function ``topKLatency(size, target,
parallelism)``. Their simulator charges this delay to a stand-in top-k that passes on the
*first* k scores (reference.md, section 3). The Scala model does this:

* draw ``size`` random 32-bit integers (``rng.nextInt()``);
* each pass costs ``ceil(len(candidates) / parallelism) + 3`` cycles. The first pass over
  all ``size`` elements counts, and so does the pass that finds the value;
* the pivot is a uniformly random element of the current candidates;
* the candidates are split into ``< pivot``, ``> pivot`` and a count of ``== pivot``. With
  ``target`` as the 0-based ascending rank: if ``less > target`` the next pass works on the
  smaller side; else if ``less + equal > target`` the value has been found; else
  ``target -= less + equal`` and the next pass works on the greater side;
* the loop also stops when no candidates are left;
* the figures are means over 100 runs at ``parallelism = 16``.

This module does the same thing, seen from the large end, because top-k keeps the largest
scores. ``k`` (1-based) is the rank of the wanted value counted from the largest. If
``greater >= k``, the next pass uses the greater side. Else if ``greater + equal >= k``, the
value has been found. Else ``k -= greater + equal``, and the next pass uses the smaller side.
The descending rule for ``k`` is the mirror image of the Scala rule with ``target = k - 1``.
On data with no ties, both give the same distribution of cycle counts. The Scala table passes
``target = k`` (for example ``(1024, 512)``), which is one rank away. At these sizes that
difference is within the noise. The random generators also differ (``java.util.Random`` there,
NumPy ``Generator`` here), so the two models agree in distribution, not run for run.

What is counted
---------------
* ``quickselect_cycles``: the selection passes only. These are the passes that pin the k-th
  largest value, as in the Scala model. The reference means are ~259 cycles for n=1024,
  k=512 and ~132 for n=512, k=128 (16 lanes, random data; reference.md, sections 2 and 5).
* ``authors_model_latency``: ``selection_*`` is the same quantity. ``mean``, ``p99`` and
  ``max`` are the totals after the last input arrives: the selection passes plus one final
  filter pass over the buffered ``n`` elements, ``ceil(n / lanes)`` cycles (``fill_filter``).
  In the paper's engine, this final pass keeps the elements above the k-th value, and the
  earliest ties up to k, in arrival order.

What is not counted
-------------------
* Filling the input buffer. It happens while the scores arrive, so its pace is set by the
  producer, not by the engine.
* Draining the k results to the consumer after the filter pass, and any back-pressure.
* Pipeline latency between passes beyond the model's fixed ``+3`` per pass, and FIFO or
  zero-eliminator stalls. The Scala model has none of these either.
* The fact that the authors' own RTL top-k does not work (reference.md, section 3). These
  numbers describe the engine as the paper intends it, not a circuit that exists.

Data: ``authors_model_latency`` uses uniformly random signed ``score_bits``-bit integers,
12 bits by default to match the datapath. Ties among 12-bit values can end a run early, but
for n <= 1024 the means stay within sampling noise of those for 32-bit data (for example
258.2 vs 257.1 cycles at n=1024, k=512 over 2000 trials). ``score_bits=32`` matches the
Scala data.
"""

from __future__ import annotations

import operator

import numpy as np

__all__ = ["authors_model_latency", "quickselect_cycles"]


def _as_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {value!r}") from None


def _check_k_lanes(n: int, k, lanes, overhead) -> tuple[int, int, int]:
    k = _as_int(k, "k")
    lanes = _as_int(lanes, "lanes")
    overhead = _as_int(overhead, "overhead")
    if not 0 <= k <= n:
        raise ValueError(f"k must be in 0..n ({n}), not {k}")
    if lanes < 1:
        raise ValueError(f"lanes must be >= 1, not {lanes}")
    if overhead < 0:
        raise ValueError(f"overhead must be >= 0, not {overhead}")
    return k, lanes, overhead


def quickselect_cycles(scores: np.ndarray, k: int, *, lanes: int = 16, overhead: int = 3,
                       rng: np.random.Generator) -> int:
    """Cycles of the selection passes for one run of the authors' quick-select model.

    Each pass costs ``ceil(len(candidates) / lanes) + overhead`` cycles. The first pass over
    all ``len(scores)`` elements counts, and so does the pass that finds the k-th largest
    value. The pivot is drawn uniformly from the current candidates with ``rng``. ``k = 0``
    selects nothing and costs 0 cycles. The final filter pass is not included (see
    ``authors_model_latency``).
    """
    s = np.asarray(scores)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, not shape {s.shape}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, not {type(rng).__name__}")
    k, lanes, overhead = _check_k_lanes(len(s), k, lanes, overhead)
    if k == 0:
        return 0
    cand = s
    cycles = 0
    # Always ends: 1 <= k <= len(cand) holds on every pass, and each pass either finds the
    # value or keeps a strict subset of the candidates (the pivot itself is always dropped).
    while True:
        cycles += -(-len(cand) // lanes) + overhead
        pivot = cand[rng.integers(len(cand))]
        greater = cand[cand > pivot]
        n_gt = len(greater)
        if n_gt >= k:
            cand = greater
            continue
        n_eq = int(np.count_nonzero(cand == pivot))
        if n_gt + n_eq >= k:
            return cycles
        k -= n_gt + n_eq
        cand = cand[cand < pivot]


def authors_model_latency(n: int, k: int, *, lanes: int = 16, trials: int = 200, seed: int = 0,
                          score_bits: int = 12) -> dict:
    """Latency distribution of the authors' top-k model on uniformly random scores.

    Each of the ``trials`` runs draws ``n`` uniformly random signed ``score_bits``-bit
    integers and runs ``quickselect_cycles`` on them (overhead 3). Data and pivots come from
    ``numpy.random.default_rng(seed)``, so the result depends only on the arguments.

    Returns a dict:

    * ``selection_mean``: mean cycles of the selection passes. This is the number to compare
      with the authors' ~259 (n=1024, k=512) and ~132 (n=512, k=128).
    * ``fill_filter``: ``ceil(n / lanes)``, the final filter pass over the buffered input.
      Filling the buffer overlaps the input and is not counted.
    * ``mean``, ``p99``, ``max``: the total, selection + filter, in cycles after the last
      input arrives. ``p99`` is ``numpy.percentile(..., 99)`` with linear interpolation.
    """
    n = _as_int(n, "n")
    if n < 1:
        raise ValueError(f"n must be >= 1, not {n}")
    k, lanes, _ = _check_k_lanes(n, k, lanes, 3)
    trials = _as_int(trials, "trials")
    if trials < 1:
        raise ValueError(f"trials must be >= 1, not {trials}")
    score_bits = _as_int(score_bits, "score_bits")
    if not 1 <= score_bits <= 63:
        raise ValueError(f"score_bits must be in 1..63, not {score_bits}")
    seed = _as_int(seed, "seed")

    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (score_bits - 1)), 1 << (score_bits - 1)
    fill_filter = -(-n // lanes)
    sel = np.empty(trials, dtype=np.int64)
    for t in range(trials):
        scores = rng.integers(lo, hi, size=n, dtype=np.int64)
        sel[t] = quickselect_cycles(scores, k, lanes=lanes, rng=rng)
    total = sel + fill_filter
    return {
        "mean": float(total.mean()),
        "p99": float(np.percentile(total, 99)),
        "max": int(total.max()),
        "selection_mean": float(sel.mean()),
        "fill_filter": int(fill_filter),
    }
