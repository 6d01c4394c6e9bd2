"""Run the arms of a scenario: one after the other, or several at once.

:func:`run_arms` takes the arms of a :class:`~swapsim.config.Scenario` and
returns one ``(RunResult, vmstat text)`` pair per arm, in arm order.

``jobs == 1`` runs every arm in this process with one plugin manager, as
``swapsim run`` always did.  ``jobs > 1`` runs up to ``jobs`` arms at a time
in worker processes (``concurrent.futures.ProcessPoolExecutor``, *spawn*
start method: nothing of the parent's state is inherited, so no thread of
the parent — rich's refresh thread, the executor's own — can be caught
mid-lock by a fork).  What crosses the process boundary is plain data:

* to a worker: the arm's name and its configuration as cattrs-unstructured
  data, structured again on the other side (the round trip is exact);
* from a worker: :meth:`RunResult.to_dict` and the vmstat text, turned back
  into a :class:`RunResult` here — so ``result.json`` is byte-identical
  whatever ``jobs`` is;
* each worker builds its own plugin manager with the parent's
  :class:`PluginOptions` (``--no-autoload``, ``--block``; the environment
  variables and ``sys.path`` are inherited, so entry points resolve alike).
  Plugins registered with ``get_plugin_manager(extra=...)`` exist only in the
  parent: use ``jobs=1`` for them.

Errors surface as they do with ``jobs=1``: the exception of the first
failing arm *in arm order* is raised (``ConfigError`` and ``PluginError``
keep their type and message; other exceptions carry the worker's traceback
as ``__cause__``), after the arms before it were delivered to ``on_result``.
On any exception — ``KeyboardInterrupt`` included — queued arms are
cancelled and the workers terminated (their arms' results would be discarded
anyway), so no process outlives the call.  If the parent dies without an
exception (SIGTERM, SIGKILL: a job scheduler's limit, ``kill``), a thread in
each worker notices within ORPHAN_POLL seconds that it has a new parent, and
the worker exits, whether it runs an arm or waits for one.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import queue as queue_mod
import signal
import sys
import threading
import time
import warnings
from typing import Any, Callable, Sequence

from attrs import field, frozen

from .config import Arm, Config, ConfigError, structure, unstructure
from .pluginmanager import SwapsimPluginManager, get_plugin_manager
from .results import RunResult
from .simulation import run_arm

#: ``progress(arm_index, simulated_now, fraction_done)``: (i, 0, 0) when an arm starts,
#: then every few simulated seconds, (i, sim_time_s, 1) when it is done
Progress = Callable[[int, float, float], None]
#: ``on_result(arm_index, result, vmstat_text)``, called in arm order
OnResult = Callable[[int, RunResult, str], None]

#: seconds a terminated worker may take to exit before it is killed
STOP_GRACE = 5.0
#: a worker sends at most this many progress reports per second
REPORTS_PER_SECOND = 10.0
#: seconds between a worker's looks at whether its parent is still there
ORPHAN_POLL = 0.5


@frozen
class PluginOptions:
    """How to build a plugin manager: the arguments of :func:`get_plugin_manager`
    that can cross a process boundary."""

    autoload: bool | None = None
    block: tuple[str, ...] = field(default=(), converter=tuple)

    def make(self) -> SwapsimPluginManager:
        return get_plugin_manager(autoload=self.autoload, block=self.block)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_jobs(n_arms: int) -> int:
    """One worker per arm, at most one per CPU."""
    return max(1, min(n_arms, available_cpus()))


def run_arms(arms: Sequence[Arm], *, jobs: int = 1, pm: SwapsimPluginManager | None = None,
             plugins: PluginOptions = PluginOptions(), progress: Progress | None = None,
             on_result: OnResult | None = None,
             log_level: int | None = None) -> list[tuple[RunResult, str]]:
    """Run ``arms``; return ``[(result, vmstat_text), ...]`` in arm order.

    ``pm`` is used when running in this process (built from ``plugins`` if
    None); workers build theirs from ``plugins``.  ``progress`` is called in
    this process, from the calling thread.  ``log_level`` configures
    structlog in the workers like ``swapsim -v`` does here (None: leave
    structlog's defaults).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    arms = list(arms)
    if min(jobs, len(arms)) <= 1:
        return _run_here(arms, pm if pm is not None else plugins.make(), progress, on_result)
    return _run_pool(arms, min(jobs, len(arms)), plugins, progress, on_result, log_level)


# -- in this process ----------------------------------------------------------------------

def _run_here(arms: list[Arm], pm: SwapsimPluginManager, progress: Progress | None,
              on_result: OnResult | None) -> list[tuple[RunResult, str]]:
    out = []
    for i, arm in enumerate(arms):
        report = None
        if progress is not None:
            progress(i, 0.0, 0.0)
            report = lambda now, frac, i=i: progress(i, now, frac)  # noqa: E731
        result, vmstat_text = run_arm(arm.config, pm, arm.name, report)
        if progress is not None:
            progress(i, result.sim_time_s, 1.0)
        out.append((result, vmstat_text))
        if on_result is not None:
            on_result(i, result, vmstat_text)
    return out


# -- in worker processes ------------------------------------------------------------------

class _Failed:
    """A ConfigError from a worker, as data: ``ConfigError(problems)`` does not
    survive pickling (its ``args`` is the joined message, not the list)."""

    def __init__(self, cls: type[ConfigError], problems: list[str]) -> None:
        self.cls = cls
        self.problems = problems

    def reraise(self) -> None:
        raise self.cls(self.problems)


class _Stopped(Exception):
    """Raised inside a worker's run when the parent asked the workers to stop."""


def _run_pool(arms: list[Arm], jobs: int, plugins: PluginOptions, progress: Progress | None,
              on_result: OnResult | None, log_level: int | None) -> list[tuple[RunResult, str]]:
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    reports = ctx.Queue() if progress is not None else None
    executor = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                                      initargs=(plugins, stop, reports, log_level))
    out: list[tuple[RunResult, str]] = []
    try:
        # Workers are spawned by submit(); with SIGINT ignored meanwhile they
        # start with it ignored, so a Ctrl-C at the terminal (sent to the whole
        # process group) reaches only this process, which stops them cleanly.
        with _sigint_ignored():
            futures = [executor.submit(_run_one, i, arm.name, unstructure(arm.config))
                       for i, arm in enumerate(arms)]
        finished: set[int] = set()
        for i, fut in enumerate(futures):
            while True:
                _drain(reports, progress, finished)
                try:
                    payload = fut.result(timeout=0.1)
                    break
                except cf.TimeoutError:
                    continue
            if isinstance(payload, _Failed):
                payload.reraise()
            data, vmstat_text = payload
            result = RunResult(**data)
            if progress is not None:
                # reported here, not by the worker: a worker's last report may
                # still be in its queue's feeder thread when its result arrives
                _drain(reports, progress, finished)
                progress(i, result.sim_time_s, 1.0)
                finished.add(i)
            out.append((result, vmstat_text))
            if on_result is not None:
                on_result(i, result, vmstat_text)
        _drain(reports, progress, finished)
    except BaseException:
        _stop(executor, stop)
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        if reports is not None:
            reports.close()
    return out


