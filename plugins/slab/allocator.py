"""SLAB as in Linux 3.6 (mm/slab.c), as a :class:`swapsim.slab.SlabAllocator`.

What is modelled, with the kernel's names:

- ``kmem_cache``: object size, objects per slab (``num``) and slab order from
  ``calculate_slab_order``/``cache_estimate``; per-CPU ``array_cache`` with
  ``limit``/``batchcount`` from ``enable_cpucache``; per node a
  ``kmem_list3`` with ``slabs_partial``/``slabs_full``/``slabs_free``,
  ``free_objects``, ``free_limit``, the shared array, ``free_touched`` and
  ``next_reap``.
- alloc: ``____cache_alloc`` → ``ac_get_obj``; on a miss
  ``cache_alloc_refill`` (shared array first, then partial/free slabs, then
  ``cache_grow`` with the caller's gfp).
- free: ``__cache_free`` → ``cache_flusharray`` (to the shared array, else
  ``free_block``) → ``ac_put_obj``; ``free_block`` destroys an empty slab only
  while the node's free objects exceed ``free_limit``.
- ``cache_reap`` every 2 s per CPU (``drain_array`` of untouched arrays) and
  every 4 s per node (shared array, ``drain_freelist``).
- pfmemalloc (patch 2, only with ``slab_pfmemalloc``): ``kmem_getpages``
  flags the slab and sets the global ``pfmemalloc_active``; ``ac_put_obj``
  tags an object (here: the handle is stored bit-inverted, ``~obj < 0``)
  while ``sk_memalloc_socks()``; ``__ac_get_obj`` gives a tagged object to an
  entitled caller, looks for an untagged one otherwise, and with
  ``force_refill`` after a successful ``cache_grow`` clears the slab's flag
  (``ClearPageSlabPfmemalloc``) and rechecks ``pfmemalloc_active``.

Objects are ``int`` handles ``slab_id << OBJ_SHIFT | index``; per-slab state
lives in plain lists indexed by slab id, so an object costs no Python object
and its slab is one shift away.

Hot paths: an array hit is five Python statements (look up the CPU's array,
test that the top handle is untagged, mark touched, pop); a free is five
(look up, limit test, one attribute test while no pfmemalloc slab exists,
append).  Slab lists, refill, flush and the reaper run once per batch.

Simplifications (each is a modelling choice, not a kernel fact):

- Object size is aligned like SLAB's kmalloc caches (``SLAB_HWCACHE_ALIGN``:
  cache line 64 B, halved while the object fits twice) unless
  ``hwcache_align`` is off (word alignment).  Off-slab management
  (objects ≥ 512 B) is honoured in the object count, but the separate
  kmalloc of the off-slab ``struct slab`` is not modelled.
- ``slab_max_order`` is 1 (``SLAB_MAX_ORDER_HI``, every machine > 32 MiB).
- Caches named like the kernel's ``SLAB_RECLAIM_ACCOUNT`` caches
  (``radix_tree_node``, ``dentry``, ``buffer_head``, ``*inode_cache``) count
  as reclaimable and get ``__GFP_RECLAIMABLE``; all others unreclaimable.
- No alien caches: with several nodes an object is freed into the freeing
  CPU's array and ``free_block`` returns it to its own slab's node.
- ``numa`` off (default) models a ``CONFIG_NUMA=n`` kernel: when
  ``____cache_alloc`` fails the allocation fails.  ``numa`` on adds
  ``GFP_THISNODE`` to ``cache_grow`` and the ``____cache_alloc_node``
  fallback, which takes one object straight off the slab lists *without* a
  pfmemalloc check (a real 3.6 NUMA weakness; an ablation knob).
- ``cache_reap``'s per-cache stagger of ``next_reap`` (up to 4 s, from the
  cache's address) is dropped: the first node reap is 4 s after creation.
- ``recheck_pfmemalloc_active`` keeps a count of pfmemalloc slabs per node
  instead of walking the lists; like 3.6 it looks only at the current cache
  before clearing the global flag.
"""

from __future__ import annotations

from typing import Any, Final

import attrs
from attrs import field, frozen

from swapsim.config import Seconds
from swapsim.mm import gfp as G
from swapsim.slab import (AllocContext, CacheStats, PageSource, SlabAllocator,
                          is_reclaim_account)

# field() returns an attrs marker, not the attribute's value: compiled by mypyc,
# a class body that called it as typed (say ``-> list[int]``) would fail its own
# type check, so class bodies here call it untyped.
_field: Any = field

