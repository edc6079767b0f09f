"""``sriov-gpu``: the command line of the SR-IOV GPU model.

Every command takes the model parameters (``--vfs``, ``--fb-size``, ...); a bad value ends
the command with exit status 2 and one line that says what to fix.
"""

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from rtl.params import MAX_MEM_CHANNELS, MAX_VFS, GpuParams, ParamError
from sim.system.scenario import MODES, ScenarioError

__all__ = ["main", "Progress"]

_UNITS = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40}


def parse_size(text):
    """'16MiB', '8G', '4096', '0x1000' -> bytes."""
    match = re.fullmatch(r"\s*(0x[0-9a-fA-F]+|\d+)\s*([a-zA-Z]*)\s*", text)
    unit = match and match.group(2).lower()
    if not match or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (examples: 16MiB, 8GiB, 4096)")
    return int(match.group(1), 0) * _UNITS[unit]


def positive_int(text):
    """'4' -> 4; zero, negatives and non-numbers are refused (argparse type, for --jobs)."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number (1, 2, ...)")
    return value


def writable(text, folder):
    """``text`` if an output file (``folder``: an output folder) can be written there.

    Checks only, creating nothing, so that a bad path fails before a long run and leaves
    nothing behind: an existing path must be of the right kind and writable; otherwise its
    nearest existing ancestor must be a writable folder (the writers create the rest).

    Raises
    ------
    argparse.ArgumentTypeError
        One line naming the path and what is wrong with it.
    """
    path = Path(text)
    kind = "folder" if folder else "file"
    if path.exists():
        if path.is_dir() != folder:
            raise argparse.ArgumentTypeError(
                f"{text!r} is a {'file' if folder else 'folder'}, not a {kind}")
        if not os.access(path, os.W_OK | (os.X_OK if folder else 0)):
            raise argparse.ArgumentTypeError(f"{text!r} is not writable")
        return text
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise argparse.ArgumentTypeError(
            f"cannot create {kind} {text!r}: {str(ancestor)!r} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(
            f"cannot create {kind} {text!r}: folder {str(ancestor)!r} is not writable")
    return text


def output_file(text):
    """argparse type of a file the command writes (see :func:`writable`)."""
    return writable(text, folder=False)


def output_folder(text):
    """argparse type of a folder the command writes into (see :func:`writable`)."""
    return writable(text, folder=True)


def write_output(path, text):
    """Write an output file, creating its folder first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, saying what to fix; the usage is one --help away.
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_params(parser):
    g = parser.add_argument_group("model parameters")
    g.add_argument("--vfs", type=int, default=GpuParams.num_vfs, metavar="N",
                   help="number of VFs, 1..64 (default %(default)s)")
    g.add_argument("--fb-size", type=parse_size, default=GpuParams.fb_size, metavar="SIZE",
                   help="framebuffer size (default 8GiB)")
    g.add_argument("--granule", type=parse_size, default=GpuParams.fb_granule, metavar="SIZE",
                   help="FB slice granule (default 16MiB)")
    g.add_argument("--vf-aperture", type=parse_size, default=GpuParams.vf_fb_aperture,
                   metavar="SIZE", help="VF FB BAR size (default 256MiB)")


def _params(args):
    return GpuParams(num_vfs=args.vfs, fb_size=args.fb_size, fb_granule=args.granule,
                     vf_fb_aperture=args.vf_aperture)


def _blocks(name):
    from rtl.top.blocks import BLOCKS
    return list(BLOCKS) if name == "all" else [name]


def cmd_verilog(args):
    from rtl.top.blocks import block_verilog
    params = _params(args)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for block in _blocks(args.block):
        path = out / f"{block}.v"
        path.write_text(block_verilog(block, params))
        print(f"wrote {path} ({params.num_vfs} VFs)")
    return 0


