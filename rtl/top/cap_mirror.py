"""The capability mirror: the GPU-IOV capability's FB layout (what the PF programmed, in
capability units) as the FB partition unit's regions (granules), what the unit made active
back to the capability, and the world switch's owner as the doorbell arbiter's serve mask."""

from amaranth.hdl import Const, Module, Mux
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl.common.interfaces import region_layout
from rtl.pcie.config_space import cntxt_layout, vf_fb_layout

__all__ = ["CapMirror", "FB_CONSUMED_WIDTH"]

#: Width of TOTAL_FB_CONSUMED in the capability (:class:`~rtl.pcie.config_space.ConfigSpace`'s
#: ``fb_consumed`` port).
FB_CONSUMED_WIDTH = 16


class CapMirror(wiring.Component):
    """Mirrors capability state into the blocks that act on it: combinational, no state.

    The FB layout: CNTXT becomes region 0 (the context save area), VFn_FB_SIZE / OFFSET
    region n, both shifted from ``iov_fb_unit`` units to granules at the full programmed
    width (``layout_width``: the FB partition unit judges whether a region fits, not this
    mirror). VFn_FB_SIZE is stored minus one, so a slice is ``size + 1`` units.

    Refuses (as ``valid = 0``, not as an error): a VF whose SIZE and OFFSET are both 0 (no
    slice); a CNTXT of SIZE 0 or with LOC = 1 (a CSA in system memory: not modelled, so
    none in FB).

    Latency: 0 (combinational; every input is a register of its block).

    Attributes
    ----------
    cntxt : cntxt_layout, in
        CNTXT as programmed.
    vf_fb : array of vf_fb_layout, in
        VFn_FB_SIZE / VFn_FB_OFFSET as programmed; element n - 1 is VF n's.
    layout : array of region_layout (``layout_width``), out
        The programmed regions for the FB partition unit: 0 the CSA, n VF n's slice.
    consumed : in
        The FB of active slices, granules (the FB partition unit's).
    active_csa : region_layout, in
        The CSA the FB partition unit made active.
    fb_consumed : out
        TOTAL_FB_CONSUMED, capability units (``consumed`` shifted back, truncated to the
        field's :data:`FB_CONSUMED_WIDTH` bits).
    csa : region_layout, out
        ``active_csa``, for the capability and the world switch.
    owner, owner_valid : in
        The world switch's owner.
    serve : out
        One bit per function: whose doorbells reach the command processor (the owner's
        only; none while no function owns the GPU).
    """

    def __init__(self, params):
        self.params = params
        p = params
        super().__init__({
            "cntxt": In(cntxt_layout()),
            "vf_fb": In(data.ArrayLayout(vf_fb_layout(), p.num_vfs)),
            "layout": Out(data.ArrayLayout(region_layout(p, p.layout_width), p.num_fns)),
            "consumed": In(p.granule_width),
            "active_csa": In(region_layout(p)),
            "fb_consumed": Out(FB_CONSUMED_WIDTH),
            "csa": Out(region_layout(p)),
            "owner": In(range(p.num_fns)),
            "owner_valid": In(1),
            "serve": Out(p.num_fns),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        shift = p.iov_unit_shift
        cntxt, layout = self.cntxt, self.layout
        m.d.comb += [layout[0].base.eq(cntxt.offset << shift),
                     layout[0].size.eq(cntxt.size << shift),
                     layout[0].valid.eq((cntxt.size != 0) & ~cntxt.loc)]
        for n in range(1, p.num_fns):
            vf_fb = self.vf_fb[n - 1]
            m.d.comb += [layout[n].base.eq(vf_fb.offset << shift),
                         layout[n].size.eq((vf_fb.size + 1) << shift),
                         layout[n].valid.eq(vf_fb.as_value() != 0)]
        m.d.comb += [self.fb_consumed.eq(self.consumed >> shift),
                     self.csa.eq(self.active_csa),
                     self.serve.eq(Mux(self.owner_valid,
                                       Const(1, p.num_fns) << self.owner, 0))]
        return m
