"""Fixed-point base-2 softmax with the progressive-quantization refetch decision.

Ref: SpAtten (Wang, Zhang, Han, HPCA 2021), Section III-D (the softmax unit: row maximum,
exponentials from a table, their sum and one reciprocal per row) and Section III-E
(progressive quantization: an MSB-only pass whose largest probability is below a threshold
is recomputed from MSB and LSB planes, i.e. the host is asked to refetch).

What it computes, per row of ``n`` raw scores (``cfg.attn.score``, base-2 logits with
``F = score.frac`` fraction bits), bit-exact with :func:`sim.golden.attention.softmax` on the
first ``n' = min(n, cfg.topk.capacity)`` scores (``E = exp_bits``, ``Rb = recip_bits``,
``P = prob.frac``, ``T = generators.tables.exp2_table(cfg.attn)``):

1. ``m = max(s)``; ``d = m - s`` (``0 <= d < 2**score.width``);
2. ``e = (T[d mod 2**F] + ((1 << k) >> 1)) >> k`` with ``k = min(d >> F, E + 2)``
   (``2**E * 2**-(d / 2**F)`` rounded HALF_UP; ``e`` is ``u(E+1)fE``, the maximum has
   ``e = 2**E``);
3. ``S = sum(e)``, ``z = floor(log2 S)`` (``E <= z <= E + floor(log2 capacity)``),
   ``r = floor(2**(z + Rb) / S)`` exactly (``2**(Rb-1) < r <= 2**Rb``);
4. ``p = fit(shift_round(e * r, z + Rb - P, HALF_UP), prob, SATURATE)``, and ``pmax`` the same
   with ``e = 2**E``; ``refetch = msb_only & (pmax < threshold)``. An empty row has
   ``pmax = 0``, ``refetch = 0``.

Hardware arithmetic. ``shift_round(x, s, HALF_UP) = ((x >> (s - 1)) + 1) >> 1`` for ``s >= 1``
(one variable shifter and an incrementer, no variable rounding constant); step 2 uses it as
``(((t << 1) >> k) + 1) >> 1``, which also covers ``k = 0``. The exponential table is one
``Memory`` ROM per lane (``2**F`` words of ``E + 1`` bits, ``init = exp2_table``, two read
ports: one per pass). The reciprocal is an exact restoring division with a constant
numerator: ``S`` is normalised by its leading one, ``Sn = S << (WS - 1 - z)`` with
``WS = bits(capacity * 2**E)``, so ``r = floor(2**(WS - 1 + Rb) / Sn)``; the ``Rb + 1``
quotient bits are produced ``DIV_BITS = 2`` per cycle by a sequential divider (one divider
per block: a row needs one division, and the division overlaps the other rows' passes).

Buffers and passes. Each row is written, as it arrives, into one of ``buffers`` (default 3)
row buffers, each its own ``Memory`` of ``capacity / lanes`` words of ``lanes *
score.width`` bits with one write port and one read port (SRAM macro / BRAM friendly);
elements beyond ``capacity`` are dropped and set ``truncated``. The row maximum is tracked
while the row arrives (a registered per-beat max tree over the valid lanes, then the running
max); a row descriptor (``n'``, max, truncated, meta) is kept per buffer. Rows then move, in
order, through four stages, each busy with one row at a time:

- *fill*: input beats into the next buffer of the rotation. A buffer is free once pass B has
  finished reading it, and is refilled *behind* pass B before that: word ``w`` may be written
  once pass B has issued its read of word ``w`` (a complete row written this way waits,
  ``queued``, until pass B has released the buffer). ``i.ready`` is low only while the next
  buffer holds a row that pass B is not (yet) reading, or the refill has caught up with it;
- *pass A*: read the buffer one word per cycle → ``d`` → exp ROM → ``e`` → lane adder tree →
  accumulate ``S`` (pipeline: RAM, score register, ROM and ``k``, ``e``, beat sum, ``S``;
  rows follow each other without a gap). ``S`` waits in a one-row slot for the divider;
- *divide*: take ``S``, find its leading one and normalise (1 cycle), ``D =
  ceil((Rb + 1) / 2)`` division cycles, then (combinationally, from ``r``) ``pmax`` and
  ``refetch``: the decision beat is loaded into the ``dec`` register and, unless refetched,
  the row is handed to pass B, in the same cycle or later (an empty row skips the division;
  a refetched row skips pass B and releases its buffer as its decision is loaded);
- *pass B*: read the buffer again → ``d`` → exp ROM (second read port) → ``e`` →
  ``e * r`` → runtime shift, round, saturate → ``o`` register; the next row may start in the
  cycle after the last read. The buffer is released when the row's last word has left the
  RAM's output register.

Stalls. Pass A and the divider never wait for the outputs. Pass B's pipeline (with its RAM
and ROM read enables) advances only when ``~o.valid | o.ready``, so back-pressure on ``o``
stalls it in place and, through the buffers, eventually the input. ``dec`` is a one-beat
register: a row's decision is loaded no later than its pass B starts (so it is valid before
its first ``o`` beat) and never waits for that row's ``o`` beats; a ``dec`` beat that is not
taken holds the divider (and so, later, pass A and the input).

Timing (no stalls; ``R = max(1, ceil(n' / lanes))`` words; ``D = ceil((Rb + 1) / 2)``, 0 for
an empty row):

- latency, from the cycle the last input beat of a row is taken (block idle) to the cycle its
  ``dec`` beat is valid: ``R + D + 9`` (:meth:`Softmax.decision_latency`); to the cycle its
  last ``o`` beat is valid: ``2 * R + D + 14`` (:meth:`Softmax.latency`). ``paper``
  (``D = 8``): 145 and 278 cycles for ``n = 1024``, 33 and 54 for ``n = 128``;
- throughput, back-to-back rows of ``R`` words into an always-ready output: fill, pass A and
  pass B each take ``R`` cycles per row and overlap (with three buffers: one row refilling
  behind pass B, one in pass A or the divider, one waiting or dividing), and the divider
  ``D + 2``; a row takes about ``max(R, D + 2)`` cycles, input accepted every cycle for long
  rows. Measured at ``paper`` with three buffers: 128.0 cycles per row for ``n = 1024``,
  64.0 for ``n = 512``, 16.33 for ``n = 128`` (one extra cycle every third row), 10 for
  rows of at most ``D + 2`` words (divider-bound). Two buffers: ``R + 8.5`` on average at
  ``paper``; one buffer: ``2 * R + 17``. ``tests/hdl/test_softmax_pysim.py`` prints the
  measured numbers.

Raises
------
TypeError
    if ``cfg`` is not a :class:`~generators.config.SpAttenConfig`.
ConfigError
    if ``cfg.check_head()`` fails (the top-k and attention configs do not fit together).
ValueError
    if ``buffers`` is not an integer in 1..8.

Members
-------
i : ``In(stream.Signature(score_layout(cfg)))``
    Rows of raw scores (``cfg.attn.score``), ``lanes`` per beat; ``count`` on the last beat;
    an empty row is one beat with ``count = 0``, ``last = 1``; ``meta`` on every beat (the
    last beat's is used).
dec : ``Out(stream.Signature(decision_layout(cfg)))``
    One beat per row: ``refetch``, ``pmax`` (raw ``prob``), ``truncated``.
o : ``Out(stream.Signature(prob_layout(cfg)))``
    The probabilities (raw ``prob``) of every row that is not refetched, ``ceil(n' / lanes)``
    beats (one ``count = 0`` beat for an empty row); ``count = lanes`` on every beat but the
    last, lanes at and above ``count`` zero, the row's ``meta`` on every beat.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.numerics import bits_for
from generators.tables import exp2_table

from .layouts import decision_layout, head_config, meta_layout, prob_layout, score_layout

__all__ = ["Softmax", "DIV_BITS"]

DIV_BITS = 2  # quotient bits per divider cycle (two chained subtractors)


def _sel(sigs, idx):
    """``sigs[idx]`` as a Mux chain (``idx`` in range)."""
    out = sigs[0]
    for b in range(1, len(sigs)):
        out = Mux(idx == b, sigs[b], out)
    return out


def _inc_mod(x, n: int):
    """``(x + 1) mod n``."""
    if n == 1:
        return x
    if n & (n - 1) == 0:
        return (x + 1)[:(n - 1).bit_length()]
    return Mux(x == n - 1, 0, x + 1)


def _tree_sum(terms):
    while len(terms) > 1:
        terms = [terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k]
                 for k in range(0, len(terms), 2)]
    return terms[0]


class Softmax(wiring.Component):
    """Base-2 fixed-point softmax of score rows with the refetch decision (see the module
    docstring)."""

    def __init__(self, cfg: SpAttenConfig, *, buffers: int = 3):
        head_config(cfg)
        if not isinstance(buffers, int) or isinstance(buffers, bool) or not 1 <= buffers <= 8:
            raise ValueError(f"buffers must be an integer in 1..8, not {buffers!r}")
        self._cfg = cfg
        self._buffers = buffers
        super().__init__({
            "i": In(stream.Signature(score_layout(cfg))),
            "dec": Out(stream.Signature(decision_layout(cfg))),
            "o": Out(stream.Signature(prob_layout(cfg))),
        })

    @property
    def cfg(self) -> SpAttenConfig:
        return self._cfg

    @property
    def buffers(self) -> int:
        return self._buffers

    def _words(self, n: int) -> int:
        a = self._cfg.attn
        n = min(max(int(n), 0), self._cfg.topk.capacity)
        return max(1, -(-n // a.lanes))

    @property
    def div_cycles(self) -> int:
        """Divider cycles per row, ``ceil((recip_bits + 1) / DIV_BITS)``."""
        return -(-(self._cfg.attn.recip_bits + 1) // DIV_BITS)

    def decision_latency(self, n: int) -> int:
        """Cycles from taking the last input beat of an ``n``-element row (block idle) to its
        ``dec`` beat being valid: ``R + D + 9`` (``D = 0`` for an empty row)."""
        return self._words(n) + self._div(n) + 9

    def latency(self, n: int) -> int:
        """Cycles from taking the last input beat of an ``n``-element row (block idle, no
        stalls) to its last ``o`` beat being valid: ``2 * R + D + 14``."""
        return 2 * self._words(n) + self._div(n) + 14

    def _div(self, n: int) -> int:
        return self.div_cycles if n > 0 else 0

    # ------------------------------------------------------------------------------------
    def elaborate(self, platform):
        cfg, a = self._cfg, self._cfg.attn
        m = Module()
        L, C, NB = a.lanes, cfg.topk.capacity, self._buffers
        R = C // L
        SW, F, E, Rb, P = a.score.width, a.score.frac, a.exp_bits, a.recip_bits, a.prob.frac
        EW = a.exp_width
        CB = cfg.topk.count_bits
        lane_bits = (L - 1).bit_length()
        WS = (C << E).bit_length()  # width of S (at most capacity * 2**E)
        VMAX = C.bit_length() - 1  # z - E is in 0..VMAX
        VB = bits_for(VMAX)
        BB = bits_for(NB - 1)  # buffer index (at least 1 bit)
        RWB = bits_for(R - 1)  # word index (at least 1 bit)
        CNTB = bits_for(L)
        DC = self.div_cycles
        DPAD = DC * DIV_BITS - (Rb + 1)  # leading quotient bits that are always 0 (padding to whole cycles)
        KMAX = E + 2  # largest useful shift of a table entry
        PMAX = a.prob.max_raw
        score_row = data.ArrayLayout(signed(SW), L)
        meta = meta_layout(cfg)

        # ---- Memories ---------------------------------------------------------------------
        wps, rps = [], []
        for b in range(NB):
            # depth >= 2: a one-word memory would have a 0-bit address (not lint clean)
            mem = Memory(shape=score_row, depth=max(R, 2), init=[])
            m.submodules[f"buf{b}"] = mem
            wps.append(mem.write_port())
            rps.append(mem.read_port(domain="sync"))
        table = exp2_table(a)
        rom_a, rom_b = [], []
        for j in range(L):
            rom = Memory(shape=unsigned(EW), depth=1 << F, init=table)
            m.submodules[f"exp_rom{j}"] = rom
            rom_a.append(rom.read_port(domain="sync"))
            rom_b.append(rom.read_port(domain="sync"))

        # ---- Per-buffer state and row descriptors -----------------------------------------
        busy = [Signal(name=f"busy{b}") for b in range(NB)]  # holds an unfinished row
        # queued: a second, complete row waits behind the one pass B is reading (it was
        # written behind pass B's reads); drained: pass B has issued its last read here.
        queued = [Signal(name=f"queued{b}") for b in range(NB)]
        drained = [Signal(name=f"drained{b}") for b in range(NB)]
        a_pend = [Signal(name=f"a_pend{b}") for b in range(NB)]  # filled, pass A to do
        d_n = [Signal(CB, name=f"desc{b}_n") for b in range(NB)]
        d_max = [Signal(signed(SW), name=f"desc{b}_max") for b in range(NB)]
        d_trunc = [Signal(name=f"desc{b}_trunc") for b in range(NB)]
        d_meta = [Signal(meta, name=f"desc{b}_meta") for b in range(NB)]

        def lane_shift(d):
            """``min(d >> F, E + 2)`` of an unsigned ``d``."""
            q = d[F:]
            if (1 << len(q)) - 1 > KMAX:
                return Mux(q > KMAX, KMAX, q)
            return q

        def exp_of(t, k):
            """``shift_round(t, k, HALF_UP)`` for ``k >= 0``."""
            return ((((t << 1) >> k) + 1) >> 1)[:EW]

        def row_facts(row, n):
            """(last, count) of word ``row`` of an ``n``-element row (one word when n = 0)."""
            base = row << lane_bits
            last = base + L >= n
            cnt = Mux(last, (n - base)[:CNTB], L)
            return last, cnt

        # ---- Fill: input beats into the buffer, running max ------------------------------
        i = self.i
        wb = Signal(BB, name="wbuf")
        wrow = Signal(range(R + 1), name="wrow")
        trunc = Signal(name="in_trunc")
        first = Signal(init=1, name="in_first")
        take = Signal()
        rb = Signal(BB, name="b_buf")  # pass B's buffer
        brow = Signal(RWB, name="b_row")  # pass B's next word
        b_active = Signal(name="b_active")  # pass B is issuing reads of buffer rb
        # A busy buffer may be refilled behind pass B's reads: word w once B has read it.
        chase = Signal(name="in_chase")
        m.d.comb += [
            chase.eq(~_sel(queued, wb)
                     & (_sel(drained, wb) | (b_active & (rb == wb) & (wrow < brow)))),
            i.ready.eq(~_sel(busy, wb) | chase),
            take.eq(i.valid & i.ready),
        ]
        room = Signal()
        m.d.comb += room.eq(wrow < R)
        cnt_in = Signal(range(L + 1), name="in_count")
        count = i.payload.count
        if (1 << len(count)) - 1 > L:
            count = Mux(count > L, L, count)
        m.d.comb += cnt_in.eq(Mux(i.payload.last, count, L))
        for b in range(NB):
            m.d.comb += [
                wps[b].addr.eq(wrow),
                wps[b].data.eq(i.payload.data),
                wps[b].en.eq(take & room & (wb == b)),
            ]
        # Beat max over the lanes that enter the buffer (score.min_raw when none does).
        terms = [Mux(room & (cnt_in > j), i.payload.data[j], a.score.min_raw) for j in range(L)]
        while len(terms) > 1:
            terms = [Mux(terms[k] > terms[k + 1], terms[k], terms[k + 1])
                     if k + 1 < len(terms) else terms[k] for k in range(0, len(terms), 2)]
        n_now = Signal(CB, name="in_n")
        trunc_now = Signal(name="in_trunc_now")
        m.d.comb += [
            n_now.eq(Mux(room, (wrow << lane_bits) + cnt_in, C)),
            trunc_now.eq(trunc | (~room & (cnt_in != 0))),
        ]
        # F1: registered beat facts; F2: running max, descriptor at the row's last beat.
        f1_valid, f1_first, f1_last = Signal(name="f1_valid"), Signal(name="f1_first"), \
            Signal(name="f1_last")
        f1_bmax = Signal(signed(SW), name="f1_bmax")
        f1_buf = Signal(BB, name="f1_buf")
        f1_n = Signal(CB, name="f1_n")
        f1_trunc = Signal(name="f1_trunc")
        f1_meta = Signal(meta, name="f1_meta")
        m.d.sync += [
            f1_valid.eq(take), f1_first.eq(first), f1_last.eq(i.payload.last),
            f1_bmax.eq(terms[0]), f1_buf.eq(wb), f1_n.eq(n_now), f1_trunc.eq(trunc_now),
            f1_meta.eq(i.payload.meta),
        ]
        with m.If(take):
            m.d.sync += first.eq(i.payload.last)
            with m.If(i.payload.last):
                m.d.sync += [wrow.eq(0), trunc.eq(0), wb.eq(_inc_mod(wb, NB))]
            with m.Else():
                m.d.sync += [wrow.eq(Mux(room, wrow + 1, wrow)), trunc.eq(trunc_now)]
        runmax = Signal(signed(SW), name="in_runmax")
        rmax = Signal(signed(SW), name="in_rmax")
        m.d.comb += rmax.eq(Mux(f1_first | (f1_bmax > runmax), f1_bmax, runmax))
        with m.If(f1_valid):
            m.d.sync += runmax.eq(rmax)
            with m.If(f1_last):
                for b in range(NB):
                    with m.If(f1_buf == b):
                        m.d.sync += [d_max[b].eq(rmax), d_n[b].eq(f1_n),
                                     d_trunc[b].eq(f1_trunc), d_meta[b].eq(f1_meta),
                                     a_pend[b].eq(1)]

        # ---- Pass A: S = sum(e) ---------------------------------------------------------
        atag = data.StructLayout({"valid": 1, "first": 1, "last": 1, "cnt": CNTB,
                                  "max": signed(SW), "buf": BB})
        ce_a = Signal(name="ce_a")
        ra = Signal(BB, name="a_buf")
        arow = Signal(RWB, name="a_row")
        a_issue = Signal(name="a_issue")
        a_last, a_cnt = row_facts(arow, _sel(d_n, ra))
        m.d.comb += a_issue.eq(_sel(a_pend, ra) & ~_sel(queued, ra))
        a1, a2, a3, a4, a5 = (Signal(atag, name=f"a{x}") for x in range(1, 6))
        a2_s = Signal(score_row, name="a2_s")
        a3_k = [Signal(range(KMAX + 1), name=f"a3_k{j}") for j in range(L)]
        a4_e = [Signal(EW, name=f"a4_e{j}") for j in range(L)]
        a5_sum = Signal(WS, name="a5_sum")
        acc = Signal(WS, name="a_acc")
        with m.If(ce_a):
            m.d.sync += [
                a1.valid.eq(a_issue), a1.first.eq(arow == 0), a1.last.eq(a_last),
                a1.cnt.eq(a_cnt), a1.max.eq(_sel(d_max, ra)), a1.buf.eq(ra),
                a2.eq(a1), a2_s.eq(_sel([rp.data for rp in rps], a1.buf)),
                a3.eq(a2), a4.eq(a3), a5.eq(a4),
                a5_sum.eq(_tree_sum(list(a4_e))),
            ]
            with m.If(a_issue):
                with m.If(a_last):
                    m.d.sync += [arow.eq(0), ra.eq(_inc_mod(ra, NB))]
                    for b in range(NB):
                        with m.If(ra == b):
                            m.d.sync += a_pend[b].eq(0)
                with m.Else():
                    m.d.sync += arow.eq(arow + 1)
        for j in range(L):
            d = Signal(SW, name=f"a2_d{j}")
            m.d.comb += [d.eq((a2.max - a2_s[j]).as_unsigned()), rom_a[j].addr.eq(d[:F]),
                         rom_a[j].en.eq(ce_a)]
            with m.If(ce_a):
                m.d.sync += [
                    a3_k[j].eq(lane_shift(d)),
                    a4_e[j].eq(Mux(a3.cnt > j, exp_of(rom_a[j].data, a3_k[j]), 0)),
                ]
        acc_next = Signal(WS, name="a_acc_next")
        m.d.comb += acc_next.eq(Mux(a5.first, 0, acc) + a5_sum)
        slot_full = Signal(name="slot_full")  # pass A → divider
        slot_s = Signal(WS, name="slot_s")
        slot_buf = Signal(BB, name="slot_buf")
        div_take = Signal(name="div_take")
        m.d.comb += ce_a.eq(~slot_full | div_take)
        with m.If(div_take):
            m.d.sync += slot_full.eq(0)
        with m.If(ce_a & a5.valid):
            m.d.sync += acc.eq(acc_next)
            with m.If(a5.last):
                m.d.sync += [slot_full.eq(1), slot_s.eq(acc_next), slot_buf.eq(a5.buf)]

        # ---- Divider: r = floor(2**(z + Rb) / S), pmax, refetch ----------------------------
        dv_buf = Signal(BB, name="dv_buf")
        dv_empty = Signal(name="dv_empty")
        dv_v = Signal(VB, name="dv_v")  # z - E
        dv_sn = Signal(WS, name="dv_sn")  # S normalised: leading one at bit WS-1
        dv_rem = Signal(WS, name="dv_rem")
        dv_q = Signal(Rb + 1, name="dv_q")  # the quotient bits so far; r when done
        dv_cnt = Signal(range(DC), name="dv_cnt")
        dec_pend = Signal(name="dv_dec_pend")  # DONE: the decision is still to be loaded
        b_pend = Signal(name="dv_b_pend")  # DONE: pass B is still to be started
        lead = Signal(VB, name="dv_lead")  # leading one of S, minus E (S >= 2**E)
        for k in range(E, WS):
            with m.If(slot_s[k]):
                m.d.comb += lead.eq(k - E)
        pm = ((dv_q >> (dv_v + (Rb - P - 1))) + 1) >> 1  # shift_round(2**E * r, z+Rb-P)
        dv_pmax = Signal(a.prob.width, name="dv_pmax")
        m.d.comb += dv_pmax.eq(Mux(pm > PMAX, PMAX, pm))
        dv_meta = Signal(meta, name="dv_meta")
        m.d.comb += dv_meta.eq(_sel(d_meta, dv_buf))
        dv_refetch = Signal(name="dv_refetch")
        m.d.comb += dv_refetch.eq(~dv_empty & dv_meta.msb_only & (dv_pmax < dv_meta.threshold))
        rel_div = Signal(name="rel_div")

        dec = self.dec
        dec_free = Signal(name="dec_free")
        m.d.comb += dec_free.eq(~dec.valid | dec.ready)
        load_dec = Signal(name="load_dec")
        handoff = Signal(name="b_handoff")
        b_free = Signal(name="b_free")  # pass B can take a row this cycle
        with m.If(dec.ready):
            m.d.sync += dec.valid.eq(0)
        with m.If(load_dec):
            m.d.sync += [dec.valid.eq(1), dec.payload.refetch.eq(dv_refetch),
                         dec.payload.pmax.eq(dv_pmax),
                         dec.payload.truncated.eq(_sel(d_trunc, dv_buf))]

        with m.FSM(name="div_fsm"):
            with m.State("IDLE"):
                # Take S and normalise it in one step: Sn = S << (WS - 1 - z).
                m.d.comb += div_take.eq(slot_full)
                with m.If(slot_full):
                    m.d.sync += [
                        dv_buf.eq(slot_buf), dv_empty.eq(slot_s == 0), dv_v.eq(lead),
                        dv_sn.eq(((slot_s << (WS - 1 - E)) >> lead)[:WS]),
                        dv_rem.eq(1 << (WS - 2 - DPAD)), dv_q.eq(0), dv_cnt.eq(0),
                        dec_pend.eq(1), b_pend.eq(1),
                    ]
                    with m.If(slot_s == 0):  # empty row: r = 0, so pmax = 0
                        m.next = "DONE"
                    with m.Else():
                        m.next = "ITER"
            with m.State("ITER"):
                rem, q = dv_rem, dv_q
                for _ in range(DIV_BITS):
                    t = Cat(Const(0, 1), rem)  # rem << 1, WS + 1 bits
                    ge = t >= dv_sn
                    rem = Mux(ge, t - dv_sn, t)[:WS]
                    q = Cat(ge, q)[:Rb + 1]
                m.d.sync += [dv_rem.eq(rem), dv_q.eq(q), dv_cnt.eq(dv_cnt + 1)]
                with m.If(dv_cnt == DC - 1):
                    m.next = "DONE"
            with m.State("DONE"):
                # pmax and refetch are combinational here. The decision is loaded no later
                # than the row's pass B starts; a refetched row skips pass B and releases its
                # buffer (and descriptor) as its decision is loaded.
                need_b = Signal(name="dv_need_b")
                m.d.comb += [
                    need_b.eq(b_pend & ~dv_refetch),
                    load_dec.eq(dec_pend & dec_free),
                    handoff.eq(need_b & b_free & (~dec_pend | dec_free)),
                    rel_div.eq(load_dec & dv_refetch),
                ]
                with m.If(load_dec):
                    m.d.sync += dec_pend.eq(0)
                with m.If(handoff):
                    m.d.sync += b_pend.eq(0)
                with m.If((~dec_pend | load_dec) & (~need_b | handoff)):
                    m.next = "IDLE"

        # ---- Pass B: p = fit(shift_round(e * r, z + Rb - P, HALF_UP)) --------------------
        btag = data.StructLayout({"valid": 1, "last": 1, "cnt": CNTB, "max": signed(SW),
                                  "buf": BB, "r": Rb + 1, "v": VB, "meta": meta})
        o = self.o
        ce_b = Signal(name="ce_b")
        m.d.comb += ce_b.eq(~o.valid | o.ready)
        b_n = Signal(CB, name="b_n")
        b_max = Signal(signed(SW), name="b_max")
        b_r = Signal(Rb + 1, name="b_r")
        b_v = Signal(VB, name="b_v")
        b_meta = Signal(meta, name="b_meta")
        b_last, b_cnt = row_facts(brow, b_n)
        m.d.comb += b_free.eq(~b_active | (ce_b & b_last))
        b1, b2, b3, b4, b5 = (Signal(btag, name=f"b{x}") for x in range(1, 6))
        b2_s = Signal(score_row, name="b2_s")
        b3_k = [Signal(range(KMAX + 1), name=f"b3_k{j}") for j in range(L)]
        b4_e = [Signal(EW, name=f"b4_e{j}") for j in range(L)]
        b5_x = [Signal(EW + Rb + 1, name=f"b5_x{j}") for j in range(L)]
        rel_b = Signal(name="rel_b")
        m.d.comb += rel_b.eq(ce_b & b1.valid & b1.last)
        with m.If(ce_b):
            m.d.sync += [
                b1.valid.eq(b_active), b1.last.eq(b_last), b1.cnt.eq(b_cnt), b1.max.eq(b_max),
                b1.buf.eq(rb), b1.r.eq(b_r), b1.v.eq(b_v), b1.meta.eq(b_meta),
                b2.eq(b1), b2_s.eq(_sel([rp.data for rp in rps], b1.buf)),
                b3.eq(b2), b4.eq(b3), b5.eq(b4),
            ]
            with m.If(b_active):
                m.d.sync += brow.eq(brow + 1)
                with m.If(b_last):
                    m.d.sync += b_active.eq(0)
            for j in range(L):
                m.d.sync += b5_x[j].eq(b4_e[j] * b4.r)
        with m.If(handoff):  # after the issue logic: a row may start as the last one ends
            m.d.sync += [
                b_active.eq(1), rb.eq(dv_buf), brow.eq(0), b_n.eq(_sel(d_n, dv_buf)),
                b_max.eq(_sel(d_max, dv_buf)), b_r.eq(dv_q), b_v.eq(dv_v), b_meta.eq(dv_meta),
            ]
        c0 = E + Rb - P - 1
        for j in range(L):
            d = Signal(SW, name=f"b2_d{j}")
            m.d.comb += [d.eq((b2.max - b2_s[j]).as_unsigned()), rom_b[j].addr.eq(d[:F]),
                         rom_b[j].en.eq(ce_b)]
            y = (b5_x[j] >> c0) >> b5.v
            p = ((y + 1) >> 1)
            with m.If(ce_b):
                m.d.sync += [
                    b3_k[j].eq(lane_shift(d)),
                    b4_e[j].eq(Mux(b3.cnt > j, exp_of(rom_b[j].data, b3_k[j]), 0)),
                    o.payload.data[j].eq(Mux(p > PMAX, PMAX, p)),
                ]
        with m.If(ce_b):
            m.d.sync += [o.valid.eq(b5.valid), o.payload.count.eq(b5.cnt),
                         o.payload.last.eq(b5.last), o.payload.meta.eq(b5.meta)]

        # ---- Buffer read ports: pass A or pass B (never both on one buffer) ---------------
        for b in range(NB):
            b_here = b_active & (rb == b)
            m.d.comb += [
                rps[b].addr.eq(Mux(b_here, brow, arow)),
                rps[b].en.eq((ce_a & a_issue & (ra == b)) | (ce_b & b_here)),
            ]
            rel = (rel_b & (b1.buf == b)) | (rel_div & (dv_buf == b))
            fin = take & i.payload.last & (wb == b)
            with m.If(ce_b & b_here & b_last):
                m.d.sync += drained[b].eq(1)
            with m.If(rel):
                m.d.sync += [busy[b].eq(queued[b]), queued[b].eq(0), drained[b].eq(0)]
            with m.If(fin):
                with m.If(busy[b] & ~rel):
                    m.d.sync += queued[b].eq(1)
                with m.Else():
                    m.d.sync += busy[b].eq(1)
        return m
