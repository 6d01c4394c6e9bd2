"""The swap cache's radix tree (swapper_space.page_tree), its nodes slab objects.

Why it is modelled: every page that enters the swap cache is a slot in this
tree, and a slot needs its leaf node (and the nodes above it) to exist.
add_to_swap() preloads nodes with __GFP_HIGH|__GFP_NOMEMALLOC and no
__GFP_WAIT: a reclaimer gets no reserve page for them, even in PF_MEMALLOC,
and cannot reclaim for them.  When the ``radix_tree_node`` cache has no free
object and the zones are below MIN/2, add_to_swap() fails and
shrink_page_list() activates the page instead of writing it (the "theoretical
memory reclaim deadlock in the swap out path" the comment there warns of).
Swap-in preloads with GFP_KERNEL and may reclaim.  Nodes freed when pages
leave the cache go back to the slab, so the tree holds slab pages in
proportion to how scattered the swap-cache pages are.

What 3.6 does, and the model with it:

- radix_tree_preload() fills the CPU's preload array up to
  RADIX_TREE_PRELOAD_SIZE (21) nodes, one kmem_cache_alloc() at a time, and
  fails (-ENOMEM) if one fails; the nodes it got stay in the array;
- radix_tree_insert() takes the nodes a new path needs from that array, or,
  when it is empty, from the slab with the root's gfp (GFP_ATOMIC|__GFP_NOWARN
  for swapper_space);
- radix_tree_delete() frees a node when its last slot goes.

Simplifications: the tree's height is fixed by the swap area's size (the
kernel grows it to the largest index inserted and shrinks it when only
index 0's subtree is left: a few nodes at most); freed nodes go back to the
slab at once rather than after an RCU grace period (milliseconds), in the
deleting CPU's softirq context.
"""

from __future__ import annotations

from typing import Final

from .. import slab as _slab
from . import gfp as G

RADIX_TREE_MAP_SHIFT: Final = 6
#: RADIX_TREE_MAX_PATH * 2 - 1, with 64-bit indexes: DIV_ROUND_UP(64, 6) = 11
RADIX_TREE_PRELOAD_SIZE: Final = 21
#: struct radix_tree_node on x86-64: height, count, parent/rcu_head, 64 slots, 3 tag words
RADIX_TREE_NODE_SIZE: Final = 560
#: add_to_swap()'s gfp for add_to_swap_cache()
GFP_ADD_TO_SWAP: Final = G.GFP_HIGH | G.GFP_NOMEMALLOC | G.GFP_NOWARN
#: swapper_space.page_tree's gfp: what radix_tree_node_alloc() uses with the preload empty
GFP_SWAPPER_ROOT: Final = G.GFP_ATOMIC | G.GFP_NOWARN


