"""The network model and the NBD transport, mechanism by mechanism."""

from __future__ import annotations

import pytest

from swapsim.mm import gfp as G
from swapsim.net import Burst, Nic, Socket, TcpFlow, TxFlow
from swapsim.pluginmanager import get_plugin_manager
from swapsim.testing import check_transport, conformance_simulation


@pytest.fixture(scope="module")
def pm():
    return get_plugin_manager()


@pytest.mark.parametrize("slab", ["slab", "slub"])
def test_nbd_passes_the_conformance_suite_with_the_series(pm, slab):
    sim = check_transport(pm, "nbd", slab=slab)
    stats = sim.transport.stats()
    assert stats["writes_completed"] > 0 and stats["reads_completed"] > 0
    assert stats["requests_sent"] == stats["replies_read"]
    assert sim.transport.sock.memalloc          # nbd-memalloc marks the socket
    assert sim.memalloc_socks() == 1


def _net_sim(pm, patches="swapnbd", nic=None, **sets):
    """An NBD machine, its network started; ``nic``: a Nic subclass that
    takes the started NIC's place (and its filled ring)."""
    settings = tuple(f"{k}={v}" for k, v in sets.items())
    sim = conformance_simulation(pm, "nbd", settings, patches=patches)
    sim.transport.start()
    if nic is not None:
        net = sim.transport.net
        watched = nic(net)
        watched.ring = net.nic.ring
        net.nic = watched
    return sim


def _starve(sim, leave_fraction=0.0):
    """Take free pages until each zone holds ``leave_fraction`` × MIN."""
    for z in sim.mm.zones:
        z.take_pages(max(0, z.nr_free - int(z.min * leave_fraction)))


def _hoard(sim):
    """Take every object the rx caches can give without the reserve."""
    net = sim.transport.net
    out = []
    while (buf := net.rx.alloc(G.GFP_ATOMIC, net.softirq_ctx)) is not None:
        out.append(buf)
    return out


def test_ring_drains_then_packets_are_missed(pm):
    sim = _net_sim(pm, patches="vanilla")
    nic = sim.transport.net.nic
    slab = sim.slab
    # take every free object out of the rx caches, then every free page
    helper = sim.transport.net.rx
    hoard = []
    while True:
        buf = helper.alloc(G.GFP_ATOMIC, sim.transport.net.softirq_ctx)
        if buf is None:
            break
        hoard.append(buf)
    _starve(sim)
    assert len(nic.ring) == nic.ring_size
    flow = sim.transport.rx_flow
    n = nic.ring_size + 10
    nic.receive(Burst(flow, sim.transport.sock, n, seq=0))
    assert nic.stats["rx_missed"] == 10
    assert len(nic.ring) == 0
    sim.env.run(until=sim.env.now + 0.01)
    # polls delivered what the ring held; refills failed and left the ring empty
    assert nic.stats["rx_alloc_failed"] > 0
    assert len(nic.ring) < nic.ring_size
    assert slab is sim.slab


def test_pfmemalloc_skb_for_an_ordinary_socket_is_dropped(pm):
    sim = _net_sim(pm, patches="swapnbd")
    net = sim.transport.net
    nic = net.nic
    _starve(sim, 0.25)      # below the GFP_ATOMIC floor (3/8 MIN), above zero
    _hoard(sim)             # no warm objects left: refills need new pages
    nic.ring.clear()
    nic.fill()
    assert any(net.rx.pfmemalloc(b) for b in nic.ring), "refill from the reserve marks skbs"
    ordinary = Socket("ssh")
    marked = sum(1 for b in nic.ring if net.rx.pfmemalloc(b))
    nic.receive(Burst(None, ordinary, len(nic.ring)))
    net.bg_sock = ordinary
    sim.env.run(until=sim.env.now + 0.01)
    assert nic.stats["pfmemalloc_drop"] == marked


