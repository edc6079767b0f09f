"""The framebuffer partition unit: base/limit translation and isolation of each VF's FB slice."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .interfaces import (FbAccessSignature, FbOrigin, FbResultSignature, RegBusSignature, Status,
                         Violation)
from .regmap import Access, Field, Register, RegisterFile, RegisterMap

__all__ = ["FbPartition", "SliceLayoutChecker", "fb_partition_regmap", "region_layout"]

#: Offset of the first VF's slice registers; VF n's base is at SLICE_BASE + 2 (n - 1).
_SLICE_OFFSET = 0x40
_COUNT_OFFSET = 0x100


def region_layout(params):
    """An FB region in granules: the CSA (index 0) or a VF slice (index n)."""
    return data.StructLayout({
        "base":   unsigned(params.granule_width),
        "size":   unsigned(params.granule_width),
        "enable": unsigned(1),
    })


def fb_partition_regmap(params):
    """The PF-only configuration registers of the FB partition unit."""
    gw, fw = params.granule_width, params.fn_width
    addr_hi = max(params.fb_addr_width - 32, 1)
    return RegisterMap("fb_partition", 9, [
        Register("INFO", 0x00, (
            Field("NUM_VFS", 0, 7, Access.RO, "number of VFs (parameter num_vfs)"),
            Field("GRANULE_LOG2", 8, 6, Access.RO, "log2 of the slice granule in bytes"),
        ), "What this instance was built with."),
        Register("FB_GRANULES", 0x01, (
            Field("COUNT", 0, gw, Access.RO, "FB size in granules"),
        ), "Total FB."),
        Register("CTRL", 0x02, (
            Field("IRQ_EN", 0, 1, Access.RW, "raise `violation_irq` while VIOL_LAST.VALID is set"),
        ), "Control."),
        Register("LAYOUT_STATUS", 0x03, (
            Field("BUSY", 0, 1, Access.RO, "the layout check is running (results below are stale)"),
            Field("OVERLAP", 1, 1, Access.RO, "two enabled regions (slices or CSA) overlap"),
            Field("EMPTY", 2, 1, Access.RO, "an enabled slice has size 0"),
            Field("PAST_END", 3, 1, Access.RO, "a region runs past the end of FB"),
            Field("FN_A", 8, 7, Access.RO, "first offending region (0 = CSA, n = VF n)"),
            Field("FN_B", 16, 7, Access.RO, "the region FN_A overlaps, if OVERLAP"),
        ), "Result of the layout check, rerun after every slice or CSA write "
           "((N+1)(N+2)/2 cycles)."),
        Register("CSA_BASE", 0x04, (
            Field("BASE", 0, gw, Access.RW, "context save area start, granules"),
        ), "Context save area: reachable by the PF and the save/restore engine only."),
        Register("CSA_SIZE", 0x05, (
            Field("SIZE", 0, gw, Access.RW, "context save area size, granules (0 = none)"),
        ), "Context save area size."),
        Register("VIOL_LAST", 0x08, (
            Field("VALID", 0, 1, Access.W1C, "a violation was recorded; write 1 to clear"),
            Field("WRITE", 1, 1, Access.RO, "it was a write"),
            Field("ORIGIN", 2, 2, Access.RO, "FbOrigin: 0 host, 1 engine, 2 save/restore"),
            Field("KIND", 4, 3, Access.RO, "Violation code"),
            Field("FN", 8, 7, Access.RO, "requesting function"),
        ), "The most recent violation (later ones overwrite it)."),
        Register("VIOL_ADDR_LO", 0x09, (
            Field("ADDR", 0, 32, Access.RO, "its address as requested, bits 31:0"),
        ), "Address of the most recent violation (for NOT_PF: the register offset)."),
        Register("VIOL_ADDR_HI", 0x0A, (
            Field("ADDR", 0, addr_hi, Access.RO, "its address as requested, upper bits"),
        ), "Upper address bits of the most recent violation."),
        Register("SLICE_BASE", _SLICE_OFFSET, (
            Field("BASE", 0, gw, Access.RW, "slice start, granules"),
        ), "VF n's FB slice start.", count=params.num_vfs, first=1, stride=2),
        Register("SLICE_SIZE", _SLICE_OFFSET + 1, (
            Field("SIZE", 0, gw, Access.RW, "slice size, granules"),
            Field("ENABLE", 31, 1, Access.RW, "the slice exists; a disabled VF reaches no FB"),
        ), "VF n's FB slice size.", count=params.num_vfs, first=1, stride=2),
        Register("VIOL_COUNT", _COUNT_OFFSET, (
            Field("COUNT", 0, params.counter_width, Access.RC,
                  "blocked accesses (saturating); any write clears"),
        ), "Violations per function; index 0 counts PF accesses past the end of FB and "
           "requests with a function number above num_vfs.", count=params.num_fns),
    ])


def _active_layout(params):
    gw = params.granule_width
    return data.StructLayout({
        "base": unsigned(gw), "size": unsigned(gw), "enable": unsigned(1),
        "room": unsigned(gw),          # granules from base to the end of FB (0 if past it)
        "csa_lo": signed(gw + 2),      # CSA start - base
        "csa_hi": signed(gw + 2),      # CSA end - base
    })


class SliceLayoutChecker(wiring.Component):
    """Checks the programmed FB layout: overlaps, empty slices, regions past the end of FB.

    Sweeps every pair of regions (index 0 = CSA, n = VF n's slice) one pair per cycle,
    (N+1)(N+2)/2 cycles plus one of pipeline, and publishes the result when the sweep ends. ``start``
    restarts the sweep from the beginning (the PF wrote the layout). The sweep also runs
    once after reset. A pair is compared only when both regions are enabled.

    Attributes
    ----------
    regions : ArrayLayout(region, N+1), in
    start : Signal, in
    busy, overlap, empty, past_end : Signal, out
    fn_a, fn_b : Signal, out
        First offending region, and the one it overlaps.
    """

    def __init__(self, params):
        self.params = params
        n = params.num_fns
        super().__init__({
            "regions": In(data.ArrayLayout(region_layout(params), n)),
            "start": In(1),
            "busy": Out(1, init=1),
            "overlap": Out(1), "empty": Out(1), "past_end": Out(1),
            "fn_a": Out(7), "fn_b": Out(7),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        last = p.num_fns - 1
        gw = p.granule_width

        # Stage 1: walk (i, j) and fetch both regions with their ends.
        i = Signal(range(p.num_fns))
        j = Signal(range(p.num_fns))
        walking = Signal(init=1)
        a = Signal(region_layout(p))
        b = Signal(region_layout(p))
        a_end = Signal(gw + 1)
        b_end = Signal(gw + 1)
        same = Signal()
        a_is_csa = Signal()
        ai = Signal(7)
        bj = Signal(7)
        fetched = Signal()
        final = Signal()
        m.d.sync += [
            a.eq(self.regions[i]), b.eq(self.regions[j]),
            a_end.eq(self.regions[i].base + self.regions[i].size),
            b_end.eq(self.regions[j].base + self.regions[j].size),
            same.eq(i == j), a_is_csa.eq(i == 0), ai.eq(i), bj.eq(j),
            fetched.eq(walking & ~self.start), final.eq((i == last) & (j == last)),
        ]
        with m.If(self.start):
            m.d.sync += [i.eq(0), j.eq(0), walking.eq(1)]
        with m.Elif(walking):
            with m.If(j == last):
                with m.If(i == last):
                    m.d.sync += walking.eq(0)
                with m.Else():
                    m.d.sync += [i.eq(i + 1), j.eq(i + 1)]
            with m.Else():
                m.d.sync += j.eq(j + 1)

        # Stage 2: judge the fetched pair and accumulate.
        overlap = Signal()
        empty = Signal()
        past_end = Signal()
        fn_a = Signal(7)
        fn_b = Signal(7)
        both = a.enable & b.enable & (a.size != 0) & (b.size != 0)
        pair_overlap = ~same & both & (a.base < b_end) & (b.base < a_end)
        # Region 0 (the CSA) is "enabled" by a non-zero size; an empty CSA is not an error.
        self_empty = same & ~a_is_csa & a.enable & (a.size == 0)
        self_past = same & a.enable & (a_end > p.fb_granules)
        bad = Signal()
        first_bad = Signal()
        m.d.comb += [bad.eq(pair_overlap | self_empty | self_past),
                     first_bad.eq(bad & ~(overlap | empty | past_end))]

        with m.If(self.start):
            m.d.sync += [self.busy.eq(1), overlap.eq(0), empty.eq(0), past_end.eq(0),
                         fn_a.eq(0), fn_b.eq(0)]
        with m.Elif(fetched):
            m.d.sync += [overlap.eq(overlap | pair_overlap), empty.eq(empty | self_empty),
                         past_end.eq(past_end | self_past)]
            with m.If(first_bad):
                m.d.sync += [fn_a.eq(ai), fn_b.eq(Mux(pair_overlap, bj, 0))]
            with m.If(final):
                m.d.sync += [
                    self.busy.eq(0),
                    self.overlap.eq(overlap | pair_overlap),
                    self.empty.eq(empty | self_empty),
                    self.past_end.eq(past_end | self_past),
                    self.fn_a.eq(Mux(first_bad, ai, fn_a)),
                    self.fn_b.eq(Mux(first_bad, Mux(pair_overlap, bj, 0), fn_b)),
                ]
        return m


class FbPartition(wiring.Component):
    """Base/limit FB partition unit: translates and checks every FB access.

    Function 0 (the PF) sees all of FB, addresses absolute. VF ``n`` sees only its slice
    ``[base_n, base_n + size_n)`` (granules, programmed by the PF): a HOST access (through the
    VF's FB BAR) or an ENGINE access (GPU engine on behalf of the VF) carries an offset into
    the slice, which becomes ``base_n * granule + offset``. A CTX access (the save/restore
    engine) carries an absolute address and reaches only the context save area (CSA).

    Refuses, answering BLOCKED with address 0 (see :class:`~rtl.interfaces.Violation`):
    a VF offset at or beyond its slice size (HOST: also at or beyond the VF FB aperture);
    any access of a VF whose slice is disabled; a VF access whose translated address falls in
    the CSA or past the end of FB (even if the PF misprogrammed the slice); a PF access past
    the end of FB; a CTX access outside the CSA; a function number above ``num_vfs``;
    any configuration access from a function other than the PF.
    Each refusal increments that function's violation counter (index 0 for the PF and for
    bad function numbers) two cycles after the access and records (function, address, kind,
    origin, write) as the last violation; ``violation_irq`` is high while a recorded
    violation is unacknowledged and CTRL.IRQ_EN is set.

    Latency: one access accepted every cycle; its result appears exactly **1 cycle** later.
    A layout write (slice or CSA) applies to accesses presented 2 or more cycles after the
    write request; earlier ones are judged by the previous layout, never by a mix.
    Configuration port: one request per cycle, answered 1 cycle later (see
    :func:`fb_partition_regmap`). Programming overlapping or empty slices, or a region past
    the end of FB, is accepted but reported in LAYOUT_STATUS.

    Attributes
    ----------
    access : FbAccess stream, in
    result : FbResult stream, out
    cfg : RegBus, in
        PF-only configuration port.
    violation_irq : Signal, out
    """

    #: Cycles from an access to its result.
    LATENCY = 1

    def __init__(self, params):
        self.params = params
        self.regmap = fb_partition_regmap(params)
        self.regs = RegisterFile(params, self.regmap, pf_only=True)
        gw = params.granule_width
        #: The layout accesses are judged by (see elaborate); index = function number.
        self.active = [Signal(_active_layout(params), name=f"active_{n}")
                       for n in range(1 << params.fn_width)]
        self.active_csa = (Signal(gw, name="active_csa_lo"), Signal(gw + 1, name="active_csa_hi"))
        super().__init__({
            "access": In(FbAccessSignature(params)),
            "result": Out(FbResultSignature(params)),
            "cfg": In(RegBusSignature(params, self.regmap.addr_width)),
            "violation_irq": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        regs = self.regs
        m.submodules.regs = regs
        wiring.connect(m, wiring.flipped(self.cfg), regs.bus)
        m.submodules.checker = checker = SliceLayoutChecker(p)

        # --- Configuration state, as the register file holds it --------------------------
        csa_base = regs.f("CSA_BASE", "BASE")
        csa_size = regs.f("CSA_SIZE", "SIZE")
        m.d.comb += checker.regions[0].eq(Cat(csa_base, csa_size, csa_size != 0))
        for n in range(1, p.num_fns):
            m.d.comb += checker.regions[n].eq(Cat(regs.f("SLICE_BASE", "BASE", n),
                                                  regs.f("SLICE_SIZE", "SIZE", n),
                                                  regs.f("SLICE_SIZE", "ENABLE", n)))
        layout_writes = [regs.written("CSA_BASE"), regs.written("CSA_SIZE")] + [
            regs.written(name, n) for name in ("SLICE_BASE", "SLICE_SIZE")
            for n in range(1, p.num_fns)]
        m.d.comb += checker.start.eq(Cat(*layout_writes).any())
        m.d.comb += [
            regs.f("INFO", "NUM_VFS").eq(p.num_vfs),
            regs.f("INFO", "GRANULE_LOG2").eq(p.granule_bits),
            regs.f("FB_GRANULES", "COUNT").eq(p.fb_granules),
            # A read in the cycle the restart is pending must already say BUSY.
            regs.f("LAYOUT_STATUS", "BUSY").eq(checker.busy | checker.start),
            regs.f("LAYOUT_STATUS", "OVERLAP").eq(checker.overlap),
            regs.f("LAYOUT_STATUS", "EMPTY").eq(checker.empty),
            regs.f("LAYOUT_STATUS", "PAST_END").eq(checker.past_end),
            regs.f("LAYOUT_STATUS", "FN_A").eq(checker.fn_a),
            regs.f("LAYOUT_STATUS", "FN_B").eq(checker.fn_b),
        ]

        # --- The active table: the programmed layout, one cycle later, with derived bounds --
        # Precomputing each VF's bounds relative to its own base takes the base + offset adder
        # out of the check path: the verdict is a table lookup and compares against the
        # offset, while the adder only forms the address. Everything an access is judged by
        # comes from this one registered copy, so a layout write can never be half-seen.
        gw = p.granule_width
        csa_end = Signal(gw + 1)
        m.d.comb += csa_end.eq(csa_base + csa_size)
        active = self.active
        for n in range(1, p.num_fns):
            base = regs.f("SLICE_BASE", "BASE", n)
            m.d.sync += [
                active[n].base.eq(base),
                active[n].size.eq(regs.f("SLICE_SIZE", "SIZE", n)),
                active[n].enable.eq(regs.f("SLICE_SIZE", "ENABLE", n)),
                active[n].room.eq(Mux(base < p.fb_granules, p.fb_granules - base, 0)),
                active[n].csa_lo.eq(csa_base - base),
                active[n].csa_hi.eq(csa_end - base),
            ]
        active_csa_lo, active_csa_hi = self.active_csa
        m.d.sync += [active_csa_lo.eq(csa_base), active_csa_hi.eq(csa_end)]

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
                v.enable.eq(active[n].enable),
                v.in_size.eq(offset_g < active[n].size),
                v.in_room.eq(offset_g < active[n].room),
                v.in_csa.eq((offset_s >= active[n].csa_lo) & (offset_s < active[n].csa_hi)),
            ]
            verdicts[n] = v
        verdict = data.View(verdict_layout, Array(verdicts)[acc.fn])
        phys_g = Signal(gw + 1)
        m.d.comb += phys_g.eq(Array(a.base for a in active)[acc.fn] + offset_g)
        ctx_in_csa = (offset_g >= active_csa_lo) & (offset_g < active_csa_hi)
        aperture_bits = p.vf_fb_aperture.bit_length() - 1
        beyond_aperture = (acc.addr[aperture_bits:] != 0) if aperture_bits < p.fb_addr_width \
            else Const(0)

        kind = Signal(Violation)
        phys = Signal(p.fb_addr_width)
        with m.If(acc.fn > p.num_vfs):
            m.d.comb += kind.eq(Violation.BAD_FUNCTION)
        with m.Elif(acc.origin == FbOrigin.CTX):
            m.d.comb += phys.eq(acc.addr)
            with m.If(~ctx_in_csa):
                m.d.comb += kind.eq(Violation.CTX_OUTSIDE_CSA)
        with m.Elif(acc.origin.as_value() == 3):   # no such origin: refuse rather than guess
            m.d.comb += kind.eq(Violation.OUTSIDE_SLICE)
        with m.Elif(acc.fn == 0):
            m.d.comb += phys.eq(acc.addr)
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
        blocked = kind != Violation.NONE
        m.d.sync += [
            self.result.valid.eq(self.access.valid),
            res.fn.eq(acc.fn), res.origin.eq(acc.origin), res.write.eq(acc.write),
            res.tag.eq(acc.tag),
            res.addr.eq(Mux(blocked, 0, phys)),
            res.status.eq(Mux(blocked, Status.BLOCKED, Status.OK)),
        ]

        # --- Stage 2: violation bookkeeping, one cycle behind the result ------------------
        dp_viol = Signal()
        dp_kind = Signal(Violation)
        dp_fn = Signal(p.fn_width)
        dp_addr = Signal(p.fb_addr_width)
        dp_origin = Signal(FbOrigin)
        dp_write = Signal()
        m.d.sync += [dp_viol.eq(self.access.valid & blocked), dp_kind.eq(kind), dp_fn.eq(acc.fn),
                     dp_addr.eq(acc.addr), dp_origin.eq(acc.origin), dp_write.eq(acc.write)]

        # Counters: index fn, or 0 for a number above num_vfs. A datapath and a config
        # violation in the same cycle both count; a clear write is applied before them.
        for n in range(p.num_fns):
            count = regs.f("VIOL_COUNT", "COUNT", n)
            counter = Signal(p.counter_width, name=f"viol_count_{n}")
            m.d.comb += count.eq(counter)
            if n == 0:
                dp_hit = dp_viol & ((dp_fn == 0) | (dp_fn > p.num_vfs))
                cfg_hit = regs.blocked & ((regs.blocked_fn == 0) | (regs.blocked_fn > p.num_vfs))
            else:
                dp_hit = dp_viol & (dp_fn == n)
                cfg_hit = regs.blocked & (regs.blocked_fn == n)
            inc = Signal(2, name=f"viol_inc_{n}")
            m.d.comb += inc.eq(dp_hit + cfg_hit)
            base = Mux(regs.written("VIOL_COUNT", n), 0, counter)
            total = Signal(p.counter_width + 1, name=f"viol_total_{n}")
            m.d.comb += total.eq(base + inc)
            limit = (1 << p.counter_width) - 1
            m.d.sync += counter.eq(Mux(total > limit, limit, total))

        last_write = regs.f("VIOL_LAST", "WRITE")
        last_origin = regs.f("VIOL_LAST", "ORIGIN")
        last_kind = regs.f("VIOL_LAST", "KIND")
        last_fn = regs.f("VIOL_LAST", "FN")
        rec_write = Signal()
        rec_origin = Signal(2)
        rec_kind = Signal(3)
        rec_fn = Signal(p.fn_width)
        rec_addr = Signal(64)
        m.d.comb += [last_write.eq(rec_write), last_origin.eq(rec_origin),
                     last_kind.eq(rec_kind), last_fn.eq(rec_fn),
                     regs.f("VIOL_ADDR_LO", "ADDR").eq(rec_addr[:32]),
                     regs.f("VIOL_ADDR_HI", "ADDR").eq(rec_addr[32:])]
        with m.If(dp_viol):
            m.d.sync += [rec_write.eq(dp_write), rec_origin.eq(dp_origin), rec_kind.eq(dp_kind),
                         rec_fn.eq(dp_fn), rec_addr.eq(dp_addr)]
            m.d.comb += regs.set_("VIOL_LAST", "VALID").eq(1)
        with m.Elif(regs.blocked):
            m.d.sync += [rec_write.eq(regs.blocked_write), rec_origin.eq(0), rec_kind.eq(Violation.NOT_PF),
                         rec_fn.eq(regs.blocked_fn), rec_addr.eq(regs.blocked_addr)]
            m.d.comb += regs.set_("VIOL_LAST", "VALID").eq(1)
        m.d.comb += self.violation_irq.eq(regs.f("VIOL_LAST", "VALID") & regs.f("CTRL", "IRQ_EN"))
        return m
