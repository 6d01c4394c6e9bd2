"""The V9 swap-over-NBD series as switches on mechanisms (SPEC §10).

A preset is nothing but a list of switch ids: no code anywhere may ask for a
preset by name.  Each mechanism asks ``"<switch>" in kernel.patches`` for the
one switch that governs it.
"""

from __future__ import annotations

#: switch id -> (V9 patch numbers, what it changes)
SWITCHES: dict[str, tuple[str, str]] = {
    "min-free-lock": ("1", "watermark recompute serialised under one lock"),
    "slab-pfmemalloc": ("2", "SLAB/SLUB pfmemalloc slabs and object tags"),
    "gfp-memalloc": ("3", "__GFP_MEMALLOC / __GFP_NOMEMALLOC"),
    "softirq-memalloc": ("4", "softirq may use the reserve for pfmemalloc skbs"),
    "mempolicy-nowmark": ("5", "reserve allocations ignore memory policy"),
    "netvm": ("6-13", "memalloc sockets, skb pfmemalloc marks, drops for other sockets"),
    "netdev-alloc-page": ("11", "page-fragment rx buffers carry the mark"),
    "nbd-memalloc": ("14", "NBD socket marked memalloc"),
    "throttle": ("15", "direct reclaim throttling (strategy plugin)"),
    "throttle-stat": ("16", "pgscan_direct_throttle counter"),
}

#: switch id -> switches it needs (checked; a subset violating them is an error)
REQUIRES: dict[str, tuple[str, ...]] = {
    "softirq-memalloc": ("gfp-memalloc",),
    "netvm": ("gfp-memalloc", "slab-pfmemalloc", "softirq-memalloc"),
    "netdev-alloc-page": ("netvm",),
    "nbd-memalloc": ("netvm",),
    "throttle-stat": ("throttle",),
}

#: Presets are plain lists of switches.
PRESETS: dict[str, tuple[str, ...]] = {
    "vanilla": (),
    "swapnbd": tuple(SWITCHES),
}


def resolve(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """A preset name or a list of switch ids → a sorted tuple of switch ids.

    Raises ValueError naming the unknown switch or the missing dependency.
    """
    if isinstance(value, str):
        if value not in PRESETS:
            raise ValueError(f"unknown patch preset {value!r} (presets: {', '.join(PRESETS)};"
                             " or give a list of switches)")
        switches = PRESETS[value]
    else:
        switches = tuple(value)
    for s in switches:
        if not isinstance(s, str) or s not in SWITCHES:
            raise ValueError(f"unknown patch switch {s!r} (switches: {', '.join(SWITCHES)})")
    chosen = set(switches)
    for s in sorted(chosen):
        missing = [r for r in REQUIRES.get(s, ()) if r not in chosen]
        if missing:
            raise ValueError(f"patch switch {s!r} needs {', '.join(repr(m) for m in missing)}")
    order = list(SWITCHES)
    return tuple(sorted(chosen, key=order.index))