def test_no_marks_without_netvm(pm):
    sim = _net_sim(pm, patches="vanilla")
    net = sim.transport.net
    _starve(sim, 0.25)
    _hoard(sim)
    net.nic.ring.clear()
    net.nic.fill()
    assert len(net.nic.ring) == 0     # vanilla: GFP_ATOMIC stops at 3/8 MIN
    assert not any(net.rx.pfmemalloc(b) for b in net.nic.ring)
    assert net.rx_gfp() == G.GFP_ATOMIC


def test_rx_gfp_uses_the_reserve_only_with_memalloc_sockets(pm):
    sim = _net_sim(pm, patches=["gfp-memalloc", "slab-pfmemalloc", "softirq-memalloc", "netvm"])
    assert sim.memalloc_socks() == 0          # nbd-memalloc is off
    assert sim.transport.net.rx_gfp() == G.GFP_ATOMIC
    sim2 = _net_sim(pm, patches="swapnbd")
    assert sim2.transport.net.rx_gfp() == G.GFP_ATOMIC | G.GFP_MEMALLOC


def test_rto_doubles_and_the_connection_resets(pm):
    sim = _net_sim(pm, **{"net.max_retries": 3})
    tx: TxFlow = sim.transport.tx_flow
    sim.transport.net.server_got = lambda a, b: None   # raw segments, no NBD request
    resets = []
    tx.on_reset = lambda: resets.append(sim.env.now)
    # the server's ACKs never get through: the NIC has no buffers
    sim.transport.net.nic.ring.clear()
    sim.transport.net.nic.ring_size = 0
    tx.send(10 * 1448, lambda: None)
    seen = []
    t0 = sim.env.now
    while not resets and sim.env.now < t0 + 10:
        rto = tx.rto
        sim.env.run(until=sim.env.now + 0.05)
        if tx.rto != rto:
            seen.append(tx.rto)
    assert seen[:3] == [0.4, 0.8, 1.6]
    # 0.2 + 0.4 + 0.8 + 1.6 s of timers: reset on the 4th expiry
    assert resets and resets[0] == pytest.approx(t0 + 3.0, abs=0.06)
    assert tx.reset


def test_reset_fails_outstanding_requests_with_eio(pm):
    sim = conformance_simulation(pm, "nbd", ("net.max_retries=2",), patches="swapnbd")
    nbd = sim.transport
    sim.transport.start()
    done = []
    import numpy as np
    gen = nbd.queue.submit(None, 1, np.array([5], dtype=np.int32), np.array([0], dtype=np.int32),
                           lambda req: done.append(req.error))
    for _ in gen:
        pass
    nbd._reset()
    assert done == [5]
    assert nbd.dead


def _watched_sim(pm, **sets):
    """An NBD machine whose NIC records (time, packets, ACK-only?) per burst,
    with raw segments (no NBD request behind them)."""
    got = []

    class Watched(Nic):
        def receive(self, burst):
            got.append((self.env.now, burst.n, burst.acks is not None))
            super().receive(burst)
    sim = _net_sim(pm, nic=Watched, **sets)
    sim.transport.net.server_got = lambda a, b: None
    return sim, got


def test_delayed_acks_one_per_two_segments(pm):
    sim, got = _watched_sim(pm)
    tx = sim.transport.tx_flow
    tx.send(10 * 1448, lambda: None)
    sim.env.run(until=sim.env.now + 0.01)
    assert [n for _, n, _ in got] == [5]
    assert tx.snd_una == tx.snd_nxt == 10


