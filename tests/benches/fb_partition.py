"""Test bodies for the FB partition unit, run unchanged on Amaranth's simulator and in cocotb.

Each body returns a small dict of what it saw, so the pytest side can also assert on it.
"""

from random import Random

from rtl.fb_partition import fb_partition_regmap
from rtl.interfaces import FbOrigin, Status, Violation
from sim.drivers import RegBusDriver
from sim.models.fb_partition import FbPartitionModel


class FbPartitionTB:
    """Drivers, the reference model and the checks for one FbPartition instance."""

    def __init__(self, tb, params):
        self.tb = tb
        self.p = params
        self.regmap = fb_partition_regmap(params)
        self.cfg = RegBusDriver(tb, self.regmap)
        self.model = FbPartitionModel(params)
        self.seen = {k.name: 0 for k in Violation}

    # --- configuration through the PF port, mirrored in the model ------------------------
    async def set_slice(self, n, base, size, enable=True):
        await self.cfg.write("SLICE_BASE", n, BASE=base)
        await self.cfg.write("SLICE_SIZE", n, SIZE=size, ENABLE=int(enable))
        s = self.model.slices[n]
        s.base, s.size, s.enable = base, size, enable

    async def set_csa(self, base, size):
        await self.cfg.write("CSA_BASE", BASE=base)
        await self.cfg.write("CSA_SIZE", SIZE=size)
        self.model.csa_base, self.model.csa_size = base, size

    async def layout_status(self, max_cycles=10000):
        for _ in range(max_cycles):
            fields = await self.cfg.read_fields("LAYOUT_STATUS")
            if not fields["BUSY"]:
                del fields["BUSY"]
                return fields
        raise AssertionError("layout check still busy after %d cycles" % max_cycles)

    async def check_layout_status(self):
        got = await self.layout_status()
        want = self.model.layout_status()
        assert got == want, f"LAYOUT_STATUS {got} != model {want}"
        return got

    # --- one access per cycle --------------------------------------------------------------
    def present(self, access):
        if access is None:
            self.tb.set("access__valid", 0)
        else:
            fn, origin, write, addr = access
            self.tb.set("access__payload", {"fn": fn, "origin": origin, "write": write,
                                            "addr": addr, "tag": addr & ((1 << self.p.tag_width) - 1)})
            self.tb.set("access__valid", 1)

    def check_result(self, access):
        """Compare the result visible now with the model's verdict on ``access``."""
        valid = self.tb.get("result__valid")
        if access is None:
            assert not valid, "result valid without an access"
            return
        assert valid, "no result one cycle after an access"
        fn, origin, write, addr = access
        status, phys, kind = self.model.check(fn, origin, addr)
        got = self.tb.get("result__payload")
        seen = (got.status, int(got.addr), int(got.fn), got.origin, int(got.write), int(got.tag))
        want = (status, phys, fn, origin, write, addr & ((1 << self.p.tag_width) - 1))
        assert seen == want, f"access {access}: got {seen}, model says {want} ({kind.name})"
        self.seen[kind.name] += 1
        if kind != Violation.NONE:
            self.model.record(fn, addr, kind, origin, write)

    async def run_accesses(self, accesses):
        for access in accesses:
            self.present(access)
            await self.tb.tick()
            self.check_result(access)
        self.present(None)
        await self.tb.tick(2)     # counters follow the result by a cycle

    # --- violation bookkeeping ---------------------------------------------------------
    async def check_violation_state(self):
        for n in range(self.p.num_fns):
            got = await self.cfg.read("VIOL_COUNT", n)
            assert got == self.model.counters[n], \
                f"VIOL_COUNT[{n}] = {got}, model {self.model.counters[n]}"
        last = await self.cfg.read_fields("VIOL_LAST")
        if self.model.last is None:
            assert not last["VALID"], f"VIOL_LAST {last} with no violation"
            return
        fn, addr, kind, origin, write = self.model.last
        assert last == {"VALID": 1, "WRITE": write, "ORIGIN": origin.value,
                        "KIND": kind.value, "FN": fn}, f"VIOL_LAST {last} != {self.model.last}"
        lo = await self.cfg.read("VIOL_ADDR_LO")
        hi = await self.cfg.read("VIOL_ADDR_HI")
        assert lo | hi << 32 == addr, f"VIOL_ADDR {lo | hi << 32:#x} != {addr:#x}"

    async def clear_violations(self):
        for n in range(self.p.num_fns):
            await self.cfg.write("VIOL_COUNT", n, COUNT=0)
        await self.cfg.write("VIOL_LAST", VALID=1)
        await self.tb.tick()
        self.model.counters = [0] * self.p.num_fns
        self.model.last = None


