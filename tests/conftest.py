"""Shared fixtures: which cocotb simulators run, and the parameter sets the tests use."""

import os

import pytest

from rtl.params import GpuParams, KiB, MiB
from sim.tooling.toolchain import available_simulators

#: Simulators that must run (CI sets this): a missing one fails instead of skipping.
REQUIRED_SIMULATORS = os.environ.get("SRIOV_REQUIRE_SIMULATORS", "").split()

#: A small FB makes slice edges, the CSA and the end of FB easy to hit at random.
SMALL = GpuParams(num_vfs=4, fb_size=64 * MiB, fb_granule=4 * MiB, vf_fb_aperture=16 * MiB)
#: The default VF count on a 1 GiB FB with a 64 MiB VF aperture: what the cocotb runs build.
COCOTB = GpuParams(num_vfs=16, fb_size=1024 * MiB, fb_granule=16 * MiB,
                   vf_fb_aperture=64 * MiB)
#: Smallest useful configuration, for formal proofs.
FORMAL = GpuParams(num_vfs=4, fb_size=16 * 4 * KiB, fb_granule=4 * KiB,
                   vf_fb_aperture=16 * KiB, counter_width=8, tag_width=1)


@pytest.fixture(params=["verilator", "icarus"])
def simulator(request):
    name = request.param
    if name not in available_simulators():
        if name in REQUIRED_SIMULATORS:
            pytest.fail(f"simulator {name} is required (SRIOV_REQUIRE_SIMULATORS) but not found")
        pytest.skip(f"{name} not installed (Icarus: apt-get install iverilog)")
    return name
