"""Accuracy of the fixed-point attention datapath against float64 (NumPy only).

Two studies on the golden model (:mod:`sim.golden.attention`), each returning rows (dicts)
for a markdown table:

- :func:`softmax_accuracy`: per-probability absolute error of :func:`softmax` against the
  float64 softmax of the *same* fixed-point scores, ``p = 2**(s / 2**F) / sum``; it isolates
  the softmax unit (table, shifts, sum, reciprocal, final rounding and saturation).
- :func:`attention_accuracy`: end-to-end error of one head pass (quantization of q, K and V,
  Q·K, scale/shift, softmax, local value pruning, prob·V) against float64 attention on the
  real-valued inputs, for full-precision and MSB-only passes and for local value pruning.

:func:`softmax_error_bound` is the analytic worst case derived in ``docs/numerics.md``.
Regenerate the tables of ``docs/numerics.md`` with ``python -m sim.accuracy`` (paper preset,
fixed seed).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from generators.config import AttentionConfig, SpAttenConfig
from generators.numerics import bits_for, ceil_log2
from generators.presets import PRESETS, get_config
from generators.tables import exp2_table

from .golden.attention import PassParams, head_pass, scale_for, softmax, split_planes

__all__ = ["SOFTMAX_KINDS", "score_row", "exp_error", "softmax_error_bound",
           "softmax_accuracy", "attention_accuracy", "format_rows", "markdown", "main"]

LOG2E = math.log2(math.e)
SOFTMAX_KINDS = ("random", "peaked", "two-peak", "flat", "wide", "adversarial")
SEED = 20210301


def _to_scores(base2_logits: np.ndarray, a: AttentionConfig) -> np.ndarray:
    raw = np.rint(np.asarray(base2_logits) * (1 << a.score.frac))
    return np.clip(raw, a.score.min_raw, a.score.max_raw).astype(np.int64)


def _float_softmax_base2(scores: np.ndarray, frac: int) -> np.ndarray:
    w = np.exp2((scores - scores.max()) / float(1 << frac))
    return w / w.sum()


def _exp_values(a: AttentionConfig, d: np.ndarray) -> np.ndarray:
    """The exponential ``e`` the spec gives a score ``d`` raw units below the row maximum."""
    table = np.asarray(exp2_table(a), dtype=np.int64)
    k = np.minimum(d >> a.score.frac, a.exp_bits + 2)
    return (table[d & ((1 << a.score.frac) - 1)] + ((1 << k) >> 1)) >> k


def exp_error(a: AttentionConfig) -> float:
    """``eta = max_d |e(d) - 2**E * 2**(-d / 2**F)|`` over every distance ``d`` from the row
    maximum (beyond ``(E + 3) * 2**F`` both sides are below 1/8)."""
    d = np.arange((a.exp_bits + 3) << a.score.frac, dtype=np.int64)
    exact = np.exp2(a.exp_bits - d / (1 << a.score.frac))
    return float(np.abs(_exp_values(a, d) - exact).max())


def softmax_error_bound(a: AttentionConfig, n: int) -> float:
    """Analytic worst case of ``|p_hw - p_float|`` for a row of ``n`` scores (docs/numerics.md,
    "Error bound"): final rounding (or saturation) + reciprocal truncation + exponential
    errors carried through the sum."""
    P, Rb, E = a.prob.frac, a.recip_bits, a.exp_bits
    eta = exp_error(a)
    rounded = 2.0 ** -(P + 1) + 2.0 ** (1 - Rb) + eta * n / 2.0**E
    saturated = 2.0**-P + 2.0 ** (1 - Rb) + eta * (n - 1) / 2.0**E
    return max(rounded, saturated)


def _adversarial_distance(a: AttentionConfig, n: int) -> int:
    """The distance ``d`` below one peak that, repeated ``n - 1`` times, gives the largest
    per-probability error against float64: an exhaustive search over every ``d`` up to
    ``(E + 2) * 2**F`` (beyond it every exponential is 0)."""
    hi = min((a.exp_bits + 2) << a.score.frac, a.score.max_raw - a.score.min_raw)
    best, best_d = -1.0, 1
    for d in range(1, hi + 1):
        s = np.full(n, -d, dtype=np.int64)
        s[0] = 0
        r = softmax(s, msb_only=0, threshold=0, cfg=a)
        err = float(np.abs(r.probs / 2.0**a.prob.frac
                           - _float_softmax_base2(s, a.score.frac)).max())
        if err > best:
            best, best_d = err, d
    return best_d


def score_row(kind: str, a: AttentionConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` raw scores of one row kind (natural-log logits ``x`` become base-2 scores
    ``x * log2(e)``, rounded to ``score.frac`` bits and saturated):

    random: ``x ~ N(0, 2^2)``; peaked: ``N(0, 1)`` plus one logit 8 higher; two-peak:
    ``N(0, 1)`` plus two logits 6 higher; flat: ``N(0, 0.05^2)``; wide: raw scores uniform
    over the whole score format (most exponentials underflow); adversarial: one peak and
    ``n - 1`` equal scores at the distance below it with the largest error (found by an
    exhaustive search; deterministic).
    """
    if kind == "random":
        x = rng.normal(0.0, 2.0, n)
    elif kind in ("peaked", "two-peak"):
        x = rng.normal(0.0, 1.0, n)
        peaks = rng.choice(n, size=min(n, 1 if kind == "peaked" else 2), replace=False)
        x[peaks] += 8.0 if kind == "peaked" else 6.0
    elif kind == "flat":
        x = rng.normal(0.0, 0.05, n)
    elif kind == "wide":
        return rng.integers(a.score.min_raw, a.score.max_raw + 1, n).astype(np.int64)
    elif kind == "adversarial":
        s = np.full(n, a.score.max_raw - _adversarial_distance(a, n), dtype=np.int64)
        if n:
            s[0] = a.score.max_raw
        return s
    else:
        raise ValueError(f"kind must be one of {', '.join(SOFTMAX_KINDS)}, not {kind!r}")
    return _to_scores(x * LOG2E, a)


