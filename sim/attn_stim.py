"""Stimulus and expected beats for the attention datapath (``hdl.attn``), from the golden model.

One place turns golden-model arrays into stream beats with the hardware's own layouts
(``hdl.attn.layouts``), for the cocotb testbenches, the amaranth.sim tests and the benches:

- :func:`random_pass`: a query with its K and V rows and runtime parameters, of a chosen
  *kind*: ``random`` (scores spread over a few octaves: usually refetched when MSB-only),
  ``peaked`` (one key aligned with the query: a confident row, never refetched), ``flat``
  (tiny scale: near-uniform probabilities);
- ``*_beats``: one pass's input beats per stream, and the expected output beats of each
  block (dicts for ``layout.const``; every output bit is specified, unused lanes are 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generators.config import SpAttenConfig
from generators.numerics import QFormat

from .golden.attention import PassParams, PassResult, head_pass, join_planes, scale_for

__all__ = ["Pass", "pass_scale", "random_pass", "query_beat", "query_beat_of", "key_beats", "key_beats_of",
           "lane_beats", "score_beats", "decision_beat",
           "prob_beats", "chunk_beats", "vreq_beats", "value_beat", "out_beat", "KINDS",
           "meta_of"]

KINDS = ("random", "peaked", "flat")


@dataclass
class Pass:
    """One pass of one query: inputs and the golden result."""

    q: np.ndarray  # (D,)
    kmsb: np.ndarray  # (n, D)
    klsb: np.ndarray
    vmsb: np.ndarray  # (n, D)
    vlsb: np.ndarray
    params: PassParams
    result: PassResult

    @property
    def n(self) -> int:
        return self.kmsb.shape[0]


def _chunks(n: int, size: int):
    """``(start, count, last)`` of each beat of an ``n``-element row (one beat if empty)."""
    if n == 0:
        return [(0, 0, True)]
    return [(s, min(size, n - s), s + size >= n) for s in range(0, n, size)]


def _planes(cfg, rng, shape):
    a = cfg.attn
    vfmt = QFormat(a.value_bits, 0)
    vals = rng.integers(vfmt.min_raw, vfmt.max_raw + 1, size=shape)
    return vals >> a.lsb_bits, vals & ((1 << a.lsb_bits) - 1)


def pass_scale(cfg: SpAttenConfig, rng: np.random.Generator, octaves: float = 3.0):
    """``(scale, shift)`` spreading the scores of uniform random operands over about
    ``octaves`` octaves (times a random factor in 0.5..2): the standard deviation of q·k for
    uniform operands sets the unit."""
    a = cfg.attn
    acc_sd = np.sqrt(a.head_dim) * (2.0 ** (a.q_bits - 1)) * (2.0 ** (a.value_bits - 1)) / 3
    return scale_for(octaves * 2 ** a.score.frac / acc_sd * float(rng.uniform(0.5, 2.0)), a)


def random_pass(cfg: SpAttenConfig, rng: np.random.Generator, n: int, *, kind: str = "random",
                keep: int | None = None, msb_only: int | None = None,
                threshold: int | None = None) -> Pass:
    """A pass of ``n`` keys whose scores follow ``kind`` (see the module docstring)."""
    a = cfg.attn
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    qfmt = QFormat(a.q_bits, 0)
    q = rng.integers(qfmt.min_raw, qfmt.max_raw + 1, size=a.head_dim)
    kmsb, klsb = _planes(cfg, rng, (n, a.head_dim))
    vmsb, vlsb = _planes(cfg, rng, (n, a.head_dim))
    if kind == "peaked" and n:
        j = int(rng.integers(n))
        # The key most aligned with q: the largest score by far.
        kmsb[j] = np.where(q >= 0, (1 << (a.msb_bits - 1)) - 1, -(1 << (a.msb_bits - 1)))
    # Scale so that the spread of scores is a few octaves (random), wide (peaked) or tiny
    # (flat).
    scale, shift = pass_scale(cfg, rng, {"random": 3.0, "peaked": 2.0, "flat": 0.05}[kind])
    if keep is None:
        keep = int(rng.integers(0, n + 2)) if n else int(rng.integers(0, 3))
    if msb_only is None:  # mostly MSB-only, as SpAtten's memory-bound generation runs
        msb_only = int(rng.random() < 0.7)
    if threshold is None:  # up to 1/2: both sides of the decision for every kind of row
        threshold = int(rng.integers(0, a.prob.max_raw // 2 + 1))
    params = PassParams(scale=scale, shift=shift, keep=keep, threshold=threshold,
                        msb_only=msb_only)
    result = head_pass(cfg, q, kmsb, klsb, vmsb, vlsb, params)
    return Pass(q, kmsb, klsb, vmsb, vlsb, params, result)


def meta_of(params: PassParams) -> dict:
    return {"keep": params.keep, "threshold": params.threshold, "msb_only": params.msb_only}


def query_beat_of(q, params: PassParams) -> dict:
    """The ``q`` beat of a pass with query ``q`` and runtime ``params``."""
    return {"q": [int(x) for x in q], "scale": params.scale, "shift": params.shift,
            "meta": meta_of(params)}


def query_beat(cfg: SpAttenConfig, p: Pass) -> dict:
    return query_beat_of(p.q, p.params)


def _rows(cfg, msb, lsb, start, count, width, rng):
    """``width`` rows from ``start``; rows past ``count`` are random planes when ``rng`` is
    given (don't-care input the hardware must ignore), else zero."""
    D = cfg.attn.head_dim
    rm, rl = [], []
    for j in range(width):
        if j < count:
            m, l_ = msb[start + j], lsb[start + j]
        elif rng is not None:
            m, l_ = _planes(cfg, rng, (D,))
        else:
            m, l_ = [0] * D, [0] * D
        rm.append([int(x) for x in m])
        rl.append([int(x) for x in l_])
    return rm, rl


def key_beats_of(cfg: SpAttenConfig, kmsb, klsb, rng: np.random.Generator | None = None
                 ) -> list[dict]:
    """The ``k`` beats of a key row given as planes (unused lanes random when ``rng``)."""
    a = cfg.attn
    out = []
    for s, c, last in _chunks(len(kmsb), a.keys_per_cycle):
        rm, rl = _rows(cfg, kmsb, klsb, s, c, a.keys_per_cycle, rng)
        out.append({"msb": rm, "lsb": rl, "count": c if last else a.keys_per_cycle,
                    "last": int(last)})
    return out


def key_beats(cfg: SpAttenConfig, p: Pass, rng: np.random.Generator | None = None
              ) -> list[dict]:
    return key_beats_of(cfg, p.kmsb, p.klsb, rng)


def lane_beats(values, lanes: int, meta: dict | None = None, *, fill=None) -> list[dict]:
    """A row of ``values`` as ``lanes``-wide beats (``count`` = lanes on all but the last).
    Unused lanes are 0, or ``fill()`` for don't-care input lanes."""
    out = []
    for s, c, last in _chunks(len(values), lanes):
        beat = {"data": [int(values[s + j]) if j < c else (fill() if fill else 0)
                         for j in range(lanes)],
                "count": c if last else lanes, "last": int(last)}
        if meta is not None:
            beat["meta"] = dict(meta)
        out.append(beat)
    return out


def score_beats(cfg: SpAttenConfig, p: Pass) -> list[dict]:
    """Q·K array output of the pass (one beat per key beat)."""
    return lane_beats(p.result.score, cfg.attn.lanes, meta_of(p.params))


def decision_beat(cfg: SpAttenConfig, p: Pass) -> dict:
    sm = p.result.softmax
    return {"refetch": int(p.result.refetch), "pmax": sm.pmax,
            "truncated": int(p.result.truncated)}


def prob_beats(cfg: SpAttenConfig, p: Pass) -> list[dict]:
    """Softmax output of an accepted pass (none for a refetched one)."""
    if p.result.refetch:
        return []
    return lane_beats(p.result.probs, cfg.attn.lanes, meta_of(p.params))


def chunk_beats(cfg: SpAttenConfig, p: Pass) -> list[dict]:
    """Kept (index, probability) chunks of an accepted pass."""
    if p.result.refetch:
        return []
    r = cfg.attn.pv_rows
    idx, prob = p.result.kept_index, p.result.kept_prob
    return [{"prob": [int(prob[s + j]) if j < c else 0 for j in range(r)],
             "index": [int(idx[s + j]) if j < c else 0 for j in range(r)],
             "count": c, "msb_only": p.params.msb_only, "last": int(last)}
            for s, c, last in _chunks(len(idx), r)]


def vreq_beats(cfg: SpAttenConfig, p: Pass) -> list[dict]:
    return [{"index": c["index"], "count": c["count"], "last": c["last"]}
            for c in chunk_beats(cfg, p)]


def value_beat(cfg: SpAttenConfig, p: Pass, vreq: dict, rng: np.random.Generator | None = None
               ) -> dict:
    """The host's answer to one V request: the requested rows (rows past ``count`` are
    random when ``rng`` is given, to prove the hardware ignores them)."""
    idx = [vreq["index"][j] for j in range(vreq["count"])]
    msb, lsb = _rows(cfg, p.vmsb[idx], p.vlsb[idx], 0, len(idx), cfg.attn.pv_rows, rng)
    return {"msb": msb, "lsb": lsb}


def out_beat(cfg: SpAttenConfig, p: Pass) -> list[dict]:
    """The attention output of an accepted pass (a one-element list; empty if refetched)."""
    if p.result.refetch:
        return []
    return [{"data": [int(x) for x in p.result.out]}]


def values_used(cfg: SpAttenConfig, p: Pass) -> np.ndarray:
    """The V values the pass multiplies with (planes joined for its precision)."""
    return join_planes(p.vmsb, p.vlsb, p.params.msb_only, cfg.attn)