def test_a_small_request_is_acked_by_the_delayed_ack_timer(pm):
    """One segment of 28 bytes (an NBD read request) is not ACKed on arrival:
    with no data going our way, the ACK leaves ``ato`` later, alone."""
    sim, got = _watched_sim(pm)
    tx = sim.transport.tx_flow
    cfg = sim.config.net
    t0 = sim.env.now
    tx.send(28, lambda: None)
    sim.env.run(until=t0 + 0.03)
    assert got == [] and tx.snd_una == 0
    sim.env.run(until=t0 + 0.1)
    assert [(n, ack) for _, n, ack in got] == [(1, True)]
    # at the server: arrival (rtt/2 plus wire time), then ato
    assert got[0][0] == pytest.approx(t0 + cfg.rtt + cfg.ato, abs=1e-3)
    assert tx.snd_una == 1
    # two small requests in a row are still less than one full segment
    tx.send(28, lambda: None)
    tx.send(28, lambda: None)
    sim.env.run(until=sim.env.now + 0.02)
    assert len(got) == 1


def test_the_reply_carries_the_ack_of_its_request(pm):
    """Data the server sends within ``ato`` carries the pending ACK: no ACK
    packet reaches our rx ring, and the request's skbs go when the reply
    arrives."""
    sim, got = _watched_sim(pm)
    tx, rx = sim.transport.tx_flow, sim.transport.rx_flow
    t0 = sim.env.now
    acked = []
    tx.send(28, lambda: acked.append(sim.env.now))
    sim.env.run(until=t0 + sim.config.net.rtt)     # the request is at the server
    rx.queue_message(4096 + 16)                     # the server replies
    sim.env.run(until=t0 + 0.2)
    assert [ack for _, _, ack in got] == [False]    # one burst: the reply's segments
    assert acked and acked[0] == pytest.approx(got[0][0], abs=1e-3)
    assert tx.snd_una == 1


@pytest.mark.parametrize("delayed_ack,packets", [(2, [2]), (1, [1, 3])])
def test_quick_acks_count_the_bytes_left_unacked(pm, delayed_ack, packets):
    """A delayed small segment counts towards the next quick ACK: 28 bytes
    pending, then three full segments, ACKed after the first and the third
    (every second full segment's worth).  With delayed_ack 1 each segment
    is ACKed on arrival."""
    sim, got = _watched_sim(pm, **{"net.delayed_ack": delayed_ack})
    tx = sim.transport.tx_flow
    tx.send(28, lambda: None)
    sim.env.run(until=sim.env.now + 0.001)
    tx.send(3 * 1448, lambda: None)
    sim.env.run(until=sim.env.now + 0.01)
    assert [n for _, n, _ in got] == packets
    assert tx.snd_una == tx.snd_nxt == 4


def test_a_rest_left_by_a_quick_ack_waits_ato_from_then(pm):
    """A quick ACK stops the delayed-ACK timer; a rest it leaves waits a
    full ``ato`` from its own arrival, not from the older byte it ACKed."""
    sim, got = _watched_sim(pm)
    tx = sim.transport.tx_flow
    rtt, ato = sim.config.net.rtt, sim.config.net.ato
    t0 = sim.env.now
    tx.send(28, lambda: None)                 # pending from t0 + rtt/2
    sim.env.run(until=t0 + 0.03)
    tx.send(1448 + 100, lambda: None)         # 28 + 1448 > one segment: ACK; 100 left
    sim.env.run(until=t0 + 0.2)
    assert [(n, ack) for _, n, ack in got] == [(1, True), (1, True)]
    assert got[0][0] == pytest.approx(t0 + 0.03 + rtt, abs=1e-3)
    assert got[1][0] == pytest.approx(t0 + 0.03 + rtt + ato, abs=1e-3)
    assert tx.snd_una == tx.snd_nxt == 3


def test_tcp_in_order_delivery_drops_after_a_hole(pm):
    sim = _net_sim(pm)
    flow: TcpFlow = sim.transport.rx_flow
    assert flow.accept(0, 2) == 0         # segments 0 and 1 in order
    assert flow.accept(3, 2) == 2         # 2 was lost: 3 and 4 dropped (go-back-N)
    assert flow.stats["ooo_dropped"] == 2
    assert flow.accept(1, 4) == 1         # the retransmission: 1 is a duplicate, 2-4 accepted
    assert flow.rcv_nxt == 5