PAGE_SIZE: Final = 4096
#: An object handle is ``slab_id << OBJ_SHIFT | index`` (SLAB slabs hold < 2**16 objects).
OBJ_SHIFT: Final = 16
_OBJ_MASK: Final = (1 << OBJ_SHIFT) - 1

#: sizeof(struct slab) and sizeof(kmem_bufctl_t) on x86-64, 3.6.
SLAB_STRUCT_SIZE: Final = 48
BUFCTL_SIZE: Final = 4
KMALLOC_MAX_ORDER: Final = 10
BATCHREFILL_LIMIT: Final = 16
CACHE_LINE: Final = 64

GFP_RECLAIM_MASK: Final = (G.__GFP_WAIT | G.__GFP_HIGH | G.__GFP_IO | G.__GFP_FS | G.__GFP_NOWARN
                    | G.__GFP_REPEAT | G.__GFP_NOFAIL | G.__GFP_NORETRY | G.__GFP_MEMALLOC
                    | G.__GFP_NOMEMALLOC)
GFP_CONSTRAINT_MASK: Final = G.__GFP_HARDWALL | G.__GFP_THISNODE
# (bound here: inside class bodies G.__X would be name-mangled)
_GFP_NOTRACK: Final = G.__GFP_NOTRACK
_GFP_RECLAIMABLE: Final = G.__GFP_RECLAIMABLE
#: GFP_THISNODE of a CONFIG_NUMA=y kernel (0 without NUMA).
GFP_THISNODE_NUMA: Final = G.__GFP_THISNODE | G.__GFP_NOWARN | G.__GFP_NORETRY

#: slab states (which kmem_list3 list a slab is on)
S_FREE: Final = 0
S_PARTIAL: Final = 1
S_FULL: Final = 2


def _untagged_top(e: list[int], k: int) -> int:
    """How many of the top ``k`` objects of an array lie above its topmost tagged one.

    A compiled loop: min() of the slice would compare the objects as Python ints."""
    i = len(e) - 1
    stop = i - k
    while i > stop and e[i] >= 0:
        i -= 1
    return len(e) - 1 - i


def array_limit(size: int) -> int:
    """enable_cpucache(): per-CPU array limit for an object of ``size`` bytes."""
    if size > 131072:
        return 1
    if size > PAGE_SIZE:
        return 8
    if size > 1024:
        return 24
    if size > 256:
        return 54
    return 120


