"""Swap slots: the swap_map of one swap area, with next-fit cluster allocation."""

from __future__ import annotations

from typing import Final

import numpy as np

SWAPFILE_CLUSTER: Final = 256


class SwapArea:
    """``owner[slot]`` is the virtual page stored in the slot, or -1 if free.

    scan_swap_map() hands out slots from a moving cursor so that pages
    reclaimed together get neighbouring slots (and merge into one request);
    the model keeps that next-fit behaviour, searching a cluster at a time.
    """

    def __init__(self, nslots: int) -> None:
        self.nslots = nslots
        self.owner = np.full(nslots, -1, dtype=np.int32)
        self.mowner = memoryview(self.owner)   # Python-int view, for few-slot operations
        self.cursor = 0
        self.inuse = 0

    @property
    def free(self) -> int:
        return self.nslots - self.inuse

    def alloc(self, pages: np.ndarray) -> np.ndarray:
        """Assign slots to ``pages`` (in order); returns the slots (-1 where swap is full)."""
        k = len(pages)
        out = np.full(k, -1, dtype=np.int32)
        got = 0
        scanned = 0
        while got < k and scanned < self.nslots and self.inuse < self.nslots:
            end = min(self.nslots, self.cursor + max(SWAPFILE_CLUSTER, 4 * (k - got)))
            window = self.owner[self.cursor:end]
            free = np.flatnonzero(window < 0)[: k - got] + self.cursor
            n = len(free)
            if n:
                out[got:got + n] = free
                self.owner[free] = pages[got:got + n]
                got += n
                self.inuse += n
                self.cursor = int(free[-1]) + 1
            else:
                scanned += end - self.cursor
                self.cursor = end
            if self.cursor >= self.nslots:
                self.cursor = 0
        return out

    def release_list(self, slots: list[int]) -> None:
        """release() of a short list of slots."""
        owner = self.mowner
        n = 0
        for s in slots:
            if s >= 0:
                owner[s] = -1
                n += 1
        self.inuse -= n

    def release(self, slots: np.ndarray) -> None:
        slots = slots[slots >= 0]
        self.owner[slots] = -1
        self.inuse -= len(slots)
