"""Sweeps: a grid of scenarios run in parallel through a ``concurrent.futures`` executor, one
row each. The executor is local processes by default; given a Dask scheduler address the
same grid runs on that cluster (``distributed.Client(address).get_executor()``)."""

import csv
import io
import itertools
from concurrent.futures import ProcessPoolExecutor

from sim.bench.report import summarize
from sim.system.run import run
from sim.system.scenario import with_

__all__ = ["grid", "point", "sweep", "executor", "COLUMNS", "to_csv", "table", "with_"]

COLUMNS = ("mode", "num_vfs", "active_vfs", "ctx_words", "mem_width", "mem_latency",
           "time_slice", "switches", "switch_hw_median", "switch_model", "switch_host_median",
           "min_gpu_share", "doorbell_latency_median", "violations_blocked", "errors",
           "cycles")


def grid(base, **axes):
    """Scenarios: ``base`` with every combination of the axes' values ({field: [values]})."""
    names = list(axes)
    out = []
    for values in itertools.product(*(axes[n] for n in names)):
        changes = dict(zip(names, values))
        label = "-".join(f"{n}={v}" for n, v in changes.items()) or base.name
        out.append(with_(base, name=label, **changes))
    return out


def point(scenario, backend="amaranth"):
    """One scenario's row (runs in a worker process).

    A point that measured nothing (:func:`sim.bench.report.problems`) is a row too: its
    ``problems`` (not a CSV column) say why, and each counts as an error.
    """
    s = summarize(run(scenario, backend), strict=False)
    sc = s["scenario"]
    med = lambda key: (s["phases"].get(key) or {}).get("median")   # noqa: E731
    lat = s["doorbells"]["latency"]
    return {
        **{k: sc[k] for k in COLUMNS[:7]},
        "switches": s["switches"], "switch_hw_median": med("switch (hardware)"),
        "switch_model": s["model"].get("switch (hardware)"),
        "switch_host_median": med("switch (as the host sees it)"),
        "min_gpu_share": round(min(s["gpu_share"].values()), 4),
        "doorbell_latency_median": lat and lat["median"],
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


def table(rows):
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in COLUMNS}
    lines = [" ".join(f"{c:>{widths[c]}}" for c in COLUMNS)]
    lines += [" ".join(f"{r[c]!s:>{widths[c]}}" for c in COLUMNS) for r in rows]
    return "\n".join(lines)
