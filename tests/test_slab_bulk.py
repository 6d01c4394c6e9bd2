"""Bulk slab and rx-buffer APIs: exactly the same number of single calls.

Every test runs two identical worlds side by side, one driven through
``alloc_bulk``/``free_bulk`` and one through loops of ``alloc``/``free``, and
after every step compares the returned handles, ``diagnose()``,
``cache_stats()``, ``nr_slab_pages()``, every call the allocator made to its
page source, and a deep snapshot of the allocator's internal state.
"""

from __future__ import annotations

import copyreg
import io
import pickle
import random
from types import SimpleNamespace
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swapsim.cpu import Task
from swapsim.mm import gfp as G
from swapsim.plugins.rxbuf import KmallocRx, PageFragRx
from swapsim.plugins.slab import allocator as slab_allocator
from swapsim.plugins.slab import SLABAllocator, SLABOptions
from swapsim.plugins.slub import SLUBAllocator, SLUBOptions
from swapsim.plugins.slub import allocator as slub_allocator
from swapsim.slab import AllocContext, SlabAllocator

from fakepages import FakePages

ATOMIC = G.GFP_ATOMIC
GFPS = [G.GFP_ATOMIC, G.GFP_ATOMIC | G.GFP_MEMALLOC, G.GFP_KERNEL,
        G.GFP_ATOMIC | G.GFP_NOMEMALLOC, G.GFP_KERNEL | G.GFP_MEMALLOC]
#: tasks by kind: interrupt context, an ordinary task, a PF_MEMALLOC task
TASKS = [None, Task(pid=1, comm="t"), Task(pid=2, comm="t", flags=G.PF_MEMALLOC)]
CACHES = [("skbuff_head_cache", 256), ("kmalloc-2048", 2048), ("dentry", 192),
          ("kmalloc-8192", 8192)]


class CtxPages(FakePages):
    """FakePages whose reserve entitlement also depends on the context, like MM's
    gfp_pfmemalloc_allowed(): a PF_MEMALLOC task is entitled, but not in softirq."""

    def pfmemalloc_allowed(self, gfp: int, ctx: AllocContext) -> bool:
        if gfp & G.GFP_NOMEMALLOC:
            return False
        if gfp & G.GFP_MEMALLOC:
            return True
        if ctx.softirq or ctx.task is None:
            return False
        return bool(ctx.task.flags & G.PF_MEMALLOC)

    def alloc_nosleep(self, gfp: int, order: int, ctx: AllocContext) -> tuple[int, bool]:
        """As FakePages, but blocks come from zones 0..3 in turn, so that the order of
        free_pages() calls shows in ``freed``."""
        zone, pfm = super().alloc_nosleep(gfp, order, ctx)
        return (len(self.calls) % 4 if zone >= 0 else zone), pfm


# -- building and comparing worlds --------------------------------------------

ALLOCATORS = {
    "slab-2cpu": lambda p, socks: SLABAllocator(p, ncpus=2, slab_pfmemalloc=True,
                                                memalloc_socks=socks),
    "slab-1cpu": lambda p, socks: SLABAllocator(p, ncpus=1, slab_pfmemalloc=True,
                                                memalloc_socks=socks),
    "slab-numa-2node": lambda p, socks: SLABAllocator(p, ncpus=2, nnodes=2, slab_pfmemalloc=True,
                                                      memalloc_socks=socks,
                                                      options=SLABOptions(numa=True)),
    "slab-vanilla": lambda p, socks: SLABAllocator(p, ncpus=2, memalloc_socks=socks),
    "slub-2cpu": lambda p, socks: SLUBAllocator(p, ncpus=2, slab_pfmemalloc=True,
                                                memalloc_socks=socks),
    "slub-1cpu": lambda p, socks: SLUBAllocator(p, ncpus=1, slab_pfmemalloc=True,
                                                memalloc_socks=socks),
    "slub-2node-order0": lambda p, socks: SLUBAllocator(p, ncpus=2, nnodes=2,
                                                        slab_pfmemalloc=True, memalloc_socks=socks,
                                                        options=SLUBOptions(slub_max_order=0)),
}


