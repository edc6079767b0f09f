"""The two context sets of the world switch: a live one the running function uses and a
shadow one an overlapped switch loads the incoming context into, each with its own mover."""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl.common.interfaces import (REG_DATA_WIDTH, FbMemSignature, ValidSignature,
                                   shared_load_layout)
from rtl.common.iov_codes import CSA_UNIT_LOG2
from rtl.world_switch.save_restore import (ContextMover, CtxOp, state_read_layout,
                                           state_write_layout)

__all__ = ["ContextBanks", "MoverControlSignature", "BankControlSignature",
           "context_set_members"]


def context_set_members(params):
    """The ports through which the world switch's context sets meet the GPU: the two FB
    memory ports, the owner-shared registers out and back, the engine's state accesses
    (:class:`ContextBanks` and :class:`~rtl.world_switch.world_switch.WorldSwitch` alike)."""
    p = params
    return {
        "mem": Out(FbMemSignature(p)),
        "mem_load": Out(FbMemSignature(p)),
        "shared_in": In(data.ArrayLayout(REG_DATA_WIDTH, p.shared_regs)),
        "shared_load": Out(ValidSignature(shared_load_layout(p))),
        "state_wr": In(ValidSignature(state_write_layout(p))),
        "state_rd": In(ValidSignature(state_read_layout(p))),
        "state_rdata": Out(p.mem_width),
    }


def MoverControlSignature(params):
    """One set's mover as the sequencer drives it: start an operation (``valid`` for as
    long as it should be taken, ``op``, ``zero``) on function ``fn``'s context save slot,
    stop it (``abort``); ``done`` pulses when it ends, with ``aborted`` if it was cut short."""
    return wiring.Signature({
        "valid": Out(1), "op": Out(CtxOp), "zero": Out(1), "abort": Out(1),
        "fn": Out(range(params.num_fns)), "done": In(1), "aborted": In(1)})


def BankControlSignature(params):
    """The sequencer's side of :class:`ContextBanks`: the live and the shadow set's movers,
    ``swap`` (the shadow set becomes live), ``replay`` (one shadow shared-register beat out
    per cycle) and ``replay_last`` (this cycle's beat is the last)."""
    return wiring.Signature({
        "live": Out(MoverControlSignature(params)),
        "shadow": Out(MoverControlSignature(params)),
        "swap": Out(1), "replay": Out(1), "replay_last": In(1)})


