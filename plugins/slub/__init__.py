"""The SLUB slab allocator of Linux 3.6 (``kernel.slab = "slub"``).

One frozen cpu slab per CPU with a lockless freelist, per-CPU and per-node
partial lists, slabs of up to order 3, and an empty slab returned to the page
allocator at once when the node already holds more than ``min_partial``
partial slabs.  See :mod:`swapsim.plugins.slub.allocator` for the model and
its simplifications.  Options: ``[plugin.slub]`` (:class:`SLUBOptions`).
"""

from __future__ import annotations

from swapsim.hookspecs import hookimpl

from .allocator import (SLUBAllocator, SLUBOptions, calculate_order, cpu_partial_for,
                        min_partial_for)

__all__ = ["SLUBAllocator", "SLUBOptions", "calculate_order", "cpu_partial_for",
           "min_partial_for", "swapsim_register_slab_allocators"]


@hookimpl
def swapsim_register_slab_allocators(register) -> None:
    register("slub", SLUBAllocator, options=SLUBOptions,
             description="SLUB (3.6): cpu slabs and partial lists, empty slabs freed at once")