class World:
    """One allocator on its own page source, with the knobs the operations turn."""

    def __init__(self, kind: str) -> None:
        self.pages = CtxPages(free=1_000_000)
        self.socks = [0]
        self.slab: SlabAllocator = ALLOCATORS[kind](self.pages, self.memalloc_socks)

    def memalloc_socks(self) -> int:
        return self.socks[0]

    def set_budget(self, budget: int) -> None:
        """-1: plenty; else unentitled callers get only ``budget`` more pages."""
        floor = 0 if budget < 0 else self.pages.free - budget
        self.pages.floor_atomic = self.pages.floor_wait = floor

    def set_refuse(self, on: bool) -> None:
        self.pages.refuse_orders = set(range(12)) if on else set()

    def set_mark(self, on: bool) -> None:
        self.pages.mark_pfmemalloc = on

    def reap(self) -> None:
        self.pages.now += 2.0
        self.slab.periodic(self.pages.now)


_SCALARS = {type(None), bool, int, float, str}


def snapshot(x: Any) -> Any:
    """Plain data for x: lists, dicts (in order) and __slots__ objects, recursively."""
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, (list, tuple)):
        if set(map(type, x)) <= _SCALARS:
            return list(x)
        return [snapshot(v) for v in x]
    if isinstance(x, dict):
        return [(k, snapshot(v)) for k, v in x.items()]
    if hasattr(type(x), "__slots__"):
        return {s: snapshot(getattr(x, s)) for s in type(x).__slots__}
    if hasattr(type(x), "__mypyc_attrs__"):     # the same class compiled by mypyc
        return {s: snapshot(v) for s, v in instance_vars(x).items()}
    raise TypeError(f"cannot snapshot {type(x).__name__}")


def instance_vars(x: Any) -> dict[str, Any]:
    """vars(x), also when x's class is compiled by mypyc: its instances have no
    __dict__, their attributes are named in the class's ``__mypyc_attrs__``."""
    names = getattr(type(x), "__mypyc_attrs__", None)
    if names is None:
        return vars(x)
    return {k: getattr(x, k) for k in names if hasattr(x, k)}


def _rebuild(cls: type, args: tuple, kwargs: dict[str, Any], state: dict[str, Any]) -> Any:
    obj = cls(*args, **kwargs)
    for k, v in state.items():
        setattr(obj, k, v)
    return obj


def _compiled_reducer(init_args):
    """A pickle reducer for a class compiled by mypyc: its instances cannot be made
    without __init__, so unpickling calls it (with ``init_args(obj)``), then sets
    every attribute to the pickled one."""
    def reduce(obj: Any) -> tuple:
        args, kwargs = init_args(obj)
        return _rebuild, (type(obj), args, kwargs, instance_vars(obj))
    return reduce


def _allocator_args(a: Any) -> tuple:
    return (a.pages,), {"ncpus": a.ncpus, "nnodes": a.nnodes, "options": a.options}


#: classes whose instances a World holds, and __init__ arguments for them (any
#: that __init__ accepts: every attribute is overwritten afterwards)
_INIT_ARGS = {
    SLABAllocator: _allocator_args,
    SLUBAllocator: _allocator_args,
    slab_allocator.ArrayCache: lambda o: ((0, 0), {}),
    slab_allocator.NodeLists: lambda o: ((0, None, 0.0), {}),
    slab_allocator.KmemCache: lambda o: ((0, "", 0, 0, 0, 0, 0, False, 0), {}),
    slub_allocator.CpuSlab: lambda o: ((), {}),
    slub_allocator.KmemCache: lambda o: ((0, "", 8, 8, 0, 0, False, 0, 0), {}),
}


def copy_world(w: World) -> World:
    """A deep copy of ``w`` (pickled and unpickled), also when the allocators are compiled."""
    table = dict(copyreg.dispatch_table)
    for cls, init_args in _INIT_ARGS.items():
        if hasattr(cls, "__mypyc_attrs__"):
            table[cls] = _compiled_reducer(init_args)
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf)
    pickler.dispatch_table = table
    pickler.dump(w)
    return pickle.loads(buf.getvalue())


