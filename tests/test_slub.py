"""Tests for the SLUB plugin (swapsim.plugins.slub): SLUB of Linux 3.6."""

from __future__ import annotations

import pytest

from swapsim.mm import gfp as G
from swapsim.plugins import slub as slub_plugin
from swapsim.plugins.slub import (SLUBAllocator, SLUBOptions, calculate_order, cpu_partial_for,
                                  min_partial_for)
from swapsim.slab import AllocContext

from fakepages import FakePages

ATOMIC = G.GFP_ATOMIC
ATOMIC_MEMALLOC = G.GFP_ATOMIC | G.GFP_MEMALLOC


def make(ncpus: int = 2, *, pages: FakePages | None = None, slab_pfmemalloc: bool = False,
         **opts) -> tuple[SLUBAllocator, FakePages]:
    pages = pages or FakePages()
    a = SLUBAllocator(pages, ncpus=ncpus, nnodes=1, slab_pfmemalloc=slab_pfmemalloc,
                      memalloc_socks=lambda: 1, options=SLUBOptions(**opts))
    return a, pages


CPU0 = AllocContext(cpu=0)
CPU1 = AllocContext(cpu=1)


# -- geometry ----------------------------------------------------------------

@pytest.mark.parametrize("size, cpu_partial, min_partial", [
    (8, 30, 5), (64, 30, 5), (255, 13, 5), (512, 13, 5), (1024, 6, 5), (2048, 6, 5),
    (4096, 2, 6), (16384, 2, 7), (1 << 20, 2, 10), (1 << 22, 2, 10),
])
def test_cpu_partial_and_min_partial(size, cpu_partial, min_partial):
    a, _ = make()
    s = a.cache(a.create_cache("c", size))
    assert (s.cpu_partial, s.min_partial) == (cpu_partial, min_partial)
    assert cpu_partial_for(s.size) == cpu_partial and min_partial_for(s.size) == min_partial


@pytest.mark.parametrize("ncpus, size, order", [
    (4, 256, 0), (4, 512, 1), (4, 1024, 2), (4, 2048, 3), (4, 4096, 3), (8, 256, 1),
    (8, 1024, 3), (1, 2048, 2), (4, 8192, 3), (4, 65536, 4),
])
def test_calculate_order(ncpus, size, order):
    assert calculate_order(size, ncpus) == order


def test_oo_and_min():
    a, _ = make(ncpus=4)
    s = a.cache(a.create_cache("kmalloc-2048", 2048))
    assert (s.order, s.objects, s.min_order, s.min_objects_) == (3, 16, 0, 2)
    s = a.cache(a.create_cache("kmalloc-8192", 8192))
    assert (s.order, s.objects, s.min_order, s.min_objects_) == (3, 4, 1, 1)


# -- alloc / free -------------------------------------------------------------

def test_fast_path_round_trip_uses_the_cpu_freelist_only():
    a, pages = make()
    k = a.create_cache("skbuff_head_cache", 256)      # order 0, 16 objects
    obj = a.alloc(k, ATOMIC, CPU0)
    assert obj >= 0 and len(pages.calls) == 1
    for _ in range(1000):
        a.free(k, obj, CPU0)
        assert a.alloc(k, ATOMIC, CPU0) == obj
    objs = [a.alloc(k, ATOMIC, CPU0) for _ in range(15)]
    assert len(set(objs)) == 15 and len(pages.calls) == 1
    a.alloc(k, ATOMIC, CPU0)
    assert len(pages.calls) == 2 and pages.freed == []


def test_page_allocator_failure_is_minus_one():
    a, pages = make(pages=FakePages(free=0))
    k = a.create_cache("kmalloc-2048", 2048)
    assert a.alloc(k, ATOMIC, CPU0) == -1
    assert [o for _, o in pages.calls] == [3, 0]
    assert a.nr_slab_pages() == (0, 0)


