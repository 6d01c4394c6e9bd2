"""``swapsim scenarios``: the built-in (and plugin-provided) scenarios."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .app import app, plugin_manager


@app.command("scenarios")
def scenarios() -> None:
    """List the scenarios ``swapsim run NAME`` accepts."""
    pm = plugin_manager()
    table = Table(title="scenarios")
    table.add_column("name", style="bold")
    table.add_column("arms")
    table.add_column("from")
    table.add_column("description")
    for entry in pm.registry("scenarios").entries():
        arms = entry.factory().get("arms") or {"main": {}}
        table.add_row(entry.name, ", ".join(arms), entry.plugin, entry.description)
    Console().print(table)
