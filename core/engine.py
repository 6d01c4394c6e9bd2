"""A small deterministic discrete-event core.

The shape follows SimPy (an environment with ``now``, events, generator
processes) but keeps only what swapsim needs, so that the per-event cost is as
low as it can be: the run loop pops the earliest event off a heap ordered by
``(time, seq)`` and calls its callbacks.  ``seq`` is a monotonically
increasing counter, so simultaneous events are processed in the order they
were scheduled — the same order on every run, which is what makes results
byte-identical.  The heap is a list of events, each holding its own time and
seq: compiled, its sifts compare two native floats where heapq, comparing
``(time, seq, event)`` tuples, made a tuple per event and went through
rich comparison twice per step.

An event due at the very time it is scheduled (a succeed(), a zero timeout, a
NAPI re-poll: a sixth or more of all events) skips the heap: it joins a FIFO
of events ready now.
Every heap entry due now was scheduled before the current time began, so it
comes before anything in that FIFO: the loop drains the heap's entries due
now first, then the FIFO, which is the heap's own order without its cost.

Processes are generators that ``yield`` events; they resume with the event's
value once it is processed.  ``yield from`` composes kernel-style call chains
(fault → allocator slow path → direct reclaim → throttle) without callbacks.
"""

from __future__ import annotations

from typing import Any, Callable, Final, Generator, Iterable

# Final: compiled, read from C statics rather than looked up in the module's
# dict once or twice per event (core/_mypyc.py)
_PENDING: Final = object()


class Event:
    """Something that will happen; processes wait for it by yielding it."""

    __slots__ = ("env", "value", "done", "cb", "more", "when", "seq")

    #: set when the event is put on the heap: its time and the order among equal times
    when: float
    seq: int

    def __init__(self, env: "Environment") -> None:
        self.env = env
        self.value: Any = _PENDING
        #: processed: its callbacks have run (a process yielding it goes on at once)
        self.done = False
        #: the first callback, and any further ones in order: most events have
        #: one (the process waiting), which then costs no list
        self.cb: Callable[[Event], None] | None = None
        self.more: list[Callable[[Event], None]] | None = None

    @property
    def triggered(self) -> bool:
        return self.value is not _PENDING

    @property
    def processed(self) -> bool:
        return self.done

    def add_callback(self, cb: Callable[["Event"], None]) -> None:
        """Run ``cb(event)`` when the event is processed, after those added before."""
        if self.done:
            raise RuntimeError(f"{self!r} has already been processed")
        if self.cb is None:
            self.cb = cb
        elif self.more is None:
            self.more = [cb]
        else:
            self.more.append(cb)

    def succeed(self, value: Any = None) -> "Event":
        """Trigger now; callbacks run when the engine reaches this event."""
        if self.value is not _PENDING:
            raise RuntimeError(f"{self!r} has already been triggered")
        self.value = value
        self.env._ready.append(self)
        return self


class Timeout(Event):
    """An event that triggers ``delay`` seconds from now."""

    __slots__ = ()

    def __init__(self, env: "Environment", delay: float, value: Any = None) -> None:
        if delay < 0:
            raise ValueError(f"negative delay {delay}")
        self.env = env
        self.value = value
        self.done = False
        self.cb = None
        self.more = None
        env._schedule(env.now + delay, self)


def _call_fn(event: "_Call") -> None:
    event.fn()


class _Call(Event):
    """What call_later() schedules: one shared callback runs ``fn``, so that no
    closure is built per call (call_later carries every packet and timer)."""

    __slots__ = ("fn",)

    def __init__(self, env: "Environment", fn: Callable[[], None]) -> None:
        self.env = env
        self.value = None
        self.done = False
        self.cb = _call_fn  # type: ignore[assignment]  # only ever called with self
        self.more = None
        self.fn = fn


