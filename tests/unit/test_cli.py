"""The `spatten` command: --help everywhere, generate, one-line errors on bad arguments."""

import json
import subprocess
import sys

import pytest

from generators.cli import glue_sha256, main

SUBCOMMANDS = ["generate", "sim", "synth", "bench", "demo"]


def _run(*args):
    return subprocess.run([sys.executable, "-m", "generators.cli", *args], capture_output=True,
                          text=True)


@pytest.mark.parametrize("sub", [None] + SUBCOMMANDS)
def test_help(sub):
    p = _run(*([sub] if sub else []), "--help")
    assert p.returncode == 0
    assert "usage: spatten" in p.stdout


def test_generate_writes_verilog_and_manifest(tmp_path):
    assert main(["generate", "topk", "--config", "ci", "--out", str(tmp_path)]) == 0
    v = tmp_path / "spatten_topk.v"
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert "module spatten_topk" in v.read_text()
    assert man["config"]["topk"]["lanes"] == 4 and man["top"] == "spatten_topk"
    assert len(man["verilog_sha256"]) == 64 and man["tools"]["amaranth"]


def test_generate_from_toml(tmp_path):
    t = tmp_path / "mine.toml"
    t.write_text('[topk]\nlanes = 2\ncapacity = 16\nscore = "s6f0"\nradix_bits = 3\n')
    assert main(["generate", "topk", "--config", str(t), "--out", str(tmp_path / "o")]) == 0
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert man["config"]["name"] == "mine" and man["config"]["topk"]["capacity"] == 16


@pytest.mark.parametrize("args,needle", [
    (["generate", "topk", "--config", "nosuch"], "config must be a preset"),
    (["sim", "topk", "--packets", "0"], "--packets must be at least 1, not 0"),
    (["bench", "topk", "--sizes", "1x"], "--sizes must be comma-separated integers"),
    (["bench", "topk", "--sizes", "4096"], "at most the capacity (1024)"),
    (["synth", "topk", "--target", "ecp5", "--liberty", "x.lib"], "--liberty applies to"),
    (["bench", "head", "--config", "ci", "--sizes", "32", "--packets", "4"], "--packets must be at least 8"),
    (["bench", "topk", "--trace", "x.csv"], "--trace applies to the core block"),
    (["bench", "core", "--config", "ci", "--heads", "9"], "--heads must be in 1..4"),
    (["bench", "core", "--config", "ci", "--tokens", "65"], "--tokens must be in 8..64"),
    (["bench", "core", "--trace", "/nonexistent.csv"], "nonexistent.csv"),
])
def test_bad_arguments_fail_in_one_line(args, needle, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spatten: error:") and needle in err and "\n" not in err


def test_bad_toml_value_names_the_field(tmp_path, capsys):
    t = tmp_path / "bad.toml"
    t.write_text("[topk]\nlanes = 6\n")
    assert main(["generate", "topk", "--config", str(t)]) == 2
    assert "topk.lanes must be a power of two" in capsys.readouterr().err


GLUE_V = """module top(a, y, clk);
  input a; wire a;
  output y; wire y;
  reg \\$auto$verilog_backend.cc:2355:dump_module$COUNT = 0;
  \\top.part part (.a(a), .y(y));
endmodule
module \\top.part (a, y);
  input a; wire a;
  output y; wire y;
  assign y = BODY;
endmodule
module \\top.part.sub (q);
  output q; wire q;
  assign q = SUB;
endmodule
"""


def _glue(count="541", body="~a", sub="1'b0", glue_port="y", width=""):
    text = (GLUE_V.replace("COUNT", count).replace("BODY", body).replace("SUB", sub)
            .replace(".y(y)", f".{glue_port}(y)")
            .replace("  output y; wire y;\n  assign", f"  output {width}y; wire y;\n  assign"))
    return glue_sha256(text, ("top.part",))


def test_glue_key_ignores_black_boxed_bodies_only():
    """A glue result is reused when only a black-boxed module (or its submodules) or Yosys'
    helper numbering changed, and not when the glue or a black box's ports changed."""
    base = _glue()
    assert _glue(body="a") == base                 # the black box's body
    assert _glue(sub="1'b1") == base               # a submodule of the black box
    assert _glue(count="213") == base              # the Verilog backend's helper numbering
    assert _glue(glue_port="a") != base            # the glue itself
    assert _glue(width="[1:0] ") != base           # a black box's port declarations
