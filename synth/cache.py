"""Synthesis of a generator block with a result cache.

:func:`run_synth_block` emits a block's Verilog, synthesizes it for one target and keeps the
result in ``<out>/<target>/result.json`` with the key of everything it depends on
(:func:`synth_key`: the Verilog, the target and options, the flow's own sources, the tool
versions). A later run with the same key reuses the result. Results are written atomically
(a temporary file and a rename), so a run that is killed never leaves half a file; an entry
that cannot be read (truncated, not JSON, the wrong shape) is reported with its path and
rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from generators.config import SpAttenConfig
from hdl.blocks import emit

from .flow import SCRIPTS, run_synth, tool_versions

# The modules whose code decides a synthesis result (with the scripts).
FLOW_SOURCES = ("flow.py", "macro.py", "report.py")

__all__ = ["FLOW_SOURCES", "run_synth_block", "glue_sha256", "synth_key", "write_json_atomic", "read_cached"]


def write_json_atomic(path: Path, obj) -> None:
    """``obj`` as JSON at ``path``, through a temporary file in the same folder and a
    rename: a reader sees the old file or the whole new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def read_cached(path: Path, key: dict, say: Callable[[str], None]) -> dict | None:
    """The cached result at ``path`` if its key is ``key``; None if there is none, if it was
    made with another key, or if it is corrupt (then ``say`` names the file, which is
    rebuilt)."""
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text())
        if not isinstance(old, dict) or not isinstance(old.get("metrics"), dict):
            raise ValueError("not a synthesis result")
    except (ValueError, OSError) as e:
        say(f"cached result {path} is unreadable ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else e!r}); rebuilding it")
        return None
    return old if old.get("key") == key else None


def run_synth_block(cfg: SpAttenConfig, block: str, target: str, out: Path, liberty=None,
                    memory: str = "macro", blackbox: tuple[str, ...] = (),
                    progress: Callable[[str], None] | None = None) -> dict:
    """Synthesize one block into ``out`` (``out/rtl`` the Verilog, ``out/<target>`` the
    run); ``blackbox`` names its submodules (Amaranth names below the top, e.g.
    ``("qk", "pv")``) that stay black boxes (hierarchical synthesis). Returns the flat
    metrics row (``block``, ``config``, ``target``, the metrics, ``yosys``)."""
    say = progress or (lambda _line: None)
    em = emit(cfg, block, Path(out) / "rtl")
    boxes = tuple(f"{em.top}.{b}" for b in blackbox)
    sha = glue_sha256(em.verilog.read_text(), boxes) if boxes else em.sha256
    key = synth_key(sha, target, liberty, memory, boxes)
    dest = Path(out) / target / "result.json"
    old = read_cached(dest, key, say)
    head = {"block": block, "config": cfg.name, "target": target}
    if old is not None:
        say(f"reusing {dest} (same Verilog, target, options and flow)")
        return {**head, **old["metrics"], "yosys": old["yosys"]}
    r = run_synth(em.verilog, em.top, target, Path(out) / target, liberty=liberty,
                  memory=memory, progress=say, blackbox=boxes)
    write_json_atomic(dest, {**r.to_dict(), "key": key})
    return {**head, **r.metrics, "yosys": r.yosys}


def glue_sha256(text: str, boxes: tuple[str, ...]) -> str:
    """The sha256 of what a synthesis with ``boxes`` as black boxes reads from ``text``:
    the Verilog without the bodies of the black-boxed modules (their port declarations
    stay) and without their submodules (Amaranth names them ``box.sub``), with Yosys'
    design-wide helper numbering made local, so a glue result is reused when only a
    black-boxed part changed."""
    kept, inside, box = [], False, False  # in a black box or its submodule; in the box
    for line in text.splitlines(keepends=True):
        head = re.match(r"\s*module\s+\\?([^\s(]+)", line)
        if head:
            name = head.group(1)
            box = name in boxes
            inside = box or any(name.startswith(b + ".") for b in boxes)
        if not inside or (box and re.match(r"\s*(module|input|output|inout|endmodule)\b", line)):
            kept.append(line)
        if re.match(r"\s*endmodule\b", line):  # what follows belongs to the next module
            inside = box = False
    # Yosys' Verilog backend numbers its helper registers design-wide
    # (``\$auto$verilog_backend.cc:…$541``): renumber them in order of appearance.
    seen: dict[str, str] = {}
    body = re.sub(r"\\\$auto\$\S+", lambda t: seen.setdefault(t.group(0), f"\\$auto${len(seen)}"),
                  "".join(kept))
    return hashlib.sha256(body.encode()).hexdigest()


def synth_key(verilog_sha256: str, target: str, liberty, memory: str,
              blackbox: tuple[str, ...]) -> dict:
    """What a synthesis result depends on: a result.json with the same key is reused. The
    flow's own sources (scripts, flow, report parsing) and the tool versions are part of it."""
    flow = hashlib.sha256()
    src = SCRIPTS.parent
    for f in sorted([*(src / n for n in FLOW_SOURCES), *SCRIPTS.iterdir()]):
        flow.update(f.name.encode() + f.read_bytes())
    lib = None if liberty is None else Path(liberty).resolve()
    return {"verilog_sha256": verilog_sha256, "target": target, "memory": memory,
            "liberty": None if lib is None else [str(lib), hashlib.sha256(
                lib.read_bytes()).hexdigest() if lib.is_file() else None],
            "blackbox": list(blackbox), "flow_sha256": flow.hexdigest(),
            "tools": tool_versions()}
