"""Test bodies for the world switch (both simulators), over the host of
sim/drivers/world_switch_host.py."""

from random import Random

from rtl.common.iov_codes import GpuState, IovCommand, IovStatus, Phase
from sim.models import cost_model
from sim.drivers.world_switch_host import (IovHost, WorldSwitchTB, bring_up, context_switch,  # noqa: F401
                                   ok)

C = IovCommand


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
        env.engine.drain = rng.randrange(8)
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
    env.engine.hung = True
    status, cycles = await env.command(C.IDLE_GPU, 1)
    assert status == IovStatus.GFX_HANG, status
    assert env.irqs == 1
    assert await env.state() == (GpuState.STOPPED, 1, 0)
    env.engine.hung = False
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
                                      flr_at=(env.engine.drain + 4 + rng.randrange(beats), 1))
        expect_owner, lost = 2, 1
    elif phase == "load":
        status, _ = await env.command(
            C.CONTEXT_SWITCH, 1, 2, flr_at=(env.engine.drain + beats + 8 + rng.randrange(beats), 2))
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
    full = cost_model.phase_cycles(params, env.engine.drain)
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

    env.engine.work = work
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


async def iov_host_sequence(tb, params, num_vfs=3):
    """On the GpuIov block: enumerate, then IDLE, SAVE, LOAD, RUN with status polling as
    docs/sources.md#gpu-iov-commands describes, contexts compared bit for bit; a refused command
    reads its code in CMD_STATUS; a VF's FLR through its Device Control takes it off the
    GPU and makes its context unloadable."""
    env = WorldSwitchTB(tb, params, integrated=True, drain=5)
    host = IovHost(env)
    assert (await host.enumerate(num_vfs))["num_vfs"] == num_vfs
    statuses = []

    async def expect(code, command, fn=0, nxt=0):
        status = await host.command(command, fn, nxt)
        assert status == code, f"{command!r}({fn}, {nxt}): {status!r}, expected {code!r}"
        statuses.append(status.name)

    done = IovStatus.COMMAND_DONE
    await expect(IovStatus.BAD_FUNCTION, C.INIT_GPU, num_vfs + 1)    # beyond NumVFs
    for fn in (1, 2):
        await expect(done, C.INIT_GPU, fn)
        env.record_init(fn)
    await expect(done, C.LOAD_GPU_STATE, 1)
    await env.check_loaded(1)
    await expect(done, C.RUN_GPU, 1)
    assert tb.get("owner_valid") and tb.get("owner") == 1
    await env.scribble()
    for a, b in ((1, 2), (2, 1), (1, 2)):          # A -> B as GIM does it, and back
        await expect(IovStatus.ILLEGAL_STATE, C.LOAD_GPU_STATE, b)   # LOAD while running
        await expect(done, C.IDLE_GPU, a)
        env.record_save(a)
        await expect(done, C.SAVE_GPU_STATE, a)
        await expect(done, C.LOAD_GPU_STATE, b)
        await env.check_loaded(b)
        await expect(done, C.RUN_GPU, b)
        assert tb.get("owner_valid") and tb.get("owner") == b
        await env.scribble()
    await host.flr(2)                              # the owner is reset
    await env.idle_cycles(2)
    assert not tb.get("owner_valid")
    await expect(IovStatus.ILLEGAL_STATE, C.LOAD_GPU_STATE, 2)       # its context is gone
    await expect(done, C.LOAD_GPU_STATE, 1)        # the other one is intact
    await env.check_loaded(1)
    return {"statuses": statuses, "polls": host.polls}
