"""The `spatten` command: --help and --version everywhere, generate, and bad input: one
line on standard error and a non-zero exit status, before any long work starts."""

import json
import subprocess
import sys
import time

import pytest

from generators.cli import main
from sim.results import stall_plan

SUBCOMMANDS = ["generate", "sim", "synth", "bench", "demo"]
TRACE_HEADER = ("iteration_id,layer_id,head_id,embedding_length_D,sentence_length_L,"
                "key_fetch_num,quant_key_bit,quant_query_bit,auto_requant_thres,if_requant,"
                "auto_requant_incre,value_fetch_num,quant_value_bit,if_accumulate_importance,"
                "if_rescale_previous_importance,if_topk,topk")


def _run(*args):
    return subprocess.run([sys.executable, "-m", "generators.cli", *args], capture_output=True,
                          text=True)


@pytest.mark.parametrize("sub", [None] + SUBCOMMANDS)
def test_help(sub):
    p = _run(*([sub] if sub else []), "--help")
    assert p.returncode == 0
    assert "usage: spatten" in p.stdout


def test_version():
    p = _run("--version")
    assert p.returncode == 0 and p.stdout.startswith("spatten ")


def test_generate_writes_verilog_and_manifest(tmp_path):
    assert main(["generate", "topk", "--config", "ci", "--out", str(tmp_path)]) == 0
    v = tmp_path / "spatten_topk.v"
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert "module spatten_topk" in v.read_text()
    assert man["config"]["topk"]["lanes"] == 4 and man["top"] == "spatten_topk"
    assert len(man["verilog_sha256"]) == 64 and man["tools"]["amaranth"]


def test_generate_from_toml(tmp_path):
    t = tmp_path / "mine.toml"
    t.write_text('base = "ci"\n[topk]\nlanes = 2\ncapacity = 16\nscore = "s6f0"\n'
                 'radix_bits = 3\n')
    assert main(["generate", "topk", "--config", str(t), "--out", str(tmp_path / "o")]) == 0
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert man["config"]["name"] == "mine" and man["config"]["topk"]["capacity"] == 16


def _bad_inputs(tmp):
    """(arguments, what the one-line error must say) for every bad input we know of."""
    afile = tmp / "afile"
    afile.write_text("x")
    (tmp / "adir.toml").mkdir()
    (tmp / "empty.toml").write_text("")
    (tmp / "evil.toml").write_text('base = "ci"\nname = "../../outside"\n')
    (tmp / "lanes.toml").write_text('base = "ci"\n[topk]\nlanes = 6\n')
    mixed = tmp / "mixed.csv"
    mixed.write_text(TRACE_HEADER + "\n0,0,0,64.0,100,40,6,6,0.1,False,4,10,-1,True,False,"
                     "False,-1\n")
    import numpy as np

    np.save(tmp / "square.npy", np.ones((16, 16), dtype=np.int64))
    np.save(tmp / "wide.npy", np.ones((16, 12), dtype=np.int64))
    np.save(tmp / "neg.npy", -np.ones((16, 16)))
    sq, out = str(tmp / "square.npy"), str(tmp / "mask.npy")
    spion = [
        (["spion", "--attn", str(tmp / "wide.npy"), "--block", "4", "--quantile", "0.5",
          "--out", out], "must be a square 2-D array"),
        (["spion", "--attn", sq, "--block", "5", "--quantile", "0.5", "--out", out],
         "must be a positive multiple of the block"),
        (["spion", "--attn", str(tmp / "neg.npy"), "--block", "4", "--quantile", "0.5",
          "--out", out], "must be non-negative"),
        (["spion", "--attn", sq, "--block", "4", "--quantile", "1", "--out", out],
         "q must be in (0, 1)"),
        (["spion", "--attn", sq, "--block", "4", "--quantile", "0.5", "--filter", "4",
          "--out", out], "positive odd integer, not 4"),
        (["spion", "--attn", sq, "--block", "4", "--variant", "c", "--out", out],
         "--variant c needs --density"),
        (["spion", "--attn", str(afile), "--block", "4", "--quantile", "0.5", "--out", out],
         "is not a NumPy .npy array"),
        (["spion", "--attn", sq, "--block", "4", "--quantile", "0.5", "--out", str(tmp)],
         "--out must be a .npy file"),
    ]
    return spion + [
        (["generate", "topk", "--config", "nosuch"], "config must be a preset"),
        (["generate", "topk", "--config", str(tmp)], "is a folder, not a .toml file"),
        (["generate", "topk", "--config", str(tmp / "adir.toml")], "is a folder"),
        (["generate", "topk", "--config", str(tmp / "empty.toml")],
         "does not name the preset it starts from"),
        (["generate", "topk", "--config", str(tmp / "evil.toml")], "name must be letters"),
        (["generate", "topk", "--config", str(tmp / "lanes.toml")],
         "topk.lanes must be a power of two"),
        (["generate", "topk", "--out", str(afile)], f"--out must be a folder, but {afile}"),
        (["generate", "topk", "--out", str(afile / "below")], "is a file"),
        (["generate", "topk", "--out", "/proc/x"], "--out /proc/x cannot be written"),
        (["sim", "topk", "--seed", "-1"], "--seed: must be a non-negative integer, not -1"),
        (["sim", "topk", "--packets", "0"], "--packets must be at least 1, not 0"),
        (["sim", "core", "--config", "ci", "--packets", "62"], "must be in 4..61, not 62"),
        (["sim", "topk", "--build-dir", str(afile)], "--build-dir must be a folder"),
        (["sim", "nosuch"], "invalid choice: 'nosuch'"),
        (["bench", "topk", "--config", "ci", "--packets", "0"],
         "--packets must be at least 1, not 0"),
        (["bench", "topk", "--config", "ci", "--out", str(afile)], "--out must be a folder"),
        (["bench", "topk", "--sizes", "1x"], "--sizes must be comma-separated integers"),
        (["bench", "topk", "--sizes", "4096"], "must be in 8..1024"),
        (["bench", "topk", "--config", "ci", "--sizes", "128"], "must be in 8..64"),
        (["bench", "head", "--config", "ci", "--sizes", "32", "--packets", "4"],
         "--packets must be at least 8"),
        (["bench", "topk", "--trace", "x.csv"], "--trace applies to the core block"),
        (["bench", "core", "--config", "ci", "--heads", "9"], "--heads must be in 1..4"),
        (["bench", "core", "--config", "ci", "--tokens", "65"], "--tokens must be in 8..64"),
        (["bench", "core", "--trace", "/nonexistent.csv"], "nonexistent.csv"),
        (["bench", "core", "--trace", str(mixed)], "K quantized and V not"),
        (["bench", "core", "--trace", str(mixed), "--rows", "0"], "--rows must be at least 1"),
        (["synth", "topk", "--target", "ecp5", "--liberty", "x.lib"], "--liberty applies to"),
        (["synth", "topk", "--target", "asic", "--liberty", str(tmp / "no.lib")],
         "is not a file"),
        (["synth", "topk", "--breakdown"], "--breakdown applies to the head and core"),
        (["synth", "head", "--hierarchical"], "--hierarchical goes with --breakdown"),
        (["synth", "topk", "--out", str(afile)], "--out must be a folder"),
        (["demo", "--out", str(afile)], "--out must be a folder"),
    ]


