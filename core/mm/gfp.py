"""gfp flags, alloc flags and task flags, with the kernel's names (3.6 values).

Masks are plain ints: they are tested in the hottest paths of the model.
"""

from __future__ import annotations

__GFP_DMA = 0x01
__GFP_HIGHMEM = 0x02
__GFP_DMA32 = 0x04
__GFP_MOVABLE = 0x08
__GFP_WAIT = 0x10
__GFP_HIGH = 0x20
__GFP_IO = 0x40
__GFP_FS = 0x80
__GFP_COLD = 0x100
__GFP_NOWARN = 0x200
__GFP_REPEAT = 0x400
__GFP_NOFAIL = 0x800
__GFP_NORETRY = 0x1000
__GFP_MEMALLOC = 0x2000
__GFP_COMP = 0x4000
__GFP_ZERO = 0x8000
__GFP_NOMEMALLOC = 0x10000
__GFP_HARDWALL = 0x20000
__GFP_THISNODE = 0x40000
__GFP_RECLAIMABLE = 0x80000
__GFP_NOTRACK = 0x200000
__GFP_NO_KSWAPD = 0x400000

GFP_NOWAIT = 0
GFP_ATOMIC = __GFP_HIGH
GFP_NOIO = __GFP_WAIT
GFP_NOFS = __GFP_WAIT | __GFP_IO
GFP_KERNEL = __GFP_WAIT | __GFP_IO | __GFP_FS
GFP_USER = GFP_KERNEL | __GFP_HARDWALL
GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM
GFP_HIGHUSER_MOVABLE = GFP_HIGHUSER | __GFP_MOVABLE

# Public spellings without the leading underscores (Python mangles nothing at
# module level, but names with two underscores read badly at call sites).
GFP_DMA, GFP_HIGHMEM, GFP_DMA32, GFP_MOVABLE = __GFP_DMA, __GFP_HIGHMEM, __GFP_DMA32, __GFP_MOVABLE
GFP_WAIT, GFP_HIGH, GFP_IO, GFP_FS = __GFP_WAIT, __GFP_HIGH, __GFP_IO, __GFP_FS
GFP_NOWARN, GFP_NORETRY, GFP_NOFAIL = __GFP_NOWARN, __GFP_NORETRY, __GFP_NOFAIL
GFP_MEMALLOC, GFP_NOMEMALLOC, GFP_COMP = __GFP_MEMALLOC, __GFP_NOMEMALLOC, __GFP_COMP
GFP_NO_KSWAPD = __GFP_NO_KSWAPD

# Composite names first, longest first, as show_gfp_flags() prints them.
_NAMES: tuple[tuple[int, str], ...] = (
    (GFP_HIGHUSER_MOVABLE, "GFP_HIGHUSER_MOVABLE"),
    (GFP_HIGHUSER, "GFP_HIGHUSER"),
    (GFP_USER, "GFP_USER"),
    (GFP_KERNEL, "GFP_KERNEL"),
    (GFP_NOFS, "GFP_NOFS"),
    (GFP_ATOMIC, "GFP_ATOMIC"),
    (GFP_NOIO, "GFP_NOIO"),
    (__GFP_HIGH, "GFP_HIGH"),
    (__GFP_WAIT, "GFP_WAIT"),
    (__GFP_IO, "GFP_IO"),
    (__GFP_COLD, "GFP_COLD"),
    (__GFP_NOWARN, "GFP_NOWARN"),
    (__GFP_REPEAT, "GFP_REPEAT"),
    (__GFP_NOFAIL, "GFP_NOFAIL"),
    (__GFP_NORETRY, "GFP_NORETRY"),
    (__GFP_COMP, "GFP_COMP"),
    (__GFP_ZERO, "GFP_ZERO"),
    (__GFP_MEMALLOC, "GFP_MEMALLOC"),
    (__GFP_NOMEMALLOC, "GFP_NOMEMALLOC"),
    (__GFP_HARDWALL, "GFP_HARDWALL"),
    (__GFP_THISNODE, "GFP_THISNODE"),
    (__GFP_RECLAIMABLE, "GFP_RECLAIMABLE"),
    (__GFP_MOVABLE, "GFP_MOVABLE"),
    (__GFP_NOTRACK, "GFP_NOTRACK"),
    (__GFP_NO_KSWAPD, "GFP_NO_KSWAPD"),
    (__GFP_DMA, "GFP_DMA"),
    (__GFP_DMA32, "GFP_DMA32"),
    (__GFP_HIGHMEM, "GFP_HIGHMEM"),
)


def format_gfp(mask: int) -> str:
    """``GFP_NOIO|GFP_MEMALLOC`` — the way the 3.6 tracepoints print gfp masks."""
    if mask == 0:
        return "GFP_NOWAIT"
    parts = []
    rest = mask
    for bits, name in _NAMES:
        if bits and rest & bits == bits:
            parts.append(name)
            rest &= ~bits
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


# alloc flags (mm/internal.h, 3.6)
ALLOC_WMARK_MIN = 0x00
ALLOC_WMARK_LOW = 0x01
ALLOC_WMARK_HIGH = 0x02
ALLOC_NO_WATERMARKS = 0x04
ALLOC_WMARK_MASK = ALLOC_NO_WATERMARKS - 1
ALLOC_HARDER = 0x10
ALLOC_HIGH = 0x20
ALLOC_CPUSET = 0x40

# task flags
PF_MEMALLOC = 0x00000800
PF_KSWAPD = 0x00040000
PF_SWAPWRITE = 0x00800000
PF_KTHREAD = 0x00200000
