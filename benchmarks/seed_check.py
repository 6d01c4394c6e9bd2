"""Check the seed reproduction (issue 3's done-when list) over seeds and scales.

For each scale (``seed``, 256 MiB; ``seed-full``, 2 GiB) and each seed, runs
``swapsim run SCENARIO -j JOBS --seed S --json`` as a user would, and checks:

- vanilla-slub ends in ``lockup`` within 10 simulated minutes, the other
  three arms complete;
- Elapsed(swapnbd-slab) / Elapsed(vanilla-slab) is within 0.55-0.85, and
  the Sys ratio of the same two arms is below 1;
- wall time: the whole ``seed`` command within 60 s; each ``seed-full`` arm
  within 120 s (its own ``wall_s``; with ``-j 2`` two arms share the
  machine's two CPUs, one each).

It prints one line per criterion and seed (✓ or ✗ with the figures), then
the result tables in the README's layout, and exits 1 if any check failed.

    python benchmarks/seed_check.py                     # both scales, seeds 1 2 3
    python benchmarks/seed_check.py --scale seed        # 256 MiB only (about 2.5 min)
    python benchmarks/seed_check.py --seed 4 --set kernel.blk_batching=true
    python benchmarks/seed_check.py --keep runs/        # also keep each command's JSON

``--keep DIR`` writes each command's ``--json`` document to
``DIR/SCENARIO-seedS.json``, so that the counters behind a verdict (the
slab caches, the swap cache, the transport's waits) can be read later
without running the arms again.

A 2 GiB seed takes several minutes of wall time (vanilla-slab is the
longest arm).  Wall times depend on the machine and on what else runs on
it: compare builds side by side, not across days.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ARMS = ("vanilla-slab", "vanilla-slub", "swapnbd-slab", "swapnbd-slub")
LOCKUP_ARM = "vanilla-slub"
BASE, PATCHED = "vanilla-slab", "swapnbd-slab"
RATIO_BAND = (0.55, 0.85)
LOCKUP_WITHIN_S = 600.0
WALL_SEED_S = 60.0          # the whole default scenario, all four arms
WALL_FULL_ARM_S = 120.0     # each full-scale arm


def swapsim_command() -> str:
    """The ``swapsim`` installed beside the interpreter running this script
    (``venv/bin/python benchmarks/seed_check.py`` checks that venv's build,
    activated or not), else the first on PATH."""
    beside = Path(sys.executable).parent / "swapsim"
    if beside.is_file():
        return str(beside)
    return shutil.which("swapsim") or sys.exit("swapsim is not installed: pip install . first")


def describe(cmd: str) -> str:
    """Which swapsim, and the interpreter it runs on (its build matters: see the README)."""
    with open(cmd, "rb") as f:
        first = f.readline().decode(errors="replace").strip()
    python = first[2:].split()[0] if first.startswith("#!") else sys.executable
    version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True).stdout.strip() or "?"
    return f"swapsim: {cmd} (interpreter: {os.path.realpath(python)}, Python {version})"


def run_scenario(scenario: str, seed: int, jobs: int, sets: list[str]) -> tuple[str, float]:
    """One ``swapsim run``: its ``--json`` document, and the command's wall seconds."""
    exe = swapsim_command()
    cmd = [exe, "run", scenario, "-j", str(jobs), "--seed", str(seed), "--json"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout, wall


def check(scenario: str, seed: int, runs: dict[str, Any], wall: float) -> list[tuple[str, bool, str]]:
    """(criterion, passed, figures) for one scenario and seed."""
    out = []
    lock = runs[LOCKUP_ARM]
    others = [a for a in ARMS if a != LOCKUP_ARM]
    ok = (lock["outcome"] == "lockup" and lock["elapsed_s"] <= LOCKUP_WITHIN_S
          and all(runs[a]["outcome"] == "completed" for a in others))
    out.append(("outcomes", ok, f"{LOCKUP_ARM} {lock['outcome']} at {lock['elapsed_s']:.0f} s; "
                + ", ".join(f"{a} {runs[a]['outcome']}" for a in others)))
    base, patched = runs[BASE], runs[PATCHED]
    if base["outcome"] == patched["outcome"] == "completed":
        ratio = patched["elapsed_s"] / base["elapsed_s"]
        out.append(("elapsed ratio", RATIO_BAND[0] <= ratio <= RATIO_BAND[1],
                    f"{ratio:.3f} ({patched['elapsed_s']:.1f} / {base['elapsed_s']:.1f} s)"))
        sys_ratio = patched["sys_s"] / base["sys_s"]
        out.append(("Sys ratio", sys_ratio < 1, f"{sys_ratio:.2f} ({patched['sys_s']:.2f} / {base['sys_s']:.2f} s)"))
    else:
        out.append(("elapsed ratio", False, f"{BASE} {base['outcome']}, {PATCHED} {patched['outcome']}"))
    if scenario == "seed":
        out.append(("wall, four arms", wall <= WALL_SEED_S, f"{wall:.1f} s"))
    else:
        walls = {a: runs[a]["wall_s"] for a in ARMS}
        out.append(("wall, each arm", max(walls.values()) <= WALL_FULL_ARM_S,
                    ", ".join(f"{a} {w:.1f} s" for a, w in walls.items())))
    return out


def table(scenario: str, by_seed: dict[int, dict[str, Any]]) -> list[str]:
    """The README's result table: figures per seed, ratios against vanilla-slab."""
    def cell(arm: str, key: str, fmt: str) -> str:
        rs = [runs[arm] for runs in by_seed.values()]
        if any(r["outcome"] != "completed" for r in rs):
            return ""
        s = " / ".join(fmt.format(r[key]) for r in rs)
        if arm == PATCHED and all(runs[BASE]["outcome"] == "completed" for runs in by_seed.values()):
            rfmt = "{:.3f}" if key == "elapsed_s" else "{:.2f}"
            s += " (" + " / ".join(rfmt.format(runs[arm][key] / runs[BASE][key])
                                   for runs in by_seed.values()) + ")"
        return s

    def outcome(arm: str) -> str:
        rs = [runs[arm] for runs in by_seed.values()]
        if all(r["outcome"] == "completed" for r in rs):
            return "completed"
        cells = [f"{r['outcome']} at {r['elapsed_s']:.0f} s" for r in rs]
        return cells[0] if len(set(cells)) == 1 else " / ".join(cells)

    return [f"| `{scenario}`, seeds {' / '.join(map(str, by_seed))} | " + " | ".join(ARMS) + " |",
            "|---" * (len(ARMS) + 1) + "|",
            "| outcome | " + " | ".join(outcome(a) for a in ARMS) + " |",
            "| Sys (s) | " + " | ".join(cell(a, "sys_s", "{:.2f}") for a in ARMS) + " |",
            "| Elapsed (s) | " + " | ".join(cell(a, "elapsed_s", "{:.1f}") for a in ARMS) + " |"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=["seed", "seed-full", "both"], default="both")
    ap.add_argument("--seed", type=int, action="append", default=[], help="repeatable (default 1 2 3)")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="arms at once (swapsim run -j)")
    ap.add_argument("--set", action="append", default=[], dest="sets", help="KEY=VALUE, as for swapsim run")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="write each command's JSON to DIR/SCENARIO-seedS.json")
    args = ap.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    seeds = args.seed or [1, 2, 3]
    scenarios = ["seed", "seed-full"] if args.scale == "both" else [args.scale]
    print(describe(swapsim_command()), flush=True)
    failed = 0
    tables = []
    for scenario in scenarios:
        by_seed = {}
        for seed in seeds:
            doc, wall = run_scenario(scenario, seed, args.jobs, args.sets)
            if args.keep is not None:
                (args.keep / f"{scenario}-seed{seed}.json").write_text(doc)
            runs = {r["arm"]: r for r in json.loads(doc)["runs"]}
            missing = [a for a in ARMS if a not in runs]
            if missing:
                sys.exit(f"{scenario} has no arm {', '.join(missing)}: this check is for the seed scenarios")
            by_seed[seed] = runs
            for name, ok, figures in check(scenario, seed, runs, wall):
                failed += not ok
                print(f"{'✓' if ok else '✗'} {scenario:<9} seed {seed}  {name:<16} {figures}", flush=True)
        tables += table(scenario, by_seed) + [""]
    print()
    print("\n".join(tables), end="")
    print(f"{failed} check(s) failed" if failed else "all checks passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
