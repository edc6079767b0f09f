"""The hostile campaign (sim/system/fuzz.py): a short smoke on both simulators finds nothing on the
design, and finds a planted isolation bug."""

import pytest

from rtl.memory.fb_partition import FbPartition
from sim.system import fuzz

from tests.formal.fb_isolation import _LetsOverlapsThrough


def _check(raw):
    assert raw["checked"].get("fb") and raw["engine_checks"], \
        f"the campaign checked nothing: {fuzz.summary(raw)}"
    assert not raw["mismatches"], "\n".join(fuzz.summary(raw))


def test_hostile_traffic_never_shows_a_vf_another_functions_data_on_amaranth():
    raw = fuzz.run(2000, seed=1, backend="amaranth")
    _check(raw)
    assert raw["transactions"] >= 2000
    assert raw["execute_while_busy"] and raw["refused"]["cntxt_locked"]


def test_hostile_traffic_never_shows_a_vf_another_functions_data_on_verilator():
    _check(fuzz.run(2000, seed=5, backend="verilator"))


def test_the_campaign_sees_a_vf_read_another_vfs_data_when_overlaps_are_let_through(
        monkeypatch):
    monkeypatch.setattr(FbPartition, "ACTIVATOR", _LetsOverlapsThrough)
    # Overlapping slices let a VF read another's data, or a slice over the CSA has the
    # zero-fill wipe saved contexts: either way the reference reports a mismatch.
    raw = fuzz.run(3000, seed=1, backend="amaranth")
    assert raw["mismatches"], "\n".join(fuzz.summary(raw))


def test_a_campaign_without_transactions_is_refused():
    with pytest.raises(fuzz.ParamError, match="transactions"):
        fuzz.run(0)
