"""The rx-buffer helpers (see the package docstring); compiled with mypyc (setup.py)."""

from __future__ import annotations

from typing import Any, Final

from swapsim._mypyc import mypyc_attr
from swapsim.mm import gfp as G
from swapsim.net import RxBufferHelper
from swapsim.slab import AllocContext, PageSource, SlabAllocator


def _hits(got: object, promised: object) -> None:
    """Fast-path hits never fail: a mismatch means alloc_fast_count() lied."""
    if got != promised:
        raise AssertionError("a fast-path hit failed (alloc_fast_count lied)")


#: KmallocRx's buffer handle: (data object, head object, pfmemalloc)
KmallocBuf = tuple[int, int, bool]

#: how many objects a free_fast_count() call looks at (bounds the copying of slices)
_WINDOW: Final = 128


def _add_bufs(out: list[Any], data: list[Any], heads: list[Any]) -> None:
    """``out += zip(data, heads, repeat(False))`` as a compiled loop, the
    handles going in as the int objects they are (no zip, repeat or generic
    extend per call: most calls pair a few buffers)."""
    for i in range(min(len(data), len(heads))):
        out.append((data[i], heads[i], False))


@mypyc_attr(allow_interpreted_subclasses=True)
class KmallocRx(RxBufferHelper):
    """skb data from kmalloc-2048, head from skbuff_head_cache."""

    name = "kmalloc"

    def __init__(self, sim: Any, options: Any = None) -> None:
        super().__init__(sim, options)
        self.slab: SlabAllocator = sim.slab
        size = sim.config.net.rx_buffer_size
        self.data_cache = sim.kmem_cache(f"kmalloc-{size}", size)
        self.head_cache = sim.kmem_cache("skbuff_head_cache", 256)
        self.netvm = "netvm" in sim.patches
        self.mm: PageSource = sim.mm

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

    def pfmemalloc_marks(self, handles: list[Any]) -> list[Any]:
        bufs: list[KmallocBuf] = handles
        return [h[2] for h in bufs]

    def free(self, handle: Any, ctx: AllocContext) -> None:
        self.slab.free(self.data_cache, handle[0], ctx)
        self.slab.free(self.head_cache, handle[1], ctx)

    def alloc_bulk(self, gfp: int, ctx: AllocContext, n: int) -> list[Any]:
        """``n`` alloc() calls, batched over stretches where one cache's allocations are
        certain fast-path hits (alloc_fast_count): such a hit succeeds whatever the gfp
        and commutes with anything the other cache does, so the other cache may be
        taken with one alloc_bulk() in its own order, slow paths and failure included.

        - Heads fast for ``k`` buffers: ``k`` data objects with one alloc_bulk()
          (with netvm: __GFP_NOMEMALLOC), then as many heads.  If the data fell
          short, the failed attempt was made; alloc() would then try the reserve
          (netvm and pfmemalloc_allowed) for that buffer, or stop.
        - Else data fast for ``k``: ``k`` heads first, then as many data objects
          (hits: no reserve, pfmemalloc False).  If the heads fell short, alloc()
          took that buffer's data object and freed it again after the failed head:
          so do we, and stop.
        - Else one alloc() call.
        """
        slab = self.slab
        dc, hc = self.data_cache, self.head_cache
        if dc == hc:
            return super().alloc_bulk(gfp, ctx, n)
        netvm = self.netvm
        dgfp = gfp | G.GFP_NOMEMALLOC | G.GFP_NOWARN if netvm else gfp
        out: list[Any] = []
        while n > 0:
            kd = slab.alloc_fast_count(dc, ctx, n)
            kh = slab.alloc_fast_count(hc, ctx, n)
            if kh and kh >= kd:
                data = slab.alloc_bulk(dc, dgfp, ctx, kh)
                j = len(data)
                heads = slab.alloc_bulk(hc, gfp, ctx, j)
                _hits(len(heads), j)
                _add_bufs(out, data, heads)
                n -= j
                if j == kh:
                    continue
                # buffer j: its first data attempt failed (inside alloc_bulk)
                if not netvm or not self.mm.pfmemalloc_allowed(gfp, ctx):
                    break
                data_j = slab.alloc(dc, gfp, ctx)
                if data_j < 0:
                    break
                head_j = slab.alloc(hc, gfp, ctx)       # still a fast-path hit (j < kh)
                _hits(head_j >= 0, True)
                out.append((data_j, head_j, True))
                n -= 1
            elif kd:
                heads = slab.alloc_bulk(hc, gfp, ctx, kd)
                j = len(heads)
                data = slab.alloc_bulk(dc, dgfp, ctx, j)
                _hits(len(data), j)
                _add_bufs(out, data, heads)
                n -= j
                if j == kd:
                    continue
                # buffer j: data taken (a hit), head failed (inside alloc_bulk), data freed
                data_j = slab.alloc(dc, dgfp, ctx)
                _hits(data_j >= 0, True)
                slab.free(dc, data_j, ctx)
                break
            else:
                handle = self.alloc(gfp, ctx)
                if handle is None:
                    break
                out.append(handle)
                n -= 1
        return out

    def free_bulk(self, handles: list[Any], ctx: AllocContext) -> None:
        """free() of each handle in order.  Over a stretch where the frees of one cache are
        all fast (free_fast_count), the data objects and the heads are freed with one
        free_bulk() each: fast frees commute with anything the other cache's frees do,
        and each cache keeps its order.  Otherwise one free() call."""
        slab = self.slab
        dc, hc = self.data_cache, self.head_cache
        if dc == hc:
            super().free_bulk(handles, ctx)
            return
        # typed: compiled code reads the tuples natively, and the handles as
        # the int objects they are (an int-typed read would box a new one
        # for each list it goes into)
        bufs: list[tuple[object, object, bool]] = handles
        data: list[Any] = [h[0] for h in bufs]
        heads: list[Any] = [h[1] for h in bufs]
        m = len(handles)
        i = 0
        while i < m:
            j = i + _WINDOW
            k = max(slab.free_fast_count(dc, data[i:j], ctx), slab.free_fast_count(hc, heads[i:j], ctx))
            if k:
                j = i + k
                slab.free_bulk(dc, data[i:j], ctx)
                slab.free_bulk(hc, heads[i:j], ctx)
                i = j
            else:
                self.free(handles[i], ctx)
                i += 1


