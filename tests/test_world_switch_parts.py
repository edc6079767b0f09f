"""The world switch's parts, each on its own against a Python reference (rtl/world_switch/:
meters, scheduler, banks, sequencer), and each shown to fail on a planted bug. The whole
block's behaviour is tests/test_world_switch.py's."""

from random import Random

import pytest

import rtl.world_switch.meters as meters
import rtl.world_switch.scheduler as scheduler
from rtl.params import GpuParams
from rtl.world_switch.banks import ContextBanks
from rtl.common.iov_codes import CSA_UNIT, GpuState, IovCommand, IovStatus, Phase, fcn_id
from rtl.world_switch.meters import HostSwitchMeter, PhaseMeter
from rtl.world_switch.save_restore import CtxOp
from rtl.world_switch.scheduler import AutoScheduler
from rtl.world_switch.sequencer import Sequencer
from tests import simulate
from tests.formal.world_switch_mutants import MUTANTS

PARAMS = GpuParams(num_vfs=4, shared_regs=4, ctx_words=16)
MASK32 = (1 << 32) - 1


# --- PhaseMeter ------------------------------------------------------------------------------

class DurationRef:
    """LAST / MAX of one duration, as the PF reads them."""

    def __init__(self):
        self.last = self.max = 0

    def step(self, strobe, cycles, clear):
        if clear:
            self.max = 0
        if strobe:
            self.max = max(self.max, cycles & MASK32)
            self.last = cycles & MASK32


def _phase_meter_run(seed, cycles=1500):
    """Random strobes into a PhaseMeter; returns the first mismatch with the reference."""
    dut = PhaseMeter()
    rng = Random(seed)
    mismatches = []

    async def bench(ctx):
        count = switch_count = switches = 0
        phases = [DurationRef() for _ in Phase]
        switch = DurationRef()
        for t in range(cycles):
            restart, restart_sw = rng.random() < 0.2, rng.random() < 0.1
            record = rng.getrandbits(len(Phase)) if rng.random() < 0.3 else 0
            done = rng.random() < 0.1
            clears = [rng.random() < 0.05 for _ in Phase]
            clear_sw, clear_n = rng.random() < 0.05, rng.random() < 0.05
            ctx.set(dut.ctl.restart, restart)
            ctx.set(dut.ctl.restart_switch, restart_sw)
            ctx.set(dut.ctl.record, record)
            ctx.set(dut.ctl.switch_done, done)
            ctx.set(dut.clear_phase_max, sum(c << k for k, c in enumerate(clears)))
            ctx.set(dut.clear_switch_max, clear_sw)
            ctx.set(dut.clear_switches, clear_n)
            if ctx.get(dut.ctl.count) != count:
                mismatches.append((t, "count", ctx.get(dut.ctl.count), count))
            await ctx.tick()
            for k, ref in enumerate(phases):
                ref.step(record >> k & 1, count + 1, clears[k])
            switch.step(done, switch_count + 1, clear_sw)
            switches = (0 if clear_n else switches) + done
            count = 0 if restart else count + 1
            switch_count = 0 if restart_sw else switch_count + 1
            got = ([(ctx.get(dut.phase_last[k]), ctx.get(dut.phase_max[k])) for k in range(len(Phase))],
                   (ctx.get(dut.switch_last), ctx.get(dut.switch_max), ctx.get(dut.switches)))
            want = ([(r.last, r.max) for r in phases], (switch.last, switch.max, switches))
            if got != want:
                mismatches.append((t, got, want))
                return

    simulate(dut, bench)
    return mismatches


def test_phase_meter_matches_a_python_reference_over_random_strobes():
    assert _phase_meter_run(seed=1) == []


def _clear_wins(m, strobe, cycles, clear, name):
    """Planted bug: a MAX clear in the cycle a duration is recorded loses that duration."""
    last, mx = meters.Signal(32, name=f"{name}_last"), meters.Signal(32, name=f"{name}_max")
    with m.If(strobe):
        with m.If(cycles > mx):
            m.d.sync += mx.eq(cycles)
        m.d.sync += last.eq(cycles)
    with m.If(clear):
        m.d.sync += mx.eq(0)
    return last, mx


