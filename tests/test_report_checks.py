"""The report refuses a run that measured nothing or gives an impossible figure, computes
the GPU share from the timeline after set-up, the latency histograms and the guest work next
to a GPU without virtualization, and draws the cost plot for the scenario's own parameters.
Checked on hand-made raw runs, against numbers worked out by hand, and on one small run."""

import pickle
import re

import pytest

from sim.bench.report import (ReportError, cost_points, gpu_share, hist_edges, histogram,
                              plot_cost, plot_histograms, plot_timeline, serial_work,
                              summarize, table)
from sim.system.scenario import DEFAULT, Workload, with_
from sim.tooling.toolchain import REPO_ROOT

PNG = b"\x89PNG\r\n\x1a\n"

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
    assert (tmp_path / "cost.png").read_bytes()[:8] == PNG


def test_doorbell_latency_percentiles_are_nearest_rank():
    # 100 doorbells of VF 1, latencies 1..100 cycles (rung in a shuffled order).
    deliveries = [[500 + k, 1, 0, k, (k * 37) % 100 + 1] for k in range(100)]
    got = summarize(dict(hand_run(), deliveries=deliveries))["doorbells"]["percentiles"]
    assert got == {"p50": 50, "p95": 95, "p99": 99}


def test_jain_fairness_of_the_gpu_shares():
    # Shares 200/1000 and 609/1000 (see the share test): (0.809)^2 / (2 * 0.410881).
    assert summarize(hand_run())["fairness"] == pytest.approx(0.654481 / 0.821762)


def test_the_table_prints_the_percentiles_and_the_fairness():
    deliveries = [[500 + k, 1, 0, k, k + 1] for k in range(100)]
    text = table(summarize(dict(hand_run(), deliveries=deliveries)))
    assert "doorbell latency p50 / p95 / p99: 50 / 95 / 99 cycles" in text
    assert "Jain's fairness of the GPU shares: 0.796" in text


# --- latency histograms ---------------------------------------------------------------

def test_histogram_counts_each_value_once_edges_closing_buckets_on_the_left():
    # Buckets [1, 2), [2, 4), [4, 8]; below 1 and above 8 counted apart.
    values = [0.5, 1, 1.5, 2, 3.99, 4, 8, 8.01, 100]
    assert histogram(values, [1, 2, 4, 8]) == {
        "edges_us": [1, 2, 4, 8], "counts": [2, 2, 2], "underflow": 1, "overflow": 2, "n": 9}


def test_an_empty_histogram_has_every_bucket_and_no_value():
    got = histogram([])
    assert got["counts"] == [0] * 32 and got["n"] == 0
    assert got["underflow"] == got["overflow"] == 0 and len(got["edges_us"]) == 33


def test_the_default_edges_are_32_geometric_buckets_from_22_us_to_16_ms():
    edges = hist_edges()
    assert edges[0] == 22 and edges[-1] == 16000 and len(edges) == 33
    # (16000 / 22) ** (1 / 32) = exp(ln(727.27) / 32) = exp(6.5893 / 32) = 1.22865
    for low, high in zip(edges, edges[1:]):
        assert high / low == pytest.approx(1.22865, abs=1e-5)
    # Edges 7 and 8 are 22 x 1.22865^7 = 92.99 and 114.25: 100 us is in bucket 7;
    # 1 ms in 18 (895.6 .. 1100.4), 10 ms in 29 (8626.5 .. 10599.0).
    got = histogram([100, 1000, 10000])["counts"]
    assert [k for k, n in enumerate(got) for _ in range(n)] == [7, 18, 29]


def test_values_on_the_default_edges_fall_in_the_bucket_they_open():
    edges = hist_edges()
    got = histogram([edges[0], edges[1], edges[5], edges[31], edges[32],
                     21.999, 16000.001])
    # 22 us opens bucket 0, edge 1 bucket 1, edge 5 bucket 5, edge 31 the last bucket,
    # which 16 ms (the last edge) closes; just below 22 us and just above 16 ms are apart.
    assert got["counts"] == [1, 1, 0, 0, 0, 1] + [0] * 25 + [2]
    assert (got["underflow"], got["overflow"], got["n"]) == (1, 1, 7)


def test_the_report_has_a_histogram_per_step_the_host_s_switch_and_doorbells():
    # The hand-made switch at 125 MHz, us: idle 0.04, save 0.576, load 0.648, run 0.008,
    # host 191 cycles = 1.528: all below 22 us. Doorbells of 2750 and 2751 cycles (22 us,
    # bucket 0), 2,000,000 (16 ms, the last bucket), 2,000,001 (above) and one with no
    # ring (skipped).
    deliveries = [[500, 1, 0, 1, 2750], [550, 1, 0, 2, 2751], [600, 1, 1, 3, 2_000_000],
                  [700, 1, 2, 4, 2_000_001], [800, 1, 3, 5, None]]
    s = summarize(dict(hand_run(), deliveries=deliveries))
    hists = s["histograms"]
    assert list(hists) == ["idle", "save", "load", "run", "switch (as the host sees it)",
                           "doorbell latency"]
    for name in ("idle", "save", "load", "run", "switch (as the host sees it)"):
        assert (hists[name]["underflow"], hists[name]["n"]) == (1, 1)
    db = hists["doorbell latency"]
    assert (db["counts"][0], db["counts"][-1], db["overflow"], db["n"]) == (2, 1, 1, 4)
    # The table's row: n, below 22 us, a bar with the fullest bucket '#' and one of half
    # as many at level ceil(7 / 2) = 4 of 7, '=', then above 16 ms.
    bar = "#" + " " * 30 + "="
    assert f"{'doorbell latency':30}     4       0 |{bar}|     1" in table(s).splitlines()


