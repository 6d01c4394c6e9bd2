"""usemem: the workload of the series' test (mmtests vmscan-anon-mmap-write).

``procs_per_cpu × cpus`` processes each mmap(MAP_PRIVATE|MAP_ANONYMOUS) an
equal share of ``overcommit × RAM`` and, ``passes`` times, walk their mapping
linearly writing one word per 4 KiB page.  Every page is dirtied on every
pass, so every page reclaimed must be written to swap again.  (usemem's later
passes first check the value written before; that read touches the same page
just before the write and changes nothing the model can see.)
"""

from __future__ import annotations

from typing import Any, Generator

from swapsim.cpu import Task
from swapsim.engine import Event, repeat
from swapsim.hookspecs import hookimpl
from swapsim.mm.zone import PAGE_SHIFT
from swapsim.workload import Workload


class Usemem(Workload):
    """N processes writing their anonymous mappings linearly, in passes."""

    name = "usemem"

    def __init__(self, sim: Any, options: Any = None) -> None:
        super().__init__(sim, options)
        wc = self.config
        self.nprocs = wc.procs_per_cpu * sim.config.machine.cpus
        total = int(wc.overcommit * (sim.config.machine.memory >> PAGE_SHIFT))
        self.pages_per_proc = max(1, total // self.nprocs)
        self.passes = wc.passes
        self.finished = 0

    def nr_pages(self) -> int:
        return self.nprocs * self.pages_per_proc

    def start(self) -> None:
        for i in range(self.nprocs):
            base = i * self.pages_per_proc
            self.tasks.append(self.sim.spawn(f"usemem-{i}", lambda t, b=base: self._run(t, b)))

    def _run(self, task: Task, base: int) -> Generator[Event, Any, None]:
        """The passes, then exit; engine.repeat keeps this frame out of the
        chain resumed at every event."""
        mm = self.sim.mm
        end = base + self.pages_per_proc
        return repeat(lambda: mm.touch(task, base, end), self.passes,
                      lambda: self._exit(task, base, end))

    def _exit(self, task: Task, base: int, end: int) -> None:
        mm = self.sim.mm
        mm.exit_mmap(base, end, task.cpu)
        task.done = True
        task.set_state("exited", self.sim.env.now)
        self.finished += 1
        if self.finished == self.nprocs:
            self.sim.workload_done()

    def progress(self) -> float:
        total = self.nprocs * self.pages_per_proc * self.passes
        return min(1.0, self.sim.mm.pages_touched / total) if total else 1.0


@hookimpl
def swapsim_register_workloads(register: Any) -> None:
    register("usemem", Usemem)
