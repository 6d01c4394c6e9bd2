"""Tasks and CPUs: who runs, and whose time it is (SPEC §9).

``NUM_CPU`` CPUs are a FIFO-served resource.  A task asks for a CPU burst of
a given length; when all CPUs are busy it waits in the run queue.  Bursts
longer than the timeslice are cut and requeued, so 32 runnable tasks on 4 CPUs
share them round-robin.  A task with a negative nice (nbd's thread sets -20)
queues ahead of every nice-0 task and keeps its CPU while only those wait:
under CFS its weight is 87 times theirs and a wake-up preempts them, so it
waits for at most the timeslice that is running.  A fault's sys time and
the user time of the writes that follow it are one request for the CPU
(``then_user``): a task returning from a fault keeps its CPU.  Time is
charged to the task as user, sys, or — for kernel threads and softirq —
kthread time, reported apart from the workload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generator

from .engine import Environment, Event, Timeout
from .mm.gfp import PF_KTHREAD


@dataclass(eq=False)
class Task:
    """A task_struct, reduced to what the model needs."""

    pid: int
    comm: str
    flags: int = 0          # PF_* flags
    kthread: bool = False
    #: the CPU whose per-CPU caches (slab arrays, cpu slabs) the task uses:
    #: tasks stay on their CPU, as the scheduler keeps them when it can
    cpu: int = 0
    user_time: float = 0.0
    sys_time: float = 0.0
    #: what the task is doing, for lockup diagnosis: running, direct_reclaim, throttled …
    state: str = "running"
    state_since: float = 0.0
    #: set_user_nice(); only its sign matters to the run queue (see Cpus)
    nice: int = 0
    done: bool = False
    #: io_context batching (block.RequestQueue): requests left in the batch, since when
    nr_batch_requests: int = 0
    batch_since: float = 0.0

    def set_state(self, state: str, now: float) -> None:
        if state != self.state:
            self.state = state
            self.state_since = now


class Cpus:
    """NUM_CPU CPUs shared by runnable tasks."""

    def __init__(self, env: Environment, n: int, timeslice: float) -> None:
        self.env = env
        self.n = n
        self.idle = n
        self.timeslice = timeslice
        # a list: compiled code appends, inserts and pops it natively (a deque's
        # methods are generic calls), and it holds at most the tasks there are
        self.runqueue: list[Event] = []
        #: how many entries at the head of the run queue are negative-nice tasks
        self.favoured = 0
        self.busy_time = 0.0
        self.kthread_time = 0.0
        self.softirq_time = 0.0

    def run(self, task: Task, seconds: float, sys: bool, then_user: float = 0.0
            ) -> Generator[Event, object, None]:
        """Consume ``seconds`` of CPU as ``task`` (sys or user time), then
        ``then_user`` seconds of user time in the same stretch on the CPU (a
        fault and the user code that resumes after it)."""
        env = self.env
        timeslice = self.timeslice
        held = False
        sys_s = seconds if sys else 0.0
        seconds += then_user
        while seconds > 0:
            if held:
                pass                    # still on its CPU from the last burst
            elif self.idle:
                self.idle -= 1
            else:
                ev = Event(env)
                if task.nice < 0:       # behind earlier negative-nice waiters only
                    self.runqueue.insert(self.favoured, ev)
                    self.favoured += 1
                else:
                    self.runqueue.append(ev)
                yield ev  # the releasing task hands its CPU over directly
            burst = seconds if seconds < timeslice else timeslice
            yield Timeout(env, burst)
            seconds -= burst
            self.busy_time += burst
            if task.kthread:
                self.kthread_time += burst
            else:
                s_part = burst if burst < sys_s else sys_s
                sys_s -= s_part
                task.sys_time += s_part
                if burst > s_part:
                    task.user_time += burst - s_part
            # a negative-nice task keeps its CPU while only nice-0 tasks wait
            held = seconds > 0 and task.nice < 0 and not self.favoured
            if held:
                continue
            if self.runqueue:
                if self.favoured:
                    self.favoured -= 1
                self.runqueue.pop(0).succeed()
            else:
                self.idle += 1

    def charge_softirq(self, seconds: float) -> None:
        """Softirq work preempts whatever runs; it is charged but does not queue."""
        self.softirq_time += seconds
        self.kthread_time += seconds


def is_kthread(task: Task) -> bool:
    return bool(task.flags & PF_KTHREAD)
