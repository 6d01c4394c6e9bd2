"""Tests for the SLAB plugin (swapsim.plugins.slab): SLAB of Linux 3.6."""

from __future__ import annotations

import pytest

from swapsim.mm import gfp as G
from swapsim.plugins import slab as slab_plugin
from swapsim.plugins.slab import SLABAllocator, SLABOptions, array_limit, calculate_slab_order
from swapsim.plugins.slab.allocator import S_FULL
from swapsim.slab import AllocContext

from fakepages import FakePages

ATOMIC = G.GFP_ATOMIC
ATOMIC_MEMALLOC = G.GFP_ATOMIC | G.GFP_MEMALLOC


def make(ncpus: int = 1, *, pages: FakePages | None = None, slab_pfmemalloc: bool = False,
         socks: list[int] | None = None, **opts) -> tuple[SLABAllocator, FakePages]:
    pages = pages or FakePages()
    socks = socks if socks is not None else [0]
    a = SLABAllocator(pages, ncpus=ncpus, nnodes=1, slab_pfmemalloc=slab_pfmemalloc,
                      memalloc_socks=lambda: socks[0], options=SLABOptions(**opts))
    return a, pages


CPU0 = AllocContext(cpu=0)
CPU1 = AllocContext(cpu=1)


# -- geometry ----------------------------------------------------------------

@pytest.mark.parametrize("size, limit", [
    (64, 120), (256, 120), (257, 54), (1024, 54), (1025, 24), (4096, 24), (4097, 8),
    (131072, 8), (131073, 1),
])
def test_array_limit_and_batchcount_by_size(size, limit):
    a, _ = make(ncpus=2)
    cache = a.cache(a.create_cache("c", size))
    assert cache.limit == limit == array_limit(cache.size)
    assert cache.batchcount == (limit + 1) // 2
    assert cache.arrays[1].limit == limit
    shared = cache.nodes[0].shared
    if cache.size <= 4096:
        assert shared is not None and shared.limit == 8 * cache.batchcount
    else:
        assert shared is None


def test_no_shared_array_on_one_cpu_and_free_limit():
    a, _ = make(ncpus=1)
    c = a.cache(a.create_cache("skbuff_head_cache", 256))
    assert c.nodes[0].shared is None
    assert (c.num, c.order) == (15, 0)
    assert c.nodes[0].free_limit == (1 + 1) * 60 + 15
    a4, _ = make(ncpus=4)
    c4 = a4.cache(a4.create_cache("skbuff_head_cache", 256))
    assert c4.nodes[0].free_limit == (1 + 4) * 60 + 15


@pytest.mark.parametrize("size, order, num", [
    (32, 0, 112), (64, 0, 59), (192, 0, 20), (256, 0, 15), (512, 0, 8), (1536, 1, 5),
    (2048, 0, 2), (4096, 0, 1), (8192, 1, 1), (16384, 2, 1),
])
def test_slab_order_and_objects_per_slab(size, order, num):
    align = 64 if size >= 64 else 32
    assert calculate_slab_order(size, align) == (order, num)


def test_reclaimable_cache_stops_at_first_order_and_is_counted_reclaimable():
    a, pages = make()
    dentry = a.create_cache("dentry", 1536)
    other = a.create_cache("kmalloc-1536", 1536)
    assert (a.cache(dentry).order, a.cache(dentry).num) == (0, 2)
    assert (a.cache(other).order, a.cache(other).num) == (1, 5)
    assert a.alloc(dentry, G.GFP_KERNEL, CPU0) >= 0
    assert a.alloc(other, G.GFP_KERNEL, CPU0) >= 0
    assert a.nr_slab_pages() == (1, 2)
    assert pages.calls[0][0] & G.__GFP_RECLAIMABLE
    assert not pages.calls[1][0] & G.__GFP_RECLAIMABLE


# -- alloc / free -------------------------------------------------------------