class ContextBanks(wiring.Component):
    """Two context sets, each a :class:`ContextMover` with its own engine-state memory;
    ``bank`` names the live one. The live set always uses the ``mem`` port, the shadow set
    ``mem_load``; the engine's own state accesses (``state_wr``, ``state_rd``) reach only the
    live set.

    A mover's context lives at (``csa_base`` + fn * ``stride``) * 4 KiB (CSA_UNIT), computed
    one cycle ahead (the multiply is slow): the sequencer starts a mover in its phase's
    second cycle.

    Shared-register beats the live set loads go straight out on ``shared_load``; the
    shadow set's are kept and replayed after the swap, one beat per cycle of ``replay``
    (the live registers are still being saved until then).

    Attributes
    ----------
    ctl : BankControlSignature, in
        The sequencer's control (see :func:`BankControlSignature`).
    bank : out
        Which mover's set is live; flips the cycle after ``ctl.swap``.
    csa_base, stride : in
        The active context save area's start and the distance between two functions'
        contexts, in 4 KiB units.
    mem, mem_load : FbMem, out
        The live and the shadow set's memory ports.
    shared_in : ArrayLayout(32, shared_regs), in
        The owner-shared registers, for a save.
    shared_load : flow of {beat, data}, out
        Loaded shared-register beats: the live set's the cycle after they arrive, the
        shadow set's while ``ctl.replay``.
    state_wr, state_rd : flow, in; state_rdata : out
        The engine's access to the live set's state memory (one cycle read latency).

    Latency: combinational from ``ctl`` to the movers, but for the slot address (one cycle).
    Refuses nothing: the sequencer checks commands; an ``abort`` stops a mover at once.
    """

    LATENCY = 1     # the slot address is registered

    def __init__(self, params):
        self.params = params
        p = params
        csa_bits = max(p.fb_addr_width - CSA_UNIT_LOG2, 1)
        self.movers = [ContextMover(p), ContextMover(p)]
        super().__init__({
            "ctl": In(BankControlSignature(p)),
            "bank": Out(1),
            "csa_base": In(csa_bits),
            "stride": In(csa_bits),
            **context_set_members(p),
        })

    def elaborate(self, platform):
        m = Module()
        ctl = self.ctl
        bases = []
        for side in (ctl.live, ctl.shadow):
            base = Signal(self.params.fb_addr_width)
            m.d.sync += base.eq((self.csa_base + side.fn * self.stride) << CSA_UNIT_LOG2)
            bases.append(base)
        for k, mv in enumerate(self.movers):
            m.submodules[f"mover{k}"] = mv
            self._steer(m, mv, self.bank == k, bases)
        self._collect(m)
        self._shared_out(m)
        with m.If(ctl.swap):
            m.d.sync += self.bank.eq(~self.bank)
        return m

    def _steer(self, m, mv, is_live, bases):
        """Mover ``mv`` takes the live side's control and port while ``is_live``, else the
        shadow side's."""
        ctl = self.ctl

        def pick(live, shadow):
            return Mux(is_live, live, shadow)

        m.d.comb += [
            mv.cmd.valid.eq(pick(ctl.live.valid, ctl.shadow.valid)),
            mv.cmd.payload.op.eq(pick(ctl.live.op, ctl.shadow.op)),
            mv.cmd.payload.zero.eq(pick(ctl.live.zero, ctl.shadow.zero)),
            mv.cmd.payload.base.eq(pick(*bases)),
            mv.abort.eq(pick(ctl.live.abort, ctl.shadow.abort)),
            mv.shared_in.eq(self.shared_in),
            mv.state_wr.valid.eq(self.state_wr.valid & is_live),
            mv.state_wr.payload.eq(self.state_wr.payload),
            mv.state_rd.valid.eq(self.state_rd.valid & is_live),
            mv.state_rd.payload.eq(self.state_rd.payload),
            mv.mem.req.ready.eq(pick(self.mem.req.ready, self.mem_load.req.ready)),
            mv.mem.resp.valid.eq(pick(self.mem.resp.valid, self.mem_load.resp.valid)),
            mv.mem.resp.payload.eq(pick(self.mem.resp.payload.as_value(),
                                        self.mem_load.resp.payload.as_value())),
        ]

    def _live_of(self, get):
        m0, m1 = self.movers
        return Mux(self.bank, get(m1), get(m0))

    def _shadow_of(self, get):
        m0, m1 = self.movers
        return Mux(self.bank, get(m0), get(m1))

    def _collect(self, m):
        """The live and the shadow mover's outputs, by side."""
        for port, of in ((self.mem, self._live_of), (self.mem_load, self._shadow_of)):
            m.d.comb += [port.req.valid.eq(of(lambda mv: mv.mem.req.valid)),
                         port.req.payload.eq(of(lambda mv: mv.mem.req.payload.as_value()))]
        for side, of in ((self.ctl.live, self._live_of), (self.ctl.shadow, self._shadow_of)):
            m.d.comb += [side.done.eq(of(lambda mv: mv.done)),
                         side.aborted.eq(of(lambda mv: mv.aborted))]
        m.d.comb += self.state_rdata.eq(self._live_of(lambda mv: mv.state_rdata))

    def _shared_out(self, m):
        """Live shared-register beats out at once; the shadow set's kept and replayed."""
        p = self.params
        layout = self.shared_load.payload.shape()
        kept = Array(Signal(p.mem_width, name=f"shadow_shared_{k}")
                     for k in range(p.shared_beats))

        def beat_of(get):
            return get(lambda mv: Cat(mv.shared_load.valid, mv.shared_load.payload.as_value()))

        shadow = beat_of(self._shadow_of)
        shadow_view = data.View(layout, shadow[1:])
        with m.If(shadow[0]):
            m.d.sync += kept[shadow_view.beat].eq(shadow_view.data)
        replay_beat = Signal(range(max(p.shared_beats, 2)))
        live = beat_of(self._live_of)
        m.d.comb += self.ctl.replay_last.eq(replay_beat == p.shared_beats - 1)
        with m.If(self.ctl.swap):
            m.d.sync += replay_beat.eq(0)
        with m.If(self.ctl.replay):
            m.d.sync += replay_beat.eq(replay_beat + 1)
            m.d.comb += [self.shared_load.valid.eq(1),
                         self.shared_load.payload.beat.eq(replay_beat),
                         self.shared_load.payload.data.eq(kept[replay_beat])]
        with m.Else():
            m.d.comb += [self.shared_load.valid.eq(live[0]),
                         self.shared_load.payload.eq(live[1:])]
