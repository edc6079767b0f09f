"""World-switch benchmark: cycles of each phase of a CONTEXT_SWITCH, serial and overlapped,
by context size, memory width W and latency L, next to the analytic model and the bandwidth
bound. Measured points are simulated (Amaranth, a host issuing CONTEXT_SWITCH through the
GPU-IOV command interface, a memory that is always ready); larger points come from the
analytic model, which the tests hold the RTL to exactly.

Run it with ``sriov-gpu bench-switch``.
"""

from concurrent.futures import ProcessPoolExecutor, as_completed

from rtl.params import GpuParams, KiB, MiB, ParamError

from sim.models import cost_model
from sim.runners.backend import run_amaranth

__all__ = ["SIZES", "params_for", "point", "run", "table", "PointFailed", "size_label"]

#: Context sizes the table covers, bytes (shared registers + engine state).
SIZES = (1 * KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB)
WIDTHS = (64, 128, 256, 512)
LATENCIES = (10, 100)
DRAIN = 4                   # cycles the engine needs to go idle once told to stop


def params_for(size, width, latency, outstanding=128):
    """Parameters of a context of ``size`` bytes (16 shared registers + engine state)."""
    beat = width // 8
    if size % beat:
        raise ParamError(f"context size {size} is not a multiple of the {beat}-byte beat")
    base = GpuParams(num_vfs=4, mem_width=width, mem_latency=latency,
                     mem_outstanding=outstanding)
    words = size // beat - base.shared_beats
    if words < 1:
        raise ParamError(f"context size {size} leaves no room for engine state at W={width}")
    return base.with_(ctx_words=words)


def point(size, width, latency, measure, modes=("serial", "overlap"), drain=DRAIN,
          outstanding=128):
    """One row: model (and measured, if ``measure``) phase cycles, serial and overlapped,
    with an engine that drains in ``drain`` cycles and ``outstanding`` reads in flight."""
    params = params_for(size, width, latency, outstanding)
    beats = cost_model.bandwidth_bound(params)
    row = {"size": size, "width": width, "latency": latency, "beats": beats,
           "serial_model": cost_model.phase_cycles(params, drain),
           "serial_total_model": cost_model.switch_cycles(params, drain),
           "overlap_model": cost_model.overlapped_phase_cycles(params, drain),
           "overlap_total_model": cost_model.overlapped_switch_cycles(params, drain),
           "serial_bound": drain + 2 * beats + latency,
           "overlap_bound": drain + beats + latency}
    if measure:
        for mode in modes:
            overlap = mode == "overlap"
            got = run_amaranth("world_switch", params, "sim.drivers.world_switch_host:context_switch",
                               drain=drain, overlap=overlap)
            row[f"{mode}_measured"] = dict(zip(("idle", "save", "load", "run"), got["phases"]))
            row[f"{mode}_total_measured"] = got["switch"]
    return row


class PointFailed(RuntimeError):
    """A point of :func:`run`'s grid failed.

    Attributes
    ----------
    rows : list of dict
        The rows of the points that did finish, in grid order.
    point : tuple
        (size, width, latency) of the point that failed.
    """

    def __init__(self, point, cause, rows):
        size, width, latency = point
        super().__init__(f"point {size_label(size)} x {width} bit, L {latency} failed: "
                         f"{type(cause).__name__}: {cause}")
        self.point, self.rows = point, rows


def run(sizes=SIZES, widths=WIDTHS, latencies=LATENCIES, measure_upto=16 * KiB, jobs=2,
        on_point=None):
    """Every (size, W, L) point; those up to ``measure_upto`` bytes are simulated.

    Parameters
    ----------
    sizes, widths, latencies : sequence of int
        The grid: context bytes, memory widths (bits), read latencies (cycles).
    measure_upto : int
        Simulate the points up to this many context bytes; the others are the model's.
    jobs : int
        Worker processes (1: in this process).
    on_point : callable, optional
        ``on_point(row, done, total)`` as each point finishes, in the order they finish.

    Returns
    -------
    list of dict
        One row per point (:func:`point`), in grid order.

    Raises
    ------
    ParamError
        A point's context cannot be built at its width (before anything runs).
    PointFailed
        A point failed; the points not yet started are dropped, those running finish, and
        the exception's ``rows`` holds every finished one.
    """
    grid = [(size, w, lat, size <= measure_upto) for size in sizes for w in widths
            for lat in latencies]
    for size, w, lat, _ in grid:
        params_for(size, w, lat)        # a point that cannot be built: ParamError, up front
    rows = [None] * len(grid)
    failed = None
    done = 0

    def finished(k, row):
        nonlocal done
        rows[k] = row
        done += 1
        if on_point:
            on_point(row, done, len(grid))

    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(point, *args): k for k, args in enumerate(grid)}
            for fut in as_completed(futures):
                if fut.cancelled():
                    continue
                k = futures[fut]
                try:
                    finished(k, fut.result())
                except Exception as err:            # noqa: BLE001: reported with the rows
                    if failed is None:
                        failed = (k, err)
                        for other in futures:
                            other.cancel()
    else:
        for k, args in enumerate(grid):
            try:
                finished(k, point(*args))
            except Exception as err:                # noqa: BLE001: reported with the rows
                failed = (k, err)
                break
    if failed:
        k, err = failed
        raise PointFailed(grid[k][:3], err, [r for r in rows if r is not None]) from err
    return rows


def size_label(size):
    """A context size as the table and the progress lines print it: "256 KiB", "1 MiB"."""
    return f"{size // MiB} MiB" if size >= MiB else f"{size // KiB} KiB"


def table(rows):
    head = (f"{'context':>8} {'W':>4} {'L':>4} | {'idle':>5} {'save':>7} {'load':>7} "
            f"{'run':>4} {'serial':>8} {'bound':>8} | {'overlapped':>10} {'bound':>8} "
            f"{'speed-up':>8} | {'source':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        measured = "serial_measured" in r
        ser = r["serial_measured"] if measured else r["serial_model"]
        ser_total = r["serial_total_measured"] if measured else r["serial_total_model"]
        ov_total = r["overlap_total_measured"] if measured else r["overlap_total_model"]
        lines.append(
            f"{size_label(r['size']):>8} {r['width']:>4} {r['latency']:>4} | {ser['idle']:>5} "
            f"{ser['save']:>7} {ser['load']:>7} {ser['run']:>4} {ser_total:>8} "
            f"{r['serial_bound']:>8} | {ov_total:>10} {r['overlap_bound']:>8} "
            f"{ser_total / ov_total:>7.2f}x | {'measured' if measured else 'model':>8}")
    return "\n".join(lines)
