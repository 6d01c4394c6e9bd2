"""The real wheel: build it, install it into a fresh venv, use it from there.

The editable install the suite normally runs against remaps ``core/`` and
``plugins/`` onto ``swapsim``; this checks that the wheel does the same on its
own: one import root, plugins found through entry-point metadata, package
data shipped, the console script working, nothing called ``core`` or
``plugins`` in site-packages.

The build runs on a copy of the source tree so that setuptools' ``build/``
and ``*.egg-info`` never land in (or get stale in) the working tree.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILTIN_ENTRY_POINTS = {"disk", "usemem", "slab", "slub", "throttle", "scenarios"}
IGNORE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", "*.pyc",
                                ".venv", ".hypothesis", ".pytest_cache", ".benchmarks",
                                "results", "*.whl")


def run(*cmd, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                    f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if importlib.util.find_spec("build") is None:
        run(sys.executable, "-m", "pip", "install", "--quiet", "build", cwd=REPO)
    root = tmp_path_factory.mktemp("packaging")
    src = root / "src"
    shutil.copytree(REPO, src, ignore=IGNORE)
    out = root / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--outdir", out, cwd=src)
    (whl,) = out.glob("swapsim-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("venv")
    env_dir = home / "venv"
    run(sys.executable, "-m", "venv", env_dir, cwd=home)
    run(env_dir / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, cwd=home)
    return env_dir


def vpython(venv: Path, code: str, check: bool = True) -> subprocess.CompletedProcess:
    # cwd is the venv's parent: neither the repo nor its core/ or plugins/ is on sys.path
    return run(venv / "bin" / "python", "-c", code, cwd=venv.parent, check=check)


def test_wheel_has_one_import_root(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert len(dist_info) == 1
    assert tops - dist_info == {"swapsim"}
    assert "swapsim/plugins/disk/__init__.py" in names
    assert "swapsim/plugins/slub/__init__.py" in names
    assert "swapsim/mm/zone.py" in names
    assert "swapsim/scenarios/disk-usemem.toml" in names  # package data


def test_wheel_declares_entry_points(wheel):
    (ep_file,) = [n for n in zipfile.ZipFile(wheel).namelist()
                  if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(ep_file).decode()
    assert "[swapsim]" in text
    assert "swapsim = swapsim.cli:main" in text


def test_installed_package_comes_from_the_venv(venv):
    path = vpython(venv, "import swapsim; print(swapsim.__file__)").stdout.strip()
    assert Path(path).is_relative_to(venv)
    assert not Path(path).is_relative_to(REPO)


def test_plugins_import_under_swapsim(venv):
    out = vpython(venv, "import swapsim.plugins.disk, swapsim.plugins.slub; "
                        "print(swapsim.plugins.slub.SLUBAllocator.__module__)")
    assert out.stdout.strip() == "swapsim.plugins.slub.allocator"


@pytest.mark.parametrize("name", ["core", "plugins"])
def test_no_top_level_core_or_plugins(venv, name):
    proc = vpython(venv, f"import {name}", check=False)
    assert proc.returncode != 0
    assert "ModuleNotFoundError" in proc.stderr


def test_entry_points_in_the_venv(venv):
    out = vpython(venv, "from importlib.metadata import entry_points; "
                        "print(sorted(e.name for e in entry_points(group='swapsim')))")
    names = set(ast.literal_eval(out.stdout))
    assert BUILTIN_ENTRY_POINTS <= names


def test_plugin_manager_and_scenarios_work_from_the_wheel(venv):
    code = ("from swapsim.pluginmanager import get_plugin_manager\n"
            "pm = get_plugin_manager()\n"
            "print(sorted((i.name, i.distribution) for i in pm.plugin_infos()))\n"
            "print(pm.lookup('scenarios', 'disk-usemem').factory()['swap']['transport'])\n")
    out = vpython(venv, code).stdout.splitlines()
    infos = dict(ast.literal_eval(out[0]))
    assert {n: infos.get(n) for n in BUILTIN_ENTRY_POINTS} == {
        n: "swapsim" for n in BUILTIN_ENTRY_POINTS}
    assert out[1] == "disk"


def test_console_script_help(venv):
    proc = run(venv / "bin" / "swapsim", "--help", cwd=venv.parent)
    assert "Usage" in proc.stdout
    assert "Traceback" not in proc.stderr