def test_round_trip_hits_the_array_without_the_page_allocator():
    a, pages = make()
    k = a.create_cache("skbuff_head_cache", 256)
    obj = a.alloc(k, ATOMIC, CPU0)
    assert obj >= 0 and len(pages.calls) == 1
    # the first refill is partial (not touched yet): one slab of 15, one handed out
    assert len(a.cache(k).arrays[0].entry) == 14
    for _ in range(1000):
        a.free(k, obj, CPU0)
        assert a.alloc(k, ATOMIC, CPU0) == obj
    assert len(pages.calls) == 1 and pages.freed == []
    # 14 more from the array, the 16th needs a new slab
    objs = {a.alloc(k, ATOMIC, CPU0) for _ in range(14)}
    assert len(objs) == 14 and obj not in objs and len(pages.calls) == 1
    assert a.alloc(k, ATOMIC, CPU0) >= 0
    assert len(pages.calls) == 2
    gfp, order = pages.calls[1]
    assert order == 0 and gfp & G.GFP_HIGH and gfp & G.__GFP_NOTRACK


def test_page_allocator_failure_is_minus_one():
    a, pages = make(pages=FakePages(free=0))
    k = a.create_cache("kmalloc-2048", 2048)
    assert a.alloc(k, ATOMIC, CPU0) == -1
    assert a.alloc(k, G.GFP_KERNEL, CPU0) == -1
    assert len(pages.calls) == 2
    assert a.cache_stats()[0].num_objs == 0


def _alloc_slabs(a, k, nslabs):
    """Allocate exactly nslabs full slabs (the array ends empty); objects grouped by slab."""
    c = a.cache(k)
    objs = [a.alloc(k, G.GFP_KERNEL, CPU0) for _ in range(nslabs * c.num)]
    assert -1 not in objs and c.arrays[0].entry == []
    by_slab: dict[int, list[int]] = {}
    for o in objs:
        by_slab.setdefault(o >> 16, []).append(o)
    assert len(by_slab) == nslabs
    return list(by_slab.values())


def test_free_limit_keeps_empty_slabs_then_destroys_beyond_it():
    a, pages = make(ncpus=1)
    k = a.create_cache("skbuff_head_cache", 256)   # num 15, limit 120, batch 60, free_limit 135
    slabs = _alloc_slabs(a, k, 20)
    l3 = a.cache(k).nodes[0]
    order = [o for s in slabs for o in s]
    for o in order[:120]:
        a.free(k, o, CPU0)
    assert l3.free_objects == 0 and len(a.cache(k).arrays[0].entry) == 120
    # 121st free flushes the oldest 60 (4 whole slabs): kept, 60 <= 135
    a.free(k, order[120], CPU0)
    assert (l3.free_objects, len(l3.free), pages.freed) == (60, 4, [])
    for o in order[121:181]:
        a.free(k, o, CPU0)
    assert (l3.free_objects, len(l3.free), pages.freed) == (120, 8, [])
    for o in order[181:241]:
        a.free(k, o, CPU0)
    # the third flush empties slabs 9..12: 135 is kept (not > free_limit), 10..12 destroyed
    assert l3.free_objects == 135 and len(l3.free) == 9
    assert pages.freed == [(1, 0, 1)] * 3
    assert a.cache(k).nr_slabs == 17 and a.nr_slab_pages() == (0, 17)


def test_flush_goes_to_the_shared_array_first():
    a, pages = make(ncpus=2)
    k = a.create_cache("skbuff_head_cache", 256)   # shared limit 8 * 60 = 480
    slabs = _alloc_slabs(a, k, 10)
    order = [o for s in slabs for o in s]
    for o in order[:121]:
        a.free(k, o, CPU0)
    c = a.cache(k)
    assert len(c.nodes[0].shared.entry) == 60 and c.nodes[0].free_objects == 0
    # another CPU refills from the shared array without touching the slabs
    got = a.alloc(k, G.GFP_KERNEL, CPU1)
    assert got in order[:60] and len(pages.calls) == 10
    assert len(c.nodes[0].shared.entry) == 60 - 16