def test_phase_meter_reference_catches_a_clear_that_loses_a_record(monkeypatch):
    monkeypatch.setattr(meters, "record_duration", _clear_wins)
    assert _phase_meter_run(seed=1) != []


# --- HostSwitchMeter -------------------------------------------------------------------------

STEPS = [IovCommand.IDLE_GPU, IovCommand.SAVE_GPU_STATE, IovCommand.LOAD_GPU_STATE,
         IovCommand.RUN_GPU]


def _host_meter_run(dut_class, seed, commands=400):
    """Random commands, mostly in GIM's order, each ending with a random status after a
    random time; returns (switches counted, reference count, last, reference last)."""
    dut = dut_class()
    rng = Random(seed)
    result = {}

    async def bench(ctx):
        step = count = last = 0
        started = None
        t = 0
        for _ in range(commands):
            if rng.random() < 0.8:
                command = STEPS[step if rng.random() < 0.8 else rng.randrange(4)]
            else:
                command = rng.choice(list(IovCommand))
            status = IovStatus.COMMAND_DONE if rng.random() < 0.85 else IovStatus.ILLEGAL_STATE
            ctx.set(dut.taken.valid, 1)
            ctx.set(dut.taken.payload, command)
            await ctx.tick()
            t += 1
            if command == IovCommand.IDLE_GPU:
                started = t - 1
            ctx.set(dut.taken.valid, 0)
            for _ in range(rng.randrange(0, 6)):
                await ctx.tick()
                t += 1
            ctx.set(dut.done, 1)
            ctx.set(dut.status, status)
            await ctx.tick()
            t += 1
            ctx.set(dut.done, 0)
            ok = status == IovStatus.COMMAND_DONE
            if ok and command == IovCommand.IDLE_GPU:
                step = 1
            elif ok and step and command == STEPS[step]:
                step += 1
                if step == len(STEPS):
                    count, last, step = count + 1, t - 1 - started, 0
            else:
                step = 0
        result.update(count=(ctx.get(dut.count), count), last=(ctx.get(dut.last), last))

    simulate(dut, bench)
    return result


def test_host_switch_meter_counts_exactly_gims_sequences_and_their_cycles():
    result = _host_meter_run(HostSwitchMeter, seed=3)
    assert result["count"][1] > 10            # the run did exercise whole sequences
    assert result["count"][0] == result["count"][1]
    assert result["last"][0] == result["last"][1]


class _NoRunStep(HostSwitchMeter):
    """Planted bug: a switch counts once LOAD_GPU_STATE is done (RUN_GPU not waited for)."""
    STEPS = HostSwitchMeter.STEPS[:3]


def test_host_switch_meter_reference_catches_a_sequence_counted_early():
    result = _host_meter_run(_NoRunStep, seed=3)
    assert result["count"][0] != result["count"][1]


# --- AutoScheduler ---------------------------------------------------------------------------

def _next_ref(candidates, cur, n):
    above = [k for k in range(cur + 1, n) if candidates >> k & 1]
    anyone = [k for k in range(n) if candidates >> k & 1]
    nxt = (above or anyone or [0])[0]
    return nxt, bool(anyone) and nxt != cur


