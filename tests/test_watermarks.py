"""Zones, watermarks and the watermark test (swapsim.mm.zone; SPEC §2, §3).

The expected values are computed here from the kernel formulas written out a
second time (``expected_*`` below), not by calling the code under test, and a
few are spelled out as literals checked by hand.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swapsim.config import build_scenario
from swapsim.mm import gfp as G
from swapsim.mm.zone import (MAX_NR_ZONES, MAX_ORDER, ZONE_DMA, ZONE_DMA32, ZONE_NORMAL, Zone,
                             default_min_free_kbytes, setup_lowmem_reserve, setup_watermarks,
                             zone_layout)
from swapsim.pluginmanager import get_plugin_manager
from swapsim.simulation import Simulation

MiB = 1 << 20
GiB = 1 << 30
RATIOS = (256, 256, 32)  # vm.lowmem_reserve_ratio of 3.6: DMA, DMA32, Normal

MACHINES = [  # (memory, nodes)
    (256 * MiB, 1),
    (2 * GiB, 1),
    (8 * GiB, 1),
    (64 * GiB, 1),
    (8 * GiB, 2),
]
MACHINE_IDS = ["256MiB", "2GiB", "8GiB", "64GiB", "8GiB-2nodes"]


# -- the kernel formulas, written out independently -------------------------

def expected_min_free_kbytes(lowmem_pages: int, upper: int = 65536) -> int:
    """init_per_zone_wmark_min(): isqrt(16 × lowmem_kbytes), lowmem_kbytes = 4 × pages."""
    return min(upper, max(128, math.isqrt(16 * 4 * lowmem_pages)))


def expected_watermarks(presents: list[int], min_free_kbytes: int, profile: str = "3.6",
                        wsf: int = 10) -> list[tuple[int, int, int]]:
    """(MIN, LOW, HIGH) per zone; ``presents`` is every non-highmem zone of every node."""
    pages_min = min_free_kbytes // 4
    total = sum(presents)
    out = []
    for present in presents:
        tmp = pages_min * present // total
        if profile == "3.6":
            out.append((tmp, tmp + tmp // 4, tmp + tmp // 2))
        else:
            gap = max(tmp // 4, present * wsf // 10000)
            out.append((tmp, tmp + gap, tmp + 2 * gap))
    return out


def expected_lowmem_reserve(node_presents: list[int], ratios=RATIOS) -> list[list[int]]:
    """lowmem_reserve[j] of zone L = Σ present of zones L+1..j // ratio[L]; 0 for j ≤ L."""
    n = len(node_presents)
    return [[sum(node_presents[lower + 1:j + 1]) // ratios[lower] if j > lower else 0
             for j in range(n)] for lower in range(n)]


def build_zones(memory: int, nodes: int, profile: str = "3.6", wsf: int = 10,
                min_free_kbytes: int | None = None):
    """What swapsim computes: zones from zone_layout, reserves per node, watermarks."""
    layout = zone_layout(memory, nodes)
    node_zones = []
    for nid, row in enumerate(layout):
        zs = [Zone(node=nid, idx=idx, gid=-1, present=p) for idx, p in enumerate(row)]
        setup_lowmem_reserve(zs, RATIOS)
        node_zones.append(zs)
    populated = [z for zs in node_zones for z in zs if z.present]
    lowmem = sum(z.present for z in populated)
    mfk = (default_min_free_kbytes(lowmem, profile) if min_free_kbytes is None
           else min_free_kbytes)
    setup_watermarks(populated, mfk, profile, wsf)
    return layout, node_zones, populated, mfk


# -- zone_layout ------------------------------------------------------------