@mypyc_attr(allow_interpreted_subclasses=True)
class PageFragRx(RxBufferHelper):
    """2 KiB fragments of order-0 pages (netdev_alloc_frag), head from skbuff_head_cache."""

    name = "page-frag"

    def __init__(self, sim: Any, options: Any = None) -> None:
        super().__init__(sim, options)
        self.mm: PageSource = sim.mm
        self.slab: SlabAllocator = sim.slab
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

    def pfmemalloc_marks(self, handles: list[Any]) -> list[Any]:
        if not self.propagate:
            return [self.propagate] * len(handles)
        return [h[0][1] for h in handles]

    def free(self, handle: Any, ctx: AllocContext) -> None:
        page, head = handle
        self.slab.free(self.head_cache, head, ctx)
        page[3] -= 1
        if page[3] == 0 and page[2] == 0:
            self.mm.free_pages(page[0], 0)
            self.pages -= 1

    def alloc_bulk(self, gfp: int, ctx: AllocContext, n: int) -> list[Any]:
        """``n`` alloc() calls.  While the next ``k`` heads are fast-path hits, the
        fragments (and any new pages, in order) are carved as alloc() would and the
        ``k`` heads taken with one alloc_bulk(): a fast-path hit cannot fail and
        commutes with the page allocator calls.  Otherwise one alloc() call."""
        slab, mm = self.slab, self.mm
        hc = self.head_cache
        fpp = self.frags_per_page
        out: list[Any] = []
        while n > 0:
            k = slab.alloc_fast_count(hc, ctx, n)
            if not k:
                handle = self.alloc(gfp, ctx)
                if handle is None:
                    break
                out.append(handle)
                n -= 1
                continue
            pages = []
            cur = self.cur
            failed = False
            for _i in range(k):
                if cur is None or cur[2] == 0:
                    zone, pfm = mm.alloc_nosleep(gfp, 0, ctx)
                    if zone < 0:        # alloc() returns None before the head
                        failed = True
                        break
                    cur = self.cur = [zone, pfm, fpp, 0]
                    self.pages += 1
                cur[2] -= 1
                cur[3] += 1
                pages.append(cur)
            heads = slab.alloc_bulk(hc, gfp, ctx, len(pages))
            _hits(len(heads), len(pages))
            out += zip(pages, heads)
            if failed:
                break
            n -= k
        return out

    def free_bulk(self, handles: list[Any], ctx: AllocContext) -> None:
        """free() of each handle in order.  Over a stretch of fast head frees
        (free_fast_count) the heads are freed with one free_bulk() and the fragments
        released in order (fast frees commute with the page allocator calls);
        otherwise one free() call."""
        slab, mm = self.slab, self.mm
        hc = self.head_cache
        heads = [h[1] for h in handles]
        m = len(handles)
        i = 0
        while i < m:
            k = slab.free_fast_count(hc, heads[i:i + _WINDOW], ctx)
            if not k:
                self.free(handles[i], ctx)
                i += 1
                continue
            j = i + k
            slab.free_bulk(hc, heads[i:j], ctx)
            for page, _ in handles[i:j]:
                page[3] -= 1
                if page[3] == 0 and page[2] == 0:
                    mm.free_pages(page[0], 0)
                    self.pages -= 1
            i = j
