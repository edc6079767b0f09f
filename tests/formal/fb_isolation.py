"""Formal harness: a VF access outside its slice is never granted.

Every input of the FB partition unit (accesses, configuration writes, reset) is free. The
harness remembers each access and the slice, CSA and FB bounds that held when it was made, and
asserts on the result one cycle later (after proving that the table the unit judges by is the
programmed layout, one cycle late):

- an OK result of a VF's HOST/ENGINE access lies inside [base, base + size) of that VF's slice,
  was enabled, lies outside the CSA and below the end of FB, and is base + offset;
- an OK result of a CTX access lies inside the CSA;
- a result is valid exactly when an access was made the cycle before.
"""

from amaranth.asserts import AnySeq, Initial
from amaranth.hdl import Array, Cat, Elaboratable, Module, ResetSignal, Signal
from amaranth.hdl import Assert, Assume

from rtl.fb_partition import FbPartition
from rtl.interfaces import FbOrigin, Status


class FbIsolationHarness(Elaboratable):
    def __init__(self, params):
        self.params = params
        self.dut = FbPartition(params)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        m.submodules.dut = dut = self.dut
        m.d.comb += [
            dut.access.valid.eq(AnySeq(1)),
            dut.access.payload.as_value().eq(AnySeq(len(dut.access.payload.as_value()))),
            dut.cfg.req.valid.eq(AnySeq(1)),
            dut.cfg.req.payload.as_value().eq(AnySeq(len(dut.cfg.req.payload.as_value()))),
        ]
        with m.If(Initial()):
            m.d.comb += Assume(ResetSignal())

        # The unit judges accesses by its active table; first prove that table is exactly
        # the programmed one, one cycle late...
        regs = dut.regs
        g = p.granule_bits
        for n in range(1, p.num_fns):
            programmed = Cat(regs.f("SLICE_BASE", "BASE", n), regs.f("SLICE_SIZE", "SIZE", n),
                             regs.f("SLICE_SIZE", "ENABLE", n))
            past = Signal(len(programmed), name=f"past_slice_{n}")
            m.d.sync += past.eq(programmed)
            active = dut.active[n]
            with m.If(~Initial()):
                m.d.comb += Assert(Cat(active.base, active.size, active.enable) == past)
        csa = Cat(regs.f("CSA_BASE", "BASE"), regs.f("CSA_SIZE", "SIZE"))
        past_csa = Signal(len(csa))
        m.d.sync += past_csa.eq(csa)
        active_lo, active_hi = dut.active_csa
        with m.If(~Initial()):
            m.d.comb += [Assert(active_lo == past_csa[:len(active_lo)]),
                         Assert(active_hi == past_csa[:len(active_lo)] + past_csa[len(active_lo):])]

        # ... then judge every grant against that table's base, size and enable only (the
        # derived bounds the unit precomputes are not trusted here).
        bases = Array([0] + [dut.active[n].base for n in range(1, p.num_fns)])
        sizes = Array([0] + [dut.active[n].size for n in range(1, p.num_fns)])
        enables = Array([0] + [dut.active[n].enable for n in range(1, p.num_fns)])
        csa_lo = Cat(Signal(g), active_lo)
        csa_hi = Cat(Signal(g), active_hi)

        acc = dut.access.payload
        wide = p.fb_addr_width + 2
        was_valid = Signal()
        fn = Signal(p.fn_width)
        origin = Signal(FbOrigin)
        offset = Signal(wide)
        lo = Signal(wide)
        hi = Signal(wide)
        enabled = Signal()
        c_lo = Signal(wide)
        c_hi = Signal(wide)
        in_range = acc.fn <= p.num_vfs
        m.d.sync += [
            was_valid.eq(dut.access.valid), fn.eq(acc.fn), origin.eq(acc.origin),
            offset.eq(acc.addr),
            lo.eq(Cat(Signal(g), bases[acc.fn])),
            hi.eq(Cat(Signal(g), bases[acc.fn] + sizes[acc.fn])),
            enabled.eq(in_range & enables[acc.fn]),
            c_lo.eq(csa_lo), c_hi.eq(csa_hi),
        ]

        res = dut.result.payload
        granted = dut.result.valid & (res.status == Status.OK)
        m.d.comb += Assert(dut.result.valid == was_valid)
        with m.If(~Initial() & granted & (fn != 0) & (origin != FbOrigin.CTX)):
            m.d.comb += [
                Assert(fn <= p.num_vfs),
                Assert(enabled),
                Assert(res.addr >= lo),
                Assert(res.addr < hi),
                Assert(res.addr == lo + offset),
                Assert(res.addr < p.fb_size),
                Assert((res.addr < c_lo) | (res.addr >= c_hi)),
            ]
        with m.If(~Initial() & granted & (origin == FbOrigin.CTX)):
            m.d.comb += [Assert(res.addr >= c_lo), Assert(res.addr < c_hi)]
        return m
