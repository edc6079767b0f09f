"""World switch: the GPU-IOV command protocol, legal and illegal commands, context integrity
over many switches, drain timeout, FLR in every phase, and cycle counts that are exactly the
analytic model's (sim/models/cost_model.py)."""

import pytest

from rtl.params import GpuParams, KiB
from sim.models import cost_model
from sim.runners.backend import run_amaranth, run_cocotb
from sim.tooling.formal import prove
from sim.tooling.toolchain import BUILD_DIR

from tests.formal import assert_counterexample
from tests.formal.world_switch_mutants import MUTANTS as WS_MUTANTS
from tests.formal.world_switch_ownership import WorldSwitchOwnershipHarness

BENCH = "tests.benches.world_switch:"
SMALL = GpuParams(num_vfs=4, shared_regs=4, ctx_words=16)
DRAIN = 3


def test_host_driven_switch_a_to_b_and_back_restores_both_contexts():
    result = run_amaranth("world_switch", SMALL, BENCH + "host_sequence", drain=DRAIN)
    phases = cost_model.phase_cycles(SMALL, DRAIN)
    assert result["phases"] == [phases["idle"], phases["save"], phases["load"], phases["run"]]
    # Each host command takes its phase plus the cycle EXECUTE is seen and the cycle of done.
    assert result["command_cycles"] == {k: v + 2 for k, v in phases.items()}


@pytest.mark.parametrize("width, latency, outstanding, words", [
    (64, 10, 32, 16), (128, 10, 32, 64), (256, 100, 128, 40), (512, 100, 32, 40),
    (128, 3, 1, 20),
])
def test_switch_cycles_are_exactly_the_analytic_model(width, latency, outstanding, words):
    params = SMALL.with_(mem_width=width, mem_latency=latency, mem_outstanding=outstanding,
                         ctx_words=words)
    result = run_amaranth("world_switch", params, BENCH + "context_switch", drain=DRAIN)
    phases = cost_model.phase_cycles(params, DRAIN)
    assert result["phases"] == list(phases.values())
    assert result["switch"] == cost_model.switch_cycles(params, DRAIN)
    assert result["command"] == result["switch"] + 2 and result["switches"] == 1


@pytest.mark.parametrize("width, latency, outstanding, words", [
    (64, 10, 32, 16), (128, 100, 128, 40), (512, 10, 4, 40),
])
def test_overlapped_switch_cycles_are_exactly_the_analytic_model_and_faster(
        width, latency, outstanding, words):
    params = SMALL.with_(mem_width=width, mem_latency=latency, mem_outstanding=outstanding,
                         ctx_words=words)
    result = run_amaranth("world_switch", params, BENCH + "context_switch", drain=DRAIN,
                          overlap=True)
    assert result["phases"] == list(cost_model.overlapped_phase_cycles(params, DRAIN).values())
    assert result["switch"] == cost_model.overlapped_switch_cycles(params, DRAIN)
    assert result["switch"] < cost_model.switch_cycles(params, DRAIN)


def test_overlapped_switch_is_within_the_larger_stream_plus_latency_plus_16():
    for width in (64, 128, 256, 512):
        params = GpuParams(mem_width=width, mem_latency=100, mem_outstanding=128,
                           ctx_words=1024)
        beats = cost_model.bandwidth_bound(params)
        total = cost_model.overlapped_switch_cycles(params, drain=0)
        assert total <= beats + params.mem_latency + 16, width


def test_serial_switch_is_within_the_bandwidth_bound_plus_fixed_overhead():
    for width in (64, 128, 256, 512):
        params = SMALL.with_(mem_width=width, mem_latency=100, mem_outstanding=128,
                             ctx_words=1024)
        beats = cost_model.bandwidth_bound(params)
        total = cost_model.switch_cycles(params, drain=0)
        assert total - (2 * beats + params.mem_latency) == cost_model.HANDSHAKE_OVERHEAD <= 16


def test_hypervisor_polls_idle_save_load_run_through_configuration_space():
    result = run_amaranth("gpu_iov", SMALL, BENCH + "iov_host_sequence")
    assert result["statuses"].count("COMMAND_DONE") == 17


def test_cocotb_hypervisor_sequence_through_configuration_space(simulator):
    run_cocotb(simulator, "gpu_iov", SMALL, BENCH + "iov_host_sequence", test_name="host")


def test_illegal_commands_end_at_once_with_a_reason_and_change_nothing():
    result = run_amaranth("world_switch", SMALL, BENCH + "illegal_commands")
    assert result["refused"] >= 20


def test_engine_that_never_drains_ends_idle_with_gfx_hang_and_one_interrupt():
    result = run_amaranth("world_switch", SMALL, BENCH + "drain_timeout", timeout=50)
    assert result == {"cycles": 52, "idle_phase": 50}


@pytest.mark.parametrize("phase", ["drain", "save", "load", "running"])
def test_flr_in_any_phase_clears_only_that_function(phase):
    run_amaranth("world_switch", SMALL, BENCH + "flr_during", phase=phase)


def test_contexts_survive_random_switches_under_memory_back_pressure():
    params = SMALL.with_(mem_latency=7, mem_outstanding=4)
    result = run_amaranth("world_switch", params, BENCH + "random_switches", seed=3,
                          switches=40, ready_prob=0.6)
    assert result["switches"] == 40


COCOTB = GpuParams(num_vfs=16, shared_regs=8, ctx_words=8, mem_latency=12, mem_outstanding=8)


