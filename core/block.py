"""The block layer between swap and a swap transport.

Swap writeback and swap-in become :class:`Request` objects on a
:class:`RequestQueue` with the generic block layer's limits: ``nr_requests``
(128) per queue, congested at ``nr_requests - nr_requests/8 + 1`` (113) and
uncongested below ``nr_requests - nr_requests/8 - nr_requests/16 - 1`` (103).
Like the kernel's request_list, reads (sync) and writes (async) are counted
apart, each with its own limit; congestion is that of the async (write)
side, the one congestion_wait(BLK_RW_ASYNC) waits for.  A submitter that
finds its side full sleeps (get_request_wait) — that is how a slow device
throttles reclaim.  With ``kernel.blk_batching`` the task that filled it,
and each task woken, may take a batch of up to 32 more within 20 ms (at most
3/2 × nr_requests), as 3.6's get_request() does; without it (the default)
nr_requests is a hard limit.  Requests hold at most ``max_pages`` contiguous
slots.

A :class:`SwapTransport` (a plugin) takes requests off the queue and
completes them; it never touches page state itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar, Final, Generator

import numpy as np

from ._mypyc import mypyc_attr
from .engine import Event, WaitQueue

if TYPE_CHECKING:  # pragma: no cover
    from .cpu import Task
    from .simulation import Simulation

READ: Final = 0
WRITE: Final = 1
EIO: Final = 5
#: a task woken from get_request_wait(), or the one that filled the list, is a
#: "batcher": it may take BLK_BATCH_REQ requests past the limit, within
#: BLK_BATCH_TIME (HZ/50), up to 3/2 × nr_requests
BLK_BATCH_REQ: Final = 32
BLK_BATCH_TIME: Final = 0.02


class Request:
    """struct request: one swap I/O of consecutive slots.  A plain class, so
    that its compiled ``__init__`` is native (a dataclass's stays interpreted).
    ``slots`` and ``pages``: int32 arrays (writes) or lists (swap-in reads)."""

    def __init__(self, op: int, slots: Any, pages: Any,
                 on_done: Callable[["Request"], None], submit_time: float, tag: int) -> None:
        self.op = op
        self.slots = slots
        self.pages = pages
        self.on_done = on_done
        self.submit_time = submit_time
        self.tag = tag
        self.error = 0
        self.dispatch_time = -1.0
        #: set by the transport: what the request waits for, for lockup diagnosis
        self.waiting_for = ""

    @property
    def nbytes(self) -> int:
        return len(self.slots) * 4096


class RequestQueue:
    def __init__(self, sim: "Simulation", name: str, nr_requests: int = 128,
                 max_pages: int = 128) -> None:
        self.sim = sim
        self.env = sim.env
        self.name = name
        self.nr_requests = nr_requests
        self.max_pages = max_pages
        self.on_threshold = nr_requests - nr_requests // 8 + 1
        self.off_threshold = nr_requests - nr_requests // 8 - nr_requests // 16 - 1
        self.rl = [0, 0]                  # allocated requests per direction (READ, WRITE)
        self.batching = sim.config.kernel.blk_batching
        self.full = [False, False]        # blk_rl_full(): a batcher filled the list
        self.congested = False
        self.request_waits = (WaitQueue(self.env, f"{name}.request_wait[sync]"),
                              WaitQueue(self.env, f"{name}.request_wait[async]"))
        self.congestion_wait = WaitQueue(self.env, f"{name}.congestion_wqh")
        self.inflight: dict[int, Request] = {}
        self._tag = 0
        self.dispatch: Callable[[Request], None] | None = None  # set by the transport
        self.completed = [0, 0]
        self.errors = 0

    def submit(self, task: "Task | None", op: int, slots: Any, pages: Any,
               on_done: Callable[[Request], None]) -> Generator[Event, Any, None]:
        """Queue I/O for ``pages`` (sorted by slot), split into contiguous requests.

        ``slots`` and ``pages`` are int32 arrays or, for the few pages of a
        swap-in, lists; each request gets slices of the same kind."""
        start = 0
        n = len(slots)
        # Python ints: numpy scalars cost ~10x per compare
        sl: list[int] = slots if isinstance(slots, list) else slots.tolist()
        max_pages = self.max_pages
        while start < n:
            end = start + 1
            while end < n and end - start < max_pages and sl[end] == sl[end - 1] + 1:
                end += 1
            while not self._may_allocate(task, op):
                if task is not None:
                    task.set_state("blk_request_wait", self.env.now)
                yield self.request_waits[op].wait()
                if self.batching:
                    self._set_batching(task)    # woken: it gets a batch
            if self.batching and task is not None and self._batching(task):
                task.nr_batch_requests -= 1
            self._queue(op, slots[start:end], pages[start:end], on_done)
            start = end

    # -- get_request(): the limit and its batchers (3.6 block/blk-core.c) ---------
    def _batching(self, task: "Task") -> bool:
        """ioc_batching(): a fresh batch, or some of it left and not yet expired."""
        n = task.nr_batch_requests
        return n == BLK_BATCH_REQ or (n > 0 and self.env.now < task.batch_since + BLK_BATCH_TIME)

    def _set_batching(self, task: "Task | None") -> None:
        if task is not None and not self._batching(task):
            task.nr_batch_requests = BLK_BATCH_REQ
            task.batch_since = self.env.now

    def _may_allocate(self, task: "Task | None", op: int) -> bool:
        """__get_request()'s checks: the allocation that fills the list makes its
        task a batcher; once full, only batchers allocate, and none past 3/2.
        Without batching the list is simply full at nr_requests."""
        count = self.rl[op]
        if not self.batching:
            return count < self.nr_requests
        if count + 1 >= self.nr_requests:
            if not self.full[op]:
                self._set_batching(task)
                self.full[op] = True
            elif task is None or not self._batching(task):
                return False
        return count < 3 * self.nr_requests // 2

    def _queue(self, op: int, slots: Any, pages: Any,
               on_done: Callable[[Request], None]) -> None:
        self._tag += 1
        req = Request(op=op, slots=slots, pages=pages, on_done=on_done,
                      submit_time=self.env.now, tag=self._tag)
        self.rl[op] += 1
        if op == WRITE and self.rl[WRITE] >= self.on_threshold:
            self.congested = True
        self.inflight[req.tag] = req
        assert self.dispatch is not None, "transport did not attach to its queue"
        self.dispatch(req)

    def complete(self, req: Request, error: int = 0) -> None:
        """The transport finished ``req``; run its completion and free the request."""
        req.error = error
        del self.inflight[req.tag]
        self.rl[req.op] -= 1
        self.completed[req.op] += 1
        if error:
            self.errors += 1
        if self.congested and self.rl[WRITE] < self.off_threshold:
            self.congested = False
            self.congestion_wait.wake_up_all()
        # __freed_request(): with batching, only once the list is below the limit
        if not self.batching or self.rl[req.op] + 1 <= self.nr_requests:
            if self.request_waits[req.op].waiters:
                self.request_waits[req.op].wake_up_one()
            self.full[req.op] = False
        req.on_done(req)

    @property
    def count(self) -> int:
        """Requests allocated in both directions (queued + in flight)."""
        return self.rl[READ] + self.rl[WRITE]

    def oldest(self) -> Request | None:
        return next(iter(self.inflight.values()), None)


@mypyc_attr(allow_interpreted_subclasses=True)
class SwapTransport:
    """Base class of swap transports (plugins: disk, nbd, nfs, …).

    The simulation creates the transport with ``factory(sim, options)``, then
    calls :meth:`start` once.  Requests arrive through :meth:`dispatch`; the
    transport completes each with ``self.queue.complete(req, error)``.
    Override points: ``dispatch``, ``start``, ``diagnose``, ``stats``.
    """

    name: ClassVar[str] = "base"
    #: longest request in pages (max_sectors)
    max_pages: ClassVar[int] = 128
    nr_requests: ClassVar[int] = 128
    #: QUEUE_FLAG_NONROT: swapon() then makes the area SWP_SOLIDSTATE, which
    #: changes where scan_swap_map() puts pages (see swapfile.SwapArea)
    nonrot: ClassVar[bool] = False

    def __init__(self, sim: "Simulation", options: Any = None, *,
                 nr_requests: int | None = None, max_pages: int | None = None) -> None:
        self.sim = sim
        self.env = sim.env
        self.options = options
        self.queue = RequestQueue(sim, self.name, nr_requests or self.nr_requests,
                                  max_pages or self.max_pages)
        self.queue.dispatch = self.dispatch

    def start(self) -> None:
        """Spawn kernel threads, open sockets."""

    def dispatch(self, req: Request) -> None:
        raise NotImplementedError

    def diagnose(self) -> dict[str, Any]:
        now = self.env.now
        oldest = self.queue.oldest()
        return {
            "requests_in_flight": self.queue.count,
            "congested": self.queue.congested,
            "oldest_request_age_s": None if oldest is None else round(now - oldest.submit_time, 6),
            "oldest_request_op": None if oldest is None else ("read", "write")[oldest.op],
            "oldest_request_waits_for": None if oldest is None else oldest.waiting_for,
        }

    def stats(self) -> dict[str, Any]:
        return {"reads_completed": self.queue.completed[READ],
                "writes_completed": self.queue.completed[WRITE],
                "errors": self.queue.errors}
