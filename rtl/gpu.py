"""The whole GPU: every block joined behind one host port, one FB memory port and one
command-processor port."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .doorbell import DoorbellArbiter, doorbell_event_layout
from .fb_partition import FbPartition
from .gpu_iov import GpuIov
from .interfaces import FbMemSignature, FbOrigin, Status, ValidSignature
from .mmio import MmioDecode
from .params import KiB, MiB, ParamError
from .regmap import Access, Field, Register, RegisterFile, RegisterMap
from .routing import ADDR_WIDTH, Router
from .world_switch import SeqState

__all__ = ["SriovGpu", "HostKind", "host_request_layout", "host_response_layout",
           "HostPortSignature", "gpu_regmap", "REG_WINDOWS", "REG_WINDOW_SIZE", "HOST_CREDITS",
           "irq_layout"]

#: Requests the host port holds at once (accepted, not yet answered).
HOST_CREDITS = 16
#: The PF's register BAR holds four windows, one per register block; a VF's (64 KiB) holds
#: only the first, the register decode.
REG_WINDOW_SIZE = 64 * KiB
REG_WINDOWS = ("mmio", "fb_partition", "world_switch", "gpu")
#: GPU-IOV capability fields count 16 MiB units (REFERENCE.md section 2).
_CAP_UNIT_LOG2 = (16 * MiB).bit_length() - 1


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
        "tag":   unsigned(8),
    })


def host_response_layout():
    return data.StructLayout({"tag": unsigned(8), "data": unsigned(32), "status": Status})


def HostPortSignature(params):
    """The host port, initiator side: valid/ready requests; every request is answered once on
    ``resp`` (no back-pressure), not necessarily in order: match by ``tag``."""
    return wiring.Signature({
        "req":  Out(stream.Signature(host_request_layout(params))),
        "resp": In(ValidSignature(host_response_layout())),
    })


def irq_layout():
    return data.StructLayout({"pf_mailbox": 1, "reg_violation": 1, "fb_violation": 1,
                              "hang": 1})


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


def _saturating_counter(m, params, count_field, clear, inc, name):
    counter = Signal(params.counter_width, name=name)
    m.d.comb += count_field.eq(counter)
    limit = (1 << params.counter_width) - 1
    with m.If(clear):
        m.d.sync += counter.eq(inc)
    with m.Elif(inc & (counter != limit)):
        m.d.sync += counter.eq(counter + 1)


class SriovGpu(wiring.Component):
    """The SR-IOV GPU: configuration space with SR-IOV and GPU-IOV, routing, register decode
    and mailboxes, FB partition, doorbell arbiter and world switch, behind one host port.

    Host port (``host``): one request accepted per cycle while ``req.ready``; each is routed
    (configuration by Routing ID, memory by BAR address, :class:`~rtl.routing.Router`) and
    answered once on ``resp`` with its ``tag``:

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
    At most
    :data:`HOST_CREDITS` requests are outstanding; ``req.ready`` also drops for one cycle
    after a configuration write (the capability mirror below may act on it).

    The GPU-IOV capability drives the FB layout: a whole-dword write of VFn_FB_SIZE/OFFSET
    programs VF n's slice in the FB partition (enabled), and one of CNTXT (SIZE and OFFSET in
    16 MiB units, LOC = 0) the context save area of the FB partition and of the world
    switch; the PF may also program them directly in their register windows.

    The FB memory port belongs to the world switch's context movers during their phases
    (SAVE, LOAD, INIT; in an overlapped phase the two alternate cycle by cycle) and to host
    FB accesses otherwise, which wait meanwhile. The world switch's owner is the only
    function whose doorbells reach ``cp``; its engine reports ``engine_busy``; a VF's FLR
    (Initiate FLR in its Device Control) resets it in the doorbell arbiter and the world
    switch.

    Attributes
    ----------
    host : HostPort, in
    pf_rid : in
        The PF's Routing ID (bus, device, function 0) as the host enumerated it.
    fb : FbMem, out
    cp : stream of doorbell events, out; ``engine_busy`` in, ``engine_stop`` out
    state_wr, state_rd, state_rdata : the engine-state memory, for the engine model
    irq : {pf_mailbox, reg_violation, fb_violation, hang}, out; ``vf_irq[n]``: VF n's mailbox
    owner, owner_valid, seq_state : monitors (who owns the GPU, what the world switch does)
    """

    #: Answers take 3 cycles, FB reads 7 + L, world switches their phases: see above.
    LATENCY = None

    def __init__(self, params):
        if params.pf_mmio_size < len(REG_WINDOWS) * REG_WINDOW_SIZE:
            raise ParamError(f"pf_mmio_size={params.pf_mmio_size} must be at least "
                             f"{len(REG_WINDOWS) * REG_WINDOW_SIZE} for the whole GPU "
                             f"(one 64 KiB register window per block)")
        self.params = params
        self.iov = GpuIov(params)
        self.router = Router(params)
        self.mmio = MmioDecode(params)
        self.fbp = FbPartition(params)
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

    def elaborate(self, platform):
        m = Module()
        p = self.params
        iov, router, mmio, fbp, db, regs = (self.iov, self.router, self.mmio, self.fbp,
                                            self.doorbells, self.regs)
        m.submodules.gpu_iov = iov
        m.submodules.router = router
        m.submodules.mmio = mmio
        m.submodules.fb_partition = fbp
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
            db.flr.eq(iov.flr),
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
            self.vf_irq.eq(mmio.vf_mailbox_irq),
        ]
        wiring.connect(m, db.cp, wiring.flipped(self.cp))
        for n in range(p.num_fns):
            m.d.comb += db.weight[n].eq(regs.f("DB_WEIGHT", "WEIGHT", n))
        m.d.comb += [regs.f("INFO", "NUM_VFS").eq(p.num_vfs),
                     regs.f("INFO", "CREDITS").eq(HOST_CREDITS),
                     regs.f("DB_UR", "COUNT").eq(db.ur_count)]

        # --- Stage A: accept and route ---------------------------------------------------
        req, resp = self.host.req, self.host.resp
        accept = Signal()
        outstanding = Signal(range(HOST_CREDITS + 1))
        b = Signal(host_request_layout(p))          # the request being routed
        b_valid = Signal()
        mirror_busy = Signal()
        # Registers only: a configuration write in stage B may start the mirror, which must
        # find the register buses free, so nothing follows it in until the mirror is done.
        m.d.comb += [
            req.ready.eq((outstanding < HOST_CREDITS) & ~mirror_busy &
                         ~(b_valid & (b.kind == HostKind.CONFIG) & b.write)),
            accept.eq(req.valid & req.ready),
            router.cfg_in.valid.eq(accept & (req.payload.kind == HostKind.CONFIG)),
            router.cfg_in.payload.rid.eq(req.payload.rid),
            router.mem_in.valid.eq(accept & (req.payload.kind == HostKind.MEMORY)),
            router.mem_in.payload.addr.eq(req.payload.addr),
        ]
        m.d.sync += [b_valid.eq(accept), b.eq(req.payload)]
        m.d.sync += outstanding.eq(outstanding + accept - resp.valid)

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
        # The capability mirror writes the FB partition's and the world switch's registers.
        mirror_req = {d: (Signal(name=f"mirror_{d.name.lower()}_valid"),
                          Signal(len(reg_buses[d].req.payload.addr),
                                 name=f"mirror_{d.name.lower()}_addr"),
                          Signal(32, name=f"mirror_{d.name.lower()}_data"))
                      for d in (_Dest.FB_REGS, _Dest.WS_REGS)}
        # Every block takes its request from a flop: the dispatch decode in front of a
        # block's own decode (the partition's table lookup, a register file's) set the clock.
        for d, bus in reg_buses.items():
            pl = bus.req.payload
            fn = rc.fn if d == _Dest.CONFIG else rm.fn
            addr = dword if d == _Dest.CONFIG else reg_addr
            m.d.sync += [bus.req.valid.eq(b_valid & (dest == d)), pl.fn.eq(fn), pl.addr.eq(addr),
                         pl.write.eq(b.write), pl.data.eq(b.data), pl.be.eq(b.be)]
            if d in mirror_req:
                valid, maddr, mdata = mirror_req[d]
                with m.If(valid):
                    m.d.sync += [bus.req.valid.eq(1), pl.fn.eq(0), pl.addr.eq(maddr),
                                 pl.write.eq(1), pl.data.eq(mdata), pl.be.eq(0xF)]
        db_w = db.writes[0]
        m.d.sync += [db.write_valid.eq(b_valid & (dest == _Dest.DOORBELL)),
                     db_w.fn.eq(rm.fn), db_w.offset.eq(rm.offset[2:]), db_w.value.eq(b.data)]
        fa = fbp.access.payload
        m.d.sync += [fbp.access.valid.eq(b_valid & (dest == _Dest.FB)),
                     fa.fn.eq(rm.fn), fa.origin.eq(FbOrigin.HOST), fa.write.eq(b.write),
                     fa.addr.eq(rm.offset), fa.tag.eq(b.tag)]
        for n in range(1, p.num_fns):
            _saturating_counter(m, p, regs.f("XFN_COUNT", "COUNT", n),
                                regs.written("XFN_COUNT", n), xfn & (b.fn == n), f"xfn_{n}")

        # --- The capability mirror: FB slices and the CSA from GPU-IOV writes ----------------
        self._mirror(m, b, b_valid, rc, dword, mirror_req, mirror_busy)

        # --- Stage C: the blocks work; stage D: their answers are the host port's --------
        c_valid, c_dest, c_tag = Signal(), Signal(_Dest), Signal(8)
        c_status, c_data, c_be = Signal(Status), Signal(32), Signal(4)
        m.d.sync += [c_valid.eq(b_valid), c_dest.eq(dest), c_tag.eq(b.tag),
                     c_status.eq(local_status), c_data.eq(b.data), c_be.eq(b.be)]
        d_valid, d_dest, d_tag = Signal(), Signal(_Dest), Signal(8)
        d_status, d_data, d_be = Signal(Status), Signal(32), Signal(4)
        m.d.sync += [d_valid.eq(c_valid), d_dest.eq(c_dest), d_tag.eq(c_tag),
                     d_status.eq(c_status), d_data.eq(c_data), d_be.eq(c_be)]
        answer = Signal(host_response_layout())
        fb_res = fbp.result.payload
        with m.Switch(d_dest):
            for d, bus in reg_buses.items():
                with m.Case(d):
                    m.d.comb += [answer.data.eq(bus.resp.payload.data),
                                 answer.status.eq(bus.resp.payload.status)]
            with m.Case(_Dest.DOORBELL):
                m.d.comb += answer.status.eq(Mux(db.ur[0], Status.UR, Status.OK))
            with m.Case(_Dest.FB):
                m.d.comb += answer.status.eq(fb_res.status)
            with m.Case(_Dest.LOCAL):
                m.d.comb += answer.status.eq(d_status)
        fb_ok = (d_dest == _Dest.FB) & (fb_res.status == Status.OK)
        answer_valid = Signal()
        m.d.comb += [answer.tag.eq(d_tag),
                     # An FB read that passed the check answers when its data returns.
                     answer_valid.eq(d_valid & ~(fb_ok & ~fb_res.write))]
        _saturating_counter(m, p, regs.f("HOST_UR", "COUNT"), regs.written("HOST_UR"),
                            resp.valid & (resp.payload.status == Status.UR), "host_ur")

        # --- FB: host accesses queue behind the context movers on the one memory port ------
        cpl = self._fb_port(m, fbp, d_valid & fb_ok, d_data, d_be)
        # Fixed-latency answers go first; FB read data waits in its queue for a free cycle.
        m.d.comb += cpl.r_en.eq(~answer_valid)
        with m.If(answer_valid):
            m.d.comb += [resp.valid.eq(1), resp.payload.eq(answer)]
        with m.Else():
            m.d.comb += [resp.valid.eq(cpl.r_rdy), resp.payload.eq(cpl.r_data)]
        return m

    def _fb_port(self, m, fbp, push, data_, be):
        """The FB memory port: the context movers in their phases, host FB accesses (from a
        queue) otherwise. Returns the FIFO of host read completions."""
        p = self.params
        iov = self.iov
        lane_bits = (p.mem_width // 32 - 1).bit_length()   # mem_width >= 64: at least 1
        res = fbp.result.payload
        host_entry = data.StructLayout({"addr": unsigned(p.fb_addr_width), "write": 1,
                                        "data": 32, "be": 4, "tag": 8})
        m.submodules.host_fb = host_q = fifo.SyncFIFOBuffered(
            width=host_entry.size, depth=HOST_CREDITS)
        entry_in = data.View(host_entry, host_q.w_data)
        m.d.comb += [host_q.w_en.eq(push), entry_in.addr.eq(res.addr),
                     entry_in.write.eq(res.write), entry_in.data.eq(data_), entry_in.be.eq(be),
                     entry_in.tag.eq(res.tag)]
        entry = data.View(host_entry, host_q.r_data)
        lane = entry.addr[2:2 + lane_bits]
        beat_bytes_log2 = (p.mem_width // 8).bit_length() - 1
        host_req = Signal(self.fb.req.payload.shape())
        m.d.comb += [host_req.addr.eq(entry.addr >> beat_bytes_log2 << beat_bytes_log2),
                     host_req.write.eq(entry.write),
                     host_req.data.eq(entry.data << (lane * 32)),
                     host_req.be.eq(entry.be << (lane * 4))]

        # Which initiator each read in flight belongs to: reads answer in order.
        in_flight = 2 * p.mem_outstanding + HOST_CREDITS
        m.submodules.read_src = src_q = fifo.SyncFIFOBuffered(width=2, depth=in_flight)
        m.submodules.host_reads = rd_q = fifo.SyncFIFOBuffered(width=8 + lane_bits,
                                                               depth=HOST_CREDITS)
        movers = (iov.mem, iov.mem_load)
        # Who may use the port is decided by the world switch's step (a register), never by
        # who asks: a mover's ready must not wait on its own valid through this arbiter
        # (that loop set the clock). The movers own the port in their phases, alternating
        # cycle by cycle in an overlapped one; host FB accesses have it the rest of the time.
        # Registered, a cycle behind the step: a mover starts in its phase's second cycle
        # and has finished when the phase ends, so the grant is never late for it.
        seq = iov.seq_state
        pick = Signal(2, init=2)                    # 0 / 1 a mover, 2 the host
        with m.Switch(seq):
            with m.Case(SeqState.SAVE, SeqState.LOAD, SeqState.INIT):
                m.d.sync += pick.eq(0)
            with m.Case(SeqState.OVERLAP):
                m.d.sync += pick.eq(Mux(pick == 0, 1, 0))
            with m.Default():
                m.d.sync += pick.eq(2)
        asking = Mux(pick == 2, host_q.r_rdy, Mux(pick[0], movers[1].req.valid,
                                                  movers[0].req.valid))
        payloads = [mv.req.payload.as_value() for mv in movers] + [host_req.as_value()]
        chosen_write = Mux(pick == 2, entry.write,
                           Mux(pick[0], movers[1].req.payload.write, movers[0].req.payload.write))
        # A read goes out only with room to remember whose it is.
        can = asking & (chosen_write | src_q.w_rdy)
        fb = self.fb
        m.d.comb += [fb.req.valid.eq(can),
                     fb.req.payload.eq(Mux(pick == 2, payloads[2],
                                           Mux(pick[0], payloads[1], payloads[0])))]
        taken = fb.req.valid & fb.req.ready
        # A mover's ready leaves its own valid out (it completes the handshake itself) and
        # looks at its own request only.
        for k, mv in enumerate(movers):
            m.d.comb += mv.req.ready.eq(fb.req.ready & (pick == k) &
                                        (mv.req.payload.write | src_q.w_rdy))
        m.d.comb += host_q.r_en.eq(taken & (pick == 2))
        m.d.comb += [src_q.w_en.eq(taken & ~chosen_write), src_q.w_data.eq(pick),
                     rd_q.w_en.eq(taken & (pick == 2) & ~entry.write),
                     rd_q.w_data.eq(Cat(entry.tag, lane))]

        # Read data back to whoever asked.
        back = fb.resp.valid
        src = src_q.r_data
        m.d.comb += src_q.r_en.eq(back)
        for k, mv in enumerate(movers):
            m.d.comb += [mv.resp.valid.eq(back & (src == k)),
                         mv.resp.payload.data.eq(fb.resp.payload.data)]
        m.submodules.host_cpl = cpl = fifo.SyncFIFOBuffered(
            width=host_response_layout().size, depth=HOST_CREDITS)
        host_back = back & (src == 2)
        r_lane = rd_q.r_data[8:]
        word = Signal(32)
        m.d.comb += [word.eq(fb.resp.payload.data >> (r_lane * 32)),
                     rd_q.r_en.eq(host_back),
                     cpl.w_en.eq(host_back)]
        done = data.View(host_response_layout(), cpl.w_data)
        m.d.comb += [done.tag.eq(rd_q.r_data[:8]), done.data.eq(word), done.status.eq(Status.OK)]
        return cpl

    def _mirror(self, m, b, b_valid, rc, dword, mirror_req, busy):
        """GPU-IOV capability writes -> FB partition and world-switch registers."""
        p = self.params
        cap = self.iov.config.regmap
        fb_map, ws_map = self.fbp.regmap, self.iov.ws.regmap
        vf_fb = cap["VF_FB"]
        is_cfg_write = (b_valid & (b.kind == HostKind.CONFIG) & b.write & (b.be == 0xF) &
                        (rc.status == Status.OK) & (rc.fn == 0))
        hit_slice = is_cfg_write & (dword >= vf_fb.offset_of(0)) & \
            (dword < vf_fb.offset_of(0) + p.num_vfs)
        hit_cntxt = is_cfg_write & (dword == cap.offset("GPUIOV_CNTXT"))
        shift = _CAP_UNIT_LOG2 - p.granule_bits

        def granules(units):
            return units << shift if shift >= 0 else units >> -shift

        job_slice, vf, word = Signal(), Signal(range(p.num_vfs)), Signal(32)
        step = Signal(2)
        with m.If(hit_slice | hit_cntxt):
            m.d.sync += [busy.eq(1), job_slice.eq(hit_slice), vf.eq(dword - vf_fb.offset_of(0)),
                         word.eq(b.data), step.eq(0)]

        def field_value(regmap, reg, fld, value):
            f = regmap[reg].field(fld)
            return (value & ((1 << f.width) - 1)) << f.lsb

        size16 = word[0:16]
        offset16 = word[16:32]
        csa_size = Mux(word[7], 0, word[0:7])      # LOC = 1 (system memory): no CSA in FB
        csa_off = word[10:32]
        base_reg = fb_map["SLICE_BASE"]
        size_reg = fb_map["SLICE_SIZE"]
        fb_valid, fb_addr, fb_data = mirror_req[_Dest.FB_REGS]
        ws_valid, ws_addr, ws_data = mirror_req[_Dest.WS_REGS]
        with m.If(busy):
            m.d.sync += step.eq(step + 1)
            with m.If(job_slice):
                m.d.comb += fb_valid.eq(1)
                with m.If(step == 0):
                    m.d.comb += [fb_addr.eq(base_reg.offset + vf * base_reg.stride),
                                 fb_data.eq(field_value(fb_map, "SLICE_BASE", "BASE",
                                                        granules(offset16)))]
                with m.Else():
                    m.d.comb += [fb_addr.eq(size_reg.offset + vf * size_reg.stride),
                                 fb_data.eq(field_value(fb_map, "SLICE_SIZE", "SIZE",
                                                        granules(size16 + 1)) |
                                            field_value(fb_map, "SLICE_SIZE", "ENABLE", 1))]
                    m.d.sync += busy.eq(0)
            with m.Else():
                with m.Switch(step):
                    with m.Case(0):
                        m.d.comb += [fb_valid.eq(1), fb_addr.eq(fb_map.offset("CSA_BASE")),
                                     fb_data.eq(field_value(fb_map, "CSA_BASE", "BASE",
                                                            granules(csa_off)))]
                    with m.Case(1):
                        m.d.comb += [fb_valid.eq(1), fb_addr.eq(fb_map.offset("CSA_SIZE")),
                                     fb_data.eq(field_value(fb_map, "CSA_SIZE", "SIZE",
                                                            granules(csa_size)))]
                    with m.Default():
                        unit_shift = _CAP_UNIT_LOG2 - 12          # 16 MiB in 4 KiB units
                        m.d.comb += [ws_valid.eq(1), ws_addr.eq(ws_map.offset("CSA_BASE")),
                                     ws_data.eq(field_value(ws_map, "CSA_BASE", "BASE",
                                                            csa_off << unit_shift))]
                        m.d.sync += busy.eq(0)

