"""The host side of the world switch, for tests, benchmarks and scenarios: a hypervisor that
speaks the GPU-IOV command protocol (docs/sources.md#gpu-iov-commands), an engine that drains, FB
memory behind both ports, and a record of what every function's context must be."""

from random import Random

from rtl.common.iov_codes import GpuState, IovCommand, IovStatus, fcn_id
from rtl.world_switch.world_switch import world_switch_regmap

from sim.drivers.regbus import RegBusDriver, apply_shared_beat, read_engine_state, write_engine_state
from sim.models import cost_model
from sim.models.engine import EngineModel
from sim.models.fbmem import FbMemoryModel
from sim.drivers.host import ConfigDriver, enumerate_device
from sim.drivers.iov import IovDriver

__all__ = ["WorldSwitchTB", "IovHost", "bring_up", "ok", "context_switch", "command_limit",
           "LIMIT_FACTOR", "LIMIT_SLACK"]

C = IovCommand

#: A command may take this many times the longest the model allows before the bench gives
#: up on it ...
LIMIT_FACTOR = 4
#: ... plus this many cycles, so that a small context still gets room for a slow start.
LIMIT_SLACK = 10_000


def command_limit(params, drain, ready_prob=1.0):
    """Cycles to wait for one GPU-IOV command's end before calling it stuck.

    The longest command is a serial CONTEXT_SWITCH whose drain runs to the drain timeout:
    :func:`~sim.models.cost_model.switch_cycles` with a drain of the larger of ``drain`` and
    ``params.drain_timeout`` (the reset value; a bench that programs a longer DRAIN_TIMEOUT
    passes its own limit). A memory ready only a ``ready_prob`` part of the cycles stretches
    it by 1 / ``ready_prob``. The limit is :data:`LIMIT_FACTOR` times that plus
    :data:`LIMIT_SLACK`, so no context size outgrows it.

    Parameters
    ----------
    params : GpuParams
        The parameters the world switch is built with (context size, W, L, reads in flight).
    drain : int
        Cycles the engine takes to go idle once told to stop.
    ready_prob : float
        The part of the cycles the FB memory is ready (0 < ``ready_prob`` <= 1).

    Returns
    -------
    int
        Cycles.
    """
    worst = cost_model.switch_cycles(params, max(drain, params.drain_timeout))
    return int(LIMIT_FACTOR * worst / ready_prob) + LIMIT_SLACK


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
                 num_vfs=None, integrated=False):
        self.tb, self.p = tb, params
        self.ready_prob = ready_prob
        self.rng = Random(seed)
        self.mem = FbMemoryModel(params, latency, ready_prob=ready_prob, seed=seed)
        # The shadow set's port (overlapped switches) reaches the same FB.
        self.mem_load = FbMemoryModel(params, latency, ready_prob=ready_prob, seed=seed + 1,
                                      prefix="mem_load")
        self.mem_load.words = self.mem.words
        # Register accesses tick through step(), so the memory and the engine keep running.
        # On the GpuIov block (integrated) the world switch's registers are `ws_cfg`, and
        # NumVFs, VF Enable and FLRs come from configuration space.
        self.integrated = integrated
        self.ticking = _Ticking(self)
        self.regs = RegBusDriver(self.ticking, world_switch_regmap(params),
                                 prefix="ws_cfg" if integrated else "cfg")
        #: The engine: set ``engine.work`` (fn -> has it work; default: always) and it stays
        #: busy while running that function, and the doorbell arbiter's has_work says so;
        #: ``engine.hung`` never drains, ``engine.drain`` is its drain time.
        self.engine = EngineModel(drain)
        self.cycle = 0
        self.irqs = 0
        self.num_vfs = params.num_vfs if num_vfs is None else num_vfs
        self.shared = [0] * params.shared_regs      # the owner-shared flops, as the GPU holds them
        self.gpu_state = [0] * params.ctx_words     # the live engine state, as last written
        self.saved = {}                             # fn -> (shared, state) its CSA must hold
        if not integrated:
            tb.set("num_vfs", self.num_vfs)
            tb.set("vf_enable", 1)
        tb.set("shared_in", self.shared)
        tb.set("has_work", 0)
        # The world switch alone saves contexts wherever the active CSA says; here all of
        # FB (the whole GPU's FB partition unit gives it a real one).
        tb.set("csa", {"base": 0, "size": params.fb_granules, "valid": 1})

    # --- one cycle ----------------------------------------------------------------------
    async def step(self, flr=()):
        tb = self.tb
        self.mem.step(tb)
        self.mem_load.step(tb)
        engine = self.engine
        owner = int(tb.get("owner")) if tb.get("owner_valid") else None
        tb.set("engine_busy", int(engine.advance(tb.get("engine_stop"), owner)))
        if engine.work is not None:
            tb.set("has_work", sum(1 << fn for fn in range(self.p.num_fns)
                                   if engine.has_work(fn)))
        if not self.integrated:
            tb.set("flr", sum(1 << fn for fn in flr))
        if tb.get("shared_load__valid"):
            apply_shared_beat(self.p, self.shared, tb.get("shared_load__payload"))
        await tb.tick()
        if not self.integrated:
            tb.set("flr", 0)
        if tb.get("hang_irq"):
            self.irqs += 1
        self.cycle += 1

    # --- the host -----------------------------------------------------------------------
    def command_limit(self):
        """Cycles :meth:`command` waits by default: :func:`command_limit` of this bench (its
        parameters, its engine's drain now, its memory's readiness)."""
        return command_limit(self.p, self.engine.drain, self.ready_prob)

    async def command(self, command, fn=0, nxt=0, *, flr_at=None, limit=None):
        """Issue a command; wait for its end, at most ``limit`` cycles (default
        :meth:`command_limit`). ``flr_at`` = (cycle after issue, fn) resets a function while
        it runs. Returns (status, cycles from issue to done)."""
        tb = self.tb
        limit = self.command_limit() if limit is None else limit
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
        await write_engine_state(self.tb, state, self.step)
        self.gpu_state = state

    async def read_engine_state(self):
        return await read_engine_state(self.tb, self.p.ctx_words, self.step)

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


