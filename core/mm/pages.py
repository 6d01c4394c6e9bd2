"""Per-page state kept in packed arrays, and FIFO LRU queues.

One Python object per page would cost ~100 bytes and a dict lookup per
access; the arrays cost 12 bytes per virtual page.  Each is a librt ``vec``,
which compiled code indexes natively, with a numpy array over the same
memory for the batch operations reclaim needs (isolate 32, classify, put
back).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from librt.vecs import vec
from mypy_extensions import i16, i32

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


class _VecItems:
    """A vec's items as numpy sees them (``__array_interface__``), writable.

    ``np.frombuffer`` of a vec is read-only, and the batch operations of
    reclaim write the arrays too; this hands numpy the items' address, and
    keeps the vec alive for as long as the array is.  A vec made at its full
    length never moves its items: nothing here appends to one.
    """

    def __init__(self, items: Any, dtype: Any) -> None:
        self.items = items
        raw = np.frombuffer(items, dtype=np.uint8)
        dt = np.dtype(dtype)
        self.__array_interface__ = {"shape": (raw.nbytes // dt.itemsize,), "typestr": dt.str,
                                    "data": (raw.__array_interface__["data"][0], False),
                                    "version": 3}


def vec_array(items: Any, dtype: Any) -> np.ndarray:
    """A numpy array of ``dtype`` over the memory of ``items``, a vec that is not
    empty: the same state seen two ways.

    Compiled code reads and writes one item of a ``vec[i32]`` in a few
    instructions (a memoryview item costs ~100 ns: an int object made for the
    index and one for the value), while numpy does the batch operations.
    """
    return np.asarray(_VecItems(items, dtype))


def vec_i32(n: int, fill: int) -> vec[i32]:
    return vec[i32]([fill] * n)


def sort_by_slot(pages: list[int], mslot: vec[i32]) -> list[int]:
    """``pages`` (each holding a swap slot, so no two keys tie) in slot order.

    Sorts (slot, index) keys and picks the pages by index: they go into the
    result as the int objects they are (see vmscan.shrink_inactive)."""
    keyed = [int(mslot[p]) << 32 | i for i, p in enumerate(pages)]
    keyed.sort()
    objs: list[Any] = pages
    return [objs[x & 0xFFFFFFFF] for x in keyed]


def wrap32(x: int) -> int:
    """x as numpy's astype(np.int32) wraps it."""
    if x < _I32_MAX:
        return x
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
        # vecs for the few-page pushes and pops, numpy views for the batches
        self.mbuf, self.msq = vec_i32(cap, 0), vec_i32(cap, 0)
        self.buf, self.sq = vec_array(self.mbuf, np.int32), vec_array(self.msq, np.int32)
        self.head = 0   # next write position
        self.tail = 0   # next read position
        self.n = 0      # entries, stale ones included

    def __len__(self) -> int:
        return self.n

    def reserve(self, need: int) -> None:
        """Make room for ``need`` more entries (the ring doubles, its order kept)."""
        cap = len(self.buf)
        if self.n + need <= cap:
            return
        new_cap = cap
        while self.n + need > new_cap:
            new_cap *= 2
        order = (np.arange(self.n) + self.tail) & (cap - 1)
        mbuf, msq = vec_i32(new_cap, 0), vec_i32(new_cap, 0)
        buf, sq = vec_array(mbuf, np.int32), vec_array(msq, np.int32)
        buf[:self.n] = self.buf[order]
        sq[:self.n] = self.sq[order]
        self.buf, self.sq, self.mbuf, self.msq = buf, sq, mbuf, msq
        self.tail = 0
        self.head = self.n

    def push(self, pages: np.ndarray, seqs: np.ndarray) -> None:
        """Add at the head (most recently used end)."""
        k = len(pages)
        if not k:
            return
        self.reserve(k)
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
        seq = ps.new_seqs_list(pages)
        self.reserve(k)
        mask = len(self.buf) - 1
        h = self.head
        mbuf, msq = self.mbuf, self.msq
        for p in pages:
            mbuf[h] = p
            msq[h] = wrap32(seq)
            seq += 1
            h = (h + 1) & mask
        self.head = h
        self.n += k

    def push_tail_pages(self, pages: list[int], ps: "PageState") -> None:
        """push_tail() of a short list with fresh sequence numbers."""
        k = len(pages)
        if not k:
            return
        seq = ps.new_seqs_list(pages)
        self.reserve(k)
        mask = len(self.buf) - 1
        t = self.tail
        mbuf, msq = self.mbuf, self.msq
        for p in pages:             # like push_tail(): the last page ends up at the tail
            t = (t - 1) & mask
            mbuf[t] = p
            msq[t] = wrap32(seq)
            seq += 1
        self.tail = t
        self.n += k

    def pop_live(self, k: int, mseq: vec[i32]) -> list[int]:
        """pop(k) as a list of the live entries only (``mseq``: PageState.mseq)."""
        k = min(k, self.n)
        mask = len(self.buf) - 1
        t = self.tail
        mbuf, msq = self.mbuf, self.msq
        out: list[int] = []
        for _i in range(k):
            p: int = mbuf[t]
            if mseq[p] == msq[t]:
                out.append(p)
            t = (t + 1) & mask
        self.tail = t
        self.n -= k
        return out

    def push_tail(self, pages: np.ndarray, seqs: np.ndarray) -> None:
        """Add at the tail: the next pages reclaim will look at (rotate_reclaimable_page)."""
        k = len(pages)
        if not k:
            return
        self.reserve(k)
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

    def advance_head(self, k: int) -> None:
        """Count ``k`` entries written in place at the head (after reserve(k))."""
        self.head = (self.head + k) & (len(self.buf) - 1)
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
        # The state lives in vecs, which compiled code reads and writes an item
        # at a time in a few instructions (the fault and I/O paths work on 1-32
        # pages at a time); the numpy arrays over the same memory serve the
        # batch operations (a fancy-indexed numpy operation costs ~1 µs
        # whatever its size).  The flags fit in 15 bits: vec[i16] items are
        # the uint16 array's.
        self.mflags = vec[i16]([0] * nr_pages)
        self.mzone = vec[i16]([-1] * nr_pages)
        self.mslot = vec_i32(nr_pages, -1)
        self.mseq = vec_i32(nr_pages, 0)
        self.flags = vec_array(self.mflags, np.uint16)
        self.zone = vec_array(self.mzone, np.int16)
        self.slot = vec_array(self.mslot, np.int32)
        self.lru_seq = vec_array(self.mseq, np.int32)
        self.seq_counter = 0

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

    def new_seqs_list(self, pages: list[int]) -> int:
        """new_seqs() for a short list: the first sequence number; page i gets
        ``wrap32(first + i)``."""
        start = self.seq_counter
        self.seq_counter = start + len(pages)
        mseq = self.mseq
        seq = start
        for p in pages:
            mseq[p] = wrap32(seq)
            seq += 1
        return start
