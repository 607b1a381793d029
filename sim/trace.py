"""The SpAtten authors' GPT-2 decode traces: loading, summaries, sampling, and what one row
costs on our core (DRAM bytes, an idealised cycle bound, the runtime parameters to replay it).

Ref: ``../shared/docs/reference.md`` section 3 (workload traces); the files are
``../shared/workloads/spatten-gpt2/*.csv`` (MIT licence, from ``mit-han-lab/spatten``). Read
them from there; never copy them into the project.

File format
-----------
A header line names the columns; then one row per (decode iteration, layer, head); the last
line names the model config (its first field, the other fields empty) and is not a data row.
``-1`` means "unquantized / not applicable"; booleans are ``True``/``False``;
``embedding_length_D`` is written as a float (``64.0``) and must be integral. A
:class:`TraceRow` has one field per column, under the column's own name:

=============================== ===== =========================================================
column                          type  meaning
=============================== ===== =========================================================
iteration_id                    int   decode step (one new token per step), from 0
layer_id, head_id               int   layer and head of this query
embedding_length_D              int   D, elements of a Q, K or V row
sentence_length_L               int   L, positions in the KV cache (the new token included)
key_fetch_num                   int   keys kept after cascade token pruning (1..L)
quant_key_bit, quant_query_bit  int   K and Q bits in the authors' model (-1 = unquantized)
auto_requant_thres              float progressive quantization threshold (-1 = off)
if_requant                      bool  the MSB pass was too flat: the LSBs were fetched
auto_requant_incre              int   LSB bits added on a requantization (-1 = n/a)
value_fetch_num                 int   V rows kept by local value pruning (1..key_fetch_num)
quant_value_bit                 int   V bits in the authors' model (-1 = unquantized)
if_accumulate_importance        bool  the probabilities feed token importance
if_rescale_previous_importance  bool  importance rescaled before this layer
if_topk, topk                   bool, token top-k after this layer and its k (-1 when
                                int   ``if_topk`` is False; 1..L otherwise)
=============================== ===== =========================================================

Rows are validated on construction (:class:`TraceRow` raises ``ValueError``;
:func:`load_trace` raises :class:`TraceFormatError`, which names file, line and column).

Our DRAM rule for one row
-------------------------
A row is one pass of one query (generation: the new token) against ``key_fetch_num`` keys of
one head, replayed as a single-head job of :func:`sim.golden.core.decode_step`. Its bytes
follow the job's DRAM rule (the ``_job`` docstring in :mod:`sim.golden.core`,
``docs/core.md``), every row padded to whole bus beats by
:func:`generators.dram.row_bytes`. The plane widths are the *config's* (``cfg.attn.q_bits``,
``msb_bits``, ``lsb_bits``, ``out.width``), not the trace's 6-bit K/V: our core stores what
its config says; the trace's widths are only reported by :func:`summary`.

- Q: one row of ``q_bits``; out: one row of ``out.width`` (written).
- K MSB: ``key_fetch_num`` rows of ``msb_bits``; V MSB: ``value_fetch_num`` rows.
- K LSB (``key_fetch_num`` rows of ``lsb_bits``) and V LSB (``value_fetch_num`` rows) only for
  a *full-precision* row (:attr:`TraceRow.full_precision`): an unquantized row (``K bit ==
  -1``) always, a quantized row only when ``if_requant`` is True. A refetched MSB-only pass
  is discarded before prob·V (``docs/head.md``), so V is fetched once, by the full pass; the
  trace gives one ``value_fetch_num``, taken as the kept list of that pass.
- Dense (:func:`dense_traffic`): the same row with no pruning and no quantization: all ``L``
  keys and all ``L`` values at full precision (MSB and LSB planes).

Idealised cycle bound
---------------------
See :data:`BOUND_DEFINITION`. It is a bound for *our* core (full overlap of Q·K, prob·V and
DRAM, DRAM at one bus beat per cycle, no top-k, softmax or pipeline latency), not the
authors' figures: reference.md quotes 1.96e5 cycles (small, pruned) and 3.89e6 (medium,
dense) from the authors' 16-channel DRAM model, which this definition does not reproduce.
With one 64-byte beat per cycle (``paper``) both traces are DRAM-bound here; only the Q·K
term of the small pruned trace (196103 lines at 8 keys per cycle, recomputes included)
agrees with the authors' Q·K-bound 1.96e5. Their 3.89e6 cycles for the dense trace's
about 2.4e9 bytes of packed 12-bit K and V imply roughly 600 bytes per cycle from their 16
channels (``bytes_per_cycle`` can model a wider memory).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from generators.config import SpAttenConfig
from generators.dram import row_bytes
from sim.golden.core import Traffic

__all__ = ["COLUMNS", "BOUND_DEFINITION", "TraceFormatError", "TraceRow", "Trace", "load_trace",
           "summary", "sample", "spread", "row_traffic", "dense_traffic", "row_bound",
           "trace_bound", "row_params"]

BOUND_DEFINITION = (
    "cycles(row) = max(qk_lines, pv_lines, dram_cycles), where "
    "qk_lines = ceil(key_fetch_num / cfg.attn.keys_per_cycle), doubled when the row was "
    "requantized (if_requant: the MSB pass and its full-precision recompute); "
    "pv_lines = ceil(value_fetch_num / cfg.attn.pv_rows) (a refetched pass is discarded "
    "before prob·V, so once); "
    "dram_cycles = ceil(dram_bytes / bytes_per_cycle), dram_bytes = row_traffic read + write "
    "(rows padded to bus beats), bytes_per_cycle = cfg.core.bus_bytes by default (one AXI "
    "beat per cycle). Dense: key_fetch_num = value_fetch_num = L, no requantization, "
    "dense_traffic. A trace's bound is the sum over its rows (serial: one query of one head "
    "at a time). Not the authors' 16-channel DRAM model: reference.md's bounds (1.96e5 "
    "cycles, small pruned; 3.89e6, medium dense) are not reproduced by this definition; only "
    "the Q·K term of the small pruned trace at 8 keys per cycle (paper: 196103) matches "
    "their Q·K-bound 1.96e5."
)


class TraceFormatError(ValueError):
    """A malformed trace file: ``path``, ``line`` (1-based) and ``column`` (``None`` when the
    fault is the row's shape) name the place."""

    def __init__(self, path, line: int, column: str | None, message: str):
        where = f"{path}, line {line}" + (f", column {column}" if column else "")
        super().__init__(f"{where}: {message}")
        self.path, self.line, self.column = path, line, column


@dataclass(frozen=True)
class TraceRow:
    """One (decode iteration, layer, head) row; fields are the file's columns (module
    docstring). Raises ``ValueError`` ("<column> must be <rule>, not <value>") when a value
    breaks a rule."""

    iteration_id: int
    layer_id: int
    head_id: int
    embedding_length_D: int
    sentence_length_L: int
    key_fetch_num: int
    quant_key_bit: int
    quant_query_bit: int
    auto_requant_thres: float
    if_requant: bool
    auto_requant_incre: int
    value_fetch_num: int
    quant_value_bit: int
    if_accumulate_importance: bool
    if_rescale_previous_importance: bool
    if_topk: bool
    topk: int

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type == "bool":
                ok = isinstance(v, bool)
            elif f.type == "float":
                ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            else:
                ok = isinstance(v, int) and not isinstance(v, bool)
            if not ok:
                rule = {"bool": "a bool", "int": "an int", "float": "a finite number"}[f.type]
                raise _RowError(f.name, f"{f.name} must be {rule}, not {v!r}")
        for name in ("iteration_id", "layer_id", "head_id"):
            _rule(self, name, getattr(self, name) >= 0, "non-negative")
        _rule(self, "embedding_length_D", self.embedding_length_D >= 1, "positive")
        L = self.sentence_length_L
        _rule(self, "sentence_length_L", L >= 1, "positive")
        _rule(self, "key_fetch_num", 1 <= self.key_fetch_num <= L,
              f"in 1..sentence_length_L ({L})")
        _rule(self, "value_fetch_num", 1 <= self.value_fetch_num <= self.key_fetch_num,
              f"in 1..key_fetch_num ({self.key_fetch_num})")
        for name in ("quant_key_bit", "quant_query_bit", "quant_value_bit",
                     "auto_requant_incre"):
            v = getattr(self, name)
            _rule(self, name, v == -1 or v >= 1, "-1 or positive")
        t = self.auto_requant_thres
        _rule(self, "auto_requant_thres", t == -1 or 0 <= t <= 1, "-1 or in 0..1")
        if self.if_requant:
            _rule(self, "if_requant", self.quant_key_bit != -1 and t > 0,
                  "False on a row without progressive quantization (quant_key_bit "
                  f"{self.quant_key_bit}, auto_requant_thres {t})", value=True)
        if self.if_topk:
            _rule(self, "topk", 1 <= self.topk <= L, f"in 1..sentence_length_L ({L}) when "
                  "if_topk is True")
        else:
            _rule(self, "topk", self.topk == -1, "-1 when if_topk is False")

    @property
    def full_precision(self) -> bool:
        """The row reads the K and V LSB planes: unquantized (``quant_key_bit == -1``), or
        quantized and requantized (``if_requant``)."""
        return self.quant_key_bit == -1 or self.if_requant

    @property
    def msb_only(self) -> bool:
        """The row's first pass runs on the MSB planes alone: K is quantized."""
        return self.quant_key_bit != -1


class _RowError(ValueError):
    def __init__(self, column: str, message: str):
        super().__init__(message)
        self.column = column


def _rule(row, name: str, ok: bool, rule: str, *, value=None):
    if not ok:
        v = getattr(row, name) if value is None else value
        raise _RowError(name, f"{name} must be {rule}, not {v!r}")


#: The columns, in the authors' order (also :class:`TraceRow`'s fields).
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(TraceRow))
# How each column is written: D as a float (``64.0``), checked integral after parsing.
_TYPES = {f.name: f.type for f in fields(TraceRow)} | {"embedding_length_D": "float"}


