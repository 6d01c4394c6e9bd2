"""The network receive path, sockets and a TCP model (SPEC §5).

What is modelled, and at which grain:

- A full-duplex **link** with a bandwidth and a round-trip time; each
  direction serialises bursts.
- The **NIC rx ring**: ``ring_size`` descriptors, each filled with an rx
  buffer by the driver (an :class:`RxBufferHelper` plugin).  A packet that
  arrives when no descriptor is filled is lost (``rx_missed``).  Packets are
  handled by **NAPI polls** of up to ``napi_budget`` packets in softirq; after
  a poll the driver refills every unused descriptor with GFP_ATOMIC
  allocations, stopping at the first failure (e1000e's behaviour).  A failed
  refill leaves the slot empty, so allocation failure becomes packet loss
  only once the ring drains.
- **skb pfmemalloc marks** (``netvm``): rx buffers taken from the reserve
  mark the skb; a marked skb of a protocol other than IP/ARP/VLAN is dropped
  (``rx_dropped``), a marked skb for a socket without SOCK_MEMALLOC is dropped
  (``pfmemalloc_drop``); while a marked skb is processed the softirq runs with
  PF_MEMALLOC, so the ACK it sends may use the reserve too.
- **TCP** per direction, at segment grain: MSS-sized segments sent as
  bursts, cumulative ACKs (one per ``delayed_ack`` segments; a rest is
  delayed up to ``ato`` and rides on the peer's next data segment), in-order
  delivery (a segment after a hole is discarded: go-back-N, no SACK), a
  retransmission timer from ``rto_min`` doubling to ``rto_max``, and a reset
  after ``max_retries`` retransmissions of the same data.
- **Unrelated background traffic** to an ordinary socket.

Packets are aggregated the way NAPI aggregates them: a burst arrives as one
event and is handled in polls of ≤ budget packets.
"""

from __future__ import annotations

import math
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Final, Generator

from ._mypyc import mypyc_attr
from .cpu import Cpus, Task
from .engine import Environment, Event
from .mm import gfp as G
from .mm.zone import ZONE_NORMAL
from .slab import AllocContext

if TYPE_CHECKING:  # pragma: no cover
    from .simulation import Simulation

ETH_P_IP: Final = "ipv4"
#: protocols a pfmemalloc skb may be delivered to (skb_pfmemalloc_protocol)
PFMEMALLOC_PROTOCOLS: Final = frozenset({"ipv4", "ipv6", "arp", "8021q"})


@mypyc_attr(allow_interpreted_subclasses=True)
class RxBufferHelper:
    """Base class of driver rx-buffer helpers (``kernel.rx_buffer`` plugins).

    ``alloc(gfp, ctx)`` returns a buffer handle (any hashable value) or None
    when the allocation failed; ``pfmemalloc(handle)`` says whether the skb
    built on it is marked; ``free(handle)`` releases it.  ``gfp`` already
    carries __GFP_MEMALLOC when the stack allows the reserve.
    """

    name: ClassVar[str] = "base"

    def __init__(self, sim: "Simulation", options: Any = None) -> None:
        self.sim = sim
        self.options = options

    def alloc(self, gfp: int, ctx: AllocContext) -> Any:
        raise NotImplementedError

    def pfmemalloc(self, handle: Any) -> bool:
        raise NotImplementedError

    def free(self, handle: Any, ctx: AllocContext) -> None:
        raise NotImplementedError

    def pfmemalloc_marks(self, handles: list[Any]) -> list[Any]:
        """:meth:`pfmemalloc` of each handle.  Helpers may override it to answer for
        a whole burst without a method call per packet."""
        pfmemalloc = self.pfmemalloc
        return [pfmemalloc(h) for h in handles]

    def alloc_bulk(self, gfp: int, ctx: AllocContext, n: int) -> list[Any]:
        """Up to ``n`` buffers: exactly ``n`` calls of :meth:`alloc`, stopping at the first
        failure (no call after it; None is not in the list).  Helpers override this
        with batched slab calls that return the same handles and leave the same state."""
        out: list[Any] = []
        alloc = self.alloc
        for _i in range(n):
            handle = alloc(gfp, ctx)
            if handle is None:
                break
            out.append(handle)
        return out

    def free_bulk(self, handles: list[Any], ctx: AllocContext) -> None:
        """Release many buffers: exactly :meth:`free` of each handle in order."""
        free = self.free
        for handle in handles:
            free(handle, ctx)


