"""A fake PageSource shared by the slab allocator tests."""

from __future__ import annotations

from swapsim.mm import gfp as G
from swapsim.slab import AllocContext


class FakePages:
    """A PageSource: a counter of free pages with a floor per kind of caller.

    Callers without __GFP_WAIT must leave ``floor_atomic`` pages free, the
    others ``floor_wait``; entitled callers (__GFP_MEMALLOC) ignore floors.
    Orders in ``refuse_orders`` always fail.  Blocks come back pfmemalloc
    while ``mark_pfmemalloc`` is set.
    """

    def __init__(self, free: int = 10_000, floor_atomic: int = 0, floor_wait: int = 0) -> None:
        self.free = free
        self.floor_atomic = floor_atomic
        self.floor_wait = floor_wait
        self.refuse_orders: set[int] = set()
        self.mark_pfmemalloc = False
        self.calls: list[tuple[int, int]] = []
        self.freed: list[tuple[int, int, int]] = []
        self.now = 0.0

    def pfmemalloc_allowed(self, gfp: int, ctx: AllocContext) -> bool:
        return bool(gfp & G.GFP_MEMALLOC) and not gfp & G.GFP_NOMEMALLOC

    def alloc_nosleep(self, gfp: int, order: int, ctx: AllocContext) -> tuple[int, bool]:
        self.calls.append((gfp, order))
        n = 1 << order
        floor = 0 if self.pfmemalloc_allowed(gfp, ctx) else (
            self.floor_wait if gfp & G.GFP_WAIT else self.floor_atomic)
        if order in self.refuse_orders or self.free - n < floor:
            return -1, False
        self.free -= n
        return 1, self.mark_pfmemalloc

    def free_pages(self, zone: int, order: int, count: int = 1) -> None:
        self.freed.append((zone, order, count))
        self.free += count << order