class _sigint_ignored:
    def __enter__(self) -> None:
        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc: Any) -> None:
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)


def _drain(reports: Any, progress: Progress | None, finished: set[int]) -> None:
    """Pass on the workers' reports, except late ones for arms already finished."""
    if reports is None or progress is None:
        return
    while True:
        try:
            i, now, frac = reports.get_nowait()
        except queue_mod.Empty:
            return
        if i not in finished:
            progress(i, now, frac)


def _stop(executor: cf.ProcessPoolExecutor, stop: Any) -> None:
    """Cancel queued arms and end the workers now.

    Nothing a worker does outlives it (results are written by the parent), so
    the running arms are simply terminated: a simulation reports progress
    only every few simulated seconds, which can be many seconds of wall time.
    The stop event makes workers that the executor cannot name end their arm
    at its next progress step.
    """
    stop.set()
    if hasattr(executor, "terminate_workers"):  # Python >= 3.14
        executor.terminate_workers()
        return
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(STOP_GRACE)
        if p.is_alive():
            p.kill()
            p.join()


#: per worker process: (plugin options, stop event, report queue)
_WORKER: dict[str, Any] = {}


def _init_worker(plugins: PluginOptions, stop: Any, reports: Any, log_level: int | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    if reports is not None:
        reports.cancel_join_thread()  # progress reports are disposable: never block exit on them
    if log_level is not None:
        import structlog
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(log_level),
            logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        )
    parent = os.getppid()
    _WORKER.update(plugins=plugins, stop=stop, reports=reports, pm=None)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True,
                     name="swapsim-orphan-watch").start()


def _exit_when_orphaned(parent: int) -> None:
    """Exit once the parent is gone: nobody is left to take a result.  A
    thread rather than a check at each progress step, which a worker waiting
    for its next arm (or that never got one) would not run."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_POLL)
    os._exit(1)


def _worker_pm() -> SwapsimPluginManager:
    if _WORKER["pm"] is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the parent has shown them already
            _WORKER["pm"] = _WORKER["plugins"].make()
    return _WORKER["pm"]


def _run_one(index: int, name: str, config_data: dict[str, Any]) -> Any:
    stop, reports = _WORKER["stop"], _WORKER["reports"]
    last = 0.0

    def report(now: float, frac: float) -> None:
        nonlocal last
        if stop.is_set():
            raise _Stopped("stopped by the parent process")
        if reports is not None:
            t = time.monotonic()
            if t - last >= 1.0 / REPORTS_PER_SECOND:
                last = t
                reports.put((index, now, frac))

    if reports is not None:
        reports.put((index, 0.0, 0.0))
    try:
        config = structure(config_data, Config)
        result, vmstat_text = run_arm(config, _worker_pm(), name, report)
    except ConfigError as exc:
        return _Failed(type(exc), exc.problems)
    return result.to_dict(), vmstat_text


__all__ = ["PluginOptions", "available_cpus", "default_jobs", "run_arms"]
