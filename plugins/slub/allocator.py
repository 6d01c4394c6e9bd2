"""SLUB as in Linux 3.6 (mm/slub.c), as a :class:`swapsim.slab.SlabAllocator`.

What is modelled, with the kernel's names:

- ``kmem_cache``: object size, ``oo`` (order and objects from
  ``calculate_order``: up to ``slub_max_order`` 3, ``min_objects`` =
  4 × (fls(nr_cpu_ids) + 1), waste ≤ 1/16 … 1/4 of the slab), ``min`` (the
  smallest order that holds one object), ``min_partial`` =
  clamp(ilog2(size)/2, 5, 10) and ``cpu_partial`` (2/6/13/30 objects).
- per CPU (``kmem_cache_cpu``): ``page`` (the frozen cpu slab), the lockless
  ``freelist`` and the ``partial`` list of frozen slabs with ``pobjects``.
- per node (``kmem_cache_node``): the ``partial`` list.  Full slabs are on no
  list (as without SLUB debugging).
- alloc: ``slab_alloc`` fast path (pop the cpu freelist, no checks at all),
  else ``__slab_alloc``: ``pfmemalloc_match`` of the cpu slab (deactivate on
  mismatch), ``get_freelist``, the cpu partial list, ``get_partial_node``
  (skipping pfmemalloc slabs for unentitled callers, filling the cpu partial
  list up to cpu_partial/2 objects), ``new_slab`` → ``allocate_slab`` (the
  ``oo`` order with ``__GFP_NOWARN|__GFP_NORETRY`` and without
  ``__GFP_NOFAIL``, then the ``min`` order with the caller's flags).  The
  ``oo`` attempt keeps ``__GFP_WAIT``: a caller that may sleep (nbd0's
  GFP_NOIO send without PF_MEMALLOC) direct-reclaims once at that order
  before the fallback, through ``AllocContext.reclaim_order``.
- free: ``slab_free`` fast path (object of this CPU's cpu slab → cpu
  freelist), else ``__slab_free``: a full slab is frozen onto the freeing
  CPU's partial list (``put_cpu_partial`` with drain: above cpu_partial
  objects the list is unfrozen to the node first); a slab on the node partial
  list that becomes empty is discarded at once when the node has more than
  ``min_partial`` partial slabs.  ``deactivate_slab`` and
  ``unfreeze_partials`` apply the same rule.

Objects are ``int`` handles ``slab_id << OBJ_SHIFT | index``; per-slab state
lives in plain lists indexed by slab id.

Hot paths: a fast-path allocation is four Python statements (look up the
CPU's kmem_cache_cpu, test and pop its freelist); a fast-path free is three
(look up, compare the object's slab with the cpu slab, append).

Simplifications (modelling choices):

- The cmpxchg loops always succeed (the simulation is single-threaded), so
  there are no redo paths; ``tid`` is not modelled.
- Object size is aligned to a word (SLUB's kmalloc caches); ``reserved`` is 0
  (no SLAB_DESTROY_BY_RCU caches), no debugging (``cpu_partial`` is never 0).
- ``get_partial_node`` reproduces 3.6's accounting, where the first acquired
  slab counts 0 available objects (its ``inuse`` was just set to
  ``objects``), so a second slab is always taken onto the cpu partial list
  when one is available.
- Several nodes: a new slab belongs to the allocating CPU's node;
  ``get_any_partial`` tries the other nodes whose partial list is longer than
  ``min_partial`` (the ``remote_node_defrag_ratio`` coin is not thrown).
- Caches named like the kernel's ``SLAB_RECLAIM_ACCOUNT`` caches
  (``radix_tree_node``, ``dentry``, ``buffer_head``, ``*inode_cache``) count
  as reclaimable and get ``__GFP_RECLAIMABLE``; all others unreclaimable.
- No flushing of per-CPU slabs on a timer (SLUB has no reaper);
  :meth:`SLUBAllocator.shrink` models ``kmem_cache_shrink``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

import attrs
from attrs import field, frozen

from swapsim.mm import gfp as G
from swapsim.slab import (AllocContext, CacheStats, PageSource, SlabAllocator,
                          is_reclaim_account)

# field() returns an attrs marker, not the attribute's value: compiled by mypyc,
# a class body that called it as typed (say ``-> list[int]``) would fail its own
# type check, so class bodies here call it untyped.
_field: Any = field

PAGE_SIZE: Final = 4096
PAGE_SHIFT: Final = 12
MAX_ORDER: Final = 11
#: An object handle is ``slab_id << OBJ_SHIFT | index`` (page.objects is 15 bits).
OBJ_SHIFT: Final = 16
MAX_OBJS_PER_PAGE: Final = 32767
MIN_PARTIAL: Final = 5
MAX_PARTIAL: Final = 10

GFP_RECLAIM_MASK: Final = (G.__GFP_WAIT | G.__GFP_HIGH | G.__GFP_IO | G.__GFP_FS | G.__GFP_NOWARN
                    | G.__GFP_REPEAT | G.__GFP_NOFAIL | G.__GFP_NORETRY | G.__GFP_MEMALLOC
                    | G.__GFP_NOMEMALLOC)
GFP_CONSTRAINT_MASK: Final = G.__GFP_HARDWALL | G.__GFP_THISNODE
# (bound here: inside class bodies G.__X would be name-mangled)
_GFP_COMP: Final = G.__GFP_COMP
_GFP_NOFAIL: Final = G.__GFP_NOFAIL
_GFP_NORETRY: Final = G.__GFP_NORETRY
_GFP_NOTRACK: Final = G.__GFP_NOTRACK
_GFP_NOWARN: Final = G.__GFP_NOWARN
_GFP_RECLAIMABLE: Final = G.__GFP_RECLAIMABLE

def get_order(size: int) -> int:
    """get_order(): the smallest order whose block holds ``size`` bytes."""
    return max(0, (size - 1) >> PAGE_SHIFT).bit_length()


def order_objects(order: int, size: int, reserved: int = 0) -> int:
    return ((PAGE_SIZE << order) - reserved) // size


def slab_order(size: int, min_objects: int, max_order: int, fract_leftover: int,
               reserved: int = 0, min_order: int = 0) -> int:
    """slab_order(): the first order ≥ the one holding ``min_objects``, waste ≤ 1/fract."""
    if order_objects(min_order, size, reserved) > MAX_OBJS_PER_PAGE:
        return get_order(size * MAX_OBJS_PER_PAGE) - 1
    order = max(min_order, (min_objects * size - 1).bit_length() - PAGE_SHIFT)
    while order <= max_order:
        slab_size = PAGE_SIZE << order
        if slab_size >= min_objects * size + reserved:
            rem = (slab_size - reserved) % size
            if rem <= slab_size // fract_leftover:
                break
        order += 1
    return order


def calculate_order(size: int, ncpus: int, *, max_order: int = 3, min_objects: int = 0,
                    reserved: int = 0) -> int:
    """calculate_order(): the slab order SLUB picks for objects of ``size`` bytes."""
    if not min_objects:
        min_objects = 4 * (ncpus.bit_length() + 1)
    min_objects = min(min_objects, order_objects(max_order, size, reserved))
    while min_objects > 1:
        fraction = 16
        while fraction >= 4:
            order = slab_order(size, min_objects, max_order, fraction, reserved)
            if order <= max_order:
                return order
            fraction //= 2
        min_objects -= 1
    order = slab_order(size, 1, max_order, 1, reserved)
    if order <= max_order:
        return order
    order = slab_order(size, 1, MAX_ORDER, 1, reserved)
    if order < MAX_ORDER:
        return order
    raise ValueError(f"object size {size} does not fit a slab")


def cpu_partial_for(size: int) -> int:
    """kmem_cache_open(): objects kept on a CPU's partial list."""
    if size >= PAGE_SIZE:
        return 2
    if size >= 1024:
        return 6
    if size >= 256:
        return 13
    return 30


