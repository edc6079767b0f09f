"""Simulation speed of the whole GPU (a benchmark, not a test): simulated cycles per second
of the top at 16 VFs on each backend running the default scenario's traffic, and the wall
time of the default report. Run it with ``sriov-gpu bench-sim``."""

import shutil
import time

from .scenario import DEFAULT, run, with_

__all__ = ["measure", "run_bench"]


def measure(backend, cycles, vfs):
    """(simulated cycles, wall seconds of the first run, of a second run) on ``backend``:
    the first includes building the model (Verilator compiles it), the second reuses it."""
    sc = with_(DEFAULT, name=f"bench-{vfs}", num_vfs=vfs, run_cycles=cycles)
    walls = []
    for _ in range(2):
        t0 = time.monotonic()
        raw = run(sc, backend)
        walls.append(time.monotonic() - t0)
    return raw["cycles"], walls


def run_bench(backends, cycles, vfs):
    print(f"Whole GPU at {vfs} VFs, default scenario traffic, {cycles} cycles of traffic:")
    print(f"{'backend':10} {'cycles':>8} {'first run s':>12} {'second run s':>13} "
          f"{'cycles/s':>9}")
    for backend in backends:
        if backend == "icarus" and not shutil.which("iverilog"):
            print(f"{backend:10} (not installed)")
            continue
        simulated, walls = measure(backend, cycles, vfs)
        print(f"{backend:10} {simulated:>8} {walls[0]:>12.1f} {walls[1]:>13.1f} "
              f"{simulated / walls[1]:>9.0f}", flush=True)
    from . import report
    t0 = time.monotonic()
    raw = run(DEFAULT)
    report.table(report.summarize(raw))
    print(f"default report simulation (Amaranth, {raw['cycles']} cycles): "
          f"{time.monotonic() - t0:.1f} s (`make run` adds the plots and their points)")
    return 0

