"""Per-page state kept in packed arrays, and FIFO LRU queues.

One Python object per page would cost ~100 bytes and a dict lookup per
access; the arrays cost 16 bytes per virtual page.  Each is a librt ``vec``,
which compiled code indexes natively, with a numpy array over the same
memory for the batch operations.  The LRU queues keep their entries in
blocks that remember what nbd0's GFP_NOIO sweeps saw (BlockPool).
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

    Nearly every batch comes in slot order already (reclaim allocates a
    batch's slots in page order, a swap-in's readahead walks slots upward):
    then ``pages`` itself is the result, after one look at each slot.
    Otherwise sorts (slot, index) keys and picks the pages by index: they go
    into the result as the int objects they are (see vmscan.shrink_inactive)."""
    prev = -1
    for p in pages:
        s = int(mslot[p])
        if s < prev:
            break
        prev = s
    else:
        return pages
    keyed = [int(mslot[p]) << 32 | i for i, p in enumerate(pages)]
    keyed.sort()
    objs: list[Any] = pages
    return [objs[x & 0xFFFFFFFF] for x in keyed]


def wrap32(x: int) -> int:
    """x as numpy's astype(np.int32) wraps it."""
    if x < _I32_MAX:
        return x
    return (x + 2**31) % 2**32 - 2**31


#: entries per block of an LRU queue (see PageQueue)
BLOCK: Final = 64
#: the class rotate_inert stops at (see vmscan._NOIO_CLASS)
NOIO_CHANGED: Final = 2


class BlockPool:
    """The entries of every LRU queue of a PageState, in blocks of BLOCK slots.

    An entry is (page, sequence number, class); block ``b`` holds its entries in
    slots ``[b*BLOCK + start[b], b*BLOCK + end[b])``.  A block whose ``valid`` is
    set has no stale entry, and ``nmapped``/``first2`` summarise the classes of
    its entries (how many are 1, the index of the first 2 or -1) as a GFP_NOIO
    sweep sees them; anything that may change a page's class or sequence number
    clears ``valid`` of the block holding the page's live entry
    (``PageState.mark``), and the next sweep to reach it looks again.

    Why blocks: nbd0's GFP_NOIO reclaim sweeps the inactive list over and over,
    and between two visits almost every page is unchanged (98 % of visits, 96 %
    of runs of 64, in the 256 MiB vanilla-slab arm).  Looking each page up
    again cost two random reads per entry; a block that nothing has marked
    moves to the head whole, by its id.

    Block 0 is never used: a page on no list has ``blk`` 0, so a mark needs no test.
    """

    __slots__ = ("page", "seq", "cls", "start", "end", "valid", "nmapped", "first2",
                 "valid_np", "free", "nblocks")

    page: vec[i32]
    seq: vec[i32]
    cls: vec[i32]
    start: vec[i32]
    end: vec[i32]
    valid: vec[i32]
    nmapped: vec[i32]
    first2: vec[i32]
    valid_np: np.ndarray

    def __init__(self) -> None:
        self.nblocks = 0
        self.free: list[int] = []
        self._alloc(16)

    def _alloc(self, nblocks: int) -> None:
        """Room for ``nblocks`` blocks, the existing ones copied (block ids stay)."""
        old = self.nblocks
        page, seq, cls = (vec_i32(nblocks * BLOCK, 0), vec_i32(nblocks * BLOCK, 0),
                          vec_i32(nblocks * BLOCK, 0))
        start, end, valid = vec_i32(nblocks, 0), vec_i32(nblocks, 0), vec_i32(nblocks, 0)
        nmapped, first2 = vec_i32(nblocks, 0), vec_i32(nblocks, -1)
        if old:
            for new, cur, n in ((page, self.page, old * BLOCK), (seq, self.seq, old * BLOCK),
                                (cls, self.cls, old * BLOCK), (start, self.start, old),
                                (end, self.end, old), (valid, self.valid, old),
                                (nmapped, self.nmapped, old), (first2, self.first2, old)):
                vec_array(new, np.int32)[:n] = vec_array(cur, np.int32)[:n]
        self.page, self.seq, self.cls = page, seq, cls
        self.start, self.end, self.valid = start, end, valid
        self.nmapped, self.first2 = nmapped, first2
        self.valid_np = vec_array(valid, np.int32)
        self.free += list(range(nblocks - 1, max(old, 1) - 1, -1))
        self.nblocks = nblocks

    def new_block(self, at: int) -> int:
        """An empty block whose entries will start at slot ``at`` (0: filled from
        the front, BLOCK: from the back)."""
        if not self.free:
            self._alloc(self.nblocks * 2)
        b = self.free.pop()
        self.start[b] = at
        self.end[b] = at
        self.valid[b] = 0
        return b

    def rescan(self, b: int, ps: "PageState", cls_b: bytes) -> int:
        """Drop ``b``'s stale entries, class the others and summarise; returns how
        many entries were dropped."""
        page, seq, cls = self.page, self.seq, self.cls
        mseq, mflags = ps.mseq, ps.mflags
        base = b * BLOCK
        s: int = base + self.start[b]
        e: int = base + self.end[b]
        w = s
        nm = 0
        f2 = -1
        for i in range(s, e):
            p: int = page[i]
            sq: int = seq[i]
            if mseq[p] != sq:
                continue
            c: int = cls_b[int(mflags[p])]
            if c == NOIO_CHANGED:
                if f2 < 0:
                    f2 = w - s
            elif c:
                nm += 1
            page[w] = p
            seq[w] = sq
            cls[w] = c
            w += 1
        self.end[b] = w - base
        self.valid[b] = 1
        self.nmapped[b] = nm
        self.first2[b] = f2
        return e - w


