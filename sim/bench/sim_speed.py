"""Simulation speed of the whole GPU (a benchmark, not a test): simulated cycles per second
of the top at 16 VFs on each backend, running the default scenario's traffic and with the
bare clock, and the wall time of the default report. Run it with ``sriov-gpu bench-sim``."""

import contextlib
import io
import shutil
import tempfile
import time

from sim.runners.backend import run_backend
from sim.system.scenario import DEFAULT, with_

__all__ = ["measure", "run_bench", "timed_scenario", "clock_only"]

BACKENDS_NEEDING = {"icarus": "iverilog"}


async def timed_scenario(tb, params, scenario):
    """The scenario's body, timed inside the simulation (no build, no start-up)."""
    from sim.system.run import run_body
    t0 = time.monotonic()
    raw = await run_body(tb, params, scenario)
    return {"cycles": raw["cycles"], "seconds": time.monotonic() - t0}


async def clock_only(tb, params, cycles):
    """The clock alone, nothing driven: the simulator's own speed on the top."""
    t0 = time.monotonic()
    await tb.tick(cycles)
    return {"cycles": cycles, "seconds": time.monotonic() - t0}


def measure(backend, cycles, vfs):
    """{"scenario": cycles/s, "clock": cycles/s, "first": s, "second": s, "cycles": n} on
    ``backend``: simulated cycles per second of the default scenario's traffic and of the
    bare clock (both timed inside the simulation), and the wall time of a first scenario
    run (with the build: Verilator compiles the model) and of a second (build reused)."""
    sc = with_(DEFAULT, name=f"bench-{vfs}", num_vfs=vfs, run_cycles=cycles)
    params = sc.params()
    walls = []
    for _ in range(2):
        t0 = time.monotonic()
        got = run_backend(backend, "gpu", params, "sim.bench.sim_speed:timed_scenario",
                          scenario=sc.to_dict())
        walls.append(time.monotonic() - t0)
    clock = run_backend(backend, "gpu", params, "sim.bench.sim_speed:clock_only", cycles=20_000)
    return {"cycles": got["cycles"], "scenario": got["cycles"] / got["seconds"],
            "clock": clock["cycles"] / clock["seconds"], "first": walls[0], "second": walls[1]}


def run_bench(backends, cycles, vfs, report=None):
    """Print the speed table for ``backends``; then, given ``report`` (a function of an
    output folder that runs the default report and returns its exit status, as `sriov-gpu
    report` does), the wall time of that report."""
    print(f"Whole GPU at {vfs} VFs; the default scenario's traffic with {cycles} cycles of "
          f"guest requests, and the bare clock (20,000 cycles):")
    print(f"{'backend':10} {'cycles':>7} {'scenario cycles/s':>18} {'clock cycles/s':>15} "
          f"{'first run s':>12} {'second run s':>13}")
    for backend in backends:
        tool = BACKENDS_NEEDING.get(backend)
        if tool and not shutil.which(tool):
            print(f"{backend:10} (not installed)")
            continue
        r = measure(backend, cycles, vfs)
        print(f"{backend:10} {r['cycles']:>7} {r['scenario']:>18.0f} {r['clock']:>15.0f} "
              f"{r['first']:>12.1f} {r['second']:>13.1f}", flush=True)
    if report is None:
        return 0
    # The main job as `make run` runs it (its table is not repeated here).
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        t0 = time.monotonic()
        status = report(out)
        wall = time.monotonic() - t0
    print(f"default report (`sriov-gpu report`, Amaranth, with plots): {wall:.1f} s, "
          f"exit status {status}")
    return 0

