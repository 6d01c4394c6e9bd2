"""Memory-management mechanisms in isolation, on a composed 64 MiB machine.

Each test builds a :class:`~swapsim.simulation.Simulation` (disk transport,
two zones: DMA and DMA32) but never runs the workload: it sets zone state by
hand, drives the engine step by step with its own processes, and checks one
mechanism — the min_free_kbytes update, the allocator's watermark floors and
reserve, gfp_pfmemalloc_allowed(), direct-reclaim throttling, the block
layer's request queue, and the LRU page queues.

Expected numbers are the kernel's arithmetic written out here a second time
(and, for the 64 MiB machine, as literals checked by hand), never values read
back from the code under test.
"""

from __future__ import annotations

import json
import math
from collections import deque

import attrs
import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from swapsim.block import WRITE, Mempool, RequestQueue
from swapsim.config import CostConfig, build_scenario
from swapsim.cpu import Task
from swapsim.mm import gfp as G
from swapsim.mm.memory import Costs
from swapsim.mm.pages import PageQueue, PageState
from swapsim.pluginmanager import get_plugin_manager
from swapsim.simulation import Simulation
from swapsim.mm import vmscan
from swapsim.mm.vmscan import Reclaim
from swapsim.slab import AllocContext

MiB = 1 << 20

# 64 MiB = 16384 present pages: DMA gets 3980, DMA32 the other 12404.
DMA_PRESENT, DMA32_PRESENT = 3980, 16384 - 3980
# min_free_kbytes = isqrt(16 × 65536 KiB) = 1024 → pages_min = 256
DEFAULT_MFK = 1024
# MIN = 256 × present / 16384: DMA 62, DMA32 193 (LOW = MIN + MIN/4, HIGH = MIN + MIN/2)
DMA_WMARKS = (62, 77, 93)
DMA32_WMARKS = (193, 241, 289)


@pytest.fixture(scope="module")
def pm():
    return get_plugin_manager(autoload=False)


def make_sim(pm, patches=(), *settings: str) -> Simulation:
    """A composed, not yet running, 64 MiB machine swapping to the disk transport."""
    raw = pm.lookup("scenarios", "disk-usemem").factory()
    sets = ["machine.memory='64MiB'", "machine.cpus=2", "machine.nodes=1",
            "swap.transport='disk'", "swap.size='256MiB'", "workload.procs_per_cpu=1",
            f"kernel.patches={json.dumps(list(patches))}", *settings]
    return Simulation(build_scenario(raw, "mechanisms", sets).arms[0].config, pm)


def set_free(zone, n: int) -> None:
    """Make ``zone.nr_free`` exactly ``n``, keeping the buddy free_area consistent."""
    if zone.nr_free > n:
        zone.take_pages(zone.nr_free - n)
    elif zone.nr_free < n:
        zone.give_pages(n - zone.nr_free)
    assert zone.nr_free == n
    assert sum(int(c) << o for o, c in enumerate(zone.free_area)) == n


def zones_by_name(sim):
    return {z.name: z for z in sim.mm.zones}


