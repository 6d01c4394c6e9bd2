"""swapsim: simulate Linux memory management under swap over the network."""

__version__ = "0.1.0"

from .hookspecs import hookimpl, hookspec  # noqa: E402

__all__ = ["__version__", "hookimpl", "hookspec"]
