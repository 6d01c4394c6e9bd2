"""Root of the CLI: global options, error handling, command registration."""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any, Optional

import structlog
import typer
from rich.console import Console

from .. import __version__
from ..config import ConfigError
from ..pluginmanager import PluginError, get_plugin_manager
from ..registry import RegistryError

app = typer.Typer(
    name="swapsim",
    help="Simulate Linux memory management under swap over the network.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)

err_console = Console(stderr=True)

#: global options, set by the root callback
STATE: dict[str, Any] = {"autoload": None, "block": [], "log_level": None}


class UsageError(Exception):
    """Bad input from the user: one line, exit code 2."""


def fail(message: str) -> "typer.Exit":
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def plugin_manager():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm = get_plugin_manager(autoload=STATE["autoload"], block=STATE["block"])
    for w in caught:
        err_console.print(f"[yellow]warning:[/] {w.message}", highlight=False)
    return pm


def _version(value: bool) -> None:
    if value:
        typer.echo(f"swapsim {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
    no_autoload: bool = typer.Option(False, "--no-autoload",
                                     help="Load only built-in plugins (env: SWAPSIM_DISABLE_PLUGIN_AUTOLOAD=1)."),
    block: list[str] = typer.Option([], "--block", metavar="PLUGIN",
                                    help="Do not load this plugin (repeatable; env: SWAPSIM_BLOCK_PLUGINS=a,b)."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output (-v, -vv)."),
) -> None:
    STATE["autoload"] = False if no_autoload else None
    STATE["block"] = list(block)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    STATE["log_level"] = level  # for worker processes of `swapsim run --jobs`
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )


def main() -> None:
    from . import plugins_cmd, run_cmd, scenarios_cmd  # noqa: F401  (register commands)
    try:
        app()
    except (ConfigError, PluginError, RegistryError, UsageError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