# -- cache_reap ---------------------------------------------------------------

def test_reaper_drains_idle_arrays_every_2s_and_free_slabs_every_4s():
    a, pages = make(ncpus=1)
    k = a.create_cache("skbuff_head_cache", 256)   # created at t=0: first node reap at t=4
    c = a.cache(k)
    objs = [a.alloc(k, G.GFP_KERNEL, CPU0) for _ in range(45)]
    assert len(pages.calls) == 3
    for o in objs:
        a.free(k, o, CPU0)
    ac, l3 = c.arrays[0], c.nodes[0]
    assert len(ac.entry) == 45 and ac.touched and l3.free_touched

    assert a.periodic(0.0) == 2.0                  # touched: only the flag is cleared
    assert len(ac.entry) == 45 and not ac.touched
    a.periodic(2.0)                                # idle for 2 s: (120 + 4) // 5 = 24 go
    assert len(ac.entry) == 21
    assert (l3.free_objects, len(l3.free), len(l3.partial)) == (24, 1, 1)
    a.periodic(4.0)                                # 24 > 21 left: (21 + 1) // 2 = 11 go;
    assert len(ac.entry) == 10                     # node reap: free_touched only cleared
    assert (l3.free_objects, len(l3.free)) == (35, 2)
    assert not l3.free_touched and pages.freed == []
    a.periodic(6.0)                                # 5 go; not a node reap
    assert len(ac.entry) == 5 and pages.freed == []
    a.periodic(8.0)                                # 3 go; drain_freelist((135 + 74) // 75 = 2)
    assert len(ac.entry) == 2 and pages.freed == [(1, 0, 1)] * 2
    assert (c.nr_slabs, l3.free, l3.free_objects) == (1, [], 13)
    a.periodic(10.0)
    a.periodic(12.0)                               # the last slab empties and goes
    assert ac.entry == [] and c.nr_slabs == 0 and pages.freed == [(1, 0, 1)] * 3
    assert a.nr_slab_pages() == (0, 0)


def test_reaper_leaves_a_busy_array_alone():
    a, pages = make(ncpus=1)
    k = a.create_cache("kmalloc-512", 512)
    obj = a.alloc(k, G.GFP_KERNEL, CPU0)
    for t in range(1, 6):
        a.free(k, obj, CPU0)
        obj = a.alloc(k, G.GFP_KERNEL, CPU0)      # touched again before every reap
        a.periodic(2.0 * t)
    assert len(a.cache(k).arrays[0].entry) == 7 and pages.freed == []


# -- pfmemalloc ---------------------------------------------------------------

def _pfmemalloc_array(slab_pfmemalloc: bool, socks: int = 1):
    """An array full of objects from a pfmemalloc slab, taken by an entitled caller."""
    a, pages = make(ncpus=1, slab_pfmemalloc=slab_pfmemalloc, socks=[socks])
    k = a.create_cache("kmalloc-2048", 256)
    pages.mark_pfmemalloc = True
    reserved = a.alloc(k, ATOMIC_MEMALLOC, CPU0)
    pages.mark_pfmemalloc = False
    return a, pages, k, reserved