class PageQueue:
    """A FIFO of page ids with O(1) batch push at the head and pop at the tail.

    An LRU list: new pages enter at the head, reclaim isolates from the tail.
    Entries carry a sequence number; an entry whose page has since moved
    (``seq`` array no longer matches) is stale and skipped on pop, which is
    how a page is removed from the middle of the list in O(1).

    The entries live in blocks of a BlockPool, which the queue keeps in order in
    a ring of block ids (``ring[rtail]`` is the tail block, the oldest entries).
    """

    __slots__ = ("pool", "ring", "rtail", "nblk", "n")

    def __init__(self) -> None:
        self.pool: BlockPool | None = None
        self.ring = vec_i32(16, 0)
        self.rtail = 0
        self.nblk = 0   # blocks in the ring
        self.n = 0      # entries, stale ones included

    def __len__(self) -> int:
        return self.n

    # -- the ring of block ids ------------------------------------------------
    def _ring_room(self) -> None:
        cap = len(self.ring)
        if self.nblk < cap:
            return
        old = vec_array(self.ring, np.int32)
        order = (np.arange(self.nblk) + self.rtail) & (cap - 1)
        ring = vec_i32(cap * 2, 0)
        vec_array(ring, np.int32)[:self.nblk] = old[order]
        self.ring = ring
        self.rtail = 0

    def _append_block(self, b: int) -> None:
        self._ring_room()
        self.ring[(self.rtail + self.nblk) & (len(self.ring) - 1)] = b
        self.nblk += 1

    def _prepend_block(self, b: int) -> None:
        self._ring_room()
        self.rtail = (self.rtail - 1) & (len(self.ring) - 1)
        self.ring[self.rtail] = b
        self.nblk += 1

    def _pop_tail_block(self) -> None:
        self.rtail = (self.rtail + 1) & (len(self.ring) - 1)
        self.nblk -= 1

    def _head_block(self) -> int:
        return int(self.ring[(self.rtail + self.nblk - 1) & (len(self.ring) - 1)])

    def blocks(self) -> list[int]:
        """The block ids, tail first."""
        mask = len(self.ring) - 1
        return [int(self.ring[(self.rtail + j) & mask]) for j in range(self.nblk)]

    def _pool(self, ps: "PageState") -> BlockPool:
        pool = self.pool
        if pool is None:
            pool = self.pool = ps.pool
        return pool

    # -- entries ----------------------------------------------------------------
    def push_pages(self, pages: list[int], ps: "PageState") -> None:
        """Add at the head (most recently used end), with fresh sequence numbers
        (page i gets ``wrap32(seq_counter + i)``, as PageState.new_seqs numbers)."""
        k = len(pages)
        if not k:
            return
        seq = ps.seq_counter
        ps.seq_counter = seq + k
        pool = self._pool(ps)
        mblk, mseq = ps.mblk, ps.mseq
        b = self._head_block() if self.nblk else 0
        pool.valid[b] = 0               # (new blocks start invalid)
        for p in pages:
            if not b or pool.end[b] == BLOCK:
                b = pool.new_block(0)
                self._append_block(b)
            e: int = pool.end[b]
            i = b * BLOCK + e
            s = wrap32(seq)
            mseq[p] = s
            pool.page[i] = p
            pool.seq[i] = s
            pool.end[b] = e + 1
            pool.valid[int(mblk[p])] = 0     # its old entry, if any, is stale now
            mblk[p] = b
            seq += 1
        self.n += k

    def push_tail_pages(self, pages: list[int], ps: "PageState") -> None:
        """Add at the tail, the next pages reclaim will look at
        (rotate_reclaimable_page): like list_move_tail() page by page, so the
        last page given ends up nearest the tail."""
        k = len(pages)
        if not k:
            return
        seq = ps.seq_counter
        ps.seq_counter = seq + k
        pool = self._pool(ps)
        mblk, mseq = ps.mblk, ps.mseq
        b: int = self.ring[self.rtail] if self.nblk else 0
        pool.valid[b] = 0
        for p in pages:
            if not b or pool.start[b] == 0:
                b = pool.new_block(BLOCK)
                self._prepend_block(b)
            s: int = pool.start[b] - 1
            i = b * BLOCK + s
            sq = wrap32(seq)
            mseq[p] = sq
            pool.page[i] = p
            pool.seq[i] = sq
            pool.start[b] = s
            pool.valid[int(mblk[p])] = 0
            mblk[p] = b
            seq += 1
        self.n += k

    def pop_live(self, k: int, mseq: vec[i32]) -> list[int]:
        """Remove ``k`` entries from the tail (fewer if there are fewer) and
        return the live ones (``mseq``: PageState.mseq)."""
        out: list[int] = []
        pool = self.pool
        if pool is None:
            return out
        while k > 0 and self.nblk:
            b: int = self.ring[self.rtail]
            s: int = pool.start[b]
            avail: int = pool.end[b] - s
            take = k if k < avail else avail
            base = b * BLOCK + s
            k -= take
            self.n -= take
            mapped = 0
            if pool.valid[b]:
                # every entry of a valid block is live: no page to look up
                for i in range(base, base + take):
                    out.append(pool.page[i])
                    if pool.cls[i] == 1:
                        mapped += 1
            else:
                for i in range(base, base + take):
                    p: int = pool.page[i]
                    if mseq[p] == pool.seq[i]:
                        out.append(p)
            if take == avail:
                self._pop_tail_block()
                pool.valid[b] = 0
                pool.free.append(b)
            elif pool.valid[b]:
                pool.start[b] = s + take
                # a summary survives losing entries before its first changed one
                f2: int = pool.first2[b]
                if f2 >= 0 and f2 < take:
                    pool.valid[b] = 0
                else:
                    pool.nmapped[b] -= mapped
                    if f2 >= 0:
                        pool.first2[b] = f2 - take
            else:
                pool.start[b] = s + take
        return out

    def entries(self) -> tuple[list[int], list[int]]:
        """Every entry's page and sequence number, tail first (stale ones included)."""
        pages: list[int] = []
        seqs: list[int] = []
        pool = self.pool
        if pool is not None:
            for b in self.blocks():
                base = b * BLOCK
                for i in range(base + int(pool.start[b]), base + int(pool.end[b])):
                    pages.append(int(pool.page[i]))
                    seqs.append(int(pool.seq[i]))
        return pages, seqs

    def rotate_inert(self, ps: "PageState", cls_b: bytes, max_batches: int) -> tuple[int, int]:
        """The GFP_NOIO sweep of vmscan.Reclaim.rotate_inert: move the longest run
        of live entries from the tail that holds no page of class 2 (``cls_b``: the
        class of each flags value), in whole batches of 32 and at most
        ``max_batches`` of them, to the head in order.  Returns (entries moved,
        how many of them are of class 1).

        Blocks that nothing has marked since they were last looked at move by
        their id; the others are looked at again first (BlockPool.rescan)."""
        pool = self.pool
        if pool is None or not self.nblk:
            return 0, 0
        want = max_batches * 32
        mask = len(self.ring) - 1
        acc = 0
        for j in range(self.nblk):
            b: int = self.ring[(self.rtail + j) & mask]
            if not pool.valid[b]:
                self.n -= pool.rescan(b, ps, cls_b)
            f2: int = pool.first2[b]
            if f2 >= 0:
                acc += f2
                break
            acc += pool.end[b] - pool.start[b]
            if acc >= want:
                break
        k = acc // 32
        if k > max_batches:
            k = max_batches
        n = k * 32
        moved = 0
        mapped = 0
        while moved < n:
            b = int(self.ring[self.rtail])
            c: int = pool.end[b] - pool.start[b]
            if moved + c <= n:
                self._pop_tail_block()
                mapped += pool.nmapped[b]
                moved += c
                if c <= BLOCK // 2 and self.nblk and self._append(pool, ps, b, c):
                    pool.valid[b] = 0
                    pool.free.append(b)
                else:
                    self._append_block(b)
            else:
                m = n - moved
                s = int(pool.start[b])
                base = b * BLOCK + s
                mm = 0
                for i in range(base, base + m):
                    if pool.cls[i] == 1:
                        mm += 1
                h = self._head_block()
                if h == b or not self._room(pool, h, m):
                    h = pool.new_block(0)   # it will hold only what moves: valid
                    pool.valid[h] = 1
                    pool.nmapped[h] = 0
                    pool.first2[h] = -1
                    self._append_block(h)
                self._copy(pool, ps, b, s, m, h)
                pool.start[b] = s + m
                pool.nmapped[h] += mm
                pool.nmapped[b] -= mm
                f2 = int(pool.first2[b])
                if f2 >= 0:
                    pool.first2[b] = f2 - m
                mapped += mm
                moved = n
        return n, mapped

    def check(self, ps: "PageState", cls_b: bytes) -> None:
        """Raise AssertionError where the queue's bookkeeping is not what looking
        at every page again would give: a valid block with a stale entry or a
        wrong summary, a live entry whose page's ``blk`` is another block, an
        entry count off.  For tests, and for ``Reclaim.check_lru``."""
        pool = self.pool
        if pool is None:
            return
        total = 0
        for b in self.blocks():
            base = b * BLOCK
            s: int = base + pool.start[b]
            e: int = base + pool.end[b]
            total += e - s
            nm = 0
            f2 = -1
            for i in range(s, e):
                p: int = pool.page[i]
                live = ps.mseq[p] == pool.seq[i]
                if live and ps.mblk[p] != b:
                    raise AssertionError(f"page {p}: entry in block {b}, blk says {ps.mblk[p]}")
                if not pool.valid[b]:
                    continue
                if not live:
                    raise AssertionError(f"block {b} is valid but holds a stale entry of page {p}")
                c: int = cls_b[int(ps.mflags[p])]
                if c != pool.cls[i]:
                    raise AssertionError(f"page {p} in block {b}: class {pool.cls[i]}, flags say {c}"
                                         f" (flags {ps.mflags[p]:#x}: a write without mark()?)")
                if c == NOIO_CHANGED and f2 < 0:
                    f2 = i - s
                elif c == 1:
                    nm += 1
            if pool.valid[b] and (nm, f2) != (pool.nmapped[b], pool.first2[b]):
                raise AssertionError(f"block {b}: summary {(pool.nmapped[b], pool.first2[b])},"
                                     f" entries say {(nm, f2)}")
        if total != self.n:
            raise AssertionError(f"{self.n} entries counted, {total} in the blocks")

    @staticmethod
    def _room(pool: BlockPool, h: int, m: int) -> bool:
        return pool.end[h] + m <= BLOCK

    def _append(self, pool: BlockPool, ps: "PageState", b: int, c: int) -> bool:
        """Copy block ``b``'s ``c`` entries to the end of the head block if they
        fit (its summary, when valid, counting them); False if they do not."""
        h = self._head_block()
        if not self._room(pool, h, c):
            return False
        self._copy(pool, ps, b, pool.start[b], c, h)
        pool.nmapped[h] += pool.nmapped[b]
        return True

    @staticmethod
    def _copy(pool: BlockPool, ps: "PageState", b: int, s: int, m: int, h: int) -> None:
        """Entries ``[s, s+m)`` of block ``b`` to the end of block ``h`` (live ones,
        of no class 2: ``h``'s first2 stands)."""
        mblk = ps.mblk
        src = b * BLOCK + s
        e: int = pool.end[h]
        dst = h * BLOCK + e
        for i in range(m):
            p: int = pool.page[src + i]
            pool.page[dst + i] = p
            pool.seq[dst + i] = pool.seq[src + i]
            pool.cls[dst + i] = pool.cls[src + i]
            mblk[p] = h
        pool.end[h] = e + m


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
        #: the LRU queues' entries, and for each page the block of its live entry
        #: (0: none); see BlockPool
        self.pool = BlockPool()
        self.mblk = vec_i32(nr_pages, 0)
        self.blk = vec_array(self.mblk, np.int32)

    def mark(self, p: int) -> None:
        """Page ``p``'s flags or sequence number change: a sweep must look at its
        entry again (BlockPool).  Every such write calls this, except on a page
        isolated from its list (no entry until it is pushed back, which marks)."""
        self.pool.valid[int(self.mblk[p])] = 0

    def mark_np(self, pages: Any) -> None:
        """mark() of each page of an array of page ids, or of a slice of them."""
        self.pool.valid_np[self.blk[pages]] = 0

    def bytes_per_page(self) -> int:
        return sum(a.itemsize for a in (self.flags, self.zone, self.slot, self.lru_seq, self.blk))

    def new_seqs(self, pages: np.ndarray) -> np.ndarray:
        """Fresh LRU sequence numbers for pages entering a list (invalidates old entries)."""
        k = len(pages)
        start = self.seq_counter
        self.seq_counter += k
        seqs = np.arange(start, start + k, dtype=np.int64).astype(np.int32)
        self.mark_np(pages)
        self.lru_seq[pages] = seqs
        return seqs
