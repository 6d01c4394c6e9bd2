"""The memory manager: nodes and zones, the page allocator, faults and swap.

:class:`MM` owns all memory state of one simulated machine.  Reclaim
(direct and kswapd) lives in :mod:`swapsim.mm.vmscan` and works on the same
state.  Generators (``yield from``) are the kernel paths that can sleep;
plain methods are the ones that cannot (softirq, atomic allocations).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Generator

import attrs
import numpy as np
import structlog

from .._mypyc import mypyc_attr
from ..block import READ, Request
from ..cpu import Cpus
from ..engine import Event, WaitQueue
from ..slab import AllocContext, SlabAllocator, task_context
from . import gfp as G
from .pages import (PG_ACTIVE, PG_DIRTY, PG_LOCKED, PG_LRU, PG_ORPHAN, PG_PRESENT, PG_READAHEAD,
                    PG_REFERENCED, PG_RESIDENT, PG_SWAPCACHE, PG_TOUCHED, PG_WRITEBACK,
                    PageState, sort_by_slot)
from .swap_state import SwapCache
from .swapfile import SwapArea
from .zone import (MAX_NR_ZONES, PAGE_SHIFT, ZONE_NAMES, ZONE_NORMAL, Zone,
                   default_min_free_kbytes, inactive_ratio_for, setup_lowmem_reserve,
                   setup_watermarks, zone_layout)

if TYPE_CHECKING:  # pragma: no cover
    from ..block import SwapTransport
    from ..cpu import Task
    from ..simulation import Simulation
    from .vmscan import Reclaim

log = structlog.get_logger()

# the flags as Python ints, for the PageState vecs
_PRESENT: Final = int(PG_PRESENT)
_RESIDENT: Final = int(PG_RESIDENT)
_LOCKED: Final = int(PG_LOCKED)
_WRITEBACK: Final = int(PG_WRITEBACK)
_SWAPCACHE: Final = int(PG_SWAPCACHE)
_ORPHAN: Final = int(PG_ORPHAN)
_MAPPED_WRITE: Final = int(PG_PRESENT | PG_DIRTY | PG_REFERENCED)
_SWAPIN_SET: Final = int(PG_RESIDENT | PG_SWAPCACHE | PG_LOCKED | PG_TOUCHED)
_SWAPIN_CLEAR: Final = int(PG_DIRTY | PG_REFERENCED | PG_PRESENT | PG_READAHEAD)
_READAHEAD: Final = int(PG_READAHEAD)
_LRU: Final = int(PG_LRU)
_ACTIVE: Final = int(PG_ACTIVE)
_TOUCHED: Final = int(PG_TOUCHED)
_ZERO_FAULT: Final = int(PG_RESIDENT | PG_PRESENT | PG_DIRTY | PG_REFERENCED | PG_TOUCHED)
_TOUCH: Final = int(PG_REFERENCED | PG_DIRTY)

JIFFY: Final = 0.004  # HZ=250


#: the vmstat counter of each zone type's page allocations
_PGALLOC: Final = tuple(f"pgalloc_{n.lower()}" for n in ZONE_NAMES)


class Costs:
    """The CostConfig figures, as native floats.

    The config is an attrs class, which compiled code reads with a dict
    lookup per attribute; the fault and reclaim paths read these per batch.
    """

    touch_page: float
    fault_zero: float
    fault_minor: float
    fault_major: float
    swapin_page: float
    alloc_page: float
    scan_page: float
    page_referenced: float
    unmap_page: float
    pageout: float
    free_page: float
    timeslice: float

    def __init__(self, cfg: Any) -> None:
        # every figure of the config: one not declared above fails here
        for f in attrs.fields(type(cfg)):
            setattr(self, f.name, float(getattr(cfg, f.name)))


class OutOfMemory(Exception):
    """The OOM killer would have fired: ends the arm with outcome "oom"."""


class SwapIOError(Exception):
    """A swap-in failed (e.g. the NBD connection was reset): outcome "error"."""


class Node:
    """pg_data_t: a node's zones, its kswapd and its wait queues."""

    def __init__(self, nid: int, zones: list[Zone], env: Any) -> None:
        self.nid = nid
        self.node_zones = zones                       # all four types, empty ones included
        self.zones = [z for z in zones if z.present]  # populated, DMA first
        self.kswapd_wait = WaitQueue(env, f"kswapd{nid}")
        self.pfmemalloc_wait = WaitQueue(env, f"pfmemalloc_wait{nid}")
        self.kswapd_sleeping = False
        self.kswapd_order = 0
        self.kswapd_task: Task | None = None
        self.zonelist: list[Zone] = []                # set by MM: local zones, highest first

    def pfmemalloc_reserve(self) -> tuple[int, int]:
        """(free pages, Σ MIN) over zones up to ZONE_NORMAL, for throttling."""
        free = reserve = 0
        for z in self.node_zones[:ZONE_NORMAL + 1]:
            free += z.nr_free
            reserve += z.watermark[0]
        return free, reserve


