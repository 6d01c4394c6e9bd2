"""Nodes, zones, watermarks and the watermark test (SPEC §2, §3).

Layout (a modelling choice, documented): RAM is ``machine.memory`` of
*present* pages, split evenly over the nodes in physical order.  The first
3980 present pages are ZONE_DMA (the usual x86-64 count: 16 MiB spanned less
BIOS/ISA holes); present pages below 4 GiB physical (1048460 of them, the
holes again subtracted) are ZONE_DMA32; the rest is ZONE_NORMAL.  ZONE_MOVABLE
exists and is empty, so protection arrays have the kernel's four columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

from .pages import PageQueue

PAGE_SIZE: Final = 4096
PAGE_SHIFT: Final = 12
MAX_ORDER: Final = 11

ZONE_DMA: Final = 0
ZONE_DMA32: Final = 1
ZONE_NORMAL: Final = 2
ZONE_MOVABLE: Final = 3
ZONE_NAMES: Final = ("DMA", "DMA32", "Normal", "Movable")
MAX_NR_ZONES: Final = 4

DMA_PRESENT: Final = 3980
DMA_HOLES: Final = 4096 - DMA_PRESENT
DMA32_END: Final = (4 << 30 >> PAGE_SHIFT) - DMA_HOLES  # in present-page index

WMARK_MIN: Final = 0
WMARK_LOW: Final = 1
WMARK_HIGH: Final = 2


def zone_layout(memory_bytes: int, nodes: int) -> list[list[int]]:
    """Present pages per node per zone type: ``[[dma, dma32, normal, movable], …]``."""
    total = memory_bytes >> PAGE_SHIFT
    bounds = [0, DMA_PRESENT, DMA32_END, math.inf]
    out = []
    for nid in range(nodes):
        start = total * nid // nodes
        end = total * (nid + 1) // nodes
        row = []
        for z in range(3):
            lo, hi = bounds[z], bounds[z + 1]
            row.append(int(max(0, min(end, hi) - max(start, lo))))
        row.append(0)
        out.append(row)
    return out


def default_min_free_kbytes(lowmem_pages: int, profile: str = "3.6") -> int:
    """init_per_zone_wmark_min(): isqrt(16 × lowmem_kbytes), clamped."""
    lowmem_kbytes = lowmem_pages * (PAGE_SIZE >> 10)
    value = math.isqrt(lowmem_kbytes * 16)
    upper = 65536 if profile == "3.6" else 262144
    return max(128, min(upper, value))


@dataclass(eq=False)
class Zone:
    """One zone of one node.  ``nr_free`` is NR_FREE_PAGES.

    ``free_area[o]`` counts free blocks of order ``o``.  The model does not
    track page frames, so buddies are merged by a mean-field rule: a freed
    block finds its buddy free with probability equal to the zone's free
    fraction, paid out deterministically by an accumulator (no RNG).
    """

    node: int
    idx: int          # zone type: ZONE_DMA …
    gid: int          # global index in Machine.zones
    present: int
    watermark: list[int] = field(default_factory=lambda: [0, 0, 0])
    lowmem_reserve: list[int] = field(default_factory=lambda: [0] * MAX_NR_ZONES)
    nr_free: int = 0
    #: a list, not a numpy array: the buddy operations index it one order at a time
    free_area: list[int] = field(default_factory=lambda: [0] * MAX_ORDER)
    merge_credit: float = 0.0
    pages_scanned: int = 0       # since the last page freed (all_unreclaimable heuristic)
    all_unreclaimable: bool = False
    inactive_ratio: int = 1
    #: anon LRU lists and their live lengths (typed: compiled reclaim calls
    #: their methods natively)
    inactive: PageQueue = field(default_factory=PageQueue)
    active: PageQueue = field(default_factory=PageQueue)
    nr_inactive: int = 0
    nr_active: int = 0
    #: clean, unmapped file pages (counted, not tracked per page)
    nr_file: int = 0
    #: ZONE_CONGESTED: kswapd met dirty pages it could not write quickly
    congested: bool = False

    @property
    def name(self) -> str:
        return ZONE_NAMES[self.idx]

    @property
    def min(self) -> int:
        return self.watermark[WMARK_MIN]

    @property
    def low(self) -> int:
        return self.watermark[WMARK_LOW]

    @property
    def high(self) -> int:
        return self.watermark[WMARK_HIGH]

    def init_free(self, pages: int) -> None:
        """All of ``pages`` free, in the largest blocks that fit."""
        self.nr_free = pages
        self.free_area[:] = [0] * MAX_ORDER
        rest = pages
        for order in range(MAX_ORDER - 1, -1, -1):
            n = rest >> order
            self.free_area[order] += n
            rest -= n << order

    # -- buddy ------------------------------------------------------------
    def take(self, order: int) -> bool:
        """rmqueue one block of 2**order pages; False if no block is big enough."""
        fa = self.free_area
        for o in range(order, MAX_ORDER):
            if fa[o]:
                fa[o] -= 1
                while o > order:  # expand(): hand the upper halves back
                    o -= 1
                    fa[o] += 1
                self.nr_free -= 1 << order
                return True
        return False

    def take_pages(self, n: int) -> int:
        """Up to ``n`` order-0 pages (bulk rmqueue); returns how many were taken."""
        n = min(n, self.nr_free)
        if n <= 0:
            return 0
        fa = self.free_area
        need = n
        o0 = int(fa[0])
        use = min(o0, need)
        fa[0] -= use
        need -= use
        while need > 0:
            # split the smallest larger block
            for o in range(1, MAX_ORDER):
                if fa[o]:
                    fa[o] -= 1
                    block = 1 << o
                    use = min(block, need)
                    need -= use
                    left = block - use
                    for k in range(MAX_ORDER):  # spread the remainder as buddies
                        if left >> k & 1:
                            fa[k] += 1
                    break
            else:  # pragma: no cover - nr_free and free_area disagree
                raise AssertionError("free_area out of sync with nr_free")
        self.nr_free -= n
        return n

    def give(self, order: int, count: int = 1) -> None:
        """__free_one_page for ``count`` blocks of ``order``, with mean-field merging."""
        fa = self.free_area
        self.nr_free += count << order
        frac = self.nr_free / self.present if self.present else 0.0
        for _i in range(count):
            o = order
            while o < MAX_ORDER - 1:
                self.merge_credit += frac
                if self.merge_credit < 1.0 or not fa[o]:
                    break
                self.merge_credit -= 1.0
                fa[o] -= 1
                o += 1
            fa[o] += 1

    def give_pages(self, n: int) -> None:
        """Free ``n`` order-0 pages (bulk): merges pair them into order-1 blocks only.

        The single-level merge keeps bulk frees O(1); order ≥ 1 blocks freed
        through :meth:`give` cascade further.
        """
        if n <= 0:
            return
        fa = self.free_area
        self.nr_free += n
        credit = self.merge_credit + n * (self.nr_free / self.present if self.present else 0.0)
        merges = min(min(int(credit), n), int(fa[0]) + n - int(credit))  # two-argument min() compiles natively
        merges = max(merges, 0)
        self.merge_credit = credit - int(credit)
        fa[0] += n - 2 * merges
        fa[1] += merges

    # -- the watermark test ----------------------------------------------
    def watermark_ok(self, order: int, mark: int, classzone: int, alloc_flags: int,
                     free: int | None = None) -> bool:
        """__zone_watermark_ok() of 3.6."""
        free_pages = (self.nr_free if free is None else free) - ((1 << order) - 1)
        m = mark
        if alloc_flags & 0x20:   # ALLOC_HIGH
            m -= m // 2
        if alloc_flags & 0x10:   # ALLOC_HARDER
            m -= m // 4
        if free_pages <= m + self.lowmem_reserve[classzone]:
            return False
        fa = self.free_area
        for o in range(order):
            free_pages -= int(fa[o]) << o
            m >>= 1
            if free_pages <= m:
                return False
        return True


def setup_lowmem_reserve(node_zones: list[Zone], ratio: tuple[int, ...]) -> None:
    """setup_per_zone_lowmem_reserve() for one node's zones (all four types)."""
    for j, zone in enumerate(node_zones):
        present = zone.present
        zone.lowmem_reserve[j] = 0
        idx = j
        while idx:
            idx -= 1
            r = max(1, ratio[idx]) if idx < len(ratio) else 1
            lower = node_zones[idx]
            lower.lowmem_reserve[j] = present // r
            present += lower.present


def setup_watermarks(zones: list[Zone], min_free_kbytes: int, profile: str = "3.6",
                     scale_factor: int = 10) -> None:
    """__setup_per_zone_wmarks(): MIN/LOW/HIGH of every zone from min_free_kbytes."""
    pages_min = min_free_kbytes >> (PAGE_SHIFT - 10)
    lowmem_pages = sum(z.present for z in zones)  # no highmem on x86-64
    for z in zones:
        if not z.present:
            z.watermark = [0, 0, 0]
            continue
        tmp = pages_min * z.present // lowmem_pages
        if profile == "3.6":
            z.watermark = [tmp, tmp + (tmp >> 2), tmp + (tmp >> 1)]
        else:
            gap = max(tmp >> 2, z.present * scale_factor // 10000)
            z.watermark = [tmp, tmp + gap, tmp + 2 * gap]


def inactive_ratio_for(present_pages: int) -> int:
    """calculate_zone_inactive_ratio(): isqrt(10 × GiB), 1 below 1 GiB."""
    gb = (present_pages << PAGE_SHIFT) >> 30
    return math.isqrt(10 * gb) if gb else 1
