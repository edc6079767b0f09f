"""The whole GPU: every block joined behind one host port, one FB memory port and one
command-processor port."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.common.counters import saturating_counter
from rtl.doorbell.arbiter import DoorbellArbiter, doorbell_event_layout
from rtl.memory.fb_partition import FbPartition
from rtl.memory.fb_port import HOST_TAG_WIDTH, FbPort
from rtl.world_switch.gpu_iov import GpuIov
from rtl.common.interfaces import FbMemSignature, FbOrigin, Status, ValidSignature
from rtl.mmio.decode import MmioDecode
from rtl.params import KiB, ParamError, size_text
from rtl.common.regmap import Access, Field, Register, RegisterFile, RegisterMap
from rtl.pcie.routing import ADDR_WIDTH, Router

__all__ = ["SriovGpu", "HostKind", "host_request_layout", "host_response_layout",
           "HostPortSignature", "gpu_regmap", "REG_WINDOWS", "REG_WINDOW_SIZE", "HOST_CREDITS",
           "irq_layout"]

#: Requests the host port holds at once (accepted, not yet answered).
HOST_CREDITS = 16
#: The PF's register BAR holds four windows, one per register block; a VF's (64 KiB) holds
#: only the first, the register decode.
REG_WINDOW_SIZE = 64 * KiB
REG_WINDOWS = ("mmio", "fb_partition", "world_switch", "gpu")


class HostKind(enum.Enum, shape=1):
    CONFIG = 0   #: configuration request, to the function with Routing ID ``rid``
    MEMORY = 1   #: memory request, to whichever function's BAR holds ``addr``


def host_request_layout(params):
    """A host request: a configuration access (by Routing ID, dword ``addr`` >> 2) or a
    32-bit memory access (by address) made by function ``fn``'s driver: the PF's (the
    hypervisor) or VF n's (the VM it is assigned to). ``tag`` comes back with the answer."""
    return data.StructLayout({
        "kind":  HostKind,
        "fn":    unsigned(params.fn_width),
        "rid":   unsigned(16),
        "addr":  unsigned(ADDR_WIDTH),
        "write": unsigned(1),
        "data":  unsigned(32),
        "be":    unsigned(4),
        "tag":   unsigned(HOST_TAG_WIDTH),
    })


def host_response_layout():
    return data.StructLayout({"tag": unsigned(HOST_TAG_WIDTH), "data": unsigned(32),
                              "status": Status})


def HostPortSignature(params):
    """The host port, initiator side: valid/ready requests; every request is answered once on
    ``resp`` (no back-pressure), not necessarily in order: match by ``tag``."""
    return wiring.Signature({
        "req":  Out(stream.Signature(host_request_layout(params))),
        "resp": In(ValidSignature(host_response_layout())),
    })


def irq_layout():
    return data.StructLayout({"pf_mailbox": 1, "reg_violation": 1, "fb_violation": 1,
                              "hang": 1, "layout": 1})


def gpu_regmap(params):
    """The PF-only registers of the top: doorbell weights and the host port's refusals."""
    cw = params.counter_width
    return RegisterMap("gpu", 9, [
        Register("INFO", 0x00, (
            Field("NUM_VFS", 0, 7, Access.RO, "number of VFs (parameter num_vfs)"),
            Field("CREDITS", 8, 8, Access.RO, "host requests the port holds at once"),
        ), "What this instance was built with."),
        Register("HOST_UR", 0x01, (
            Field("COUNT", 0, cw, Access.RC, "host requests answered UR (saturating); "
                  "any write clears"),
        ), "Host requests nothing answers: no function at that Routing ID or address, a read "
           "of a doorbell, an offset past a register window."),
        Register("DB_UR", 0x02, (
            Field("COUNT", 0, 32, Access.RO, "doorbell writes refused by the arbiter"),
        ), "Doorbell writes to an offset past the doorbells or to a function that is not live."),
        Register("SCRUB_LAST", 0x03, (
            Field("CYCLES", 0, 32, Access.RO, "cycles of the last zero fill, request to done"),
        ), "FB the PF hands to a region is zero-filled before the region is activated: the "
           "last fill's cycles (fence, the granule lookups and the dirty granules' beats)."),
        Register("SCRUB_GRANULES", 0x04, (
            Field("COUNT", 0, 32, Access.RO, "dirty granules zero-filled since reset"),
        ), "Granules zero-filled."),
        Register("DB_WEIGHT", 0x40, (
            Field("WEIGHT", 0, DoorbellArbiter.WEIGHT_WIDTH, Access.RW,
                  "doorbells function n sends in a row (0 counts as 1)", reset=1),
        ), "Doorbell arbiter weight of function n.", count=params.num_fns),
        Register("XFN_COUNT", 0x100, (
            Field("COUNT", 0, cw, Access.RC, "blocked (saturating); any write clears"),
        ), "Memory requests of VF n's driver to another function's BAR (another VF's doorbells, "
           "registers or FB, or the PF's), blocked.", count=params.num_vfs, first=1),
    ])


