"""FB partition unit: the same bodies (tests/benches/fb_partition.py) on Amaranth's simulator
and in cocotb over the generated Verilog, checked against sim/models/fb_partition.py."""

import pytest

from rtl.params import GpuParams
from sim.backend import run_amaranth, run_cocotb

from .conftest import COCOTB, SMALL

BENCH = "tests.benches.fb_partition:"


@pytest.mark.parametrize("params, seed, accesses", [
    (SMALL, 1, 6000),
    (SMALL.with_(num_vfs=7), 2, 4000),
    (COCOTB, 3, 4000),
    (GpuParams(), 4, 2000),                      # the defaults: 8 GiB FB, 16 MiB granule
    (GpuParams(num_vfs=64), 5, 2000),
], ids=["4vf-small", "7vf-small", "16vf", "defaults", "64vf"])
def test_random_accesses_match_the_reference_model(params, seed, accesses):
    seen = run_amaranth("fb_partition", params, BENCH + "random_traffic", seed=seed,
                        accesses=accesses)
    assert seen["NONE"] > accesses // 10, "too few granted accesses to mean anything"
    assert seen["OUTSIDE_SLICE"] and seen["NO_SLICE"] and seen["CTX_OUTSIDE_CSA"]


def test_result_comes_exactly_one_cycle_after_the_access():
    assert run_amaranth("fb_partition", SMALL, BENCH + "latency_cycles") == {"latency": 1}


@pytest.mark.parametrize("vfs", [4, 16])
def test_layout_check_runs_one_pair_per_cycle(vfs):
    # Pairs (i, j >= i) over the CSA and N slices, plus the restart and pipeline cycles.
    got = run_amaranth("fb_partition", SMALL.with_(num_vfs=vfs), BENCH + "layout_sweep_cycles")
    assert got == {"cycles": (vfs + 1) * (vfs + 2) // 2 + 2}


def test_overlapping_empty_and_past_end_layouts_are_reported():
    run_amaranth("fb_partition", SMALL, BENCH + "layout_errors_reported")


def test_csa_is_unreachable_from_a_vf_even_when_its_slice_covers_it():
    run_amaranth("fb_partition", SMALL, BENCH + "csa_unreachable_from_vfs")


def test_vf_on_the_config_port_is_blocked_counted_and_recorded():
    run_amaranth("fb_partition", SMALL, BENCH + "config_port_refuses_vfs")


def test_interrupt_follows_the_unacknowledged_violation():
    run_amaranth("fb_partition", SMALL, BENCH + "irq_follows_last_violation")


# --- the same bodies in cocotb, on the generated Verilog ---------------------------------

def test_cocotb_100k_random_accesses_match_the_reference_model(simulator):
    # Verilator carries the 100k campaign; Icarus, slower, runs a fifth of it.
    accesses = 100_000 if simulator == "verilator" else 20_000
    seen = run_cocotb(simulator, "fb_partition", COCOTB, BENCH + "random_traffic",
                      test_name="random", seed=100, accesses=accesses, rounds=10)
    missing = [kind for kind, n in seen.items() if not n and kind != "NOT_PF"]
    assert not missing, f"violation kinds never exercised: {missing}"


@pytest.mark.parametrize("body", ["csa_unreachable_from_vfs", "config_port_refuses_vfs",
                                  "layout_errors_reported", "irq_follows_last_violation",
                                  "latency_cycles"])
def test_cocotb_directed_bodies_pass(simulator, body):
    run_cocotb(simulator, "fb_partition", COCOTB, BENCH + body, test_name=body)


def test_both_backends_see_the_same_traffic_identically():
    amaranth = run_amaranth("fb_partition", COCOTB, BENCH + "random_traffic", seed=7,
                            accesses=3000)
    cocotb = run_cocotb("verilator", "fb_partition", COCOTB, BENCH + "random_traffic",
                        test_name="same", seed=7, accesses=3000)
    assert amaranth == cocotb