def _sizes(n, capacity: int) -> list[int]:
    if n is None:
        return [s for s in (8, 64, 256) if s < capacity] + [capacity]
    sizes = [int(n)] if np.isscalar(n) else [int(v) for v in n]
    bad = [s for s in sizes if not 1 <= s <= capacity]
    if bad:
        raise ValueError(f"row sizes must be in 1..topk.capacity ({capacity}), not {bad[0]}")
    return sizes


def softmax_accuracy(cfg: SpAttenConfig, rng: np.random.Generator, rows_per_kind: int = 64,
                     n: int | Sequence[int] | None = None,
                     kinds: Sequence[str] = SOFTMAX_KINDS) -> list[dict]:
    """Per-probability absolute error of ``softmax()`` against float64, one row of the
    result per (row kind, row size ``n``).

    Columns: ``kind``, ``n``, ``rows``, ``max_err`` and ``mean_err`` (over every probability
    of every row, in absolute probability), ``max_err_u10`` (``max_err`` in units of
    ``2**-10``), ``pmax_err_u10`` (largest ``|pmax / 2**P - max(p_float)|`` in units of
    ``2**-10``) and ``bound_u10`` (:func:`softmax_error_bound`, same units).
    ``n`` is one size or a list (default: 8, 64, 256 and ``topk.capacity``).
    """
    a = cfg.attn
    one = 2.0 ** a.prob.frac
    out = []
    for kind in kinds:
        reps = 1 if kind == "adversarial" else rows_per_kind
        for size in _sizes(n, cfg.topk.capacity):
            errs, pmax_errs = [], []
            for _ in range(reps):
                s = score_row(kind, a, rng, size)
                r = softmax(s, msb_only=0, threshold=0, cfg=a)
                pf = _float_softmax_base2(s, a.score.frac)
                errs.append(np.abs(r.probs / one - pf))
                pmax_errs.append(abs(r.pmax / one - pf.max()))
            err = np.concatenate(errs)
            out.append(dict(kind=kind, n=size, rows=reps, max_err=float(err.max()),
                            mean_err=float(err.mean()),
                            max_err_u10=float(err.max() * 1024),
                            pmax_err_u10=float(max(pmax_errs) * 1024),
                            bound_u10=softmax_error_bound(a, size) * 1024))
    return out


