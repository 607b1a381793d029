"""Parallel, order-preserving top-k engine: a streaming radix select.

Ref: SpAtten (HPCA 2021), Section III-C (the top-k engine's job: the k largest scores of a
packet, kept in original order, with zero eliminators compacting the survivors). SpAtten's
engine is a quick-select whose passes each stream the candidates through comparator arrays;
this one replaces the data-dependent passes with a radix select whose passes do not depend
on the data.

Algorithm. Scores become unsigned keys (sign bit flipped, order kept) padded below to
``levels * radix_bits`` bits and split into ``levels`` digits of ``radix_bits`` bits, most
significant first. A *suffix histogram* keeps, for every digit value ``j >= 1``, the number
``S[j]`` of candidates whose digit is ``>= j``; for ``need = min(k, n)`` the k-th largest
key's digit is ``t = #{j >= 1 : S[j] >= need}`` and ``need - S[t+1]`` elements are still
needed among the candidates with that digit. The histogram is held in two levels (the
digit's high and low halves, :meth:`TopK._histogram`): the same ``2**radix_bits - 1``
counters, fed by registered per-lane decodes instead of a comparison per lane and counter,
and searched in two registered stages over ``2 * (2**ceil(radix_bits / 2) - 1)`` comparators
instead of one over ``2**radix_bits - 1``. The first digit's histogram is built while the
packet arrives, so it costs nothing after the last beat; each further digit takes one pass
over the buffered packet (``ceil(n / lanes)`` cycles) restricted to the candidates that
match the digits found so far. After the last digit the exact k-th key and the number ``r``
of its ties to keep are known, and a final filter pass streams the buffer once more, keeps
``key > kth`` plus the first ``r`` elements equal to ``kth``, and compacts the survivors in
arrival order (a logarithmic zero eliminator, then a merge into the output beat).

Timing. From the cycle the last input beat is taken to the cycle the last output beat is
taken, with ``R = ceil(n / lanes)`` and a consumer that never stalls:
``latency(n) <= (levels - 1) * (R + 6) + R + 12`` cycles, whatever the data and ``k``
(``paper``: 146 cycles for n = 1024); the last cycle is needed only when the last row's kept
elements and those held back from earlier rows fill more than one output beat (never for
``n <= lanes`` or a single element in the last row; :func:`latency_bound` is exact). The
filter pass ends as soon as the last kept element is out, so it is shorter when the kept
elements end early. Input: ``lanes`` elements per cycle while a packet buffer is free; with
``buffers = 2`` the next packet streams in while the previous one is selected, and
back-to-back packets never wait for the first-level search.

Pipeline. Input side: buffer write and per-lane digit decodes (registered), histogram
update, then a four-stage finalise (facts, two first-digit search stages, descriptor).
Processing side: row address → RAM → row register → key compares (refine: digit decodes into
the second histogram; filter: greater/equal flags, registered) → tie ranking and keep mask
(registered) → zero eliminator (registered) → merge → output register. The processing
pipeline advances only when ``~o.valid | o.ready``, so output back-pressure stalls it in
place (the RAM read port is enabled by the same signal).

Bit-exact with :func:`sim.golden.topk.topk_engine`.

Raises
------
TypeError
    if ``cfg`` is not a :class:`~generators.config.TopKConfig` (whose constructor validates
    every field).

Members
-------
i : ``In(stream.Signature(in_layout(cfg)))``
o : ``Out(stream.Signature(out_layout(cfg)))``
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from generators.config import TopKConfig
from generators.numerics import bits_for

from ..common.arith import popcount, prefix_sums, tree_or
from .layouts import in_layout, out_layout

__all__ = ["TopK", "latency_bound"]


def latency_bound(cfg: TopKConfig, n: int) -> int:
    """Worst-case cycles from taking the last input beat of an ``n``-element packet to taking
    its last output beat, over all scores and all ``k``, when the engine is idle and the
    consumer never stalls.

    With ``n' = min(n, capacity)``, ``R = ceil(n' / lanes)`` rows and ``t = n' - (R - 1) *
    lanes`` elements in the last row: ``(levels - 1) * (R + 6) + R + 11 + s`` cycles, where
    ``s = 1`` if ``R >= 2`` and ``t >= 2``, else 0; ``n = 0``: 7 (the empty result's beat).

    ``R + 6`` is one refine pass and its search, ``R + 11`` the filter pass through the
    output register, and ``s`` the cycle the merge needs when the last row's kept elements,
    plus those held back from earlier rows (at most ``lanes - 1``), fill more than one
    output beat: only one beat leaves per cycle. That needs at least two rows and two
    elements in the last one.

    The bound is exact: for every ``n`` some scores and ``k`` take exactly this long (for
    ``s = 1``, e.g. ascending scores with ``k = t + lanes - 1``: the last row all kept and
    ``lanes - 1`` kept elements held back). Packets are shorter by the rows after the last
    one that holds a kept element, and by ``s`` when the final beat does not spill; ``k =
    0`` takes 7 cycles.
    """
    n = min(int(n), cfg.capacity)
    if n <= 0:
        return 7
    rows = -(-n // cfg.lanes)
    tail = n - (rows - 1) * cfg.lanes
    spill = int(rows >= 2 and tail >= 2)
    return (cfg.levels - 1) * (rows + 6) + rows + 11 + spill


def _sel(sigs, idx):
    """``sigs[idx]`` as a Mux chain (one entry per packet buffer)."""
    out = sigs[0]
    for b in range(1, len(sigs)):
        out = Mux(idx == b, sigs[b], out)
    return out


class TopK(wiring.Component):
    """Order-preserving top-k of packets of signed scores (see the module docstring)."""

    def __init__(self, cfg: TopKConfig):
        if not isinstance(cfg, TopKConfig):
            raise TypeError(f"cfg must be a TopKConfig, not {cfg!r}")
        self._cfg = cfg
        super().__init__({
            "i": In(stream.Signature(in_layout(cfg))),
            "o": Out(stream.Signature(out_layout(cfg))),
        })

    @property
    def cfg(self) -> TopKConfig:
        return self._cfg

    def latency(self, n: int) -> int:
        """Cycles from the last input beat to the last output beat, worst case over all data
        and ``k``, no stalls (exact: :func:`latency_bound`)."""
        return latency_bound(self._cfg, n)

    # ------------------------------------------------------------------------------------
    # Elaboration. ``elaborate`` wires the stages together; each stage is built by one of
    # the private methods below, in pipeline order, and hands the signals the later stages
    # need on in a namespace (generation-time structure only: every signal keeps the name it
    # has in the Verilog and the VCDs).
    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        m.submodules.mem = mem = Memory(shape=data.ArrayLayout(signed(cfg.score.width),
                                                               cfg.lanes),
                                        depth=cfg.buffers * cfg.rows, init=[])
        wp = mem.write_port()
        rp = mem.read_port(domain="sync")

        # Input side: buffers fill and the first digit is resolved while packets arrive;
        # a finished packet leaves a descriptor for the processing side.
        bk = self._bookkeeping()
        self._input_side(m, wp, bk)

        # Processing side: the pipeline (row read, key compares, tie ranking, zero
        # eliminator, merge, output register) advances only when the output register is
        # free or being emptied, so back-pressure stalls it in place.
        o = self.o
        ce = Signal()  # the processing pipeline advances
        m.d.comb += ce.eq(~o.valid | o.ready)
        p = self._processing_state(m)
        rd = self._row_read(m, rp, bk, p, ce)
        ref = self._refine(m, p, rd, ce)
        flt = self._filter_compare(m, p, rd, ce)
        e3, c3 = self._zero_eliminator(m, flt.e2b, flt.k2b, ce)
        mg = self._merge(m, p, e3, c3, ce)
        empty_beat = self._output_register(m, p, flt.kth_key, mg, ce)
        self._control(m, bk, p, rd, ref, flt, mg, empty_beat, ce)
        return m

    # ---- Shared generation-time helpers -------------------------------------------------
    def _key_of(self, value):
        """The order-preserving unsigned key of a score: the sign bit flipped, then padded
        below to whole digits."""
        cfg = self._cfg
        W, pad = cfg.score.width, cfg.key_pad
        k = (value.as_unsigned() ^ (1 << (W - 1)))[:W]
        return Cat(Const(0, pad), k) if pad else k

    def _elem_layout(self):
        """One kept element in the filter pipeline: its value and packet index."""
        cfg = self._cfg
        return data.StructLayout({"value": signed(cfg.score.width),
                                  "index": unsigned(cfg.index_bits)})

    def _buf_addr(self, buf, row):
        """Memory address of ``row`` of packet buffer ``buf``."""
        R = self._cfg.rows
        row_bits = max(1, (R - 1).bit_length())
        return buf * R + row[:row_bits] if self._cfg.buffers > 1 else row[:row_bits]

    # ---- Input side -----------------------------------------------------------------------
    def _bookkeeping(self):
        """Per-buffer state shared by the two sides.

        ``busy[b]``: buffer ``b`` holds a packet (input may not write it); ``ready[b]``: its
        descriptor (``desc{b}_*``) is final (processing may start). Packets are processed in
        order: ``wbuf`` is written, ``rbuf`` processed; ``release`` (driven by the control)
        hands buffer ``rbuf`` back. Buffer numbers are one bit even with one buffer: a
        zero-width signal is a [-1:0] vector in the Verilog, which lint rejects."""
        cfg = self._cfg
        B, CB, KW = cfg.buffers, cfg.count_bits, cfg.radix_bits * cfg.levels
        return SimpleNamespace(
            busy=[Signal(name=f"busy{b}") for b in range(B)],
            ready=[Signal(name=f"ready{b}") for b in range(B)],
            d_n=[Signal(CB, name=f"desc{b}_n") for b in range(B)],
            d_need=[Signal(CB, name=f"desc{b}_need") for b in range(B)],
            d_kpre=[Signal(KW, name=f"desc{b}_kpre") for b in range(B)],
            d_r=[Signal(CB, name=f"desc{b}_r") for b in range(B)],
            d_trunc=[Signal(name=f"desc{b}_trunc") for b in range(B)],
            wb=Signal(range(max(2, B)), name="wbuf"),
            rb=Signal(range(max(2, B)), name="rbuf"),
            release=Signal(name="release"),
        )

    def _input_side(self, m, wp, bk):
        """Buffer write and first-digit histogram while a packet arrives; on its last beat,
        the packet's facts enter the finalise pipeline (:meth:`_finalise`)."""
        cfg = self._cfg
        P, R, B, CB = cfg.lanes, cfg.rows, cfg.buffers, cfg.count_bits
        RB, KW = cfg.radix_bits, cfg.radix_bits * cfg.levels
        i = self.i
        wrow = Signal(range(R + 1), name="wrow")  # rows written of this packet
        trunc = Signal(name="in_trunc")
        first = Signal(init=1, name="in_first")  # next beat starts a packet
        m.d.comb += i.ready.eq(~_sel(bk.busy, bk.wb))
        take = Signal()
        m.d.comb += take.eq(i.valid & i.ready)

        room = Signal()
        m.d.comb += room.eq(wrow < R)
        lane_en = [Signal(name=f"in_en{j}") for j in range(P)]
        for j in range(P):
            m.d.comb += lane_en[j].eq(take & room & (~i.payload.last | (i.payload.count > j)))
        m.d.comb += [
            wp.addr.eq(self._buf_addr(bk.wb, wrow)),
            wp.data.eq(i.payload.data),
            wp.en.eq(take & room),
        ]
        in_digits = [self._key_of(i.payload.data[j])[KW - RB:] for j in range(P)]
        s1 = self._histogram(m, "s1", in_digits, lane_en, start=first, update=take)

        # Finalise the packet in a four-stage pipeline after its last beat (the histogram
        # holds the last beat's counts two cycles later): fin0 carries the packet's facts,
        # fin1 and fin2 search the first digit (two stages), fin3 writes the descriptor. A
        # following packet may end one cycle later and ride the same pipeline right behind
        # it.
        fin_layout = data.StructLayout({"buf": unsigned(max(1, (B - 1).bit_length())),
                                        "n": unsigned(CB), "need": unsigned(CB),
                                        "trunc": unsigned(1)})
        fin0, fin1, fin2, fin3 = (Signal(name=f"fin{x}") for x in range(4))
        f0, f1, f2, f3 = (Signal(fin_layout, name=f"fin{x}_desc") for x in range(4))
        n_last = Signal(CB)
        m.d.comb += n_last.eq(Mux(room, wrow * P + i.payload.count, cfg.capacity))
        trunc_now = Signal()
        m.d.comb += trunc_now.eq(trunc | (~room & (~i.payload.last | (i.payload.count != 0))))
        m.d.sync += [fin0.eq(0), fin1.eq(fin0), fin2.eq(fin1), fin3.eq(fin2),
                     f1.eq(f0), f2.eq(f1), f3.eq(f2)]
        with m.If(take):
            m.d.sync += first.eq(i.payload.last)
            with m.If(i.payload.last):
                m.d.sync += [
                    wrow.eq(0), trunc.eq(0), fin0.eq(1), f0.buf.eq(bk.wb), f0.n.eq(n_last),
                    f0.need.eq(Mux(i.payload.k < n_last, i.payload.k, n_last)),
                    f0.trunc.eq(trunc_now),
                ]
                for b in range(B):
                    with m.If(bk.wb == b):
                        m.d.sync += bk.busy[b].eq(1)
                if B > 1:
                    m.d.sync += bk.wb.eq(bk.wb + 1)
            with m.Else():
                m.d.sync += [wrow.eq(Mux(room, wrow + 1, wrow)), trunc.eq(trunc_now)]
        self._finalise(m, bk, s1, f1, fin3, f3)

    def _finalise(self, m, bk, s1, f1, fin3, f3):
        """Search the first digit (valid at ``fin3``), write the buffer's descriptor, and
        free the buffer on ``release``."""
        cfg = self._cfg
        B, RB, KW = cfg.buffers, cfg.radix_bits, cfg.radix_bits * cfg.levels
        t1, rest1 = self._search(m, "s1", s1, f1.need)  # registered: valid at fin3
        with m.If(fin3):
            for b in range(B):
                with m.If(f3.buf == b):
                    m.d.sync += [
                        bk.ready[b].eq(1), bk.d_n[b].eq(f3.n), bk.d_need[b].eq(f3.need),
                        bk.d_kpre[b].eq(t1 << (KW - RB)), bk.d_r[b].eq(rest1),
                        bk.d_trunc[b].eq(f3.trunc),
                    ]
        with m.If(bk.release):
            for b in range(B):
                with m.If(bk.rb == b):
                    m.d.sync += [bk.busy[b].eq(0), bk.ready[b].eq(0)]
            if B > 1:
                m.d.sync += bk.rb.eq(bk.rb + 1)

    # ---- Processing side ------------------------------------------------------------------
    def _processing_state(self, m):
        """The packet being processed: its size, the digits found so far and the ties still
        needed (loaded from the descriptor, updated after each refine pass)."""
        cfg = self._cfg
        CB, L, R = cfg.count_bits, cfg.levels, cfg.rows
        lane_bits = max(0, (cfg.lanes - 1).bit_length())
        p = SimpleNamespace(
            n=Signal(CB, name="p_n"),
            kpre=Signal(cfg.radix_bits * L, name="p_kpre"),  # digits found, aligned at the top
            level=Signal(range(L + 1), name="p_level"),  # digits found so far
            r=Signal(CB, name="p_r"),  # elements still needed among the kpre matches
            ptrunc=Signal(name="p_trunc"),
            rows=Signal(range(R + 1), name="p_rows"),
            row=Signal(range(R + 1), name="p_row"),
            filtering=Signal(name="p_filtering"),
        )
        m.d.comb += p.rows.eq((p.n + (cfg.lanes - 1)) >> lane_bits)
        return p

    def _row_read(self, m, rp, bk, p, ce):
        """Stage 0 issues row reads; the read port (enabled by ``ce``) holds the row in stage
        a; stage 1 registers it (a RAM's clock-to-output is slow on FPGAs). Returns stage 1:
        the row, its keys and which lanes hold packet elements, and the read control."""
        cfg = self._cfg
        P, W, R = cfg.lanes, cfg.score.width, cfg.rows
        issue = Signal()
        va, v1 = Signal(name="va"), Signal(name="v1")
        rowa, row1 = Signal(range(R + 1), name="rowa"), Signal(range(R + 1), name="row1")
        lasta, last1 = Signal(name="lasta"), Signal(name="last1")
        firsta, first1 = Signal(name="firsta"), Signal(name="first1")
        d1 = Signal(data.ArrayLayout(signed(W), P), name="d1")
        m.d.comb += [
            rp.en.eq(ce),
            rp.addr.eq(self._buf_addr(bk.rb, p.row)),
        ]
        with m.If(ce):
            m.d.sync += [va.eq(issue), rowa.eq(p.row), lasta.eq(p.row == p.rows - 1),
                         firsta.eq(p.row == 0), v1.eq(va), row1.eq(rowa), last1.eq(lasta),
                         first1.eq(firsta), d1.eq(rp.data)]
            with m.If(issue):
                m.d.sync += p.row.eq(p.row + 1)

        keys1 = [self._key_of(d1[j]) for j in range(P)]
        inrange1 = [Signal(name=f"inr1_{j}") for j in range(P)]
        for j in range(P):
            m.d.comb += inrange1[j].eq(v1 & ((row1 * P + j) < p.n))
        return SimpleNamespace(issue=issue, va=va, v1=v1, row1=row1, last1=last1,
                               first1=first1, d1=d1, keys1=keys1, inrange1=inrange1)

    def _refine(self, m, p, rd, ce):
        """Refine: the histogram of the next digit over the candidates matching ``kpre``,
        and its search (``t2r``, ``rest2``: registered, valid in APPLY)."""
        cfg = self._cfg
        P, L, RB = cfg.lanes, cfg.levels, cfg.radix_bits
        KW = RB * L
        kmask = Signal(KW, name="p_kmask")
        with m.Switch(p.level):
            for lv in range(1, L + 1):
                with m.Case(lv):
                    m.d.comb += kmask.eq(((1 << (RB * lv)) - 1) << (KW - RB * lv))
            with m.Default():  # level 0 never occurs on the processing side
                m.d.comb += kmask.eq(0)
        ref_en = [Signal(name=f"ref_en{j}") for j in range(P)]
        ref_digit = [Signal(RB, name=f"ref_digit{j}") for j in range(P)]
        for j in range(P):
            m.d.comb += ref_en[j].eq(rd.inrange1[j] & ~p.filtering
                                     & (((rd.keys1[j] ^ p.kpre) & kmask) == 0))
            with m.Switch(p.level):
                for lv in range(1, L):
                    with m.Case(lv):
                        lo = KW - RB * (lv + 1)
                        m.d.comb += ref_digit[j].eq(rd.keys1[j][lo:lo + RB])
                with m.Default():  # no digit left to refine: histogram input unused
                    m.d.comb += ref_digit[j].eq(0)
        s2 = self._histogram(m, "s2", ref_digit, ref_en, start=rd.first1,
                             update=ce & rd.v1 & ~p.filtering)
        t2r, rest2 = self._search(m, "s2", s2, p.r)  # registered: valid in APPLY
        return SimpleNamespace(t2r=t2r, rest2=rest2)

    def _filter_compare(self, m, p, rd, ce):
        """Filter stage 2: compare each key with the k-th key and rank the ties (registered
        from stage 1), then the keep mask: greater, or a tie while the quota lasts. The keep
        mask is registered (stage 2b): a tie rank, then a drop count, in one cycle would be
        the longest path on FPGAs."""
        cfg = self._cfg
        P, W, CB, pad = cfg.lanes, cfg.score.width, cfg.count_bits, cfg.key_pad
        kth_key = Signal(W, name="p_kth_key")
        m.d.comb += kth_key.eq(p.kpre[pad:])
        elem = self._elem_layout()
        v2 = Signal(name="v2")
        e2 = Signal(data.ArrayLayout(elem, P), name="e2")
        gt2 = Signal(P, name="gt2")
        eq2 = Signal(P, name="eq2")
        with m.If(ce):
            m.d.sync += v2.eq(rd.v1 & p.filtering)
            for j in range(P):
                m.d.sync += [
                    e2[j].value.eq(rd.d1[j]),
                    e2[j].index.eq(rd.row1 * P + j if P > 1 else rd.row1),
                    gt2[j].eq(rd.inrange1[j] & (rd.keys1[j][pad:] > kth_key)),
                    eq2[j].eq(rd.inrange1[j] & (rd.keys1[j][pad:] == kth_key)),
                ]
        quota = Signal(CB, name="p_quota")  # ties still to keep
        tie_rank = prefix_sums([eq2[j] for j in range(P)])
        n_eq = popcount([eq2[j] for j in range(P)])
        keep2 = Signal(P, name="keep2")
        for j in range(P):
            m.d.comb += keep2[j].eq(gt2[j] | (eq2[j] & (tie_rank[j] < quota)))
        with m.If(ce & v2):
            m.d.sync += quota.eq(Mux(n_eq < quota, quota - n_eq, 0))

        v2b = Signal(name="v2b")
        e2b = Signal(data.ArrayLayout(elem, P), name="e2b")
        k2b = Signal(P, name="k2b")
        with m.If(ce):
            m.d.sync += [v2b.eq(v2), e2b.eq(e2), k2b.eq(Mux(v2, keep2, 0))]
        return SimpleNamespace(kth_key=kth_key, v2=v2, quota=quota, v2b=v2b, e2b=e2b,
                               k2b=k2b)

    def _zero_eliminator(self, m, e2b, k2b, ce):
        """Stage 3: compact the kept elements of a row to the low lanes (a logarithmic
        shifter: element ``j`` moves down by the number of dropped lanes before it; shifts
        by increasing powers of two never collide). Returns the compacted row ``e3`` and its
        count ``c3`` (registered)."""
        P = self._cfg.lanes
        lane_bits = max(0, (P - 1).bit_length())
        e3 = Signal(data.ArrayLayout(self._elem_layout(), P), name="e3")
        c3 = Signal(bits_for(P), name="c3")
        drops = [Signal(bits_for(P), name=f"drops{j}") for j in range(P)]
        for j, d in enumerate(prefix_sums([~k2b[j] for j in range(P)])):
            m.d.comb += drops[j].eq(d)
        lanes = [(e2b[j], k2b[j], drops[j]) for j in range(P)]
        for b in range(lane_bits):
            step = 1 << b
            nxt = []
            for j in range(P):
                src_e, src_k, src_d = lanes[j + step] if j + step < P else (None, 0, 0)
                own_e, own_k, own_d = lanes[j]
                take_up = (src_k & src_d[b]) if src_e is not None else Const(0)
                stay = own_k & ~own_d[b]
                nxt.append((
                    Mux(take_up, src_e, own_e) if src_e is not None else own_e,
                    take_up | stay,
                    Mux(take_up, src_d, own_d) if src_e is not None else own_d,
                ))
            lanes = nxt
        with m.If(ce):
            m.d.sync += [c3.eq(popcount(list(k2b)))]
            for j in range(P):
                m.d.sync += e3[j].eq(lanes[j][0])
        return e3, c3

    def _merge(self, m, p, e3, c3, ce):
        """Stage 4: merge the compacted row behind the ``pend`` elements held back; emit a
        full beat, or the final partial beat once every kept element has been seen.

        At most one beat leaves per cycle, so when the last row's kept elements and those
        held back fill more than one beat, the final beat leaves one cycle after the last
        row (the extra cycle in :func:`latency_bound`)."""
        cfg = self._cfg
        P, CB = cfg.lanes, cfg.count_bits
        lane_bits = max(0, (P - 1).bit_length())
        elem = self._elem_layout()
        pend = Signal(data.ArrayLayout(elem, P), name="pend")
        pend_n = Signal(range(P), name="pend_n")
        remaining = Signal(CB, name="remaining")  # kept elements not yet in an output beat
        window = [Signal(elem, name=f"win{j}") for j in range(2 * P)]
        # Shift the compacted row up by pend_n lanes (a logarithmic shifter, None = empty).
        shifted = [e3[j] for j in range(P)] + [None] * P
        for b in range(lane_bits):
            step = 1 << b
            shifted = [self._mux_opt(pend_n[b], shifted[j - step] if j >= step else None,
                                     shifted[j]) for j in range(2 * P)]
        for j in range(2 * P):
            src = shifted[j] if shifted[j] is not None else 0
            # pend_n <= P - 1, so the top lane of the window's lower half is never pending.
            m.d.comb += window[j].eq(Mux(pend_n > j, pend[j], src) if j < P - 1 else src)
        total = Signal(range(2 * P), name="merge_total")
        m.d.comb += total.eq(pend_n + c3)
        done_beat = Signal()  # the output register takes the packet's final beat
        o_next_count = Signal(bits_for(P))
        o_next_last = Signal()
        emit = Signal()
        with m.If(p.filtering):
            with m.If(total >= P):
                m.d.comb += [emit.eq(1), o_next_count.eq(P),
                             o_next_last.eq(remaining == P)]
            with m.Elif((total != 0) & (total == remaining)):
                m.d.comb += [emit.eq(1), o_next_count.eq(total), o_next_last.eq(1)]
        m.d.comb += done_beat.eq(ce & emit & o_next_last)
        with m.If(ce & p.filtering):
            with m.If(emit):
                m.d.sync += remaining.eq(remaining - o_next_count)
                with m.If(total >= P):
                    m.d.sync += pend_n.eq(total - P)
                    for j in range(P):
                        m.d.sync += pend[j].eq(window[P + j])
                with m.Else():
                    m.d.sync += pend_n.eq(0)
            with m.Else():
                m.d.sync += pend_n.eq(total)
                for j in range(P):
                    m.d.sync += pend[j].eq(window[j])
        return SimpleNamespace(pend_n=pend_n, remaining=remaining, window=window,
                               emit=emit, count=o_next_count, last=o_next_last,
                               done_beat=done_beat)

    def _output_register(self, m, p, kth_key, mg, ce):
        """The output register: the merge's beat, or the empty packet's single beat
        (``empty_beat``, returned, driven by the control)."""
        cfg = self._cfg
        P, W = cfg.lanes, cfg.score.width
        o = self.o
        kth_out = Signal(signed(W), name="p_kth")
        m.d.comb += kth_out.eq((kth_key ^ (1 << (W - 1))).as_signed())
        empty_beat = Signal()
        emit = mg.emit
        with m.If(ce):
            m.d.sync += o.valid.eq(emit | empty_beat)
            m.d.sync += [
                o.payload.count.eq(Mux(emit, mg.count, 0)),
                o.payload.last.eq(Mux(emit, mg.last, 1)),
                o.payload.kth.eq(Mux(emit, kth_out, cfg.score.max_raw)),
                o.payload.truncated.eq(p.ptrunc),
            ]
            for j in range(P):
                live = emit & (j < mg.count)
                m.d.sync += [
                    o.payload.data[j].eq(Mux(live, mg.window[j].value, 0)),
                    o.payload.index[j].eq(Mux(live, mg.window[j].index, 0)),
                ]
        return empty_beat

    # ---- Control --------------------------------------------------------------------------
    def _control(self, m, bk, p, rd, ref, flt, mg, empty_beat, ce):
        """The processing FSM: load a descriptor, run the refine passes (each followed by
        its search), the filter pass, and release the buffer with the final beat."""
        o = self.o
        m.d.comb += bk.release.eq(o.valid & o.ready & o.payload.last)
        with m.FSM(name="topk_fsm"):
            with m.State("IDLE"):
                with m.If(_sel(bk.ready, bk.rb)):
                    m.d.sync += [
                        p.n.eq(_sel(bk.d_n, bk.rb)),
                        p.kpre.eq(_sel(bk.d_kpre, bk.rb)), p.r.eq(_sel(bk.d_r, bk.rb)),
                        p.ptrunc.eq(_sel(bk.d_trunc, bk.rb)), p.level.eq(1), p.row.eq(0),
                        mg.remaining.eq(_sel(bk.d_need, bk.rb)), mg.pend_n.eq(0),
                        flt.quota.eq(_sel(bk.d_r, bk.rb)),
                    ]
                    with m.If(_sel(bk.d_need, bk.rb) == 0):
                        m.next = "EMPTY"
                    with m.Else():
                        if self._cfg.levels == 1:  # the first digit is the whole key
                            m.d.sync += p.filtering.eq(1)
                            m.next = "FILTER"
                        else:
                            m.next = "REFINE"
            with m.State("EMPTY"):
                m.d.comb += empty_beat.eq(1)
                with m.If(ce):
                    m.next = "DONE"
            self._refine_states(m, p, rd, ref, flt, ce)
            with m.State("FILTER"):
                m.d.comb += rd.issue.eq(p.row < p.rows)
                with m.If(mg.done_beat):
                    m.next = "DONE"
            with m.State("DONE"):
                # The final beat sits in the output register; drop the rest of the pass.
                with m.If(bk.release):
                    m.d.sync += [p.filtering.eq(0), rd.va.eq(0), rd.v1.eq(0), flt.v2.eq(0),
                                 flt.v2b.eq(0)]
                    m.next = "IDLE"

    def _refine_states(self, m, p, rd, ref, flt, ce):
        """States REFINE → SETTLE → SEARCH → SEARCH2 → APPLY: one refine pass over the
        buffer and the search of its histogram, ``R + 6`` cycles per level."""
        L, RB = self._cfg.levels, self._cfg.radix_bits
        KW = RB * L
        with m.State("REFINE"):
            m.d.comb += rd.issue.eq(p.row < p.rows)
            with m.If(ce & rd.v1 & rd.last1):
                m.next = "SETTLE"
        with m.State("SETTLE"):
            # The last row's counts are being added to s2.
            m.next = "SEARCH"
        with m.State("SEARCH"):
            # s2 is final; the search's first stage.
            m.next = "SEARCH2"
        with m.State("SEARCH2"):
            # The search's second stage; its result (t2r, rest2) is registered for APPLY.
            m.next = "APPLY"
        with m.State("APPLY"):
            # Take the next digit and the ties still needed.
            with m.Switch(p.level):
                for lv in range(1, L):
                    with m.Case(lv):
                        m.d.sync += p.kpre.eq(p.kpre | (ref.t2r << (KW - RB * (lv + 1))))
                with m.Default():  # APPLY follows a REFINE, so level is 1..L-1
                    pass
            m.d.sync += [p.r.eq(ref.rest2), flt.quota.eq(ref.rest2), p.level.eq(p.level + 1),
                         p.row.eq(0)]
            with m.If(p.level + 1 == L):
                m.d.sync += p.filtering.eq(1)
                m.next = "FILTER"
            with m.Else():
                m.next = "REFINE"

    # ------------------------------------------------------------------------------------
    @staticmethod
    def _mux_opt(sel, a, b):
        """``Mux(sel, a, b)`` where ``None`` is an empty lane (its value never matters)."""
        if a is None:
            return b
        if b is None:
            return a
        return Mux(sel, a, b)

    def _histogram(self, m, name, digits, enables, *, start, update):
        """Two-level suffix counters of the enabled lanes' digits (``h``/``l``: the digit's
        high ``HB`` and low ``LB`` bits, ``HB = ceil(RB / 2)``):

        - ``H[a] = #{h >= a}`` for ``a = 1 .. 2**HB - 1``;
        - ``C[a][b] = #{h == a and l >= b}`` for every ``a`` and ``b = 1 .. 2**LB - 1``.

        Together they hold the suffix histogram ``S[j] = #{digit >= j}``:
        ``S[a * 2**LB] = H[a]`` and ``S[a * 2**LB + b] = H[a + 1] + C[a][b]``, with the same
        ``2**RB - 1`` counters but increments that are small functions of registered
        decodes (one-hot ``h``, thermometer ``h`` and ``l``) instead of ``2**RB - 1``
        comparisons per lane, and a search over ``2 * (2**HB - 1)`` comparators, not
        ``2**RB - 1``. A beat presented with ``update`` is decoded into registers first and
        added one cycle later, so the counters include it two cycles after it is presented.
        A beat with ``start`` also begins a new histogram (the counters restart from its
        counts). Returns ``(H, C)``: ``H`` indexed ``a - 1``, ``C[a]`` indexed ``b - 1``.
        """
        cfg = self._cfg
        HB, LB = self._split()
        CB, P = cfg.count_bits, len(digits)
        restart = Signal(name=f"{name}_restart")
        m.d.sync += restart.eq(update & start)
        geh, eqh, gel = [], [], []
        for lane, (d, en) in enumerate(zip(digits, enables)):
            hi, lo = d[LB:], d[:LB]
            e = Signal(name=f"{name}_e{lane}")
            m.d.comb += e.eq(update & en)
            g = Signal((1 << HB) - 1, name=f"{name}_geh{lane}")
            m.d.sync += [g[a - 1].eq(e & (hi >= a)) for a in range(1, 1 << HB)]
            geh.append(g)
            if LB:
                q = Signal(1 << HB, name=f"{name}_eqh{lane}")
                m.d.sync += [q[a].eq(e & (hi == a)) for a in range(1 << HB)]
                eqh.append(q)
                t = Signal((1 << LB) - 1, name=f"{name}_gel{lane}")
                m.d.sync += [t[b - 1].eq(lo >= b) for b in range(1, 1 << LB)]
                gel.append(t)

        def counter(label, bits):
            s = Signal(CB, name=f"{name}_{label}")
            m.d.sync += s.eq(Mux(restart, 0, s) + popcount(bits))
            return s

        H = [counter(f"H{a}", [geh[x][a - 1] for x in range(P)]) for a in range(1, 1 << HB)]
        C = [[counter(f"C{a}_{b}", [eqh[x][a] & gel[x][b - 1] for x in range(P)])
              for b in range(1, 1 << LB)] for a in range(1 << HB)]
        return H, C

    def _split(self):
        """High and low digit bits of the two-level histogram."""
        RB = self._cfg.radix_bits
        return (RB + 1) // 2, RB // 2

    @staticmethod
    def _pick(ge, values):
        """``values[t]`` for the thermometer code ``ge`` (``t = popcount(ge)``; ``values``
        has ``len(ge) + 1`` entries), as a one-hot AND-OR tree."""
        picks = []
        for j, v in enumerate(values):
            above = ge[j - 1] if j > 0 else Const(1)
            here = ~ge[j] if j < len(ge) else Const(1)
            picks.append(Mux(above & here, v, 0))
        return tree_or(picks)

    def _search(self, m, name, hist, need):
        """Digit ``t`` of the ``need``-th largest key and ``rest = need - S[t+1]``, the
        elements still needed among those with digit ``t``, registered two cycles after
        ``hist`` and ``need`` are presented.

        Stage A: ``th = #{a >= 1 : H[a] >= need}`` (the high bits), ``need' = need -
        H[th + 1]`` and the row ``C[th]`` (registered). Stage B: ``tl = #{b >= 1 :
        C[th][b] >= need'}`` and ``rest = need' - C[th][tl + 1]`` (registered). Both
        ``>=`` rows are thermometer codes (the counters are non-increasing in ``a`` and
        in ``b``)."""
        cfg = self._cfg
        HB, LB = self._split()
        CB = cfg.count_bits
        H, C = hist
        zero = Const(0, CB)
        # Stage A.
        ge_h = Signal(len(H), name=f"{name}_geh")
        m.d.comb += ge_h.eq(Cat(*[h >= need for h in H]))
        th = Signal(HB, name=f"{name}_th")
        need1 = Signal(CB, name=f"{name}_need1")
        m.d.sync += [th.eq(popcount(list(ge_h))),
                     need1.eq(need - self._pick(ge_h, H + [zero]))]
        t = Signal(cfg.radix_bits, name=f"{name}_t")
        rest = Signal(CB, name=f"{name}_rest")
        if not LB:
            m.d.sync += [t.eq(th), rest.eq(need1)]
            return t, rest
        row = [Signal(CB, name=f"{name}_row{b}") for b in range(1, 1 << LB)]
        for b, reg in enumerate(row):
            m.d.sync += reg.eq(self._pick(ge_h, [C[a][b] for a in range(1 << HB)]))
        # Stage B.
        ge_l = Signal(len(row), name=f"{name}_gel")
        m.d.comb += ge_l.eq(Cat(*[c >= need1 for c in row]))
        m.d.sync += [t.eq(Cat(popcount(list(ge_l))[:LB], th)),
                     rest.eq(need1 - self._pick(ge_l, row + [zero]))]
        return t, rest
