"""Formal harness: the FB partition unit's layout and every grant it gives.

Every input of the FB partition unit is free: accesses, configuration writes (any layout, any
byte enables, from any function), the scrubber's answer, context-mover faults, FLRs, reset.
Asserted, on the activator's active table (what accesses are judged by):

- layout: every active region is non-empty and within FB, and no two active regions (the
  CSA and the VF slices) overlap, whatever the PF programs and in whatever order;
- isolation: an OK result of a VF's HOST/ENGINE access lies inside that VF's active slice,
  at base + offset, below the end of FB and outside the CSA; a VF HOST offset at or beyond
  the VF FB aperture is never granted; an OK result of a CTX access lies inside the active
  CSA; a PF access is granted at its own absolute address;
- service: a legal access is granted (a VF offset inside its active slice and, for HOST,
  its aperture; a PF address inside FB; a CTX address inside the active CSA), so a unit
  that refuses everything fails;
- a result is valid exactly when an access was made the cycle before.

The planted bugs below (each a subclass changing one decision) must make the proof fail.
"""

from amaranth.hdl import Array, Assert, Cat, Const, Mux, Signal

from rtl.memory.fb_partition import ActivatorStep, FbPartition, LayoutActivator
from rtl.common.interfaces import FbOrigin, Status
from tests.formal import Harness

__all__ = ["FbIsolationHarness", "MUTANTS"]


