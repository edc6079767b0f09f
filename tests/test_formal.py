"""Formal proofs (yowasp-sby, prove mode, z3) on small configurations."""

import pytest

from sim.formal import prove
from sim.toolchain import BUILD_DIR

from .conftest import FORMAL
from .formal.fb_isolation import FbIsolationHarness

pytestmark = pytest.mark.formal


def test_a_vf_access_outside_its_slice_is_never_granted():
    result = prove(FbIsolationHarness(FORMAL), BUILD_DIR / "formal" / "fb_isolation")
    assert result, result.log[-4000:]
    assert "successful proof by k-induction" in result.log
