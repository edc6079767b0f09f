"""Sweeps (sim/bench/sweep.py, ``sriov-gpu sweep``): the axes reach the grid's scenarios, bad
axis values are refused before anything runs, the plot is drawn from rows alone, and a real
sweep gives every column."""

import csv
import io
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from sim.bench import sweep as sweep_module
from sim.bench.sweep import (COLUMNS, SCENARIO_COLUMNS, PointError, grid, plot, sweep, swept,
                             table, to_csv)
from sim.cli import main
from sim.models import cost_model
from sim.system.scenario import DEFAULT, Workload, with_

#: A small GPU whose VF 3 misbehaves and has an FLR: what dropping VMs must drop.
BASE = with_(DEFAULT, name="base", num_vfs=4, active_vfs=3, time_slice=700, run_cycles=1600,
             per_vf={3: Workload(misbehave=0.25)}, flr=((800, 3),))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- the grid ---------------------------------------------------------------------------

def test_time_slice_vms_and_channels_reach_every_point_of_the_grid():
    scenarios = grid(BASE, active_vfs=[2, 3], mem_channels=[1, 2], time_slice=[500, 900])
    assert [(s.active_vfs, s.mem_channels, s.time_slice) for s in scenarios] == [
        (a, c, t) for a in (2, 3) for c in (1, 2) for t in (500, 900)]
    assert scenarios[0].name == "active_vfs=2-mem_channels=1-time_slice=500"
    assert all(s.params().mem_channels == s.mem_channels for s in scenarios)
    # Two VMs: VF 3's workload and FLR go; three keep them.
    for s in scenarios:
        kept = s.active_vfs == 3
        assert (3 in s.per_vf, bool(s.flr)) == (kept, kept), s.name


def test_a_combination_no_scenario_can_have_names_only_the_values_that_conflict():
    with pytest.raises(PointError) as refused:
        grid(BASE, num_vfs=[2, 4], active_vfs=[1, 3], mem_channels=[1, 2])
    assert refused.value.changes == {"num_vfs": 2, "active_vfs": 3}
    assert refused.value.why == "active_vfs=3 must be at most num_vfs (2)"


# --- the command line -------------------------------------------------------------------

def _sweep(capsys, tmp_path, *args):
    """``sriov-gpu sweep ARGS``: (exit status, stdout, stderr lines)."""
    try:
        status = main(["sweep", *args, "--csv", str(tmp_path / "sweep.csv")])
    except SystemExit as exit_:            # argparse's refusals
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err.splitlines()


@pytest.mark.parametrize("args, says", [
    (["--channels", "1", "5"], "--channels 5: mem_channels=5 is out of range: allowed 1..4"),
    (["--channels", "two"], "argument --channels: invalid int value: 'two'"),
    (["--time-slices", "0"], "--time-slices 0: time_slice=0 must be a positive integer"),
    (["--time-slices", str(1 << 25)], "--time-slices 33554432: time_slice=33554432 must fit"),
    (["--active-vms", "17"], "--active-vms 17: active_vfs=17 must be at most num_vfs (16)"),
    (["--vfs-list", "2", "4", "--active-vms", "3"],
     "--vfs-list 2 with --active-vms 3: active_vfs=3 must be at most num_vfs (2)"),
    (["--modes", "fast"], "--modes fast: mode='fast' must be one of host"),
])
def test_a_bad_axis_value_exits_2_with_one_line_naming_the_option(capsys, tmp_path, args, says):
    status, out, err = _sweep(capsys, tmp_path, *args)
    assert status == 2 and len(err) == 1 and says in err[0], err
    assert "Sweeping" not in out and not (tmp_path / "sweep.csv").exists()


def _hand_point(scenario, backend):
    """A row as :func:`sim.bench.sweep.point` gives it, without simulating."""
    return {**{c: getattr(scenario, c) for c in SCENARIO_COLUMNS}, **ROW_FIGURES,
            "switch_hw_median": 100 * scenario.mem_channels, "problems": []}


ROW_FIGURES = {"switches": 3, "switch_model": 150, "switch_host_median": 250,
               "min_gpu_share": 0.2, "fairness": 0.99, "doorbell_latency_median": 7,
               "doorbell_latency_p99": None, "guest_work_efficiency": 0.95,
               "violations_blocked": 0, "errors": 0, "cycles": 5000}


@pytest.mark.parametrize("no_plot", [False, True])
def test_the_sweep_writes_its_plot_next_to_the_csv_and_a_line_per_point(
        capsys, tmp_path, monkeypatch, no_plot):
    # Rows made by hand, in threads of this process: the command's own work, no simulation.
    monkeypatch.setattr(sweep_module, "point", _hand_point)
    monkeypatch.setattr(sweep_module, "executor", lambda jobs, scheduler: ThreadPoolExecutor(1))
    status, out, err = _sweep(capsys, tmp_path, "--channels", "1", "2",
                              *(["--no-plot"] if no_plot else []))
    assert status == 0, err
    # stderr is no terminal here: still a line per finished point.
    assert [line.rsplit(",", 1)[0] for line in err] == [
        "sweep: 1/2 points, mem_channels=1", "sweep: 2/2 points, mem_channels=2"]
    png = tmp_path / "sweep.png"
    assert png.exists() != no_plot
    assert no_plot or png.read_bytes()[:8] == PNG_MAGIC
    rows = list(csv.DictReader(io.StringIO((tmp_path / "sweep.csv").read_text())))
    assert [r["mem_channels"] for r in rows] == ["1", "2"]
    assert rows[0]["doorbell_latency_p99"] == ""               # not computed: empty


