# amaranth: UnusedElaboratable=no
"""amaranth.sim of hdl.core.layer.LayerController against a reference model of the layer
sequence (``docs/core.md``, the controller).

Models of its neighbours: the head and token selection units (commands taken with random
back-pressure, keep and status beats after random delays, scripted codes and head masks),
the importance clear (random back-pressure), the jobs (random back-pressure on ``job``; each
job writes its rows, some after ``job_done``, moves the DMA byte counts and keeps
``vserve_idle`` low), the keep-list writer (``keeplist_busy`` high for a while after a
selection), the header, record, drain and ``done`` sinks (random back-pressure), the DMA
(``dram_busy`` high for a while after the record) and an AXI error in one layer. Layers:
CLEAR, summarization from the previous layer's masks, a token failure, a head failure,
generation, a bus error. Checked: the sequence of commands, clear words, header, jobs (in
head order), drain, merge, record (frozen byte counts and cycles) and status codes, in
order; the guards (no HSTORE while ``keeplist_busy``, no drain before every row and
``vserve_idle``, no ``done`` while ``dram_busy``); the RD/WR/CYC outputs."""

import random

import pytest
from amaranth.hdl import Shape

from generators.presets import PRESETS
from generators.status import Status
from hdl.core.layer import LayerController
from sim import pysim
from sim.pysim import run_models

OK, KEEP_RANGE, POLICY = Status.OK, Status.KEEP_RANGE, Status.POLICY


def _fit(layout, d):
    """``d`` truncated to the widths of ``layout``'s fields (as the hardware holds them)."""
    return {k: int(v) & ((1 << Shape.cast(layout.members[k]).width) - 1) for k, v in d.items()}


def _layers(cfg):
    """(descriptor, head code, token code, kept head mask, bus error)."""
    H = cfg.core.heads
    base = {"mode": 0, "clear": 0, "age_norm": 0, "layer": 0, "heads": H, "n": 9,
            "newest": 0, "token_keep": 5, "head_keep": 2, "value_keep": 2, "scale": 1,
            "shift": 0, "msb_only": 0, "threshold": 0, "sinks": 0, "recent": 0,
            "q": 0, "kmsb": 0, "klsb": 0, "vmsb": 0, "vlsb": 0, "out": 0,
            "keeplist": 0, "counters": 0}
    return [({**base, "clear": 1}, OK, OK, 0b0101, False),
            ({**base, "layer": 1, "token_keep": 3}, OK, OK, 0b0110, False),
            ({**base, "layer": 2}, OK, KEEP_RANGE, 0, False),
            ({**base, "layer": 2, "head_keep": 9}, KEEP_RANGE, OK, 0, False),
            ({**base, "layer": 2, "mode": 1, "newest": 8, "sinks": 1, "recent": 2,
              "token_keep": 4}, OK, OK, 0b1000, True),
            ({**base, "layer": 3, "mode": 1, "newest": 9, "n": 10, "token_keep": 7,
              "head_keep": 40}, OK, POLICY, 0, True)]


def _expected(cfg, dut, layers):
    """The event sequence the controller must produce."""
    c, cap, W = cfg.core, cfg.topk.capacity, cfg.topk.rows
    hl, tl = dut.head_cmd.payload.shape(), dut.token_cmd.payload.shape()
    valid_l = [False] * c.layers
    events = []
    for d, hcode, tcode, mask, bus in layers:
        if d["clear"]:
            events += [("imp", w) for w in range(W)]
            valid_l = [False] * c.layers
        L, mode = d["layer"], d["mode"]
        prev = (L - 1) % (1 << max(1, (c.layers - 1).bit_length()))
        prev_ok = L != 0 and valid_l[prev]
        own_ok = valid_l[L]
        h = {"n": d["heads"], "keep": min(d["head_keep"], c.heads + 1), "dst": L,
             "src": L if mode else prev, "all": int(not (own_ok if mode else prev_ok)),
             "has_upper": int(mode and prev_ok), "upper": prev, "store": 0}
        t = {"n": d["n"], "keep": min(d["token_keep"], cap + 1),
             "newest": d["newest"] if mode else d["n"] - 1,
             "sinks": d["sinks"] if mode else 0, "recent": d["recent"] if mode else 0,
             "age_norm": d["age_norm"], "all": h["all"], "src": h["src"],
             "add_newest": mode, "has_upper": h["has_upper"], "upper": prev, "dst": L,
             "merge": 0, "nowrite": int(hcode != OK)}
        events += [("hcmd", _fit(hl, h)), ("tcmd", _fit(tl, t))]
        if tcode != OK or hcode != OK:
            events.append(("done", int(tcode if tcode != OK else hcode)))
            continue
        events.append(("hcmd", _fit(hl, {**h, "store": 1})))
        valid_l[L] = True
        heads = [g for g in range(c.heads) if mask >> g & 1]
        events.append(("header", {"tokens": d["token_keep"], "heads": len(heads),
                                  "mask": mask}))
        events += [("job", g) for g in heads]
        events.append(("drain", d["token_keep"]))
        # (the fields follow the masks written: this layer's now counts as written)
        events.append(("tcmd", _fit(tl, {**t, "merge": 1, "src": L,
                                         "all": int(not (True if mode else prev_ok))})))
        events.append(("record", {"layer": L, "mode": mode, "tokens": d["token_keep"],
                                  "heads": len(heads), "written": 1}))
        events.append(("done", int(Status.BUS if bus else OK)))
    return events


