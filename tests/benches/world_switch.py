"""Test bodies for the world switch (both simulators): a host that speaks the GPU-IOV command
protocol, an engine that drains, an FB memory, and a record of every function's context."""

from random import Random

from rtl.world_switch import GpuState, IovCommand, IovStatus, Phase, fcn_id, world_switch_regmap
from sim import cost_model
from sim.drivers import RegBusDriver
from sim.fbmem import FbMemoryModel

C = IovCommand


class _Ticking:
    """The bench, as a driver sees it, with every tick a whole :meth:`WorldSwitchTB.step`."""

    def __init__(self, env):
        self.env = env

    def get(self, name):
        return self.env.tb.get(name)

    def set(self, name, value):
        self.env.tb.set(name, value)

    async def tick(self):
        await self.env.step()


class WorldSwitchTB:
    """Drives a WorldSwitch: commands as GIM issues them (command, FCN_ID, NXT_FCN_ID, then
    wait for the end), an engine that needs ``drain`` cycles to go idle after it is told to
    stop, and an FB memory. Keeps what each function's context must be (the model) and
    what the GPU holds now."""

    def __init__(self, tb, params, *, latency=None, ready_prob=1.0, seed=0, drain=3,
                 num_vfs=None):
        self.tb, self.p = tb, params
        self.rng = Random(seed)
        self.mem = FbMemoryModel(params, latency, ready_prob=ready_prob, seed=seed)
        # The shadow set's port (overlapped switches) reaches the same FB.
        self.mem_load = FbMemoryModel(params, latency, ready_prob=ready_prob, seed=seed + 1,
                                      prefix="mem_load")
        self.mem_load.words = self.mem.words
        # Register accesses tick through step(), so the memory and the engine keep running.
        self.regs = RegBusDriver(_Ticking(self), world_switch_regmap(params), prefix="cfg")
        self.drain = drain
        self.drain_left = None
        #: fn -> does the engine have work for it (default: always): it stays busy while
        #: running that function, and the doorbell arbiter's has_work says so.
        self.work = None
        self.hung = False
        self.cycle = 0
        self.irqs = 0
        self.num_vfs = params.num_vfs if num_vfs is None else num_vfs
        self.shared = [0] * params.shared_regs      # the owner-shared flops, as the GPU holds them
        self.saved = {}                             # fn -> (shared, state) its CSA must hold
        tb.set("num_vfs", self.num_vfs)
        tb.set("vf_enable", 1)
        tb.set("shared_in", self.shared)
        tb.set("has_work", 0)

    # --- one cycle ----------------------------------------------------------------------
    async def step(self, flr=()):
        tb = self.tb
        self.mem.step(tb)
        self.mem_load.step(tb)
        if tb.get("engine_stop"):
            if self.drain_left is None:
                self.drain_left = self.drain
            busy = not self.hung and self.drain_left > 0
            if self.drain_left:
                self.drain_left -= 1
        else:
            self.drain_left = None
            busy = True if self.work is None else \
                bool(tb.get("owner_valid")) and self.work(int(tb.get("owner")))
        if self.work is not None:
            tb.set("has_work", sum(1 << fn for fn in range(self.p.num_fns) if self.work(fn)))
        tb.set("engine_busy", int(busy or self.hung))
        tb.set("flr", sum(1 << fn for fn in flr))
        if tb.get("shared_load__valid"):
            beat = tb.get("shared_load__payload")
            per_beat = self.p.mem_width // 32
            for k in range(per_beat):
                index = int(beat.beat) * per_beat + k
                if index < self.p.shared_regs:
                    self.shared[index] = int(beat.data) >> (32 * k) & 0xFFFFFFFF
        await tb.tick()
        tb.set("flr", 0)
        if tb.get("hang_irq"):
            self.irqs += 1
        self.cycle += 1

    # --- the host -----------------------------------------------------------------------
    async def command(self, command, fn=0, nxt=0, *, flr_at=None, limit=100_000):
        """Issue a command; wait for its end. ``flr_at`` = (cycle after issue, fn) resets a
        function while it runs. Returns (status, cycles from issue to done)."""
        tb = self.tb
        tb.set("iov_cmd__payload", {"command": command.value if hasattr(command, "value")
                                    else command, "fcn_id": fcn_id(fn) if fn is not None
                                    else 0x7F, "nxt_fcn_id": fcn_id(nxt)})
        tb.set("iov_cmd__valid", 1)
        await self.step()
        tb.set("iov_cmd__valid", 0)
        for k in range(limit):
            flr = [flr_at[1]] if flr_at and flr_at[0] == k else []
            if flr:
                self.on_flr(flr[0])
            await self.step(flr)
            if tb.get("iov_done"):
                return IovStatus(int(tb.get("iov_status"))), k + 2
        raise AssertionError(f"{command!r}({fn}, {nxt}) did not end in {limit} cycles "
                             f"(iov_status {int(tb.get('iov_status')):#x})")

    async def idle_cycles(self, n):
        for _ in range(n):
            await self.step()

    def on_flr(self, fn):
        self.saved.pop(fn, None)

    # --- the running function's context -----------------------------------------------
    async def scribble(self):
        """The owner's work changes its shared registers and engine state."""
        p, rng = self.p, self.rng
        self.shared = [rng.getrandbits(32) for _ in range(p.shared_regs)]
        self.tb.set("shared_in", self.shared)
        state = [rng.getrandbits(p.mem_width) for _ in range(p.ctx_words)]
        for addr, word in enumerate(state):
            self.tb.set("state_wr__payload", {"addr": addr, "data": word})
            self.tb.set("state_wr__valid", 1)
            await self.step()
        self.tb.set("state_wr__valid", 0)
        self.gpu_state = state

    async def read_engine_state(self):
        out = []
        for addr in range(self.p.ctx_words):
            self.tb.set("state_rd__payload", {"addr": addr})
            self.tb.set("state_rd__valid", 1)
            await self.step()
            out.append(int(self.tb.get("state_rdata")))
        self.tb.set("state_rd__valid", 0)
        return out

    async def check_loaded(self, fn):
        """The GPU holds exactly what ``fn`` saved (zeros after INIT)."""
        shared, state = self.saved[fn]
        assert self.shared == shared, f"function {fn}: shared registers not restored"
        assert await self.read_engine_state() == state, f"function {fn}: engine state not restored"
        self.tb.set("shared_in", self.shared)
        self.gpu_state = list(state)

    def record_save(self, fn):
        self.saved[fn] = (list(self.shared), list(self.gpu_state))

    def record_init(self, fn):
        self.saved[fn] = ([0] * self.p.shared_regs, [0] * self.p.ctx_words)

    async def state(self):
        fields = await self.regs.read_fields("STATE")
        return GpuState(fields["GPU_STATE"]), fields["CUR_FN"], fields["OWNER_VALID"]

    async def phase_last(self):
        return [await self.regs.read("PHASE_LAST", k) for k in range(4)]


