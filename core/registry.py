"""Registries: how a configuration picks an implementation by name."""

from __future__ import annotations

from typing import Any, Callable

from attrs import frozen


class RegistryError(ValueError):
    """A name is registered twice, or a configuration asks for an unknown name."""


@frozen
class Entry:
    name: str
    factory: Callable[..., Any]
    options: type | None
    description: str
    plugin: str  # the plugin that registered it


class Register:
    """The ``register`` callable handed to ``swapsim_register_*`` hooks."""

    def __init__(self, registry: "Registry", plugin: str) -> None:
        self._registry = registry
        self._plugin = plugin

    def __call__(self, name: str, factory: Callable[..., Any], *, options: type | None = None,
                 description: str = "") -> None:
        doc = (getattr(factory, "__doc__", None) or "").strip().splitlines()
        self._registry.add(Entry(name, factory, options, description or (doc[0] if doc else ""),
                                 self._plugin))


class Registry:
    """Implementations of one kind (transports, slab allocators, …) by name."""

    def __init__(self, kind: str, config_key: str) -> None:
        self.kind = kind
        self.config_key = config_key
        self._entries: dict[str, Entry] = {}

    def add(self, entry: Entry) -> None:
        old = self._entries.get(entry.name)
        if old is not None:
            raise RegistryError(f"{self.kind} {entry.name!r} is registered by both plugin "
                                f"{old.plugin!r} and plugin {entry.plugin!r}")
        self._entries[entry.name] = entry

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "nothing is registered"
            raise RegistryError(f"{self.config_key}: unknown {self.kind} {name!r} "
                                f"(available: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._entries