def _scheduler_run(seed, cycles=1500):
    p = PARAMS
    n = p.num_fns
    dut = AutoScheduler(p)
    rng = Random(seed)
    mismatches = []

    async def bench(ctx):
        slices = [rng.randrange(1, 20) for _ in range(n)]
        for k, s in enumerate(slices):
            ctx.set(dut.slices[k], s)
        slice_count, cur_slice, registered = 0, 0, (0, False)
        for t in range(cycles):
            ins = dict(cur=rng.randrange(n), on_list=rng.getrandbits(n), live=rng.getrandbits(n) | 1,
                       ctx_valid=rng.getrandbits(n), flr=rng.getrandbits(n) if rng.random() < 0.1 else 0,
                       has_work=rng.getrandbits(n), liquid=int(rng.random() < 0.5),
                       engine_busy=int(rng.random() < 0.5))
            tick, restart = rng.random() < 0.7, rng.random() < 0.1
            for name, value in ins.items():
                ctx.set(getattr(dut, name), value)
            ctx.set(dut.ctl.tick, tick)
            ctx.set(dut.ctl.restart, restart)
            over = (slice_count + 1 >= cur_slice or
                    (ins["liquid"] and not ins["has_work"] >> ins["cur"] & 1 and not ins["engine_busy"]))
            got = (ctx.get(dut.ctl.next_fn), bool(ctx.get(dut.ctl.has_next)), bool(ctx.get(dut.ctl.over)))
            if got != (*registered, over):
                mismatches.append((t, got, (*registered, over)))
                return
            work = ins["has_work"] if ins["liquid"] else (1 << n) - 1
            candidates = ins["on_list"] & ins["ctx_valid"] & ins["live"] & ~ins["flr"] & work
            registered = _next_ref(candidates, ins["cur"], n)
            cur_slice = slices[ins["cur"]]
            slice_count = 0 if restart else slice_count + tick
            await ctx.tick()

    simulate(dut, bench)
    return mismatches


def test_auto_scheduler_is_round_robin_after_cur_with_slices_as_the_reference():
    assert _scheduler_run(seed=5) == []


def test_auto_scheduler_reference_catches_a_choice_that_ignores_cur(monkeypatch):
    real = scheduler.first_after
    monkeypatch.setattr(scheduler, "first_after",
                        lambda m, bits, last, name: real(m, bits, -1, name))
    assert _scheduler_run(seed=5) != []


# --- Sequencer -------------------------------------------------------------------------------

class GpuRef:
    """The GPU-IOV command table of WorldSwitch's docstring, host mode (no auto, no FLR):
    the status each command ends with and the state it leaves."""

    KNOWN = {IovCommand.IDLE_GPU, IovCommand.SAVE_GPU_STATE, IovCommand.LOAD_GPU_STATE,
             IovCommand.RUN_GPU, IovCommand.CONTEXT_SWITCH, IovCommand.INIT_GPU}

    def __init__(self, num_vfs):
        self.fns = range(num_vfs + 1)
        self.state, self.cur, self.ctx = GpuState.EMPTY, 0, set()

    def command(self, command, fn, nxt, csa_ok):
        S, C = GpuState, IovCommand
        if command not in self.KNOWN:
            return IovStatus.BAD_COMMAND
        if fn not in self.fns or (command == C.CONTEXT_SWITCH and nxt not in self.fns):
            return IovStatus.BAD_FUNCTION
        if command != C.IDLE_GPU and command != C.RUN_GPU and not csa_ok:
            return IovStatus.NO_CSA
        here = fn == self.cur
        legal = {C.IDLE_GPU: self.state == S.RUNNING and here,
                 C.SAVE_GPU_STATE: self.state == S.STOPPED and here,
                 C.LOAD_GPU_STATE: self.state == S.EMPTY and fn in self.ctx,
                 C.RUN_GPU: self.state == S.LOADED and here,
                 C.CONTEXT_SWITCH: self.state == S.RUNNING and here and nxt in self.ctx,
                 C.INIT_GPU: not (self.state != S.EMPTY and here)}[command]
        if not legal:
            return IovStatus.ILLEGAL_STATE
        if command == C.IDLE_GPU:
            self.state = S.STOPPED
        elif command == C.SAVE_GPU_STATE:
            self.ctx.add(fn)
            self.state = S.EMPTY
        elif command == C.LOAD_GPU_STATE:
            self.state, self.cur = S.LOADED, fn
        elif command == C.RUN_GPU:
            self.state = S.RUNNING
        elif command == C.CONTEXT_SWITCH:
            self.ctx.add(fn)
            self.state, self.cur = S.RUNNING, nxt
        else:
            self.ctx.add(fn)
        return IovStatus.COMMAND_DONE


def _function_id(rng, num_vfs):
    """A function's GPU-IOV id, or now and then one that names nobody."""
    if rng.random() < 0.1:
        return rng.choice([0x80 | (num_vfs + 1), 0x01, 0x80]), None
    fn = rng.randrange(num_vfs + 1)
    return fcn_id(fn), fn