def test_tagged_objects_are_refused_to_unentitled_callers():
    a, pages, k, reserved = _pfmemalloc_array(True)
    c = a.cache(k)
    assert reserved >= 0 and a.is_pfmemalloc(k, reserved)
    assert len(c.arrays[0].entry) == 14 and all(o < 0 for o in c.arrays[0].entry)
    # GFP_ATOMIC cannot get a fresh page: fails although 14 objects are free
    pages.floor_atomic = pages.free + 1
    assert a.alloc(k, ATOMIC, CPU0) == -1
    assert pages.calls[-1] == (G.GFP_ATOMIC | G.__GFP_NOTRACK, 0)
    assert len(c.arrays[0].entry) == 14
    # an entitled caller gets one
    n = len(pages.calls)
    obj = a.alloc(k, ATOMIC_MEMALLOC, CPU0)
    assert obj >= 0 and a.is_pfmemalloc(k, obj) and len(pages.calls) == n
    # once a page can be had, the unentitled caller gets a tagged object and
    # its slab stops being pfmemalloc (ClearPageSlabPfmemalloc, recheck)
    pages.floor_atomic = 0
    obj2 = a.alloc(k, ATOMIC, CPU0)
    assert obj2 >= 0 and len(pages.calls) == n + 1
    assert not a.is_pfmemalloc(k, obj2)
    assert a.cache_stats()[0].pfmemalloc_slabs == 0
    assert a.diagnose()["pfmemalloc_active"] is False
    assert len(a.cache(k).nodes[0].free) == 1      # the fresh slab only proved memory exists


def test_unentitled_caller_finds_an_untagged_object_below_the_top():
    a, pages = make(ncpus=1, slab_pfmemalloc=True, socks=[1])
    k = a.create_cache("skbuff_head_cache", 256)
    normal = [a.alloc(k, ATOMIC, CPU0) for _ in range(15)]   # one ordinary slab, array empty
    pages.mark_pfmemalloc = True
    p = a.alloc(k, ATOMIC_MEMALLOC, CPU0)                  # refill from a pfmemalloc slab
    pages.mark_pfmemalloc = False
    a.free(k, normal[0], CPU0)                             # untagged
    a.free(k, p, CPU0)                                     # tagged, on top
    n = len(pages.calls)
    assert a.alloc(k, ATOMIC, CPU0) == normal[0]
    assert len(pages.calls) == n
    assert a.cache(k).arrays[0].entry[-1] == ~p             # still there, still tagged
    assert a._tagged                                        # the bulk paths look for tags


def test_without_the_switch_no_object_is_tagged_and_bulk_paths_skip_the_look():
    """Without slab-pfmemalloc no slab is pfmemalloc, so no free tags: the hint
    that lets alloc_bulk() and alloc_fast_count() skip scanning for tags stays off."""
    a, pages = make(ncpus=1, slab_pfmemalloc=False, socks=[1])
    k = a.create_cache("skbuff_head_cache", 256)
    pages.mark_pfmemalloc = True
    objs = [a.alloc(k, ATOMIC_MEMALLOC, CPU0) for _ in range(20)]
    for o in objs:
        a.free(k, o, CPU0)
    a.free_bulk(k, [a.alloc(k, ATOMIC, CPU0) for _ in range(5)], CPU0)
    assert min(a.cache(k).arrays[0].entry) >= 0 and not a._tagged
    assert a.alloc_fast_count(k, CPU0, 10) == 10


@pytest.mark.parametrize("numa", [False, True])
def test_refill_from_a_pfmemalloc_slab_fails_the_unentitled_caller(numa):
    a, pages = make(ncpus=1, slab_pfmemalloc=True, socks=[1], numa=numa)
    k = a.create_cache("kmalloc-32", 32)                 # 112 objects per slab
    pages.mark_pfmemalloc = True
    p = a.alloc(k, ATOMIC_MEMALLOC, CPU0)
    pages.mark_pfmemalloc = False
    assert a.shrink(k) == 0                               # arrays back to the (kept) slab
    c = a.cache(k)
    assert c.arrays[0].entry == [] and c.nodes[0].free_objects == 111
    n = len(pages.calls)
    obj = a.alloc(k, ATOMIC, CPU0)
    # the refill took a batch of 60 tagged objects that the caller may not use
    assert len(c.arrays[0].entry) == 60 and all(o < 0 for o in c.arrays[0].entry)
    assert len(pages.calls) == n                          # and it did not try to grow
    if numa:
        # ____cache_alloc_node takes one straight off the slab: no pfmemalloc check
        assert obj >= 0 and obj >> 16 == p >> 16 and a.is_pfmemalloc(k, obj)
        assert c.nodes[0].free_objects == 111 - 61
    else:
        assert obj == -1 and c.nodes[0].free_objects == 111 - 60