class SwapCache:
    """Which swap slots are in the swap cache, as the radix tree's node counts.

    ``count[l][i]`` is how many slots of node ``i`` at level ``l`` are used
    (level 0: the leaves, whose slots hold pages; a slot of a higher node
    holds a child node); a node exists while its count is non-zero, and
    ``node[l][i]`` is its slab object.
    """

    def __init__(self, slab: _slab.SlabAllocator, cache: int, nslots: int, ncpus: int) -> None:
        self.slab = slab
        self.cache = cache
        height = 1
        while 1 << (RADIX_TREE_MAP_SHIFT * height) < nslots:
            height += 1
        self.height = height
        self.count: list[list[int]] = [
            [0] * (((nslots - 1) >> (RADIX_TREE_MAP_SHIFT * (lvl + 1))) + 1) for lvl in range(height)]
        self.node: list[list[int]] = [[-1] * len(c) for c in self.count]
        #: each CPU's radix_tree_preloads
        self.preloads: list[list[int]] = [[] for _ in range(ncpus)]
        #: where freed nodes go: the RCU callback, in softirq on the deleting CPU
        self.rcu_ctx = [_slab.AllocContext(softirq=True, cpu=c) for c in range(ncpus)]
        self.nr_pages = 0          # total_swapcache_pages
        self.nr_nodes = 0          # nodes in the tree (preloaded ones not counted)
        #: add_to_swap() failures for want of a node (radix_tree_preload() -ENOMEM)
        self.add_fail = 0

    def _new_nodes(self, slot: int) -> int:
        """How many nodes inserting ``slot`` creates: the empty levels from the leaf up."""
        count = self.count
        shift = RADIX_TREE_MAP_SHIFT
        for lvl in range(self.height):
            if count[lvl][slot >> shift]:
                return lvl
            shift += RADIX_TREE_MAP_SHIFT
        return self.height

    def refill(self, cpu: int, objs: list[int]) -> None:
        """Put nodes allocated for radix_tree_preload() in the CPU's array; free what does not fit."""
        pre = self.preloads[cpu]
        room = RADIX_TREE_PRELOAD_SIZE - len(pre)
        pre += objs[:room]
        if len(objs) > room:
            self.slab.free_bulk(self.cache, objs[room:], self.rcu_ctx[cpu])

    def deficit(self, cpu: int) -> int:
        """How many nodes radix_tree_preload() on ``cpu`` would allocate."""
        return RADIX_TREE_PRELOAD_SIZE - len(self.preloads[cpu])

    def preload(self, gfp: int, ctx: _slab.AllocContext) -> bool:
        """radix_tree_preload() without sleeping: False (-ENOMEM) if the array could not be filled."""
        need = self.deficit(ctx.cpu)
        if need:
            self.preloads[ctx.cpu] += self.slab.alloc_bulk(self.cache, gfp, ctx, need)
            return not self.deficit(ctx.cpu)
        return True

    def insert(self, slot: int, ctx: _slab.AllocContext) -> bool:
        """radix_tree_insert(): False (-ENOMEM, nothing inserted) if a node could not be had."""
        new = self._new_nodes(slot)
        if new:
            pre = self.preloads[ctx.cpu]
            if len(pre) < new:
                pre += self.slab.alloc_bulk(self.cache, GFP_SWAPPER_ROOT, ctx, new - len(pre))
                if len(pre) < new:
                    return False
            shift = RADIX_TREE_MAP_SHIFT
            node = self.node
            for lvl in range(new):
                node[lvl][slot >> shift] = pre.pop()
                shift += RADIX_TREE_MAP_SHIFT
            self.nr_nodes += new
        # each new node is a used slot of its parent, the page one of its leaf
        count = self.count
        shift = RADIX_TREE_MAP_SHIFT
        for lvl in range(min(new + 1, self.height)):
            count[lvl][slot >> shift] += 1
            shift += RADIX_TREE_MAP_SHIFT
        self.nr_pages += 1
        return True

    def add_to_swap(self, slots: list[int], ctx: _slab.AllocContext) -> list[bool]:
        """add_to_swap_cache() with add_to_swap()'s gfp, for each slot in order (a slot < 0,
        for which get_swap_page() failed, is not tried); which were added."""
        out: list[bool] = []
        for s in slots:
            if s < 0:
                out.append(False)
            elif self.preload(GFP_ADD_TO_SWAP, ctx) and self.insert(s, ctx):
                out.append(True)
            else:
                self.add_fail += 1
                out.append(False)
        return out

    def insert_preloaded(self, slots: list[int], ctx: _slab.AllocContext) -> None:
        """Insert slots after a radix_tree_preload() that may sleep filled the CPU's
        array (swap-in, see MM._fault_major): a readahead block of ≤ 32 aligned
        slots lies in one leaf, so the array holds the nodes its path needs."""
        for s in slots:
            ok = self.insert(s, ctx)
            assert ok, "a preloaded radix-tree insert failed"

    def delete(self, slots: list[int], cpu: int) -> None:
        """radix_tree_delete() of each slot (all in the cache); emptied nodes go back to the slab."""
        count, node = self.count, self.node
        height = self.height
        freed: list[int] = []
        for s in slots:
            shift = RADIX_TREE_MAP_SHIFT
            lvl = 0
            while lvl < height:
                i = s >> shift
                c = count[lvl][i] - 1
                assert c >= 0, f"slot {s} is not in the swap cache"
                count[lvl][i] = c
                if c:
                    break
                freed.append(node[lvl][i])
                node[lvl][i] = -1
                lvl += 1
                shift += RADIX_TREE_MAP_SHIFT
        self.nr_pages -= len(slots)
        if freed:
            self.nr_nodes -= len(freed)
            self.slab.free_bulk(self.cache, freed, self.rcu_ctx[cpu])

    def stats(self) -> dict[str, int]:
        """Plain data for results and the lockup diagnosis."""
        return {"swapcache_pages": self.nr_pages, "radix_tree_nodes": self.nr_nodes,
                "radix_tree_preloaded": sum(len(p) for p in self.preloads),
                "add_to_swap_fail": self.add_fail}
