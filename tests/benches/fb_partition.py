"""Test bodies for the FB partition unit, run unchanged on Amaranth's simulator and in cocotb.

Each body returns a small dict of what it saw, so the pytest side can also assert on it.
"""

from random import Random

from rtl.memory.fb_partition import LayoutRefusal, fb_partition_regmap
from rtl.common.interfaces import FbOrigin, Status, Violation
from sim.drivers.regbus import RegBusDriver
from sim.models.fb_partition import FbPartitionModel


class FbPartitionTB:
    """Drivers, the reference model and the checks for one FbPartition instance."""

    def __init__(self, tb, params, scrub_ready=True):
        self.tb = tb
        self.p = params
        self.regmap = fb_partition_regmap(params)
        self.cfg = RegBusDriver(tb, self.regmap)
        self.model = FbPartitionModel(params)
        self.seen = {k.name: 0 for k in Violation}
        # No FB behind the block: every zero fill is done at once unless a test holds it.
        tb.set("scrub__ready", int(scrub_ready))

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

    async def settle(self, max_cycles=10000):
        """Wait for the activator; check the active set against the layout rules and judge
        accesses by it from now on. Returns (active mask, refused mask)."""
        for _ in range(max_cycles):
            if not (await self.cfg.read_fields("LAYOUT_STATUS"))["BUSY"]:
                break
        else:
            raise AssertionError(f"layout still busy after {max_cycles} cycles")
        active, refused = 0, 0
        for k in self.regmap["ACTIVE_MASK"].indices:
            active |= await self.cfg.read("ACTIVE_MASK", k) << 32 * k
            refused |= await self.cfg.read("REFUSED_MASK", k) << 32 * k
        broken = self.model.judge_active(active, refused)
        assert not broken, "; ".join(broken)
        self.model.adopt(active)
        return active, refused

    async def layout_last(self):
        return await self.cfg.read_fields("LAYOUT_LAST")

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
        active, refused = await env.settle()
        if mode == "packed":
            assert not refused, f"a packed layout refused: {refused:#x}"
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
    await env.settle()
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


async def activation_cycles(tb, params, dirty_wait=0):
    """Measure: cycles from a slice write's answer until LAYOUT_STATUS.BUSY reads 0, with the
    scrubber answering ``dirty_wait`` cycles after the request."""
    env = FbPartitionTB(tb, params, scrub_ready=False)
    await env.settle()
    await env.cfg.write("SLICE_SIZE", 1, SIZE=1, ENABLE=1)
    cycles, waited = 0, 0
    while True:
        scrubbing = tb.get("scrub__valid")
        tb.set("scrub__ready", int(scrubbing and waited >= dirty_wait))
        waited = waited + 1 if scrubbing else 0
        if not (await env.cfg.read_fields("LAYOUT_STATUS"))["BUSY"]:
            break
        cycles += 1
        assert cycles < 1000
    return {"cycles": cycles, "active": await env.cfg.read("ACTIVE_MASK", 0)}


async def unsafe_regions_are_refused(tb, params):
    """Directed layouts: an overlap, an empty slice, a region past the end of FB are refused
    and reported; the first active wins; a refused region is activated once the region in
    its way moves; disabled slices are neither."""
    env = FbPartitionTB(tb, params)
    g = params.fb_granules
    await env.cfg.write("CTRL", LAYOUT_IRQ_EN=1)
    await env.set_csa(1, 1)
    await env.set_slice(1, 2, 2)
    await env.set_slice(2, 4, 2)
    assert await env.settle() == (0b111, 0)
    assert not tb.get("layout_irq")
    seen = {}
    for name, (base, size, enable), want in (
            ("overlap", (3, 2, True), {"REASON": LayoutRefusal.OVERLAP.value, "OTHER": 1}),
            ("on_csa", (1, 1, True), {"REASON": LayoutRefusal.OVERLAP.value, "OTHER": 0}),
            ("empty", (4, 0, True), {"REASON": LayoutRefusal.EMPTY.value}),
            ("past_end", (g - 1, 2, True), {"REASON": LayoutRefusal.PAST_END.value})):
        await env.set_slice(2, base, size, enable)
        active, refused = await env.settle()
        last = await env.layout_last()
        assert (active, refused) == (0b011, 0b100), (name, active, refused)
        assert last["VALID"] and last["REGION"] == 2, (name, last)
        assert {k: last[k] for k in want} == want, (name, last)
        assert tb.get("layout_irq"), name
        seen[name] = last
    assert await env.cfg.read("LAYOUT_REFUSALS") == 4
    await env.cfg.write("LAYOUT_LAST", VALID=1)
    await tb.tick()
    assert not tb.get("layout_irq")
    # First active wins: VF 2 over VF 1 stays refused until VF 1 moves away, then it is in.
    await env.set_slice(2, 2, 2)
    assert await env.settle() == (0b011, 0b100)
    await env.set_slice(1, 6, 2)
    assert await env.settle() == (0b111, 0)
    await env.set_slice(2, g - 1, 2, enable=False)   # disabled slices are not judged
    assert await env.settle() == (0b011, 0)
    return {k: dict(v) for k, v in seen.items()}


async def accesses_wait_for_the_zero_fill(tb, params):
    """A slice is not reachable until its scrub is answered: BLOCKED (NO_SLICE) meanwhile,
    LAYOUT_STATUS says SCRUBBING; granted once the scrubber answers."""
    env = FbPartitionTB(tb, params, scrub_ready=False)
    await env.set_slice(1, 2, 2)
    await tb.tick(10)
    status = await env.cfg.read_fields("LAYOUT_STATUS")
    assert status["BUSY"] and status["SCRUBBING"] and status["REGION"] == 1, status
    assert tb.get("scrub__valid") and tb.get("scrub__payload").base == 2
    await env.run_accesses([(1, FbOrigin.HOST, 1, 0)])
    assert env.seen["NO_SLICE"] == 1
    tb.set("scrub__ready", 1)
    await env.settle()
    await env.run_accesses([(1, FbOrigin.HOST, 1, 0)])
    assert env.seen["NONE"] == 1
    return env.seen


async def csa_unreachable_from_vfs(tb, params):
    """A VF slice programmed over the CSA is refused, so the VF reaches nothing there; the
    PF and the save/restore engine still reach the CSA."""
    env = FbPartitionTB(tb, params)
    gran = params.fb_granule
    await env.set_csa(2, 1)
    await env.set_slice(1, 1, 3)                     # covers granules 1..3, CSA is granule 2
    assert await env.settle() == (0b01, 0b10)
    csa_offset = 1 * gran                             # VF1 offset that lands on granule 2
    accesses = [(1, origin, write, csa_offset + delta)
                for origin in (FbOrigin.HOST, FbOrigin.ENGINE) for write in (0, 1)
                for delta in (0, 8, gran - 1)]
    accesses += [(0, FbOrigin.HOST, 1, 2 * gran), (1, FbOrigin.CTX, 1, 2 * gran + 4)]
    await env.run_accesses(accesses)
    assert env.seen["NO_SLICE"] == 12 and env.seen["NONE"] == 2, env.seen
    await env.check_violation_state()
    return env.seen