def ok(result, what):
    status, _ = result
    assert status == IovStatus.COMMAND_DONE, f"{what}: {status!r}"
    return result


async def bring_up(env, fn):
    """INIT, LOAD, RUN of one function: it owns the GPU with a clean context."""
    ok(await env.command(C.INIT_GPU, fn), f"INIT_GPU({fn})")
    env.record_init(fn)
    ok(await env.command(C.LOAD_GPU_STATE, fn), f"LOAD_GPU_STATE({fn})")
    await env.check_loaded(fn)
    ok(await env.command(C.RUN_GPU, fn), f"RUN_GPU({fn})")


async def host_sequence(tb, params, seed=1, drain=3):
    """A host-driven world switch as GIM does it, A -> B -> A: IDLE(A), SAVE(A), LOAD(B),
    RUN(B), each awaited; contexts come back bit-exact; phase cycles as the cost model says."""
    env = WorldSwitchTB(tb, params, seed=seed, drain=drain)
    assert await env.state() == (GpuState.EMPTY, 0, 0)
    await bring_up(env, 1)
    assert tb.get("owner_valid") and tb.get("owner") == 1
    await env.scribble()
    ok(await env.command(C.INIT_GPU, 2), "INIT_GPU(2)")
    env.record_init(2)
    cycles = {}
    for a, b in ((1, 2), (2, 1)):
        _, cycles["idle"] = ok(await env.command(C.IDLE_GPU, a), "IDLE")
        assert not tb.get("owner_valid")
        assert await env.state() == (GpuState.STOPPED, a, 0)
        _, cycles["save"] = ok(await env.command(C.SAVE_GPU_STATE, a), "SAVE")
        env.record_save(a)
        assert await env.state() == (GpuState.EMPTY, a, 0)
        env.shared = [0xDEAD] * params.shared_regs          # the next load must overwrite
        _, cycles["load"] = ok(await env.command(C.LOAD_GPU_STATE, b), "LOAD")
        await env.check_loaded(b)
        _, cycles["run"] = ok(await env.command(C.RUN_GPU, b), "RUN")
        assert await env.state() == (GpuState.RUNNING, b, 1)
        assert tb.get("owner") == b
        await env.scribble()
    phases = await env.phase_last()
    return {"command_cycles": cycles, "phases": phases}


