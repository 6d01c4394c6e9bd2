"""The ``swapsim`` command line (typer).  One module per command group."""

from __future__ import annotations

from .app import app, main

__all__ = ["app", "main"]