def _align(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def cache_estimate(order: int, size: int, align: int, off_slab: bool) -> tuple[int, int]:
    """cache_estimate(): (objects per slab, left-over bytes) for a slab of 2**order pages."""
    slab_size = PAGE_SIZE << order
    if off_slab:
        num = slab_size // size
        return num, slab_size - num * size
    num = (slab_size - SLAB_STRUCT_SIZE) // (size + BUFCTL_SIZE)
    if _align(SLAB_STRUCT_SIZE + num * BUFCTL_SIZE, align) + num * size > slab_size:
        num -= 1
    if num <= 0:
        return 0, slab_size
    mgmt = _align(SLAB_STRUCT_SIZE + num * BUFCTL_SIZE, align)
    return num, slab_size - num * size - mgmt


def calculate_slab_order(size: int, align: int, *, slab_max_order: int = 1,
                         reclaim_account: bool = False) -> tuple[int, int]:
    """calculate_slab_order(): (order, objects per slab) for an aligned object size.

    The smallest order that holds an object, then larger ones while the
    left-over exceeds 1/8 of the slab, up to ``slab_max_order``; reclaimable
    caches stop at the first order that fits.
    """
    off_slab = size >= PAGE_SIZE >> 3
    best = (-1, 0)
    for order in range(KMALLOC_MAX_ORDER + 1):
        num, left_over = cache_estimate(order, size, align, off_slab)
        if not num:
            continue
        if off_slab and num > (size - SLAB_STRUCT_SIZE) // BUFCTL_SIZE:
            break
        best = (order, num)
        if reclaim_account or order >= slab_max_order:
            break
        if left_over * 8 <= PAGE_SIZE << order:
            break
    if best[1] == 0:
        raise ValueError(f"object size {size} does not fit a slab of order {KMALLOC_MAX_ORDER}")
    return best


@frozen(kw_only=True)
class SLABOptions:
    """``[plugin.slab]``: SLAB tunables (defaults are 3.6's on a > 32 MiB machine)."""

    #: slab_max_order= boot parameter (SLAB_MAX_ORDER_HI on machines above 32 MiB).
    slab_max_order: int = _field(default=1, validator=attrs.validators.in_(range(0, 11)))
    #: Align objects like SLAB's kmalloc caches (SLAB_HWCACHE_ALIGN); False = word alignment.
    hwcache_align: bool = True
    #: Model a CONFIG_NUMA=y kernel: GFP_THISNODE on cache_grow and the
    #: ____cache_alloc_node fallback (no pfmemalloc check there).
    numa: bool = False
    #: cache_reap period per CPU (REAPTIMEOUT_CPUC).
    reap_interval: Seconds = Seconds(2.0)
    #: Period of the per-node part of cache_reap (REAPTIMEOUT_LIST3).
    node_reap_interval: Seconds = Seconds(4.0)


class ArrayCache:
    """struct array_cache: a LIFO of object handles; a tagged handle is stored as ``~obj``."""

    __slots__ = ("entry", "limit", "batchcount", "touched")

    def __init__(self, limit: int, batchcount: int) -> None:
        self.entry: list[int] = []
        self.limit = limit
        self.batchcount = batchcount
        self.touched = False


class NodeLists:
    """struct kmem_list3: one node's slab lists of one cache.

    ``partial`` is an insertion-ordered dict used as a list (first key = head);
    ``free`` is a list whose *end* is the head (list_add = append,
    list_add_tail = insert(0), the reaper takes the tail = index 0).
    slabs_full is only counted (``nr_full``): nothing in 3.6's SLAB walks it
    or takes a slab from it but free_block(), which finds the slab by its
    object, and a full slab's state is in the allocator's per-slab list.
    """

    __slots__ = ("partial", "nr_full", "free", "free_objects", "free_limit", "shared",
                 "free_touched", "next_reap", "pfmemalloc_slabs")

    def __init__(self, free_limit: int, shared: ArrayCache | None, next_reap: float) -> None:
        self.partial: dict[int, None] = {}
        self.nr_full = 0
        self.free: list[int] = []
        self.free_objects = 0
        self.free_limit = free_limit
        self.shared = shared
        self.free_touched = False
        self.next_reap = next_reap
        self.pfmemalloc_slabs = 0


class KmemCache:
    """struct kmem_cache (the parts the model needs)."""

    __slots__ = ("id", "name", "object_size", "size", "num", "order", "limit", "batchcount",
                 "reclaimable", "allocflags", "nodes", "arrays", "nr_slabs",
                 "pfmemalloc_slabs", "grown", "reaped")

    def __init__(self, cid: int, name: str, object_size: int, size: int, num: int, order: int,
                 limit: int, reclaimable: bool, allocflags: int) -> None:
        self.id = cid
        self.name = name
        self.object_size = object_size
        self.size = size
        self.num = num
        self.order = order
        self.limit = limit
        self.batchcount = (limit + 1) // 2
        self.reclaimable = reclaimable
        self.allocflags = allocflags
        self.nodes: list[NodeLists] = []
        self.arrays: list[ArrayCache] = []
        self.nr_slabs = 0
        self.pfmemalloc_slabs = 0
        self.grown = 0
        self.reaped = 0


class SLABAllocator(SlabAllocator):
    """SLAB (Linux 3.6): per-CPU and shared object arrays, slabs kept until reaped."""

    name = "slab"

    def __init__(self, pages: PageSource, *, ncpus: int, nnodes: int = 1,
                 slab_pfmemalloc: bool = False, memalloc_socks: Any = lambda: 0,
                 options: SLABOptions | None = None) -> None:
        if options is None:
            options = SLABOptions()
        super().__init__(pages, ncpus=ncpus, nnodes=nnodes, slab_pfmemalloc=slab_pfmemalloc,
                         memalloc_socks=memalloc_socks, options=options)
        self._numa = options.numa
        self._reap_interval = float(options.reap_interval)
        self._node_reap_interval = float(options.node_reap_interval)
        self._node_cpus = [self._cpu_node.count(n) for n in range(nnodes)]
        self._caches: list[KmemCache] = []
        #: hot-path index: _acs[cache][cpu] is that CPU's array_cache
        self._acs: list[list[ArrayCache]] = []
        #: the global pfmemalloc_active of mm/slab.c
        self._pfmemalloc_active = False
        #: some array may hold a tagged object: set by the first free or refill
        #: that runs while objects may be tagged (pfmemalloc_active, memalloc
        #: sockets), never cleared.  Until then the bulk paths need not look for
        #: tags: without the slab-pfmemalloc switch no object is ever tagged.
        self._tagged = False
        # per-slab state, indexed by slab id
        #: free object handles (slab_get_obj pops); a destroyed slab's list keeps
        #: its handles for the next slab of that id
        self._sfree: list[list[int]] = []
        self._sinuse: list[int] = []
        self._sstate: list[int] = []
        self._spfm: list[bool] = []         # PageSlabPfmemalloc
        self._szone: list[int] = []
        self._snode: list[int] = []
        self._scache: list[int] = []
        self._sid_free: list[int] = []
        self._pages_reclaimable = 0
        self._pages_unreclaimable = 0

    # -- cache creation ------------------------------------------------------

    def create_cache(self, name: str, size: int) -> int:
        """kmem_cache_create() + enable_cpucache(); returns the cache id."""
        if size <= 0:
            raise ValueError(f"cache {name!r}: object size must be > 0, got {size}")
        opts: SLABOptions = self.options
        align = 8
        if opts.hwcache_align:
            ralign = CACHE_LINE
            while size <= ralign // 2:
                ralign //= 2
            align = max(align, ralign)
        asize = _align(size, align)
        reclaimable = is_reclaim_account(name)
        order, num = calculate_slab_order(asize, align, slab_max_order=opts.slab_max_order,
                                          reclaim_account=reclaimable)
        limit = array_limit(asize)
        allocflags = _GFP_NOTRACK | (_GFP_RECLAIMABLE if reclaimable else 0)
        cid = len(self._caches)
        cache = KmemCache(cid, name, size, asize, num, order, limit, reclaimable, allocflags)
        has_shared = asize <= PAGE_SIZE and self.ncpus > 1
        next_reap = float(self.pages.now) + self._node_reap_interval
        for node in range(self.nnodes):
            shared = ArrayCache(8 * cache.batchcount, 0xbaadf00d) if has_shared else None
            free_limit = (1 + self._node_cpus[node]) * cache.batchcount + num
            cache.nodes.append(NodeLists(free_limit, shared, next_reap))
        cache.arrays = [ArrayCache(limit, cache.batchcount) for _ in range(self.ncpus)]
        self._caches.append(cache)
        self._acs.append(cache.arrays)
        return cid

    def cache(self, cid: int) -> KmemCache:
        """The cache's parameters and state (for inspection and tests)."""
        return self._caches[cid]

    # -- allocation ----------------------------------------------------------

    def alloc(self, cache: int, gfp: int, ctx: AllocContext) -> int:
        """kmem_cache_alloc() without sleeping: an object handle or -1."""
        ac = self._acs[cache][ctx.cpu]
        e = ac.entry
        if e and e[-1] >= 0:            # ac_get_obj hit on an untagged object
            ac.touched = True
            return e.pop()
        return self._alloc_slow(self._caches[cache], ac, gfp, ctx)

    def alloc_bulk(self, cache: int, gfp: int, ctx: AllocContext, n: int) -> list[int]:
        """``n`` alloc() calls: each run of objects on top of the array that alloc() would
        pop as they are (untagged ones, or tagged ones for a caller entitled to them) is
        taken with one slice (successive pops return ``e[-1], e[-2], …``); everything
        else (a tagged top, an empty array) is one alloc() call, after which slicing
        resumes."""
        ac = self._acs[cache][ctx.cpu]
        e = ac.entry                    # never rebound: refill and flush work in place
        c = self._caches[cache]
        out: list[int] = []
        untag = None
        while n > 0:
            k = len(e)
            if k > n:
                k = n
            if k:
                top = e[-k:]
                if self._tagged and (clean := _untagged_top(e, k)) < k:
                    if untag is None:
                        # __ac_get_obj() hands tagged objects out untagged when no
                        # memalloc socket exists or the caller may use the reserve;
                        # neither changes during this call
                        untag = (not self.memalloc_socks()
                                 or self.pages.pfmemalloc_allowed(gfp, ctx))
                    if untag:
                        for j, o in enumerate(top):     # in place, as free_bulk tags
                            if o < 0:
                                top[j] = ~o
                    else:               # stop below the topmost tagged object
                        top = top[k - clean:]
                        k = clean
                if k:
                    del e[-k:]
                    top.reverse()
                    if out:
                        out += top
                    else:               # the first run is the result so far: no copy
                        out = top
                    ac.touched = True
                    n -= k
                    if not n:
                        break
            # the array is empty or has a tagged object on top: alloc() would
            # go straight to its slow path
            obj = self._alloc_slow(c, ac, gfp, ctx)
            if obj < 0:
                break
            out.append(obj)
            n -= 1
        return out

    def alloc_fast_count(self, cache: int, ctx: AllocContext, n: int) -> int:
        """The run of untagged objects on top of the CPU's array (at most ``n``)."""
        e = self._acs[cache][ctx.cpu].entry
        k = min(n, len(e))
        if k <= 0:
            return 0
        if not self._tagged:
            return k
        return _untagged_top(e, k)

    def _alloc_slow(self, cache: KmemCache, ac: ArrayCache, gfp: int, ctx: AllocContext) -> int:
        """The rest of ____cache_alloc(): a tagged object on top, or an empty array."""
        force_refill = False
        if ac.entry:
            ac.touched = True
            obj = self._ac_get_obj(cache, ac, gfp, ctx, False)
            if obj is not None:
                return obj
            force_refill = True
        obj = self._cache_alloc_refill(cache, ac, gfp, ctx, force_refill)
        if obj is None and self._numa:
            obj = self._cache_alloc_node(cache, self._cpu_node[ctx.cpu], gfp, ctx)
        return -1 if obj is None else obj

    def _ac_get_obj(self, cache: KmemCache, ac: ArrayCache, gfp: int, ctx: AllocContext,
                    force_refill: bool) -> int | None:
        """ac_get_obj()/__ac_get_obj(): take the top object, honouring pfmemalloc tags."""
        e = ac.entry
        obj = e.pop()
        if obj >= 0:
            return obj
        if not self.memalloc_socks():   # tags are only looked at while memalloc sockets exist
            return ~obj
        if self.pages.pfmemalloc_allowed(gfp, ctx):
            return ~obj
        # The caller may not use reserve objects: find an untagged one.
        for i, other in enumerate(e):
            if other >= 0:
                e[i] = obj              # the tagged one takes its place
                return other
        l3 = cache.nodes[self._cpu_node[ctx.cpu]]
        if force_refill and l3.free:
            # A slab was just grown: memory is not that tight any more.
            obj = ~obj
            sid = obj >> OBJ_SHIFT
            if self._spfm[sid]:
                self._clear_slab_pfmemalloc(cache, sid)
            self._recheck_pfmemalloc_active(cache, ctx.cpu)
            return obj
        e.append(obj)
        return None

    def _recheck_pfmemalloc_active(self, cache: KmemCache, cpu: int) -> None:
        """recheck_pfmemalloc_active(): clear the global flag if this node of this cache has
        no pfmemalloc slab left (3.6 looks at the current cache only)."""
        if self._pfmemalloc_active and not cache.nodes[self._cpu_node[cpu]].pfmemalloc_slabs:
            self._pfmemalloc_active = False

    def _cache_alloc_refill(self, cache: KmemCache, ac: ArrayCache, gfp: int,
                            ctx: AllocContext, force_refill: bool) -> int | None:
        """cache_alloc_refill()."""
        node = self._cpu_node[ctx.cpu]
        l3 = cache.nodes[node]
        if force_refill:
            if not self._cache_grow(cache, l3, node, gfp, ctx):
                return None
        else:
            while True:
                batchcount = ac.batchcount
                if not ac.touched and batchcount > BATCHREFILL_LIMIT:
                    batchcount = BATCHREFILL_LIMIT
                e = ac.entry
                shared = l3.shared
                nr = 0
                if shared is not None and shared.entry:
                    se = shared.entry
                    nr = min(min(len(se), batchcount), ac.limit - len(e))   # two-argument min()s compile natively
                    if nr:              # transfer_objects(): keep their order and tags
                        e.extend(se[-nr:])
                        del se[-nr:]
                        shared.touched = True
                if not nr:
                    self._refill_from_slabs(cache, l3, e, batchcount)
                if e:
                    break
                if not self._cache_grow(cache, l3, node, gfp, ctx):
                    return None
        ac.touched = True
        return self._ac_get_obj(cache, ac, gfp, ctx, force_refill)

    def _refill_from_slabs(self, cache: KmemCache, l3: NodeLists, e: list[int],
                           batchcount: int) -> None:
        """The slab-list part of cache_alloc_refill(): up to ``batchcount`` objects into ``e``."""
        sfree, sinuse, sstate = self._sfree, self._sinuse, self._sstate
        num = cache.num
        tag = self._pfmemalloc_active and bool(self.memalloc_socks())
        if tag:
            self._tagged = True
        taken = 0
        while batchcount > 0:
            if l3.partial:
                sid = next(iter(l3.partial))
                from_free = False
            else:
                l3.free_touched = True
                if not l3.free:
                    break
                sid = l3.free[-1]
                from_free = True
            fl = sfree[sid]
            k = min(batchcount, num - sinuse[sid])
            objs = fl[-k:]
            del fl[-k:]
            objs.reverse()              # slab_get_obj order
            if tag and self._spfm[sid]:
                objs = [~o for o in objs]
            e.extend(objs)
            sinuse[sid] += k
            batchcount -= k
            taken += k
            # move the slab to the right list (a partial slab stays at the head)
            if from_free:
                l3.free.pop()
            full = sinuse[sid] == num
            if full:
                if not from_free:
                    del l3.partial[sid]
                l3.nr_full += 1
                sstate[sid] = S_FULL
            elif from_free:
                l3.partial[sid] = None  # partial was empty: this is its head
                sstate[sid] = S_PARTIAL
        l3.free_objects -= taken

    def _cache_alloc_node(self, cache: KmemCache, node: int, gfp: int,
                          ctx: AllocContext) -> int | None:
        """____cache_alloc_node() (CONFIG_NUMA): one object straight off the slab lists."""
        l3 = cache.nodes[node]
        while True:
            if l3.partial:
                sid = next(iter(l3.partial))
                from_free = False
            else:
                l3.free_touched = True
                if not l3.free:
                    if self._cache_grow(cache, l3, node, gfp, ctx):
                        continue
                    return None         # fallback_alloc(): other nodes not modelled
                sid = l3.free.pop()
                from_free = True
            obj = self._sfree[sid].pop()
            self._sinuse[sid] += 1
            l3.free_objects -= 1
            if self._sinuse[sid] == cache.num:
                if not from_free:
                    del l3.partial[sid]
                l3.nr_full += 1
                self._sstate[sid] = S_FULL
            elif from_free:
                l3.partial[sid] = None
                self._sstate[sid] = S_PARTIAL
            return obj

    def _cache_grow(self, cache: KmemCache, l3: NodeLists, node: int, gfp: int,
                    ctx: AllocContext) -> bool:
        """cache_grow() + kmem_getpages(): one new slab on the free list, or False."""
        flags = (gfp & (GFP_RECLAIM_MASK | GFP_CONSTRAINT_MASK)) | cache.allocflags
        if self._numa:
            flags |= GFP_THISNODE_NUMA
        zone, pfmemalloc = self.pages.alloc_nosleep(flags, cache.order, ctx)
        if zone < 0:
            return False
        pfmemalloc = bool(pfmemalloc) and self.slab_pfmemalloc
        if self._sid_free:
            sid = self._sid_free.pop()
        else:
            sid = len(self._sinuse)
            self._sfree.append([])
            for lst in (self._sinuse, self._sstate, self._spfm, self._szone, self._snode,
                        self._scache):
                lst.append(0)  # type: ignore[arg-type]  # set below
        base = sid << OBJ_SHIFT
        fl = self._sfree[sid]
        if len(fl) == cache.num:
            # a destroyed slab of this id left its handles (all of them, base up:
            # the same values) in its free list: in fresh order, without making
            # a new int object for each
            fl.sort(reverse=True)
        else:
            self._sfree[sid] = list(range(base + cache.num - 1, base - 1, -1))
        self._sinuse[sid] = 0
        self._sstate[sid] = S_FREE
        self._spfm[sid] = pfmemalloc
        self._szone[sid] = zone
        self._snode[sid] = node
        self._scache[sid] = cache.id
        if pfmemalloc:
            self._pfmemalloc_active = True
            l3.pfmemalloc_slabs += 1
            cache.pfmemalloc_slabs += 1
        npages = 1 << cache.order
        if cache.reclaimable:
            self._pages_reclaimable += npages
        else:
            self._pages_unreclaimable += npages
        cache.nr_slabs += 1
        cache.grown += 1
        l3.free.insert(0, sid)          # list_add_tail(slabs_free)
        l3.free_objects += cache.num
        return True

    # -- free ----------------------------------------------------------------

    def free(self, cache: int, obj: int, ctx: AllocContext) -> None:
        """kmem_cache_free(): into the CPU's array (flushing a batch when full)."""
        ac = self._acs[cache][ctx.cpu]
        e = ac.entry
        if len(e) >= ac.limit:
            self._cache_flusharray(self._caches[cache], ac, ctx.cpu)
        if self._pfmemalloc_active and self.memalloc_socks():
            self._tagged = True
            if self._spfm[obj >> OBJ_SHIFT]:
                obj = ~obj              # ac_put_obj(): tag an object of a pfmemalloc slab
        e.append(obj)

    def free_bulk(self, cache: int, objs: list[int], ctx: AllocContext) -> None:
        """free() of each object in order: the objects go into the array in chunks that
        fill it up to its limit, with cache_flusharray() exactly where free() would
        flush (before an object that finds the array full)."""
        m = len(objs)
        if not m:
            return
        ac = self._acs[cache][ctx.cpu]
        e = ac.entry
        limit = ac.limit
        # Whether ac_put_obj() may tag: pfmemalloc_active and the socket count do not
        # change while objects are freed (free_block and slab_destroy touch neither).
        tag = self._pfmemalloc_active and bool(self.memalloc_socks())
        if tag:
            self._tagged = True
        spfm = self._spfm
        c = self._caches[cache]
        cpu = ctx.cpu
        i = 0
        while i < m:
            if len(e) >= limit:
                self._cache_flusharray(c, ac, cpu)
            k = limit - len(e)
            if k < 1:                   # still full after the flush: one object, flush again
                k = 1
            chunk = objs[i:i + k]
            if tag:                     # after the flush, as free() looks at the slab then
                # in place: an object that stays untagged stays the same int object
                for j, o in enumerate(chunk):
                    if spfm[o >> OBJ_SHIFT]:
                        chunk[j] = ~o
            e += chunk
            i += k

    def free_fast_count(self, cache: int, objs: list[int], ctx: AllocContext) -> int:
        """Frees that fit the CPU's array without a flush."""
        ac = self._acs[cache][ctx.cpu]
        return max(0, min(len(objs), ac.limit - len(ac.entry)))

    def _cache_flusharray(self, cache: KmemCache, ac: ArrayCache, cpu: int) -> None:
        """cache_flusharray(): the oldest batchcount objects to the shared array or the slabs."""
        l3 = cache.nodes[self._cpu_node[cpu]]
        e = ac.entry
        batchcount = ac.batchcount
        shared = l3.shared
        if shared is not None and len(shared.entry) < shared.limit:
            batchcount = min(batchcount, shared.limit - len(shared.entry))
            shared.entry.extend(e[:batchcount])
        else:
            self._free_block(cache, e[:batchcount])
        del e[:batchcount]

    def _free_block(self, cache: KmemCache, objs: list[int]) -> None:
        """free_block(): objects back to their slabs; empty slabs destroyed above free_limit."""
        sfree, sinuse, sstate, snode = self._sfree, self._sinuse, self._sstate, self._snode
        nodes = cache.nodes
        objs_o: list[Any] = objs
        # the slab the previous object went back to, if it is still the tail of
        # its partial list: moving it to the tail again changes nothing (objects
        # of one slab often come in runs)
        tail_sid = -1
        for oo in objs_o:               # ``oo``: the int object, put back as it is when untagged
            obj: int = oo
            if obj < 0:
                obj = ~obj              # clear_obj_pfmemalloc
                oo = obj
            sid = obj >> OBJ_SHIFT
            sido: Any = sid             # the slab id boxed once, for the list dicts
            l3 = nodes[snode[sid]]
            partial: dict[Any, None] = l3.partial
            sfree[sid].append(oo)
            sinuse[sid] -= 1
            l3.free_objects += 1
            if sid != tail_sid:
                if sstate[sid] == S_FULL:
                    l3.nr_full -= 1
                else:
                    del partial[sido]
            if sinuse[sid] == 0:
                if sid == tail_sid:
                    del partial[sido]
                tail_sid = -1
                if l3.free_objects > l3.free_limit:
                    l3.free_objects -= cache.num
                    self._slab_destroy(cache, l3, sid)
                else:
                    l3.free.append(sid)  # list_add(slabs_free): the head
                    sstate[sid] = S_FREE
            elif sid != tail_sid:
                partial[sido] = None    # list_add_tail(slabs_partial)
                sstate[sid] = S_PARTIAL
                tail_sid = sid

    def _slab_destroy(self, cache: KmemCache, l3: NodeLists, sid: int) -> None:
        """slab_destroy() + kmem_freepages(): the pages go back to the page allocator."""
        if self._spfm[sid]:
            self._spfm[sid] = False     # __ClearPageSlabPfmemalloc
            l3.pfmemalloc_slabs -= 1
            cache.pfmemalloc_slabs -= 1
        npages = 1 << cache.order
        if cache.reclaimable:
            self._pages_reclaimable -= npages
        else:
            self._pages_unreclaimable -= npages
        cache.nr_slabs -= 1
        # (its free list keeps the slab's handles for the next cache_grow of this id)
        self._scache[sid] = -1
        self._sid_free.append(sid)
        self.pages.free_pages(self._szone[sid], cache.order, 1)

    def _clear_slab_pfmemalloc(self, cache: KmemCache, sid: int) -> None:
        self._spfm[sid] = False
        cache.nodes[self._snode[sid]].pfmemalloc_slabs -= 1
        cache.pfmemalloc_slabs -= 1

    # -- cache_reap ----------------------------------------------------------

    def periodic(self, now: float) -> float | None:
        """cache_reap() of every CPU; returns the delay to the next run (2 s)."""
        for cpu in range(self.ncpus):
            node = self._cpu_node[cpu]
            for cache in self._caches:
                l3 = cache.nodes[node]
                self._drain_array(cache, cache.arrays[cpu], False)
                if l3.next_reap > now + 1e-9:
                    continue
                l3.next_reap = now + self._node_reap_interval
                if l3.shared is not None:
                    self._drain_array(cache, l3.shared, False)
                if l3.free_touched:
                    l3.free_touched = False
                else:
                    tofree = (l3.free_limit + 5 * cache.num - 1) // (5 * cache.num)
                    cache.reaped += self.drain_freelist(cache.id, node, tofree)
        return self._reap_interval

    def _drain_array(self, cache: KmemCache, ac: ArrayCache, force: bool) -> None:
        """drain_array(): an untouched array gives back a fifth of its limit (oldest first)."""
        e = ac.entry
        if not e:
            return
        if ac.touched and not force:
            ac.touched = False
            return
        tofree = len(e) if force else (ac.limit + 4) // 5
        if tofree > len(e):
            tofree = (len(e) + 1) // 2
        self._free_block(cache, e[:tofree])
        del e[:tofree]

    def drain_freelist(self, cache: int, node: int, tofree: int) -> int:
        """drain_freelist(): destroy up to ``tofree`` free slabs (from the tail); returns count."""
        c = self._caches[cache]
        l3 = c.nodes[node]
        freed = 0
        while freed < tofree and l3.free:
            sid = l3.free.pop(0)
            l3.free_objects -= c.num
            self._slab_destroy(c, l3, sid)
            freed += 1
        return freed

    def shrink(self, cache: int) -> int:
        """__cache_shrink(): drain every array and destroy every free slab; pages freed."""
        c = self._caches[cache]
        before = c.nr_slabs
        for ac in c.arrays:
            self._drain_array(c, ac, True)
        for node, l3 in enumerate(c.nodes):
            if l3.shared is not None:
                self._drain_array(c, l3.shared, True)
            self.drain_freelist(cache, node, len(l3.free))
        return (before - c.nr_slabs) << c.order

    # -- queries -------------------------------------------------------------

    def is_pfmemalloc(self, cache: int, obj: int) -> bool:
        if obj < 0:
            obj = ~obj
        return self._spfm[obj >> OBJ_SHIFT]

    def cache_stats(self) -> list[CacheStats]:
        """As /proc/slabinfo: objects held in arrays count as active."""
        out = []
        for c in self._caches:
            num_objs = c.nr_slabs * c.num
            free = sum(l3.free_objects for l3 in c.nodes)
            out.append(CacheStats(c.name, c.object_size, num_objs - free, num_objs,
                                  c.nr_slabs << c.order, c.pfmemalloc_slabs))
        return out

    def nr_slab_pages(self) -> tuple[int, int]:
        return self._pages_reclaimable, self._pages_unreclaimable

    def diagnose(self) -> dict[str, Any]:
        caches = {}
        for c in self._caches:
            in_arrays = sum(len(ac.entry) for ac in c.arrays)
            tagged = sum(1 for ac in c.arrays for o in ac.entry if o < 0)
            shared = sum(len(l3.shared.entry) for l3 in c.nodes if l3.shared is not None)
            tagged += sum(1 for l3 in c.nodes if l3.shared is not None
                          for o in l3.shared.entry if o < 0)
            free_in_slabs = sum(l3.free_objects for l3 in c.nodes)
            num_objs = c.nr_slabs * c.num
            caches[c.name] = {
                "object_size": c.object_size, "size": c.size, "objperslab": c.num,
                "order": c.order, "limit": c.limit, "batchcount": c.batchcount,
                "objects": num_objs,
                "in_use": num_objs - free_in_slabs - in_arrays - shared,
                "free_objects": free_in_slabs + in_arrays + shared,
                "free_in_slabs": free_in_slabs, "free_in_arrays": in_arrays,
                "free_in_shared": shared, "tagged_pfmemalloc": tagged,
                "slabs": c.nr_slabs,
                "slabs_partial": sum(len(l3.partial) for l3 in c.nodes),
                "slabs_full": sum(l3.nr_full for l3 in c.nodes),
                "slabs_free": sum(len(l3.free) for l3 in c.nodes),
                "free_limit": [l3.free_limit for l3 in c.nodes],
                "pages": c.nr_slabs << c.order,
                "pfmemalloc_slabs": c.pfmemalloc_slabs,
                "grown": c.grown, "reaped": c.reaped,
            }
        return {"allocator": self.name, "pfmemalloc_active": self._pfmemalloc_active,
                "slab_pfmemalloc": self.slab_pfmemalloc, "caches": caches}
