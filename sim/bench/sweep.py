"""Sweeps: a grid of scenarios run in parallel through a ``concurrent.futures`` executor, one
row each, and a plot of what was swept. The executor is local processes by default; given a
Dask scheduler address the same grid runs on that cluster
(``distributed.Client(address).get_executor()``)."""

import csv
import io
import itertools
import re
import textwrap
from concurrent.futures import ProcessPoolExecutor

from rtl.params import KiB, GpuParams
from sim.bench.report import summarize
from sim.system.run import run
from sim.system.scenario import EVENT_FIELDS, ScenarioError, with_

__all__ = ["grid", "point", "sweep", "executor", "COLUMNS", "SCENARIO_COLUMNS", "to_csv",
           "table", "plot", "swept", "with_", "with_vms", "PointError"]

#: The scenario fields a row carries (the axes a sweep can have, and what it holds).
SCENARIO_COLUMNS = ("mode", "num_vfs", "active_vfs", "ctx_words", "mem_width", "mem_latency",
                    "mem_channels", "time_slice", "completion")
COLUMNS = (*SCENARIO_COLUMNS, "switches", "switch_hw_median", "switch_model",
           "switch_host_median", "min_gpu_share", "fairness", "doorbell_latency_median",
           "doorbell_latency_p99", "guest_work_efficiency", "violations_blocked", "errors",
           "cycles")
#: Scenario columns whose values are words, not numbers (never the x axis if a number varies).
WORD_COLUMNS = ("mode", "completion")
#: Decimal places of the fractions in a row (shares, fairness, efficiency).
FRACTION_DIGITS = 4


class PointError(ScenarioError):
    """A point of a grid that cannot run.

    Attributes
    ----------
    changes : dict
        The fewest of the point's axis values (field -> value) that the base scenario
        refuses together, in axis order.
    why : str
        What the scenario check said, without the scenario's name.
    """

    def __init__(self, changes, why):
        super().__init__(f"{', '.join(f'{k}={v}' for k, v in changes.items())}: {why}")
        self.changes, self.why = changes, why


def with_vms(sc, active):
    """The changes that give ``sc`` ``active`` VMs: its ``per_vf`` entries, FLRs and hangs
    of VFs above them dropped, so that the scenario stays valid."""
    return {"active_vfs": active,
            "per_vf": {vf: w for vf, w in sc.per_vf.items() if vf <= active},
            **{name: tuple(e for e in getattr(sc, name) if e[1] <= active)
               for name in EVENT_FIELDS}}


def _at(base, name, changes):
    """``base`` with the axis values ``changes``; a VM count brings :func:`with_vms`."""
    vms = with_vms(base, changes["active_vfs"]) if "active_vfs" in changes else {}
    return with_(base, name=name, **{**vms, **changes})


def _refused(base, changes, err):
    """The :class:`PointError` of a point the checks refuse (``err``): the smallest subset
    of its axis values that is refused on its own, so that the error names only what
    conflicts (the whole point when no smaller subset is refused).

    When the point sets the VM count, a subset without it is checked with one VM: the
    base's count is no part of the point, and must not conflict with its VF count.
    """
    if "active_vfs" in changes:
        base = with_(base, **with_vms(base, 1))
    smaller = ({n: changes[n] for n in names} for size in range(1, len(changes))
               for names in itertools.combinations(changes, size))
    for subset in smaller:
        try:
            _at(base, base.name, subset)
        except ScenarioError as refused:
            changes, err = subset, refused
            break
    # The checks' message without the scenario's name: the point is named by its values.
    return PointError(changes, re.sub(r"^scenario '[^']*': ", "", str(err)))


def grid(base, **axes):
    """Scenarios: ``base`` with every combination of the axes' values ({field: [values]}).

    An ``active_vfs`` axis drops, at each point, the ``per_vf`` entries and FLRs of VFs
    above its value (:func:`with_vms`).

    Raises
    ------
    PointError
        A combination the scenario checks refuse (such as more VMs than VFs), before any
        scenario runs: the fewest axis values that conflict and why.
    """
    names = list(axes)
    out = []
    for values in itertools.product(*(axes[n] for n in names)):
        changes = dict(zip(names, values))
        label = "-".join(f"{n}={v}" for n, v in changes.items()) or base.name
        try:
            out.append(_at(base, label, changes))
        except ScenarioError as err:
            raise _refused(base, changes, err) from None
    return out


