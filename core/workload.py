"""The workload interface (plugins: usemem, …)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .cpu import Task
    from .simulation import Simulation


class Workload:
    """Base class.  The simulation calls, in order: ``nr_pages()`` (virtual
    anonymous pages to set up), ``start()`` (spawn tasks with
    ``sim.spawn``), and reads ``done``, ``progress()`` and ``tasks``.  A
    workload reports completion with ``sim.workload_done()``.
    """

    name = "base"

    def __init__(self, sim: "Simulation", options: Any = None) -> None:
        self.sim = sim
        self.config = sim.config.workload
        self.options = options
        self.tasks: list[Task] = []

    def nr_pages(self) -> int:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def progress(self) -> float:
        """Fraction done, 0..1, for progress bars."""
        return 0.0
