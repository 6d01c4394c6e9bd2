"""Direct-reclaim throttling: the strategy interface (SPEC §8).

Strategies are plugins (``swapsim_register_throttle_strategies``).  The
simulation uses the strategy named by ``kernel.throttle`` while the
``throttle`` patch switch is on, and the ``none`` strategy otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Generator

from .._mypyc import mypyc_attr
from ..engine import Event

if TYPE_CHECKING:  # pragma: no cover
    from ..cpu import Task
    from ..simulation import Simulation
    from .memory import Node


@mypyc_attr(allow_interpreted_subclasses=True)
class ThrottleStrategy:
    """Base class.  Override points:

    - :meth:`throttle_direct_reclaim` — called at the start of every direct
      reclaim; a generator that may park the task.
    - :meth:`kswapd_pass` — called by kswapd after each priority pass of
      balance_pgdat, to wake parked tasks when the condition holds.

    The base class never throttles (vanilla behaviour).
    """

    name: ClassVar[str] = "none"

    def __init__(self, sim: "Simulation", options: Any = None) -> None:
        self.sim = sim
        self.env = sim.env
        self.options = options
        self.count_stat = "throttle-stat" in sim.config.kernel.patches
        self.throttled_time = 0.0

    def throttle_direct_reclaim(self, task: "Task", gfp: int, node: "Node"
                                ) -> Generator[Event, Any, None]:
        return
        yield  # pragma: no cover - makes this a generator

    def kswapd_pass(self, node: "Node") -> None:
        """kswapd finished a priority pass over ``node``."""

    def count_throttle(self) -> None:
        """pgscan_direct_throttle, which only exists with patch 16."""
        if self.count_stat:
            self.sim.vmstat.ev["pgscan_direct_throttle"] += 1

    def diagnose(self) -> dict[str, Any]:
        return {"strategy": self.name, "throttled_time_s": round(self.throttled_time, 6)}
