"""Formal harness: FB isolation of the whole GPU (:class:`~rtl.top.gpu.SriovGpu`), at its FB
memory port.

Every input of the top is free: the host port (any configuration request to any Routing ID,
so any PF programming of configuration space and the GPU-IOV capability, FLRs, NumVFs and
VF Enable, any memory request of any function's driver, any tag), ``pf_rid``, the FB port's
``ready`` and its answers (even answers nothing asked for), the command processor's
``ready``, ``engine_busy`` and the engine-state ports. Asserted, on what the FB partition
unit's activator made active (the table every access is judged by):

(b) layout: every active region (the CSA, the VF slices) is non-empty and within FB, and no
    two overlap;
(a) a host FB access made for VF n (presented on the FB port while the port is the host
    queue's) lies in VF n's slice whenever that slice is active, and in no other active
    region: not another VF's slice, not the CSA. (If VF n's slice was changed since the
    access was granted, the access lands in FB no active region holds: the scrub fence
    keeps it from being handed to anyone before such accesses have left);
(c) a context-mover access presented on the FB port lies in the active CSA;
(s) a scrubber write lies in no active region (it fills only FB being handed over).

Who an access is for is read from the FB port itself (:attr:`~rtl.memory.fb_port.FbPort.pick`
and the head of its host queue, whose entries carry the function), not recomputed here.

With ``steer=True`` (planted-bug runs only) the inputs are narrowed to what a layout attack
needs, so that the solver finds the counterexample within minutes: the host's configuration
requests are PF writes (to the PF's Routing ID; memory requests stay free), the FB port is always ready and never answers,
the engine is idle. A counterexample under narrowed inputs is one under free inputs.

With ``covers=True`` the harness instead states the milestones a BMC run must reach (two
VF slices and the CSA active, a VF's access at the port, a context mover's access at the
port), so that ``mode cover`` measures the depth the BMC needs.
"""

from amaranth.hdl import Array, Assert, Assume, Cover

from rtl.memory.fb_partition import FbPartition
from rtl.memory.fb_port import FbInitiator
from rtl.top.gpu import HostKind, SriovGpu

from tests.formal.fb_isolation import _LetsOverlapsThrough
from tests.formal import Harness

__all__ = ["GpuIsolationHarness", "OverlapTop", "WrongBaseTop", "TOP_MUTANTS"]


class GpuIsolationHarness(Harness):
    """The whole GPU with every input free, and the isolation properties at its FB port.

    Parameters
    ----------
    params : GpuParams
    dut_class : type
        :class:`~rtl.top.gpu.SriovGpu` or a planted-bug subclass.
    steer : bool
        Narrow the inputs to PF configuration writes (planted-bug runs: see above).
    covers : bool
        State reachability milestones (``Cover``) instead of the properties.
    """

    def __init__(self, params, dut_class=SriovGpu, *, steer=False, covers=False):
        super().__init__(params, dut_class)
        self.steer = steer
        self.covers = covers

    def properties(self, m, dut, checking):
        p = self.params
        if self.steer:
            hreq = dut.host.req.payload
            with m.If(hreq.kind == HostKind.CONFIG):
                m.d.comb += [Assume(hreq.rid == dut.pf_rid), Assume(hreq.fn == 0),
                             Assume(hreq.write)]
            m.d.comb += [Assume(dut.fb.req.ready),
                         Assume(~dut.fb.resp.valid), Assume(~dut.engine_busy)]

        gb = p.granule_bits
        active = dut.fbp.activator.active
        regions = [active[j] for j in range(p.num_fns)]     # 0: the CSA, n: VF n's slice
        port = dut.fb_port
        req = dut.fb.req
        granule = req.payload.addr[gb:]
        host_fn = port.host_head.fn

        def inside(g, a):
            return a.valid & (g >= a.base) & (g < a.base + a.size)

        presented = checking & req.valid
        by_host = presented & (port.pick == FbInitiator.HOST)
        by_mover = presented & ((port.pick == FbInitiator.LIVE) |
                                (port.pick == FbInitiator.SHADOW))
        by_scrub = presented & (port.pick == FbInitiator.SCRUB)

        if self.covers:
            m.d.comb += [
                Cover(checking & regions[0].valid & regions[1].valid & regions[2].valid),
                Cover(by_host & (host_fn == 1) & inside(granule, regions[1])),
                Cover(by_host & (host_fn == 2) & inside(granule, regions[2])),
                Cover(by_mover & inside(granule, regions[0])),
                Cover(by_mover & inside(granule, regions[0]) & regions[1].valid &
                      regions[2].valid),
            ]
            return

        # (b) The active layout.
        for j, a in enumerate(regions):
            with m.If(checking & a.valid):
                m.d.comb += [Assert(a.size != 0), Assert(a.base + a.size <= p.fb_granules)]
            for b in regions[:j]:
                with m.If(checking & a.valid & b.valid):
                    m.d.comb += Assert((a.base + a.size <= b.base) | (b.base + b.size <= a.base))

        # (a) A VF's host FB access: in its own active slice, in nobody else's region.
        for n in range(1, p.num_fns):
            with m.If(by_host & (host_fn == n)):
                with m.If(regions[n].valid):
                    m.d.comb += Assert(inside(granule, regions[n]))
                for j, a in enumerate(regions):
                    if j != n:
                        m.d.comb += Assert(~inside(granule, a))
        # A function number the top does not have never reaches FB.
        with m.If(by_host):
            m.d.comb += Assert(host_fn <= p.num_vfs)

        # (c) The context movers: inside the active CSA.
        with m.If(by_mover):
            m.d.comb += Assert(inside(granule, regions[0]))

        # (s) The scrubber: only FB no active region holds.
        with m.If(by_scrub):
            for a in regions:
                m.d.comb += Assert(~inside(granule, a))


# --- Planted bugs in the whole top: each must make the proof fail -------------------------

class _OverlapPartition(FbPartition):
    ACTIVATOR = _LetsOverlapsThrough


class OverlapTop(SriovGpu):
    """The top's activator does not compare a candidate with the active regions, so an
    overlapping slice (or CSA) the PF programs is let through."""
    FB_PARTITION = _OverlapPartition


class _WrongBasePartition(FbPartition):
    def _slice_base(self, acc):
        # VF 2's accesses are translated with VF 1's base (and checked against VF 2's bounds).
        bases = [a.base for a in self.active]
        bases[2] = bases[1]
        return Array(bases)[acc.fn]


class WrongBaseTop(SriovGpu):
    """The top routes VF 2's FB requests with VF 1's slice base."""
    FB_PARTITION = _WrongBasePartition


TOP_MUTANTS = (OverlapTop, WrongBaseTop)
