"""Per-page state kept in numpy arrays, and FIFO LRU queues.

One Python object per page would cost ~100 bytes and a dict lookup per
access; the arrays cost 8 bytes per virtual page and allow the batch
operations reclaim needs (isolate 32, classify, put back) to be vectorised.
"""

from __future__ import annotations

from array import array
from typing import Any, Final

import numpy as np

# page flags (a subset of the kernel's, same meaning); numpy scalars so that
# ~PG_X is a valid uint16 mask
PG_PRESENT: Final = np.uint16(0x001)     # mapped by a PTE (not a swap entry)
PG_RESIDENT: Final = np.uint16(0x002)    # backed by a page frame
PG_SWAPCACHE: Final = np.uint16(0x004)
PG_DIRTY: Final = np.uint16(0x008)
PG_WRITEBACK: Final = np.uint16(0x010)
PG_REFERENCED: Final = np.uint16(0x020)  # young PTE / PG_referenced: touched since last scan
PG_ACTIVE: Final = np.uint16(0x040)
PG_LRU: Final = np.uint16(0x080)
PG_LOCKED: Final = np.uint16(0x100)      # read I/O in flight
PG_RECLAIM: Final = np.uint16(0x200)     # rotate to the inactive tail when writeback ends
PG_TOUCHED: Final = np.uint16(0x400)     # has ever been faulted in (not a zero page)
PG_ORPHAN: Final = np.uint16(0x800)      # its process exited while the page was under I/O
PG_READAHEAD: Final = np.uint16(0x1000)  # read by swap-in readahead, not yet faulted on (as 4.14 marks it)


_I32_MAX: Final = 2**31


def _wrap32(x: int) -> int:
    """x as numpy's astype(np.int32) wraps it."""
    return (x + 2**31) % 2**32 - 2**31


