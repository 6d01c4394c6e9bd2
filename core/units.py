"""Human units for sizes and times in scenario files.

Sizes accept IEC suffixes (KiB, MiB, GiB, TiB), the kernel's shorthand
(K, M, G, T — binary, as in `mem=2G`), SI suffixes (kB, MB, GB) and plain
integers (bytes).  Times accept ns, us, ms, s, min, h and plain numbers
(seconds).  Both are parsed once at configuration time, never in the run loop.
"""

from __future__ import annotations

import math
import re

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
    "g": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3,
               "min": 60.0, "h": 3600.0}
_NUM = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)\s*([A-Za-zµ]*)\s*$")


def parse_size(value: object) -> int:
    """Bytes from an int or a string such as ``"2GiB"``; ValueError if neither."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must not be negative: {value}")
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str):
        m = _NUM.match(value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            mult = _SIZE_UNITS[m.group(2).lower()]
            text = m.group(1)
            if text.isdigit():
                return int(text) * mult
            number = float(text) * mult
            if math.isfinite(number) and number.is_integer():
                return int(number)
    raise ValueError(f"not a size: {value!r} (use e.g. 2GiB, 512MiB, 4096)")


def parse_time(value: object) -> float:
    """Seconds from a number or a string such as ``"200ms"``; ValueError if neither."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"time must be finite and not negative: {value}")
        return float(value)
    if isinstance(value, str):
        m = _NUM.match(value)
        if m and m.group(2) in _TIME_UNITS:
            seconds = float(m.group(1)) * _TIME_UNITS[m.group(2)]
            if math.isfinite(seconds):
                return seconds
    raise ValueError(f"not a time: {value!r} (use e.g. 200ms, 2s, 1.5min)")


def format_size(nbytes: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift and nbytes % (1 << shift) == 0:
            return f"{nbytes >> shift}{unit}"
    return str(nbytes)
