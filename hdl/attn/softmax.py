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

from types import SimpleNamespace

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
    # Elaboration. ``elaborate`` wires the four stages (fill, pass A, divider, pass B) to the
    # buffers; each stage is built by a private method below and hands the signals the
    # others need on in a namespace (generation-time structure only: every signal keeps the
    # name it has in the Verilog and the VCDs).
    def elaborate(self, platform):
        m = Module()
        g = self._dims()
        mem = self._memories(m, g)
        st = self._buffer_state(g)
        # Pass B's read position is needed by the fill (a buffer is refilled behind it), so
        # its state is made first.
        pb = SimpleNamespace(
            rb=Signal(g.BB, name="b_buf"),  # pass B's buffer
            brow=Signal(g.RWB, name="b_row"),  # pass B's next word
            b_active=Signal(name="b_active"),  # pass B is issuing reads of buffer rb
        )
        fill = self._fill(m, g, st, mem, pb)
        pa = self._pass_a(m, g, st, mem)
        dv = self._divider(m, g, st, pa, pb)
        self._pass_b(m, g, st, mem, dv, pb)
        self._read_ports(m, g, st, mem, fill, pa, dv, pb)
        return m

    # ---- Generation-time helpers ----------------------------------------------------------
    def _dims(self):
        """Widths and sizes derived from the config (names as in the module docstring)."""
        cfg, a = self._cfg, self._cfg.attn
        L, C, NB = a.lanes, cfg.topk.capacity, self._buffers
        E, Rb = a.exp_bits, a.recip_bits
        R = C // L
        DC = self.div_cycles
        return SimpleNamespace(
            L=L, C=C, NB=NB, R=R, SW=a.score.width, F=a.score.frac, E=E, Rb=Rb, P=a.prob.frac,
            EW=a.exp_width, CB=cfg.topk.count_bits, lane_bits=(L - 1).bit_length(),
            WS=(C << E).bit_length(),  # width of S (at most capacity * 2**E)
            VB=bits_for(C.bit_length() - 1),  # z - E is in 0..C.bit_length() - 1
            BB=bits_for(NB - 1),  # buffer index (at least 1 bit)
            RWB=bits_for(R - 1),  # word index (at least 1 bit)
            CNTB=bits_for(L), DC=DC,
            # leading quotient bits that are always 0 (padding to whole cycles)
            DPAD=DC * DIV_BITS - (Rb + 1),
            KMAX=E + 2,  # largest useful shift of a table entry
            PMAX=a.prob.max_raw,
            score_row=data.ArrayLayout(signed(a.score.width), L),
            meta=meta_layout(cfg),
        )

    @staticmethod
    def _lane_shift(g, d):
        """``min(d >> F, E + 2)`` of an unsigned ``d``."""
        q = d[g.F:]
        if (1 << len(q)) - 1 > g.KMAX:
            return Mux(q > g.KMAX, g.KMAX, q)
        return q

    @staticmethod
    def _exp_of(g, t, k):
        """``shift_round(t, k, HALF_UP)`` for ``k >= 0``."""
        return ((((t << 1) >> k) + 1) >> 1)[:g.EW]

    @staticmethod
    def _row_facts(g, row, n):
        """(last, count) of word ``row`` of an ``n``-element row (one word when n = 0)."""
        base = row << g.lane_bits
        last = base + g.L >= n
        cnt = Mux(last, (n - base)[:g.CNTB], g.L)
        return last, cnt

    def _exp_lanes(self, m, g, ce, rom, cnt3, max2, s2, k3, e4, stage, also=None):
        """The exponential pipeline shared by both passes, per lane: ``d = max - s`` (comb,
        stage 2) → ROM address and shift ``k`` (stage 3) → ``e`` (stage 4), zero in lanes
        at and above the beat's ``count``. ``also(j)``: more of lane ``j``'s registers
        (advanced by the same ``ce``)."""
        for j in range(g.L):
            d = Signal(g.SW, name=f"{stage}2_d{j}")
            m.d.comb += [d.eq((max2 - s2[j]).as_unsigned()), rom[j].addr.eq(d[:g.F]),
                         rom[j].en.eq(ce)]
            with m.If(ce):
                m.d.sync += [
                    k3[j].eq(self._lane_shift(g, d)),
                    e4[j].eq(Mux(cnt3 > j, self._exp_of(g, rom[j].data, k3[j]), 0)),
                ]
                if also is not None:
                    m.d.sync += also(j)

    # ---- Memories and per-buffer state ------------------------------------------------------
    def _memories(self, m, g):
        """The row buffers (one write and one read port each) and the exponential ROMs (one
        per lane, one read port per pass)."""
        wps, rps = [], []
        for b in range(g.NB):
            # depth >= 2: a one-word memory would have a 0-bit address (not lint clean)
            mem = Memory(shape=g.score_row, depth=max(g.R, 2), init=[])
            m.submodules[f"buf{b}"] = mem
            wps.append(mem.write_port())
            rps.append(mem.read_port(domain="sync"))
        table = exp2_table(self._cfg.attn)
        rom_a, rom_b = [], []
        for j in range(g.L):
            rom = Memory(shape=unsigned(g.EW), depth=1 << g.F, init=table)
            m.submodules[f"exp_rom{j}"] = rom
            rom_a.append(rom.read_port(domain="sync"))
            rom_b.append(rom.read_port(domain="sync"))
        return SimpleNamespace(wps=wps, rps=rps, rom_a=rom_a, rom_b=rom_b)

    @staticmethod
    def _buffer_state(g):
        """Per-buffer flags and row descriptors.

        ``busy``: holds an unfinished row; ``queued``: a second, complete row waits behind
        the one pass B is reading (it was written behind pass B's reads); ``drained``: pass
        B has issued its last read here; ``a_pend``: filled, pass A to do."""
        NB = g.NB
        return SimpleNamespace(
            busy=[Signal(name=f"busy{b}") for b in range(NB)],
            queued=[Signal(name=f"queued{b}") for b in range(NB)],
            drained=[Signal(name=f"drained{b}") for b in range(NB)],
            a_pend=[Signal(name=f"a_pend{b}") for b in range(NB)],
            d_n=[Signal(g.CB, name=f"desc{b}_n") for b in range(NB)],
            d_max=[Signal(signed(g.SW), name=f"desc{b}_max") for b in range(NB)],
            d_trunc=[Signal(name=f"desc{b}_trunc") for b in range(NB)],
            d_meta=[Signal(g.meta, name=f"desc{b}_meta") for b in range(NB)],
        )

    # ---- Fill ---------------------------------------------------------------------------------
    def _fill(self, m, g, st, mem, pb):
        """Input beats into the buffer; the row's running max and descriptor (two stages:
        F1 registers the beat's facts, F2 the running max and, at the row's last beat, the
        descriptor). Returns ``take`` and the buffer being written."""
        L, C, NB, R = g.L, g.C, g.NB, g.R
        i = self.i
        wb = Signal(g.BB, name="wbuf")
        wrow = Signal(range(R + 1), name="wrow")
        trunc = Signal(name="in_trunc")
        first = Signal(init=1, name="in_first")
        take = Signal()
        # A busy buffer may be refilled behind pass B's reads: word w once B has read it.
        chase = Signal(name="in_chase")
        m.d.comb += [
            chase.eq(~_sel(st.queued, wb)
                     & (_sel(st.drained, wb)
                        | (pb.b_active & (pb.rb == wb) & (wrow < pb.brow)))),
            i.ready.eq(~_sel(st.busy, wb) | chase),
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
                mem.wps[b].addr.eq(wrow),
                mem.wps[b].data.eq(i.payload.data),
                mem.wps[b].en.eq(take & room & (wb == b)),
            ]
        # Beat max over the lanes that enter the buffer (score.min_raw when none does).
        terms = [Mux(room & (cnt_in > j), i.payload.data[j], self._cfg.attn.score.min_raw)
                 for j in range(L)]
        while len(terms) > 1:
            terms = [Mux(terms[k] > terms[k + 1], terms[k], terms[k + 1])
                     if k + 1 < len(terms) else terms[k] for k in range(0, len(terms), 2)]
        n_now = Signal(g.CB, name="in_n")
        trunc_now = Signal(name="in_trunc_now")
        m.d.comb += [
            n_now.eq(Mux(room, (wrow << g.lane_bits) + cnt_in, C)),
            trunc_now.eq(trunc | (~room & (cnt_in != 0))),
        ]
        f1 = SimpleNamespace(
            valid=Signal(name="f1_valid"), first=Signal(name="f1_first"),
            last=Signal(name="f1_last"), bmax=Signal(signed(g.SW), name="f1_bmax"),
            buf=Signal(g.BB, name="f1_buf"), n=Signal(g.CB, name="f1_n"),
            trunc=Signal(name="f1_trunc"), meta=Signal(g.meta, name="f1_meta"),
        )
        m.d.sync += [
            f1.valid.eq(take), f1.first.eq(first), f1.last.eq(i.payload.last),
            f1.bmax.eq(terms[0]), f1.buf.eq(wb), f1.n.eq(n_now), f1.trunc.eq(trunc_now),
            f1.meta.eq(i.payload.meta),
        ]
        with m.If(take):
            m.d.sync += first.eq(i.payload.last)
            with m.If(i.payload.last):
                m.d.sync += [wrow.eq(0), trunc.eq(0), wb.eq(_inc_mod(wb, NB))]
            with m.Else():
                m.d.sync += [wrow.eq(Mux(room, wrow + 1, wrow)), trunc.eq(trunc_now)]
        self._running_max(m, g, st, f1)
        return SimpleNamespace(take=take, wb=wb)

    @staticmethod
    def _running_max(m, g, st, f1):
        """F2: the running max; at the row's last beat, the descriptor (pass A may start)."""
        runmax = Signal(signed(g.SW), name="in_runmax")
        rmax = Signal(signed(g.SW), name="in_rmax")
        m.d.comb += rmax.eq(Mux(f1.first | (f1.bmax > runmax), f1.bmax, runmax))
        with m.If(f1.valid):
            m.d.sync += runmax.eq(rmax)
            with m.If(f1.last):
                for b in range(g.NB):
                    with m.If(f1.buf == b):
                        m.d.sync += [st.d_max[b].eq(rmax), st.d_n[b].eq(f1.n),
                                     st.d_trunc[b].eq(f1.trunc), st.d_meta[b].eq(f1.meta),
                                     st.a_pend[b].eq(1)]

    # ---- Pass A ---------------------------------------------------------------------------------
    def _pass_a(self, m, g, st, mem):
        """Pass A: ``S = sum(e)`` (RAM, score register, ROM and ``k``, ``e``, beat sum,
        ``S``); ``S`` waits in a one-row slot for the divider, and pass A advances (``ce_a``)
        while the slot is free or being taken (``div_take``, driven by the divider)."""
        L, NB = g.L, g.NB
        atag = data.StructLayout({"valid": 1, "first": 1, "last": 1, "cnt": g.CNTB,
                                  "max": signed(g.SW), "buf": g.BB})
        ce_a = Signal(name="ce_a")
        ra = Signal(g.BB, name="a_buf")
        arow = Signal(g.RWB, name="a_row")
        a_issue = Signal(name="a_issue")
        a_last, a_cnt = self._row_facts(g, arow, _sel(st.d_n, ra))
        m.d.comb += a_issue.eq(_sel(st.a_pend, ra) & ~_sel(st.queued, ra))
        a1, a2, a3, a4, a5 = (Signal(atag, name=f"a{x}") for x in range(1, 6))
        a2_s = Signal(g.score_row, name="a2_s")
        a3_k = [Signal(range(g.KMAX + 1), name=f"a3_k{j}") for j in range(L)]
        a4_e = [Signal(g.EW, name=f"a4_e{j}") for j in range(L)]
        a5_sum = Signal(g.WS, name="a5_sum")
        acc = Signal(g.WS, name="a_acc")
        with m.If(ce_a):
            m.d.sync += [
                a1.valid.eq(a_issue), a1.first.eq(arow == 0), a1.last.eq(a_last),
                a1.cnt.eq(a_cnt), a1.max.eq(_sel(st.d_max, ra)), a1.buf.eq(ra),
                a2.eq(a1), a2_s.eq(_sel([rp.data for rp in mem.rps], a1.buf)),
                a3.eq(a2), a4.eq(a3), a5.eq(a4),
                a5_sum.eq(_tree_sum(list(a4_e))),
            ]
            with m.If(a_issue):
                with m.If(a_last):
                    m.d.sync += [arow.eq(0), ra.eq(_inc_mod(ra, NB))]
                    for b in range(NB):
                        with m.If(ra == b):
                            m.d.sync += st.a_pend[b].eq(0)
                with m.Else():
                    m.d.sync += arow.eq(arow + 1)
        self._exp_lanes(m, g, ce_a, mem.rom_a, a3.cnt, a2.max, a2_s, a3_k, a4_e, "a")
        acc_next = Signal(g.WS, name="a_acc_next")
        m.d.comb += acc_next.eq(Mux(a5.first, 0, acc) + a5_sum)
        slot_full = Signal(name="slot_full")  # pass A → divider
        slot_s = Signal(g.WS, name="slot_s")
        slot_buf = Signal(g.BB, name="slot_buf")
        div_take = Signal(name="div_take")
        m.d.comb += ce_a.eq(~slot_full | div_take)
        with m.If(div_take):
            m.d.sync += slot_full.eq(0)
        with m.If(ce_a & a5.valid):
            m.d.sync += acc.eq(acc_next)
            with m.If(a5.last):
                m.d.sync += [slot_full.eq(1), slot_s.eq(acc_next), slot_buf.eq(a5.buf)]
        return SimpleNamespace(ce_a=ce_a, ra=ra, arow=arow, a_issue=a_issue,
                               slot_full=slot_full, slot_s=slot_s, slot_buf=slot_buf,
                               div_take=div_take)

    # ---- Divider --------------------------------------------------------------------------------
    def _divider(self, m, g, st, pa, pb):
        """``r = floor(2**(z + Rb) / S)``, ``pmax`` and ``refetch``; loads the decision beat
        and hands the row to pass B (``handoff``) unless it is refetched (``rel_div``: the
        buffer is released instead)."""
        a = self._cfg.attn
        E, Rb, WS, VB = g.E, g.Rb, g.WS, g.VB
        dv = SimpleNamespace(
            buf=Signal(g.BB, name="dv_buf"),
            empty=Signal(name="dv_empty"),
            v=Signal(VB, name="dv_v"),  # z - E
            sn=Signal(WS, name="dv_sn"),  # S normalised: leading one at bit WS-1
            rem=Signal(WS, name="dv_rem"),
            q=Signal(Rb + 1, name="dv_q"),  # the quotient bits so far; r when done
            cnt=Signal(range(g.DC), name="dv_cnt"),
            dec_pend=Signal(name="dv_dec_pend"),  # DONE: the decision is still to be loaded
            b_pend=Signal(name="dv_b_pend"),  # DONE: pass B is still to be started
            lead=Signal(VB, name="dv_lead"),  # leading one of S, minus E (S >= 2**E)
        )
        for k in range(E, WS):
            with m.If(pa.slot_s[k]):
                m.d.comb += dv.lead.eq(k - E)
        pm = ((dv.q >> (dv.v + (Rb - g.P - 1))) + 1) >> 1  # shift_round(2**E * r, z+Rb-P)
        dv.pmax = Signal(a.prob.width, name="dv_pmax")
        m.d.comb += dv.pmax.eq(Mux(pm > g.PMAX, g.PMAX, pm))
        dv.meta = Signal(g.meta, name="dv_meta")
        m.d.comb += dv.meta.eq(_sel(st.d_meta, dv.buf))
        dv.refetch = Signal(name="dv_refetch")
        m.d.comb += dv.refetch.eq(~dv.empty & dv.meta.msb_only
                                  & (dv.pmax < dv.meta.threshold))
        dv.rel_div = Signal(name="rel_div")

        dec = self.dec
        dv.dec_free = Signal(name="dec_free")
        m.d.comb += dv.dec_free.eq(~dec.valid | dec.ready)
        dv.load_dec = Signal(name="load_dec")
        dv.handoff = Signal(name="b_handoff")
        pb.b_free = Signal(name="b_free")  # pass B can take a row this cycle
        with m.If(dec.ready):
            m.d.sync += dec.valid.eq(0)
        with m.If(dv.load_dec):
            m.d.sync += [dec.valid.eq(1), dec.payload.refetch.eq(dv.refetch),
                         dec.payload.pmax.eq(dv.pmax),
                         dec.payload.truncated.eq(_sel(st.d_trunc, dv.buf))]
        self._divider_fsm(m, g, pa, pb, dv)
        return dv

    @staticmethod
    def _divider_fsm(m, g, pa, pb, dv):
        """IDLE (take and normalise ``S``) → ITER (``DIV_BITS`` quotient bits a cycle) →
        DONE (decision and hand-off)."""
        WS, E, Rb = g.WS, g.E, g.Rb
        with m.FSM(name="div_fsm"):
            with m.State("IDLE"):
                # Take S and normalise it in one step: Sn = S << (WS - 1 - z).
                m.d.comb += pa.div_take.eq(pa.slot_full)
                with m.If(pa.slot_full):
                    m.d.sync += [
                        dv.buf.eq(pa.slot_buf), dv.empty.eq(pa.slot_s == 0), dv.v.eq(dv.lead),
                        dv.sn.eq(((pa.slot_s << (WS - 1 - E)) >> dv.lead)[:WS]),
                        dv.rem.eq(1 << (WS - 2 - g.DPAD)), dv.q.eq(0), dv.cnt.eq(0),
                        dv.dec_pend.eq(1), dv.b_pend.eq(1),
                    ]
                    with m.If(pa.slot_s == 0):  # empty row: r = 0, so pmax = 0
                        m.next = "DONE"
                    with m.Else():
                        m.next = "ITER"
            with m.State("ITER"):
                rem, q = dv.rem, dv.q
                for _ in range(DIV_BITS):
                    t = Cat(Const(0, 1), rem)  # rem << 1, WS + 1 bits
                    ge = t >= dv.sn
                    rem = Mux(ge, t - dv.sn, t)[:WS]
                    q = Cat(ge, q)[:Rb + 1]
                m.d.sync += [dv.rem.eq(rem), dv.q.eq(q), dv.cnt.eq(dv.cnt + 1)]
                with m.If(dv.cnt == g.DC - 1):
                    m.next = "DONE"
            with m.State("DONE"):
                # pmax and refetch are combinational here. The decision is loaded no later
                # than the row's pass B starts; a refetched row skips pass B and releases its
                # buffer (and descriptor) as its decision is loaded.
                need_b = Signal(name="dv_need_b")
                m.d.comb += [
                    need_b.eq(dv.b_pend & ~dv.refetch),
                    dv.load_dec.eq(dv.dec_pend & dv.dec_free),
                    dv.handoff.eq(need_b & pb.b_free & (~dv.dec_pend | dv.dec_free)),
                    dv.rel_div.eq(dv.load_dec & dv.refetch),
                ]
                with m.If(dv.load_dec):
                    m.d.sync += dv.dec_pend.eq(0)
                with m.If(dv.handoff):
                    m.d.sync += dv.b_pend.eq(0)
                with m.If((~dv.dec_pend | dv.load_dec) & (~need_b | dv.handoff)):
                    m.next = "IDLE"

    # ---- Pass B ---------------------------------------------------------------------------------
    def _pass_b(self, m, g, st, mem, dv, pb):
        """Pass B: ``p = fit(shift_round(e * r, z + Rb - P, HALF_UP))`` into the ``o``
        register; advances (``ce_b``) only when ``~o.valid | o.ready``."""
        L, SW, Rb, VB = g.L, g.SW, g.Rb, g.VB
        btag = data.StructLayout({"valid": 1, "last": 1, "cnt": g.CNTB, "max": signed(SW),
                                  "buf": g.BB, "r": Rb + 1, "v": VB, "meta": g.meta})
        o = self.o
        rb, brow, b_active = pb.rb, pb.brow, pb.b_active
        ce_b = Signal(name="ce_b")
        m.d.comb += ce_b.eq(~o.valid | o.ready)
        b_n = Signal(g.CB, name="b_n")
        b_max = Signal(signed(SW), name="b_max")
        b_r = Signal(Rb + 1, name="b_r")
        b_v = Signal(VB, name="b_v")
        b_meta = Signal(g.meta, name="b_meta")
        b_last, b_cnt = self._row_facts(g, brow, b_n)
        m.d.comb += pb.b_free.eq(~b_active | (ce_b & b_last))
        b1, b2, b3, b4, b5 = (Signal(btag, name=f"b{x}") for x in range(1, 6))
        b2_s = Signal(g.score_row, name="b2_s")
        b3_k = [Signal(range(g.KMAX + 1), name=f"b3_k{j}") for j in range(L)]
        b4_e = [Signal(g.EW, name=f"b4_e{j}") for j in range(L)]
        b5_x = [Signal(g.EW + Rb + 1, name=f"b5_x{j}") for j in range(L)]
        rel_b = Signal(name="rel_b")
        m.d.comb += rel_b.eq(ce_b & b1.valid & b1.last)
        with m.If(ce_b):
            m.d.sync += [
                b1.valid.eq(b_active), b1.last.eq(b_last), b1.cnt.eq(b_cnt), b1.max.eq(b_max),
                b1.buf.eq(rb), b1.r.eq(b_r), b1.v.eq(b_v), b1.meta.eq(b_meta),
                b2.eq(b1), b2_s.eq(_sel([rp.data for rp in mem.rps], b1.buf)),
                b3.eq(b2), b4.eq(b3), b5.eq(b4),
            ]
            with m.If(b_active):
                m.d.sync += brow.eq(brow + 1)
                with m.If(b_last):
                    m.d.sync += b_active.eq(0)
            for j in range(L):
                m.d.sync += b5_x[j].eq(b4_e[j] * b4.r)
        with m.If(dv.handoff):  # after the issue logic: a row may start as the last one ends
            m.d.sync += [
                b_active.eq(1), rb.eq(dv.buf), brow.eq(0), b_n.eq(_sel(st.d_n, dv.buf)),
                b_max.eq(_sel(st.d_max, dv.buf)), b_r.eq(dv.q), b_v.eq(dv.v),
                b_meta.eq(dv.meta),
            ]
        c0 = g.E + Rb - g.P - 1

        def prob(j):  # round and saturate e * r into the output register
            p = (((b5_x[j] >> c0) >> b5.v) + 1) >> 1
            return o.payload.data[j].eq(Mux(p > g.PMAX, g.PMAX, p))

        self._exp_lanes(m, g, ce_b, mem.rom_b, b3.cnt, b2.max, b2_s, b3_k, b4_e, "b",
                        also=prob)
        with m.If(ce_b):
            m.d.sync += [o.valid.eq(b5.valid), o.payload.count.eq(b5.cnt),
                         o.payload.last.eq(b5.last), o.payload.meta.eq(b5.meta)]
        pb.ce_b, pb.b_last, pb.rel_b, pb.b1 = ce_b, b_last, rel_b, b1

    # ---- Buffer read ports and release ----------------------------------------------------------
    def _read_ports(self, m, g, st, mem, fill, pa, dv, pb):
        """Each buffer's read port serves pass A or pass B (never both on one buffer); a
        buffer is released by pass B's last word or by a refetch, and marked busy (or
        ``queued`` behind pass B) when a row's last beat is written into it."""
        for b in range(g.NB):
            b_here = pb.b_active & (pb.rb == b)
            m.d.comb += [
                mem.rps[b].addr.eq(Mux(b_here, pb.brow, pa.arow)),
                mem.rps[b].en.eq((pa.ce_a & pa.a_issue & (pa.ra == b)) | (pb.ce_b & b_here)),
            ]
            rel = (pb.rel_b & (pb.b1.buf == b)) | (dv.rel_div & (dv.buf == b))
            fin = fill.take & self.i.payload.last & (fill.wb == b)
            with m.If(pb.ce_b & b_here & pb.b_last):
                m.d.sync += st.drained[b].eq(1)
            with m.If(rel):
                m.d.sync += [st.busy[b].eq(st.queued[b]), st.queued[b].eq(0),
                             st.drained[b].eq(0)]
            with m.If(fin):
                with m.If(st.busy[b] & ~rel):
                    m.d.sync += st.queued[b].eq(1)
                with m.Else():
                    m.d.sync += st.busy[b].eq(1)