def test_overlapped_switches_get_an_overlap_histogram_instead_of_save_and_load():
    switch = dict(SWITCH, save=0, load=0, overlap=150)
    hists = summarize(hand_run(switches=(switch,), mode="overlapped"))["histograms"]
    assert list(hists) == ["idle", "overlap", "run", "switch (as the host sees it)",
                           "doorbell latency"]


# --- guest work next to a GPU without virtualization ------------------------------------

def test_one_engine_without_switches_works_first_come_first_served():
    # Work 50 at cycles 20, 0, 10 (any order): 0..50, 50..100, then the third would
    # start at 100, the end.
    assert serial_work([20, 0, 10], 50, end=100) == 100
    assert serial_work([0, 200], 50, end=225) == 50 + 25      # idle 50..200 in between
    assert serial_work([], 50, end=100) == 0


#: The hand-made doorbells, rung at 200, 250 (delivered at 500 after its VF's turn came),
#: 990 (the ring unknown: counted from its delivery) and 1020, 100 cycles of work each.
WORK = 100
DELIVERIES = [[204, 1, 0, 1, 4], [500, 2, 0, 1, 250], [990, 1, 1, 2, None],
              [1024, 2, 1, 2, 4]]


def worked_run(done, left, deliveries=DELIVERIES, **changes):
    raw = hand_run(**{"work_per_doorbell": WORK, **changes})
    raw.update(deliveries=deliveries)
    raw["engine"].update(work_done=done, work_left=left)
    return raw


def test_guest_work_next_to_the_same_doorbells_without_virtualization():
    w = summarize(worked_run({"1": 150, "2": 30}, {"1": 50, "2": 170}))["guest_work"]
    # Without virtualization: 200..300, 300..400 (waiting its turn behind the first),
    # 990..1090, and 1090..1100 (the end; waiting behind the third): 310.
    assert (w["done"], w["unvirtualized"], w["left"]) == (180, 310, 220)
    assert w["efficiency"] == pytest.approx(180 / 310)
    assert w["cycles"] == AFTER_SETUP
    assert (w["engine"], w["engine_unvirtualized"]) == (0.18, 0.31)
    assert w["owned"] == pytest.approx(0.809)       # 200 + 609 of the 1000 cycles
    assert w["why"] is None
    text = table(summarize(worked_run({"1": 150, "2": 30}, {"1": 50, "2": 170})))
    assert "without virtualization 310 (31.0%): efficiency 58.1%" in text


@pytest.mark.parametrize("raw, why", [
    (worked_run({"1": 0, "2": 0}, {"1": 0, "2": 0}, deliveries=[]),
     "no doorbell was delivered"),
    (worked_run({"1": 0, "2": 0}, {"1": 0, "2": 0}, work_per_doorbell=0),
     "work_per_doorbell is 0"),
    (hand_run(), "did not record the engine's work"),
])
def test_guest_work_says_why_when_there_is_no_efficiency(raw, why):
    s = summarize(raw)
    assert s["guest_work"]["efficiency"] is None and why in s["guest_work"]["why"]
    [line] = [x for x in table(s).splitlines() if x.startswith("guest work")]
    assert "not computed: " in line and why in line and "%" not in line


# --- a real run ---------------------------------------------------------------------------

#: Two VMs whose doorbells bring more work than their turns leave room for.
BUSY_ENGINE = with_(DEFAULT, name="busy-engine", num_vfs=4, active_vfs=2, per_vf={},
                    run_cycles=1500, time_slice=500, work_per_doorbell=300)


@pytest.fixture(scope="module")
def busy_run():
    from sim.system.run import run
    return run(BUSY_ENGINE)


def test_a_real_run_reports_histograms_and_guest_work(busy_run, tmp_path):
    s = summarize(busy_run)
    hists = s["histograms"]
    for name in ("idle", "save", "load", "run", "switch (as the host sees it)"):
        assert hists[name]["n"] == s["switches"] > 0
    lat = [d[4] for d in busy_run["deliveries"] if d[4] is not None]
    assert hists["doorbell latency"]["n"] == len(lat) > 0
    for h in hists.values():
        assert sum(h["counts"]) + h["underflow"] + h["overflow"] == h["n"]
    w = s["guest_work"]
    # With no FLR the engine did or kept every delivered doorbell's work.
    assert w["done"] + w["left"] == len(busy_run["deliveries"]) * BUSY_ENGINE.work_per_doorbell
    # Busier than the turns allow: switching cost guest work, and the engine worked only
    # while a VF owned the GPU.
    assert 0 < w["efficiency"] < 1 and w["engine"] <= w["owned"]
    text = table(s)
    assert "latency histograms" in text and "efficiency" in text
    plot_timeline(busy_run, tmp_path / "timeline.png")
    plot_histograms(s, tmp_path / "histograms.png")
    for png in ("timeline.png", "histograms.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG


def test_docs_report_md_lists_every_report_json_key(busy_run):
    doc = (REPO_ROOT / "docs" / "report.md").read_text()
    rows = doc.split("**report.json**")[1].split("**run.json**")[0]
    listed = {key for line in rows.splitlines() if line.startswith("| `")
              for key in re.findall(r"`([a-z_]+)`", line.split("|")[1])}
    assert listed == set(summarize(busy_run))
