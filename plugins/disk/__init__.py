"""A local disk as swap device: the baseline without network allocations.

One spindle serves requests in FIFO order.  A request costs the access
latency (seek + rotation) unless it starts where the previous one ended, plus
its size over the bandwidth.  bios come from mempools, so the disk path
allocates nothing from the page allocator and cannot deadlock on memory.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from attrs import field, frozen

from swapsim.block import Request, SwapTransport
from swapsim.config import Bytes, Seconds, positive as _positive
from swapsim.hookspecs import hookimpl



@frozen(kw_only=True)
class DiskOptions:
    #: average seek + rotational latency of a random access (7200 rpm disk)
    latency: Seconds = field(default=Seconds(0.008), validator=_positive)
    #: sustained transfer rate, bytes per second
    bandwidth: Bytes = field(default=Bytes(100_000_000), validator=_positive)
    #: block layer queue depth (nr_requests)
    nr_requests: int = field(default=128, validator=_positive)
    #: largest request, in pages (max_sectors_kb / 4)
    max_pages: int = field(default=128, validator=_positive)


class Disk(SwapTransport):
    """Local disk with seek latency and bandwidth; mempool-backed bios."""

    name = "disk"

    def __init__(self, sim: Any, options: DiskOptions | None = None) -> None:
        opts = options or DiskOptions()
        super().__init__(sim, opts, nr_requests=opts.nr_requests, max_pages=opts.max_pages)
        self.latency = opts.latency
        self.bandwidth = opts.bandwidth
        self.pending: deque[Request] = deque()
        self.busy = False
        self.head = -1        # slot after the last one transferred
        self.busy_time = 0.0
        self.seeks = 0

    def dispatch(self, req: Request) -> None:
        req.waiting_for = "disk queue"
        self.pending.append(req)
        if not self.busy:
            self._next()

    def _next(self) -> None:
        if not self.pending:
            self.busy = False
            return
        self.busy = True
        req = self.pending.popleft()
        req.dispatch_time = self.env.now
        req.waiting_for = "disk transfer"
        seconds = req.nbytes / self.bandwidth
        if int(req.slots[0]) != self.head:
            seconds += self.latency
            self.seeks += 1
        self.head = int(req.slots[-1]) + 1
        self.busy_time += seconds
        self.env.call_later(seconds, lambda: self._done(req))

    def _done(self, req: Request) -> None:
        self.queue.complete(req)
        self._next()

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update(busy_s=round(self.busy_time, 6), seeks=self.seeks)
        return out


@hookimpl
def swapsim_register_transports(register: Any) -> None:
    register("disk", Disk, options=DiskOptions)
