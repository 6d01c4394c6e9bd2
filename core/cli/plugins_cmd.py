"""``swapsim plugins``: what is loaded, from where, implementing which hooks."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from ..pluginmanager import REGISTRIES
from .app import app, plugin_manager


def _singular(attr: str) -> str:
    return attr[:-3] + "y" if attr.endswith("ies") else attr[:-1]


@app.command("plugins")
def plugins(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List plugins: name, distribution, version, hooks, and what they register."""
    pm = plugin_manager()
    provides: dict[str, list[str]] = {}
    for attr in REGISTRIES:
        for entry in pm.registry(attr).entries():
            provides.setdefault(entry.plugin, []).append(f"{_singular(attr)}:{entry.name}")
    infos = pm.plugin_infos()
    if as_json:
        typer.echo(json.dumps([dict(i.to_dict(), provides=provides.get(i.name, []))
                               for i in infos], indent=1))
        return
    table = Table(title="swapsim plugins")
    for col in ("name", "distribution", "version", "hooks", "provides"):
        table.add_column(col)
    for i in infos:
        hooks = i.error and f"[red]failed: {i.error}[/]" or "\n".join(i.hooks)
        table.add_row(i.name, i.distribution, i.version, hooks,
                      "\n".join(provides.get(i.name, [])))
    Console().print(table)