# --- random stimulus ---------------------------------------------------------------------
def random_layout(rng, p, mode):
    """CSA (base, size) and {vf: (base, size, enable)}.

    "packed": CSA then equal slices back to back, all valid. "wild": anything, so overlaps,
    empty slices and regions past the end of FB all occur.
    """
    g = p.fb_granules
    if mode == "packed":
        csa = (1, 1)
        share = max((g - 2) // p.num_vfs, 1)
        slices = {n: (2 + (n - 1) * share, share, rng.random() < 0.9)
                  for n in range(1, p.num_fns)}
        return csa, slices
    csa = (rng.randrange(g), rng.choice([0, 1, 2, rng.randrange(g)]))
    slices = {}
    for n in range(1, p.num_fns):
        size = rng.choice([0, 1, 2, rng.randrange(1, max(2, g // 4)), rng.randrange(g + 2)])
        slices[n] = (rng.randrange(g), size, rng.random() < 0.8)
    return csa, slices


def random_access(rng, p, model):
    fn_limit = (1 << p.fn_width) - 1
    fn = rng.randrange(p.num_fns) if rng.random() < 0.97 else rng.randint(0, fn_limit)
    origin = rng.choices([FbOrigin.HOST, FbOrigin.ENGINE, FbOrigin.CTX], [5, 4, 1])[0]
    g = p.fb_granule
    mask = (1 << p.fb_addr_width) - 1
    csa_lo, csa_hi = model.csa_range()
    if origin == FbOrigin.CTX or (fn == 0 and rng.random() < 0.3):
        edges = [csa_lo, csa_hi - 1, csa_hi, csa_lo - 1]
        inside = rng.randrange(csa_lo, csa_hi) if csa_hi > csa_lo else csa_lo
        addr = rng.choice(edges + [inside])
    else:
        s = model.slices.get(fn)
        size = s.size * g if s else p.fb_size
        edges = [0, size - 1, size, p.vf_fb_aperture - 1, p.vf_fb_aperture,
                 p.fb_size - 1, p.fb_size]
        if s:   # offsets where the slice crosses the end of FB or the CSA
            base = s.base * g
            edges += [e - base for e in (p.fb_size, csa_lo, csa_hi - 1) if e >= base]
        pick = rng.random()
        if pick < 0.55:
            addr = rng.randrange(max(size, 1))
        elif pick < 0.85:
            addr = rng.choice(edges) + rng.choice([-1, 0, 0, 1])
        else:
            addr = rng.getrandbits(p.fb_addr_width)
    return fn, origin, rng.getrandbits(1), addr & mask


async def random_traffic(tb, params, seed, accesses, rounds=4):
    """Random layouts, then random accesses from all functions, each checked against the model.

    Each round programs a layout (packed or wild), checks LAYOUT_STATUS, streams
    ``accesses // rounds`` accesses one per cycle (with idle cycles), then checks every
    violation counter and the last-violation record, and clears them.
    """
    env = FbPartitionTB(tb, params)
    rng = Random(seed)
    for r in range(rounds):
        mode = "packed" if r % 2 == 0 else "wild"
        csa, slices = random_layout(rng, params, mode)
        await env.set_csa(*csa)
        for n, (base, size, enable) in slices.items():
            await env.set_slice(n, base, size, enable)
        status = await env.check_layout_status()
        if mode == "packed":
            assert not (status["OVERLAP"] or status["EMPTY"] or status["PAST_END"]), status
        batch = [None if rng.random() < 0.05 else random_access(rng, params, env.model)
                 for _ in range(accesses // rounds)]
        await env.run_accesses(batch)
        await env.check_violation_state()
        await env.clear_violations()
        await env.check_violation_state()
    return env.seen


async def config_port_refuses_vfs(tb, params):
    """A VF on the configuration port: BLOCKED, write dropped, read 0, counted, recorded."""
    env = FbPartitionTB(tb, params)
    await env.set_slice(1, base=4, size=2)
    vf = params.num_vfs
    offset = env.regmap.offset("SLICE_BASE", 1)
    status, _ = await env.cfg.access(offset, write=True, data=0x3, fn=vf)
    assert status == Status.BLOCKED
    status, data = await env.cfg.access(offset, fn=vf)
    assert (status, data) == (Status.BLOCKED, 0)
    assert await env.cfg.read("SLICE_BASE", 1) == 4, "a VF write reached the slice table"
    await tb.tick(2)
    assert await env.cfg.read("VIOL_COUNT", vf) == 2
    last = await env.cfg.read_fields("VIOL_LAST")
    assert last["KIND"] == Violation.NOT_PF.value and last["FN"] == vf and last["VALID"]
    assert await env.cfg.read("VIOL_ADDR_LO") == offset
    status, _ = await env.cfg.access(env.regmap["VIOL_COUNT"].offset + params.num_fns + 1)
    assert status == Status.UR, "an offset with no register must answer UR"
    return {"ok": True}


async def irq_follows_last_violation(tb, params):
    env = FbPartitionTB(tb, params)
    await env.cfg.write("CTRL", IRQ_EN=1)
    await env.set_slice(1, base=2, size=1)
    assert not tb.get("violation_irq")
    await env.run_accesses([(1, FbOrigin.HOST, 0, params.fb_granule)])   # one past the slice
    assert tb.get("violation_irq"), "no interrupt after a violation"
    await env.cfg.write("VIOL_LAST", VALID=1)
    await tb.tick()
    assert not tb.get("violation_irq"), "interrupt stays after the PF acknowledged"
    return {"ok": True}


async def latency_cycles(tb, params):
    """Measure: cycles from an access being presented to its result being valid."""
    tb.set("access__payload", {"fn": 0, "origin": FbOrigin.HOST, "write": 0, "addr": 0, "tag": 0})
    tb.set("access__valid", 1)
    cycles = 0
    while True:
        await tb.tick()
        cycles += 1
        tb.set("access__valid", 0)
        if tb.get("result__valid"):
            return {"latency": cycles}
        assert cycles < 10


async def layout_sweep_cycles(tb, params):
    """Measure: cycles from a slice write until LAYOUT_STATUS.BUSY drops."""
    env = FbPartitionTB(tb, params)
    await env.layout_status()
    await env.cfg.write("SLICE_BASE", 1, BASE=0)
    cycles = 0
    while (await env.cfg.read_fields("LAYOUT_STATUS"))["BUSY"]:
        cycles += 1
    return {"cycles": cycles}


async def layout_errors_reported(tb, params):
    """Directed layouts: each error is reported with the offending regions, and cleared."""
    env = FbPartitionTB(tb, params)
    g = params.fb_granules
    await env.set_csa(1, 1)
    await env.set_slice(1, 2, 2)
    await env.set_slice(2, 4, 2)
    assert await env.check_layout_status() == {"OVERLAP": 0, "EMPTY": 0, "PAST_END": 0,
                                               "FN_A": 0, "FN_B": 0}
    await env.set_slice(2, 3, 2)                     # VF2 now overlaps VF1
    assert (await env.check_layout_status())["OVERLAP"] == 1
    await env.set_slice(2, 1, 1)                     # VF2 on the CSA
    st = await env.check_layout_status()
    assert (st["OVERLAP"], st["FN_A"], st["FN_B"]) == (1, 0, 2)
    await env.set_slice(2, 4, 0)                     # enabled but empty
    st = await env.check_layout_status()
    assert (st["OVERLAP"], st["EMPTY"], st["FN_A"]) == (0, 1, 2)
    await env.set_slice(2, g - 1, 2)                 # runs past the end of FB
    st = await env.check_layout_status()
    assert (st["EMPTY"], st["PAST_END"], st["FN_A"]) == (0, 1, 2)
    await env.set_slice(2, g - 1, 2, enable=False)   # disabled slices are not judged
    assert await env.check_layout_status() == {"OVERLAP": 0, "EMPTY": 0, "PAST_END": 0,
                                               "FN_A": 0, "FN_B": 0}
    return {"ok": True}


async def csa_unreachable_from_vfs(tb, params):
    """A VF slice misprogrammed over the CSA: every VF access into the CSA is still blocked,
    the PF and the save/restore engine still reach it."""
    env = FbPartitionTB(tb, params)
    gran = params.fb_granule
    await env.set_csa(2, 1)
    await env.set_slice(1, 1, 3)                     # covers granules 1..3, CSA is granule 2
    await tb.tick(2)
    csa_offset = 1 * gran                             # VF1 offset that lands on granule 2
    accesses = [(1, origin, write, csa_offset + delta)
                for origin in (FbOrigin.HOST, FbOrigin.ENGINE) for write in (0, 1)
                for delta in (0, 8, gran - 1)]
    accesses += [(1, FbOrigin.HOST, 0, 0), (1, FbOrigin.HOST, 0, 2 * gran),
                 (0, FbOrigin.HOST, 1, 2 * gran), (1, FbOrigin.CTX, 1, 2 * gran + 4)]
    await env.run_accesses(accesses)
    assert env.seen["CSA"] == 12 and env.seen["NONE"] == 4, env.seen
    await env.check_violation_state()
    return env.seen