def allocator_state(a: SlabAllocator) -> dict[str, Any]:
    skip = {"pages", "memalloc_socks", "options"}
    return {k: snapshot(v) for k, v in instance_vars(a).items() if k not in skip}


def observable(w: World) -> tuple:
    a, p = w.slab, w.pages
    return (a.diagnose(), [attrs.asdict(s) for s in a.cache_stats()], a.nr_slab_pages(),
            p.free, list(p.calls), list(p.freed))


def assert_same(bulk: World, single: World) -> None:
    assert observable(bulk) == observable(single)
    assert allocator_state(bulk.slab) == allocator_state(single.slab)


def masked_state(a: SlabAllocator, cache: int, cpu: int, free: bool) -> dict[str, Any]:
    """The allocator's state without what a fast-path operation of ``cache`` on ``cpu``
    may change: that CPU's array (SLAB) or cpu freelist (SLUB); for SLUB frees also
    the slabs' own freelists and inuse counts (a free into a frozen slab)."""
    st_ = allocator_state(a)
    if isinstance(a, SLABAllocator):
        st_["_acs"] = None
        st_["_caches"][cache]["arrays"][cpu]["entry"] = None
        # whether the arrays may hold tagged objects: a free may set it (never
        # clear it), and it only spares the bulk paths a look for tags
        st_["_tagged"] = None
        if not free:
            st_["_caches"][cache]["arrays"][cpu]["touched"] = None
    else:
        st_["_cpus"] = None
        st_["_caches"][cache]["cpus"][cpu]["freelist"] = None
        if free:
            st_["_sfree"] = st_["_sinuse"] = None
    return st_


def check_fast_counts(w: World, cache: int, held: list[int], ctx: AllocContext) -> None:
    """The promises of alloc_fast_count/free_fast_count, checked on copies of ``w``:
    that many allocations (frees) succeed without a page-source call and change
    nothing but the per-CPU (per-slab) state; for SLAB the free count is tight."""
    def fork() -> World:        # a copy whose page source has recorded no calls yet
        calls, freed = w.pages.calls, w.pages.freed
        w.pages.calls, w.pages.freed = [], []
        try:
            return copy_world(w)
        finally:
            w.pages.calls, w.pages.freed = calls, freed

    a = w.slab
    n = a.alloc_fast_count(cache, ctx, 10**6)
    assert n >= 0 and a.alloc_fast_count(cache, ctx, 0) == 0
    c = fork()
    c.set_refuse(True)
    before = masked_state(c.slab, cache, ctx.cpu, False)
    assert len(single_allocs(c.slab, cache, G.GFP_ATOMIC | G.GFP_NOMEMALLOC, ctx, n)) == n
    assert c.pages.calls == c.pages.freed == []
    assert masked_state(c.slab, cache, ctx.cpu, False) == before
    objs = held[::-1]
    k = a.free_fast_count(cache, objs, ctx)
    assert 0 <= k <= len(objs)
    c = fork()
    before = masked_state(c.slab, cache, ctx.cpu, True)
    for o in objs[:k]:
        c.slab.free(cache, o, ctx)
    assert c.pages.calls == c.pages.freed == []
    assert masked_state(c.slab, cache, ctx.cpu, True) == before
    if isinstance(a, SLABAllocator) and k < len(objs):
        c.slab.free(cache, objs[k], ctx)        # the next one flushes
        assert masked_state(c.slab, cache, ctx.cpu, True) != before


def single_allocs(a: SlabAllocator, cache: int, gfp: int, ctx: AllocContext, n: int) -> list[int]:
    out = []
    for _ in range(n):
        obj = a.alloc(cache, gfp, ctx)
        if obj < 0:
            break
        out.append(obj)
    return out


def pick(held: list[int], count: int, seed: int, order: str) -> list[int]:
    """Remove ``count`` items from ``held`` and return them in the order to free them."""
    count = min(count, len(held))
    if not count:
        return []
    if order == "lifo":
        picked = held[-count:][::-1]
    elif order == "fifo":
        picked = held[:count]
    else:
        picked = random.Random(seed).sample(held, count)
    chosen = set(picked)
    held[:] = [h for h in held if h not in chosen]
    return picked