def test_high_order_try_then_fallback_to_min_order():
    a, pages = make(ncpus=4)
    k = a.create_cache("kmalloc-2048", 2048)
    pages.refuse_orders = {3}
    gfp = ATOMIC | G.GFP_NOFAIL
    obj = a.alloc(k, gfp, CPU0)
    assert obj >= 0
    (g1, o1), (g2, o2) = pages.calls
    assert (o1, o2) == (3, 0)
    assert g1 & G.GFP_NORETRY and g1 & G.GFP_NOWARN and not g1 & G.GFP_NOFAIL
    assert g1 & G.GFP_COMP and g1 & G.GFP_HIGH
    assert g2 & G.GFP_NOFAIL and not g2 & G.GFP_NORETRY
    assert a.nr_slab_pages() == (0, 1) and a.cache(k).order_fallbacks == 1
    # an order-0 fallback slab holds 2 objects: the third allocation tries order 3 again
    assert a.alloc(k, ATOMIC, CPU0) >= 0 and len(pages.calls) == 2
    pages.refuse_orders = set()
    assert a.alloc(k, ATOMIC, CPU0) >= 0
    assert pages.calls[2][1] == 3 and len(pages.calls) == 3
    assert a.nr_slab_pages() == (0, 9)


def test_a_caller_that_may_reclaim_is_asked_to_before_the_fallback():
    """The order-3 attempt of a __GFP_WAIT caller would direct-reclaim in the page
    allocator: SLUB hands that to the sleeping caller (ctx.reclaim_order) and, once
    called again with ctx.reclaimed, tries order 3 once more, then falls back."""
    a, pages = make(ncpus=4)
    k = a.create_cache("kmalloc-2048", 2048)
    pages.refuse_orders = {3}
    ctx = AllocContext(cpu=0, may_reclaim=True)
    assert a.alloc(k, G.GFP_NOIO, ctx) == -1
    assert ctx.reclaim_order == 3 and [o for _, o in pages.calls] == [3]
    ctx.reclaim_order, ctx.reclaimed = -1, True
    assert a.alloc(k, G.GFP_NOIO, ctx) >= 0
    assert [o for _, o in pages.calls] == [3, 3, 0] and not ctx.reclaimed
    assert ctx.reclaim_order == -1 and a.cache(k).order_fallbacks == 1
    # an order-0 cache has nothing to fall back to: no request, plain failure
    k0 = a.create_cache("skbuff_head_cache", 256)
    pages.refuse_orders = {0}
    assert a.alloc(k0, G.GFP_NOIO, ctx) == -1 and ctx.reclaim_order == -1


def _full_slabs(a, k, n, ctx=CPU0):
    """Allocate n slabs' worth of objects on one CPU; objects grouped by slab, in order."""
    s = a.cache(k)
    objs = [a.alloc(k, G.GFP_KERNEL, ctx) for _ in range(n * s.objects)]
    assert -1 not in objs
    by_slab: dict[int, list[int]] = {}
    for o in objs:
        by_slab.setdefault(o >> 16, []).append(o)
    assert len(by_slab) == n
    return list(by_slab.values())


def test_empty_slab_kept_up_to_min_partial_then_freed_at_once():
    a, pages = make(ncpus=2)
    k = a.create_cache("kmalloc-4096", 4096)           # order 3, 8 objects, cpu_partial 2,
    s = a.cache(k)                                     # min_partial 6
    assert (s.order, s.objects, s.cpu_partial, s.min_partial) == (3, 8, 2, 6)
    slabs = _full_slabs(a, k, 11)                      # slabs 0..9 full, 10 is CPU0's cpu slab
    # one free from each of slabs 0..3 on CPU1: full slabs are frozen onto CPU1's partial
    # list; the 4th finds pobjects 3 > cpu_partial and unfreezes 0..2 to the node
    for sl in slabs[:4]:
        a.free(k, sl[0], CPU1)
    # unfreeze_partials walks the cpu list from its head: the node list gets 2, 1, 0
    assert list(s.partial[0]) == [sl[0] >> 16 for sl in reversed(slabs[:3])]
    assert s.cpus[1].partial == [slabs[3][0] >> 16]
    # slab 0 empties on the node partial list: 3 partial slabs <= min_partial, kept
    for o in slabs[0][1:]:
        a.free(k, o, CPU0)
    assert pages.freed == [] and (slabs[0][0] >> 16) in s.partial[0]
    # more single frees: two more unfreezes bring the node list to 9 > min_partial
    for sl in slabs[4:10]:
        a.free(k, sl[0], CPU1)
    assert len(s.partial[0]) == 9
    for o in slabs[1][1:]:
        a.free(k, o, CPU0)
    assert pages.freed == [(1, 3, 1)]                  # returned to the page allocator at once
    assert (slabs[1][0] >> 16) not in s.partial[0] and len(s.partial[0]) == 8
    assert a.nr_slab_pages() == (0, 10 * 8)


