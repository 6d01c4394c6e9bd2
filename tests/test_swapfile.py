"""scan_swap_map()'s choice of swap slots (swapfile.SwapArea), in isolation.

Expected slots are worked out by hand from 3.6's rules: sequential from
cluster_next, and every SWAPFILE_CLUSTER (256) slots a search for a wholly
free run of 256 — from the lowest free slot on a rotational device, from
cluster_next (then wrapping) on a non-rotational one.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swapsim.mm.swapfile import FREE, HEADER, SWAPFILE_CLUSTER, SwapArea


def pages(n: int, first: int = 0) -> np.ndarray:
    return np.arange(first, first + n, dtype=np.int32)


def fragmented(solidstate: bool) -> SwapArea:
    """4096 slots; 2048 handed out (1..2048: slot 0 is the header), so the
    next allocation starts a new cluster; then holes freed: every other slot
    of 10..409 (no run of 256) and 1500..1799 (a run of 300)."""
    area = SwapArea(4096)
    area.solidstate = solidstate
    got = area.alloc(pages(2048))
    assert got.tolist() == list(range(1, 2049))
    assert area.cluster_nr == 0
    area.release(np.arange(10, 410, 2, dtype=np.int32))
    area.release_list(list(range(1500, 1800)))
    return area


def test_slot_zero_holds_the_header_and_a_full_area_says_so():
    area = SwapArea(300)
    got = area.alloc(pages(305))
    assert got[:299].tolist() == list(range(1, 300))
    assert got[299:].tolist() == [-1] * 6
    assert area.owner[0] == HEADER
    assert area.free == 0


def test_rotational_new_cluster_goes_to_the_first_free_run_above_the_lowest_free_slot():
    area = fragmented(solidstate=False)
    # cluster_next is 2049, where 2047 slots are free in a row; the search
    # starts at the lowest free slot (10) and the first run of 256 is at 1500
    got = area.alloc(pages(256, 5000))
    assert got.tolist() == list(range(1500, 1756))
    # the 257th starts a new search: 1756..1799 is too short, 2049 on is free
    assert area.alloc(pages(1, 6000)).tolist() == [2049]


def test_rotational_without_a_free_run_allocation_goes_first_free_from_the_lowest():
    area = SwapArea(1024)
    area.alloc(pages(1023))                    # full
    area.release(np.arange(100, 1000, 3, dtype=np.int32))   # holes, no run
    area.cluster_nr = 0
    assert area.alloc(pages(3, 5000)).tolist() == [100, 103, 106]


def test_solidstate_new_cluster_searches_from_cluster_next_then_wraps():
    area = fragmented(solidstate=True)
    # from cluster_next (2049) on, 2047 slots are free: the run starts there,
    # not at 1500 as on a rotational device
    assert area.alloc(pages(2, 5000)).tolist() == [2049, 2050]

    def holed(*runs: range) -> SwapArea:
        area = SwapArea(4096)
        area.solidstate = True
        area.alloc(pages(4095))
        area.release(np.arange(10, 410, 2, dtype=np.int32))
        for r in runs:
            area.release_list(list(r))
        area.cluster_next, area.cluster_nr = 3000, 0
        return area
    # 3000..3099 is too short; the first run at or after the cursor is 3500
    area = holed(range(1500, 1800), range(3000, 3100), range(3500, 3900))
    assert area.alloc(pages(2, 9000)).tolist() == [3500, 3501]
    # nothing above: wrap to the lowest free slot, first run 1500..1799
    area = holed(range(1500, 1800), range(3000, 3100))
    assert area.alloc(pages(2, 9000)).tolist() == [1500, 1501]


def test_solidstate_without_a_free_run_allocation_goes_on_from_cluster_next():
    area = SwapArea(1024)
    area.solidstate = True
    area.alloc(pages(1023))
    area.release(np.arange(100, 1000, 3, dtype=np.int32))
    area.cluster_next = 500
    area.cluster_nr = 0
    # the next free slots at or after 500 (not the lowest, 100)
    assert area.alloc(pages(3, 5000)).tolist() == [502, 505, 508]


def test_swapon_starts_a_non_rotational_area_at_a_slot_drawn_from_the_seed():
    starts = {}
    for seed in (1, 2, 3):
        area = SwapArea(1 << 19)
        area.swapon(True, np.random.default_rng(seed))
        starts[seed] = area.cluster_next
        again = SwapArea(1 << 19)
        again.swapon(True, np.random.default_rng(seed))
        assert again.cluster_next == area.cluster_next
        assert 1 <= area.cluster_next < 1 << 19
        assert area.alloc(pages(1)).tolist() == [area.cluster_next - 1]
    assert len(set(starts.values())) == 3
    disk = SwapArea(1 << 19)
    disk.swapon(False, np.random.default_rng(1))
    assert disk.alloc(pages(1)).tolist() == [1]


def test_the_nbd_swap_area_is_solidstate_and_the_disk_one_is_not():
    from swapsim.config import build_scenario
    from swapsim.pluginmanager import get_plugin_manager
    from swapsim.simulation import Simulation
    pm = get_plugin_manager()
    for scenario, solid in (("seed", True), ("disk-usemem", False)):
        raw = pm.lookup("scenarios", scenario).factory()
        scen = build_scenario(raw, scenario, [], seed=1)
        sim = Simulation(scen.arms[0].config, pm)
        assert sim.mm.swap.solidstate is solid
        assert (sim.mm.swap.cluster_next != 1) is solid


ops = st.lists(st.tuples(st.booleans(), st.integers(1, 300), st.integers(0, 10 ** 6)),
               min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(ops=ops, solid=st.booleans(), start=st.integers(1, 2999))
def test_slot_accounting_stays_exact(ops, solid, start):
    area = SwapArea(3000)
    area.solidstate = solid
    area.cluster_next = start
    held: dict[int, int] = {}
    nxt = 0
    for is_alloc, n, pick in ops:
        if is_alloc:
            free_before = {int(s) for s in np.flatnonzero(area.owner == FREE)}
            got = area.alloc(pages(n, nxt))
            ok = got[got >= 0]
            assert len(ok) == min(n, len(free_before))
            assert set(ok.tolist()) <= free_before
            assert len(set(ok.tolist())) == len(ok)
            for i, s in enumerate(got.tolist()):
                if s >= 0:
                    held[s] = nxt + i
            nxt += n
        elif held:
            keys = sorted(held)
            drop = [keys[(pick + 7 * i) % len(keys)] for i in range(min(n, len(keys)))]
            drop = list(dict.fromkeys(drop))
            area.release_list(drop) if pick % 2 else area.release(np.array(drop, dtype=np.int32))
            for s in drop:
                del held[s]
        owner = area.owner
        assert owner[0] == HEADER
        assert {int(s): int(owner[s]) for s in np.flatnonzero(owner >= 0)} == held
        assert area.inuse == len(held)
        counts = np.add.reduceat((owner == FREE).astype(np.int64),
                                 np.arange(0, 3000, SWAPFILE_CLUSTER))
        assert counts.tolist() == area.cluster_free.tolist()
        assert not (owner[:area.lowest] == FREE).any()


@pytest.mark.parametrize("solid", [False, True])
def test_pages_reclaimed_together_stay_together(solid):
    # 32-page batches into a fresh area: consecutive slots, one request each
    area = SwapArea(1 << 14)
    area.solidstate = solid
    for b in range(40):
        got = area.alloc(pages(32, b * 32))
        assert (np.diff(got) == 1).all()


def _area_state(area: SwapArea) -> tuple:
    return (area.owner.tolist(), area.cluster_free.tolist(), area.inuse, area.cluster_next,
            area.cluster_nr, area.lowest)


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.integers(0, 32), st.integers(0, 10 ** 6)),
                    min_size=1, max_size=60),
       solid=st.booleans(), start=st.integers(1, 999))
def test_alloc_list_is_alloc_of_a_batch(ops, solid, start):
    """Reclaim's list path takes the slots alloc() would, leaving the same state."""
    a, b = SwapArea(1000), SwapArea(1000)
    for area in (a, b):
        area.solidstate = solid
        area.cluster_next = start
    nxt = 0
    for is_alloc, n, pick in ops:
        if is_alloc:
            want = a.alloc(pages(n, nxt)).tolist()
            assert b.alloc_list(list(range(nxt, nxt + n))) == want
            nxt += n
        else:
            held = sorted(int(s) for s in np.flatnonzero(a.owner >= 0))
            drop = list(dict.fromkeys(held[(pick + 5 * i) % len(held)]
                                      for i in range(min(n, len(held))))) if held else []
            a.release_list(drop)
            b.release_list(drop)
        assert _area_state(a) == _area_state(b)
