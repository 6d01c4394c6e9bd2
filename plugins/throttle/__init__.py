"""Direct-reclaim throttling strategies (patch 15 and variants to A/B).

- ``none``: never throttle (vanilla; also used whenever the ``throttle``
  switch is off).
- ``pfmemalloc-half``: patch 15 as merged in 3.6.  At the start of direct
  reclaim, if a node's free pages (zones up to NORMAL) are not above half of
  the sum of their MIN watermarks, the task waits on the node's
  ``pfmemalloc_wait`` queue — at most 1 s without __GFP_FS, otherwise until
  the condition holds; kernel threads are exempt; kswapd is woken, wakes the
  waiters after each priority pass once the condition holds, and does not
  sleep while anyone waits.
- ``pfmemalloc-fraction``: the same with a configurable fraction and
  timeouts (``[plugin.pfmemalloc-fraction] fraction = 0.25``).
- ``pfmemalloc-bounded``: patch 15 with every wait bounded (default 100 ms),
  so a throttled task re-enters reclaim instead of waiting indefinitely.
- ``pfmemalloc-fifo``: patch 15 with fair wake-up: kswapd wakes one waiter
  per pass, oldest first, instead of all of them.
"""

from __future__ import annotations

import math
from typing import Any, Generator

from attrs import field, frozen

from swapsim.config import FieldError, Seconds
from swapsim.engine import Event
from swapsim.hookspecs import hookimpl
from swapsim.mm import gfp as G
from swapsim.mm.throttle import ThrottleStrategy


@frozen(kw_only=True)
class FractionOptions:
    #: throttle while free ≤ fraction × Σ MIN (patch 15: 0.5)
    fraction: float = field(default=0.5)
    #: longest wait of a caller without __GFP_FS (patch 15: 1 s)
    timeout_nofs: Seconds = Seconds(1.0)
    #: longest wait of a caller with __GFP_FS; 0 = until the condition holds
    timeout_fs: Seconds = Seconds(0.0)

    @fraction.validator
    def _check(self, attribute: Any, value: float) -> None:
        if not 0.0 < value <= 1.0:
            raise FieldError(attribute.name, f"must be in (0, 1], got {value}")


@frozen(kw_only=True)
class BoundedOptions(FractionOptions):
    timeout_fs: Seconds = Seconds(0.1)


class NoThrottle(ThrottleStrategy):
    """Never throttle direct reclaimers (vanilla)."""

    name = "none"


class PfmemallocThrottle(ThrottleStrategy):
    """Patch 15: throttle direct reclaim while half the PFMEMALLOC reserve is gone."""

    name = "pfmemalloc-half"
    wake_one = False

    def __init__(self, sim: Any, options: Any = None) -> None:
        super().__init__(sim, options)
        opts = options or FractionOptions()
        self.fraction = opts.fraction
        self.timeout_nofs = opts.timeout_nofs
        self.timeout_fs = opts.timeout_fs or math.inf

    def watermark_ok(self, node: Any) -> bool:
        """pfmemalloc_watermark_ok(): also wakes kswapd when it is not ok."""
        free, reserve = node.pfmemalloc_reserve()
        ok = free > int(reserve * self.fraction)
        if not ok and node.kswapd_sleeping and node.kswapd_wait.waiters:
            node.kswapd_wait.wake_up_all()
        return ok

    def throttle_direct_reclaim(self, task: Any, gfp: int, node: Any
                                ) -> Generator[Event, Any, None]:
        if task.kthread or self.watermark_ok(node):
            return
        self.count_throttle()
        env = self.env
        start = env.now
        deadline = start + (self.timeout_fs if gfp & G.GFP_FS else self.timeout_nofs)
        task.set_state("throttled", start)
        while not self.watermark_ok(node):
            remaining = deadline - env.now
            if remaining <= 0:
                break
            yield node.pfmemalloc_wait.wait(None if math.isinf(remaining) else remaining)
        self.throttled_time += env.now - start
        task.set_state("running", env.now)

    def kswapd_pass(self, node: Any) -> None:
        q = node.pfmemalloc_wait
        if q.waiters and self.watermark_ok(node):
            if self.wake_one:
                q.wake_up_one()
            else:
                q.wake_up_all()


class FractionThrottle(PfmemallocThrottle):
    """Patch 15 with a configurable fraction and timeouts."""

    name = "pfmemalloc-fraction"


class BoundedThrottle(PfmemallocThrottle):
    """Patch 15 with every wait bounded (default 100 ms)."""

    name = "pfmemalloc-bounded"


class FifoThrottle(PfmemallocThrottle):
    """Patch 15 waking one waiter per kswapd pass, oldest first."""

    name = "pfmemalloc-fifo"
    wake_one = True


@hookimpl
def swapsim_register_throttle_strategies(register: Any) -> None:
    register("none", NoThrottle)
    register("pfmemalloc-half", PfmemallocThrottle)
    register("pfmemalloc-fraction", FractionThrottle, options=FractionOptions)
    register("pfmemalloc-bounded", BoundedThrottle, options=BoundedOptions)
    register("pfmemalloc-fifo", FifoThrottle)