# Compiled, it stays open to plain Python subclasses: tests instrument its
# methods that way (a compiled class's methods cannot be patched).
@mypyc_attr(allow_interpreted_subclasses=True)
class MM:
    # set by the simulation once it has made them
    transport: SwapTransport
    reclaim: Reclaim

    def __init__(self, sim: "Simulation") -> None:
        cfg = sim.config
        self.sim = sim
        self.env = sim.env
        #: typed, so that compiled code calls Cpus.run() natively
        self.cpus: Cpus = sim.cpus
        self.cost = Costs(cfg.cost)
        self.patches = frozenset(cfg.kernel.patches)
        mc = cfg.machine
        self.nodes: list[Node] = []
        self.zones: list[Zone] = []
        layout = zone_layout(mc.memory, mc.nodes)
        for nid, row in enumerate(layout):
            node_zones = []
            for idx, present in enumerate(row):
                z = Zone(node=nid, idx=idx, gid=-1, present=present)
                if present:
                    z.gid = len(self.zones)
                    self.zones.append(z)
                node_zones.append(z)
            setup_lowmem_reserve(node_zones, mc.lowmem_reserve_ratio)
            self.nodes.append(Node(nid, node_zones, self.env))
        for node in self.nodes:
            local = sorted(node.zones, key=lambda z: -z.idx)
            remote = [z for n in self.nodes if n is not node
                      for z in sorted(n.zones, key=lambda z: -z.idx)]
            node.zonelist = local + remote
        self.lowmem_pages = sum(z.present for z in self.zones)
        self.min_free_kbytes = (mc.min_free_kbytes if mc.min_free_kbytes is not None else
                                default_min_free_kbytes(self.lowmem_pages, mc.watermark_profile))
        self.watermark_updates = 0
        self._recompute_watermarks()
        for z in self.zones:
            # the memmap (struct page, 64 bytes per page) is allocated at boot
            z.init_free(z.present - z.present // 64)
            z.inactive_ratio = inactive_ratio_for(z.present)
            z.nr_inactive = 0
            z.nr_active = 0
        self.boot_reserved = sum(z.present // 64 for z in self.zones)
        for z in self.zones:
            # the page cache of a freshly booted machine, clean and cold
            z.nr_file = int(z.nr_free * mc.page_cache) if z.idx != 0 else 0
            z.take_pages(z.nr_file)
        self.vmstat = sim.vmstat
        self.ev = sim.vmstat.ev
        self.swap = SwapArea(cfg.swap.size >> PAGE_SHIFT)
        #: the swap cache's radix tree; set by the simulation once it has a slab allocator
        self.swap_cache: SwapCache | None = None
        self.pages = PageState(0)
        self.page_cluster = cfg.kernel.page_cluster
        self.read_events: dict[int, Event] = {}
        self.pages_touched = 0
        #: bumped by every change that could make a page reclaimable or not (see
        #: Reclaim.try_to_free_pages)
        self.lru_gen = 0
        self.nr_writeback = 0
        self.nr_reading = 0
        self.swap_io_errors = 0
        self._read_failed: dict[int, bool] = {}
        self.kernel_pages = 0   # pages held by kernel users outside slab (socket pages …)
        self.sw_gfp_memalloc = "gfp-memalloc" in self.patches
        self.sw_softirq = "softirq-memalloc" in self.patches

    @property
    def now(self) -> float:
        return self.env.now

    # -- sysctl -----------------------------------------------------------
    def _recompute_watermarks(self) -> None:
        mc = self.sim.config.machine
        setup_watermarks(self.zones, self.min_free_kbytes, mc.watermark_profile,
                         mc.watermark_scale_factor)
        self.watermark_updates += 1

    def set_min_free_kbytes(self, value: int) -> Generator[Event, Any, None]:
        """Write vm.min_free_kbytes at run time.

        With ``min-free-lock`` (patch 1) all zones are updated under one lock,
        atomically.  Without it the update walks the zones one by one and an
        allocation running between two steps sees some zones with old and
        some with new watermarks: the model yields between zones.
        """
        self.min_free_kbytes = value
        if "min-free-lock" in self.patches:
            self._recompute_watermarks()
            return
        mc = self.sim.config.machine
        new = [Zone(node=z.node, idx=z.idx, gid=z.gid, present=z.present) for z in self.zones]
        setup_watermarks(new, value, mc.watermark_profile, mc.watermark_scale_factor)
        for z, n in zip(self.zones, new):
            z.watermark = n.watermark
            yield self.env.timeout(0)
        self.watermark_updates += 1

    # -- workload memory ----------------------------------------------------
    def setup_anon(self, nr_pages: int) -> None:
        self.pages = PageState(nr_pages)

    def zonelist(self, task: "Task | None") -> list[Zone]:
        return self.nodes[(task.pid if task is not None else 0) % len(self.nodes)].zonelist

    # -- the page allocator ---------------------------------------------------
    def pfmemalloc_allowed(self, gfp: int, ctx: AllocContext) -> bool:
        """gfp_pfmemalloc_allowed(): may this caller take ALLOC_NO_WATERMARKS?"""
        if gfp & G.GFP_NOMEMALLOC:
            return False
        if gfp & G.GFP_MEMALLOC and self.sw_gfp_memalloc:
            return True
        pf: int = ctx.task.flags if ctx.task is not None else 0
        if ctx.softirq:
            return self.sw_softirq and bool(pf & G.PF_MEMALLOC)
        return bool(pf & G.PF_MEMALLOC)

    def alloc_flags(self, gfp: int, ctx: AllocContext) -> int:
        """gfp_to_alloc_flags() of 3.6."""
        flags = G.ALLOC_WMARK_MIN | G.ALLOC_CPUSET
        if gfp & G.GFP_HIGH:
            flags |= G.ALLOC_HIGH
        if not gfp & G.GFP_WAIT:
            if not gfp & G.GFP_NOMEMALLOC:
                flags |= G.ALLOC_HARDER
            flags &= ~G.ALLOC_CPUSET
        if self.pfmemalloc_allowed(gfp, ctx):
            flags |= G.ALLOC_NO_WATERMARKS
        return flags

    def _take(self, zonelist: list[Zone], order: int, alloc_flags: int) -> Zone | None:
        """get_page_from_freelist() for one block."""
        classzone = zonelist[0].idx
        wm = alloc_flags & G.ALLOC_WMARK_MASK
        check = not alloc_flags & G.ALLOC_NO_WATERMARKS
        for z in zonelist:
            if check:
                if order == 0:
                    # Zone.watermark_ok() for order 0, inlined: slab pages come this way
                    m = z.watermark[wm]
                    if alloc_flags & G.ALLOC_HIGH:
                        m -= m // 2
                    if alloc_flags & G.ALLOC_HARDER:
                        m -= m // 4
                    if z.nr_free <= m + z.lowmem_reserve[classzone]:
                        continue
                elif not z.watermark_ok(order, z.watermark[wm], classzone, alloc_flags):
                    continue
            if z.take(order):
                self.ev[_PGALLOC[z.idx]] += 1 << order
                return z
        return None

    def _take_bulk(self, zonelist: list[Zone], n: int, alloc_flags: int,
                   out: list[tuple[int, int]]) -> int:
        """get_page_from_freelist() repeated ``n`` times for order-0 pages."""
        classzone = zonelist[0].idx
        wm = alloc_flags & G.ALLOC_WMARK_MASK
        got = 0
        for z in zonelist:
            if got == n:
                break
            if alloc_flags & G.ALLOC_NO_WATERMARKS:
                room = z.nr_free
            else:
                m = z.watermark[wm]
                if alloc_flags & G.ALLOC_HIGH:
                    m -= m // 2
                if alloc_flags & G.ALLOC_HARDER:
                    m -= m // 4
                room = z.nr_free - (m + z.lowmem_reserve[classzone])
            k = min(n - got, room)
            if k > 0:
                k = z.take_pages(k)
                out.append((z.gid, k))
                self.ev[_PGALLOC[z.idx]] += k
                got += k
        return got

    def wake_all_kswapd(self, zonelist: list[Zone], order: int) -> None:
        for z in zonelist:
            if order == 0:
                # Zone.watermark_ok(0, LOW, 0, 0) inlined: the fault path calls this per page
                if z.nr_free > z.watermark[1] + z.lowmem_reserve[0]:
                    continue
            elif z.watermark_ok(order, z.watermark[1], 0, 0):
                continue
            node = self.nodes[z.node]
            if node.kswapd_sleeping and node.kswapd_wait.waiters:
                node.kswapd_order = max(node.kswapd_order, order)
                self.sim.trace("mm_vmscan_wakeup_kswapd", nid=z.node, zid=z.idx, order=order)
                node.kswapd_wait.wake_up_all()

    def alloc_nosleep(self, gfp: int, order: int, ctx: AllocContext) -> tuple[int, bool]:
        """One block without sleeping: the slow path up to (not including) reclaim."""
        task = ctx.task
        nodes = self.nodes
        pid: int = task.pid if task is not None else 0
        zl = nodes[pid % len(nodes)].zonelist
        z = self._take(zl, order, G.ALLOC_WMARK_LOW | G.ALLOC_CPUSET)
        if z is not None:
            return z.gid, False
        if not gfp & G.GFP_NO_KSWAPD:
            self.wake_all_kswapd(zl, order)
        af = self.alloc_flags(gfp, ctx)
        z = self._take(zl, order, af & ~G.ALLOC_NO_WATERMARKS)
        if z is not None:
            return z.gid, False
        if af & G.ALLOC_NO_WATERMARKS:
            # patch 5 ignores the memory policy here; the model has no
            # mempolicies, so both ways take the local zonelist.
            z = self._take(zl, order, af)
            if z is not None:
                return z.gid, True
        return -1, False

    def free_pages(self, zone: int, order: int, count: int = 1) -> None:
        """__free_pages() of kernel (non-workload) blocks."""
        z = self.zones[zone]
        if order == 0:
            z.give_pages(count)
        else:
            z.give(order, count)
        self._freed(z, count << order)

    def _freed(self, z: Zone, n: int) -> None:
        self.ev["pgfree"] += n
        z.pages_scanned = 0
        z.all_unreclaimable = False

    def alloc_pages(self, task: "Task", gfp: int, order: int,
                    ctx: AllocContext | None = None) -> Generator[Event, Any, tuple[int, bool]]:
        """__alloc_pages_nodemask() for one block, sleeping and reclaiming as gfp allows."""
        ctx = ctx or task_context(task)
        while True:
            zone, pfm = self.alloc_nosleep(gfp, order, ctx)
            if zone >= 0 or not gfp & G.GFP_WAIT or task.flags & G.PF_MEMALLOC:
                return zone, pfm
            progress = yield from self.reclaim.try_to_free_pages(task, gfp, order)
            zone, pfm = self.alloc_nosleep(gfp, order, ctx)
            if zone >= 0:
                return zone, pfm
            if gfp & G.GFP_NORETRY or order > 3:
                return -1, False
            yield from self._no_progress(task, gfp, progress)

    def _no_progress(self, task: "Task", gfp: int, progress: int) -> Generator[Event, Any, None]:
        """After a failed reclaim round: OOM check, then wait_iff_congested(HZ/50)."""
        if not progress and gfp & G.GFP_FS and not self.io_in_flight():
            raise OutOfMemory(f"{task.comm}: no reclaim progress and no I/O in flight")
        task.set_state("alloc_retry", self.env.now)
        yield from self.wait_iff_congested(0.02, self.zonelist(task)[0])

    def io_in_flight(self) -> bool:
        return self.nr_writeback > 0 or self.nr_reading > 0

    def wait_iff_congested(self, timeout: float, zone: Zone | None = None,
                           min_sleep: float = JIFFY) -> Generator[Event, Any, None]:
        """Sleep up to ``timeout`` if a device is write-congested and ``zone``
        is flagged ZONE_CONGESTED (any zone when None); else only
        cond_resched().  Anon reclaim never flags a zone (see
        ``Reclaim.shrink_zone``), so in this model the sleep needs a zone
        flagged by other means (a test, a plugin).

        ``min_sleep`` (one jiffy) keeps an allocation retry loop from spinning
        at one instant of simulated time; batch-level callers pass 0.
        """
        q = self.transport.queue
        if q.congested and (zone is None or zone.congested):
            yield q.congestion_wait.wait(timeout)
        elif min_sleep:
            yield self.env.timeout(min_sleep)

    def congestion_wait(self, timeout: float) -> Generator[Event, Any, None]:
        """Sleep until the swap device leaves congestion, or ``timeout``."""
        yield self.transport.queue.congestion_wait.wait(timeout)

    def alloc_bulk(self, task: "Task", gfp: int, n: int, least: int | None = None
                   ) -> Generator[Event, Any, list[tuple[int, int]]]:
        """Order-0 pages for ``task``: [(zone id, count), …], at least ``least`` (default n).

        The kernel allocates one page per call.  The model takes a batch in
        one call while the fast path (LOW) allows, which is the same
        arithmetic; in the slow path it takes one page per round, like the
        kernel, so that pages freed by one direct reclaimer stay free for
        the other allocators (nbd0 among them) instead of being swallowed by
        a batch.  Returns once ``least`` pages are had, or with fewer when the
        task may not reclaim (PF_MEMALLOC, or no __GFP_WAIT).
        """
        least = n if least is None else least
        zl = self.zonelist(task)
        out: list[tuple[int, int]] = []
        got = self._take_bulk(zl, n, G.ALLOC_WMARK_LOW | G.ALLOC_CPUSET, out)
        ctx = None
        while got < least:
            if ctx is None:
                ctx = task_context(task)
            self.wake_all_kswapd(zl, 0)
            af = self.alloc_flags(gfp, ctx)
            if self._take_bulk(zl, 1, af & ~G.ALLOC_NO_WATERMARKS, out) or (
                    af & G.ALLOC_NO_WATERMARKS and self._take_bulk(zl, 1, af, out)):
                got += 1
                if got < least:  # the rest: fast path first, as the next call would
                    got += self._take_bulk(zl, least - got, G.ALLOC_WMARK_LOW | G.ALLOC_CPUSET, out)
                continue
            if task.flags & G.PF_MEMALLOC or not gfp & G.GFP_WAIT:
                break           # no reclaim recursion, no sleeping: short
            progress = yield from self.reclaim.try_to_free_pages(task, gfp, 0)
            if self._take_bulk(zl, 1, af & ~G.ALLOC_NO_WATERMARKS, out):
                got += 1
                continue
            yield from self._no_progress(task, gfp, progress)
        return out

    def kmem_cache_alloc_bulk(self, task: "Task", cache: int, gfp: int, n: int
                              ) -> Generator[Event, Any, list[int]]:
        """``n`` objects of a slab cache for a task that may sleep.

        The slab allocator never sleeps; when it fails and ``gfp`` allows
        sleeping, the task direct-reclaims and retries, like the page
        allocator's slow path underneath kmem_cache_alloc().
        """
        slab: SlabAllocator = self.sim.slab
        may_reclaim = bool(gfp & G.GFP_WAIT) and not task.flags & G.PF_MEMALLOC
        ctx = task_context(task, may_reclaim)
        objs: list[int] = []
        while True:
            got = slab.alloc_bulk(cache, gfp, ctx, n - len(objs))
            if objs:
                objs += got
            else:               # usually all of them at once: that list is the result
                objs = got
            if len(objs) == n:
                break
            if ctx.reclaim_order >= 0:
                # __alloc_pages_slowpath() of the slab's __GFP_NORETRY attempt:
                # one direct reclaim pass at its order; from then on (until
                # the slab has its pages, ctx.reclaimed) the slab falls back
                # to its min order, whose failures reclaim at order 0 below.
                order, ctx.reclaim_order = ctx.reclaim_order, -1
                task.set_state("slab_alloc", self.env.now)
                yield from self.reclaim.try_to_free_pages(task, gfp | G.GFP_NORETRY, order)
                ctx.reclaimed = True
                continue
            if not may_reclaim:
                break
            task.set_state("slab_alloc", self.env.now)
            progress = yield from self.reclaim.try_to_free_pages(task, gfp, 0)
            obj = slab.alloc(cache, gfp, ctx)
            if obj >= 0:
                objs.append(obj)
                continue
            yield from self._no_progress(task, gfp, progress)
        return objs

    def _place(self, pages: np.ndarray, chunks: list[tuple[int, int]]) -> None:
        """Record which zone each newly allocated page came from."""
        i = 0
        zone = self.pages.zone
        for gid, k in chunks:
            zone[pages[i:i + k]] = gid
            i += k

    def _place_list(self, pages: list[int], chunks: list[tuple[int, int]]) -> None:
        """_place() for a short list."""
        i = 0
        mzone = self.pages.mzone
        for gid, k in chunks:
            for p in pages[i:i + k]:
                mzone[p] = gid
            i += k

    def _release_unused(self, chunks: list[tuple[int, int]], used: int) -> None:
        """Give back the tail of a bulk allocation that turned out not to be needed."""
        i = 0
        for gid, k in chunks:
            spare = min(k, max(0, i + k - used))
            if spare:
                z = self.zones[gid]
                z.give_pages(spare)
                self._freed(z, spare)
            i += k

    # -- LRU ------------------------------------------------------------------
    def lru_add(self, pages: list[int] | np.ndarray, active: bool) -> None:
        """lru_cache_add(): put pages at the head of their zone's list, in order."""
        if isinstance(pages, np.ndarray):
            pages = pages.tolist()
        if not pages:
            return
        self.lru_gen += 1
        ps = self.pages
        mflags = ps.mflags
        if active:
            for p in pages:
                mflags[p] |= _LRU | _ACTIVE
        else:
            for p in pages:
                mflags[p] = (mflags[p] | _LRU) & ~_ACTIVE
        zones = self.zones
        for gid, sel in self.by_zone(pages):
            z = zones[gid]
            if active:
                z.active.push_pages(sel, ps)
                z.nr_active += len(sel)
            else:
                z.inactive.push_pages(sel, ps)
                z.nr_inactive += len(sel)

    def by_zone(self, pages: list[int]) -> list[tuple[int, list[int]]]:
        """(zone id, its pages in the given order) in zone order, as
        np.unique would group them: lists move between zones' LRUs this way."""
        zones = self.zones
        if len(zones) == 1:
            return [(zones[0].gid, pages)]
        if not pages:
            return []
        mzone = self.pages.mzone
        first = mzone[pages[0]]
        for p in pages:                 # nearly always: one zone
            if mzone[p] != first:
                break
        else:
            return [(first, pages)]
        groups: dict[int, list[int]] = {}
        for p in pages:
            groups.setdefault(mzone[p], []).append(p)
        return sorted(groups.items())

    # -- faults ---------------------------------------------------------------
    def touch(self, task: "Task", start: int, end: int) -> Generator[Event, Any, None]:
        """The workload writes one word in each page of [start, end)."""
        ps = self.pages
        flags = ps.flags
        cost = self.cost
        cpus = self.cpus
        chunk = max(1, int(cost.timeslice / cost.touch_page)) if cost.touch_page else 1 << 20
        mflags = ps.mflags
        mslot = ps.mslot
        present = int(PG_PRESENT)
        resident = int(PG_RESIDENT)
        i = start
        #: sys time of the fault just taken, run with the touch run after it
        owed = 0.0
        while i < end:
            # n = the run of mapped pages at i, at most one timeslice of them.
            # Faults come every few pages, so look page by page first and let
            # numpy take over only on a long run (same n either way).
            lim = min(end, i + chunk)
            j = i
            stop = min(lim, i + 32)
            while j < stop and mflags[j] & present:
                j += 1
            if j == stop and j < lim:
                w = 256
                while True:
                    e = min(lim, j + w)
                    miss = np.flatnonzero((flags[j:e] & PG_PRESENT) == 0)
                    if len(miss):
                        j += int(miss[0])
                        break
                    j = e
                    if j == lim:
                        break
                    w <<= 2
            n = j - i
            if n:
                yield from cpus.run(task, owed, True, n * cost.touch_page)
                owed = 0.0
                if n <= 16:
                    for p in range(i, i + n):
                        mflags[p] |= _TOUCH
                        ps.mark(p)
                else:
                    flags[i:i + n] |= PG_REFERENCED | PG_DIRTY
                    ps.mark_np(slice(i, i + n))
                self.lru_gen += 1
                self.pages_touched += n
                i += n
                continue
            if owed:
                yield from cpus.run(task, owed, sys=True)
                owed = 0.0
            if mflags[i] & resident:
                owed = yield from self._fault_swapcache(task, i, end)
            elif mslot[i] >= 0:
                yield from self._fault_major(task, i)
            else:
                owed = yield from self._fault_zero(task, i, end)
        if owed:
            yield from cpus.run(task, owed, sys=True)

    def _fault_zero(self, task: "Task", i: int, end: int) -> Generator[Event, Any, float]:
        """do_anonymous_page() for a run of ≤ 32 never-touched pages; returns
        the fault's CPU time, which the caller runs with the writes after it."""
        ps = self.pages
        mflags = ps.mflags
        lim = min(end, i + 32)
        j = i
        while j < lim and not mflags[j] & (_RESIDENT | _TOUCHED):
            j += 1
        k = j - i
        assert k > 0, f"page {i} lost: neither resident, in swap, nor new"
        task.set_state("fault", self.env.now)
        chunks = yield from self.alloc_bulk(task, G.GFP_HIGHUSER_MOVABLE, k, least=1)
        k = sum(c for _, c in chunks)
        # while we slept nobody else could fault our private pages in
        pages = list(range(i, i + k))
        self._place_list(pages, chunks)
        for p in pages:
            mflags[p] |= _ZERO_FAULT
        self.lru_add(pages, active=True)
        self.ev["pgfault"] += k
        task.set_state("running", self.env.now)
        return k * (self.cost.fault_zero + self.cost.alloc_page)

    def _fault_swapcache(self, task: "Task", i: int, end: int) -> Generator[Event, Any, float]:
        """do_swap_page() hitting the swap cache, for a run of such pages;
        returns the faults' CPU time, run by the caller with the writes after."""
        ps = self.pages
        if ps.flags[i] & PG_LOCKED:
            task.set_state("swapin_wait", self.env.now)
            ev = self.read_events.get(i)
            if ev is not None:
                yield ev
            if self.swap_io_errors:
                self._check_read_error(i)
            task.set_state("running", self.env.now)
            return 0.0  # the caller looks at the page again
        mflags = ps.mflags
        lim = min(end, i + 64)
        j = i
        while j < lim and mflags[j] & (_RESIDENT | _PRESENT | _LOCKED) == _RESIDENT:
            j += 1
        k = j - i
        self._map_write_run(i, j, task.cpu)
        self.ev["pgfault"] += k
        return k * self.cost.fault_minor

    def _map_write_run(self, start: int, end: int, cpu: int) -> None:
        """Map the swap-cache pages [start, end) writable on ``cpu``: reuse_swap_page() takes
        the page out of the swap cache and frees the slot unless the page is
        under writeback.  A page swap-in readahead brought in is a readahead
        hit (swap_ra_hit, as 4.14 counts it in lookup_swap_cache())."""
        ps = self.pages
        mflags, mslot = ps.mflags, ps.mslot
        self.lru_gen += 1
        reuse = [p for p in range(start, end) if not mflags[p] & _WRITEBACK]
        if reuse:
            if self.swap_cache is not None:
                self.swap_cache.delete([mslot[p] for p in reuse if mflags[p] & _SWAPCACHE], cpu)
            self.swap.release_list([mslot[p] for p in reuse])
            for p in reuse:
                mslot[p] = -1
                mflags[p] &= ~_SWAPCACHE
                ps.mark(p)
        hits = 0
        for p in range(start, end):
            f = mflags[p]
            if f & _READAHEAD:
                hits += 1
            mflags[p] = (f | _MAPPED_WRITE) & ~_READAHEAD
            ps.mark(p)
        if hits:
            self.ev["swap_ra_hit"] += hits

    def _check_read_error(self, page: int) -> None:
        ps = self.pages
        if not ps.flags[page] & PG_RESIDENT and ps.slot[page] >= 0 and self._read_failed.get(page):
            raise SwapIOError(f"swap-in of page {page} failed with EIO")

    def _fault_major(self, task: "Task", i: int) -> Generator[Event, Any, None]:
        """do_swap_page() missing the swap cache: swapin_readahead() of an aligned block."""
        ps = self.pages
        mflags, mslot = ps.mflags, ps.mslot
        task.set_state("fault", self.env.now)
        mask = (1 << self.page_cluster) - 1
        start: int = mslot[i] & ~mask
        mowner = self.swap.mowner
        cand: list[int] = []
        for slot in range(start, min(start + mask + 1, len(mowner))):
            p: int = mowner[slot]
            if p >= 0 and not mflags[p] & _RESIDENT:
                cand.append(p)
        cost = self.cost
        yield from self.cpus.run(
            task, cost.fault_major + len(cand) * (cost.alloc_page + cost.swapin_page), sys=True)
        chunks = yield from self.alloc_bulk(task, G.GFP_HIGHUSER_MOVABLE, len(cand))
        tree = self.swap_cache
        need = tree.deficit(task.cpu) if tree is not None else 0
        if tree is not None and need:
            # radix_tree_preload(GFP_KERNEL) of read_swap_cache_async(): may
            # reclaim.  The kernel preloads before each page; the block's
            # pages share one leaf, so one preload holds their nodes.
            objs = yield from self.kmem_cache_alloc_bulk(task, tree.cache, G.GFP_KERNEL, need)
            tree.refill(task.cpu, objs)
        # While we slept, others may have read some of these pages in.
        still = [p for p in cand if not mflags[p] & _RESIDENT and mslot[p] >= 0]
        if len(still) < len(cand):
            self._release_unused(chunks, len(still))
            cand = still
        if cand:
            self._place_list(cand, chunks)
            for p in cand:
                mflags[p] = (mflags[p] | _SWAPIN_SET) & ~_SWAPIN_CLEAR
                if p != i:
                    mflags[p] |= _READAHEAD
            self.ev["swap_ra"] += len(cand) - (i in cand)
            self.lru_add(cand, active=False)
            cand = sort_by_slot(cand, mslot)
            if tree is not None:
                tree.insert_preloaded([mslot[p] for p in cand], task_context(task))
            self.nr_reading += len(cand)
            self.ev["pswpin"] += len(cand)
            self.ev["pgpgin"] += len(cand) * 4
            self.ev["pgmajfault"] += 1
            # One request (and one completion event) per run of contiguous slots.
            runs = []
            run = [cand[0]]
            prev = mslot[cand[0]]
            for p in cand[1:]:
                s = mslot[p]
                if s != prev + 1:
                    runs.append(run)
                    run = []
                run.append(p)
                prev = s
            runs.append(run)
            submit = self.transport.queue.submit
            for run in runs:
                ev = Event(self.env)
                for p in run:
                    self.read_events[p] = ev

                def done(req: Request, ev: Event = ev) -> None:
                    self._read_done(req)
                    ev.succeed()
                # a read is ≤ 8 pages: lists (the block layer takes either)
                yield from submit(task, READ, [mslot[p] for p in run], run, done)
        if mflags[i] & _LOCKED:
            task.set_state("swapin_wait", self.env.now)
            pending = self.read_events.get(i)
            if pending is not None:
                yield pending
        task.set_state("running", self.env.now)
        fi = mflags[i]
        if fi & _RESIDENT and not fi & (_PRESENT | _LOCKED):
            self._map_write_run(i, i + 1, task.cpu)
            self.ev["pgfault"] += 1
        elif self.swap_io_errors:
            self._check_read_error(i)

    def _read_done(self, req: Request) -> None:
        ps = self.pages
        pl: list[int] = req.pages       # _fault_major submits reads as lists
        self.lru_gen += 1
        self.nr_reading -= len(pl)
        read_events = self.read_events
        for p in pl:
            read_events.pop(p, None)
        if req.error:
            # end_swap_bio_read(): the page is not uptodate; it leaves the swap
            # cache and the faulting task gets SIGBUS.
            self.swap_io_errors += 1
            arr = np.array(pl, dtype=np.int32)
            ps.mark_np(arr)
            if self.swap_cache is not None:
                self.swap_cache.delete(ps.slot[arr].tolist(), 0)
            ps.flags[arr] &= ~(PG_LOCKED | PG_RESIDENT | PG_SWAPCACHE | PG_LRU)
            self._free_frames(arr)
            self._read_failed = dict.fromkeys(pl, True)
            return
        if self.end_page_io(pl, _LOCKED):
            self.release_orphans(np.array(pl, dtype=np.int32))

    def end_page_io(self, pages: list[int], done: int) -> bool:
        """Clear ``done`` (_LOCKED when a read ends, _WRITEBACK when a write
        does) on each page; True if one of them is an orphan no longer under
        any I/O (for release_orphans).  A request is ≤ 31 pages: Python ints."""
        ps = self.pages
        mflags = ps.mflags
        orphans = False
        for p in pages:
            f = mflags[p] & ~done
            mflags[p] = f
            ps.mark(p)
            if f & (_ORPHAN | _LOCKED | _WRITEBACK) == _ORPHAN:
                orphans = True
        return orphans

    def _free_frames(self, pages: np.ndarray) -> None:
        """Give the frames of ``pages`` back to their zones (they must be off the LRU)."""
        zones = self.pages.zone[pages]
        for gid, cnt in zip(*np.unique(zones, return_counts=True)):
            if gid < 0:
                continue
            z = self.zones[gid]
            z.give_pages(int(cnt))
            self._freed(z, int(cnt))

    # -- exit ---------------------------------------------------------------
    def exit_mmap(self, start: int, end: int, cpu: int = 0) -> None:
        """A workload process exits on ``cpu``: free its resident pages and swap slots.

        Pages under I/O stay in the swap cache, unmapped; reclaim frees them
        once the I/O is done, as the kernel does.
        """
        ps = self.pages
        self.lru_gen += 1
        pages = np.arange(start, end, dtype=np.int32)
        f = ps.flags[pages]
        busy = (f & (PG_WRITEBACK | PG_LOCKED)) != 0
        free = pages[((f & PG_RESIDENT) != 0) & ~busy]
        if self.swap_cache is not None:
            # free_swap_and_cache(): the swap-cache pages leave the cache
            cached = pages[((f & PG_SWAPCACHE) != 0) & ~busy]
            self.swap_cache.delete(ps.slot[cached].tolist(), cpu)
        if len(free):
            self._lru_del(free)
            self._free_frames(free)
        swapped = pages[~busy & (ps.slot[pages] >= 0)]
        self.swap.release(ps.slot[swapped])
        ps.slot[swapped] = -1
        ps.mark_np(pages)
        ps.flags[pages[~busy]] = 0
        # free_swap_and_cache() cannot take a page under I/O: it stays in the
        # swap cache until the I/O ends, then goes (see release_orphans)
        ps.flags[pages[busy]] = (ps.flags[pages[busy]] & ~PG_PRESENT) | PG_ORPHAN

    def release_orphans(self, pages: np.ndarray) -> None:
        """I/O ended on pages whose process has exited: free frame and slot."""
        ps = self.pages
        orphans = pages[(ps.flags[pages] & (PG_ORPHAN | PG_WRITEBACK | PG_LOCKED)) == PG_ORPHAN]
        if not len(orphans):
            return
        self.lru_gen += 1
        if self.swap_cache is not None:
            cached = orphans[(ps.flags[orphans] & PG_SWAPCACHE) != 0]
            self.swap_cache.delete(ps.slot[cached].tolist(), 0)
        resident = orphans[(ps.flags[orphans] & PG_RESIDENT) != 0]
        self._lru_del(resident)
        self._free_frames(resident)
        self.swap.release(ps.slot[orphans])
        ps.slot[orphans] = -1
        ps.zone[orphans] = -1
        ps.mark_np(orphans)
        ps.flags[orphans] = 0

    def _lru_del(self, pages: np.ndarray) -> None:
        """Take pages off their LRU lists (their queue entries go stale)."""
        ps = self.pages
        f = ps.flags[pages]
        on = pages[(f & PG_LRU) != 0]
        act = (ps.flags[on] & PG_ACTIVE) != 0
        zones = ps.zone[on]
        for gid in np.unique(zones):
            z = self.zones[gid]
            sel = zones == gid
            z.nr_active -= int(np.count_nonzero(act & sel))
            z.nr_inactive -= int(np.count_nonzero(~act & sel))
        ps.mark_np(on)
        ps.lru_seq[on] = -1
        ps.flags[on] &= ~(PG_LRU | PG_ACTIVE)

    # -- state for reports ------------------------------------------------------
    def state_counters(self) -> dict[str, int]:
        ps = self.pages
        f = ps.flags
        nr_free = sum(z.nr_free for z in self.zones)
        slab_r, slab_u = self.sim.slab_pages()
        return {
            "nr_free_pages": nr_free,
            "nr_inactive_anon": sum(z.nr_inactive for z in self.zones),
            "nr_inactive_file": sum(z.nr_file for z in self.zones),
            "nr_active_anon": sum(z.nr_active for z in self.zones),
            "nr_anon_pages": int(np.count_nonzero(f & PG_PRESENT)),
            "nr_slab_reclaimable": slab_r,
            "nr_slab_unreclaimable": slab_u,
            "nr_writeback": self.nr_writeback,
            "nr_isolated_anon": 0,
            "nr_swapcache_pages": int(np.count_nonzero((f & (PG_SWAPCACHE | PG_RESIDENT))
                                                       == (PG_SWAPCACHE | PG_RESIDENT))),
        }

    def zone_table(self) -> list[dict[str, Any]]:
        return [{"node": z.node, "zone": z.name, "present": z.present, "min": z.min,
                 "low": z.low, "high": z.high, "nr_free": z.nr_free,
                 "protection": list(z.lowmem_reserve)} for z in self.zones]

    def free_vs_floors(self) -> list[dict[str, Any]]:
        """Free pages of each zone against each allocation floor (SPEC §3 table)."""
        out = []
        for z in self.zones:
            m = z.min
            out.append({"node": z.node, "zone": z.name, "free": z.nr_free, "low": z.low,
                        "min": m, "nowait_3/4min": m - m // 4, "high_nomemalloc_1/2min": m - m // 2,
                        "atomic_3/8min": (m - m // 2) - (m - m // 2) // 4})
        return out


__all__ = ["MM", "Node", "OutOfMemory", "SwapIOError", "MAX_NR_ZONES"]
