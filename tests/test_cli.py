"""The command line: useful output for good input, one line and exit 2 for bad input."""

import json
import os
import subprocess
import sys

import pytest

from sim.cli import main, parse_size, write_output


def run(*args):
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True)


def test_help_lists_every_command():
    out = run("--help").stdout
    for command in ("summary", "verilog", "synth", "regmap", "docs", "config-dump",
                    "bench-doorbell", "bench-switch", "report", "sweep", "bench-sim"):
        assert command in out


@pytest.mark.parametrize("vfs", [1, 64])
def test_verilog_for_a_block_is_written(tmp_path, vfs):
    assert main(["verilog", "--block", "fb_partition", "--vfs", str(vfs), "-o", str(tmp_path)]) == 0
    text = (tmp_path / "fb_partition.v").read_text()
    assert "module fb_partition(" in text and "access__payload" in text


def test_summary_writes_every_blocks_verilog(tmp_path, capsys):
    assert main(["summary", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fb_partition" in out and "17 functions" in out
    assert (tmp_path / "fb_partition.v").exists()


@pytest.mark.parametrize("args, says", [
    (["verilog", "--vfs", "65"], "num_vfs=65 is out of range: allowed 1..64"),
    (["verilog", "--vfs", "0"], "num_vfs=0 is out of range"),
    (["verilog", "--fb-size", "3MiB"], "fb_size="),
    (["verilog", "--fb-size", "lots"], "'lots' is not a size"),
    (["verilog", "--block", "gpu9000"], "invalid choice: 'gpu9000'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["synth", "--granule", "3MiB"], "fb_granule="),
    (["bench-doorbell", "--vfs-list", "4", "65"], "65 VFs is out of range 1..64"),
    (["bench-doorbell", "--cycles", "10"], "--cycles=10 is too short"),
    (["bench-switch", "--sizes", "1000"], "context size 1000 is not a multiple"),
])
def test_bad_input_exits_2_with_one_line_saying_what_to_fix(args, says):
    proc = run(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_doorbell_benchmark_prints_rate_waits_and_fairness(tmp_path, capsys):
    out_json = tmp_path / "doorbell.json"
    assert main(["bench-doorbell", "--vfs-list", "2", "--cycles", "100", "--per-vf",
                 "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "Jain" in out and "deliveries" in out
    equal, weighted = json.loads(out_json.read_text())
    assert equal["throughput"] == 1.0 and equal["first_delivery"] == 2
    assert equal["worst_wait"] <= equal["bound"] == 2        # 1 + the other VF's weight
    assert weighted["worst_wait"] <= weighted["bound"] == 3  # VF 1 waits for VF 2's two
    # Under saturation VF 2 (weight 2) is served twice as often as VF 1.
    vf1, vf2 = weighted["per_vf"]["1"], weighted["per_vf"]["2"]
    assert abs(vf2["deliveries"] - 2 * vf1["deliveries"]) <= 2


def test_switch_benchmark_measures_what_the_model_predicts(tmp_path, capsys):
    out_json = tmp_path / "switch.json"
    assert main(["bench-switch", "--sizes", "1KiB", "64KiB", "--widths", "128",
                 "--latencies", "10", "--jobs", "1", "--json", str(out_json)]) == 0
    assert "MISMATCH" not in capsys.readouterr().out
    small, large = json.loads(out_json.read_text())
    assert small["serial_measured"] == small["serial_model"]          # simulated
    assert "serial_measured" not in large                            # model only
    assert small["overlap_total_measured"] < small["serial_total_measured"]


def test_sizes_read_like_an_engineer_writes_them():
    assert parse_size("16MiB") == 16 << 20
    assert parse_size("8G") == 8 << 30
    assert parse_size("0x1000") == 4096


def test_config_dump_prints_lspci_format_for_each_function():
    proc = run("config-dump", "--vfs", "4", "--numvfs", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "00:00.0 Class 0300: Device 1002:6929"
    assert "00:00.2 Class 0300: Device 1002:692f" in lines
    assert lines[1].startswith("00: 02 10 29 69")
    assert sum(1 for line in lines if line.startswith("ff0: ")) == 3


@pytest.mark.parametrize("args, says", [
    (["config-dump", "--vfs", "4", "--numvfs", "5"], "--numvfs 5 is out of range: allowed 0..4"),
    (["config-dump", "--vfs", "4", "--numvfs", "2", "--fn", "3"], "--fn 3 is not an enabled"),
])
def test_config_dump_refuses_functions_that_do_not_exist(args, says):
    proc = run(*args)
    assert proc.returncode == 2 and says in proc.stderr and len(proc.stderr.splitlines()) == 1


def one_line_exit_2(proc, says):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("command", ["sweep", "bench-switch"])
@pytest.mark.parametrize("jobs", ["0", "-1", "two"])
def test_jobs_below_one_exits_2_with_one_line(command, jobs):
    one_line_exit_2(run(command, "--jobs", jobs), f"argument --jobs: {jobs!r} is not a positive")


def test_config_dump_of_a_4_gib_vf_bar_shows_it_above_4_gib():
    proc = run("config-dump", "--vfs", "2", "--numvfs", "2", "--vf-aperture", "4GiB", "--fn", "0")
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    assert proc.stdout.startswith("00:00.0 Class 0300: Device 1002:6929")


@pytest.mark.parametrize("args, says", [
    (["config-dump", "--vf-aperture", "3GiB"], "vf_fb_aperture=3221225472 must be a power of two"),
    (["config-dump", "--vf-aperture", "2TiB"], "vf_fb_aperture="),
])
def test_a_bar_size_that_cannot_be_built_exits_2_naming_the_parameter(args, says):
    one_line_exit_2(run(*args), says)


#: Every output option: (command and its arguments, the option), the path appended after it.
OUTPUTS = [(["sweep"], "--csv"), (["bench-doorbell"], "--json"), (["bench-switch"], "--json"),
           (["report"], "-o"), (["verilog"], "-o"), (["summary"], "-o"), (["synth"], "-o"),
           (["docs"], "-o")]


@pytest.mark.parametrize("args, option", OUTPUTS)
def test_an_output_under_a_file_exits_2_before_running_and_creates_nothing(tmp_path, args, option):
    # A file where a folder must be: unwritable even for root.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = blocker / "sub" / "out"
    proc = run(*args, option, str(target))
    one_line_exit_2(proc, f"argument {option}")
    assert "is a file, not a folder" in proc.stderr and not proc.stdout
    assert sorted(tmp_path.iterdir()) == [blocker] and blocker.read_text() == ""


@pytest.mark.parametrize("args, option, is_", [(["sweep"], "--csv", "folder"),
                                               (["report"], "-o", "file")])
def test_an_output_of_the_wrong_kind_exits_2(tmp_path, args, option, is_):
    path = tmp_path / "x"
    path.mkdir() if is_ == "folder" else path.write_text("kept")
    one_line_exit_2(run(*args, option, str(path)), f"is a {is_}, not a")
    assert path.is_dir() if is_ == "folder" else path.read_text() == "kept"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_an_output_in_a_read_only_folder_exits_2(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        one_line_exit_2(run("sweep", "--csv", str(locked / "new" / "s.csv")), "is not writable")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_output_files_get_their_folder_created(tmp_path):
    path = tmp_path / "new" / "deeper" / "rows.json"
    write_output(path, "[]")
    assert path.read_text() == "[]"


def test_report_of_a_run_that_measured_nothing_exits_1_with_one_line_naming_the_fix(tmp_path):
    from sim.system.scenario import DEFAULT, with_
    # Traffic ends at cycle 1, long before the hypervisor's set-up does: no guest requests.
    nothing = with_(DEFAULT, name="nothing", num_vfs=4, active_vfs=2, per_vf={}, run_cycles=1)
    scenario = tmp_path / "nothing.json"
    scenario.write_text(json.dumps(nothing.to_dict()))
    out = tmp_path / "out"
    proc = run("report", str(scenario), "--no-plots", "-o", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert errors[0].startswith("sriov-gpu: error: no guest made a request")
    assert errors[0].endswith("raise run_cycles")
    # No report, but the raw run that shows why.
    assert not (out / "report.json").exists() and (out / "run.json").exists()
    assert "world switch (cycles)" not in proc.stdout


def test_progress_off_a_terminal_is_a_plain_line_each_tenth_of_the_estimate():
    import io
    from sim.cli import Progress
    log = io.StringIO()                         # not a terminal
    progress = Progress("report", 1000, stream=log)
    for cycle in range(0, 1201, 50):
        progress(cycle)
    progress.close()
    lines = log.getvalue().splitlines()
    # 100, 200, ... 1000, then 1100 and 1200 past the estimate: 12 lines.
    assert len(lines) == 12
    assert lines[0] == "report: cycle 100 of ~1000 (10 %)"
    assert lines[4] == "report: cycle 500 of ~1000 (50 %)"
    assert lines[9] == "report: cycle 1000 of ~1000 (100 %)"
    assert lines[11] == "report: cycle 1200 (past the estimate of ~1000)"


def test_progress_on_a_terminal_redraws_one_bar_and_ends_its_line():
    import io
    from sim.cli import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    screen = Terminal()
    progress = Progress("report", 1000, stream=screen)
    progress(500)
    progress(1000)
    assert "\n" not in screen.getvalue() and screen.getvalue().count("\r") == 2
    assert "[" + "#" * 15 + " " * 15 + "]" in screen.getvalue()      # half of 30
    progress.close()
    assert screen.getvalue().endswith("#" * 30 + "]     1000\n")


def test_bench_switch_prints_a_line_per_finished_point(capsys):
    assert main(["bench-switch", "--sizes", "1KiB", "4KiB", "--widths", "128", "--latencies",
                 "10", "--measure-upto", "0", "--jobs", "1"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert [line.rsplit(",", 1)[0] for line in lines] == [
        "bench-switch: 1/2 points, 1 KiB x 128 bit, L 10",
        "bench-switch: 2/2 points, 4 KiB x 128 bit, L 10"]


def test_bench_switch_keeps_the_finished_rows_when_a_point_fails(tmp_path, capsys, monkeypatch):
    from sim.bench import world_switch
    real = world_switch.point

    def point(size, *args, **kwargs):
        if size == 4 << 10:
            raise RuntimeError("the simulator fell over")
        return real(size, *args, **kwargs)
    monkeypatch.setattr(world_switch, "point", point)
    out_json = tmp_path / "switch.json"
    assert main(["bench-switch", "--sizes", "1KiB", "4KiB", "16KiB", "--widths", "128",
                 "--latencies", "10", "--measure-upto", "0", "--jobs", "1",
                 "--json", str(out_json)]) == 1
    out, err = capsys.readouterr()
    [kept] = json.loads(out_json.read_text())
    assert kept["size"] == 1 << 10
    assert "   1 KiB  128   10 |" in out and "   4 KiB" not in out
    assert err.splitlines()[-1] == ("sriov-gpu: error: point 4 KiB x 128 bit, L 10 failed: "
                                    "RuntimeError: the simulator fell over (1 finished points "
                                    "kept above)")


def test_the_bench_s_command_limit_outlasts_a_1_mib_switch_and_its_drain_timeout():
    from rtl.params import MiB
    from sim.bench.world_switch import params_for
    from sim.drivers.world_switch_host import command_limit
    params = params_for(1 * MiB, 128, 10)
    # 1 MiB at W = 128 is 65536 beats each way; the drain may last the 4096-cycle timeout:
    # 4096 + 1 + (65536 + 4) + (65536 + 10 + 3) + 1 cycles, beyond the old fixed 100000.
    longest = 4096 + 1 + (65536 + 4) + (65536 + 10 + 3) + 1
    assert params.drain_timeout == 4096
    assert command_limit(params, drain=4) > longest
    # A memory ready half the cycles takes about twice as long.
    assert command_limit(params, drain=4, ready_prob=0.5) > 2 * longest


def test_sweep_prints_a_line_per_point_and_names_each_point_that_measured_nothing(tmp_path):
    from sim.system.scenario import DEFAULT, with_
    base = with_(DEFAULT, name="nothing", num_vfs=4, active_vfs=2, per_vf={})
    scenario = tmp_path / "base.json"
    scenario.write_text(json.dumps(base.to_dict()))
    csv_path = tmp_path / "sweep.csv"
    # Traffic ends at cycle 1, before set-up does: neither point measures anything.
    proc = run("sweep", str(scenario), "--run-cycles", "1", "--widths", "64", "128",
               "--jobs", "2", "--csv", str(csv_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert [line.rsplit(",", 1)[0] for line in lines[:2]] == [
        "sweep: 1/2 points, mem_width=64", "sweep: 2/2 points, mem_width=128"]
    for line, width in zip(lines[2:], (64, 128)):
        assert line.startswith(f"sriov-gpu: error: point mem_width={width}: no guest made a "
                               f"request") and line.endswith("raise run_cycles")
    assert len(lines) == 4 and csv_path.read_text().count("\n") == 3    # header + 2 rows