# --- rows, table, plot ------------------------------------------------------------------

def _row(**changes):
    return {**{c: getattr(BASE, c) for c in SCENARIO_COLUMNS}, **ROW_FIGURES,
            "switch_hw_median": 150, **changes}


def test_a_figure_not_computed_is_a_dash_in_the_table_and_empty_in_the_csv():
    rows = [_row(), _row(doorbell_latency_p99=12)]
    lines = table(rows).splitlines()
    assert lines[0].split() == list(COLUMNS)
    at = COLUMNS.index("doorbell_latency_p99")
    assert [line.split()[at] for line in lines[1:]] == ["-", "12"]
    assert [r["doorbell_latency_p99"] for r in csv.DictReader(io.StringIO(to_csv(rows)))] == \
        ["", "12"]


@pytest.mark.parametrize("rows, axes", [
    ([_row(time_slice=t, min_gpu_share=t / (t + 300)) for t in (500, 1000, 2000)],
     ["time_slice"]),
    # The x axis is a number where there is one: mode makes the lines, though first.
    ([_row(mode=m, mem_channels=c, switch_hw_median=None if c == 2 else 150)
      for m in ("host", "overlapped") for c in (1, 2)], ["mem_channels", "mode"]),
    ([_row(ctx_words=w, mem_latency=lat) for w in (64, 256) for lat in (10, 100)] +
     [_row(ctx_words=64, mem_latency=10, mode="overlapped")],
     ["ctx_words", "mem_latency", "mode"]),
    # Words alone on the x axis: the completion, polled or by interrupt.
    ([_row(completion=c) for c in ("poll", "interrupt")], ["completion"]),
])
def test_the_plot_is_drawn_from_rows_alone(tmp_path, rows, axes):
    assert swept(rows) == axes
    plot(rows, tmp_path / "sweep.png", clock_mhz=125.0)
    assert (tmp_path / "sweep.png").read_bytes()[:8] == PNG_MAGIC


def test_a_point_s_row_takes_each_new_column_from_its_place_in_the_summary(monkeypatch):
    summary = {
        "scenario": BASE.to_dict(), "switches": 3, "cycles": 999, "errors": [], "problems": [],
        "phases": {"switch (hardware)": {"median": 11},
                   "switch (as the host sees it)": {"median": 12}},
        "model": {"switch (hardware)": 10}, "gpu_share": {"1": 0.3, "2": 0.25},
        "fairness": 0.987654, "guest_work": {"efficiency": None},
        "doorbells": {"latency": {"median": 7}, "percentiles": {"p50": 7, "p95": 40, "p99": 50}},
        "violations": {"fb_outside_slice": {"counted": 2}}}
    monkeypatch.setattr(sweep_module, "run", lambda scenario, backend: None)
    monkeypatch.setattr(sweep_module, "summarize", lambda raw, strict: summary)
    row = sweep_module.point(BASE)
    assert {c: row[c] for c in ("mem_channels", "time_slice", "doorbell_latency_p99",
                                "fairness", "guest_work_efficiency", "min_gpu_share")} == {
        "mem_channels": 1, "time_slice": 700, "doorbell_latency_p99": 50, "fairness": 0.9877,
        "guest_work_efficiency": None, "min_gpu_share": 0.25}
    assert set(COLUMNS) <= set(row)


# --- a real sweep -----------------------------------------------------------------------

def test_a_real_sweep_fills_the_new_columns_and_two_channels_speed_up_the_overlapped_switch():
    base = with_(BASE, mode="overlapped", active_vfs=2, per_vf={}, flr=())
    scenarios = grid(base, mem_channels=[1, 2])
    rows = sweep(scenarios, pool=ProcessPoolExecutor(max_workers=2))
    for row, sc in zip(rows, scenarios):
        assert row["errors"] == 0 and row["switches"] >= 1 and row["mem_channels"] == \
            sc.mem_channels
        model = cost_model.gpu_overlapped_phase_cycles(sc.params(), sc.engine_drain)["switch"]
        assert row["switch_hw_median"] == row["switch_model"] == model
        assert 0.5 <= row["fairness"] <= 1                       # two VMs: 1/2 .. 1
        assert row["doorbell_latency_p99"] >= row["doorbell_latency_median"]
        assert 0 < row["guest_work_efficiency"] <= 1
    one, two = (row["switch_hw_median"] for row in rows)
    assert two < one                # a channel each for the save and the load
    assert to_csv(rows).splitlines()[0] == ",".join(COLUMNS)
