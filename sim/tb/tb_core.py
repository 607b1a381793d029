"""cocotb testbench of the generated ``core`` Verilog (``hdl.core.core.SpAttenCore``): a host
on cocotbext-axi's AXI4-Lite manager drives whole layers, DRAM is cocotbext-axi's AXI RAM with
random pauses on all five channels, and everything is checked against
:func:`sim.golden.core.layer_step`, bit for bit:

- every output row in DRAM (the OUT regions must equal the expected image byte for byte, so
  a missing, extra or misplaced row fails), every keep list (header and positions), the
  STATUS code, and the layer's RD and WR byte counters (the golden traffic plus the keep
  list);
- a multi-layer, multi-head summarization (cascade token and head pruning, local value
  pruning, MSB-only passes with refetches), then decode steps on the same state (sinks, a
  recent window, age normalisation), then bad descriptors (ALIGN at START, KEEP_RANGE from
  the selection), which must set their code without hanging or changing any state (the
  next good layers still match).

Environment: ``TB_CONFIG``, ``TB_PACKETS`` (tokens of the summarization), ``TB_STALLS``
(``in:out``; ``out`` is the AXI pause probability), ``TB_LAYERS`` and ``TB_HEADS`` (at most
the config's; default 4 each), ``TB_SEED``, ``TB_RESULT``.
"""

import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from generators.config import SpAttenConfig
from generators.dram import (counters_bytes, counters_image, keeplist_bytes, keeplist_image,
                             pack_row, row_addr, row_bytes, row_stride, unpack_row)
from generators.regmap import COUNTERS, OFFSETS, register_writes, unpack_register
from generators.status import Status
from sim.attn_stim import pass_scale
from sim.core_stim import MemoryMap, descriptor, layer_image, random_layer
from sim.golden.core import CoreState, LayerParams, layer_step
from sim.golden.select import DescriptorError, Policy
from sim.harness import env

CFG = SpAttenConfig.from_json(os.environ["TB_CONFIG"])
TOKENS = int(os.environ.get("TB_PACKETS", "24"))
STALLS = env.stalls()
STEPS = 3
BENCH = os.environ.get("TB_BENCH")
# Layers and heads the run uses (at most the config's): a larger preset stays affordable.
LAYERS = int(os.environ.get("TB_LAYERS", "4"))
HEADS = int(os.environ.get("TB_HEADS", "4"))


def _pauses(rng, p):
    while True:
        yield rng.random() < p


