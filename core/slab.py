"""The slab allocator interface that the SLAB and SLUB plugins implement.

The core and the network model allocate kernel objects (skb heads, skb data,
NBD requests, radix-tree nodes …) through a :class:`SlabAllocator` chosen by
``kernel.slab``.  Objects are plain ``int`` handles, so that millions of them
cost no Python objects; the allocator keeps whatever per-object data it needs
(which slab an object lives in, whether it is tagged pfmemalloc) in its own
arrays.

The allocator gets pages from a :class:`PageSource` (the page allocator) and
gives them back; it never sleeps.  A caller that may sleep retries after
reclaim (see ``swapsim.mm.memory.MM.kmem_cache_alloc``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Protocol

from attrs import define

from ._mypyc import mypyc_attr
from .cpu import Task


class AllocContext:
    """Who allocates: the task (its PF_* flags) and whether it runs in softirq.

    A plain class rather than a dataclass: compiled, its ``__init__`` is native
    too, where a dataclass's generated one stays interpreted (~0.4 us, and one
    is made for every process-context allocation)."""

    def __init__(self, task: Task | None = None, softirq: bool = False, cpu: int = 0,
                 may_reclaim: bool = False, reclaim_order: int = -1,
                 reclaimed: bool = False) -> None:
        self.task = task          # None: interrupt context
        self.softirq = softirq
        self.cpu = cpu            # the CPU whose per-CPU caches are used
        #: the caller sleeps and direct-reclaims when the page allocator fails it
        #: (a __GFP_WAIT allocation by a task outside PF_MEMALLOC; set by
        #: MM.kmem_cache_alloc_bulk).  The slab allocator itself never sleeps.
        self.may_reclaim = may_reclaim
        #: set by a slab allocator whose page allocation would have entered direct
        #: reclaim before it could go on (SLUB's speculative high-order slab, which
        #: is __GFP_NORETRY but keeps __GFP_WAIT): the allocation returns failure,
        #: the caller reclaims at this order and calls again with ``reclaimed`` set.
        self.reclaim_order = reclaim_order
        #: the reclaim asked for with ``reclaim_order`` is done: until the slab
        #: gets its pages the allocation falls back instead of asking again.
        self.reclaimed = reclaimed

    def __repr__(self) -> str:
        return (f"AllocContext(task={self.task!r}, softirq={self.softirq}, cpu={self.cpu}, "
                f"may_reclaim={self.may_reclaim})")


def task_context(task: Task, may_reclaim: bool = False) -> AllocContext:
    """The context of an allocation in ``task``'s process context, on its home CPU."""
    return AllocContext(task=task, cpu=task.cpu, may_reclaim=may_reclaim)


class PageSource(Protocol):
    """What a slab allocator may ask of the page allocator."""

    def alloc_nosleep(self, gfp: int, order: int, ctx: AllocContext) -> tuple[int, bool]:
        """One block of 2**order pages without sleeping: (zone id, pfmemalloc) or (-1, False).

        Applies the watermark floors of ``gfp`` and context (SPEC §3); the
        block is marked pfmemalloc when it came from the no-watermarks step.
        """

    def free_pages(self, zone: int, order: int, count: int = 1) -> None:
        """Give ``count`` blocks of 2**order pages back to zone ``zone``."""

    def pfmemalloc_allowed(self, gfp: int, ctx: AllocContext) -> bool:
        """gfp_pfmemalloc_allowed(): may this caller use the reserve (and reserve objects)?"""

    @property
    def now(self) -> float:
        """Simulated time, for reapers and statistics."""


@define(eq=False)
class CacheStats:
    name: str
    object_size: int
    active_objs: int
    num_objs: int
    pages: int
    pfmemalloc_slabs: int


#: caches the kernel creates with SLAB_RECLAIM_ACCOUNT (counted as reclaimable)
RECLAIM_ACCOUNT_NAMES: Final = frozenset({"radix_tree_node", "dentry", "buffer_head"})


def is_reclaim_account(name: str) -> bool:
    """Is ``name`` one of the kernel's SLAB_RECLAIM_ACCOUNT caches?"""
    return name in RECLAIM_ACCOUNT_NAMES or name.endswith("inode_cache")