def test_socket_buffer_caps_follow_tcp_init():
    from swapsim.net import tcp_buffer_max
    # 1/128 of tcp_mem[1] (= free buffer pages / 8) in bytes: 4 bytes per page
    assert tcp_buffer_max(500_000) == (2_000_000, 2_000_000)
    assert tcp_buffer_max(60_000) == (240_000, 240_000)
    # floors and ceilings: 64 KiB / 87380 bytes, 4 MiB / 6 MiB
    assert tcp_buffer_max(1_000) == (64 << 10, 87380)
    assert tcp_buffer_max(10_000_000) == (4 << 20, 6 << 20)


def test_swap_socket_buffers_scale_with_memory_unless_set(pm):
    small = _net_sim(pm)
    big = _net_sim(pm, **{"machine.memory": '"1GiB"', "swap.size": '"4GiB"'})
    assert small.transport.net.sndbuf < big.transport.net.sndbuf <= 4 << 20
    assert big.transport.net.rcvbuf <= 512 << 10
    fixed = _net_sim(pm, **{"net.sndbuf": '"1MiB"', "net.rcvbuf": '"96KiB"'})
    assert fixed.transport.net.sndbuf == 1 << 20
    assert fixed.transport.sock.rcvbuf == 96 << 10


def test_a_closed_window_holds_messages_until_the_server_reads(pm):
    sim = _net_sim(pm)
    tx: TxFlow = sim.transport.tx_flow
    sim.transport.net.server_got = lambda a, b: None   # the server's application never reads
    tx.window = 3 * 1448
    acked = []
    for i in range(4):
        tx.send(1448, lambda i=i: acked.append(i))
    # three fit the window; the fourth waits in our queue.  The server ACKs
    # the first two on arrival, the third by its delayed-ACK timer
    sim.env.run(until=sim.env.now + 0.01)
    assert acked == [0, 1]
    sim.env.run(until=sim.env.now + 0.05)
    assert acked == [0, 1, 2]
    assert tx.snd_nxt == 3 and len(tx.unsent) == 1 and tx.stats["window_closed"] == 1
    tx.consumed(1448)                                  # the server read one message
    sim.env.run(until=sim.env.now + 0.05)
    assert acked == [0, 1, 2, 3] and not tx.unsent
    # a message larger than the whole window still goes when nothing is in flight
    tx.consumed(3 * 1448)
    tx.send(10 * 1448, lambda: acked.append(4))
    sim.env.run(until=sim.env.now + 0.01)
    assert acked[-1] == 4


@pytest.mark.parametrize("window,closes", [("256KiB", True), ("1GiB", False)])
def test_a_slow_server_keeps_the_send_buffer_full(pm, window, closes):
    """nbd-server reads a request off its socket only when it starts on it:
    with a small window our write queue fills up to the send buffer."""
    import numpy as np
    sim = _net_sim(pm, **{"plugin.nbd.server_bandwidth": "'1MB'",
                          "plugin.nbd.server_window": f"'{window}'", "net.sndbuf": "'1MiB'"})
    nbd = sim.transport

    def writer(first):
        for i in range(first, first + 64 * 31, 31):
            yield from nbd.queue.submit(None, 1, np.arange(i, i + 31, dtype=np.int32),
                                        np.arange(i, i + 31, dtype=np.int32), lambda req: None)
    sim.env.process(writer(0))
    sim.env.run(until=sim.env.now + 1.0)
    held = nbd.wmem_queued
    if closes:
        assert nbd.tx_flow.unsent
        assert held > 1 << 19 and nbd.sender.state == "sk_stream_wait_memory"
    else:
        assert not nbd.tx_flow.unsent
        assert held < 1 << 19                # everything ACKed on arrival, queued at the server