class Host:
    """The SoC side: registers over AXI4-Lite, DRAM through the AXI RAM's backdoor."""

    def __init__(self, dut, ram, mm):
        self.dut, self.ram, self.mm = dut, ram, mm
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), dut.clk, dut.rst)
        for log in (self.axil.write_if.log, self.axil.read_if.log):
            log.setLevel(logging.WARNING)

    async def run_layer(self, d: dict, max_cycles: int) -> dict:
        for off, val in register_writes(d):
            await self.axil.write_dword(off, val)
        for i in range(max_cycles // 50):
            st = unpack_register("STATUS", await self.axil.read_dword(OFFSETS["STATUS"]))
            if st["done"]:
                break
            for _ in range(50):
                await RisingEdge(self.dut.clk)
        else:
            states = {n: int(getattr(self.dut, n).value) for n in
                      ("layer_state", "job_state", "vserve_state", "kl_state") if hasattr(self.dut, n)}
            try:
                states["select"] = int(self.dut.select.fsm_state.value)
                states["keep_valid"] = int(self.dut.select.keep__valid.value)
                states["keep_ready"] = int(self.dut.select.keep__ready.value)
                states["e_valid"] = int(self.dut.select.engine.o__valid.value)
                for nm in ("taken_last", "w", "words", "code", "cands", "prot", "cmd"):
                    states[nm] = str(getattr(self.dut.select, nm).value)
                states["eng"] = str(self.dut.select.engine.topk_fsm_state.value)
            except AttributeError as e:
                states["err"] = str(e)
            raise AssertionError(f"layer {d['layer']} not DONE after {max_cycles} cycles "
                                 f"(controller states {states})")
        regs = {}
        for name in COUNTERS:
            lo = await self.axil.read_dword(OFFSETS[name])
            hi = await self.axil.read_dword(OFFSETS[name] + 4)
            regs[name] = lo | hi << 32
        return {"code": st["code"], **regs}


def _params(rng, n_cand, heads_cand, value_frac, msb_only):
    a = CFG.attn
    scale, shift = pass_scale(CFG, rng)
    tk = max(1, int(round(n_cand * rng.uniform(0.6, 0.9))))
    hk = max(1, heads_cand - int(rng.integers(0, 2)))
    return LayerParams(token_keep=tk, head_keep=hk,
                       value_keep=max(0, min(tk, int(round(tk * value_frac)))),
                       scale=scale, shift=shift, msb_only=msb_only,
                       # around typical peaks: some MSB-only passes kept, some recomputed
                       threshold=int(rng.integers(a.prob.max_raw // 4, a.prob.max_raw))
                       if msb_only else 0)


def _expect_out(cfg, image, bases, res):
    bits = cfg.attn.out.width
    for j in res.jobs:
        for qi, pos in enumerate(res.queries.tolist()):
            addr = row_addr(cfg, bases["out"], bits, j.head, pos)
            row = pack_row(cfg, j.out[qi], bits)
            image[addr:addr + len(row)] = row


def _inject(ram, kind, rows=()):
    """Make the AXI RAM answer with SLVERR: ``kind`` "r" for every read beat inside one of
    ``rows`` (``(address, bytes)``; cocotbext-axi then returns zero data, so the rows should
    hold zeros), "w" for the first write beat (its data still written). Returns the undo."""
    if kind == "r":
        port, orig = ram.read_if, ram.read_if._read

        async def faulty(address, length):
            if any(a <= address < a + n for a, n in rows):
                raise OSError("injected read error")
            return await orig(address, length)
        port._read = faulty
    else:
        port, orig, hit = ram.write_if, ram.write_if._write, []

        async def faulty(address, data):
            await orig(address, data)
            if not hit:
                hit.append(address)
                raise OSError("injected write error")
        port._write = faulty
    return lambda: delattr(port, "_read" if kind == "r" else "_write")


class Session:
    """The core, its AXI RAM (pausing every channel with probability ``pause``), the host,
    the golden state and the expected DRAM image; :meth:`layer` runs one descriptor on both
    and checks everything."""

    def __init__(self, dut, mm: MemoryMap, pause: float, seed: int):
        self.mm = mm
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_"), dut.clk, dut.rst, size=mm.size)
        for ch in (self.ram.write_if.aw_channel, self.ram.write_if.w_channel,
                   self.ram.write_if.b_channel, self.ram.read_if.ar_channel,
                   self.ram.read_if.r_channel):
            ch.set_pause_generator(_pauses(np.random.default_rng(seed + 7), pause))
        for log in (self.ram.write_if.log, self.ram.read_if.log):
            log.setLevel(logging.WARNING)   # one INFO line per burst slows a long run down
        self.host = Host(dut, self.ram, mm)
        self.expect = bytearray(mm.size)
        self.state = CoreState.empty(CFG)
        self.log = {"stall": [0.0, pause], "layers": [], "refetched": 0, "msb_kept": 0,
                    "codes": []}
        self.total = None      # layers this session will run (its progress)

    async def layer(self, qkv, layer, lp, *, heads, generation=False, newest=None,
                    policy=Policy(), clear=False, step=0, bad=None, inject=None,
                    budget=10 ** 6):
        """Run one layer descriptor (``qkv``: the layer's tensors, positions ``0 .. n-1``);
        returns the golden result, or None when the descriptor is refused."""
        c, t = CFG.core, CFG.topk
        n = qkv[0].shape[1]
        bases = self.mm.bases(layer, step)
        d = descriptor(CFG, layer=layer, heads=heads, n=n, lp=lp, bases=bases,
                       generation=generation, newest=newest, clear=clear, policy=policy)
        if bad == "align":
            d["q"] += c.bus_bytes // 2
        state = self.state
        rec_len = counters_bytes(CFG)
        rec_before = self.ram.read(bases["counters"], rec_len)
        try:
            if bad == "align":   # refused at START: not even CLEAR acts
                raise DescriptorError(Status.ALIGN, "misaligned Q base")
            if clear:
                state = self.state = CoreState.empty(CFG)
            snap = (state.imp.copy(), state.himp.copy(), dict(state.kept))
            res = layer_step(CFG, state, layer, qkv, lp, generation=generation,
                             newest=newest, policy=policy)
            want = Status.OK if inject is None else Status.BUS
        except DescriptorError as e:
            res, want = None, e.status
            if bad != "align":   # the state must be as before
                assert (state.imp == snap[0]).all() and (state.himp == snap[1]).all()
                state.kept = snap[2]
        cocotb.log.info(f"layer {layer} step {step} mode {int(generation)}: n {n}, keep "
                        f"{lp.token_keep}/{lp.head_keep}/{lp.value_keep}, expect {want!r}")
        restore = _inject(self.ram, *inject) if inject else (lambda: None)
        got = await self.host.run_layer(d, budget)
        restore()
        env.advance(len(self.log["codes"]) + 1, self.total,
                    f"layers, AXI pauses {self.log['stall'][1]}")
        self.log["codes"].append(int(got["code"]))
        assert got["code"] == want, f"layer {layer} step {step}: code {got['code']}, " \
                                    f"expected {want!r}"
        if res is None:
            assert self.ram.read(bases["counters"], rec_len) == rec_before, \
                f"layer {layer} step {step}: a refused layer wrote its counter record"
            return None
        ram, expect = self.ram, self.expect
        _expect_out(CFG, expect, bases, res)
        kl = keeplist_image(CFG, res.tokens, res.heads)
        got_kl = ram.read(bases["keeplist"], len(kl))
        assert got_kl == kl, f"layer {layer} step {step}: keep list differs " \
                             f"({got_kl.hex()} != {kl.hex()})"
        base, span = bases["out"], self.mm.plane_span
        got_out = ram.read(base, span)
        if got_out != bytes(expect[base:base + span]):
            bits = CFG.attn.out.width
            stride, ob = row_stride(CFG, bits), row_bytes(CFG, bits)
            bad_rows = [i for i in range(0, span, stride)
                        if got_out[i:i + ob] != expect[base + i:base + i + ob]]
            h, pos = divmod(bad_rows[0] // stride, t.capacity)
            g, e = (unpack_row(CFG, x[bad_rows[0]:bad_rows[0] + ob], bits, signed=True)
                    for x in (got_out, expect[base:base + span]))
            raise AssertionError(f"layer {layer} step {step}: {len(bad_rows)} output rows "
                                 f"differ; the first, head {h} position {pos}: {g.tolist()} "
                                 f"!= {e.tolist()}")
        want_rd = res.traffic.read
        want_wr = res.traffic.out + keeplist_bytes(CFG, len(res.tokens))
        assert (got["RD"], got["WR"]) == (want_rd, want_wr), \
            f"layer {layer} step {step}: RD/WR {got['RD']}/{got['WR']}, expected " \
            f"{want_rd}/{want_wr}"
        rec = counters_image(CFG, bytes_read=want_rd, bytes_written=want_wr,
                             cycles=got["CYC"], layer=layer, generation=generation,
                             tokens=len(res.tokens), heads=len(res.heads))
        got_rec = ram.read(bases["counters"], rec_len)
        assert got_rec == rec, f"layer {layer} step {step}: counter record " \
                               f"{got_rec.hex()} != {rec.hex()}"
        log = self.log
        log["refetched"] += res.refetched
        if lp.msb_only:
            log["msb_kept"] += len(res.jobs) * len(res.queries) - res.refetched
        log["layers"].append({"layer": layer, "step": step, "mode": int(generation),
                              "tokens": len(res.tokens), "heads": len(res.heads),
                              "queries": len(res.queries), "rd": got["RD"],
                              "wr": got["WR"], "cycles": got["CYC"],
                              "refetched": res.refetched, "kept": res.tokens.tolist(),
                              "kept_heads": res.heads.tolist()})
        return res


@cocotb.test(skip=BENCH is not None)
@cocotb.parametrize(stall=STALLS)
async def layers_against_golden(dut, stall):
    """Summarization, decode steps and bad descriptors through the host interface."""
    rng0 = await env.start(dut)
    seed = rng0.randrange(1 << 30) + int(stall[1] * 100)
    rng = np.random.default_rng(seed)
    t = CFG.topk
    L, H = min(CFG.core.layers, LAYERS), min(CFG.core.heads, HEADS)
    n0 = min(TOKENS, t.capacity - STEPS)
    nmax = n0 + STEPS
    mm = MemoryMap(CFG, layers=L, steps=STEPS + 5)
    ses = Session(dut, mm, stall[1], seed)
    ses.total = L * (1 + STEPS) + 9   # the layers below, bad and faulty ones included
    qkv = [random_layer(CFG, rng, H, nmax) for _ in range(L)]
    for layer in range(L):
        layer_image(CFG, qkv[layer], mm.bases(layer), ses.ram.write)
    budget = 400 * nmax * H * 8

    async def one(layer, lp, *, n=n0, **kw):
        return await ses.layer(tuple(x[:, :n] for x in qkv[layer]), layer, lp, heads=H,
                               budget=budget, **kw)

    # summarization over every layer (cascade), MSB-only layers with refetches
    ncand, hcand = n0, H
    for layer in range(L):
        lp = _params(rng, ncand, hcand, rng.uniform(0.3, 1.0), int(layer % 2 == 1))
        await one(layer, lp, clear=layer == 0)
        ncand, hcand = lp.token_keep, lp.head_keep
    # decode steps on the same state: the newest token, sinks and a recent window
    policy = Policy(sinks=1, recent=2, age_norm=True)
    state = ses.state
    for s in range(STEPS):
        newest = n0 + s
        for layer in range(L):
            tok, hd = state.kept[layer]
            cand = np.union1d(tok, [newest])
            if layer:
                cand = cand[np.isin(cand, state.kept[layer - 1][0])]
                hd = hd[np.isin(hd, state.kept[layer - 1][1])]
            lp = _params(rng, len(cand), len(hd), 0.5, int(s % 2 == 0))
            lp = replace(lp, token_keep=min(len(cand), max(lp.token_keep, 3)))
            await one(layer, lp, generation=True, newest=newest, policy=policy,
                      step=1 + s, n=newest + 1)
    # bad descriptors: refused with their codes, nothing changes, the next layer still right
    lp = _params(rng, n0, H, 0.5, 0)
    await one(0, lp, clear=True, step=STEPS + 1, bad="align")
    await one(0, replace(lp, token_keep=n0 + 1, value_keep=1), step=STEPS + 1)  # KEEP_RANGE
    await one(0, lp, clear=True, step=STEPS + 1)
    await one(1, replace(lp, head_keep=H + 1), step=STEPS + 1)  # KEEP_RANGE (heads)
    await one(1, _params(rng, lp.token_keep, lp.head_keep, 0.5, 1), step=STEPS + 1)
    # a decode step on a layer that has not run since CLEAR: every position is a candidate
    lp = _params(rng, nmax, H, 0.5, 0)
    await one(2, lp, generation=True, newest=nmax - 1, clear=True, step=STEPS + 1, n=nmax)
    # AXI4 error responses: the layer runs to its end, with the same outputs, and reports
    # BUS; the next layer is OK again. Read errors hit the newest query's rows, made zero
    # (cocotbext-axi answers a failed read with zero data).
    q_bits = CFG.attn.q_bits
    qrows = [(row_addr(CFG, mm.bases(2)["q"], q_bits, h, nmax - 1), row_bytes(CFG, q_bits))
             for h in range(H)]
    for addr, nbytes in qrows:
        ses.ram.write(addr, bytes(nbytes))
    qkv[2][0][:, nmax - 1] = 0
    for i, inject in enumerate([("r", qrows), ("w",), None]):
        await one(2, lp, generation=True, newest=nmax - 1, clear=True, step=STEPS + 2 + i,
                  n=nmax, inject=inject)
    log = ses.log
    assert {int(Status.ALIGN), int(Status.KEEP_RANGE), int(Status.BUS)} <= set(log["codes"])
    assert log["refetched"] and log["msb_kept"], "both sides of the refetch decision must run"
    env.record("runs", log)


@cocotb.test(skip=BENCH is None)
async def bench(dut):
    """Timing of descriptors read from the JSON file ``TB_BENCH`` (``{"entries": [...]}``),
    every one still checked against the golden model. An entry is a single-head decode
    row (``kind = "row"``: a CLEARed core, ``n`` positions, ``token_keep``, ``value_keep``,
    ``msb_only``, ``refetch``: force the MSB-only pass to be recomputed) or a summarization
    (``kind = "summarize"``: ``n`` tokens, ``heads``, and one ``{token_keep, head_keep,
    value_keep, msb_only}`` per layer). Records per layer: cycles, RD, WR, refetches."""
    rng0 = await env.start(dut)
    spec = json.loads(Path(BENCH).read_text())
    rng = np.random.default_rng(rng0.randrange(1 << 30))
    a = CFG.attn
    layers = max([len(e.get("layers", [])) for e in spec["entries"]] + [1])
    ses = Session(dut, MemoryMap(CFG, layers=layers, steps=1), 0.0, 1)
    ses.total = sum(len(e.get("layers", [None])) for e in spec["entries"])
    for i, e in enumerate(spec["entries"]):
        scale, shift = pass_scale(CFG, rng)
        if e["kind"] == "row":
            qkv = random_layer(CFG, rng, 1, e["n"])
            layer_image(CFG, qkv, ses.mm.bases(0), ses.ram.write)
            lp = LayerParams(token_keep=e["token_keep"], head_keep=1,
                             value_keep=e["value_keep"], scale=scale, shift=shift,
                             msb_only=e["msb_only"],
                             threshold=a.prob.max_raw if e["refetch"] else 0)
            await ses.layer(qkv, 0, lp, heads=1, generation=True, newest=e["n"] - 1,
                            clear=True, policy=Policy(recent=1), budget=400 * e["n"])
            ses.log["layers"][-1]["entry"] = i
        else:
            qkv = [random_layer(CFG, rng, e["heads"], e["n"]) for _ in e["layers"]]
            for li, x in enumerate(qkv):
                layer_image(CFG, x, ses.mm.bases(li), ses.ram.write)
            for li, p in enumerate(e["layers"]):
                lp = LayerParams(scale=scale, shift=shift, threshold=a.prob.max_raw // 2, **p)
                await ses.layer(qkv[li], li, lp, heads=e["heads"], clear=li == 0,
                                budget=200 * e["n"] * e["n"] * e["heads"])
                ses.log["layers"][-1]["entry"] = i
    env.record("bench", ses.log)
