"""Simulation speed of the whole GPU (a benchmark, not a test): simulated cycles per second
of the top at 16 VFs on each backend running the default scenario's traffic, and the wall
time of the default report. Run it with ``sriov-gpu bench-sim``."""

import contextlib
import io
import shutil
import tempfile
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
    # The main job as `make run` runs it (its table is not repeated here).
    from .cli import main
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        t0 = time.monotonic()
        status = main(["report", "-o", out])
        wall = time.monotonic() - t0
    print(f"default report (`sriov-gpu report`, Amaranth, with plots): {wall:.1f} s, "
          f"exit status {status}")
    return 0

