"""End to end: scenarios on the whole GPU (a hypervisor and guest VMs, sim/system/scenario.py, agents.py, run.py).

The checks are independent of the RTL: guests keep what they wrote to their FB slices and
what they did wrong, the engine model keeps each function's engine state, the doorbell
monitor keeps every ring; the PF's counters and the analytic cost model are compared with
them."""

import json
import subprocess
import sys

import pytest

from sim.models import cost_model
from sim.bench.report import summarize, table
from sim.system.run import run
from sim.system.scenario import (DEFAULT, VIOLATION_KINDS, Scenario, ScenarioError, Workload,
                                 from_dict, load, with_)
from sim.bench.sweep import COLUMNS, grid, sweep, to_csv
from sim.tooling.toolchain import REPO_ROOT

#: The default scenario scaled down for the simulators that are slower to start or run.
SMALL = with_(DEFAULT, name="small", num_vfs=4, active_vfs=3, run_cycles=2500,
              time_slice=700)


def _without_backend(raw):
    return {k: v for k, v in raw.items() if k not in ("backend", "looked")}


@pytest.fixture(scope="module")
def default_run():
    return run(DEFAULT)


@pytest.fixture(scope="module")
def small_run():
    return run(SMALL)


def test_default_scenario_runs_clean_and_switches_at_the_model_s_cost(default_run):
    s = summarize(default_run)
    assert s["errors"] == []
    params = DEFAULT.params()
    model = cost_model.phase_cycles(params, DEFAULT.engine_drain)
    assert s["switches"] >= 4
    for phase in ("idle", "save", "load", "run"):
        assert s["phases"][phase]["min"] == s["phases"][phase]["max"] == model[phase]
    # The host-driven switch also pays for the hypervisor's polling between commands.
    assert s["phases"]["switch (as the host sees it)"]["min"] > \
        cost_model.switch_cycles(params, DEFAULT.engine_drain)
    assert s["context_checks"] >= s["switches"]


def test_default_scenario_gives_identical_cycles_on_verilator(default_run, simulator):
    if simulator == "icarus":
        pytest.skip("Icarus runs the scaled-down scenario (below); the default's 16 VFs "
                    "take it minutes")
    assert _without_backend(run(DEFAULT, simulator)) == _without_backend(default_run)


def test_scaled_down_scenario_gives_identical_cycles_on_every_backend(small_run, simulator):
    assert _without_backend(run(SMALL, simulator)) == _without_backend(small_run)


def test_misbehaving_guest_is_blocked_and_counted_and_disturbs_nobody(default_run):
    s = summarize(default_run)
    for kind in VIOLATION_KINDS:
        v = s["violations"][kind]
        assert v["made"] > 0 and v["counted"] == v["made"]
        assert list(v["per_vf"]) == ["3"]          # only the guest that misbehaved
    guests = default_run["guests"]
    assert sum(guests[vf]["tally"]["fb_reads"] for vf in ("1", "2", "4")) > 0
    assert all(g["errors"] == [] for g in guests.values())   # FB read-backs, statuses
    assert default_run["engine"]["errors"] == [] and default_run["undelivered"] == []


def test_every_guest_gets_init_access_through_the_mailbox_and_releases_it(default_run):
    log = [(vf, msg) for _, vf, msg in default_run["hv"]["mailbox"]]
    for vf in range(1, DEFAULT.active_vfs + 1):
        times = default_run["guests"][str(vf)]["init_access"]
        assert times["requested"] < times["ready"] < times["released"]
        assert log.count((vf, "REQ_GPU_INIT_ACCESS")) == 1
        assert log.count((vf, "REL_GPU_INIT_ACCESS")) == 1


