"""The SLAB slab allocator of Linux 3.6 (``kernel.slab = "slab"``).

Freed objects stay in per-CPU and shared arrays and empty slabs stay on the
free list until ``free_limit`` is exceeded or the 2 s / 4 s reaper returns
them, so many GFP_ATOMIC allocations never reach the page allocator.  See
:mod:`swapsim.plugins.slab.allocator` for the model and its simplifications.
Options: ``[plugin.slab]`` (:class:`SLABOptions`).
"""

from __future__ import annotations

from swapsim.hookspecs import hookimpl

from .allocator import (SLABAllocator, SLABOptions, array_limit, cache_estimate,
                        calculate_slab_order)

__all__ = ["SLABAllocator", "SLABOptions", "array_limit", "cache_estimate",
           "calculate_slab_order", "swapsim_register_slab_allocators"]


@hookimpl
def swapsim_register_slab_allocators(register) -> None:
    register("slab", SLABAllocator, options=SLABOptions,
             description="SLAB (3.6): per-CPU/shared object arrays, free slabs kept until reaped")
