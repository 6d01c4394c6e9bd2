"""Built-in scenarios: the TOML files beside this module, registered as a plugin."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

from ..hookspecs import hookimpl


def _loader(filename: str) -> Any:
    def load() -> dict[str, Any]:
        return tomllib.loads(resources.files(__name__).joinpath(filename).read_text())
    return load


@hookimpl
def swapsim_register_scenarios(register: Any) -> None:
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            data = tomllib.loads(entry.read_text())
            register(entry.name[:-5], _loader(entry.name),
                     description=str(data.get("description", "")))