@pytest.mark.parametrize("mode", ["host", "auto-solid"])
def test_flr_of_one_vf_under_heavy_traffic_leaves_the_others_intact(mode):
    heavy = Workload(doorbell_every=15, fb_every=20, reg_every=80, misbehave=0.1)
    sc = with_(SMALL, name=f"flr-{mode}", mode=mode, workload=heavy, per_vf={},
               flr=((1400, 2),))
    raw = run(sc)
    s = summarize(raw)
    assert s["errors"] == []                 # others' FB, contexts, doorbells all intact
    [(cycle, vf)] = raw["hv"]["flrs"]
    assert vf == 2 and cycle >= 1400
    # The reset VF is initialized again and gets the GPU back later.
    assert any(seg[2] == "own" and seg[3] == 2 and seg[0] > cycle for seg in raw["segments"])
    assert raw["engine"]["checked"] >= len(raw["switches"])


@pytest.mark.parametrize("mode", ["auto-solid", "auto-liquid", "overlapped"])
def test_hardware_scheduler_modes_run_clean_at_their_cost(mode):
    raw = run(with_(SMALL, name=mode, mode=mode))
    s = summarize(raw)
    assert s["errors"] == [] and s["switches"] >= 2
    params = SMALL.params()
    hw = s["phases"]["switch (hardware)"]
    serial = cost_model.switch_cycles(params, SMALL.engine_drain)
    if mode == "overlapped":
        # One FB channel: the save and the load share it (2B + L + 2), so overlap saves little.
        one_port = cost_model.gpu_overlapped_phase_cycles(params, SMALL.engine_drain)
        for phase in ("idle", "overlap", "run"):
            assert s["phases"][phase]["min"] == s["phases"][phase]["max"] == one_port[phase]
        assert hw["min"] == hw["max"] == one_port["switch"] <= serial
    else:
        assert hw["min"] == hw["max"] == serial
        # No hypervisor in the loop: the host sees the hardware's cycles.
        assert s["phases"]["switch (as the host sees it)"]["max"] == serial


def test_an_fb_memory_of_latency_one_answers_every_read():
    # The FB port remembers whose each read is in a queue that must be readable in the
    # cycle after the read leaves: a memory of latency 1 answers then.
    s = summarize(run(with_(SMALL, name="latency-1", mem_latency=1)))
    assert s["errors"] == [] and s["switches"] >= 2 and s["context_checks"] >= s["switches"]


def test_liquid_mode_skips_idle_vms():
    idle_vm = Workload(doorbell_every=0, fb_every=0, reg_every=0, init_access=False)
    sc = with_(SMALL, name="liquid-idle", mode="auto-liquid", per_vf={2: idle_vm})
    raw = run(sc)
    assert summarize(raw)["errors"] == []
    assert not any(sw["to"] == 2 for sw in raw["switches"])
    solid = run(with_(sc, mode="auto-solid"))
    assert any(sw["to"] == 2 for sw in solid["switches"])


def test_report_table_names_every_section(small_run):
    text = table(summarize(small_run))
    for heading in ("world switch", "GPU share", "blocked violations", "switch (hardware)"):
        assert heading in text


def test_report_shows_the_zero_fill_at_the_model_s_cost(small_run):
    s = summarize(small_run)
    scrub, params = s["scrub"], SMALL.params()
    granules = SMALL.slice_mib(params) * (1 << 20) // params.fb_granule
    assert scrub["last"] == scrub["model"] == cost_model.scrub_cycles(params, granules)
    assert scrub["granules_filled"] == 0             # nothing was written before the layout
    assert scrub["dirty_granule_cycles"] == cost_model.scrub_cycles(params, 1, 1) - \
        cost_model.scrub_cycles(params, 1)
    assert "FB zero fill" in table(s)


# --- the scenario format --------------------------------------------------------------

def test_the_documented_default_toml_is_the_built_in_scenario():
    assert load(REPO_ROOT / "docs" / "scenarios" / "default.toml") == DEFAULT


def test_every_preset_in_docs_scenarios_is_a_valid_scenario():
    presets = sorted((REPO_ROOT / "docs" / "scenarios").glob("*.toml"))
    assert len(presets) >= 2
    for path in presets:
        sc = load(path)
        assert sc.name == path.stem or path.stem == "default", path
        sc.params()                     # the GPU it needs can be built