class FbIsolationHarness(Harness):
    def __init__(self, params, dut_class=FbPartition):
        super().__init__(params, dut_class)

    def properties(self, m, dut, checking):
        p = self.params

        # --- The layout: the active regions are sane and disjoint ---------------------------
        g = p.granule_bits
        act = dut.activator.active
        regions = [act[j] for j in range(p.num_fns)]
        for j, a in enumerate(regions):
            with m.If(checking & a.valid):
                m.d.comb += [Assert(a.size != 0), Assert(a.base + a.size <= p.fb_granules)]
            for k, b in enumerate(regions[:j]):
                with m.If(checking & a.valid & b.valid):
                    m.d.comb += Assert((a.base + a.size <= b.base) | (b.base + b.size <= a.base))

        # --- Invariants of the activator and the derived table (they make induction close) -
        def disjoint(a, b):
            return (a.base + a.size <= b.base) | (b.base + b.size <= a.base)

        dx = dut.activator
        k, cand, step = dx.region, dx.candidate, dx.step
        in_flight = step != ActivatorStep.IDLE
        cand_ok = (cand.size != 0) & (cand.base + cand.size <= p.fb_granules)
        past_csa = Signal.like(csa_now := regions[0])
        m.d.sync += past_csa.eq(csa_now)
        for j, a in enumerate(regions):
            with m.If(checking & in_flight & (k == j)):
                m.d.comb += Assert(~a.valid)
            with m.If(checking & ((step == ActivatorStep.SCRUB) | (step == ActivatorStep.ARM))
                      & (k != j) & a.valid):
                m.d.comb += Assert(disjoint(cand, a))
            with m.If(checking & (step == ActivatorStep.JUDGE) & (k != j) & a.valid &
                      ~dx.conflict[j]):
                m.d.comb += Assert(disjoint(cand, a))
            with m.If(checking & (step == ActivatorStep.ARM) & (k == j)):
                m.d.comb += [Assert(a.base == cand.base), Assert(a.size == cand.size)]
            if j:
                d = dut.active[j]
                with m.If(checking & a.valid):
                    m.d.comb += [
                        Assert(d.base == a.base), Assert(d.size == a.size),
                        Assert(d.room == p.fb_granules - a.base),
                        Assert(d.csa_lo == Mux(past_csa.valid, past_csa.base - a.base, 0)),
                        Assert(d.csa_hi == Mux(past_csa.valid,
                                               past_csa.base + past_csa.size - a.base, 0))]
        with m.If(checking & ((step == ActivatorStep.SCRUB) | (step == ActivatorStep.ARM))):
            m.d.comb += Assert(cand_ok)
        with m.If(checking & (step == ActivatorStep.JUDGE)):
            m.d.comb += [Assert(dx.empty == (cand.size == 0)),
                         Assert(dx.past == (cand.base + cand.size > p.fb_granules))]

        # --- Each access and what held when it was made -----------------------------------
        acc = dut.access.payload
        wide = p.fb_addr_width + 2
        bases = Array([Const(0)] + [a.base for a in regions[1:]])
        sizes = Array([Const(0)] + [a.size for a in regions[1:]])
        valids = Array([Const(0)] + [a.valid for a in regions[1:]])
        csa = regions[0]
        was = {name: Signal(width, name=f"was_{name}") for name, width in (
            ("valid", 1), ("fn", p.fn_width), ("origin", 2), ("offset", wide), ("lo", wide),
            ("hi", wide), ("enabled", 1), ("c_lo", wide), ("c_hi", wide), ("c_on", 1))}
        in_range = acc.fn <= p.num_vfs
        m.d.sync += [
            was["valid"].eq(dut.access.valid), was["fn"].eq(acc.fn),
            was["origin"].eq(acc.origin), was["offset"].eq(acc.addr),
            was["lo"].eq(Cat(Const(0, g), bases[acc.fn])),
            was["hi"].eq(Cat(Const(0, g), bases[acc.fn] + sizes[acc.fn])),
            was["enabled"].eq(in_range & valids[acc.fn]),
            was["c_lo"].eq(Cat(Const(0, g), csa.base)),
            was["c_hi"].eq(Cat(Const(0, g), csa.base + csa.size)),
            was["c_on"].eq(csa.valid),
        ]
        fn, origin, offset = was["fn"], was["origin"], was["offset"]
        lo, hi, c_lo, c_hi = was["lo"], was["hi"], was["c_lo"], was["c_hi"]
        res = dut.result.payload
        granted = dut.result.valid & (res.status == Status.OK)
        m.d.comb += Assert(dut.result.valid == was["valid"])
        vf_access = (fn != 0) & ((origin == FbOrigin.HOST) | (origin == FbOrigin.ENGINE))
        host = origin == FbOrigin.HOST
        in_aperture = offset < p.vf_fb_aperture
        with m.If(checking & granted & vf_access):
            m.d.comb += [
                Assert(fn <= p.num_vfs), Assert(was["enabled"]),
                Assert(res.addr >= lo), Assert(res.addr < hi), Assert(res.addr == lo + offset),
                Assert(res.addr < p.fb_size),
                Assert(~was["c_on"] | (res.addr < c_lo) | (res.addr >= c_hi)),
                Assert(~host | in_aperture),
            ]
        with m.If(checking & granted & (origin == FbOrigin.CTX)):
            m.d.comb += [Assert(was["c_on"]), Assert(res.addr >= c_lo), Assert(res.addr < c_hi)]
        with m.If(checking & granted & (fn == 0) & (origin != FbOrigin.CTX)):
            m.d.comb += Assert(res.addr == offset)

        # Service: what the rules allow is granted.
        legal_vf = vf_access & (fn <= p.num_vfs) & was["enabled"] & (lo + offset < hi) & \
            (~host | in_aperture)
        legal_pf = (fn == 0) & ((origin == FbOrigin.HOST) | (origin == FbOrigin.ENGINE)) & \
            (offset < p.fb_size)
        legal_ctx = (origin == FbOrigin.CTX) & (fn <= p.num_vfs) & was["c_on"] & \
            (offset >= c_lo) & (offset < c_hi)
        with m.If(checking & dut.result.valid & (legal_vf | legal_pf | legal_ctx)):
            m.d.comb += Assert(res.status == Status.OK)


# --- Planted bugs: each must make the proof fail ------------------------------------------

class _LetsOverlapsThrough(LayoutActivator):
    def _conflicts(self, cand, k):
        return Const(0, self.params.num_fns)


class OverlapActivated(FbPartition):
    """The activator does not compare a candidate with the active regions."""
    ACTIVATOR = _LetsOverlapsThrough


class PfUsesSliceOneBase(FbPartition):
    """The PF's address is translated like VF 1's."""
    def _pf_address(self, acc, slice_granule):
        return Cat(acc.addr[:self.params.granule_bits], self.active[1].base +
                   acc.addr[self.params.granule_bits:])


class NoApertureCheck(FbPartition):
    """A VF HOST access beyond its FB BAR is not refused (only its slice size is checked)."""
    def _beyond_aperture(self, acc):
        return Const(0)


class RefusesEverything(FbPartition):
    """Safe but useless: nothing is ever granted."""
    def _blocked(self, kind):
        return Const(1)


MUTANTS = (OverlapActivated, PfUsesSliceOneBase, NoApertureCheck, RefusesEverything)
