"""The world switch: the GPU-IOV command interface, the save/restore sequence, and the
hardware scheduler that hands the GPU from one function to the next.

The block is a composition of parts with one job each (docs/world_switch.md):
:class:`~rtl.world_switch.sequencer.Sequencer` (the commands and the GPU's state),
:class:`~rtl.world_switch.banks.ContextBanks` (the live and shadow context sets and their
movers), :class:`~rtl.world_switch.meters.PhaseMeter` and
:class:`~rtl.world_switch.meters.HostSwitchMeter` (the cycle counters) and
:class:`~rtl.world_switch.scheduler.AutoScheduler` (auto mode's round robin). This module
holds the PF registers and wires the parts to them."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.params import FN_WIDTH, TIMER_WIDTH
from rtl.common.counters import saturating_counter
from rtl.common.interfaces import REG_DATA_WIDTH, RegBusSignature, ValidSignature, region_layout
from rtl.common.regmap import Access, Field, Register, RegisterFile, RegisterMap
from rtl.common.iov_codes import (CSA_UNIT_LOG2, GpuState, IovStatus, Phase, SeqState,
                                  csa_bytes, csa_stride, iov_command_layout)
from rtl.world_switch.banks import ContextBanks, context_set_members
from rtl.world_switch.meters import COUNTER_WIDTH, HostSwitchMeter, PhaseMeter
from rtl.world_switch.scheduler import AutoScheduler
from rtl.world_switch.sequencer import Sequencer

__all__ = ["WorldSwitch", "world_switch_regmap"]

#: Width of the REFUSED register's two saturating counters.
REFUSED_WIDTH = 16

_SLICE_OFFSET = 0x40


def world_switch_regmap(params):
    """The PF-only registers of the world switch."""
    csa_bits = max(params.fb_addr_width - CSA_UNIT_LOG2, 1)
    stride = csa_stride(params)
    cw = COUNTER_WIDTH
    return RegisterMap("world_switch", 8, [
        Register("INFO", 0x00, (
            Field("CTX_BEATS", 0, 24, Access.RO, "memory beats per context (shared + engine)"),
            Field("MEM_WIDTH_LOG2", 24, 4, Access.RO, "log2 of the memory port width, bits"),
        ), "What this instance was built with."),
        Register("CSA_BASE", 0x01, (
            Field("BASE", 0, csa_bits, Access.RO, "active context save area start, 4 KiB "
                  "units (the FB partition unit's CSA; 0 when there is none)"),
            Field("OK", 31, 1, Access.RO, "an active FB CSA holds every function's context"),
        ), "Where function n's context is saved: (CSA_BASE + n * CSA_STRIDE) * 4 KiB. "
           "Programmed through CNTXT; read-only while CSA_LOCKED."),
        Register("CSA_STRIDE", 0x02, (
            Field("STRIDE", 0, csa_bits, Access.RO, "4 KiB units per function",
                  reset=stride),
        ), "Distance between two functions' contexts: one context, rounded up to 4 KiB (fixed, "
           "so that no two functions' contexts can overlap)."),
        Register("DRAIN_TIMEOUT", 0x03, (
            Field("CYCLES", 0, TIMER_WIDTH, Access.RW, "cycles IDLE waits for the engine",
                  reset=params.drain_timeout),
        ), "After this many cycles of draining, IDLE_GPU ends with GFX_HANG."),
        Register("STATE", 0x04, (
            Field("GPU_STATE", 0, GpuState.as_shape().width, Access.RO, "GpuState: 0 empty, 1 loaded, 2 running, 3 stopped"),
            Field("CUR_FN", 8, FN_WIDTH, Access.RO, "function whose context is on the GPU"),
            Field("OWNER_VALID", 16, 1, Access.RO, "CUR_FN owns the GPU"),
            Field("AUTO", 17, 1, Access.RO, "the hardware scheduler runs"),
            Field("BUSY", 18, 1, Access.RO, "a command or an automatic switch is running"),
            Field("CSA_LOCKED", 19, 1, Access.RO, "CNTXT is read-only: a context is valid, a "
                  "function is on the GPU or a command runs"),
        ), "Where the world switch is."),
        Register("SCHED", 0x05, (
            Field("LIQUID", 0, 1, Access.RW, "auto mode skips functions with no pending "
                  "doorbell and switches an idle one out early (0: solid)"),
            Field("OVERLAP", 1, 1, Access.RW, "switches save the outgoing context while "
                  "loading the incoming one into the shadow set (second memory port)"),
        ), "Hardware scheduler and switch mode."),
        Register("SWITCHES", 0x06, (
            Field("COUNT", 0, cw, Access.RC, "completed world switches; any write clears"),
        ), "World switches (CONTEXT_SWITCH and automatic)."),
        Register("PHASE_LAST", 0x08, (
            Field("CYCLES", 0, cw, Access.RO, "cycles of the last such phase"),
        ), "Per phase (0 idle/drain, 1 save, 2 load, 3 run start): its last duration.",
            count=len(Phase)),
        Register("PHASE_MAX", 0x0C, (
            Field("CYCLES", 0, cw, Access.RC, "longest such phase; any write clears"),
        ), "Per phase: its longest duration since cleared.", count=len(Phase)),
        Register("SWITCH_LAST", 0x10, (
            Field("CYCLES", 0, cw, Access.RO, "IDLE start to RUN done, the last switch"),
        ), "Cycles of the last whole world switch."),
        Register("SWITCH_MAX", 0x11, (
            Field("CYCLES", 0, cw, Access.RC, "longest whole switch; any write clears"),
        ), "Cycles of the longest whole world switch."),
        Register("HOST_SWITCHES", 0x12, (
            Field("COUNT", 0, cw, Access.RC, "host-driven switches; any write clears"),
        ), "Host-driven switches: IDLE_GPU(A), SAVE_GPU_STATE(A), LOAD_GPU_STATE(B), "
           "RUN_GPU(B), each COMMAND_DONE, with no other command between (GIM's sequence)."),
        Register("HOST_SWITCH_LAST", 0x13, (
            Field("CYCLES", 0, cw, Access.RO, "IDLE_GPU taken to RUN_GPU done, the last one"),
        ), "Cycles of the last host-driven switch, the host's gaps between commands included."),
        Register("HOST_SWITCH_MAX", 0x18, (
            Field("CYCLES", 0, cw, Access.RC, "longest host-driven switch; any write clears"),
        ), "Cycles of the longest host-driven switch."),
        Register("REFUSED", 0x19, (
            Field("EXECUTE_BUSY", 0, REFUSED_WIDTH, Access.RC, "CMD_CONTROL writes while a command ran "
                  "(saturating); any write clears both"),
            Field("CNTXT_LOCKED", REFUSED_WIDTH, REFUSED_WIDTH, Access.RC, "CNTXT writes while CSA_LOCKED "
                  "(saturating)"),
        ), "Capability writes refused to keep the running command and the saved contexts "
           "intact."),
        Register("CTX_VALID", 0x14, (
            Field("MASK", 0, REG_DATA_WIDTH, Access.RO, "bit b: function 32k + b has a saved or "
                  "initialized context (may be loaded)"),
        ), "Contexts that may be loaded, 32 functions per register.",
            count=-(-params.num_fns // REG_DATA_WIDTH)),
        Register("TIME_SLICE", _SLICE_OFFSET, (
            Field("CYCLES", 0, TIMER_WIDTH, Access.RW, "auto mode: cycles function n runs per turn",
                  reset=params.time_slice),
            Field("RUN", 31, 1, Access.RW, "function n is on the auto-mode run list"),
        ), "Time slice and run-list membership of function n.", count=params.num_fns),
    ])


class WorldSwitch(wiring.Component):
    """Takes the GPU from one function and gives it to another, on the PF's command or by
    itself with time slices.

    Commands arrive on ``iov_cmd`` (from the GPU-IOV capability); each ends with a
    one-cycle ``iov_done`` and its code on ``iov_status`` (which shows the running phase,
    IDLING / SAVING / LOADING / ENABLING / INITING, while it runs). The GPU is in one of
    four states (:class:`GpuState`); a command that is illegal in the current state, names
    no live function, or is not implemented ends in the next cycle with ILLEGAL_STATE,
    BAD_FUNCTION or BAD_COMMAND and changes nothing.

    ==========================  ===================================  ====================
    command                     legal when                           does
    ==========================  ===================================  ====================
    IDLE_GPU(f)                 RUNNING, f is cur (auto: any f)      stop f, drain engine
    SAVE_GPU_STATE(f)           STOPPED, f is cur                    context -> f's CSA
    LOAD_GPU_STATE(f)           EMPTY, f has a context               f's CSA -> context
    RUN_GPU(f)                  LOADED, f is cur                     f owns the GPU
    CONTEXT_SWITCH(f, g)        RUNNING, f is cur, g has a context   IDLE, SAVE, LOAD, RUN
    ENABLE_AUTO_HW_SWITCH(f)    RUNNING, f is cur                    start the scheduler
    INIT_GPU(f)                 f is not on the GPU                  zeros -> f's CSA
    ==========================  ===================================  ====================

    IDLE drains: ``engine_stop`` is raised and the phase ends when ``engine_busy`` falls;
    after DRAIN_TIMEOUT cycles it ends with GFX_HANG and a ``hang_irq`` pulse (the function
    stays STOPPED, to be saved or reset). SAVE and LOAD stream the context (the owner-shared
    registers from ``shared_in`` / to ``shared_load``, and the engine-state memory) through
    ``mem`` to (CSA_BASE + f * CSA_STRIDE) * 4 KiB, at the speed of :class:`ContextMover`.

    Overlapped switches (SCHED.OVERLAP, to another function): the outgoing context is saved
    from the live set through ``mem`` while the incoming one is loaded into the shadow set
    through ``mem_load``; then the sets swap and the incoming shared registers are replayed
    on ``shared_load``.

    Auto mode (ENABLE_AUTO_HW_SWITCH; IDLE_GPU turns it off, idling whoever owns the GPU
    whatever its FCN_ID; other commands but INIT_GPU are illegal meanwhile): each function
    on the run list with a context runs for its TIME_SLICE, then the next one in
    round-robin order is switched in. Solid: every such function gets its turn. Liquid
    (SCHED.LIQUID): a function with no pending doorbell (``has_work``) is skipped, and the
    owner is switched out early once it has none and the engine is idle. With nobody else
    to run, the owner keeps the GPU.

    ``flr[n]`` at any moment: function n's context becomes invalid (it must be INIT_GPU'd
    before it is loaded again); if n is on the GPU it leaves it (EMPTY, no owner); a
    drain, SAVE or LOAD of n stops at once (the mover aborts). A CONTEXT_SWITCH whose
    outgoing function is reset goes on to load the incoming one; one whose incoming function
    is reset ends with FLR_ABORTED. No other function's context changes.

    Ownership: ``owner_valid`` is high exactly in the RUNNING state, naming ``owner``;
    ``seq_state`` (:class:`SeqState`) shows the sequence's step each cycle, for monitors.
    Per-phase cycle counters (last and max) and the whole switch's are PF registers.

    Phase cycles with a memory that is always ready: IDLE = drain + 1; SAVE = mover SAVE
    + 3; LOAD = mover LOAD + 3 (address setup, start, finish); RUN = 1 (sim/models/cost_model.py).

    Attributes
    ----------
    cfg : RegBus, in
        The PF-only registers (:func:`world_switch_regmap`).
    iov_cmd : flow of iov_command_layout, in
        A GPU-IOV command (command, FCN_ID, NXT_FCN_ID), one cycle.
    iov_done : out; iov_status : IovStatus, out
        A command ended (one cycle), and CMD_STATUS (the running phase while it runs).
    hang_irq : out
        Pulse: a drain timed out, or a mover hit the CSA guard.
    owner, owner_valid : out
        The function that owns the GPU (valid exactly in RUNNING).
    seq_state : SeqState, out
        The sequence's step, for monitors.
    num_vfs, vf_enable, flr : in
        From the SR-IOV capability: which functions exist; function-level resets.
    engine_busy : in; engine_stop : out
        The engine's drain handshake.
    has_work : num_fns bits, in
        Pending doorbells per function (liquid mode).
    mem, mem_load : FbMem, out
        The live and the shadow context set's FB memory ports.
    shared_in : ArrayLayout(32, shared_regs), in; shared_load : flow of {beat, data}, out
        The owner-shared registers: saved from, restored to.
    state_wr, state_rd : flow, in; state_rdata : out
        The engine's access to its live state memory.
    csa : region, in
        The FB partition unit's active context save area.
    csa_locked : out
        CNTXT must not change: a context is valid, a function is on the GPU or a command runs.
    ctx_fault : in
        A mover access fell outside the active CSA (stopped at the FB port).
    execute_refused, cntxt_refused : in
        Capability writes refused (counted in REFUSED).
    """

    LATENCY = None      # a command takes its phases' cycles: see the docstring
    #: The command sequencer's class (planted-bug subclasses replace it in the formal tests).
    Sequencer = Sequencer

    def __init__(self, params):
        self.params = params
        p = params
        self.regmap = world_switch_regmap(params)
        self.regs = RegisterFile(params, self.regmap, pf_only=True)
        self.sequencer = self.Sequencer(params)
        self.banks = ContextBanks(params)
        self.meter = PhaseMeter()
        self.host_meter = HostSwitchMeter()
        self.scheduler = AutoScheduler(params)
        # Named here for the formal harness (tests/formal/world_switch_ownership.py).
        seq = self.sequencer
        self.movers, self.bank = self.banks.movers, self.banks.bank
        self.gpu_state, self.cur, self.ctx_valid = seq.state, seq.cur, seq.ctx_valid
        self.target, self.nxt = seq.target, seq.nxt
        self.shadow_fin, self.shadow_abt = seq.shadow_fin, seq.shadow_abt
        super().__init__({
            "cfg": In(RegBusSignature(params, self.regmap.addr_width)),
            "iov_cmd": In(ValidSignature(iov_command_layout())),
            "iov_done": Out(1),
            "iov_status": Out(IovStatus),
            "hang_irq": Out(1),
            "owner": Out(range(p.num_fns)),
            "owner_valid": Out(1),
            "seq_state": Out(SeqState),
            "num_vfs": In(range(p.num_vfs + 1)),
            "vf_enable": In(1),
            "flr": In(p.num_fns),
            "engine_busy": In(1),
            "engine_stop": Out(1),
            "has_work": In(p.num_fns),
            **context_set_members(p),
            "csa": In(region_layout(p)),
            "csa_locked": Out(1),
            "ctx_fault": In(1),
            "execute_refused": In(1),
            "cntxt_refused": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.regs = self.regs
        m.submodules.sequencer = seq = self.sequencer
        m.submodules.banks = banks = self.banks
        m.submodules.meter = self.meter
        m.submodules.host_meter = self.host_meter
        m.submodules.scheduler = self.scheduler
        wiring.connect(m, wiring.flipped(self.cfg), self.regs.bus)
        wiring.connect(m, seq.banks, banks.ctl)
        wiring.connect(m, seq.meter, self.meter.ctl)
        wiring.connect(m, seq.sched, self.scheduler.ctl)
        live = Signal(self.params.num_fns)      # functions that exist now
        m.d.comb += live.eq(Cat(Const(1), *[self.vf_enable & (k <= self.num_vfs)
                                            for k in range(1, self.params.num_fns)]))
        self._sequencer(m, live)
        self._banks(m)
        self._scheduler(m, live)
        self._meters(m)
        self._state_registers(m)
        return m

    def _sequencer(self, m, live):
        seq = self.sequencer
        wiring.connect(m, wiring.flipped(self.iov_cmd), seq.iov_cmd)
        m.d.comb += [seq.live.eq(live), seq.flr.eq(self.flr), seq.engine_busy.eq(self.engine_busy),
                     seq.ctx_fault.eq(self.ctx_fault), seq.csa_ok.eq(self._csa(m)),
                     seq.drain_timeout.eq(self.regs.f("DRAIN_TIMEOUT", "CYCLES")),
                     seq.overlap.eq(self.regs.f("SCHED", "OVERLAP")),
                     self.iov_done.eq(seq.done), self.iov_status.eq(seq.status),
                     self.hang_irq.eq(seq.hang_irq), self.engine_stop.eq(seq.engine_stop),
                     self.seq_state.eq(seq.step), self.csa_locked.eq(seq.csa_locked),
                     self.owner.eq(seq.cur), self.owner_valid.eq(seq.state == GpuState.RUNNING)]

    def _csa(self, m):
        """The CSA is the FB partition unit's active one: the PF programs it through CNTXT
        and it is locked while anything here depends on it. It must hold every function's
        context (a fixed stride apart, so no two contexts overlap); a guard at the FB port
        stops any mover access outside it all the same (ctx_fault). Returns "it does"."""
        p, regs = self.params, self.regs
        csa_base = Signal(len(regs.f("CSA_BASE", "BASE")))
        csa_ok = Signal()
        need = -(-csa_bytes(p) // p.fb_granule)
        m.d.sync += [csa_base.eq(Mux(self.csa.valid,
                                     self.csa.base << (p.granule_bits - CSA_UNIT_LOG2), 0)),
                     csa_ok.eq(self.csa.valid & (self.csa.size >= need))]
        m.d.comb += [regs.f("CSA_BASE", "BASE").eq(csa_base), regs.f("CSA_BASE", "OK").eq(csa_ok),
                     self.banks.csa_base.eq(csa_base),
                     self.banks.stride.eq(regs.f("CSA_STRIDE", "STRIDE"))]
        return csa_ok

    def _banks(self, m):
        banks = self.banks
        for name in ("mem", "mem_load", "shared_load", "state_wr", "state_rd"):
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(banks, name))
        m.d.comb += [banks.shared_in.eq(self.shared_in), self.state_rdata.eq(banks.state_rdata)]

    def _scheduler(self, m, live):
        sched, regs, n = self.scheduler, self.regs, self.params.num_fns
        m.d.comb += [sched.cur.eq(self.sequencer.cur), sched.live.eq(live),
                     sched.ctx_valid.eq(self.sequencer.ctx_valid), sched.flr.eq(self.flr),
                     sched.has_work.eq(self.has_work), sched.engine_busy.eq(self.engine_busy),
                     sched.liquid.eq(regs.f("SCHED", "LIQUID")),
                     sched.on_list.eq(Cat(*[regs.f("TIME_SLICE", "RUN", k) for k in range(n)]))]
        m.d.comb += [sched.slices[k].eq(regs.f("TIME_SLICE", "CYCLES", k)) for k in range(n)]

    def _meters(self, m):
        regs, meter, host = self.regs, self.meter, self.host_meter
        m.d.comb += [meter.clear_phase_max.eq(Cat(*[regs.written("PHASE_MAX", k)
                                                    for k in range(len(Phase))])),
                     meter.clear_switch_max.eq(regs.written("SWITCH_MAX")),
                     meter.clear_switches.eq(regs.written("SWITCHES")),
                     regs.f("SWITCH_LAST", "CYCLES").eq(meter.switch_last),
                     regs.f("SWITCH_MAX", "CYCLES").eq(meter.switch_max),
                     regs.f("SWITCHES", "COUNT").eq(meter.switches)]
        for k in range(len(Phase)):
            m.d.comb += [regs.f("PHASE_LAST", "CYCLES", k).eq(meter.phase_last[k]),
                         regs.f("PHASE_MAX", "CYCLES", k).eq(meter.phase_max[k])]
        wiring.connect(m, self.sequencer.taken, host.taken)
        m.d.comb += [host.done.eq(self.sequencer.done), host.status.eq(self.sequencer.status),
                     host.clear_max.eq(regs.written("HOST_SWITCH_MAX")),
                     host.clear_count.eq(regs.written("HOST_SWITCHES")),
                     regs.f("HOST_SWITCH_LAST", "CYCLES").eq(host.last),
                     regs.f("HOST_SWITCH_MAX", "CYCLES").eq(host.max),
                     regs.f("HOST_SWITCHES", "COUNT").eq(host.count)]
        clear = regs.written("REFUSED")
        for field, event in (("EXECUTE_BUSY", self.execute_refused),
                             ("CNTXT_LOCKED", self.cntxt_refused)):
            m.d.comb += regs.f("REFUSED", field).eq(saturating_counter(
                m, REFUSED_WIDTH, event, clear, name=f"refused_{field.lower()}"))

    def _state_registers(self, m):
        p, regs, seq = self.params, self.regs, self.sequencer
        w = REG_DATA_WIDTH
        m.d.comb += [regs.f("STATE", "GPU_STATE").eq(seq.state), regs.f("STATE", "CUR_FN").eq(seq.cur),
                     regs.f("STATE", "OWNER_VALID").eq(self.owner_valid),
                     regs.f("STATE", "AUTO").eq(seq.auto), regs.f("STATE", "BUSY").eq(seq.busy),
                     regs.f("STATE", "CSA_LOCKED").eq(seq.csa_locked),
                     regs.f("INFO", "CTX_BEATS").eq(p.ctx_beats),
                     regs.f("INFO", "MEM_WIDTH_LOG2").eq(p.mem_width.bit_length() - 1),
                     ] + [regs.f("CTX_VALID", "MASK", k).eq(seq.ctx_valid[w * k:w * (k + 1)])
                          for k in range(-(-p.num_fns // w))]
