"""Formal harness: the doorbell arbiter never loses a pending doorbell.

All inputs are free (writes on every port, the served set, weights, FLR, CP ready, reset). Asserted:

- a pending doorbell stops being pending only by moving into the output register (offered to
  the CP) or by an FLR of its function;
- a doorbell in the output register leaves it only by being taken by the CP, by an FLR of its
  function, or by going back to pending;
- the CP is only offered a doorbell of a function it serves;
- stage 2 of the pick works on at most one function; the round-robin pointer names one.
Together: every doorbell rung is delivered, superseded by a newer value of the same doorbell
(which then takes its place), or dropped by an FLR; never lost.
"""

from amaranth.asserts import AnySeq, Initial
from amaranth.hdl import Assert, Assume, Elaboratable, Module, ResetSignal, Signal

from rtl.doorbell import DoorbellArbiter


class DoorbellNoLossHarness(Elaboratable):
    def __init__(self, params):
        self.params = params
        self.dut = DoorbellArbiter(params)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        m.submodules.dut = dut = self.dut
        for port in (dut.writes.as_value(), dut.write_valid, dut.serve, dut.weight.as_value(),
                     dut.num_vfs, dut.vf_enable, dut.flr, dut.cp.ready):
            m.d.comb += port.eq(AnySeq(len(port)))
        with m.If(Initial()):
            m.d.comb += Assume(ResetSignal())

        d = p.doorbells_per_fn
        past = {name: Signal.like(getattr(dut, name), name=f"past_{name}")
                for name in ("pending", "out_valid", "out_fn", "out_index", "flr")}
        past_take = Signal()
        serve_r = Signal.like(dut.serve)            # the arbiter acts on last cycle's serve
        m.d.sync += [past[n].eq(getattr(dut, n)) for n in past]
        m.d.sync += [past_take.eq(dut.cp.valid & dut.cp.ready), serve_r.eq(dut.serve)]
        past_flr_r = Signal.like(dut.flr)
        m.d.sync += past_flr_r.eq(past["flr"])      # the arbiter's registered FLR, one back

        checking = ~Initial() & ~ResetSignal()
        # Stage 2 works on one function at a time, and the round-robin pointer names exactly
        # one (invariants that also help the induction).
        sel, last = dut.stage2_fn, dut.rr_last
        with m.If(checking):
            m.d.comb += [Assert((sel & (sel - 1)[:len(sel)]) == 0),
                         Assert(last.any() & ((last & (last - 1)[:len(last)]) == 0))]
        for e in range(p.num_fns * d):
            fn, index = divmod(e, d)
            now_out = dut.out_valid & (dut.out_fn == fn) & (dut.out_index == index)
            with m.If(checking & past["pending"][e] & ~dut.pending[e] & ~past["flr"][fn]):
                m.d.comb += Assert(now_out)
        was_out = past["out_valid"]
        out_e = past["out_fn"] * d + past["out_index"]
        still_out = dut.out_valid & (dut.out_fn == past["out_fn"]) & \
            (dut.out_index == past["out_index"])
        flr_of_out = past["flr"].bit_select(past["out_fn"], 1) | \
            past_flr_r.bit_select(past["out_fn"], 1)
        with m.If(checking & was_out & ~past_take & ~flr_of_out):
            m.d.comb += Assert(still_out | dut.pending.bit_select(out_e, 1))
        with m.If(checking & dut.cp.valid):
            m.d.comb += Assert(serve_r.bit_select(dut.out_fn, 1))
        return m
