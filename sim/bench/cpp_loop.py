"""The limit of simulation speed: the whole GPU's Verilog (the harness top, the same text the
cocotb runs simulate) clocked by a bare C++ loop over its Verilator model, no Python and no
VPI, single-threaded, -O3, every input at rest (the host port idle). sim/bench/sim_speed.py
prints the scenarios' speeds next to it."""

import subprocess
import time

from rtl.top.blocks import block_verilog
from sim.tooling.toolchain import BUILD_DIR, setup_verilator

__all__ = ["build", "rate"]

BLOCK = "gpu_harness"

_MAIN = r"""
// A bare clock loop over the Verilator model: argv[1] cycles; prints the seconds they took.
#include "V{top}.h"
#include "verilated.h"
#include <chrono>
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {{
    long cycles = atol(argv[1]);
    VerilatedContext context;
    V{top} top(&context);
    top.clk = 0; top.rst = 1; top.eval();
    for (int k = 0; k < 2; k++) {{ top.clk = 1; top.eval(); top.clk = 0; top.eval(); }}
    top.rst = 0;
    auto start = std::chrono::steady_clock::now();
    for (long k = 0; k < cycles; k++) {{ top.clk = 1; top.eval(); top.clk = 0; top.eval(); }}
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    printf("%.6f\n", seconds);
    return 0;
}}
"""


def build(params):
    """Build the loop for ``params`` (cached by the Verilog's text); returns the binary."""
    import hashlib
    root = setup_verilator()
    top = f"{BLOCK}_core"
    text = block_verilog(BLOCK, params, own_clock=False)
    folder = BUILD_DIR / "cpp_loop" / hashlib.sha256(text.encode()).hexdigest()[:12]
    binary = folder / "obj" / "loop"
    if binary.exists():
        return binary
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{top}.v").write_text(text)
    (folder / "main.cpp").write_text(_MAIN.format(top=top))
    command = [str(root / "bin" / "verilator"), "--cc", "--exe", "--build", "-O3",
               "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module", top,
               "-CFLAGS", "-O3", "-MAKEFLAGS", "OPT_FAST=-O3", "-j", "2", "--Mdir", "obj",
               "-o", "loop", f"{top}.v", "main.cpp"]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"building the C++ clock loop failed:\n{done.stderr[-3000:]}")
    return binary


def rate(params, short=100_000, long=400_000):
    """Cycles per second of the bare loop: the increment between a ``short`` and a ``long``
    run (start-up excluded). Returns (rate, build seconds)."""
    t0 = time.monotonic()
    binary = build(params)
    built = time.monotonic() - t0
    seconds = [float(subprocess.run([str(binary), str(n)], capture_output=True, text=True,
                                    check=True).stdout) for n in (short, long)]
    return (long - short) / (seconds[1] - seconds[0]), built