def test_bad_inputs_fail_in_one_line_before_any_work(tmp_path, capsys):
    slow = []
    for args, needle in _bad_inputs(tmp_path):
        t0 = time.monotonic()
        try:
            rc = main(args)
        except SystemExit as e:      # argparse's own checks
            rc = e.code
        assert rc == 2, (args, rc)
        err = capsys.readouterr().err.strip()
        assert err.startswith("spatten: error:") and needle in err and "\n" not in err, \
            (args, err)
        if time.monotonic() - t0 > 5:
            slow.append(args)
    assert not slow, f"these did work before failing: {slow}"


def test_missing_vvp_is_named(monkeypatch, capsys):
    """iverilog without its vvp runtime: named before anything is built."""
    import generators.tools as tools

    real = tools.shutil.which
    monkeypatch.setattr(tools.shutil, "which", lambda n: None if n == "vvp" else real(n))
    monkeypatch.setattr(tools, "venv_bin", lambda: tools.Path("/nonexistent"))
    assert main(["sim", "topk", "--config", "ci", "--packets", "2"]) == 2
    err = capsys.readouterr().err
    assert "vvp not found" in err and "apt-get install iverilog" in err


def test_packets_in_all_are_split_over_the_stall_settings():
    assert stall_plan(3, ["0:0", "0.3:0.5"]) == "0:0:2,0.3:0.5:1"
    assert stall_plan(1, ["0:0", "0.3:0.5"]) == "0:0:1"
    assert stall_plan(500, ["0:0", "0.3:0.5"]) == "0:0:250,0.3:0.5:250"
    with pytest.raises(ValueError, match="at least 1"):
        stall_plan(0, ["0:0"])


def test_spion_writes_the_golden_mask(tmp_path, capsys):
    import numpy as np

    from sim.golden.spion import spion_pattern

    a = np.random.default_rng(3).integers(0, 9, (64, 64))
    np.save(tmp_path / "a.npy", a)
    out = tmp_path / "m" / "mask.npy"
    assert main(["spion", "--attn", str(tmp_path / "a.npy"), "--block", "8", "--quantile",
                 "0.96", "--out", str(out)]) == 0
    mask = np.load(out)
    want = spion_pattern(a, 8, quantile="0.96")
    assert mask.dtype == bool and np.array_equal(mask, want.mask)
    assert f"density {want.density:.4f}" in capsys.readouterr().out
