"""The whole GPU: every block joined behind one host port, one FB memory port and one
command-processor port."""

from typing import Callable, NamedTuple

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.common.counters import saturating_counter
from rtl.doorbell.arbiter import DoorbellArbiter, doorbell_event_layout
from rtl.memory.fb_partition import FbPartition, fb_partition_regmap
from rtl.memory.fb_port import HOST_TAG_WIDTH, FbPort
from rtl.world_switch.gpu_iov import GpuIov
from rtl.world_switch.world_switch import world_switch_regmap
from rtl.common.interfaces import (FbMemSignature, FbOrigin, Status, ValidSignature,
                                   channel_port)
from rtl.mmio.decode import MmioDecode, mmio_regmap
from rtl.params import FN_WIDTH, KiB, ParamError
from rtl.common.regmap import Access, Field, Register, RegisterFile, RegisterMap
from rtl.pcie.config_space import DOORBELL_BAR, REG_BAR
from rtl.pcie.routing import ADDR_WIDTH, Router
from rtl.top.cap_mirror import CapMirror
from rtl.top.host_answer import HostAnswer, host_response_layout

__all__ = ["SriovGpu", "HostKind", "host_request_layout", "host_response_layout",
           "HostPortSignature", "gpu_regmap", "RegWindow", "REG_WINDOW_TABLE", "reg_window",
           "REG_WINDOWS", "REG_WINDOW_SIZE", "HOST_CREDITS", "irq_layout"]

#: Requests the host port holds at once (accepted, not yet answered).
HOST_CREDITS = 16
#: The PF's register BAR holds one window per register block (:data:`REG_WINDOW_TABLE`); a
#: VF's (64 KiB) holds only the first, the register decode.
REG_WINDOW_SIZE = 64 * KiB
#: Low bits of an address that pick a byte of a dword (register and configuration offsets
#: are dword offsets).
_DWORD_BITS = 2


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


def HostPortSignature(params):
    """The host port, initiator side: valid/ready requests; every request is answered once on
    ``resp`` (no back-pressure), not necessarily in order: match by ``tag``."""
    return wiring.Signature({
        "req":  Out(stream.Signature(host_request_layout(params))),
        "resp": In(ValidSignature(host_response_layout())),
    })


def irq_layout():
    return data.StructLayout({"pf_mailbox": 1, "reg_violation": 1, "fb_violation": 1,
                              "hang": 1, "layout": 1, "cmd_done": 1})


