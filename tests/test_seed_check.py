"""benchmarks/seed_check.py judges the seed runs by issue 3's targets."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "seed_check", Path(__file__).parent.parent / "benchmarks" / "seed_check.py")
assert _spec is not None and _spec.loader is not None
seed_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(seed_check)


def _runs(base=400.0, patched=300.0, base_sys=9.0, patched_sys=8.0, lockup=121.0, wall=30.0):
    def run(outcome, elapsed, sys_s):
        return {"outcome": outcome, "elapsed_s": elapsed, "sys_s": sys_s, "wall_s": wall}
    return {"vanilla-slab": run("completed", base, base_sys),
            "vanilla-slub": run("lockup", lockup, 0.1),
            "swapnbd-slab": run("completed", patched, patched_sys),
            "swapnbd-slub": run("completed", 310.0, 8.0)}


def _verdicts(scenario, runs, wall=40.0):
    return {name: ok for name, ok, _ in seed_check.check(scenario, 1, runs, wall)}


def test_the_seeds_result_passes():
    assert all(_verdicts("seed", _runs()).values())
    assert all(_verdicts("seed-full", _runs()).values())


@pytest.mark.parametrize("patched, ok", [(219.0, False), (220.0, True), (340.0, True), (341.0, False)])
def test_the_elapsed_ratio_must_lie_in_the_band(patched, ok):
    assert _verdicts("seed", _runs(base=400.0, patched=patched))["elapsed ratio"] is ok


def test_sys_must_drop():
    assert _verdicts("seed", _runs(patched_sys=9.0))["Sys ratio"] is False


def test_a_late_lockup_or_a_missing_one_fails():
    assert _verdicts("seed", _runs(lockup=601.0))["outcomes"] is False
    runs = _runs()
    runs["vanilla-slub"]["outcome"] = "completed"
    assert _verdicts("seed", runs)["outcomes"] is False
    runs = _runs()
    runs["swapnbd-slub"]["outcome"] = "lockup"
    assert _verdicts("seed", runs)["outcomes"] is False


def test_wall_targets_are_per_command_at_256_mib_and_per_arm_at_2_gib():
    assert _verdicts("seed", _runs(), wall=61.0)["wall, four arms"] is False
    assert _verdicts("seed-full", _runs(wall=121.0), wall=30.0)["wall, each arm"] is False
    assert _verdicts("seed-full", _runs(wall=119.0), wall=500.0)["wall, each arm"] is True


def test_the_table_gives_ratios_and_leaves_lockups_blank():
    lines = seed_check.table("seed", {1: _runs(), 2: _runs(patched=320.0)})
    assert lines[2] == "| outcome | completed | lockup at 121 s | completed | completed |"
    assert "lockup at 121 s / lockup at 125 s" in seed_check.table("seed", {1: _runs(), 2: _runs(lockup=125.0)})[2]
    assert "300.0 / 320.0 (0.750 / 0.800)" in lines[4]
    assert lines[4].split(" | ")[2] == ""


def test_keep_writes_each_commands_json_and_the_verdicts_read_the_same(tmp_path, monkeypatch, capsys):
    import json
    docs = {("seed", 1): _runs(), ("seed", 2): _runs(patched=350.0)}

    def fake(scenario, seed, jobs, sets):
        runs = [dict(r, arm=a) for a, r in docs[scenario, seed].items()]
        return json.dumps({"runs": runs}), 30.0
    monkeypatch.setattr(seed_check, "run_scenario", fake)
    with pytest.raises(SystemExit) as done:
        seed_check.main(["--scale", "seed", "--seed", "1", "--seed", "2", "--keep", str(tmp_path / "k")])
    assert done.value.code == 1                       # seed 2's ratio, 350 / 400, is out of the band
    out = capsys.readouterr().out
    assert "✓ seed      seed 1  elapsed ratio" in out and "✗ seed      seed 2  elapsed ratio" in out
    kept = sorted(p.name for p in (tmp_path / "k").iterdir())
    assert kept == ["seed-seed1.json", "seed-seed2.json"]
    runs = json.loads((tmp_path / "k" / "seed-seed2.json").read_text())["runs"]
    assert {r["arm"]: r["elapsed_s"] for r in runs}["swapnbd-slab"] == 350.0


def test_it_runs_the_swapsim_beside_its_interpreter(monkeypatch, tmp_path):
    # venv/bin/python benchmarks/seed_check.py must check that venv's build,
    # even when another swapsim comes first on PATH
    fake_python = tmp_path / "bin" / "python"
    fake_python.parent.mkdir()
    (tmp_path / "bin" / "swapsim").write_text("")
    monkeypatch.setattr(seed_check.sys, "executable", str(fake_python))
    assert seed_check.swapsim_command() == str(tmp_path / "bin" / "swapsim")
    (tmp_path / "bin" / "swapsim").unlink()
    monkeypatch.setenv("PATH", "")
    with pytest.raises(SystemExit, match="not installed"):
        seed_check.swapsim_command()


def test_it_names_the_interpreter_behind_swapsim(tmp_path):
    script = tmp_path / "swapsim"
    script.write_text(f"#!{sys.executable}\nprint('hi')\n")
    line = seed_check.describe(str(script))
    assert os.path.realpath(sys.executable) in line
    assert f"Python {sys.version.split()[0]}" in line