# -- operations ----------------------------------------------------------------

ctxs = st.builds(lambda cpu, softirq, task: (cpu, softirq, task),
                 st.integers(0, 1), st.booleans(), st.integers(0, len(TASKS) - 1))
env_ops = st.one_of(
    st.tuples(st.just("budget"), st.integers(-1, 6)),
    st.tuples(st.just("refuse"), st.booleans()),
    st.tuples(st.just("mark"), st.booleans()),
    st.tuples(st.just("socks"), st.integers(0, 2)),
    st.tuples(st.just("reap")),
)
free_orders = st.sampled_from(["lifo", "fifo", "random"])
slab_ops = st.one_of(
    st.tuples(st.just("alloc"), st.integers(0, len(CACHES) - 1), st.integers(0, 160),
              st.sampled_from(GFPS), ctxs),
    st.tuples(st.just("free"), st.integers(0, len(CACHES) - 1), st.integers(0, 200),
              st.integers(0, 2**16), free_orders, ctxs),
    st.tuples(st.just("shrink"), st.integers(0, len(CACHES) - 1)),
    env_ops,
)


def make_ctx(c: tuple, ncpus: int) -> AllocContext:
    cpu, softirq, task = c
    return AllocContext(task=TASKS[task], softirq=softirq, cpu=cpu % ncpus)


def apply_env(op: tuple, worlds: list[World]) -> bool:
    kind = op[0]
    for w in worlds:
        if kind == "budget":
            w.set_budget(op[1])
        elif kind == "refuse":
            w.set_refuse(op[1])
        elif kind == "mark":
            w.set_mark(op[1])
        elif kind == "socks":
            w.socks[0] = op[1]
        elif kind == "reap":
            w.reap()
        else:
            return False
    return True


# -- slab allocators ------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(ALLOCATORS))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(slab_ops, min_size=20, max_size=60))
def test_bulk_equals_single_calls(kind, ops):
    bulk, single = World(kind), World(kind)
    caches = [(bulk.slab.create_cache(n, s), single.slab.create_cache(n, s)) for n, s in CACHES]
    assert [b for b, _ in caches] == [s for _, s in caches]
    ids = [b for b, _ in caches]
    held: list[list[int]] = [[] for _ in CACHES]
    ncpus = bulk.slab.ncpus
    for op in ops:
        if apply_env(op, [bulk, single]):
            pass
        elif op[0] == "alloc":
            _, ci, n, gfp, c = op
            ctx = make_ctx(c, ncpus)
            got = bulk.slab.alloc_bulk(ids[ci], gfp, ctx, n)
            want = single_allocs(single.slab, ids[ci], gfp, ctx, n)
            assert got == want
            assert len(got) <= n and len(set(got)) == len(got)
            held[ci] += got
        elif op[0] == "free":
            _, ci, count, seed, order, c = op
            ctx = make_ctx(c, ncpus)
            objs = pick(held[ci], count, seed, order)
            bulk.slab.free_bulk(ids[ci], list(objs), ctx)
            for o in objs:
                single.slab.free(ids[ci], o, ctx)
        elif op[0] == "shrink":
            assert bulk.slab.shrink(ids[op[1]]) == single.slab.shrink(ids[op[1]])
        assert_same(bulk, single)
        step = len(held[0]) + len(held[1]) + len(ops)   # some cache and CPU, varying
        ci = step % len(CACHES)
        check_fast_counts(bulk, ids[ci], held[ci], AllocContext(cpu=step % ncpus))


