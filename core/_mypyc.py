"""Hints for mypyc, which compiles some of swapsim's modules (see setup.py).

``mypyc_attr`` is mypy_extensions' decorator when that is installed and a
no-op otherwise: only the compiler reads it, from the source, so the
uncompiled package does not need mypy_extensions.  A compiled class marked
``@mypyc_attr(allow_interpreted_subclasses=True)`` can be subclassed by plain
Python code: plugins and tests do that with the base classes they implement;
such a base class declares the class variables subclasses set (``name`` …)
``ClassVar``, so that a subclass's own are the ones seen.

The small records the hot loops touch are native classes, never attrs
classes: mypyc leaves an attrs ``define`` class a dict-based Python class.
Those made often (Request, AllocContext, ScanControl) are plain classes with
their own ``__init__``: mypyc compiles a stdlib dataclass as a native class
but its generated ``__init__`` stays interpreted (about 0.4 us a call); the
long-lived ones (Task, Zone) are dataclasses.

Module-level constants of compiled modules (flags, gfp masks, sizes) are
declared ``Final``: compiled code looks a plain module global up in the
module's dict at every use, while it inlines a Final int literal (folding
expressions of them, across modules) and reads any other Final value from a
C static.
"""

from __future__ import annotations

from typing import Any

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # pragma: no cover - depends on what is installed
    def mypyc_attr(*attrs: str, **kwattrs: Any) -> Any:  # type: ignore[no-redef,misc]
        return lambda cls: cls

__all__ = ["mypyc_attr"]