class PageQueue:
    """A FIFO of page ids with O(1) batch push at the head and pop at the tail.

    An LRU list: new pages enter at the head, reclaim isolates from the tail.
    Entries carry a sequence number; an entry whose page has since moved
    (``seq`` array no longer matches) is stale and skipped on pop, which is
    how a page is removed from the middle of the list in O(1).
    """

    __slots__ = ("buf", "sq", "head", "tail", "n", "mbuf", "msq")

    def __init__(self, capacity: int = 1024) -> None:
        cap = 1 << max(4, (capacity - 1).bit_length())
        self.buf = np.empty(cap, dtype=np.int32)
        self.sq = np.empty(cap, dtype=np.int32)
        # Python-int views (see PageState) for the few-page pushes of the fault path
        self.mbuf, self.msq = memoryview(self.buf), memoryview(self.sq)
        self.head = 0   # next write position
        self.tail = 0   # next read position
        self.n = 0      # entries, stale ones included

    def __len__(self) -> int:
        return self.n

    def _grow(self, need: int) -> None:
        cap = len(self.buf)
        if self.n + need <= cap:
            return
        new_cap = cap
        while self.n + need > new_cap:
            new_cap *= 2
        order = (np.arange(self.n) + self.tail) & (cap - 1)
        buf = np.empty(new_cap, dtype=np.int32)
        sq = np.empty(new_cap, dtype=np.int32)
        buf[:self.n] = self.buf[order]
        sq[:self.n] = self.sq[order]
        self.buf, self.sq = buf, sq
        self.mbuf, self.msq = memoryview(buf), memoryview(sq)
        self.tail = 0
        self.head = self.n

    def push(self, pages: np.ndarray, seqs: np.ndarray) -> None:
        """Add at the head (most recently used end)."""
        k = len(pages)
        if not k:
            return
        self._grow(k)
        mask = len(self.buf) - 1
        h = self.head
        if h + k <= mask + 1:
            self.buf[h:h + k] = pages
            self.sq[h:h + k] = seqs
        else:
            idx = (np.arange(k) + h) & mask
            self.buf[idx] = pages
            self.sq[idx] = seqs
        self.head = (h + k) & mask
        self.n += k

    def push_pages(self, pages: list[int], ps: "PageState") -> None:
        """push() of a short list with fresh sequence numbers (PageState.new_seqs)."""
        k = len(pages)
        if not k:
            return
        seqs = ps.new_seqs_list(pages)
        self._grow(k)
        cap = len(self.buf)
        h = self.head
        if h + k <= cap:
            self.mbuf[h:h + k] = array("i", pages)
            self.msq[h:h + k] = array("i", seqs)
        else:
            mask = cap - 1
            mbuf, msq = self.mbuf, self.msq
            for p, sq in zip(pages, seqs):
                mbuf[h] = p
                msq[h] = sq
                h = (h + 1) & mask
        self.head = (self.head + k) & (cap - 1)
        self.n += k

    def push_tail_pages(self, pages: list[int], ps: "PageState") -> None:
        """push_tail() of a short list with fresh sequence numbers."""
        k = len(pages)
        if not k:
            return
        seqs = ps.new_seqs_list(pages)
        self._grow(k)
        cap = len(self.buf)
        t = self.tail
        if t >= k:                  # like push_tail(): the last page ends up at the tail
            self.mbuf[t - k:t] = array("i", reversed(pages))
            self.msq[t - k:t] = array("i", reversed(seqs))
        else:
            mask = cap - 1
            mbuf, msq = self.mbuf, self.msq
            for p, sq in zip(pages, seqs):
                t = (t - 1) & mask
                mbuf[t] = p
                msq[t] = sq
        self.tail = (self.tail - k) & (cap - 1)
        self.n += k

    def pop_live(self, k: int, mseq: memoryview) -> list[int]:
        """pop(k) as a list of the live entries only (``mseq``: PageState.mseq)."""
        k = min(k, self.n)
        cap = len(self.buf)
        t = self.tail
        if t + k <= cap:
            pages = self.mbuf[t:t + k].tolist()
            seqs = self.msq[t:t + k].tolist()
        else:
            w = t + k - cap
            pages = self.mbuf[t:].tolist() + self.mbuf[:w].tolist()
            seqs = self.msq[t:].tolist() + self.msq[:w].tolist()
        self.tail = (t + k) & (cap - 1)
        self.n -= k
        return [p for p, sq in zip(pages, seqs) if mseq[p] == sq]

    def push_tail(self, pages: np.ndarray, seqs: np.ndarray) -> None:
        """Add at the tail: the next pages reclaim will look at (rotate_reclaimable_page)."""
        k = len(pages)
        if not k:
            return
        self._grow(k)
        mask = len(self.buf) - 1
        start = (self.tail - k) & mask
        # like list_move_tail() page by page: the last page given ends up nearest the tail
        if start + k <= mask + 1:
            self.buf[start:start + k] = pages[::-1]
            self.sq[start:start + k] = seqs[::-1]
        else:
            idx = (np.arange(k) + start) & mask
            self.buf[idx] = pages[::-1]
            self.sq[idx] = seqs[::-1]
        self.tail = start
        self.n += k

    def peek(self, start: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Views of up to ``k`` entries (stale ones included) from the
        ``start``-th from the tail on, without removing them; fewer than ``k``
        where the ring wraps.  Valid until the queue is next changed."""
        cap = len(self.buf)
        t = (self.tail + start) & (cap - 1)
        k = min(k, self.n - start, cap - t)
        return self.buf[t:t + k], self.sq[t:t + k]

    def drop(self, k: int) -> None:
        """Remove ``k`` entries from the tail."""
        self.tail = (self.tail + k) & (len(self.buf) - 1)
        self.n -= k

    def pop(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Remove up to ``k`` entries from the tail (stale ones included)."""
        k = min(k, self.n)
        mask = len(self.buf) - 1
        if self.tail + k <= len(self.buf):
            pages = self.buf[self.tail:self.tail + k].copy()
            seqs = self.sq[self.tail:self.tail + k].copy()
        else:
            idx = (np.arange(k) + self.tail) & mask
            pages = self.buf[idx]
            seqs = self.sq[idx]
        self.tail = (self.tail + k) & mask
        self.n -= k
        return pages, seqs


class PageState:
    """The state of every virtual page of the workload (anonymous memory)."""

    def __init__(self, nr_pages: int) -> None:
        self.nr = nr_pages
        self.flags = np.zeros(nr_pages, dtype=np.uint16)
        self.zone = np.full(nr_pages, -1, dtype=np.int8)
        self.slot = np.full(nr_pages, -1, dtype=np.int32)
        self.lru_seq = np.zeros(nr_pages, dtype=np.int32)
        self.seq_counter = 0
        # Python-int views of the same memory: one page's state costs ~15 ns
        # through these, ~50 ns as a numpy scalar, and a fancy-indexed numpy
        # operation ~1 µs whatever its size — the fault and I/O paths work on
        # 1-32 pages at a time, so they use these views.
        self.mflags = memoryview(self.flags)
        self.mzone = memoryview(self.zone)
        self.mslot = memoryview(self.slot)
        self.mseq = memoryview(self.lru_seq)

    def bytes_per_page(self) -> int:
        return sum(a.itemsize for a in (self.flags, self.zone, self.slot, self.lru_seq))

    def new_seqs(self, pages: np.ndarray) -> np.ndarray:
        """Fresh LRU sequence numbers for pages entering a list (invalidates old entries)."""
        k = len(pages)
        start = self.seq_counter
        self.seq_counter += k
        seqs = np.arange(start, start + k, dtype=np.int64).astype(np.int32)
        self.lru_seq[pages] = seqs
        return seqs

    def new_seqs_list(self, pages: list[int]) -> Any:
        """new_seqs() for a short list: the sequence numbers (a range unless they wrap)."""
        start = self.seq_counter
        k = len(pages)
        self.seq_counter = start + k
        if start + k > _I32_MAX:    # past int32: wrap as numpy's astype(np.int32) does
            seqs: Any = [_wrap32(x) for x in range(start, start + k)]
        else:
            seqs = range(start, start + k)
        mseq = self.mseq
        for p, sq in zip(pages, seqs):
            mseq[p] = sq
        return seqs
