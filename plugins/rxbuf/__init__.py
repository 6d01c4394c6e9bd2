"""Driver receive-buffer helpers: how a NIC refills its rx ring.

- ``kmalloc``: ``__netdev_alloc_skb`` with a kmalloc'd data buffer
  (``kmalloc-2048`` for an MTU-1500 frame) and an skb head from
  ``skbuff_head_cache``.  With ``netvm``, ``kmalloc_reserve`` first tries the
  data buffer with __GFP_NOMEMALLOC and only on failure from the reserve,
  which marks the skb pfmemalloc.
- ``page-frag``: ``netdev_alloc_frag``/``__netdev_alloc_page``: 2 KiB
  fragments carved from order-0 pages, plus an skb head.  The page's
  pfmemalloc mark reaches the skb only with ``netdev-alloc-page`` (patch 11);
  without it, reserve pages are delivered to any socket.
"""

from __future__ import annotations

from typing import Any

from swapsim.hookspecs import hookimpl
from swapsim.mm import gfp as G
from swapsim.net import RxBufferHelper
from swapsim.slab import AllocContext


class KmallocRx(RxBufferHelper):
    """skb data from kmalloc-2048, head from skbuff_head_cache."""

    name = "kmalloc"

    def __init__(self, sim: Any, options: Any = None) -> None:
        super().__init__(sim, options)
        self.slab = sim.slab
        size = sim.config.net.rx_buffer_size
        self.data_cache = sim.kmem_cache(f"kmalloc-{size}", size)
        self.head_cache = sim.kmem_cache("skbuff_head_cache", 256)
        self.netvm = "netvm" in sim.patches
        self.mm = sim.mm

    def alloc(self, gfp: int, ctx: AllocContext) -> Any:
        slab = self.slab
        pfm = False
        if self.netvm:
            data = slab.alloc(self.data_cache, gfp | G.GFP_NOMEMALLOC | G.GFP_NOWARN, ctx)
            if data < 0 and self.mm.pfmemalloc_allowed(gfp, ctx):
                data = slab.alloc(self.data_cache, gfp, ctx)
                pfm = data >= 0
        else:
            data = slab.alloc(self.data_cache, gfp, ctx)
        if data < 0:
            return None
        head = slab.alloc(self.head_cache, gfp, ctx)
        if head < 0:
            slab.free(self.data_cache, data, ctx)
            return None
        return (data, head, pfm)

    def pfmemalloc(self, handle: Any) -> bool:
        return handle[2]

    def free(self, handle: Any, ctx: AllocContext) -> None:
        self.slab.free(self.data_cache, handle[0], ctx)
        self.slab.free(self.head_cache, handle[1], ctx)


class PageFragRx(RxBufferHelper):
    """2 KiB fragments of order-0 pages (netdev_alloc_frag), head from skbuff_head_cache."""

    name = "page-frag"

    def __init__(self, sim: Any, options: Any = None) -> None:
        super().__init__(sim, options)
        self.mm = sim.mm
        self.slab = sim.slab
        self.head_cache = sim.kmem_cache("skbuff_head_cache", 256)
        self.frags_per_page = max(1, 4096 // sim.config.net.rx_buffer_size)
        self.propagate = "netdev-alloc-page" in sim.patches and "netvm" in sim.patches
        self.cur: list[Any] | None = None   # [zone, pfmemalloc, frags left, refs]
        self.pages = 0

    def alloc(self, gfp: int, ctx: AllocContext) -> Any:
        if self.cur is None or self.cur[2] == 0:
            zone, pfm = self.mm.alloc_nosleep(gfp, 0, ctx)
            if zone < 0:
                return None
            self.cur = [zone, pfm, self.frags_per_page, 0]
            self.pages += 1
        head = self.slab.alloc(self.head_cache, gfp, ctx)
        if head < 0:
            return None
        page = self.cur
        page[2] -= 1
        page[3] += 1
        return (page, head)

    def pfmemalloc(self, handle: Any) -> bool:
        return self.propagate and handle[0][1]

    def free(self, handle: Any, ctx: AllocContext) -> None:
        page, head = handle
        self.slab.free(self.head_cache, head, ctx)
        page[3] -= 1
        if page[3] == 0 and page[2] == 0:
            self.mm.free_pages(page[0], 0)
            self.pages -= 1


@hookimpl
def swapsim_register_rx_buffers(register: Any) -> None:
    register("kmalloc", KmallocRx)
    register("page-frag", PageFragRx)