def test_without_slab_pfmemalloc_nothing_is_tagged():
    a, pages, k, reserved = _pfmemalloc_array(False)
    c = a.cache(k)
    assert not a.is_pfmemalloc(k, reserved)
    assert all(o >= 0 for o in c.arrays[0].entry)
    pages.floor_atomic = pages.free + 1
    n = len(pages.calls)
    assert a.alloc(k, ATOMIC, CPU0) >= 0 and len(pages.calls) == n
    assert a.cache_stats()[0].pfmemalloc_slabs == 0


def test_no_tags_without_memalloc_sockets():
    a, pages, k, reserved = _pfmemalloc_array(True, socks=0)
    c = a.cache(k)
    assert a.is_pfmemalloc(k, reserved)                   # the slab is flagged ...
    assert all(o >= 0 for o in c.arrays[0].entry)         # ... but nothing is tagged
    pages.floor_atomic = pages.free + 1
    assert a.alloc(k, ATOMIC, CPU0) >= 0


# -- plugin ---------------------------------------------------------------------

def test_plugin_registers_slab_with_the_factory_signature():
    got = []
    slab_plugin.swapsim_register_slab_allocators(
        register=lambda name, factory, *, options=None, description="":
        got.append((name, factory, options, description)))
    assert [(n, f, o) for n, f, o, _ in got] == [("slab", SLABAllocator, SLABOptions)]
    a = got[0][1](FakePages(), ncpus=2, nnodes=1, slab_pfmemalloc=True,
                  memalloc_socks=lambda: 0, options=None)
    assert a.name == "slab" and a.periodic(0.0) == 2.0


def test_options_structure_from_toml_values():
    from swapsim.config import ConfigError, structure
    opts = structure({"reap_interval": "500ms", "numa": True}, SLABOptions)
    assert opts.reap_interval == 0.5 and opts.numa and opts.slab_max_order == 1
    with pytest.raises(ConfigError):
        structure({"reap_intervall": 1}, SLABOptions)


# -- invariants under a random workload ----------------------------------------

@pytest.mark.parametrize("seed, numa, nnodes", [(0, False, 1), (1, True, 2), (2, False, 1)])
def test_random_workload_keeps_invariants(seed, numa, nnodes):
    import random
    rng = random.Random(seed)
    pages = FakePages(free=3000)
    socks = [1]
    a = SLABAllocator(pages, ncpus=4, nnodes=nnodes, slab_pfmemalloc=True,
                      memalloc_socks=lambda: socks[0], options=SLABOptions(numa=numa))
    ks = [a.create_cache(n, s) for n, s in (("skbuff_head_cache", 256), ("kmalloc-2048", 2048),
                                             ("radix_tree_node", 560))]
    live: dict[int, list[int]] = {k: [] for k in ks}
    gfps = [ATOMIC, ATOMIC_MEMALLOC, G.GFP_KERNEL]
    failures = 0
    for step in range(8000):
        k = rng.choice(ks)
        ctx = AllocContext(cpu=rng.randrange(4))
        pages.mark_pfmemalloc = rng.random() < 0.1
        pages.floor_atomic = rng.choice([0, 0, pages.free + 1])
        socks[0] = rng.choice([0, 1, 1, 1])
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
        if step % 400 == 0:
            a.periodic(step / 200)
    assert failures > 0                            # the floors did bite
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
        assert st.pages == d["slabs"] << d["order"]
        c = a.cache(k)
        for node, l3 in enumerate(c.nodes):
            assert l3.free_objects == sum(c.num - a._sinuse[sid] for sid in
                                          [*l3.partial, *l3.free])
            assert l3.nr_full == sum(1 for sid, cid in enumerate(a._scache) if cid == k
                                     and a._snode[sid] == node and a._sstate[sid] == S_FULL)
