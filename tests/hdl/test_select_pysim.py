# amaranth: UnusedElaboratable=no
"""amaranth.sim of hdl.core.select.TokenSelect against sim.golden.select.select.

Random importance loads and chains of select commands as the core issues them
(summarization: all tokens, then each layer from the previous one; generation: each layer
from its own mask of the previous step plus the new token, within the upper layer's), with
sinks, recent windows, age normalisation, ties, and bad keep counts. The kept beats (indices
and scores, bit for bit), the status codes, the candidate counts and, through later commands,
the masks are checked. Random bubbles on the inputs, random back-pressure on the outputs."""

import random
import sys

import numpy as np
import pytest

from generators.presets import PRESETS
from hdl.core.select import TokenSelect
from sim import pysim
from generators.status import Status
from sim.golden.select import DescriptorError, Policy, age_normalise, protected, select
from sim.scoreboard import expected_beats


class Model:
    """The unit's state and its expected outputs, through sim.golden.core."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.imp = np.zeros(cfg.topk.capacity, dtype=np.int64)
        self.masks = np.zeros((cfg.core.layers, cfg.topk.capacity), dtype=bool)

    def candidates(self, c):
        n = c["n"]
        listed = np.ones(n, bool) if c["all"] else self.masks[c["src"], :n].copy()
        if c["add_newest"] and c["newest"] < n:
            listed[c["newest"]] = True
        if c["has_upper"]:
            listed &= self.masks[c["upper"], :n]
        return np.arange(n)[listed]

    def kept(self, c):
        """Positions set in mask ``src`` below ``n`` (a merge's slots, in order)."""
        return np.flatnonzero(self.masks[c["src"], :c["n"]])

    def merge(self, c, sums):
        kept = self.kept(c)
        assert len(sums) == len(kept)
        top = (1 << self.cfg.core.imp_bits) - 1
        self.imp[kept] = np.minimum(self.imp[kept] + np.asarray(sums, dtype=np.int64), top)
        return [], {"code": 0, "candidates": int(len(kept))}

    def run(self, c):
        cfg, n, P = self.cfg, c["n"], self.cfg.topk.lanes
        cand = self.candidates(c)
        prot = protected(cand, c["newest"], Policy(sinks=c["sinks"], recent=c["recent"]))
        scores = self.imp[cand]
        if c["age_norm"] and n == c["newest"] + 1:
            scores = age_normalise(scores, c["newest"] - cand + 1, cfg)
        try:
            if c["age_norm"] and n != c["newest"] + 1:
                raise DescriptorError(Status.PARAMS, "age_norm needs n = newest + 1")
            kept = select(cfg, cand, scores, c["keep"], protected=prot)
            code = Status.OK
        except DescriptorError as e:
            kept, code = None, e.status
        beats = []
        if kept is not None:
            packet = np.full(n, -1, dtype=np.int64)
            packet[cand] = np.where(prot, 1 << cfg.core.imp_bits, scores)
            beats = expected_beats(cfg.select_topk, packet, c["keep"])
            assert [i for b in beats for i in b["index"][:b["count"]]] == kept.tolist()
            if c["nowrite"]:  # checked only: no keep list, masks unchanged
                return [], {"code": int(code), "candidates": int(cand.size)}
            self.masks[c["dst"], :] = False   # every word is rewritten
            self.masks[c["dst"], kept] = True
        return beats, {"code": int(code), "candidates": int(cand.size)}


def _commands(cfg, rng, model):
    """Summarization chains and generation steps over ``layers`` masks, as the core issues
    them; ``keep`` is drawn from the candidates ``model`` will see (10 % out of range)."""
    L, C = cfg.core.layers, cfg.topk.capacity
    policy_probe = 0

    def keep_for(c, low=1):
        n = model.candidates(c).size
        if rng.random() < 0.1:
            return [0, n + 1][int(rng.integers(2))]  # KEEP_RANGE
        return int(rng.integers(min(max(low, 1), n), n + 1)) if n else 1

    while True:
        if rng.random() < 0.4:  # summarization: all, then layer from layer
            n = int(rng.integers(1, C + 1))
            for layer in range(L):
                c = {"n": n, "newest": n - 1, "sinks": 0, "recent": 0, "age_norm": 0,
                     "all": int(layer == 0), "src": max(0, layer - 1), "add_newest": 0,
                     "has_upper": 0, "upper": 0, "dst": layer, "merge": 0,
                     "nowrite": int(rng.random() < 0.1)}
                c["keep"] = keep_for(c)
                yield c
        else:  # generation steps: layer l from its own mask plus the new token
            n0 = int(rng.integers(1, C - 6))
            sinks, recent = int(rng.integers(1, 3)), int(rng.integers(1, 4))
            age_norm = int(rng.random() < 0.6)
            for n in range(n0, n0 + 6):
                for layer in range(L):
                    c = {"n": n, "newest": n - 1, "sinks": sinks, "recent": recent,
                         "age_norm": age_norm, "all": int(n == n0), "src": layer,
                         "add_newest": 1, "has_upper": int(layer > 0),
                         "upper": max(0, layer - 1), "dst": layer, "merge": 0,
                         "nowrite": int(rng.random() < 0.1)}
                    c["keep"] = keep_for(c, low=sinks + recent)
                    policy_probe += 1
                    if sinks + recent >= 2 and policy_probe % 7 == 0:
                        c["keep"] = 1  # POLICY when two or more are protected
                    if age_norm and rng.random() < 0.15:
                        c["newest"] = n - 2  # PARAMS: ages would not start at 1
                    yield c


def _sum_beats(cfg, sums):
    A = cfg.attn.lanes
    beats = []
    for b in range(max(1, -(-len(sums) // A))):
        chunk = sums[b * A:(b + 1) * A]
        beats.append({"data": chunk + [0] * (A - len(chunk)), "count": len(chunk),
                      "last": int((b + 1) * A >= len(sums))})
    return beats


def _imp_words(cfg, rng):
    P, IB = cfg.topk.lanes, cfg.core.imp_bits
    hi = [8, 1 << 10, (1 << IB) - 1][int(rng.integers(3))]  # few values: ties
    words = []
    for a in rng.choice(cfg.topk.rows, size=int(rng.integers(1, cfg.topk.rows + 1)),
                        replace=False):
        words.append({"addr": int(a), "data": [int(x) for x in rng.integers(0, hi + 1, P)]})
    return words


@pytest.mark.parametrize("name,commands,stall", [
    ("ci", 80, (0.0, 0.0)), ("ci", 80, (0.3, 0.5)), ("paper", 12, (0.3, 0.5))],
    ids=["ci-nostall", "ci-stall", "paper-stall"])
def test_select_matches_golden(name, commands, stall, request):
    cfg = PRESETS[name]
    if name == "paper":  # the 256-entry histograms of radix 8 nest deeply in pysim's compiler
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, 20000))
        request.addfinalizer(lambda: sys.setrecursionlimit(old))
    dut = TokenSelect(cfg)
    seed = 0x5E1 + int(stall[1] * 10)
    nprng, rng = np.random.default_rng(seed), random.Random(seed)
    model = Model(cfg)
    gen = _commands(cfg, nprng, model)
    expect_keep, expect_status, plan, cmds = [], [], [], []
    for _ in range(commands):
        words = _imp_words(cfg, nprng) if nprng.random() < 0.25 or not plan else []
        for wd in words:
            model.imp[wd["addr"] * cfg.topk.lanes:(wd["addr"] + 1) * cfg.topk.lanes] = wd["data"]
        c = next(gen)
        cmds.append(c)
        beats, status = model.run(c)
        plan.append((words, c, []))
        expect_keep += beats
        expect_status.append(status)
        if status["code"] == 0 and not c["nowrite"] and nprng.random() < 0.5:  # merge a layer's slot sums
            m = {**c, "merge": 1, "src": c["dst"]}
            hi = [50, (1 << cfg.core.imp_bits) - 1][int(nprng.integers(2))]
            sums = [int(x) for x in nprng.integers(0, hi + 1, model.kept(m).size)]
            _, status = model.merge(m, sums)
            cmds.append(m)
            plan.append(([], m, _sum_beats(cfg, sums)))
            expect_status.append(status)
    codes = [s["code"] for s in expect_status]
    if name == "ci":
        assert {0, 1, 3, 5} <= set(codes)
        assert sum(c["age_norm"] and not c["merge"] and s == 0
                   for c, s in zip(cmds, codes)) >= 10
    got_keep, got_status = [], []

    async def send(ctx):
        for i, (words, c, sums) in enumerate(plan):
            while len(got_status) < i:  # imp writes go after the previous command
                await ctx.tick()
            await pysim.stream_send(ctx, dut.imp_in, words, rng=rng, stall=stall[0])
            await pysim.stream_send(ctx, dut.cmd, [c], rng=rng, stall=stall[0])
            await pysim.stream_send(ctx, dut.sums, sums, rng=rng, stall=stall[0])

    async def recv_keep(ctx):
        await pysim.stream_recv(ctx, dut.keep, rng=random.Random(seed + 1), stall=stall[1],
                                until_last=sum(b["last"] for b in expect_keep),
                                on_beat=got_keep.append)

    async def recv_status(ctx):
        await pysim.stream_recv(ctx, dut.status, rng=rng, stall=stall[1],
                                until_beats=len(plan), on_beat=got_status.append)

    assert sum(c["merge"] for c in cmds) >= (8 if name == "ci" else 1)
    cycles = sum(4 * c["n"] + 200 for c in cmds)
    pysim.run(dut, send, recv_keep, recv_status, vcd_name="select",
              deadline=cycles / (1 - max(stall)) * 1e-8)
    assert got_status == expect_status
    assert len(got_keep) == len(expect_keep)
    for i, (g, e) in enumerate(zip(got_keep, expect_keep)):
        assert g == e, f"keep beat {i}: {g} != {e}"