@pytest.mark.parametrize("kind", sorted(ALLOCATORS))
def test_fast_counts_are_fast_path_hits(kind):
    """alloc_fast_count/free_fast_count promise hits that make no page-source call."""
    w = World(kind)
    a = w.slab
    k = a.create_cache("skbuff_head_cache", 256)
    ctx = AllocContext(cpu=0)
    objs = a.alloc_bulk(k, ATOMIC, ctx, 300)
    objs += a.alloc_bulk(k, ATOMIC, ctx, 1)     # a refill or a new slab: some left over
    assert len(objs) == 301
    calls = len(w.pages.calls)
    n = a.alloc_fast_count(k, ctx, 1000)
    assert n > 0
    assert len(a.alloc_bulk(k, ATOMIC, ctx, n)) == n and len(w.pages.calls) == calls
    assert a.alloc_fast_count(k, ctx, 0) == 0
    m = a.free_fast_count(k, objs, ctx)
    freed = len(w.pages.freed)
    a.free_bulk(k, objs[:m], ctx)
    assert len(w.pages.freed) == freed
    assert SlabAllocator.alloc_fast_count(a, k, ctx, 5) == 0
    assert SlabAllocator.free_fast_count(a, k, objs, ctx) == 0


def test_slab_bulk_alloc_stops_below_a_tagged_object():
    w = World("slab-1cpu")
    a = w.slab
    k = a.create_cache("skbuff_head_cache", 256)
    ctx = AllocContext(cpu=0)
    w.set_mark(True)
    reserve = a.alloc_bulk(k, ATOMIC | G.GFP_MEMALLOC, ctx, 15)  # one pfmemalloc slab
    w.set_mark(False)
    plain = a.alloc_bulk(k, ATOMIC, ctx, 20)
    w.socks[0] = 1
    a.free_bulk(k, plain[:5], ctx)
    a.free_bulk(k, reserve[:3], ctx)            # tagged: stored as ~obj
    a.free_bulk(k, plain[5:9], ctx)
    entry = a.cache(k).arrays[0].entry
    assert sum(1 for o in entry if o < 0) == 3
    assert a.alloc_fast_count(k, ctx, 100) == 4
    assert a.alloc_bulk(k, ATOMIC, ctx, 4) == plain[5:9][::-1]


def test_base_class_loops():
    class Counting(SlabAllocator):
        def __init__(self):
            super().__init__(FakePages(), ncpus=1)
            self.left = 3
            self.freed = []

        def alloc(self, cache, gfp, ctx):
            self.left -= 1
            return self.left if self.left >= 0 else -1

        def free(self, cache, obj, ctx):
            self.freed.append(obj)

    a = Counting()
    assert a.alloc_bulk(0, ATOMIC, AllocContext(), 0) == [] and a.left == 3
    assert a.alloc_bulk(0, ATOMIC, AllocContext(), 10) == [2, 1, 0]
    assert a.left == -1                         # stopped after the first failure
    a.free_bulk(0, [5, 3, 4], AllocContext())
    assert a.freed == [5, 3, 4]


# -- rx-buffer helpers ----------------------------------------------------------

class FakeSim:
    """What the rx helpers take from a Simulation."""

    def __init__(self, kind: str, size: int, patches: set[str]) -> None:
        self.world = World(kind)
        self.slab = self.world.slab
        self.mm = self.world.pages
        self.config = SimpleNamespace(net=SimpleNamespace(rx_buffer_size=size))
        self.patches = patches
        self._caches: dict[str, int] = {}

    def kmem_cache(self, name: str, size: int) -> int:
        if name not in self._caches:
            self._caches[name] = self.slab.create_cache(name, size)
        return self._caches[name]


HELPERS = {
    "kmalloc-netvm": (KmallocRx, 2048, {"netvm"}),
    "kmalloc-vanilla": (KmallocRx, 2048, set()),
    "kmalloc-netvm-256": (KmallocRx, 256, {"netvm"}),
    "page-frag-2048": (PageFragRx, 2048, {"netvm", "netdev-alloc-page"}),
    "page-frag-1024": (PageFragRx, 1024, set()),
}


