"""Scenario configuration: TOML → frozen attrs classes, with cattrs.

Everything a run depends on is in :class:`Config`; a run is a pure function of
its Config (and the seed in it).  Plugins own their option tables under
``[plugin.<name>]`` and structure them with :func:`structure_options`, so a
typo in a plugin option is as loud as one in a core option.

Errors are collected and raised as :class:`ConfigError`, whose lines read
``key.path: what is wrong``.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any, NewType, TypeVar

import attrs
import cattrs
from attrs import field, frozen
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from . import patches as _patches
from .units import parse_size, parse_time

#: A size in bytes; accepts "2GiB", "512MiB", integers.
Bytes = NewType("Bytes", int)
#: A time in seconds; accepts "200ms", "2s", numbers.
Seconds = NewType("Seconds", float)

T = TypeVar("T")


class ConfigError(ValueError):
    """Bad scenario input; ``str()`` is one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class FieldError(ValueError):
    """A validator's complaint about one field; the message names the field's key."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


def _named(validator: Any) -> Any:
    """Wrap an attrs validator so that its ValueError names the field."""
    def check(inst: Any, attribute: attrs.Attribute, value: Any) -> None:
        try:
            validator(inst, attribute, value)
        except FieldError:
            raise
        except ValueError as exc:
            msg = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
            raise FieldError(attribute.name, msg) from None
    return check


def _in(options: tuple[str, ...]) -> Any:
    def check(inst: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in options:
            raise FieldError(attribute.name, f"must be one of {', '.join(map(repr, options))}, "
                                             f"got {value!r}")
    return check


@_named
def _positive(inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value <= 0:
        raise ValueError(f"must be > 0, got {value}")


@_named
def _non_negative(inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value < 0:
        raise ValueError(f"must be >= 0, got {value}")


def _optional(check: Any) -> Any:
    """A validator that lets None (\"the kernel's default\") through."""
    def optional(inst: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is not None:
            check(inst, attribute, value)
    return optional


#: validator for plugin option classes: the value must be > 0 (errors name the key)
positive = _positive


def _at_most(limit: int) -> Any:
    @_named
    def check(inst: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value > limit:
            raise ValueError(f"must be <= {limit}, got {value}")
    return check


@frozen(kw_only=True)
class MachineConfig:
    """The simulated machine (SPEC §2)."""

    #: RAM of the whole machine, split evenly over the nodes.
    memory: Bytes = field(default=Bytes(2 << 30), validator=_positive)
    cpus: int = field(default=4, validator=_positive)
    nodes: int = field(default=1, validator=_positive)
    #: None = the kernel's formula isqrt(16 × lowmem_kbytes) clamped to [128, 65536].
    min_free_kbytes: int | None = field(default=None)
    #: "3.6" (the series' kernel) or "modern" (watermark_scale_factor and a 262144 clamp).
    watermark_profile: str = field(default="3.6", validator=_in(("3.6", "modern")))
    watermark_scale_factor: int = field(default=10, validator=_positive)
    #: Clean page cache at the start (binaries, libraries, scripts of a freshly
    #: booted test machine), as a fraction of RAM: reclaimable without I/O.
    page_cache: float = field(default=0.0, validator=_non_negative)
    #: sysctl vm.lowmem_reserve_ratio for DMA, DMA32, Normal.
    lowmem_reserve_ratio: tuple[int, int, int] = field(default=(256, 256, 32))

    @min_free_kbytes.validator
    @_named
    def _check_mfk(self, attribute: attrs.Attribute, value: int | None) -> None:
        if value is not None and value < 0:
            raise ValueError(f"must be >= 0, got {value}")

    @memory.validator
    @_named
    def _check_memory(self, attribute: attrs.Attribute, value: int) -> None:
        if value < 32 << 20:
            raise ValueError("must be at least 32MiB")


@frozen(kw_only=True)
class KernelConfig:
    """Kernel policy: the patch switches and the implementations chosen by name."""

    #: A preset ("vanilla", "swapnbd") or a list of switch ids (SPEC §10).
    patches: tuple[str, ...] = field(default=())
    #: Slab allocator plugin name.
    slab: str = "slab"
    #: Throttling strategy used while the `throttle` switch is on.
    throttle: str = "pfmemalloc-half"
    #: Driver receive-buffer helper plugin name.
    rx_buffer: str = "kmalloc"
    swappiness: int = field(default=60, validator=[_non_negative, _at_most(100)])
    #: vm.page-cluster: swap-in readahead reads 2**page_cluster slots.
    page_cluster: int = field(default=3, validator=[_non_negative, _at_most(5)])
    #: 3.6's get_request() batching: the task that fills a request list, and
    #: each task woken from get_request_wait(), may take up to 32 requests
    #: more within 20 ms, up to 3/2 × nr_requests.  Off by default, where
    #: nr_requests is a hard limit: the seed reproduction rests on that
    #: simplification (README, Status).
    blk_batching: bool = False


@frozen(kw_only=True)
class SwapConfig:
    transport: str = "disk"
    size: Bytes = field(default=Bytes(16 << 30), validator=_positive)


@frozen(kw_only=True)
class WorkloadConfig:
    name: str = "usemem"
    procs_per_cpu: int = field(default=8, validator=_positive)
    #: Total mapping size as a multiple of RAM.
    overcommit: float = field(default=4.0, validator=_positive)
    passes: int = field(default=5, validator=_positive)


@frozen(kw_only=True)
class SimConfig:
    seed: int = field(default=1, validator=_non_negative)
    #: No workload progress for this long ends the arm with outcome "lockup".
    lockup_after: Seconds = field(default=Seconds(120.0), validator=_positive)
    #: Hard cap on simulated time; reaching it ends the arm with outcome "error".
    time_limit: Seconds = field(default=Seconds(6 * 3600.0), validator=_positive)
    #: Period of sampled observations (vmstat snapshots, progress).
    sample_interval: Seconds = field(default=Seconds(1.0), validator=_positive)


@frozen(kw_only=True)
class CostConfig:
    """CPU cost of each simulated operation, in seconds (SPEC §9).

    Defaults are order-of-magnitude figures for a 2012 x86-64 server; they are
    parameters so that a user can fit them to a machine, not constants.
    """

    #: usemem writing one word of a resident page, loop included.
    touch_page: Seconds = Seconds(0.3e-6)
    #: Anonymous zero-fill fault: allocate, clear 4 KiB, map.
    fault_zero: Seconds = Seconds(1.5e-6)
    #: Minor fault on a page found in the swap cache.
    fault_minor: Seconds = Seconds(1.0e-6)
    #: Major fault: swap cache miss, page table walk, readahead set-up.
    fault_major: Seconds = Seconds(4.0e-6)
    #: read_swap_cache_async() for each page swapin_readahead() reads: add to
    #: the swap cache and the LRU, and build and submit its own bio (3.x
    #: swap_readpage() issues one bio per page; the block layer merges them).
    #: Readahead pages that reclaim takes back before they are used are paid
    #: for again on the next fault.
    swapin_page: Seconds = Seconds(2.0e-6)
    #: Taking one page off the buddy free lists.
    alloc_page: Seconds = Seconds(0.15e-6)
    #: Reclaim handling one page whatever its state: isolate from the LRU,
    #: trylock, flag checks, put back or free (struct page and list cache lines).
    scan_page: Seconds = Seconds(0.2e-6)
    #: page_referenced() on a mapped page: the rmap walk to its PTE, whose
    #: young bit it tests and clears.  Pages under writeback and unmapped
    #: pages are not walked.
    page_referenced: Seconds = Seconds(0.2e-6)
    #: try_to_unmap() of a page reclaim is taking: rmap walk, PTE clear, TLB flush.
    unmap_page: Seconds = Seconds(0.2e-6)
    #: Reclaim starting writeback of one page: add_to_swap, bio, submit.
    pageout: Seconds = Seconds(2.0e-6)
    #: Freeing one clean page from the swap cache.
    free_page: Seconds = Seconds(0.3e-6)
    #: Longest CPU burst before a task yields its CPU to the run queue.
    timeslice: Seconds = Seconds(3e-3)


@frozen(kw_only=True)
class NetConfig:
    """The network between the machine and a network swap server (SPEC §5)."""

    #: link rate in bytes per second (1 Gbit/s)
    link_bandwidth: Bytes = field(default=Bytes(125_000_000), validator=_positive)
    #: round-trip time of the link, switch included
    rtt: Seconds = field(default=Seconds(0.0002), validator=_positive)
    mss: int = field(default=1448, validator=_positive)
    #: bytes of one rx buffer (skb data for an MTU-1500 frame, overhead included)
    rx_buffer_size: int = field(default=2048, validator=_positive)
    #: the NIC does scatter-gather and GSO (NETIF_F_SG, as most gigabit NICs
    #: of 2012): tcp_sendmsg() builds skbs of up to 45 MSS, each with a
    #: kmalloc-2048 head holding the first 1504 bytes and the rest in order-0
    #: pages straight from the page allocator (sk_stream_alloc_page).  False:
    #: one linear skb per MSS, its data from kmalloc (rx_buffer_size).
    tx_sg: bool = False
    #: rx ring descriptors of the NIC
    ring_size: int = field(default=256, validator=_positive)
    #: packets per NAPI poll
    napi_budget: int = field(default=64, validator=_positive)
    #: the driver gives buffers back to the ring every this many cleaned
    #: descriptors within a poll, not only at its end (e1000's and igb's
    #: RX_BUFFER_WRITE, 16): a burst's packets free their buffers and are
    #: replaced a few at a time
    rx_buffer_write: int = field(default=16, validator=_positive)
    #: interrupt to NAPI poll
    irq_latency: Seconds = Seconds(10e-6)
    #: softirq CPU per received packet (driver, IP, TCP)
    softirq_packet_cost: Seconds = Seconds(1.5e-6)
    #: copying one 4 KiB page between a socket and a page (recvmsg/sendmsg)
    copy_page_cost: Seconds = Seconds(1.0e-6)
    #: receive and send buffer limits of the swap socket, in bytes of skb
    #: truesize.  None: what the kernel gives the socket.  tcp_init() caps
    #: tcp_wmem and tcp_rmem at 1/128 of tcp_mem's pressure threshold, itself
    #: nr_free_buffer_pages() / 8: about 4 bytes per page of low memory (240 KiB
    #: at 256 MiB, 2 MiB at 2 GiB, at most 4 / 6 MiB).  sndbuf: send
    #: autotuning of a bulk sender that never loses a segment grows the buffer
    #: to that cap.  rcvbuf: receive autotuning follows what the reader leaves
    #: queued; nbd-client reads at once, so it stays at 512 KiB or the cap.
    rcvbuf: Bytes | None = field(default=None, validator=_optional(_positive))
    sndbuf: Bytes | None = field(default=None, validator=_optional(_positive))
    #: TCP: segments per delayed ACK, RTO bounds, retransmissions before reset
    delayed_ack: int = field(default=2, validator=_positive)
    #: how long a receiver holds an ACK of less than ``delayed_ack`` segments
    #: for data of its own to carry it (TCP_ATO_MIN, HZ/25)
    ato: Seconds = field(default=Seconds(0.04), validator=_positive)
    rto_min: Seconds = field(default=Seconds(0.2), validator=_positive)
    rto_max: Seconds = field(default=Seconds(120.0), validator=_positive)
    max_retries: int = field(default=15, validator=_positive)
    #: network traffic before the workload starts (boot, login, the NBD
    #: handshake), in packets each way: it leaves the slab caches as warm as
    #: each allocator's retention rules allow
    warmup_packets: int = field(default=1024, validator=_non_negative)
    #: unrelated traffic competing for rx buffers: packets per second …
    background_rate: float = field(default=0.0, validator=_non_negative)
    background_size: int = field(default=1448, validator=_positive)
    #: … of this protocol ("ipv4", or "other": dropped if pfmemalloc) …
    background_protocol: str = field(default="ipv4", validator=_in(("ipv4", "other")))
    #: … for an ordinary socket with this receive buffer …
    background_rcvbuf: Bytes = field(default=Bytes(212992), validator=_positive)
    #: … whose reader consumes this many bytes per second
    background_reader: Bytes = field(default=Bytes(10_000_000), validator=_non_negative)
    #: period of background bursts (packets arrive in bursts of rate × period)
    background_period: Seconds = field(default=Seconds(0.01), validator=_positive)


@frozen(kw_only=True)
class Config:
    machine: MachineConfig = MachineConfig()
    kernel: KernelConfig = KernelConfig()
    swap: SwapConfig = SwapConfig()
    workload: WorkloadConfig = WorkloadConfig()
    sim: SimConfig = SimConfig()
    cost: CostConfig = CostConfig()
    net: NetConfig = NetConfig()
    #: Options of plugins, one table per plugin name; each plugin structures its own.
    plugin: dict[str, dict[str, Any]] = field(factory=dict)


# -- cattrs ---------------------------------------------------------------

def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(Bytes, lambda v, _t: Bytes(parse_size(v)))
    conv.register_unstructure_hook(Bytes, int)
    conv.register_structure_hook(Seconds, lambda v, _t: Seconds(parse_time(v)))
    conv.register_unstructure_hook(Seconds, float)

    def patches_hook(v: Any, _t: Any) -> tuple[str, ...]:
        if not isinstance(v, (str, list, tuple)):
            raise ValueError(f"expected a preset name or a list of switches, got {v!r}")
        return _patches.resolve(v)

    def strict_int(v: Any, _t: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected an integer, got {v!r}")
        return v

    def strict_float(v: Any, _t: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"expected a number, got {v!r}")
        return float(v)

    def strict_str(v: Any, _t: Any) -> str:
        if not isinstance(v, str):
            raise ValueError(f"expected a string, got {v!r}")
        return v

    def strict_bool(v: Any, _t: Any) -> bool:
        if not isinstance(v, bool):
            raise ValueError(f"expected true or false, got {v!r}")
        return v
    conv.register_structure_hook(int, strict_int)
    conv.register_structure_hook(float, strict_float)
    conv.register_structure_hook(str, strict_str)
    conv.register_structure_hook(bool, strict_bool)
    # After the strict scalar hooks, so that kernel fields use them too.
    # KernelConfig.patches accepts a preset name as well as a list.
    conv.register_structure_hook(
        KernelConfig,
        cattrs.gen.make_dict_structure_fn(
            KernelConfig, conv, _cattrs_forbid_extra_keys=True,
            patches=cattrs.gen.override(struct_hook=patches_hook)))
    return conv


converter = _make_converter()



def _describe(exc: BaseException, _type: Any = None) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        return f"unknown key(s): {', '.join(sorted(exc.extra_fields))}"
    if isinstance(exc, KeyError):
        return "required key is missing"
    if isinstance(exc, FieldError):
        return f"{exc}\x00{exc.field}"
    if isinstance(exc, AttributeError) and "keys" in str(exc):
        return "expected a table"
    return str(exc) or type(exc).__name__


def _error_lines(exc: BaseException, prefix: str) -> list[str]:
    """cattrs' `msg @ $.a.b` lines → `a.b: msg`."""
    lines = []
    for msg in cattrs.transform_error(exc, path="$", format_exception=_describe):
        text, _, path = msg.rpartition(" @ $")
        text, _, field_name = text.partition("\x00")
        path = ".".join(p for p in (prefix, path.lstrip("."), field_name) if p)
        lines.append(f"{path or '(top)'}: {text}")
    return lines


def structure(data: dict[str, Any], cls: type[T], prefix: str = "") -> T:
    """Structure ``data`` into ``cls``; raise ConfigError with `path: problem` lines."""
    try:
        return converter.structure(data, cls)
    except (ClassValidationError, IterableValidationError, ForbiddenExtraKeysError) as exc:
        raise ConfigError(_error_lines(exc, prefix)) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError([f"{prefix or '(top)'}: {exc}"]) from None


def structure_options(config: Config, name: str, cls: type[T]) -> T:
    """A plugin's option table ``[plugin.<name>]`` as an instance of ``cls``."""
    return structure(config.plugin.get(name, {}), cls, prefix=f"plugin.{name}")


def unstructure(config: Any) -> Any:
    return converter.unstructure(config)


# -- TOML, overrides, arms -------------------------------------------------

def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=VALUE`` → (["a","b","c"], value); VALUE is TOML if it parses, else a string."""
    if "=" not in text:
        raise ConfigError([f"--set {text!r}: expected KEY=VALUE"])
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or not re.fullmatch(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*", key):
        raise ConfigError([f"--set {text!r}: bad key {key!r}"])
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for i, part in enumerate(path[:-1]):
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError([f"{'.'.join(path[:i + 1])}: is a value, not a table"])
        node = nxt
    node[path[-1]] = value


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


@frozen(kw_only=True)
class Arm:
    name: str
    config: Config


@frozen(kw_only=True)
class Scenario:
    """A named set of arms (one or more) sharing a base configuration."""

    name: str
    description: str
    arms: tuple[Arm, ...]


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such scenario file"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: {exc.strerror}"]) from None


def build_scenario(raw: dict[str, Any], name: str, overrides: list[str] = (),
                   seed: int | None = None, arms: list[str] | None = None) -> Scenario:
    """Raw TOML tree (+ CLI overrides) → a validated Scenario.

    The tree holds the base configuration, an optional ``description`` and an
    optional ``[arms.<name>]`` table per arm whose keys are merged over the
    base.  ``--set`` overrides apply to every arm, after the arm's own keys.
    """
    raw = copy.deepcopy(raw)
    description = raw.pop("description", "")
    if not isinstance(description, str):
        raise ConfigError(["description: expected a string"])
    arm_tables = raw.pop("arms", {}) or {"main": {}}
    if not isinstance(arm_tables, dict):
        raise ConfigError(["arms: expected a table of arms"])
    override_tree: dict[str, Any] = {}
    for text in overrides:
        path, value = parse_override(text)
        set_path(override_tree, path, value)
    if seed is not None:
        set_path(override_tree, ["sim", "seed"], seed)
    if arms:
        unknown = [a for a in arms if a not in arm_tables]
        if unknown:
            raise ConfigError([f"--arm {unknown[0]!r}: not an arm of {name} "
                               f"(arms: {', '.join(arm_tables)})"])
        arm_tables = {a: arm_tables[a] for a in arms}
    built = []
    per_arm: dict[str, list[str]] = {}
    for arm_name, table in arm_tables.items():
        if not isinstance(table, dict):
            per_arm[arm_name] = [f"arms.{arm_name}: expected a table"]
            continue
        tree = deep_merge(deep_merge(raw, table), override_tree)
        try:
            built.append(Arm(name=arm_name, config=structure(tree, Config)))
        except ConfigError as exc:
            per_arm[arm_name] = exc.problems
    if per_arm:
        lists = list(per_arm.values())
        if len(per_arm) == len(arm_tables) and all(p == lists[0] for p in lists):
            raise ConfigError(lists[0])  # the same problem in every arm: say it once
        raise ConfigError([f"[arm {a}] {p}" for a, ps in per_arm.items() for p in ps])
    return Scenario(name=name, description=description, arms=tuple(built))