@mypyc_attr(allow_interpreted_subclasses=True)
class SlabAllocator:
    """Base class: a slab allocator policy (SLAB, SLUB, or a third party's).

    Subclasses implement the methods below.  ``slab_pfmemalloc`` is the
    ``slab-pfmemalloc`` patch switch: when False the allocator must ignore
    pfmemalloc marks entirely (vanilla behaviour).  ``memalloc_socks`` is a
    zero-argument callable returning the number of memalloc sockets (SLAB
    tags objects only while it is non-zero).
    """

    name: ClassVar[str] = "base"

    def __init__(self, pages: PageSource, *, ncpus: int, nnodes: int = 1,
                 slab_pfmemalloc: bool = False, memalloc_socks: Any = lambda: 0,
                 options: Any = None) -> None:
        if ncpus < 1 or nnodes < 1:
            raise ValueError("ncpus and nnodes must be >= 1")
        self.pages = pages
        self.ncpus = ncpus
        self.nnodes = nnodes
        #: CPUs are numbered node by node (cpu_to_node)
        self._cpu_node = [min(cpu * nnodes // ncpus, nnodes - 1) for cpu in range(ncpus)]
        self.slab_pfmemalloc = slab_pfmemalloc
        self.memalloc_socks = memalloc_socks
        self.options = options

    def create_cache(self, name: str, size: int) -> int:
        """kmem_cache_create(); returns a cache id."""
        raise NotImplementedError

    def alloc(self, cache: int, gfp: int, ctx: AllocContext) -> int:
        """kmem_cache_alloc() without sleeping: an object handle, or -1 on failure."""
        raise NotImplementedError

    def free(self, cache: int, obj: int, ctx: AllocContext) -> None:
        """kmem_cache_free()."""
        raise NotImplementedError

    def alloc_bulk(self, cache: int, gfp: int, ctx: AllocContext, n: int) -> list[int]:
        """Up to ``n`` objects in one call: exactly ``n`` calls of :meth:`alloc` in a row.

        Why: the network model allocates many objects at a time (a NAPI poll
        refills up to its budget of rx buffers, a request needs one buffer
        per segment); one call per batch instead of one per object lets an
        allocator serve the run of per-CPU fast-path hits with a slice.

        Semantics: the list of handles that ``n`` successive ``alloc(cache,
        gfp, ctx)`` calls return, stopping at the first failure (the ``-1``
        is not in the list, and no call is made after it).  The allocator's
        state afterwards, and every call it makes to its page source, are
        those of the single calls.  Overrides must keep this exactly.
        """
        out: list[int] = []
        alloc = self.alloc
        for _i in range(n):
            obj = alloc(cache, gfp, ctx)
            if obj < 0:
                break
            out.append(obj)
        return out

    def free_bulk(self, cache: int, objs: list[int], ctx: AllocContext) -> None:
        """Free many objects in one call: exactly ``free(cache, o, ctx)`` for each ``o`` in order."""
        free = self.free
        for obj in objs:
            free(cache, obj, ctx)

    def alloc_fast_count(self, cache: int, ctx: AllocContext, n: int) -> int:
        """How many (at most ``n``) of the next :meth:`alloc` calls for ``cache`` on ``ctx.cpu``
        are certain to be per-CPU fast-path hits; 0 if unknown (the default).

        A fast-path hit must succeed whatever the gfp, make no page-source
        call and read or change nothing but this cache's per-CPU state.  Such
        calls commute with any operation on another cache, so a caller that
        allocates from two caches in alternation (an rx buffer: data, head,
        data, head …) may take that many of each with :meth:`alloc_bulk`
        without changing anything observable.  The method changes no state.
        """
        return 0

    def free_fast_count(self, cache: int, objs: list[int], ctx: AllocContext) -> int:
        """How many leading objects of ``objs`` the next :meth:`free` calls of ``cache`` on
        ``ctx.cpu`` are certain to free without a page-source call and without changing
        any state that another cache's frees read or change; 0 if unknown (the default).

        Such frees commute with the frees of any other cache, so a caller
        that frees pairs from two caches (data, head, data, head …) may free
        that many of each with :meth:`free_bulk`.  (Unlike fast allocations
        they need not commute with another cache's *allocations*: SLAB's
        free reads the global pfmemalloc_active.)  The method changes no state.
        """
        return 0

    def is_pfmemalloc(self, cache: int, obj: int) -> bool:
        """Did this object come from a pfmemalloc slab (so an skb built on it is marked)?"""
        raise NotImplementedError

    def periodic(self, now: float) -> float | None:
        """Called by the simulation at the returned time (seconds from now); SLAB's reaper.

        Return the delay until the next call, or None if no periodic work.
        """
        return None

    def cache_stats(self) -> list[CacheStats]:
        raise NotImplementedError

    def nr_slab_pages(self) -> tuple[int, int]:
        """(reclaimable, unreclaimable) pages held, for nr_slab_* counters."""
        raise NotImplementedError

    def diagnose(self) -> dict[str, Any]:
        """Plain data describing the allocator's state, for lockup diagnosis."""
        return {}