class Link:
    """One direction of the wire: bursts serialise, then fly for rtt/2."""

    __slots__ = ("env", "bandwidth", "delay", "busy_until")

    def __init__(self, env: Environment, bandwidth: float, delay: float) -> None:
        self.env = env
        self.bandwidth = bandwidth
        self.delay = delay
        self.busy_until = 0.0

    def send(self, nbytes: int, deliver: Callable[[], Any]) -> float:
        """Transmit ``nbytes``; ``deliver`` runs when the last byte arrives."""
        start = max(self.env.now, self.busy_until)
        self.busy_until = start + nbytes / self.bandwidth
        at = self.busy_until + self.delay
        self.env.call_later(at - self.env.now, deliver)
        return at


class Socket:
    """The receiving side of a socket on our machine.

    The receive queue holds runs of buffers as they were delivered: (first
    segment number, buffers) for a TCP stream, (datagram size, buffers) for
    datagrams.
    """

    def __init__(self, name: str, protocol: str = ETH_P_IP, rcvbuf: int = 212992) -> None:
        self.name = name
        self.protocol = protocol
        self.memalloc = False           # SOCK_MEMALLOC
        self.rcvbuf = rcvbuf
        self.queue: deque[tuple[int, list[Any]]] = deque()
        self.qlen = 0                   # buffers queued
        self.rmem = 0                   # truesize of queued buffers
        self.data_ready: Callable[[], object] | None = None

    def enqueue(self, key: int, bufs: list[Any], truesize: int) -> None:
        self.queue.append((key, bufs))
        self.qlen += len(bufs)
        self.rmem += len(bufs) * truesize

    def dequeue_stream(self, end: int, truesize: int) -> list[Any]:
        """tcp_recvmsg() up to segment ``end`` (exclusive): the buffers consumed."""
        q = self.queue
        out: list[Any] = []
        while q and q[0][0] < end:
            seq, bufs = q[0]
            k = end - seq
            if k >= len(bufs):
                q.popleft()
                out += bufs
            else:
                out += bufs[:k]
                q[0] = (end, bufs[k:])
        self.qlen -= len(out)
        self.rmem -= len(out) * truesize
        return out

    def dequeue_datagrams(self, nbytes: float, truesize: int) -> list[Any]:
        """recvmsg() of whole datagrams worth at most ``nbytes``: the buffers consumed."""
        q = self.queue
        out: list[Any] = []
        while q and nbytes >= q[0][0]:
            size, bufs = q[0]
            k = min(len(bufs), int(nbytes // size))
            nbytes -= k * size
            if k == len(bufs):
                q.popleft()
                out += bufs
            else:
                out += bufs[:k]
                q[0] = (size, bufs[k:])
        self.qlen -= len(out)
        self.rmem -= len(out) * truesize
        return out


class Burst:
    """Packets of one flow that reached the NIC together, and later their rx buffers.

    Data segments are consecutive (``seq`` is the first); ACK packets carry
    one cumulative ACK each (``acks``); background datagrams carry neither.
    NAPI takes bursts whole or splits them at its budget.
    """

    __slots__ = ("flow", "sock", "n", "seq", "acks", "bufs", "piggy_flow", "piggy")

    def __init__(self, flow: "_RetransmitTimer | None", sock: Socket, n: int, seq: int = -1,
                 acks: list[int] | None = None) -> None:
        self.flow = flow
        self.sock = sock
        self.n = n
        self.seq = seq
        self.acks = acks
        self.bufs: list[Any] = []
        #: a data burst's segments also carry the sender's cumulative ACK of
        #: the other direction: ``piggy`` for ``piggy_flow`` (None: no ACK)
        self.piggy_flow: "_RetransmitTimer | None" = None
        self.piggy = 0

    def split(self, k: int) -> "Burst":
        """Take the first ``k`` packets off into a burst of their own."""
        head = Burst(self.flow, self.sock, k, self.seq,
                     None if self.acks is None else self.acks[:k])
        head.piggy_flow, head.piggy = self.piggy_flow, self.piggy
        head.bufs = self.bufs[:k]
        del self.bufs[:k]
        if self.acks is not None:
            del self.acks[:k]
        if self.seq >= 0:
            self.seq += k
        self.n -= k
        return head


# A native class (its attributes are struct slots, its methods called
# through a vtable: every packet passes it).  Tests that watch its calls
# subclass it in Python and put an instance in NetStack.nic before start().
@mypyc_attr(allow_interpreted_subclasses=True)
class Nic:
    """The NIC's rx ring and its NAPI context (one queue, one CPU)."""

    def __init__(self, net: "NetStack") -> None:
        self.net = net
        self.sim = net.sim
        self.env = net.env
        cfg = net.cfg
        self.ring_size = cfg.ring_size
        self.budget = cfg.napi_budget
        # read per poll: kept natively rather than looked up on the config objects
        self.cpus: Cpus = net.sim.cpus
        self.packet_cost: float = cfg.softirq_packet_cost
        self.irq_latency: float = cfg.irq_latency
        self.buffer_write = cfg.rx_buffer_write
        self.ring: list[Any] = []             # filled descriptors (buffers), oldest first
        self.pending: deque[Burst] = deque()
        self.uncleaned = 0                    # packets in pending
        self.napi_scheduled = False
        self.stats = {"rx_packets": 0, "rx_missed": 0, "rx_dropped": 0, "pfmemalloc_drop": 0,
                      "rx_alloc_failed": 0, "napi_polls": 0, "rx_pfmemalloc": 0}

    def fill(self, most: int = -1) -> None:
        """The driver's refill: every unused descriptor (at most ``most`` of
        them if given), stop at the first failure."""
        # descriptors holding packets NAPI has not cleaned yet are not free
        want = self.ring_size - len(self.ring) - self.uncleaned
        if 0 <= most < want:
            want = most
        if want <= 0:
            return
        net = self.net
        bufs = net.rx.alloc_bulk(net.rx_gfp(), net.softirq_ctx, want)
        self.ring.extend(bufs)
        if len(bufs) < want:
            self.stats["rx_alloc_failed"] += 1

    def receive(self, burst: Burst) -> None:
        """A burst hits the wire side of the NIC: each packet takes a filled
        descriptor; those beyond the filled ones are lost (the tail)."""
        ring = self.ring
        taken = min(len(ring), burst.n)
        missed = burst.n - taken
        if missed:
            self.stats["rx_missed"] += missed
            burst.n = taken
            if burst.acks is not None:
                del burst.acks[taken:]
        if not taken:
            return
        burst.bufs = ring[:taken]
        del ring[:taken]
        self.pending.append(burst)
        self.uncleaned += taken
        self.stats["rx_packets"] += taken
        if not self.napi_scheduled:
            self.napi_scheduled = True
            self.env.call_later(self.irq_latency, self.poll)

    def poll(self) -> None:
        """One NAPI poll: deliver ≤ budget packets, giving buffers back every
        ``rx_buffer_write`` of them (the stack frees what they carried first:
        an ACK's buffer and the sent skbs it acknowledges), then refill the ring."""
        net = self.net
        pending = self.pending
        left = self.budget
        write = self.buffer_write
        cleaned = 0
        self.stats["napi_polls"] += 1
        touched: "dict[_RetransmitTimer, int]" = {}
        while left and pending:
            b = pending[0]
            k = min(left, write - cleaned)
            if b.n <= k:
                pending.popleft()
            else:
                b = b.split(k)
            left -= b.n
            cleaned += b.n
            self.uncleaned -= b.n
            net.deliver(b, touched)
            if cleaned == write:
                self.fill(cleaned)
                cleaned = 0
        for flow, pfm in touched.items():
            flow.after_poll(pfm)
        self.fill()
        self.cpus.charge_softirq((self.budget - left) * self.packet_cost)
        if pending:
            self.env.call_later(0.0, self.poll)
        else:
            self.napi_scheduled = False


class _RetransmitTimer:
    """The sender's retransmission timer: RTO from ``rto_min`` doubling to
    ``rto_max``, reset after ``max_retries`` expiries without progress."""

    # set by the subclasses
    net: NetStack
    env: Environment
    stats: dict[str, int]

    def _init_timer(self, net: "NetStack", on_reset: Callable[[], None]) -> None:
        #: NetConfig's figures as native floats (read per ACK; the config is an attrs class)
        self.rto_min = float(net.cfg.rto_min)
        self.rto: float = self.rto_min
        self.retries = 0
        #: when the armed timer expires, or None
        self.timer: float | None = None
        #: the one pending timer event (its time and token): re-arming for a
        #: later time, as every ACK does, leaves it queued and it re-queues
        #: itself for the new expiry (mod_timer() without an event per ACK)
        self._due: float | None = None
        self._token: object = None
        self.reset = False
        self.on_reset = on_reset

    def _arm(self) -> None:
        at = self.env.now + self.rto
        self.timer = at
        due = self._due
        if due is None or due > at:
            self._queue_timer(at)

    def _queue_timer(self, at: float) -> None:
        token = object()
        self._token, self._due = token, at
        self.env.call_at(at, lambda: self._expired(token))

    def _expired(self, token: object) -> None:
        if token is not self._token:
            return                      # superseded by an earlier expiry
        self._due = None
        at = self.timer
        if at is None or self.reset:
            return
        if at > self.env.now:           # re-armed meanwhile
            self._queue_timer(at)
            return
        self.timer = None
        if not self.outstanding():
            return
        self.retries += 1
        self.stats["timeouts"] += 1
        cfg = self.net.cfg
        if self.retries > cfg.max_retries:
            self.reset = True
            self.on_reset()
            return
        self.rto = min(self.rto * 2, cfg.rto_max)
        self.retransmit()

    def _progress(self) -> None:
        """New data acknowledged: back to rto_min, re-arm if more is outstanding."""
        self.retries = 0
        self.rto = self.rto_min
        self.timer = None
        if self.outstanding():
            self._arm()

    def outstanding(self) -> bool:
        raise NotImplementedError

    def retransmit(self) -> None:
        raise NotImplementedError

    # what the receive path calls on a burst's flow (declared here so that
    # those calls, several per NAPI poll, go through the native vtable)
    def ack(self, ack: int) -> None:
        """An ACK packet for data we sent arrived."""
        raise NotImplementedError

    def accept(self, seq: int, n: int) -> int:
        """Data segments arrived: how many of the first ones are dropped."""
        raise NotImplementedError

    def after_poll(self, pfmemalloc: int) -> None:
        """The NAPI poll that delivered this flow's packets is over."""
        raise NotImplementedError


class TcpFlow(_RetransmitTimer):
    """Data from the server to us (replies), received on our socket.

    The server sends segments in bursts while our receive window allows;
    we accept in order, queue the buffers on the socket, and ACK.  The
    server retransmits from its first unacknowledged segment when its
    retransmission timer fires.
    """

    def __init__(self, net: "NetStack", sock: Socket, on_reset: Callable[[], None]) -> None:
        self.net = net
        self.env = net.env
        self.sock = sock
        self._init_timer(net, on_reset)
        cfg = net.cfg
        self.mss = cfg.mss
        self.window = max(1, sock.rcvbuf // cfg.rx_buffer_size)  # segments of truesize
        # server (sender) side
        self.snd_nxt = 0
        self.snd_end = 0           # segments queued by the application so far
        # our (receiver) side
        self.rcv_nxt = 0
        self.acked_seen = 0        # highest ACK the server has received
        self.window_closed = False
        #: the other direction of the connection: each segment the server
        #: sends carries its ACK of our data (set by the transport)
        self.reverse: "TxFlow | None" = None
        self.stats = {"segments_sent": 0, "retransmits": 0, "ooo_dropped": 0, "timeouts": 0,
                      "ack_alloc_failed": 0}

    # server side ----------------------------------------------------------
    def queue_message(self, nbytes: int) -> int:
        """The server application writes ``nbytes``; returns the end segment number."""
        self.snd_end += max(1, math.ceil(nbytes / self.mss))
        self.push()
        return self.snd_end

    def in_flight_window(self) -> int:
        """Segments the server may send beyond what we have acknowledged."""
        return self.window - self.sock.qlen - (self.snd_nxt - self.acked_seen)

    def push(self) -> None:
        if self.reset:
            return
        room = self.in_flight_window()
        n = min(room, self.snd_end - self.snd_nxt)
        if n <= 0:
            if self.snd_end > self.snd_nxt:
                self.window_closed = True
            return
        self._send(self.snd_nxt, n)
        self.snd_nxt += n

    def _send(self, start: int, n: int) -> None:
        burst = Burst(self, self.sock, n, seq=start)
        rev = self.reverse
        if rev is not None:         # every segment carries the server's rcv_nxt
            burst.piggy_flow, burst.piggy = rev, rev.srv_rcv
            rev.srv_unacked = 0
        self.stats["segments_sent"] += n
        self.net.down.send(n * (self.mss + 52), lambda: self.net.nic.receive(burst))
        if self.timer is None:
            self._arm()

    def outstanding(self) -> bool:
        return self.acked_seen < self.snd_nxt

    def retransmit(self) -> None:
        # go-back-N from the first segment we have not acknowledged
        start = self.acked_seen
        n = min(self.snd_nxt - start, max(1, self.window - self.sock.qlen))
        self.stats["retransmits"] += n
        self._send(start, n)

    def ack_arrived(self, ack: int) -> None:
        """Our cumulative ACK reached the server."""
        if ack > self.acked_seen:
            self.acked_seen = ack
            self._progress()
        self.push()

    # our side -------------------------------------------------------------
    def accept(self, seq: int, n: int) -> int:
        """tcp_rcv_established() for segments seq … seq+n-1: how many of the
        first ones are dropped (duplicates, or all after a hole: go-back-N, no
        SACK); the rest are in order and accepted."""
        skip = self.rcv_nxt - seq
        if skip < 0 or skip >= n:
            skip = n
        else:
            self.rcv_nxt += n - skip
        if skip:
            self.stats["ooo_dropped"] += skip
        return skip

    def after_poll(self, pfmemalloc: int) -> None:
        """Send our cumulative ACK for what this poll accepted (delayed ACKs)."""
        net = self.net
        ack = self.rcv_nxt
        ctx = net.softirq_memalloc_ctx if pfmemalloc else net.softirq_ctx
        if not net.alloc_ack(ctx):
            self.stats["ack_alloc_failed"] += 1
            return
        net.up.send(64, lambda: self.ack_arrived(ack))

    def window_update(self) -> None:
        """The reader freed receive buffer space."""
        if self.window_closed and self.in_flight_window() > 0:
            self.window_closed = False
            ack = self.rcv_nxt
            self.net.up.send(64, lambda: self.ack_arrived(ack))


class TxFlow(_RetransmitTimer):
    """Data from us to the server (requests).  The server never drops; its
    cumulative ACKs come back through our rx ring and can be lost there.

    The server's TCP ACKs at once when more than ``delayed_ack - 1`` full
    segments are unacknowledged (__tcp_ack_snd_check(): every second full
    segment of a write).  Less (a read request's one small segment) waits:
    the ACK rides on the next segment the server sends us (a reply), or
    goes alone ``ato`` after the first unacknowledged byte (the delayed-ACK
    timer, TCP_ATO_MIN).

    ``window`` is what the server's socket accepts before its application
    reads it (the advertised receive window).  A server slower than the link
    fills it; then the window closes and what we send waits in our write
    queue, holding its skbs (and ``sk_wmem_queued``) until the server reads
    (``consumed``) and ACKs.  The model sends whole messages: one waits until
    it fits in the window (or nothing is in flight).  None: never closes.
    """

    def __init__(self, net: "NetStack", sock: Socket, on_reset: Callable[[], None],
                 window: int | None = None) -> None:
        self.net = net
        self.env = net.env
        self.sock = sock
        self._init_timer(net, on_reset)
        self.mss = net.cfg.mss
        self.delayed_ack: int = net.cfg.delayed_ack
        self.ato = float(net.cfg.ato)
        self.snd_una = 0
        self.snd_nxt = 0
        # (end segment, callback) for data freed when acknowledged
        self.unacked: deque[tuple[int, Callable[[], None]]] = deque()
        self.window = window
        self.in_peer = 0           # bytes sent that the server's application has not read
        self.unsent: deque[tuple[int, Callable[[], None]]] = deque()
        # the server's receiving side: its rcv_nxt, the bytes it has not
        # ACKed yet and since when, and whether its delayed-ACK timer is queued
        self.srv_rcv = 0
        self.srv_unacked = 0
        self.srv_unacked_since = 0.0
        self.delack_queued = False
        self.stats = {"segments_sent": 0, "retransmits": 0, "timeouts": 0, "window_closed": 0}

    def send(self, nbytes: int, on_acked: Callable[[], None]) -> None:
        """Queue a message; it goes out when the server's window has room."""
        if self.window is not None and self.in_peer and (
                self.unsent or self.in_peer + nbytes > self.window):
            if not self.unsent:
                self.stats["window_closed"] += 1
            self.unsent.append((nbytes, on_acked))
            return
        self._transmit(nbytes, on_acked)

    def consumed(self, nbytes: int) -> None:
        """The server's application read ``nbytes``: the window opens."""
        self.in_peer -= nbytes
        unsent, window = self.unsent, self.window
        while unsent and (not self.in_peer or window is None or self.in_peer + unsent[0][0] <= window):
            self._transmit(*unsent.popleft())

    def _transmit(self, nbytes: int, on_acked: Callable[[], None]) -> None:
        self.in_peer += nbytes
        n = max(1, math.ceil(nbytes / self.mss))
        start = self.snd_nxt
        self.snd_nxt += n
        self.unacked.append((self.snd_nxt, on_acked))
        self.stats["segments_sent"] += n
        end = self.snd_nxt
        self.net.up.send(nbytes + 52 * n, lambda: self.server_received(start, end, nbytes))
        if self.timer is None:
            self._arm()

    def server_received(self, start: int, end: int, nbytes: int) -> None:
        """Segments [start, end) of a message of ``nbytes`` reached the server:
        it ACKs each time more than ``delayed_ack - 1`` full segments' bytes
        are unacknowledged, and delays the ACK of any rest."""
        mss = self.mss
        limit = (self.delayed_ack - 1) * mss
        u = self.srv_unacked
        n = end - start
        acks: list[int] = []
        if n > 1:
            # the full segments: the first ACK once u + k·mss > limit, then
            # one per delayed_ack segments
            k = (limit - u) // mss + 1
            if k < n:
                acks = list(range(start + k, end, limit // mss + 1))
                u = (end - 1 - acks[-1]) * mss
            else:
                u += (n - 1) * mss
        u += nbytes - (n - 1) * mss         # the last segment
        if u > limit:
            acks.append(end)
            u = 0
        self.srv_rcv = end
        if u and (acks or not self.srv_unacked):     # the rest waits from now
            self.srv_unacked_since = self.env.now
        self.srv_unacked = u
        if acks:
            self._server_acks(acks)
        if u and not self.delack_queued:
            self.delack_queued = True
            self.env.call_later(self.ato, self._delack)
        self.net.server_got(start, end)

    def _delack(self) -> None:
        """The server's delayed-ACK timer: ACK what no segment of its has carried."""
        self.delack_queued = False
        if not self.srv_unacked or self.reset:
            return
        due = self.srv_unacked_since + self.ato
        if due > self.env.now:          # ACKed since, and a newer byte waits
            self.delack_queued = True
            self.env.call_at(due, self._delack)
            return
        self.srv_unacked = 0
        self._server_acks([self.srv_rcv])

    def _server_acks(self, acks: list[int]) -> None:
        """The server sends pure ACK packets, one per cumulative ACK in ``acks``."""
        burst = Burst(self, self.sock, len(acks), acks=acks)
        self.net.down.send(64 * len(acks), lambda: self.net.nic.receive(burst))

    def outstanding(self) -> bool:
        return self.snd_una < self.snd_nxt

    def retransmit(self) -> None:
        # retransmit the first unacknowledged segment; the server, which has
        # everything, answers with one cumulative ACK
        self.stats["retransmits"] += 1
        nxt = self.snd_nxt
        self.net.up.send(self.mss + 52, lambda: self.net.down.send(
            64, lambda: self.net.nic.receive(Burst(self, self.sock, 1, acks=[nxt]))))
        self._arm()

    def ack(self, ack: int) -> None:
        if ack <= self.snd_una:
            return
        self.snd_una = ack
        unacked = self.unacked
        while unacked and unacked[0][0] <= ack:
            unacked.popleft()[1]()
        self._progress()

    def after_poll(self, pfmemalloc: int) -> None:
        pass


def tcp_buffer_max(free_buffer_pages: int) -> tuple[int, int]:
    """tcp_init(): (tcp_wmem[2], tcp_rmem[2]) for ``nr_free_buffer_pages()``.

    tcp_mem's pressure threshold is a page count, an eighth of low memory;
    no socket may take more than 1/128 of it.
    """
    limit = max(free_buffer_pages // 8, 128)
    share = limit << (12 - 7)
    return max(64 << 10, min(4 << 20, share)), max(87380, min(6 << 20, share))


#: receive autotuning follows what the reader leaves queued; nbd-client reads
#: as soon as data arrives, so its buffer does not grow past this
RCVBUF_AUTOTUNED: Final = 512 << 10


class NetStack:
    """Our machine's network stack: NIC, sockets, flows, background traffic."""

    def __init__(self, sim: "Simulation", rx_helper: RxBufferHelper) -> None:
        self.sim = sim
        self.env = sim.env
        self.cfg = cfg = sim.config.net
        self.rx_buffer_size: int = cfg.rx_buffer_size
        # nr_free_buffer_pages(): present pages above HIGH in the zones GFP_USER may use
        free_buffer = sum(max(0, z.present - z.high) for z in sim.mm.zones if z.idx <= ZONE_NORMAL)
        self.wmem_max, self.rmem_max = tcp_buffer_max(free_buffer)
        #: the swap socket's buffer limits, in bytes of truesize
        self.sndbuf = cfg.sndbuf or self.wmem_max
        self.rcvbuf = cfg.rcvbuf or min(RCVBUF_AUTOTUNED, self.rmem_max)
        self.rx = rx_helper
        self.patches = sim.patches
        self.netvm = "netvm" in self.patches
        delay = self.cfg.rtt / 2
        self.up = Link(self.env, self.cfg.link_bandwidth, delay)     # us -> server
        self.down = Link(self.env, self.cfg.link_bandwidth, delay)   # server -> us
        self.softirq_task = _softirq_task()
        self.softirq_ctx = AllocContext(task=self.softirq_task, softirq=True)
        self.softirq_memalloc_ctx = AllocContext(task=_softirq_task(memalloc=True), softirq=True)
        self.nic = Nic(self)
        self.server_got: Callable[[int, int], None] = lambda a, b: None
        self.bg_sock: Socket | None = None
        self.bg_last_drain = 0.0
        self.slab = sim.slab
        self.ack_cache = sim.kmem_cache("skbuff_head_cache", 256)
        self.bg_stats = {"delivered": 0, "rcvbuf_dropped": 0}
        self.bg_reader_ctx = AllocContext(task=None)

    def start(self) -> None:
        self.nic.fill()
        self.warm_up(self.cfg.warmup_packets)
        cfg = self.cfg
        if cfg.background_rate > 0:
            self.bg_sock = Socket("background", cfg.background_protocol, cfg.background_rcvbuf)
            self.env.process(self._background(), name="background-traffic")

    def warm_up(self, packets: int) -> None:
        """Traffic before the test: ``packets`` rx buffers and as many tx skbs
        (data + fclone head) allocated, then freed, spread over the CPUs.
        Whatever each slab allocator keeps of them is its warm cache."""
        sim = self.sim
        ncpus = sim.config.machine.cpus
        ctxs = [AllocContext(task=None, softirq=True, cpu=c) for c in range(ncpus)]
        size = self.cfg.rx_buffer_size
        data = sim.kmem_cache(f"kmalloc-{size}", size)
        fclone = sim.kmem_cache("skbuff_fclone_cache", 512)
        held: list[tuple[Any, AllocContext]] = []
        tx: list[tuple[int, int, AllocContext]] = []
        for i in range(packets):
            ctx = ctxs[i % ncpus]
            buf = self.rx.alloc(G.GFP_ATOMIC, ctx)
            if buf is not None:
                held.append((buf, ctx))
            d = self.slab.alloc(data, G.GFP_KERNEL, ctx)
            h = self.slab.alloc(fclone, G.GFP_KERNEL, ctx)
            if d >= 0 and h >= 0:
                tx.append((d, h, ctx))
        for buf, ctx in held:
            self.rx.free(buf, ctx)
        for d, h, ctx in tx:
            self.slab.free(data, d, ctx)
            self.slab.free(fclone, h, ctx)

    def rx_gfp(self) -> int:
        """__netdev_alloc_skb(): GFP_ATOMIC, plus __GFP_MEMALLOC while memalloc sockets exist."""
        if self.netvm and self.sim.memalloc_socks():
            return G.GFP_ATOMIC | G.GFP_MEMALLOC
        return G.GFP_ATOMIC

    def alloc_ack(self, ctx: AllocContext) -> bool:
        """An ACK skb (sent and freed at once): may fail under memory pressure."""
        obj = self.slab.alloc(self.ack_cache, G.GFP_ATOMIC, ctx)
        if obj < 0:
            return False
        self.slab.free(self.ack_cache, obj, ctx)
        return True

    def deliver(self, burst: Burst, touched: "dict[_RetransmitTimer, int]") -> None:
        """__netif_receive_skb() → protocol → socket, for a burst of packets.

        ``touched`` collects the flows that received data in this poll, with
        whether any of it was pfmemalloc (their ACK may then use the reserve).
        """
        if self.netvm:
            rx = self.rx
            marks = rx.pfmemalloc_marks(burst.bufs)
            if True in marks:
                self.nic.stats["rx_pfmemalloc"] += marks.count(True)
                sock = burst.sock
                if sock.protocol not in PFMEMALLOC_PROTOCOLS or not sock.memalloc:
                    self._deliver_filtered(burst, marks, touched)
                    return
                self._deliver(burst, 1, touched)
                return
        self._deliver(burst, 0, touched)

    def _deliver_filtered(self, burst: Burst, marks: list[bool],
                          touched: "dict[_RetransmitTimer, int]") -> None:
        """Marked skbs may not reach this socket: drop them one by one
        (``rx_dropped`` for a protocol that cannot use the reserve,
        ``pfmemalloc_drop`` for an ordinary socket), deliver the others."""
        counter = ("rx_dropped" if burst.sock.protocol not in PFMEMALLOC_PROTOCOLS
                   else "pfmemalloc_drop")
        ctx = self.softirq_ctx
        for i, (buf, marked) in enumerate(zip(burst.bufs, marks)):
            if marked:
                self.nic.stats[counter] += 1
                self.rx.free_bulk([buf], ctx)
                continue
            one = Burst(burst.flow, burst.sock, 1,
                        burst.seq + i if burst.seq >= 0 else -1,
                        None if burst.acks is None else [burst.acks[i]])
            one.piggy_flow, one.piggy = burst.piggy_flow, burst.piggy
            one.bufs = [buf]
            self._deliver(one, 0, touched)

    def _deliver(self, burst: Burst, pfm: int, touched: "dict[_RetransmitTimer, int]") -> None:
        flow = burst.flow
        if flow is None:  # background datagrams
            self._background_deliver(burst)
            return
        bufs = burst.bufs
        if burst.acks is not None:
            self.rx.free_bulk(bufs, self.softirq_ctx)
            flow.ack(max(burst.acks))
            return
        if burst.piggy_flow is not None:    # tcp_ack() before tcp_data_queue()
            burst.piggy_flow.ack(burst.piggy)
        skip = flow.accept(burst.seq, burst.n)
        touched[flow] = touched.get(flow, 0) | pfm
        if skip:
            self.rx.free_bulk(bufs[:skip], self.softirq_ctx)
            if skip == burst.n:
                return
            bufs = bufs[skip:]
        sock = burst.sock
        sock.enqueue(burst.seq + skip, bufs, self.rx_buffer_size)
        if sock.data_ready is not None:
            sock.data_ready()

    # -- background traffic -----------------------------------------------------
    def _background(self) -> Generator[Event, Any, None]:
        cfg = self.cfg
        rng = self.sim.rng("background-traffic")
        per = cfg.background_rate * cfg.background_period
        sock = self.bg_sock
        assert sock is not None     # started with it
        nic = self.nic
        while True:
            yield self.env.timeout(cfg.background_period)
            n = int(rng.poisson(per))
            if n:
                burst = Burst(None, sock, n)
                self.down.send(n * (cfg.background_size + 52), partial(nic.receive, burst))

    def _background_deliver(self, burst: Burst) -> None:
        sock = self.bg_sock
        assert sock is not None     # delivered to it
        self._background_drain()
        truesize = self.cfg.rx_buffer_size
        room = max(0, (sock.rcvbuf - sock.rmem) // truesize)
        bufs = burst.bufs
        if room < len(bufs):
            self.bg_stats["rcvbuf_dropped"] += len(bufs) - room
            self.rx.free_bulk(bufs[room:], self.softirq_ctx)
            bufs = bufs[:room]
        if bufs:
            sock.enqueue(self.cfg.background_size, bufs, truesize)
            self.bg_stats["delivered"] += len(bufs)

    def _background_drain(self) -> None:
        """The ordinary reader consumes at ``background_reader`` bytes/s."""
        now = self.env.now
        budget = (now - self.bg_last_drain) * self.cfg.background_reader
        self.bg_last_drain = now
        assert self.bg_sock is not None
        bufs = self.bg_sock.dequeue_datagrams(budget, self.cfg.rx_buffer_size)
        if bufs:
            self.rx.free_bulk(bufs, self.bg_reader_ctx)

    def stats(self) -> dict[str, Any]:
        out = dict(self.nic.stats)
        out["ring_filled"] = len(self.nic.ring)
        out.update({f"background_{k}": v for k, v in self.bg_stats.items()})
        return out


def _softirq_task(memalloc: bool = False) -> Task:
    """``current`` as seen by softirq code: only its flags matter."""
    return Task(pid=0, comm="softirq", flags=G.PF_MEMALLOC if memalloc else 0, kthread=True)


__all__ = ["NetStack", "Nic", "Socket", "TcpFlow", "TxFlow", "RxBufferHelper", "Link"]
