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

Both helpers have ``alloc_bulk``/``free_bulk`` that return the same handles
and leave the same state as the same number of ``alloc``/``free`` calls.  A
buffer is two allocations (data or page fragment, then head), and their
interleaving matters whenever one of them reaches shared state (the page
allocator, slab ids being reused, SLAB's global pfmemalloc_active).  So the
helpers batch only stretches where one side is certain to be a per-CPU
fast-path hit (``SlabAllocator.alloc_fast_count``/``free_fast_count``): such
operations commute with everything the other side does.  The rest goes
buffer by buffer through ``alloc``/``free``.
"""

from __future__ import annotations

from typing import Any

from swapsim.hookspecs import hookimpl

from .helpers import KmallocRx, PageFragRx

__all__ = ["KmallocRx", "PageFragRx"]


@hookimpl
def swapsim_register_rx_buffers(register: Any) -> None:
    register("kmalloc", KmallocRx)
    register("page-frag", PageFragRx)
