"""Page reclaim: shrink_page_list, direct reclaim, kswapd (SPEC §7, §8).

Reclaim works in the kernel's own batches: it isolates up to
SWAP_CLUSTER_MAX (32) pages from the tail of a zone's LRU list, decides each
page's fate in one vectorised step, then charges the CPU time of the batch
and submits the batch's writes.  A batch is atomic in simulated time; between
batches other tasks run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Generator

import numpy as np

from .._mypyc import mypyc_attr
from ..block import WRITE, Request
from ..engine import Event
from ..slab import AllocContext, task_context
from . import gfp as G
from .pages import (NOIO_CHANGED, PG_ACTIVE, PG_DIRTY, PG_LOCKED, PG_LRU, PG_ORPHAN, PG_PRESENT,
                    PG_RECLAIM, PG_REFERENCED, PG_RESIDENT, PG_SWAPCACHE, PG_WRITEBACK, PageQueue,
                    sort_by_slot)

if TYPE_CHECKING:  # pragma: no cover
    from ..cpu import Task
    from .memory import MM, Costs, Node
    from .zone import Zone

SWAP_CLUSTER_MAX: Final = 32
#: shrink_inactive's pages to write when there are none (read-only: shared)
_NO_PAGES: Final = np.empty(0, dtype=np.int32)
_NO_PAGES.flags.writeable = False

# the flags as Python ints, for the PageState vecs (a batch is ≤ 32 pages)
_ACTIVE: Final = int(PG_ACTIVE)
_DIRTY: Final = int(PG_DIRTY)
_LOCKED: Final = int(PG_LOCKED)
_LRU: Final = int(PG_LRU)
_PRESENT: Final = int(PG_PRESENT)
_RECLAIM: Final = int(PG_RECLAIM)
_REFERENCED: Final = int(PG_REFERENCED)
_RESIDENT: Final = int(PG_RESIDENT)
_SWAPCACHE: Final = int(PG_SWAPCACHE)
_WRITEBACK: Final = int(PG_WRITEBACK)
_ORPHAN: Final = int(PG_ORPHAN)
_FREED_CLEAR: Final = _SWAPCACHE | _RESIDENT | _LRU | _ACTIVE | _RECLAIM
DEF_PRIORITY: Final = 12
KSWAPD_ZONE_BALANCE_GAP_RATIO: Final = 100


def _changed_without_io(f: np.ndarray) -> np.ndarray:
    """Pages (by flags) that shrink_page_list without __GFP_IO would change:
    not under I/O, and referenced (activated) or in the swap cache and still
    mapped (unmapped) or clean (freed)."""
    busy = (f & (PG_LOCKED | PG_WRITEBACK)) != 0
    swapcache = (f & PG_SWAPCACHE) != 0
    return ~busy & (((f & PG_REFERENCED) != 0)
                    | (swapcache & ((f & (PG_PRESENT | PG_DIRTY)) != PG_DIRTY)))


# What a GFP_NOIO sweep needs to know of a page, for every uint16 flags value
# (the LRU blocks keep it per entry: PageQueue.rotate_inert): NOIO_CHANGED (2)
# if _changed_without_io(), else 1 if page_referenced() walks it (mapped, not
# under I/O), else 0.
_ALL_FLAGS = np.arange(1 << 16, dtype=np.uint16)
_NOIO_CLASS: Final = np.where(_changed_without_io(_ALL_FLAGS), NOIO_CHANGED,
                       (_ALL_FLAGS & (PG_PRESENT | PG_LOCKED | PG_WRITEBACK)) == PG_PRESENT
                       ).astype(np.uint8)
del _ALL_FLAGS
#: _NOIO_CLASS for one page's flags, read as a Python int
_NOIO_CLASS_B: Final = _NOIO_CLASS.tobytes()


class ScanControl:
    """struct scan_control.  A plain class, so that its compiled ``__init__``
    is native (a dataclass's stays interpreted): one is made per reclaim."""

    def __init__(self, nr_to_reclaim: float, gfp: int, kswapd: bool,
                 may_writepage: bool = True, priority: int = DEF_PRIORITY,
                 ctx: AllocContext | None = None) -> None:
        self.nr_to_reclaim = nr_to_reclaim
        self.gfp = gfp
        self.kswapd = kswapd
        self.may_writepage = may_writepage
        self.priority = priority
        self.nr_scanned = 0
        self.nr_reclaimed = 0
        #: CPU seconds charged so far (to replay a futile direct reclaim, see try_to_free_pages)
        self.cpu = 0.0
        #: (zone, pages) freed by the batch being processed, not yet given back (release_freed)
        self.freeing: list[tuple["Zone", int]] = []
        #: the reclaimer, for what reclaim allocates and frees (swap-cache radix-tree nodes)
        self.ctx = ctx if ctx is not None else AllocContext()


# A native class (its attributes are struct slots, its methods called
# through a vtable: it is on every reclaim path).  Tests that count or wrap
# its calls subclass it in Python and put an instance in mm.reclaim.
@mypyc_attr(allow_interpreted_subclasses=True)
class Reclaim:
    def __init__(self, mm: "MM", throttle: Any) -> None:
        #: scan runs of batches that reclaim without __GFP_IO can only put back in
        #: one step (see rotate_inert); off, every batch goes through shrink_inactive
        self.batch_inert = True
        #: check the inactive list's blocks before each sweep (PageQueue.check),
        #: counting the checks: for tests
        self.check_lru = False
        self.lru_checks = 0
        self.mm = mm
        self.sim = mm.sim
        self.env = mm.env
        self.cpus = mm.cpus
        self.throttle = throttle
        self.pages = mm.pages
        self.ev = mm.ev
        self.cost: Costs = mm.cost
        self.swappiness = mm.sim.config.kernel.swappiness
        sfx = mm.vmstat.zone_suffixes
        self._ev_scan = ({i: f"pgscan_direct_{s}" for i, s in enumerate(sfx)},
                         {i: f"pgscan_kswapd_{s}" for i, s in enumerate(sfx)})
        self._ev_refill = {i: f"pgrefill_{s}" for i, s in enumerate(sfx)}
        self._ev_steal = ({i: f"pgsteal_direct_{s}" for i, s in enumerate(sfx)},
                          {i: f"pgsteal_kswapd_{s}" for i, s in enumerate(sfx)})
        #: (pid, gfp) -> what a direct reclaim that changed nothing cost (see try_to_free_pages)
        self._futile: dict[tuple[int, int], tuple[Any, ...]] = {}

    # -- one batch ------------------------------------------------------------
    def _scan_cpu(self, scanned: int, walked: int) -> float:
        """Every page scanned is isolated and put back; ``walked`` of them
        (mapped, not under I/O) also get page_referenced()'s rmap walk."""
        return scanned * self.cost.scan_page + walked * self.cost.page_referenced

    def _isolate_list(self, q: PageQueue, nr: int) -> list[int]:
        """Pop up to ``nr`` live pages off the tail of ``q`` (stale entries dropped)."""
        mseq = self.mm.pages.mseq
        got: list[int] = []
        need = nr
        while need > 0 and q.n:
            got += q.pop_live(need, mseq)
            need = nr - len(got)
        return got

    def shrink_file(self, zone: "Zone", nr: int, sc: ScanControl) -> int:
        """Clean, unreferenced file pages: freed at the cost of the scan."""
        k = min(nr, zone.nr_file)
        if k:
            self.mm.lru_gen += 1
            zone.nr_file -= k
            zone.give_pages(k)
            self.mm._freed(zone, k)
            kind = 1 if sc.kswapd else 0
            self.ev[self._ev_scan[kind][zone.idx]] += k
            self.ev[self._ev_steal[kind][zone.idx]] += k
            sc.nr_scanned += k
            sc.nr_reclaimed += k
        return k

    def shrink_active(self, zone: "Zone", nr: int) -> tuple[int, float]:
        """shrink_active_list(): anon pages are deactivated, referenced or not.

        Returns (pages moved, CPU seconds): page_referenced() walks each
        mapped page's rmap, clearing its young bit.
        """
        ps = self.mm.pages
        pages = self._isolate_list(zone.active, nr)
        k = len(pages)
        if not k:
            return 0, 0.0
        self.mm.lru_gen += 1
        zone.nr_active -= k
        mflags = ps.mflags
        mapped = 0
        for p in pages:
            f = mflags[p]
            if f & _PRESENT:
                mapped += 1
            mflags[p] = f & ~(_ACTIVE | _REFERENCED)
        zone.inactive.push_pages(pages, ps)
        zone.nr_inactive += k
        self.ev[self._ev_refill[zone.idx]] += k
        self.ev["pgdeactivate"] += k
        return k, self._scan_cpu(k, mapped)

    def shrink_inactive(self, zone: "Zone", nr: int, sc: ScanControl
                        ) -> tuple[int, int, int, np.ndarray, float]:
        """shrink_inactive_list() + shrink_page_list() for one batch.

        Returns (scanned, reclaimed, under_writeback, pages to write, CPU
        seconds).  The CPU follows what shrink_page_list() does to each page:
        a page under I/O is only put back; page_referenced() walks the rmap
        of a mapped page; try_to_unmap(), pageout() and the free follow only
        for the pages that get that far.
        """
        mm = self.mm
        ps = mm.pages
        mflags, mslot = ps.mflags, ps.mslot
        pages = self._isolate_list(zone.inactive, nr)
        scanned = len(pages)
        if not scanned:
            return 0, 0, 0, _NO_PAGES, 0.0
        zone.nr_inactive -= scanned
        # Page ids go from list to list as the int objects they are (``po``,
        # typed Any): compiled code unboxes an int-typed id, and putting it
        # back in a list would make a new int object each time (ids are far
        # above the small-int cache).
        batch: list[Any] = pages
        p: int
        keep: list[Any] = []
        activate: list[Any] = []
        cand: list[Any] = []
        nr_writeback = 0
        mapped = unmapped = 0
        for po in batch:
            p = po
            f = mflags[p]
            if f & (_LOCKED | _WRITEBACK):
                keep.append(po)
                if f & _WRITEBACK:
                    nr_writeback += 1
                continue
            if f & _PRESENT:
                mapped += 1
            if f & _REFERENCED:
                activate.append(po)
            else:
                cand.append(po)
        writes: list[Any] = []
        freed = 0
        changed = False
        if cand:
            need: list[Any] = []
            cached: list[Any] = []
            for po in cand:
                p = po
                (cached if mflags[p] & _SWAPCACHE else need).append(po)
            if need and not sc.gfp & G.GFP_IO:
                # an anon page outside the swap cache needs __GFP_IO to be
                # added to it: kept, still mapped
                keep += need
                cand = cached
                need = []
            # add_to_swap(): a slot (none if swap is full), then the swap
            # cache's radix-tree nodes; a page that gets either not is
            # activated (activate_locked) and its slot freed
            if need:
                changed = True
                slots = mm.swap.alloc_list(need)
                tree = mm.swap_cache
                added = (tree.add_to_swap(slots, sc.ctx) if tree is not None
                         else [sl >= 0 for sl in slots])
                if not all(added):
                    failed = [po for po, a in zip(need, added) if not a]
                    mm.swap.release_list([sl for sl, a in zip(slots, added) if not a])
                    activate += failed
                    gone = set(failed)
                    cand = [po for po in cand if po not in gone]
                    need = [po for po, a in zip(need, added) if a]
                    slots = [sl for sl, a in zip(slots, added) if a]
                for po, sl in zip(need, slots):
                    p = po
                    mslot[p] = sl
                    mflags[p] |= _SWAPCACHE | _DIRTY
            # try_to_unmap()
            writeout = sc.may_writepage and sc.gfp & G.GFP_IO
            clean: list[Any] = []
            for po in cand:
                p = po
                f = mflags[p]
                if f & _PRESENT:
                    changed = True
                    unmapped += 1
                    f &= ~_PRESENT
                if f & _DIRTY:
                    if writeout:
                        f = (f & ~_DIRTY) | _WRITEBACK | _RECLAIM
                        writes.append(po)
                    keep.append(po)
                else:
                    clean.append(po)
                mflags[p] = f
            freed = len(clean)
            if freed:
                # __remove_mapping(): the page leaves the swap cache (its slot
                # stays in the PTE) and the frame is freed.
                mseq, mzone = ps.mseq, ps.mzone
                if mm.swap_cache is not None:
                    slots = []
                    for po in clean:
                        p = po
                        slots.append(mslot[p])
                    mm.swap_cache.delete(slots, sc.ctx.cpu)
                gid = zone.gid
                gids: list[int] = []
                for po in clean:
                    p = po
                    mflags[p] &= ~_FREED_CLEAR
                    mseq[p] = -1
                    gids.append(mzone[p])
                    mzone[p] = -1
                if len(mm.zones) == 1 or gids.count(gid) == freed:
                    sc.freeing.append((zone, freed))
                else:
                    sc.freeing += [(mm.zones[g], gids.count(g)) for g in sorted(set(gids))]
        if activate:
            for po in activate:
                p = po
                mflags[p] = (mflags[p] | _ACTIVE) & ~_REFERENCED
            zone.active.push_pages(activate, ps)
            zone.nr_active += len(activate)
            self.ev["pgactivate"] += len(activate)
        if keep:
            if len(keep) < scanned:
                # putback_inactive_pages() returns them in the order isolated
                kept = set(keep)
                keep = [po for po in batch if po in kept]
            else:
                keep = batch
            zone.inactive.push_pages(keep, ps)
            zone.nr_inactive += len(keep)
        if changed or freed or writes or activate:
            mm.lru_gen += 1
        kind = 1 if sc.kswapd else 0
        self.ev[self._ev_scan[kind][zone.idx]] += scanned
        if freed:
            self.ev[self._ev_steal[kind][zone.idx]] += freed
        zone.pages_scanned += scanned
        if writes:
            writes = sort_by_slot(writes, mslot)
            mm.nr_writeback += len(writes)
            self.ev["pswpout"] += len(writes)
            self.ev["pgpgout"] += 4 * len(writes)
        sc.nr_scanned += scanned
        sc.nr_reclaimed += freed
        cost = self.cost
        seconds = (self._scan_cpu(scanned, mapped) + unmapped * cost.unmap_page
                   + len(writes) * cost.pageout + freed * cost.free_page)
        out = np.array(writes, dtype=np.int32) if writes else _NO_PAGES
        return scanned, freed, nr_writeback, out, seconds

    def release_freed(self, sc: ScanControl) -> None:
        """free_hot_cold_page_list() at the end of shrink_page_list(): the
        batch's freed pages reach the free lists only after its CPU time and
        its pageout()s — a reclaimer asleep in get_request_wait() on a full
        request list holds the pages it has freed so far."""
        for zone, n in sc.freeing:
            zone.give_pages(n)
            self.mm._freed(zone, n)
        sc.freeing.clear()

    def rotate_inert(self, zone: "Zone", max_batches: int, sc: ScanControl) -> tuple[int, float]:
        """Scan the leading batches of the inactive tail that reclaim without
        __GFP_IO can only put back; return how many (each SWAP_CLUSTER_MAX)
        and their CPU seconds, as shrink_inactive counts them.

        Without __GFP_IO a batch changes nothing in a page that is under I/O,
        or unreferenced and either outside the swap cache (it would need
        add_to_swap) or already unmapped and dirty (it would need pageout).
        Such a batch only moves its pages to the head, in the order they
        were isolated, and is counted as scanned.  Doing many such batches
        in one step is what lets a simulated nbd0 sweep a 2 GiB LRU in
        GFP_NOIO reclaim without a numpy round per 32 pages; the caller
        charges their CPU time as one burst.
        """
        if self.check_lru:
            zone.inactive.check(self.mm.pages, _NOIO_CLASS_B)
            self.lru_checks += 1
        n, mapped = zone.inactive.rotate_inert(self.mm.pages, _NOIO_CLASS_B, max_batches)
        if not n:
            return 0, 0.0
        kind = 1 if sc.kswapd else 0
        self.ev[self._ev_scan[kind][zone.idx]] += n
        zone.pages_scanned += n
        sc.nr_scanned += n
        return n // SWAP_CLUSTER_MAX, self._scan_cpu(n, mapped)

    def write_done(self, req: Request) -> None:
        """end_swap_bio_write() → end_page_writeback() → rotate_reclaimable_page()."""
        mm = self.mm
        ps = mm.pages
        flags = ps.flags
        pages = req.pages
        mm.lru_gen += 1
        mm.nr_writeback -= len(pages)
        if req.error:
            # re-dirty so that the page is not reclaimed; it is written again later
            ps.mark_np(pages)
            flags[pages] = (flags[pages] & ~PG_WRITEBACK | PG_DIRTY) & ~PG_RECLAIM
            mm.release_orphans(pages)
            return
        # the rest on Python ints: a request is ≤ 31 pages (as objects, ``po``,
        # and unboxed to index: see shrink_inactive)
        pl: list[Any] = pages.tolist()
        mflags = ps.mflags
        if mm.end_page_io(pl, _WRITEBACK):
            mm.release_orphans(pages)
        rotate: list[Any] = []
        p: int
        for po in pl:
            p = po
            f = mflags[p]
            if f & (_RECLAIM | _DIRTY | _LRU | _ACTIVE) == _RECLAIM | _LRU:
                rotate.append(po)
            mflags[p] = f & ~_RECLAIM
            ps.mark(p)
        if rotate:
            for gid, sel in mm.by_zone(rotate):
                mm.zones[gid].inactive.push_tail_pages(sel, ps)
            self.ev["pgrotated"] += len(rotate)

    # -- a zone -----------------------------------------------------------------
    def inactive_is_low(self, zone: "Zone") -> bool:
        return zone.nr_inactive * zone.inactive_ratio < zone.nr_active

    def shrink_zone(self, task: "Task", zone: "Zone", sc: ScanControl
                    ) -> Generator[Event, Any, None]:
        """shrink_zone()/shrink_lruvec(): scan size >> priority of each anon list."""
        prio = sc.priority
        cost = self.cost
        cpus = self.cpus
        # get_scan_count(): split the pressure by swappiness; once file +
        # free pages are below HIGH, scan anon only.
        if zone.nr_file + zone.nr_free <= zone.high:
            anon_frac, file_frac = 1.0, 0.0
        else:
            anon_frac = self.swappiness / 200
            file_frac = 1.0 - anon_frac
        nr_inactive = int((zone.nr_inactive >> prio) * anon_frac)
        nr_active = int((zone.nr_active >> prio) * anon_frac)
        nr_file = int((zone.nr_file >> prio) * file_frac)
        if nr_file == 0 and zone.nr_file and file_frac:
            nr_file = min(zone.nr_file, SWAP_CLUSTER_MAX)
        if nr_file:
            freed = self.shrink_file(zone, nr_file, sc)
            sc.cpu += freed * (cost.scan_page + cost.free_page)
            yield from cpus.run(task, freed * (cost.scan_page + cost.free_page), sys=True)
        queue = self.mm.transport.queue
        # batches one CPU burst may hold when reclaim cannot write (see rotate_inert)
        noio_batches = 0
        per_page = cost.scan_page + cost.page_referenced
        if self.batch_inert and not sc.gfp & G.GFP_IO and per_page > 0:
            noio_batches = max(1, int(cost.timeslice / (SWAP_CLUSTER_MAX * per_page)))
        while nr_inactive or nr_active:
            if (noio_batches and nr_inactive >= SWAP_CLUSTER_MAX and not zone.congested
                    and not (nr_active and self.inactive_is_low(zone))):
                k, seconds = self.rotate_inert(zone, min(noio_batches, nr_inactive // SWAP_CLUSTER_MAX), sc)
                if k:
                    n = k * SWAP_CLUSTER_MAX
                    nr_inactive -= n
                    nr_active = max(0, nr_active - n)
                    sc.cpu += seconds
                    yield from cpus.run(task, seconds, sys=True)
                    continue
            if not nr_inactive and not self.inactive_is_low(zone):
                break  # what is left of the loop would only count nr_active down
            seconds = 0.0
            n = min(nr_active, SWAP_CLUSTER_MAX)
            nr_active -= n
            if n and self.inactive_is_low(zone):
                seconds += self.shrink_active(zone, n)[1]
            n = min(nr_inactive, SWAP_CLUSTER_MAX)
            nr_inactive -= n
            writes = None
            if n:
                scanned, freed, nr_wb, writes, cpu = self.shrink_inactive(zone, n, sc)
                seconds += cpu
            if seconds:
                sc.cpu += seconds
                yield from cpus.run(task, seconds, sys=True)
            if writes is not None and len(writes):
                yield from queue.submit(task, WRITE, self.mm.pages.slot[writes].copy(), writes,
                                        self.write_done)
            if sc.freeing:
                self.release_freed(sc)
            # ZONE_CONGESTED is set only when every dirty page met was kept
            # because its bdi was write-congested (nr_dirty == nr_congested).
            # Swap cache pages belong to swapper_space, whose bdi ("swap") is
            # never congested, whatever the swap device: anon reclaim never
            # sets it, so the waits below only yield (cond_resched).
            if writes is not None and n and nr_wb and nr_wb >= (scanned >> (DEF_PRIORITY - prio)):
                # shrink_inactive_list(): many pages under writeback, wait if congested
                yield from self.mm.wait_iff_congested(0.1, zone, min_sleep=0)
            if not sc.kswapd and sc.nr_reclaimed >= sc.nr_to_reclaim and prio < DEF_PRIORITY:
                break
        if self.inactive_is_low(zone):
            k, seconds = self.shrink_active(zone, SWAP_CLUSTER_MAX)
            if k:
                sc.cpu += seconds
                yield from cpus.run(task, seconds, sys=True)

    # -- direct reclaim -------------------------------------------------------
    def try_to_free_pages(self, task: "Task", gfp: int, order: int
                          ) -> Generator[Event, Any, int]:
        """try_to_free_pages(): throttle, then do_try_to_free_pages().

        A task that cannot make progress (nbd0 without __GFP_IO while every
        page needs writing, say) calls this in a loop, and each call scans
        every list at every priority.  When a call changed nothing — no page
        freed, written, activated, unmapped or added to swap, and nobody else
        changed any page meanwhile (``mm.lru_gen`` unchanged) — the next call
        by the same task with the same gfp would scan the same pages to the
        same end.  It is then replayed: the same CPU time and scan counters,
        without the scanning.  The outcome is the kernel's; only the
        simulator's work is saved.
        """
        mm = self.mm
        node = mm.nodes[(task.pid % len(mm.nodes))]
        yield from self.throttle.throttle_direct_reclaim(task, gfp, node)
        self.ev["allocstall"] += 1
        self.sim.trace("mm_vmscan_direct_reclaim_begin", order=order, may_writepage=1,
                       gfp_flags=G.format_gfp(gfp), task=task)
        task.set_state("direct_reclaim", self.env.now)
        zonelist = mm.zonelist(task)
        key = (task.pid, gfp)
        shape = tuple((z.nr_free + z.nr_file <= z.high, z.all_unreclaimable) for z in zonelist)
        memo = self._futile.get(key)
        if memo is not None and memo[0] == mm.lru_gen and memo[1] == shape:
            _, _, cpu, scans, total_scanned, ret = memo
            for name, n in scans:
                self.ev[name] += n
            if cpu:
                yield from self.cpus.run(task, cpu, sys=True)
            if not total_scanned:
                yield self.env.timeout(0.004)
            task.set_state("running", self.env.now)
            self.sim.trace("mm_vmscan_direct_reclaim_end", nr_reclaimed=0, task=task)
            return ret
        gen = mm.lru_gen
        scan_names = list(dict.fromkeys(self._ev_scan[0][z.idx] for z in zonelist))
        scans_before = [self.ev.get(n, 0) for n in scan_names]
        old = task.flags
        task.flags |= G.PF_MEMALLOC
        sc = ScanControl(nr_to_reclaim=SWAP_CLUSTER_MAX, gfp=gfp, kswapd=False,
                         ctx=task_context(task))
        total_scanned = 0
        try:
            for prio in range(DEF_PRIORITY, -1, -1):
                sc.priority = prio
                sc.nr_scanned = 0
                for zone in zonelist:
                    if zone.all_unreclaimable and prio != DEF_PRIORITY:
                        continue
                    yield from self.shrink_zone(task, zone, sc)
                total_scanned += sc.nr_scanned
                if sc.nr_reclaimed >= sc.nr_to_reclaim:
                    break
                if prio < DEF_PRIORITY - 2 and sc.nr_scanned:
                    yield from mm.wait_iff_congested(0.1, zonelist[0], min_sleep=0)
            if not total_scanned:
                yield self.env.timeout(0.004)  # cond_resched(): let others run
        finally:
            task.flags = (task.flags & ~G.PF_MEMALLOC) | (old & G.PF_MEMALLOC)
        task.set_state("running", self.env.now)
        self.sim.trace("mm_vmscan_direct_reclaim_end", nr_reclaimed=sc.nr_reclaimed, task=task)
        if sc.nr_reclaimed:
            self._futile.pop(key, None)
            return sc.nr_reclaimed
        # "top priority shrink_zones still had more to do? don't OOM, then"
        ret = 0 if all(z.all_unreclaimable for z in zonelist) else 1
        if mm.lru_gen == gen:
            scans = tuple((n, self.ev.get(n, 0) - b) for n, b in zip(scan_names, scans_before))
            self._futile[key] = (gen, shape, sc.cpu, scans, total_scanned, ret)
        else:
            self._futile.pop(key, None)
        return ret

    # -- kswapd -----------------------------------------------------------------
    def zone_balanced(self, zone: "Zone", order: int = 0) -> bool:
        return zone.watermark_ok(order, zone.high, 0, 0)

    def node_balanced(self, node: "Node") -> bool:
        return all(self.zone_balanced(z) for z in node.zones)

    def prepare_sleep(self, node: "Node", woken_early: bool) -> bool:
        """prepare_kswapd_sleep(): never sleep while direct reclaimers are throttled."""
        if woken_early:
            return False
        if len(node.pfmemalloc_wait):
            node.pfmemalloc_wait.wake_up_all()
            return False
        return self.node_balanced(node)

    def kswapd(self, node: "Node", task: "Task") -> Generator[Event, Any, None]:
        """The kswapd thread of ``node`` (the process's own generator, so that
        no interpreted frame is resumed with it)."""
        env = self.env
        node.kswapd_task = task
        while True:
            woken = False
            if self.prepare_sleep(node, False):
                task.set_state("nap", env.now)
                node.kswapd_sleeping = True
                woken = yield node.kswapd_wait.wait(0.1)
                node.kswapd_sleeping = False
            if self.prepare_sleep(node, bool(woken)):
                task.set_state("sleeping", env.now)
                self.sim.trace("mm_vmscan_kswapd_sleep", nid=node.nid, task=task)
                node.kswapd_sleeping = True
                yield node.kswapd_wait.wait()
                node.kswapd_sleeping = False
            elif woken:
                self.ev["kswapd_low_wmark_hit_quickly"] += 1
            elif not self.node_balanced(node):
                self.ev["kswapd_high_wmark_hit_quickly"] += 1
            task.set_state("balance_pgdat", env.now)
            self.sim.trace("mm_vmscan_kswapd_wake", nid=node.nid, order=node.kswapd_order,
                           task=task)
            node.kswapd_order = 0
            yield from self.balance_pgdat(node, task)

    def balance_pgdat(self, node: "Node", task: "Task") -> Generator[Event, Any, None]:
        env = self.env
        while True:  # loop_again
            self.ev["pageoutrun"] += 1
            sc = ScanControl(nr_to_reclaim=float("inf"), gfp=G.GFP_KERNEL, kswapd=True,
                             ctx=task_context(task))
            total_scanned = 0
            all_ok = False
            for prio in range(DEF_PRIORITY, -1, -1):
                sc.priority = prio
                under_min = False
                # highmem -> dma: age each zone's active list down to the
                # highest zone below HIGH (end_zone); none: all balanced
                end_zone = -1
                for z in reversed(node.zones):
                    if z.all_unreclaimable and prio != DEF_PRIORITY:
                        continue
                    if self.inactive_is_low(z):
                        k, seconds = self.shrink_active(z, SWAP_CLUSTER_MAX)
                        if k:
                            yield from self.cpus.run(task, seconds, sys=True)
                    if not self.zone_balanced(z):
                        end_zone = z.idx
                        break
                    z.congested = False
                if end_zone < 0:
                    all_ok = True
                    break
                # dma -> end_zone, each judged as an allocation for end_zone
                # would see it: a lower zone keeps its lowmem_reserve on top,
                # so a DMA zone that allocations drained to MIN + reserve
                # is reclaimed too, and counts as under MIN
                all_zones_ok = True
                for z in node.zones:
                    if z.idx > end_zone:
                        break
                    if z.all_unreclaimable and prio != DEF_PRIORITY:
                        continue
                    balance_gap = min(z.low, (z.present + KSWAPD_ZONE_BALANCE_GAP_RATIO - 1)
                                      // KSWAPD_ZONE_BALANCE_GAP_RATIO)
                    if not z.watermark_ok(0, z.high + balance_gap, end_zone, 0):
                        sc.nr_scanned = 0
                        yield from self.shrink_zone(task, z, sc)
                        total_scanned += sc.nr_scanned
                        reclaimable = z.nr_active + z.nr_inactive
                        if z.pages_scanned >= 6 * max(reclaimable, 1):
                            z.all_unreclaimable = True
                    if z.all_unreclaimable:
                        if end_zone and end_zone == z.idx:
                            end_zone -= 1
                        continue
                    if not z.watermark_ok(0, z.high, end_zone, 0):
                        all_zones_ok = False
                        if not z.watermark_ok(0, z.min, end_zone, 0):
                            under_min = True
                    else:
                        z.congested = False
                self.throttle.kswapd_pass(node)
                if all_zones_ok:
                    all_ok = True
                    break
                if total_scanned and prio < DEF_PRIORITY - 2:
                    if under_min:
                        self.ev["kswapd_skip_congestion_wait"] += 1
                    else:
                        task.set_state("congestion_wait", env.now)
                        yield from self.mm.congestion_wait(0.1)
                        task.set_state("balance_pgdat", env.now)
                if sc.nr_reclaimed >= SWAP_CLUSTER_MAX:
                    break
            if all_ok:
                self.throttle.kswapd_pass(node)
                return
            if not total_scanned:
                yield env.timeout(0.004)  # nothing to scan: let the writes finish