def test_cocotb_2000_random_switches_keep_every_context_bit_exact(simulator):
    switches = 2000 if simulator == "verilator" else 100
    params = COCOTB
    result = run_cocotb(simulator, "world_switch", params, BENCH + "random_switches",
                        test_name="switches", seed=9, switches=switches, ready_prob=0.8)
    assert result["switches"] == switches


@pytest.mark.parametrize("body", ["host_sequence", "illegal_commands"])
def test_cocotb_command_protocol(simulator, body):
    run_cocotb(simulator, "world_switch", COCOTB, BENCH + body, test_name=body)


@pytest.mark.parametrize("phase", ["drain", "save", "load", "running"])
def test_cocotb_flr_in_any_phase_clears_only_that_function(simulator, phase):
    run_cocotb(simulator, "world_switch", COCOTB, BENCH + "flr_during", test_name=f"flr_{phase}",
               phase=phase)


def test_cocotb_drain_timeout(simulator):
    result = run_cocotb(simulator, "world_switch", COCOTB, BENCH + "drain_timeout",
                        test_name="hang", timeout=40)
    assert result == {"cycles": 42, "idle_phase": 40}


def _turns(timeline):
    """Whole turns (the first and last may be cut by the watch window)."""
    return timeline[1:-1]


@pytest.mark.parametrize("liquid", [False, True])
def test_auto_mode_gives_run_list_functions_their_slices_in_turn(liquid):
    slice_cycles, drain = 100, 2
    result = run_amaranth("world_switch", SMALL, BENCH + "auto_mode", liquid=liquid,
                          slice_cycles=slice_cycles, cycles=1400, drain=drain)
    phases = cost_model.phase_cycles(SMALL, drain)
    gap = phases["save"] + phases["load"] + phases["run"]       # nobody owns the GPU
    for part, order in (("first", [1, 2, 3]), ("second", [1, 2, 4])):
        turns = _turns(result[part])
        owners = [fn for fn, _ in turns if fn is not None]
        assert all(b == order[(order.index(a) + 1) % 3] for a, b in zip(owners, owners[1:])), \
            f"{part}: not round robin over {order}: {owners}"
        for fn, cycles in turns:        # a turn: its slice, then the drain while it still owns
            assert cycles == (gap if fn is None else slice_cycles + phases["idle"]), turns
    assert result["switch_max"] == cost_model.switch_cycles(SMALL, drain)


def test_liquid_auto_mode_skips_idle_functions_and_ends_an_idle_turn_early():
    result = run_amaranth("world_switch", SMALL, BENCH + "auto_mode", liquid=True,
                          slice_cycles=100, cycles=1400, idle_fns=(2,), work_until=(1, 30))
    owners = [fn for fn, _ in result["first"] + result["second"] if fn is not None]
    assert 2 not in owners and {1, 3, 4} <= set(owners)
    first_turn = result["first"][0]
    assert first_turn[0] == 1 and first_turn[1] < 40     # its work ran out after 30 cycles
    assert 1 not in [fn for fn, _ in result["second"]]   # and it never came back


def test_solid_auto_mode_runs_functions_without_work_too():
    result = run_amaranth("world_switch", SMALL, BENCH + "auto_mode", liquid=False,
                          slice_cycles=100, cycles=1400, idle_fns=(2,))
    assert 2 in [fn for fn, _ in result["first"]]


#: One-beat contexts (1 shared register, 1 engine word): the smallest sequence that still
#: saves, loads and switches; 2 VFs so that a switch has somewhere to go.
FORMAL_PARAMS = GpuParams(num_vfs=2, shared_regs=1, ctx_words=1, mem_width=64,
                          mem_outstanding=2, mem_latency=2, fb_size=64 * KiB,
                          fb_granule=4 * KiB, vf_fb_aperture=16 * KiB, counter_width=8)
#: The planted bugs' BMC runs: 1 VF, a memory of latency 1, and the PF's register port idle
#: (``quiet``), so z3 reaches a switch from reset quickly.
WS_BMC_PARAMS = FORMAL_PARAMS.with_(num_vfs=1, mem_latency=1, mem_outstanding=1)
#: (depth, skip) per planted bug: RUN_GPU after reset shows at step 4; keeping the owner
#: after its FLR needs INIT_GPU, LOAD_GPU_STATE and RUN_GPU first (18 cycles from reset), so
#: that run checks from step 20 only (z3 would spend minutes showing the early steps clean).
WS_BMC = {"RunWithoutLoad": (30, 0), "OwnerKeptAfterFlr": (21, 20)}


@pytest.mark.formal
def test_ownership_never_jumps_between_functions_and_an_flr_ends_it():
    """Also: only a function whose context was loaded whole since its last FLR owns the GPU."""
    result = prove(WorldSwitchOwnershipHarness(FORMAL_PARAMS), BUILD_DIR / "formal" /
                   "world_switch", depth=6)
    assert result, result.log[-4000:]
    assert "successful proof by k-induction" in result.log


@pytest.mark.formal
@pytest.mark.parametrize("mutant", WS_MUTANTS, ids=lambda cls: cls.__name__)
def test_ownership_proof_fails_from_reset_on_a_planted_bug(mutant):
    depth, skip = WS_BMC[mutant.__name__]
    result = prove(WorldSwitchOwnershipHarness(WS_BMC_PARAMS, mutant, quiet=True),
                   BUILD_DIR / "formal" / f"world_switch_{mutant.__name__}", depth=depth,
                   mode="bmc", skip=skip)
    assert_counterexample(result, mutant)
