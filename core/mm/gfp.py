"""gfp flags, alloc flags and task flags, with the kernel's names (3.6 values).

Masks are plain ints, and Final: they are tested in the hottest paths of the
model, where compiled code inlines them (core/_mypyc.py).
"""

from __future__ import annotations

from typing import Final

__GFP_DMA: Final = 0x01
__GFP_HIGHMEM: Final = 0x02
__GFP_DMA32: Final = 0x04
__GFP_MOVABLE: Final = 0x08
__GFP_WAIT: Final = 0x10
__GFP_HIGH: Final = 0x20
__GFP_IO: Final = 0x40
__GFP_FS: Final = 0x80
__GFP_COLD: Final = 0x100
__GFP_NOWARN: Final = 0x200
__GFP_REPEAT: Final = 0x400
__GFP_NOFAIL: Final = 0x800
__GFP_NORETRY: Final = 0x1000
__GFP_MEMALLOC: Final = 0x2000
__GFP_COMP: Final = 0x4000
__GFP_ZERO: Final = 0x8000
__GFP_NOMEMALLOC: Final = 0x10000
__GFP_HARDWALL: Final = 0x20000
__GFP_THISNODE: Final = 0x40000
__GFP_RECLAIMABLE: Final = 0x80000
__GFP_NOTRACK: Final = 0x200000
__GFP_NO_KSWAPD: Final = 0x400000

GFP_NOWAIT: Final = 0
GFP_ATOMIC: Final = __GFP_HIGH
GFP_NOIO: Final = __GFP_WAIT
GFP_NOFS: Final = __GFP_WAIT | __GFP_IO
GFP_KERNEL: Final = __GFP_WAIT | __GFP_IO | __GFP_FS
GFP_USER: Final = GFP_KERNEL | __GFP_HARDWALL
GFP_HIGHUSER: Final = GFP_USER | __GFP_HIGHMEM
GFP_HIGHUSER_MOVABLE: Final = GFP_HIGHUSER | __GFP_MOVABLE

# Public spellings without the leading underscores (Python mangles nothing at
# module level, but names with two underscores read badly at call sites).
GFP_DMA: Final = __GFP_DMA
GFP_HIGHMEM: Final = __GFP_HIGHMEM
GFP_DMA32: Final = __GFP_DMA32
GFP_MOVABLE: Final = __GFP_MOVABLE
GFP_WAIT: Final = __GFP_WAIT
GFP_HIGH: Final = __GFP_HIGH
GFP_IO: Final = __GFP_IO
GFP_FS: Final = __GFP_FS
GFP_NOWARN: Final = __GFP_NOWARN
GFP_NORETRY: Final = __GFP_NORETRY
GFP_NOFAIL: Final = __GFP_NOFAIL
GFP_MEMALLOC: Final = __GFP_MEMALLOC
GFP_NOMEMALLOC: Final = __GFP_NOMEMALLOC
GFP_COMP: Final = __GFP_COMP
GFP_NO_KSWAPD: Final = __GFP_NO_KSWAPD

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
ALLOC_WMARK_MIN: Final = 0x00
ALLOC_WMARK_LOW: Final = 0x01
ALLOC_WMARK_HIGH: Final = 0x02
ALLOC_NO_WATERMARKS: Final = 0x04
ALLOC_WMARK_MASK: Final = ALLOC_NO_WATERMARKS - 1
ALLOC_HARDER: Final = 0x10
ALLOC_HIGH: Final = 0x20
ALLOC_CPUSET: Final = 0x40

# task flags
PF_MEMALLOC: Final = 0x00000800
PF_KSWAPD: Final = 0x00040000
PF_SWAPWRITE: Final = 0x00800000
PF_KTHREAD: Final = 0x00200000
