"""The framebuffer partition unit: base/limit translation and isolation of each VF's FB slice."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.common.counters import saturating_counter
from rtl.params import FN_WIDTH
from rtl.common.interfaces import (FbAccessSignature, FbOrigin, FbResultSignature, RegBusSignature, Status,
                         ValidSignature, Violation, region_layout)
from rtl.common.regmap import Access, Field, Register, RegisterFile, RegisterMap
from rtl.common.violation import violation_record

__all__ = ["FbPartition", "LayoutActivator", "ActivatorStep", "LayoutRefusal",
           "fb_partition_regmap",
           "scrub_request_layout"]

#: Offset of the first VF's slice registers; VF n's base is at SLICE_BASE + 2 (n - 1).
_SLICE_OFFSET = 0x40
_COUNT_OFFSET = 0x100


class LayoutRefusal(enum.Enum, shape=2):
    """Why a programmed region was not activated (LAYOUT_LAST.REASON)."""
    NONE = 0
    OVERLAP = 1    #: it overlaps an active region (LAYOUT_LAST.OTHER): first active wins
    EMPTY = 2      #: size 0
    PAST_END = 3   #: it runs past the end of FB


def fb_partition_regmap(params, external_layout=False):
    """The PF-only configuration registers of the FB partition unit. With
    ``external_layout`` (the whole GPU: the GPU-IOV capability programs the layout) the
    slice and CSA registers are not here."""
    gw, fw = params.granule_width, params.fn_width
    addr_hi = max(params.fb_addr_width - 32, 1)
    masks = -(-params.num_fns // 32)
    layout = [] if external_layout else [
        Register("CSA_BASE", 0x04, (
            Field("BASE", 0, gw, Access.RW, "context save area start, granules"),
        ), "Context save area: reachable by the PF and the save/restore engine only."),
        Register("CSA_SIZE", 0x05, (
            Field("SIZE", 0, gw, Access.RW, "context save area size, granules (0 = none)"),
        ), "Context save area size."),
        Register("SLICE_BASE", _SLICE_OFFSET, (
            Field("BASE", 0, gw, Access.RW, "slice start, granules"),
        ), "VF n's FB slice start.", count=params.num_vfs, first=1, stride=2),
        Register("SLICE_SIZE", _SLICE_OFFSET + 1, (
            Field("SIZE", 0, gw, Access.RW, "slice size, granules"),
            Field("ENABLE", 31, 1, Access.RW, "the slice exists; a disabled VF reaches no FB"),
        ), "VF n's FB slice size.", count=params.num_vfs, first=1, stride=2),
    ]
    return RegisterMap("fb_partition", 9, [
        Register("INFO", 0x00, (
            Field("NUM_VFS", 0, FN_WIDTH, Access.RO, "number of VFs (parameter num_vfs)"),
            Field("GRANULE_LOG2", 8, 6, Access.RO, "log2 of the slice granule in bytes"),
        ), "What this instance was built with."),
        Register("FB_GRANULES", 0x01, (
            Field("COUNT", 0, gw, Access.RO, "FB size in granules"),
        ), "Total FB."),
        Register("CTRL", 0x02, (
            Field("IRQ_EN", 0, 1, Access.RW, "raise `violation_irq` while VIOL_LAST.VALID is set"),
            Field("LAYOUT_IRQ_EN", 1, 1, Access.RW, "raise `layout_irq` while LAYOUT_LAST.VALID "
                  "is set"),
        ), "Control."),
        Register("LAYOUT_STATUS", 0x03, (
            Field("BUSY", 0, 1, Access.RO, "a programmed change is still being checked, "
                  "scrubbed or activated (ACTIVE is not final yet)"),
            Field("REFUSED", 1, 1, Access.RO, "a programmed region is not active: see "
                  "REFUSED_MASK and LAYOUT_LAST"),
            Field("SCRUBBING", 2, 1, Access.RO, "a region waits for its zero fill"),
            Field("REGION", 8, FN_WIDTH, Access.RO, "the region being activated (0 = CSA, n = VF n)"),
        ), "The layout the accesses are judged by: which programmed regions are active. A "
           "region is activated only if it is non-empty, within FB and overlaps no active "
           "region (first active wins), after the FB it gains is zero-filled."),
        Register("LAYOUT_LAST", 0x06, (
            Field("VALID", 0, 1, Access.W1C, "a region was refused; write 1 to clear"),
            Field("REASON", 4, 2, Access.RO, "LayoutRefusal: 1 overlap, 2 empty, 3 past end"),
            Field("REGION", 8, FN_WIDTH, Access.RO, "the refused region (0 = CSA, n = VF n)"),
            Field("OTHER", 16, FN_WIDTH, Access.RO, "the active region it overlaps"),
        ), "The most recent refused activation (later ones overwrite it)."),
        Register("LAYOUT_REFUSALS", 0x07, (
            Field("COUNT", 0, params.counter_width, Access.RC,
                  "refused activations (saturating); any write clears"),
        ), "Regions refused since cleared (a refused region is retried when an active one "
           "goes away, and counts again if refused again)."),
        Register("VIOL_LAST", 0x08, (
            Field("VALID", 0, 1, Access.W1C, "a violation was recorded; write 1 to clear"),
            Field("WRITE", 1, 1, Access.RO, "it was a write"),
            Field("ORIGIN", 2, 2, Access.RO, "FbOrigin: 0 host, 1 engine, 2 save/restore"),
            Field("KIND", 4, 3, Access.RO, "Violation code"),
            Field("FN", 8, FN_WIDTH, Access.RO, "requesting function"),
        ), "The most recent violation (later ones overwrite it)."),
        Register("VIOL_ADDR_LO", 0x09, (
            Field("ADDR", 0, 32, Access.RO, "its address as requested, bits 31:0"),
        ), "Address of the most recent violation (for NOT_PF: the register offset)."),
        Register("VIOL_ADDR_HI", 0x0A, (
            Field("ADDR", 0, addr_hi, Access.RO, "its address as requested, upper bits"),
        ), "Upper address bits of the most recent violation."),
        Register("ACTIVE_MASK", 0x10, (
            Field("REGIONS", 0, 32, Access.RO, "bit b: region 32k + b is active "
                  "(0 = CSA, n = VF n)"),
        ), "Active regions, 32 per register.", count=masks),
        Register("REFUSED_MASK", 0x18, (
            Field("REGIONS", 0, 32, Access.RO, "bit b: region 32k + b is programmed but "
                  "refused"),
        ), "Refused regions, 32 per register.", count=masks),
        *layout,
        Register("VIOL_COUNT", _COUNT_OFFSET, (
            Field("COUNT", 0, params.counter_width, Access.RC,
                  "blocked accesses (saturating); any write clears"),
        ), "Violations per function; index 0 counts PF accesses past the end of FB, "
           "requests with a function number above num_vfs and context-mover accesses "
           "stopped outside the CSA.", count=params.num_fns),
    ])


def _active_layout(params):
    gw = params.granule_width
    return data.StructLayout({
        "base": unsigned(gw), "size": unsigned(gw), "valid": unsigned(1),
        "room": unsigned(gw),          # granules from base to the end of FB (0 if past it)
        "csa_lo": signed(gw + 2),      # CSA start - base
        "csa_hi": signed(gw + 2),      # CSA end - base
    })


def scrub_request_layout(params):
    """A region to zero-fill before it is activated, granules."""
    return data.StructLayout({"base": unsigned(params.granule_width),
                              "size": unsigned(params.granule_width)})


class ActivatorStep(enum.Enum, shape=3):
    """Where :class:`LayoutActivator` is with its candidate."""
    IDLE = 0
    CHECK = 1
    JUDGE = 2
    SCRUB = 3
    ARM = 4


class LayoutActivator(wiring.Component):
    """Turns the programmed FB layout into the active one, one region at a time, refusing
    what would break isolation.

    Region 0 is the context save area, region n VF n's slice. When a programmed region
    changes, its active copy is dropped at once (from the next cycle, every access is judged
    without it) and the region is queued. Queued regions are taken lowest first:

    1. its value is checked against every active region in parallel: an overlap, size 0 or a
       region past the end of FB refuses it (``refused`` pulse with the reason and the first
       active region it overlaps); it stays inactive;
    2. otherwise the FB it covers is zero-filled: ``scrub`` offers the region until the
       scrubber answers ``ready`` (which means: done, and no access admitted before the
       region was dropped can still reach FB);
    3. then it is activated: base and size first, ``valid`` a cycle later (the derived bounds
       the access check uses are registered).

    A region that changes again on the way is taken again from step 1. Refused regions are
    retried whenever an active region goes away (the one in the way may have moved). Only
    this block activates, one region at a time, so active regions never overlap.

    Cycles ``busy`` is high for a change, with nothing else queued: 1 (the change seen,
    queued) + 1 (pick) + 1 (check) + 1 (judge), then refused; or + the scrub (request to
    ``ready``, at least 1) + 1 (arm), and the region is active from the next cycle.

    Attributes
    ----------
    programmed : ArrayLayout(region_layout(layout_width), N + 1), in
    active : ArrayLayout(region_layout, N + 1), out
    scrub : stream of scrub_request_layout, out
    busy : out
        Something is queued or on its way.
    refused : flow of {region, other, reason}, out
    refused_mask : Signal(N + 1), out
    region : out
        The region on its way (valid while ``busy`` and a region is picked).
    """

    def __init__(self, params):
        self.params = params
        p = params
        n = p.num_fns
        refusal = data.StructLayout({"region": range(n), "other": range(n),
                                     "reason": LayoutRefusal})
        #: The state, named here for the formal harness: the step, the candidate's value,
        #: and what the check found (conflict: bit j, active region j overlaps it).
        self.step = Signal(ActivatorStep)
        self.candidate = Signal(region_layout(p, p.layout_width))
        self.conflict = Signal(n)
        self.empty = Signal()
        self.past = Signal()
        super().__init__({
            "programmed": In(data.ArrayLayout(region_layout(p, p.layout_width), n)),
            "active": Out(data.ArrayLayout(region_layout(p), n)),
            "scrub": Out(stream.Signature(scrub_request_layout(p))),
            "busy": Out(1),
            "refused": Out(ValidSignature(refusal)),
            "refused_mask": Out(n),
            "region": Out(range(n)),
        })

    def _conflicts(self, cand, k):
        """Bit j: active region j (not k itself) overlaps the candidate."""
        end = cand.base + cand.size
        return Cat(*[(k != j) & a.valid & (cand.base < a.base + a.size) & (a.base < end)
                     for j, a in ((j, self.active[j]) for j in range(self.params.num_fns))])

    def elaborate(self, platform):
        m = Module()
        p = self.params
        n = p.num_fns
        gw, lw = p.granule_width, p.layout_width
        prog, active = self.programmed, self.active

        seen = Signal.like(prog)            # the programmed layout one cycle ago
        m.d.sync += seen.eq(prog)
        changed = Signal(n)
        m.d.comb += changed.eq(Cat(*[prog[k].as_value() != seen[k].as_value() for k in range(n)]))
        pending, refused = Signal(n), self.refused_mask

        # The candidate and the region it is.
        cand, k = self.candidate, self.region
        conflict, empty, past = self.conflict, self.empty, self.past
        was_active = Cat(*[active[j].valid for j in range(n)])
        picked, refusing = Signal(n), Signal(n)     # taken from pending / refused, this cycle
        requeue = Signal(n)                         # back to pending: judged on stale facts
        recheck = Signal()                          # a region was dropped while checking
        dropped = Signal()
        # The candidate was programmed anew since it was picked (to a value that may not even
        # be a region: then it is not pending again, but must not be activated either).
        stale = Signal()
        stale_now = stale | changed.bit_select(k, 1)
        step = self.step
        with m.Switch(step):
            with m.Case(ActivatorStep.IDLE):
                # Only an inactive region is ever a candidate (its value changes only here).
                first = Signal(range(n))
                queued = pending & ~was_active
                for j in reversed(range(n)):
                    with m.If(queued[j]):
                        m.d.comb += first.eq(j)
                with m.If(queued.any()):
                    m.d.sync += [k.eq(first), cand.eq(seen[first]),
                                 stale.eq(changed.bit_select(first, 1))]
                    m.d.comb += picked.eq(1 << first)
                    m.d.sync += step.eq(ActivatorStep.CHECK)
                with m.Else():
                    m.d.sync += stale.eq(0)
            with m.Case(ActivatorStep.CHECK):
                # Every active region at once; registered, so judging reads flops only.
                end = cand.base + cand.size
                m.d.sync += [conflict.eq(self._conflicts(cand, k)),
                             empty.eq(cand.size == 0), past.eq(end > p.fb_granules),
                             recheck.eq(dropped)]
                m.d.sync += step.eq(ActivatorStep.JUDGE)
            with m.Case(ActivatorStep.JUDGE):
                other = Signal(range(n))
                for j in reversed(range(n)):
                    with m.If(conflict[j]):
                        m.d.comb += other.eq(j)
                reason = Signal(LayoutRefusal)
                with m.If(past):
                    m.d.comb += reason.eq(LayoutRefusal.PAST_END)
                with m.Elif(empty):
                    m.d.comb += reason.eq(LayoutRefusal.EMPTY)
                with m.Elif(conflict.any()):
                    m.d.comb += reason.eq(LayoutRefusal.OVERLAP)
                with m.If(stale_now):
                    m.d.sync += step.eq(ActivatorStep.IDLE)              # changed again: queued anew if a region
                with m.Elif(recheck & (reason != LayoutRefusal.NONE)):
                    # A region went away while this one was compared with it: compare again.
                    m.d.comb += requeue.eq(1 << k)
                    m.d.sync += step.eq(ActivatorStep.IDLE)
                with m.Elif(reason != LayoutRefusal.NONE):
                    m.d.comb += [self.refused.valid.eq(1), self.refused.payload.region.eq(k),
                                 self.refused.payload.other.eq(Mux(conflict.any(), other, 0)),
                                 self.refused.payload.reason.eq(reason),
                                 refusing.eq(1 << k)]
                    m.d.sync += step.eq(ActivatorStep.IDLE)
                with m.Else():
                    m.d.sync += step.eq(ActivatorStep.SCRUB)
            with m.Case(ActivatorStep.SCRUB):
                m.d.comb += [self.scrub.valid.eq(1), self.scrub.payload.base.eq(cand.base),
                             self.scrub.payload.size.eq(cand.size)]
                with m.If(self.scrub.ready):
                    with m.If(stale_now):
                        m.d.sync += step.eq(ActivatorStep.IDLE)
                    with m.Else():
                        m.d.sync += [active[k].base.eq(cand.base), active[k].size.eq(cand.size)]
                        m.d.sync += step.eq(ActivatorStep.ARM)
            with m.Case(ActivatorStep.ARM):
                with m.If(~stale_now):
                    m.d.sync += active[k].valid.eq(1)
                m.d.sync += step.eq(ActivatorStep.IDLE)

        with m.If(step != ActivatorStep.IDLE):
            m.d.sync += stale.eq(stale_now)
        # A change drops the region at once (last, so that it wins over ARM) and queues it;
        # a region gone from the active set lets the refused ones try again.
        wanted = Cat(*[prog[j].valid for j in range(n)])
        m.d.comb += dropped.eq((changed & was_active).any())
        for j in range(n):
            with m.If(changed[j]):
                m.d.sync += active[j].valid.eq(0)
        retry = Mux(dropped, refused | refusing, 0)
        m.d.sync += [pending.eq(((pending & ~picked) | requeue | changed | retry) & wanted),
                     refused.eq(Mux(dropped, 0, (refused | refusing) & ~changed))]
        # A change is busy from the cycle it is seen: a read right after the write says so.
        m.d.comb += self.busy.eq(pending.any() | changed.any() | (step != ActivatorStep.IDLE))
        return m
class FbPartition(wiring.Component):
    """Base/limit FB partition unit: translates and checks every FB access.

    Function 0 (the PF) sees all of FB, addresses absolute. VF ``n`` sees only its active
    slice ``[base_n, base_n + size_n)`` (granules): a HOST access (through the VF's FB BAR)
    or an ENGINE access (GPU engine on behalf of the VF) carries an offset into the slice,
    which becomes ``base_n * granule + offset``. A CTX access (the save/restore engine)
    carries an absolute address and reaches only the active context save area (CSA).

    The layout accesses are judged by is the *active* one (:class:`LayoutActivator`): the PF
    programs regions (here in SLICE_* / CSA_*, or, with ``external_layout``, on the
    ``layout`` port: the whole GPU's GPU-IOV capability), and a region becomes active only
    if it is non-empty, lies within FB and overlaps no active region (the first active wins),
    once the FB it gains is zero-filled (``scrub``). A changed region stops being active at
    once. Refusals are reported in LAYOUT_LAST (region, reason, the region in the way),
    counted in LAYOUT_REFUSALS, and raise ``layout_irq`` when CTRL.LAYOUT_IRQ_EN is set.

    Refuses, answering BLOCKED with address 0 (see :class:`~rtl.common.interfaces.Violation`):
    a VF offset at or beyond its slice size (HOST: also at or beyond the VF FB aperture);
    any access of a VF whose slice is not active; a VF access whose translated address falls
    in the CSA or past the end of FB (cannot happen with an active layout: checked all the
    same); a PF access past the end of FB; a CTX access outside the CSA; a function number
    above ``num_vfs``; any configuration access from a function other than the PF.
    Each refusal increments that function's violation counter (index 0 for the PF and for
    bad function numbers) two cycles after the access and records (function, address, kind,
    origin, write) as the last violation; ``violation_irq`` is high while a recorded
    violation is unacknowledged and CTRL.IRQ_EN is set. ``ctx_fault`` (a context-mover
    access the FB port stopped) is recorded and counted the same way, as CTX_OUTSIDE_CSA.
    ``flr[n]`` clears VF n's violation counter (its next tenant starts clean).

    Latency: one access accepted every cycle; its result appears exactly **1 cycle** later.
    A layout change stops the region from being used by accesses presented 2 or more cycles
    after the change; activation takes :class:`LayoutActivator`'s cycles and the scrub.
    Configuration port: one request per cycle, answered 1 cycle later (see
    :func:`fb_partition_regmap`).

    Attributes
    ----------
    access : FbAccess stream, in
    result : FbResult stream, out
    cfg : RegBus, in
        PF-only configuration port.
    layout : ArrayLayout(region_layout(layout_width), N + 1), in (``external_layout`` only)
        The programmed regions: 0 the CSA, n VF n's slice.
    scrub : stream of scrub_request_layout, out
        A region to zero-fill before it is activated; ``ready`` answers "done".
    active_csa : region_layout, out
        The active CSA (``valid``: there is one), for the world switch and the FB port.
    consumed : out
        Granules of active VF slices (a running sum, at most N + 1 cycles old).
    ctx_fault : flow of {addr}, in
    flr : Signal(N + 1), in
    violation_irq, layout_irq : Signal, out
    """

    #: Cycles from an access to its result.
    LATENCY = 1
    #: The block that turns the programmed layout into the active one.
    ACTIVATOR = LayoutActivator

    def __init__(self, params, external_layout=False):
        self.params = params
        p = params
        self.external_layout = external_layout
        self.regmap = fb_partition_regmap(params, external_layout)
        self.regs = RegisterFile(params, self.regmap, pf_only=True)
        self.activator = self.ACTIVATOR(params)
        #: The layout accesses are judged by (see elaborate); index = function number.
        self.active = [Signal(_active_layout(params), name=f"active_{n}")
                       for n in range(1 << params.fn_width)]
        members = {
            "access": In(FbAccessSignature(p)),
            "result": Out(FbResultSignature(p)),
            "cfg": In(RegBusSignature(p, self.regmap.addr_width)),
            "scrub": Out(stream.Signature(scrub_request_layout(p))),
            "active_csa": Out(region_layout(p)),
            "consumed": Out(p.granule_width),
            "ctx_fault": In(ValidSignature(data.StructLayout({"addr": p.fb_addr_width,
                                                              "write": 1}))),
            "flr": In(p.num_fns),
            "violation_irq": Out(1),
            "layout_irq": Out(1),
        }
        if external_layout:
            members["layout"] = In(data.ArrayLayout(region_layout(p, p.layout_width),
                                                    p.num_fns))
        super().__init__(members)

    # The small decisions below are methods so that tests can plant a bug in each
    # (tests/formal/fb_isolation.py) and show that the proof catches it.
    def _beyond_aperture(self, acc):
        """A VF HOST offset at or beyond the VF FB BAR's size."""
        bits = self.params.vf_fb_aperture.bit_length() - 1
        return (acc.addr[bits:] != 0) if bits < self.params.fb_addr_width else Const(0)

    def _pf_address(self, acc, slice_granule):
        """The PF's FB address: absolute (``slice_granule``: what a VF's would be)."""
        return acc.addr

    def _blocked(self, kind):
        return kind != Violation.NONE

    def _slice_base(self, acc):
        """The active base (granules) of the slice an access of function ``acc.fn`` is in."""
        return Array(a.base for a in self.active)[acc.fn]

    def _programmed(self, m):
        """The programmed regions: the ``layout`` port, or this block's own registers."""
        p, regs, act = self.params, self.regs, self.activator
        if self.external_layout:
            m.d.comb += act.programmed.eq(self.layout)
            return
        csa_size = regs.f("CSA_SIZE", "SIZE")
        m.d.comb += [act.programmed[0].base.eq(regs.f("CSA_BASE", "BASE")),
                     act.programmed[0].size.eq(csa_size),
                     act.programmed[0].valid.eq(csa_size != 0)]
        for n in range(1, p.num_fns):
            m.d.comb += [act.programmed[n].base.eq(regs.f("SLICE_BASE", "BASE", n)),
                         act.programmed[n].size.eq(regs.f("SLICE_SIZE", "SIZE", n)),
                         act.programmed[n].valid.eq(regs.f("SLICE_SIZE", "ENABLE", n))]

    def _layout_report(self, m):
        """LAYOUT_STATUS, LAYOUT_LAST, LAYOUT_REFUSALS, the masks and ``layout_irq``."""
        p, regs, act = self.params, self.regs, self.activator
        wiring.connect(m, act.scrub, wiring.flipped(self.scrub))
        refused = act.refused
        m.d.comb += [
            regs.f("LAYOUT_STATUS", "BUSY").eq(act.busy),
            regs.f("LAYOUT_STATUS", "REFUSED").eq(act.refused_mask.any()),
            regs.f("LAYOUT_STATUS", "SCRUBBING").eq(act.scrub.valid),
            regs.f("LAYOUT_STATUS", "REGION").eq(act.region),
            regs.set_("LAYOUT_LAST", "VALID").eq(refused.valid),
            regs.f("LAYOUT_REFUSALS", "COUNT").eq(saturating_counter(
                m, p.counter_width, refused.valid, regs.written("LAYOUT_REFUSALS"),
                name="layout_refusals")),
            self.layout_irq.eq(regs.f("LAYOUT_LAST", "VALID") & regs.f("CTRL", "LAYOUT_IRQ_EN")),
        ]
        last = {name: Signal(len(regs.f("LAYOUT_LAST", name)), name=f"layout_last_{name.lower()}")
                for name in ("REASON", "REGION", "OTHER")}
        with m.If(refused.valid):
            m.d.sync += [last["REASON"].eq(refused.payload.reason),
                         last["REGION"].eq(refused.payload.region),
                         last["OTHER"].eq(refused.payload.other)]
        m.d.comb += [regs.f("LAYOUT_LAST", name).eq(sig) for name, sig in last.items()]
        active_bits = Cat(*[act.active[j].valid for j in range(p.num_fns)])
        for k in range(-(-p.num_fns // 32)):
            m.d.comb += [regs.f("ACTIVE_MASK", "REGIONS", k).eq(active_bits[32 * k:32 * (k + 1)]),
                         regs.f("REFUSED_MASK", "REGIONS", k).eq(
                             act.refused_mask[32 * k:32 * (k + 1)])]

    def elaborate(self, platform):
        m = Module()
        p = self.params
        regs = self.regs
        m.submodules.regs = regs
        m.submodules.activator = act = self.activator
        wiring.connect(m, wiring.flipped(self.cfg), regs.bus)
        self._programmed(m)
        self._layout_report(m)
        m.d.comb += [
            regs.f("INFO", "NUM_VFS").eq(p.num_vfs),
            regs.f("INFO", "GRANULE_LOG2").eq(p.granule_bits),
            regs.f("FB_GRANULES", "COUNT").eq(p.fb_granules),
        ]

        # --- The active table, with derived bounds -----------------------------------------
        # Precomputing each VF's bounds relative to its own base takes the base + offset adder
        # out of the check path: the verdict is a table lookup and compares against the
        # offset, while the adder only forms the address. The bounds follow the activator's
        # table by a cycle, and the activator raises ``valid`` a cycle after base and size,
        # so a region is never judged by half an old and half a new entry.
        gw = p.granule_width
        csa = act.active[0]
        csa_end = Signal(gw + 1)
        m.d.comb += [csa_end.eq(csa.base + csa.size), self.active_csa.eq(csa)]
        active = self.active
        for n in range(1, p.num_fns):
            src = act.active[n]
            m.d.sync += [
                active[n].base.eq(src.base),
                active[n].size.eq(src.size),
                active[n].room.eq(Mux(src.base < p.fb_granules, p.fb_granules - src.base, 0)),
                active[n].csa_lo.eq(Mux(csa.valid, csa.base - src.base, 0)),
                active[n].csa_hi.eq(Mux(csa.valid, csa_end - src.base, 0)),
            ]
            m.d.comb += active[n].valid.eq(src.valid)
        active_csa_lo, active_csa_hi = Signal(gw), Signal(gw + 1)
        m.d.comb += [active_csa_lo.eq(csa.base), active_csa_hi.eq(Mux(csa.valid, csa_end, 0))]

        # Granules of active slices, summed one VF per cycle (TOTAL_FB_CONSUMED).
        index = Signal(range(p.num_fns), init=1)
        running = Signal(gw + 1)
        sizes = Array(act.active[j].size & act.active[j].valid.replicate(gw)
                      for j in range(p.num_fns))
        with m.If(index == p.num_vfs):
            m.d.sync += [index.eq(1), running.eq(0), self.consumed.eq(running + sizes[index])]
        with m.Else():
            m.d.sync += [index.eq(index + 1), running.eq(running + sizes[index])]

        # --- Stage 1: translate and check (combinational), register the result -------------
        acc = self.access.payload
        gb = p.granule_bits
        offset_g = acc.addr[gb:]                 # offset in granules
        offset_s = Cat(offset_g, Const(0, 1)).as_signed()
        # Every VF's bounds are compared with the offset in parallel; the function number
        # then selects a 4-bit verdict, so the long mux is not in series with the compares.
        verdict_layout = data.StructLayout({"enable": 1, "in_size": 1, "in_room": 1,
                                            "in_csa": 1})
        verdicts = [Const(0, verdict_layout.size)] * (1 << p.fn_width)
        for n in range(1, p.num_fns):
            v = Signal(verdict_layout, name=f"verdict_{n}")
            m.d.comb += [
                v.enable.eq(active[n].valid),
                v.in_size.eq(offset_g < active[n].size),
                v.in_room.eq(offset_g < active[n].room),
                v.in_csa.eq((offset_s >= active[n].csa_lo) & (offset_s < active[n].csa_hi)),
            ]
            verdicts[n] = v
        verdict = data.View(verdict_layout, Array(verdicts)[acc.fn])
        phys_g = Signal(gw + 1)
        m.d.comb += phys_g.eq(self._slice_base(acc) + offset_g)
        ctx_in_csa = (offset_g >= active_csa_lo) & (offset_g < active_csa_hi)
        beyond_aperture = self._beyond_aperture(acc)

        kind = Signal(Violation)
        phys = Signal(p.fb_addr_width)
        with m.If(acc.fn > p.num_vfs):
            m.d.comb += kind.eq(Violation.BAD_FUNCTION)
        with m.Elif(acc.origin == FbOrigin.CTX):
            m.d.comb += phys.eq(acc.addr)
            with m.If(~ctx_in_csa):
                m.d.comb += kind.eq(Violation.CTX_OUTSIDE_CSA)
        with m.Elif(~acc.origin.as_value().matches(*FbOrigin)):   # no such origin: refuse rather than guess
            m.d.comb += kind.eq(Violation.OUTSIDE_SLICE)
        with m.Elif(acc.fn == 0):
            m.d.comb += phys.eq(self._pf_address(acc, phys_g))
            with m.If(offset_g >= p.fb_granules):
                m.d.comb += kind.eq(Violation.OUTSIDE_SLICE)
        with m.Else():
            m.d.comb += phys.eq(Cat(acc.addr[:gb], phys_g))
            with m.If(~verdict.enable):
                m.d.comb += kind.eq(Violation.NO_SLICE)
            with m.Elif(~verdict.in_size | ((acc.origin == FbOrigin.HOST) & beyond_aperture)):
                m.d.comb += kind.eq(Violation.OUTSIDE_SLICE)
            with m.Elif(~verdict.in_room):
                m.d.comb += kind.eq(Violation.PAST_FB_END)
            with m.Elif(verdict.in_csa):
                m.d.comb += kind.eq(Violation.CSA)

        res = self.result.payload
        blocked = self._blocked(kind)
        m.d.sync += [
            self.result.valid.eq(self.access.valid),
            res.fn.eq(acc.fn), res.origin.eq(acc.origin), res.write.eq(acc.write),
            res.tag.eq(acc.tag),
            res.addr.eq(Mux(blocked, 0, phys)),
            res.status.eq(Mux(blocked, Status.BLOCKED, Status.OK)),
        ]

        self._violations(m, blocked, kind)
        return m

    def _violations(self, m, blocked, kind):
        """Stage 2: violation bookkeeping, one cycle behind the result (VIOL_COUNT,
        VIOL_LAST / VIOL_ADDR and ``violation_irq``)."""
        p, regs, acc = self.params, self.regs, self.access.payload
        dp_viol = Signal()
        dp_kind = Signal(Violation)
        dp_fn = Signal(p.fn_width)
        dp_addr = Signal(p.fb_addr_width)
        dp_origin = Signal(FbOrigin)
        dp_write = Signal()
        m.d.sync += [dp_viol.eq(self.access.valid & blocked), dp_kind.eq(kind), dp_fn.eq(acc.fn),
                     dp_addr.eq(acc.addr), dp_origin.eq(acc.origin), dp_write.eq(acc.write)]

        # Counters: index fn, or 0 for a number above num_vfs (and for context-mover
        # faults). A datapath, a config and a fault violation in one cycle all count; a
        # clear (write, or the VF's FLR) is applied before them.
        fault = self.ctx_fault
        for n in range(p.num_fns):
            if n == 0:
                dp_hit = dp_viol & ((dp_fn == 0) | (dp_fn > p.num_vfs))
                cfg_hit = regs.blocked & ((regs.blocked_fn == 0) | (regs.blocked_fn > p.num_vfs))
                hits = dp_hit + cfg_hit + fault.valid
            else:
                hits = (dp_viol & (dp_fn == n)) + (regs.blocked & (regs.blocked_fn == n))
            m.d.comb += regs.f("VIOL_COUNT", "COUNT", n).eq(saturating_counter(
                m, p.counter_width, hits, regs.written("VIOL_COUNT", n) | self.flr[n],
                name=f"viol_count_{n}"))

        record_layout = data.StructLayout({"write": 1, "origin": FbOrigin, "kind": Violation,
                                           "fn": p.fn_width, "addr": 64})
        rec, irq = violation_record(m, regs, "VIOL_LAST", record_layout, [
            (dp_viol, {"write": dp_write, "origin": dp_origin, "kind": dp_kind, "fn": dp_fn,
                       "addr": dp_addr}),
            (fault.valid, {"write": fault.payload.write, "origin": FbOrigin.CTX,
                           "kind": Violation.CTX_OUTSIDE_CSA, "fn": 0,
                           "addr": fault.payload.addr}),
            (regs.blocked, {"write": regs.blocked_write, "origin": FbOrigin.HOST,
                            "kind": Violation.NOT_PF, "fn": regs.blocked_fn,
                            "addr": regs.blocked_addr}),
        ], regs.f("CTRL", "IRQ_EN"), name="viol_last")
        m.d.comb += [regs.f("VIOL_LAST", "WRITE").eq(rec.write),
                     regs.f("VIOL_LAST", "ORIGIN").eq(rec.origin),
                     regs.f("VIOL_LAST", "KIND").eq(rec.kind), regs.f("VIOL_LAST", "FN").eq(rec.fn),
                     regs.f("VIOL_ADDR_LO", "ADDR").eq(rec.addr[:32]),
                     regs.f("VIOL_ADDR_HI", "ADDR").eq(rec.addr[32:]),
                     self.violation_irq.eq(irq)]
