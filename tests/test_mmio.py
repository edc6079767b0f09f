"""Register decode and mailbox: the same bodies on Amaranth sim and cocotb, against the model."""

import pytest

from rtl.params import GpuParams
from sim.runners.backend import run_amaranth, run_cocotb
from sim.tooling.formal import prove
from sim.tooling.toolchain import BUILD_DIR

from tests.formal import assert_counterexample
from tests.formal.mmio_mutants import MUTANTS as MMIO_MUTANTS
from tests.formal.mmio_scopes import MmioScopeHarness

BENCH = "tests.benches.mmio:"
P4 = GpuParams(num_vfs=4)
P16 = GpuParams(num_vfs=16)


@pytest.mark.parametrize("params, seed, requests", [
    (P4, 1, 6000), (P16, 2, 4000), (GpuParams(num_vfs=64), 3, 2000), (GpuParams(num_vfs=1), 4, 2000),
], ids=["4vf", "16vf", "64vf", "1vf"])
def test_random_register_traffic_matches_the_scope_model(params, seed, requests):
    counts = run_amaranth("mmio_decode", params, BENCH + "random_mmio", seed=seed,
                          requests=requests)
    assert counts["OK"] and counts["BLOCKED"] and counts["UR"], counts


def test_vf_cannot_touch_pf_only_or_unowned_registers():
    run_amaranth("mmio_decode", P4, BENCH + "vf_cannot_touch_pf_only_or_unowned_registers")


def test_mailbox_init_rel_fini_and_flr_notification_complete():
    log = run_amaranth("mmio_decode", P4, BENCH + "mailbox_handshakes")["log"]
    assert log == ["REQ_GPU_INIT_ACCESS", "READY_TO_ACCESS_GPU", "REL_GPU_INIT_ACCESS",
                   "REQ_GPU_FINI_ACCESS", "READY_TO_ACCESS_GPU", "REL_GPU_FINI_ACCESS",
                   "FLR_NOTIFICATION", "FLR_NOTIFICATION_CMPL"]


def test_cocotb_100k_register_requests_match_the_scope_model(simulator):
    requests = 100_000 if simulator == "verilator" else 20_000
    counts = run_cocotb(simulator, "mmio_decode", P16, BENCH + "random_mmio",
                        test_name="random", seed=100, requests=requests)
    assert sum(counts.values()) == requests and counts["BLOCKED"] > requests // 10


@pytest.mark.parametrize("body", ["vf_cannot_touch_pf_only_or_unowned_registers",
                                  "mailbox_handshakes",
                                  "shared_registers_restore_from_context_beats"])
def test_cocotb_directed_register_bodies_pass(simulator, body):
    run_cocotb(simulator, "mmio_decode", P16, BENCH + body, test_name=body)


@pytest.mark.parametrize("width, regs", [(64, 16), (128, 16), (512, 5), (128, 1)])
def test_world_switch_restores_the_shared_flops_from_context_beats(width, regs):
    params = GpuParams(mem_width=width, shared_regs=regs)
    assert run_amaranth("mmio_decode", params,
                        BENCH + "shared_registers_restore_from_context_beats") == {"ok": True}


#: Two VFs: enough for one VF to reach another's mailbox; two shared registers.
FORMAL_PARAMS = GpuParams(num_vfs=2, shared_regs=2, counter_width=8)
#: Each planted bug shows within a few cycles from reset (set MB_INDEX, then one access).
MMIO_BMC_DEPTH = 6


@pytest.mark.formal
def test_vfs_never_change_pf_only_registers_or_unowned_shared_flops():
    """Writes and reads: PF-only and owner-shared flops, refused answers, VF mailboxes."""
    result = prove(MmioScopeHarness(FORMAL_PARAMS), BUILD_DIR / "formal" / "mmio_scopes")
    assert result, result.log[-4000:]
    assert "successful proof by k-induction" in result.log


@pytest.mark.formal
@pytest.mark.parametrize("mutant", MMIO_MUTANTS, ids=lambda cls: cls.__name__)
def test_register_scope_proof_fails_from_reset_on_a_planted_bug(mutant):
    result = prove(MmioScopeHarness(FORMAL_PARAMS, mutant), BUILD_DIR / "formal" /
                   f"mmio_scopes_{mutant.__name__}", depth=MMIO_BMC_DEPTH, mode="bmc")
    assert_counterexample(result, mutant)
