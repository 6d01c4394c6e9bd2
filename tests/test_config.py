"""Configuration: units, structuring, errors, patch switches, overrides, arms.

(swapsim.units, swapsim.config, swapsim.patches)
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import swapsim
import swapsim.plugins
from swapsim import patches as P
from swapsim.config import (Config, ConfigError, KernelConfig, MachineConfig, build_scenario,
                            load_toml, parse_override, structure, structure_options,
                            unstructure)
from swapsim.units import format_size, parse_size, parse_time

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def problems(data) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        structure(data, Config)
    assert str(ei.value) == "; ".join(ei.value.problems)
    return ei.value.problems


# -- units ------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("2GiB", 2 * GiB),
    ("512MiB", 512 * MiB),
    ("4096", 4096),
    (4096, 4096),
    (0, 0),
    ("1.5GiB", 3 * GiB // 2),
    ("0.5KiB", 512),
    ("2G", 2 * GiB),          # the kernel's mem=2G shorthand is binary
    ("64M", 64 * MiB),
    ("1T", 1 << 40),
    ("1TiB", 1 << 40),
    ("1kB", 1000),
    ("1MB", 10**6),
    ("2GB", 2 * 10**9),
    (4096.0, 4096),
])
def test_parse_size_accepts(text, expected):
    got = parse_size(text)
    assert got == expected
    assert type(got) is int


@pytest.mark.parametrize("bad", ["2XiB", "", "GiB", "-1MiB", "1.2.3", "1.5", "2 parsecs",
                                 "0.1KiB", True, None, [1], {}, -5, 1.5, float("nan"),
                                 float("inf")])
def test_parse_size_rejects_with_a_message(bad):
    with pytest.raises(ValueError) as ei:
        parse_size(bad)
    msg = str(ei.value)
    assert "size" in msg
    if isinstance(bad, str):
        assert repr(bad) in msg


@pytest.mark.parametrize("text,expected", [
    ("200ms", 0.2),
    ("2s", 2.0),
    ("1.5min", 90.0),
    ("1h", 3600.0),
    ("10us", 10e-6),
    ("5ns", 5e-9),
    ("2", 2.0),
    ("2.5", 2.5),
    (3, 3.0),
    (0.25, 0.25),
    (0, 0.0),
])
def test_parse_time_accepts(text, expected):
    got = parse_time(text)
    assert got == pytest.approx(expected, rel=1e-12)
    assert type(got) is float


@pytest.mark.parametrize("bad", ["2 parsecs", "", "s", "2m", "-1s", "1.2.3s", "ms200", True, None,
                                 [1], -1, -0.5])
def test_parse_time_rejects_with_a_message(bad):
    with pytest.raises(ValueError) as ei:
        parse_time(bad)
    msg = str(ei.value)
    assert "time" in msg
    if isinstance(bad, str):
        assert repr(bad) in msg


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "1e400"])
def test_parse_time_rejects_non_finite(bad):
    with pytest.raises(ValueError):
        parse_time(bad)


@given(st.integers(0, 1 << 50))
def test_format_size_round_trips(n):
    assert parse_size(format_size(n)) == n


# -- structuring a full Config --------------------------------------------------

FULL = {
    "machine": {"memory": "8GiB", "cpus": 16, "nodes": 2, "min_free_kbytes": 11585,
                "watermark_profile": "modern", "watermark_scale_factor": 100,
                "lowmem_reserve_ratio": [128, 128, 16]},
    "kernel": {"patches": ["throttle-stat", "throttle"], "slab": "slub",
               "throttle": "pfmemalloc-fifo", "rx_buffer": "page-frag", "swappiness": 100,
               "page_cluster": 0},
    "swap": {"transport": "nbd", "size": "4GiB"},
    "workload": {"name": "usemem", "procs_per_cpu": 2, "overcommit": 1.5, "passes": 3},
    "sim": {"seed": 42, "lockup_after": "90s", "time_limit": "2h", "sample_interval": "500ms"},
    "cost": {"touch_page": "1us", "fault_zero": 2e-6, "fault_minor": "1500ns",
             "fault_major": "5us", "alloc_page": 1e-7, "scan_page": "700ns",
             "pageout": "3us", "free_page": "250ns", "timeslice": "4ms"},
    "plugin": {"nbd": {"timeout": "30s"}, "slub": {"min_partial": 5}},
}


def test_structure_full_config():
    cfg = structure(FULL, Config)
    m = cfg.machine
    assert (m.memory, m.cpus, m.nodes, m.min_free_kbytes) == (8 * GiB, 16, 2, 11585)
    assert (m.watermark_profile, m.watermark_scale_factor) == ("modern", 100)
    assert m.lowmem_reserve_ratio == (128, 128, 16)
    k = cfg.kernel
    assert k.patches == ("throttle", "throttle-stat")  # canonical switch order
    assert (k.slab, k.throttle, k.rx_buffer, k.swappiness, k.page_cluster) == (
        "slub", "pfmemalloc-fifo", "page-frag", 100, 0)
    assert (cfg.swap.transport, cfg.swap.size) == ("nbd", 4 * GiB)
    w = cfg.workload
    assert (w.name, w.procs_per_cpu, w.overcommit, w.passes) == ("usemem", 2, 1.5, 3)
    s = cfg.sim
    assert (s.seed, s.lockup_after, s.time_limit) == (42, 90.0, 7200.0)
    assert s.sample_interval == pytest.approx(0.5)
    c = cfg.cost
    assert c.touch_page == pytest.approx(1e-6)
    assert c.fault_minor == pytest.approx(1.5e-6)
    assert c.timeslice == pytest.approx(4e-3)
    assert c.fault_zero == 2e-6 and type(c.fault_zero) is float
    assert cfg.plugin == {"nbd": {"timeout": "30s"}, "slub": {"min_partial": 5}}


def test_empty_dict_gives_the_documented_defaults():
    cfg = structure({}, Config)
    assert cfg == Config()
    assert cfg.machine.memory == 2 * GiB
    assert cfg.kernel.patches == ()
    assert cfg.machine.lowmem_reserve_ratio == (256, 256, 32)


def test_unstructure_round_trips():
    cfg = structure(FULL, Config)
    assert structure(unstructure(cfg), Config) == cfg


def test_patches_accept_a_preset_name():
    assert structure({"kernel": {"patches": "swapnbd"}}, Config).kernel.patches == tuple(P.SWITCHES)
    assert structure({"kernel": {"patches": "vanilla"}}, Config).kernel.patches == ()


# -- errors: `key.path: what is wrong` -------------------------------------------

def test_unknown_keys_in_a_section():
    assert problems({"machine": {"bogus": 1}}) == ["machine: unknown key(s): bogus"]


def test_unknown_keys_in_several_sections_one_line_each():
    got = problems({"machine": {"zz": 1, "bogus": 2}, "kernel": {"slabb": "slub"}})
    assert sorted(got) == ["kernel: unknown key(s): slabb", "machine: unknown key(s): bogus, zz"]


def test_unknown_top_level_key():
    (line,) = problems({"bogus": {}})
    assert line.endswith(": unknown key(s): bogus")


@pytest.mark.parametrize("data,path", [
    ({"machine": {"cpus": "4"}}, "machine.cpus"),
    ({"machine": {"memory": "2XiB"}}, "machine.memory"),
    ({"machine": {"min_free_kbytes": 1.5}}, "machine.min_free_kbytes"),
    ({"machine": {"lowmem_reserve_ratio": [1, 2, "x"]}}, "machine.lowmem_reserve_ratio"),
    ({"machine": {"lowmem_reserve_ratio": [1, 2]}}, "machine.lowmem_reserve_ratio"),
    ({"kernel": {"patches": 3}}, "kernel.patches"),
    ({"swap": {"size": True}}, "swap.size"),
    ({"workload": {"overcommit": True}}, "workload.overcommit"),
    ({"workload": {"passes": 2.0}}, "workload.passes"),
    ({"sim": {"lockup_after": "2 parsecs"}}, "sim.lockup_after"),
    ({"sim": {"seed": "one"}}, "sim.seed"),
    ({"cost": {"pageout": "fast"}}, "cost.pageout"),
])
def test_wrong_type_names_the_key_path(data, path):
    got = problems(data)
    assert got and all(line.startswith(path) for line in got), got


@pytest.mark.parametrize("field,value", [("slab", 3), ("throttle", True), ("swappiness", "60"),
                                         ("page_cluster", 2.9), ("rx_buffer", 1.5)])
def test_kernel_section_is_as_strict_as_the_others(field, value):
    (line,) = problems({"kernel": {field: value}})
    assert line.startswith(f"kernel.{field}: ")


def test_all_problems_are_reported_together():
    got = problems({"machine": {"cpus": "x", "nodes": "y"}, "swap": {"size": "lots"}})
    assert len(got) == 3
    assert {line.split(":")[0] for line in got} == {"machine.cpus", "machine.nodes", "swap.size"}


def test_value_validators_reject():
    assert problems({"machine": {"cpus": 0}})
    assert problems({"machine": {"memory": "16MiB"}})
    assert problems({"kernel": {"swappiness": 101}})
    assert problems({"machine": {"watermark_profile": "4.0"}})


@pytest.mark.parametrize("data,path", [
    ({"machine": {"cpus": 0}}, "machine.cpus"),
    ({"machine": {"memory": "16MiB"}}, "machine.memory"),
    ({"kernel": {"swappiness": 101}}, "kernel.swappiness"),
    ({"machine": {"watermark_profile": "4.0"}}, "machine.watermark_profile"),
])
def test_value_validator_errors_name_the_key_path(data, path):
    (line,) = problems(data)
    assert line.startswith(f"{path}: ")
    assert "Attribute(" not in line


def test_nan_time_is_rejected():
    problems({"sim": {"lockup_after": float("nan")}})


def test_plugin_options_errors_carry_the_plugin_prefix():
    from swapsim.plugins.disk import DiskOptions
    cfg = structure({"plugin": {"disk": {"latency": "5ms", "bogus": 1}}}, Config)
    with pytest.raises(ConfigError) as ei:
        structure_options(cfg, "disk", DiskOptions)
    assert ei.value.problems == ["plugin.disk: unknown key(s): bogus"]
    cfg = structure({"plugin": {"disk": {"latency": "fast"}}}, Config)
    with pytest.raises(ConfigError) as ei:
        structure_options(cfg, "disk", DiskOptions)
    assert ei.value.problems[0].startswith("plugin.disk.latency: ")
    cfg = structure({"plugin": {"disk": {"latency": "5ms", "bandwidth": "50MB"}}}, Config)
    opts = structure_options(cfg, "disk", DiskOptions)
    assert (opts.latency, opts.bandwidth) == (0.005, 50 * 10**6)
    assert structure_options(structure({}, Config), "disk", DiskOptions) == DiskOptions()


# -- patch switches and presets -------------------------------------------------

def test_vanilla_is_empty_and_swapnbd_is_every_switch():
    assert P.resolve("vanilla") == ()
    assert P.resolve("swapnbd") == tuple(P.SWITCHES)
    assert set(P.PRESETS["swapnbd"]) == set(P.SWITCHES)


def test_presets_are_only_lists_of_known_switches():
    for name, switches in P.PRESETS.items():
        assert isinstance(name, str)
        assert type(switches) is tuple, name
        assert all(type(s) is str and s in P.SWITCHES for s in switches), name
        assert len(set(switches)) == len(switches), name
        # a preset means exactly its list: resolving either gives the same switches
        assert P.resolve(name) == P.resolve(list(switches))


def test_requirements_name_known_switches():
    for s, needs in P.REQUIRES.items():
        assert s in P.SWITCHES
        assert needs and all(n in P.SWITCHES and n != s for n in needs)


def _preset_name_comparisons(tree: ast.AST) -> list[str]:
    names = set(P.PRESETS)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for op in operands:
                elts = op.elts if isinstance(op, (ast.Tuple, ast.List, ast.Set)) else [op]
                for e in elts:
                    if isinstance(e, ast.Constant) and e.value in names:
                        found.append(f"line {node.lineno}: compares with {e.value!r}")
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "PRESETS"):
            found.append(f"line {node.lineno}: indexes PRESETS")
    return found


def test_no_code_asks_for_a_preset_by_name():
    """SPEC §0: no code path may look at 'is this the vanilla kernel'."""
    root = Path(swapsim.__file__).parent
    files = sorted(root.rglob("*.py"))
    plugins = Path(swapsim.plugins.__file__).parent
    if plugins.parent != root:  # editable install: plugins/ lives beside core/
        files += sorted(plugins.rglob("*.py"))
    assert any(f.name == "disk" or f.parent.name == "disk" for f in files)
    assert any(f.name == "patches.py" for f in files)
    offenders = {}
    for f in files:
        if f.name == "patches.py" and f.parent == root:
            continue
        found = _preset_name_comparisons(ast.parse(f.read_text(), str(f)))
        if found:
            offenders[str(f)] = found
    assert offenders == {}


def test_preset_scan_detects_a_comparison():
    """The scan above is not vacuous."""
    tree = ast.parse("if patches == 'vanilla':\n    pass\nx = P.PRESETS['swapnbd']\n"
                     "ok = name in ('swapnbd', 'x')\n")
    assert len(_preset_name_comparisons(tree)) == 3


def test_unknown_switch_is_named():
    with pytest.raises(ValueError, match="'no-such-switch'"):
        P.resolve(["throttle", "no-such-switch"])
    (line,) = problems({"kernel": {"patches": ["no-such-switch"]}})
    assert line.startswith("kernel.patches: ") and "'no-such-switch'" in line


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="'patched'"):
        P.resolve("patched")


@pytest.mark.parametrize("switches,culprit,missing", [
    (["netvm"], "netvm", "gfp-memalloc"),
    (["throttle-stat"], "throttle-stat", "throttle"),
    (["gfp-memalloc", "softirq-memalloc", "netvm"], "netvm", "slab-pfmemalloc"),
    (["nbd-memalloc"], "nbd-memalloc", "netvm"),
])
def test_missing_dependency_names_the_switch(switches, culprit, missing):
    with pytest.raises(ValueError) as ei:
        P.resolve(switches)
    msg = str(ei.value)
    assert f"'{culprit}'" in msg and f"'{missing}'" in msg
    (line,) = problems({"kernel": {"patches": switches}})
    assert line.startswith("kernel.patches: ") and f"'{culprit}'" in line


def _closed(chosen: set[str]) -> bool:
    return all(set(P.REQUIRES.get(s, ())) <= chosen for s in chosen)


@given(st.sets(st.sampled_from(sorted(P.SWITCHES))))
def test_resolve_accepts_exactly_the_dependency_closed_subsets(chosen):
    if _closed(chosen):
        got = P.resolve(sorted(chosen))
        assert set(got) == chosen
        assert list(got) == [s for s in P.SWITCHES if s in chosen]
    else:
        with pytest.raises(ValueError):
            P.resolve(sorted(chosen))


# -- --set overrides -------------------------------------------------------------

@pytest.mark.parametrize("text,path,value", [
    ("workload.passes=1", ["workload", "passes"], 1),
    ("sim.lockup_after=2.5", ["sim", "lockup_after"], 2.5),
    ("x=true", ["x"], True),
    ('machine.memory="32MiB"', ["machine", "memory"], "32MiB"),
    ("machine.memory='32MiB'", ["machine", "memory"], "32MiB"),
    ("machine.memory=32MiB", ["machine", "memory"], "32MiB"),   # not TOML: kept as text
    ("kernel.patches=vanilla", ["kernel", "patches"], "vanilla"),
    ('kernel.patches=["throttle"]', ["kernel", "patches"], ["throttle"]),
    ("plugin.nbd={timeout = 3}", ["plugin", "nbd"], {"timeout": 3}),
    ("x=a=b", ["x"], "a=b"),
    (" machine.cpus = 2", ["machine", "cpus"], 2),
    ("plugin.pfmemalloc-fraction.fraction=0.25", ["plugin", "pfmemalloc-fraction", "fraction"],
     0.25),
])
def test_parse_override(text, path, value):
    got_path, got_value = parse_override(text)
    assert got_path == path
    assert got_value == value and type(got_value) is type(value)


@pytest.mark.parametrize("text", ["noequals", "=3", "a..b=1", "a b=1", ".a=1", "a.=1", "a/b=1"])
def test_parse_override_bad_key(text):
    with pytest.raises(ConfigError) as ei:
        parse_override(text)
    (line,) = ei.value.problems
    assert repr(text) in line


# -- scenarios and arms ---------------------------------------------------------

RAW = {
    "description": "two arms",
    "machine": {"memory": "256MiB", "cpus": 2},
    "kernel": {"patches": "vanilla", "slab": "slab"},
    "arms": {
        "vanilla-slub": {"kernel": {"slab": "slub"}},
        "swapnbd": {"kernel": {"patches": "swapnbd"}, "machine": {"cpus": 8}},
    },
}


def test_arm_tables_are_merged_over_the_base():
    sc = build_scenario(RAW, "ab")
    assert sc.name == "ab" and sc.description == "two arms"
    assert [a.name for a in sc.arms] == ["vanilla-slub", "swapnbd"]
    a, b = (arm.config for arm in sc.arms)
    assert (a.kernel.slab, a.kernel.patches, a.machine.cpus) == ("slub", (), 2)
    assert (b.kernel.slab, b.kernel.patches, b.machine.cpus) == ("slab", tuple(P.SWITCHES), 8)
    # deep merge: siblings of an arm's key come from the base
    assert a.machine.memory == b.machine.memory == 256 * MiB


def test_build_scenario_does_not_modify_its_input():
    import copy
    before = copy.deepcopy(RAW)
    build_scenario(RAW, "ab", overrides=["machine.cpus=3"], seed=5)
    assert RAW == before


def test_overrides_apply_to_every_arm_after_the_arm_tables():
    sc = build_scenario(RAW, "ab", overrides=["machine.cpus=3", 'kernel.slab="slub"'])
    for arm in sc.arms:
        assert arm.config.machine.cpus == 3
        assert arm.config.kernel.slab == "slub"


def test_seed_applies_to_every_arm_and_wins_over_set():
    sc = build_scenario(RAW, "ab", overrides=["sim.seed=3"], seed=11)
    assert [a.config.sim.seed for a in sc.arms] == [11, 11]
    sc = build_scenario(RAW, "ab")
    assert [a.config.sim.seed for a in sc.arms] == [1, 1]


def test_selecting_arms():
    sc = build_scenario(RAW, "ab", arms=["swapnbd"])
    assert [a.name for a in sc.arms] == ["swapnbd"]


def test_unknown_arm_is_an_error_listing_the_arms():
    with pytest.raises(ConfigError) as ei:
        build_scenario(RAW, "ab", arms=["swapnbd", "nope"])
    (line,) = ei.value.problems
    assert "'nope'" in line and "vanilla-slub" in line and "swapnbd" in line


def test_no_arms_table_gives_one_main_arm():
    sc = build_scenario({"machine": {"cpus": 2}}, "one")
    assert [a.name for a in sc.arms] == ["main"]
    assert sc.arms[0].config.machine.cpus == 2


def test_a_problem_in_one_arm_is_prefixed_with_the_arm():
    raw = {"arms": {"good": {}, "bad": {"machine": {"cpus": "x"}}}}
    with pytest.raises(ConfigError) as ei:
        build_scenario(raw, "s")
    assert ei.value.problems == ["[arm bad] machine.cpus: expected an integer, got 'x'"]


def test_a_problem_in_every_arm_is_said_once():
    with pytest.raises(ConfigError) as ei:
        build_scenario(RAW, "ab", overrides=["machine.bogus=1"])
    assert ei.value.problems == ["machine: unknown key(s): bogus"]


def test_override_below_a_value_is_an_error():
    with pytest.raises(ConfigError) as ei:
        build_scenario(RAW, "ab", overrides=["machine.cpus=2", "machine.cpus.x=1"])
    assert ei.value.problems[0].startswith("machine.cpus")


@pytest.mark.parametrize("raw,start", [
    ({"arms": {"a": 5}}, "arms.a: "),
    ({"arms": [1]}, "arms: "),
    ({"description": 5}, "description: "),
])
def test_malformed_scenario_shape(raw, start):
    with pytest.raises(ConfigError) as ei:
        build_scenario(raw, "s")
    assert ei.value.problems[0].startswith(start)


def test_load_toml_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such scenario file"):
        load_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("machine = [\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_toml(bad)
    good = tmp_path / "good.toml"
    good.write_text('[machine]\nmemory = "512MiB"\n[arms.a]\n[arms.b.kernel]\nslab = "slub"\n')
    sc = build_scenario(load_toml(good), "good")
    assert [a.name for a in sc.arms] == ["a", "b"]
    assert sc.arms[1].config.kernel.slab == "slub"


# -- frozen configs, evolve -----------------------------------------------------

def test_evolve_derives_a_different_arm():
    a = build_scenario(RAW, "ab").arms[0].config
    b = attrs.evolve(a, kernel=attrs.evolve(a.kernel, patches=P.resolve("swapnbd")))
    assert b != a
    assert a.kernel.patches == ()                      # the original is untouched
    assert b.kernel.patches == tuple(P.SWITCHES)
    assert (b.machine, b.swap, b.workload, b.sim, b.cost) == (
        a.machine, a.swap, a.workload, a.sim, a.cost)
    assert attrs.evolve(b, kernel=a.kernel) == a


def test_configs_are_frozen_and_evolve_revalidates():
    cfg = structure({}, Config)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.machine.cpus = 8  # type: ignore[misc]
    with pytest.raises(ValueError):
        attrs.evolve(cfg.machine, cpus=0)
    with pytest.raises(ValueError):
        attrs.evolve(cfg.machine, memory=MiB)
    with pytest.raises(ValueError):
        attrs.evolve(cfg.kernel, swappiness=-1)
    assert isinstance(attrs.evolve(cfg.machine, cpus=8), MachineConfig)
    with pytest.raises(TypeError):
        KernelConfig("slab")  # kw_only


# -- fuzz: structure() only ever raises ConfigError -----------------------------

SECTIONS = {f.name: f.type for f in attrs.fields(Config)}
FIELD_NAMES = sorted({f.name for cls in (MachineConfig, KernelConfig, Config)
                      for f in attrs.fields(cls)}
                     | {f.name for name in ("swap", "workload", "sim", "cost")
                        for f in attrs.fields(type(getattr(Config(), name)))})

LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-2**70, 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["2GiB", "512MiB", "200ms", "1.5min", "swapnbd", "vanilla", "throttle",
                     "3.6", "modern", "disk", "slub", "1e400", "-1s", ""]),
)
KEYS = st.one_of(st.sampled_from(FIELD_NAMES + sorted(SECTIONS)), st.text(max_size=8))
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)), max_leaves=12)
TREES = st.dictionaries(
    st.one_of(st.sampled_from(sorted(SECTIONS)), st.text(max_size=8)),
    st.one_of(st.dictionaries(KEYS, VALUES, max_size=6), VALUES), max_size=6)


@settings(max_examples=400, deadline=None)
@given(TREES)
def test_structure_raises_only_config_error(tree):
    try:
        cfg = structure(tree, Config)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and ": " in p for p in exc.problems)
    else:
        assert isinstance(cfg, Config)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELD_NAMES), LEAVES, max_size=6),
       st.sampled_from(sorted(SECTIONS)))
def test_structure_one_section_raises_only_config_error(fields, section):
    try:
        structure({section: fields}, Config)
    except ConfigError:
        pass


@pytest.mark.parametrize("value", [math.inf, 2**80, 10**400])
def test_huge_or_infinite_numbers_do_not_crash(value):
    try:
        structure({"cost": {"pageout": value}, "machine": {"cpus": value}}, Config)
    except ConfigError:
        pass
