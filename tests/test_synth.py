"""Synthesis: every block passes Yosys synth_ecp5; place and route at 16/64 VFs is slow."""

import pytest

from rtl.top.blocks import BLOCKS
from rtl.params import GpuParams
from sim.tooling.synth import synthesize
from sim.tooling.toolchain import BUILD_DIR


@pytest.mark.parametrize("block", list(BLOCKS))
def test_block_synthesizes_for_ecp5_with_logic_and_flops(block):
    result = synthesize(block, GpuParams(num_vfs=4), BUILD_DIR / "synth-test" / block, pnr=False)
    cells = result["cells"]
    print(f"{block} @ 4 VFs: {cells}")
    assert cells["LUT4"] > 0 and cells["FF"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("vfs", [16, 64])
@pytest.mark.parametrize("block", list(BLOCKS))
def test_block_places_and_routes_on_the_ecp5_5g(block, vfs):
    result = synthesize(block, GpuParams(num_vfs=vfs), BUILD_DIR / "synth-test" / f"{block}-{vfs}")
    print(f"{block} @ {vfs} VFs: {result['cells']}, fmax {result['fmax_mhz']} MHz")
    # A block whose every path starts at a port (the router) has no fmax of its own.
    assert result["fmax_mhz"] is None or result["fmax_mhz"] > 0