@dataclass(frozen=True)
class Trace:
    """A loaded trace: its data rows in file order, the model config named by the last line
    (``""`` when the file has none) and the file it came from."""

    rows: tuple[TraceRow, ...]
    model: str
    path: Path

    def __len__(self) -> int:
        return len(self.rows)


def _parse(text: str, kind: str):
    text = text.strip()
    if kind == "bool":
        if text not in ("True", "False"):
            raise ValueError(f"must be True or False, not {text!r}")
        return text == "True"
    if kind == "float":
        try:
            v = float(text)
        except ValueError:
            raise ValueError(f"must be a number, not {text!r}") from None
        if not math.isfinite(v):
            raise ValueError(f"must be a finite number, not {text!r}")
        return v
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"must be an integer, not {text!r}") from None


def load_trace(path: str | Path) -> Trace:
    """Read a trace CSV (module docstring). The header must name exactly :data:`COLUMNS` (in
    any order). The last line is the model line when its first field is non-empty and all
    others are empty; it is skipped and its first field becomes ``Trace.model``. Blank lines
    are ignored. Raises :class:`TraceFormatError` on a wrong field count, a value that does
    not parse, a rule a :class:`TraceRow` breaks, a repeated (iteration, layer, head), or a
    file with no data rows."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"trace must be an existing CSV file, not {str(path)!r}")
    with path.open(newline="") as fh:
        lines = [(i + 1, r) for i, r in enumerate(csv.reader(fh)) if any(x.strip() for x in r)]
    if not lines:
        raise TraceFormatError(path, 1, None, "empty file (no header)")
    hline, header = lines[0]
    header = [h.strip() for h in header]
    missing = [c for c in COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing or unknown or len(header) != len(COLUMNS):
        raise TraceFormatError(path, hline, None, f"header must name the columns "
                               f"{', '.join(COLUMNS)}; missing {missing}, unknown {unknown}")
    body, model = lines[1:], ""
    if body:
        last = body[-1][1]
        if last[0].strip() and not any(x.strip() for x in last[1:]):
            model = last[0].strip()
            body = body[:-1]
    rows, seen = [], {}
    for line, fields_ in body:
        if len(fields_) != len(header):
            raise TraceFormatError(path, line, None, f"expected {len(header)} fields, not "
                                   f"{len(fields_)}")
        values = {}
        for name, text in zip(header, fields_):
            try:
                values[name] = _parse(text, _TYPES[name])
            except ValueError as e:
                raise TraceFormatError(path, line, name, str(e)) from None
        d = values["embedding_length_D"]
        if not d.is_integer():
            raise TraceFormatError(path, line, "embedding_length_D",
                                   f"must be a whole number, not {d!r}")
        values["embedding_length_D"] = int(d)
        try:
            row = TraceRow(**values)
        except _RowError as e:
            raise TraceFormatError(path, line, e.column, str(e)) from None
        key = (row.iteration_id, row.layer_id, row.head_id)
        if key in seen:
            raise TraceFormatError(path, line, None, f"(iteration, layer, head) {key} repeats "
                                   f"line {seen[key]}")
        seen[key] = line
        rows.append(row)
    if not rows:
        raise TraceFormatError(path, hline, None, "no data rows")
    return Trace(rows=tuple(rows), model=model, path=path)


def _rows(rows) -> Sequence[TraceRow]:
    return rows.rows if isinstance(rows, Trace) else tuple(rows)


def summary(trace: Trace | Iterable[TraceRow]) -> dict:
    """Headline numbers of a trace.

    ``rows``; ``iterations``, ``layers``, ``heads`` (distinct ids); ``mean_L``;
    ``keys_pct`` and ``values_pct``: the mean over rows of ``100 * key_fetch_num / L`` and
    ``100 * value_fetch_num / L``; ``requant_pct``: ``100 *`` the fraction of rows with
    ``if_requant``; ``k_bits``, ``v_bits``, ``q_bits``: the sorted distinct
    ``quant_key_bit``, ``quant_value_bit``, ``quant_query_bit`` (-1 = unquantized);
    ``model`` (``""`` for a bare row sequence)."""
    rows = _rows(trace)
    if not rows:
        raise ValueError("summary needs at least one row")
    n = len(rows)
    return {
        "model": trace.model if isinstance(trace, Trace) else "",
        "rows": n,
        "iterations": len({r.iteration_id for r in rows}),
        "layers": len({r.layer_id for r in rows}),
        "heads": len({r.head_id for r in rows}),
        "mean_L": sum(r.sentence_length_L for r in rows) / n,
        "keys_pct": 100 * sum(r.key_fetch_num / r.sentence_length_L for r in rows) / n,
        "values_pct": 100 * sum(r.value_fetch_num / r.sentence_length_L for r in rows) / n,
        "requant_pct": 100 * sum(r.if_requant for r in rows) / n,
        "k_bits": tuple(sorted({r.quant_key_bit for r in rows})),
        "v_bits": tuple(sorted({r.quant_value_bit for r in rows})),
        "q_bits": tuple(sorted({r.quant_query_bit for r in rows})),
    }


def sample(trace: Trace | Sequence[TraceRow], count: int) -> list[TraceRow]:
    """``count`` rows evenly spaced through the trace, in file order, with no randomness.

    With ``n`` rows and ``count < n``, row ``i`` of the sample (``i = 0..count-1``) is row
    ``floor(i * n / count + 1/2)`` of the trace (``round(i * n / count)``, halves rounded up,
    computed in integers as ``(2 * i * n + count) // (2 * count)``): the first row is always
    row 0, the indices strictly increase, and consecutive ones are ``floor(n / count)`` or
    ``ceil(n / count)`` apart. With ``count >= n`` every row is returned. A bench that replays
    the sample scales its totals by ``n / len(sample)``. Raises ``ValueError`` unless
    ``count`` is a positive integer."""
    rows, n = _pick_args(trace, count)
    if count >= n:
        return list(rows)
    return [rows[(2 * i * n + count) // (2 * count)] for i in range(count)]


def _pick_args(trace, count):
    """The rows and their number, after checking ``count`` (:func:`sample`, :func:`spread`)."""
    rows = _rows(trace)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"count must be a positive integer, not {count!r}")
    return rows, len(rows)


def spread(trace: Trace | Sequence[TraceRow], count: int) -> list[TraceRow]:
    """``count`` rows spread over the trace by a golden-ratio (Weyl) sequence, in file order,
    with no randomness: row ``i`` of the sequence is ``floor(frac((i + 1/2) * phi) * n)``
    (``phi = (sqrt(5) - 1) / 2``), a taken index moving on to the next free one. Unlike
    :func:`sample`, whose fixed stride can alias with the trace's period (decode iteration ×
    layer × head, so that every pick is layer 0, head 0), it reaches every layer and head
    about equally. With ``count >= n`` every row is returned."""
    rows, n = _pick_args(trace, count)
    if count >= n:
        return list(rows)
    phi = (math.sqrt(5) - 1) / 2
    taken: set[int] = set()
    for i in range(count):
        j = int(((i + 0.5) * phi) % 1.0 * n)
        while j in taken:
            j = (j + 1) % n
        taken.add(j)
    return [rows[j] for j in sorted(taken)]


def _check_geometry(cfg: SpAttenConfig, row: TraceRow):
    if row.embedding_length_D != cfg.attn.head_dim:
        raise ValueError(f"row D ({row.embedding_length_D}) must equal cfg.attn.head_dim "
                         f"({cfg.attn.head_dim}) of config {cfg.name!r}")
    if (row.quant_key_bit == -1) != (row.quant_value_bit == -1):
        # Our core has one msb_only flag for K and V together.
        raise NotImplementedError(f"a row with K quantized and V not, or the reverse (K bit "
                                  f"{row.quant_key_bit}, V bit {row.quant_value_bit}), has no "
                                  f"replay on our core")


def row_traffic(cfg: SpAttenConfig, row: TraceRow) -> Traffic:
    """DRAM bytes of ``row`` on our core (module docstring, "Our DRAM rule for one row").
    Raises ``ValueError`` when the row's D is not ``cfg.attn.head_dim``."""
    _check_geometry(cfg, row)
    a = cfg.attn
    msb, lsb = row_bytes(cfg, a.msb_bits), row_bytes(cfg, a.lsb_bits)
    full = row.full_precision
    return Traffic(q=row_bytes(cfg, a.q_bits),
                   kmsb=row.key_fetch_num * msb,
                   klsb=row.key_fetch_num * lsb if full else 0,
                   vmsb=row.value_fetch_num * msb,
                   vlsb=row.value_fetch_num * lsb if full else 0,
                   out=row_bytes(cfg, a.out.width))


