"""The world switch: the GPU-IOV command interface, the save/restore sequence, and the
hardware scheduler that hands the GPU from one function to the next."""

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from rtl.params import FN_WIDTH, TIMER_WIDTH
from rtl.pcie.config_space import iov_command_layout
from rtl.common.counters import saturating_counter
from rtl.common.interfaces import FbMemSignature, RegBusSignature, ValidSignature, region_layout
from rtl.common.regmap import Access, Field, Register, RegisterFile, RegisterMap
from rtl.common.rr import first_after
from rtl.world_switch.save_restore import ContextMover, CtxOp

__all__ = ["WorldSwitch", "IovCommand", "IovStatus", "GpuState", "Phase", "SeqState",
           "world_switch_regmap", "fcn_id", "CSA_UNIT"]

#: The context save area base and stride are programmed in 4 KiB units.
CSA_UNIT = 4096
#: log2 of CSA_UNIT: the CSA address is an FB address in CSA_UNIT units.
CSA_UNIT_LOG2 = CSA_UNIT.bit_length() - 1


class IovCommand(enum.Enum, shape=4):
    """GPU-IOV commands (docs/sources.md#gpu-iov-commands)."""
    IDLE_GPU = 0x1
    SAVE_GPU_STATE = 0x2
    LOAD_GPU_STATE = 0x3
    RUN_GPU = 0x4
    CONTEXT_SWITCH = 0x5
    ENABLE_AUTO_HW_SWITCH = 0x6
    INIT_GPU = 0x7
    SAVE_RLCV_STATE = 0x8
    LOAD_RLCV_STATE = 0x9


class IovStatus(enum.Enum, shape=8):
    """CMD_STATUS codes. 0x00..0x15 are GPU-IOV's; GIM defines no error codes
    (docs/sources.md#gpu-iov-commands), so the
    0xEx codes are this model's, for commands it refuses."""
    COMMAND_DONE = 0x00
    GFX_HANG = 0x0E
    SDMA_HANG = 0x0F
    IDLING = 0x11
    SAVING = 0x12
    LOADING = 0x13
    ENABLING = 0x14
    INITING = 0x15
    #: The command is not legal in the GPU's state (LOAD while running, RUN of a function
    #: that is not loaded, LOAD of a context never saved or initialized, ...).
    ILLEGAL_STATE = 0xE1
    #: FCN_ID or NXT_FCN_ID names no live function (out of range, or VF not enabled).
    BAD_FUNCTION = 0xE2
    #: A command code the model does not implement (0, SAVE/LOAD_RLCV_STATE, 0xA..0xF).
    BAD_COMMAND = 0xE3
    #: A function-level reset of the function the command was moving cut it short.
    FLR_ABORTED = 0xE4
    #: SAVE, LOAD, INIT, CONTEXT_SWITCH or ENABLE_AUTO_HW_SWITCH without a context save area
    #: in FB that holds every function's context (CNTXT unset, SIZE too small, LOC = 1: a
    #: system-memory CSA is not modelled, or not yet active in the FB partition unit).
    NO_CSA = 0xE5
    #: A context mover's access fell outside the active CSA and was stopped at the FB port
    #: (cannot happen while CNTXT is locked; a guard, never a silent write elsewhere).
    CSA_FAULT = 0xE6


class GpuState(enum.Enum, shape=2):
    EMPTY = 0       #: no function's context is on the GPU
    LOADED = 1      #: ``cur``'s context is loaded; nobody owns the GPU yet
    RUNNING = 2     #: ``cur`` owns the GPU
    STOPPED = 3     #: ``cur`` was idled (drained, or hung); its context is still on the GPU


class Phase(enum.Enum, shape=2):
    """World-switch phases, the index of the per-phase cycle counters."""
    IDLE = 0
    SAVE = 1
    LOAD = 2
    RUN = 3


class SeqState(enum.Enum, shape=3):
    """Where the world-switch sequence is, cycle by cycle (the ``seq_state`` monitor port):
    what a timeline colours. READY: no sequence runs (the owner, if any, runs)."""
    READY = 0
    DRAIN = 1
    SAVE = 2
    LOAD = 3
    RUN = 4
    OVERLAP = 5
    SWAP = 6
    INIT = 7


def fcn_id(fn):
    """GPU-IOV's function id: PF 0x00, VF x 0x80 | x."""
    return 0 if fn == 0 else 0x80 | fn


_SLICE_OFFSET = 0x40


