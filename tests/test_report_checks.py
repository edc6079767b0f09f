"""The report refuses a run that measured nothing or gives an impossible figure, computes
the GPU share from the timeline after set-up, and draws the cost plot for the scenario's own
parameters. Checked on hand-made raw runs, against numbers worked out by hand."""

import pickle

import pytest

from sim.bench.report import ReportError, cost_points, gpu_share, plot_cost, summarize
from sim.system.scenario import DEFAULT, Workload, with_

#: The hand-made run: the hypervisor's set-up ends at this cycle ...
SETUP_DONE = 100
#: ... and the run at this one: 1000 cycles after set-up.
CYCLES = 1100
AFTER_SETUP = CYCLES - SETUP_DONE
#: VF 1 owns the GPU from before set-up ends to this cycle; VF 2 from OWN_2 to the end.
OWN_1_END = 300
OWN_2 = 491

#: One request of each legal kind, as a guest tallies them.
BUSY = {"doorbells": 1, "fb_reads": 1, "fb_writes": 1, "reg_reads": 1,
        "fb_outside_slice": 0, "pf_only_register": 0, "other_vf_doorbell": 0}
#: One serial world switch from VF 1 to VF 2, phases as the monitor records them.
SWITCH = {"from": 1, "to": 2, "start": OWN_1_END, "end": OWN_2, "idle": 5, "save": 72,
          "load": 81, "overlap": 0, "run": 1, "total": OWN_2 - OWN_1_END}


def hand_run(active_vfs=2, segments=None, switches=(SWITCH,), tally=BUSY, **changes):
    """A raw run as :func:`sim.system.run.run` returns it, small enough to check by hand."""
    sc = with_(DEFAULT, name="hand", num_vfs=4, active_vfs=active_vfs, per_vf={}, **changes)
    vfs = [str(vf) for vf in range(1, active_vfs + 1)]
    if segments is None:
        segments = [[0, 95, "init", 0], [95, 96, "run", 1], [96, OWN_1_END, "own", 1],
                    [OWN_1_END, 305, "drain", 1], [305, 400, "save", 1],
                    [400, OWN_2 - 1, "load", 1], [OWN_2 - 1, OWN_2, "run", 2],
                    [OWN_2, CYCLES, "own", 2]]
    none = {vf: 0 for vf in map(str, range(1, sc.num_vfs + 1))}
    return {
        "scenario": sc.to_dict(), "backend": "amaranth", "cycles": CYCLES, "requests": 10,
        "hv": {"setup_done": SETUP_DONE, "flrs": [], "mailbox": [],
               "counters": {"fb_violations": none, "reg_violations": none,
                            "xfn_blocked": none}},
        "guests": {vf: {"tally": dict(tally), "errors": []} for vf in vfs},
        "switches": list(switches), "segments": segments,
        # Ownership from reset, set-up included: what the share must not be taken from.
        "owned": {"1": OWN_1_END, "2": CYCLES - OWN_2},
        "deliveries": [], "undelivered": [], "engine": {"checked": 1, "errors": []},
    }


def test_gpu_share_counts_only_the_cycles_owned_after_set_up():
    share = summarize(hand_run())["gpu_share"]
    # VF 1 owns cycles 96..300, of which 100..300 are after set-up: 200 of 1000.
    assert share["1"] == pytest.approx(200 / 1000)
    # VF 2 owns 491..1100: 609 of 1000; the switch between them is nobody's.
    assert share["2"] == pytest.approx(609 / 1000)


def test_gpu_share_stays_within_100_percent_when_set_up_takes_most_of_the_run():
    # VF 1 owns the GPU from cycle 50, long before set-up ends at 1000; the run ends at
    # 1100. Counted from reset that is 1050 cycles over 100, a share of 1050 %.
    raw = hand_run(active_vfs=1, switches=(), segments=[[0, 50, "init", 0],
                                                        [50, CYCLES, "own", 1]])
    raw["hv"]["setup_done"] = 1000
    assert gpu_share(raw) == {"1": 1.0}
    assert summarize(raw)["gpu_share"] == {"1": 1.0}


def test_a_run_without_a_guest_request_after_set_up_is_an_error_naming_run_cycles():
    raw = hand_run(tally=dict.fromkeys(BUSY, 0), run_cycles=50)
    with pytest.raises(ReportError) as err:
        summarize(raw)
    message = str(err.value)
    assert "no guest made a request" in message and "raise run_cycles" in message
    assert f"finished at cycle {SETUP_DONE}" in message and "run_cycles=50" in message


def test_vms_without_work_are_named_as_why_nothing_was_requested():
    idle = Workload(doorbell_every=0, fb_every=0, reg_every=0)
    with pytest.raises(ReportError, match="no VM has work"):
        summarize(hand_run(tally=dict.fromkeys(BUSY, 0), workload=idle))