class Process(Event):
    """Runs a generator; as an event it triggers with the generator's return value."""

    __slots__ = ("gen", "name", "_send", "_resume_cb")

    def __init__(self, env: "Environment", gen: Generator, name: str = "") -> None:
        super().__init__(env)
        self.gen = gen
        self.name = name
        # bound once: compiled, gen.send and self._resume would otherwise be
        # looked up on the type (and a bound method made) at every resume
        self._send: Callable[[Any], Any] = gen.send
        self._resume_cb: Callable[[Event], None] = self._resume
        start = Event(env)
        start.cb = self._resume_cb
        start.succeed()

    def _resume(self, event: Event) -> None:
        send = self._send
        value = event.value
        while True:
            try:
                target: Event = send(value)
            except StopIteration as stop:
                self.succeed(stop.value)
                return
            if not target.done:
                if target.cb is None:       # add_callback(), inlined: the usual case
                    target.cb = self._resume_cb
                else:
                    target.add_callback(self._resume_cb)
                return
            value = target.value  # already processed: continue at once

    def __repr__(self) -> str:
        return f"<Process {self.name or self.gen!r}>"


def repeat(step: Callable[[], Generator[Event, Any, Any]], times: int,
           then: Callable[[], None]) -> Generator[Event, Any, None]:
    """``yield from step()`` ``times`` times, then call ``then()``.

    A workload's loop written in a plugin would put an interpreted generator
    frame into the chain its process resumes at every event; this one is
    compiled (for usemem, ~12 M resumes at 2 GiB)."""
    for _i in range(times):
        yield from step()
    then()


class WaitQueue:
    """A kernel wait queue: ``wait()`` parks a process, ``wake_up_all()`` releases it.

    A wait with a timeout resumes with ``True`` when woken and ``False`` when
    the timeout expired, like ``wait_event_timeout`` returning non-zero/zero.
    """

    __slots__ = ("env", "waiters", "name")

    def __init__(self, env: "Environment", name: str = "") -> None:
        self.env = env
        self.waiters: list[Event] = []
        self.name = name

    def __len__(self) -> int:
        return len(self.waiters)

    def wait(self, timeout: float | None = None) -> Event:
        ev = Event(self.env)
        self.waiters.append(ev)
        if timeout is not None:
            def expire(_t: Event, ev: Event = ev) -> None:
                if ev.value is _PENDING:
                    self.waiters.remove(ev)
                    ev.succeed(False)
            self.env.timeout(timeout).add_callback(expire)
        return ev

    def wake_up_all(self) -> int:
        waiters, self.waiters = self.waiters, []
        for ev in waiters:
            ev.succeed(True)
        return len(waiters)

    def wake_up_one(self) -> bool:
        if not self.waiters:
            return False
        self.waiters.pop(0).succeed(True)
        return True


def _before(a: Event, b: Event) -> bool:
    return a.when < b.when or (a.when == b.when and a.seq < b.seq)


def _sift_up(heap: list[Event], pos: int, event: Event) -> None:
    """Put ``event`` at ``pos`` or above it, moving the later parents down."""
    while pos > 0:
        up = (pos - 1) >> 1
        parent = heap[up]
        if not _before(event, parent):
            break
        heap[pos] = parent
        pos = up
    heap[pos] = event


def heappush(heap: list[Event], event: Event) -> None:
    """heapq.heappush() for events ordered by ``(when, seq)``."""
    heap.append(event)
    _sift_up(heap, len(heap) - 1, event)


def heappop(heap: list[Event]) -> Event:
    """heapq.heappop(): the earliest event.  As heapq does, the hole left at
    the top sinks to a leaf by the smaller child, and the last event moves
    up from there (fewer comparisons than stopping on the way down)."""
    last = heap.pop()
    if not heap:
        return last
    top = heap[0]
    end = len(heap)
    pos = 0
    child = 1
    while child < end:
        right = child + 1
        if right < end and not _before(heap[child], heap[right]):
            child = right
        heap[pos] = heap[child]
        pos = child
        child = 2 * pos + 1
    _sift_up(heap, pos, last)
    return top


