"""The per-page state seen two ways: vec items (compiled code) and numpy arrays (batches)."""

from __future__ import annotations

import gc

import numpy as np
from hypothesis import given, settings, strategies as st

from swapsim.mm.pages import PG_LRU, PageQueue, PageState, sort_by_slot, vec_array, vec_i32, wrap32


def test_a_write_through_either_view_is_seen_through_the_other():
    ps = PageState(64)
    ps.mflags[5] = int(PG_LRU)
    assert ps.flags[5] == PG_LRU
    ps.flags[[7, 9]] |= PG_LRU
    assert ps.mflags[7] == ps.mflags[9] == int(PG_LRU)
    ps.slot[3:6] = [10, 11, 12]
    assert [ps.mslot[i] for i in range(2, 7)] == [-1, 10, 11, 12, -1]
    ps.mzone[1] = 2
    assert ps.zone.tolist()[:3] == [-1, 2, -1]
    assert ps.bytes_per_page() == 16     # flags, zone, slot, LRU seq, LRU block


def test_the_array_keeps_the_vec_alive():
    arr = vec_array(vec_i32(1000, 7), np.int32)
    gc.collect()
    junk = [vec_i32(1000, 0) for _ in range(50)]      # would reuse freed memory
    assert arr.sum() == 7000 and arr.flags.writeable
    arr[:] = 1
    assert int(arr.sum()) == 1000 and len(junk) == 50


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 31), min_size=1, max_size=200), st.integers(2**31 - 50, 2**31 + 50))
def test_short_pushes_give_the_sequence_numbers_new_seqs_gives(ops, start):
    """push_pages() numbers entries as numpy's int32 wrap of the counter, past 2**31 too,
    and pop_live() returns exactly the entries whose page has not moved since."""
    ps = PageState(32)
    ps.seq_counter = start
    q = PageQueue()
    ref = PageState(32)
    ref.seq_counter = start
    pushed: list[tuple[int, int]] = []
    for i in range(0, len(ops), 3):
        pages = ops[i:i + 3]
        if len(set(pages)) < len(pages):
            continue
        q.push_pages(pages, ps)
        seqs = ref.new_seqs(np.array(pages, dtype=np.int32))
        pushed += list(zip(pages, seqs.tolist()))
    assert ps.lru_seq.tolist() == ref.lru_seq.tolist()
    live = [p for p, s in pushed if ps.lru_seq[p] == s]
    assert q.pop_live(len(pushed), ps.mseq) == live


def test_wrap32_and_slot_order():
    assert [wrap32(x) for x in (0, 2**31 - 1, 2**31, 2**32 + 5)] == [0, 2**31 - 1, -2**31, 5]
    ps = PageState(8)
    for page, slot in [(0, 40), (3, 7), (5, 1000), (6, 8)]:
        ps.mslot[page] = slot
    assert sort_by_slot([0, 3, 5, 6], ps.mslot) == [3, 6, 0, 5]
    assert sort_by_slot([3, 6, 0, 5], ps.mslot) == [3, 6, 0, 5]   # in order already
    assert sort_by_slot([3, 6, 5, 0], ps.mslot) == [3, 6, 0, 5]   # only the last pair out of order