def _rounded(fraction):
    return None if fraction is None else round(fraction, FRACTION_DIGITS)


def point(scenario, backend="amaranth"):
    """One scenario's row (runs in a worker process).

    A point that measured nothing (:func:`sim.bench.report.problems`) is a row too: its
    ``problems`` (not a CSV column) say why, and each counts as an error. A figure that
    could not be computed (no switch, no doorbell, no guest work) is None.
    """
    s = summarize(run(scenario, backend), strict=False)
    sc = s["scenario"]
    med = lambda key: (s["phases"].get(key) or {}).get("median")   # noqa: E731
    lat = s["doorbells"]["latency"]
    return {
        **{k: sc[k] for k in SCENARIO_COLUMNS},
        "switches": s["switches"], "switch_hw_median": med("switch (hardware)"),
        "switch_model": s["model"].get("switch (hardware)"),
        "switch_host_median": med("switch (as the host sees it)"),
        "min_gpu_share": _rounded(min(s["gpu_share"].values())),
        "fairness": _rounded(s["fairness"]),
        "doorbell_latency_median": lat and lat["median"],
        "doorbell_latency_p99": s["doorbells"]["percentiles"]["p99"],
        "guest_work_efficiency": _rounded(s["guest_work"]["efficiency"]),
        "violations_blocked": sum(v["counted"] for v in s["violations"].values()),
        "errors": len(s["errors"]) + len(s["problems"]), "cycles": s["cycles"],
        "problems": s["problems"],
    }


def executor(jobs=2, scheduler=None):
    """Local worker processes, or a Dask cluster's executor."""
    if scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise RuntimeError("--scheduler needs Dask's `distributed` package "
                               "(pip install distributed)") from None
        return Client(scheduler).get_executor()
    return ProcessPoolExecutor(max_workers=jobs)


def sweep(scenarios, backend="amaranth", pool=None, on_row=None):
    """Rows of every scenario, in grid order; ``on_row(row, done, total)`` as each ends."""
    pool = pool or ProcessPoolExecutor(max_workers=2)
    with pool:
        futures = [pool.submit(point, sc, backend) for sc in scenarios]
        rows = []
        for k, fut in enumerate(futures):
            rows.append(fut.result())
            if on_row:
                on_row(rows[-1], k + 1, len(futures))
    return rows


def to_csv(rows):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _cell(value):
    return "-" if value is None else str(value)


def table(rows):
    """The rows as terminal text, a column each of :data:`COLUMNS`; "-" where not computed."""
    widths = {c: max(len(c), *(len(_cell(r[c])) for r in rows)) for c in COLUMNS}
    lines = [" ".join(f"{c:>{widths[c]}}" for c in COLUMNS)]
    lines += [" ".join(f"{_cell(r[c]):>{widths[c]}}" for c in COLUMNS) for r in rows]
    return "\n".join(lines)


# --- the plot ---------------------------------------------------------------------------

#: Characters of a line of the plot's title before it wraps.
TITLE_WIDTH = 90

#: The x axis of each swept field: its label, and the value a row is drawn at.
_X_AXES = {
    "mode": ("mode", lambda r: r["mode"]),
    "num_vfs": ("VFs the GPU is built with", lambda r: r["num_vfs"]),
    "active_vfs": ("VMs running (active VFs)", lambda r: r["active_vfs"]),
    "ctx_words": ("context size, KiB (ctx_words \N{MULTIPLICATION SIGN} W / 8 + shared "
                  "registers)", lambda r: _ctx_bytes(r) / KiB),
    "mem_width": ("FB memory width W, bits", lambda r: r["mem_width"]),
    "mem_latency": ("FB read latency L, cycles", lambda r: r["mem_latency"]),
    "mem_channels": ("FB memory channels", lambda r: r["mem_channels"]),
    "time_slice": ("time slice, cycles", lambda r: r["time_slice"]),
    "completion": ("how the hypervisor learns a command ended", lambda r: r["completion"]),
}