def _sequencer_run(sequencer_class, seed, commands=150):
    """Random host commands into a Sequencer whose movers, engine and phase counter the
    bench plays; returns (mismatches, statuses seen)."""
    p = PARAMS
    dut = sequencer_class(p)
    rng = Random(seed)
    ref = GpuRef(p.num_vfs)
    mismatches, seen = [], set()
    choices = sorted(GpuRef.KNOWN, key=lambda c: c.value) + [IovCommand.NONE,
                                                             IovCommand.SAVE_RLCV_STATE]

    async def bench(ctx):
        ctx.set(dut.live, (1 << p.num_fns) - 1)
        ctx.set(dut.drain_timeout, 50)
        count, done_at, busy_left = 0, None, 0

        async def cycle():
            nonlocal count, done_at, busy_left
            ctx.set(dut.meter.count, count)
            ctx.set(dut.banks.live.done, done_at == 0)
            ctx.set(dut.engine_busy, busy_left > 0)
            started = ctx.get(dut.banks.live.valid)
            draining = ctx.get(dut.engine_stop)
            restart = ctx.get(dut.meter.restart)
            await ctx.tick()
            count = 0 if restart else count + 1
            done_at = rng.randrange(1, 6) if started else (None if done_at in (0, None)
                                                           else done_at - 1)
            busy_left = max(busy_left - draining, 0)

        for k in range(commands):
            command = rng.choice(choices)
            (fid, fn), (nid, nxt) = _function_id(rng, p.num_vfs), _function_id(rng, p.num_vfs)
            csa_ok = rng.random() < 0.95
            ctx.set(dut.csa_ok, csa_ok)
            busy_left = rng.randrange(0, 8)
            ctx.set(dut.iov_cmd.valid, 1)
            ctx.set(dut.iov_cmd.payload, {"command": command, "fcn_id": fid, "nxt_fcn_id": nid})
            await cycle()
            ctx.set(dut.iov_cmd.valid, 0)
            for _ in range(300):
                await cycle()
                if ctx.get(dut.done):
                    break
            else:
                mismatches.append((k, command, "no answer"))
                return
            want = ref.command(command, fn, nxt, csa_ok)
            got = IovStatus(ctx.get(dut.status))
            seen.add(got)
            state = (GpuState(ctx.get(dut.state)), ctx.get(dut.cur))
            if got != want or state[0] != ref.state or (state[0] != GpuState.EMPTY and
                                                       state[1] != ref.cur):
                mismatches.append((k, command.name, fn, nxt, got, want, state,
                                   (ref.state, ref.cur)))
                return

    simulate(dut, bench)
    return mismatches, seen


def test_sequencer_answers_every_command_as_the_command_table_says():
    mismatches, seen = _sequencer_run(Sequencer, seed=7)
    assert mismatches == []
    # The run reached every way a command ends in host mode.
    assert {IovStatus.COMMAND_DONE, IovStatus.ILLEGAL_STATE, IovStatus.BAD_COMMAND,
            IovStatus.BAD_FUNCTION, IovStatus.NO_CSA} <= seen


@pytest.mark.parametrize("mutant", MUTANTS[:1], ids=lambda cls: cls.__name__)
def test_sequencer_reference_catches_a_planted_bug(mutant):
    mismatches, _ = _sequencer_run(mutant.Sequencer, seed=7)
    assert mismatches != []


# --- ContextBanks ----------------------------------------------------------------------------

