"""Doorbell arbiter: nothing lost or duplicated, order kept, one doorbell per cycle, a stated
wait bound, FLR drops exactly its own. Judged by sim/models/doorbell.py's rules."""

import pytest

from rtl.doorbell.arbiter import DoorbellArbiter
from rtl.params import GpuParams
from sim.runners.backend import run_amaranth, run_cocotb
from sim.bench.doorbell import first_wait_bound, wait_bound
from sim.tooling.formal import prove
from sim.tooling.toolchain import BUILD_DIR

from tests.formal.doorbell_mutants import (EarlierPortWins, OneWritePerFunction,
                                      RingLostWhenPicked)
from tests.formal.doorbell_no_loss import DoorbellNoLossHarness

BENCH = "tests.benches.doorbell:"
RATE = "sim.bench.doorbell:owner_rings_every_cycle"
SATURATION = "sim.bench.doorbell:saturation"
P16 = GpuParams()
SHAPES = [GpuParams(num_vfs=4, doorbells_per_fn=1),
          GpuParams(num_vfs=4, doorbells_per_fn=3, doorbell_ports=2),
          GpuParams(num_vfs=16, doorbells_per_fn=8, doorbell_ports=4, doorbell_value_width=16),
          GpuParams(num_vfs=64, doorbells_per_fn=2, doorbell_ports=3)]


@pytest.mark.parametrize("params", SHAPES, ids=lambda p: f"{p.num_vfs}vf-{p.doorbells_per_fn}d"
                         f"-{p.doorbell_ports}p")
def test_random_bursts_lose_nothing_and_keep_order(params):
    result = run_amaranth("doorbell_arbiter", params, BENCH + "random_doorbells", seed=7,
                          cycles=3000)
    assert result["rung"] > 1000 and result["ur"] > 0 and result["delivered"] > 0


def test_rings_from_disabled_vfs_are_refused():
    result = run_amaranth("doorbell_arbiter", P16, BENCH + "random_doorbells", seed=3,
                          cycles=2000, num_vfs=5)
    assert result["ur"] > 0


@pytest.mark.parametrize("ports", [1, 4])
def test_owner_ringing_every_cycle_gets_one_doorbell_per_cycle(ports):
    params = GpuParams(doorbell_ports=ports)
    result = run_amaranth("doorbell_arbiter", params, RATE, cycles=200)
    assert result == {"delivered": 200, "first": DoorbellArbiter.LATENCY}


@pytest.mark.parametrize("vfs, weighted", [(4, False), (4, True), (16, True), (64, False)])
def test_every_busy_vf_is_served_within_the_round_robin_bound(vfs, weighted):
    params = GpuParams(num_vfs=vfs, doorbells_per_fn=4, doorbell_ports=2)
    weights = [0] + [1 + fn % 3 if weighted else 0 for fn in range(vfs)]
    w = {fn: max(weights[fn], 1) for fn in range(1, vfs + 1)}       # 0 counts as 1
    rounds = 4
    cycles = rounds * sum(w.values())
    result = run_amaranth("doorbell_arbiter", params, SATURATION, cycles=cycles,
                          weights=weights)
    for fn in w:                            # the stated bound: 1 + the others' weights
        others = sum(w.values()) - w[fn]
        assert 0 < result["worst"][fn] <= 1 + others, fn
        assert result["worst_first"][fn] <= 1 + others + DoorbellArbiter.LATENCY, fn
    # The CP never idles once serving (which acts from the next cycle) started.
    assert result["delivered"] == cycles - 1 - DoorbellArbiter.LATENCY
    for fn in w:                            # deliveries follow the weights
        assert abs(result["counts"][fn] - rounds * w[fn]) <= w[fn], fn


