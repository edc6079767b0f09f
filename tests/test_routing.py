"""Routing of configuration and memory requests, against sim/models/routing.py."""

import pytest

from rtl.params import GiB, GpuParams
from sim.runners.backend import run_amaranth, run_cocotb

BENCH = "tests.benches.routing:random_routing"


@pytest.mark.parametrize("vfs, stride, offset", [(1, 1, 1), (4, 2, 3), (16, 1, 1), (64, 1, 1),
                                                 (16, 8, 128)])
def test_requests_route_to_the_function_the_sriov_rules_name(vfs, stride, offset):
    params = GpuParams(num_vfs=vfs, vf_stride=stride, first_vf_offset=offset)
    hits = run_amaranth("router", params, BENCH, seed=vfs * stride, requests=3000)
    assert all(hits.values()), hits


@pytest.mark.parametrize("vf_aperture, pf_aperture", [(4 * GiB, 4 * GiB), (8 * GiB, 64 * GiB)])
def test_bars_of_4_gib_and_more_route_by_their_upper_address_bits(vf_aperture, pf_aperture):
    params = GpuParams(num_vfs=4, vf_fb_aperture=vf_aperture, pf_fb_aperture=pf_aperture)
    hits = run_amaranth("router", params, BENCH, seed=7, requests=2000)
    assert all(hits.values()), hits


def test_cocotb_routing_matches_the_model(simulator):
    requests = 40_000 if simulator == "verilator" else 10_000
    hits = run_cocotb(simulator, "router", GpuParams(), BENCH, test_name="random", seed=9,
                      requests=requests, states=40)
    assert sum(hits.values()) == 2 * requests
