"""The CPUs' run queue: round-robin by timeslice, negative nice first."""

from __future__ import annotations

import pytest

from swapsim.cpu import Cpus, Task
from swapsim.engine import Environment


def _run(nices: list[int], burst: float = 0.0025) -> list[tuple[str, float, float]]:
    """Tasks t0, t1, … each ask one CPU for ``burst`` seconds, 0.1 ms apart;
    returns (name, time asked, time done) per task, in the order they finished."""
    env = Environment()
    cpus = Cpus(env, 1, timeslice=0.001)
    out: list[tuple[str, float, float]] = []

    def proc(task: Task, delay: float):
        yield env.timeout(delay)
        asked = env.now
        before = task.sys_time
        yield from cpus.run(task, burst, sys=True)
        out.append((task.comm, asked, env.now))
        assert task.sys_time - before == pytest.approx(burst)

    for i, nice in enumerate(nices):
        task = Task(pid=i + 1, comm=f"t{i}", nice=nice)
        env.process(proc(task, i * 1e-4))
    env.run()
    return sorted(out, key=lambda r: r[2])


def test_nice_zero_tasks_share_the_cpu_round_robin():
    done = [name for name, _, _ in _run([0, 0, 0])]
    # 2.5 ms each in 1 ms slices, served in turn: t0 ends first, t2 last
    assert done == ["t0", "t1", "t2"]


def test_a_negative_nice_task_goes_ahead_of_nice_zero_waiters():
    runs = _run([0, 0, -20])
    done = [name for name, _, _ in runs]
    # t2 asked last but jumps the queue at each slice end: it holds the CPU
    # from t0's first slice end (1 ms) to 3.5 ms, before t0 and t1 finish
    assert done == ["t2", "t0", "t1"]
    assert runs[0][2] == pytest.approx(0.0035)


def test_negative_nice_waiters_keep_their_own_order():
    runs = _run([0, -20, -20])
    # t1 (asked first) is served before t2; both before t0's second slice
    assert [name for name, _, _ in runs] == ["t1", "t2", "t0"]


def test_a_fault_and_the_writes_after_it_share_one_stretch_on_the_cpu():
    """run(..., then_user=u): the sys part first, then u of user time, with no
    trip through the run queue in between; slices split the accounting."""
    env = Environment()
    cpus = Cpus(env, 1, timeslice=0.001)
    task = Task(pid=1, comm="usemem-0")
    other = Task(pid=2, comm="usemem-1")
    order: list[str] = []

    def faulting():
        yield from cpus.run(task, 0.0015, True, then_user=0.0003)
        order.append(f"t0 done at {env.now:.4f}")

    def waiting():
        yield env.timeout(1e-4)
        yield from cpus.run(other, 0.0002, sys=False)
        order.append(f"t1 done at {env.now:.4f}")

    env.process(faulting())
    env.process(waiting())
    env.run()
    # t0's first slice (1 ms of sys) ends, t1 runs 0.2 ms, then t0's last 0.8 ms
    assert order == ["t1 done at 0.0012", "t0 done at 0.0020"]
    assert task.sys_time == pytest.approx(0.0015) and task.user_time == pytest.approx(0.0003)