@pytest.mark.parametrize("d, ports", [(1, 1), (8, 1), (8, 4), (64, 4)])
def test_saturating_owner_waits_at_most_doorbells_plus_latency(d, ports):
    params = GpuParams(doorbells_per_fn=d, doorbell_ports=ports, num_vfs=1)   # owner: VF 1
    result = run_amaranth("doorbell_arbiter", params, BENCH + "owner_saturation_wait",
                          cycles=600 if d < 64 else 250)    # 64 doorbells simulate slowly
    assert 0 < result["worst_wait"] <= d + DoorbellArbiter.LATENCY


@pytest.mark.parametrize("body", ["offer_survives_an_ownership_change",
                                  "flr_drops_exactly_its_doorbells"])
def test_directed_doorbell_bodies_pass(body):
    assert run_amaranth("doorbell_arbiter", P16, BENCH + body) == {"ok": True}


def test_cocotb_100k_random_doorbells_lose_nothing(simulator):
    cycles = 130_000 if simulator == "verilator" else 15_000
    params = GpuParams(doorbell_ports=2)
    result = run_cocotb(simulator, "doorbell_arbiter", params, BENCH + "random_doorbells",
                        test_name="random", seed=11, cycles=cycles)
    assert result["rung"] >= (100_000 if simulator == "verilator" else 10_000)


@pytest.mark.parametrize("body", ["offer_survives_an_ownership_change",
                                  "flr_drops_exactly_its_doorbells"])
def test_cocotb_directed_doorbell_bodies_pass(simulator, body):
    params = GpuParams(doorbell_ports=2)
    assert run_cocotb(simulator, "doorbell_arbiter", params, BENCH + body,
                      test_name=body) == {"ok": True}


def test_cocotb_throughput_is_one_doorbell_per_cycle(simulator):
    result = run_cocotb(simulator, "doorbell_arbiter", GpuParams(doorbell_ports=2), RATE,
                        test_name="rate", cycles=500)
    assert result == {"delivered": 500, "first": DoorbellArbiter.LATENCY}


def test_cocotb_busy_vfs_share_the_cp_within_the_bound(simulator):
    weights = [0] + [1 + fn % 4 for fn in range(16)]
    result = run_cocotb(simulator, "doorbell_arbiter", GpuParams(doorbell_ports=2), SATURATION,
                        test_name="saturation", cycles=400, weights=weights)
    assert max(result["worst"].values()) <= wait_bound(weights[1:])
    assert max(result["worst_first"].values()) <= first_wait_bound(weights[1:])


#: The proofs' shape: 2 ports, so that two writes of one function can land in one cycle.
PROOF_SHAPE = GpuParams(num_vfs=2, doorbells_per_fn=2, doorbell_ports=2, doorbell_value_width=8)
#: Enough for the real design's k-induction and for each planted bug's shortest
#: counterexample (the ring lost at the pick needs reset, ring, stage 1, stage 2, check).
PROOF_DEPTH = 5


def prove_doorbells(arbiter=DoorbellArbiter):
    harness = DoorbellNoLossHarness(PROOF_SHAPE, arbiter)
    return prove(harness, BUILD_DIR / "formal" / f"doorbell_{arbiter.__name__}",
                 depth=PROOF_DEPTH)


@pytest.mark.formal
def test_newest_value_of_every_doorbell_reaches_the_cp_in_order_unless_reset():
    result = prove_doorbells()
    assert result, result.log[-4000:]
    assert "successful proof by k-induction" in result.log


def assert_caught(result):
    """A planted bug must give a counterexample (a failed base case), not merely leave the
    induction open."""
    assert not result and "DONE (FAIL" in result.log, result.log[-4000:]


@pytest.mark.formal
def test_proof_catches_a_ring_lost_in_the_cycle_its_old_value_is_picked():
    assert_caught(prove_doorbells(RingLostWhenPicked))


@pytest.mark.formal
def test_proof_catches_one_of_two_same_cycle_writes_of_a_function_going_unrecorded():
    assert_caught(prove_doorbells(OneWritePerFunction))


@pytest.mark.formal
def test_proof_catches_the_earlier_port_winning_two_same_cycle_writes_of_a_doorbell():
    assert_caught(prove_doorbells(EarlierPortWins))
