"""Top-k latency bench: RTL simulation of the engine on random packets, beside its
data-independent bound, the 2n/P reference and the SpAtten authors' quick-select model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from generators.config import SpAttenConfig
from hdl.topk import latency_bound

from ..perf_model import authors_model_latency
from ..runner import run_cocotb
from .common import BenchFailed, md_table, prepare_out_dir, write_text

__all__ = ["bench_topk", "default_sizes", "k_points", "TOPK_COLUMNS"]

TOPK_COLUMNS = ["n", "k", "rtl_mean", "rtl_p99", "rtl_max", "worst_case_formula",
                "bound_2n_over_P", "authors_selection_mean", "authors_total_mean",
                "authors_total_p99", "speedup_vs_authors"]


def default_sizes(cfg: SpAttenConfig) -> list[int]:
    """Packet sizes of the bench: an eighth, a quarter, a half and all of the capacity."""
    cap = cfg.topk.capacity
    return sorted({max(8, cap // d) for d in (8, 4, 2, 1)})


def k_points(n: int) -> list[int]:
    """The k of each size: n/8, n/4, n/2, n - 1 and n (up to n, where the output is
    longest)."""
    return sorted({max(1, n // 8), max(1, n // 4), n // 2, n - 1, n})


def check_args(cfg: SpAttenConfig, sizes, packets: int):
    if not isinstance(packets, int) or packets < 1:
        raise ValueError(f"--packets must be at least 1, not {packets}")
    bad = [n for n in sizes if not 8 <= n <= cfg.topk.capacity]
    if bad:
        raise ValueError(f"--sizes must be in 8..{cfg.topk.capacity} (the capacity of "
                         f"{cfg.name}), not {bad[0]}")


def bench_topk(cfg: SpAttenConfig, *, sizes=None, packets: int, simulator: str, seed: int,
               out: Path, plot: bool = True, progress=None) -> list[dict]:
    """Latency (last input beat → last output beat) for n in ``sizes`` × :func:`k_points`;
    writes ``topk_latency.{csv,md,png}`` in ``out``."""
    tk = cfg.topk
    sizes = default_sizes(cfg) if sizes is None else list(sizes)
    check_args(cfg, sizes, packets)
    out = prepare_out_dir(out)
    pairs = [(n, k) for n in sizes for k in k_points(n)]
    r = run_cocotb(cfg, "topk", simulator=simulator, packets=packets, seed=seed,
                   bench=",".join([f"{n}:{k}" for n, k in pairs]
                                  + [f"b2b:{max(sizes)}:{max(sizes) // 2}"]),
                   progress=progress)
    if not r.ok:
        raise BenchFailed(f"top-k bench simulation failed: {r.reason}")
    rows = []
    for b in r.result["bench"]:
        n, k, lat = b["n"], b["k"], np.array(b["latency"])
        am = authors_model_latency(n, k, lanes=tk.lanes, trials=200, seed=seed,
                                   score_bits=tk.score.width)
        rows.append({
            "n": n, "k": k, "lanes": tk.lanes, "packets": len(lat),
            "rtl_mean": float(lat.mean()), "rtl_p99": float(np.percentile(lat, 99)),
            "rtl_max": int(lat.max()), "worst_case_formula": latency_bound(tk, n),
            "bound_2n_over_P": 2 * (-(-n // tk.lanes)),
            "authors_selection_mean": round(am["selection_mean"], 1),
            "authors_total_mean": round(am["mean"], 1), "authors_total_p99": am["p99"],
            "speedup_vs_authors": round(am["mean"] / float(lat.mean()), 2),
        })
    tp = r.result["throughput"][0]
    tp_line = (f"Back to back (n = {tp['n']}, k = {tp['k']}, {packets} packets, no stalls): "
               f"{tp['cycles_per_packet']:.1f} cycles per packet in steady state "
               f"(input alone: {-(-tp['n'] // tk.lanes)} beats).")
    cols = list(rows[0])
    write_text(out / "topk_latency.csv", ",".join(cols) + "\n" + "\n".join(
        ",".join(str(r[c]) for c in cols) for r in rows) + "\n")
    write_text(out / "topk_latency.json", json.dumps(rows, indent=2))
    md = (f"Top-k latency, cycles from the last input beat to the last output beat "
          f"({cfg.name}: {tk.lanes} lanes, {tk.score} scores, radix {tk.radix_bits}; "
          f"uniformly random scores, {packets} packets per point, RTL simulation on "
          f"{simulator}). Authors' model: SpAtten's quick-select cost model "
          f"(selection passes + one filter pass of n/P cycles; 200 trials). "
          f"worst_case_formula: the engine's exact worst case over all scores and k "
          f"(`hdl.topk.latency_bound`).\n\n"
          + md_table(rows, TOPK_COLUMNS) + "\n\n" + tp_line + "\n")
    write_text(out / "topk_latency.md", md)
    if plot:
        _plot(rows, out / "topk_latency.png", cfg)
    return rows


def _plot(rows, path: Path, cfg):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    labels = [f"{r['n']}/{r['k']}" for r in rows]
    x = range(len(rows))
    ax.plot(x, [r["authors_total_mean"] for r in rows], "s--", label="authors' model (mean)")
    ax.plot(x, [r["authors_total_p99"] for r in rows], "v:", label="authors' model (p99)")
    ax.plot(x, [r["bound_2n_over_P"] for r in rows], "k-", lw=1, label="2n/P")
    ax.plot(x, [r["worst_case_formula"] for r in rows], "k:", lw=1, label="latency bound")
    ax.plot(x, [r["rtl_mean"] for r in rows], "o-", label="this engine, RTL (mean)")
    ax.plot(x, [r["rtl_max"] for r in rows], "x", color="C2", label="this engine, RTL (max)")
    ax.set_xticks(list(x), labels, rotation=60, fontsize=8)
    ax.set_xlabel("n / k")
    ax.set_ylabel("cycles, last input → last output")
    ax.set_title(f"Top-k latency, {cfg.topk.lanes} lanes ({cfg.name})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
