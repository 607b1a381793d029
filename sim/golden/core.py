"""Golden model of the SpAtten core's execution: one layer descriptor at a time, its jobs,
importance accumulation and the DRAM traffic of a run. The specification is ``docs/core.md``;
the selection policy is :mod:`sim.golden.select`, the DRAM layout and register map the
hardware shares are :mod:`generators.dram` and :mod:`generators.regmap`.

Ref: SpAtten (HPCA 2021), Sections III-A (cascade token pruning), III-B (cascade head
pruning), III-D (progressive quantization).

Everything is integers. One *job* is one head of one layer: its queries (all kept tokens in
summarization, the newest token in generation) against its keys (the kept tokens), through
:func:`sim.golden.attention.head_pass`, with an MSB-only pass followed by its full-precision
recomputation when the decision asks for it.

- Token importance ``imp[t]`` (``core.imp_bits`` unsigned, saturating; probability LSBs):
  every accepted pass adds the probability each key receives.
- Head importance ``himp[h]`` (``core.head_imp_bits`` unsigned, saturating; output LSBs):
  every accepted pass adds ``sum(|out|)`` of its output vector.
- :func:`layer_step` runs one descriptor as the hardware does (the host drives layers one
  START at a time); :func:`summarize` and :func:`decode_step` are runs of it over every
  layer, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from generators.config import SpAttenConfig
from generators.dram import PLANES, row_bytes
from generators.status import Status

from .attention import PassParams, head_pass, split_planes
from .select import DescriptorError, Policy, age_normalise, protected, select

__all__ = ["LayerParams", "Traffic", "JobResult", "LayerResult", "CoreState", "layer_step",
           "summarize", "decode_step"]


@dataclass(frozen=True)
class LayerParams:
    """The runtime configuration of one layer (one descriptor's pruning fields).

    token_keep : tokens kept for this layer (its keys; its queries in summarization).
    head_keep : heads computed in this layer.
    value_keep : V rows kept per query by local value pruning (at most ``token_keep``;
        equal keeps all).
    scale, shift : the Q·K dequantization (:class:`~sim.golden.attention.PassParams`).
    threshold, msb_only : progressive quantization: with ``msb_only = 1`` every query first
        runs on the K/V MSB planes and is recomputed at full precision when its largest
        probability is below ``threshold`` (raw ``attn.prob``).
    """

    token_keep: int
    head_keep: int
    value_keep: int
    scale: int
    shift: int
    threshold: int = 0
    msb_only: int = 0

    def pass_params(self, cfg: SpAttenConfig) -> PassParams:
        p = PassParams(scale=self.scale, shift=self.shift, keep=self.value_keep,
                       threshold=self.threshold, msb_only=self.msb_only)
        try:
            return p.check(cfg)
        except ValueError as e:
            raise DescriptorError(Status.PARAMS, str(e)) from None


@dataclass
class Traffic:
    """DRAM bytes read and written, by plane (:data:`generators.dram.PLANES`)."""

    q: int = 0
    kmsb: int = 0
    klsb: int = 0
    vmsb: int = 0
    vlsb: int = 0
    out: int = 0

    @property
    def read(self) -> int:
        return self.q + self.kmsb + self.klsb + self.vmsb + self.vlsb

    def __iadd__(self, other: "Traffic") -> "Traffic":
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


assert tuple(f.name for f in fields(Traffic)) == PLANES


@dataclass(frozen=True)
class JobResult:
    """One head of one layer: its outputs (one row per query, in query order)."""

    head: int
    out: np.ndarray          # (queries, D), attn.out raw
    refetched: int           # queries whose MSB-only pass was recomputed
    traffic: Traffic


@dataclass(frozen=True)
class LayerResult:
    tokens: np.ndarray       # kept token ids (keys), ascending
    heads: np.ndarray        # kept head ids, ascending
    queries: np.ndarray      # query token ids, ascending
    jobs: tuple[JobResult, ...]
    traffic: Traffic

    @property
    def refetched(self) -> int:
        return sum(j.refetched for j in self.jobs)


@dataclass
class CoreState:
    """What the core carries between layers and decode steps: the importance, and per layer
    the tokens and heads it kept the last time it ran since CLEAR (:meth:`empty`)."""

    imp: np.ndarray                         # (capacity,) token importance
    himp: np.ndarray                        # (heads,) head importance
    kept: dict = field(default_factory=dict)     # layer -> (tokens, heads)
    length: int = 0                         # positions so far (decode_step)

    @classmethod
    def empty(cls, cfg: SpAttenConfig) -> "CoreState":
        return cls(imp=np.zeros(cfg.topk.capacity, dtype=np.int64),
                   himp=np.zeros(cfg.core.heads, dtype=np.int64))


# ---- one job --------------------------------------------------------------------------
def _job(cfg: SpAttenConfig, state: CoreState, h: int, queries, tokens, q, k, v,
         lp: LayerParams) -> JobResult:
    """Head ``h``: every query in ``queries`` against keys ``tokens``; updates ``state``.

    DRAM rule (a job's K and V rows stay in on-chip buffers for all its queries, and its
    query in a register until it is accepted): each query's Q row once; the K MSB rows of
    all keys once; the K LSB rows of all keys once, when the job's first full-precision pass
    starts; a V row's MSB plane when a kept list first names it, its LSB plane when the kept
    list of a full-precision pass first names it; one output row per query."""
    a = cfg.attn
    kmsb, klsb = split_planes(k[h][tokens], a)
    vmsb, vlsb = split_planes(v[h][tokens], a)
    pp = lp.pass_params(cfg)
    full_pp = PassParams(pp.scale, pp.shift, pp.keep, pp.threshold, 0)
    t = Traffic(q=len(queries) * row_bytes(cfg, "q"), kmsb=len(tokens) * row_bytes(cfg, "kmsb"),
                out=len(queries) * row_bytes(cfg, "out"))
    k_lsb_loaded = False
    v_msb_rows: set[int] = set()
    v_lsb_rows: set[int] = set()
    outs, refetched = [], 0
    imp_max = (1 << cfg.core.imp_bits) - 1
    himp_max = (1 << cfg.core.head_imp_bits) - 1
    for i in queries:
        r = head_pass(cfg, q[h][i], kmsb, klsb, vmsb, vlsb, pp)
        full = not pp.msb_only
        if r.refetch:
            refetched += 1
            r = head_pass(cfg, q[h][i], kmsb, klsb, vmsb, vlsb, full_pp)
            full = True
        if full and not k_lsb_loaded:
            t.klsb = len(tokens) * row_bytes(cfg, "klsb")
            k_lsb_loaded = True
        kept = r.kept_index.tolist()
        v_msb_rows.update(kept)
        if full:
            v_lsb_rows.update(kept)
        state.imp[tokens] = np.minimum(state.imp[tokens] + r.probs, imp_max)
        state.himp[h] = min(int(state.himp[h]) + int(np.abs(r.out).sum()), himp_max)
        outs.append(r.out)
    t.vmsb = len(v_msb_rows) * row_bytes(cfg, "vmsb")
    t.vlsb = len(v_lsb_rows) * row_bytes(cfg, "vlsb")
    out = np.array(outs, dtype=np.int64).reshape(len(queries), a.head_dim)
    return JobResult(head=h, out=out, refetched=refetched, traffic=t)


def _check_layer(cfg: SpAttenConfig, q, k, v, n: int):
    a, c = cfg.attn, cfg.core
    for name, x in (("q", q), ("k", k), ("v", v)):
        if x.ndim != 3 or x.shape[2] != a.head_dim or x.shape[1] < n:
            raise ValueError(f"{name} must have shape (heads, >= {n} tokens, D = "
                             f"{a.head_dim}), not {x.shape}")
    heads = q.shape[0]
    if not 1 <= heads <= c.heads or k.shape[0] != heads or v.shape[0] != heads:
        raise DescriptorError(Status.GEOMETRY, f"heads must be in 1..{c.heads} (core.heads) "
                              f"and equal for q, k and v, not {q.shape[0]}, {k.shape[0]}, "
                              f"{v.shape[0]}")
    if n > cfg.topk.capacity:
        raise DescriptorError(Status.GEOMETRY, f"tokens must be at most topk.capacity "
                              f"({cfg.topk.capacity}), not {n}")
    return heads


def _candidates(state: CoreState, layer: int, n: int, heads: int, generation: bool,
                newest: int | None):
    """The candidate tokens and heads of ``layer`` (see :func:`layer_step`)."""
    prev = state.kept.get(layer - 1) if layer > 0 else None
    if not generation:
        return (prev[0], prev[1]) if prev else (np.arange(n), np.arange(heads))
    own = state.kept.get(layer)
    cand = np.union1d(own[0], [newest]) if own else np.arange(n)
    hcand = own[1] if own else np.arange(heads)
    if prev:
        cand, hcand = cand[np.isin(cand, prev[0])], hcand[np.isin(hcand, prev[1])]
    return cand, hcand


# ---- one layer descriptor, and runs of them ---------------------------------------------
def layer_step(cfg: SpAttenConfig, state: CoreState, layer: int, qkv, lp: LayerParams, *,
               generation: bool = False, newest: int | None = None,
               policy: Policy = Policy()) -> LayerResult:
    """One layer descriptor as the core (``hdl.core.core.SpAttenCore``) runs it: the host
    drives layers one START at a time, and the core keeps each layer's kept tokens and heads
    (``state.kept``) from the last time that layer ran since CLEAR (``CoreState.empty``).

    - summarization (``n`` = the tensors' positions): candidates are the tokens and heads
      kept by layer ``layer - 1``, or all of them at layer 0 or when that layer has not run;
      every kept token is a query.
    - generation (position ``newest`` is the query; positions ``0 .. newest``): candidates are
      the tokens this layer kept last time plus ``newest`` (every position if it has not run
      since CLEAR: a KV cache made elsewhere), and the heads it kept (all if it has not run),
      within those of layer ``layer - 1`` if it has run; ``policy`` protects sinks and the
      recent window, and with ``age_norm`` tokens compete on importance per step.

    Raises :class:`~sim.golden.select.DescriptorError` with the hardware's code and then
    changes nothing.
    """
    cfg.check_core()
    q, k, v = (np.asarray(x, dtype=np.int64) for x in qkv)
    n = q.shape[1] if q.ndim == 3 else 0
    if generation and (newest is None or not 0 <= newest < n):
        raise ValueError(f"newest must be a position below {n}, not {newest!r}")
    nh = _check_layer(cfg, q, k, v, n)
    if lp.value_keep > lp.token_keep:
        raise DescriptorError(Status.VALUE_KEEP, f"value_keep ({lp.value_keep}) must be at "
                              f"most token_keep ({lp.token_keep})")
    lp.pass_params(cfg)
    cand, hcand = _candidates(state, layer, n, nh, generation, newest)
    scores, prot = state.imp[cand], None
    if generation:
        prot = protected(cand, newest, policy)
        if policy.age_norm:
            scores = age_normalise(scores, newest - cand + 1, cfg)
    tokens = select(cfg, cand, scores, lp.token_keep, protected=prot)
    heads = select(cfg, hcand, state.himp[hcand], lp.head_keep)
    queries = np.array([newest], dtype=np.int64) if generation else tokens
    jobs, traffic = [], Traffic()
    for h in heads.tolist():
        j = _job(cfg, state, h, queries.tolist(), tokens, q, k, v, lp)
        traffic += j.traffic
        jobs.append(j)
    state.kept[layer] = (tokens, heads)
    return LayerResult(tokens=tokens, heads=heads, queries=queries, jobs=tuple(jobs),
                       traffic=traffic)


def summarize(cfg: SpAttenConfig, layers, params, state: CoreState | None = None):
    """Summarization (BERT-like): :func:`layer_step` over every layer in order, every kept
    token a query. ``layers`` holds one ``(q, k, v)`` per layer, each ``(heads, n, D)``
    integers (``q_bits`` and full ``value_bits`` values); ``params`` one :class:`LayerParams`
    per layer. Returns ``(results, state)``; the importance is cumulative over the layers."""
    if len(layers) != len(params):
        raise ValueError(f"need one LayerParams per layer ({len(layers)}), not {len(params)}")
    state = CoreState.empty(cfg) if state is None else state
    results = [layer_step(cfg, state, li, qkv, lp)
               for li, (qkv, lp) in enumerate(zip(layers, params))]
    return results, state


def decode_step(cfg: SpAttenConfig, state: CoreState, layers, params,
                policy: Policy = Policy()) -> list[LayerResult]:
    """One generation step: :func:`layer_step` over every layer in order with the new token
    (position ``state.length``) as the only query. ``layers`` holds one ``(q, k, v)`` per
    layer with ``state.length + 1`` positions (the KV cache in DRAM, the new token's row
    last; only its Q row is read). Candidates of layer ``l``: its kept tokens of the previous
    step plus the new token (every position before its first run since CLEAR), within the
    tokens kept by layer ``l - 1`` in this step (cascade). Updates ``state`` in place."""
    if len(layers) != len(params):
        raise ValueError(f"need one LayerParams per layer ({len(layers)}), not {len(params)}")
    newest = state.length
    results = [layer_step(cfg, state, li, qkv, lp, generation=True, newest=newest,
                          policy=policy) for li, (qkv, lp) in enumerate(zip(layers, params))]
    state.length = newest + 1
    return results