class IovHost:
    """The hypervisor of docs/sources.md#gpu-iov-commands on the
    :class:`~rtl.world_switch.gpu_iov.GpuIov` block: it enumerates the device, then steers
    the world switch through :class:`~sim.drivers.iov.IovDriver` (every ``poll_every``
    cycles, at most ``timeout`` polls, stopping early on a hang), and resets VFs.

    ``timeout`` defaults to the bench's :meth:`WorldSwitchTB.command_limit` in polls, taken
    anew for every command (the engine's drain may change between them)."""

    def __init__(self, env, poll_every=4, timeout=None):
        self.env = env
        self.poll_every, self.timeout = poll_every, timeout
        self.cfg = ConfigDriver(env.ticking, env.p)
        self.iov = IovDriver(self.cfg, env.idle_cycles, poll_every=poll_every,
                             timeout=self._timeout())

    def _timeout(self):
        if self.timeout is not None:
            return self.timeout
        return -(-self.env.command_limit() // self.poll_every)

    @property
    def polls(self):
        return self.iov.polls

    async def enumerate(self, num_vfs):
        return await enumerate_device(self.env.ticking, self.env.p, num_vfs)

    async def command(self, command, fn=0, nxt=0):
        """Issue a command, poll to its end; returns its CMD_STATUS."""
        self.iov.timeout = self._timeout()
        return await self.iov.command(command, fn, nxt)

    async def flr(self, fn):
        """Function-level reset of VF ``fn`` (Initiate FLR in its Device Control)."""
        self.env.on_flr(fn)
        await self.cfg.write(fn, "DEV_CTL", INITIATE_FLR=1)
