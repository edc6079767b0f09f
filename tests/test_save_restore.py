"""Save/restore engine: contexts come back bit-exact, and the cycles are exactly what the
analytic model (sim/models/cost_model.py) predicts."""

import pytest

from rtl.params import GpuParams
from sim.models import cost_model
from sim.runners.backend import run_amaranth, run_cocotb

BENCH = "tests.benches.save_restore:roundtrip"


@pytest.mark.parametrize("width, latency, outstanding, words", [
    (64, 1, 32, 16), (128, 10, 32, 64), (256, 10, 4, 64), (512, 100, 128, 200),
    (512, 100, 32, 200), (64, 10, 10, 33), (128, 10, 11, 33), (256, 3, 1, 20),
])
def test_cycles_are_exactly_the_analytic_model(width, latency, outstanding, words):
    params = GpuParams(mem_width=width, mem_latency=latency, mem_outstanding=outstanding,
                       ctx_words=words)
    cycles = run_amaranth("context_mover", params, BENCH, seed=width + latency, functions=2,
                          switches=3)
    assert set(cycles["save"]) == {cost_model.save_cycles(params)}
    assert set(cycles["load"]) == {cost_model.load_cycles(params)}


def test_enough_reads_in_flight_reach_the_bandwidth_bound():
    params = GpuParams(mem_width=256, mem_latency=100, mem_outstanding=128, ctx_words=100)
    beats = cost_model.bandwidth_bound(params)
    assert cost_model.save_cycles(params) == beats + 1
    assert cost_model.load_cycles(params) == beats + params.mem_latency


@pytest.mark.parametrize("ready_prob", [0.3, 0.7])
def test_contexts_survive_random_back_pressure_bit_exact(ready_prob):
    params = GpuParams(mem_latency=7, mem_outstanding=5, shared_regs=5, ctx_words=24)
    cycles = run_amaranth("context_mover", params, BENCH, seed=int(ready_prob * 10),
                          functions=5, switches=40, ready_prob=ready_prob)
    assert min(cycles["load"]) > cost_model.load_cycles(params)   # back-pressure costs


def test_cocotb_1000_random_switches_restore_every_context(simulator):
    switches = 1000 if simulator == "verilator" else 100
    params = GpuParams(mem_latency=12, mem_outstanding=8, ctx_words=32)
    cycles = run_cocotb(simulator, "context_mover", params, BENCH, test_name="switches",
                        seed=5, functions=17, switches=switches, ready_prob=0.8)
    assert len(cycles["load"]) == switches


def test_zero_fill_leaves_the_engine_its_state_memory():
    params = GpuParams(num_vfs=4, ctx_words=32)
    result = run_amaranth("context_mover", params,
                          "tests.benches.save_restore:engine_during_zero_fill")
    assert result["busy_writes"] >= 16          # the engine wrote while the mover ran
    assert result["state"] == result["words"] and result["zeros"]