class HelperWorld:
    def __init__(self, helper: str, kind: str) -> None:
        cls, size, patches = HELPERS[helper]
        self.sim = FakeSim(kind, size, patches)
        self.world = self.sim.world
        self.rx = cls(self.sim)
        self.page_ids: dict[int, int] = {}
        self.pages_seen: list[Any] = []     # keeps pages alive so that id() is not reused

    def norm(self, handles: list) -> list:
        """Handles as plain data; page-frag pages by creation index plus contents."""
        out = []
        for h in handles:
            if isinstance(self.rx, PageFragRx):
                page, head = h
                if id(page) not in self.page_ids:
                    self.page_ids[id(page)] = len(self.pages_seen)
                    self.pages_seen.append(page)
                out.append((self.page_ids[id(page)], list(page), head))
            else:
                out.append(h)
        return out

    def helper_state(self) -> Any:
        if isinstance(self.rx, PageFragRx):
            cur = self.rx.cur
            self.norm([(cur, -1)] if cur is not None else [])
            return (None if cur is None else (self.page_ids[id(cur)], list(cur)),
                    self.rx.pages)
        return None


def assert_same_helpers(bulk: HelperWorld, single: HelperWorld) -> None:
    assert_same(bulk.world, single.world)
    assert bulk.helper_state() == single.helper_state()


helper_ops = st.one_of(
    st.tuples(st.just("alloc"), st.integers(0, 100), st.sampled_from(GFPS), ctxs),
    st.tuples(st.just("free"), st.integers(0, 120), st.integers(0, 2**16), free_orders, ctxs),
    # other users of the same caches, so that the helper meets arrays in any state
    st.tuples(st.just("raw-alloc"), st.booleans(), st.integers(0, 40), st.sampled_from(GFPS),
              ctxs),
    st.tuples(st.just("raw-free"), st.booleans(), st.integers(0, 40), st.integers(0, 2**16),
              free_orders, ctxs),
    env_ops,
)


def run_helper_ops(helper: str, kind: str, ops: list) -> tuple[HelperWorld, HelperWorld]:
    bulk, single = HelperWorld(helper, kind), HelperWorld(helper, kind)
    held_b: list = []
    held_s: list = []
    raw: dict[bool, list[int]] = {False: [], True: []}
    ncpus = bulk.world.slab.ncpus
    rx_caches = [bulk.rx.head_cache, getattr(bulk.rx, "data_cache", bulk.rx.head_cache)]
    for op in ops:
        if apply_env(op, [bulk.world, single.world]):
            pass
        elif op[0] == "alloc":
            _, n, gfp, c = op
            ctx = make_ctx(c, ncpus)
            got = bulk.rx.alloc_bulk(gfp, ctx, n)
            want = []
            for _ in range(n):
                h = single.rx.alloc(gfp, ctx)
                if h is None:
                    break
                want.append(h)
            assert bulk.norm(got) == single.norm(want)
            assert [bulk.rx.pfmemalloc(h) for h in got] == [single.rx.pfmemalloc(h) for h in want]
            held_b += got
            held_s += want
        elif op[0] == "free":
            _, count, seed, order, c = op
            ctx = make_ctx(c, ncpus)
            idx = pick(list(range(len(held_b))), count, seed, order)
            hb = [held_b[i] for i in idx]
            hs = [held_s[i] for i in idx]
            keep = sorted(set(range(len(held_b))) - set(idx))
            held_b[:] = [held_b[i] for i in keep]
            held_s[:] = [held_s[i] for i in keep]
            bulk.rx.free_bulk(hb, ctx)
            for h in hs:
                single.rx.free(h, ctx)
        elif op[0] == "raw-alloc":
            _, which, n, gfp, c = op
            ctx = make_ctx(c, ncpus)
            cache = rx_caches[which]
            got = single_allocs(bulk.world.slab, cache, gfp, ctx, n)
            assert got == single_allocs(single.world.slab, cache, gfp, ctx, n)
            raw[which] += got
        elif op[0] == "raw-free":
            _, which, count, seed, order, c = op
            ctx = make_ctx(c, ncpus)
            cache = rx_caches[which]
            for o in pick(raw[which], count, seed, order):
                bulk.world.slab.free(cache, o, ctx)
                single.world.slab.free(cache, o, ctx)
        assert_same_helpers(bulk, single)
    return bulk, single


