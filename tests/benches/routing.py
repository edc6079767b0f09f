"""Test bodies for routing (both simulators)."""

from random import Random

from rtl.pcie.config_space import bar_specs
from sim.models.routing import RoutingModel


def random_state(rng, p):
    """A layout as enumeration leaves it (BARs naturally aligned, VF windows packed), or,
    sometimes, wild but aligned bases; random NumVFs and enables."""
    pf_specs, vf_specs = bar_specs(p)
    num_vfs = rng.randint(0, p.num_vfs)
    bases, at = [], 0x1_0000_0000 if rng.random() < 0.5 else 0x8000_0000
    for spec, count in [(s, 1) for s in pf_specs] + [(s, max(num_vfs, 1)) for s in vf_specs]:
        if rng.random() < 0.15:
            at = rng.getrandbits(40)
        at = (at + spec.size - 1) // spec.size * spec.size
        bases.append(at)
        at += spec.size * count
    enables = [rng.random() < 0.85 for _ in range(3)]
    pf_rid = rng.randrange(0, 1 << 16, 8)
    return RoutingModel(p, pf_rid, bases[:3], bases[3:], num_vfs, *enables)


def apply_state(tb, s):
    tb.set("pf_rid", s.pf_rid)
    tb.set("pf_bars", s.pf_bars)
    tb.set("vf_bars", s.vf_bars)
    tb.set("num_vfs", s.num_vfs)
    tb.set("vf_enable", int(s.vf_enable))
    tb.set("vf_mse", int(s.vf_mse))
    tb.set("pf_mse", int(s.pf_mse))


def random_rid(rng, p, s):
    edge = s.pf_rid + p.first_vf_offset + (rng.randint(-1, p.num_vfs + 1)) * p.vf_stride
    return rng.choice([s.pf_rid, edge, edge + 1, rng.getrandbits(16)]) & 0xFFFF


def random_addr(rng, p, s):
    pf_specs, vf_specs = bar_specs(p)
    spans = [(b, sp.size) for b, sp in zip(s.pf_bars, pf_specs)] + \
            [(b, sp.size * max(s.num_vfs, 1)) for b, sp in zip(s.vf_bars, vf_specs)] + \
            [(b + sp.size * k, sp.size) for b, sp in zip(s.vf_bars, vf_specs)
             for k in (rng.randint(0, p.num_vfs),)]
    base, size = rng.choice(spans)
    pick = rng.random()
    if pick < 0.5:
        addr = base + rng.randrange(size)
    elif pick < 0.9:
        addr = rng.choice([base - 1, base, base + size - 1, base + size])
    else:
        addr = rng.getrandbits(64)
    return addr % (1 << 64)


async def random_routing(tb, params, seed, requests, states=20):
    """Random enumeration states; in each, random Routing IDs and addresses, checked against
    the model one cycle after each request."""
    rng = Random(seed)
    hits = {"cfg_ok": 0, "cfg_ur": 0, "mem_ok": 0, "mem_ur": 0}
    for _ in range(states):
        s = random_state(rng, params)
        apply_state(tb, s)
        for _ in range(requests // states):
            rid = random_rid(rng, params, s)
            addr = random_addr(rng, params, s)
            tb.set("cfg_in__payload", {"rid": rid})
            tb.set("cfg_in__valid", 1)
            tb.set("mem_in__payload", {"addr": addr})
            tb.set("mem_in__valid", 1)
            await tb.tick()
            got = tb.get("cfg_out__payload")
            want = s.route_rid(rid)
            assert tb.get("cfg_out__valid") and (int(got.fn), got.status) == want, \
                f"rid {rid:#x} (PF {s.pf_rid:#x}, {s.num_vfs} VFs): got {got}, model {want}"
            hits["cfg_ok" if want[1].name == "OK" else "cfg_ur"] += 1
            got = tb.get("mem_out__payload")
            want = s.route_addr(addr)
            seen = (int(got.fn), int(got.bar), int(got.offset), got.status)
            assert tb.get("mem_out__valid") and seen == want, \
                f"addr {addr:#x}: got {seen}, model {want} (state {vars(s)})"
            hits["mem_ok" if want[3].name == "OK" else "mem_ur"] += 1
    return hits