def _process(event: Event) -> None:
    """Run the event's callbacks in the order added; later additions are refused."""
    event.done = True
    cb = event.cb
    if cb is not None:
        event.cb = None
        cb(event)
        more = event.more
        if more is not None:
            event.more = None
            for cb in more:
                cb(event)


class Environment:
    """Simulated time and the event queue."""

    def __init__(self, initial_time: float = 0.0) -> None:
        self.now = initial_time
        self._queue: list[Event] = []
        #: events due now, in the order scheduled; [_rhead:] not processed yet
        self._ready: list[Event] = []
        self._rhead = 0
        self._seq = 0
        self._stopped: Any = _PENDING
        self.events_processed = 0

    # -- creating events -------------------------------------------------
    def _schedule(self, when: float, event: Event) -> None:
        if when == self.now:
            self._ready.append(event)
        else:
            self._seq += 1
            event.when = when
            event.seq = self._seq
            heappush(self._queue, event)

    def queued(self) -> int:
        """Events scheduled and not yet processed."""
        return len(self._queue) + len(self._ready) - self._rhead

    def event(self) -> Event:
        return Event(self)

    def timeout(self, delay: float, value: Any = None) -> Timeout:
        return Timeout(self, delay, value)

    def process(self, gen: Generator, name: str = "") -> Process:
        return Process(self, gen, name)

    def call_later(self, delay: float, fn: Callable[[], None]) -> Event:
        """Run a plain function ``delay`` seconds from now (cheaper than a process)."""
        if delay < 0:
            raise ValueError(f"negative delay {delay}")
        t = _Call(self, fn)
        self._schedule(self.now + delay, t)
        return t

    def call_at(self, when: float, fn: Callable[[], None]) -> Event:
        """Run a plain function at simulated time ``when`` (not before now)."""
        if when < self.now:
            raise ValueError(f"time {when} is in the past ({self.now})")
        t = _Call(self, fn)
        self._schedule(when, t)
        return t

    def any_of(self, events: Iterable[Event]) -> Event:
        """Triggers with the first of ``events`` to be processed."""
        done = Event(self)

        def first(ev: Event) -> None:
            if done.value is _PENDING:
                done.succeed(ev)
        for ev in events:
            if ev.done:
                first(ev)
            else:
                ev.add_callback(first)
        return done

    # -- running ---------------------------------------------------------
    def peek(self) -> float:
        if self._rhead < len(self._ready):
            return self.now
        return self._queue[0].when if self._queue else float("inf")

    def _pop_ready(self) -> Event:
        ready = self._ready
        event = ready[self._rhead]
        self._rhead += 1
        if self._rhead == len(ready):
            ready.clear()
            self._rhead = 0
        return event

    def step(self) -> None:
        queue = self._queue
        if self._rhead < len(self._ready) and (not queue or queue[0].when > self.now):
            event = self._pop_ready()
        else:
            event = heappop(queue)
            self.now = event.when
        _process(event)

    def stop(self, reason: Any = None) -> None:
        """Make ``run`` return after the current event."""
        self._stopped = reason

    def run(self, until: float | None = None) -> Any:
        """Process events until the queue is empty, ``until`` or ``stop()``."""
        queue = self._queue
        ready = self._ready
        limit = float("inf") if until is None else until
        self._stopped = _PENDING
        n = 0
        while self._stopped is _PENDING:
            if self._rhead < len(ready) and (not queue or queue[0].when > self.now):
                event = self._pop_ready()
            elif queue:
                if queue[0].when > limit:
                    self.now = limit
                    break
                event = heappop(queue)
                self.now = event.when
            else:
                if until is not None:
                    self.now = max(self.now, limit)
                break
            _process(event)
            n += 1
        self.events_processed += n
        return None if self._stopped is _PENDING else self._stopped
