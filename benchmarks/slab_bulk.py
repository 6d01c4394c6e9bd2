"""Throughput of the slab allocators' bulk API compared with single calls.

``SlabAllocator.alloc_bulk``/``free_bulk`` exist so that the network model
can allocate and free many objects per call (one call per NAPI poll or per
request instead of one per object).  They must behave exactly like the same
number of ``alloc``/``free`` calls; the only reason to have them is speed.
This script measures that speed for SLAB and SLUB, in one process.

The workload: ``--objects`` objects (default 1M) of one cache, allocated and
freed in batches of ``--batch`` (default 64): allocate a batch, free it in
the order it was allocated (as a ring is drained), repeat.  It is run on two
fresh, identical allocators, one with a loop of ``alloc``/``free`` calls per
batch and one with one ``alloc_bulk`` and one ``free_bulk`` call per batch,
for two object sizes: 256 B (skbuff_head_cache: SLAB's per-CPU array holds
120, so a batch of 64 is served from it) and 2048 B (kmalloc-2048: SLAB's
array holds only 24, so every batch refills and flushes).  The page source
never fails.  Wall time is ``time.perf_counter`` around the whole loop, with
the garbage collector off (as ``timeit`` does), best of ``--repeat``.

Printed per allocator and size: objects/s (an object = one allocation plus
one free) for single calls and for bulk calls, and the ratio bulk/single.
The script then checks that both ways returned the same handles (a running
checksum) and left the same ``diagnose()`` state; if not, it exits 1.

Usage::

    python benchmarks/slab_bulk.py [--objects 1000000] [--batch 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from typing import Any

from swapsim.mm import gfp as G
from swapsim.plugins.slab import SLABAllocator
from swapsim.plugins.slub import SLUBAllocator
from swapsim.slab import AllocContext, SlabAllocator

ALLOCATORS = {"slab": SLABAllocator, "slub": SLUBAllocator}
SIZES = [("skbuff_head_cache", 256), ("kmalloc-2048", 2048)]


class Pages:
    """A page source that never runs out and never marks blocks pfmemalloc."""

    now = 0.0

    def alloc_nosleep(self, gfp: int, order: int, ctx: AllocContext) -> tuple[int, bool]:
        return 0, False

    def free_pages(self, zone: int, order: int, count: int = 1) -> None:
        pass

    def pfmemalloc_allowed(self, gfp: int, ctx: AllocContext) -> bool:
        return bool(gfp & G.GFP_MEMALLOC) and not gfp & G.GFP_NOMEMALLOC


def make(kind: str, name: str, size: int) -> tuple[SlabAllocator, int]:
    a = ALLOCATORS[kind](Pages(), ncpus=2, memalloc_socks=lambda: 0)
    return a, a.create_cache(name, size)


def run_single(a: SlabAllocator, cache: int, batches: int, batch: int) -> int:
    ctx = AllocContext(cpu=0)
    gfp = G.GFP_ATOMIC
    alloc, free = a.alloc, a.free
    check = 0
    for _ in range(batches):
        objs = []
        for _ in range(batch):
            obj = alloc(cache, gfp, ctx)
            if obj < 0:
                break
            objs.append(obj)
        check = (check * 31 + sum(objs)) & 0xFFFFFFFF
        for obj in objs:
            free(cache, obj, ctx)
    return check


def run_bulk(a: SlabAllocator, cache: int, batches: int, batch: int) -> int:
    ctx = AllocContext(cpu=0)
    gfp = G.GFP_ATOMIC
    alloc_bulk, free_bulk = a.alloc_bulk, a.free_bulk
    check = 0
    for _ in range(batches):
        objs = alloc_bulk(cache, gfp, ctx, batch)
        check = (check * 31 + sum(objs)) & 0xFFFFFFFF
        free_bulk(cache, objs, ctx)
    return check


def bench(kind: str, name: str, size: int, run: Any, batches: int, batch: int,
          repeat: int) -> tuple[float, int, dict]:
    """Best wall time over ``repeat`` fresh allocators; the checksum and final state."""
    best = float("inf")
    result: tuple[int, dict] | None = None
    for _ in range(repeat):
        a, cache = make(kind, name, size)
        gc_was = gc.isenabled()
        gc.disable()
        try:
            t0 = time.perf_counter()
            check = run(a, cache, batches, batch)
            elapsed = time.perf_counter() - t0
        finally:
            if gc_was:
                gc.enable()
        best = min(best, elapsed)
        got = (check, a.diagnose())
        if result is None:
            result = got
        elif got != result:
            raise SystemExit(f"{kind}: not deterministic across repeats")
    assert result is not None
    return best, result[0], result[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objects", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    if args.objects < 1 or args.batch < 1 or args.repeat < 1:
        p.error("--objects, --batch and --repeat must be positive")
    batches = -(-args.objects // args.batch)
    nobj = batches * args.batch
    print(f"workload  {nobj} objects in batches of {args.batch} (alloc batch, free it "
          f"oldest first), CPU 0 of 2, best of {args.repeat}")
    print(f"{'allocator':10} {'cache':18} {'single obj/s':>13} {'bulk obj/s':>13} {'ratio':>7}")
    status = 0
    for kind in ALLOCATORS:
        for name, size in SIZES:
            t1, c1, d1 = bench(kind, name, size, run_single, batches, args.batch, args.repeat)
            t2, c2, d2 = bench(kind, name, size, run_bulk, batches, args.batch, args.repeat)
            print(f"{kind:10} {name:18} {nobj / t1:13.0f} {nobj / t2:13.0f} {t1 / t2:6.2f}x")
            if (c1, d1) != (c2, d2):
                print(f"MISMATCH  {kind} {name}: bulk and single calls differ "
                      f"(checksum {c2:#x} vs {c1:#x}, or diagnose())")
                status = 1
    if not status:
        print("agree     same handles and same diagnose() state with bulk and single calls")
    return status


if __name__ == "__main__":
    sys.exit(main())