def gpu_regmap(params):
    """The PF-only registers of the top: doorbell weights and the host port's refusals."""
    cw = params.counter_width
    return RegisterMap("gpu", 9, [
        Register("INFO", 0x00, (
            Field("NUM_VFS", 0, FN_WIDTH, Access.RO, "number of VFs (parameter num_vfs)"),
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


class RegWindow(NamedTuple):
    """One :data:`REG_WINDOW_SIZE` window of the register BAR: the block whose registers it
    exposes."""
    name: str
    index: int                  #: its place in the BAR: byte offset ``index * REG_WINDOW_SIZE``
    regmap: Callable            #: params -> the :class:`~rtl.common.regmap.RegisterMap` it holds
    dest: _Dest                 #: where the top's dispatch sends its requests
    bus: Callable               #: SriovGpu -> the block's register bus
    reach: str                  #: who can reach it

    @property
    def offset(self):
        """Byte offset of the window in the register BAR."""
        return self.index * REG_WINDOW_SIZE


#: The register BAR's windows, in BAR order: the one description the top's decode, the
#: system model's register addresses and the generated docs use.
REG_WINDOW_TABLE = (
    RegWindow("mmio", 0, mmio_regmap, _Dest.MMIO, lambda gpu: gpu.mmio.bus,
              "every function (a VF sees only this window)"),
    RegWindow("fb_partition", 1, lambda p: fb_partition_regmap(p, external_layout=True),
              _Dest.FB_REGS, lambda gpu: gpu.fbp.cfg, "PF"),
    RegWindow("world_switch", 2, world_switch_regmap, _Dest.WS_REGS,
              lambda gpu: gpu.iov.ws_cfg, "PF"),
    RegWindow("gpu", 3, lambda p: gpu_regmap(p), _Dest.GPU_REGS, lambda gpu: gpu.regs.bus, "PF"),
)
assert [w.index for w in REG_WINDOW_TABLE] == list(range(len(REG_WINDOW_TABLE)))
#: The windows' names, in BAR order.
REG_WINDOWS = tuple(w.name for w in REG_WINDOW_TABLE)
#: Address bits of the byte offset within a window, and of the window's index above them.
_WINDOW_SHIFT = (REG_WINDOW_SIZE - 1).bit_length()
_WINDOW_INDEX_BITS = (len(REG_WINDOW_TABLE) - 1).bit_length()


def reg_window(name):
    """The :class:`RegWindow` called ``name``."""
    for w in REG_WINDOW_TABLE:
        if w.name == name:
            return w
    raise KeyError(f"no register window {name!r}; there are {', '.join(REG_WINDOWS)}")


class _Answering(data.Struct):
    """A request between dispatch and its answer: one register per stage (C, D)."""
    valid: 1
    dest: _Dest
    tag: HOST_TAG_WIDTH
    status: Status              # the top's own answer (dest LOCAL)


class _FbWrite(data.Struct):
    """What a host FB access needs beside the FB partition unit (which carries only the
    address): its dword and byte enables, for the FB queue."""
    data: 32
    be: 4


#: Cycles from a block taking its request (from the dispatch register) to its answer, for
#: every register block; stage D takes them all in the same cycle.
_BLOCK_LATENCY = 1


class SriovGpu(wiring.Component):
    """The SR-IOV GPU: configuration space with SR-IOV and GPU-IOV, routing, register decode
    and mailboxes, FB partition, doorbell arbiter and world switch, behind one host port.

    Host port (``host``): one request accepted per cycle while ``req.ready``; each is routed
    (configuration by Routing ID, memory by BAR address, :class:`~rtl.pcie.routing.Router`) and
    answered exactly once on ``resp`` with its ``tag``:

    - configuration: the function's configuration space;
    - register BAR (BAR5): the register decode; the PF's BAR also holds the FB partition's,
      the world switch's and the top's own PF registers (:data:`REG_WINDOW_TABLE`, 64 KiB each);
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
    is the FB of active slices. The translation lives in :class:`~rtl.top.cap_mirror.CapMirror`.

    The FB memory channels (:class:`~rtl.memory.fb_port.FbPort`) belong to the world switch's
    context movers during their phases (channel 0, and channel 1 for an overlapped switch's
    load) and to host FB accesses (and the scrubber) otherwise; a mover access outside the
    active CSA is stopped there. The world switch's owner is the only
    function whose doorbells reach ``cp``; the answers leave through
    :class:`~rtl.top.host_answer.HostAnswer` (fixed-latency answers first, then FB read
    data; the credits). its engine reports ``engine_busy``. A VF's FLR
    (Initiate FLR in its Device Control, or VF Enable cleared) resets it in the world switch,
    the doorbell arbiter and the register decode, and clears its violation counters.

    Attributes
    ----------
    host : HostPort, in
    pf_rid : in
        The PF's Routing ID (bus, device, function 0) as the host enumerated it.
    fb, fb_1, .. : FbMem, out
        The FB memory channels, ``mem_channels`` of them (one: ``fb``).
    cp : stream of doorbell events, out; ``engine_busy`` in, ``engine_stop`` out
    state_wr, state_rd, state_rdata : the engine-state memory, for the engine model
    irq : {pf_mailbox, reg_violation, fb_violation, hang, layout, cmd_done}, out;
        ``vf_irq[n]``: VF n's mailbox. ``cmd_done`` pulses when a GPU-IOV command written
        with IRQ_EN ends.
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
        self.cap_mirror = CapMirror(params)
        self.answer = HostAnswer(HOST_CREDITS)
        # Stage D takes every block's answer in the same cycle: the FB partition unit's
        # result (refusal, write acknowledge) with the register blocks'.
        if self.FB_PARTITION.LATENCY != _BLOCK_LATENCY:
            raise ParamError(f"{self.FB_PARTITION.__name__}.LATENCY is "
                             f"{self.FB_PARTITION.LATENCY}: the top's stage D takes the FB "
                             f"partition unit's result in the same cycle as the register "
                             f"blocks' answers, {_BLOCK_LATENCY} cycle after dispatch")
        ws_members = self.iov.signature.members
        super().__init__({
            "host": In(HostPortSignature(params)),
            "pf_rid": In(16),
            **{channel_port("fb", c): Out(FbMemSignature(params))
               for c in range(params.mem_channels)},
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

    def _wire_blocks(self, m):
        """The blocks wired to each other: configuration space's state to routing, the
        doorbells and the register decode; the capability mirror; interrupts and monitors."""
        p = self.params
        iov, router, mmio, fbp, db, regs, cap = (self.iov, self.router, self.mmio, self.fbp,
                                                 self.doorbells, self.regs, self.cap_mirror)
        m.d.comb += [
            router.pf_rid.eq(self.pf_rid),
            router.pf_bars.eq(iov.pf_bars), router.vf_bars.eq(iov.vf_bars),
            router.num_vfs.eq(iov.num_vfs), router.vf_enable.eq(iov.vf_enable),
            router.vf_mse.eq(iov.vf_mse), router.pf_mse.eq(iov.pf_mse),
            mmio.owner.eq(iov.owner), mmio.owner_valid.eq(iov.owner_valid),
            iov.shared_in.eq(mmio.shared),
            mmio.shared_load.valid.eq(iov.shared_load.valid),
            mmio.shared_load.payload.eq(iov.shared_load.payload),
            # The capability's FB layout to the FB partition unit and back; world switching:
            # only the owner's doorbells go to the command processor.
            cap.cntxt.eq(iov.cntxt), cap.vf_fb.eq(iov.vf_fb), fbp.layout.eq(cap.layout),
            cap.consumed.eq(fbp.consumed), cap.active_csa.eq(fbp.active_csa),
            iov.fb_consumed.eq(cap.fb_consumed), iov.csa.eq(cap.csa),
            cap.owner.eq(iov.owner), cap.owner_valid.eq(iov.owner_valid),
            db.serve.eq(cap.serve), db.num_vfs.eq(iov.num_vfs), db.vf_enable.eq(iov.vf_enable),
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
            self.irq.cmd_done.eq(iov.cmd_irq),
            self.vf_irq.eq(mmio.vf_mailbox_irq),
        ]
        wiring.connect(m, db.cp, wiring.flipped(self.cp))
        for n in range(p.num_fns):
            m.d.comb += db.weight[n].eq(regs.f("DB_WEIGHT", "WEIGHT", n))
        m.d.comb += [regs.f("INFO", "NUM_VFS").eq(p.num_vfs),
                     regs.f("INFO", "CREDITS").eq(HOST_CREDITS),
                     regs.f("DB_UR", "COUNT").eq(db.ur_count)]

    def _wire_fb_port(self, m):
        """The FB port's initiators: the context movers and the scrubber (host FB accesses
        come from stage D, :meth:`elaborate`)."""
        iov, fbp, regs, port = self.iov, self.fbp, self.regs, self.fb_port
        wiring.connect(m, iov.mem, port.live)
        wiring.connect(m, iov.mem_load, port.shadow)
        wiring.connect(m, fbp.scrub, port.scrub)
        for c, channel in enumerate(port.channels):
            wiring.connect(m, channel, wiring.flipped(getattr(self, channel_port("fb", c))))
        wiring.connect(m, port.host_done, self.answer.fb_done)
        m.d.comb += [port.seq.eq(iov.seq_state), port.csa.eq(fbp.active_csa),
                     iov.ctx_fault.eq(port.ctx_fault.valid),
                     fbp.ctx_fault.valid.eq(port.ctx_fault.valid),
                     fbp.ctx_fault.payload.eq(port.ctx_fault.payload),
                     regs.f("SCRUB_LAST", "CYCLES").eq(port.scrub_cycles),
                     regs.f("SCRUB_GRANULES", "COUNT").eq(port.scrub_granules)]

    def _reg_buses(self):
        """{destination: register bus} of every block answering in stage D but the top."""
        buses = {_Dest.CONFIG: self.iov.cfg}
        buses.update({w.dest: w.bus(self) for w in REG_WINDOW_TABLE})
        return buses

    def _route(self, m, b):
        """Stage B's decode: where the routed request ``b`` goes (``dest``), the top's own
        answer if it goes nowhere (``status``), and whether it is a VF driver outside its own
        BARs (``xfn``)."""
        rc, rm = self.router.cfg_out.payload, self.router.mem_out.payload
        dest = Signal(_Dest)
        local_status = Signal(Status)
        xfn = Signal()
        window = rm.offset[_WINDOW_SHIFT:_WINDOW_SHIFT + _WINDOW_INDEX_BITS]
        reg_addr = rm.offset[_DWORD_BITS:_WINDOW_SHIFT]
        req = b.req
        with m.If(req.kind == HostKind.CONFIG):
            with m.If(rc.status == Status.OK):
                m.d.comb += dest.eq(_Dest.CONFIG)
            with m.Else():
                m.d.comb += local_status.eq(Status.UR)
        with m.Elif(rm.status != Status.OK):
            m.d.comb += local_status.eq(rm.status)
        with m.Elif((req.fn != 0) & (req.fn != rm.fn)):
            m.d.comb += [local_status.eq(Status.BLOCKED), xfn.eq(b.valid)]
        with m.Elif(rm.bar == REG_BAR):
            for w in REG_WINDOW_TABLE:
                width = len(w.bus(self).req.payload.addr)
                with m.If((window == w.index) & (reg_addr[width:] == 0)):
                    m.d.comb += dest.eq(w.dest)
            with m.If(dest == _Dest.LOCAL):
                m.d.comb += local_status.eq(Status.UR)
        with m.Elif(rm.bar == DOORBELL_BAR):
            with m.If(req.write):
                m.d.comb += dest.eq(_Dest.DOORBELL)
            with m.Else():
                m.d.comb += local_status.eq(Status.UR)
        with m.Else():
            m.d.comb += dest.eq(_Dest.FB)
        return dest, local_status, xfn, reg_addr

    def _dispatch(self, m, b, dest, reg_addr):
        """Stage B to C: every block takes its request from a flop (the dispatch decode in
        front of a block's own decode, the partition's table lookup or a register file's,
        set the clock)."""
        db, fbp = self.doorbells, self.fbp
        rc, rm = self.router.cfg_out.payload, self.router.mem_out.payload
        req = b.req
        for d, bus in self._reg_buses().items():
            pl = bus.req.payload
            fn = rc.fn if d == _Dest.CONFIG else rm.fn
            addr = req.addr[_DWORD_BITS:] if d == _Dest.CONFIG else reg_addr
            m.d.sync += [bus.req.valid.eq(b.valid & (dest == d)), pl.fn.eq(fn),
                         pl.addr.eq(addr), pl.write.eq(req.write), pl.data.eq(req.data),
                         pl.be.eq(req.be)]
        db_w = db.writes[0]
        m.d.sync += [db.write_valid.eq(b.valid & (dest == _Dest.DOORBELL)),
                     db_w.fn.eq(rm.fn), db_w.offset.eq(rm.offset[_DWORD_BITS:]),
                     db_w.value.eq(req.data)]
        fa = fbp.access.payload
        m.d.sync += [fbp.access.valid.eq(b.valid & (dest == _Dest.FB)),
                     fa.fn.eq(rm.fn), fa.origin.eq(FbOrigin.HOST), fa.write.eq(req.write),
                     fa.addr.eq(rm.offset), fa.tag.eq(req.tag)]

    def _answer(self, m, d_):
        """Stage D: the answer of the request in ``d_``, taken from where it went. Returns
        the answer (valid unless it is an FB read the partition granted: that one answers
        when its data returns) and whether the FB partition granted it."""
        fb_res = self.fbp.result.payload
        answer = Signal(host_response_layout())
        with m.Switch(d_.dest):
            for dst, bus in self._reg_buses().items():
                with m.Case(dst):
                    m.d.comb += [answer.data.eq(bus.resp.payload.data),
                                 answer.status.eq(bus.resp.payload.status)]
            with m.Case(_Dest.DOORBELL):
                m.d.comb += answer.status.eq(Mux(self.doorbells.ur[0], Status.UR, Status.OK))
            with m.Case(_Dest.FB):
                m.d.comb += answer.status.eq(fb_res.status)
            with m.Case(_Dest.LOCAL):
                m.d.comb += answer.status.eq(d_.status)
        fb_ok = Signal()
        answer_valid = Signal()
        m.d.comb += [fb_ok.eq(d_.valid & (d_.dest == _Dest.FB) & (fb_res.status == Status.OK)),
                     answer.tag.eq(d_.tag),
                     answer_valid.eq(d_.valid & ~(fb_ok & ~fb_res.write))]
        return answer, answer_valid, fb_ok

    def elaborate(self, platform):
        m = Module()
        p = self.params
        iov, router, fbp, regs, port, ans = (self.iov, self.router, self.fbp, self.regs,
                                             self.fb_port, self.answer)
        m.submodules.gpu_iov = iov
        m.submodules.router = router
        m.submodules.mmio = self.mmio
        m.submodules.fb_partition = fbp
        m.submodules.fb_port = port
        m.submodules.doorbells = self.doorbells
        m.submodules.regs = regs
        m.submodules.cap_mirror = self.cap_mirror
        m.submodules.answer = ans
        self._wire_blocks(m)
        self._wire_fb_port(m)

        # --- Stage A: accept and route ---------------------------------------------------
        req, resp = self.host.req, self.host.resp
        accept = Signal()
        # Stage B: the request being routed.
        b = Signal(data.StructLayout({"valid": 1, "req": host_request_layout(p)}))
        m.d.comb += [
            req.ready.eq(ans.ready),
            accept.eq(req.valid & req.ready), ans.accept.eq(accept),
            router.cfg_in.valid.eq(accept & (req.payload.kind == HostKind.CONFIG)),
            router.cfg_in.payload.rid.eq(req.payload.rid),
            router.mem_in.valid.eq(accept & (req.payload.kind == HostKind.MEMORY)),
            router.mem_in.payload.addr.eq(req.payload.addr),
        ]
        m.d.sync += [b.valid.eq(accept), b.req.eq(req.payload)]

        # --- Stage B: dispatch to the block that answers ----------------------------------
        dest, local_status, xfn, reg_addr = self._route(m, b)
        self._dispatch(m, b, dest, reg_addr)
        for n in range(1, p.num_fns):
            m.d.comb += regs.f("XFN_COUNT", "COUNT", n).eq(saturating_counter(
                m, p.counter_width, xfn & (b.req.fn == n),
                regs.written("XFN_COUNT", n) | iov.flr[n], name=f"xfn_{n}"))

        # --- Stage C: the blocks work; stage D: their answers are the host port's --------
        # One register per stage, carrying what the answer needs (the blocks answer
        # _BLOCK_LATENCY cycles after dispatch). An FB access's dword rides beside the FB
        # partition unit, one register per cycle of its latency, and meets its result.
        c, d_ = Signal(_Answering), Signal(_Answering)
        m.d.sync += [c.valid.eq(b.valid), c.dest.eq(dest), c.tag.eq(b.req.tag),
                     c.status.eq(local_status), d_.eq(c)]
        fb_write = Signal(_FbWrite, name="fb_write_b")
        m.d.comb += [fb_write.data.eq(b.req.data), fb_write.be.eq(b.req.be)]
        for k in range(1 + self.FB_PARTITION.LATENCY):
            fb_write_next = Signal(_FbWrite, name=f"fb_write_{k}")
            m.d.sync += fb_write_next.eq(fb_write)
            fb_write = fb_write_next
        answer, answer_valid, fb_ok = self._answer(m, d_)
        m.d.comb += regs.f("HOST_UR", "COUNT").eq(saturating_counter(
            m, p.counter_width, resp.valid & (resp.payload.status == Status.UR),
            regs.written("HOST_UR"), name="host_ur"))

        # --- Granted FB accesses queue for the FB port -----------------------------------
        fb_res, entry = fbp.result.payload, port.host.payload
        m.d.comb += [port.host.valid.eq(fb_ok), entry.addr.eq(fb_res.addr),
                     entry.write.eq(fb_res.write), entry.data.eq(fb_write.data),
                     entry.be.eq(fb_write.be), entry.tag.eq(fb_res.tag), entry.fn.eq(fb_res.fn)]

        # --- The answer port: fixed-latency answers first, then FB read data; credits ----
        m.d.comb += [ans.fixed.valid.eq(answer_valid), ans.fixed.payload.eq(answer),
                     ans.posted.eq(fb_ok & fb_res.write), ans.retired.eq(port.host_retired)]
        wiring.connect(m, ans.resp, wiring.flipped(resp))
        return m
