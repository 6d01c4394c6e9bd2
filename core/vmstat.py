"""vm event counters with the kernel's (3.6) names.

``VmStat.ev`` is a plain dict incremented in the hot paths; per-zone events
are stored under their zone-suffixed names (``pgalloc_dma32``) exactly as
/proc/vmstat prints them.  State counters (nr_free_pages …) are computed from
the model when a snapshot is taken, never kept twice.
"""

from __future__ import annotations

from typing import Iterable

#: event counters, in /proc/vmstat order; zone-suffixed ones are expanded per zone
EVENTS_PER_ZONE = ("pgalloc", "pgrefill", "pgsteal_kswapd", "pgsteal_direct", "pgscan_kswapd",
                   "pgscan_direct")
EVENTS = ("pgpgin", "pgpgout", "pswpin", "pswpout",
          "pgalloc", "pgfree", "pgactivate", "pgdeactivate", "pgfault", "pgmajfault",
          "pgrefill", "pgsteal_kswapd", "pgsteal_direct", "pgscan_kswapd", "pgscan_direct",
          "pgscan_direct_throttle", "pginodesteal", "slabs_scanned", "kswapd_inodesteal",
          "kswapd_low_wmark_hit_quickly", "kswapd_high_wmark_hit_quickly",
          "kswapd_skip_congestion_wait", "pageoutrun", "allocstall", "pgrotated",
          # 4.14's swap readahead counters: pages read ahead, and faults that found one
          "swap_ra", "swap_ra_hit")

ZONE_SUFFIX = {"DMA": "dma", "DMA32": "dma32", "Normal": "normal", "Movable": "movable"}


class VmStat:
    def __init__(self, zone_names: Iterable[str], throttle_stat: bool = True) -> None:
        self.zone_suffixes = [ZONE_SUFFIX[z] for z in ("DMA", "DMA32", "Normal", "Movable")]
        self.ev: dict[str, int] = {}
        for name in EVENTS:
            if name in EVENTS_PER_ZONE:
                for sfx in self.zone_suffixes:
                    self.ev[f"{name}_{sfx}"] = 0
            elif name == "pgscan_direct_throttle" and not throttle_stat:
                continue  # patch 16 adds the counter; without it /proc/vmstat has no line
            else:
                self.ev[name] = 0

    def add_zone(self, name: str, zone_idx: int, n: int) -> None:
        self.ev[f"{name}_{self.zone_suffixes[zone_idx]}"] += n

    def snapshot(self, state: dict[str, int]) -> dict[str, int]:
        """State counters first (as /proc/vmstat prints nr_* first), then events."""
        out = dict(state)
        out.update(self.ev)
        return out


def format_vmstat(snapshot: dict[str, int]) -> str:
    """/proc/vmstat text: one ``name value`` per line."""
    return "".join(f"{k} {v}\n" for k, v in snapshot.items())
