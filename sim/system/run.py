"""Running a scenario: its simulation body (System, hypervisor, guests) and the backends."""

import json

from sim.runners.backend import BACKENDS, run_backend
from sim.system.agents import Guest, Hypervisor
from sim.system.scenario import ScenarioError, from_dict
from sim.system.system import System

__all__ = ["BACKENDS", "run", "run_body"]


async def run_body(tb, params, scenario, progress=None):
    """The scenario's simulation, as a backend body (``scenario`` is its dict)."""
    sc = from_dict(scenario)
    system = System(tb, params, drain=sc.engine_drain, work_per_doorbell=sc.work_per_doorbell,
                    seed=sc.seed, preempt_every=sc.preempt_every)
    out = {"hv": {"mailbox": [], "flrs": [], "hangs": []}, "guests": {}}
    hv = Hypervisor(system, sc, out["hv"])
    system.spawn(hv())
    for vf in hv.active:
        out["guests"][vf] = {}
        guest = Guest(system, sc, vf, out["guests"][vf], out["hv"])
        hv.guests.append(guest)
        system.spawn(guest())
    # Set-up (enumeration, every VM's INIT, the first LOAD and RUN) is not in run_cycles.
    setup = 200_000 + 4 * (sc.active_vfs + 2) * (params.ctx_beats + 8 * sc.poll_every)
    limit = setup + sc.run_cycles + sc.drain_limit
    # A hundred progress calls a run: each is a cycle the event-driven loop must look at.
    cycles = await system.run(limit, progress,
                              progress_every=max(PROGRESS_EVERY, sc.run_cycles // 100))
    mon = system.monitor
    return {
        "cycles": cycles,
        "requests": system.requests,
        "interrupts": system.interrupts,
        "looked": system.looked,
        "hv": out["hv"],
        "guests": {str(vf): g for vf, g in out["guests"].items()},
        "switches": mon.switches,
        "segments": mon.segments,
        "owned": {str(k): v for k, v in mon.owned.items()},
        "deliveries": system.deliveries,
        "undelivered": system.undelivered(hv.active),
        "engine": {"checked": system.engine.checked, "errors": system.engine.errors,
                   **_engine_work(system.engine, hv.active)},
        "mem": system.mem_counts(),
    }


def _engine_work(engine, active):
    """The engine's guest work per active VF: ``work_done``, the busy cycles it spent on the
    VF's doorbells; ``work_left``, the cycles still pending at the end of the run. With no
    FLR, done + left = the VF's doorbells delivered x work_per_doorbell (an FLR drops what
    was left)."""
    return {"work_done": {str(vf): engine.done[vf] for vf in active},
            "work_left": {str(vf): engine.pending[vf] for vf in active}}


#: Fewest cycles between two progress calls of a run.
PROGRESS_EVERY = 1000

#: The top scenarios run on: the GPU with its FB in the design (rtl/top/harness.py), so the
#: loop looks only at cycles where something happens. "gpu" (the bare top, the FB in
#: Python, every cycle looked at) gives the same results, slower: the tests compare them.
TOP = "gpu_harness"


def run(sc, backend="amaranth", vcd=None, progress=None, top=TOP):
    """Simulate scenario ``sc`` on ``backend`` ("amaranth", "verilator", "icarus") over
    ``top`` (:data:`TOP` or "gpu"); returns the raw result (see :func:`run_body`) with the
    scenario attached. ``progress(cycle)`` is called as the run goes: every 1000 cycles or
    a hundredth of ``run_cycles``, whichever is longer (on cocotb, from this process, with
    the latest count at most twice a second and once at the end)."""
    if backend not in BACKENDS:
        raise ScenarioError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}")
    extra = {"vcd": vcd, "progress": progress} if backend == "amaranth" else \
        {"progress": progress}
    raw = run_backend(backend, top, sc.params(), "sim.system.run:run_body",
                      test_name=f"scenario-{sc.name}", scenario=sc.to_dict(), **extra)
    raw = json.loads(json.dumps(raw))          # the same plain data from every backend
    raw["scenario"] = sc.to_dict()
    raw["backend"] = backend
    return raw
