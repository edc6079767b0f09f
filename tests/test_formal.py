"""Formal proofs (yowasp-sby, z3; yices for the whole GPU) of the FB partition unit and of
FB isolation in the whole GPU, on small configurations; the other blocks' proofs sit with
their tests."""

import time

import pytest

from rtl.top.gpu import SriovGpu
from rtl.params import KiB

from sim.tooling.formal import prove
from sim.tooling.toolchain import BUILD_DIR

from tests.conftest import FORMAL
from tests.formal import assert_counterexample
from tests.formal.fb_isolation import MUTANTS, FbIsolationHarness
from tests.formal.gpu_isolation import TOP_MUTANTS, GpuIsolationHarness

pytestmark = pytest.mark.formal

#: 2 VFs keep z3's induction step short (about a minute); the rules are per pair of regions.
PARAMS = FORMAL.with_(num_vfs=2)
#: Deep enough from reset for a region to be programmed, checked, scrubbed and armed, and
#: then misused (each planted bug shows within 12 cycles).
BMC_DEPTH = 12


def test_active_layout_is_disjoint_and_every_grant_lies_in_the_requesters_region():
    result = prove(FbIsolationHarness(PARAMS), BUILD_DIR / "formal" / "fb_isolation", depth=3)
    assert result, result.log[-4000:]
    assert "successful proof by k-induction" in result.log


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda cls: cls.__name__)
def test_fb_isolation_proof_fails_from_reset_on_a_planted_bug(mutant):
    result = prove(FbIsolationHarness(PARAMS, mutant), BUILD_DIR / "formal" /
                   f"fb_isolation_{mutant.__name__}", depth=BMC_DEPTH, mode="bmc")
    assert_counterexample(result, mutant)


# --- The whole GPU ------------------------------------------------------------------------

#: The whole GPU at its smallest: 2 VFs, 16 granules of 4 KiB, one capability unit per
#: granule (so that every slice the PF can program is a real one), one context beat, the
#: narrowest FB port and doorbells. The FB port's ready and answers are free, so memory
#: latency plays no part.
GPU_PARAMS = FORMAL.with_(num_vfs=2, iov_fb_unit=4 * KiB, ctx_words=1, shared_regs=1,
                          mem_width=64, doorbells_per_fn=1, doorbell_value_width=8,
                          mem_outstanding=1)
#: BMC depths of the whole GPU from reset (docs/security.md, "Whole-GPU proof"): the first
#: region is active from cycle 15, a VF's access reaches the FB port from about cycle 18,
#: two regions (the planted overlap) from cycle 25. The clean top is checked to
#: GPU_BMC_DEPTH (what yices does in about 3 minutes); the planted bugs, with the inputs
#: narrowed (``steer``), to GPU_BMC_MUTANT_DEPTH.
GPU_BMC_DEPTH = 20
GPU_BMC_MUTANT_DEPTH = 28


def _prove_gpu(top, depth, steer=False):
    start = time.monotonic()
    result = prove(GpuIsolationHarness(GPU_PARAMS, top, steer=steer), BUILD_DIR / "formal" /
                   f"gpu_isolation_{top.__name__}", depth=depth, mode="bmc", solver="yices")
    print(f"{top.__name__}: BMC depth {depth}, {time.monotonic() - start:.0f} s")
    return result


def test_whole_gpu_fb_accesses_stay_in_their_functions_regions_to_bmc_depth():
    result = _prove_gpu(SriovGpu, GPU_BMC_DEPTH)
    assert result, result.log[-4000:]
    assert f"Checking assertions in step {GPU_BMC_DEPTH - 1}.." in result.log
    assert "DONE (PASS" in result.log


@pytest.mark.parametrize("top", TOP_MUTANTS, ids=lambda cls: cls.__name__)
def test_whole_gpu_proof_fails_on_a_planted_bug_in_the_top(top):
    result = _prove_gpu(top, GPU_BMC_MUTANT_DEPTH, steer=True)
    assert_counterexample(result, top)