def test_several_vms_without_a_world_switch_is_an_error_naming_what_to_change():
    with pytest.raises(ReportError) as err:
        summarize(hand_run(switches=()))
    message = str(err.value)
    assert message.startswith("no world switch among 2 VMs")
    assert f"in the {AFTER_SETUP} cycles after set-up" in message
    assert "raise run_cycles or lower time_slice" in message


def test_one_vm_alone_needs_no_world_switch():
    raw = hand_run(active_vfs=1, switches=(), segments=[[96, CYCLES, "own", 1]])
    assert summarize(raw)["switches"] == 0


def test_a_share_above_100_percent_is_an_error():
    # A timeline that runs 100 cycles past the end gives VF 1 1100 of the 1000 cycles.
    raw = hand_run(active_vfs=1, switches=(), segments=[[SETUP_DONE, CYCLES + 100, "own", 1]])
    with pytest.raises(ReportError, match=r"VF 1 has a GPU share of 110\.0%, above 100 %"):
        summarize(raw)


def test_shares_adding_up_above_100_percent_are_an_error():
    # Both VFs own cycles 100..700 at once: 60 % each, 120 % together.
    both = [[SETUP_DONE, 700, "own", 1], [SETUP_DONE, 700, "own", 2]]
    with pytest.raises(ReportError, match=r"the GPU shares add up to 120\.0%"):
        summarize(hand_run(segments=both))


def test_a_sweep_gets_the_problems_in_the_summary_instead_of_an_exception():
    s = summarize(hand_run(switches=()), strict=False)
    assert len(s["problems"]) == 1 and s["problems"][0].startswith("no world switch")
    assert summarize(hand_run())["problems"] == []


def test_a_report_error_crosses_a_process_boundary_whole():
    err = ReportError(["first problem", "second problem"])
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == "first problem" and back.problems == ["first problem", "second problem"]


#: The built-in scenario's context: 16 shared registers in 4 beats + 64 words, at W = 128.
BEATS = 4 + 64
CTX_BYTES = BEATS * 16


@pytest.mark.parametrize("mode, latency, drain, cycles", [
    # serial: D + 1 + (B + 4) + (B + L + 3) + 1 = 9 + 1 + 72 + 91 + 1
    ("host", 20, 9, 9 + 2 * BEATS + 20 + 9),
    # overlapped on one FB port: idle D + 1, overlap 2B + L + 2, run 4 shared beats + 1
    ("overlapped", 20, 9, (9 + 1) + (2 * BEATS + 20 + 2) + (4 + 1)),
])
def test_cost_plot_is_the_model_at_the_scenario_s_latency_drain_and_mode(tmp_path, mode,
                                                                         latency, drain,
                                                                         cycles):
    sc = with_(DEFAULT, mode=mode, mem_latency=latency, engine_drain=drain, clock_mhz=250.0)
    points = cost_points(sc, measured_sizes=())
    assert (CTX_BYTES, cycles) in points["curves"][128]
    assert (points["latency"], points["drain"], points["mode"]) == (latency, drain, mode)
    # Twice the width: about half the beats for a large context (1 MiB: 65536 at W = 128).
    big = dict(points["curves"][128])[1 << 20], dict(points["curves"][256])[1 << 20]
    assert big[1] < big[0] * 0.51
    plot_cost(points, tmp_path / "cost.png", (CTX_BYTES, cycles))
    assert (tmp_path / "cost.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_doorbell_latency_percentiles_are_nearest_rank():
    # 100 doorbells of VF 1, latencies 1..100 cycles (rung in a shuffled order).
    deliveries = [[500 + k, 1, 0, k, (k * 37) % 100 + 1] for k in range(100)]
    got = summarize(dict(hand_run(), deliveries=deliveries))["doorbells"]["percentiles"]
    assert got == {"p50": 50, "p95": 95, "p99": 99}


def test_jain_fairness_of_the_gpu_shares():
    # Shares 200/1000 and 609/1000 (see the share test): (0.809)^2 / (2 * 0.410881).
    assert summarize(hand_run())["fairness"] == pytest.approx(0.654481 / 0.821762)


def test_the_table_prints_the_percentiles_and_the_fairness():
    from sim.bench.report import table
    deliveries = [[500 + k, 1, 0, k, k + 1] for k in range(100)]
    text = table(summarize(dict(hand_run(), deliveries=deliveries)))
    assert "doorbell latency p50 / p95 / p99: 50 / 95 / 99 cycles" in text
    assert "Jain's fairness of the GPU shares: 0.796" in text