def world_switch_regmap(params):
    """The PF-only registers of the world switch."""
    csa_bits = max(params.fb_addr_width - CSA_UNIT_LOG2, 1)
    stride = -(-params.ctx_bytes // CSA_UNIT)
    cw = 32
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
            Field("GPU_STATE", 0, 2, Access.RO, "GpuState: 0 empty, 1 loaded, 2 running, 3 stopped"),
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
            count=4),
        Register("PHASE_MAX", 0x0C, (
            Field("CYCLES", 0, cw, Access.RC, "longest such phase; any write clears"),
        ), "Per phase: its longest duration since cleared.", count=4),
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
            Field("EXECUTE_BUSY", 0, 16, Access.RC, "CMD_CONTROL writes while a command ran "
                  "(saturating); any write clears both"),
            Field("CNTXT_LOCKED", 16, 16, Access.RC, "CNTXT writes while CSA_LOCKED "
                  "(saturating)"),
        ), "Capability writes refused to keep the running command and the saved contexts "
           "intact."),
        Register("CTX_VALID", 0x14, (
            Field("MASK", 0, 32, Access.RO, "bit b: function 32k + b has a saved or "
                  "initialized context (may be loaded)"),
        ), "Contexts that may be loaded, 32 functions per register.",
            count=-(-params.num_fns // 32)),
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
    """

    LATENCY = None      # a command takes its phases' cycles: see the docstring

    def __init__(self, params):
        self.params = params
        p = params
        self.regmap = world_switch_regmap(params)
        self.regs = RegisterFile(params, self.regmap, pf_only=True)
        #: Two context sets: the live one and a shadow the overlapped switch loads into.
        self.movers = [ContextMover(params), ContextMover(params)]
        mover = self.movers[0]
        #: Named here for the formal harness.
        self.gpu_state = Signal(GpuState)
        self.cur = Signal(range(p.num_fns))
        #: The function the current phase works on, the incoming one of a switch, and which
        #: mover's set is live (also for the harness).
        self.target = Signal(range(p.num_fns))
        self.nxt = Signal(range(p.num_fns))
        self.bank = Signal()
        #: Functions with a context that may be loaded; in an overlapped switch, the shadow
        #: set's load has ended (and was aborted) while the save goes on (also for the harness).
        self.ctx_valid = Signal(p.num_fns)
        self.shadow_fin = Signal()
        self.shadow_abt = Signal()
        super().__init__({
            "cfg": In(RegBusSignature(params, self.regmap.addr_width)),
            "iov_cmd": In(ValidSignature(iov_command_layout())),
            "iov_done": Out(1),
            "iov_status": Out(8),
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
            "mem": Out(FbMemSignature(p)),
            "mem_load": Out(FbMemSignature(p)),
            "shared_in": In(data.ArrayLayout(32, p.shared_regs)),
            "shared_load": Out(ValidSignature(mover.shared_load.payload.shape())),
            "state_wr": In(ValidSignature(mover.state_wr.payload.shape())),
            "state_rd": In(ValidSignature(mover.state_rd.payload.shape())),
            "state_rdata": Out(p.mem_width),
            "csa": In(region_layout(p)),
            "csa_locked": Out(1),
            "ctx_fault": In(1),
            "execute_refused": In(1),
            "cntxt_refused": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        n = p.num_fns
        regs = self.regs
        m.submodules.regs = regs
        wiring.connect(m, wiring.flipped(self.cfg), regs.bus)

        # --- The two context sets -------------------------------------------------------
        # `bank` names the mover whose engine-state memory is live ("act"); the other is the
        # shadow set ("sh"), which only an overlapped switch loads into. The live set always
        # uses the `mem` port, the shadow set `mem_load`; they swap when a switch ends.
        bank = self.bank
        cmd_layout = self.movers[0].cmd.payload.shape()
        act_cmd, sh_cmd = Signal(cmd_layout), Signal(cmd_layout)
        act_valid, sh_valid, act_abort, sh_abort = Signal(), Signal(), Signal(), Signal()
        for k, mv in enumerate(self.movers):
            m.submodules[f"mover{k}"] = mv
            live_k = bank == k
            m.d.comb += [
                mv.cmd.valid.eq(Mux(live_k, act_valid, sh_valid)),
                mv.cmd.payload.eq(Mux(live_k, act_cmd.as_value(), sh_cmd.as_value())),
                mv.abort.eq(Mux(live_k, act_abort, sh_abort)),
                mv.shared_in.eq(self.shared_in),
                mv.state_wr.valid.eq(self.state_wr.valid & live_k),
                mv.state_wr.payload.eq(self.state_wr.payload),
                mv.state_rd.valid.eq(self.state_rd.valid & live_k),
                mv.state_rd.payload.eq(self.state_rd.payload),
                mv.mem.req.ready.eq(Mux(live_k, self.mem.req.ready, self.mem_load.req.ready)),
                mv.mem.resp.valid.eq(Mux(live_k, self.mem.resp.valid, self.mem_load.resp.valid)),
                mv.mem.resp.payload.eq(Mux(live_k, self.mem.resp.payload.as_value(),
                                           self.mem_load.resp.payload.as_value())),
            ]
        m0, m1 = self.movers

        def live_of(get):
            return Mux(bank, get(m1), get(m0))

        def shadow_of(get):
            return Mux(bank, get(m0), get(m1))

        for port, of in ((self.mem, live_of), (self.mem_load, shadow_of)):
            m.d.comb += [port.req.valid.eq(of(lambda mv: mv.mem.req.valid)),
                         port.req.payload.eq(of(lambda mv: mv.mem.req.payload.as_value()))]
        act_done, act_aborted = live_of(lambda mv: mv.done), live_of(lambda mv: mv.aborted)
        sh_done, sh_aborted = shadow_of(lambda mv: mv.done), shadow_of(lambda mv: mv.aborted)
        m.d.comb += self.state_rdata.eq(live_of(lambda mv: mv.state_rdata))

        # Shared-register beats: the live set's go straight out; the shadow set's are kept
        # and replayed after the swap (the live registers are still being saved till then).
        shared_layout = self.shared_load.payload.shape()
        shadow_beats = Array(Signal(p.mem_width, name=f"shadow_shared_{k}")
                             for k in range(p.shared_beats))
        sh_shared = shadow_of(lambda mv: Cat(mv.shared_load.valid,
                                             mv.shared_load.payload.as_value()))
        sh_shared_view = data.View(shared_layout, sh_shared[1:])
        with m.If(sh_shared[0]):
            m.d.sync += shadow_beats[sh_shared_view.beat].eq(sh_shared_view.data)
        replaying = Signal()
        replay_beat = Signal(range(max(p.shared_beats, 2)))
        live_shared = live_of(lambda mv: Cat(mv.shared_load.valid,
                                             mv.shared_load.payload.as_value()))
        with m.If(replaying):
            m.d.comb += [self.shared_load.valid.eq(1),
                         self.shared_load.payload.beat.eq(replay_beat),
                         self.shared_load.payload.data.eq(shadow_beats[replay_beat])]
        with m.Else():
            m.d.comb += [self.shared_load.valid.eq(live_shared[0]),
                         self.shared_load.payload.eq(live_shared[1:])]

        # --- State ------------------------------------------------------------------------
        state, cur = self.gpu_state, self.cur
        ctx_valid = self.ctx_valid          # function n has a context that may be loaded
        ctx_set = Signal(n)
        auto = Signal()
        flr = self.flr
        live = Signal(n)                    # functions that exist now
        m.d.comb += live.eq(Cat(Const(1), *[self.vf_enable & (k <= self.num_vfs)
                                            for k in range(1, n)]))
        m.d.comb += [self.owner.eq(cur), self.owner_valid.eq(state == GpuState.RUNNING)]

        # An FLR invalidates the function's context wherever it is; one on the GPU leaves
        # it (the sequence below also sees the FLR and ends what it was doing for it).
        m.d.sync += ctx_valid.eq((ctx_valid | ctx_set) & ~flr)
        flr_cur = self._flr_takes_off(flr, cur, state)

        # --- The command latch: a command may arrive while an automatic switch runs -------
        cmd_valid = Signal()
        cmd = Signal(iov_command_layout())
        with m.If(self.iov_cmd.valid):
            m.d.sync += [cmd_valid.eq(1), cmd.eq(self.iov_cmd.payload)]

        def decode_fn(fid, name):
            """(function, it is live) of a GPU-IOV function id."""
            index = fid[:FN_WIDTH]
            fn = Signal.like(cur, name=name)
            m.d.comb += fn.eq(Mux(fid == 0, 0, index))
            in_range = (fid == 0) | (fid[FN_WIDTH] & (index >= 1) & (index <= p.num_vfs))
            return fn, in_range & live.bit_select(fn, 1)

        c_fn, c_fn_ok = decode_fn(cmd.fcn_id, "c_fn")
        c_nxt, c_nxt_ok = decode_fn(cmd.nxt_fcn_id, "c_nxt")
        is_cur = c_fn == cur

        # --- Cycle counters -----------------------------------------------------------------
        count = Signal(32)                  # cycles in the current phase, from 0
        switch_count = Signal(32)           # cycles since the switch began, from 0
        m.d.sync += [count.eq(count + 1), switch_count.eq(switch_count + 1)]
        phase_regs = []
        for k in range(len(Phase)):
            last, mx = Signal(32, name=f"phase_last_{k}"), Signal(32, name=f"phase_max_{k}")
            m.d.comb += [regs.f("PHASE_LAST", "CYCLES", k).eq(last),
                         regs.f("PHASE_MAX", "CYCLES", k).eq(mx)]
            with m.If(regs.written("PHASE_MAX", k)):
                m.d.sync += mx.eq(0)
            phase_regs.append((last, mx))
        sw_last, sw_max, switches = Signal(32), Signal(32), Signal(32)
        m.d.comb += [regs.f("SWITCH_LAST", "CYCLES").eq(sw_last),
                     regs.f("SWITCH_MAX", "CYCLES").eq(sw_max),
                     regs.f("SWITCHES", "COUNT").eq(switches)]
        with m.If(regs.written("SWITCH_MAX")):
            m.d.sync += sw_max.eq(0)
        with m.If(regs.written("SWITCHES")):
            m.d.sync += switches.eq(0)

        def record(last, mx, cycles):
            """A duration into its LAST and MAX counters."""
            with m.If(cycles > mx):
                m.d.sync += mx.eq(cycles)
            m.d.sync += last.eq(cycles)

        def record_phase(phase):
            """Record a phase that ends in this cycle while another goes on (overlapped)."""
            record(*phase_regs[phase.value], count + 1)

        def end_phase(phase):
            """Record the phase that ends in this cycle; the next one counts from 0."""
            record_phase(phase)
            m.d.sync += count.eq(0)

        # --- Where contexts live ------------------------------------------------------------
        target = self.target                # the function the current phase works on
        nxt = self.nxt                      # the incoming function of a switch
        switching = Signal()                # after this phase: LOAD nxt, then RUN
        # The CSA is the FB partition unit's active one: the PF programs it through CNTXT
        # and it is locked while anything here depends on it. It must hold every function's
        # context (a fixed stride apart, so no two contexts overlap); a guard at the FB port
        # stops any mover access outside it all the same (ctx_fault).
        unit_log2 = CSA_UNIT.bit_length() - 1
        csa_base = Signal(len(regs.f("CSA_BASE", "BASE")))
        csa_ok = Signal()
        stride = regs.f("CSA_STRIDE", "STRIDE")
        need = -(-(n * self.regmap["CSA_STRIDE"].field("STRIDE").reset * CSA_UNIT)
                 // p.fb_granule)
        m.d.sync += [csa_base.eq(Mux(self.csa.valid, self.csa.base << (p.granule_bits - unit_log2),
                                     0)),
                     csa_ok.eq(self.csa.valid & (self.csa.size >= need))]
        m.d.comb += [regs.f("CSA_BASE", "BASE").eq(csa_base), regs.f("CSA_BASE", "OK").eq(csa_ok)]
        # Registered (the multiply is slow): a mover starts in its phase's second cycle.
        m.d.sync += [act_cmd.base.eq((csa_base + target * stride) << unit_log2),
                     sh_cmd.base.eq((csa_base + nxt * stride) << unit_log2)]
        # A fault stops both movers; the sequence ends after the phase (see ``faulted``).
        faulted = Signal()
        m.d.comb += [sh_cmd.op.eq(CtxOp.LOAD),
                     act_abort.eq(flr.bit_select(target, 1) | self.ctx_fault),
                     sh_abort.eq(flr.bit_select(nxt, 1) | self.ctx_fault)]

        # --- Auto mode: the next function to run ----------------------------------------
        slices = Array(regs.f("TIME_SLICE", "CYCLES", k) for k in range(n))
        on_list = Cat(*[regs.f("TIME_SLICE", "RUN", k) for k in range(n)])
        liquid = regs.f("SCHED", "LIQUID")
        overlap = regs.f("SCHED", "OVERLAP")
        candidates = Signal(n)
        m.d.comb += candidates.eq(on_list & ctx_valid & live & ~flr &
                                  Mux(liquid, self.has_work, Const((1 << n) - 1, n)))
        # Round robin after cur: the lowest candidate above cur, else the lowest at all.
        # Registered: the choice is a cycle old when used (a candidate that just left is
        # caught by LOAD's own check of its context).
        any_next, next_comb = first_after(m, candidates, cur, "auto")
        next_fn, has_next = Signal.like(cur), Signal()
        m.d.sync += [next_fn.eq(next_comb), has_next.eq(any_next & (next_comb != cur))]
        slice_count = Signal(TIMER_WIDTH)
        # The owner's slice, registered (a cycle behind cur and the registers; cur changes
        # at the end of a LOAD, at least a cycle before its slice starts).
        cur_slice = Signal(TIMER_WIDTH)
        m.d.sync += cur_slice.eq(slices[cur])
        slice_over = Signal()
        m.d.comb += slice_over.eq(
            (slice_count + 1 >= cur_slice) |
            (liquid & ~self.has_work.bit_select(cur, 1) & ~self.engine_busy))

        # --- The sequence -----------------------------------------------------------------
        status = Signal(8)
        host = Signal()                     # the running sequence is a host command
        busy = Signal()
        m.d.comb += self.iov_status.eq(status)
        m.d.sync += [self.iov_done.eq(0), self.hang_irq.eq(0)]
        m.d.comb += [regs.f("STATE", "GPU_STATE").eq(state), regs.f("STATE", "CUR_FN").eq(cur),
                     regs.f("STATE", "OWNER_VALID").eq(self.owner_valid),
                     regs.f("STATE", "AUTO").eq(auto), regs.f("STATE", "BUSY").eq(busy),
                     regs.f("INFO", "CTX_BEATS").eq(p.ctx_beats),
                     regs.f("INFO", "MEM_WIDTH_LOG2").eq(p.mem_width.bit_length() - 1),
                     ] + [regs.f("CTX_VALID", "MASK", k).eq(ctx_valid[32 * k:32 * (k + 1)])
                          for k in range(-(-n // 32))]

        def finish(code):
            """End the sequence; a host command reports ``code``."""
            with m.If(host):
                m.d.sync += [status.eq(code), self.iov_done.eq(1), host.eq(0)]
            m.d.sync += switching.eq(0)

        def phase_status(code):
            with m.If(host):
                m.d.sync += status.eq(code)

        def stop(code, new_state):
            """End whatever runs, host command or automatic switch, leaving the GPU in
            ``new_state``: a drain timeout or a CSA fault. Auto mode ends: the PF has to look."""
            m.d.sync += [state.eq(new_state), self.hang_irq.eq(1), auto.eq(0),
                         switching.eq(0), host.eq(0), self.iov_done.eq(1), status.eq(code)]
            m.next = "READY"

        # A mover access the FB port stopped (outside the active CSA) ends the sequence once
        # the movers have stopped, never goes on to overwrite a context that was not saved.
        # (Set by a fault pulse, cleared in READY, where no mover runs.)
        with m.If(self.ctx_fault):
            m.d.sync += faulted.eq(1)
        fault_now = faulted | self.ctx_fault
        saved = ~act_aborted & ~fault_now        # the live mover's context is whole in FB

        def start_mover(op, zero):
            """The live set's mover takes the command in the phase's second cycle (the first
            sets up its address); the phase waits for its done."""
            started = Signal(name=f"started_{op.name.lower()}_{int(zero)}")
            m.d.comb += [busy.eq(1), act_cmd.op.eq(op), act_cmd.zero.eq(zero),
                         act_valid.eq(~started & (count != 0))]
            with m.If(count != 0):
                m.d.sync += started.eq(~act_done)

        with m.FSM(name="ws") as fsm:
            with m.State("READY"):
                m.d.sync += faulted.eq(0)
                with m.If(cmd_valid):
                    m.d.sync += [cmd_valid.eq(0), count.eq(0), switch_count.eq(0)]
                    self._decode(m, SimpleNamespace(
                        cmd=cmd, fn=c_fn, fn_ok=c_fn_ok, nxt_fn=c_nxt, nxt_ok=c_nxt_ok,
                        is_cur=is_cur, state=state, auto=auto, ctx_valid=ctx_valid,
                        csa_ok=csa_ok, status=status, host=host, target=target, nxt=nxt,
                        switching=switching, slice_count=slice_count, cur=cur,
                        done=self.iov_done))
                with m.Elif(auto & (state == GpuState.RUNNING)):
                    m.d.sync += slice_count.eq(slice_count + 1)
                    with m.If(slice_over & has_next):
                        # An automatic switch: the same sequence as CONTEXT_SWITCH.
                        m.d.sync += [target.eq(cur), nxt.eq(next_fn), switching.eq(1),
                                     count.eq(0), switch_count.eq(0)]
                        m.next = "DRAIN"
                    with m.Elif(slice_over):
                        m.d.sync += slice_count.eq(0)     # nobody else: a new slice
                with m.Elif(auto & (state == GpuState.EMPTY) & has_next):
                    # The owner was reset: load the next one; there is nothing to save.
                    m.d.sync += [target.eq(next_fn), nxt.eq(next_fn), switching.eq(1),
                                 count.eq(0), switch_count.eq(0)]
                    m.next = "LOAD"

            with m.State("DRAIN"):
                m.d.comb += [self.engine_stop.eq(1), busy.eq(1)]
                with m.If(flr.bit_select(target, 1)):
                    end_phase(Phase.IDLE)
                    with m.If(switching):
                        m.d.sync += target.eq(nxt)
                        phase_status(IovStatus.LOADING)
                        m.next = "LOAD"
                    with m.Else():
                        finish(IovStatus.FLR_ABORTED)
                        m.next = "READY"
                with m.Elif(~self.engine_busy):
                    m.d.sync += state.eq(GpuState.STOPPED)
                    end_phase(Phase.IDLE)
                    # Switching a function to itself reloads what it just saved: serial.
                    with m.If(switching & overlap & (nxt != target)):
                        phase_status(IovStatus.SAVING)
                        m.next = "OVERLAP"
                    with m.Elif(switching):
                        phase_status(IovStatus.SAVING)
                        m.next = "SAVE"
                    with m.Else():
                        finish(IovStatus.COMMAND_DONE)
                        m.next = "READY"
                with m.Elif(count + 1 >= regs.f("DRAIN_TIMEOUT", "CYCLES")):
                    stop(IovStatus.GFX_HANG, GpuState.STOPPED)
                    end_phase(Phase.IDLE)

            with m.State("SAVE"):
                start_mover(CtxOp.SAVE, zero=False)
                with m.If(act_done):
                    end_phase(Phase.SAVE)
                    with m.If(saved):
                        m.d.comb += ctx_set.eq(1 << target)
                        m.d.sync += state.eq(GpuState.EMPTY)
                    with m.If(fault_now):
                        stop(IovStatus.CSA_FAULT, GpuState.STOPPED)   # still on the GPU
                    with m.Elif(switching):
                        m.d.sync += target.eq(nxt)
                        phase_status(IovStatus.LOADING)
                        m.next = "LOAD"
                    with m.Else():
                        finish(Mux(act_aborted, IovStatus.FLR_ABORTED, IovStatus.COMMAND_DONE))
                        m.next = "READY"

            with m.State("LOAD"):
                start_mover(CtxOp.LOAD, zero=False)
                with m.If(act_done):
                    end_phase(Phase.LOAD)
                    # The incoming context may have been reset after the command was
                    # checked, before the mover started: then it was aborted at once. One
                    # reset in the mover's last cycle finds it done, not aborted, and
                    # ctx_valid not yet cleared: the FLR itself is checked too.
                    with m.If(fault_now):
                        stop(IovStatus.CSA_FAULT, GpuState.EMPTY)
                    with m.Elif(act_aborted | ~ctx_valid.bit_select(target, 1) |
                                flr.bit_select(target, 1)):
                        m.d.sync += state.eq(GpuState.EMPTY)
                        finish(IovStatus.FLR_ABORTED)
                        m.next = "READY"
                    with m.Else():
                        m.d.sync += [state.eq(GpuState.LOADED), cur.eq(target)]
                        with m.If(switching):
                            phase_status(IovStatus.ENABLING)
                            m.next = "RUN"
                        with m.Else():
                            finish(IovStatus.COMMAND_DONE)
                            m.next = "READY"

            with m.State("RUN"):
                m.d.comb += busy.eq(1)
                # Checked again here: an FLR in the cycle RUN_GPU was decoded took the
                # context off the GPU (EMPTY) without ending the command.
                with m.If(flr.bit_select(cur, 1) | ~self._context_loaded(state)):
                    m.d.sync += state.eq(GpuState.EMPTY)
                    finish(IovStatus.FLR_ABORTED)
                with m.Else():
                    m.d.sync += [state.eq(GpuState.RUNNING), slice_count.eq(0)]
                    with m.If(switching):
                        record(sw_last, sw_max, switch_count + 1)
                        m.d.sync += switches.eq(switches + 1)
                    finish(IovStatus.COMMAND_DONE)
                end_phase(Phase.RUN)
                m.next = "READY"

            with m.State("OVERLAP"):
                # Save the outgoing context from the live set and load the incoming one into
                # the shadow set at the same time, each on its own memory port.
                m.d.comb += busy.eq(1)
                started = Signal(name="started_overlap")     # both movers, together
                a_fin, a_abt, s_fin, s_abt = Signal(), Signal(), self.shadow_fin, self.shadow_abt
                m.d.comb += [act_cmd.op.eq(CtxOp.SAVE), act_valid.eq(~started & (count != 0)),
                             sh_valid.eq(~started & (count != 0))]
                with m.If(count != 0):
                    m.d.sync += started.eq(1)
                with m.If(act_done):
                    m.d.sync += [a_fin.eq(1), a_abt.eq(~saved)]
                    record_phase(Phase.SAVE)
                    with m.If(saved):
                        m.d.comb += ctx_set.eq(1 << target)
                with m.If(sh_done):
                    m.d.sync += [s_fin.eq(1), s_abt.eq(sh_aborted)]
                    record_phase(Phase.LOAD)
                # (An FLR of nxt in this very cycle has not cleared its ctx_valid yet.)
                load_failed = (Mux(sh_done, sh_aborted, s_abt) | ~ctx_valid.bit_select(nxt, 1) |
                               flr.bit_select(nxt, 1))
                save_failed = Mux(act_done, ~saved, a_abt)
                with m.If((a_fin | act_done) & (s_fin | sh_done)):
                    m.d.sync += [started.eq(0), a_fin.eq(0), s_fin.eq(0),
                                 count.eq(0), state.eq(GpuState.EMPTY)]
                    with m.If(fault_now):
                        # The live set still holds the outgoing context unless it was saved.
                        stop(IovStatus.CSA_FAULT,
                             Mux(save_failed, GpuState.STOPPED, GpuState.EMPTY))
                    with m.Elif(load_failed):
                        finish(IovStatus.FLR_ABORTED)
                        m.next = "READY"
                    with m.Else():
                        m.d.sync += [bank.eq(~bank), replay_beat.eq(0)]
                        phase_status(IovStatus.ENABLING)
                        m.next = "SWAP"

            with m.State("SWAP"):
                # The shadow set is live now; its shared registers go out, one beat a cycle.
                m.d.comb += [busy.eq(1), replaying.eq(1)]
                m.d.sync += replay_beat.eq(replay_beat + 1)
                with m.If(flr.bit_select(nxt, 1)):
                    finish(IovStatus.FLR_ABORTED)
                    m.next = "READY"
                with m.Elif(replay_beat == p.shared_beats - 1):
                    m.d.sync += [state.eq(GpuState.LOADED), cur.eq(nxt)]
                    m.next = "RUN"

            with m.State("INIT"):
                start_mover(CtxOp.SAVE, zero=True)
                with m.If(act_done):
                    m.d.sync += count.eq(0)
                    with m.If(saved):
                        m.d.comb += ctx_set.eq(1 << target)
                    with m.If(fault_now):
                        stop(IovStatus.CSA_FAULT, state)
                    with m.Else():
                        finish(Mux(act_aborted, IovStatus.FLR_ABORTED, IovStatus.COMMAND_DONE))
                        m.next = "READY"

        # --- CNTXT is read-only while anything here depends on the CSA -----------------
        m.d.comb += self.csa_locked.eq(ctx_valid.any() | (state != GpuState.EMPTY) | cmd_valid |
                                       ~fsm.ongoing("READY") | auto)
        m.d.comb += regs.f("STATE", "CSA_LOCKED").eq(self.csa_locked)
        clear = regs.written("REFUSED")
        for field, event in (("EXECUTE_BUSY", self.execute_refused),
                             ("CNTXT_LOCKED", self.cntxt_refused)):
            m.d.comb += regs.f("REFUSED", field).eq(saturating_counter(
                m, 16, event, clear, name=f"refused_{field.lower()}"))

        # --- Host-driven switches: IDLE(A), SAVE(A), LOAD(B), RUN(B), each done, in a row --
        # Judged as each command ends (iov_done, with its final status and code), so every
        # way a command can end (refused, failed, aborted) breaks the sequence.
        host_cmd = Signal(IovCommand, init=IovCommand.IDLE_GPU)
        host_step = Signal(range(4))
        hs_cycles, hs_last, hs_max, hs_count = Signal(32), Signal(32), Signal(32), Signal(32)
        m.d.comb += [regs.f("HOST_SWITCH_LAST", "CYCLES").eq(hs_last),
                     regs.f("HOST_SWITCH_MAX", "CYCLES").eq(hs_max),
                     regs.f("HOST_SWITCHES", "COUNT").eq(hs_count)]
        m.d.sync += hs_cycles.eq(hs_cycles + 1)
        with m.If(fsm.ongoing("READY") & cmd_valid):
            m.d.sync += host_cmd.eq(cmd.command)
            with m.If(cmd.command == IovCommand.IDLE_GPU):
                m.d.sync += hs_cycles.eq(0)
        with m.If(regs.written("HOST_SWITCH_MAX")):
            m.d.sync += hs_max.eq(0)
        with m.If(regs.written("HOST_SWITCHES")):
            m.d.sync += hs_count.eq(0)
        done_ok = status == IovStatus.COMMAND_DONE
        steps = (IovCommand.IDLE_GPU, IovCommand.SAVE_GPU_STATE, IovCommand.LOAD_GPU_STATE,
                 IovCommand.RUN_GPU)
        with m.If(self.iov_done):
            m.d.sync += host_step.eq(0)
            for k, step in enumerate(steps):
                # IDLE_GPU starts a sequence whatever came before; the others continue one.
                in_turn = done_ok & (host_cmd == step) & ((host_step == k) if k else 1)
                with m.If(in_turn):
                    if k + 1 < len(steps):
                        m.d.sync += host_step.eq(k + 1)
                    else:
                        record(hs_last, hs_max, hs_cycles + 1)
                        m.d.sync += hs_count.eq(hs_count + 1)

        for seq in SeqState:
            with m.If(fsm.ongoing(seq.name)):
                m.d.comb += self.seq_state.eq(seq)
        # Last, so that it wins over the sequence: an FLR takes its function off the GPU.
        with m.If(flr_cur):
            m.d.sync += state.eq(GpuState.EMPTY)
        return m

    # The two rules below are methods of their own so that the formal harness
    # (tests/formal/world_switch_ownership.py) can be shown to catch them broken: planted-bug
    # subclasses in tests/formal/world_switch_mutants.py override them.

    @staticmethod
    def _context_loaded(state):
        """``cur``'s context is loaded and nobody owns the GPU: RUN may give it to ``cur``."""
        return state == GpuState.LOADED

    @staticmethod
    def _flr_takes_off(flr, cur, state):
        """An FLR of the function on the GPU takes it off (whatever its state)."""
        return flr.bit_select(cur, 1) & (state != GpuState.EMPTY)

    def _decode(self, m, c):
        """Check a host command (``c``: the signals it reads and writes, by name); start it,
        or end it at once with the reason it is refused."""
        known = Signal()
        legal = Signal()
        needs_nxt = Signal()
        needs_csa = Signal()
        running = c.state == GpuState.RUNNING
        with m.Switch(c.cmd.command):
            with m.Case(IovCommand.IDLE_GPU):
                # In auto mode the owner changes under the host's feet: IDLE_GPU of any
                # function idles whoever owns the GPU and ends auto mode.
                m.d.comb += [known.eq(1), legal.eq(running & (c.is_cur | c.auto))]
            with m.Case(IovCommand.SAVE_GPU_STATE):
                m.d.comb += [known.eq(1), needs_csa.eq(1),
                             legal.eq(~c.auto & (c.state == GpuState.STOPPED) & c.is_cur)]
            with m.Case(IovCommand.LOAD_GPU_STATE):
                m.d.comb += [known.eq(1), needs_csa.eq(1),
                             legal.eq(~c.auto & (c.state == GpuState.EMPTY) &
                                      c.ctx_valid.bit_select(c.fn, 1))]
            with m.Case(IovCommand.RUN_GPU):
                m.d.comb += [known.eq(1), legal.eq(~c.auto & self._context_loaded(c.state) & c.is_cur)]
            with m.Case(IovCommand.CONTEXT_SWITCH):
                m.d.comb += [known.eq(1), needs_nxt.eq(1), needs_csa.eq(1),
                             legal.eq(~c.auto & running & c.is_cur &
                                      c.ctx_valid.bit_select(c.nxt_fn, 1))]
            with m.Case(IovCommand.ENABLE_AUTO_HW_SWITCH):
                m.d.comb += [known.eq(1), needs_csa.eq(1), legal.eq(~c.auto & running & c.is_cur)]
            with m.Case(IovCommand.INIT_GPU):
                m.d.comb += [known.eq(1), needs_csa.eq(1),
                             legal.eq(~((c.state != GpuState.EMPTY) & c.is_cur))]

        def refuse(code):
            m.d.sync += [c.status.eq(code), c.done.eq(1)]

        with m.If(~known):
            refuse(IovStatus.BAD_COMMAND)
        with m.Elif(~c.fn_ok | (needs_nxt & ~c.nxt_ok)):
            refuse(IovStatus.BAD_FUNCTION)
        with m.Elif(needs_csa & ~c.csa_ok):
            refuse(IovStatus.NO_CSA)
        with m.Elif(~legal):
            refuse(IovStatus.ILLEGAL_STATE)
        with m.Else():
            m.d.sync += [c.host.eq(1), c.switching.eq(0)]
            with m.Switch(c.cmd.command):
                with m.Case(IovCommand.IDLE_GPU):
                    m.d.sync += [c.target.eq(c.cur), c.auto.eq(0), c.status.eq(IovStatus.IDLING)]
                    m.next = "DRAIN"
                with m.Case(IovCommand.SAVE_GPU_STATE):
                    m.d.sync += [c.target.eq(c.cur), c.status.eq(IovStatus.SAVING)]
                    m.next = "SAVE"
                with m.Case(IovCommand.LOAD_GPU_STATE):
                    m.d.sync += [c.target.eq(c.fn), c.status.eq(IovStatus.LOADING)]
                    m.next = "LOAD"
                with m.Case(IovCommand.RUN_GPU):
                    m.d.sync += [c.target.eq(c.cur), c.status.eq(IovStatus.ENABLING)]
                    m.next = "RUN"
                with m.Case(IovCommand.CONTEXT_SWITCH):
                    m.d.sync += [c.target.eq(c.cur), c.nxt.eq(c.nxt_fn), c.switching.eq(1),
                                 c.status.eq(IovStatus.IDLING)]
                    m.next = "DRAIN"
                with m.Case(IovCommand.ENABLE_AUTO_HW_SWITCH):
                    m.d.sync += [c.auto.eq(1), c.slice_count.eq(0), c.host.eq(0),
                                 c.status.eq(IovStatus.COMMAND_DONE), c.done.eq(1)]
                with m.Case(IovCommand.INIT_GPU):
                    m.d.sync += [c.target.eq(c.fn), c.status.eq(IovStatus.INITING)]
                    m.next = "INIT"