def test_per_vf_entries_change_only_the_fields_they_name():
    sc = from_dict({"workload": {"doorbell_every": 33}, "per_vf": {"2": {"misbehave": 0.5}}})
    assert sc.workload_of(2) == Workload(doorbell_every=33, misbehave=0.5)
    assert sc.workload_of(1) == Workload(doorbell_every=33)


@pytest.mark.parametrize("raw, field", [
    ({"mode": "fast"}, "mode"),
    ({"active_vfs": 20}, "active_vfs"),
    ({"num_vfs": 65}, "num_vfs"),
    ({"mem_width": 100}, "mem_width"),
    ({"fb_slice_mib": 24}, "fb_slice_mib"),
    ({"fb_slice_mib": 512}, "fb_slice_mib"),
    ({"colour": "red"}, "colour"),
    ({"workload": {"speed": 1}}, "speed"),
    ({"per_vf": {"9": {}}}, "per_vf"),
    ({"flr": [[100, 7]]}, "flr"),
    ({"workload": {"misbehave": 2}}, "misbehave"),
])
def test_bad_scenarios_are_refused_naming_the_field(raw, field):
    with pytest.raises(ScenarioError, match=field):
        from_dict(raw)


def test_cli_report_exits_2_with_one_line_on_a_bad_scenario(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('mode = "fast"\n')
    proc = subprocess.run([sys.executable, "-m", "sim.cli", "report", str(bad)],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "mode" in proc.stderr


def test_cli_report_writes_json_and_plots(tmp_path):
    sc = tmp_path / "tiny.json"
    sc.write_text(json.dumps(with_(SMALL, name="tiny", run_cycles=2000).to_dict()))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "sim.cli", "report", str(sc), "-o", str(out)],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["errors"] == [] and report["switches"] >= 1
    for png in ("timeline.png", "histograms.png", "cost.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_runs_a_grid_in_worker_processes_into_one_csv():
    from concurrent.futures import ProcessPoolExecutor
    base = with_(SMALL, run_cycles=1600, active_vfs=2, per_vf={})
    scenarios = grid(base, mem_width=[64, 256])
    rows = sweep(scenarios, pool=ProcessPoolExecutor(max_workers=2))
    assert [r["mem_width"] for r in rows] == [64, 256]
    for row, sc in zip(rows, scenarios):
        assert row["errors"] == 0 and row["switches"] >= 1
        assert row["switch_model"] == cost_model.switch_cycles(sc.params(), sc.engine_drain)
        assert row["switch_hw_median"] == row["switch_model"]
    assert to_csv(rows).splitlines()[0] == ",".join(COLUMNS)


def test_scenario_dataclass_round_trips_through_its_dict():
    sc = with_(DEFAULT, flr=((10, 1),), per_vf={2: Workload(fb_every=5)})
    assert from_dict(json.loads(json.dumps(sc.to_dict()))) == sc
    assert isinstance(sc, Scenario)


def test_simulation_speed_is_the_increment_between_two_run_lengths():
    from sim.bench.sim_speed import _increment
    runs = [{"cycles": 1000, "seconds": 3.0}, {"cycles": 5000, "seconds": 5.0}]
    assert _increment(runs) == 2000          # start-up (the first run's 2.5 s) left out
    with pytest.raises(RuntimeError, match="lengthen the runs"):
        _increment(runs[::-1])


def test_the_timed_scenario_body_reports_cycles_seconds_and_cycles_looked_at():
    from sim.runners.backend import run_backend
    from sim.system.run import TOP
    got = run_backend("amaranth", TOP, SMALL.params(), "sim.bench.sim_speed:timed_scenario",
                      scenario=with_(SMALL, run_cycles=300).to_dict())
    assert got["cycles"] > 300 and got["seconds"] > 0 and 0 < got["looked"] < got["cycles"]
