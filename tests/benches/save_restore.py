"""Test bodies for the save/restore engine (both simulators)."""

from random import Random

from rtl.world_switch.save_restore import CtxOp
from sim.drivers.regbus import apply_shared_beat, read_engine_state, write_engine_state
from sim.models.fbmem import FbMemoryModel


class MoverTB:
    def __init__(self, tb, params, memory):
        self.tb, self.p, self.mem = tb, params, memory
        self.shared = [0] * params.shared_regs
        tb.set("shared_in", self.shared)

    async def cycle(self):
        self.mem.step(self.tb)
        await self.tb.tick()

    async def write_state(self, words):
        await write_engine_state(self.tb, words, self.cycle)

    async def read_state(self):
        """The engine-state memory, one word per cycle."""
        return await read_engine_state(self.tb, self.p.ctx_words, self.cycle)

    def set_shared(self, values):
        self.shared = list(values)
        self.tb.set("shared_in", self.shared)

    async def run(self, op, base, limit=1_000_000):
        """Issue a command, wait for done; apply shared-register loads. Returns cycles."""
        self.tb.set("cmd__payload", {"op": op, "base": base})
        self.tb.set("cmd__valid", 1)
        await self.cycle()
        self.tb.set("cmd__valid", 0)
        for _ in range(limit):
            if self.tb.get("shared_load__valid"):
                apply_shared_beat(self.p, self.shared, self.tb.get("shared_load__payload"))
            if self.tb.get("done"):
                self.tb.set("shared_in", self.shared)
                return int(self.tb.get("last_cycles"))
            await self.cycle()
        raise AssertionError(f"{op.name} did not finish in {limit} cycles")


async def roundtrip(tb, params, seed, functions=4, switches=8, latency=None, ready_prob=1.0):
    """Save random contexts of several functions, then restore them in random order over
    clobbered state: every one comes back bit-exact. Returns the cycles of each operation."""
    rng = Random(seed)
    mem = FbMemoryModel(params, latency, ready_prob=ready_prob, seed=seed)
    env = MoverTB(tb, params, mem)
    stride = params.ctx_bytes
    contexts = {}
    cycles = {"save": [], "load": []}
    for fn in range(functions):
        shared = [rng.getrandbits(32) for _ in range(params.shared_regs)]
        state = [rng.getrandbits(params.mem_width) for _ in range(params.ctx_words)]
        env.set_shared(shared)
        await env.write_state(state)
        cycles["save"].append(await env.run(CtxOp.SAVE, fn * stride))
        contexts[fn] = (shared, state)
    for _ in range(switches):
        fn = rng.randrange(functions)
        env.set_shared([rng.getrandbits(32) for _ in range(params.shared_regs)])
        await env.write_state([rng.getrandbits(params.mem_width) for _ in range(params.ctx_words)])
        cycles["load"].append(await env.run(CtxOp.LOAD, fn * stride))
        shared, state = contexts[fn]
        assert env.shared == shared, f"function {fn}: shared registers not restored"
        assert await env.read_state() == state, f"function {fn}: engine state not restored"
        # The restored context is the one that runs next; save it again, changed a little.
        state = [w ^ rng.getrandbits(params.mem_width) for w in state]
        await env.write_state(state)
        cycles["save"].append(await env.run(CtxOp.SAVE, fn * stride))
        contexts[fn] = (shared, state)
    return cycles


async def engine_during_zero_fill(tb, params):
    """While the mover zero-fills another function's context (INIT_GPU), the running
    engine writes and reads its own state memory: nothing of it is lost or garbled."""
    mem = FbMemoryModel(params)
    env = MoverTB(tb, params, mem)
    words = [0x1111 * (k + 1) for k in range(params.ctx_words)]
    tb.set("cmd__payload", {"op": CtxOp.SAVE, "base": 0, "zero": 1})
    tb.set("cmd__valid", 1)
    await env.cycle()
    tb.set("cmd__valid", 0)
    busy_writes = 0
    for addr, word in enumerate(words):
        busy_writes += int(tb.get("busy"))
        tb.set("state_wr__payload", {"addr": addr, "data": word})
        tb.set("state_wr__valid", 1)
        await env.cycle()
    tb.set("state_wr__valid", 0)
    while not tb.get("done"):
        await env.cycle()
    return {"busy_writes": busy_writes, "state": await env.read_state(),
            "words": words, "zeros": all(v == 0 for v in mem.words.values())}
