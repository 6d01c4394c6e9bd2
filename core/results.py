"""Results as plain data: what a run produced, ready for JSON and reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attrs import asdict, define, field

OUTCOMES = ("completed", "lockup", "oom", "error")


@define(kw_only=True)
class RunResult:
    arm: str
    outcome: str
    seed: int
    elapsed_s: float          # simulated: start to the last workload exit (or the end)
    user_s: float             # workload tasks' user time
    sys_s: float              # workload tasks' sys time
    kthread_s: float          # kswapd, transport threads, softirq
    wall_s: float             # real seconds the simulation took
    sim_time_s: float
    min_free_kbytes: int
    vmstat: dict[str, int]
    zones: list[dict[str, Any]]
    config: dict[str, Any]
    message: str = ""
    diagnosis: dict[str, Any] | None = None
    transport: dict[str, Any] = field(factory=dict)
    slab: list[dict[str, Any]] = field(factory=list)
    throttle: dict[str, Any] = field(factory=dict)
    swap_cache: dict[str, Any] = field(factory=dict)
    extra: dict[str, Any] = field(factory=dict)
    events: int = 0
    pages_touched: int = 0
    plugins: list[dict[str, Any]] = field(factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self, recurse=True)


def dumps(runs: list[RunResult]) -> str:
    """The ``--json`` document; deterministic (sorted keys are not used: order is meaningful)."""
    return json.dumps({"runs": [r.to_dict() for r in runs]}, indent=1)


def write_run(result: RunResult, directory: Path, vmstat_text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    data = result.to_dict()
    data.pop("wall_s")  # wall time differs between identical runs; keep result.json byte-identical
    (directory / "result.json").write_text(json.dumps(data, indent=1) + "\n")
    (directory / "wall.json").write_text(json.dumps({"wall_s": result.wall_s}) + "\n")
    (directory / "vmstat").write_text(vmstat_text)