def test_get_partial_fills_the_cpu_partial_list():
    a, pages = make(ncpus=2)
    k = a.create_cache("kmalloc-4096", 4096)
    s = a.cache(k)
    slabs = _full_slabs(a, k, 11)
    for sl in slabs[:10]:
        a.free(k, sl[0], CPU1)                         # node partial: slabs 0..8
    node = list(s.partial[0])
    assert node == [2, 1, 0, 5, 4, 3, 8, 7, 6]         # unfreeze order, see above
    n = len(pages.calls)
    obj = a.alloc(k, G.GFP_KERNEL, CPU0)               # cpu slab exhausted: slow path
    assert obj == slabs[2][0] and len(pages.calls) == n
    # 3.6 counts 0 available for the first slab, so it takes slabs until > cpu_partial/2
    assert s.cpus[0].page == 2 and s.cpus[0].partial == [1, 0]
    assert list(s.partial[0]) == node[3:]
    # the cpu slab had one free object: the next allocation takes slab 0 from the cpu
    # partial list (the top), without touching the node list
    assert a.alloc(k, G.GFP_KERNEL, CPU0) == slabs[0][0]
    assert s.cpus[0].page == 0 and s.cpus[0].partial == [1]


# -- pfmemalloc ---------------------------------------------------------------

def _pfmemalloc_cpu_slab(slab_pfmemalloc: bool):
    """CPU0's cpu slab comes from the reserve (an entitled caller grew it)."""
    a, pages = make(ncpus=2, slab_pfmemalloc=slab_pfmemalloc)
    k = a.create_cache("skbuff_head_cache", 256)       # 16 objects per slab
    pages.mark_pfmemalloc = True
    first = a.alloc(k, ATOMIC_MEMALLOC, CPU0)
    pages.mark_pfmemalloc = False
    return a, pages, k, first


def test_fast_path_hands_pfmemalloc_objects_to_anyone():
    a, pages, k, first = _pfmemalloc_cpu_slab(True)
    assert a.is_pfmemalloc(k, first)
    pages.floor_atomic = pages.free + 1                # no page for an unentitled caller
    objs = [a.alloc(k, ATOMIC, CPU0) for _ in range(15)]
    assert -1 not in objs and all(a.is_pfmemalloc(k, o) for o in objs)
    assert len(pages.calls) == 1


def test_slow_path_deactivates_a_pfmemalloc_cpu_slab_for_unentitled_callers():
    a, pages, k, first = _pfmemalloc_cpu_slab(True)
    s = a.cache(k)
    objs = [first] + [a.alloc(k, ATOMIC, CPU0) for _ in range(15)]   # cpu freelist empty
    a.free(k, objs[0], CPU1)                           # remote free: page freelist, frozen
    sid = first >> 16
    # slow path: the cpu slab does not match, is deactivated to the node partial list,
    # skipped by the partial search, and a new slab is grown with the caller's gfp
    pages.floor_atomic = pages.free + 1
    assert a.alloc(k, ATOMIC, CPU0) == -1              # fails although an object is free
    assert s.cpus[0].page == -1 and list(s.partial[0]) == [sid]
    assert pages.calls[-1][1] == 0 and pages.calls[-2][1] == 0 and len(pages.calls) == 3
    pages.floor_atomic = 0
    obj = a.alloc(k, ATOMIC, CPU0)
    assert obj >= 0 and obj >> 16 != sid and not a.is_pfmemalloc(k, obj)
    assert list(s.partial[0]) == [sid] and len(pages.calls) == 4
    # an entitled caller on the other CPU takes the pfmemalloc slab from the partial list
    assert a.alloc(k, ATOMIC_MEMALLOC, CPU1) == objs[0]
    assert s.cpus[1].page == sid and not s.partial[0]
    assert a.cache_stats()[0].pfmemalloc_slabs == 1


def test_without_slab_pfmemalloc_the_slow_path_does_not_check():
    a, pages, k, first = _pfmemalloc_cpu_slab(False)
    s = a.cache(k)
    assert not a.is_pfmemalloc(k, first)
    objs = [first] + [a.alloc(k, ATOMIC, CPU0) for _ in range(15)]
    a.free(k, objs[0], CPU1)
    pages.floor_atomic = pages.free + 1
    assert a.alloc(k, ATOMIC, CPU0) == objs[0]          # get_freelist: the remote free
    assert s.cpus[0].page == first >> 16 and len(pages.calls) == 1
    assert a.cache_stats()[0].pfmemalloc_slabs == 0


