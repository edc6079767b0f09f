"""The save/restore engine: moves one function's context between the GPU and FB.

A context is the owner-shared registers (packed 32 bits each into ``mem_width``-bit beats)
followed by the engine-state memory (``ctx_words`` beats). SAVE streams it to FB at a given
base address; LOAD streams it back. The world switch steers it (issue: world switch).
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.common.interfaces import FbMemSignature, ValidSignature, shared_load_layout
from rtl.common.sim_models import simple_ram

__all__ = ["ContextMover", "CtxOp", "state_write_layout", "state_read_layout"]


def state_write_layout(params):
    """The engine's write of one engine-state word: its address and data."""
    return data.StructLayout({"addr": range(max(params.ctx_words, 2)), "data": params.mem_width})


def state_read_layout(params):
    """The engine's read of one engine-state word (data one cycle later)."""
    return data.StructLayout({"addr": range(max(params.ctx_words, 2))})


class CtxOp(enum.Enum, shape=1):
    SAVE = 0
    LOAD = 1


class ContextMover(wiring.Component):
    """Streams a context to or from FB through the FB memory port, at one beat per cycle.

    SAVE writes beats 0 .. B-1 (B = ``params.ctx_beats``) to ``base + beat * mem_width/8``,
    one per cycle while the port is ready: shared-register beats from ``shared_in``, then the
    engine-state memory read one cycle ahead (a stall holds the read, so nothing is lost).
    LOAD issues the B reads, at most ``mem_outstanding`` in flight, and writes each returning
    beat back: shared-register beats on ``shared_load``, engine state into its memory.

    Cycles, command accepted to ``done`` (exact, with a port that is always ready and reads
    that return L cycles after they are accepted; see sim/models/cost_model.py):
    SAVE = B + 1; LOAD = B + L when ``mem_outstanding`` > L, else bounded by the window.
    A loaded shared-register beat appears on ``shared_load`` the cycle after it arrives.

    ``cmd`` is accepted only while idle. ``cmd.zero`` makes a SAVE write zeros (a clean
    context, for INIT_GPU) at the same pace. ``abort`` (a pulse or a level) stops an
    operation early: a SAVE finishes the beat it presents, a LOAD issues no more reads and
    waits for those in flight, whose data it drops; then ``done`` and ``aborted`` pulse.

    ``state_wr`` / ``state_rd`` are the engine's own
    access to its state memory (one word per cycle, read data one cycle later). Reads are
    ignored while a SAVE reads the memory, writes while a LOAD writes it; a zero-filling SAVE
    (INIT_GPU of another function) uses neither, so the running engine keeps its memory.

    Attributes
    ----------
    cmd : stream of {op, base, zero}, in
    abort : in
    busy, done, aborted : out
        ``done`` pulses for one cycle when an operation ends; ``aborted`` with it if it was
        cut short by ``abort``.
    last_cycles : out
        Cycles the last operation took, command accepted to done.
    mem : FbMem, out
    shared_in : ArrayLayout(32, shared_regs), in
    shared_load : flow of {beat, data}, out
    state_wr : flow of {addr, data}, in
    state_rd : flow of {addr}, in
    state_rdata : out
    """

    LATENCY = None   # an operation takes ctx_beats + a few cycles: see the docstring

    def __init__(self, params):
        self.params = params
        p = params
        super().__init__({
            "cmd": In(stream.Signature(data.StructLayout({
                "op": CtxOp, "base": p.fb_addr_width, "zero": 1}))),
            "abort": In(1),
            "busy": Out(1),
            "done": Out(1),
            "aborted": Out(1),
            "last_cycles": Out(32),
            "mem": Out(FbMemSignature(p)),
            "shared_in": In(data.ArrayLayout(32, p.shared_regs)),
            "shared_load": Out(ValidSignature(shared_load_layout(p))),
            "state_wr": In(ValidSignature(state_write_layout(p))),
            "state_rd": In(ValidSignature(state_read_layout(p))),
            "state_rdata": Out(p.mem_width),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        beats, shared_beats = p.ctx_beats, p.shared_beats
        beat_bytes_log2 = (p.mem_width // 8).bit_length() - 1

        rd, wr = simple_ram(m, "state", p.mem_width, p.ctx_words)

        # Shared registers packed into beats, padded with zeros.
        packed = Cat(*self.shared_in, Const(0, shared_beats * p.mem_width - 32 * p.shared_regs))
        shared_words = Array(packed[k * p.mem_width:(k + 1) * p.mem_width]
                             for k in range(shared_beats))

        op = Signal(CtxOp)
        base = Signal(p.fb_addr_width)
        zero = Signal()
        busy = Signal()
        aborting = Signal()
        cycles = Signal(32)
        m.d.comb += [self.busy.eq(busy), self.cmd.ready.eq(~busy)]
        m.d.sync += [self.done.eq(0), self.aborted.eq(0)]
        stopping = Signal()
        m.d.comb += stopping.eq(busy & (aborting | self.abort))
        with m.If(stopping):
            m.d.sync += aborting.eq(1)
        with m.If(busy):
            m.d.sync += cycles.eq(cycles + 1)

        def beat_addr(beat):
            return base + (beat << beat_bytes_log2)

        # --- SAVE: fetch stage (memory read) -> output stage (the request) ------------------
        fetch = Signal(range(beats + 1))        # next beat to fetch
        out_valid = Signal()
        out_beat = Signal(range(beats))
        out_shared = Signal()
        req = self.mem.req
        saving = busy & (op == CtxOp.SAVE)
        advance = saving & ~stopping & (fetch < beats) & (~out_valid | req.ready)
        reading = saving & ~zero                # a zero fill needs no state
        m.d.comb += [rd.addr.eq(Mux(reading, fetch - shared_beats, self.state_rd.payload.addr)),
                     rd.en.eq(advance | ~reading)]
        m.d.comb += self.state_rdata.eq(rd.data)
        with m.If(advance):
            m.d.sync += [fetch.eq(fetch + 1), out_valid.eq(1), out_beat.eq(fetch),
                         out_shared.eq(fetch < shared_beats)]
        with m.Elif(out_valid & req.ready):
            m.d.sync += out_valid.eq(0)

        # --- LOAD: reads out, at most mem_outstanding in flight; data back in order --------
        issued = Signal(range(beats + 1))
        received = Signal(range(beats + 1))
        inflight = Signal(range(p.mem_outstanding + 1))
        loading = busy & (op == CtxOp.LOAD)
        want_read = loading & ~stopping & (issued < beats) & (inflight < p.mem_outstanding)
        read_accepted = want_read & req.ready
        resp = self.mem.resp
        got = loading & resp.valid
        m.d.sync += inflight.eq(inflight + read_accepted - got)
        with m.If(read_accepted):
            m.d.sync += issued.eq(issued + 1)
        with m.If(got):
            m.d.sync += received.eq(received + 1)

        # --- The request port, shared by both -------------------------------------------
        with m.If(saving):
            m.d.comb += [req.valid.eq(out_valid), req.payload.write.eq(1),
                         req.payload.addr.eq(beat_addr(out_beat)),
                         req.payload.be.eq(-1),
                         req.payload.data.eq(Mux(zero, 0, Mux(out_shared, shared_words[out_beat],
                                                              rd.data)))]
        with m.Else():
            m.d.comb += [req.valid.eq(want_read), req.payload.write.eq(0),
                         req.payload.addr.eq(beat_addr(issued))]

        # --- Writes into the state memory: a loaded beat, or the engine's ------------------
        # Data of an aborted LOAD is dropped: it belongs to a function being reset.
        to_state = got & ~stopping & (received >= shared_beats)
        m.d.comb += [
            wr.en.eq(to_state | (~loading & self.state_wr.valid)),
            wr.addr.eq(Mux(loading, received - shared_beats, self.state_wr.payload.addr)),
            wr.data.eq(Mux(loading, resp.payload.data, self.state_wr.payload.data)),
        ]
        # Registered, so the owner of the shared registers sees a clean beat; shared beats
        # come first, so the last one is out before the operation ends.
        m.d.sync += [
            self.shared_load.valid.eq(got & ~stopping & (received < shared_beats)),
            self.shared_load.payload.beat.eq(received),
            self.shared_load.payload.data.eq(resp.payload.data),
        ]

        # --- Start and end ---------------------------------------------------------------
        save_last = saving & out_valid & req.ready & (out_beat == beats - 1)
        load_last = got & (received == beats - 1)
        save_stopped = saving & stopping & (~out_valid | req.ready)
        load_stopped = loading & stopping & (inflight == got)
        with m.If(self.cmd.valid & ~busy):
            m.d.sync += [busy.eq(1), op.eq(self.cmd.payload.op), base.eq(self.cmd.payload.base),
                         zero.eq(self.cmd.payload.zero), aborting.eq(self.abort),
                         fetch.eq(0), out_valid.eq(0), issued.eq(0), received.eq(0),
                         cycles.eq(1)]
        with m.If(save_stopped | load_stopped):
            m.d.sync += [busy.eq(0), self.done.eq(1), self.aborted.eq(1), out_valid.eq(0),
                         self.last_cycles.eq(cycles)]
        with m.Elif(save_last | load_last):
            m.d.sync += [busy.eq(0), self.done.eq(1), self.last_cycles.eq(cycles)]
        return m