@pytest.mark.parametrize("kind", ["slab-2cpu", "slab-1cpu", "slub-2cpu", "slub-2node-order0"])
@pytest.mark.parametrize("helper", sorted(HELPERS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(helper_ops, min_size=10, max_size=40))
def test_helper_bulk_equals_single_calls(helper, kind, ops):
    run_helper_ops(helper, kind, ops)


@pytest.mark.parametrize("kind", ["slab-2cpu", "slab-1cpu", "slub-2cpu", "slub-1cpu"])
@pytest.mark.parametrize("helper", sorted(HELPERS))
def test_helper_bulk_deterministic(helper, kind):
    """A fixed story: plenty, then only the reserve, then nothing; frees in all orders."""
    c0 = (0, True, 0)
    c1 = (1, False, 2)
    mem = ATOMIC | G.GFP_MEMALLOC
    ops = [
        ("socks", 1), ("alloc", 64, ATOMIC, c0), ("alloc", 50, ATOMIC, c1),
        ("free", 30, 1, "fifo", c0), ("alloc", 64, ATOMIC, c0),
        ("budget", 3), ("mark", True), ("alloc", 64, ATOMIC, c0), ("alloc", 40, mem, c0),
        ("raw-alloc", True, 7, ATOMIC, c0), ("free", 64, 2, "random", c1),
        ("refuse", True), ("alloc", 64, mem, c1), ("free", 100, 3, "lifo", c0),
        ("refuse", False), ("budget", -1), ("mark", False), ("alloc", 100, ATOMIC, c0),
        ("reap",), ("free", 120, 4, "random", c0), ("alloc", 64, G.GFP_KERNEL, c1),
        ("free", 120, 5, "fifo", c1),
        # many slabs in both caches, then all freed at once: flushes and slab
        # destruction in both caches within one free_bulk
        ("alloc", 400, ATOMIC, c0), ("alloc", 300, ATOMIC, c1), ("free", 1000, 6, "fifo", c0),
        ("alloc", 300, ATOMIC, c0), ("free", 1000, 7, "random", c1),
    ]
    run_helper_ops(helper, kind, ops)


@pytest.mark.parametrize("kind", ["slab-1cpu", "slub-1cpu"])
@pytest.mark.parametrize("helper", ["kmalloc-netvm", "kmalloc-vanilla"])
def test_kmalloc_head_failure_gives_the_data_object_back(helper, kind):
    """Data objects on hand, heads not: alloc() takes a data object, fails on the head
    and frees the data object again, which SLAB now tags (it is from a pfmemalloc
    slab and a memalloc socket exists) and leaves its array touched."""
    c0 = (0, True, 0)
    ops = [
        ("socks", 0), ("mark", True),
        ("raw-alloc", True, 6, ATOMIC | G.GFP_MEMALLOC, c0),   # data objects, pfmemalloc slabs
        ("raw-free", True, 6, 0, "fifo", c0),                  # back untagged (no socket)
        ("reap",), ("reap",),                                  # the array is untouched again
        ("socks", 1), ("refuse", True),
        ("alloc", 4, ATOMIC, c0),                              # the first head fails
    ]
    bulk, _ = run_helper_ops(helper, kind, ops)
    assert bulk.rx.alloc_bulk(ATOMIC, AllocContext(cpu=0), 4) == []
    if kind.startswith("slab"):
        assert bulk.world.slab.diagnose()["caches"]["kmalloc-2048"]["tagged_pfmemalloc"] == 1


def test_helper_base_class_loops():
    from swapsim.net import RxBufferHelper

    class Counting(RxBufferHelper):
        def __init__(self):
            super().__init__(None)
            self.left = 2
            self.freed = []

        def alloc(self, gfp, ctx):
            self.left -= 1
            return ("buf", self.left) if self.left >= 0 else None

        def free(self, handle, ctx):
            self.freed.append(handle)

    h = Counting()
    assert h.alloc_bulk(ATOMIC, AllocContext(), 5) == [("buf", 1), ("buf", 0)]
    assert h.left == -1
    h.free_bulk([("buf", 0), ("buf", 1)], AllocContext())
    assert h.freed == [("buf", 0), ("buf", 1)]
