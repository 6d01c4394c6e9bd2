"""The seed's outcome at 256 MiB, as far as CI can afford: vanilla + SLUB locks
up, for the reason the series gives, and the same machine with the series
(and SLUB) gets through a pass.  The full comparison (four arms, five passes,
both scales) is `swapsim run` and `benchmarks/seed_full.py`."""

from __future__ import annotations

import pytest

from swapsim.config import build_scenario
from swapsim.pluginmanager import get_plugin_manager
from swapsim.simulation import Simulation


def _run(arm, *sets):
    pm = get_plugin_manager()
    raw = pm.lookup("scenarios", "seed").factory()
    scen = build_scenario(raw, "seed", list(sets), arms=[arm])
    return Simulation(scen.arms[0].config, pm, arm).run()


@pytest.fixture(scope="module")
def vanilla_slub():
    return _run("vanilla-slub")


def test_vanilla_slub_locks_up_within_ten_minutes(vanilla_slub):
    r = vanilla_slub
    assert r.outcome == "lockup"
    assert r.elapsed_s <= 600


def test_the_lockup_is_nbd0_stuck_in_noio_reclaim_for_skbs(vanilla_slub):
    d = vanilla_slub.diagnosis
    # between GFP_NOIO reclaims that free nothing and retries of the allocation
    assert d["kernel_threads"]["nbd0"]["state"] in ("direct_reclaim", "alloc_retry")
    io = d["swap_io"]
    assert io["oldest_request_op"] == "write"
    assert io["oldest_request_waits_for"] == "skbs for the socket copy"
    assert io["socket_memalloc"] is False
    assert not io["connection_reset"]
    # the workload waits in the block layer nbd0 does not drain: for a request,
    # or for a bio (the bios of the requests in flight come back only with them)
    assert d["workload_tasks"] and set(d["workload_tasks"]) <= {"blk_request_wait", "mempool_wait"}
    # free pages sit at MIN: nbd0 (GFP_NOIO, no reserve) cannot go lower
    dma32 = next(z for z in d["free_vs_floors"] if z["zone"] == "DMA32")
    assert dma32["free"] <= dma32["min"]
    assert d["slab"]["allocator"] == "slub"


def test_with_the_series_slub_gets_through_a_pass():
    r = _run("swapnbd-slub", "workload.passes=1")
    assert r.outcome == "completed"
    assert r.vmstat["pswpout"] > 0