async def context_switch(tb, params, seed=1, drain=3, overlap=False):
    """CONTEXT_SWITCH(A, B) in one command: phases and the whole switch, in cycles."""
    env = WorldSwitchTB(tb, params, seed=seed, drain=drain)
    await env.regs.write("SCHED", OVERLAP=int(overlap))
    await bring_up(env, 1)
    await env.scribble()
    ok(await env.command(C.INIT_GPU, 3), "INIT_GPU(3)")
    env.record_init(3)
    env.record_save(1)
    status, cycles = await env.command(C.CONTEXT_SWITCH, 1, 3)
    assert status == IovStatus.COMMAND_DONE, status
    await env.check_loaded(3)
    assert await env.state() == (GpuState.RUNNING, 3, 1)
    return {"command": cycles, "phases": await env.phase_last(),
            "switch": await env.regs.read("SWITCH_LAST"),
            "switches": await env.regs.read("SWITCHES")}


async def random_switches(tb, params, seed, switches, ready_prob=1.0, functions=None):
    """Many CONTEXT_SWITCHes among random functions with random contents, serial and
    overlapped at random; every function's context comes back bit-exact each time."""
    rng = Random(seed)
    env = WorldSwitchTB(tb, params, seed=seed, ready_prob=ready_prob, drain=rng.randrange(8))
    fns = list(range(functions or params.num_fns))
    for fn in fns[1:]:
        ok(await env.command(C.INIT_GPU, fn), f"INIT_GPU({fn})")
        env.record_init(fn)
    await bring_up(env, fns[0])
    cur = fns[0]
    for _ in range(switches):
        await env.scribble()
        nxt = rng.choice(fns)
        env.drain = rng.randrange(8)
        await env.regs.write("SCHED", OVERLAP=rng.randrange(2))
        env.record_save(cur)                    # what the switch must save
        ok(await env.command(C.CONTEXT_SWITCH, cur, nxt), f"CONTEXT_SWITCH({cur}, {nxt})")
        await env.check_loaded(nxt)
        cur = nxt
    return {"switches": await env.regs.read("SWITCHES")}


async def illegal_commands(tb, params):
    """Every command refused in a state where it is illegal, with the reason; nothing moves."""
    env = WorldSwitchTB(tb, params)
    refused = []

    async def expect(code, command, fn=0, nxt=0):
        before = await env.state(), await env.regs.read("CTX_VALID", 0)
        status, cycles = await env.command(command, fn, nxt)
        assert status == code, f"{command!r}({fn}, {nxt}): {status!r}, expected {code!r}"
        assert cycles == 2, f"a refused command takes 2 cycles, took {cycles}"
        after = await env.state(), await env.regs.read("CTX_VALID", 0)
        assert before == after, f"{command!r} refused but changed {before} -> {after}"
        refused.append((command, code))

    S, F, B = IovStatus.ILLEGAL_STATE, IovStatus.BAD_FUNCTION, IovStatus.BAD_COMMAND
    # EMPTY, nothing initialized.
    await expect(S, C.LOAD_GPU_STATE, 1)          # no context yet
    await expect(S, C.RUN_GPU, 1)
    await expect(S, C.IDLE_GPU, 1)
    await expect(S, C.SAVE_GPU_STATE, 1)
    await expect(S, C.CONTEXT_SWITCH, 1, 2)
    await expect(S, C.ENABLE_AUTO_HW_SWITCH, 1)
    await expect(B, C.SAVE_RLCV_STATE, 1)
    await expect(B, 0, 1)
    await expect(B, 0xF, 1)
    await expect(F, C.INIT_GPU, None)             # FCN_ID 0x7F: neither PF nor a VF id
    env.tb.set("num_vfs", 2)
    await expect(F, C.INIT_GPU, 3)                # VF 3 beyond NumVFs
    env.tb.set("num_vfs", params.num_vfs)
    await bring_up(env, 1)
    ok(await env.command(C.INIT_GPU, 2), "INIT_GPU(2)")
    # RUNNING(1).
    await expect(S, C.LOAD_GPU_STATE, 2)          # LOAD while running
    await expect(S, C.SAVE_GPU_STATE, 1)          # SAVE before IDLE
    await expect(S, C.RUN_GPU, 1)
    await expect(S, C.IDLE_GPU, 2)                # not the owner
    await expect(S, C.INIT_GPU, 1)                # the function on the GPU
    await expect(S, C.CONTEXT_SWITCH, 1, 3)       # VF 3 has no context
    await expect(F, C.CONTEXT_SWITCH, 1, params.num_vfs + 1 if params.num_vfs < 64 else 0x7F)
    ok(await env.command(C.IDLE_GPU, 1), "IDLE_GPU(1)")
    # STOPPED(1).
    await expect(S, C.RUN_GPU, 1)
    await expect(S, C.LOAD_GPU_STATE, 2)
    await expect(S, C.SAVE_GPU_STATE, 2)          # not the function on the GPU
    ok(await env.command(C.SAVE_GPU_STATE, 1), "SAVE_GPU_STATE(1)")
    # EMPTY, 1 and 2 have contexts.
    await expect(S, C.RUN_GPU, 1)
    ok(await env.command(C.LOAD_GPU_STATE, 2), "LOAD_GPU_STATE(2)")
    # LOADED(2).
    await expect(S, C.RUN_GPU, 1)
    await expect(S, C.LOAD_GPU_STATE, 1)
    return {"refused": len(refused)}