def _ctx_bytes(row):
    """A row's context in bytes: engine state and the shared registers, as the GPU saves it."""
    return GpuParams(ctx_words=row["ctx_words"], mem_width=row["mem_width"]).ctx_bytes


def swept(rows):
    """The scenario fields that differ between the rows, in :data:`SCENARIO_COLUMNS` order
    but the words (``mode``, ``completion``) last: the first is the plot's x axis (a number
    where there is one), the others make its lines."""
    varied = [c for c in SCENARIO_COLUMNS if len({r[c] for r in rows}) > 1]
    return sorted(varied, key=lambda c: c in WORD_COLUMNS)


def _nan(value):
    return float("nan") if value is None else value


def plot(rows, path, clock_mhz):
    """What a sweep swept: the median world switch in hardware and as the host sees it
    (microseconds at ``clock_mhz``), and the smallest GPU share, against the first swept
    field (:func:`swept`), a line per combination of the other swept fields; the title
    says which fields were held.

    Parameters
    ----------
    rows : list of dict
        Rows of :func:`point` (hand-made ones need the :data:`SCENARIO_COLUMNS`,
        ``switch_hw_median``, ``switch_host_median`` and ``min_gpu_share``).
    path : path-like
        The PNG to write.
    clock_mhz : float
        The scenarios' clock, to turn cycles into microseconds.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fields = swept(rows) or ["mode"]
    x_field, line_fields = fields[0], fields[1:]
    x_label, x_of = _X_AXES[x_field]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 6.5), layout="constrained",
                                      gridspec_kw={"height_ratios": (2, 1)})
    for k, (name, members) in enumerate(_lines(rows, line_fields, x_of).items()):
        xs = [x_of(r) for r in members]
        us = lambda key: [_nan(r[key]) / clock_mhz for r in members]   # noqa: E731
        top.plot(xs, us("switch_hw_median"), "o-", color=f"C{k}", label=f"hardware{name}")
        top.plot(xs, us("switch_host_median"), "s--", color=f"C{k}", label=f"host sees{name}")
        bottom.plot(xs, [100 * _nan(r["min_gpu_share"]) for r in members], "o-", color=f"C{k}")
    if x_field not in WORD_COLUMNS:     # a few discrete values: a tick at each
        ticks = sorted({x_of(r) for r in rows})
        bottom.set_xticks(ticks, [str(t) if isinstance(t, int) else f"{t:.2f}" for t in ticks])
    if x_field == "time_slice":          # the slice in time too, above, as the timeline has it
        top.secondary_xaxis("top", functions=(lambda c: c / clock_mhz, lambda t: t * clock_mhz)
                            ).set_xlabel(f"time slice, \N{MICRO SIGN}s at {clock_mhz:g} MHz")
    top.set_ylabel(f"world switch, median,\n\N{MICRO SIGN}s at {clock_mhz:g} MHz")
    top.set_ylim(bottom=0)
    top.legend(fontsize=8)
    bottom.set_ylabel("smallest GPU share, %")
    bottom.set_ylim(0, 100)
    bottom.set_xlabel(x_label)
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
    fig.suptitle(_title(rows, x_field, line_fields), fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _lines(rows, line_fields, x_of):
    """The plot's lines: {legend suffix: its rows in x order}, a line per combination of
    the ``line_fields``' values, in the rows' order."""
    lines = {}
    for row in rows:
        name = ", ".join(f"{f}={row[f]}" for f in line_fields)
        lines.setdefault(name and f", {name}", []).append(row)
    return {name: sorted(members, key=x_of) for name, members in lines.items()}


def _title(rows, x_field, line_fields):
    """What the plot shows: the field against which, what each line is, what was held."""
    held = ", ".join(f"{c}={rows[0][c]}" for c in SCENARIO_COLUMNS
                     if c != x_field and c not in line_fields)
    each = " \N{MULTIPLICATION SIGN} ".join(line_fields)
    lines = f"; a line per {each}" if line_fields else ""
    return "\n".join([f"Sweep of {x_field} ({len(rows)} points){lines}",
                      *textwrap.wrap(f"held: {held}", TITLE_WIDTH)])
