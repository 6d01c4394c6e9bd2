"""Compile swapsim's hot modules with mypyc — an accelerator only.

Everything else about the package (names, package-dir mapping, entry points,
package data) is in pyproject.toml.  This file only adds C extension modules:
the modules in ``COMPILED`` are compiled with mypyc and shipped next to their
``.py`` sources (Python imports the extension when both are there).  The
results are the same, byte for byte; the uncompiled sources stay the
reference.

Compilation is skipped, and the package is pure Python, when

- the install is editable (``pip install -e``): the sources you edit are what runs;
- ``SWAPSIM_COMPILE=0`` is set in the environment;
- mypyc cannot be imported (a build without build isolation that lacks it).

Compiled classes are native classes: plain Python code can subclass only
those marked ``mypyc_attr(allow_interpreted_subclasses=True)`` (see
core/_mypyc.py), cannot replace their methods, and a class variable that
subclasses override must be declared ``ClassVar``; the small records of the
hot loops are native classes (core/_mypyc.py says which and why).  An attrs options class
whose defaults come from ``field(...)`` fails at import when compiled: the
allocators call ``field`` through an untyped alias, the NBD plugin keeps its
options in an uncompiled module.

mypy has to see the modules under their real names (``swapsim.engine``, not
``core.engine``), so the sources are copied to ``build/mypyc/src/swapsim``
(laid out like the installed package) and compiled from there.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent

#: the hot modules, as installed-package paths (swapsim/... ↔ core/..., swapsim/plugins/... ↔ plugins/...)
COMPILED = [
    "swapsim/engine.py",
    "swapsim/cpu.py",
    "swapsim/block.py",
    "swapsim/slab.py",
    "swapsim/net.py",
    "swapsim/mm/gfp.py",
    "swapsim/mm/pages.py",
    "swapsim/mm/zone.py",
    "swapsim/mm/swapfile.py",
    "swapsim/mm/swap_state.py",
    "swapsim/mm/memory.py",
    "swapsim/mm/vmscan.py",
    "swapsim/mm/throttle.py",
    "swapsim/plugins/slab/allocator.py",
    "swapsim/plugins/slub/allocator.py",
    "swapsim/plugins/nbd/transport.py",
    "swapsim/plugins/rxbuf/helpers.py",
]

#: mypy's view of the world while compiling: third-party packages other than
#: attrs (whose plugin mypy needs for the @define classes) are opaque, so the
#: build does not depend on which of them happen to be installed.
MYPY_INI = """\
[mypy]
follow_imports = silent
ignore_missing_imports = True
warn_unused_configs = False

[mypy-numpy.*,structlog.*,pluggy.*,cattrs.*,typer.*,rich.*,click.*,simpy.*,hypothesis.*]
follow_imports = skip
follow_imports_for_stubs = True
"""


def _stage(dest: Path) -> None:
    """Copy the sources into ``dest/swapsim`` laid out as installed."""
    if dest.exists():
        shutil.rmtree(dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(HERE / "core", dest / "swapsim", ignore=ignore)
    shutil.copytree(HERE / "plugins", dest / "swapsim" / "plugins", ignore=ignore)


def _drop_stale_build() -> None:
    """Remove what an earlier build left in ``build/lib*``: build_py copies
    sources over it but never deletes, so a module since removed from the
    tree (and its compiled extension) would ship in the next wheel."""
    for stale in Path("build").glob("lib*"):
        shutil.rmtree(stale)


def ext_modules() -> list:
    if any(arg.startswith("editable") or arg == "develop" for arg in sys.argv[1:]):
        return []
    if not any(arg.startswith(("build", "bdist", "install")) for arg in sys.argv[1:]):
        return []  # egg_info, sdist, dist_info …: no need to run mypy
    _drop_stale_build()
    if os.environ.get("SWAPSIM_COMPILE", "1") == "0":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("swapsim: mypyc not available, installing uncompiled", file=sys.stderr)
        return []
    work = Path("build") / "mypyc"
    src = work / "src"
    _stage(src)
    ini = work / "mypy.ini"
    ini.write_text(MYPY_INI)
    return mypycify(
        [f"--config-file={ini}", f"--cache-dir={work / 'cache'}",
         *(str(src / p) for p in COMPILED)],
        opt_level="3",
        target_dir=str(work / "c"),
        group_name="swapsim._native",
    )


setup(ext_modules=ext_modules())
