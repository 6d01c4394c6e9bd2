"""Options of the NBD transport (``[plugin.nbd]``): plain Python, like all
configuration classes (transport.py is compiled)."""

from __future__ import annotations

from attrs import field, frozen

from swapsim.config import Bytes, Seconds, positive as _positive


@frozen(kw_only=True)
class NbdOptions:
    #: per-request service time of the NBD server (its own storage is fast: RAM)
    server_latency: Seconds = field(default=Seconds(50e-6), validator=_positive)
    server_bandwidth: Bytes = field(default=Bytes(1_000_000_000), validator=_positive)
    #: receive window of the server's socket: bytes it takes before nbd-server
    #: reads them (half of a 6 MiB tcp_rmem[2] at tcp_adv_win_scale=1).  A
    #: server slower than the link keeps it full, and our send buffer with it.
    server_window: Bytes = field(default=Bytes(3 << 20), validator=_positive)
    #: block layer queue depth of /dev/nbd0
    nr_requests: int = field(default=128, validator=_positive)
    #: 255 sectors: 31 full pages
    max_pages: int = field(default=31, validator=_positive)
    #: CPU of nbd-client per reply (syscall, header) and of the kernel thread per request
    reply_cost: Seconds = Seconds(3e-6)
    send_cost: Seconds = Seconds(3e-6)