class _Dest(enum.Enum, shape=3):
    """Where a host request went, so that its answer is taken from there."""
    LOCAL = 0        # answered by the top itself (UR / BLOCKED)
    CONFIG = 1
    MMIO = 2
    FB_REGS = 3
    WS_REGS = 4
    GPU_REGS = 5
    DOORBELL = 6
    FB = 7


class SriovGpu(wiring.Component):
    """The SR-IOV GPU: configuration space with SR-IOV and GPU-IOV, routing, register decode
    and mailboxes, FB partition, doorbell arbiter and world switch, behind one host port.

    Host port (``host``): one request accepted per cycle while ``req.ready``; each is routed
    (configuration by Routing ID, memory by BAR address, :class:`~rtl.pcie.routing.Router`) and
    answered exactly once on ``resp`` with its ``tag``:

    - configuration: the function's configuration space;
    - register BAR (BAR5): the register decode; the PF's BAR also holds the FB partition's,
      the world switch's and the top's own PF registers (:data:`REG_WINDOWS`, 64 KiB each);
    - doorbell BAR (BAR2): writes ring the doorbell arbiter; reads answer UR;
    - FB BAR (BAR0): checked and translated by the FB partition, then read or written
      (one 32-bit lane of a beat) on the FB memory port.

    Refusals: nothing at the Routing ID or address, or a doorbell read: UR (HOST_UR counts
    them). A VF driver's memory request that lands in another function's BAR: BLOCKED
    (XFN_COUNT, per VF: a guest ringing another VF's doorbells). The blocks' own refusals
    (FB slice, PF-only registers, the shared registers of a VF not owning the GPU, bad
    doorbell offsets) answer as those blocks do and are counted there.

    Latency (FB memory latency L, nothing queued): a request presented and accepted in cycle
    t is answered in cycle t + 3 (route, dispatch, the block; the answer is a register
    output) if it is a configuration, register or doorbell request, or a refused or written
    FB access; an FB read in cycle t + 7 + L (the partition check, the queue, the memory).
    At most :data:`HOST_CREDITS` requests hold a credit at once: each from acceptance to its
    answer, and an FB write until it has left for FB (it is answered before), so the FB
    queue never overflows however long the world switch keeps the port. FB read data that
    loses the answer port to a fixed-latency answer drops ``req.ready`` until it is out, so
    every read is answered at most three cycles after its data returns, whatever the host
    sends meanwhile.

    The FB layout is the GPU-IOV capability's: VFn_FB_SIZE / OFFSET (both 0: no slice) and
    CNTXT (SIZE 0 or LOC = 1: no FB CSA), in ``iov_fb_unit`` units, go to the FB partition
    unit at their full width, which activates each region only if it is safe (see
    :class:`~rtl.memory.fb_partition.FbPartition`) after the FB it gains is zero-filled
    (:class:`~rtl.memory.fb_port.Scrubber`); its active CSA is the world switch's. TOTAL_FB_CONSUMED
    is the FB of active slices.

    The FB memory port (:class:`~rtl.memory.fb_port.FbPort`) belongs to the world switch's context
    movers during their phases and to host FB accesses (and the scrubber) otherwise; a mover
    access outside the active CSA is stopped there. The world switch's owner is the only
    function whose doorbells reach ``cp``; its engine reports ``engine_busy``. A VF's FLR
    (Initiate FLR in its Device Control, or VF Enable cleared) resets it in the world switch,
    the doorbell arbiter and the register decode, and clears its violation counters.

    Attributes
    ----------
    host : HostPort, in
    pf_rid : in
        The PF's Routing ID (bus, device, function 0) as the host enumerated it.
    fb : FbMem, out
    cp : stream of doorbell events, out; ``engine_busy`` in, ``engine_stop`` out
    state_wr, state_rd, state_rdata : the engine-state memory, for the engine model
    irq : {pf_mailbox, reg_violation, fb_violation, hang, layout}, out; ``vf_irq[n]``: VF n's
        mailbox
    owner, owner_valid, seq_state : monitors (who owns the GPU, what the world switch does)
    """

    #: Answers take 3 cycles, FB reads 7 + L, world switches their phases: see above.
    LATENCY = None
    #: The FB partition unit the top builds (a class attribute so that the whole-GPU proof
    #: can plant a bug in it: tests/formal/gpu_isolation.py).
    FB_PARTITION = FbPartition

    def __init__(self, params):
        if params.pf_mmio_size < len(REG_WINDOWS) * REG_WINDOW_SIZE:
            raise ParamError(f"pf_mmio_size={params.pf_mmio_size} must be at least "
                             f"{len(REG_WINDOWS) * REG_WINDOW_SIZE} for the whole GPU "
                             f"(one 64 KiB register window per block)")
        self.params = params
        self.iov = GpuIov(params)
        self.router = Router(params)
        self.mmio = MmioDecode(params)
        self.fbp = self.FB_PARTITION(params, external_layout=True)
        self.fb_port = FbPort(params, HOST_CREDITS)
        self.doorbells = DoorbellArbiter(params)
        self.regmap = gpu_regmap(params)
        self.regs = RegisterFile(params, self.regmap, pf_only=True)
        ws_members = self.iov.signature.members
        super().__init__({
            "host": In(HostPortSignature(params)),
            "pf_rid": In(16),
            "fb": Out(FbMemSignature(params)),
            "cp": Out(stream.Signature(doorbell_event_layout(params))),
            "engine_busy": In(1),
            "engine_stop": Out(1),
            "state_wr": ws_members["state_wr"],
            "state_rd": ws_members["state_rd"],
            "state_rdata": ws_members["state_rdata"],
            "irq": Out(irq_layout()),
            "vf_irq": Out(params.num_fns),
            "owner": ws_members["owner"],
            "owner_valid": ws_members["owner_valid"],
            "seq_state": ws_members["seq_state"],
        })

    def _layout(self, m):
        """The capability's FB fields, in granules at full width, to the FB partition unit;
        what it made active back to the capability and the world switch."""
        p, iov, fbp = self.params, self.iov, self.fbp
        shift = p.iov_unit_shift
        cntxt = iov.cntxt
        m.d.comb += [fbp.layout[0].base.eq(cntxt.offset << shift),
                     fbp.layout[0].size.eq(cntxt.size << shift),
                     # LOC = 1 asks for a CSA in system memory: not modelled, so none in FB.
                     fbp.layout[0].valid.eq((cntxt.size != 0) & ~cntxt.loc)]
        for n in range(1, p.num_fns):
            vf_fb = iov.vf_fb[n - 1]
            m.d.comb += [fbp.layout[n].base.eq(vf_fb.offset << shift),
                         fbp.layout[n].size.eq((vf_fb.size + 1) << shift),
                         fbp.layout[n].valid.eq(vf_fb.as_value() != 0)]
        m.d.comb += [iov.fb_consumed.eq(fbp.consumed >> shift), iov.csa.eq(fbp.active_csa)]

    def elaborate(self, platform):
        m = Module()
        p = self.params
        iov, router, mmio, fbp, db, regs, port = (self.iov, self.router, self.mmio, self.fbp,
                                                  self.doorbells, self.regs, self.fb_port)
        m.submodules.gpu_iov = iov
        m.submodules.router = router
        m.submodules.mmio = mmio
        m.submodules.fb_partition = fbp
        m.submodules.fb_port = port
        m.submodules.doorbells = db
        m.submodules.regs = regs

        # --- Blocks wired to each other ---------------------------------------------------
        serve = Signal(p.num_fns)
        m.d.comb += [
            router.pf_rid.eq(self.pf_rid),
            router.pf_bars.eq(iov.pf_bars), router.vf_bars.eq(iov.vf_bars),
            router.num_vfs.eq(iov.num_vfs), router.vf_enable.eq(iov.vf_enable),
            router.vf_mse.eq(iov.vf_mse), router.pf_mse.eq(iov.pf_mse),
            mmio.owner.eq(iov.owner), mmio.owner_valid.eq(iov.owner_valid),
            iov.shared_in.eq(mmio.shared),
            mmio.shared_load.valid.eq(iov.shared_load.valid),
            mmio.shared_load.payload.eq(iov.shared_load.payload),
            # World switching: only the owner's doorbells go to the command processor.
            serve.eq(Mux(iov.owner_valid, Const(1, p.num_fns) << iov.owner, 0)),
            db.serve.eq(serve), db.num_vfs.eq(iov.num_vfs), db.vf_enable.eq(iov.vf_enable),
            db.flr.eq(iov.flr), fbp.flr.eq(iov.flr), mmio.flr.eq(iov.flr),
            iov.has_work.eq(db.has_work),
            iov.engine_busy.eq(self.engine_busy), self.engine_stop.eq(iov.engine_stop),
            iov.state_wr.valid.eq(self.state_wr.valid),
            iov.state_wr.payload.eq(self.state_wr.payload),
            iov.state_rd.valid.eq(self.state_rd.valid),
            iov.state_rd.payload.eq(self.state_rd.payload),
            self.state_rdata.eq(iov.state_rdata),
            self.owner.eq(iov.owner), self.owner_valid.eq(iov.owner_valid),
            self.seq_state.eq(iov.seq_state),
            self.irq.pf_mailbox.eq(mmio.pf_mailbox_irq),
            self.irq.reg_violation.eq(mmio.violation_irq),
            self.irq.fb_violation.eq(fbp.violation_irq),
            self.irq.hang.eq(iov.hang_irq),
            self.irq.layout.eq(fbp.layout_irq),
            self.vf_irq.eq(mmio.vf_mailbox_irq),
        ]
        wiring.connect(m, db.cp, wiring.flipped(self.cp))
        for n in range(p.num_fns):
            m.d.comb += db.weight[n].eq(regs.f("DB_WEIGHT", "WEIGHT", n))
        m.d.comb += [regs.f("INFO", "NUM_VFS").eq(p.num_vfs),
                     regs.f("INFO", "CREDITS").eq(HOST_CREDITS),
                     regs.f("DB_UR", "COUNT").eq(db.ur_count)]
        self._layout(m)

        # --- The FB port: context movers, host FB accesses, the scrubber ---------------------
        wiring.connect(m, iov.mem, port.live)
        wiring.connect(m, iov.mem_load, port.shadow)
        wiring.connect(m, fbp.scrub, port.scrub)
        wiring.connect(m, port.fb, wiring.flipped(self.fb))
        m.d.comb += [port.seq.eq(iov.seq_state), port.csa.eq(fbp.active_csa),
                     iov.ctx_fault.eq(port.ctx_fault.valid),
                     fbp.ctx_fault.valid.eq(port.ctx_fault.valid),
                     fbp.ctx_fault.payload.eq(port.ctx_fault.payload),
                     regs.f("SCRUB_LAST", "CYCLES").eq(port.scrub_cycles),
                     regs.f("SCRUB_GRANULES", "COUNT").eq(port.scrub_granules)]

        # --- Stage A: accept and route ---------------------------------------------------
        req, resp = self.host.req, self.host.resp
        accept = Signal()
        outstanding = Signal(range(HOST_CREDITS + 1))
        b = Signal(host_request_layout(p))          # the request being routed
        b_valid = Signal()
        # FB read data that lost the answer port to a fixed-latency answer stops new
        # requests until it is out: with at most three requests in the pipeline behind it,
        # no flood of register or configuration requests can hold a read answer back for
        # more than three cycles (bounded response for every accepted request).
        read_waits = Signal()
        m.d.comb += [
            req.ready.eq((outstanding < HOST_CREDITS) & ~read_waits),
            accept.eq(req.valid & req.ready),
            router.cfg_in.valid.eq(accept & (req.payload.kind == HostKind.CONFIG)),
            router.cfg_in.payload.rid.eq(req.payload.rid),
            router.mem_in.valid.eq(accept & (req.payload.kind == HostKind.MEMORY)),
            router.mem_in.payload.addr.eq(req.payload.addr),
        ]
        m.d.sync += [b_valid.eq(accept), b.eq(req.payload)]

        # --- Stage B: dispatch to the block that answers ----------------------------------
        rc, rm = router.cfg_out.payload, router.mem_out.payload
        dest = Signal(_Dest)
        local_status = Signal(Status)
        xfn = Signal()                              # a VF driver outside its own BARs
        window = rm.offset[16:18]
        reg_addr = rm.offset[2:16]
        dword = b.addr[2:12]
        with m.If(b.kind == HostKind.CONFIG):
            with m.If(rc.status == Status.OK):
                m.d.comb += dest.eq(_Dest.CONFIG)
            with m.Else():
                m.d.comb += local_status.eq(Status.UR)
        with m.Elif(rm.status != Status.OK):
            m.d.comb += local_status.eq(rm.status)
        with m.Elif((b.fn != 0) & (b.fn != rm.fn)):
            m.d.comb += [local_status.eq(Status.BLOCKED), xfn.eq(b_valid)]
        with m.Elif(rm.bar == 5):
            for k, (d, rf) in enumerate(((_Dest.MMIO, mmio.bus), (_Dest.FB_REGS, fbp.cfg),
                                          (_Dest.WS_REGS, iov.ws_cfg), (_Dest.GPU_REGS, regs.bus))):
                width = len(rf.req.payload.addr)
                with m.If((window == k) & (reg_addr[width:] == 0)):
                    m.d.comb += dest.eq(d)
            with m.If(dest == _Dest.LOCAL):
                m.d.comb += local_status.eq(Status.UR)
        with m.Elif(rm.bar == 2):
            with m.If(b.write):
                m.d.comb += dest.eq(_Dest.DOORBELL)
            with m.Else():
                m.d.comb += local_status.eq(Status.UR)
        with m.Else():
            m.d.comb += dest.eq(_Dest.FB)

        reg_buses = {_Dest.CONFIG: iov.cfg, _Dest.MMIO: mmio.bus, _Dest.FB_REGS: fbp.cfg,
                     _Dest.WS_REGS: iov.ws_cfg, _Dest.GPU_REGS: regs.bus}
        # Every block takes its request from a flop: the dispatch decode in front of a
        # block's own decode (the partition's table lookup, a register file's) set the clock.
        for d, bus in reg_buses.items():
            pl = bus.req.payload
            fn = rc.fn if d == _Dest.CONFIG else rm.fn
            addr = dword if d == _Dest.CONFIG else reg_addr
            m.d.sync += [bus.req.valid.eq(b_valid & (dest == d)), pl.fn.eq(fn), pl.addr.eq(addr),
                         pl.write.eq(b.write), pl.data.eq(b.data), pl.be.eq(b.be)]
        db_w = db.writes[0]
        m.d.sync += [db.write_valid.eq(b_valid & (dest == _Dest.DOORBELL)),
                     db_w.fn.eq(rm.fn), db_w.offset.eq(rm.offset[2:]), db_w.value.eq(b.data)]
        fa = fbp.access.payload
        m.d.sync += [fbp.access.valid.eq(b_valid & (dest == _Dest.FB)),
                     fa.fn.eq(rm.fn), fa.origin.eq(FbOrigin.HOST), fa.write.eq(b.write),
                     fa.addr.eq(rm.offset), fa.tag.eq(b.tag)]
        for n in range(1, p.num_fns):
            m.d.comb += regs.f("XFN_COUNT", "COUNT", n).eq(saturating_counter(
                m, p.counter_width, xfn & (b.fn == n),
                regs.written("XFN_COUNT", n) | iov.flr[n], name=f"xfn_{n}"))

        # --- Stage C: the blocks work; stage D: their answers are the host port's --------
        # One register per stage, carrying what the answer needs; the FB partition's result
        # meets stage D (its latency is the one stage between them).
        stage = data.StructLayout({"valid": 1, "dest": _Dest, "tag": HOST_TAG_WIDTH,
                                   "status": Status, "data": 32, "be": 4})
        assert FbPartition.LATENCY == 1, "stage D meets the FB partition's result"
        c, d_ = Signal(stage), Signal(stage)
        m.d.sync += [c.valid.eq(b_valid), c.dest.eq(dest), c.tag.eq(b.tag),
                     c.status.eq(local_status), c.data.eq(b.data), c.be.eq(b.be), d_.eq(c)]
        answer = Signal(host_response_layout())
        fb_res = fbp.result.payload
        with m.Switch(d_.dest):
            for dst, bus in reg_buses.items():
                with m.Case(dst):
                    m.d.comb += [answer.data.eq(bus.resp.payload.data),
                                 answer.status.eq(bus.resp.payload.status)]
            with m.Case(_Dest.DOORBELL):
                m.d.comb += answer.status.eq(Mux(db.ur[0], Status.UR, Status.OK))
            with m.Case(_Dest.FB):
                m.d.comb += answer.status.eq(fb_res.status)
            with m.Case(_Dest.LOCAL):
                m.d.comb += answer.status.eq(d_.status)
        fb_ok = d_.valid & (d_.dest == _Dest.FB) & (fb_res.status == Status.OK)
        answer_valid = Signal()
        m.d.comb += [answer.tag.eq(d_.tag),
                     # An FB read that passed the check answers when its data returns.
                     answer_valid.eq(d_.valid & ~(fb_ok & ~fb_res.write))]
        m.d.comb += regs.f("HOST_UR", "COUNT").eq(saturating_counter(
            m, p.counter_width, resp.valid & (resp.payload.status == Status.UR),
            regs.written("HOST_UR"), name="host_ur"))

        # --- Granted FB accesses queue for the FB port -----------------------------------
        entry = port.host.payload
        m.d.comb += [port.host.valid.eq(fb_ok), entry.addr.eq(fb_res.addr),
                     entry.write.eq(fb_res.write), entry.data.eq(d_.data), entry.be.eq(d_.be),
                     entry.tag.eq(fb_res.tag), entry.fn.eq(fb_res.fn)]
        # Fixed-latency answers go first; FB read data waits in its queue for a free cycle.
        done = port.host_done
        m.d.comb += [done.ready.eq(~answer_valid), read_waits.eq(done.valid & answer_valid)]
        with m.If(answer_valid):
            m.d.comb += [resp.valid.eq(1), resp.payload.eq(answer)]
        with m.Else():
            m.d.comb += [resp.valid.eq(done.valid), resp.payload.tag.eq(done.payload.tag),
                         resp.payload.data.eq(done.payload.data),
                         resp.payload.status.eq(Status.OK)]

        # --- Credits: an answer frees one, except an FB write's, freed when it leaves ------
        posted = answer_valid & fb_ok & fb_res.write
        m.d.sync += outstanding.eq(outstanding + accept - (resp.valid & ~posted) -
                                   port.host_retired)
        return m
