"""The NBD transport: kernel thread, nbd-client and server (see the package docstring)."""

from __future__ import annotations

from collections import deque
from functools import partial
from typing import Any, Final, Generator

from swapsim._mypyc import mypyc_attr
from swapsim.block import READ, WRITE, EIO, Request, SwapTransport
from swapsim.cpu import Cpus, Task
from swapsim.engine import Event, WaitQueue
from swapsim.mm import gfp as G
from swapsim.mm.memory import MM
from swapsim.net import NetStack, Socket, TcpFlow, TxFlow
from swapsim.slab import SlabAllocator, task_context

from .options import NbdOptions

REQUEST_HEADER: Final = 28
REPLY_HEADER: Final = 16
PAGE_SIZE: Final = 4096
#: with a scatter-gather NIC: tcp_xmit_size_goal() for a 64 KiB GSO skb, in
#: MSS, and the linear bytes of its head, SKB_WITH_OVERHEAD(2048 -
#: MAX_TCP_HEADER) with MAX_TCP_HEADER 224 and a 320-byte skb_shared_info
GSO_SEGS: Final = 45
SG_HEAD: Final = 2048
SG_LINEAR: Final = SG_HEAD - 224 - 320


# compiled with mypyc (setup.py); plain Python subclasses stay possible
@mypyc_attr(allow_interpreted_subclasses=True)
class Nbd(SwapTransport):
    """Swap on /dev/nbd0 over TCP."""

    name = "nbd"
    #: nbd.c sets QUEUE_FLAG_NONROT on every nbd queue
    nonrot = True

    def __init__(self, sim: Any, options: NbdOptions | None = None) -> None:
        opts = options or NbdOptions()
        super().__init__(sim, opts, nr_requests=opts.nr_requests, max_pages=opts.max_pages)
        self.opts = opts
        #: read per request: native floats (NbdOptions is an attrs class)
        self.server_latency = float(opts.server_latency)
        self.server_bandwidth = float(opts.server_bandwidth)
        self.memalloc = "nbd-memalloc" in sim.patches
        self.waiting: deque[Request] = deque()
        self.send_wait = WaitQueue(self.env, "nbd.waiting_wq")
        self.sndbuf_wait = WaitQueue(self.env, "sk_stream_wait_memory")
        self.reply_wait = WaitQueue(self.env, "nbd-client")
        self.sent: deque[Request] = deque()          # on the wire to the server, in order
        self.server_queue: deque[Request] = deque()
        self.server_busy = False
        self.replies: deque[tuple[Request, int]] = deque()  # (request, last segment of reply)
        #: per request tag: its skbs' data buffers and heads, and (with tx_sg)
        #: the frag pages as (zone id, count) chunks, and their truesize
        self.tx_skbs: dict[int, tuple[list[int], list[int], list[tuple[int, int]], int]] = {}
        self.wmem_queued = 0
        self.dead = False
        self.sk_allocation = G.GFP_NOIO | (G.GFP_MEMALLOC if self.memalloc else 0)
        self.stats_ = {"requests_sent": 0, "replies_read": 0, "send_alloc_waits": 0,
                       "send_alloc_wait_s": 0.0, "send_alloc_wait_max_s": 0.0}

    def start(self) -> None:
        sim = self.sim
        self.net: NetStack = sim.net()
        cfg = sim.config.net
        self.sock = Socket("nbd0", rcvbuf=self.net.rcvbuf)
        if self.memalloc:
            self.sock.memalloc = True        # sk_set_memalloc()
            sim.memalloc_sock_count += 1
        self.sock.data_ready = self.reply_wait.wake_up_all
        self.rx_flow = TcpFlow(self.net, self.sock, self._reset)
        self.tx_flow = TxFlow(self.net, self.sock, self._reset, window=self.opts.server_window)
        self.rx_flow.reverse = self.tx_flow     # one connection: replies carry the server's ACKs
        self.net.server_got = self._server_got
        self.sg = cfg.tx_sg
        # an MSS-sized linear skb takes what an rx buffer takes; a GSO head
        # is always alloc_skb_fclone(2048 - skb_shared_info): kmalloc-2048
        size = SG_HEAD if self.sg else cfg.rx_buffer_size
        self.data_cache = sim.kmem_cache(f"kmalloc-{size}", size)
        self.head_cache = sim.kmem_cache("skbuff_fclone_cache", 512)
        # sk_wmem_queued counts truesize: per skb, its kmalloc data buffer
        # and its fclone head (and with tx_sg the bytes in its frag pages)
        self.seg_truesize = size + 512
        flags = G.PF_MEMALLOC if self.memalloc else 0
        self.sender = sim.spawn("nbd0", self._sender, kthread=True)
        self.sender.nice = -20      # nbd_thread(): set_user_nice(current, -20)
        self.client = sim.spawn("nbd-client", self._receiver, flags=flags)
        self.sender.flags |= flags
        self.client_sys = 0.0

    # -- block layer -> kernel thread ------------------------------------------
    def dispatch(self, req: Request) -> None:
        if self.dead:
            self.env.call_later(0.0, lambda: self.queue.complete(req, EIO))
            return
        req.waiting_for = "nbd0 send"
        self.waiting.append(req)
        self.send_wait.wake_up_all()

    def _sender(self, task: Task) -> Generator[Event, Any, None]:
        env = self.env
        mm: MM = self.sim.mm
        cpus: Cpus = self.sim.cpus
        sndbuf = self.net.sndbuf
        mss = self.sim.config.net.mss
        send_cost: float = self.opts.send_cost
        copy: float = self.sim.config.net.copy_page_cost
        seg_truesize = self.seg_truesize
        while True:
            while not self.waiting:
                task.set_state("idle", env.now)
                yield self.send_wait.wait()
            req = self.waiting.popleft()
            if self.dead:
                self.queue.complete(req, EIO)
                continue
            npages = len(req.pages) if req.op == WRITE else 0
            nbytes = REQUEST_HEADER + npages * PAGE_SIZE
            if self.sg:
                # GSO skbs of up to GSO_SEGS MSS; what does not fit in a head
                # goes to pages, filled one after the other (the socket's
                # sk_sndmsg_page; a partly used last page is not carried over)
                goal = GSO_SEGS * mss
                nseg = -(-nbytes // goal)
                linear = (nseg - 1) * min(SG_LINEAR, goal) + min(SG_LINEAR, nbytes - (nseg - 1) * goal)
                frag = nbytes - linear
                nfrag = -(-frag // PAGE_SIZE)
            else:
                nseg = -(-nbytes // mss)
                frag = nfrag = 0
            truesize = nseg * seg_truesize + frag
            while self.wmem_queued + truesize > sndbuf and self.wmem_queued:
                task.set_state("sk_stream_wait_memory", env.now)
                req.waiting_for = "socket send buffer (unacked data)"
                yield self.sndbuf_wait.wait()
            # tcp_sendmsg() copies the request into skbs held until ACKed: a
            # data buffer from kmalloc and a head from skbuff_fclone_cache per
            # skb (per MSS without scatter-gather), plus the frag pages.
            task.set_state("sendmsg_alloc", env.now)
            req.waiting_for = "skbs for the socket copy"
            before = env.now
            data: list[int] = []
            heads: list[int] = []
            frags: list[tuple[int, int]] = []
            got = 0
            while True:
                data += yield from mm.kmem_cache_alloc_bulk(task, self.data_cache, self.sk_allocation,
                                                            nseg - len(data))
                heads += yield from mm.kmem_cache_alloc_bulk(task, self.head_cache, self.sk_allocation,
                                                             nseg - len(heads))
                if got < nfrag:
                    more = yield from mm.alloc_bulk(task, self.sk_allocation, nfrag - got)
                    frags += more
                    got += sum(k for _, k in more)
                if len(data) == nseg and len(heads) == nseg and got == nfrag:
                    break
                # even PF_MEMALLOC found the reserve empty: tcp_sendmsg waits
                # for memory and tries again
                task.set_state("sendmsg_nomem", env.now)
                yield env.timeout(0.02)
            if env.now > before:
                waited = env.now - before
                st = self.stats_
                st["send_alloc_waits"] += 1
                st["send_alloc_wait_s"] += waited
                st["send_alloc_wait_max_s"] = max(st["send_alloc_wait_max_s"], waited)
            self.tx_skbs[req.tag] = (data, heads, frags, truesize)
            self.wmem_queued += truesize
            task.set_state("running", env.now)
            yield from cpus.run(task, send_cost + npages * copy,
                                sys=True)
            if self.dead:
                self._free_tx(req)
                self.queue.complete(req, EIO)
                continue
            req.waiting_for = "server reply"
            req.dispatch_time = env.now
            self.stats_["requests_sent"] += 1
            self.sent.append(req)
            self.tx_flow.send(nbytes, partial(self._acked, req))

    def _acked(self, req: Request) -> None:
        """The server acknowledged the request's bytes: the socket pages are freed."""
        self._free_tx(req)
        self.sndbuf_wait.wake_up_all()

    def _free_tx(self, req: Request) -> None:
        skbs = self.tx_skbs.pop(req.tag, None)
        if skbs:
            slab: SlabAllocator = self.sim.slab
            ctx = self.net.softirq_ctx
            slab.free_bulk(self.data_cache, skbs[0], ctx)
            slab.free_bulk(self.head_cache, skbs[1], ctx)
            mm: MM = self.sim.mm
            for zone, k in skbs[2]:
                mm.free_pages(zone, 0, k)
            self.wmem_queued -= skbs[3]

    # -- the server ------------------------------------------------------------
    def _server_got(self, start: int, end: int) -> None:
        """Segments [start, end) reached the server; complete requests are served in order."""
        # one TxFlow.send() per request: each arrival is the next whole request
        self.server_queue.append(self.sent.popleft())
        if not self.server_busy:
            self._serve()

    def _serve(self) -> None:
        if not self.server_queue or self.rx_flow.reset:
            self.server_busy = False
            return
        self.server_busy = True
        req = self.server_queue.popleft()
        # nbd-server reads the request (and a write's data) off its socket
        self.tx_flow.consumed(REQUEST_HEADER + (len(req.pages) * PAGE_SIZE if req.op == WRITE else 0))
        seconds = self.server_latency + len(req.pages) * PAGE_SIZE / self.server_bandwidth

        def reply() -> None:
            nbytes = REPLY_HEADER + (len(req.pages) * PAGE_SIZE if req.op == READ else 0)
            end = self.rx_flow.queue_message(nbytes)
            self.replies.append((req, end))
            self._serve()
        self.env.call_later(seconds, reply)

    # -- nbd-client: the receiving side -----------------------------------------
    def _receiver(self, task: Task) -> Generator[Event, Any, None]:
        env = self.env
        cpus: Cpus = self.sim.cpus
        sock = self.sock
        net = self.net
        ctx = task_context(task)
        copy: float = self.sim.config.net.copy_page_cost
        reply_cost: float = self.opts.reply_cost
        truesize: int = self.sim.config.net.rx_buffer_size
        while True:
            if not self.replies or self.rx_flow.rcv_nxt < self.replies[0][1]:
                task.set_state("sk_wait_data", env.now)
                yield self.reply_wait.wait()
                continue
            req, end = self.replies.popleft()
            task.set_state("running", env.now)
            pages = len(req.pages) if req.op == READ else 0
            yield from cpus.run(task, reply_cost + pages * copy, sys=True)
            net.rx.free_bulk(sock.dequeue_stream(end, truesize), ctx)
            self.rx_flow.window_update()
            self.stats_["replies_read"] += 1
            self.queue.complete(req, ctx=ctx)

    def _reset(self) -> None:
        """The TCP connection was reset: every request fails with EIO."""
        if self.dead:
            return
        self.dead = True
        for req in list(self.queue.inflight.values()):
            self._free_tx(req)
            self.queue.complete(req, EIO)
        self.waiting.clear()

    # -- reports -----------------------------------------------------------------
    def diagnose(self) -> dict[str, Any]:
        out = super().diagnose()
        out.update({
            "socket_memalloc": self.sock.memalloc,
            "rx_ring_filled": len(self.net.nic.ring),
            "rx_ring_size": self.net.nic.ring_size,
            "socket_rx_queue": self.sock.qlen,
            "sk_wmem_queued": self.wmem_queued, "sk_sndbuf": self.net.sndbuf,
            "tx_rto_s": self.tx_flow.rto, "tx_retries": self.tx_flow.retries,
            "rx_rto_s": self.rx_flow.rto, "rx_retries": self.rx_flow.retries,
            "sender_state": self.sender.state, "client_state": self.client.state,
            "connection_reset": self.dead,
            "net": self.net.stats(),
        })
        return out

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update(self.stats_)
        out.update({f"tx_{k}": v for k, v in self.tx_flow.stats.items()})
        out.update({f"rx_{k}": v for k, v in self.rx_flow.stats.items()})
        out.update(self.net.stats())
        out["connection_reset"] = self.dead
        return out
