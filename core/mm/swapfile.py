"""Swap slots: the swap_map of one swap area, and scan_swap_map()'s choice of slot.

Where the slots of pages written together land decides what swap-in
readahead reads back: an aligned block of 8 slots holding a run of one
process's pages comes back in one request, a block full of holes or of other
pages costs more requests for the same pages.  So the slot allocator is
modelled as 3.6's scan_swap_map() chooses, not as a simpler next-fit.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from .pages import vec_array, vec_i32

SWAPFILE_CLUSTER: Final = 256
#: owner[] of a free slot, and of slot 0, where mkswap's header lives
FREE: Final = -1
HEADER: Final = -2


class SwapArea:
    """``owner[slot]`` is the virtual page stored in the slot, FREE or HEADER.

    scan_swap_map() hands slots out sequentially from ``cluster_next`` (the
    next free one at or after it, wrapping), and every SWAPFILE_CLUSTER slots
    it looks for a wholly free run of that many slots to continue in, so that
    pages reclaimed together stay together:

    - on a rotational device the search starts at the lowest free slot, and
      if no run is free, allocation goes on first-free from there;
    - on a non-rotational one (SWP_SOLIDSTATE: NBD sets QUEUE_FLAG_NONROT)
      it starts at ``cluster_next``, wraps to the lowest free slot, and if no
      run is free, allocation goes on where it was.  swapon() starts such an
      area at a random slot.

    Not modelled: reuse of slots held only by the swap cache once the area
    is half full (vm_swap_full()), and discard.
    """

    def __init__(self, nslots: int) -> None:
        self.nslots = nslots
        # a vec for few-slot operations, its numpy view for batches (pages.vec_array)
        self.mowner = vec_i32(nslots, FREE)
        self.owner = vec_array(self.mowner, np.int32)
        self.owner[0] = HEADER
        #: usable slots (all but the header)
        self.pages = nslots - 1
        self.inuse = 0
        # free slots in each aligned SWAPFILE_CLUSTER: candidates for a free run
        # (and a zero past the last, so that every cluster has a next one)
        nclusters = -(-nslots // SWAPFILE_CLUSTER)
        self.mcluster_free = vec_i32(nclusters + 1, 0)
        self.cluster_free_ext = vec_array(self.mcluster_free, np.int32)
        self.cluster_free = self.cluster_free_ext[:nclusters]
        self.cluster_free[:] = SWAPFILE_CLUSTER
        self.cluster_free[-1] = nslots - (nclusters - 1) * SWAPFILE_CLUSTER
        self.cluster_free[0] -= 1
        self.solidstate = False
        self.cluster_next = 1
        self.cluster_nr = 0
        #: no slot below this is free (kept as a bound, tightened on demand)
        self.lowest = 1

    def swapon(self, solidstate: bool, rng: np.random.Generator) -> None:
        """sys_swapon(): a non-rotational device starts at a random slot."""
        self.solidstate = solidstate
        if solidstate:
            self.cluster_next = 1 + int(rng.integers(self.nslots - 1))

    @property
    def free(self) -> int:
        return self.pages - self.inuse

    def alloc(self, pages: np.ndarray) -> np.ndarray:
        """get_swap_page() for each of ``pages``, in order; returns their
        slots (-1 where the area is full)."""
        k = len(pages)
        out = np.full(k, -1, dtype=np.int32)
        owner = self.owner
        got = 0
        while got < k and self.inuse < self.pages:
            if not self.cluster_nr:
                self._new_cluster()
                self.cluster_nr = SWAPFILE_CLUSTER
            m = min(min(k - got, self.cluster_nr), self.free)   # two-argument min()s compile natively
            cur = self.cluster_next
            if self._all_free(cur, cur + m):
                # the common case, a reclaim batch at a free cursor: one run
                end = cur + m
                out[got:got + m] = np.arange(cur, end, dtype=np.int32)
                owner[cur:end] = pages[got:got + m]
                self._took_run(cur, end)
            else:
                slots = self._next_free(m)
                end = int(slots[-1]) + 1
                out[got:got + m] = slots
                owner[slots] = pages[got:got + m]
                np.subtract.at(self.cluster_free, slots // SWAPFILE_CLUSTER, 1)
            got += m
            self._advance(m, end)
        return out

    def alloc_list(self, pages: list[int]) -> list[int]:
        """alloc() of a reclaim batch (≤ 32 pages) as lists: when the cluster has
        room for the whole batch and the slots at its cursor are free — nearly
        always — the batch takes them with no numpy call; otherwise alloc()."""
        m = len(pages)
        cur = self.cluster_next
        if not m or m > self.cluster_nr or m > self.free or not self._all_free(cur, cur + m):
            return self.alloc(np.array(pages, dtype=np.int32)).tolist()
        owner = self.mowner
        out: list[int] = []
        for j in range(m):
            owner[cur + j] = pages[j]
            out.append(cur + j)
        end = cur + m
        self._took_run(cur, end)
        self._advance(m, end)
        return out

    def _advance(self, m: int, end: int) -> None:
        """``m`` slots of the cluster taken, the last just below ``end``: the cursor moves there."""
        self.inuse += m
        self.cluster_nr -= m
        self.cluster_next = end

    def _all_free(self, lo: int, hi: int) -> bool:
        """Are slots [lo, hi) free?  (A batch is ≤ 32 slots: Python ints.)"""
        if hi > self.nslots:
            return False
        owner = self.mowner
        for s in range(lo, hi):
            if owner[s] != FREE:
                return False
        return True

    def _took_run(self, lo: int, hi: int) -> None:
        """cluster_free after taking [lo, hi), which spans at most two clusters."""
        cf = self.mcluster_free
        a, b = lo // SWAPFILE_CLUSTER, (hi - 1) // SWAPFILE_CLUSTER
        if a == b:
            cf[a] -= hi - lo
        else:
            cf[a] -= b * SWAPFILE_CLUSTER - lo
            cf[b] -= hi - b * SWAPFILE_CLUSTER

    def _next_free(self, k: int) -> np.ndarray:
        """The next ``k`` free slots from cluster_next on, wrapping once
        (the caller has checked that there are that many)."""
        owner = self.owner
        found: list[np.ndarray] = []
        need = k
        cur = self.cluster_next if self.cluster_next < self.nslots else self.lowest
        wrapped = False
        while need:
            end = min(self.nslots, cur + max(SWAPFILE_CLUSTER, 4 * need))
            free = np.flatnonzero(owner[cur:end] == FREE)[:need] + cur
            if len(free):
                found.append(free)
                need -= len(free)
            cur = end
            if cur >= self.nslots:
                assert not wrapped or not need, "swap area fuller than inuse says"
                cur, wrapped = self._lowest_free(), True
        return found[0] if len(found) == 1 else np.concatenate(found)

    def _lowest_free(self) -> int:
        """si->lowest_bit."""
        owner = self.owner
        lo = self.lowest
        while lo < self.nslots:
            end = min(self.nslots, lo + 4 * SWAPFILE_CLUSTER)
            hit = np.flatnonzero(owner[lo:end] == FREE)
            if len(hit):
                lo += int(hit[0])
                break
            lo = end
        self.lowest = lo
        return lo

    def _new_cluster(self) -> None:
        """The search scan_swap_map() makes when cluster_nr runs out."""
        if self.free < SWAPFILE_CLUSTER:
            return
        lowest = self._lowest_free()
        if self.solidstate:
            base = min(self.cluster_next, self.nslots)
            start = self._free_run(base, self.nslots)
            if start < 0:
                start = self._free_run(lowest, base)
            self.cluster_next = base if start < 0 else start
        else:
            start = self._free_run(lowest, self.nslots)
            self.cluster_next = lowest if start < 0 else start

    def _free_run(self, lo: int, hi: int) -> int:
        """The first slot s in [lo, hi) with [s, s + SWAPFILE_CLUSTER) free
        and inside [lo, hi), or -1.

        A free run starting in aligned cluster c lies in c and c + 1, so only
        clusters whose free counts, with the next one's, reach
        SWAPFILE_CLUSTER are looked at slot by slot.
        """
        C = SWAPFILE_CLUSTER
        if hi - lo < C:
            return -1
        cf = self.cluster_free_ext
        a = lo // C
        last = (hi - C) // C            # the run's start is in a cluster ≤ this
        step = 512
        while a <= last:
            b = min(last + 1, a + step)
            pair = cf[a:b] + cf[a + 1:b + 1]
            for c in (np.flatnonzero(pair >= C) + a).tolist():
                s0 = max(lo, c * C)
                s1 = min(hi - C, c * C + C - 1)     # last start to try
                if s1 < s0:
                    continue
                w = np.concatenate(([0], np.cumsum(self.owner[s0:s1 + C] == FREE)))
                ok = np.flatnonzero(w[C:] - w[:-C] == C)
                if len(ok):
                    return s0 + int(ok[0])
            a = b
        return -1

    def release_list(self, slots: list[int]) -> None:
        """release() of a short list of slots."""
        owner = self.mowner
        cf = self.mcluster_free
        n = 0
        for s in slots:
            if s >= 0:
                owner[s] = FREE
                cf[s // SWAPFILE_CLUSTER] += 1
                if s < self.lowest:
                    self.lowest = s
                n += 1
        self.inuse -= n

    def release(self, slots: np.ndarray) -> None:
        slots = slots[slots >= 0]
        if not len(slots):
            return
        self.owner[slots] = FREE
        np.add.at(self.cluster_free, slots // SWAPFILE_CLUSTER, 1)
        self.lowest = min(self.lowest, int(slots.min()))
        self.inuse -= len(slots)
