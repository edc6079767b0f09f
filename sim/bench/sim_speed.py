"""Simulation speed of the whole GPU (a benchmark, not a test): simulated cycles per second of
the harness top (rtl/top/harness.py) on each backend, for the default scenario's busy traffic
and for a sparse one (long time slices, rare guest requests, slow polling: what a realistic
run looks like), next to the simulator's bare clock and a bare C++ loop over the same
Verilog (the limit, sim/bench/cpp_loop.py). Every rate is the increment between two run
lengths, timed inside the simulation, so builds and start-up are left out. Run it with
``sriov-gpu bench-sim``."""

import contextlib
import io
import shutil
import sys
import tempfile
import time

from sim.runners.backend import run_backend
from sim.system.scenario import DEFAULT, Workload, with_

__all__ = ["SPARSE", "LENGTHS", "measure", "run_bench", "timed_scenario", "clock_only"]

BACKENDS_NEEDING = {"icarus": "iverilog"}
TOP = "gpu_harness"

#: A sparse scenario: 4 VMs, 50,000-cycle (400 us) slices, a status poll every 1,250 cycles
#: (10 us), each VM ringing every 10,000 cycles and touching FB and registers every 25,000.
SPARSE = with_(DEFAULT, name="sparse", per_vf={}, time_slice=50_000, poll_every=1250,
               work_per_doorbell=2000,
               workload=Workload(doorbell_every=10_000, fb_every=25_000, reg_every=25_000))

#: Cycles of guest traffic (run_cycles) of the two runs whose difference gives a rate, per
#: scenario and backend: long enough to dwarf the set-up, short enough to wait for.
LENGTHS = {
    "default": {"amaranth": (3000, 6000), "verilator": (30_000, 120_000),
                "icarus": (6000, 12_000)},
    "sparse": {"amaranth": (40_000, 60_000), "verilator": (200_000, 1_000_000),
               "icarus": (100_000, 200_000)},
}
#: Cycles of the bare-clock runs, per backend.
CLOCK_LENGTHS = {"amaranth": (5000, 10_000), "verilator": (200_000, 1_000_000),
                 "icarus": (50_000, 100_000)}


async def timed_scenario(tb, params, scenario):
    """The scenario's body, timed inside the simulation (no build, no start-up)."""
    from sim.system.run import run_body
    t0 = time.monotonic()
    raw = await run_body(tb, params, scenario)
    return {"cycles": raw["cycles"], "seconds": time.monotonic() - t0, "looked": raw["looked"]}


async def clock_only(tb, params, cycles):
    """The clock alone, nothing driven: the simulator's own speed on the top."""
    t0 = time.monotonic()
    await tb.tick(cycles)
    return {"cycles": cycles, "seconds": time.monotonic() - t0, "looked": 0}


def _increment(runs):
    (c0, s0), (c1, s1) = [(r["cycles"], r["seconds"]) for r in runs]
    if s1 <= s0 or c1 <= c0:
        raise RuntimeError(f"the longer run was not slower ({c0} cycles in {s0:.3f} s, "
                           f"{c1} in {s1:.3f} s): lengthen the runs")
    return (c1 - c0) / (s1 - s0)


def measure(backend, scenario, lengths, vfs):
    """{"rate": cycles/s, "looked": share of cycles the loop looked at, "cycles": of the
    longer run} of ``scenario`` with ``vfs`` VFs on ``backend``, from two runs of
    ``lengths`` cycles of guest traffic."""
    runs = []
    for n in lengths:
        sc = with_(scenario, name=f"bench-{scenario.name}-{vfs}", num_vfs=vfs, run_cycles=n)
        runs.append(run_backend(backend, TOP, sc.params(), "sim.bench.sim_speed:timed_scenario",
                                test_name=f"bench-{scenario.name}", scenario=sc.to_dict()))
    return {"rate": _increment(runs), "looked": runs[1]["looked"] / runs[1]["cycles"],
            "cycles": runs[1]["cycles"]}


def measure_clock(backend, lengths, vfs):
    params = with_(DEFAULT, num_vfs=vfs).params()
    return _increment([run_backend(backend, TOP, params, "sim.bench.sim_speed:clock_only",
                                   test_name="bench-clock", cycles=n) for n in lengths])


def _progress(text):
    print(f"bench-sim: {text}", file=sys.stderr, flush=True)


def run_bench(backends, vfs, report=None, cpp=True):
    """Print the speed table for ``backends``, and the C++ limit (``cpp``); then, given
    ``report`` (a function of an output folder that runs the default report and returns its
    exit status, as `sriov-gpu report` does), the wall time of that report."""
    from sim.bench import cpp_loop
    limit = None
    if cpp:
        _progress("building and timing the bare C++ loop")
        limit, built = cpp_loop.rate(with_(DEFAULT, num_vfs=vfs).params())
    print(f"Whole GPU at {vfs} VFs (the harness top, FB in the design): simulated cycles per "
          f"second, the increment between two run lengths (builds and start-up excluded).")
    if limit:
        print(f"limit: a bare C++ loop over the same Verilog, no Python, -O3, one thread: "
              f"{limit:,.0f} cycles/s")
    print(f"{'backend':10} {'default':>10} {'looked':>7} {'sparse':>10} {'looked':>7} "
          f"{'bare clock':>11} {'default/limit':>14} {'sparse/limit':>13}")
    for backend in backends:
        tool = BACKENDS_NEEDING.get(backend)
        if tool and not shutil.which(tool):
            print(f"{backend:10} (not installed)")
            continue
        got = {}
        for name, sc in (("default", DEFAULT), ("sparse", SPARSE)):
            _progress(f"{backend}: the {name} scenario, {LENGTHS[name][backend]} cycles")
            got[name] = measure(backend, sc, LENGTHS[name][backend], vfs)
        _progress(f"{backend}: the bare clock")
        clock = measure_clock(backend, CLOCK_LENGTHS[backend], vfs)
        share = (lambda r: f"{100 * r / limit:.0f} %") if limit else (lambda r: "-")
        print(f"{backend:10} {got['default']['rate']:>10,.0f} "
              f"{100 * got['default']['looked']:>6.1f}% {got['sparse']['rate']:>10,.0f} "
              f"{100 * got['sparse']['looked']:>6.1f}% {clock:>11,.0f} "
              f"{share(got['default']['rate']):>14} {share(got['sparse']['rate']):>13}",
              flush=True)
    print("looked: the share of cycles the system loop looked at (the rest ran in the "
          "simulator alone)")
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
