"""The GPU's one FB memory port: who may use it each cycle, the host FB queue, the guard that
keeps the context movers inside the context save area, and the scrubber that zero-fills FB
before a region changes hands."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl.memory.fb_partition import scrub_request_layout
from rtl.common.interfaces import (FbMemSignature, ValidSignature, channel_port,
                                   mem_channel_of, region_layout, shadow_channel)
from rtl.common.iov_codes import SeqState

__all__ = ["FbPort", "Scrubber", "FbInitiator", "host_fb_entry_layout", "host_fb_done_layout",
           "HOST_TAG_WIDTH"]

#: Bits of the tag a host request carries and gets back with its answer.
HOST_TAG_WIDTH = 8


def _fifo(shape, depth, *, next_cycle=False):
    """A :class:`~amaranth.lib.fifo.SyncFIFOBuffered` of ``shape`` (a layout or an enum):
    write its ``w_data`` whole, read it through ``shape(fifo.r_data)``. ``next_cycle``: a
    :class:`~amaranth.lib.fifo.SyncFIFO` instead, whose entry can be read in the cycle after
    it is written (the buffered one's two cycles after): what remembers a read until its
    answer, which a memory of latency 1 gives in that next cycle."""
    cls = fifo.SyncFIFO if next_cycle else fifo.SyncFIFOBuffered
    return cls(width=Shape.cast(shape).width, depth=depth)


class FbInitiator(enum.Enum, shape=2):
    """Who has the FB port in a cycle (and whose read each answer is)."""
    LIVE = 0      #: the live context set's mover (SAVE, LOAD, INIT)
    SHADOW = 1    #: the shadow set's mover (the load of an overlapped switch)
    HOST = 2      #: host FB accesses, from the queue
    SCRUB = 3     #: the scrubber's zero fill


def host_fb_entry_layout(params):
    """A host FB access the FB partition unit granted: physical byte address, one dword, and
    the function it is for (``fn``: not used to route it; it lets the whole-GPU proof,
    tests/formal/gpu_isolation.py, judge each access at the port against that function's
    slice without a copy of the queue)."""
    return data.StructLayout({"addr": unsigned(params.fb_addr_width), "write": 1, "data": 32,
                              "be": 4, "tag": HOST_TAG_WIDTH,
                              "fn": unsigned(params.fn_width)})


def host_fb_done_layout():
    """A host FB read's answer: its tag and the dword read."""
    return data.StructLayout({"tag": HOST_TAG_WIDTH, "data": 32})


class Scrubber(wiring.Component):
    """Zero-fills the FB a region gains before it is activated, and keeps a dirty bit per
    granule so that only FB something was written to is filled.

    ``wrote[c]`` names the granule of every write the FB port sends on channel c (the
    scrubber's own zeros excepted): that granule is dirty. A request (``req``: base, size
    in granules) is served in three steps: the *fence* waits until the host FB accesses queued when it arrived
    (``host_level``, counted down by ``host_pop``) have left for FB, so that no access
    granted under the old layout lands after the fill; then each granule of the region is
    looked up (2 cycles) and, if dirty, marked clean and written with zeros, one
    ``mem_width`` beat per cycle the port takes it; then ``req.ready`` pulses: done.

    Cycles (``last_cycles``), port always ready, idle otherwise and nothing ahead in the host
    queue: 2 (accept, fence) + 2 per granule (look, judge) + for each dirty granule 1 (the
    port's grant, a register, turns to the scrubber) and its beats + 2 (the look that finds
    the end, done); sim/models/cost_model.py's ``scrub_cycles``, measured exact. A write into a
    granule while it is being filled (only the PF can: the region is inactive) leaves it
    dirty.

    Attributes
    ----------
    req : stream of scrub_request_layout, in; ``ready`` pulses when the region is clean
    mem : FbMem, out (writes only)
    wrote : array of ``mem_channels`` flows of {granule}, in
    host_level : in
        Host FB accesses in the queue now.
    host_pop : in
        One left the queue this cycle.
    busy : out
        A request is being served (the scrubber wants its share of the port).
    last_cycles, granules : out
        Cycles of the last request, accepted to done; dirty granules filled since reset.
    """

    def __init__(self, params, queue_depth):
        self.params = params
        p = params
        gw = p.granule_width
        super().__init__({
            "req": In(stream.Signature(scrub_request_layout(p))),
            "mem": Out(FbMemSignature(p)),
            "wrote": In(ValidSignature(data.StructLayout({"granule": unsigned(gw)})))
            .array(p.mem_channels),
            "host_level": In(range(queue_depth + 1)),
            "host_pop": In(1),
            "busy": Out(1),
            "last_cycles": Out(32),
            "granules": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        gw, gb = p.granule_width, p.granule_bits
        beat_bytes = p.mem_width // 8
        beats = p.fb_granule // beat_bytes              # beats per granule (>= 8)

        m.submodules.dirty = dirty = Memory(shape=1, depth=p.fb_granules, init=[])
        marks = [dirty.write_port() for _ in self.wrote]
        clean = dirty.write_port()
        look = dirty.read_port(transparent_for=marks)

        granule = Signal(gw)                # the granule being looked at or filled
        last = Signal(gw + 1)               # one past the region
        beat = Signal(range(beats))
        ahead = Signal.like(self.host_level)
        cycles = Signal(32)
        for mark, wrote in zip(marks, self.wrote):
            m.d.comb += [mark.en.eq(wrote.valid), mark.addr.eq(wrote.payload.granule),
                         mark.data.eq(1)]
        m.d.comb += look.addr.eq(granule)
        with m.If(self.busy):
            m.d.sync += cycles.eq(cycles + 1)

        req = self.mem.req
        m.d.comb += [req.payload.write.eq(1), req.payload.data.eq(0), req.payload.be.eq(-1),
                     req.payload.addr.eq(Cat(Const(0, (beat_bytes - 1).bit_length()), beat,
                                             granule))]
        with m.FSM(name="scrub") as fsm:
            with m.State("IDLE"):
                with m.If(self.req.valid):
                    m.d.sync += [granule.eq(self.req.payload.base),
                                 last.eq(self.req.payload.base + self.req.payload.size),
                                 ahead.eq(self.host_level), cycles.eq(1)]
                    m.next = "FENCE"
            with m.State("FENCE"):
                m.d.comb += self.busy.eq(1)
                with m.If((ahead == 0) | (ahead == self.host_pop)):
                    m.next = "LOOK"
                with m.Else():
                    m.d.sync += ahead.eq(ahead - self.host_pop)
            with m.State("LOOK"):
                m.d.comb += self.busy.eq(1)
                with m.If(granule == last):
                    m.next = "DONE"
                with m.Else():
                    m.next = "JUDGE"
            with m.State("JUDGE"):
                m.d.comb += self.busy.eq(1)
                with m.If(look.data):
                    # Clean from now on; a write the port sends to this granule in this very
                    # cycle keeps it dirty (its port wins by not being contested).
                    marked = Cat(*[mark.en & (mark.addr == granule) for mark in marks]).any()
                    m.d.comb += [clean.en.eq(~marked),
                                 clean.addr.eq(granule), clean.data.eq(0)]
                    m.d.sync += beat.eq(0)
                    m.next = "FILL"
                with m.Else():
                    m.d.sync += granule.eq(granule + 1)
                    m.next = "LOOK"
            with m.State("FILL"):
                m.d.comb += [self.busy.eq(1), req.valid.eq(1)]
                with m.If(req.ready):
                    m.d.sync += beat.eq(beat + 1)
                    with m.If(beat == beats - 1):
                        m.d.sync += [granule.eq(granule + 1), self.granules.eq(self.granules + 1)]
                        m.next = "LOOK"
            with m.State("DONE"):
                m.d.comb += self.req.ready.eq(1)
                m.d.sync += self.last_cycles.eq(cycles + 1)
                m.next = "IDLE"
        return m


class FbPort(wiring.Component):
    """The GPU's FB memory channels (``mem_channels`` of them, independent ports to the one
    FB), shared by the context movers, host FB accesses and the scrubber.

    Who may use a channel each cycle is decided by the world switch's step (``seq``, a
    register), never by who asks: a mover's ready must not wait on its own valid through
    this arbiter (that loop set the clock). The live mover owns channel 0 in SAVE, LOAD and
    INIT; in an overlapped phase the shadow mover owns channel 1 (with one channel, the two
    alternate on channel 0 cycle by cycle). Host FB accesses and the scrubber use the
    channel of their address (:func:`~rtl.common.interfaces.mem_channel_of`) whenever no
    mover owns it, the scrubber taking every cycle its channel has no host access waiting
    at the head of the queue, alternating with them otherwise. The grant is a register a
    cycle behind the step: a mover starts in its phase's second cycle and has finished when
    the phase ends.

    Host accesses arrive on ``host`` already granted by the FB partition unit (at most
    ``depth`` in the queue: the top's credits guarantee it) and go out in order, one 32-bit
    lane of a ``mem_width`` beat; the head waits while its channel is taken. Each channel's
    reads answer in order on that channel; host read data comes back on ``host_done`` in
    the order the reads left, whatever the channels' latencies. ``host_retired`` pulses
    when a host write leaves for FB (its credit may be reused).

    **The CSA guard.** A mover request outside the active CSA (``csa``) never reaches FB:
    a write is dropped (the mover sees it taken), a read is not taken; ``ctx_fault`` pulses
    the cycle after with the address, and the world switch stops the movers. With CNTXT
    locked while contexts exist this cannot happen; it is the hardware's last word.

    Attributes
    ----------
    live, shadow : FbMem, in
        The world switch's two context movers.
    host : flow of host_fb_entry_layout, in
    host_done : stream of host_fb_done_layout, out
    host_retired : out
    scrub : stream of scrub_request_layout, in (``ready``: done)
    seq : in
        The world switch's step (:class:`~rtl.common.iov_codes.SeqState`).
    csa : region_layout, in
        The active context save area.
    ctx_fault : flow of {addr, write}, out
    fb, fb_1, .. : FbMem, out
        Channel 0, 1, .. (:func:`~rtl.common.interfaces.channel_port`); :attr:`channels`
        lists them.
    scrub_cycles, scrub_granules : out
        The scrubber's statistics (:class:`Scrubber`).
    """

    def __init__(self, params, depth):
        self.params = params
        self.depth = depth
        p = params
        self.scrubber = Scrubber(params, depth)
        #: Observation, named here for the formal harness: who has each channel this cycle
        #: (``pick`` is channel 0's), and the host access at the head of the queue (what goes
        #: out when its channel's pick is HOST).
        self.picks = [Signal(FbInitiator, init=FbInitiator.HOST,
                             name=channel_port("pick", c)) for c in range(p.mem_channels)]
        self.pick = self.picks[0]
        self.host_head = Signal(host_fb_entry_layout(p))
        super().__init__({
            "live": In(FbMemSignature(p)),
            "shadow": In(FbMemSignature(p)),
            "host": In(ValidSignature(host_fb_entry_layout(p))),
            "host_done": Out(stream.Signature(host_fb_done_layout())),
            "host_retired": Out(1),
            "scrub": In(stream.Signature(scrub_request_layout(p))),
            "seq": In(SeqState),
            "csa": In(region_layout(p)),
            "ctx_fault": Out(ValidSignature(data.StructLayout({"addr": p.fb_addr_width,
                                                                 "write": 1}))),
            **{channel_port("fb", c): Out(FbMemSignature(p)) for c in range(p.mem_channels)},
            "scrub_cycles": Out(32),
            "scrub_granules": Out(32),
        })

    @property
    def channels(self):
        """The FB channel ports, channel 0 first."""
        return [getattr(self, channel_port("fb", c)) for c in range(self.params.mem_channels)]

    def _host_request(self, m, entry):
        """A queued host access as a request on the port: its dword in its beat's lane."""
        p = self.params
        lane_bits = (p.mem_width // 32 - 1).bit_length()   # mem_width >= 64: at least 1
        beat_bytes_log2 = (p.mem_width // 8).bit_length() - 1
        lane = entry.addr[2:2 + lane_bits]
        req = Signal(self.fb.req.payload.shape())
        m.d.comb += [req.addr.eq(entry.addr >> beat_bytes_log2 << beat_bytes_log2),
                     req.write.eq(entry.write),
                     req.data.eq(entry.data << (lane * 32)),
                     req.be.eq(entry.be << (lane * 4))]
        return req, lane

    def _grant(self, m, c, host_here, scrub_here):
        """Channel ``c``'s grant for the next cycle, from the world switch's step."""
        p, pick = self.params, self.picks[c]
        # The scrubber asks only while it fills (its request is a state of its FSM).
        host_or_scrub = Mux(scrub_here & ((pick == FbInitiator.HOST) | ~host_here),
                            FbInitiator.SCRUB, FbInitiator.HOST)
        movers = {SeqState.SAVE: {0: FbInitiator.LIVE}, SeqState.LOAD: {0: FbInitiator.LIVE},
                  SeqState.INIT: {0: FbInitiator.LIVE},
                  SeqState.OVERLAP: {0: FbInitiator.LIVE,
                                     shadow_channel(p): FbInitiator.SHADOW}}
        with m.Switch(self.seq):
            for step, owners in movers.items():
                with m.Case(step):
                    if c == 0 and step == SeqState.OVERLAP and p.mem_channels == 1:
                        m.d.sync += pick.eq(Mux(pick == FbInitiator.LIVE,
                                                FbInitiator.SHADOW, FbInitiator.LIVE))
                    else:
                        m.d.sync += pick.eq(owners.get(c, host_or_scrub))
            with m.Default():
                m.d.sync += pick.eq(host_or_scrub)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        gb = p.granule_bits
        depth = self.depth
        m.submodules.scrubber = scrubber = self.scrubber
        wiring.connect(m, wiring.flipped(self.scrub), scrubber.req)

        # --- The host queue -------------------------------------------------------------
        entry_layout = host_fb_entry_layout(p)
        m.submodules.host_q = host_q = _fifo(entry_layout, depth)
        m.d.comb += [host_q.w_en.eq(self.host.valid), host_q.w_data.eq(self.host.payload)]
        entry = self.host_head
        m.d.comb += entry.eq(entry_layout(host_q.r_data))
        host_req, lane = self._host_request(m, entry)
        head_channel = mem_channel_of(p, entry.addr)
        scrub_req = scrubber.mem.req
        scrub_channel = mem_channel_of(p, scrub_req.payload.addr)

        # --- The CSA guard, per mover, on its own request ----------------------------------
        csa = self.csa
        movers = {FbInitiator.LIVE: (self.live, 0),
                  FbInitiator.SHADOW: (self.shadow, shadow_channel(p))}
        in_csa = {}
        for who, (mv, _) in movers.items():
            g = mv.req.payload.addr[gb:]
            ok = Signal(name=f"{who.name.lower()}_in_csa")
            m.d.comb += ok.eq(csa.valid & (g >= csa.base) & (g < csa.base + csa.size))
            in_csa[who] = ok

        in_flight = 2 * p.mem_outstanding + depth
        read_tag = data.StructLayout({"tag": HOST_TAG_WIDTH, "lane": len(lane)})
        order = list(FbInitiator)
        popped_any, completions = [], []
        for c, fb in enumerate(self.channels):
            pick = self.picks[c]
            host_here = host_q.r_rdy & (head_channel == c)
            scrub_here = scrub_req.valid & (scrub_channel == c)
            self._grant(m, c, host_here, scrub_here)
            # Which initiator each read in flight on this channel belongs to (they answer
            # in order), and each host read's tag and lane.
            src_q = _fifo(FbInitiator, in_flight, next_cycle=True)
            rd_q = _fifo(read_tag, depth, next_cycle=True)
            m.submodules[channel_port("read_src", c)] = src_q
            m.submodules[channel_port("host_reads", c)] = rd_q
            requests = {who: ((mv.req.valid if ch == c else Const(0)), mv.req.payload)
                        for who, (mv, ch) in movers.items()}
            requests[FbInitiator.HOST] = (host_here, host_req)
            requests[FbInitiator.SCRUB] = (scrub_here, scrub_req.payload)
            asking = Array(requests[who][0] for who in order)[pick]
            chosen = Signal(fb.req.payload.shape(), name=channel_port("chosen", c))
            m.d.comb += chosen.eq(Array(requests[who][1].as_value() for who in order)[pick])
            guarded = Array(in_csa.get(who, Const(1)) for who in order)[pick]
            # A read goes out only with room to remember whose it is; a mover's only inside
            # the CSA.
            m.d.comb += [fb.req.valid.eq(asking & (chosen.write | src_q.w_rdy) & guarded),
                         fb.req.payload.eq(chosen)]
            sent = fb.req.valid & fb.req.ready
            # A mover's ready leaves its own valid out (it completes the handshake itself)
            # and looks at its own request only; a write outside the CSA is taken and dropped.
            for who, (mv, ch) in movers.items():
                if ch == c:
                    m.d.comb += mv.req.ready.eq(fb.req.ready & (pick == who) &
                                                (mv.req.payload.write |
                                                 (src_q.w_rdy & in_csa[who])))
            with m.If(scrub_channel == c):
                m.d.comb += scrub_req.ready.eq(fb.req.ready & (pick == FbInitiator.SCRUB))
            popped = Signal(name=channel_port("popped", c))
            m.d.comb += popped.eq(fb.req.ready & (pick == FbInitiator.HOST) & host_here &
                                  (entry.write | src_q.w_rdy))
            popped_any.append(popped)
            m.d.comb += [src_q.w_en.eq(sent & ~chosen.write), src_q.w_data.eq(pick),
                         rd_q.w_en.eq(popped & ~entry.write),
                         read_tag(rd_q.w_data).tag.eq(entry.tag),
                         read_tag(rd_q.w_data).lane.eq(lane),
                         # Every write that lands in FB makes its granule dirty, but the zeros.
                         scrubber.wrote[c].valid.eq(sent & chosen.write &
                                                    (pick != FbInitiator.SCRUB)),
                         scrubber.wrote[c].payload.granule.eq(chosen.addr[gb:])]
            completions.append(self._answers(m, c, fb, src_q, rd_q, read_tag, movers))

        popped = Cat(*popped_any).any()
        m.d.comb += [host_q.r_en.eq(popped),
                     self.host_retired.eq(popped & entry.write),
                     scrubber.host_level.eq(host_q.level), scrubber.host_pop.eq(popped),
                     self.scrub_cycles.eq(scrubber.last_cycles),
                     self.scrub_granules.eq(scrubber.granules)]
        self._fault(m, movers, in_csa)
        self._host_done(m, completions, popped & ~entry.write, head_channel)
        return m

    def _answers(self, m, c, fb, src_q, rd_q, read_tag, movers):
        """Channel ``c``'s read data back to whoever asked (``movers``: initiator -> (port,
        channel)); returns its host completion queue."""
        back = fb.resp.valid
        src = Signal(FbInitiator, name=channel_port("src", c))
        m.d.comb += [src.eq(FbInitiator(src_q.r_data)), src_q.r_en.eq(back)]
        for who, (mv, ch) in movers.items():
            if ch == c:
                m.d.comb += [mv.resp.valid.eq(back & (src == who)),
                             mv.resp.payload.data.eq(fb.resp.payload.data)]
        done_layout = host_fb_done_layout()
        cpl = _fifo(done_layout, self.depth)
        m.submodules[channel_port("host_cpl", c)] = cpl
        host_back = back & (src == FbInitiator.HOST)
        waiting = read_tag(rd_q.r_data)
        done = done_layout(cpl.w_data)
        m.d.comb += [rd_q.r_en.eq(host_back), cpl.w_en.eq(host_back),
                     done.tag.eq(waiting.tag),
                     done.data.eq(fb.resp.payload.data >> (waiting.lane * 32))]
        return cpl

    def _host_done(self, m, completions, read_left, head_channel):
        """Host read data out on ``host_done``, in the order the reads left: with several
        channels, a queue of the channel of each read in flight says whose data is next."""
        done_layout = host_fb_done_layout()
        if len(completions) == 1:
            cpl, = completions
            m.d.comb += [self.host_done.valid.eq(cpl.r_rdy), cpl.r_en.eq(self.host_done.ready),
                         self.host_done.payload.eq(done_layout(cpl.r_data))]
            return
        # Host reads in flight hold a credit each: at most ``depth`` of them.
        m.submodules.read_order = order_q = _fifo(range(len(completions)), self.depth)
        next_channel = order_q.r_data
        ready = Array(cpl.r_rdy for cpl in completions)[next_channel]
        m.d.comb += [order_q.w_en.eq(read_left), order_q.w_data.eq(head_channel),
                     self.host_done.valid.eq(order_q.r_rdy & ready),
                     self.host_done.payload.eq(
                         Array(cpl.r_data for cpl in completions)[next_channel]),
                     order_q.r_en.eq(self.host_done.valid & self.host_done.ready)]
        for c, cpl in enumerate(completions):
            m.d.comb += cpl.r_en.eq(self.host_done.valid & self.host_done.ready &
                                    (next_channel == c))

    def _fault(self, m, movers, in_csa):
        """``ctx_fault``: a mover granted its channel asked outside the CSA."""
        stops = {who: Signal(name=f"{who.name.lower()}_stopped") for who in movers}
        for who, (mv, ch) in movers.items():
            m.d.comb += stops[who].eq((self.picks[ch] == who) & mv.req.valid & ~in_csa[who])
        live, shadow = self.live.req.payload, self.shadow.req.payload
        stop_live = stops[FbInitiator.LIVE]
        fault = self.ctx_fault
        m.d.sync += [fault.valid.eq(stop_live | stops[FbInitiator.SHADOW]),
                     fault.payload.addr.eq(Mux(stop_live, live.addr, shadow.addr)),
                     fault.payload.write.eq(Mux(stop_live, live.write, shadow.write))]