async def drain_timeout(tb, params, timeout):
    """An engine that never drains: IDLE ends after DRAIN_TIMEOUT cycles with GFX_HANG and
    one interrupt; the function stays STOPPED and can still be saved."""
    env = WorldSwitchTB(tb, params)
    await env.regs.write("DRAIN_TIMEOUT", CYCLES=timeout)
    await bring_up(env, 1)
    env.hung = True
    status, cycles = await env.command(C.IDLE_GPU, 1)
    assert status == IovStatus.GFX_HANG, status
    assert env.irqs == 1
    assert await env.state() == (GpuState.STOPPED, 1, 0)
    env.hung = False
    ok(await env.command(C.SAVE_GPU_STATE, 1), "SAVE after a hang")
    return {"cycles": cycles, "idle_phase": (await env.phase_last())[Phase.IDLE.value]}


async def flr_during(tb, params, phase, seed=1):
    """FLR of a function in the middle of each phase of a switch away from or to it: the
    switch completes or aborts cleanly and no other function's context changes."""
    rng = Random(seed)
    env = WorldSwitchTB(tb, params, seed=seed, drain=20)
    for fn in (2, 3):
        ok(await env.command(C.INIT_GPU, fn), f"INIT_GPU({fn})")
        env.record_init(fn)
    await bring_up(env, 1)
    await env.scribble()
    beats = params.ctx_beats
    env.record_save(1)                          # what a switch away from 1 must save
    # Switch 1 -> 2; reset 1 (outgoing) or 2 (incoming) at a point inside the phase.
    if phase == "drain":
        status, _ = await env.command(C.CONTEXT_SWITCH, 1, 2, flr_at=(5, 1))
        expect_owner, lost = 2, 1
    elif phase == "save":
        status, _ = await env.command(C.CONTEXT_SWITCH, 1, 2,
                                      flr_at=(env.drain + 4 + rng.randrange(beats), 1))
        expect_owner, lost = 2, 1
    elif phase == "load":
        status, _ = await env.command(C.CONTEXT_SWITCH, 1, 2,
                                      flr_at=(env.drain + beats + 8 + rng.randrange(beats), 2))
        expect_owner, lost = None, 2
    elif phase == "running":
        ok(await env.command(C.IDLE_GPU, 1), "IDLE")
        ok(await env.command(C.SAVE_GPU_STATE, 1), "SAVE")
        ok(await env.command(C.LOAD_GPU_STATE, 2), "LOAD")
        ok(await env.command(C.RUN_GPU, 2), "RUN")
        env.on_flr(2)
        await env.step(flr=[2])
        await env.step()
        status, expect_owner, lost = IovStatus.COMMAND_DONE, None, 2
    else:
        raise ValueError(phase)
    phases = await env.phase_last()
    full = cost_model.phase_cycles(params, env.drain)
    if phase == "drain":        # the FLR cut the drain short, then the switch went on
        assert phases[Phase.IDLE.value] < full["idle"], phases
    if phase == "save":         # the mover stopped early
        assert phases[Phase.SAVE.value] < full["save"], phases
    if phase == "load":
        assert status == IovStatus.FLR_ABORTED and phases[Phase.LOAD.value] < full["load"]
    if expect_owner is None:
        assert status in (IovStatus.FLR_ABORTED, IovStatus.COMMAND_DONE), status
        assert await env.state() == (GpuState.EMPTY, (await env.state())[1], 0)
        assert not tb.get("owner_valid")
    else:
        assert status == IovStatus.COMMAND_DONE, status
        assert await env.state() == (GpuState.RUNNING, expect_owner, 1)
        await env.check_loaded(expect_owner)
    # The reset function must be initialized again before it is loaded; the others are
    # intact: load each in turn and compare.
    valid = await env.regs.read("CTX_VALID", 0)
    assert not valid >> lost & 1, f"function {lost}'s context survived its FLR"
    if tb.get("owner_valid"):
        ok(await env.command(C.IDLE_GPU, env.tb.get("owner")), "IDLE")
        env.record_save(int(env.tb.get("owner")))
        ok(await env.command(C.SAVE_GPU_STATE, env.tb.get("owner")), "SAVE")
    for fn in sorted(env.saved):
        ok(await env.command(C.LOAD_GPU_STATE, fn), f"LOAD_GPU_STATE({fn})")
        await env.check_loaded(fn)
        ok(await env.command(C.RUN_GPU, fn), "RUN")
        ok(await env.command(C.IDLE_GPU, fn), "IDLE")
        ok(await env.command(C.SAVE_GPU_STATE, fn), "SAVE")
    status, _ = await env.command(C.LOAD_GPU_STATE, lost)
    assert status == IovStatus.ILLEGAL_STATE, "a reset function's context was loadable"
    return {"status": status.name}