def cmd_synth(args):
    from sim.tooling.synth import synthesize
    params = _params(args)
    for block in _blocks(args.block):
        out = Path(args.output) / f"{block}-{params.num_vfs}vf"
        print(f"synthesizing {block} with {params.num_vfs} VFs for LFE5UM5G-45F-8 "
              f"at {args.freq} MHz in {out} ...", flush=True)
        r = synthesize(block, params, out, pnr=not args.no_pnr, freq_mhz=args.freq)
        cells = r["cells"]
        print(f"  LUT4 {cells['LUT4']}  FF {cells['FF']}  DP16KD {cells['DP16KD']}  "
              f"LUTRAM {cells['LUTRAM']}  (carry cells {cells['CCU2C']}; "
              f"yosys {r['yosys_s']} s, LUTs mapped by {r['lut_mapper']})")
        if "fmax_mhz" in r and r["fmax_mhz"] is None:
            print(f"  fmax: none reported, no register-to-register path (every path starts "
                  f"at an input port; nextpnr {r['nextpnr_s']} s)")
        elif "fmax_mhz" in r:
            verdict = "meets" if r["fmax_mhz"] >= args.freq else "MISSES"
            print(f"  fmax {r['fmax_mhz']} MHz ({verdict} {args.freq} MHz; "
                  f"nextpnr {r['nextpnr_s']} s)")
        if args.json:
            print(json.dumps(r))
    return 0


def cmd_regmap(args):
    from rtl.top.blocks import make_block
    block = make_block(args.block, _params(args))
    sys.stdout.write(block.regmap.markdown())
    return 0


def cmd_docs(args):
    from sim.tooling.docgen import write_generated_docs
    for path in write_generated_docs(Path(args.output)):
        print(f"wrote {path}")
    return 0


def cmd_config_dump(args):
    """Enumerate the model in simulation and print config space in `lspci -xxxx` format."""
    from sim.runners.backend import run_amaranth
    from sim.drivers.host import lspci_dump
    params = _params(args)
    if not 0 <= args.numvfs <= params.num_vfs:
        print(f"sriov-gpu: error: --numvfs {args.numvfs} is out of range: allowed "
              f"0..{params.num_vfs} (TotalVFs)", file=sys.stderr)
        return 2
    fns = list(range(args.numvfs + 1)) if args.fn is None else [args.fn]
    if any(not 0 <= fn <= args.numvfs for fn in fns):
        print(f"sriov-gpu: error: --fn {args.fn} is not an enabled function: allowed "
              f"0..{args.numvfs}", file=sys.stderr)
        return 2
    result = run_amaranth("config_space", params,
                          "sim.drivers.host:enumerate_and_dump",
                          num_vfs=args.numvfs, dump_fns=fns)
    dumps = {int(fn): bytes.fromhex(text) for fn, text in result["dumps"].items()}
    sys.stdout.write(lspci_dump(params, dumps))
    return 0


def cmd_summary(args):
    """The main job, for now: Verilog of every block, and what the model contains."""
    from amaranth.back import verilog
    from rtl.top.blocks import BLOCKS, make_block
    params = _params(args)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    print("SR-IOV GPU model")
    print("parameters:")
    for name, value in params.describe():
        print(f"  {name:16} {value}")
    print(f"  -> {params.num_fns} functions (PF + {params.num_vfs} VFs), "
          f"{params.fb_granules} FB granules, {params.fb_addr_width}-bit FB addresses")
    print("blocks:")
    for name in BLOCKS:
        t0 = time.monotonic()
        block = make_block(name, params)
        text = verilog.convert(block, name=name, emit_src=False)
        path = out / f"{name}.v"
        path.write_text(text)
        ports = block.signature.flatten(block)
        n_ports = sum(1 for _ in ports)
        regs = sum(1 for _ in block.regmap.instances()) if hasattr(block, "regmap") else 0
        # The docstring's first sentence (it may wrap over several lines).
        first = " ".join((block.__doc__ or "").strip().split("\n\n")[0].split())
        doc = first.split(". ")[0].rstrip(".") + "."
        print(f"  {name}: {doc}")
        latency = "data-dependent" if block.LATENCY is None else f"{block.LATENCY} cycle(s)"
        print(f"    {n_ports} ports, {regs} registers, latency {latency}; "
              f"Verilog {path} ({len(text.splitlines())} lines, {time.monotonic() - t0:.1f} s)")
    return 0