# End-to-end attention -------------------------------------------------------------------

def _quantize(x: np.ndarray, bits: int) -> tuple[np.ndarray, float]:
    """Symmetric linear per-tensor quantization: ``raw = round(x / s)``, ``s = max|x| /
    (2**(bits-1) - 1)``; returns ``(raw int64, s)``."""
    s = float(np.abs(x).max()) / ((1 << (bits - 1)) - 1)
    if s == 0.0:
        s = 1.0
    raw = np.clip(np.rint(x / s), -(1 << (bits - 1)) + 1, (1 << (bits - 1)) - 1)
    return raw.astype(np.int64), s


def _modes(cfg: SpAttenConfig, n: int) -> list[tuple[str, SpAttenConfig, int, int]]:
    """(label, config, msb_only, keep) for every row of the attention table."""
    base = dataclasses.replace(cfg, attn=dataclasses.replace(cfg.attn, q_bits=12))
    a = base.attn
    modes = [(f"full {a.msb_bits}+{a.lsb_bits} ({a.value_bits}-bit K/V)", base, 0, n)]
    for m, lsb in ((4, 4), (6, 4), (8, 4)):
        c = dataclasses.replace(base, attn=dataclasses.replace(a, msb_bits=m, lsb_bits=lsb))
        if (m, lsb) != (a.msb_bits, a.lsb_bits):
            modes.append((f"full {m}+{lsb} ({m + lsb}-bit K/V)", c, 0, n))
        modes.append((f"MSB-only {m}+{lsb} ({m}-bit K/V)", c, 1, n))
    for frac, label in ((2, "n/2"), (4, "n/4")):
        modes.append((f"full {a.msb_bits}+{a.lsb_bits}, keep {label}", base, 0,
                      max(1, n // frac)))
    return modes


def attention_accuracy(cfg: SpAttenConfig, rng: np.random.Generator, n: int = 256,
                       queries: int = 64, logit_std: float = 2.0,
                       threshold: float = 0.1) -> list[dict]:
    """End-to-end error of ``head_pass`` against float64 attention, one result row per mode.

    Each of ``queries`` trials draws real ``q ~ N(0, logit_std^2)`` (length D) and
    ``K, V ~ N(0, 1)`` (``n x D``), so the logits ``q.k / sqrt(D)`` have a standard
    deviation of about ``logit_std``. The reference is
    ``softmax(q K^T / sqrt(D)) V`` in float64 on the unquantized values. The pass quantizes
    q to ``q_bits = 12`` and K, V to ``msb_bits + lsb_bits`` bits (symmetric, per tensor),
    takes ``(scale, shift) = scale_for(s_q * s_k * log2(e) / sqrt(D) * 2**score.frac)`` and
    dequantizes the output as ``out * 2**-out.frac * s_v``. Every mode sees the same draws.

    Modes: full precision at the config's split; for each split 4+4, 6+4, 8+4 a full pass
    and an MSB-only pass (LSBs replaced by their midpoint; ``threshold`` 0, so never
    discarded); local value pruning keeping n/2 and n/4 at full precision.

    Columns: ``mode``, ``n``, ``keep``, ``queries``; ``max_err`` and ``rms_err`` (over every
    output element of every query) relative to ``max|V|`` of the query's V; ``cos_mean``
    and ``cos_min`` (cosine similarity of the output vector with the reference);
    ``pmax_below`` (fraction of passes whose pmax is below ``threshold``: those an MSB-only
    pass would refetch).
    """
    if not 1 <= n <= cfg.topk.capacity:
        raise ValueError(f"n must be in 1..topk.capacity ({cfg.topk.capacity}), not {n}")
    D = cfg.attn.head_dim
    modes = _modes(cfg, n)
    stats = {label: dict(err=[], cos=[], below=0) for label, *_ in modes}
    for _ in range(queries):
        q = rng.normal(0.0, logit_std, D)
        K = rng.normal(0.0, 1.0, (n, D))
        V = rng.normal(0.0, 1.0, (n, D))
        logits = K @ q / math.sqrt(D)
        w = np.exp(logits - logits.max())
        ref = (w / w.sum()) @ V
        vmax = float(np.abs(V).max())
        for label, c, msb_only, keep in modes:
            a = c.attn
            q_raw, s_q = _quantize(q, a.q_bits)
            k_raw, s_k = _quantize(K, a.value_bits)
            v_raw, s_v = _quantize(V, a.value_bits)
            scale, shift = scale_for(s_q * s_k * LOG2E / math.sqrt(D) * 2**a.score.frac, a)
            kmsb, klsb = split_planes(k_raw, a)
            vmsb, vlsb = split_planes(v_raw, a)
            thr = min(round(threshold * 2**a.prob.frac), a.prob.max_raw)
            res = head_pass(c, q_raw, kmsb, klsb, vmsb, vlsb,
                            PassParams(scale, shift, keep, 0, msb_only))
            got = res.out * 2.0**-a.out.frac * s_v
            st = stats[label]
            st["err"].append((got - ref) / vmax)
            denom = float(np.linalg.norm(got) * np.linalg.norm(ref))
            st["cos"].append(float(got @ ref) / denom if denom else 0.0)
            st["below"] += int(res.softmax.pmax < thr)
    rows = []
    for label, c, msb_only, keep in modes:
        st = stats[label]
        err = np.concatenate(st["err"])
        rows.append(dict(mode=label, n=n, keep=keep, queries=queries,
                         max_err=float(np.abs(err).max()),
                         rms_err=float(np.sqrt(np.mean(err**2))),
                         cos_mean=float(np.mean(st["cos"])), cos_min=float(np.min(st["cos"])),
                         pmax_below=st["below"] / queries))
    return rows


# Formats per preset ---------------------------------------------------------------------

def format_rows(cfgs: Sequence[SpAttenConfig]) -> list[dict]:
    """Every format and width of the numeric spec for each config: rows ``{"quantity": ...,
    <config name>: ...}`` for the per-preset table of docs/numerics.md."""
    def col(fn):
        return {c.name: fn(c.attn, c.topk.capacity) for c in cfgs}

    def row(name, fn):
        return {"quantity": name, **col(fn)}

    return [
        row("head_dim D / keys per cycle / pv rows per cycle",
            lambda a, n: f"{a.head_dim} / {a.keys_per_cycle} / {a.pv_rows}"),
        row("q", lambda a, n: f"s{a.q_bits}f0"),
        row("K, V full value = MSB plane, LSB plane",
            lambda a, n: f"s{a.value_bits}f0 = s{a.msb_bits}f0, u{a.lsb_bits}f0"),
        row("MSB-only LSB midpoint", lambda a, n: f"{1 << (a.lsb_bits - 1)}"),
        row("Q·K accumulator (acc_bits)", lambda a, n: f"s{a.acc_bits}f0"),
        row("scale / shift", lambda a, n: f"u{a.scale_bits} / u{a.shift_bits} (0..63)"),
        row("acc · scale product", lambda a, n: f"s{a.acc_bits + a.scale_bits}f0"),
        row("score", lambda a, n: str(a.score)),
        row("exp table: entries x width",
            lambda a, n: f"{1 << a.score.frac} x {a.exp_width} = "
                         f"{(1 << a.score.frac) * a.exp_width} bits"),
        row("exponential e", lambda a, n: f"u{a.exp_width}f{a.exp_bits}"),
        row("sum S (capacity terms)", lambda a, n: f"u{bits_for(n << a.exp_bits)}"),
        row("z = floor(log2 S)", lambda a, n: f"{a.exp_bits}..{a.exp_bits + ceil_log2(n)}"),
        row("reciprocal r", lambda a, n: f"u{a.recip_bits + 1} "
                                         f"(2^{a.recip_bits - 1} < r <= 2^{a.recip_bits})"),
        row("e · r product", lambda a, n: f"u{a.exp_width + a.recip_bits}"),
        row("normalisation shift z + Rb - P",
            lambda a, n: f"{a.exp_bits + a.recip_bits - a.prob.frac}.."
                         f"{a.exp_bits + ceil_log2(n) + a.recip_bits - a.prob.frac}"),
        row("probability", lambda a, n: str(a.prob)),
        row("prob·V accumulator (hdl.attn.pv)",
            lambda a, n: f"s{a.prob.width + a.value_bits + ceil_log2(n)}"),
        row("prob·V accumulator, tightest (sum p <= 2^P + n/2)",
            lambda a, n: f"s{a.value_bits + ceil_log2((1 << a.prob.frac) + n // 2)}"),
        row("output", lambda a, n: str(a.out)),
        row("eta = max exp error (units of 2^-E)", lambda a, n: f"{exp_error(a):.4f}"),
        row("softmax bound at n = capacity (2^-10)",
            lambda a, n: f"{softmax_error_bound(a, n) * 1024:.3f}"),
    ]


# Output ---------------------------------------------------------------------------------

SOFTMAX_COLUMNS = [("kind", "row kind", "{}"), ("n", "n", "{}"), ("rows", "rows", "{}"),
                   ("max_err", "max abs err", "{:.2e}"),
                   ("max_err_u10", "max (2^-10)", "{:.3f}"),
                   ("mean_err", "mean abs err", "{:.2e}"),
                   ("pmax_err_u10", "pmax max err (2^-10)", "{:.3f}"),
                   ("bound_u10", "bound (2^-10)", "{:.3f}")]
ATTENTION_COLUMNS = [("mode", "mode", "{}"), ("keep", "keep", "{}"),
                     ("max_err", "max abs err / max abs V", "{:.4f}"),
                     ("rms_err", "RMS err / max abs V", "{:.5f}"),
                     ("cos_mean", "cos mean", "{:.5f}"), ("cos_min", "cos min", "{:.5f}"),
                     ("pmax_below", "pmax < 0.1", "{:.0%}")]


def markdown(rows: list[dict], columns: Sequence[tuple[str, str, str]]) -> str:
    """A markdown table of ``rows``; ``columns`` are ``(key, heading, format)``."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt.format(r[k]) for k, _, fmt in columns) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.accuracy",
                                description="Accuracy of the fixed-point softmax and attention "
                                            "against float64 (markdown tables).")
    p.add_argument("--config", default="paper",
                   help=f"preset ({', '.join(PRESETS)}) or .toml file (default: paper)")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--rows", type=int, default=64, help="softmax rows per kind and size")
    p.add_argument("--n", type=int, default=256, help="keys per attention pass")
    p.add_argument("--queries", type=int, default=64, help="attention passes per mode")
    p.add_argument("--formats", action="store_true",
                   help="print the per-preset format table instead and exit")
    args = p.parse_args(argv)
    if args.formats:
        cfgs = list(PRESETS.values())
        print(markdown(format_rows(cfgs), [("quantity", "quantity", "{}")]
                       + [(c.name, f"`{c.name}`", "{}") for c in cfgs]))
        return 0
    cfg = get_config(args.config)
    print(f"# Accuracy against float64: {cfg.name} (seed {args.seed})\n")
    print(report(cfg, seed=args.seed, rows=args.rows, n=args.n, queries=args.queries))
    return 0


def report(cfg, *, seed: int = SEED, rows: int = 64, n: int = 256, queries: int = 64,
           level: str = "##") -> str:
    """Both accuracy tables as markdown (what ``python -m sim.accuracy`` prints)."""
    cfg = cfg.check_head()
    rng = np.random.default_rng(seed)
    a = cfg.attn
    return "\n".join([
        f"{level} Softmax (per probability; 2^-10 = {2**-10:.3e}; prob ulp 2^-{a.prob.frac}; "
        f"eta = {exp_error(a):.4f})\n",
        markdown(softmax_accuracy(cfg, rng, rows), SOFTMAX_COLUMNS),
        f"\n{level} Attention output (n = {n} keys, {queries} queries per mode, "
        f"logit std 2, errors relative to max|V|)\n",
        markdown(attention_accuracy(cfg, rng, n=min(n, cfg.topk.capacity), queries=queries),
                 ATTENTION_COLUMNS)])


if __name__ == "__main__":
    raise SystemExit(main())
