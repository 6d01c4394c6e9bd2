"""Swap over NBD (SPEC §6): the nbd kernel thread, nbd-client, the server.

- Requests come off the block layer queue (≤ 31 pages, depth 128,
  congestion at 113/103).  The per-device kernel thread ``nbd0`` (exempt from
  throttling) sends each one: a 28-byte header plus, for writes, the data
  copied into socket buffers allocated with the socket's ``sk_allocation``:
  one linear skb per MSS, its data from kmalloc (a NIC without
  scatter-gather), or with ``net.tx_sg`` GSO skbs of 45 MSS whose heads hold
  1504 bytes and whose page frags come from the page allocator.  Those
  buffers stay allocated until the server acknowledges them.
- With ``nbd-memalloc`` (patch 14) the socket is SOCK_MEMALLOC, sends and
  receives run with PF_MEMALLOC and ``sk_allocation = GFP_NOIO |
  __GFP_MEMALLOC``; without it, GFP_NOIO and no PF_MEMALLOC, so the sender
  competes for pages at the MIN watermark and may enter direct reclaim.
- The server (remote, never short of memory) handles requests one at a
  time: ``server_latency`` plus the transfer at ``server_bandwidth``, then a
  16-byte reply (plus the data for a read).  It reads a request off its
  socket when it starts on it; until then the request fills its receive
  window (``server_window``), so a slow server keeps our send buffer full.
- ``nbd-client`` (the NBD_DO_IT caller) reads replies from the socket, copies
  read data into the swap-cache pages and completes the requests.  A write is
  complete only when its reply has been read.
- A TCP reset fails every outstanding request with EIO.
"""

from __future__ import annotations

from typing import Any

from swapsim.hookspecs import hookimpl

from .options import NbdOptions
from .transport import REPLY_HEADER, REQUEST_HEADER, Nbd

__all__ = ["Nbd", "NbdOptions", "REPLY_HEADER", "REQUEST_HEADER"]


@hookimpl
def swapsim_register_transports(register: Any) -> None:
    register("nbd", Nbd, options=NbdOptions)
