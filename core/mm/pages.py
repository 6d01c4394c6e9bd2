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
#: the array module's type code of np.intp ("l" on LP64), to copy a list into a ring's memoryview
_INTP_CODE: Final = memoryview(np.empty(0, dtype=np.intp)).format


def _wrap32(x: int) -> int:
    """x as numpy's astype(np.int32) wraps it."""
    return (x + 2**31) % 2**32 - 2**31


# What Reclaim.rotate_inert last found of a queue entry (PageQueue.cl):
# 0 or 1 — the page's class then, see vmscan._NOIO_CLASS — a stale entry, or
# nothing yet.  _CL_HIT is not stored: it marks the entries of noted pages
# (InertNotes) while rotate_inert looks.
CL_STALE: Final = 4
CL_UNKNOWN: Final = 8
CL_HIT: Final = 16
_CL_UNKNOWN_B: Final = bytes([CL_UNKNOWN])
#: the hash of a page's id in InertNotes' tables
NOTE_MASK: Final = (1 << 18) - 1
#: notes a queue holds at most: past that it forgets what rotate_inert found in it
_NOTES_MAX: Final = 1 << 14


class InertNotes:
    """The pages written since rotate_inert last classified them (see
    PageState.note), as one LRU queue sees them.

    A note stays until every entry the queue held when it was made has left
    the queue's tail at least once (isolated, or looked at again by
    rotate_inert and moved): only those entries can carry a class found
    before the write.  Entries pushed later are classified when first
    looked at.  rotate_inert finds the entries of noted pages by a hash of
    their page ids (``hit``, read in one take() of the whole chunk it looks
    at), so it needs neither where the entries are nor a look-up of every
    page; a page that only shares a hash with a noted one is looked up
    again for nothing.
    """

    __slots__ = ("pages", "until", "count", "mcount", "hit", "mhit", "first")

    def __init__(self) -> None:
        self.pages: list[int] = []
        #: the queue's ``out`` at which each note goes
        self.until: list[int] = []
        self.first = 0          # notes before this index are gone
        self.count = np.zeros(NOTE_MASK + 1, dtype=np.int32)
        self.mcount = memoryview(self.count)
        #: CL_HIT where count is not 0, else 0: or-ed into the entries' classes
        self.hit = np.zeros(NOTE_MASK + 1, dtype=np.uint8)
        self.mhit = memoryview(self.hit)

    def __len__(self) -> int:
        return len(self.pages) - self.first

    def add(self, page: int, until: int) -> None:
        self.pages.append(page)
        self.until.append(until)
        h = page & NOTE_MASK
        c = self.mcount[h]
        if not c:
            self.mhit[h] = CL_HIT
        self.mcount[h] = c + 1

    def expire(self, out: int) -> None:
        """Drop the notes the queue no longer needs, its ``out`` being ``out``."""
        i = self.first
        until = self.until
        n = len(until)
        if i == n or until[i] > out:
            return
        pages, mcount, mhit = self.pages, self.mcount, self.mhit
        while i < n and until[i] <= out:
            h = pages[i] & NOTE_MASK
            c = mcount[h] - 1
            mcount[h] = c
            if not c:
                mhit[h] = 0
            i += 1
        if i == n:
            pages.clear()
            until.clear()
            i = 0
        elif i > 4096:
            del pages[:i]
            del until[:i]
            i = 0
        self.first = i

    def clear(self) -> None:
        self.pages.clear()
        self.until.clear()
        self.first = 0
        self.count.fill(0)
        self.hit.fill(0)


