"""Formal harness: the ownership signal of the world switch.

Every input is free: GPU-IOV commands, FLRs, the engine's busy, doorbell work, NumVFs and
VF Enable, both memory ports (ready, responses), PF register writes, reset. Asserted:

- ownership never passes straight from one function to another: between two owners there
  is at least one cycle with no owner (the switch);
- a function reset (FLR) in one cycle does not own the GPU in the next.
"""

from amaranth.asserts import AnySeq, Initial
from amaranth.hdl import Assert, Assume, Elaboratable, Module, ResetSignal, Signal

from rtl.world_switch import WorldSwitch


class WorldSwitchOwnershipHarness(Elaboratable):
    def __init__(self, params):
        self.params = params
        self.dut = WorldSwitch(params)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        inputs = [dut.iov_cmd.valid, dut.iov_cmd.payload.as_value(), dut.flr, dut.engine_busy,
                  dut.has_work, dut.num_vfs, dut.vf_enable, dut.shared_in.as_value(),
                  dut.state_wr.valid, dut.state_wr.payload.as_value(), dut.state_rd.valid,
                  dut.state_rd.payload.as_value(),
                  dut.cfg.req.valid, dut.cfg.req.payload.as_value(), dut.csa.as_value(),
                  dut.ctx_fault, dut.execute_refused, dut.cntxt_refused]
        for port in (dut.mem, dut.mem_load):
            inputs += [port.req.ready, port.resp.valid, port.resp.payload.as_value()]
        for value in inputs:
            m.d.comb += value.eq(AnySeq(len(value)))
        with m.If(Initial()):
            m.d.comb += Assume(ResetSignal())

        past_valid, past_owner, past_flr = Signal(), Signal.like(dut.owner), Signal.like(dut.flr)
        m.d.sync += [past_valid.eq(dut.owner_valid), past_owner.eq(dut.owner),
                     past_flr.eq(dut.flr)]
        checking = ~Initial() & ~ResetSignal()
        with m.If(checking & past_valid & dut.owner_valid):
            m.d.comb += Assert(dut.owner == past_owner)
        with m.If(checking & dut.owner_valid):
            m.d.comb += Assert(~past_flr.bit_select(dut.owner, 1))
        return m
