"""``swapsim run``: run every arm of a scenario and compare them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..config import ConfigError, build_scenario, load_toml
from ..results import RunResult, dumps, write_run
from ..runner import PluginOptions, default_jobs, run_arms
from .app import STATE, UsageError, app, plugin_manager

DEFAULT_SCENARIO = "seed"

#: counters shown in the comparison table
KEY_COUNTERS = ("pswpin", "pswpout", "allocstall", "pgscan_direct_throttle", "pgmajfault",
                "swap_ra", "swap_ra_hit")


def resolve_scenario(pm: Any, scenario: str) -> tuple[str, dict[str, Any]]:
    """A path to a TOML file, or the name of a registered scenario."""
    path = Path(scenario)
    if scenario.endswith(".toml") or path.exists():
        return path.stem, load_toml(path)
    if scenario in pm.registry("scenarios"):
        return scenario, pm.registry("scenarios").get(scenario).factory()
    names = ", ".join(pm.registry("scenarios").names())
    raise UsageError(f"scenario {scenario!r} is neither a TOML file nor a built-in "
                     f"scenario ({names})")


def _secs(x: Any) -> str:
    return f"{x:.2f} s" if isinstance(x, (int, float)) else "?"


def diagnosis_summary(d: dict[str, Any]) -> list[str]:
    """The lockup diagnosis in a few lines: where the tasks wait, the kernel
    threads, free pages against the floors, the stuck I/O.  The whole of it
    (slab caches, the transport's own state) is in --json and --out."""
    lines = []
    longest = d.get("longest_wait_s", {})
    tasks = d.get("workload_tasks", {})
    if tasks:
        lines.append("workload tasks: " + ", ".join(
            f"{n} in {state} (longest {_secs(longest.get(state))})"
            for state, n in sorted(tasks.items(), key=lambda kv: -kv[1])))
    kthreads = d.get("kernel_threads", {})
    if kthreads:
        lines.append("kernel threads: " + ", ".join(
            f"{comm} in {k.get('state')} for {_secs(k.get('since_s'))}" for comm, k in kthreads.items()))
    zones = d.get("free_vs_floors", [])
    if zones:
        lines.append("free pages: " + "; ".join(
            f"{z.get('zone')} {z.get('free')} (min {z.get('min')}, low {z.get('low')}, "
            f"GFP_ATOMIC floor {z.get('atomic_3/8min')})" for z in zones))
    io = d.get("swap_io", {})
    if io:
        line = f"swap I/O: {io.get('requests_in_flight')} requests allocated"
        if io.get("congested"):
            line += ", congested"
        if io.get("oldest_request_op"):
            line += (f"; the oldest, a {io['oldest_request_op']} of "
                     f"{_secs(io.get('oldest_request_age_s'))}, waits for "
                     f"{io.get('oldest_request_waits_for') or 'the device'}")
        lines.append(line)
    if "nr_writeback" in d:
        lines.append(f"pages under writeback {d['nr_writeback']}, being read {d.get('nr_reading', 0)}")
    return lines


def comparison_table(name: str, runs: list[RunResult]) -> Table:
    table = Table(title=f"swapsim {name}", title_justify="left")
    table.add_column("", style="bold")
    for r in runs:
        table.add_column(r.arm, justify="right")
    rows: list[tuple[str, list[str]]] = [
        ("Outcome", [r.outcome for r in runs]),
        ("Sys Time Running Test (seconds)", [f"{r.sys_s:.2f}" for r in runs]),
        ("User+Sys Time Running Test (seconds)", [f"{r.user_s + r.sys_s:.2f}" for r in runs]),
        ("Total Elapsed Time (seconds)", [f"{r.elapsed_s:.2f}" for r in runs]),
        ("Kernel threads + softirq (seconds)", [f"{r.kthread_s:.2f}" for r in runs]),
    ]
    # a lockup's elapsed time is when it was declared, not a run time to compare with
    if len(runs) > 1 and runs[0].elapsed_s and runs[0].outcome == "completed":
        rows.append((f"Elapsed / {runs[0].arm}",
                     [f"{r.elapsed_s / runs[0].elapsed_s:.2f}" if r.outcome == "completed" else "-"
                      for r in runs]))
    for key in KEY_COUNTERS:
        if any(key in r.vmstat for r in runs):
            rows.append((key, [str(r.vmstat.get(key, "-")) for r in runs]))
    for label, cells in rows:
        table.add_row(label, *cells)
    return table


@app.command("run")
def run(
    scenario: Optional[str] = typer.Argument(
        None, help=f"A scenario TOML file or a built-in scenario name (default: {DEFAULT_SCENARIO})."),
    sets: list[str] = typer.Option([], "--set", "-s", metavar="KEY=VALUE",
                                   help="Override a configuration key, e.g. --set machine.memory=2GiB "
                                        "(VALUE is TOML if it parses, else a string). Repeatable."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override sim.seed."),
    arms: list[str] = typer.Option([], "--arm", help="Run only this arm (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write results to this directory."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead of a table."),
    jobs: Optional[int] = typer.Option(
        None, "--jobs", "-j", metavar="N",
        help="Run up to N arms at once, in worker processes (default: one per arm, at most "
             "one per CPU; 1 = one after the other in this process). Results do not depend on N."),
) -> None:
    """Run a scenario: every arm with the same seed, several arms at once on several CPUs."""
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs {jobs}: must be at least 1")
    pm = plugin_manager()
    name, raw = resolve_scenario(pm, scenario or DEFAULT_SCENARIO)
    scen = build_scenario(raw, name, sets, seed=seed, arms=arms or None)
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    console = Console(stderr=True)
    show_progress = console.is_terminal and not as_json
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                  TextColumn("sim {task.fields[sim]:>8.1f}s"), TimeElapsedColumn(),
                  console=console, disable=not show_progress, transient=True) as bar:
        tasks = [bar.add_task(arm.name, total=1.0, sim=0.0, start=False) for arm in scen.arms]
        started: set[int] = set()

        def progress(i: int, now: float, frac: float) -> None:
            if i not in started:  # the elapsed-time column counts from an arm's start
                started.add(i)
                bar.start_task(tasks[i])
            bar.update(tasks[i], completed=frac, sim=now)

        def save(i: int, result: RunResult, vmstat_text: str) -> None:
            if out is not None:
                write_run(result, out / scen.arms[i].name, vmstat_text)

        done = run_arms(scen.arms, jobs=jobs if jobs is not None else default_jobs(len(scen.arms)),
                        pm=pm, plugins=PluginOptions(STATE["autoload"], STATE["block"]),
                        progress=progress if show_progress else None, on_result=save,
                        log_level=STATE["log_level"])
    results = [result for result, _ in done]
    if out is not None:
        (out / "scenario.json").write_text(json.dumps(
            {"scenario": name, "description": scen.description,
             "arms": [a.name for a in scen.arms]}, indent=1) + "\n")
    if as_json:
        typer.echo(dumps(results))
        return
    console = Console()
    console.print(comparison_table(name, results))
    for r in results:
        if r.outcome != "completed":
            # soft_wrap: one line each, whatever the width, for grep and copy
            console.print(f"[bold]{escape(r.arm)}[/]: {r.outcome} at {r.elapsed_s:.1f} s: "
                          f"{escape(r.message)}",
                          highlight=False, soft_wrap=True)
            if r.diagnosis:
                for line in diagnosis_summary(r.diagnosis):
                    console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
                console.print("  (the whole diagnosis: --json, or --out DIR)", highlight=False)


__all__ = ["run", "ConfigError"]