def cmd_bench_doorbell(args):
    """Doorbell arbiter: throughput, waits under saturation, Jain's index (measured cycles)."""
    from sim.bench import doorbell as bench_doorbell
    if args.cycles < 100:
        raise ParamError(f"--cycles={args.cycles} is too short to measure; use 100 or more")
    bad = [n for n in args.vfs_list if not 1 <= n <= 64]
    if bad:
        raise ParamError(f"--vfs-list: {bad[0]} VFs is out of range 1..64")
    print(f"Doorbell arbiter, {args.ports} ingress port(s), {GpuParams.doorbells_per_fn} "
          f"doorbells per function, {args.cycles} measured cycles per run (Amaranth sim)")
    rows = []
    for weighted in (False, True):
        rows += bench_doorbell.run(args.vfs_list, args.cycles, weighted, args.ports)
    print(bench_doorbell.table(rows))
    print("doorbells/cycle: the owner rings every cycle, CP always ready; latency: ring to "
          "first offer, cycles.\nsat.: every VF busy, all served (the rate counts the 3 "
          "start-up cycles); wait: cycles between a VF's\nservices, bound 1 + the other VFs' "
          "weights; 1st wait: from serving start, bound + latency; Jain: of deliveries/weight.")
    if args.per_vf:
        for row in rows:
            print()
            print(bench_doorbell.per_vf_table(row))
    if args.json:
        write_output(args.json, json.dumps(rows, indent=2))
        print(f"wrote {args.json}")
    return 0


def cmd_bench_switch(args):
    """World switch: cycles by phase, serial and overlapped, against the analytic model."""
    from sim.bench import world_switch as bench
    t0 = time.monotonic()

    def on_point(row, done, total):
        # A line per finished point, on a terminal or not: a large point runs for minutes.
        print(f"bench-switch: {done}/{total} points, {bench.size_label(row['size'])} x "
              f"{row['width']} bit, L {row['latency']}, {time.monotonic() - t0:.0f} s",
              file=sys.stderr, flush=True)
    failure = None
    try:
        rows = bench.run(args.sizes, args.widths, args.latencies, args.measure_upto, args.jobs,
                         on_point=on_point)
    except bench.PointFailed as err:
        # Keep what was measured: the finished rows, then the error.
        failure, rows = err, err.rows
    print(f"World switch (CONTEXT_SWITCH), engine drain {bench.DRAIN} cycles, memory always "
          f"ready, 128 reads in flight; cycles")
    print(bench.table(rows))
    print("phases (serial): idle = drain + 1, save, load, run start; bound = drain + "
          "2 x ceil(bits/W) + L (serial), drain + ceil(bits/W) + L (overlapped);\n"
          "measured: simulated (Amaranth); model: sim/models/cost_model.py, which the tests hold "
          "the RTL to exactly.")
    bad = [r for r in rows if "serial_measured" in r and (
        r["serial_measured"] != r["serial_model"] or
        r["overlap_total_measured"] != r["overlap_total_model"])]
    for r in bad:
        print(f"MISMATCH at {r['size']} bytes, W={r['width']}, L={r['latency']}: measured "
              f"{r['serial_measured']} / {r['overlap_total_measured']}, model "
              f"{r['serial_model']} / {r['overlap_total_model']}")
    if args.json:
        write_output(args.json, json.dumps(rows, indent=2))
        print(f"wrote {args.json}")
    if failure:
        print(f"sriov-gpu: error: {failure} ({len(rows)} finished points kept above)",
              file=sys.stderr)
        return 1
    return 1 if bad else 0


def _scenario(args):
    from sim.system.scenario import DEFAULT, load
    sc = load(args.scenario) if args.scenario else DEFAULT
    return sc