class PageQueue:
    """A FIFO of page ids with O(1) batch push at the head and pop at the tail.

    An LRU list: new pages enter at the head, reclaim isolates from the tail.
    Entries carry a sequence number; an entry whose page has since moved
    (``seq`` array no longer matches) is stale and skipped on pop, which is
    how a page is removed from the middle of the list in O(1).
    """

    __slots__ = ("buf", "sq", "cl", "head", "tail", "n", "mbuf", "msq", "mcl", "out", "notes",
                 "known")

    def __init__(self, capacity: int = 1024) -> None:
        cap = 1 << max(4, (capacity - 1).bit_length())
        # page ids as intp, the index type of take() and fancy indexing:
        # reclaim gathers page state through views of the ring, which would
        # otherwise be converted at each gather
        self.buf = np.empty(cap, dtype=np.intp)
        self.sq = np.empty(cap, dtype=np.int32)
        #: what rotate_inert last found of each entry (CL_*); see ``known``
        self.cl = np.full(cap, CL_UNKNOWN, dtype=np.uint8)
        # Python-int views (see PageState) for the few-page pushes of the fault path
        self.mbuf, self.msq, self.mcl = memoryview(self.buf), memoryview(self.sq), memoryview(self.cl)
        self.head = 0   # next write position
        self.tail = 0   # next read position
        self.n = 0      # entries, stale ones included
        #: entries taken from the tail less those pushed there, ever: the
        #: tail's position counted from the first entry (see InertNotes)
        self.out = 0
        #: where rotate_inert's last push ended (a position like ``out``):
        #: ``cl`` of the entries after it, pushed by others, is not yet written
        #: (see mark_unknown) — so that push_pages() need not write it
        self.known = 0
        #: the pages written since rotate_inert classified them, once it looks at this queue
        self.notes: InertNotes | None = None

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
        buf = np.empty(new_cap, dtype=np.intp)
        sq = np.empty(new_cap, dtype=np.int32)
        cl = np.full(new_cap, CL_UNKNOWN, dtype=np.uint8)
        buf[:self.n] = self.buf[order]
        sq[:self.n] = self.sq[order]
        cl[:self.n] = self.cl[order]
        self.buf, self.sq, self.cl = buf, sq, cl
        self.mbuf, self.msq, self.mcl = memoryview(buf), memoryview(sq), memoryview(cl)
        self.tail = 0
        self.head = self.n

    def push(self, pages: np.ndarray, seqs: np.ndarray, cls: Any = CL_UNKNOWN) -> None:
        """Add at the head (most recently used end); ``cls``: what rotate_inert found of them."""
        # (cl is written whatever the caller: cheap here, and then the
        # entries are known unless pushed by push_pages)
        k = len(pages)
        if not k:
            return
        self._grow(k)
        mask = len(self.buf) - 1
        h = self.head
        if h + k <= mask + 1:
            self.buf[h:h + k] = pages
            self.sq[h:h + k] = seqs
            self.cl[h:h + k] = cls
        else:
            idx = (np.arange(k) + h) & mask
            self.buf[idx] = pages
            self.sq[idx] = seqs
            self.cl[idx] = cls
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
            self.mbuf[h:h + k] = array(_INTP_CODE, pages)
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
        """push_tail() of a short list with fresh sequence numbers.

        The pages are on the list already: their entries there go stale (see
        PageState.note).  push_pages() needs no such note: the pages it is
        given are on no list, having been isolated or never added."""
        k = len(pages)
        if not k:
            return
        mtrk = ps.mtrk
        for p in pages:
            if mtrk[p]:
                ps.note(p)
        seqs = ps.new_seqs_list(pages)
        self._grow(k)
        cap = len(self.buf)
        t = self.tail
        if t >= k:                  # like push_tail(): the last page ends up at the tail
            self.mbuf[t - k:t] = array(_INTP_CODE, reversed(pages))
            self.msq[t - k:t] = array("i", reversed(seqs))
            self.mcl[t - k:t] = _CL_UNKNOWN_B * k
        else:
            mask = cap - 1
            mbuf, msq, mcl = self.mbuf, self.msq, self.mcl
            for p, sq in zip(pages, seqs):
                t = (t - 1) & mask
                mbuf[t] = p
                msq[t] = sq
                mcl[t] = CL_UNKNOWN
        self.tail = (self.tail - k) & (cap - 1)
        self.n += k
        self.out -= k

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
        self.out += k
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
            self.cl[start:start + k] = CL_UNKNOWN
        else:
            idx = (np.arange(k) + start) & mask
            self.buf[idx] = pages[::-1]
            self.sq[idx] = seqs[::-1]
            self.cl[idx] = CL_UNKNOWN
        self.tail = start
        self.n += k
        self.out -= k

    def peek(self, start: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Views of up to ``k`` entries (stale ones included) from the
        ``start``-th from the tail on, without removing them; fewer than ``k``
        where the ring wraps.  Valid until the queue is next changed."""
        cap = len(self.buf)
        t = (self.tail + start) & (cap - 1)
        k = min(k, self.n - start, cap - t)
        return self.buf[t:t + k], self.sq[t:t + k]

    def mark_unknown(self) -> None:
        """rotate_inert is about to look: the entries pushed at the head by
        others since its last push (all after ``known``) get CL_UNKNOWN."""
        start = max(0, self.known - self.out)
        k = self.n - start
        self.known = self.out + self.n
        if k <= 0:
            return
        cap = len(self.buf)
        t = (self.tail + start) & (cap - 1)
        if t + k <= cap:
            self.cl[t:t + k] = CL_UNKNOWN
        else:
            self.cl[t:] = CL_UNKNOWN
            self.cl[:t + k - cap] = CL_UNKNOWN

    def forget(self) -> None:
        """Drop what rotate_inert found of the entries, and the notes (too many)."""
        self.cl.fill(CL_UNKNOWN)
        if self.notes is not None:
            self.notes.clear()

    def peek_cl(self, start: int, k: int) -> np.ndarray:
        """What rotate_inert found of the entries peek(start, k) returns (a view)."""
        cap = len(self.buf)
        t = (self.tail + start) & (cap - 1)
        k = min(k, self.n - start, cap - t)
        return self.cl[t:t + k]

    def drop(self, k: int) -> None:
        """Remove ``k`` entries from the tail."""
        self.tail = (self.tail + k) & (len(self.buf) - 1)
        self.n -= k
        self.out += k

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
        self.out += k
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
        # For Reclaim.rotate_inert, which keeps what it found of each entry
        # of the inactive lists it sweeps (PageQueue.cl): ``trk`` is 1 for
        # a page it has classified since the page was last noted or
        # isolated, and whatever writes a page's flags or LRU sequence
        # number calls note() (through ``mtrk`` first, on Python ints), so
        # that the list of the page's zone, ``tracked[zone]``, looks it up
        # again.  A page's entries are all on its zone's lists: it changes
        # zones only when freed, which isolates it or notes it first.
        self.trk = np.zeros(nr_pages, dtype=np.uint8)
        self.mtrk = memoryview(self.trk)
        self.tracked: list[PageQueue | None] = []

    def bytes_per_page(self) -> int:
        return sum(a.itemsize for a in (self.flags, self.zone, self.slot, self.lru_seq))

    def note(self, page: int) -> None:
        """``page``'s flags or LRU sequence number are being written: the
        entries rotate_inert has classified may no longer be what it found.
        Call when ``mtrk[page]`` is set (the callers test it inline)."""
        self.mtrk[page] = 0
        g = self.mzone[page]
        if 0 <= g < len(self.tracked):
            q = self.tracked[g]
            if q is not None:
                notes = q.notes
                assert notes is not None
                notes.add(page, q.out + q.n)
                if len(notes) > _NOTES_MAX:
                    q.forget()

    def track(self, gid: int, q: PageQueue) -> None:
        """Notes of zone ``gid``'s pages go to ``q`` from now on."""
        while len(self.tracked) <= gid:
            self.tracked.append(None)
        self.tracked[gid] = q

    def note_pages(self, pages: np.ndarray) -> None:
        """note() of those of ``pages`` (an array) that need it."""
        if self.tracked and len(pages):
            t = self.trk[pages]
            if t.any():
                for p in pages[t != 0].tolist():
                    self.note(p)

    def note_range(self, start: int, end: int) -> None:
        """note() of those of pages ``start`` to ``end`` (exclusive) that need it."""
        if self.tracked and end > start:
            t = self.trk[start:end]
            if t.any():
                for i in np.flatnonzero(t).tolist():
                    self.note(start + i)

    def new_seqs(self, pages: np.ndarray) -> np.ndarray:
        """Fresh LRU sequence numbers for pages entering a list (invalidates old entries)."""
        self.note_pages(pages)
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