def test_rearming_moves_the_expiry_without_an_event_per_ack(pm):
    """Every ACK re-arms the timer (mod_timer): it expires one RTO after the last
    re-arm, and the one queued event serves any number of re-arms."""
    sim = _net_sim(pm)
    env = sim.env
    tx: TxFlow = sim.transport.tx_flow
    sim.transport.net.server_got = lambda a, b: None   # raw segments, no NBD request
    sim.transport.net.nic.ring.clear()                 # no ACK gets through
    sim.transport.net.nic.ring_size = 0
    tx.send(10 * 1448, lambda: None)                   # armed: expiry at t0 + 0.2
    t0 = env.now
    for dt in (0.05, 0.1, 0.15):
        env.run(until=t0 + dt)
        queued = env.queued()
        tx._arm()
        assert env.queued() == queued               # no event of its own
    env.run(until=t0 + 0.34)
    assert tx.stats["timeouts"] == 0
    env.run(until=t0 + 0.36)
    assert tx.stats["timeouts"] == 1 and tx.rto == 0.4
    # after a backoff to 1.6 s, progress re-arms with 0.2 s: that expiry comes first
    tx.rto = 1.6
    tx._arm()                                          # expiry at t1 + 1.6
    t1 = env.now
    env.run(until=t1 + 0.5)
    tx._progress()                                     # expiry at t1 + 0.7
    env.run(until=t1 + 0.69)
    assert tx.stats["timeouts"] == 1
    env.run(until=t1 + 0.71)
    assert tx.stats["timeouts"] == 2


def _one_write(sim, first=0, pages=31):
    import numpy as np
    nbd = sim.transport

    def writer():
        yield from nbd.queue.submit(None, 1, np.arange(first, first + pages, dtype=np.int32),
                                    np.arange(first, first + pages, dtype=np.int32), lambda req: None)
    sim.env.process(writer())


def _warm_bio_caches(sim, pages=31):
    """Objects for a write's bios and request in CPU 0's slab arrays (where a
    submitter without a task allocates), so that it needs no page for them."""
    q = sim.transport.queue
    ctx = q.irq_ctx
    for pool, n in ((q.bio_pool, pages), (q.rq_pool, 1)):
        sim.slab.free_bulk(pool.cache, sim.slab.alloc_bulk(pool.cache, G.GFP_KERNEL, ctx, n), ctx)


def _free_pages(sim) -> int:
    return sum(z.nr_free for z in sim.mm.zones)


def test_a_scatter_gather_nic_sends_a_write_in_gso_skbs_with_page_frags(pm):
    """With NETIF_F_SG a 31-page write (126,996 bytes) is two GSO skbs of ≤ 45 MSS,
    each with a kmalloc head holding its first 1504 bytes; the other 123,988 bytes
    fill 31 order-0 pages, which go back to the page allocator when ACKed."""
    sim = _net_sim(pm, **{"net.tx_sg": "true"})
    nbd, net = sim.transport, sim.transport.net
    net.nic.ring.clear()                 # hold the ACKs back: the skbs stay queued
    net.nic.ring_size = 0
    before = _free_pages(sim)
    _one_write(sim)
    sim.env.run(until=sim.env.now + 0.05)
    (data, heads, frags, truesize), = nbd.tx_skbs.values()
    assert len(data) == len(heads) == 2
    assert sum(k for _, k in frags) == 31
    assert truesize == 2 * (2048 + 512) + (28 + 31 * 4096 - 2 * 1504) == nbd.wmem_queued
    assert before - _free_pages(sim) >= 31
    freed = sim.vmstat.ev["pgfree"]
    net.nic.ring_size = 256              # the retransmission's ACK gets through
    net.nic.fill()
    sim.env.run(until=sim.env.now + 1.0)
    assert not nbd.tx_skbs and nbd.wmem_queued == 0
    assert sim.vmstat.ev["pgfree"] - freed >= 31