@pytest.mark.parametrize("memory,nodes", MACHINES, ids=MACHINE_IDS)
def test_zone_layout_accounts_for_every_page(memory, nodes):
    layout = zone_layout(memory, nodes)
    assert len(layout) == nodes
    assert all(len(row) == MAX_NR_ZONES for row in layout)
    assert sum(map(sum, layout)) == memory // 4096
    # nodes split RAM evenly
    assert {sum(row) for row in layout} == {memory // 4096 // nodes}
    assert all(p >= 0 for row in layout for p in row)
    # DMA (the low 16 MiB less holes) and DMA32 (below 4 GiB) sit on node 0 only
    assert layout[0][ZONE_DMA] == 3980
    assert layout[0][ZONE_DMA] + layout[0][ZONE_DMA32] <= (4 * GiB) // 4096
    for row in layout[1:]:
        assert row[ZONE_DMA] == 0


def test_zone_layout_2gib_has_no_normal_zone():
    assert zone_layout(2 * GiB, 1) == [[3980, 524288 - 3980, 0, 0]]


# -- min_free_kbytes --------------------------------------------------------

def test_spec_value_2048mib_gives_5792():
    lowmem = sum(map(sum, zone_layout(2048 * MiB, 1)))
    assert default_min_free_kbytes(lowmem) == 5792
    assert expected_min_free_kbytes(lowmem) == 5792


@pytest.mark.parametrize("pages", [0, 1, 100, 255, 256, 257, 65536, 524288, 16 << 20,
                                   (1 << 26) - 1, 1 << 26, 1 << 28, 1 << 32])
def test_min_free_kbytes_formula_and_clamps(pages):
    assert default_min_free_kbytes(pages, "3.6") == expected_min_free_kbytes(pages, 65536)
    assert default_min_free_kbytes(pages, "modern") == expected_min_free_kbytes(pages, 262144)


def test_min_free_kbytes_clamp_points():
    assert default_min_free_kbytes(100) == 128                      # isqrt(6400) = 80
    assert default_min_free_kbytes(1 << 28) == 65536                # 1 TiB: isqrt = 131072
    assert default_min_free_kbytes(1 << 28, "modern") == 131072
    assert default_min_free_kbytes(1 << 32, "modern") == 262144     # 16 TiB: isqrt = 524288


# -- per-zone watermarks and lowmem_reserve ----------------------------------

@pytest.mark.parametrize("memory,nodes", MACHINES, ids=MACHINE_IDS)
def test_watermarks_match_kernel_formula(memory, nodes):
    layout, node_zones, populated, mfk = build_zones(memory, nodes)
    presents = [p for row in layout for p in row if p]
    assert mfk == expected_min_free_kbytes(sum(presents))
    got = [tuple(z.watermark) for z in populated]
    assert got == expected_watermarks(presents, mfk)
    assert [(z.min, z.low, z.high) for z in populated] == got
    for z in populated:
        assert 0 <= z.min <= z.low <= z.high


@pytest.mark.parametrize("memory,nodes", MACHINES, ids=MACHINE_IDS)
def test_lowmem_reserve_matches_kernel_formula(memory, nodes):
    layout, node_zones, _, _ = build_zones(memory, nodes)
    for row, zs in zip(layout, node_zones):
        assert [list(z.lowmem_reserve) for z in zs] == expected_lowmem_reserve(row)


def test_2gib_values_checked_by_hand():
    # pages_min = 5792/4 = 1448; lowmem = 524288
    # DMA:   1448*3980//524288 = 10;  LOW 10+2,     HIGH 10+5
    # DMA32: 1448*520308//524288 = 1437; LOW 1437+359, HIGH 1437+718
    # DMA lowmem_reserve[DMA32] = 520308//256 = 2032
    _, node_zones, populated, mfk = build_zones(2 * GiB, 1)
    assert mfk == 5792
    dma, dma32 = populated
    assert dma.watermark == [10, 12, 15]
    assert dma32.watermark == [1437, 1796, 2155]
    assert list(dma.lowmem_reserve) == [0, 2032, 2032, 2032]
    assert list(dma32.lowmem_reserve) == [0, 0, 0, 0]


def test_8gib_two_nodes_values_checked_by_hand():
    # node 0: DMA 3980, DMA32 1048460-3980 = 1044480, Normal 1048576-1048460 = 116
    # node 1: Normal 1048576.  Watermarks use the lowmem pages of BOTH nodes.
    layout, node_zones, populated, mfk = build_zones(8 * GiB, 2)
    assert layout == [[3980, 1044480, 116, 0], [0, 0, 1048576, 0]]
    assert mfk == math.isqrt(16 * 4 * 2097152) == 11585
    # pages_min = 2896; node 1 Normal: 2896*1048576//2097152 = 1448
    assert node_zones[1][ZONE_NORMAL].watermark == [1448, 1810, 2172]
    # node 0 DMA: reserve against DMA32 = 1044480//256, against Normal (1044480+116)//256
    assert list(node_zones[0][ZONE_DMA].lowmem_reserve) == [0, 4080, 4080, 4080]
    assert list(node_zones[0][ZONE_DMA32].lowmem_reserve) == [0, 0, 116 // 256, 116 // 256]
    # node 1's empty lower zones still get protection computed, as in the kernel:
    # 1048576 // 256 = 4096 against Normal-class allocations
    assert list(node_zones[1][ZONE_DMA].lowmem_reserve) == [0, 0, 4096, 4096]
    assert list(node_zones[1][ZONE_DMA32].lowmem_reserve) == [0, 0, 4096, 4096]
    assert list(node_zones[1][ZONE_NORMAL].lowmem_reserve) == [0, 0, 0, 0]


@pytest.mark.parametrize("wsf", [10, 100, 1000])
@pytest.mark.parametrize("memory,nodes", MACHINES, ids=MACHINE_IDS)
def test_modern_profile_watermark_scale_factor(memory, nodes, wsf):
    layout, _, populated, mfk = build_zones(memory, nodes, profile="modern", wsf=wsf)
    presents = [p for row in layout for p in row if p]
    assert mfk == expected_min_free_kbytes(sum(presents), upper=262144)
    assert [tuple(z.watermark) for z in populated] == expected_watermarks(
        presents, mfk, profile="modern", wsf=wsf)


def test_modern_profile_gap_is_the_larger_of_the_two():
    # 8 GiB DMA32: tmp = 2896*1044480//2097152 = 1442; tmp//4 = 360,
    # present*10//10000 = 1044 → gap 1044: LOW 2486, HIGH 3530.
    _, node_zones, _, _ = build_zones(8 * GiB, 1, profile="modern", wsf=10)
    assert node_zones[0][ZONE_DMA32].watermark == [1442, 2486, 3530]
    # DMA: tmp = 2896*3980//2097152 = 5; tmp//4 = 1, 3980*10//10000 = 3 → gap 3
    assert node_zones[0][ZONE_DMA].watermark == [5, 8, 11]


def test_user_min_free_kbytes_wins_over_the_formula():
    _, _, populated, _ = build_zones(2 * GiB, 1, min_free_kbytes=100_000)
    presents = [z.present for z in populated]
    assert [tuple(z.watermark) for z in populated] == expected_watermarks(presents, 100_000)


@pytest.mark.parametrize("memory,nodes", MACHINES, ids=MACHINE_IDS)
@pytest.mark.parametrize("profile", ["3.6", "modern"])
def test_simulation_wires_zones_the_same_way(memory, nodes, profile):
    """MM, composed from a Config, ends up with the kernel's numbers."""
    scenario = build_scenario({"machine": {"memory": memory, "nodes": nodes,
                                           "watermark_profile": profile},
                               "swap": {"size": "64MiB"},
                               "workload": {"overcommit": 0.001}}, "t")
    mm = Simulation(scenario.arms[0].config, get_plugin_manager(autoload=False)).mm
    layout = zone_layout(memory, nodes)
    presents = [p for row in layout for p in row if p]
    upper = 65536 if profile == "3.6" else 262144
    assert mm.min_free_kbytes == expected_min_free_kbytes(sum(presents), upper)
    assert [tuple(z.watermark) for z in mm.zones] == expected_watermarks(
        presents, mm.min_free_kbytes, profile)
    for node, row in zip(mm.nodes, layout):
        assert [list(z.lowmem_reserve) for z in node.node_zones] == expected_lowmem_reserve(row)


def test_simulation_uses_configured_min_free_kbytes_and_ratios():
    scenario = build_scenario({"machine": {"memory": "2GiB", "min_free_kbytes": 16384,
                                           "lowmem_reserve_ratio": [64, 128, 16]},
                               "swap": {"size": "64MiB"},
                               "workload": {"overcommit": 0.001}}, "t")
    mm = Simulation(scenario.arms[0].config, get_plugin_manager(autoload=False)).mm
    assert mm.min_free_kbytes == 16384
    presents = [z.present for z in mm.zones]
    assert [tuple(z.watermark) for z in mm.zones] == expected_watermarks(presents, 16384)
    row = zone_layout(2 * GiB, 1)[0]
    assert ([list(z.lowmem_reserve) for z in mm.nodes[0].node_zones]
            == expected_lowmem_reserve(row, (64, 128, 16)))


# -- the watermark test: __zone_watermark_ok() --------------------------------

def zone_with(min_mark: int, free_area: dict[int, int] | None = None,
              reserve: list[int] | None = None, idx: int = ZONE_DMA32) -> Zone:
    z = Zone(node=0, idx=idx, gid=0, present=1 << 20)
    z.watermark = [min_mark, min_mark + min_mark // 4, min_mark + min_mark // 2]
    for order, n in (free_area or {}).items():
        z.free_area[order] = n
    z.nr_free = sum(n << o for o, n in (free_area or {}).items())
    if reserve is not None:
        z.lowmem_reserve = list(reserve)
    return z


FLOORS = [  # (alloc flags, fraction of MIN that must remain free) — SPEC §3 table
    (G.ALLOC_HIGH | G.ALLOC_HARDER, Fraction(3, 8)),
    (G.ALLOC_HIGH, Fraction(1, 2)),
    (G.ALLOC_HARDER, Fraction(3, 4)),
    (0, Fraction(1)),
]


def test_alloc_flag_values_are_the_kernels():
    assert (G.ALLOC_HARDER, G.ALLOC_HIGH, G.ALLOC_NO_WATERMARKS) == (0x10, 0x20, 0x04)


@pytest.mark.parametrize("flags,fraction", FLOORS, ids=["HIGH|HARDER", "HIGH", "HARDER", "none"])
@pytest.mark.parametrize("min_mark", [8, 1000, 1448, 4096])
def test_order0_floor_fraction_of_min(min_mark, flags, fraction):
    floor = fraction * min_mark
    assert floor.denominator == 1  # MIN chosen so the fractions are exact
    floor = int(floor)
    z = zone_with(min_mark, {0: 10 * min_mark})
    assert not z.watermark_ok(0, z.min, ZONE_DMA32, flags, free=floor)
    assert z.watermark_ok(0, z.min, ZONE_DMA32, flags, free=floor + 1)


@pytest.mark.parametrize("flags,fraction", FLOORS, ids=["HIGH|HARDER", "HIGH", "HARDER", "none"])
def test_order0_floor_uses_nr_free_by_default(flags, fraction):
    min_mark = 1000
    floor = int(fraction * min_mark)
    at_floor = zone_with(min_mark, {0: floor})
    above = zone_with(min_mark, {0: floor + 1})
    assert not at_floor.watermark_ok(0, min_mark, ZONE_DMA32, flags)
    assert above.watermark_ok(0, min_mark, ZONE_DMA32, flags)


def test_lowmem_reserve_of_the_classzone_adds_to_the_floor():
    # a DMA zone protecting 2032 pages against DMA32-class allocations
    z = zone_with(10, {0: 5000}, reserve=[0, 2032, 2032, 2032], idx=ZONE_DMA)
    assert z.watermark_ok(0, 10, ZONE_DMA, 0, free=11)         # own class: no reserve
    assert not z.watermark_ok(0, 10, ZONE_DMA32, 0, free=2042)
    assert z.watermark_ok(0, 10, ZONE_DMA32, 0, free=2043)
    # HIGH|HARDER relax the mark, never the reserve: 10 → 5 → 4
    assert not z.watermark_ok(0, 10, ZONE_DMA32, G.ALLOC_HIGH | G.ALLOC_HARDER, free=2036)
    assert z.watermark_ok(0, 10, ZONE_DMA32, G.ALLOC_HIGH | G.ALLOC_HARDER, free=2037)


def test_order1_fails_when_free_memory_is_all_order0():
    # 1000 free pages, MIN 100: plenty for order 0, but not a single order-1 block
    z = zone_with(100, {0: 1000})
    assert z.watermark_ok(0, 100, ZONE_DMA32, 0)
    assert not z.watermark_ok(1, 100, ZONE_DMA32, 0)


def test_order1_boundary_on_higher_order_free_pages():
    # order 1, MIN 100: free − 1 > 100, then free − 1 − (order-0 pages) > 50
    # 1000 order-0 + 26 order-1 blocks: 1052 − 1 − 1000 = 51 > 50 → ok
    assert zone_with(100, {0: 1000, 1: 26}).watermark_ok(1, 100, ZONE_DMA32, 0)
    # 25 order-1 blocks: 1050 − 1 − 1000 = 49 ≤ 50 → not ok
    assert not zone_with(100, {0: 1000, 1: 25}).watermark_ok(1, 100, ZONE_DMA32, 0)


def test_order3_walks_every_lower_order():
    # MIN 64, order 3: free − 7 > 64; − o0 > 32; − o1 > 16; − o2 > 8
    fa = {0: 40, 1: 20, 2: 10, 3: 2}          # 40 + 40 + 40 + 16 = 136 free
    z = zone_with(64, fa)
    # 136 − 7 = 129 > 64; 129 − 40 = 89 > 32; 89 − 40 = 49 > 16; 49 − 40 = 9 > 8
    assert z.watermark_ok(3, 64, ZONE_DMA32, 0)
    fa = {0: 40, 1: 20, 2: 10, 3: 1}          # 128 free: last step 1 ≤ 8
    assert not zone_with(64, fa).watermark_ok(3, 64, ZONE_DMA32, 0)
    # the same free count with no order-3 block: the order-2 step fails
    fa = {0: 40, 1: 20, 2: 14}                # 40 + 40 + 56 = 136
    assert not zone_with(64, fa).watermark_ok(3, 64, ZONE_DMA32, 0)


def test_order1_halving_starts_from_the_relaxed_mark():
    # ALLOC_HIGH: mark 100 → 50, then halves to 25 for the order-0 step
    # 1000 order-0 + 13 order-1: 1026 − 1 − 1000 = 25 ≤ 25 → no; with 14 → 27 > 25 → ok
    assert not zone_with(100, {0: 1000, 1: 13}).watermark_ok(1, 100, ZONE_DMA32, G.ALLOC_HIGH)
    assert zone_with(100, {0: 1000, 1: 14}).watermark_ok(1, 100, ZONE_DMA32, G.ALLOC_HIGH)


def reference_watermark_ok(free: int, free_area: list[int], order: int, mark: int,
                           reserve: int, flags: int) -> bool:
    """__zone_watermark_ok() of mm/page_alloc.c (3.6), transcribed."""
    free_pages = free - (2 ** order - 1)
    m = mark
    if flags & 0x20:
        m -= m // 2
    if flags & 0x10:
        m -= m // 4
    if free_pages <= m + reserve:
        return False
    for o in range(order):
        free_pages -= free_area[o] * 2 ** o
        m //= 2
        if free_pages <= m:
            return False
    return True


FLAG_SETS = st.sampled_from([0, G.ALLOC_HIGH, G.ALLOC_HARDER, G.ALLOC_HIGH | G.ALLOC_HARDER])


@settings(max_examples=300, deadline=None)
@given(free_area=st.lists(st.integers(0, 300), min_size=MAX_ORDER, max_size=MAX_ORDER),
       order=st.integers(0, 4), mark=st.integers(0, 5000), reserve=st.integers(0, 3000),
       flags=FLAG_SETS)
def test_watermark_ok_matches_kernel_transcription(free_area, order, mark, reserve, flags):
    z = zone_with(mark, dict(enumerate(free_area)), reserve=[0, reserve, reserve, reserve])
    got = z.watermark_ok(order, mark, ZONE_DMA32, flags)
    assert got == reference_watermark_ok(z.nr_free, free_area, order, mark, reserve, flags)


@settings(max_examples=200, deadline=None)
@given(mark=st.integers(0, 100_000), free=st.integers(0, 200_000), flags=FLAG_SETS)
def test_order0_relaxations_only_ever_help(mark, free, flags):
    """More free pages never fail where fewer passed; HIGH/HARDER never fail where none passed."""
    z = zone_with(mark, {0: 1})
    ok = z.watermark_ok(0, mark, ZONE_DMA32, flags, free=free)
    if ok:
        assert z.watermark_ok(0, mark, ZONE_DMA32, flags, free=free + 1)
    if z.watermark_ok(0, mark, ZONE_DMA32, 0, free=free):
        assert ok
    if ok:
        assert z.watermark_ok(0, mark, ZONE_DMA32, G.ALLOC_HIGH | G.ALLOC_HARDER, free=free)


# -- buddy bookkeeping: take / take_pages / give / give_pages ------------------

def assert_consistent(z: Zone) -> None:
    fa = [int(x) for x in z.free_area]
    assert all(n >= 0 for n in fa), fa
    assert sum(n << o for o, n in enumerate(fa)) == z.nr_free


@given(present=st.integers(1, 1 << 20))
def test_init_free_is_consistent(present):
    z = Zone(node=0, idx=ZONE_DMA32, gid=0, present=present)
    z.init_free(present)
    assert z.nr_free == present
    assert_consistent(z)


OPS = st.lists(st.one_of(
    st.tuples(st.just("take"), st.integers(0, MAX_ORDER - 1)),
    st.tuples(st.just("take_pages"), st.integers(0, 5000)),
    st.tuples(st.just("give"), st.integers(0, 1 << 16), st.integers(1, 8)),
    st.tuples(st.just("give_pages"), st.integers(0, 5000)),
), max_size=80)


@settings(max_examples=200, deadline=None)
@given(present=st.integers(1, 1 << 15), initial=st.integers(0, 1 << 15), ops=OPS)
def test_buddy_operations_keep_free_area_and_nr_free_in_sync(present, initial, ops):
    initial = min(initial, present)
    z = Zone(node=0, idx=ZONE_DMA32, gid=0, present=present)
    z.init_free(initial)
    blocks: list[int] = []   # orders of blocks taken with take()
    singles = 0              # pages taken with take_pages()
    for op in ops:
        before = z.nr_free
        if op[0] == "take":
            order = op[1]
            available = any(int(z.free_area[o]) for o in range(order, MAX_ORDER))
            ok = z.take(order)
            assert ok == available
            if ok:
                blocks.append(order)
                assert z.nr_free == before - (1 << order)
            else:
                assert z.nr_free == before
        elif op[0] == "take_pages":
            got = z.take_pages(op[1])
            assert got == min(op[1], before)
            singles += got
            assert z.nr_free == before - got
        elif op[0] == "give":
            if not blocks:
                continue
            order = blocks[op[1] % len(blocks)]
            count = min(op[2], blocks.count(order))
            for _ in range(count):
                blocks.remove(order)
            z.give(order, count)
            assert z.nr_free == before + (count << order)
        else:
            n = min(op[1], singles)
            singles -= n
            z.give_pages(n)
            assert z.nr_free == before + n
        assert_consistent(z)
        # pages are conserved: free + taken = what the zone started with
        assert z.nr_free + singles + sum(1 << o for o in blocks) == initial
        assert z.nr_free <= present