def _banks_run(seed):
    """Save function 2's context from the live set, load it into the shadow set, swap and
    replay; returns what the FB saw and what came back."""
    p = PARAMS
    dut = ContextBanks(p)
    rng = Random(seed)
    out = {}

    async def serve(ctx, port, fb, replies):
        """A memory that is always ready and answers a read the next cycle."""
        ctx.set(port.req.ready, 1)
        ctx.set(port.resp.valid, bool(replies))
        if replies:
            ctx.set(port.resp.payload.data, replies.pop(0))
        if ctx.get(port.req.valid):
            req = ctx.get(port.req.payload)
            if req.write:
                fb[req.addr] = req.data
            else:
                replies.append(fb.get(req.addr, 0))

    async def bench(ctx):
        fb, replies = {}, {"mem": [], "mem_load": []}
        shared = [rng.getrandbits(32) for _ in range(p.shared_regs)]
        state = [rng.getrandbits(p.mem_width) for _ in range(p.ctx_words)]
        ctx.set(dut.shared_in, shared)
        ctx.set(dut.csa_base, 3)
        ctx.set(dut.stride, 1)
        for addr, word in enumerate(state):
            ctx.set(dut.state_wr.valid, 1)
            ctx.set(dut.state_wr.payload, {"addr": addr, "data": word})
            await ctx.tick()
        ctx.set(dut.state_wr.valid, 0)

        async def operate(side, op, fn):
            ctx.set(side.fn, fn)
            ctx.set(side.op, op)
            await ctx.tick()                 # the slot address is a cycle behind fn
            ctx.set(side.valid, 1)
            loaded = []
            for _ in range(200):
                for name in ("mem", "mem_load"):
                    await serve(ctx, getattr(dut, name), fb, replies[name])
                if ctx.get(dut.shared_load.valid):
                    loaded.append(ctx.get(dut.shared_load.payload.beat))
                done = ctx.get(side.done)
                await ctx.tick()
                ctx.set(side.valid, 0)
                if done:
                    return loaded
            raise AssertionError("mover never finished")

        await operate(dut.ctl.live, CtxOp.SAVE, 2)
        out["fb"] = dict(fb)
        fb_copy = dict(fb)
        ctx.set(dut.state_wr.valid, 1)                       # the live set moves on
        ctx.set(dut.state_wr.payload, {"addr": 0, "data": 0})
        await ctx.tick()
        ctx.set(dut.state_wr.valid, 0)
        out["shadow_beats_out"] = await operate(dut.ctl.shadow, CtxOp.LOAD, 2)
        assert fb == fb_copy
        ctx.set(dut.ctl.swap, 1)
        await ctx.tick()
        ctx.set(dut.ctl.swap, 0)
        out["bank"] = ctx.get(dut.bank)
        replay = []
        ctx.set(dut.ctl.replay, 1)
        for _ in range(p.shared_beats):
            replay.append((ctx.get(dut.shared_load.payload.beat),
                           ctx.get(dut.shared_load.payload.data), ctx.get(dut.ctl.replay_last)))
            await ctx.tick()
        ctx.set(dut.ctl.replay, 0)
        out["replay"] = replay
        got_state = []
        for addr in range(p.ctx_words):
            ctx.set(dut.state_rd.valid, 1)
            ctx.set(dut.state_rd.payload, {"addr": addr})
            await ctx.tick()
            got_state.append(ctx.get(dut.state_rdata))
        out.update(shared=shared, state=state, got_state=got_state)

    simulate(dut, bench)
    return out


def test_context_banks_save_live_load_shadow_swap_and_replay_one_context_whole():
    p = PARAMS
    out = _banks_run(seed=11)
    beat = p.mem_width // 8
    base = (3 + 2 * 1) * CSA_UNIT               # (csa_base + fn * stride) * 4 KiB
    per_beat = p.mem_width // 32
    shared_beats = [sum(w << (32 * i) for i, w in enumerate(out["shared"][b * per_beat:
                                                                        (b + 1) * per_beat]))
                    for b in range(p.shared_beats)]
    assert out["fb"] == {base + k * beat: word
                         for k, word in enumerate(shared_beats + out["state"])}
    assert out["shadow_beats_out"] == []        # the shadow set's beats wait for the swap
    assert out["bank"] == 1
    assert out["replay"] == [(b, word, b == p.shared_beats - 1)
                             for b, word in enumerate(shared_beats)]
    assert out["got_state"] == out["state"]     # the shadow set, now live, holds the context


def test_context_banks_reference_catches_a_wrong_slot_address(monkeypatch):
    import rtl.world_switch.banks as banks
    monkeypatch.setattr(banks, "CSA_UNIT_LOG2", banks.CSA_UNIT_LOG2 - 1)
    with pytest.raises(AssertionError):
        test_context_banks_save_live_load_shadow_swap_and_replay_one_context_whole()