def test_without_scatter_gather_a_write_is_one_linear_skb_per_mss(pm):
    sim = _net_sim(pm)
    nbd, net = sim.transport, sim.transport.net
    net.nic.ring.clear()
    net.nic.ring_size = 0
    _one_write(sim)
    sim.env.run(until=sim.env.now + 0.05)
    (data, heads, frags, truesize), = nbd.tx_skbs.values()
    nseg = -(-(28 + 31 * 4096) // 1448)
    assert len(data) == len(heads) == nseg == 88 and not frags
    assert truesize == nseg * (2048 + 512) == nbd.wmem_queued


@pytest.mark.parametrize("patches, sent", [("vanilla", False), ("swapnbd", True)])
def test_frag_pages_at_min_reclaim_without_memalloc_and_take_the_reserve_with_it(
        pm, patches, sent):
    """sk_stream_alloc_page() allocates with sk_allocation: GFP_NOIO stops at MIN and
    direct-reclaims (nothing here is reclaimable); nbd0 with PF_MEMALLOC (patch 14)
    takes the pages from below MIN at once."""
    sim = _net_sim(pm, patches=patches, **{"net.tx_sg": "true"})
    nbd = sim.transport
    sim.transport.net.nic.ring.clear()
    sim.transport.net.nic.ring_size = 0
    _warm_bio_caches(sim)
    _starve(sim, 1.0)
    _one_write(sim)
    sim.env.run(until=sim.env.now + 0.5)
    assert bool(nbd.tx_skbs) == sent
    if sent:
        assert sim.vmstat.ev.get("allocstall", 0) == 0
        assert any(z.nr_free < z.min for z in sim.mm.zones)
    else:
        assert sim.vmstat.ev["allocstall"] > 0
        assert nbd.sender.state in ("direct_reclaim", "alloc_retry", "slab_alloc")


def test_gso_heads_are_kmalloc_2048_whatever_the_rx_buffer_size(pm):
    sim = _net_sim(pm, **{"net.tx_sg": "true", "net.rx_buffer_size": 4096})
    nbd = sim.transport
    assert nbd.data_cache == sim.kmem_cache("kmalloc-2048", 2048)
    assert nbd.seg_truesize == 2048 + 512


@pytest.mark.parametrize("write, refills", [(16, [16, 16, -1]), (64, [-1])])
def test_napi_gives_buffers_back_every_rx_buffer_write_cleaned_descriptors(pm, write, refills):
    """e1000/igb clean_rx_irq(): every RX_BUFFER_WRITE cleaned descriptors the
    driver re-arms them (the stack has freed what those packets carried: an
    ACK's buffer is back in the cache first), and at the end of the poll the
    rest.  A 40-ACK burst is not first freed whole and then allocated whole."""
    calls: list[int] = []

    class Watched(Nic):
        def fill(self, most=-1):
            calls.append(most)
            super().fill(most)
    sim = _net_sim(pm, nic=Watched, **{"net.rx_buffer_write": write})
    net = sim.transport.net
    nic = net.nic
    flow = sim.transport.tx_flow
    nic.receive(Burst(flow, sim.transport.sock, 40, acks=list(range(1, 41))))
    sim.env.run(until=sim.env.now + 0.001)
    assert calls == refills
    assert len(nic.ring) == nic.ring_size


def test_descriptors_of_packets_napi_has_not_cleaned_are_not_refilled(pm):
    """A burst larger than the NAPI budget: after the first poll the ring's
    re-armed descriptors and the ones still holding packets add up to the
    ring size; the driver cannot re-arm a descriptor it has not cleaned."""
    sim = _net_sim(pm)
    nic = sim.transport.net.nic
    flow = sim.transport.rx_flow
    nic.receive(Burst(flow, sim.transport.sock, 100, seq=0))
    assert len(nic.ring) == nic.ring_size - 100 and nic.uncleaned == 100
    nic.poll()                                # the first poll, by hand
    assert nic.uncleaned == 100 - nic.budget
    assert len(nic.ring) + nic.uncleaned == nic.ring_size
