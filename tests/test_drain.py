"""Drain that depends on the work: the engine stops only at preemption points (every
``preempt_every`` cycles of a work item, or at its end), so IDLE's cost is a
distribution the cost model bounds; a workload can hang, and the hypervisor then resets
its VF (GFX_HANG, FLR) and goes on with the next VM, every other context intact."""

import pytest

from sim.bench.report import summarize, table
from sim.models import cost_model
from sim.models.engine import Engine
from rtl.params import GpuParams
from sim.system.run import run
from sim.system.scenario import ScenarioError, with_
from tests.test_scenario import SMALL, _without_backend

#: VMs with work items of 300 cycles, so that a stop usually finds one running.
BUSY = with_(SMALL, name="busy", work_per_doorbell=300, run_cycles=6000)


def _stop_cost(pending, item, every):
    """Busy cycles from engine_stop to the preemption point, by walking the item cycle by
    cycle: an independent reference for Engine.to_boundary."""
    waited = 0
    while pending % item:                     # inside an item
        into = item - pending % item
        if every and into % every == 0:       # on a preemption point
            break
        pending -= 1
        waited += 1
    return waited


@pytest.mark.parametrize("every", [1, 0, 4, 7, 300])
def test_a_stopped_engine_runs_on_to_the_next_preemption_point_then_drains(every):
    item, drain = 30, 3
    for pending in range(0, 3 * item + 1):
        engine = Engine(GpuParams(num_vfs=1), drain=drain, work_per_doorbell=item,
                        check_words=0, seed=0, preempt_every=every)
        engine.pending[1] = pending
        busy = 0
        while engine.advance(True, 1):
            busy += 1
            assert busy < 10 * item
        assert busy == _stop_cost(pending, item, every) + drain, pending
        assert engine.pending[1] == pending - (busy - drain)   # the wait was work done
        least, most = cost_model.idle_range(drain, item, every)
        assert least <= busy + 1 <= most


@pytest.mark.parametrize("every", [0, 64])
def test_idle_costs_a_distribution_within_the_model_s_range(every):
    raw = run(with_(BUSY, preempt_every=every))
    s = summarize(raw)
    assert s["errors"] == [] and s["switches"] >= 4
    least, most = cost_model.idle_range(BUSY.engine_drain, BUSY.work_per_doorbell, every)
    idles = [sw["idle"] for sw in raw["switches"]]
    assert all(least <= i <= most for i in idles) and len(set(idles)) > 1
    assert s["model"]["idle"] == f"{least}..{most}"
    # Preempting at any cycle: every IDLE is the drain alone.
    anywhere = run(with_(BUSY, preempt_every=1))
    assert {sw["idle"] for sw in anywhere["switches"]} == {least}


def test_preemption_points_give_the_run_of_a_loop_that_looks_at_every_cycle():
    sc = with_(BUSY, preempt_every=64)
    assert _without_backend(run(sc)) == _without_backend(run(sc, top="gpu"))


@pytest.fixture(scope="module")
def hung():
    return run(with_(SMALL, name="hang", run_cycles=8000, hang=((300, 2),)))


def test_a_hung_workload_ends_idle_with_gfx_hang_and_the_hypervisor_resets_its_vf(hung):
    s = summarize(hung)
    assert s["errors"] == [] and s["context_checks"] >= s["switches"]
    hang, = s["hangs"]
    assert hang["vf"] == 2 and hang["status"] == "GFX_HANG"
    assert [vf for _, vf in hung["hv"]["flrs"]] == [2]
    # That switch waited out the drain timeout, then a VM ran again; the rest were normal.
    idles = sorted(sw["idle"] for sw in hung["switches"])
    drain = SMALL.engine_drain + 1
    assert idles[-1] == SMALL.params().drain_timeout and set(idles[:-1]) == {drain}
    assert hang["recovered"] > SMALL.params().drain_timeout
    assert "GFX_HANG" in table(s)


def test_the_reset_vf_gets_the_gpu_again_after_its_hang(hung):
    hang, = hung["hv"]["hangs"]
    later = [seg for seg in hung["segments"] if seg[0] > hang["cycle"] + hang["recovered"]]
    assert any(seg[2] == "own" and seg[3] == 2 for seg in later), later


def test_a_hang_is_refused_where_the_hardware_scheduler_switches():
    with pytest.raises(ScenarioError, match="hang"):
        with_(SMALL, mode="auto-solid", hang=((300, 2),))
