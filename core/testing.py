"""swapsim's pytest plugin: fixtures and the transport conformance suite.

Installed with swapsim (entry point ``pytest11``), so a third-party plugin's
tests can write::

    from swapsim.testing import check_transport

    def test_my_transport_conforms(swapsim_pm):
        check_transport(swapsim_pm, "my-transport")

and hold their transport to the same rules the built-in ones pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from .config import build_scenario
from .mm.pages import PG_LOCKED, PG_RESIDENT, PG_WRITEBACK
from .pluginmanager import SwapsimPluginManager, get_plugin_manager
from .simulation import Simulation

#: a small, fast scenario that still swaps every page several times
CONFORMANCE_SETTINGS = (
    "machine.memory='32MiB'", "machine.cpus=2", "workload.procs_per_cpu=4",
    "workload.overcommit=3.0", "workload.passes=2", "swap.size='256MiB'",
    "sim.lockup_after='60s'",
)


@pytest.fixture
def swapsim_pm() -> SwapsimPluginManager:
    """A fresh plugin manager with every installed plugin loaded."""
    return get_plugin_manager()


def conformance_simulation(pm: SwapsimPluginManager, transport: str,
                           settings: tuple[str, ...] = (), patches: str | list[str] = "swapnbd",
                           slab: str = "slub") -> Simulation:
    raw = pm.lookup("scenarios", "disk-usemem").factory()
    patch_value = (f"'{patches}'" if isinstance(patches, str)
                   else "[" + ", ".join(f"'{p}'" for p in patches) + "]")
    sets = list(CONFORMANCE_SETTINGS) + [f"swap.transport='{transport}'",
                                         f"kernel.patches={patch_value}",
                                         f"kernel.slab='{slab}'"] + list(settings)
    scen = build_scenario(raw, "conformance", sets)
    return Simulation(scen.arms[0].config, pm)


def check_transport(pm: SwapsimPluginManager, transport: str,
                    settings: tuple[str, ...] = (), **kw: Any) -> Simulation:
    """Run a small swapping workload over ``transport`` and check the rules:

    the workload completes; every request the block layer queued was
    completed exactly once; no page is left under I/O; every swapped-out page
    that was touched again was read back (pswpin > 0 and every touch done);
    free pages never went negative.
    """
    sim = conformance_simulation(pm, transport, settings, **kw)
    result = sim.run()
    assert result.outcome == "completed", (result.outcome, result.message, result.diagnosis)
    q = sim.transport.queue
    assert q.count == 0 and not q.inflight, f"{q.count} requests never completed"
    wl = sim.workload
    assert sim.mm.pages_touched == wl.nprocs * wl.pages_per_proc * wl.passes
    v = result.vmstat
    assert v["pswpout"] > 0 and v["pswpin"] > 0
    assert sum(q.completed) > 0
    assert all(z.nr_free >= 0 for z in sim.mm.zones)
    flags = sim.mm.pages.flags
    assert not np.any(flags & (PG_LOCKED | PG_WRITEBACK)), "pages left under I/O"
    assert not np.any(flags & PG_RESIDENT), "exited processes left resident pages"
    return sim