@pytest.mark.parametrize("name,stall", [("ci", (0.0, 0.0)), ("ci", (0.4, 0.5)),
                                        ("eighth", (0.3, 0.3))])
def test_layer_sequence_matches_model(name, stall):
    cfg = PRESETS[name]
    dut = LayerController(cfg)
    seed = 101 + len(name) + int(stall[1] * 10)
    layers = _layers(cfg)
    expected = _expected(cfg, dut, layers)
    events, errors, records, hist = [], [], [], []
    st = {"layer": 0, "rows": 0, "jobs_active": False, "v_tail": 0, "kl_busy": 0,
          "dram_busy": 0, "read": 0, "moved": [0, 0], "start": 0}

    def rnd(k):
        return random.Random(seed + k)

    async def selector(ctx, cmd, keep, status, is_head):
        r = rnd(1 if is_head else 2)
        while True:
            ready = int(r.random() >= stall[1])
            ctx.set(cmd.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(cmd.valid, cmd.payload)
            if not (valid and ready):
                continue
            ctx.set(cmd.ready, 0)
            _, hcode, tcode, mask, _ = layers[st["layer"]]
            merge = not is_head and payload.merge
            code = OK if merge else (hcode if is_head else tcode)
            for _ in range(r.randrange(1, 4)):
                await ctx.tick()
            if is_head and code == OK:
                ctx.set(keep.payload, {"mask": mask, "count": bin(mask).count("1")})
                ctx.set(keep.valid, 1)
                await ctx.tick()
                ctx.set(keep.valid, 0)
            ctx.set(status.payload, {"code": code, "candidates": 0})
            ctx.set(status.valid, 1)
            await ctx.tick()
            ctx.set(status.valid, 0)
            if not is_head and not merge and code == OK and not payload.nowrite:
                st["kl_busy"] = r.randrange(0, 6)   # the keep list is still being written

    async def head_sel(ctx):
        await selector(ctx, dut.head_cmd, dut.head_keep, dut.head_status, True)

    async def token_sel(ctx):
        await selector(ctx, dut.token_cmd, None, dut.token_status, False)

    async def jobs(ctx):
        r = rnd(3)
        while True:
            ready = int(r.random() >= stall[1])
            ctx.set(dut.job.ready, ready)
            _, _, valid = await ctx.tick().sample(dut.job.valid)
            if not (valid and ready):
                continue
            ctx.set(dut.job.ready, 0)
            d = layers[st["layer"]][0]
            nq = 1 if d["mode"] else d["token_keep"]
            st["jobs_active"] = True
            for q in range(nq):
                for _ in range(r.randrange(0, 3)):
                    await ctx.tick()
                st["moved"][0] += 8
                st["moved"][1] += 16
                if q == nq - 1:                     # the job is done before its last row,
                    ctx.set(dut.job_done.valid, 1)  # and the V server idle before it too
                    await ctx.tick().until(dut.job_done.ready)
                    ctx.set(dut.job_done.valid, 0)
                    st["jobs_active"] = False
                    st["v_tail"] = r.randrange(0, 2)
                    for _ in range(r.randrange(2, 6)):
                        await ctx.tick()
                ctx.set(dut.row_written, 1)
                await ctx.tick()
                ctx.set(dut.row_written, 0)
                st["rows"] += 1

    async def levels(ctx):
        """Counts and flags, one update per cycle; the guards."""
        r = rnd(4)
        while True:
            ctx.set(dut.dram_read, st["read"] + st["moved"][0])
            ctx.set(dut.dram_written, st["moved"][1])
            ctx.set(dut.keeplist_busy, int(st["kl_busy"] > 0))
            v_busy = st["jobs_active"] or st["v_tail"] > 0
            ctx.set(dut.vserve_idle, int(not v_busy))
            ctx.set(dut.dram_busy, int(st["dram_busy"] > 0))
            _, _, hv, hp, dv, dnv, rv, rr = await ctx.tick().sample(
                dut.head_cmd.valid, dut.head_cmd.payload, dut.drain.valid, dut.done.valid,
                dut.record.valid, dut.record.ready)
            if hv and hp.store and st["kl_busy"] > 0:
                errors.append("HSTORE while the keep list is being written")
            if dv and v_busy:
                errors.append("drain before the V server is idle")
            if dnv and st["dram_busy"] > 0:
                errors.append("done while the DMA is busy")
            st["kl_busy"] = max(0, st["kl_busy"] - 1)
            st["v_tail"] = max(0, st["v_tail"] - 1)
            st["dram_busy"] = max(0, st["dram_busy"] - 1)
            if rv and rr:                           # the record's write completes later
                st["dram_busy"] = r.randrange(1, 5)
            if r.random() < 0.1:                    # traffic outside the layer's counts
                st["read"] += 1

    async def monitor(ctx):
        r = rnd(5)
        while True:
            for port, name in ((dut.imp, "imp"), (dut.drain, "drain"), (dut.header, "header"),
                               (dut.record, "record")):
                ctx.set(port.ready, int(r.random() >= stall[1]))
            ctx.set(dut.done.ready, int(r.random() >= stall[1]))
            sig = [dut.imp.valid, dut.imp.ready, dut.imp.payload, dut.head_clear,
                   dut.head_cmd.valid, dut.head_cmd.ready, dut.head_cmd.payload,
                   dut.token_cmd.valid, dut.token_cmd.ready, dut.token_cmd.payload,
                   dut.header.valid, dut.header.ready, dut.header.payload,
                   dut.job.valid, dut.job.ready, dut.job.payload,
                   dut.drain.valid, dut.drain.ready, dut.drain.payload,
                   dut.record.valid, dut.record.ready, dut.record.payload,
                   dut.done.valid, dut.done.ready, dut.done.payload,
                   dut.bytes_read, dut.bytes_written, dut.cycles, dut.desc.valid,
                   dut.desc.ready, dut.record.valid, dut.dram_read, dut.dram_written]
            _, _, *v = await ctx.tick().sample(*sig)
            cyc = len(hist)
            hist.append((int(v[31]), int(v[32])))
            if v[28] and v[29]:
                st["start"] = cyc
            if v[30] and "record_first" not in st:
                st["record_first"] = cyc
            if v[0] and v[1]:
                if v[2].data.as_value().value != 0 or not v[3]:
                    errors.append("CLEAR word not zero or head_clear low")
                events.append(("imp", int(v[2].addr)))
            if v[4] and v[5]:
                events.append(("hcmd", pysim.const_to_py(v[6])))
            if v[7] and v[8]:
                events.append(("tcmd", pysim.const_to_py(v[9])))
            if v[10] and v[11]:
                events.append(("header", pysim.const_to_py(v[12])))
            if v[13] and v[14]:
                events.append(("job", int(v[15].head)))
            if v[16] and v[17]:
                d = layers[st["layer"]][0]
                want = st["rows_before"] + len([g for g in range(cfg.core.heads)
                                                if layers[st["layer"]][3] >> g & 1]) * (
                    1 if d["mode"] else d["token_keep"])
                if st["rows"] != want:
                    errors.append(f"drain after {st['rows']} rows, not {want}")
                events.append(("drain", int(v[18])))
            if v[19] and v[20]:
                rec = pysim.const_to_py(v[21])
                count = st["record_first"] - 1          # the COUNT state's cycle
                records.append((rec, count - st["start"] - 1,
                                [hist[count][j] - hist[st["start"]][j] for j in (0, 1)]))
                events.append(("record", rec["info"]))
            if v[22] and v[23]:
                events.append(("done", int(v[24])))
                st["shown"] = (int(v[25]), int(v[26]), int(v[27]))
                st.pop("record_first", None)

    async def driver(ctx):
        r = rnd(6)
        for k, (d, hcode, tcode, mask, bus) in enumerate(layers):
            st["layer"] = k
            st["rows_before"] = st["rows"]
            st.pop("shown", None)
            await pysim.stream_send(ctx, dut.desc, [d], rng=r, stall=stall[0])
            if bus:
                for _ in range(r.randrange(5, 15)):
                    await ctx.tick()
                ctx.set(dut.bus_error, 1)
                await ctx.tick()
                ctx.set(dut.bus_error, 0)
            while "shown" not in st:
                await ctx.tick()
            rd, wr, cyc = st["shown"]
            if hcode == OK and tcode == OK:
                rec = records[-1][0]
                if (rd, wr, cyc) != (rec["bytes_read"], rec["bytes_written"], rec["cycles"]):
                    errors.append(f"layer {k}: RD/WR/CYC {rd, wr, cyc} not the record's")
            while ctx.get(dut.busy):
                await ctx.tick()

    run_models(dut, [driver], [head_sel, token_sel, jobs, levels, monitor])
    assert errors == []
    assert events == expected
    assert len(records) == 3
    for rec, cycles, moved in records:
        assert (rec["bytes_read"], rec["bytes_written"], rec["cycles"]) == (*moved, cycles)
        assert rec["bytes_written"] > 0
