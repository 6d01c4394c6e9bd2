"""Event throughput of swapsim's engine compared with SimPy's, on the same model.

swapsim ships its own small discrete-event core (``swapsim.engine``) instead of
depending on SimPy. The only reason to do that is speed: per-event overhead
sets how long a simulation of kswapd, direct reclaim and network swap takes.
This script checks that the engine is worth keeping by running the SAME model
on both engines, in one process, and reporting events per second for each.

The model has ``--procs`` generator processes. Each one loops on
``yield env.timeout(d)``. Its delays come from a fixed list drawn from
``random.Random(i)`` before any timing starts, so no random-number cost is
measured and both engines see exactly the same schedule. Each engine runs until
the simulated time ``--until``. The model counts its own timeouts (only those
that complete strictly before ``--until``, so that the engines' different rules
for events exactly at the limit cannot matter). So "events" means the same
thing for both engines, whatever each counts internally.

For each engine the wall time (``time.perf_counter``, best of ``--repeat``)
covers building the environment and processes and running it. The script
prints events/s for both engines and the ratio swapsim/SimPy (the target is
>= 1.0x). It then checks that the per-process timeout counts are identical: if
they differ, the engines do not run the same model, and the script exits 1.

Usage::

    python benchmarks/engine.py [--procs 100] [--until 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from typing import Callable

import simpy

from swapsim.engine import Environment

DELAYS_PER_PROC = 1024  # the per-process delay list is cycled
#: the default model (seed_full.py times SimPy on it as its machine reference)
PROCS, UNTIL, REPEAT = 100, 20000.0, 3


def make_delays(procs: int) -> list[list[float]]:
    """Per-process delay sequences, mean 2.0 simulated seconds."""
    out = []
    for i in range(procs):
        rng = random.Random(i)
        out.append([rng.uniform(0.5, 3.5) for _ in range(DELAYS_PER_PROC)])
    return out


def worker(env, delays: list[float], counts: list[int], i: int, until: float):
    """Loop forever on timeouts; count those completing before ``until``."""
    timeout = env.timeout
    n = len(delays)
    k = 0
    while True:
        yield timeout(delays[k])
        k += 1
        if k == n:
            k = 0
        if env.now < until:
            counts[i] += 1


def run_model(make_env: Callable[[], object], delays: list[list[float]], until: float) -> list[int]:
    env = make_env()
    counts = [0] * len(delays)
    for i, d in enumerate(delays):
        env.process(worker(env, d, counts, i, until))
    env.run(until=until)
    return counts


def bench(make_env, delays, until, repeat) -> tuple[float, list[int]]:
    """Best wall time over ``repeat`` runs, and the counts (same on every run)."""
    best = float("inf")
    counts: list[int] | None = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        c = run_model(make_env, delays, until)
        elapsed = time.perf_counter() - t0
        best = min(best, elapsed)
        if counts is None:
            counts = c
        elif c != counts:
            raise SystemExit("engine is not deterministic across repeats")
    assert counts is not None
    return best, counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--procs", type=int, default=PROCS)
    p.add_argument("--until", type=float, default=UNTIL)
    p.add_argument("--repeat", type=int, default=REPEAT)
    args = p.parse_args(argv)
    if args.procs < 1 or args.until <= 0 or args.repeat < 1:
        p.error("--procs, --until and --repeat must be positive")

    delays = make_delays(args.procs)
    t_ss, c_ss = bench(Environment, delays, args.until, args.repeat)
    t_sp, c_sp = bench(simpy.Environment, delays, args.until, args.repeat)

    ev_ss = sum(c_ss) / t_ss
    ev_sp = sum(c_sp) / t_sp
    print(f"model    {args.procs} procs, until={args.until:g}, "
          f"{sum(c_ss)} timeouts, best of {args.repeat}")
    print(f"swapsim  {ev_ss:10.0f} events/s  ({t_ss:.3f} s)")
    print(f"simpy    {ev_sp:10.0f} events/s  ({t_sp:.3f} s)")
    print(f"ratio    {ev_ss / ev_sp:10.2f}x (target >= 1.0x)")
    if c_ss != c_sp:
        bad = sum(a != b for a, b in zip(c_ss, c_sp))
        print(f"MISMATCH {bad} of {args.procs} processes have different timeout counts "
              f"(swapsim {sum(c_ss)} vs simpy {sum(c_sp)})")
        return 1
    print(f"agree    per-process timeout counts identical on both engines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
