"""Formal harness: the ownership signal of the world switch.

Every input is free: GPU-IOV commands, FLRs, the engine's busy, doorbell work, NumVFs and
VF Enable, both memory ports (ready, responses), PF register writes, reset. Asserted:

- ownership never passes straight from one function to another: between two owners there
  is at least one cycle with no owner (the switch);
- a function reset (FLR) in one cycle does not own the GPU in the next;
- the GPU is owned by function f only while the live context set holds f's context,
  loaded into it by a LOAD that ended whole (its mover done, not aborted) after f's last
  FLR and after the set was last saved: no function runs on a context it never loaded.

The harness follows each of the two context sets (mover 0 and 1) itself: ``has[k]`` /
``fn[k]``: set k holds function fn[k]'s loaded context. A LOAD step's live mover finishing
whole fills the live set with ``target``'s; an overlapped switch's shadow mover finishing
whole fills the shadow set with ``nxt``'s; a save of the live set, or an FLR of fn[k],
empties it. The invariants k-induction needs: the GPU's state (LOADED or RUNNING: ``cur``
is on the GPU) and the SWAP step (the incoming ``nxt``) agree with the live set.
"""

from amaranth.hdl import Assert, Assume, Cat, Mux, Signal

from rtl.common.iov_codes import GpuState, SeqState
from rtl.world_switch.world_switch import WorldSwitch
from tests.formal import Harness


class WorldSwitchOwnershipHarness(Harness):
    """The ownership rules around a :class:`WorldSwitch` (or ``dut_class``, a planted-bug
    subclass from ``world_switch_mutants.py``)."""

    def __init__(self, params, dut_class=WorldSwitch, *, quiet=False):
        super().__init__(params, dut_class)
        #: For deep BMC runs only (the proof keeps every input free): the PF's register
        #: port, the engine-state ports and the CSA fault stay idle, so that z3 reaches a
        #: switch from reset in seconds; every trace found is still one the free inputs allow.
        self.quiet = quiet

    def properties(self, m, dut, checking):
        if self.quiet:
            m.d.comb += Assume(~dut.cfg.req.valid & ~dut.state_wr.valid & ~dut.state_rd.valid &
                               ~dut.ctx_fault)

        past_valid, past_owner, past_flr = Signal(), Signal.like(dut.owner), Signal.like(dut.flr)
        m.d.sync += [past_valid.eq(dut.owner_valid), past_owner.eq(dut.owner),
                     past_flr.eq(dut.flr)]
        with m.If(checking & past_valid & dut.owner_valid):
            m.d.comb += Assert(dut.owner == past_owner)
        with m.If(checking & dut.owner_valid):
            m.d.comb += Assert(~past_flr.bit_select(dut.owner, 1))

        # --- Which function's loaded context each set holds --------------------------------
        has = [Signal(name=f"has_{k}") for k in range(2)]
        fn = [Signal.like(dut.cur, name=f"fn_{k}") for k in range(2)]
        step = dut.seq_state
        for k, mover in enumerate(dut.movers):
            live = dut.bank == k
            whole = mover.done & ~mover.aborted
            new_has, new_fn = Signal(name=f"new_has_{k}"), Signal.like(fn[k], name=f"new_fn_{k}")
            m.d.comb += [new_has.eq(has[k]), new_fn.eq(fn[k])]
            with m.If(live & mover.done & ((step == SeqState.SAVE) | (step == SeqState.OVERLAP))):
                m.d.comb += new_has.eq(0)
            with m.If(live & whole & (step == SeqState.LOAD)):
                m.d.comb += [new_has.eq(1), new_fn.eq(dut.target)]
            with m.If(~live & whole & (step == SeqState.OVERLAP)):
                m.d.comb += [new_has.eq(1), new_fn.eq(dut.nxt)]
            # An FLR of the function the set holds (or is filled with now) empties it.
            m.d.sync += [has[k].eq(new_has & ~dut.flr.bit_select(new_fn, 1)), fn[k].eq(new_fn)]
        live_has, live_fn = Signal(), Signal.like(dut.cur)
        m.d.comb += [live_has.eq(Mux(dut.bank, has[1], has[0])),
                     live_fn.eq(Mux(dut.bank, fn[1], fn[0]))]
        with m.If(checking):
            with m.If(dut.owner_valid):
                m.d.comb += Assert(live_has & (live_fn == dut.owner))
            # Induction: whoever is on the GPU, or about to be (SWAP), is the live set's.
            on_gpu = (dut.gpu_state == GpuState.LOADED) | (dut.gpu_state == GpuState.RUNNING)
            with m.If(on_gpu):
                m.d.comb += Assert(live_has & (live_fn == dut.cur))
            with m.If(step == SeqState.SWAP):
                m.d.comb += Assert(live_has & (live_fn == dut.nxt))
            # Nobody is on the GPU while a context moves in or out (SAVE starts STOPPED and
            # ends EMPTY; LOAD starts EMPTY): a save never empties the set cur runs on.
            moving = Cat(step == s for s in (SeqState.SAVE, SeqState.LOAD, SeqState.OVERLAP,
                                             SeqState.SWAP)).any()
            with m.If(moving):
                m.d.comb += Assert(~on_gpu)
            # A drain or a save works on the function on the GPU.
            with m.If((step == SeqState.DRAIN) | (step == SeqState.SAVE)):
                m.d.comb += Assert(dut.target == dut.cur)
            # ... and the shadow set's, once its load has ended whole in an overlapped
            # switch, unless nxt was reset since (its context is then no longer valid).
            shadow_has = Mux(dut.bank, has[0], has[1])
            shadow_fn = Mux(dut.bank, fn[0], fn[1])
            with m.If(step != SeqState.OVERLAP):
                m.d.comb += Assert(~dut.shadow_fin)
            with m.If(dut.shadow_fin & ~dut.shadow_abt & dut.ctx_valid.bit_select(dut.nxt, 1)):
                m.d.comb += Assert(shadow_has & (shadow_fn == dut.nxt))