def min_partial_for(size: int) -> int:
    """set_min_partial(ilog2(size) / 2), clamped to [MIN_PARTIAL, MAX_PARTIAL]."""
    return min(max((size.bit_length() - 1) // 2, MIN_PARTIAL), MAX_PARTIAL)


@frozen(kw_only=True)
class SLUBOptions:
    """``[plugin.slub]``: SLUB boot parameters (defaults are 3.6's)."""

    #: slub_max_order= (PAGE_ALLOC_COSTLY_ORDER).
    slub_max_order: int = _field(default=3, validator=attrs.validators.in_(range(0, MAX_ORDER)))
    #: slub_min_objects=; 0 = 4 × (fls(nr_cpu_ids) + 1).
    slub_min_objects: int = _field(default=0, validator=attrs.validators.ge(0))


class CpuSlab:
    """struct kmem_cache_cpu: the cpu slab, its lockless freelist, the cpu partial list.

    ``partial`` is a stack of slab ids (the end is ``c->partial``) with the
    ``pobjects`` each had when it was pushed in ``pobjects``.
    """

    __slots__ = ("page", "freelist", "partial", "pobjects")

    def __init__(self) -> None:
        self.page = -1
        self.freelist: list[int] = []
        self.partial: list[int] = []
        self.pobjects: list[int] = []


class KmemCache:
    """struct kmem_cache (the parts the model needs)."""

    __slots__ = ("id", "name", "object_size", "size", "order", "objects", "min_order",
                 "min_objects_", "min_partial", "cpu_partial", "reclaimable", "allocflags",
                 "cpus", "partial", "nr_slabs", "nr_pages", "total_objects",
                 "pfmemalloc_slabs", "order_fallbacks", "discarded")

    def __init__(self, cid: int, name: str, object_size: int, size: int, order: int,
                 min_order: int, reclaimable: bool, ncpus: int, nnodes: int) -> None:
        self.id = cid
        self.name = name
        self.object_size = object_size
        self.size = size
        self.order = order                      # oo
        self.objects = order_objects(order, size)
        self.min_order = min_order              # min
        self.min_objects_ = order_objects(min_order, size)
        self.min_partial = min_partial_for(size)
        self.cpu_partial = cpu_partial_for(size)
        self.reclaimable = reclaimable
        self.allocflags = ((_GFP_COMP if order else 0)
                           | (_GFP_RECLAIMABLE if reclaimable else 0) | _GFP_NOTRACK)
        self.cpus = [CpuSlab() for _ in range(ncpus)]
        #: per node: the partial list, an ordered dict used as a list (first key = head)
        self.partial: list[OrderedDict[int, None]] = [OrderedDict() for _ in range(nnodes)]
        self.nr_slabs = 0
        self.nr_pages = 0
        self.total_objects = 0
        self.pfmemalloc_slabs = 0
        self.order_fallbacks = 0
        self.discarded = 0


class SLUBAllocator(SlabAllocator):
    """SLUB (Linux 3.6): one cpu slab per CPU, partial lists, empty slabs freed at once."""

    name = "slub"

    def __init__(self, pages: PageSource, *, ncpus: int, nnodes: int = 1,
                 slab_pfmemalloc: bool = False, memalloc_socks: Any = lambda: 0,
                 options: SLUBOptions | None = None) -> None:
        if options is None:
            options = SLUBOptions()
        super().__init__(pages, ncpus=ncpus, nnodes=nnodes, slab_pfmemalloc=slab_pfmemalloc,
                         memalloc_socks=memalloc_socks, options=options)
        self._caches: list[KmemCache] = []
        #: hot-path index: _cpus[cache][cpu] is that CPU's kmem_cache_cpu
        self._cpus: list[list[CpuSlab]] = []
        # per-slab (struct page) state, indexed by slab id
        self._sfree: list[list[int]] = []   # page->freelist
        self._sinuse: list[int] = []
        self._sobjects: list[int] = []
        self._sfrozen: list[bool] = []
        self._spfm: list[bool] = []         # PageSlabPfmemalloc
        self._szone: list[int] = []
        self._sorder: list[int] = []
        self._snode: list[int] = []
        self._scache: list[int] = []
        self._sid_free: list[int] = []
        self._pages_reclaimable = 0
        self._pages_unreclaimable = 0

    # -- cache creation ------------------------------------------------------

    def create_cache(self, name: str, size: int) -> int:
        """kmem_cache_create(): returns the cache id."""
        if size <= 0:
            raise ValueError(f"cache {name!r}: object size must be > 0, got {size}")
        opts: SLUBOptions = self.options
        asize = max(8, (size + 7) & ~7)
        order = calculate_order(asize, self.ncpus, max_order=opts.slub_max_order,
                                min_objects=opts.slub_min_objects)
        cid = len(self._caches)
        cache = KmemCache(cid, name, size, asize, order, get_order(asize),
                          is_reclaim_account(name), self.ncpus, self.nnodes)
        self._caches.append(cache)
        self._cpus.append(cache.cpus)
        return cid

    def cache(self, cid: int) -> KmemCache:
        """The cache's parameters and state (for inspection and tests)."""
        return self._caches[cid]

    # -- allocation ----------------------------------------------------------

    def alloc(self, cache: int, gfp: int, ctx: AllocContext) -> int:
        """kmem_cache_alloc() without sleeping: an object handle or -1."""
        c = self._cpus[cache][ctx.cpu]
        fl = c.freelist
        if fl:                          # slab_alloc fast path: no pfmemalloc check (3.6)
            return fl.pop()
        return self._slab_alloc(self._caches[cache], c, gfp, ctx)

    def alloc_bulk(self, cache: int, gfp: int, ctx: AllocContext, n: int) -> list[int]:
        """``n`` alloc() calls: the cpu freelist is taken with one slice (in pop order,
        ``fl[-1], fl[-2], …``); when it is empty, one alloc() call (the slow path, which
        may install a new freelist), then slicing resumes."""
        c = self._cpus[cache][ctx.cpu]
        out: list[int] = []
        while n > 0:
            fl = c.freelist             # rebound by the slow path: read it afresh
            k = len(fl)
            if k > n:
                k = n
            if k:
                top = fl[-k:]
                del fl[-k:]
                top.reverse()
                if out:
                    out += top
                else:                   # the first run is the result so far: no copy
                    out = top
                n -= k
                if not n:
                    break
            obj = self._slab_alloc(self._caches[cache], c, gfp, ctx)   # alloc(): the freelist is empty
            if obj < 0:
                break
            out.append(obj)
            n -= 1
        return out

    def alloc_fast_count(self, cache: int, ctx: AllocContext, n: int) -> int:
        """The objects on the cpu freelist (at most ``n``): popped without any check."""
        return max(0, min(n, len(self._cpus[cache][ctx.cpu].freelist)))

    def _pfmemalloc_match(self, sid: int, gfp: int, ctx: AllocContext) -> bool:
        return not self._spfm[sid] or self.pages.pfmemalloc_allowed(gfp, ctx)

    def _slab_alloc(self, s: KmemCache, c: CpuSlab, gfp: int, ctx: AllocContext) -> int:
        """__slab_alloc(): the slow path."""
        sid = c.page
        while True:
            if sid >= 0:                # redo:
                if self._spfm[sid] and not self.pages.pfmemalloc_allowed(gfp, ctx):
                    self._deactivate_slab(s, sid, c.freelist)
                    c.page = -1
                    c.freelist = []
                elif c.freelist:
                    return c.freelist.pop()
                else:
                    fl: list[int] | None = self._sfree[sid]  # get_freelist()
                    self._sinuse[sid] = self._sobjects[sid]
                    if fl:
                        self._sfree[sid] = []
                        obj = fl.pop()
                        c.freelist = fl
                        return obj
                    self._sfrozen[sid] = False
                    c.page = -1
            # new_slab:
            if c.partial:
                sid = c.page = c.partial.pop()
                c.pobjects.pop()
                c.freelist = []
                continue
            fl = self._new_slab_objects(s, c, gfp, ctx)
            if fl is None:
                return -1
            sid = c.page
            obj = fl.pop()
            if not self._spfm[sid] or self.pages.pfmemalloc_allowed(gfp, ctx):
                c.freelist = fl
                return obj
            # Not reached without debugging in 3.6 (partial search and new slabs match).
            self._deactivate_slab(s, sid, fl)
            c.page = -1
            c.freelist = []
            return obj

    def _new_slab_objects(self, s: KmemCache, c: CpuSlab, gfp: int,
                          ctx: AllocContext) -> list[int] | None:
        """new_slab_objects(): a freelist from a partial slab or a new slab; sets c.page."""
        fl = self._get_partial(s, c, gfp, ctx)
        if fl is not None:
            return fl
        sid = self._new_slab(s, gfp, ctx)
        if sid < 0:
            return None
        if c.page >= 0:                 # flush_slab()
            self._deactivate_slab(s, c.page, c.freelist)
            c.freelist = []
        fl = self._sfree[sid]
        self._sfree[sid] = []
        c.page = sid
        return fl

    def _get_partial(self, s: KmemCache, c: CpuSlab, gfp: int,
                     ctx: AllocContext) -> list[int] | None:
        """get_partial(): the local node first, then (NUMA) other nodes over min_partial."""
        node = self._cpu_node[ctx.cpu]
        fl = self._get_partial_node(s, node, c, gfp, ctx)
        if fl is not None or self.nnodes == 1:
            return fl
        for other in range(self.nnodes):
            if other != node and len(s.partial[other]) > s.min_partial:
                fl = self._get_partial_node(s, other, c, gfp, ctx)
                if fl is not None:
                    return fl
        return None

    def _get_partial_node(self, s: KmemCache, node: int, c: CpuSlab, gfp: int,
                          ctx: AllocContext) -> list[int] | None:
        """get_partial_node(): the first matching slab becomes the cpu slab, further ones go
        onto the cpu partial list until more than cpu_partial/2 objects are available."""
        partial = s.partial[node]
        if not partial:
            return None
        spfm = self._spfm
        allowed = None
        obj_list = None
        taken = []
        half = s.cpu_partial // 2
        for sid in partial:
            if spfm[sid]:
                if allowed is None:
                    allowed = self.pages.pfmemalloc_allowed(gfp, ctx)
                if not allowed:
                    continue
            taken.append(sid)
            self._sfrozen[sid] = True
            if obj_list is None:        # acquire_slab(mode=1): take the whole freelist
                obj_list = self._sfree[sid]
                self._sfree[sid] = []
                self._sinuse[sid] = self._sobjects[sid]
                c.page = sid
                available = 0           # 3.6: objects - inuse after inuse = objects
            else:                       # acquire_slab(mode=0) + put_cpu_partial(drain=0)
                available = self._put_cpu_partial(s, c, sid, False)
            if available > half:
                break
        for sid in taken:
            del partial[sid]
        return obj_list

    def _new_slab(self, s: KmemCache, gfp: int, ctx: AllocContext) -> int:
        """new_slab() + allocate_slab(): a frozen slab id with all objects free, or -1."""
        flags = (gfp & (GFP_RECLAIM_MASK | GFP_CONSTRAINT_MASK)) | s.allocflags
        order = s.order
        alloc_gfp = (flags | _GFP_NOWARN | _GFP_NORETRY) & ~_GFP_NOFAIL
        zone, pfmemalloc = self.pages.alloc_nosleep(alloc_gfp, order, ctx)
        if zone < 0:
            if ctx.may_reclaim and not ctx.reclaimed and order != s.min_order:
                # The speculative attempt keeps __GFP_WAIT: it direct-reclaims
                # once (compaction needs __GFP_IO and __GFP_FS) before SLUB
                # falls back.  The caller does the sleeping part.
                ctx.reclaim_order = order
                return -1
            order = s.min_order
            zone, pfmemalloc = self.pages.alloc_nosleep(flags, order, ctx)
            if zone < 0:
                return -1
            s.order_fallbacks += 1
        ctx.reclaimed = False           # this slab has its pages: the next one reclaims anew
        objects = s.objects if order == s.order else s.min_objects_
        pfmemalloc = bool(pfmemalloc) and self.slab_pfmemalloc
        if self._sid_free:
            sid = self._sid_free.pop()
        else:
            sid = len(self._sinuse)
            for lst in (self._sfree, self._sinuse, self._sobjects, self._sfrozen, self._spfm,
                        self._szone, self._sorder, self._snode, self._scache):
                lst.append(0)  # type: ignore[arg-type]  # set below
        base = sid << OBJ_SHIFT
        self._sfree[sid] = list(range(base + objects - 1, base - 1, -1))
        self._sinuse[sid] = objects
        self._sobjects[sid] = objects
        self._sfrozen[sid] = True
        self._spfm[sid] = pfmemalloc
        self._szone[sid] = zone
        self._sorder[sid] = order
        self._snode[sid] = self._cpu_node[ctx.cpu]
        self._scache[sid] = s.id
        npages = 1 << order
        if s.reclaimable:
            self._pages_reclaimable += npages
        else:
            self._pages_unreclaimable += npages
        s.nr_slabs += 1
        s.nr_pages += npages
        s.total_objects += objects
        if pfmemalloc:
            s.pfmemalloc_slabs += 1
        return sid

    # -- list management -----------------------------------------------------

    def _deactivate_slab(self, s: KmemCache, sid: int, freelist: list[int]) -> None:
        """deactivate_slab(): the cpu freelist back to the page, then unfreeze."""
        pfl = self._sfree[sid]
        to_tail = bool(pfl)             # remote frees happened: DEACTIVATE_TO_TAIL
        if freelist:
            pfl.extend(freelist)
            self._sinuse[sid] -= len(freelist)
        self._sfrozen[sid] = False
        partial = s.partial[self._snode[sid]]
        if not self._sinuse[sid] and len(partial) > s.min_partial:
            self._discard_slab(s, sid)
        elif pfl:
            partial[sid] = None
            if not to_tail:
                partial.move_to_end(sid, last=False)
        # else: full, on no list

    def _put_cpu_partial(self, s: KmemCache, c: CpuSlab, sid: int, drain: bool) -> int:
        """put_cpu_partial(): push a frozen slab; with ``drain``, an over-full list is
        unfrozen to the node first.  Returns the list's pobjects."""
        pobjects = 0
        if c.partial:
            pobjects = c.pobjects[-1]
            if drain and pobjects > s.cpu_partial:
                self._unfreeze_partials(s, c)
                pobjects = 0
        pobjects += self._sobjects[sid] - self._sinuse[sid]
        c.partial.append(sid)
        c.pobjects.append(pobjects)
        return pobjects

    def _unfreeze_partials(self, s: KmemCache, c: CpuSlab) -> None:
        """unfreeze_partials(): every cpu partial slab to its node's partial tail; empty ones
        are discarded while the node holds more than min_partial partial slabs."""
        discard = []
        for sid in reversed(c.partial):
            self._sfrozen[sid] = False
            partial = s.partial[self._snode[sid]]
            if not self._sinuse[sid] and len(partial) > s.min_partial:
                discard.append(sid)
            else:
                partial[sid] = None
        c.partial = []
        c.pobjects = []
        for sid in discard:
            self._discard_slab(s, sid)

    def _discard_slab(self, s: KmemCache, sid: int) -> None:
        """discard_slab() + __free_slab(): the pages go back to the page allocator."""
        order = self._sorder[sid]
        npages = 1 << order
        if s.reclaimable:
            self._pages_reclaimable -= npages
        else:
            self._pages_unreclaimable -= npages
        s.nr_slabs -= 1
        s.nr_pages -= npages
        s.total_objects -= self._sobjects[sid]
        s.discarded += 1
        if self._spfm[sid]:
            self._spfm[sid] = False     # __ClearPageSlabPfmemalloc
            s.pfmemalloc_slabs -= 1
        self._sfree[sid] = []
        self._scache[sid] = -1
        self._sid_free.append(sid)
        self.pages.free_pages(self._szone[sid], order, 1)

    # -- free ----------------------------------------------------------------

    def free(self, cache: int, obj: int, ctx: AllocContext) -> None:
        """kmem_cache_free(): to the cpu freelist if the object is in this CPU's cpu slab."""
        c = self._cpus[cache][ctx.cpu]
        if obj >> OBJ_SHIFT == c.page:
            c.freelist.append(obj)
        else:
            self._slab_free(self._caches[cache], obj, ctx)

    def free_bulk(self, cache: int, objs: list[int], ctx: AllocContext) -> None:
        """free() of each object in order: the objects of the cpu slab go onto the cpu
        freelist with one extend, the others through __slab_free() in their order
        (a run of objects of one frozen slab with one extend of its freelist).

        This is exact.  __slab_free() and what it calls (put_cpu_partial,
        unfreeze_partials, discard_slab) never change the cpu slab, never rebind
        or read the cpu freelist and never discard a frozen slab (the cpu slab is
        frozen and not on the cpu partial list); appending to the cpu freelist
        changes nothing they read.  So the two kinds of frees commute, and each
        kind keeps its own order.
        """
        if not objs:
            return
        c = self._cpus[cache][ctx.cpu]
        page = c.page
        # the objects go from list to list as the int objects they are (typed
        # Any): an int-typed object would be boxed anew for each list
        objs_o: list[Any] = objs
        others_o = objs_o
        if page >= 0:
            mine: list[Any] = []
            others_o = []
            obj: int
            for oo in objs_o:
                obj = oo
                (mine if obj >> OBJ_SHIFT == page else others_o).append(oo)
            if mine:
                c.freelist += mine
                if not others_o:
                    return
        # The others in order, through __slab_free(); but once an object's slab is
        # frozen (a cpu or cpu partial slab, or a full slab the free just froze), a
        # free of the next objects of the same slab only puts them on its freelist.
        others: list[int] = others_o
        s = self._caches[cache]
        sfree, sinuse, sfrozen = self._sfree, self._sinuse, self._sfrozen
        m = len(others)
        i = 0
        while i < m:
            self._slab_free(s, others_o[i], ctx)
            sid = others[i] >> OBJ_SHIFT
            i += 1
            if sfrozen[sid]:
                j = i
                while j < m and others[j] >> OBJ_SHIFT == sid:
                    j += 1
                if j > i:
                    sfree[sid] += others[i:j]
                    sinuse[sid] -= j - i
                    i = j

    def free_fast_count(self, cache: int, objs: list[int], ctx: AllocContext) -> int:
        """Leading objects of the cpu slab or of a frozen slab: such a free touches only
        the cpu freelist or that slab's freelist and inuse (no list moves, no discard)."""
        page = self._cpus[cache][ctx.cpu].page
        frozen = self._sfrozen
        k = 0
        for obj in objs:
            sid = obj >> OBJ_SHIFT
            if sid != page and not frozen[sid]:
                break
            k += 1
        return k

    def _slab_free(self, s: KmemCache, oo: Any, ctx: AllocContext) -> None:
        """__slab_free() of the object ``oo`` (an int, typed Any: see free_bulk)."""
        obj: int = oo
        sid = obj >> OBJ_SHIFT
        pfl: list[Any] = self._sfree[sid]
        prior = bool(pfl)
        pfl.append(oo)
        self._sinuse[sid] -= 1
        if self._sfrozen[sid]:          # a cpu slab or cpu partial slab: nothing else to do
            return
        if not prior:                   # it was full (on no list): freeze onto our cpu partial
            self._sfrozen[sid] = True
            self._put_cpu_partial(s, s.cpus[ctx.cpu], sid, True)
            return
        if not self._sinuse[sid]:       # on the node partial list and now empty
            partial = s.partial[self._snode[sid]]
            if len(partial) > s.min_partial:
                del partial[sid]
                self._discard_slab(s, sid)

    def shrink(self, cache: int) -> int:
        """flush_all() + kmem_cache_shrink(): every cpu slab deactivated, empty slabs freed.

        Returns the pages given back.
        """
        s = self._caches[cache]
        before = s.nr_pages
        for c in s.cpus:
            if c.page >= 0:
                self._deactivate_slab(s, c.page, c.freelist)
                c.page = -1
                c.freelist = []
            self._unfreeze_partials(s, c)
        for partial in s.partial:
            for sid in [sid for sid in partial if not self._sinuse[sid]]:
                del partial[sid]
                self._discard_slab(s, sid)
        return before - s.nr_pages

    # -- queries -------------------------------------------------------------

    def is_pfmemalloc(self, cache: int, obj: int) -> bool:
        return self._spfm[obj >> OBJ_SHIFT]

    def _free_on_node_partials(self, s: KmemCache) -> int:
        return sum(self._sobjects[sid] - self._sinuse[sid]
                   for partial in s.partial for sid in partial)

    def cache_stats(self) -> list[CacheStats]:
        """As /proc/slabinfo under SLUB: free objects of cpu slabs count as active."""
        out = []
        for s in self._caches:
            free = self._free_on_node_partials(s)
            out.append(CacheStats(s.name, s.object_size, s.total_objects - free,
                                  s.total_objects, s.nr_pages, s.pfmemalloc_slabs))
        return out

    def nr_slab_pages(self) -> tuple[int, int]:
        return self._pages_reclaimable, self._pages_unreclaimable

    def diagnose(self) -> dict[str, Any]:
        caches = {}
        for s in self._caches:
            on_node = self._free_on_node_partials(s)
            cpu_free = sum(len(c.freelist) for c in s.cpus)
            cpu_slab_page_free = sum(len(self._sfree[c.page]) for c in s.cpus if c.page >= 0)
            cpu_partial_free = sum(self._sobjects[sid] - self._sinuse[sid]
                                   for c in s.cpus for sid in c.partial)
            free = on_node + cpu_free + cpu_slab_page_free + cpu_partial_free
            caches[s.name] = {
                "object_size": s.object_size, "size": s.size, "order": s.order,
                "objperslab": s.objects, "min_order": s.min_order,
                "min_partial": s.min_partial, "cpu_partial": s.cpu_partial,
                "objects": s.total_objects, "in_use": s.total_objects - free,
                "free_objects": free, "free_on_node_partial": on_node,
                "free_on_cpu_freelists": cpu_free + cpu_slab_page_free,
                "free_on_cpu_partial": cpu_partial_free,
                "slabs": s.nr_slabs,
                "node_partial_slabs": [len(p) for p in s.partial],
                "cpu_partial_slabs": sum(len(c.partial) for c in s.cpus),
                "cpu_slabs_pfmemalloc": sum(1 for c in s.cpus
                                            if c.page >= 0 and self._spfm[c.page]),
                "pages": s.nr_pages, "pfmemalloc_slabs": s.pfmemalloc_slabs,
                "order_fallbacks": s.order_fallbacks, "discarded": s.discarded,
            }
        return {"allocator": self.name, "slab_pfmemalloc": self.slab_pfmemalloc,
                "caches": caches}