async def auto_mode(tb, params, liquid, slice_cycles, cycles, idle_fns=(), work_until=None,
                    drain=2, seed=1):
    """ENABLE_AUTO_HW_SWITCH with functions 1..3 on the run list: returns the ownership
    timeline as (fn, cycles owned) turns. ``idle_fns`` never have work (liquid skips them);
    ``work_until`` = (fn, cycles): that function's work runs out that many cycles after auto
    mode starts. Half way, function 4 joins the run list and function 3 leaves it."""
    env = WorldSwitchTB(tb, params, seed=seed, drain=drain)
    start = [None]

    def work(fn):
        if fn in idle_fns:
            return False
        if work_until and fn == work_until[0] and start[0] is not None:
            return env.cycle - start[0] < work_until[1]
        return True

    env.work = work
    for fn in (2, 3, 4):
        ok(await env.command(C.INIT_GPU, fn), f"INIT_GPU({fn})")
    await bring_up(env, 1)
    for fn in (1, 2, 3):
        await env.regs.write("TIME_SLICE", fn, CYCLES=slice_cycles, RUN=1)
    await env.regs.write("SCHED", LIQUID=int(liquid))
    ok(await env.command(C.ENABLE_AUTO_HW_SWITCH, 1), "ENABLE_AUTO_HW_SWITCH")
    start[0] = env.cycle
    timeline = []

    async def watch(n):
        for _ in range(n):
            owner = int(tb.get("owner")) if tb.get("owner_valid") else None
            if timeline and timeline[-1][0] == owner:
                timeline[-1][1] += 1
            else:
                timeline.append([owner, 1])
            await env.step()

    await watch(cycles // 2)
    await env.regs.write("TIME_SLICE", 4, CYCLES=slice_cycles, RUN=1)
    await env.regs.write("TIME_SLICE", 3, CYCLES=slice_cycles, RUN=0)
    split = len(timeline)
    await watch(cycles - cycles // 2)
    fields = await env.regs.read_fields("STATE")
    assert fields["AUTO"] == 1
    owner = int(tb.get("owner"))
    status, _ = await env.command(C.IDLE_GPU, owner)       # the host takes over again
    assert status == IovStatus.COMMAND_DONE, status
    assert (await env.regs.read_fields("STATE"))["AUTO"] == 0
    return {"first": [tuple(t) for t in timeline[:split]],
            "second": [tuple(t) for t in timeline[split:]],
            "switches": await env.regs.read("SWITCHES"),
            "switch_max": await env.regs.read("SWITCH_MAX")}
