"""The plugin manager and registries (swapsim.pluginmanager, swapsim.registry).

Third-party plugins are exercised through the real ``swapsim`` entry-point
group: each test writes a throwaway distribution (a module and a
``*.dist-info`` directory) into its tmp_path and puts it on sys.path.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import swapsim
from swapsim.config import build_scenario
from swapsim.hookspecs import hookimpl
from swapsim.pluginmanager import PluginError, get_plugin_manager
from swapsim.registry import RegistryError
from swapsim.simulation import Simulation

BUILTIN_PLUGINS = {"disk", "usemem", "throttle", "slab", "slub", "scenarios"}
THROTTLES = {"none", "pfmemalloc-half", "pfmemalloc-fraction", "pfmemalloc-bounded",
             "pfmemalloc-fifo"}


@pytest.fixture(autouse=True)
def _clean_plugin_env(monkeypatch):
    monkeypatch.delenv("SWAPSIM_BLOCK_PLUGINS", raising=False)
    monkeypatch.delenv("SWAPSIM_DISABLE_PLUGIN_AUTOLOAD", raising=False)


# -- throwaway distributions ----------------------------------------------------

THROWAWAY_MOD = '''
"""A third-party swap transport: every request completes after a fixed delay."""
from swapsim.block import SwapTransport
from swapsim.hookspecs import hookimpl

DELAY = 0.002


class Throwaway(SwapTransport):
    """Completes each request DELAY seconds after it is dispatched."""

    name = "throwaway"

    def __init__(self, sim, options=None):
        super().__init__(sim, options)
        self.dispatched = 0

    def dispatch(self, req):
        self.dispatched += 1
        req.waiting_for = "throwaway delay"
        self.env.call_later(DELAY, lambda: self.queue.complete(req))


@hookimpl
def swapsim_register_transports(register):
    register("throwaway", Throwaway)


@hookimpl
def swapsim_result_extra(sim):
    if isinstance(sim.transport, Throwaway):
        return {"dispatched": sim.transport.dispatched}
'''

BROKEN_MOD = '''
raise ImportError("libthrowaway.so.1: cannot open shared object file")
'''


class Distributions:
    """Writes installed-looking distributions into one sys.path entry."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.modules: list[str] = []
        monkeypatch.syspath_prepend(str(root))

    def add(self, dist: str, version: str, modules: dict[str, str],
            entry_points: dict[str, str]) -> None:
        for mod, source in modules.items():
            (self.root / f"{mod}.py").write_text(textwrap.dedent(source))
            self.modules.append(mod)
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(
            "[swapsim]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
        importlib.invalidate_caches()

    def forget(self) -> None:
        for mod in self.modules:
            sys.modules.pop(mod, None)


@pytest.fixture
def dists(tmp_path, monkeypatch):
    d = Distributions(tmp_path, monkeypatch)
    d.forget()
    yield d
    d.forget()
    importlib.invalidate_caches()


@pytest.fixture
def throwaway(dists):
    dists.add("swapsim-throwaway", "0.0.1", {"throwaway_mod": THROWAWAY_MOD},
              {"throwaway": "throwaway_mod"})
    return dists


@pytest.fixture
def broken(dists):
    dists.add("swapsim-broken", "9.9.9", {"broken_mod": BROKEN_MOD}, {"broken": "broken_mod"})
    return dists


def small_config(pm, **settings):
    raw = pm.lookup("scenarios", "disk-usemem").factory()
    overrides = ["machine.memory='32MiB'", "workload.passes=1", "sim.time_limit='10min'"]
    overrides += [f"{k}={v!r}" for k, v in settings.items()]
    return build_scenario(raw, "disk-usemem", overrides=overrides).arms[0].config


# -- fresh managers, built-ins ---------------------------------------------------

def test_each_call_returns_a_fresh_manager():
    a, b = get_plugin_manager(), get_plugin_manager()
    assert a is not b
    assert a.registry("transports") is not b.registry("transports")

    class Extra:
        @hookimpl
        def swapsim_register_transports(self, register):
            register("only-in-a", object)

    a.register_plugin(Extra(), "extra")
    assert "only-in-a" in a.registry("transports")
    assert "only-in-a" not in b.registry("transports")
    assert "extra" not in {i.name for i in b.plugin_infos()}
    assert "only-in-a" not in get_plugin_manager().registry("transports")


def test_unregistering_a_plugin_removes_its_registrations():
    pm = get_plugin_manager()

    class Extra:
        @hookimpl
        def swapsim_register_workloads(self, register):
            register("idle", object)

    pm.register_plugin(Extra(), "extra")
    assert "idle" in pm.registry("workloads")
    pm.unregister_plugin("extra")
    assert "idle" not in pm.registry("workloads")
    assert "extra" not in {i.name for i in pm.plugin_infos()}


def test_builtins_are_registered():
    pm = get_plugin_manager()
    assert "disk" in pm.registry("transports")
    assert "usemem" in pm.registry("workloads")
    assert set(pm.registry("throttle_strategies").names()) >= THROTTLES
    assert {"slab", "slub"} <= set(pm.registry("slab_allocators").names())
    assert "disk-usemem" in pm.registry("scenarios")
    raw = pm.lookup("scenarios", "disk-usemem").factory()
    assert raw["swap"]["transport"] == "disk"


def test_builtins_are_recorded_with_distribution_version_and_hooks():
    infos = {i.name: i for i in get_plugin_manager().plugin_infos()}
    assert BUILTIN_PLUGINS <= set(infos)
    for name in BUILTIN_PLUGINS:
        info = infos[name]
        assert (info.distribution, info.version, info.error) == ("swapsim", swapsim.__version__,
                                                                None)
        assert info.hooks and all(h.startswith("swapsim_") for h in info.hooks)
    assert infos["disk"].hooks == ["swapsim_register_transports"]
    assert infos["slub"].hooks == ["swapsim_register_slab_allocators"]


def test_entries_know_their_plugin_and_description():
    pm = get_plugin_manager()
    assert pm.lookup("slab_allocators", "slub").plugin == "slub"
    assert pm.lookup("throttle_strategies", "pfmemalloc-half").plugin == "throttle"
    assert pm.lookup("transports", "disk").description  # from the docstring


# -- blocking ---------------------------------------------------------------------

def test_blocking_a_plugin_by_argument_removes_its_registrations():
    pm = get_plugin_manager(block=["slub", "throttle"])
    assert pm.registry("slab_allocators").names() == ["slab"]
    assert pm.registry("throttle_strategies").names() == []
    assert "disk" in pm.registry("transports")
    names = {i.name for i in pm.plugin_infos()}
    assert "slub" not in names and "throttle" not in names
    with pytest.raises(PluginError):
        pm.lookup("slab_allocators", "slub")


def test_blocking_a_plugin_by_environment(monkeypatch):
    monkeypatch.setenv("SWAPSIM_BLOCK_PLUGINS", " disk , usemem")
    pm = get_plugin_manager()
    assert "disk" not in pm.registry("transports")
    assert "usemem" not in pm.registry("workloads")
    assert "slab" in pm.registry("slab_allocators")
    assert not {"disk", "usemem"} & {i.name for i in pm.plugin_infos()}


def test_a_blocked_extra_plugin_is_not_listed():
    class Mine:
        @hookimpl
        def swapsim_register_transports(self, register):
            register("mine", object)

    pm = get_plugin_manager(block=["mine"], extra=[("mine", Mine())])
    assert "mine" not in pm.registry("transports")
    assert "mine" not in {i.name for i in pm.plugin_infos()}


# -- registry errors ----------------------------------------------------------------

def test_duplicate_registration_names_both_plugins():
    class Copycat:
        @hookimpl
        def swapsim_register_throttle_strategies(self, register):
            register("none", object)

    pm = get_plugin_manager(extra=[("copycat", Copycat())])
    with pytest.raises(RegistryError) as ei:
        pm.registry("throttle_strategies")
    msg = str(ei.value)
    assert "'none'" in msg and "plugin 'throttle'" in msg and "plugin 'copycat'" in msg
    with pytest.raises((RegistryError, PluginError), match="copycat"):
        pm.lookup("throttle_strategies", "none")


def test_unknown_name_lists_what_is_available():
    pm = get_plugin_manager()
    with pytest.raises(PluginError) as ei:
        pm.lookup("transports", "carrier-pigeon")
    msg = str(ei.value)
    assert msg.startswith("swap.transport: ")
    assert "'carrier-pigeon'" in msg and "disk" in msg
    with pytest.raises(PluginError) as ei:
        pm.lookup("throttle_strategies", "sometimes")
    msg = str(ei.value)
    assert msg.startswith("kernel.throttle: ")
    assert all(name in msg for name in THROTTLES)


def test_simulation_with_an_unknown_transport_fails_before_running():
    pm = get_plugin_manager()
    with pytest.raises(PluginError, match="'carrier-pigeon'"):
        Simulation(small_config(pm, **{"swap.transport": "carrier-pigeon"}), pm)


# -- a third-party plugin through the real entry-point group -------------------------

def test_throwaway_plugin_is_discovered(throwaway):
    pm = get_plugin_manager()
    infos = {i.name: i for i in pm.plugin_infos()}
    info = infos["throwaway"]
    assert (info.distribution, info.version, info.module, info.error) == (
        "swapsim-throwaway", "0.0.1", "throwaway_mod", None)
    assert info.hooks == ["swapsim_register_transports", "swapsim_result_extra"]
    # built-ins are listed first, third parties after
    order = [i.name for i in pm.plugin_infos()]
    assert order.index("throwaway") > max(order.index(b) for b in BUILTIN_PLUGINS)
    entry = pm.lookup("transports", "throwaway")
    assert entry.plugin == "throwaway"
    assert entry.description == "Completes each request DELAY seconds after it is dispatched."


def test_throwaway_transport_runs_a_simulation(throwaway):
    pm = get_plugin_manager()
    config = small_config(pm, **{"swap.transport": "throwaway"})
    assert config.swap.transport == "throwaway"
    result = Simulation(config, pm).run()
    assert result.outcome == "completed", result.message
    assert result.transport["writes_completed"] > 0
    assert result.transport["errors"] == 0
    assert result.extra["throwaway"]["dispatched"] >= result.transport["writes_completed"]
    recorded = {p["name"]: p for p in result.plugins}
    assert recorded["throwaway"] == {"name": "throwaway", "distribution": "swapsim-throwaway",
                                     "version": "0.0.1"}


def test_autoload_false_skips_third_party_plugins(throwaway):
    pm = get_plugin_manager(autoload=False)
    assert "throwaway" not in {i.name for i in pm.plugin_infos()}
    assert "throwaway" not in pm.registry("transports")
    assert "throwaway_mod" not in sys.modules
    assert BUILTIN_PLUGINS <= {i.name for i in pm.plugin_infos()}
    with pytest.raises(PluginError, match="'throwaway'"):
        pm.lookup("transports", "throwaway")


def test_autoload_disabled_by_environment(throwaway, monkeypatch):
    monkeypatch.setenv("SWAPSIM_DISABLE_PLUGIN_AUTOLOAD", "1")
    pm = get_plugin_manager()
    assert "throwaway" not in pm.registry("transports")
    assert "disk" in pm.registry("transports")
    monkeypatch.setenv("SWAPSIM_DISABLE_PLUGIN_AUTOLOAD", "0")
    assert "throwaway" in get_plugin_manager().registry("transports")


def test_blocked_third_party_plugin_is_not_even_imported(throwaway):
    pm = get_plugin_manager(block=["throwaway"])
    assert "throwaway" not in pm.registry("transports")
    assert "throwaway_mod" not in sys.modules


def test_plugin_is_gone_when_its_distribution_is(throwaway, monkeypatch):
    assert "throwaway" in get_plugin_manager().registry("transports")
    sys.path.remove(str(throwaway.root))  # monkeypatch restores sys.path afterwards
    importlib.invalidate_caches()
    assert "throwaway" not in get_plugin_manager().registry("transports")


# -- a broken plugin ----------------------------------------------------------------------

def test_broken_plugin_warns_and_is_recorded(broken):
    with pytest.warns(RuntimeWarning, match="broken") as record:
        pm = get_plugin_manager()
    (w,) = [w for w in record if issubclass(w.category, RuntimeWarning)]
    text = str(w.message)
    assert "swapsim-broken" in text and "ImportError" in text and "libthrowaway" in text
    (info,) = pm.broken()
    assert (info.name, info.distribution, info.version) == ("broken", "swapsim-broken", "9.9.9")
    assert info.error.startswith("ImportError: ")
    assert "broken" in {i.name for i in pm.plugin_infos()}
    # everything else still works
    assert "disk" in pm.registry("transports")


def test_selecting_a_broken_plugin_names_plugin_and_distribution(broken):
    with pytest.warns(RuntimeWarning):
        pm = get_plugin_manager()
    with pytest.raises(PluginError) as ei:
        pm.lookup("transports", "broken")
    msg = str(ei.value)
    assert "'broken'" in msg and "swapsim-broken" in msg and "9.9.9" in msg
    assert "libthrowaway" in msg
    with pytest.raises(PluginError, match="swapsim-broken"):
        Simulation(small_config(pm, **{"swap.transport": "broken"}), pm)


def test_a_broken_plugin_the_config_does_not_use_is_only_a_warning(broken):
    with pytest.warns(RuntimeWarning):
        pm = get_plugin_manager()
    result = Simulation(small_config(pm), pm).run()
    assert result.outcome == "completed", result.message


def test_blocking_a_broken_plugin_silences_it(broken):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pm = get_plugin_manager(block=["broken"])
    assert pm.broken() == []
    assert "broken_mod" not in sys.modules


def test_a_broken_plugin_beside_a_working_one(broken, throwaway):
    with pytest.warns(RuntimeWarning, match="swapsim-broken"):
        pm = get_plugin_manager()
    assert "throwaway" in pm.registry("transports")
    assert [i.name for i in pm.broken()] == ["broken"]


def test_hookimpl_is_exported_at_top_level():
    assert swapsim.hookimpl is hookimpl