def expected_watermarks(min_free_kbytes: int, presents=(DMA_PRESENT, DMA32_PRESENT)):
    """__setup_per_zone_wmarks() of 3.6, written out again."""
    pages_min = min_free_kbytes // 4
    total = sum(presents)
    out = []
    for present in presents:
        tmp = pages_min * present // total
        out.append((tmp, tmp + tmp // 4, tmp + tmp // 2))
    return out


def test_the_machine_under_test():
    sim = make_sim(get_plugin_manager(autoload=False))
    zs = zones_by_name(sim)
    assert list(zs) == ["DMA", "DMA32"]
    assert (zs["DMA"].present, zs["DMA32"].present) == (DMA_PRESENT, DMA32_PRESENT)
    assert sim.mm.min_free_kbytes == DEFAULT_MFK == math.isqrt(16 * 64 * 1024)
    assert [tuple(z.watermark) for z in sim.mm.zones] == [DMA_WMARKS, DMA32_WMARKS]
    assert expected_watermarks(DEFAULT_MFK) == [DMA_WMARKS, DMA32_WMARKS]
    # the DMA zone keeps DMA32's present / 256 back from DMA32-classzone allocations
    assert zs["DMA"].lowmem_reserve[1] == DMA32_PRESENT // 256 == 48
    assert zs["DMA32"].lowmem_reserve[1] == 0
    assert sim.env.now == 0.0


# -- (a) vm.min_free_kbytes at run time ------------------------------------------------

def _watch(env, mm, seen, steps=4):
    """An observer process: the MIN of every zone, each time it gets to run."""
    for _ in range(steps):
        seen.append((env.now, [z.min for z in mm.zones]))
        yield env.timeout(0)


@pytest.mark.parametrize("new_mfk", [4096, 256])
def test_min_free_lock_updates_every_zone_at_once(pm, new_mfk):
    sim = make_sim(pm, ["min-free-lock"])
    mm, env = sim.mm, sim.env
    old_mins = [w[0] for w in expected_watermarks(DEFAULT_MFK)]
    new = expected_watermarks(new_mfk)
    assert [w[0] for w in new] != old_mins
    updates = mm.watermark_updates
    env.process(mm.set_min_free_kbytes(new_mfk))
    seen: list = []
    env.process(_watch(env, mm, seen))
    env.step()  # the writer's first (and only) step
    assert [tuple(z.watermark) for z in mm.zones] == new
    assert mm.min_free_kbytes == new_mfk
    assert mm.watermark_updates == updates + 1
    env.run()
    assert seen and all(mins == [w[0] for w in new] for _, mins in seen)


def test_without_min_free_lock_a_reader_between_steps_sees_a_mix(pm):
    sim = make_sim(pm, [])
    mm, env = sim.mm, sim.env
    old = expected_watermarks(DEFAULT_MFK)
    new = expected_watermarks(4096)  # MIN: DMA 248, DMA32 775
    assert [w[0] for w in new] == [248, 775]
    env.process(mm.set_min_free_kbytes(4096))
    seen: list = []
    env.process(_watch(env, mm, seen))
    env.step()  # the writer updated the first zone and yielded
    assert [tuple(z.watermark) for z in mm.zones] == [new[0], old[1]]
    env.run()
    # the observer ran between the writer's steps: old MIN in DMA32 and new
    # MIN in DMA at one and the same simulated instant
    assert seen[0] == (0.0, [new[0][0], old[1][0]])
    assert any(mins == [new[0][0], old[1][0]] for _, mins in seen)
    assert seen[-1] == (0.0, [new[0][0], new[1][0]])
    # in the end the update is the same as the locked one
    assert [tuple(z.watermark) for z in mm.zones] == new
    assert mm.min_free_kbytes == 4096


@pytest.mark.parametrize("patches,expected", [([], "stale"), (["min-free-lock"], "new")])
def test_an_allocation_between_the_steps_sees_stale_watermarks(pm, patches, expected):
    """A GFP_KERNEL allocation racing the update: without the lock it still
    passes DMA32's old watermarks although DMA already has the new ones."""
    sim = make_sim(pm, patches)
    mm, env = sim.mm, sim.env
    zs = zones_by_name(sim)
    set_free(zs["DMA"], 0)
    set_free(zs["DMA32"], 300)  # above the old LOW (241), below the new MIN (775)
    results = []

    def allocate():
        results.append(([z.min for z in mm.zones],
                        mm.alloc_nosleep(G.GFP_KERNEL, 0, AllocContext(task=None))))
        yield env.timeout(0)

    env.process(mm.set_min_free_kbytes(4096))
    env.process(allocate())
    env.run()
    if expected == "stale":
        assert results == [([248, 193], (zs["DMA32"].gid, False))]
    else:
        assert results == [([248, 775], (-1, False))]
    # after the update the same allocation fails either way
    assert mm.alloc_nosleep(G.GFP_KERNEL, 0, AllocContext(task=None)) == (-1, False)


# -- (b) the allocator's floors and the reserve -----------------------------------------

M = DMA32_WMARKS[0]  # 193
FLOORS = [
    # (gfp, floor on DMA32's free pages for an order-0 page, from __zone_watermark_ok)
    pytest.param(G.GFP_KERNEL, M, id="GFP_KERNEL:MIN"),
    pytest.param(G.GFP_NOWAIT | G.GFP_NOMEMALLOC, M, id="GFP_NOWAIT|NOMEMALLOC:MIN"),
    pytest.param(G.GFP_NOWAIT, M - M // 4, id="GFP_NOWAIT:3/4MIN"),
    pytest.param(G.GFP_ATOMIC | G.GFP_NOMEMALLOC, M - M // 2, id="GFP_ATOMIC|NOMEMALLOC:1/2MIN"),
    pytest.param(G.GFP_ATOMIC, (M - M // 2) - (M - M // 2) // 4, id="GFP_ATOMIC:3/8MIN"),
]


def test_floor_values_by_hand():
    assert [p.values[1] for p in FLOORS] == [193, 193, 145, 97, 73]
    assert 73 == math.ceil(3 / 8 * 193)


def drained(pm, patches=(), dma32_free=10):
    """A machine whose DMA zone is empty and whose DMA32 zone has ``dma32_free`` pages."""
    sim = make_sim(pm, patches)
    zs = zones_by_name(sim)
    set_free(zs["DMA"], 0)
    set_free(zs["DMA32"], dma32_free)
    return sim, zs["DMA32"]


def user_ctx(flags=0, softirq=False):
    return AllocContext(task=Task(pid=1, comm="usemem", flags=flags), softirq=softirq)


@pytest.mark.parametrize("gfp,floor", FLOORS)
def test_alloc_nosleep_floor(pm, gfp, floor):
    sim, dma32 = drained(pm, ["gfp-memalloc"], dma32_free=floor + 1)
    assert sim.mm.alloc_nosleep(gfp, 0, user_ctx()) == (dma32.gid, False)
    assert dma32.nr_free == floor
    # now exactly at the floor: the same allocation fails and takes nothing
    assert sim.mm.alloc_nosleep(gfp, 0, user_ctx()) == (-1, False)
    assert dma32.nr_free == floor


def test_just_above_three_eighths_min_atomic_succeeds_where_kernel_fails(pm):
    sim, dma32 = drained(pm, [], dma32_free=74)
    assert sim.mm.alloc_nosleep(G.GFP_KERNEL, 0, user_ctx()) == (-1, False)
    assert sim.mm.alloc_nosleep(G.GFP_NOWAIT, 0, user_ctx()) == (-1, False)
    assert sim.mm.alloc_nosleep(G.GFP_ATOMIC, 0, user_ctx()) == (dma32.gid, False)
    assert sim.mm.alloc_nosleep(G.GFP_ATOMIC, 0, user_ctx()) == (-1, False)  # 73 left


def test_the_dma_zone_keeps_its_lowmem_reserve(pm):
    """DMA32 empty: DMA serves a DMA32-classzone allocation only above MIN + 48."""
    sim = make_sim(pm, [])
    zs = zones_by_name(sim)
    set_free(zs["DMA32"], 0)
    set_free(zs["DMA"], DMA_WMARKS[0] + 48)
    assert sim.mm.alloc_nosleep(G.GFP_KERNEL, 0, user_ctx()) == (-1, False)
    set_free(zs["DMA"], DMA_WMARKS[0] + 49)
    assert sim.mm.alloc_nosleep(G.GFP_KERNEL, 0, user_ctx()) == (zs["DMA"].gid, False)


@pytest.mark.parametrize("gfp", [G.GFP_ATOMIC | G.GFP_MEMALLOC, G.GFP_NOIO | G.GFP_MEMALLOC,
                                 G.GFP_KERNEL | G.GFP_MEMALLOC])
def test_gfp_memalloc_takes_the_reserve_below_every_floor(pm, gfp):
    sim, dma32 = drained(pm, ["gfp-memalloc"], dma32_free=2)
    assert sim.mm.alloc_nosleep(gfp, 0, user_ctx()) == (dma32.gid, True)
    assert sim.mm.alloc_nosleep(gfp, 0, user_ctx()) == (dma32.gid, True)
    assert dma32.nr_free == 0
    assert sim.mm.alloc_nosleep(gfp, 0, user_ctx()) == (-1, False)  # nothing left at all


def test_gfp_memalloc_means_nothing_without_the_switch(pm):
    sim, dma32 = drained(pm, [], dma32_free=10)
    assert sim.mm.alloc_nosleep(G.GFP_ATOMIC | G.GFP_MEMALLOC, 0, user_ctx()) == (-1, False)
    assert dma32.nr_free == 10


def test_memalloc_reserve_is_used_only_after_the_floors(pm):
    """Above the floor a PF_MEMALLOC task gets an ordinary page, not a pfmemalloc one."""
    sim, dma32 = drained(pm, ["gfp-memalloc"], dma32_free=M + 1)
    ctx = user_ctx(G.PF_MEMALLOC)
    assert sim.mm.alloc_nosleep(G.GFP_KERNEL, 0, ctx) == (dma32.gid, False)
    assert sim.mm.alloc_nosleep(G.GFP_KERNEL, 0, ctx) == (dma32.gid, True)


def test_pf_memalloc_in_process_context_uses_the_reserve(pm):
    sim, dma32 = drained(pm, [], dma32_free=10)  # vanilla: PF_MEMALLOC predates the series
    assert sim.mm.alloc_nosleep(G.GFP_ATOMIC, 0, user_ctx(G.PF_MEMALLOC)) == (dma32.gid, True)
    assert sim.mm.alloc_nosleep(G.GFP_ATOMIC, 0, user_ctx()) == (-1, False)


@pytest.mark.parametrize("patches,allowed", [
    ([], False),
    (["gfp-memalloc"], False),
    (["gfp-memalloc", "softirq-memalloc"], True),
])
def test_pf_memalloc_in_softirq_needs_softirq_memalloc(pm, patches, allowed):
    sim, dma32 = drained(pm, patches, dma32_free=10)
    ctx = user_ctx(G.PF_MEMALLOC, softirq=True)
    expected = (dma32.gid, True) if allowed else (-1, False)
    assert sim.mm.alloc_nosleep(G.GFP_ATOMIC, 0, ctx) == expected


@pytest.mark.parametrize("ctx_flags,softirq,gfp", [
    (G.PF_MEMALLOC, False, G.GFP_ATOMIC | G.GFP_NOMEMALLOC),
    (G.PF_MEMALLOC, True, G.GFP_ATOMIC | G.GFP_NOMEMALLOC),
    (0, False, G.GFP_ATOMIC | G.GFP_MEMALLOC | G.GFP_NOMEMALLOC),
    (G.PF_MEMALLOC, False, G.GFP_KERNEL | G.GFP_MEMALLOC | G.GFP_NOMEMALLOC),
])
def test_gfp_nomemalloc_overrides(pm, ctx_flags, softirq, gfp):
    sim, dma32 = drained(pm, ["gfp-memalloc", "softirq-memalloc"], dma32_free=10)
    assert sim.mm.alloc_nosleep(gfp, 0, user_ctx(ctx_flags, softirq)) == (-1, False)
    assert dma32.nr_free == 10


# -- (c) gfp_pfmemalloc_allowed() ---------------------------------------------------------

V, GM, SM = (), ("gfp-memalloc",), ("gfp-memalloc", "softirq-memalloc")
PF = G.PF_MEMALLOC
TRUTH = [
    # (switches, gfp, task PF_* flags or None for no task, softirq, allowed)
    (V, 0, 0, False, False),
    (V, 0, PF, False, True),
    (V, 0, PF, True, False),
    (V, G.GFP_MEMALLOC, 0, False, False),
    (V, G.GFP_NOMEMALLOC, PF, False, False),
    (V, 0, None, False, False),
    (GM, G.GFP_MEMALLOC, 0, False, True),
    (GM, G.GFP_MEMALLOC, 0, True, True),
    (GM, G.GFP_MEMALLOC, None, True, True),
    (GM, G.GFP_MEMALLOC | G.GFP_NOMEMALLOC, 0, False, False),
    (GM, G.GFP_MEMALLOC | G.GFP_NOMEMALLOC, PF, False, False),
    (GM, 0, PF, True, False),
    (GM, 0, PF, False, True),
    (SM, 0, PF, True, True),
    (SM, 0, 0, True, False),
    (SM, 0, None, True, False),
    (SM, G.GFP_NOMEMALLOC, PF, True, False),
    (SM, G.GFP_ATOMIC, PF, False, True),
    (SM, G.GFP_KERNEL, 0, False, False),
]


@pytest.fixture(scope="module")
def sims_by_switches(pm):
    return {sw: make_sim(pm, sw) for sw in (V, GM, SM)}


@pytest.mark.parametrize("switches,gfp,pf,softirq,allowed", TRUTH)
def test_pfmemalloc_allowed(sims_by_switches, switches, gfp, pf, softirq, allowed):
    mm = sims_by_switches[switches].mm
    task = None if pf is None else Task(pid=1, comm="t", flags=pf)
    ctx = AllocContext(task=task, softirq=softirq)
    assert mm.pfmemalloc_allowed(gfp, ctx) is allowed
    # gfp_to_alloc_flags() sets ALLOC_NO_WATERMARKS exactly then
    assert bool(mm.alloc_flags(gfp, ctx) & G.ALLOC_NO_WATERMARKS) is allowed


def test_alloc_flags_of_3_6(sims_by_switches):
    mm = sims_by_switches[V].mm
    ctx = AllocContext(task=Task(pid=1, comm="t"))
    assert mm.alloc_flags(G.GFP_KERNEL, ctx) == G.ALLOC_WMARK_MIN | G.ALLOC_CPUSET
    assert mm.alloc_flags(G.GFP_ATOMIC, ctx) == G.ALLOC_WMARK_MIN | G.ALLOC_HIGH | G.ALLOC_HARDER
    assert mm.alloc_flags(G.GFP_NOWAIT, ctx) == G.ALLOC_HARDER
    assert mm.alloc_flags(G.GFP_ATOMIC | G.GFP_NOMEMALLOC, ctx) == G.ALLOC_HIGH


# -- (d) direct-reclaim throttling (patch 15, strategy pfmemalloc-half) --------------------

# Σ MIN over DMA and DMA32 = 62 + 193 = 255; throttled while free ≤ 255 // 2 = 127
RESERVE = DMA_WMARKS[0] + DMA32_WMARKS[0]


def throttling_sim(pm, patches=("throttle", "throttle-stat"), free=100):
    sim = make_sim(pm, patches)
    zs = zones_by_name(sim)
    set_free(zs["DMA"], 0)
    set_free(zs["DMA32"], free)
    return sim, zs["DMA32"], sim.mm.nodes[0]


def reclaimer(sim, task, gfp, done):
    yield from sim.mm.reclaim.try_to_free_pages(task, gfp, 0)
    done.append(sim.env.now)


def at(env, when, fn):
    yield env.timeout(when - env.now)
    fn()


def test_the_throttle_threshold_is_half_the_min_sum(pm):
    assert RESERVE == 255
    sim, dma32, node = throttling_sim(pm, free=127)
    assert node.pfmemalloc_reserve() == (127, 255)
    assert sim.throttle.name == "pfmemalloc-half"
    assert sim.throttle.watermark_ok(node) is False
    set_free(dma32, 128)
    assert sim.throttle.watermark_ok(node) is True


def test_a_user_task_waits_until_kswapd_finds_free_pages_raised(pm):
    sim, dma32, node = throttling_sim(pm)
    env, ev = sim.env, sim.vmstat.ev
    task = Task(pid=1, comm="usemem-0")
    done: list[float] = []
    env.process(reclaimer(sim, task, G.GFP_HIGHUSER_MOVABLE, done))
    env.run(until=100.0)  # __GFP_FS: no timeout at all
    assert (task.state, task.state_since) == ("throttled", 0.0)
    assert len(node.pfmemalloc_wait) == 1
    assert ev["allocstall"] == 0 and not done  # never got to direct reclaim
    assert ev["pgscan_direct_throttle"] == 1
    # kswapd's pass does not wake anyone while free is still low
    sim.throttle.kswapd_pass(node)
    env.run(until=101.0)
    assert task.state == "throttled" and len(node.pfmemalloc_wait) == 1
    # free raised above the threshold; the next kswapd pass wakes the task
    set_free(dma32, 200)
    env.process(at(env, 102.0, lambda: sim.throttle.kswapd_pass(node)))
    env.run(until=101.9)
    assert task.state == "throttled"  # raising free alone wakes nobody
    env.run(until=103.0)
    assert len(node.pfmemalloc_wait) == 0
    assert ev["allocstall"] == 1
    assert done and 102.0 <= done[0] < 103.0
    assert task.state == "running"
    assert sim.throttle.throttled_time == pytest.approx(102.0)
    assert ev["pgscan_direct_throttle"] == 1


def test_a_kernel_thread_is_never_throttled(pm):
    sim, dma32, node = throttling_sim(pm)
    env, ev = sim.env, sim.vmstat.ev
    kthread = Task(pid=2, comm="nbd0", flags=G.PF_KTHREAD, kthread=True)
    done: list[float] = []
    env.process(reclaimer(sim, kthread, G.GFP_NOIO, done))
    env.run(until=0.0)
    assert ev["allocstall"] == 1
    assert len(node.pfmemalloc_wait) == 0
    assert ev["pgscan_direct_throttle"] == 0
    env.run(until=1.0)
    assert done and done[0] < 1.0


def test_without_gfp_fs_the_wait_ends_after_one_second(pm):
    sim, dma32, node = throttling_sim(pm)
    env, ev = sim.env, sim.vmstat.ev
    task = Task(pid=1, comm="writer")
    done: list[float] = []
    env.process(reclaimer(sim, task, G.GFP_NOFS, done))
    env.run(until=0.999)
    assert task.state == "throttled" and ev["allocstall"] == 0
    env.run(until=1.0)
    assert ev["allocstall"] == 1  # gave up waiting and went on into direct reclaim
    assert len(node.pfmemalloc_wait) == 0
    assert sim.throttle.throttled_time == pytest.approx(1.0)
    env.run(until=2.0)
    assert done and 1.0 <= done[0] < 2.0


def test_pgscan_direct_throttle_exists_only_with_throttle_stat(pm):
    sim, dma32, node = throttling_sim(pm, patches=("throttle",))
    env, ev = sim.env, sim.vmstat.ev
    task = Task(pid=1, comm="usemem-0")
    env.process(reclaimer(sim, task, G.GFP_HIGHUSER_MOVABLE, []))
    env.run(until=5.0)
    assert task.state == "throttled"  # the throttle works without patch 16 …
    assert "pgscan_direct_throttle" not in ev  # … but is not counted
    assert "pgscan_direct_throttle" not in sim.vmstat_snapshot()


def test_without_the_throttle_switch_nobody_waits(pm):
    sim, dma32, node = throttling_sim(pm, patches=())
    env, ev = sim.env, sim.vmstat.ev
    assert sim.throttle.name == "none"
    task = Task(pid=1, comm="usemem-0")
    env.process(reclaimer(sim, task, G.GFP_HIGHUSER_MOVABLE, []))
    env.run(until=0.0)
    assert ev["allocstall"] == 1
    assert task.state != "throttled"
    assert len(node.pfmemalloc_wait) == 0


# -- (e) the block layer's request queue --------------------------------------------------

@pytest.mark.parametrize("nr_requests,on,off", [(128, 113, 103), (64, 57, 51), (32, 29, 25)])
def test_congestion_thresholds(pm, nr_requests, on, off):
    """blk_queue_congestion_threshold(): on = nr - nr/8 + 1, off = nr - nr/8 - nr/16 - 1."""
    q = RequestQueue(make_sim(pm), "test", nr_requests=nr_requests)
    assert (q.on_threshold, q.off_threshold) == (on, off)


def capture_queue(sim, nr_requests=128, max_pages=128):
    q = RequestQueue(sim, "test", nr_requests=nr_requests, max_pages=max_pages)
    dispatched: list = []
    q.dispatch = dispatched.append
    return q, dispatched


def submit_singles(q, task, n, states, done):
    """n one-page requests (slots 0, 2, 4, … never merge)."""
    for i in range(n):
        yield from q.submit(task, WRITE, np.array([2 * i], dtype=np.int32),
                            np.array([i], dtype=np.int32), done.append)
        states.append((q.count, q.congested))


def test_queue_congests_at_113_and_clears_below_103(pm):
    sim = make_sim(pm)
    env = sim.env
    q, dispatched = capture_queue(sim)
    states: list = []
    done: list = []
    env.process(submit_singles(q, Task(pid=1, comm="kswapd0"), 113, states, done))
    env.run()
    assert states[111] == (112, False)
    assert states[112] == (113, True)
    woken: list = []

    def congestion_waiter():
        woken.append((yield q.congestion_wait.wait(10.0)))
        woken.append(env.now)
    env.process(congestion_waiter())
    env.run(until=1.0)
    assert not woken
    for k in range(10):  # 113 → 103: still congested
        q.complete(dispatched[k])
    assert (q.count, q.congested) == (103, True)
    env.run(until=2.0)
    assert not woken
    q.complete(dispatched[10])  # 102 < 103
    assert (q.count, q.congested) == (102, False)
    env.run(until=3.0)
    assert woken == [True, 2.0]  # woken, not timed out
    assert len(done) == 11 and q.completed[WRITE] == 11


def test_a_submitter_blocks_while_128_requests_are_allocated(pm):
    sim = make_sim(pm)
    env = sim.env
    q, dispatched = capture_queue(sim)
    task = Task(pid=1, comm="kswapd0")
    states: list = []
    proc = env.process(submit_singles(q, task, 130, states, []))
    env.run(until=1.0)
    assert q.count == 128 and len(dispatched) == 128
    assert task.state == "blk_request_wait"
    assert len(q.request_waits[WRITE]) == 1 and not proc.triggered
    q.complete(dispatched[0])
    env.run(until=2.0)
    assert q.count == 128 and len(dispatched) == 129  # one freed, one taken
    assert not proc.triggered
    q.complete(dispatched[1])
    env.run(until=3.0)
    assert len(dispatched) == 130 and q.count == 128
    assert proc.triggered
    assert [r.slots[0] for r in dispatched] == [2 * i for i in range(130)]


def test_with_batching_the_task_that_fills_the_list_gets_a_batch_then_blocks(pm):
    """kernel.blk_batching, __get_request(): the allocation that fills the list (128)
    makes its task a batcher, which may take BLK_BATCH_REQ (32) requests in all past
    that point; then it sleeps until a free leaves the list below 128, and wakes a
    batcher."""
    sim = make_sim(pm, (), "kernel.blk_batching=true")
    env = sim.env
    q, dispatched = capture_queue(sim)
    task = Task(pid=1, comm="kswapd0")
    proc = env.process(submit_singles(q, task, 200, [], []))
    env.run(until=1.0)
    assert q.count == 128 + 31 and len(dispatched) == 159     # the 128th opened the batch
    assert task.state == "blk_request_wait" and not proc.triggered
    for r in dispatched[:31]:           # 128 allocated: still full, nobody woken
        q.complete(r)
    env.run(until=2.0)
    assert q.count == 128 and len(dispatched) == 159
    q.complete(dispatched[31])          # 127: woken, a fresh batch of 32
    env.run(until=3.0)
    assert len(dispatched) == 159 + 32 and q.count == 127 + 32
    assert not proc.triggered
    assert [r.slots[0] for r in dispatched] == [2 * i for i in range(191)]


def test_with_batching_a_batch_expires_after_20_ms_and_the_list_stops_at_three_halves(pm):
    sim = make_sim(pm, (), "kernel.blk_batching=true")
    env = sim.env
    q, dispatched = capture_queue(sim)
    task = Task(pid=1, comm="usemem-0")

    def pause_then_submit():
        yield from submit_singles(q, task, 130, [], [])
        yield env.timeout(0.03)         # past BLK_BATCH_TIME with 30 of the batch left
        yield from submit_singles(q, task, 1, [], [])
    proc = env.process(pause_then_submit())
    env.run(until=1.0)
    assert q.count == 130 and not proc.triggered and task.state == "blk_request_wait"
    # however fresh its batch, nobody allocates past 3/2 x nr_requests
    fresh = Task(pid=2, comm="usemem-1")
    q.rl[WRITE] = 190                   # as if other batchers had taken them …
    q.full[WRITE] = False               # … and a free had cleared "full": it fills it again
    env.process(submit_singles(q, fresh, 5, [], []))
    env.run(until=env.now + 1.0)
    assert q.rl[WRITE] == 192 and fresh.state == "blk_request_wait"


def test_submit_splits_into_contiguous_requests_of_at_most_max_pages(pm):
    sim = make_sim(pm)
    q, dispatched = capture_queue(sim, max_pages=128)
    slots = np.concatenate([np.arange(0, 300), np.arange(1000, 1003), [2000]]).astype(np.int32)
    pages = np.arange(len(slots), dtype=np.int32)
    sim.env.process(q.submit(None, WRITE, slots, pages, lambda r: None))
    sim.env.run()
    assert [len(r.slots) for r in dispatched] == [128, 128, 44, 3, 1]
    assert [int(r.slots[0]) for r in dispatched] == [0, 128, 256, 1000, 2000]
    assert np.array_equal(np.concatenate([r.pages for r in dispatched]), pages)
    assert [r.nbytes for r in dispatched][-2:] == [3 * 4096, 4096]


# -- (f) LRU page queues --------------------------------------------------------------------

def drain(q: PageQueue, ps: PageState) -> list[int]:
    return q.pop_live(len(q), ps.mseq)


def test_page_queue_is_fifo_head_in_tail_out():
    ps = PageState(16)
    q = PageQueue()
    q.push_pages([1, 2, 3], ps)
    q.push_pages([4, 5], ps)
    assert len(q) == 5
    assert q.pop_live(2, ps.mseq) == [1, 2]
    assert drain(q, ps) == [3, 4, 5]
    assert len(q) == 0
    assert q.pop_live(4, ps.mseq) == []


def test_push_tail_moves_pages_to_the_tail_one_by_one():
    """rotate_reclaimable_page(): list_move_tail() per page, in the order given,
    so the last page given ends nearest the tail and is reclaimed first."""
    ps = PageState(16)
    q = PageQueue()
    q.push_pages([1, 2, 3], ps)
    q.push_tail_pages([9, 8], ps)
    assert drain(q, ps) == [8, 9, 1, 2, 3]


#: a class for each flags value: 2 where the low two bits are 3, else those bits & 1
_TEST_CLS = bytes(2 if f & 3 == 3 else f & 1 for f in range(1 << 16))


def _ref_rotate(ref: list[int], cls: list[int], max_batches: int) -> tuple[int, int]:
    """What rotate_inert does, on a plain list of live pages (tail first)."""
    first = next((i for i, p in enumerate(ref) if cls[p] == 2), len(ref))
    n = min(first // 32, max_batches) * 32
    moved = ref[:n]
    del ref[:n]
    ref += moved
    return n, sum(1 for p in moved if cls[p] == 1)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["push", "push_tail", "pop", "move", "flags", "rotate"]),
                          st.integers(min_value=0, max_value=150),
                          st.integers(min_value=0, max_value=3)), max_size=60))
def test_page_queue_matches_a_list(ops):
    """Pushes at either end, pops, pages moving to the other end (their old entry
    stale), flag changes (mark()) and sweeps: the live pages, their order and
    every sweep's figures are those of a plain list, and the blocks' bookkeeping
    stays exact (check())."""
    npages = 400
    ps = PageState(npages)
    q = PageQueue()
    ref: list[int] = []      # live pages, tail first
    off: list[int] = list(range(npages))   # pages on no list
    for op, k, v in ops:
        if op in ("push", "push_tail"):
            pages = off[:k % 70]
            del off[:len(pages)]
            if op == "push":
                q.push_pages(pages, ps)
                ref += pages
            else:
                q.push_tail_pages(pages, ps)
                ref[:0] = pages[::-1]
        elif op == "pop":
            k = min(k, len(q))
            got = q.pop_live(k, ps.mseq)
            assert got == ref[:len(got)]
            del ref[:len(got)]
            off += got
        elif op == "move" and ref:
            p = ref.pop(k % len(ref))
            q.push_pages([p], ps)       # moved to the head: its old entry is stale
            ref.append(p)
        elif op == "flags" and ref:
            p = ref[k % len(ref)]
            ps.mflags[p] = v
            ps.mark(p)
        elif op == "rotate":
            cls = [_TEST_CLS[ps.mflags[p]] for p in range(npages)]
            want = _ref_rotate(ref, cls, 1 + k % 8)
            assert q.rotate_inert(ps, _TEST_CLS, 1 + k % 8) == want
        q.check(ps, _TEST_CLS)
    assert drain(q, ps) == ref


def test_a_flag_change_without_mark_is_caught_by_check():
    ps = PageState(100)
    q = PageQueue()
    q.push_pages(list(range(100)), ps)
    assert q.rotate_inert(ps, _TEST_CLS, 1) == (32, 0)   # every block looked at, valid
    q.check(ps, _TEST_CLS)
    ps.mflags[50] = 1                   # class 1 now, and nobody told the queue
    with pytest.raises(AssertionError, match="without mark"):
        q.check(ps, _TEST_CLS)
    ps.mark(50)
    q.check(ps, _TEST_CLS)


def test_stale_entries_are_told_apart_by_lru_seq():
    ps = PageState(8)
    q = PageQueue()
    q.push_pages([0, 1, 2, 3, 4], ps)
    q.push_pages([2], ps)              # page 2 moved to the head: its old entry is stale
    ps.mark(3)
    ps.lru_seq[3] = -1                 # page 3 left the list
    pages, seqs = q.entries()
    assert pages == [0, 1, 2, 3, 4, 2]  # the queue itself keeps stale entries
    assert q.pop_live(len(q), ps.mseq) == [0, 1, 4, 2]


def test_reclaim_isolates_live_pages_only(pm):
    """lru_add / _lru_del on a real zone, then reclaim's isolation from the tail."""
    sim = make_sim(pm)
    mm = sim.mm
    zone = zones_by_name(sim)["DMA32"]
    ps = mm.pages
    pages = np.arange(10, dtype=np.int32)
    ps.zone[pages] = zone.gid
    mm.lru_add(pages, active=False)
    assert (zone.nr_inactive, len(zone.inactive)) == (10, 10)
    mm._lru_del(np.array([1, 3, 5], dtype=np.int32))
    mm.lru_add(np.array([3], dtype=np.int32), active=False)  # back, at the head
    assert zone.nr_inactive == 8 and len(zone.inactive) == 11
    assert mm.reclaim._isolate_list(zone.inactive, 4) == [0, 2, 4, 6]
    assert mm.reclaim._isolate_list(zone.inactive, 32) == [7, 8, 9, 3]
    assert len(zone.inactive) == 0


# -- reclaim without __GFP_IO, ZONE_CONGESTED, futile reclaim replay ------------------------

def _dirty_inactive(sim, n=64):
    """``n`` mapped, dirty anon pages outside the swap cache on DMA32's inactive list."""
    from swapsim.mm.pages import PG_DIRTY, PG_PRESENT, PG_RESIDENT, PG_TOUCHED
    mm = sim.mm
    zone = zones_by_name(sim)["DMA32"]
    pages = np.arange(n, dtype=np.int32)
    mm.pages.zone[pages] = zone.gid
    mm.pages.flags[pages] |= PG_RESIDENT | PG_PRESENT | PG_DIRTY | PG_TOUCHED
    mm.lru_add(pages, active=False)
    return zone, pages


@pytest.mark.parametrize("state,gfp,expected", [
    # under writeback: isolated and put back, nothing else
    ("writeback", G.GFP_NOIO, "scan"),
    # mapped, outside the swap cache, no __GFP_IO: the rmap walk, then kept
    ("mapped", G.GFP_NOIO, "scan+referenced"),
    # the same page with __GFP_IO: walked, added to swap, unmapped, written
    ("mapped", G.GFP_HIGHUSER_MOVABLE, "scan+referenced+unmap+pageout"),
    # unmapped clean swap cache: no walk, no unmap, freed
    ("clean", G.GFP_NOIO, "scan+free"),
])
def test_a_batch_costs_what_shrink_page_list_does_to_each_page(pm, state, gfp, expected):
    from swapsim.mm.pages import PG_SWAPCACHE, PG_WRITEBACK, PG_PRESENT, PG_DIRTY
    from swapsim.mm.vmscan import ScanControl
    # powers of ten: the sum tells which steps each page went through
    sim = make_sim(pm, (), "cost.scan_page='1us'", "cost.page_referenced='10us'",
                   "cost.unmap_page='100us'", "cost.pageout='1ms'", "cost.free_page='10ms'")
    zone, pages = _dirty_inactive(sim, 32)
    flags = sim.mm.pages.flags
    if state == "writeback":
        flags[pages] |= PG_WRITEBACK | PG_SWAPCACHE
        flags[pages] &= ~PG_PRESENT
    elif state == "clean":
        _into_swap_cache(sim, pages)
        flags[pages] &= ~(PG_PRESENT | PG_DIRTY)
    sc = ScanControl(nr_to_reclaim=32, gfp=gfp, kswapd=False)
    scanned, *_, seconds = sim.mm.reclaim.shrink_inactive(zone, 32, sc)
    unit = {"scan": 1e-6, "referenced": 10e-6, "unmap": 100e-6, "pageout": 1e-3, "free": 10e-3}
    assert scanned == 32
    assert seconds == pytest.approx(32 * sum(unit[k] for k in expected.split("+")))


def _into_swap_cache(sim, pages):
    """Give ``pages`` swap slots and put them in the swap cache, radix tree included."""
    from swapsim.mm.pages import PG_SWAPCACHE
    slots = sim.mm.swap.alloc(pages)
    sim.mm.pages.slot[pages] = slots
    assert all(sim.mm.swap_cache.add_to_swap(slots.tolist(), AllocContext()))
    sim.mm.pages.flags[pages] |= PG_SWAPCACHE


def _reclaim_once(sim, task, gfp):
    sim.env.process(reclaimer(sim, task, gfp, []))
    sim.env.run(until=sim.env.now + 1.0)


def test_noio_reclaim_adds_nothing_to_swap_and_a_futile_one_is_replayed(pm):
    from swapsim.mm.pages import PG_PRESENT, PG_SWAPCACHE
    sim = make_sim(pm)
    mm, ev = sim.mm, sim.vmstat.ev
    zone, pages = _dirty_inactive(sim)
    task = Task(pid=7, comm="noio-reclaimer")
    scans = []

    class CountingReclaim(Reclaim):
        def shrink_zone(self, *a):
            scans.append(1)
            return super().shrink_zone(*a)
    mm.reclaim = CountingReclaim(mm, sim.throttle)
    _reclaim_once(sim, task, G.GFP_NOIO)
    # shrink_page_list(): an anon page needs __GFP_IO to enter the swap cache
    assert (mm.pages.slot[pages] == -1).all()
    assert not (mm.pages.flags[pages] & PG_SWAPCACHE).any()
    assert (mm.pages.flags[pages] & PG_PRESENT).all()      # kept mapped
    scanned1, sys1, walks1 = ev["pgscan_direct_dma32"], task.sys_time, len(scans)
    assert scanned1 > 0 and walks1 > 0 and task.sys_time > 0
    # nothing changed: the second call is a replay, same counters and CPU, no walk
    _reclaim_once(sim, task, G.GFP_NOIO)
    assert len(scans) == walks1
    assert ev["pgscan_direct_dma32"] == 2 * scanned1
    assert task.sys_time == pytest.approx(2 * sys1)
    assert ev["allocstall"] == 2
    # a page changed (a write fault): the next call scans for real
    mm._map_write_run(int(pages[0]), int(pages[0]) + 1, 0)
    _reclaim_once(sim, task, G.GFP_NOIO)
    assert len(scans) > walks1


def test_anon_reclaim_never_flags_a_zone_congested(pm):
    sim = make_sim(pm)
    mm = sim.mm
    zone, pages = _dirty_inactive(sim)
    q = mm.transport.queue
    q.congested = True                  # the swap device is congested …
    task = Task(pid=3, comm="usemem-0")
    _reclaim_once(sim, task, G.GFP_HIGHUSER_MOVABLE)
    assert sim.vmstat.ev["pswpout"] > 0  # … reclaim wrote pages to it …
    assert not zone.congested            # … but the swap bdi is never congested


# -- GFP_NOIO scans in runs of batches: the same end state as batch by batch ---------------

def _noio_scan(pm, kinds, stale, prio, sweep):
    """``sweep``: False for batch by batch (shrink_inactive), True for
    rotate_inert's runs of batches (with the blocks checked before each)."""
    from swapsim.mm.pages import (PG_DIRTY, PG_LOCKED, PG_PRESENT, PG_REFERENCED,
                                  PG_RESIDENT, PG_SWAPCACHE, PG_TOUCHED, PG_WRITEBACK)
    from swapsim.mm.vmscan import ScanControl
    sim = make_sim(pm)
    mm = sim.mm
    mm.reclaim.batch_inert = sweep
    mm.reclaim.check_lru = sweep
    zone = zones_by_name(sim)["DMA32"]
    ps = mm.pages
    n = len(kinds)
    pages = np.arange(n, dtype=np.int32)
    ps.zone[pages] = zone.gid
    bits = [0, PG_WRITEBACK, PG_LOCKED, PG_REFERENCED, PG_SWAPCACHE | PG_DIRTY,
            PG_SWAPCACHE | PG_DIRTY | PG_PRESENT, PG_SWAPCACHE, PG_PRESENT | PG_DIRTY]
    for p, k in enumerate(kinds):
        ps.flags[p] |= PG_RESIDENT | PG_TOUCHED | bits[k]
    _into_swap_cache(sim, pages[(ps.flags[:n] & PG_SWAPCACHE) != 0])
    mm.lru_add(pages, active=False)
    for p in stale:                      # moved away and back: a stale entry behind
        if p < n:
            mm._lru_del(np.array([p], dtype=np.int32))
            mm.lru_add(np.array([p], dtype=np.int32), active=False)
    set_free(zone, zone.high - zone.nr_file)       # below HIGH: anon lists only, all of them
    sc = ScanControl(nr_to_reclaim=32, gfp=G.GFP_NOIO, kswapd=False, priority=prio)
    task = Task(pid=9, comm="nbd0", kthread=True)
    sim.env.process(mm.reclaim.shrink_zone(task, zone, sc))
    sim.env.run(until=sim.env.now + 10.0)

    def order(q):
        pg, sq = q.entries()
        return [p for p, s in zip(pg, sq) if ps.mseq[p] == s]
    ev = {k: v for k, v in sim.vmstat.ev.items() if v}
    return (order(zone.inactive), order(zone.active), ps.flags[:n].tolist(),
            zone.nr_inactive, zone.nr_active, zone.nr_free, zone.pages_scanned, ev,
            sc.nr_scanned, sc.nr_reclaimed, round(sc.cpu, 12), round(sim.cpus.kthread_time, 12))


#: runs of pages a GFP_NOIO scan can only put back (kinds 0, 1, 2, 4), broken by
#: single pages it changes (activated, unmapped or freed: kinds 3, 5, 6, 7)
_NOIO_PAGES = st.lists(st.one_of(st.lists(st.sampled_from([0, 0, 1, 2, 4]), min_size=32,
                                          max_size=400),
                                 st.sampled_from([3, 5, 6, 7]).map(lambda k: [k])),
                       min_size=2, max_size=10).map(lambda runs: sum(runs, []))


@settings(max_examples=60, deadline=None)
@given(kinds=_NOIO_PAGES, stale=st.lists(st.integers(0, 999), max_size=40),
       prio=st.integers(0, 2))
def test_noio_runs_of_batches_end_where_batch_by_batch_does(pm, kinds, stale, prio):
    batch_by_batch = _noio_scan(pm, kinds, stale, prio, False)
    assert _noio_scan(pm, kinds, stale, prio, True) == batch_by_batch
    note(f"scanned {batch_by_batch[8]}")


@pytest.mark.parametrize("sweep", [False, True])
def test_noio_scan_puts_kept_pages_back_in_the_order_isolated(pm, sweep):
    # putback_inactive_pages() returns each page to the head in the order
    # isolate_lru_pages() took it: a GFP_NOIO pass over a list it cannot
    # change (under writeback, under read, mapped outside the swap cache,
    # dirty in the swap cache) leaves the list as it found it
    kinds = [0, 1, 0, 4, 2, 0, 1, 4] * 16
    inactive = _noio_scan(pm, kinds, [], 0, sweep)[0]
    assert inactive == list(range(len(kinds)))


@pytest.mark.parametrize("run", [8, 300])
def test_touching_mapped_pages_tells_the_lru_blocks(pm, run):
    """usemem's writes reference mapped pages (class 1 → 2 for a GFP_NOIO sweep):
    a short run page by page, a long one through numpy; both must mark()."""
    from swapsim.mm.pages import PG_PRESENT
    sim = make_sim(pm)
    mm = sim.mm
    ps = mm.pages
    zone = zones_by_name(sim)["DMA32"]
    _inactive_pages(sim, zone, 0, 400, PG_PRESENT)
    q = zone.inactive
    assert q.rotate_inert(ps, vmscan._NOIO_CLASS_B, 12) == (384, 384)   # every block valid
    q.check(ps, vmscan._NOIO_CLASS_B)
    task = Task(pid=1, comm="usemem-0")
    sim.env.process(mm.touch(task, 100, 100 + run))
    sim.env.run(until=sim.env.now + 1.0)
    assert mm.pages_touched == run
    q.check(ps, vmscan._NOIO_CLASS_B)
    # the list is now 384..399, 0..383: the sweep stops at the first page touched
    # (16 + 100 pages in for the short run: 3 whole batches; at once for the long one)
    assert q.rotate_inert(ps, vmscan._NOIO_CLASS_B, 12) == ((96, 96) if run == 8 else (0, 0))


@pytest.mark.parametrize("arm", ["vanilla-slab", "vanilla-slub"])
def test_every_page_state_write_tells_the_lru_blocks(pm, arm):
    """A whole arm with the inactive lists checked before every GFP_NOIO sweep:
    a write of a page's flags or sequence number anywhere in the model that
    forgets PageState.mark() leaves a block summary that check() rejects."""
    raw = pm.lookup("scenarios", "seed").factory()
    scen = build_scenario(raw, "seed", ["machine.memory=32MiB", "workload.passes=2"], seed=1,
                          arms=[arm])
    sim = Simulation(scen.arms[0].config, pm, arm)
    sim.mm.reclaim.check_lru = True
    result = sim.run()
    assert result.outcome == ("completed" if arm == "vanilla-slab" else "lockup")
    assert sim.mm.reclaim.lru_checks > 50       # the checks ran, before that many sweeps


# -- when reclaimed pages reach the free lists; kswapd and the DMA zone's lowmem_reserve ---

def _inactive_pages(sim, zone, first, n, flags, slots=False):
    from swapsim.mm.pages import PG_RESIDENT, PG_TOUCHED
    ps = sim.mm.pages
    pages = np.arange(first, first + n, dtype=np.int32)
    ps.zone[pages] = zone.gid
    ps.flags[pages] |= PG_RESIDENT | PG_TOUCHED | flags
    if slots:
        _into_swap_cache(sim, pages)
    sim.mm.lru_add(pages, active=False)
    return pages


def test_a_reclaimer_asleep_on_a_full_request_list_holds_the_pages_it_freed(pm):
    """shrink_page_list() frees its batch's pages at the end (free_hot_cold_page_list),
    after the pageout()s: while get_request_wait() sleeps, they are nobody's."""
    from swapsim.mm.pages import PG_DIRTY, PG_PRESENT, PG_SWAPCACHE
    from swapsim.mm.vmscan import ScanControl
    sim = make_sim(pm)
    env = sim.env
    zone = zones_by_name(sim)["DMA32"]
    q = sim.mm.transport.queue
    dispatched: list = []
    q.dispatch = dispatched.append       # requests stay allocated until completed here
    env.process(submit_singles(q, Task(pid=1, comm="kswapd0"), 128, [], []))
    env.run(until=env.now + 0.1)
    assert q.rl[WRITE] == 128
    # the tail: 16 clean unmapped swap cache pages (freed), then 16 mapped dirty ones (written)
    _inactive_pages(sim, zone, 0, 16, PG_SWAPCACHE, slots=True)
    _inactive_pages(sim, zone, 16, 16, PG_PRESENT | PG_DIRTY)
    set_free(zone, zone.high - zone.nr_file)
    free0 = zone.nr_free
    slab0 = sum(sim.slab.nr_slab_pages())
    task = Task(pid=5, comm="usemem-0")
    sc = ScanControl(nr_to_reclaim=32, gfp=G.GFP_HIGHUSER_MOVABLE, kswapd=False, priority=0)
    proc = env.process(sim.mm.reclaim.shrink_zone(task, zone, sc))
    env.run(until=env.now + 1.0)
    assert sc.nr_reclaimed == 16 and task.state == "blk_request_wait" and not proc.triggered
    # the write's 16 bios were allocated before get_request(): a slab page for them
    grown = sum(sim.slab.nr_slab_pages()) - slab0
    assert grown == 1
    assert zone.nr_free == free0 - grown  # the 16 pages freed, but held by the sleeping reclaimer
    q.complete(dispatched[0])             # a request frees up: the write goes out …
    env.run(until=env.now + 1.0)
    assert proc.triggered and len(dispatched) == 129
    assert zone.nr_free == free0 - grown + 16     # … and only then the pages are freed


def test_kswapd_reclaims_a_dma_zone_drained_to_min_plus_lowmem_reserve(pm):
    """balance_pgdat() judges the zones below end_zone as an allocation for end_zone sees
    them: DMA at MIN + lowmem_reserve[DMA32] is above its HIGH alone, yet kswapd
    reclaims it while DMA32 is below HIGH."""
    from swapsim.mm.pages import PG_SWAPCACHE, PG_WRITEBACK
    sim = make_sim(pm)
    env = sim.env
    z = zones_by_name(sim)
    dma, dma32 = z["DMA"], z["DMA32"]
    reserve = dma.lowmem_reserve[dma32.idx]
    assert reserve == DMA32_PRESENT // 256
    # DMA: clean swap cache, free to take; DMA32: under writeback, it stays below HIGH
    _inactive_pages(sim, dma, 0, 2048, PG_SWAPCACHE, slots=True)
    _inactive_pages(sim, dma32, 2048, 2048, PG_SWAPCACHE | PG_WRITEBACK, slots=True)
    dma.nr_file = dma32.nr_file = 0
    set_free(dma, DMA_WMARKS[0] + reserve)
    set_free(dma32, DMA32_WMARKS[2] - 1)
    assert sim.mm.reclaim.zone_balanced(dma) and not sim.mm.reclaim.zone_balanced(dma32)
    node = sim.mm.nodes[0]
    env.process(sim.mm.reclaim.balance_pgdat(node, Task(pid=2, comm="kswapd0", kthread=True)))
    env.run(until=env.now + 5.0)
    ev = sim.vmstat.ev
    assert ev["pgscan_kswapd_dma32"] > 0 and not ev["pgsteal_kswapd_dma32"]
    assert ev["pgsteal_kswapd_dma"] > 0
    # up to HIGH + reserve: balanced as an allocation for DMA32 sees it
    assert dma.watermark_ok(0, DMA_WMARKS[2], dma32.idx, 0)


def _fragment(sim, free: int) -> None:
    """Every zone holds exactly ``free`` pages, in blocks of order 0 and 1 only."""
    for z in sim.mm.zones:
        z.take_pages(z.nr_free)
        z.give_pages(free)
        assert not any(z.free_area[3:])


@pytest.mark.parametrize("slab, pf_memalloc, reclaims", [
    ("slub", 0, True),                  # the order-3 attempt keeps __GFP_WAIT
    ("slub", G.PF_MEMALLOC, False),     # no reclaim recursion: straight to the fallback
    ("slab", 0, False),                 # SLAB's kmalloc-2048 slab is one page
])
def test_slubs_speculative_high_order_slab_reclaims_before_it_falls_back(
        pm, slab, pf_memalloc, reclaims):
    """allocate_slab() tries s->oo with __GFP_NORETRY but keeps __GFP_WAIT: without a
    free order-3 block, a GFP_NOIO caller direct-reclaims once at order 3 (compaction
    needs __GFP_IO) before it takes the order-0 fallback, even with order-0 pages
    above every watermark."""
    sim = make_sim(pm, (), f"kernel.slab='{slab}'")
    env = sim.env
    cid = sim.slab.create_cache("kmalloc-2048", 2048)
    _fragment(sim, 2000)
    begins: list[int] = []
    sim.trace = lambda name, **kw: begins.append(kw["order"]) \
        if name == "mm_vmscan_direct_reclaim_begin" else None
    task = Task(pid=7, comm="nbd0")
    task.flags |= pf_memalloc
    proc = env.process(sim.mm.kmem_cache_alloc_bulk(task, cid, G.GFP_NOIO, 3))
    env.run(until=env.now + 1.0)
    assert proc.triggered and len(proc.value) == 3
    # three objects take two order-0 slabs of two: each new slab tries order 3 first
    assert begins == ([3, 3] if reclaims else [])
    assert sim.vmstat.ev["allocstall"] == len(begins)
    if slab == "slub":
        assert sim.slab.cache(cid).order_fallbacks == 2


def test_after_its_order_3_reclaim_slub_falls_back_and_reclaims_at_order_0(pm):
    """allocate_slab(): once the __GFP_NORETRY order-3 attempt has reclaimed and
    failed, the min-order allocation loops in its own slow path, reclaiming at
    order 0 (with its congestion waits), not at order 3 again."""
    sim = make_sim(pm, (), "kernel.slab='slub'")
    env = sim.env
    cid = sim.slab.create_cache("kmalloc-2048", 2048)
    for z in sim.mm.zones:               # at MIN, nothing of order ≥ 3, nothing to reclaim
        z.take_pages(z.nr_free)
        z.give_pages(z.min)
    begins: list[int] = []
    sim.trace = lambda name, **kw: begins.append(kw["order"]) \
        if name == "mm_vmscan_direct_reclaim_begin" else None
    proc = env.process(sim.mm.kmem_cache_alloc_bulk(Task(pid=7, comm="nbd0"), cid, G.GFP_NOIO, 1))
    env.run(until=env.now + 0.5)
    assert not proc.triggered
    assert begins[0] == 3 and len(begins) > 3 and set(begins[1:]) == {0}


def test_tasks_allocate_from_the_per_cpu_caches_of_their_own_cpu(pm):
    """A task keeps a home CPU (spawn: pid % NUM_CPU, kswapd, nbd0 and
    nbd-client on different ones) and its slab allocations go through that
    CPU's array cache; before, every task used CPU 0's, so per-CPU caches
    were one shared cache and objects never had to travel between CPUs."""
    sim = make_sim(pm, (), "kernel.slab='slab'", "machine.cpus=4")
    env = sim.env
    def idle(task):
        yield env.timeout(1.0)
    homes = [sim.spawn(f"t{i}", idle).cpu for i in range(4)]
    assert sorted(homes) == [0, 1, 2, 3]
    cid = sim.slab.create_cache("kmalloc-2048", 2048)
    arrays = sim.slab.cache(cid).arrays
    task = Task(pid=6, comm="nbd0", cpu=2)
    proc = env.process(sim.mm.kmem_cache_alloc_bulk(task, cid, G.GFP_NOIO, 3))
    env.run(until=env.now + 0.01)
    assert proc.triggered and len(proc.value) == 3
    assert arrays[2].entry and arrays[2].touched       # refilled by a batch, 3 taken
    assert not any(arrays[c].entry for c in (0, 1, 3))


# -- swap-in readahead: swap_ra and swap_ra_hit (4.14's counters) ---------------------

def test_swap_readahead_counts_pages_read_ahead_and_the_faults_that_find_them(pm):
    from swapsim.mm.pages import PG_READAHEAD, PG_TOUCHED
    sim = make_sim(pm)
    mm, ev = sim.mm, sim.vmstat.ev
    ps = mm.pages
    # sixteen pages of one process, swapped out in order: slots 1..16, so
    # the aligned 8-slot blocks are 0-7 (slot 0 is the header) and 8-15
    pages = np.arange(0, 16, dtype=np.int32)
    ps.slot[pages] = mm.swap.alloc(pages)
    assert ps.slot[pages].tolist() == list(range(1, 17))
    ps.flags[pages] = PG_TOUCHED
    task = Task(pid=5, comm="usemem-0")

    def toucher(first, last):
        yield from mm.touch(task, first, last)
    sim.env.process(toucher(0, 1))
    sim.env.run(until=sim.env.now + 1.0)
    # the fault on page 0 (slot 1) read its block: slots 1-7, pages 0-6
    assert ev["pgmajfault"] == 1 and ev["pswpin"] == 7
    assert ev["swap_ra"] == 6 and ev["swap_ra_hit"] == 0
    assert (ps.flags[1:7] & PG_READAHEAD).all() and not ps.flags[0] & PG_READAHEAD
    sim.env.process(toucher(1, 4))
    sim.env.run(until=sim.env.now + 1.0)
    assert ev["swap_ra_hit"] == 3 and ev["pgmajfault"] == 1
    assert not (ps.flags[1:4] & PG_READAHEAD).any() and (ps.flags[4:7] & PG_READAHEAD).all()
    # page 7 (slot 8) is in the next block: a new fault, seven more read ahead
    sim.env.process(toucher(4, 9))
    sim.env.run(until=sim.env.now + 1.0)
    assert ev["pgmajfault"] == 2 and ev["swap_ra"] == 6 + 7
    assert ev["swap_ra_hit"] == 3 + 3 + 1    # pages 4-6, then page 8


# -- (f) bios and requests: slab objects from mempools ---------------------------------------

def _full_at_min(sim):
    """DMA32 free exactly at MIN and DMA empty: an allocation at MIN fails."""
    zs = zones_by_name(sim)
    set_free(zs["DMA"], 0)
    set_free(zs["DMA32"], zs["DMA32"].min)
    return zs["DMA32"]


def _pool_of_pages(sim, min_nr=2):
    """A mempool over a cache of page-sized objects: every slab allocation needs a new page."""
    cache = sim.kmem_cache("mempool-test", 4096)
    return Mempool(sim.env, sim.slab, cache, min_nr, "test"), cache


def test_a_mempool_takes_its_reserve_then_sleeps_never_the_emergency_reserve(pm):
    """mempool_alloc(): the slab first, without __GFP_WAIT or the reserves
    (__GFP_NOMEMALLOC, even for a PF_MEMALLOC reclaimer), then the elements set
    aside, then sleep until mempool_free() gives one back."""
    sim = make_sim(pm)
    env = sim.env
    pool, cache = _pool_of_pages(sim)
    spare = sim.slab.alloc(cache, G.GFP_KERNEL, AllocContext())
    assert spare >= 0 and len(pool.reserve) == 2
    dma32 = _full_at_min(sim)
    task = Task(pid=1, comm="kswapd0")
    task.flags |= G.PF_MEMALLOC
    got: list = []
    when: list = []

    def user():
        ctx = AllocContext(task=task)
        got.extend(pool.take(G.GFP_NOIO, 3, ctx))
        got.extend((yield from pool.wait_for(task, G.GFP_NOIO, 3 - len(got), ctx)))
        when.append(env.now)
    proc = env.process(user())
    env.run(until=1.0)
    assert not proc.triggered and task.state == "mempool_wait"
    assert len(got) == 2 and pool.reserve == [] and pool.waits == 1
    assert dma32.nr_free == dma32.min          # no page below MIN was taken
    pool.free([spare], AllocContext())         # back into the pool, which wakes the sleeper
    env.run(until=2.0)
    assert proc.triggered and len(got) == 3 and spare in got
    assert when == [1.0] and pool.waits == 1


def test_a_mempool_sleeper_tries_the_slab_again_after_five_seconds(pm):
    sim = make_sim(pm)
    env = sim.env
    pool, _ = _pool_of_pages(sim, min_nr=0)
    dma32 = _full_at_min(sim)
    task = Task(pid=1, comm="usemem-0")
    done: list = []

    def user():
        ctx = AllocContext(task=task)
        assert pool.take(G.GFP_KERNEL, 1, ctx) == []
        assert len((yield from pool.wait_for(task, G.GFP_KERNEL, 1, ctx))) == 1
        done.append(env.now)
    env.process(user())
    env.run(until=1.0)
    assert task.state == "mempool_wait" and not done
    set_free(dma32, dma32.min + 50)            # pages come free; nobody tells the pool
    env.run(until=4.9)
    assert not done
    env.run(until=6.0)
    assert done == [5.0] and pool.waits == 1


def test_each_mempool_sleeper_times_out_five_seconds_after_it_fell_asleep(pm):
    """One timer serves all of a pool's sleepers: it re-arms for the oldest still asleep."""
    sim = make_sim(pm)
    env = sim.env
    pool, _ = _pool_of_pages(sim, min_nr=0)
    _full_at_min(sim)
    woke: list = []

    def sleeper(name, start):
        yield env.timeout(start)
        task = Task(pid=start + 1, comm=name)
        gen = pool.wait_for(task, G.GFP_KERNEL, 1, AllocContext(task=task))
        ev = next(gen)              # the first sleep
        woke.append((name, (yield ev), env.now))
    env.process(sleeper("a", 0))
    env.process(sleeper("b", 2))
    env.process(sleeper("c", 3))
    env.run(until=4.0)
    pool.wait.wake_up_all()         # c's and the others' sleeps end early …
    env.run(until=20.0)
    assert woke == [("a", True, 4.0), ("b", True, 4.0), ("c", True, 4.0)]
    assert not pool.deadlines and not pool.timer_armed   # … and the timer found nothing to do
    env.process(sleeper("d", 0))
    env.process(sleeper("e", 1))
    env.run(until=40.0)
    assert woke[3:] == [("d", False, 25.0), ("e", False, 26.0)]


def test_without_gfp_wait_a_mempool_fails_instead_of_sleeping(pm):
    sim = make_sim(pm)
    pool, _ = _pool_of_pages(sim, min_nr=1)
    _full_at_min(sim)
    ctx = AllocContext(softirq=True)
    got = pool.take(0, 2, ctx)                   # GFP_NOWAIT
    assert len(got) == 1                         # the element set aside, then failure
    gen = pool.wait_for(None, 0, 1, ctx)
    with pytest.raises(StopIteration) as stop:   # returns at once, empty
        next(gen)
    assert stop.value.value == [] and pool.waits == 0


def test_each_page_of_a_request_holds_a_bio_and_the_request_a_struct_request(pm):
    sim = make_sim(pm)
    env = sim.env
    q, dispatched = capture_queue(sim)
    assert (len(q.bio_pool.reserve), len(q.rq_pool.reserve)) == (2, 4)   # BIO_POOL_SIZE, BLKDEV_MIN_RQ
    task = Task(pid=1, comm="kswapd0")
    assert task.cpu == 0 and q.irq_ctx.cpu == 0
    # slots 10-12 are one request, slot 20 another
    env.process(q.submit(task, WRITE, np.array([10, 11, 12, 20], dtype=np.int32),
                         np.array([0, 1, 2, 3], dtype=np.int32), lambda r: None))
    env.run()
    assert [len(r.bios) for r in dispatched] == [3, 1]
    bios = {b for r in dispatched for b in r.bios}
    rqs = {r.rq_obj for r in dispatched}
    assert len(bios) == 4 and len(rqs) == 2 and min(rqs) >= 0
    slab, ctx = sim.slab, AllocContext(cpu=0)
    bio_cache, rq_cache = q.bio_pool.cache, q.rq_pool.cache
    for r in dispatched:
        q.complete(r)
    # freed on CPU 0: its per-CPU arrays (LIFO) hand exactly those objects out next
    assert set(slab.alloc_bulk(bio_cache, G.GFP_KERNEL, ctx, 4)) == bios
    assert set(slab.alloc_bulk(rq_cache, G.GFP_KERNEL, ctx, 2)) == rqs


# -- (g) the swap cache's radix tree: radix_tree_node slab objects ------------------------------

def _radix_active(sim) -> int:
    """radix_tree_node objects handed out by the slab allocator (in the tree or preloaded)."""
    return sim.slab.diagnose()["caches"]["radix_tree_node"]["in_use"]


def _assert_tree_holds(sim, slots, where=""):
    """The tree has exactly ``slots`` (the cached swap slots): at each level the
    used-slot counts of the nodes below, a node for each non-zero count and no
    other, and every node the slab handed out in the tree or a preload array."""
    tree = sim.mm.swap_cache
    per = np.asarray(slots, dtype=np.int64)
    assert (per >= 0).all()
    nodes = 0
    for lvl in range(tree.height):
        per = per >> 6
        want = np.bincount(per, minlength=len(tree.count[lvl]))
        assert want.tolist() == tree.count[lvl], f"level {lvl} counts {where}"
        per = np.flatnonzero(want)          # the nodes of this level: the parent's used slots
        assert [i for i, n in enumerate(tree.node[lvl]) if n >= 0] == per.tolist(), f"level {lvl} nodes {where}"
        nodes += len(per)
    assert tree.nr_nodes == nodes and tree.nr_pages == len(slots)
    assert all(len(p) <= 21 for p in tree.preloads)
    assert _radix_active(sim) == nodes + sum(len(p) for p in tree.preloads)


def test_swap_cache_slots_need_radix_tree_nodes_which_go_back_when_emptied(pm):
    """A leaf node per 64 slots and the path above it; radix_tree_preload() fills
    the CPU's array to 21 before each add; radix_tree_delete() frees emptied
    nodes into the deleting CPU's cache."""
    sim = make_sim(pm)
    tree = sim.mm.swap_cache
    assert tree.height == 3                    # 65536 slots: 64**2 < 65536 <= 64**3
    ctx = AllocContext(cpu=0)
    assert tree.add_to_swap([1], ctx) == [True]
    # the leaf of slots 0-63, its parent, the root: three of the 21 preloaded
    assert (tree.nr_nodes, len(tree.preloads[0]), _radix_active(sim)) == (3, 18, 21)
    assert all(tree.add_to_swap(list(range(2, 65)), ctx))
    # the first refilled the array; slot 64 opened a second leaf
    assert (tree.nr_nodes, len(tree.preloads[0]), _radix_active(sim)) == (4, 20, 24)
    nodes = {tree.node[0][0], tree.node[0][1], tree.node[1][0], tree.node[2][0]}
    assert -1 not in nodes and len(nodes) == 4
    tree.delete(list(range(1, 64)), 1)
    assert (tree.nr_nodes, tree.nr_pages) == (3, 1)
    tree.delete([64], 1)
    assert (tree.nr_nodes, tree.nr_pages, _radix_active(sim)) == (0, 0, 20)
    # freed on CPU 1: its per-CPU array (LIFO) hands exactly those nodes out next
    assert set(sim.slab.alloc_bulk(tree.cache, G.GFP_KERNEL, AllocContext(cpu=1), 4)) == nodes


@settings(max_examples=40, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.integers(1, 65535), st.integers(0, 1)), max_size=300))
def test_the_radix_tree_has_a_node_for_each_prefix_of_a_cached_slot(pm, ops):
    """Any run of adds and deletes on two CPUs: a node exists for each distinct
    prefix (slot >> 6, >> 12, >> 18) of the slots in the cache, and every node
    the slab handed out is in the tree or in a CPU's preload array."""
    sim = make_sim(pm)
    tree = sim.mm.swap_cache
    cached: set[int] = set()
    for add, slot, cpu in ops:
        if add and slot not in cached:
            assert tree.add_to_swap([slot], AllocContext(cpu=cpu)) == [True]
            cached.add(slot)
        elif not add and slot in cached:
            tree.delete([slot], cpu)
            cached.discard(slot)
    _assert_tree_holds(sim, sorted(cached))


@pytest.mark.parametrize("free,added", [(193 // 2 + 1, False), (193, True)])
def test_add_to_swap_gets_no_reserve_for_radix_nodes_and_activates_the_page(pm, free, added):
    """add_to_swap() preloads with __GFP_HIGH|__GFP_NOMEMALLOC and no __GFP_WAIT:
    the floor is MIN/2 even for a PF_MEMALLOC reclaimer.  Below it, with no
    node to spare, the page is activated, not written, and its slot freed."""
    from swapsim.mm.pages import PG_ACTIVE, PG_SWAPCACHE
    from swapsim.mm.vmscan import ScanControl
    sim = make_sim(pm)
    mm, ev = sim.mm, sim.vmstat.ev
    zone, pages = _dirty_inactive(sim, 32)
    zs = zones_by_name(sim)
    set_free(zs["DMA"], 0)
    assert zs["DMA32"].min == 193
    # at MIN/2 (193 - 96 = 97) the __GFP_HIGH floor fails: free must be above it
    set_free(zone, free)
    task = Task(pid=1, comm="usemem-0")
    task.flags |= G.PF_MEMALLOC
    sc = ScanControl(nr_to_reclaim=32, gfp=G.GFP_HIGHUSER_MOVABLE, kswapd=False,
                     ctx=AllocContext(task=task))
    scanned, freed, _, writes, _ = mm.reclaim.shrink_inactive(zone, 32, sc)
    assert scanned == 32 and freed == 0
    tree = mm.swap_cache
    flags = mm.pages.flags[pages]
    if added:
        assert len(writes) == 32 and mm.swap.inuse == 32 and tree.nr_pages == 32
        assert (flags & PG_SWAPCACHE).all() and tree.add_fail == 0
    else:
        assert len(writes) == 0 and mm.swap.inuse == 0 and tree.nr_pages == 0
        assert not (flags & PG_SWAPCACHE).any() and (flags & PG_ACTIVE).all()
        assert ev["pgactivate"] == 32 and tree.add_fail == 32
        assert zone.nr_free == free                # no page below the floor was taken


@pytest.mark.parametrize("slab", ["slab", "slub"])
def test_the_radix_tree_holds_exactly_the_swap_cache_throughout_a_run(pm, slab):
    """Every path that puts a page in the swap cache or takes it out (add_to_swap,
    swap-in, __remove_mapping, reuse_swap_page, exit) keeps the tree's counts:
    checked at every progress step of a run, and empty at its end."""
    from swapsim.mm.pages import PG_SWAPCACHE
    sim = make_sim(pm, (), f"kernel.slab='{slab}'")
    tree, ps = sim.mm.swap_cache, sim.mm.pages
    checked = []

    def check(now, _progress):
        slots = ps.slot[(ps.flags & PG_SWAPCACHE) != 0]
        _assert_tree_holds(sim, slots, f"at {now:.1f} s")
        checked.append(len(slots))
    result = sim.run(progress=check)
    assert result.outcome == "completed"
    assert max(checked) > 500                   # the cache was in use
    assert tree.nr_pages == 0 and tree.nr_nodes == 0
    assert result.swap_cache == {"swapcache_pages": 0, "radix_tree_nodes": 0,
                                 "radix_tree_preloaded": sum(len(p) for p in tree.preloads),
                                 "add_to_swap_fail": tree.add_fail}


def test_mm_costs_carry_every_cost_config_figure():
    """The fault and reclaim paths read CostConfig through its native copy:
    a figure added to the config and not to Costs would fail here."""
    names = [f.name for f in attrs.fields(CostConfig)]
    cfg = CostConfig(**{n: i * 1e-7 for i, n in enumerate(names, 1)})
    costs = Costs(cfg)
    assert [getattr(costs, n) for n in names] == [getattr(cfg, n) for n in names]