def dense_traffic(cfg: SpAttenConfig, row: TraceRow) -> Traffic:
    """DRAM bytes of ``row`` with no pruning and no quantization: Q, all ``L`` keys and all
    ``L`` values at full precision (both planes), one output row."""
    _check_geometry(cfg, row)
    a = cfg.attn
    L = row.sentence_length_L
    return Traffic(q=row_bytes(cfg, a.q_bits),
                   kmsb=L * row_bytes(cfg, a.msb_bits), klsb=L * row_bytes(cfg, a.lsb_bits),
                   vmsb=L * row_bytes(cfg, a.msb_bits), vlsb=L * row_bytes(cfg, a.lsb_bits),
                   out=row_bytes(cfg, a.out.width))


_TERMS = ("qk_lines", "pv_lines", "dram_cycles")


def _bytes_per_cycle(cfg: SpAttenConfig, bytes_per_cycle):
    bpc = cfg.core.bus_bytes if bytes_per_cycle is None else bytes_per_cycle
    if isinstance(bpc, bool) or not isinstance(bpc, (int, float)) or not bpc > 0 \
            or not math.isfinite(bpc):
        raise ValueError(f"bytes_per_cycle must be a positive number, not {bytes_per_cycle!r}")
    return bpc


def row_bound(cfg: SpAttenConfig, row: TraceRow, *, bytes_per_cycle=None,
              dense: bool = False) -> dict:
    """The idealised cycle bound of one row (:data:`BOUND_DEFINITION`).

    Returns ``qk_lines``, ``pv_lines``, ``dram_bytes`` (read + write), ``dram_cycles``,
    ``cycles`` (the largest of the three terms) and ``limit`` (the name of that term; ties go
    to the earlier of ``qk_lines``, ``pv_lines``, ``dram_cycles``). ``bytes_per_cycle``
    defaults to ``cfg.core.bus_bytes``; ``dense`` bounds the unpruned, unquantized row
    (:func:`dense_traffic`)."""
    bpc = _bytes_per_cycle(cfg, bytes_per_cycle)
    a = cfg.attn
    if dense:
        keys = values = row.sentence_length_L
        passes, t = 1, dense_traffic(cfg, row)
    else:
        keys, values = row.key_fetch_num, row.value_fetch_num
        passes, t = (2 if row.if_requant else 1), row_traffic(cfg, row)
    dram = t.read + t.out
    terms = {"qk_lines": passes * -(-keys // a.keys_per_cycle),
             "pv_lines": -(-values // a.pv_rows),
             "dram_cycles": math.ceil(dram / bpc)}
    limit = max(_TERMS, key=lambda k: (terms[k], -_TERMS.index(k)))
    return {**terms, "dram_bytes": dram, "cycles": terms[limit], "limit": limit}


def trace_bound(cfg: SpAttenConfig, rows: Trace | Iterable[TraceRow], *,
                bytes_per_cycle=None, dense: bool = False) -> dict:
    """:func:`row_bound` summed over ``rows`` (serial: one query of one head at a time).

    Returns the sums of ``qk_lines``, ``pv_lines``, ``dram_bytes``, ``dram_cycles`` and
    ``cycles`` (the sum of each row's maximum, so at least the largest summed term), plus
    ``rows``, ``bytes_per_cycle`` and ``limited_by``: how many rows each term limits."""
    bpc = _bytes_per_cycle(cfg, bytes_per_cycle)
    total = {"rows": 0, "qk_lines": 0, "pv_lines": 0, "dram_bytes": 0, "dram_cycles": 0,
             "cycles": 0, "bytes_per_cycle": bpc, "limited_by": dict.fromkeys(_TERMS, 0)}
    for row in _rows(rows):
        b = row_bound(cfg, row, bytes_per_cycle=bpc, dense=dense)
        total["rows"] += 1
        for k in ("qk_lines", "pv_lines", "dram_bytes", "dram_cycles", "cycles"):
            total[k] += b[k]
        total["limited_by"][b["limit"]] += 1
    return total


def row_params(cfg: SpAttenConfig, row: TraceRow) -> dict:
    """Runtime parameters of a single-head generation layer on our core that replays ``row``.

    ``n`` = ``sentence_length_L`` (positions), ``token_keep`` = ``key_fetch_num``,
    ``head_keep`` = 1, ``value_keep`` = ``value_fetch_num``, ``msb_only`` = 1 when K is
    quantized (``quant_key_bit != -1``) else 0, ``force_refetch`` = ``if_requant`` (0/1).

    ``msb_only`` follows :attr:`TraceRow.msb_only`, the same predicate as the traffic rule.
    A quantized row without progressive quantization (``auto_requant_thres`` -1; none in the
    two traces) is an MSB-only pass that never refetches, which is ``msb_only = 1`` with
    threshold 0; tying ``msb_only`` to ``auto_requant_thres > 0`` as well would replay it at
    full precision, reading LSBs that :func:`row_traffic` does not count. On both traces the
    two rules agree row for row.

    Raises ``ValueError`` when ``n > cfg.topk.capacity`` or the row's D is not
    ``cfg.attn.head_dim``."""
    _check_geometry(cfg, row)
    n = row.sentence_length_L
    if n > cfg.topk.capacity:
        raise ValueError(f"sentence_length_L ({n}) must be at most topk.capacity "
                         f"({cfg.topk.capacity}) of config {cfg.name!r}")
    # The bench forces the trace's decision with the threshold: with msb_only = 1,
    # threshold = cfg.attn.prob.max_raw refetches practically every row (every pass whose
    # largest probability is below the largest raw probability), threshold = 0 never does.
    return {"n": n, "token_keep": row.key_fetch_num, "head_keep": 1,
            "value_keep": row.value_fetch_num, "msb_only": int(row.msb_only),
            "force_refetch": int(row.if_requant)}
