"""The prob·V array: broadcast-multiply-reduce of kept probabilities with their V rows.

Ref: SpAtten (Wang, Zhang, Han, HPCA 2021), Section III (local value pruning keeps only the
top-k probabilities, so only their V rows are fetched) and Section IV (the prob·V stage: each
kept probability is broadcast to the ``D`` multipliers of its V row, the products are reduced
over the rows of a chunk by an adder tree and accumulated per output dimension).

What. For one pass (one query) the array receives the kept (index, probability) pairs in
*chunks* of ``pv_rows`` pairs (``c``), and for every chunk one V beat (``v``) holding those
rows as MSB/LSB planes. It computes, exactly as :func:`sim.golden.attention.prob_v`::

    value[j][d] = msb << lsb_bits | lsb              (full precision)
                = msb << lsb_bits | 1 << (lsb_bits-1)  (msb_only: the LSB midpoint)
    acc[d]      = sum over the pass's kept rows j of prob[j] * value[j][d]
    out[d]      = fit(shift_round(acc[d], prob.frac - out.frac, HALF_EVEN), out, SATURATE)

Rows at and above a chunk's ``count`` contribute nothing (their probability is forced to 0),
and an empty pass (one chunk with ``count = 0``) yields ``out = 0``.

Pipeline (``pv_rows * head_dim`` multipliers; every stage is a register):

1. input register: the chunk's probabilities (masked by ``count``) and the joined V values
   (joining the planes is wiring plus one 2:1 mux per LSB plane);
2. products ``prob[r] * value[r][d]`` (``pv_rows * head_dim`` multipliers);
3. ``log2(pv_rows)`` adder-tree levels over the rows, one register per level;
4. accumulator per dimension (cleared by the first chunk of a pass, ``acc = sum`` instead of
   ``acc + sum``, so a pass may follow the previous one with no bubble);
5. HALF_EVEN rounding of the finished accumulator;
6. saturation into the output register ``o``.

Accumulator width. ``|value| <= 2**(value_bits-1)`` and ``0 <= prob <= 2**prob.width - 1``, so
``|prob * value| < 2**(prob.width + value_bits - 1)``; a pass keeps at most
``topk.capacity`` rows (the top-k engine keeps at most ``capacity`` elements), so
``|acc| < capacity * 2**(prob.width + value_bits - 1) <= 2**(prob.width + value_bits +
ceil_log2(capacity) - 1)``: ``acc_width = prob.width + value_bits + ceil_log2(capacity)``
signed bits never overflow (``paper``: 11 + 12 + 10 = 33 bits). A level-``l`` adder-tree sum
of ``2**l`` products likewise fits ``prob.width + value_bits + l`` signed bits. A host that
sends more than ``capacity`` rows in one pass gets a wrapped (wrong) accumulator.

Timing. One chunk per cycle, sustained, across pass boundaries. A chunk and its V beat are
taken together: ``c.ready`` and ``v.ready`` are both high exactly when ``c.valid``,
``v.valid`` and the pipeline advances (``~o.valid | o.ready``); no ``valid`` depends on a
``ready``. Back-pressure on ``o`` stalls the whole pipeline in place. The output beat of a
pass is valid ``latency = 5 + log2(pv_rows)`` cycles after the cycle its last chunk is taken
(with no stall on ``o``).

Raises
------
TypeError
    if ``cfg`` is not a :class:`~generators.config.SpAttenConfig`.
ConfigError
    if the top-k and attention configs do not fit together (``cfg.check_head()``).

Members
-------
c : ``In(stream.Signature(chunk_layout(cfg)))``
v : ``In(stream.Signature(value_layout(cfg)))``
o : ``Out(stream.Signature(out_layout(cfg)))``
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.numerics import Overflow, Rounding, ceil_log2

from ..common.narrow import fit, shift_round
from .layouts import chunk_layout, head_config, out_layout, value_layout

__all__ = ["ProbV"]


class ProbV(wiring.Component):
    """prob·V broadcast-multiply-reduce array (see the module docstring)."""

    def __init__(self, cfg: SpAttenConfig):
        head_config(cfg)
        self._cfg = cfg
        super().__init__({
            "c": In(stream.Signature(chunk_layout(cfg))),
            "v": In(stream.Signature(value_layout(cfg))),
            "o": Out(stream.Signature(out_layout(cfg))),
        })

    @property
    def cfg(self) -> SpAttenConfig:
        return self._cfg

    @property
    def tree_levels(self) -> int:
        """Adder-tree levels over the ``pv_rows`` rows of a chunk."""
        return ceil_log2(self._cfg.attn.pv_rows)

    @property
    def latency(self) -> int:
        """Cycles from the cycle a pass's last chunk is taken to the cycle its output is
        valid (no stall on ``o``)."""
        return 5 + self.tree_levels

    @property
    def acc_width(self) -> int:
        """Signed accumulator width (no overflow for at most ``topk.capacity`` rows)."""
        a = self._cfg.attn
        return a.prob.width + a.value_bits + ceil_log2(self._cfg.topk.capacity)

    # ------------------------------------------------------------------------------------
    def elaborate(self, platform):
        cfg = self._cfg
        a = cfg.attn
        m = Module()
        R, D, L = a.pv_rows, a.head_dim, a.lsb_bits
        PW, VB = a.prob.width, a.value_bits
        PRODW = PW + VB  # |prob * value| < 2**(PW + VB - 1)
        AW = self.acc_width
        c, v, o = self.c, self.v, self.o

        ce = Signal()  # the whole pipeline advances this cycle
        m.d.comb += ce.eq(~o.valid | o.ready)

        # ---- Stage 0: take a chunk and its V beat together ------------------------------
        take = Signal()
        m.d.comb += [take.eq(c.valid & v.valid & ce), c.ready.eq(take), v.ready.eq(take)]
        first_in = Signal(init=1, name="first_in")  # the next chunk starts a pass
        with m.If(take):
            m.d.sync += first_in.eq(c.payload.last)

        # ---- Stage 1: input register (masked probabilities, joined values) --------------
        v1 = Signal(name="s1_valid")
        f1, l1 = Signal(name="s1_first"), Signal(name="s1_last")
        p1 = Signal(data.ArrayLayout(unsigned(PW), R), name="s1_prob")
        x1 = Signal(data.ArrayLayout(data.ArrayLayout(signed(VB), D), R), name="s1_value")
        mid = Const(1 << (L - 1), L)
        with m.If(ce):
            m.d.sync += [v1.eq(take), f1.eq(first_in), l1.eq(c.payload.last)]
            for r in range(R):
                live = c.payload.count > r
                m.d.sync += p1[r].eq(Mux(live, c.payload.prob[r], 0))
                for d in range(D):
                    low = Mux(c.payload.msb_only, mid, v.payload.lsb[r][d])
                    m.d.sync += x1[r][d].eq(Cat(low, v.payload.msb[r][d]))

        # ---- Stage 2: products -------------------------------------------------------------
        v2 = Signal(name="s2_valid")
        f2, l2 = Signal(name="s2_first"), Signal(name="s2_last")
        p2 = Signal(data.ArrayLayout(data.ArrayLayout(signed(PRODW), D), R), name="s2_prod")
        with m.If(ce):
            m.d.sync += [v2.eq(v1), f2.eq(f1), l2.eq(l1)]
            for r in range(R):
                for d in range(D):
                    m.d.sync += p2[r][d].eq(p1[r] * x1[r][d])

        # ---- Stage 3: adder tree over the rows, one register per level -------------------
        vt, ft, lt = v2, f2, l2
        level = [p2[r] for r in range(R)]  # each an array of D sums
        for lv in range(1, self.tree_levels + 1):
            n = len(level) // 2
            w = PRODW + lv
            nv = Signal(name=f"t{lv}_valid")
            nf, nl = Signal(name=f"t{lv}_first"), Signal(name=f"t{lv}_last")
            s = Signal(data.ArrayLayout(data.ArrayLayout(signed(w), D), n), name=f"t{lv}_sum")
            with m.If(ce):
                m.d.sync += [nv.eq(vt), nf.eq(ft), nl.eq(lt)]
                for j in range(n):
                    for d in range(D):
                        m.d.sync += s[j][d].eq(level[2 * j][d] + level[2 * j + 1][d])
            vt, ft, lt = nv, nf, nl
            level = [s[j] for j in range(n)]
        chunk_sum = level[0]

        # ---- Stage 4: accumulator per dimension ------------------------------------------
        acc = Signal(data.ArrayLayout(signed(AW), D), name="acc")
        acc_done = Signal(name="acc_done")  # acc holds a finished pass
        with m.If(ce):
            m.d.sync += acc_done.eq(vt & lt)
            with m.If(vt):
                for d in range(D):
                    m.d.sync += acc[d].eq(Mux(ft, 0, acc[d]) + chunk_sum[d])

        # ---- Stage 5: HALF_EVEN rounding -------------------------------------------------
        shift = a.prob.frac - a.out.frac
        RW = AW - max(shift, 0) + 1
        rnd_valid = Signal(name="rnd_valid")
        rnd = Signal(data.ArrayLayout(signed(RW), D), name="rnd")
        with m.If(ce):
            m.d.sync += rnd_valid.eq(acc_done)
            for d in range(D):
                m.d.sync += rnd[d].eq(shift_round(acc[d], shift, Rounding.HALF_EVEN))

        # ---- Stage 6: saturate into the output register ----------------------------------
        with m.If(ce):
            m.d.sync += o.valid.eq(rnd_valid)
            for d in range(D):
                m.d.sync += o.payload.data[d].eq(fit(rnd[d], a.out, Overflow.SATURATE))
        return m
