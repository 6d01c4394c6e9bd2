"""Every hook swapsim calls, grouped by lifecycle.

Plugins implement these with ``@swapsim.hookimpl``.  pluggy composes the
simulation once, before it runs; it is never called per page or per packet.
Choosing an implementation is a registry lookup by the name the configuration
gives, never a firstresult race, so results do not depend on the order in
which plugins were registered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from .config import Config
    from .registry import Register
    from .results import RunResult
    from .simulation import Simulation

hookspec = pluggy.HookspecMarker("swapsim")
hookimpl = pluggy.HookimplMarker("swapsim")

# -- register -------------------------------------------------------------
# Each register hook receives a ``register(name, factory, *, options=None,
# description="")`` callable.  ``factory(sim, options)`` builds the policy
# object when a simulation is composed; ``options`` is an attrs class that
# structures the plugin's ``[plugin.<name>]`` table (or None).  Not firstresult:
# every plugin is asked.  Registering a name twice is an error that names both
# plugins.


@hookspec
def swapsim_register_transports(register: "Register") -> None:
    """Register swap transports (:class:`swapsim.swap.SwapTransport` subclasses).

    Selected by ``swap.transport``.
    """


@hookspec
def swapsim_register_slab_allocators(register: "Register") -> None:
    """Register slab allocators (:class:`swapsim.slab.SlabAllocator` subclasses).

    Selected by ``kernel.slab``.
    """


@hookspec
def swapsim_register_throttle_strategies(register: "Register") -> None:
    """Register direct-reclaim throttling strategies
    (:class:`swapsim.mm.throttle.ThrottleStrategy` subclasses).

    Selected by ``kernel.throttle``; used only while the ``throttle`` patch
    switch is on (the ``none`` strategy is used otherwise).
    """


@hookspec
def swapsim_register_rx_buffers(register: "Register") -> None:
    """Register driver receive-buffer helpers (how a NIC refills its rx ring).

    Selected by ``kernel.rx_buffer``.
    """


@hookspec
def swapsim_register_workloads(register: "Register") -> None:
    """Register workloads (:class:`swapsim.workload.Workload` subclasses).

    Selected by ``workload.name``.
    """


@hookspec
def swapsim_register_scenarios(register: "Register") -> None:
    """Register built-in scenarios: ``factory`` is a zero-argument callable
    returning the raw TOML tree (a dict).  Listed by ``swapsim scenarios``.
    """


# -- configure ------------------------------------------------------------


@hookspec
def swapsim_check_config(config: "Config") -> list[str] | None:
    """Return problems with ``config`` as ``key.path: what is wrong`` lines.

    Called once per arm before the simulation is built; every plugin is
    asked and all problems are reported together.
    """


# -- run ------------------------------------------------------------------


@hookspec
def swapsim_make_observers(sim: "Simulation") -> list[Any] | None:
    """Return observers (:class:`swapsim.observe.Observer`) for this simulation.

    Called once when the simulation is composed.  Observers receive
    ``start``, ``sample`` (every ``sim.sample_interval`` simulated seconds) and
    ``finish``; they must not change the simulation's state.
    """


@hookspec
def swapsim_run_start(sim: "Simulation") -> None:
    """The simulation is composed and about to run."""


@hookspec
def swapsim_run_end(sim: "Simulation", result: "RunResult") -> None:
    """The run ended (completed, lockup, oom or error); ``result`` is final."""


# -- report ---------------------------------------------------------------


@hookspec
def swapsim_result_extra(sim: "Simulation") -> dict[str, Any] | None:
    """Return extra plain data to store under ``result.extra[<plugin>]``.

    Called once at the end of a run; values must be JSON-serialisable.
    """
