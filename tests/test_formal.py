"""Formal proofs (yowasp-sby, z3) of the FB partition unit, on a small configuration; the
other blocks' proofs sit with their tests."""

import pytest

from sim.formal import prove
from sim.toolchain import BUILD_DIR

from .conftest import FORMAL
from .formal.fb_isolation import MUTANTS, FbIsolationHarness

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
    assert not result, f"no counterexample with {mutant.__name__}: {mutant.__doc__}"
    assert "Assert failed" in result.log, result.log[-2000:]
