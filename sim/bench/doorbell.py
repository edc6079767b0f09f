"""Doorbell arbiter benchmark: measured cycles, not timed runs.

Throughput: the owner rings one doorbell every cycle with the command processor always
ready; the rate and the latency of the first delivery.

Saturation: every VF has work all the time (all its doorbells rung up front, then every
cycle the doorbell the CP takes is rung again, other ports ring at random) and all VFs share the command processor; per VF, the cycles between its
services (the wait a requester sees) and from the start to its first service, and Jain's
fairness index of the deliveries per VF, each divided by the VF's weight. Plain round robin
bounds the wait between services by N cycles (N busy VFs); weighted, by 1 + the sum of the
other VFs' weights; the first service comes within that + the latency.

Run it with ``sriov-gpu bench-doorbell``.
"""

from random import Random
from statistics import mean

from rtl.doorbell.arbiter import DoorbellArbiter
from rtl.params import GpuParams

from sim.runners.backend import run_amaranth
from sim.drivers.regbus import DoorbellDriver

__all__ = ["owner_rings_every_cycle", "saturation", "jain_index", "wait_bound",
           "first_wait_bound", "run", "table", "per_vf_table"]


async def owner_rings_every_cycle(tb, params, cycles, index=0):
    """Throughput: the owner (VF 1) rings one doorbell every cycle, the CP is always ready.
    Returns the deliveries and the cycle of the first one, counted from the first ring."""
    env = DoorbellDriver(tb, params)
    env.set_owner(1)
    await env.step()                    # ownership acts from the next cycle
    start, first = env.cycle, None
    for _ in range(cycles):
        before = env.model.delivered
        await env.step([(1, index)])
        if first is None and env.model.delivered > before:
            first = env.cycle - 1 - start
    for _ in range(8):
        await env.step()
    return {"delivered": env.model.delivered, "first": first}


async def saturation(tb, params, cycles, weights=None, seed=1):
    """All VFs served and busy for ``cycles`` cycles; per-VF service waits and deliveries."""
    rng = Random(seed)
    env = DoorbellDriver(tb, params, weights=weights)
    vfs = list(range(1, params.num_fns))
    d, ports = params.doorbells_per_fn, params.doorbell_ports
    every = [(fn, i) for fn in vfs for i in range(d)]
    for k in range(0, len(every), ports):           # fill, nobody served yet
        await env.step(every[k:k + ports])
    env.serve(*vfs)
    # Waits count from now: serving starts like a ring, acting from the next cycle.
    env.model.waits.clear()
    env.model.first_waits.clear()
    env.model.waiting_since.update((fn, (env.cycle, "ring")) for fn in env.model.waiting_since)
    start = env.model.delivered
    for _ in range(cycles):
        # Keep everyone busy: ring again what the CP just took, and random doorbells.
        offered = env.offered()
        refill = [offered] if offered else []
        await env.step(refill + [rng.choice(every) for _ in range(ports - len(refill))])
    gaps = {fn: env.model.waits.get(fn, []) for fn in vfs}
    firsts = {fn: env.model.first_waits.get(fn, []) for fn in vfs}
    return {"delivered": env.model.delivered - start,
            "counts": {fn: len(gaps[fn]) + len(firsts[fn]) for fn in vfs},
            "worst": {fn: max(w, default=0) for fn, w in gaps.items()},
            "mean": {fn: mean(w) if w else 0.0 for fn, w in gaps.items()},
            "worst_first": {fn: max(w, default=0) for fn, w in firsts.items()}}


def jain_index(values):
    """Jain's fairness index: 1.0 when all equal, 1/n when one takes everything."""
    values = list(values)
    total = sum(values)
    return total * total / (len(values) * sum(v * v for v in values)) if total else 0.0


def wait_bound(weights):
    """The arbiter's stated bound, in cycles, on the wait between two services of a busy VF
    (CP always ready), for the given weights (0 counts as 1): 1 + the sum of the others'
    weights. From the ring that gives a VF work, add the latency (``first_wait_bound``)."""
    w = [max(x, 1) for x in weights]
    return 1 + sum(w) - min(w)


def first_wait_bound(weights):
    return wait_bound(weights) + DoorbellArbiter.LATENCY


def run(vf_counts=(4, 16, 64), cycles=2000, weighted=False, ports=1, seed=1):
    """One row per VF count: throughput and saturation figures."""
    rows = []
    for n in vf_counts:
        params = GpuParams(num_vfs=n, doorbell_ports=ports)
        rate = run_amaranth("doorbell_arbiter", params, "sim.bench.doorbell:owner_rings_every_cycle",
                            cycles=cycles)
        weights = [0] + [1 + (fn - 1) % 4 if weighted else 1 for fn in range(1, n + 1)]
        sat = run_amaranth("doorbell_arbiter", params, "sim.bench.doorbell:saturation",
                           cycles=cycles, weights=weights, seed=seed)
        means = list(sat["mean"].values())
        rows.append({
            "vfs": n, "weighted": weighted, "ports": ports, "cycles": cycles,
            "throughput": rate["delivered"] / cycles, "first_delivery": rate["first"],
            "sat_throughput": sat["delivered"] / cycles,
            "worst_wait": max(sat["worst"].values()),
            "mean_wait_min": min(means), "mean_wait_max": max(means),
            "bound": wait_bound(weights[1:]),
            "worst_first_wait": max(sat["worst_first"].values()),
            "first_bound": first_wait_bound(weights[1:]),
            "jain": jain_index(sat["counts"][fn] / weights[fn] for fn in sat["counts"]),
            "per_vf": {fn: {"weight": weights[fn], "deliveries": sat["counts"][fn],
                            "worst_wait": sat["worst"][fn], "mean_wait": sat["mean"][fn]}
                       for fn in sat["counts"]},
        })
    return rows


def per_vf_table(row):
    """Per VF of one row: weight, deliveries, worst and mean wait between services."""
    lines = [f"{row['vfs']} VFs, weights {'1,2,3,4' if row['weighted'] else 'equal'}:",
             f"{'VF':>4} {'weight':>6} {'deliveries':>10} {'worst wait':>10} {'mean wait':>9}"]
    for fn, v in row["per_vf"].items():
        lines.append(f"{fn:>4} {v['weight']:>6} {v['deliveries']:>10} {v['worst_wait']:>10} "
                     f"{v['mean_wait']:>9.2f}")
    return "\n".join(lines)


def table(rows):
    head = (f"{'VFs':>4} {'weights':>8} {'doorbells/cycle':>15} {'latency':>7} "
            f"{'sat. rate':>9} {'worst wait':>10} {'bound':>5} {'mean wait (VF min..max)':>24} "
            f"{'1st wait':>8} {'bound':>5} {'Jain':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['vfs']:>4} {'1,2,3,4' if r['weighted'] else 'equal':>8} "
            f"{r['throughput']:>15.3f} {r['first_delivery']:>7} {r['sat_throughput']:>9.3f} "
            f"{r['worst_wait']:>10} {r['bound']:>5} "
            f"{r['mean_wait_min']:>11.2f} .. {r['mean_wait_max']:<9.2f} "
            f"{r['worst_first_wait']:>8} {r['first_bound']:>5} {r['jain']:>6.4f}")
    return "\n".join(lines)
