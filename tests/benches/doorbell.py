"""Test bodies for the doorbell arbiter (both simulators)."""

from random import Random

from sim.drivers.regbus import DoorbellDriver


async def random_doorbells(tb, params, seed, cycles, num_vfs=None):
    """Bursty rings from every function (and bad ones) on every port, random back-pressure,
    ownership changes mid-burst, occasional FLRs; then a drain and the no-loss check."""
    rng = Random(seed)
    env = DoorbellDriver(tb, params, num_vfs)
    d, fns = params.doorbells_per_fn, params.num_fns
    bursting = set()
    for _ in range(cycles):
        if rng.random() < 0.05:
            bursting ^= {rng.randrange(fns)}
        if rng.random() < 0.03:
            if rng.random() < 0.8:      # world switching: one owner, or nobody
                env.set_owner(rng.choice([None] + list(range(fns))))
            else:                       # a shared CP
                env.serve(*rng.sample(range(fns), rng.randrange(1, fns + 1)))
        writes = []
        for _ in range(params.doorbell_ports):
            if bursting and rng.random() < 0.8:
                fn = rng.choice(sorted(bursting))
            elif rng.random() < 0.3:
                fn = rng.randrange(1 << params.fn_width)
            else:
                continue
            offset = rng.randrange(d) if rng.random() < 0.95 else rng.randrange(d, 2 * d + 1)
            writes.append((fn, offset))
        flr = [rng.randrange(fns)] if rng.random() < 0.005 else []
        await env.step(writes, flr, ready=rng.random() < 0.7)
    await env.drain()
    m = env.model
    waits = [w for ws in m.waits.values() for w in ws]
    return {"rung": len(m.rings), "delivered": m.delivered, "ur": m.urs,
            "max_wait": max(waits, default=0)}


async def owner_saturation_wait(tb, params, cycles, seed=1):
    """Wait bound: the owner rings random doorbells on every port every cycle (CP always
    ready); the longest any value waits until it, or a newer value of its doorbell, is taken."""
    rng = Random(seed)
    env = DoorbellDriver(tb, params)
    env.set_owner(1)
    pending_since = {}      # doorbell -> cycle its oldest undelivered value was rung
    worst = 0
    d = params.doorbells_per_fn
    for _ in range(cycles):
        writes = [(1, rng.randrange(d)) for _ in range(params.doorbell_ports)]
        taken = len(env.model.last_taken), dict(env.model.last_taken)
        await env.step(writes)
        for key, value in env.model.last_taken.items():
            if taken[1].get(key) != value and key in pending_since:
                worst = max(worst, env.cycle - 1 - pending_since.pop(key))
        for fn, index in writes:
            pending_since.setdefault((fn, index), env.cycle - 1)
    return {"worst_wait": worst}


async def offer_survives_an_ownership_change(tb, params):
    """The owner's only doorbell is offered to a CP that is not ready; ownership moves away
    and back: the value is still delivered, once, and nothing of the other owner leaks."""
    env = DoorbellDriver(tb, params)
    env.set_owner(1)
    await env.step([(1, 0)], ready=False)
    for _ in range(3):
        await env.step(ready=False)              # offered, not taken
    assert tb.get("cp__valid"), "the doorbell was never offered"
    env.set_owner(2)
    await env.step(ready=False)                  # the owner input acts from the next cycle
    for _ in range(4):
        await env.step()
    assert env.model.delivered == 0, "a doorbell of the old owner reached the new owner's CP"
    assert tb.get("has_work") >> 1 & 1, "the withdrawn offer was lost"
    env.set_owner(1)
    for _ in range(4):
        await env.step()
    assert env.model.delivered == 1
    await env.drain()
    return {"ok": True}


async def flr_drops_exactly_its_doorbells(tb, params):
    """Two VFs with pending doorbells; an FLR of one drops its own, the other's survive."""
    env = DoorbellDriver(tb, params)
    d = params.doorbells_per_fn
    await env.step([(1, 0)])
    await env.step([(2, d - 1)])
    await env.step([(1, d - 1)])
    await env.step()
    assert tb.get("has_work") == 0b110
    await env.step(flr=[1])
    assert tb.get("has_work") == 0b100, "FLR of VF 1 must drop its doorbells and only those"
    await env.drain()                            # VF 2's value is delivered, VF 1's never
    assert env.model.last_taken == {(2, d - 1): env.model.last_rung[(2, d - 1)]}
    return {"ok": True}
