"""The one cocotb test: runs the body named in SRIOV_BENCH (see :func:`sim.runners.backend.run_cocotb`)."""

import json
import os

import cocotb

from rtl.top.blocks import make_block
from rtl.params import GpuParams
from sim.runners.backend import CocotbBench, ProgressFile, resolve


@cocotb.test()
async def run_bench(dut):
    spec = json.loads(os.environ["SRIOV_BENCH"])
    params = GpuParams(**spec["params"])
    tb = CocotbBench(dut, make_block(spec["block"], params),
                     at_falling_edge=spec.get("at_falling_edge", False))
    await tb.start()
    kwargs = dict(spec["kwargs"])
    if spec.get("progress"):
        kwargs["progress"] = ProgressFile(spec["progress"])
    result = await resolve(spec["body"])(tb, params, **kwargs)
    with open(spec["result"], "w") as f:
        json.dump(result, f)
