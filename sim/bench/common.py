"""What the benches share: markdown tables, output folders checked before any work, atomic
writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["BenchFailed", "md_table", "prepare_out_dir", "write_text"]


class BenchFailed(RuntimeError):
    """A bench's simulation failed (a mismatch against the golden model, a testbench error,
    a hang); the message says why in one line."""


def md_table(rows: list[dict], cols: list[str]) -> str:
    """A markdown table of ``rows`` (dicts) with columns ``cols``."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"
        return "" if v is None else str(v)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def prepare_out_dir(path, what: str = "--out") -> Path:
    """``path`` as a folder that exists and can be written, made if needed; a
    ``ValueError`` naming ``what`` and the reason otherwise (a file, a path below a file, a
    folder that cannot be made or written), before any long work starts."""
    p = Path(path)
    for parent in [p, *p.parents]:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{what} must be a folder, but {parent} is a file")
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ValueError(f"{what} {p} cannot be written: {e.strerror or e}") from None
    return p


def write_text(path: Path, text: str) -> Path:
    """``text`` at ``path`` through a temporary file and a rename (never half written)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
