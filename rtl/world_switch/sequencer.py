"""The world switch's command sequencer: checks each GPU-IOV command against the GPU's
state and runs it, or an automatic switch, phase by phase (drain, save, load, run)."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.common.interfaces import ValidSignature
from rtl.params import FN_WIDTH, TIMER_WIDTH
from rtl.world_switch.banks import BankControlSignature
from rtl.common.iov_codes import (GpuState, IovCommand, IovStatus, Phase, SeqState,
                                  iov_command_layout)
from rtl.world_switch.meters import PhaseMeterSignature
from rtl.world_switch.save_restore import CtxOp
from rtl.world_switch.scheduler import SliceSignature

__all__ = ["Sequencer"]


class Sequencer(wiring.Component):
    """The GPU's state machine: whose context is on the GPU, and the sequence that moves it.

    A command from ``iov_cmd`` is latched (it may arrive while an automatic switch runs) and
    decoded once the sequence is READY: refused in the next cycle (BAD_COMMAND,
    BAD_FUNCTION, NO_CSA, ILLEGAL_STATE, in that order of checks) or started. Each runs
    through the states DRAIN, SAVE, LOAD, RUN (OVERLAP and SWAP for an overlapped switch,
    INIT for INIT_GPU) as :class:`~rtl.world_switch.world_switch.WorldSwitch` documents, and
    ends with a one-cycle ``done`` and its ``status``. In auto mode, READY starts a switch to
    ``sched.next_fn`` once ``sched.over`` (the same sequence as CONTEXT_SWITCH).

    An FLR (``flr``) of the function on the GPU takes it off at once (EMPTY); of a function a
    phase works on, ends that phase (its mover aborts); of any function, invalidates its
    context (``ctx_valid``).

    Attributes
    ----------
    iov_cmd : flow of iov_command_layout, in
    done : out; status : IovStatus, out
        A host command ended (one-cycle pulse), and how; while one runs, ``status`` shows
        its phase (IDLING, SAVING, LOADING, ENABLING, INITING).
    hang_irq : out
        Pulse: a drain timed out (GFX_HANG) or a mover hit the CSA guard (CSA_FAULT).
    taken : flow of IovCommand, out
        The latched command leaves for decode (for :class:`HostSwitchMeter`).
    live, flr : num_fns bits, in
        Functions that exist; function-level resets.
    engine_busy : in; engine_stop : out
        The drain handshake.
    ctx_fault : in
        A mover access fell outside the active CSA (stopped at the FB port).
    csa_ok : in
        An active FB CSA holds every function's context.
    drain_timeout : in
        DRAIN_TIMEOUT.CYCLES.
    overlap : in
        SCHED.OVERLAP: switches to another function overlap save and load.
    state : GpuState, out; cur : out
        The GPU's state and the function whose context is on it.
    ctx_valid : num_fns bits, out
        Functions with a context that may be loaded.
    auto, busy, csa_locked : out
        Auto mode runs; a sequence runs; CNTXT must stay as it is.
    step : SeqState, out
        Where the sequence is.
    banks : BankControlSignature, out
    meter : PhaseMeterSignature, out
    sched : SliceSignature, out

    Latency: a command is decoded the cycle after ``iov_cmd`` (from READY); a refusal ends
    it in the next. A phase's first cycle sets up the mover's address; the mover starts in
    the second.
    """

    LATENCY = None      # a command takes its phases' cycles

    def __init__(self, params):
        self.params = params
        n = params.num_fns
        #: The function the current phase works on, and the incoming one of a switch.
        self.target = Signal(range(n))
        self.nxt = Signal(range(n))
        #: In an overlapped switch: the shadow set's load has ended (and was aborted),
        #: while the save goes on.
        self.shadow_fin = Signal()
        self.shadow_abt = Signal()
        self._host = Signal()            # the running sequence is a host command
        self._switching = Signal()       # after this phase: LOAD nxt, then RUN
        self._cmd_valid = Signal()
        self._cmd = Signal(iov_command_layout())
        self._faulted = Signal()         # a CSA fault was seen in this sequence
        self._ctx_set = Signal(n)        # contexts made whole in this cycle
        super().__init__({
            "iov_cmd": In(ValidSignature(iov_command_layout())),
            "done": Out(1), "status": Out(IovStatus), "hang_irq": Out(1),
            "taken": Out(ValidSignature(IovCommand)),
            "live": In(n), "flr": In(n),
            "engine_busy": In(1), "engine_stop": Out(1),
            "ctx_fault": In(1), "csa_ok": In(1),
            "drain_timeout": In(TIMER_WIDTH), "overlap": In(1),
            "state": Out(GpuState), "cur": Out(range(n)), "ctx_valid": Out(n),
            "auto": Out(1), "busy": Out(1), "csa_locked": Out(1), "step": Out(SeqState),
            "banks": Out(BankControlSignature(params)),
            "meter": Out(PhaseMeterSignature()),
            "sched": Out(SliceSignature(params)),
        })

    # --- helpers the states share -----------------------------------------------------------

    @property
    def _count(self):
        """Cycles in the current phase, from 0."""
        return self.meter.count

    def _end_phase(self, m, phase, *, restart=True):
        """Record ``phase`` as ending in this cycle; unless an overlapped phase goes on
        (``restart=False``), the next phase counts from 0."""
        m.d.comb += self.meter.record[phase.value].eq(1)
        if restart:
            m.d.comb += self.meter.restart.eq(1)

    def _finish(self, m, code):
        """End the sequence; a host command reports ``code``."""
        with m.If(self._host):
            m.d.sync += [self.status.eq(code), self.done.eq(1), self._host.eq(0)]
        m.d.sync += self._switching.eq(0)

    def _phase_status(self, m, code):
        with m.If(self._host):
            m.d.sync += self.status.eq(code)

    def _stop(self, m, code, new_state):
        """End whatever runs, host command or automatic switch, leaving the GPU in
        ``new_state``: a drain timeout or a CSA fault. Auto mode ends: the PF has to look."""
        m.d.sync += [self.state.eq(new_state), self.hang_irq.eq(1), self.auto.eq(0),
                     self._switching.eq(0), self._host.eq(0), self.done.eq(1),
                     self.status.eq(code)]
        m.next = "READY"

    def _start_mover(self, m, op, zero):
        """The live set's mover takes the command in the phase's second cycle (the first
        sets up its address); the phase waits for its done."""
        live = self.banks.live
        started = Signal(name=f"started_{op.name.lower()}_{int(zero)}")
        m.d.comb += [self.busy.eq(1), live.op.eq(op), live.zero.eq(zero),
                     live.valid.eq(~started & (self._count != 0))]
        with m.If(self._count != 0):
            m.d.sync += started.eq(~live.done)

    def _saved(self):
        """The live mover's context is whole in FB (not aborted, no CSA fault)."""
        return ~self.banks.live.aborted & ~self._fault_now()

    def _fault_now(self):
        return self._faulted | self.ctx_fault

    # --- the two rules below are methods of their own so that the formal harness
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

    # --- the sequence --------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        flr, state, cur = self.flr, self.state, self.cur
        live, shadow = self.banks.live, self.banks.shadow
        # An FLR invalidates the function's context wherever it is; one on the GPU leaves
        # it (the sequence below also sees the FLR and ends what it was doing for it).
        m.d.sync += self.ctx_valid.eq((self.ctx_valid | self._ctx_set) & ~flr)
        flr_cur = self._flr_takes_off(flr, cur, state)
        with m.If(self.iov_cmd.valid):
            m.d.sync += [self._cmd_valid.eq(1), self._cmd.eq(self.iov_cmd.payload)]
        # A fault stops both movers; the sequence ends after the phase (see _fault_now).
        m.d.comb += [live.fn.eq(self.target), shadow.fn.eq(self.nxt),
                     shadow.op.eq(CtxOp.LOAD),
                     live.abort.eq(flr.bit_select(self.target, 1) | self.ctx_fault),
                     shadow.abort.eq(flr.bit_select(self.nxt, 1) | self.ctx_fault)]
        m.d.sync += [self.done.eq(0), self.hang_irq.eq(0)]
        # A mover access the FB port stopped (outside the active CSA) ends the sequence once
        # the movers have stopped, never goes on to overwrite a context that was not saved.
        # (Set by a fault pulse, cleared in READY, where no mover runs.)
        with m.If(self.ctx_fault):
            m.d.sync += self._faulted.eq(1)
        with m.FSM(name="ws") as fsm:
            with m.State("READY"):
                self._ready(m)
            with m.State("DRAIN"):
                self._drain(m)
            with m.State("SAVE"):
                self._save(m)
            with m.State("LOAD"):
                self._load(m)
            with m.State("RUN"):
                self._run(m)
            with m.State("OVERLAP"):
                self._overlap(m)
            with m.State("SWAP"):
                self._swap(m)
            with m.State("INIT"):
                self._init(m)
        ready = fsm.ongoing("READY")
        m.d.comb += [self.taken.valid.eq(ready & self._cmd_valid),
                     self.taken.payload.eq(self._cmd.command),
                     self.csa_locked.eq(self.ctx_valid.any() | (state != GpuState.EMPTY) |
                                        self._cmd_valid | ~ready | self.auto)]
        for seq in SeqState:
            with m.If(fsm.ongoing(seq.name)):
                m.d.comb += self.step.eq(seq)
        # Last, so that it wins over the sequence: an FLR takes its function off the GPU.
        with m.If(flr_cur):
            m.d.sync += state.eq(GpuState.EMPTY)
        return m

    def _ready(self, m):
        """Decode a latched command; in auto mode, start a switch when the slice is over."""
        sched, state, cur = self.sched, self.state, self.cur
        m.d.sync += self._faulted.eq(0)
        with m.If(self._cmd_valid):
            m.d.sync += self._cmd_valid.eq(0)
            m.d.comb += [self.meter.restart.eq(1), self.meter.restart_switch.eq(1)]
            self._decode(m)
        with m.Elif(self.auto & (state == GpuState.RUNNING)):
            m.d.comb += sched.tick.eq(1)
            with m.If(sched.over & sched.has_next):
                # An automatic switch: the same sequence as CONTEXT_SWITCH.
                m.d.sync += [self.target.eq(cur), self.nxt.eq(sched.next_fn),
                             self._switching.eq(1)]
                m.d.comb += [self.meter.restart.eq(1), self.meter.restart_switch.eq(1)]
                m.next = "DRAIN"
            with m.Elif(sched.over):
                m.d.comb += sched.restart.eq(1)      # nobody else: a new slice
        with m.Elif(self.auto & (state == GpuState.EMPTY) & sched.has_next):
            # The owner was reset: load the next one; there is nothing to save.
            m.d.sync += [self.target.eq(sched.next_fn), self.nxt.eq(sched.next_fn),
                         self._switching.eq(1)]
            m.d.comb += [self.meter.restart.eq(1), self.meter.restart_switch.eq(1)]
            m.next = "LOAD"

    def _drain(self, m):
        """Stop the engine and wait for it to go idle (or time out, or the target's FLR)."""
        m.d.comb += [self.engine_stop.eq(1), self.busy.eq(1)]
        with m.If(self.flr.bit_select(self.target, 1)):
            self._end_phase(m, Phase.IDLE)
            with m.If(self._switching):
                m.d.sync += self.target.eq(self.nxt)
                self._phase_status(m, IovStatus.LOADING)
                m.next = "LOAD"
            with m.Else():
                self._finish(m, IovStatus.FLR_ABORTED)
                m.next = "READY"
        with m.Elif(~self.engine_busy):
            m.d.sync += self.state.eq(GpuState.STOPPED)
            self._end_phase(m, Phase.IDLE)
            # Switching a function to itself reloads what it just saved: serial.
            with m.If(self._switching & self.overlap & (self.nxt != self.target)):
                self._phase_status(m, IovStatus.SAVING)
                m.next = "OVERLAP"
            with m.Elif(self._switching):
                self._phase_status(m, IovStatus.SAVING)
                m.next = "SAVE"
            with m.Else():
                self._finish(m, IovStatus.COMMAND_DONE)
                m.next = "READY"
        with m.Elif(self._count + 1 >= self.drain_timeout):
            self._stop(m, IovStatus.GFX_HANG, GpuState.STOPPED)
            self._end_phase(m, Phase.IDLE)

    def _save(self, m):
        """The live set's context to the target's CSA slot."""
        live = self.banks.live
        self._start_mover(m, CtxOp.SAVE, zero=False)
        with m.If(live.done):
            self._end_phase(m, Phase.SAVE)
            with m.If(self._saved()):
                m.d.comb += self._ctx_set.eq(1 << self.target)
                m.d.sync += self.state.eq(GpuState.EMPTY)
            with m.If(self._fault_now()):
                self._stop(m, IovStatus.CSA_FAULT, GpuState.STOPPED)     # still on the GPU
            with m.Elif(self._switching):
                m.d.sync += self.target.eq(self.nxt)
                self._phase_status(m, IovStatus.LOADING)
                m.next = "LOAD"
            with m.Else():
                self._finish(m, Mux(live.aborted, IovStatus.FLR_ABORTED, IovStatus.COMMAND_DONE))
                m.next = "READY"

    def _load(self, m):
        """The target's CSA slot into the live set."""
        live, target = self.banks.live, self.target
        self._start_mover(m, CtxOp.LOAD, zero=False)
        with m.If(live.done):
            self._end_phase(m, Phase.LOAD)
            # The incoming context may have been reset after the command was checked, before
            # the mover started: then it was aborted at once. One reset in the mover's last
            # cycle finds it done, not aborted, and ctx_valid not yet cleared: the FLR itself
            # is checked too.
            with m.If(self._fault_now()):
                self._stop(m, IovStatus.CSA_FAULT, GpuState.EMPTY)
            with m.Elif(live.aborted | ~self.ctx_valid.bit_select(target, 1) |
                        self.flr.bit_select(target, 1)):
                m.d.sync += self.state.eq(GpuState.EMPTY)
                self._finish(m, IovStatus.FLR_ABORTED)
                m.next = "READY"
            with m.Else():
                m.d.sync += [self.state.eq(GpuState.LOADED), self.cur.eq(target)]
                with m.If(self._switching):
                    self._phase_status(m, IovStatus.ENABLING)
                    m.next = "RUN"
                with m.Else():
                    self._finish(m, IovStatus.COMMAND_DONE)
                    m.next = "READY"

    def _run(self, m):
        """Give the GPU to ``cur`` (its context is loaded)."""
        m.d.comb += self.busy.eq(1)
        # Checked again here: an FLR in the cycle RUN_GPU was decoded took the context off
        # the GPU (EMPTY) without ending the command.
        with m.If(self.flr.bit_select(self.cur, 1) | ~self._context_loaded(self.state)):
            m.d.sync += self.state.eq(GpuState.EMPTY)
            self._finish(m, IovStatus.FLR_ABORTED)
        with m.Else():
            m.d.sync += self.state.eq(GpuState.RUNNING)
            m.d.comb += self.sched.restart.eq(1)
            with m.If(self._switching):
                m.d.comb += self.meter.switch_done.eq(1)
            self._finish(m, IovStatus.COMMAND_DONE)
        self._end_phase(m, Phase.RUN)
        m.next = "READY"

    def _overlap(self, m):
        """Save the outgoing context from the live set and load the incoming one into the
        shadow set at the same time, each on its own memory port."""
        live, shadow, nxt = self.banks.live, self.banks.shadow, self.nxt
        m.d.comb += self.busy.eq(1)
        started = Signal(name="started_overlap")     # both movers, together
        a_fin, a_abt = Signal(), Signal()
        s_fin, s_abt = self.shadow_fin, self.shadow_abt
        go = ~started & (self._count != 0)
        m.d.comb += [live.op.eq(CtxOp.SAVE), live.valid.eq(go), shadow.valid.eq(go)]
        with m.If(self._count != 0):
            m.d.sync += started.eq(1)
        with m.If(live.done):
            m.d.sync += [a_fin.eq(1), a_abt.eq(~self._saved())]
            self._end_phase(m, Phase.SAVE, restart=False)
            with m.If(self._saved()):
                m.d.comb += self._ctx_set.eq(1 << self.target)
        with m.If(shadow.done):
            m.d.sync += [s_fin.eq(1), s_abt.eq(shadow.aborted)]
            self._end_phase(m, Phase.LOAD, restart=False)
        # (An FLR of nxt in this very cycle has not cleared its ctx_valid yet.)
        load_failed = (Mux(shadow.done, shadow.aborted, s_abt) |
                       ~self.ctx_valid.bit_select(nxt, 1) | self.flr.bit_select(nxt, 1))
        save_failed = Mux(live.done, ~self._saved(), a_abt)
        with m.If((a_fin | live.done) & (s_fin | shadow.done)):
            m.d.sync += [started.eq(0), a_fin.eq(0), s_fin.eq(0), self.state.eq(GpuState.EMPTY)]
            m.d.comb += self.meter.restart.eq(1)
            with m.If(self._fault_now()):
                # The live set still holds the outgoing context unless it was saved.
                self._stop(m, IovStatus.CSA_FAULT,
                           Mux(save_failed, GpuState.STOPPED, GpuState.EMPTY))
            with m.Elif(load_failed):
                self._finish(m, IovStatus.FLR_ABORTED)
                m.next = "READY"
            with m.Else():
                m.d.comb += self.banks.swap.eq(1)
                self._phase_status(m, IovStatus.ENABLING)
                m.next = "SWAP"

    def _swap(self, m):
        """The shadow set is live now; its shared registers go out, one beat a cycle."""
        m.d.comb += [self.busy.eq(1), self.banks.replay.eq(1)]
        with m.If(self.flr.bit_select(self.nxt, 1)):
            self._finish(m, IovStatus.FLR_ABORTED)
            m.next = "READY"
        with m.Elif(self.banks.replay_last):
            m.d.sync += [self.state.eq(GpuState.LOADED), self.cur.eq(self.nxt)]
            m.next = "RUN"

    def _init(self, m):
        """Zeros to the target's CSA slot: a clean context."""
        live = self.banks.live
        self._start_mover(m, CtxOp.SAVE, zero=True)
        with m.If(live.done):
            m.d.comb += self.meter.restart.eq(1)
            with m.If(self._saved()):
                m.d.comb += self._ctx_set.eq(1 << self.target)
            with m.If(self._fault_now()):
                self._stop(m, IovStatus.CSA_FAULT, self.state)
            with m.Else():
                self._finish(m, Mux(live.aborted, IovStatus.FLR_ABORTED, IovStatus.COMMAND_DONE))
                m.next = "READY"

    # --- decode --------------------------------------------------------------------------

    def _function(self, m, fid, name):
        """(function, it is live) of a GPU-IOV function id."""
        p = self.params
        index = fid[:FN_WIDTH]
        fn = Signal.like(self.cur, name=name)
        m.d.comb += fn.eq(Mux(fid == 0, 0, index))
        in_range = (fid == 0) | (fid[FN_WIDTH] & (index >= 1) & (index <= p.num_vfs))
        return fn, in_range & self.live.bit_select(fn, 1)

    def _legality(self, m, fn, nxt_fn):
        """(known, legal, needs nxt, needs a CSA) of the latched command in this state."""
        known, legal, needs_nxt, needs_csa = Signal(), Signal(), Signal(), Signal()
        state, auto, ctx_valid = self.state, self.auto, self.ctx_valid
        running = state == GpuState.RUNNING
        is_cur = fn == self.cur
        C = IovCommand
        with m.Switch(self._cmd.command):
            with m.Case(C.IDLE_GPU):
                # In auto mode the owner changes under the host's feet: IDLE_GPU of any
                # function idles whoever owns the GPU and ends auto mode.
                m.d.comb += [known.eq(1), legal.eq(running & (is_cur | auto))]
            with m.Case(C.SAVE_GPU_STATE):
                m.d.comb += [known.eq(1), needs_csa.eq(1),
                             legal.eq(~auto & (state == GpuState.STOPPED) & is_cur)]
            with m.Case(C.LOAD_GPU_STATE):
                m.d.comb += [known.eq(1), needs_csa.eq(1),
                             legal.eq(~auto & (state == GpuState.EMPTY) &
                                      ctx_valid.bit_select(fn, 1))]
            with m.Case(C.RUN_GPU):
                m.d.comb += [known.eq(1), legal.eq(~auto & self._context_loaded(state) & is_cur)]
            with m.Case(C.CONTEXT_SWITCH):
                m.d.comb += [known.eq(1), needs_nxt.eq(1), needs_csa.eq(1),
                             legal.eq(~auto & running & is_cur & ctx_valid.bit_select(nxt_fn, 1))]
            with m.Case(C.ENABLE_AUTO_HW_SWITCH):
                m.d.comb += [known.eq(1), needs_csa.eq(1), legal.eq(~auto & running & is_cur)]
            with m.Case(C.INIT_GPU):
                m.d.comb += [known.eq(1), needs_csa.eq(1),
                             legal.eq(~((state != GpuState.EMPTY) & is_cur))]
        return known, legal, needs_nxt, needs_csa

    def _decode(self, m):
        """Check the latched command; start it, or end it at once with the reason it is
        refused."""
        fn, fn_ok = self._function(m, self._cmd.fcn_id, "c_fn")
        nxt_fn, nxt_ok = self._function(m, self._cmd.nxt_fcn_id, "c_nxt")
        known, legal, needs_nxt, needs_csa = self._legality(m, fn, nxt_fn)

        def refuse(code):
            m.d.sync += [self.status.eq(code), self.done.eq(1)]

        with m.If(~known):
            refuse(IovStatus.BAD_COMMAND)
        with m.Elif(~fn_ok | (needs_nxt & ~nxt_ok)):
            refuse(IovStatus.BAD_FUNCTION)
        with m.Elif(needs_csa & ~self.csa_ok):
            refuse(IovStatus.NO_CSA)
        with m.Elif(~legal):
            refuse(IovStatus.ILLEGAL_STATE)
        with m.Else():
            m.d.sync += [self._host.eq(1), self._switching.eq(0)]
            self._start(m, fn, nxt_fn)

    def _start(self, m, fn, nxt_fn):
        """Start the latched (legal) command: its target, first status and first state."""
        C, S = IovCommand, IovStatus
        cur, target, status = self.cur, self.target, self.status
        with m.Switch(self._cmd.command):
            with m.Case(C.IDLE_GPU):
                m.d.sync += [target.eq(cur), self.auto.eq(0), status.eq(S.IDLING)]
                m.next = "DRAIN"
            with m.Case(C.SAVE_GPU_STATE):
                m.d.sync += [target.eq(cur), status.eq(S.SAVING)]
                m.next = "SAVE"
            with m.Case(C.LOAD_GPU_STATE):
                m.d.sync += [target.eq(fn), status.eq(S.LOADING)]
                m.next = "LOAD"
            with m.Case(C.RUN_GPU):
                m.d.sync += [target.eq(cur), status.eq(S.ENABLING)]
                m.next = "RUN"
            with m.Case(C.CONTEXT_SWITCH):
                m.d.sync += [target.eq(cur), self.nxt.eq(nxt_fn), self._switching.eq(1),
                             status.eq(S.IDLING)]
                m.next = "DRAIN"
            with m.Case(C.ENABLE_AUTO_HW_SWITCH):
                m.d.sync += [self.auto.eq(1), self._host.eq(0), status.eq(S.COMMAND_DONE),
                             self.done.eq(1)]
                m.d.comb += self.sched.restart.eq(1)
            with m.Case(C.INIT_GPU):
                m.d.sync += [target.eq(fn), status.eq(S.INITING)]
                m.next = "INIT"
