"""Run the arms of ``seed-full`` (or another scenario) and print what they cost.

Per arm: wall seconds, simulated seconds, the workload's Sys seconds,
simulated page touches per wall second, peak RSS of the process that ran it,
and bytes of RSS per simulated (virtual) page.  Each arm runs in a fresh child process so that its peak RSS
is its own.

    python benchmarks/seed_full.py                       # all four arms at 2 GiB
    python benchmarks/seed_full.py --arm swapnbd-slab    # one arm
    python benchmarks/seed_full.py --set machine.memory=256MiB   # quick look

Targets (issue 3): ≤ 120 s wall per full-scale arm.

The same code runs at very different speeds on different days of a shared
machine (the 2 GiB vanilla-slab arm took 136.5 s on one and 251.6 s on
another).  So that figures can be compared across machines, the script first
times a fixed pure-Python baseline, SimPy running benchmarks/engine.py's
100-process model (best of 3, the same in every run), and prints each arm's
wall time also as a multiple of it ("× ref").  ``--no-ref`` skips it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
import warnings
from pathlib import Path


def run_one(scenario: str, arm: str, sets: list[str], seed: int, queue: mp.Queue) -> None:
    warnings.simplefilter("ignore")
    from swapsim.config import build_scenario
    from swapsim.pluginmanager import get_plugin_manager
    from swapsim.simulation import Simulation
    pm = get_plugin_manager()
    raw = pm.lookup("scenarios", scenario).factory()
    scen = build_scenario(raw, scenario, sets, seed=seed, arms=[arm])
    sim = Simulation(scen.arms[0].config, pm, arm)
    t0 = time.perf_counter()
    result = sim.run()
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queue.put({"arm": arm, "outcome": result.outcome, "wall_s": wall,
               "sim_s": result.sim_time_s, "elapsed_s": result.elapsed_s,
               "sys_s": result.sys_s, "user_s": result.user_s,
               "touches": result.pages_touched, "peak_rss": rss,
               "pages": sim.mm.pages.nr, "state_bytes_per_page": sim.mm.pages.bytes_per_page()})


def machine_reference() -> float:
    """Best-of-3 wall seconds of SimPy on engine.py's 100-process model."""
    sys.path.insert(0, str(Path(__file__).parent))
    import simpy
    from engine import PROCS, REPEAT, UNTIL, bench, make_delays
    seconds, _ = bench(simpy.Environment, make_delays(PROCS), UNTIL, REPEAT)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="seed-full")
    ap.add_argument("--arm", action="append", default=[])
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-ref", action="store_true", help="do not time the machine reference")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from swapsim.pluginmanager import get_plugin_manager
    raw = get_plugin_manager().lookup("scenarios", args.scenario).factory()
    arms = args.arm or list(raw.get("arms", {"main": {}}))
    ctx = mp.get_context("spawn")
    # the interpreter's build matters: one built with PGO and LTO (Debian's
    # python3, python.org's) runs swapsim 10-20 % faster than one built without
    # (pyenv's default)
    print(f"interpreter: {sys.executable}, Python {sys.version.split()[0]}")
    ref = None if args.no_ref else machine_reference()
    if ref:
        print(f"machine reference: SimPy, engine.py's 100-process model, {ref:.3f} s (best of 3)")
    print(f"{'arm':<14} {'outcome':<10} {'wall s':>8} {'× ref':>7} {'sim s':>9} {'Sys s':>7} "
          f"{'touches/wall s':>15} {'peak RSS MiB':>13} {'RSS B/page':>11} {'state B/page':>13}")
    rows = []
    for arm in arms:
        q: mp.Queue = ctx.Queue()
        p = ctx.Process(target=run_one, args=(args.scenario, arm, args.sets, args.seed, q))
        p.start()
        row = q.get()
        p.join()
        row["ref_s"] = ref
        rows.append(row)
        times_ref = f"{row['wall_s'] / ref:>7.1f}" if ref else f"{'-':>7}"
        print(f"{row['arm']:<14} {row['outcome']:<10} {row['wall_s']:>8.1f} {times_ref} {row['sim_s']:>9.1f} "
              f"{row['sys_s']:>7.2f} "
              f"{row['touches'] / row['wall_s']:>15,.0f} {row['peak_rss'] / 2**20:>13.0f} "
              f"{row['peak_rss'] / row['pages']:>11.1f} {row['state_bytes_per_page']:>13}",
              flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
