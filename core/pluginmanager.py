"""The plugin manager: discovery, blocking, registries.

Built-in plugins are entry points of the ``swapsim`` distribution in the
``swapsim`` group, discovered exactly like third-party ones.  Every call of
:func:`get_plugin_manager` returns a fresh manager, so tests and the arms of
an A/B comparison never share plugin state.

``SWAPSIM_DISABLE_PLUGIN_AUTOLOAD=1`` (or ``--no-autoload``) skips third-party
entry points; ``SWAPSIM_BLOCK_PLUGINS=a,b`` (or ``--block``) skips plugins by
name, built-ins included.
"""

from __future__ import annotations

import importlib
import os
import warnings
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Iterable

import pluggy
import structlog
from attrs import define, field

from . import hookspecs
from .registry import Register, Registry, RegistryError

log = structlog.get_logger()

GROUP = "swapsim"
DIST = "swapsim"

#: Built-ins, used when swapsim runs from a source tree without metadata.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("disk", "swapsim.plugins.disk"),
    ("usemem", "swapsim.plugins.usemem"),
    ("throttle", "swapsim.plugins.throttle"),
    ("slab", "swapsim.plugins.slab"),
    ("slub", "swapsim.plugins.slub"),
    ("nbd", "swapsim.plugins.nbd"),
    ("rxbuf", "swapsim.plugins.rxbuf"),
    ("scenarios", "swapsim.scenarios"),
)

#: registry attribute -> (hook name, kind, config key)
REGISTRIES: dict[str, tuple[str, str, str]] = {
    "transports": ("swapsim_register_transports", "swap transport", "swap.transport"),
    "slab_allocators": ("swapsim_register_slab_allocators", "slab allocator", "kernel.slab"),
    "throttle_strategies": ("swapsim_register_throttle_strategies", "throttle strategy",
                            "kernel.throttle"),
    "rx_buffers": ("swapsim_register_rx_buffers", "rx-buffer helper", "kernel.rx_buffer"),
    "workloads": ("swapsim_register_workloads", "workload", "workload.name"),
    "scenarios": ("swapsim_register_scenarios", "scenario", "SCENARIO"),
}


class PluginError(RuntimeError):
    """A plugin that the configuration needs could not be loaded or used."""


@define
class PluginInfo:
    name: str
    distribution: str
    version: str
    module: str
    hooks: list[str] = field(factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "distribution": self.distribution, "version": self.version,
                "module": self.module, "hooks": self.hooks, "error": self.error}


class SwapsimPluginManager(pluggy.PluginManager):
    """pluggy's manager plus swapsim's registries and plugin records."""

    def __init__(self) -> None:
        super().__init__(GROUP)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._registries: dict[str, Registry] | None = None

    def register_plugin(self, module: ModuleType | object, name: str, distribution: str = "",
                        version: str = "") -> None:
        if self.register(module, name=name) is None:
            return  # blocked
        self.infos[name] = PluginInfo(name, distribution, version,
                                      getattr(module, "__name__", type(module).__name__))
        self._registries = None

    def unregister_plugin(self, name: str) -> None:
        self.unregister(name=name)
        self.infos.pop(name, None)
        self._registries = None

    def plugin_infos(self) -> list[PluginInfo]:
        for info in self.infos.values():
            if info.error is None:
                plugin = self.get_plugin(info.name)
                info.hooks = sorted(h.name for h in self.get_hookcallers(plugin) or ())
        return sorted(self.infos.values(), key=lambda i: (i.distribution != DIST, i.name))

    def broken(self) -> list[PluginInfo]:
        return [i for i in self.infos.values() if i.error is not None]

    def registry(self, which: str) -> Registry:
        if self._registries is None:
            self._registries = self._build_registries()
        return self._registries[which]

    def _build_registries(self) -> dict[str, Registry]:
        regs = {}
        for attr, (hook, kind, key) in REGISTRIES.items():
            reg = Registry(kind, key)
            caller = getattr(self.hook, hook)
            for impl in caller.get_hookimpls():
                if impl.hookwrapper or getattr(impl, "wrapper", False):
                    continue
                impl.function(**{a: Register(reg, impl.plugin_name) for a in impl.argnames})
            regs[attr] = reg
        return regs

    def lookup(self, which: str, name: str):
        """The registry entry for ``name``; a broken plugin of that name is named."""
        try:
            return self.registry(which).get(name)
        except RegistryError as exc:
            for info in self.broken():
                if name in (info.name, info.module.rsplit(".", 1)[-1].split(":")[-1]):
                    raise PluginError(f"{REGISTRIES[which][2]}: {REGISTRIES[which][1]} {name!r} "
                                      f"is provided by plugin {info.name!r} (distribution "
                                      f"{info.distribution} {info.version}), which failed to "
                                      f"load: {info.error}") from None
            raise PluginError(str(exc)) from None


def _env_list(name: str) -> list[str]:
    return [p.strip() for p in os.environ.get(name, "").split(",") if p.strip()]


def get_plugin_manager(*, autoload: bool | None = None, block: Iterable[str] = (),
                       extra: Iterable[tuple[str, object]] = ()) -> SwapsimPluginManager:
    """A fresh, fully loaded plugin manager.

    ``autoload=False`` loads only the built-ins; ``block`` names plugins to
    skip; ``extra`` registers (name, plugin object) pairs, for tests and
    embedding.
    """
    if autoload is None:
        autoload = os.environ.get("SWAPSIM_DISABLE_PLUGIN_AUTOLOAD", "") in ("", "0")
    blocked = set(block) | set(_env_list("SWAPSIM_BLOCK_PLUGINS"))
    pm = SwapsimPluginManager()
    for name in blocked:
        pm.set_blocked(name)
    seen_builtin = False
    for ep in sorted(entry_points(group=GROUP), key=lambda e: (e.dist.name if e.dist else "", e.name)):
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        builtin = dist == DIST
        seen_builtin |= builtin
        if (not builtin and not autoload) or ep.name in blocked:
            continue
        if pm.has_plugin(ep.name):
            warnings.warn(f"swapsim plugin {ep.name!r} from {dist} {version} is ignored: "
                          f"a plugin of that name is already loaded", RuntimeWarning, stacklevel=2)
            continue
        try:
            module = ep.load()
        except Exception as exc:  # a broken third-party plugin must not take swapsim down
            pm.infos[ep.name] = PluginInfo(ep.name, dist, version, ep.value,
                                           error=f"{type(exc).__name__}: {exc}")
            warnings.warn(f"swapsim plugin {ep.name!r} from {dist} {version} failed to load: "
                          f"{type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
            continue
        pm.register_plugin(module, ep.name, dist, version)
    if not seen_builtin:  # running from a source tree with no installed metadata
        from . import __version__
        for name, modname in BUILTIN_PLUGINS:
            if name not in blocked and not pm.has_plugin(name):
                pm.register_plugin(importlib.import_module(modname), name, DIST, __version__)
    for name, plugin in extra:
        pm.register_plugin(plugin, name, getattr(plugin, "__distribution__", "(local)"),
                           getattr(plugin, "__version__", ""))
    pm.check_pending()
    return pm
