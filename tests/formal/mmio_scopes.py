"""Formal harness: a VF never changes a PF-only register; a VF that does not own the GPU never
changes an owner-shared flop.

All inputs are free: requests (any function, offset, data, byte enables), the owner, reset.
For every software-writable (RW) flop of a PF-only register the harness asserts it changes
only after a PF write; for every owner-shared flop, only after a write by the PF or by the
VF that owned the GPU in that cycle.
"""

from amaranth.asserts import AnySeq, Initial
from amaranth.hdl import Assert, Assume, Elaboratable, Module, ResetSignal, Signal

from rtl.mmio import MmioDecode
from rtl.regmap import Access, Scope


class MmioScopeHarness(Elaboratable):
    def __init__(self, params):
        self.params = params
        self.dut = MmioDecode(params)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        payload = dut.bus.req.payload.as_value()
        m.d.comb += [
            dut.bus.req.valid.eq(AnySeq(1)),
            payload.eq(AnySeq(len(payload))),
            dut.owner.eq(AnySeq(len(dut.owner))),
            dut.owner_valid.eq(AnySeq(1)),
            dut.flr.eq(AnySeq(len(dut.flr))),
        ]
        with m.If(Initial()):
            m.d.comb += Assume(ResetSignal())
        req = dut.bus.req
        fn = req.payload.fn
        pf_write = Signal()
        owner_write = Signal()
        m.d.sync += [
            pf_write.eq(req.valid & req.payload.write & (fn == 0)),
            owner_write.eq(req.valid & req.payload.write & (fn != 0) & dut.owner_valid &
                           (fn == dut.owner)),
        ]
        regs = dut.regs
        for reg, index, _ in regs.regmap.instances():
            for f in reg.fields:
                if f.access is not Access.RW:
                    continue
                value = regs.f(reg.name, f.name, index)
                past = Signal.like(value, name=f"past_{reg.name.lower()}_{index}_{f.name.lower()}")
                m.d.sync += past.eq(value)
                allowed = pf_write | (owner_write if reg.scope is Scope.OWNER_SHARED else 0)
                with m.If(~Initial() & ~ResetSignal() & ~allowed):
                    m.d.comb += Assert(value == past)
        return m
