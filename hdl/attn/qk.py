"""The Q·K array: raw attention scores of one query against a streamed row of keys.

Ref: SpAtten (HPCA 2021), Section III-B (the Q·K multiplier array and its adder trees) and
Section III-D (progressive quantization: an MSB-only pass computes with the key's MSB plane
and the midpoint of its unknown LSBs). Numeric specification: steps 1–2 of
:mod:`sim.golden.attention`; bit-exact with :func:`sim.golden.attention.qk_scores`.

What. A pass is one ``q`` beat (the query vector, the runtime ``scale`` and ``shift``, the
pass's ``meta``) followed by its key row on ``k``, ``keys_per_cycle`` keys per beat, until
``last``. Every key beat gives one score beat on ``o`` with the same ``last``; ``count`` is
passed through on the last beat and is ``keys_per_cycle`` on the others (where the input's
``count`` is don't-care). For lanes ``j < count``::

    k[j][d]   = msb << lsb_bits | (2**(lsb_bits-1) if meta.msb_only else lsb)
    acc[j]    = sum_d q[d] * k[j][d]                       (exact, acc_bits signed)
    score[j]  = fit(shift_round(acc[j] * scale, shift, HALF_UP), score, SATURATE)

lanes at and above ``count`` are 0, and ``meta`` is the pass's query meta. An empty row (one
beat with ``count = 0``, ``last = 1``) gives one score beat with ``count = 0``.

The runtime HALF_UP shift uses ``floor((x + 2**(s-1)) / 2**s) == (((2x) >> s) + 1) >> 1``
(arithmetic shifts, also right for ``s = 0``), so no 64-bit rounding constant is built.

Pipeline (one register per line; every stage holds its beat's own side fields, so the next
pass's query may enter while the previous row drains):

1. ``keys_per_cycle * head_dim`` multipliers ``q[d] * k[j][d]`` (q from the query register,
   k straight from the ``k`` port), registered;
2. an adder tree per key, registered after every ``TREE_LEVELS_PER_STAGE`` (2) levels and
   after the last (``ceil(log2(head_dim) / 2)`` stages);
3. the scale multiply ``acc * scale`` (``acc_bits x scale_bits``);
4. the runtime arithmetic shift ``(2 * acc * scale) >> shift``;
5. round (``+1, >> 1``), saturate to ``score``, zero the lanes at and above ``count``: the
   output register.

Timing. ``latency = ceil(log2(head_dim) / 2) + 4`` cycles from a key beat being accepted to
its score beat being valid, with no stalls (``paper``, D = 64: 7). Throughput: one key beat
per cycle (every multiplier busy every cycle) while ``k`` has beats and ``o`` is ready. The
first query is loaded in a cycle of its own; every later query is taken in the same cycle as
the previous row's last key beat, so back-to-back passes have no bubble. Back-pressure: the
whole pipeline advances only when ``~o.valid | o.ready`` and otherwise holds in place;
``k.ready`` is that condition while a query is loaded (``k.ready`` and ``q.ready`` depend
combinationally on ``o.ready``, and ``q.ready`` on ``k.valid``; no ``valid`` depends on a
``ready``).

Raises
------
TypeError
    if ``cfg`` is not a :class:`~generators.config.SpAttenConfig` (whose constructor
    validates every field).

Members
-------
q : ``In(stream.Signature(query_layout(cfg)))``
k : ``In(stream.Signature(key_layout(cfg)))``
o : ``Out(stream.Signature(score_layout(cfg)))``
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.numerics import Overflow, bits_for, ceil_log2

from ..common.narrow import fit
from .layouts import key_layout, meta_layout, query_layout, score_layout

__all__ = ["QKArray"]

# Adder-tree levels between registers: two 20..32-bit additions per cycle.
TREE_LEVELS_PER_STAGE = 2


def _tree_stages(head_dim: int) -> int:
    return -(-ceil_log2(head_dim) // TREE_LEVELS_PER_STAGE)


class QKArray(wiring.Component):
    """``keys_per_cycle`` raw Q·K scores per cycle (see the module docstring)."""

    def __init__(self, cfg: SpAttenConfig):
        if not isinstance(cfg, SpAttenConfig):
            raise TypeError(f"cfg must be a SpAttenConfig, not {cfg!r}")
        self._cfg = cfg
        super().__init__({
            "q": In(stream.Signature(query_layout(cfg))),
            "k": In(stream.Signature(key_layout(cfg))),
            "o": Out(stream.Signature(score_layout(cfg))),
        })

    @property
    def cfg(self) -> SpAttenConfig:
        return self._cfg

    @property
    def latency(self) -> int:
        """Cycles from a key beat being accepted to its score beat being valid (no stalls)."""
        return _tree_stages(self._cfg.attn.head_dim) + 4

    # ------------------------------------------------------------------------------------
    # Elaboration: one private method per pipeline stage, in order. Every stage's registers
    # advance on ``ce`` and carry their beat's side fields (valid, last, count, meta, and
    # scale and shift until used), so the pipeline needs no other control.
    def elaborate(self, platform):
        m = Module()
        ce = Signal()  # the whole pipeline advances
        m.d.comb += ce.eq(~self.o.valid | self.o.ready)
        qr, k_take = self._query(m, ce)
        prods, s1 = self._multipliers(m, ce, qr, k_take)
        accs, prev, stage = self._adder_trees(m, ce, prods, s1)
        shifted, prev = self._scale_and_shift(m, ce, accs, prev, stage)
        self._output(m, ce, shifted, prev)
        return m

    def _query(self, m, ce):
        """The query register and pass control: a query is held while its keys are taken;
        the next one is loaded in the cycle the row's last key beat is taken."""
        q, k = self.q, self.k
        have_q = Signal()  # a query is loaded; its keys are being taken
        qr = Signal(query_layout(self._cfg), name="qreg", reset_less=True)
        k_take = Signal()
        m.d.comb += [
            k.ready.eq(have_q & ce),
            k_take.eq(k.valid & k.ready),
            # Free, or the current row ends this cycle (the next query takes over at once).
            q.ready.eq(~have_q | (k_take & k.payload.last)),
        ]
        with m.If(q.valid & q.ready):
            m.d.sync += [have_q.eq(1), qr.eq(q.payload)]
        with m.Elif(k_take & k.payload.last):
            m.d.sync += have_q.eq(0)
        return qr, k_take

    def _side(self, stage, *, scale=True, shift=True):
        """Side fields that travel with a beat (scale and shift dropped once used)."""
        a = self._cfg.attn
        sig = {
            "valid": Signal(name=f"s{stage}_valid"),
            "last": Signal(name=f"s{stage}_last", reset_less=True),
            "count": Signal(bits_for(a.keys_per_cycle), name=f"s{stage}_count",
                            reset_less=True),
            "meta": Signal(meta_layout(self._cfg), name=f"s{stage}_meta", reset_less=True),
        }
        if scale:
            sig["scale"] = Signal(a.scale_bits, name=f"s{stage}_scale", reset_less=True)
        if shift:
            sig["shift"] = Signal(a.shift_bits, name=f"s{stage}_shift", reset_less=True)
        return sig

    @staticmethod
    def _advance(m, ce, dst, src):
        with m.If(ce):
            m.d.sync += [dst[f].eq(src[f]) for f in dst]

    def _multipliers(self, m, ce, qr, k_take):
        """Stage 1: ``q[d] * k[j][d]`` (k rebuilt from its planes; an MSB-only pass uses the
        LSBs' midpoint), registered."""
        a = self._cfg.attn
        K, D, L = a.keys_per_cycle, a.head_dim, a.lsb_bits
        k = self.k
        mid = Const(1 << (L - 1), L)
        s1 = self._side(1)
        prods = [[Signal(signed(a.q_bits + a.value_bits), name=f"prod{j}_{d}",
                         reset_less=True) for d in range(D)] for j in range(K)]
        for j in range(K):
            for d in range(D):
                low = Mux(qr.meta.msb_only, mid, k.payload.lsb[j][d])
                kval = Cat(low, k.payload.msb[j][d]).as_signed()
                with m.If(ce):
                    m.d.sync += prods[j][d].eq(qr.q[d] * kval)
        self._advance(m, ce, s1, {
            "valid": k_take, "last": k.payload.last,
            "count": Mux(k.payload.last, k.payload.count, K),
            "meta": qr.meta, "scale": qr.scale, "shift": qr.shift,
        })
        return prods, s1

    def _adder_trees(self, m, ce, prods, s1):
        """Stage 2: an adder tree per key, registered after every ``TREE_LEVELS_PER_STAGE``
        levels and after the last. Returns the sums, the last stage's side fields and its
        number."""
        a = self._cfg.attn
        K = a.keys_per_cycle
        vals, prev, stage, level = prods, s1, 1, 0
        while len(vals[0]) > 1:
            vals = [[row[i] + row[i + 1] for i in range(0, len(row), 2)] for row in vals]
            level += 1
            if level % TREE_LEVELS_PER_STAGE == 0 or len(vals[0]) == 1:
                stage += 1
                regs = [[Signal(signed(a.q_bits + a.value_bits + level),
                                name=f"sum{stage}_{j}_{i}", reset_less=True)
                         for i in range(len(vals[j]))] for j in range(K)]
                with m.If(ce):
                    m.d.sync += [r.eq(v) for j in range(K) for r, v in zip(regs[j], vals[j])]
                cur = self._side(stage)
                self._advance(m, ce, cur, prev)
                vals, prev = regs, cur
        accs = [row[0] for row in vals]
        assert all(len(x) == a.acc_bits for x in accs), (len(accs[0]), a.acc_bits)
        return accs, prev, stage

    def _scale_and_shift(self, m, ce, accs, prev, stage):
        """Stage 3: the scale multiply ``acc * scale``; stage 4: the runtime shift
        ``t = (2 * x) >> shift`` (arithmetic)."""
        a = self._cfg.attn
        K = a.keys_per_cycle
        stage += 1
        pw = a.acc_bits + a.scale_bits  # |acc * scale| < 2**(acc_bits - 1 + scale_bits)
        scaled = [Signal(signed(pw), name=f"scaled{j}", reset_less=True) for j in range(K)]
        with m.If(ce):
            m.d.sync += [scaled[j].eq(accs[j] * prev["scale"]) for j in range(K)]
        cur = self._side(stage, scale=False)
        self._advance(m, ce, cur, prev)
        prev = cur

        stage += 1
        shifted = [Signal(signed(pw + 1), name=f"shifted{j}", reset_less=True)
                   for j in range(K)]
        with m.If(ce):
            m.d.sync += [shifted[j].eq(Cat(Const(0, 1), scaled[j]).as_signed() >> prev["shift"])
                         for j in range(K)]
        cur = self._side(stage, scale=False, shift=False)
        self._advance(m, ce, cur, prev)
        return shifted, cur

    def _output(self, m, ce, shifted, prev):
        """Stage 5: round, saturate, zero the lanes at and above ``count``: the output
        register."""
        a = self._cfg.attn
        K, o = a.keys_per_cycle, self.o
        rounded = [(shifted[j] + 1).shift_right(1) for j in range(K)]
        with m.If(ce):
            m.d.sync += [
                o.valid.eq(prev["valid"]),
                o.payload.last.eq(prev["last"]),
                o.payload.count.eq(prev["count"]),
                o.payload.meta.eq(prev["meta"]),
            ]
            for j in range(K):
                m.d.sync += o.payload.data[j].eq(
                    Mux(prev["count"] > j, fit(rounded[j], a.score, Overflow.SATURATE), 0))
