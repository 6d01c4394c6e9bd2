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

Each page of a request has its bio and each request its struct request,
slab objects from mempools as in 3.6 (``bio-0`` through fs_bio_set,
``blkdev_requests`` through the request list's pool): allocated by the
submitting task before and after get_request(), freed when the request
completes.  A mempool never dips into the emergency reserves
(__GFP_NOMEMALLOC): when the slab fails at the MIN watermark the pool's
few set-aside elements are used, and after those the task sleeps until an
element comes back (or 5 s), which is how reclaim that writes swap is
held up when nothing completes.

A :class:`SwapTransport` (a plugin) takes requests off the queue and
completes them; it never touches page state itself.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Final, Generator

import numpy as np

from ._mypyc import mypyc_attr
from .engine import Event, WaitQueue
from .mm import gfp as G
from .slab import AllocContext, SlabAllocator, task_context

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
#: mempool_create() sizes: fs_bio_set's BIO_POOL_SIZE, a request list's BLKDEV_MIN_RQ
BIO_POOL_SIZE: Final = 2
BLKDEV_MIN_RQ: Final = 4
#: mempool_alloc() sleeps io_schedule_timeout(5*HZ) at most before it tries again
MEMPOOL_WAIT: Final = 5.0
#: "bio-0": struct bio with BIO_INLINE_VECS bio_vecs (168 bytes), cache-line aligned
BIO_SIZE: Final = 192
#: "blkdev_requests": sizeof(struct request) on x86_64
REQUEST_SIZE: Final = 344
#: the mempool_alloc() attempt before the pool: no sleeping, no I/O, no reserves
_MEMPOOL_GFP: Final = G.GFP_NOMEMALLOC | G.GFP_NORETRY | G.GFP_NOWARN


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
        #: its slab objects: one bio per page, its struct request (-1: none)
        self.bios: list[int] = []
        self.rq_obj = -1

    @property
    def nbytes(self) -> int:
        return len(self.slots) * 4096


class Mempool:
    """mempool_t over a slab cache: ``min_nr`` elements set aside at creation
    for when the slab allocator fails."""

    def __init__(self, env: Any, slab: SlabAllocator, cache: int, min_nr: int, name: str) -> None:
        self.env = env
        self.slab = slab
        self.cache = cache
        self.min_nr = min_nr
        self.reserve: list[int] = slab.alloc_bulk(cache, G.GFP_KERNEL, AllocContext(), min_nr)
        self.wait = WaitQueue(env, f"{name}.mempool_wait")
        #: sleeps of mempool_alloc() for an element to come back
        self.waits = 0
        #: (deadline, event) of each sleep, oldest first, and whether the one
        #: timer that ends them is queued (see _sleep)
        self.deadlines: deque[tuple[float, Event]] = deque()
        self.timer_armed = False

    def take(self, gfp: int, n: int, ctx: AllocContext) -> list[int]:
        """Up to ``n`` mempool_alloc() calls in a row as far as they need not
        sleep: each tries the slab without sleeping, I/O or reserves, then the
        elements set aside.  Short when both fail; :meth:`wait_for` the rest."""
        out: list[int] = []
        slab, cache = self.slab, self.cache
        first_gfp = (gfp | _MEMPOOL_GFP) & ~(G.GFP_WAIT | G.GFP_IO)
        while len(out) < n:
            out += slab.alloc_bulk(cache, first_gfp, ctx, n - len(out))
            if len(out) < n:
                if not self.reserve:
                    break
                out.append(self.reserve.pop())
        return out

    def wait_for(self, task: "Task | None", gfp: int, n: int,
                 ctx: AllocContext) -> Generator[Event, Any, list[int]]:
        """The ``n`` elements :meth:`take` could not give: with __GFP_WAIT the task
        sleeps until an element is freed (or 5 s) and tries again, until it has
        them; without, none.  (After such a sleep the kernel's retry may enter
        direct reclaim, once, for a task outside PF_MEMALLOC; the model retries
        without: the tasks that write swap are in reclaim already.)"""
        out: list[int] = []
        while len(out) < n and gfp & G.GFP_WAIT:
            self.waits += 1
            if task is not None:
                task.set_state("mempool_wait", self.env.now)
            yield self._sleep()
            out += self.take(gfp, n - len(out), ctx)
        return out

    def _sleep(self) -> Event:
        """An event for a sleep on the pool's wait queue of at most MEMPOOL_WAIT.

        Most sleeps end early, woken by a freed element, and when their pool
        runs dry many tasks sleep on it at once: one timer for all of them,
        re-armed for the oldest sleep still going, instead of a queued
        timeout event per sleep."""
        ev = self.wait.wait()
        deadline = self.env.now + MEMPOOL_WAIT
        self.deadlines.append((deadline, ev))
        if not self.timer_armed:
            self.timer_armed = True
            self.env.call_at(deadline, self._expire)
        return ev

    def _expire(self) -> None:
        now = self.env.now
        dl = self.deadlines
        while dl and (dl[0][0] <= now or dl[0][1].triggered):
            ev = dl.popleft()[1]
            if not ev.triggered:
                self.wait.waiters.remove(ev)
                ev.succeed(False)
        if dl:
            self.env.call_at(dl[0][0], self._expire)
        else:
            self.timer_armed = False

    def free(self, objs: list[int], ctx: AllocContext) -> None:
        """mempool_free() of each: refill the pool (waking its sleepers), the rest to the slab."""
        room = self.min_nr - len(self.reserve)
        if room > 0 and objs:
            self.reserve += objs[:room]
            objs = objs[room:]
            self.wait.wake_up_all()
        if objs:
            self.slab.free_bulk(self.cache, objs, ctx)


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
        slab = sim.slab
        self.bio_pool: Mempool | None = None
        self.rq_pool: Mempool | None = None
        if slab is not None:
            self.bio_pool = Mempool(self.env, slab, sim.kmem_cache("bio-0", BIO_SIZE),
                                    BIO_POOL_SIZE, "fs_bio_set")
            self.rq_pool = Mempool(self.env, slab, sim.kmem_cache("blkdev_requests", REQUEST_SIZE),
                                   BLKDEV_MIN_RQ, f"{name}.rq_pool")
        #: where completions free their bios and requests (the block softirq
        #: on CPU 0); a transport that completes in a task passes its context
        self.irq_ctx = AllocContext(softirq=True)

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
        bio_pool, rq_pool = self.bio_pool, self.rq_pool
        ctx = self.irq_ctx if task is None else task_context(task)
        # swap_writepage() allocates its bios GFP_NOIO, swap_readpage() GFP_KERNEL
        bio_gfp = G.GFP_NOIO if op == WRITE else G.GFP_KERNEL
        while start < n:
            end = start + 1
            while end < n and end - start < max_pages and sl[end] == sl[end - 1] + 1:
                end += 1
            bios: list[int] = []
            if bio_pool is not None:
                bios = bio_pool.take(bio_gfp, end - start, ctx)
                if len(bios) < end - start:
                    bios += yield from bio_pool.wait_for(task, bio_gfp, end - start - len(bios), ctx)
            while not self._may_allocate(task, op):
                if task is not None:
                    task.set_state("blk_request_wait", self.env.now)
                yield self.request_waits[op].wait()
                if self.batching:
                    self._set_batching(task)    # woken: it gets a batch
            if self.batching and task is not None and self._batching(task):
                task.nr_batch_requests -= 1
            rq_obj = -1
            if rq_pool is not None:
                # __get_request() counts the request in the list before its
                # mempool_alloc(): so does the model while the task sleeps for one
                got = rq_pool.take(G.GFP_NOIO, 1, ctx)
                if not got:
                    self.rl[op] += 1
                    got = yield from rq_pool.wait_for(task, G.GFP_NOIO, 1, ctx)
                    self.rl[op] -= 1
                rq_obj = got[0]
            self._queue(op, slots[start:end], pages[start:end], on_done, bios, rq_obj)
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

    def _queue(self, op: int, slots: Any, pages: Any, on_done: Callable[[Request], None],
               bios: list[int], rq_obj: int) -> None:
        self._tag += 1
        req = Request(op=op, slots=slots, pages=pages, on_done=on_done,
                      submit_time=self.env.now, tag=self._tag)
        req.bios = bios
        req.rq_obj = rq_obj
        self.rl[op] += 1
        if op == WRITE and self.rl[WRITE] >= self.on_threshold:
            self.congested = True
        self.inflight[req.tag] = req
        assert self.dispatch is not None, "transport did not attach to its queue"
        self.dispatch(req)

    def complete(self, req: Request, error: int = 0, ctx: AllocContext | None = None) -> None:
        """The transport finished ``req``; run its completion and free the request.

        ``ctx``: where the completion runs (default the block softirq), whose
        per-CPU slab caches get the bios and the request back."""
        req.error = error
        del self.inflight[req.tag]
        ctx = ctx or self.irq_ctx
        if req.bios and self.bio_pool is not None:
            self.bio_pool.free(req.bios, ctx)
        if req.rq_obj >= 0 and self.rq_pool is not None:
            self.rq_pool.free([req.rq_obj], ctx)
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
        q = self.queue
        return {"reads_completed": q.completed[READ],
                "writes_completed": q.completed[WRITE],
                "errors": q.errors,
                "bio_pool_waits": q.bio_pool.waits if q.bio_pool is not None else 0,
                "rq_pool_waits": q.rq_pool.waits if q.rq_pool is not None else 0}
