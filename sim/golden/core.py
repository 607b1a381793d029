"""Golden model of the SpAtten core: importance accumulation, cascade token and head pruning,
generation policies and the DRAM traffic of a run. The specification is ``docs/core.md``.

Ref: SpAtten (HPCA 2021), Sections III-A (cascade token pruning), III-B (cascade head
pruning), III-D (progressive quantization); ``../shared/docs/reference.md`` section 1 for
the generation caveat (sink tokens, a recent window, age normalisation).

Everything is integers. One *job* is one head of one layer: its queries (all kept tokens in
summarization, the newest token in generation) against its keys (the kept tokens), through
:func:`sim.golden.attention.head_pass`, with an MSB-only pass followed by its full-precision
recomputation when the decision asks for it.

- Token importance ``imp[t]`` (``core.imp_bits`` unsigned, saturating; probability LSBs):
  every accepted pass adds the probability each key receives.
- Head importance ``himp[h]`` (``core.head_imp_bits`` unsigned, saturating; output LSBs):
  every accepted pass adds ``sum(|out|)`` of its output vector.
- Before a layer, the kept tokens are chosen among the candidates (the previous layer's kept
  tokens; in generation also intersected with this layer's kept tokens of the previous step,
  plus the new token) by the token/head top-k engine (``cfg.select_topk``) on their scores,
  and likewise the kept heads. A pruned token or head is never a candidate again.
- Generation policies: the first ``sinks`` positions and the last ``recent`` positions are
  *protected* (kept whatever their score); the others compete on importance, or with
  ``age_norm`` on ``(imp * R[age] + 2**(B-1)) >> B`` (``R`` from
  :func:`generators.tables.age_recip_table`, age = steps since arrival, 1 for the new token).
  In hardware the protected tokens get the score ``2**(imp_bits)`` (above every importance),
  so one top-k pass keeps them and the best of the rest; the model does the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from generators.config import SpAttenConfig
from generators.status import Status
from generators.tables import age_recip_table

from .attention import PassParams, head_pass, split_planes
from .topk import topk_engine

__all__ = ["Status", "DescriptorError", "LayerParams", "Policy", "Traffic", "JobResult",
           "LayerResult", "CoreState", "select", "age_normalise", "summarize", "decode_step",
           "row_bytes", "row_stride", "row_addr", "pack_row", "unpack_row", "keeplist_bytes",
           "keeplist_image", "BASES", "PLANES", "COUNTER_WORDS", "COUNTER_INFO", "plane_bits",
           "base_align", "counters_bytes", "counters_image", "check_descriptor", "protected",
           "layer_step"]


class DescriptorError(ValueError):
    """A descriptor the core refuses; ``status`` is the code the hardware reports."""

    def __init__(self, status: Status, message: str):
        super().__init__(f"{status.name}: {message}")
        self.status = status


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


@dataclass(frozen=True)
class Policy:
    """Generation policy: ``sinks`` first positions and ``recent`` last positions always
    kept; ``age_norm`` ranks the others by importance per step since arrival."""

    sinks: int = 0
    recent: int = 0
    age_norm: bool = False

    def __post_init__(self):
        for name in ("sinks", "recent"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {v!r}")


def row_bytes(cfg: SpAttenConfig, bits: int) -> int:
    """Bytes of one DRAM row of ``D`` elements of ``bits`` bits: packed, padded to whole bus
    beats (``docs/core.md``, DRAM layout)."""
    bus = cfg.core.bus_bytes
    return -(-cfg.attn.head_dim * bits // (8 * bus)) * bus


def row_stride(cfg: SpAttenConfig, bits: int) -> int:
    """Distance in bytes between consecutive rows of a plane: the power of two at or above
    :func:`row_bytes` (at most 4 KB, so a row never crosses a 4 KB page)."""
    rb = row_bytes(cfg, bits)
    stride = 1 << (rb - 1).bit_length()
    if stride > 4096:
        raise ValueError(f"a row of D = {cfg.attn.head_dim} elements of {bits} bits needs "
                         f"{rb} bytes, more than one 4 KB page")
    return stride


def row_addr(cfg: SpAttenConfig, base: int, bits: int, head: int, pos: int) -> int:
    """Byte address of row ``pos`` of head ``head`` in a plane at ``base``: every head owns
    ``topk.capacity`` rows, so the layout does not change as a KV cache grows."""
    return base + (head * cfg.topk.capacity + pos) * row_stride(cfg, bits)


def pack_row(cfg: SpAttenConfig, values, bits: int) -> bytes:
    """One DRAM row: ``D`` integers of ``bits`` bits (two's complement), element 0 in the
    least significant bits of the first byte, padded with zeros to :func:`row_bytes`."""
    word = 0
    for i, v in enumerate(np.asarray(values, dtype=np.int64).tolist()):
        word |= (int(v) & ((1 << bits) - 1)) << (i * bits)
    return word.to_bytes(row_bytes(cfg, bits), "little")


def unpack_row(cfg: SpAttenConfig, blob: bytes, bits: int, *, signed: bool) -> np.ndarray:
    """The inverse of :func:`pack_row`."""
    word = int.from_bytes(blob, "little")
    mask, out = (1 << bits) - 1, []
    for i in range(cfg.attn.head_dim):
        v = (word >> (i * bits)) & mask
        out.append(v - (1 << bits) if signed and v >> (bits - 1) else v)
    return np.array(out, dtype=np.int64)


def keeplist_image(cfg: SpAttenConfig, tokens, heads) -> bytes:
    """What a layer writes at its KEEPLIST base: one header beat (bits 0..15 the kept token
    count, 16..23 the kept head count, 32.. the kept head mask), then the kept positions as
    16-bit little-endian words, padded to whole bus beats."""
    bus = cfg.core.bus_bytes
    tokens, heads = np.asarray(tokens).tolist(), np.asarray(heads).tolist()
    mask = sum(1 << h for h in heads)
    head = (len(tokens) | len(heads) << 16 | mask << 32).to_bytes(bus, "little")
    body = b"".join(int(t).to_bytes(2, "little") for t in tokens)
    return head + body + bytes(-len(body) % bus)


def keeplist_bytes(cfg: SpAttenConfig, kept: int) -> int:
    """Bytes a layer keeping ``kept`` tokens writes at KEEPLIST."""
    bus = cfg.core.bus_bytes
    return bus + -(-2 * kept // bus) * bus


# The base addresses of a layer descriptor, in register order (``hdl.core.regs``); the first
# six are planes of rows.
BASES = ("q", "kmsb", "klsb", "vmsb", "vlsb", "out", "keeplist", "counters")
PLANES = BASES[:6]
COUNTER_WORDS = 4                       # 64-bit words of a counter record
# The info word (word 3) of a counter record: (field, lowest bit, width); the hardware packs
# it from this table too.
COUNTER_INFO = (("layer", 0, 8), ("mode", 8, 1), ("tokens", 16, 16), ("heads", 32, 8),
                ("written", 63, 1))


def plane_bits(cfg: SpAttenConfig, name: str) -> int:
    """Bits per element of the rows of plane ``name`` (one of :data:`PLANES`)."""
    a = cfg.attn
    bits = {"q": a.q_bits, "kmsb": a.msb_bits, "klsb": a.lsb_bits, "vmsb": a.msb_bits,
            "vlsb": a.lsb_bits, "out": a.out.width}
    if name not in bits:
        raise ValueError(f"name must be one of {', '.join(PLANES)}, not {name!r}")
    return bits[name]


def base_align(cfg: SpAttenConfig, name: str) -> int:
    """The alignment in bytes of descriptor base ``name`` (one of :data:`BASES`): a plane's
    row stride, so that no row crosses a 4 KB page (one row is one AXI4 burst); the bus width
    for the keep list and the counter record, which are written one beat per burst."""
    if name not in BASES:
        raise ValueError(f"name must be one of {', '.join(BASES)}, not {name!r}")
    return row_stride(cfg, plane_bits(cfg, name)) if name in PLANES else cfg.core.bus_bytes


def counters_bytes(cfg: SpAttenConfig) -> int:
    """Bytes of a counter record at COUNTERS: 4 words of 8 bytes, padded to whole beats."""
    bus = cfg.core.bus_bytes
    return -(-8 * COUNTER_WORDS // bus) * bus


def counters_image(cfg: SpAttenConfig, *, bytes_read: int, bytes_written: int, cycles: int,
                   layer: int, generation: bool, tokens: int, heads: int) -> bytes:
    """The counter record a layer that ran writes at its COUNTERS base, after its outputs
    and its merge: 64-bit little-endian words ``bytes_read``, ``bytes_written`` (output rows
    and the keep list; the record itself is not counted), ``cycles`` (from START to the
    record's write; the RD, WR and CYC registers show the same three values), and an info
    word (:data:`COUNTER_INFO`: bits 0..7 layer, bit 8 mode, bits 16..31 kept tokens, bits
    32..39 kept heads, bit 63 set), padded to whole bus beats."""
    fields = {"layer": layer, "mode": int(generation), "tokens": tokens, "heads": heads,
              "written": 1}
    if any(not 0 <= fields[f] < 1 << w for f, _, w in COUNTER_INFO):
        raise ValueError(f"counter record info fields must fit {COUNTER_INFO}, not {fields}")
    info = sum(fields[f] << lsb for f, lsb, _ in COUNTER_INFO)
    words = (bytes_read, bytes_written, cycles, info)
    if any(not 0 <= w < 1 << 64 for w in words):
        raise ValueError(f"counter record words must fit 64 bits, not {words}")
    text = b"".join(w.to_bytes(8, "little") for w in words)
    return text + bytes(counters_bytes(cfg) - len(text))


@dataclass
class Traffic:
    """DRAM bytes read and written, by kind."""

    q: int = 0
    k_msb: int = 0
    k_lsb: int = 0
    v_msb: int = 0
    v_lsb: int = 0
    out: int = 0

    @property
    def read(self) -> int:
        return self.q + self.k_msb + self.k_lsb + self.v_msb + self.v_lsb

    def __iadd__(self, other: "Traffic") -> "Traffic":
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


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
    """What the core carries between layers and decode steps."""

    imp: np.ndarray                         # (capacity,) token importance
    himp: np.ndarray                        # (heads,) head importance
    tokens: list = field(default_factory=list)   # per layer: kept tokens of the last step
    heads: list = field(default_factory=list)    # per layer: kept heads of the last step
    length: int = 0                         # positions so far (generation)
    kept: dict = field(default_factory=dict)     # layer -> (tokens, heads): layer_step

    @classmethod
    def empty(cls, cfg: SpAttenConfig) -> "CoreState":
        return cls(imp=np.zeros(cfg.topk.capacity, dtype=np.int64),
                   himp=np.zeros(cfg.core.heads, dtype=np.int64))


# ---- selection ------------------------------------------------------------------------
def age_normalise(imp, age, cfg: SpAttenConfig) -> np.ndarray:
    """``(imp * R[age] + 2**(B-1)) >> B``: importance per step since arrival, HALF_UP."""
    b = cfg.core.age_frac_bits
    r = np.asarray(age_recip_table(cfg), dtype=np.int64)[np.asarray(age, dtype=np.int64)]
    return (np.asarray(imp, dtype=np.int64) * r + (1 << (b - 1))) >> b


def select(cfg: SpAttenConfig, cand, scores, keep: int, *, protected=None) -> np.ndarray:
    """The ``keep`` candidates (ids ``cand``, ascending) with the largest ``scores``, ties to
    the earlier candidate, plus every ``protected`` one; in order. Raises
    :class:`DescriptorError` when ``keep`` is 0 or more than the candidates, or smaller than
    the protected count."""
    cand = np.asarray(cand, dtype=np.int64)
    keep = int(keep)
    if not 1 <= keep <= cand.size:
        raise DescriptorError(Status.KEEP_RANGE,
                              f"keep must be in 1..{cand.size} (the candidates), not {keep}")
    prot = np.zeros(cand.size, dtype=bool) if protected is None else np.asarray(protected)
    if int(prot.sum()) > keep:
        raise DescriptorError(Status.POLICY, f"{int(prot.sum())} protected tokens (sinks and "
                              f"recent window) do not fit token_keep = {keep}")
    if keep == cand.size:
        return cand
    sc = cfg.select_topk.score
    top = 1 << max(cfg.core.imp_bits, cfg.core.head_imp_bits)
    s = np.where(prot, top, np.asarray(scores, dtype=np.int64))
    r = topk_engine(sc.check(s, "selection score"), keep, cfg.select_topk)
    return cand[r.indices]


def protected(cand, newest: int, policy: Policy) -> np.ndarray:
    """Sinks (positions below ``sinks``) and the recent window (the last ``recent``
    positions, the newest included)."""
    return (cand < policy.sinks) | (cand > newest - policy.recent)


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
    t = Traffic(q=len(queries) * row_bytes(cfg, a.q_bits),
                k_msb=len(tokens) * row_bytes(cfg, a.msb_bits),
                out=len(queries) * row_bytes(cfg, a.out.width))
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
            t.k_lsb = len(tokens) * row_bytes(cfg, a.lsb_bits)
            k_lsb_loaded = True
        kept = r.kept_index.tolist()
        v_msb_rows.update(kept)
        if full:
            v_lsb_rows.update(kept)
        state.imp[tokens] = np.minimum(state.imp[tokens] + r.probs, imp_max)
        state.himp[h] = min(int(state.himp[h]) + int(np.abs(r.out).sum()), himp_max)
        outs.append(r.out)
    t.v_msb = len(v_msb_rows) * row_bytes(cfg, a.msb_bits)
    t.v_lsb = len(v_lsb_rows) * row_bytes(cfg, a.lsb_bits)
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


def _run_layer(cfg, state, cand_tokens, cand_heads, q, k, v, lp: LayerParams, *, queries,
               protected=None, tok_scores=None) -> LayerResult:
    if lp.value_keep > lp.token_keep:
        raise DescriptorError(Status.VALUE_KEEP, f"value_keep ({lp.value_keep}) must be at "
                              f"most token_keep ({lp.token_keep})")
    lp.pass_params(cfg)
    scores = state.imp[cand_tokens] if tok_scores is None else tok_scores
    tokens = select(cfg, cand_tokens, scores, lp.token_keep, protected=protected)
    heads = select(cfg, cand_heads, state.himp[cand_heads], lp.head_keep)
    qs = tokens if queries is None else np.asarray(queries, dtype=np.int64)
    jobs, traffic = [], Traffic()
    for h in heads.tolist():
        j = _job(cfg, state, h, qs.tolist(), tokens, q, k, v, lp)
        traffic += j.traffic
        jobs.append(j)
    return LayerResult(tokens=tokens, heads=heads, queries=qs, jobs=tuple(jobs),
                       traffic=traffic)


# ---- the two modes ----------------------------------------------------------------------
def summarize(cfg: SpAttenConfig, layers, params, state: CoreState | None = None):
    """Summarization (BERT-like): every kept token is a query. ``layers`` holds one
    ``(q, k, v)`` per layer, each ``(heads, n, D)`` integers (``q_bits`` and full
    ``value_bits`` values); ``params`` one :class:`LayerParams` per layer. Returns
    ``(results, state)``; the state's importance is cumulative over the layers."""
    cfg.check_core()
    if len(layers) != len(params):
        raise ValueError(f"need one LayerParams per layer ({len(layers)}), not {len(params)}")
    state = CoreState.empty(cfg) if state is None else state
    results = []
    tokens = heads = None
    for (q, k, v), lp in zip(layers, params):
        q, k, v = (np.asarray(x, dtype=np.int64) for x in (q, k, v))
        n = q.shape[1] if q.ndim == 3 else 0
        nh = _check_layer(cfg, q, k, v, n)
        tokens = np.arange(n) if tokens is None else tokens
        heads = np.arange(nh) if heads is None else heads
        r = _run_layer(cfg, state, tokens, heads, q, k, v, lp, queries=None)
        tokens, heads = r.tokens, r.heads
        state.tokens.append(tokens)
        state.heads.append(heads)
        results.append(r)
    return results, state


def decode_step(cfg: SpAttenConfig, state: CoreState, layers, params,
                policy: Policy = Policy()) -> list[LayerResult]:
    """One generation step: the new token (position ``state.length``) is the only query.
    ``layers`` holds one ``(q, k, v)`` per layer with ``state.length + 1`` positions (the
    KV cache in DRAM, the new token's row last; only its Q row is read). Candidates of layer
    ``l``: its kept tokens of the previous step plus the new token, within the tokens kept by
    layer ``l - 1`` in this step (cascade). Updates ``state`` in place."""
    cfg.check_core()
    newest = state.length
    n = newest + 1
    if not state.tokens:
        state.tokens = [np.zeros(0, dtype=np.int64) for _ in layers]
    if len(layers) != len(params) or len(state.tokens) != len(layers):
        raise ValueError(f"need one LayerParams per layer and the same layers every step "
                         f"({len(state.tokens)}), not {len(layers)} and {len(params)}")
    results = []
    upper_t = upper_h = None
    for li, ((q, k, v), lp) in enumerate(zip(layers, params)):
        q, k, v = (np.asarray(x, dtype=np.int64) for x in (q, k, v))
        nh = _check_layer(cfg, q, k, v, n)
        if len(state.heads) < len(layers):
            state.heads.append(np.arange(nh))
        cand = np.append(state.tokens[li], newest)
        if upper_t is not None:
            cand = cand[np.isin(cand, upper_t)]
        hcand = state.heads[li] if upper_h is None else \
            state.heads[li][np.isin(state.heads[li], upper_h)]
        prot = protected(cand, newest, policy)
        scores = state.imp[cand]
        if policy.age_norm:
            scores = age_normalise(scores, newest - cand + 1, cfg)
        r = _run_layer(cfg, state, cand, hcand, q, k, v, lp, queries=[newest],
                       protected=prot, tok_scores=scores)
        state.tokens[li], state.heads[li] = r.tokens, r.heads
        upper_t, upper_h = r.tokens, r.heads
        results.append(r)
    state.length = n
    return results


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
      recent window.

    Raises :class:`DescriptorError` with the hardware's code and then changes nothing. Run in
    order, from layer 0, this is :func:`summarize` and :func:`decode_step` (tested; a decode
    step from an empty state sees every position here, only the newest there).
    """
    cfg.check_core()
    q, k, v = (np.asarray(x, dtype=np.int64) for x in qkv)
    n = q.shape[1] if q.ndim == 3 else 0
    if generation:
        if newest is None or not 0 <= newest < n:
            raise ValueError(f"newest must be a position below {n}, not {newest!r}")
    nh = _check_layer(cfg, q, k, v, n)
    prev = state.kept.get(layer - 1) if layer > 0 else None
    if not generation:
        cand = prev[0] if prev else np.arange(n)
        hcand = prev[1] if prev else np.arange(nh)
        r = _run_layer(cfg, state, cand, hcand, q, k, v, lp, queries=None)
    else:
        own = state.kept.get(layer)
        cand = np.union1d(own[0], [newest]) if own else np.arange(n)
        hcand = own[1] if own else np.arange(nh)
        if prev:
            cand, hcand = cand[np.isin(cand, prev[0])], hcand[np.isin(hcand, prev[1])]
        scores = state.imp[cand]
        if policy.age_norm:
            scores = age_normalise(scores, newest - cand + 1, cfg)
        r = _run_layer(cfg, state, cand, hcand, q, k, v, lp, queries=[newest],
                       protected=protected(cand, newest, policy), tok_scores=scores)
    state.kept[layer] = (r.tokens, r.heads)
    return r


def check_descriptor(cfg: SpAttenConfig, d: dict) -> Status:
    """The host interface's checks of a layer descriptor at START (``hdl.core.regs``), in
    order: ``ALIGN`` (a base address not a multiple of :func:`base_align` or not below
    ``2**core.addr_bits``), ``GEOMETRY`` (``n`` of 0 or above ``topk.capacity``, heads of 0 or
    above ``core.heads``, ``layer >= core.layers``, ``newest >= n`` in generation),
    ``PARAMS`` (``scale`` wider than ``attn.scale_bits``, ``threshold`` above the largest
    probability, ``age_norm`` outside generation), ``VALUE_KEEP`` (``value_keep >
    token_keep``); else ``OK``. ``d`` holds the fields of ``hdl.core.regs.desc_layout`` plus
    the base addresses (:data:`BASES`)."""
    c, a, t = cfg.core, cfg.attn, cfg.topk
    if any(d[b] % base_align(cfg, b) or d[b] >> c.addr_bits for b in BASES):
        return Status.ALIGN
    if not 1 <= d["n"] <= t.capacity or not 1 <= d["heads"] <= c.heads \
            or d["layer"] >= c.layers or (d["mode"] and d["newest"] >= d["n"]):
        return Status.GEOMETRY
    if d["scale"] >> a.scale_bits or d["threshold"] > a.prob.max_raw \
            or (d["age_norm"] and not d["mode"]):
        return Status.PARAMS
    if d["value_keep"] > d["token_keep"]:
        return Status.VALUE_KEEP
    return Status.OK