class Progress:
    """How far a long command has got, on stderr.

    On a terminal, a bar redrawn in place; otherwise (a log, CI, a pipe) a plain line each
    time another tenth of the estimate is done, such as ``report: cycle 4000 of ~8000
    (50 %)``, so that whoever reads the log sees the run is alive. Past the estimate, a line
    each further tenth says so.

    Parameters
    ----------
    label : str
        The command, at the start of each line.
    total : int
        The estimated end of the count; the count may pass it.
    text : str
        A line's text after the label, formatted with ``done``, ``total`` and ``pct``.
    past : str
        The same, once the count has passed ``total``.
    stream : file, optional
        Where to write (default: ``sys.stderr`` as it is at construction).
    """

    #: A plain line each time the count passes another 1 / STEPS of the estimate.
    STEPS = 10
    BAR = 30

    def __init__(self, label, total, text="cycle {done} of ~{total} ({pct} %)",
                 past="cycle {done} (past the estimate of ~{total})", stream=None):
        self.label, self.total, self.text, self.past = label, max(total, 1), text, past
        self.stream = sys.stderr if stream is None else stream
        self.tty = self.stream.isatty()
        self.steps = 0                  # tenths already reported on a plain line
        self.drawn = False

    def __call__(self, done):
        if self.tty:
            bar = "#" * (min(done, self.total) * self.BAR // self.total)
            print(f"\r  {self.label} [{bar:<{self.BAR}}] {done:>8}", end="", file=self.stream,
                  flush=True)
            self.drawn = True
            return
        steps = done * self.STEPS // self.total
        if steps <= self.steps:
            return
        self.steps = steps
        text = self.past if done > self.total else self.text
        fields = {"done": done, "total": self.total, "pct": 100 * done // self.total}
        print(f"{self.label}: {text.format(**fields)}", file=self.stream, flush=True)

    def close(self):
        """End the bar's line (on a terminal); nothing otherwise."""
        if self.drawn:
            print(file=self.stream, flush=True)
            self.drawn = False


def cmd_fuzz(args):
    """The hostile campaign (sim/system/fuzz.py); exit 1 on any mismatch or if nothing was checked."""
    from sim.system import fuzz
    t0 = time.monotonic()
    print(f"Fuzzing the whole GPU ({fuzz.FUZZ_PARAMS.num_vfs} VFs) on {args.backend}: "
          f"{args.transactions} transactions, seed {args.seed} ...", flush=True)

    bar = Progress("fuzz", args.transactions, text="{done} of {total} transactions ({pct} %)",
                   past="{done} transactions (past the {total} asked for)")
    started = False

    def progress(done):
        # Long campaigns run for minutes: say once that the simulation is being built, then
        # how far it is (a bar on a terminal, a line each tenth otherwise).
        nonlocal started
        if not done and not started:
            started = True
            print(f"fuzz: building and starting the simulation ({time.monotonic() - t0:.0f} s)",
                  file=sys.stderr, flush=True)
        elif done:
            bar(done)
    raw = fuzz.run(args.transactions, seed=args.seed, backend=args.backend, progress=progress)
    bar.close()
    for line in fuzz.summary(raw):
        print(line)
    if args.json:
        write_output(args.json, json.dumps(raw, indent=2) + "\n")
    if not raw["checked"].get("fb") or not raw["engine_checks"]:
        print("sriov-gpu: error: the campaign checked no FB read or no context restore: "
              "give it more --transactions", file=sys.stderr)
        return 1
    return 1 if raw["mismatches"] else 0


def cmd_report(args):
    """The main job: run a scenario on the whole GPU and report its world-switch timing."""
    from concurrent.futures import ProcessPoolExecutor
    from sim.bench import report
    from sim.system.run import run
    t0 = time.monotonic()
    sc = _scenario(args)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    print(f"Running scenario {sc.name!r} on {args.backend} "
          f"({sc.active_vfs} VMs, {sc.run_cycles} cycles of traffic) ...", flush=True)
    pool = None
    if not args.no_plots:
        # The cost plot's measured points simulate the world switch alone, meanwhile.
        pool = ProcessPoolExecutor(max_workers=1)
        points = pool.submit(report.cost_points, sc)
    # Set-up, the traffic, then a turn of every VM to deliver what is left (an estimate).
    bar = Progress("report", sc.run_cycles + sc.time_slice * sc.active_vfs + 2000)
    raw = run(sc, args.backend, progress=bar)
    bar.close()
    # The raw run is worth keeping even when it measured nothing: it shows why.
    write_output(out / "run.json", json.dumps(raw) + "\n")
    try:
        summary = report.summarize(raw)
    except report.ReportError as err:
        if pool:
            pool.shutdown(cancel_futures=True)
        # Not a report: one line saying what is wrong and what to change; status 1.
        print(f"wrote {out / 'run.json'}")
        print(f"sriov-gpu: error: {err}", file=sys.stderr)
        return 1
    print(report.table(summary))
    report.write_json(summary, out / "report.json")
    written = [out / "report.json", out / "run.json"]
    if pool:
        report.plot_timeline(raw, out / "timeline.png")
        report.plot_histograms(summary, out / "histograms.png")
        sw = summary["phases"].get("switch (hardware)")
        scenario_point = sw and (sc.params().ctx_bytes, sw["median"])
        report.plot_cost(points.result(), out / "cost.png", scenario_point)
        pool.shutdown()
        written += [out / "timeline.png", out / "histograms.png", out / "cost.png"]
    print(f"\nwrote {', '.join(str(w) for w in written)}")
    print(f"report wall time {time.monotonic() - t0:.1f} s")
    return 1 if summary["errors"] else 0


#: sweep's axes: (option, metavar, the scenario field it sweeps, type, help), in the order
#: the axes combine and name the points.
SWEEP_AXES = (
    ("--modes", "MODE", "mode", str, f"mode values: any of {', '.join(MODES)}"),
    ("--vfs-list", "N", "num_vfs", int, "num_vfs values (VFs the GPU is built with, "
     f"1..{MAX_VFS})"),
    ("--active-vms", "N", "active_vfs", int, "active_vfs values (VMs running, at most "
     "num_vfs)"),
    ("--ctx-words", "N", "ctx_words", int, "ctx_words values"),
    ("--widths", "W", "mem_width", int, "mem_width values, bits"),
    ("--latencies", "L", "mem_latency", int, "mem_latency values, cycles"),
    ("--channels", "N", "mem_channels", int, "mem_channels values (FB memory channels, "
     f"1..{MAX_MEM_CHANNELS})"),
    ("--time-slices", "C", "time_slice", int, "time_slice values (cycles each VM owns the "
     "GPU per turn)"),
    ("--completions", "HOW", "completion", str, "completion values: poll or interrupt (how "
     "the hypervisor learns a command ended)"),
)


def _sweep_axes(args):
    """{field: values} of the axes given on the command line, in :data:`SWEEP_AXES` order."""
    axes = {field: getattr(args, flag[2:].replace("-", "_"))
            for flag, _, field, _, _ in SWEEP_AXES}
    return {field: values for field, values in axes.items() if values}


def _sweep_grid(args):
    """The scenarios of the sweep the command line asks for.

    Raises
    ------
    ScenarioError
        A value, or a combination of values, no scenario can have: one line naming the
        options (``--active-vms 8 with --vfs-list 4: ...``).
    """
    from sim.bench import sweep
    from sim.system.scenario import DEFAULT, load
    base = load(args.scenario) if args.scenario else DEFAULT
    base = sweep.with_(base, run_cycles=args.run_cycles) if args.run_cycles else base
    axes = _sweep_axes(args)
    if "num_vfs" in axes and "active_vfs" not in axes:
        # Every point must have its VMs: as many as the smallest GPU of the grid has VFs
        # (at least one: a VF count below 1 is then refused as itself).
        active = max(1, min(base.active_vfs, *axes["num_vfs"]))
        base = sweep.with_(base, **sweep.with_vms(base, active))
    try:
        return base, sweep.grid(base, **axes)
    except sweep.PointError as err:
        flag_of = {field: flag for flag, _, field, _, _ in SWEEP_AXES}
        values = " with ".join(f"{flag_of[f]} {v}" for f, v in err.changes.items())
        raise ScenarioError(f"{values}: {err.why}") from None


def cmd_sweep(args):
    from sim.bench import sweep
    base, scenarios = _sweep_grid(args)
    print(f"Sweeping {len(scenarios)} scenarios on {args.backend} "
          f"({'Dask ' + args.scheduler if args.scheduler else f'{args.jobs} processes'}) ...",
          flush=True)
    t0 = time.monotonic()

    def on_row(row, k, n):
        # A line per finished point, on a terminal or not: a point is a whole simulation,
        # coarse enough that each deserves its line (Progress would thin them to tenths).
        print(f"sweep: {k}/{n} points, {scenarios[k - 1].name}, {time.monotonic() - t0:.0f} s",
              file=sys.stderr, flush=True)
    rows = sweep.sweep(scenarios, args.backend, sweep.executor(args.jobs, args.scheduler),
                       on_row=on_row)
    print(sweep.table(rows))
    write_output(args.csv, sweep.to_csv(rows))
    written = [args.csv]
    if not args.no_plot:
        png = Path(args.csv).with_suffix(".png")
        sweep.plot(rows, png, base.clock_mhz)
        written.append(png)
    print(f"wrote {', '.join(map(str, written))}; {time.monotonic() - t0:.1f} s")
    for sc, row in zip(scenarios, rows):
        if row["problems"]:             # the first is the cause (no requests: no switch)
            print(f"sriov-gpu: error: point {sc.name}: {row['problems'][0]}", file=sys.stderr)
    return 1 if any(r["errors"] for r in rows) else 0


def cmd_bench_sim(args):
    from sim.bench.sim_speed import run_bench
    return run_bench(args.backends, args.vfs, cpp=not args.no_cpp,
                     report=lambda out: main(["report", "-o", out]))


def build_parser():
    parser = _Parser(prog="sriov-gpu", description="Cycle-approximate model of SR-IOV GPU "
                     "virtualization hardware, in Amaranth HDL.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_scenario_commands(sub)
    _add_hardware_commands(sub)
    _add_bench_commands(sub)
    return parser


def _add_scenario_commands(sub):
    """report, sweep, bench-sim: scenarios on the whole GPU."""
    from sim.runners.backend import BACKENDS
    p = sub.add_parser("report", help="the main job: run a scenario on the whole GPU (default: "
                       "4 VMs, host-driven switches, one misbehaving) and report world-switch "
                       "timing: table, JSON, PNG plots")
    p.add_argument("scenario", nargs="?", help="scenario file (.toml or .json; "
                   "default: the built-in scenario, docs/scenarios/default.toml)")
    p.add_argument("--backend", choices=BACKENDS, default="amaranth",
                   help="simulator (default amaranth: nothing else to install)")
    p.add_argument("-o", "--output", type=output_folder, default="build/report",
                   help="output folder")
    p.add_argument("--no-plots", action="store_true", help="table and JSON only")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("sweep", help="run a grid of scenarios in parallel processes (or on a "
                       "Dask cluster) and write one table / CSV")
    p.add_argument("scenario", nargs="?", help="base scenario file (default: built-in)")
    for flag, metavar, _, type_, help_ in SWEEP_AXES:
        p.add_argument(flag, type=type_, nargs="+", metavar=metavar, help=help_)
    p.add_argument("--run-cycles", type=int, metavar="C", help="override run_cycles")
    p.add_argument("--backend", choices=BACKENDS, default="amaranth")
    p.add_argument("--jobs", type=positive_int, default=2,
                   help="local worker processes (default 2)")
    p.add_argument("--scheduler", metavar="ADDR", help="Dask scheduler address "
                   "(tcp://host:8786): run the grid on that cluster")
    p.add_argument("--csv", type=output_file, default="build/sweep.csv",
                   help="CSV output (default %(default)s); the plot goes next to it, "
                   "as .png")
    p.add_argument("--no-plot", action="store_true", help="table and CSV only")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("bench-sim", help="simulation speed of the whole GPU: simulated "
                       "cycles per second on each backend (a benchmark, not a test)")
    p.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    p.add_argument("--vfs", type=int, default=16, help="VFs the GPU is built with")
    p.add_argument("--no-cpp", action="store_true",
                   help="leave out the bare C++ loop (the limit; needs g++)")
    p.set_defaults(func=cmd_bench_sim)


def _add_hardware_commands(sub):
    """summary, verilog, synth, regmap: the blocks' Verilog, synthesis and register maps."""
    p = sub.add_parser("summary", help="generate every block's Verilog into build/ and "
                       "summarize the model")
    _add_params(p)
    p.add_argument("-o", "--output", type=output_folder, default="build/verilog",
                   help="output folder")
    p.set_defaults(func=cmd_summary)

    from rtl.top.blocks import BLOCKS, SIM_BLOCKS
    choices = list(BLOCKS) + ["all"]
    p = sub.add_parser("verilog", help="emit Verilog for a block")
    p.add_argument("--block", choices=choices + list(SIM_BLOCKS), default="all",
                   help="a block, all of them, or gpu_harness (the whole GPU with its FB "
                        "memory, as simulations run it)")
    _add_params(p)
    p.add_argument("-o", "--output", type=output_folder, default="build/verilog",
                   help="output folder")
    p.set_defaults(func=cmd_verilog)

    p = sub.add_parser("synth", help="Yosys synth_ecp5 + nextpnr-ecp5 (LFE5UM5G-45F, speed 8, "
                       "out of context): LUTs, FFs, BRAMs, fmax. Slow.")
    p.add_argument("--block", choices=choices, default="all")
    _add_params(p)
    p.add_argument("--freq", type=float, default=125.0, help="target clock, MHz (default 125)")
    p.add_argument("--no-pnr", action="store_true", help="synthesis only (cell counts)")
    p.add_argument("--json", action="store_true", help="also print the results as JSON")
    p.add_argument("-o", "--output", type=output_folder, default="build/synth",
                   help="work folder")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("regmap", help="print a block's register map (Markdown)")
    p.add_argument("--block", choices=list(BLOCKS), default="fb_partition")
    _add_params(p)
    p.set_defaults(func=cmd_regmap)


def _add_bench_commands(sub):
    """config-dump, bench-doorbell, bench-switch, fuzz, docs."""
    from sim.runners.backend import BACKENDS
    p = sub.add_parser("config-dump", help="enumerate in simulation and print config space "
                       "as `lspci -xxxx` (decode it with `lspci -F FILE -vvv`)")
    _add_params(p)
    p.add_argument("--numvfs", type=int, default=GpuParams.num_vfs, metavar="N",
                   help="NumVFs to enable (default: all)")
    p.add_argument("--fn", type=int, default=None, metavar="F",
                   help="only this function (0 = PF, n = VF n; default: all)")
    p.set_defaults(func=cmd_config_dump)

    p = sub.add_parser("bench-doorbell", help="doorbell arbiter benchmark: throughput, waits "
                       "under saturation and fairness at 4, 16, 64 VFs (measured cycles)")
    p.add_argument("--vfs-list", type=int, nargs="+", default=[4, 16, 64], metavar="N",
                   help="VF counts to measure (default: 4 16 64)")
    p.add_argument("--cycles", type=int, default=1000,
                   help="measured cycles per run (default %(default)s)")
    p.add_argument("--ports", type=int, default=1, choices=range(1, 5),
                   help="doorbell ingress ports (default 1)")
    p.add_argument("--per-vf", action="store_true",
                   help="also print each VF's deliveries and worst / mean wait")
    p.add_argument("--json", type=output_file, metavar="FILE",
                   help="also write the rows as JSON")
    p.set_defaults(func=cmd_bench_doorbell)

    from sim.bench.world_switch import LATENCIES, SIZES, WIDTHS
    p = sub.add_parser("bench-switch", help="world-switch benchmark: cycles by phase, serial "
                       "and overlapped, by context size, W and L, next to the analytic model")
    p.add_argument("--sizes", type=parse_size, nargs="+", default=list(SIZES), metavar="SIZE",
                   help="context sizes (default 1KiB 4KiB 16KiB 64KiB 256KiB 1MiB)")
    p.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS),
                   choices=[64, 128, 256, 512], metavar="W", help="memory widths, bits")
    p.add_argument("--latencies", type=int, nargs="+", default=list(LATENCIES), metavar="L",
                   help="memory read latencies, cycles (default 10 100)")
    p.add_argument("--measure-upto", type=parse_size, default=16 << 10, metavar="SIZE",
                   help="simulate points up to this context size; larger ones print the "
                        "model (default 16KiB)")
    p.add_argument("--jobs", type=positive_int, default=2,
                   help="parallel simulations (default 2)")
    p.add_argument("--json", type=output_file, metavar="FILE",
                   help="also write the rows as JSON")
    p.set_defaults(func=cmd_bench_switch)

    p = sub.add_parser("fuzz", help="hostile campaign on the whole GPU: random PF and VF "
                       "traffic, legal and not, checked against what each function may see")
    p.add_argument("--transactions", type=positive_int, default=20_000, metavar="N",
                   help="host requests to make (default %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--backend", choices=BACKENDS, default="verilator")
    p.add_argument("--json", metavar="FILE", type=output_file,
                   help="also write the full result as JSON")
    p.set_defaults(func=cmd_fuzz)

    p = sub.add_parser("docs", help="regenerate the generated pages of docs/")
    p.add_argument("-o", "--output", type=output_folder, default="docs/generated",
                   help="output folder")
    p.set_defaults(func=cmd_docs)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ParamError, ScenarioError) as e:
        print(f"sriov-gpu: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        # An output the up-front check passed that still could not be written (the disk
        # filled, the folder went away): what failed, on one line.
        print(f"sriov-gpu: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