def test_shrink_and_stats():
    a, pages = make(ncpus=2)
    k = a.create_cache("skbuff_head_cache", 256)
    objs = [a.alloc(k, ATOMIC, CPU0) for _ in range(40)]   # 3 slabs
    st = a.cache_stats()[0]
    assert (st.num_objs, st.pages, st.active_objs) == (48, 3, 48)
    for o in objs:
        a.free(k, o, CPU0)
    assert a.diagnose()["caches"]["skbuff_head_cache"]["free_objects"] == 48
    assert a.shrink(k) == 3 and pages.freed == [(1, 0, 1)] * 3
    assert a.nr_slab_pages() == (0, 0)


# -- plugin ---------------------------------------------------------------------

def test_plugin_registers_slub_with_the_factory_signature():
    got = []
    slub_plugin.swapsim_register_slab_allocators(
        register=lambda name, factory, *, options=None, description="":
        got.append((name, factory, options)))
    assert got == [("slub", SLUBAllocator, SLUBOptions)]
    a = SLUBAllocator(FakePages(), ncpus=4, nnodes=1, slab_pfmemalloc=True,
                      memalloc_socks=lambda: 0, options=None)
    assert a.name == "slub" and a.periodic(0.0) is None


# -- invariants under a random workload ----------------------------------------

@pytest.mark.parametrize("seed, nnodes", [(0, 1), (1, 2), (2, 1)])
def test_random_workload_keeps_invariants(seed, nnodes):
    import random
    rng = random.Random(seed)
    pages = FakePages(free=3000)
    a = SLUBAllocator(pages, ncpus=4, nnodes=nnodes, slab_pfmemalloc=True,
                      memalloc_socks=lambda: 1, options=None)
    ks = [a.create_cache(n, s) for n, s in (("skbuff_head_cache", 256), ("kmalloc-2048", 2048),
                                             ("radix_tree_node", 560))]
    live: dict[int, list[int]] = {k: [] for k in ks}
    gfps = [ATOMIC, ATOMIC_MEMALLOC, G.GFP_KERNEL]
    failures = 0
    for _ in range(8000):
        k = rng.choice(ks)
        ctx = AllocContext(cpu=rng.randrange(4))
        pages.mark_pfmemalloc = rng.random() < 0.1
        pages.floor_atomic = rng.choice([0, 0, pages.free + 1])
        pages.refuse_orders = {3} if rng.random() < 0.3 else set()
        if rng.random() < 0.52 or not live[k]:
            obj = a.alloc(k, rng.choice(gfps), ctx)
            if obj < 0:
                failures += 1
            else:
                live[k].append(obj)
        else:
            i = rng.randrange(len(live[k]))
            live[k][i], live[k][-1] = live[k][-1], live[k][i]
            a.free(k, live[k].pop(), ctx)
    assert failures > 0
    handles = [o for v in live.values() for o in v]
    assert len(handles) == len(set(handles))
    reclaimable, unreclaimable = a.nr_slab_pages()
    assert 3000 - pages.free == reclaimable + unreclaimable > 0
    assert reclaimable == a.cache_stats()[2].pages
    diag = a.diagnose()["caches"]
    for k, st in zip(ks, a.cache_stats()):
        d = diag[st.name]
        assert d["in_use"] == len(live[k])
        assert d["objects"] == st.num_objs == d["in_use"] + d["free_objects"]
        s = a.cache(k)
        for node, partial in enumerate(s.partial):   # node partial lists: unfrozen, not full
            assert all(not a._sfrozen[sid] and a._sfree[sid] for sid in partial)
        for c in s.cpus:                              # cpu freelists belong to the cpu slab
            assert all(o >> 16 == c.page for o in c.freelist)
    a.shrink(ks[0])                                   # flush every CPU, drop empty slabs
    s = a.cache(ks[0])
    d = a.diagnose()["caches"]["skbuff_head_cache"]
    assert d["in_use"] == len(live[ks[0]])
    assert all(c.page == -1 and not c.partial for c in s.cpus)
    used = {o >> 16 for o in live[ks[0]]}
    assert d["slabs"] == len(used) and d["pages"] == len(used)
