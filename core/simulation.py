"""Compose one arm's simulation from its Config and run it.

Data flows one way: the plugin manager's registries turn configuration names
into policy objects once, here; the run loop then calls plain methods on
those objects.  Observers watch; the result is plain data.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Generator

import numpy as np
import structlog

from . import __version__
from .config import Config, ConfigError, structure_options, unstructure
from .cpu import Cpus, Task
from .engine import Environment, Event
from .mm import gfp as G
from .mm.memory import MM, OutOfMemory, SwapIOError
from .mm.swap_state import RADIX_TREE_NODE_SIZE, SwapCache
from .mm.vmscan import Reclaim
from .observe import Observer
from .pluginmanager import REGISTRIES, PluginError, SwapsimPluginManager
from .results import RunResult
from .vmstat import VmStat, format_vmstat

log = structlog.get_logger()


class SimulationError(RuntimeError):
    """The model reached an impossible state (a bug, or a plugin breaking a rule)."""


class Simulation:
    """One arm: engine + mm + slab + swap transport + workload + observers."""

    def __init__(self, config: Config, pm: SwapsimPluginManager, arm: str = "main") -> None:
        self.config = config
        self.pm = pm
        self.arm = arm
        self.env = Environment()
        self.seed = config.sim.seed
        self._seedseq = np.random.SeedSequence(config.sim.seed)
        self.sample_interval = config.sim.sample_interval
        self.patches = frozenset(config.kernel.patches)
        problems = [p for ps in pm.hook.swapsim_check_config(config=config) if ps for p in ps]
        if problems:
            raise ConfigError(problems)
        known = {n for reg in REGISTRIES for n in pm.registry(reg).names()}
        unknown = sorted(set(config.plugin) - known)
        if unknown:
            raise ConfigError([f"plugin.{n}: no plugin implementation is named {n!r}" for n in unknown])
        self.cpus = Cpus(self.env, config.machine.cpus, config.cost.timeslice)
        self.vmstat = VmStat(("DMA", "DMA32", "Normal", "Movable"),
                             throttle_stat="throttle-stat" in self.patches)
        self.tasks: list[Task] = []
        self._pid = 0
        self.mm = MM(self)
        self.slab = self._make("slab_allocators", config.kernel.slab, slab=True)
        self.swap_cache = SwapCache(self.slab, self.kmem_cache("radix_tree_node", RADIX_TREE_NODE_SIZE),
                                    self.mm.swap.nslots, config.machine.cpus)
        self.mm.swap_cache = self.swap_cache
        throttle_name = config.kernel.throttle if "throttle" in self.patches else "none"
        self.throttle = self._make("throttle_strategies", throttle_name)
        self.mm.reclaim = Reclaim(self.mm, self.throttle)
        self.transport = self._make("transports", config.swap.transport)
        self.mm.transport = self.transport
        self.mm.swap.swapon(self.transport.nonrot, self.rng("swapon"))
        self.workload = self._make("workloads", config.workload.name)
        nr_pages = self.workload.nr_pages()
        room = (config.machine.memory + config.swap.size) >> 12
        if nr_pages > room:
            # the kernel would OOM-kill; the model has no OOM killer and would
            # only grind on with a full swap area
            raise ConfigError([f"swap.size: the workload maps {nr_pages << 2 >> 10} MiB but memory "
                               f"+ swap hold {room << 2 >> 10} MiB: it would run out of swap; "
                               f"raise swap.size"])
        self.mm.setup_anon(nr_pages)
        self.observers: list[Observer] = [o for os in pm.hook.swapsim_make_observers(sim=self)
                                          if os for o in os]
        self._tracers = [o for o in self.observers if o.wants_trace]
        self.tracing = bool(self._tracers)
        self.outcome: str | None = None
        self.message = ""
        self.finish_time: float | None = None
        self.last_progress = 0
        self.last_progress_time = 0.0
        self.diagnosis: dict[str, Any] | None = None

    # -- composition --------------------------------------------------------
    def _make(self, registry: str, name: str, slab: bool = False) -> Any:
        entry = self.pm.lookup(registry, name)
        options = (structure_options(self.config, name, entry.options)
                   if entry.options is not None else None)
        if not entry.options and name in self.config.plugin:
            raise ConfigError([f"plugin.{name}: {name!r} takes no options"])
        try:
            if slab:
                return entry.factory(self.mm, ncpus=self.config.machine.cpus,
                                     nnodes=self.config.machine.nodes,
                                     slab_pfmemalloc="slab-pfmemalloc" in self.patches,
                                     memalloc_socks=self.memalloc_socks, options=options)
            return entry.factory(self, options)
        except (PluginError, ConfigError):
            raise
        except Exception as exc:
            raise PluginError(f"{entry.plugin}: building {name!r} failed: "
                              f"{type(exc).__name__}: {exc}") from exc

    def rng(self, component: str) -> np.random.Generator:
        """A random stream of its own for ``component``, derived from the run's seed."""
        key = [ord(c) for c in component]
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def spawn(self, comm: str, gen_fn: Callable[[Task], Generator[Event, Any, Any]],
              flags: int = 0, kthread: bool = False) -> Task:
        self._pid += 1
        task = Task(pid=self._pid, comm=comm, flags=flags | (G.PF_KTHREAD if kthread else 0),
                    kthread=kthread, cpu=self._pid % self.config.machine.cpus)
        self.tasks.append(task)
        self.env.process(gen_fn(task), name=comm)
        return task

    memalloc_sock_count = 0
    _net: Any = None

    def net(self) -> Any:
        """The network stack, built on first use by a network transport."""
        if self._net is None:
            from .net import NetStack
            helper = self._make("rx_buffers", self.config.kernel.rx_buffer)
            self._net = NetStack(self, helper)
            self._net.start()
        return self._net

    def kmem_cache(self, name: str, size: int) -> int:
        """The slab cache ``name``, created on first use (caches are shared by name)."""
        caches = self.__dict__.setdefault("_caches", {})
        if name not in caches:
            caches[name] = self.slab.create_cache(name, size)
        return caches[name]

    def memalloc_socks(self) -> int:
        """sk_memalloc_socks(): how many sockets serve the VM (SLAB tags only then)."""
        return self.memalloc_sock_count

    def slab_pages(self) -> tuple[int, int]:
        return self.slab.nr_slab_pages() if self.slab is not None else (0, 0)

    # -- observation --------------------------------------------------------
    def trace(self, event: str, **fields: Any) -> None:
        """A tracepoint.  Free when no observer traces."""
        if self.tracing:
            for o in self._tracers:
                o.trace(self, event, fields)

    def vmstat_snapshot(self) -> dict[str, int]:
        return self.vmstat.snapshot(self.mm.state_counters())

    # -- running --------------------------------------------------------------
    def workload_done(self) -> None:
        self.finish_time = self.env.now
        self.outcome = "completed"
        self.env.stop("completed")

    def _sampler(self) -> Generator[Event, Any, None]:
        env = self.env
        lockup_after = self.config.sim.lockup_after
        while True:
            yield env.timeout(self.sample_interval)
            for o in self.observers:
                o.sample(self, env.now)
            touched = self.mm.pages_touched
            if touched != self.last_progress:
                self.last_progress = touched
                self.last_progress_time = env.now
            elif env.now - self.last_progress_time >= lockup_after:
                self.outcome = "lockup"
                self.message = (f"no workload progress for {env.now - self.last_progress_time:.0f}"
                                f" simulated seconds")
                self.diagnosis = self.diagnose()
                env.stop("lockup")
                return

    def _periodic(self, obj: Any) -> Generator[Event, Any, None]:
        env = self.env
        delay = obj.periodic(env.now)
        while delay is not None:
            yield env.timeout(delay)
            delay = obj.periodic(env.now)

    def run(self, progress: Callable[[float, float], None] | None = None) -> RunResult:
        """Run to completion, lockup, OOM or the time limit; return the result."""
        wall0 = time.perf_counter()
        env = self.env
        reclaim = self.mm.reclaim
        for node in self.mm.nodes:
            self.spawn(f"kswapd{node.nid}",
                       lambda task, node=node: reclaim.kswapd(node, task),
                       flags=G.PF_MEMALLOC | G.PF_SWAPWRITE | G.PF_KSWAPD, kthread=True)
        if self.slab is not None:
            env.process(self._periodic(self.slab), name="slab-reaper")
        self.transport.start()
        self.workload.start()
        for o in self.observers:
            o.start(self)
        self.pm.hook.swapsim_run_start(sim=self)
        env.process(self._sampler(), name="sampler")
        limit = self.config.sim.time_limit
        step = max(self.sample_interval * 10, 1.0)
        try:
            while self.outcome is None:
                until = min(limit, env.now + step)
                env.run(until=until)
                if progress is not None:
                    progress(env.now, self.workload.progress())
                if self.outcome is None and env.now >= limit:
                    self.outcome = "error"
                    self.message = f"simulated time limit {limit:g}s reached"
                    self.diagnosis = self.diagnose()
                elif self.outcome is None and not env.queued():
                    raise SimulationError("event queue ran dry before the workload finished")
        except OutOfMemory as exc:
            self.outcome = "oom"
            self.message = str(exc)
            self.diagnosis = self.diagnose()
        except SwapIOError as exc:
            self.outcome = "error"
            self.message = str(exc)
            self.diagnosis = self.diagnose()
        result = self._result(time.perf_counter() - wall0)
        for o in self.observers:
            o.finish(self, result)
        self.pm.hook.swapsim_run_end(sim=self, result=result)
        return result

    # -- results --------------------------------------------------------------
    def diagnose(self) -> dict[str, Any]:
        """Why nothing moves: where tasks wait, what I/O is stuck, free vs floors."""
        states: dict[str, int] = {}
        longest: dict[str, float] = {}
        now = self.env.now
        for t in self.workload.tasks:
            if t.done:
                continue
            states[t.state] = states.get(t.state, 0) + 1
            longest[t.state] = max(longest.get(t.state, 0.0), now - t.state_since)
        kthreads = {t.comm: {"state": t.state, "since_s": round(now - t.state_since, 6)}
                    for t in self.tasks if t.kthread}
        return {
            "time_s": round(now, 6),
            "workload_tasks": states,
            "longest_wait_s": {k: round(v, 6) for k, v in longest.items()},
            "kernel_threads": kthreads,
            "free_vs_floors": self.mm.free_vs_floors(),
            "swap_io": self.transport.diagnose(),
            "nr_writeback": self.mm.nr_writeback,
            "nr_reading": self.mm.nr_reading,
            "throttle": self.throttle.diagnose(),
            "slab": self.slab.diagnose() if self.slab is not None else {},
            "swap_cache": self.swap_cache.stats(),
        }

    def _result(self, wall: float) -> RunResult:
        wl_tasks = self.workload.tasks
        end = self.finish_time if self.finish_time is not None else self.env.now
        extra = {}
        for impl in self.pm.hook.swapsim_result_extra.get_hookimpls():
            if impl.hookwrapper or getattr(impl, "wrapper", False):
                continue
            data = impl.function(**{a: self for a in impl.argnames})
            if data:
                extra[impl.plugin_name] = data
        slab = ([{"name": c.name, "object_size": c.object_size, "active_objs": c.active_objs,
                  "num_objs": c.num_objs, "pages": c.pages,
                  "pfmemalloc_slabs": c.pfmemalloc_slabs} for c in self.slab.cache_stats()]
                if self.slab is not None else [])
        return RunResult(
            arm=self.arm, outcome=self.outcome or "error", seed=self.seed,
            elapsed_s=round(end, 6),
            user_s=round(sum(t.user_time for t in wl_tasks), 6),
            sys_s=round(sum(t.sys_time for t in wl_tasks), 6),
            kthread_s=round(self.cpus.kthread_time, 6),
            wall_s=round(wall, 3), sim_time_s=round(self.env.now, 6),
            min_free_kbytes=self.mm.min_free_kbytes,
            vmstat=self.vmstat_snapshot(), zones=self.mm.zone_table(),
            config=unstructure(self.config), message=self.message,
            diagnosis=self.diagnosis, transport=self.transport.stats(), slab=slab,
            throttle=self.throttle.diagnose(),
            swap_cache=self.swap_cache.stats(),
            extra=extra,
            events=self.env.events_processed, pages_touched=self.mm.pages_touched,
            plugins=[{"name": i.name, "distribution": i.distribution, "version": i.version}
                     for i in self.pm.plugin_infos()],
        )

    def vmstat_text(self) -> str:
        return format_vmstat(self.vmstat_snapshot())


def run_arm(config: Config, pm: SwapsimPluginManager, arm: str = "main",
            progress: Callable[[float, float], None] | None = None) -> tuple[RunResult, str]:
    sim = Simulation(config, pm, arm)
    result = sim.run(progress)
    return result, sim.vmstat_text()


__all__ = ["Simulation", "SimulationError", "run_arm", "__version__"]
