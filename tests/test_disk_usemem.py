"""The issue-2 acceptance run: disk-usemem completes with consistent counters."""

from __future__ import annotations

import numpy as np
import pytest

from swapsim import simulation as S
from swapsim.config import build_scenario
from swapsim.mm import memory as M
from swapsim.mm.pages import PG_ORPHAN, PG_PRESENT, PG_RESIDENT
from swapsim.observe import Observer
from swapsim.pluginmanager import get_plugin_manager
from swapsim.simulation import Simulation


class FreeWatcher(Observer):
    def __init__(self) -> None:
        self.min_free = None
        self.samples = 0

    def sample(self, sim, now):
        low = min(z.nr_free for z in sim.mm.zones)
        self.min_free = low if self.min_free is None else min(self.min_free, low)
        self.samples += 1


@pytest.fixture(scope="module")
def disk_run():
    pm = get_plugin_manager()
    raw = pm.lookup("scenarios", "disk-usemem").factory()
    scen = build_scenario(raw, "disk-usemem")
    majors = {"faults": 0, "not_read_back": 0}

    # A subclass, not a patched method: compiled (mypyc) code calls MM's own
    # methods directly, but an instance of a Python subclass gets its overrides.
    class CheckedMM(M.MM):
        def _fault_major(self, task, i):
            yield from super()._fault_major(task, i)
            majors["faults"] += 1
            f = int(self.pages.flags[i])
            # after the fault the page must be back: resident and mapped
            if not (f & PG_RESIDENT and f & PG_PRESENT):
                majors["not_read_back"] += 1
    real_mm = S.MM
    S.MM = CheckedMM
    try:
        sim = Simulation(scen.arms[0].config, pm)
    finally:
        S.MM = real_mm
    watcher = FreeWatcher()
    sim.observers.append(watcher)
    result = sim.run()
    return sim, result, watcher, majors


def test_completes(disk_run):
    sim, result, _, _ = disk_run
    assert result.outcome == "completed", result.message
    wl = sim.workload
    assert sim.mm.pages_touched == wl.nprocs * wl.pages_per_proc * wl.passes
    assert result.elapsed_s > 0 and result.sys_s > 0 and result.user_s > 0


def test_pswpout_covers_pages_that_had_to_leave(disk_run):
    sim, result, _, _ = disk_run
    distinct = sim.workload.nprocs * sim.workload.pages_per_proc
    ram = sum(z.present for z in sim.mm.zones)
    assert result.vmstat["pswpout"] >= distinct - ram
    # every later pass rewrites every page: at least (passes-1) x what did not fit
    assert result.vmstat["pswpout"] >= (sim.workload.passes - 1) * (distinct - ram)


def test_free_pages_never_negative(disk_run):
    sim, _, watcher, _ = disk_run
    assert watcher.samples > 100
    assert watcher.min_free >= 0
    assert all(z.nr_free >= 0 for z in sim.mm.zones)


def test_every_swapped_page_read_back_on_next_touch(disk_run):
    sim, result, _, majors = disk_run
    assert majors["faults"] == result.vmstat["pgmajfault"] or majors["faults"] >= result.vmstat["pgmajfault"]
    assert majors["faults"] > 0
    assert majors["not_read_back"] == 0
    # every page read in came from swap
    assert result.vmstat["pswpin"] >= result.vmstat["pgmajfault"]


def test_counters_consistent(disk_run):
    sim, result, _, _ = disk_run
    v = result.vmstat
    steal = sum(v[k] for k in v if k.startswith("pgsteal_"))
    scan = sum(v[k] for k in v if k.startswith("pgscan_") and not k.endswith("throttle"))
    assert 0 < steal <= scan
    # a major fault reads its page and the rest of its block ahead, and a
    # readahead page is hit at most once
    assert 0 < v["swap_ra_hit"] <= v["swap_ra"] < v["pswpin"]
    assert v["pswpin"] - v["swap_ra"] <= v["pgmajfault"]
    # after every process exited, I/O can be in flight only for orphans: pages
    # whose process exited while they were under I/O (a readahead request of
    # the last process that its fault did not wait for, say)
    inflight = list(sim.transport.queue.inflight.values())
    pages = np.concatenate([r.pages for r in inflight]) if inflight else np.empty(0, dtype=np.int32)
    assert ((sim.mm.pages.flags[pages] & PG_ORPHAN) != 0).all()
    assert sim.mm.nr_writeback + sim.mm.nr_reading == len(pages)
    assert sim.transport.queue.count == len(inflight)
    # every slot still allocated belongs to a page that is not present
    owner = sim.mm.swap.owner
    used = owner[owner >= 0]
    assert not np.any(sim.mm.pages.flags[used] & PG_PRESENT)


def test_zones_in_result(disk_run):
    _, result, _, _ = disk_run
    names = [z["zone"] for z in result.zones]
    assert names == ["DMA", "DMA32"]
    assert result.min_free_kbytes == 2048
