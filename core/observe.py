"""Observers: how reports, monitors and traces see a run without changing it.

An observer gets ``start(sim)`` once, ``sample(sim, now)`` every
``sim.sample_interval`` simulated seconds, optionally ``trace(sim, event,
fields)`` for tracepoint events (only when it sets ``wants_trace = True``),
and ``finish(sim, result)`` once.  Observers must treat ``sim`` as read-only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .results import RunResult
    from .simulation import Simulation


class Observer:
    wants_trace = False

    def start(self, sim: "Simulation") -> None:
        pass

    def sample(self, sim: "Simulation", now: float) -> None:
        pass

    def trace(self, sim: "Simulation", event: str, fields: dict[str, Any]) -> None:
        pass

    def finish(self, sim: "Simulation", result: "RunResult") -> None:
        pass


class VmstatSampler(Observer):
    """Keeps (time, /proc/vmstat snapshot) pairs: the mmtests ``proc-vmstat`` monitor."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, dict[str, int]]] = []

    def sample(self, sim: "Simulation", now: float) -> None:
        self.samples.append((now, sim.vmstat_snapshot()))
