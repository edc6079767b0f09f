"""The world-switch timing report: a scenario's numbers as a table, JSON and PNG plots.

:func:`summarize` turns a raw run (:func:`sim.system.run.run`) into numbers: per-phase
world-switch cycles (min / median / max, and time at the scenario's clock) next to the
analytic model, GPU share per VF, doorbell latency, latency histograms in the buckets AMD's
host driver uses (:func:`histogram`), the guest work next to a GPU without virtualization
(:func:`guest_work`), blocked violations by kind (what the guests did, next to what the
PF's counters say), mailbox init-access latency, the FB zero fill before each region is
activated (SCRUB_LAST next to the model), and every error the checkers found.
:func:`table` prints it; :func:`plot_timeline`, :func:`plot_histograms` and
:func:`plot_cost` draw the ownership timeline, the histograms and the cost against context
size and width.

A run that measured nothing (no guest request after set-up, no world switch among several
VMs) or gives an impossible figure (a GPU share above 100 %) is not a report:
:func:`summarize` raises :class:`ReportError`, naming what is wrong and what to change.
"""

import json
from bisect import bisect_right
from statistics import median

from rtl.params import KiB, MiB, size_text

from sim.bench.doorbell import jain_index
from sim.models import cost_model
from sim.system.scenario import VIOLATION_KINDS, from_dict

__all__ = ["summarize", "problems", "gpu_share", "ReportError", "table", "write_json",
           "plot_timeline", "plot_cost", "cost_points", "histogram", "hist_edges",
           "serial_work", "guest_work", "plot_histograms"]

PHASES = ("idle", "save", "load", "overlap", "run")
#: Which PF counter counts each kind of violation.
COUNTER_OF = {"fb_outside_slice": "fb_violations", "pf_only_register": "reg_violations",
              "other_vf_doorbell": "xfn_blocked"}


class ReportError(ValueError):
    """The run measured nothing, or a figure it gives is impossible.

    The message is one line: what is wrong and what to change (for example: raise
    ``run_cycles``). :attr:`problems` lists every problem found, the first being the message.
    """

    def __init__(self, problems):
        super().__init__(problems[0])
        self.problems = list(problems)

    def __reduce__(self):                       # whole, across a worker process's pipe
        return type(self), (self.problems,)


#: The doorbell latency percentiles the report gives.
PERCENTILES = (50, 95, 99)


def percentile(values, q):
    """The nearest-rank ``q``-th percentile of ``values`` (the smallest value with at least
    ``q`` % of them at or below it); None for no values."""
    ranked = sorted(values)
    if not ranked:
        return None
    return ranked[max(-(-q * len(ranked) // 100), 1) - 1]


#: Latency histograms in the form AMD's newer host driver keeps them: HIST_BUCKETS
#: buckets, their edges geometric from HIST_FIRST_US to HIST_LAST_US microseconds.
HIST_FIRST_US = 22
HIST_LAST_US = 16_000
HIST_BUCKETS = 32


def hist_edges(first=HIST_FIRST_US, last=HIST_LAST_US, buckets=HIST_BUCKETS):
    """The ``buckets + 1`` edges of the latency histograms, microseconds.

    Edge k is ``first * (last / first) ** (k / buckets)``, k = 0 .. ``buckets``: each edge
    (last / first) ** (1 / buckets) times the one before (1.2286 for 22 us to 16 ms), the
    ends exactly ``first`` and ``last``.
    """
    ratio = last / first
    return [first * ratio ** (k / buckets) for k in range(buckets)] + [float(last)]


def histogram(values, edges=None):
    """Count ``values`` (microseconds) into the buckets between ``edges``.

    Bucket k holds ``edges[k] <= v < edges[k + 1]``; the last bucket is closed at both ends
    (it holds ``v == edges[-1]`` too). A value below ``edges[0]`` is counted in
    ``underflow``, one above ``edges[-1]`` in ``overflow``: every value is counted once,
    none is dropped.

    Parameters
    ----------
    values : iterable of float
        Latencies, microseconds.
    edges : sequence of float, optional
        Increasing bucket edges, microseconds; default :func:`hist_edges`.

    Returns
    -------
    dict
        ``edges_us`` (the edges), ``counts`` (one per bucket), ``underflow``, ``overflow``
        and ``n`` (all the values: ``sum(counts) + underflow + overflow``).
    """
    edges = hist_edges() if edges is None else list(edges)
    counts = [0] * (len(edges) - 1)
    under = over = n = 0
    for v in values:
        n += 1
        if v < edges[0]:
            under += 1
        elif v > edges[-1]:
            over += 1
        else:                   # bisect_right - 1 is the bucket; the last edge closes the last
            counts[min(bisect_right(edges, v) - 1, len(counts) - 1)] += 1
    return {"edges_us": edges, "counts": counts, "underflow": under, "overflow": over, "n": n}


def _histograms(switches, latency, rows, mhz):
    """The report's latency histograms: each world-switch step the table has a row for
    (``rows``), the whole switch as the host sees it (``total``), and doorbell latency
    (``latency``, cycles); cycles are turned into microseconds at ``mhz``."""
    cycles = {p: [s[p] for s in switches] for p in PHASES if p in rows}
    cycles["switch (as the host sees it)"] = [s["total"] for s in switches]
    cycles["doorbell latency"] = latency
    return {name: histogram(c / mhz for c in values) for name, values in cycles.items()}


def _stats(values, mhz):
    if not values:
        return None
    lo, mid, hi = min(values), median(values), max(values)
    return {"min": lo, "median": mid, "max": hi, "n": len(values),
            "us": {"min": lo / mhz, "median": mid / mhz, "max": hi / mhz}}


def gpu_share(raw):
    """Each active VF's share of the cycles after the hypervisor's set-up.

    The cycles a VF owned the GPU (the timeline's ``own`` segments: ``owner_valid`` with
    ``owner`` = the VF, outside a world switch), from ``raw["hv"]["setup_done"]`` on, over
    the cycles from then to the end of the run. A VF's drain phase counts as switching, not
    as owning.

    Parameters
    ----------
    raw : dict
        A raw run, :func:`sim.system.run.run`; reads ``cycles``, ``hv["setup_done"]``,
        ``segments`` and ``guests``.

    Returns
    -------
    dict
        VF (a string, as in ``raw["guests"]``) -> fraction; every fraction 0 when set-up
        never finished or the run ended with it.
    """
    start = raw["hv"].get("setup_done")
    span = raw["cycles"] - start if start is not None else 0
    owned = {vf: 0 for vf in raw["guests"]}
    for begin, end, kind, fn in raw["segments"]:
        if kind == "own" and str(fn) in owned and span > 0:
            owned[str(fn)] += max(0, end - max(begin, start))
    return {vf: n / span if span > 0 else 0.0 for vf, n in owned.items()}


#: What a guest's tally counts as a request to the GPU (doorbells, FB and register
#: accesses, legal or not); the mailbox's init access is set-up, not a request.
REQUESTS = ("doorbells", "fb_reads", "fb_writes", "reg_reads", *VIOLATION_KINDS)
#: Above this a share, or the sum of shares, is impossible (not a rounding error).
FULL_SHARE = 1.0


def problems(raw, share):
    """Why a run is no report: it measured nothing, or a figure is impossible.

    Checked in this order: set-up never finished; no guest made a request after set-up; no
    world switch although several VMs share the GPU; a GPU share above 100 %; shares adding
    up to more than 100 %. Independent of how ``run_cycles`` is counted: it reads
    ``raw["hv"]["setup_done"]`` and the guests' tallies.

    Parameters
    ----------
    raw : dict
        A raw run (:func:`sim.system.run.run`).
    share : dict
        VF -> fraction, :func:`gpu_share` of ``raw``.

    Returns
    -------
    list of str
        One line each, naming what is wrong and what to change; empty for a run that
        measured something.
    """
    sc = from_dict(raw["scenario"])
    cycles, start = raw["cycles"], raw["hv"].get("setup_done")
    out = []
    if start is None:
        return [f"the hypervisor's set-up did not finish in the {cycles} cycles simulated: "
                f"the run measured nothing"]
    requests = sum(g.get("tally", {}).get(kind, 0) for g in raw["guests"].values()
                   for kind in REQUESTS)
    if not requests:
        idle = all(not (w.doorbell_every or w.fb_every or w.reg_every)
                   for w in map(sc.workload_of, range(1, sc.active_vfs + 1)))
        out.append("no VM has work: give a workload a doorbell_every, fb_every or reg_every "
                   "above 0" if idle else
                   f"no guest made a request (doorbell, FB or register access) after set-up, "
                   f"which finished at cycle {start} (run_cycles={sc.run_cycles}): raise "
                   f"run_cycles")
    if sc.active_vfs > 1 and not raw["switches"]:
        out.append(f"no world switch among {sc.active_vfs} VMs in the {cycles - start} "
                   f"cycles after set-up (cycle {start} to {cycles}; time slice "
                   f"{sc.time_slice}): raise run_cycles or lower time_slice")
    over = {vf: x for vf, x in share.items() if x > FULL_SHARE}
    if over:
        vf, x = next(iter(over.items()))
        out.append(f"VF {vf} has a GPU share of {x:.1%}, above 100 %: the ownership timeline "
                   f"(run.json segments) gives it more cycles than the run had after set-up; "
                   f"a bug in the model, not the scenario")
    if sum(share.values()) > FULL_SHARE:
        out.append(f"the GPU shares add up to {sum(share.values()):.1%}, above 100 %: the "
                   f"ownership timeline gives the GPU to two VFs at once; a bug in the model, "
                   f"not the scenario")
    return out


def serial_work(arrivals, work, end):
    """Cycles of work one engine without world switches does before cycle ``end``.

    Each arrival (a cycle) brings ``work`` cycles; the engine takes them first come, first
    served, a cycle of work a cycle, and is never idle while work waits (any such order
    does the same work by ``end``). Work that arrives in cycle c is worked on from c.
    """
    free = done = 0
    for arrival in sorted(arrivals):
        start = max(arrival, free)
        free = start + work
        done += min(max(end - start, 0), work)
    return done


def guest_work(raw, share):
    """The engine's guest work in the run, next to the same doorbells on a GPU without
    virtualization: the efficiency lost to switching.

    Over the cycles from the end of the hypervisor's set-up to the end of the run:

    - done: the engine's busy cycles on guest work (``raw["engine"]["work_done"]``; a
      doorbell brings ``work_per_doorbell`` cycles, worked only while its VF owns the GPU
      and is not being drained);
    - without virtualization: what one engine with no world switches, no drain, save or
      load (:func:`serial_work`) does in the same cycles for the same delivered doorbells,
      each arriving at the cycle it was rung (delivery minus latency; at its delivery
      when the ring is unknown). It never does less than the run: its work arrives no
      later and it never idles while work waits;
    - efficiency = done / without virtualization (1: switching cost no guest work; it may
      still have cost latency), and each as a share of the cycles (``engine``,
      ``engine_unvirtualized``). ``owned`` is the sum of the GPU shares, the most a
      workload that keeps the engine busy could get.

    Parameters
    ----------
    raw : dict
        A raw run (:func:`sim.system.run.run`).
    share : dict
        VF -> fraction, :func:`gpu_share` of ``raw``.

    Returns
    -------
    dict
        ``done``, ``unvirtualized``, ``left`` (work pending at the end), ``cycles`` (after
        set-up), ``doorbells``, ``work_per_doorbell``, ``engine``,
        ``engine_unvirtualized``, ``owned``, ``efficiency``, and ``why``: None, or why
        there is no efficiency (then ``efficiency`` is None).
    """
    sc = from_dict(raw["scenario"])
    engine, start = raw["engine"], raw["hv"].get("setup_done")
    out = dict.fromkeys(("done", "unvirtualized", "left", "cycles", "engine",
                         "engine_unvirtualized", "efficiency"))
    out.update(doorbells=len(raw["deliveries"]), work_per_doorbell=sc.work_per_doorbell,
               owned=sum(share.values()), why=None)
    if "work_done" not in engine:
        return dict(out, why="the run did not record the engine's work (run.json engine "
                             "work_done; a run from before it was recorded)")
    if start is None:
        return dict(out, why="the hypervisor's set-up did not finish")
    arrivals = [d[0] - (d[4] if d[4] is not None else 0) for d in raw["deliveries"]]
    out.update(done=sum(engine["work_done"].values()), left=sum(engine["work_left"].values()),
               unvirtualized=serial_work(arrivals, sc.work_per_doorbell, raw["cycles"]),
               cycles=raw["cycles"] - start)
    if not out["unvirtualized"]:
        return dict(out, why="no doorbell was delivered" if not arrivals else
                    "work_per_doorbell is 0: the doorbells bring no work")
    return dict(out, efficiency=out["done"] / out["unvirtualized"],
                engine=out["done"] / out["cycles"],
                engine_unvirtualized=out["unvirtualized"] / out["cycles"])


def _model(sc, params):
    """The cost model's column of the table for scenario ``sc``, and its note: exact
    cycles, or a range where the engine stops only at preemption points."""
    drain = sc.engine_drain
    model = cost_model.phase_cycles(params, drain)
    if sc.mode == "overlapped":
        gpu = cost_model.gpu_overlapped_phase_cycles(params, drain)
        model = {"idle": gpu["idle"], "overlap": gpu["overlap"],
                 "run": gpu["run"], "switch (hardware)": gpu["switch"]}
        model = {k: ("" if v is None else v) for k, v in model.items()}
        if params.mem_channels > 1:
            note = (f"the save and the load have a channel each: max(SAVE, LOAD) phases; "
                    f"serial: {cost_model.switch_cycles(params, drain)}")
        else:
            two = cost_model.gpu_overlapped_phase_cycles(params.with_(mem_channels=2),
                                                         drain)["switch"]
            note = (f"the save and the load share the one FB channel: 2B + L + 2; with "
                    f"mem_channels = 2 it would be {two}")
    else:
        model["switch (hardware)"] = cost_model.switch_cycles(params, drain)
        note = "exact for a memory that is always ready"
    least, most = cost_model.idle_range(drain, sc.work_per_doorbell, sc.preempt_every)
    if most > least:
        for key in ("idle", "switch (hardware)"):
            if model[key] != "":
                model[key] = f"{model[key]}..{model[key] + most - least}"
        note += (f"; the engine stops at a preemption point every {sc.preempt_every} cycles"
                 if sc.preempt_every else "; the engine stops only at a work item's end")
        note += f", so IDLE takes {least} to {most}"
    return model, note


def summarize(raw, strict=True):
    """The numbers of the report, from a raw run.

    Parameters
    ----------
    raw : dict
        A raw run, :func:`sim.system.run.run`.
    strict : bool
        Whether a run that measured nothing, or an impossible figure, raises (the report);
        if not, the summary's ``problems`` lists them (a sweep, which reports every point).

    Returns
    -------
    dict
        The keys docs/report.md lists under report.json.

    Raises
    ------
    ReportError
        With ``strict``: :func:`problems` found any.
    """
    sc = from_dict(raw["scenario"])
    params = sc.params()
    mhz = sc.clock_mhz
    switches = raw["switches"]
    hw = [sum(s[p] for p in PHASES) for s in switches]
    phases = {p: _stats([s[p] for s in switches], mhz) for p in PHASES
              if any(s[p] for s in switches)}
    phases["switch (hardware)"] = _stats(hw, mhz)
    phases["switch (as the host sees it)"] = _stats([s["total"] for s in switches], mhz)
    model, model_note = _model(sc, params)

    cycles = raw["cycles"]
    share = gpu_share(raw)

    latency = {}
    for vf in raw["guests"]:
        lat = [d[4] for d in raw["deliveries"] if str(d[1]) == vf and d[4] is not None]
        latency[vf] = _stats(lat, mhz)
    all_lat = [d[4] for d in raw["deliveries"] if d[4] is not None]

    counters = raw["hv"]["counters"]
    violations = {}
    for kind in VIOLATION_KINDS:
        made = sum(g["tally"][kind] for g in raw["guests"].values())
        counts = counters[COUNTER_OF[kind]]
        violations[kind] = {"made": made, "counted": sum(counts.values()),
                            "per_vf": {vf: n for vf, n in counts.items() if n}}
    init = {vf: g["init_access"]["ready"] - g["init_access"]["requested"]
            for vf, g in raw["guests"].items() if "init_access" in g}
    errors = [e for g in raw["guests"].values() for e in g.get("errors", [])]
    errors += raw["engine"]["errors"]
    errors += [f"doorbell of VF {fn} index {i} never delivered" for fn, i in raw["undelivered"]]
    for kind, v in violations.items():
        if v["made"] != v["counted"]:
            errors.append(f"{kind}: guests made {v['made']}, the PF counted {v['counted']}")
    found = problems(raw, share)
    if strict and found:
        raise ReportError(found)
    return {
        "scenario": raw["scenario"], "backend": raw["backend"], "cycles": cycles,
        "context": {"bytes": params.ctx_bytes, "beats": params.ctx_beats,
                    "shared_regs": params.shared_regs},
        "time_us": cycles / mhz, "host_requests": raw["requests"],
        "switches": len(switches), "phases": phases, "model": model, "model_note": model_note,
        "gpu_share": share,
        "doorbells": {"delivered": len(raw["deliveries"]), "latency": _stats(all_lat, mhz),
                      "percentiles": {f"p{q}": percentile(all_lat, q) for q in PERCENTILES},
                      "per_vf": latency},
        "fairness": jain_index(share.values()),
        "histograms": _histograms(switches, all_lat, phases, mhz),
        "guest_work": guest_work(raw, share),
        "violations": violations, "init_access_cycles": init,
        "scrub": _scrub(sc, params, counters),
        "hangs": _hangs(raw, mhz),
        "context_checks": raw["engine"]["checked"], "counters": counters,
        "errors": errors, "problems": found,
    }


def _hangs(raw, mhz):
    """The workloads that hung: IDLE_GPU's GFX_HANG, the hypervisor's FLR, and the cycles
    from the IDLE_GPU write to the next VM running (the time the hang cost)."""
    return [dict(h, recovered_us=h["recovered"] / mhz) for h in raw["hv"].get("hangs", [])]


def _scrub(sc, params, counters):
    """The zero fill of the last region the setup activated (the last VF's slice: the
    layout is programmed CSA first, then VF 1 up, before anything is written to FB, so it
    is all clean), next to the model, and what a dirty granule would add."""
    if "scrub_last" not in counters:             # a run from before the counters existed
        return None
    granules = sc.slice_mib(params) * MiB // params.fb_granule
    dirty_cost = cost_model.SCRUB_GRANT + cost_model.scrub_fill_beats(params)
    return {"last": counters["scrub_last"], "region_granules": granules,
            "model": cost_model.scrub_cycles(params, granules),
            "granules_filled": counters["scrub_granules"],
            "granule_bytes": params.fb_granule, "dirty_granule_cycles": dirty_cost,
            "dirty_granule_us": dirty_cost / sc.clock_mhz}


def _fmt(stat, key="median"):
    """A cycle count of ``stat`` for the table: whole, or with the half a median of an even
    count can have; never in exponent form (``:g`` gives 1.51294e+06 past six digits)."""
    if stat is None:
        return "-"
    value = stat[key]
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _channels(sc):
    n = sc.get("mem_channels", 1)      # (runs saved before channels had one)
    return f"{n} FB channel{'s' if n > 1 else ''}"


def _completion(sc):
    """How the hypervisor learnt that each command ended (scenario ``completion``)."""
    if sc.get("completion", "poll") == "interrupt":
        return "commands awaited by interrupt"
    return f"commands polled every {sc['poll_every']} cycles"


def table(s):
    """The summary as terminal text."""
    sc = s["scenario"]
    mhz = sc["clock_mhz"]
    out = [f"Scenario {sc['name']!r}: {sc['active_vfs']} VMs on {sc['num_vfs']} VFs, mode "
           f"{sc['mode']}, context {s['context']['bytes']} bytes ({sc['ctx_words']} x "
           f"{sc['mem_width']}-bit words + {s['context']['shared_regs']} shared registers), "
           f"memory latency {sc['mem_latency']}, {_channels(sc)}, time slice "
           f"{sc['time_slice']} cycles, {_completion(sc)}; {s['backend']}",
           f"{s['cycles']} cycles ({s['time_us']:.1f} us at {mhz:g} MHz), "
           f"{s['host_requests']} host requests, {s['switches']} world switches",
           "",
           f"{'world switch (cycles)':30} {'min':>7} {'median':>7} {'max':>7} {'model':>7}   "
           f"{'us at ' + format(mhz, 'g') + ' MHz: min / median / max'}"]
    for name, stat in s["phases"].items():
        model = s["model"].get(name, "")
        us = " / ".join(f"{stat['us'][k]:.3f}" for k in ("min", "median", "max")) if stat \
            else "-"
        out.append(f"{name:30} {_fmt(stat, 'min'):>7} {_fmt(stat):>7} {_fmt(stat, 'max'):>7} "
                   f"{model!s:>7}   {us}")
    out.append(f"  (model: {s['model_note']})")
    out += ["", f"{'VF':>3} {'GPU share':>9} {'doorbells':>9} {'latency min':>11} "
            f"{'median':>7} {'max':>7} {'init access':>11}"]
    for vf, share in s["gpu_share"].items():
        lat = s["doorbells"]["per_vf"].get(vf)
        out.append(f"{vf:>3} {share:>9.1%} {lat['n'] if lat else 0:>9} "
                   f"{_fmt(lat, 'min'):>11} {_fmt(lat):>7} {_fmt(lat, 'max'):>7} "
                   f"{s['init_access_cycles'].get(vf, '-')!s:>11}")
    pct = s["doorbells"]["percentiles"]
    if all(v is not None for v in pct.values()):
        out.append("doorbell latency " + " / ".join(pct) + ": " +
                   " / ".join(f"{v}" for v in pct.values()) + " cycles (" +
                   " / ".join(f"{v / mhz:.2f}" for v in pct.values()) + " us)")
    out.append(f"Jain's fairness of the GPU shares: {s['fairness']:.3f} (1: all equal, "
               f"1/{len(s['gpu_share'])}: one VM has it all)")
    out += ["", *_histogram_lines(s["histograms"]), "", *_work_lines(s["guest_work"], mhz)]
    out += ["", f"{'blocked violations':22} {'guests made':>11} {'PF counted':>10}  by VF"]
    for kind, v in s["violations"].items():
        per = ", ".join(f"VF {vf}: {n}" for vf, n in v["per_vf"].items()) or "-"
        out.append(f"{kind:22} {v['made']:>11} {v['counted']:>10}  {per}")
    hangs = s.get("hangs", [])
    out += [""] if hangs else []
    for h in hangs:
        out.append(f"hang: VF {h['vf']}'s IDLE_GPU at cycle {h['cycle']} ended {h['status']}; "
                   f"the hypervisor reset it (FLR, INIT) and the next VM ran "
                   f"{h['recovered']} cycles ({h['recovered_us']:.1f} us) after the IDLE_GPU")
    scrub = s.get("scrub")
    if scrub:
        out += ["", f"FB zero fill before activation: last region {scrub['region_granules']} "
                f"granules, SCRUB_LAST {scrub['last']} cycles (model "
                f"{scrub['model']}, clean); dirty granules filled: {scrub['granules_filled']}",
                f"  (model: 2 + 2 per granule + 2, and a zero beat a cycle plus 1 per dirty "
                f"granule: a dirty {size_text(scrub['granule_bytes'])} granule adds "
                f"{scrub['dirty_granule_cycles']} cycles = {scrub['dirty_granule_us']:.1f} us)"]
    out += ["", f"context checks at turn starts: {s['context_checks']}; errors: "
            f"{len(s['errors'])}"]
    out += [f"  ERROR {e}" for e in s["errors"][:10]]
    return "\n".join(out)


#: The bar of a histogram row, from an empty bucket to the row's fullest.
BAR_LEVELS = " .:-=+*#"
#: Times marked on the ruler above the bars, microseconds.
RULER_US = (100, 1000, 10_000)


def _us_text(us):
    return f"{us / 1000:g}ms" if us >= 1000 else f"{us:g}us"


def _bar(counts):
    """A histogram's buckets as one character each, scaled to its fullest bucket."""
    top = len(BAR_LEVELS) - 1
    peak = max(counts, default=0)
    return "".join(BAR_LEVELS[-(-top * c // peak) if c else 0] for c in counts)


def _ruler(edges):
    """A line as wide as the bars, each of :data:`RULER_US` written from its bucket on."""
    line = [" "] * (len(edges) - 1)
    for us in RULER_US:
        counts = histogram([us], edges)["counts"]
        text = _us_text(us)
        if 1 in counts:             # from its bucket on, or ending at the last one
            at = min(counts.index(1), len(line) - len(text))
            if all(c == " " for c in line[max(at - 1, 0):at + len(text)]):
                line[at:at + len(text)] = text
    return "".join(line)


def _histogram_lines(hists):
    """The histograms as text: a row each, the bar between the underflow and overflow."""
    edges = next(iter(hists.values()))["edges_us"]
    first, last = _us_text(edges[0]), _us_text(edges[-1])
    lines = [f"latency histograms: {len(edges) - 1} buckets from {first} to {last}, each "
             f"x{edges[1] / edges[0]:.4f} (report.json histograms); bar: '{BAR_LEVELS[1]}' "
             f"to '{BAR_LEVELS[-1]}' up to a row's fullest bucket",
             f"{'':30} {'n':>5} {'<' + first:>7} |{_ruler(edges)}| {'>' + last}"]
    for name, h in hists.items():
        lines.append(f"{name:30} {h['n']:>5} {h['underflow']:>7} |{_bar(h['counts'])}| "
                     f"{h['overflow']:>{len(last) + 1}}")
    return lines


def _work_lines(w, mhz):
    """The guest work next to the same doorbells without virtualization, as text."""
    if w["efficiency"] is None:
        return [f"guest work next to a GPU without virtualization: not computed: {w['why']}"]
    return [f"guest work after set-up: {w['done']} engine cycles ({w['done'] / mhz:.2f} us; "
            f"{w['doorbells']} doorbells x {w['work_per_doorbell']}), "
            f"{w['engine']:.1%} of the {w['cycles']} cycles; without virtualization "
            f"{w['unvirtualized']} ({w['engine_unvirtualized']:.1%}): efficiency "
            f"{w['efficiency']:.1%}",
            f"  (the guests owned the GPU {w['owned']:.1%} of those cycles: the most a "
            f"workload that keeps the engine busy could get; work left at the end: "
            f"{w['left']} cycles)"]


def write_json(s, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(s, indent=1, sort_keys=False) + "\n")


_COLOURS = {"own": "#4c72b0", "drain": "#dd8452", "save": "#c44e52", "load": "#55a868",
            "run": "#8172b3", "overlap": "#937860", "swap": "#da8bc3", "init": "#8c8c8c"}


#: The shade of the hypervisor's set-up on the timeline.
_SETUP_COLOUR = "#e8e8e8"


def plot_timeline(raw, path):
    """Ownership over time: a row per function; running turns blue, switch phases coloured,
    the hypervisor's set-up (to ``raw["hv"]["setup_done"]``) shaded; cycles below, us on
    top."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    sc = raw["scenario"]
    rows = list(range(1, sc["active_vfs"] + 1))
    fig, ax = plt.subplots(figsize=(11, 0.5 * len(rows) + 1.8))
    for start, end, kind, fn in raw["segments"]:
        if kind == "none" or fn not in rows:
            continue
        ax.broken_barh([(start, end - start)], (fn - 0.4, 0.8),
                       color=_COLOURS.get(kind, "black"), linewidth=0)
    for cycle, vf in raw["hv"]["flrs"]:
        ax.axvline(cycle, color="red", linestyle="--", linewidth=1)
        ax.text(cycle, rows[-1] + 0.6, f"FLR VF {vf}", color="red", fontsize=8)
    setup = raw["hv"].get("setup_done")
    shaded = setup is not None   # before it, no guest traffic: the hypervisor sets up
    if shaded:
        ax.axvspan(0, setup, color=_SETUP_COLOUR, linewidth=0)
    mhz = sc["clock_mhz"]
    ax.set_xlim(0, raw["cycles"])
    ax.set_yticks(rows, [f"VF {r}" for r in rows])
    ax.set_xlabel(f"cycle ({mhz:g} MHz)")
    top = ax.secondary_xaxis("top", functions=(lambda c: c / mhz, lambda us: us * mhz))
    top.set_xlabel("\N{MICRO SIGN}s")
    ax.set_title(f"GPU ownership, scenario {sc['name']!r} ({sc['mode']})")
    ax.set_ylim(0.4, rows[-1] + 1.0)
    used = {k for _, _, k, fn in raw["segments"] if fn in rows}
    handles = [Patch(color=_SETUP_COLOUR, label="hypervisor set-up")] if shaded else []
    ax.legend(handles=handles + [Patch(color=c, label="owns the GPU" if k == "own" else k)
                                 for k, c in _COLOURS.items() if k in used],
              loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=8, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_histograms(s, path):
    """The summary's latency histograms, one panel each on a shared log time axis; the
    underflow and overflow counts written in each panel."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    hists = s["histograms"]
    fig, axes = plt.subplots(len(hists), 1, sharex=True, squeeze=False,
                             figsize=(8, 0.9 * len(hists) + 1.2))
    for ax, (name, h) in zip(axes[:, 0], hists.items()):
        ax.stairs(h["counts"], h["edges_us"], fill=True, color=_COLOURS["own"])
        ax.text(0.01, 0.8, name, transform=ax.transAxes, fontsize=8)
        ax.text(0.99, 0.8, f"below {_us_text(h['edges_us'][0])}: {h['underflow']}, above "
                f"{_us_text(h['edges_us'][-1])}: {h['overflow']}; n = {h['n']}",
                transform=ax.transAxes, ha="right", fontsize=8)
        ax.set_ylim(0, max(h["counts"], default=0) * 1.5 + 1)
        ax.tick_params(labelsize=7)
    edges = next(iter(hists.values()))["edges_us"]
    axes[-1, 0].set_xscale("log")
    axes[-1, 0].set_xlim(edges[0], edges[-1])
    axes[-1, 0].set_xlabel(f"\N{MICRO SIGN}s ({len(edges) - 1} buckets; below the first edge "
                           f"and above the last counted apart)")
    axes[0, 0].set_title(f"Latency histograms, scenario {s['scenario']['name']!r}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: Context sizes the cost plot's model lines run through, bytes: 1 KiB to 1 MiB, doubling.
CURVE_SIZES = tuple(KiB << k for k in range(11))
#: Context sizes simulated for the cost plot (the world-switch block alone), bytes.
MEASURED_SIZES = (1 * KiB, 4 * KiB)
#: Memory widths the cost plot compares with the scenario's, bits.
CURVE_WIDTHS = (64, 128, 256, 512)


def _params_at(base, size, width):
    """``base`` with a context of ``size`` bytes at ``width`` bits (16 shared registers and
    engine state), or None if ``size`` is not a whole number of beats with room for state."""
    at_width = base.with_(mem_width=width)
    beat = width // 8
    words = size // beat - at_width.shared_beats
    if size % beat or words < 1:
        return None
    return at_width.with_(ctx_words=words)


def _model_switch(params, drain, mode):
    """The model's cycles of one world switch in ``mode`` on the whole GPU (None: none)."""
    if mode == "overlapped":
        return cost_model.gpu_overlapped_phase_cycles(params, drain)["switch"]
    return cost_model.switch_cycles(params, drain)


def cost_points(sc, measured_sizes=MEASURED_SIZES, widths=CURVE_WIDTHS):
    """The cost plot's data for scenario ``sc``: the model against context size, and the
    block alone simulated at a few sizes.

    Every line is at the scenario's memory latency, engine drain, reads in flight and mode
    (serial, or overlapped on the whole GPU's FB channels), one per width (``widths`` and
    the scenario's). The simulated points are switches of the world-switch block at the
    scenario's width: serial ones, or overlapped ones where the whole GPU has two FB
    channels or more (the block alone has a port for each mover, so it is the whole GPU
    then); none in overlapped mode on one channel.

    Parameters
    ----------
    sc : Scenario
        The scenario reported.
    measured_sizes : sequence of int
        Context sizes to simulate, bytes.
    widths : sequence of int
        Memory widths to draw model lines for, bits.

    Returns
    -------
    dict
        ``mode``, ``latency``, ``drain``, ``outstanding``, ``width`` (the scenario's),
        ``clock_mhz``; ``curves``: width -> [(bytes, cycles)]; ``measured``:
        [(bytes, width, cycles)].
    """
    from sim.bench.world_switch import point
    base = sc.params()
    drain, latency = sc.engine_drain, sc.mem_latency
    sizes = sorted({*CURVE_SIZES, base.ctx_bytes})
    curves = {}
    for w in sorted({*widths, sc.mem_width}):
        at = ((size, _params_at(base, size, w)) for size in sizes)
        curve = [(size, _model_switch(p, drain, sc.mode)) for size, p in at if p]
        curves[w] = [(size, c) for size, c in curve if c is not None]
    measured = []
    mode = "overlap" if sc.mode == "overlapped" else "serial"
    if mode == "serial" or base.mem_channels > 1:
        for size in measured_sizes:
            row = point(size, sc.mem_width, latency, True, modes=(mode,), drain=drain,
                        outstanding=base.mem_outstanding)
            measured.append((size, sc.mem_width, row[f"{mode}_total_measured"]))
    return {"mode": sc.mode, "latency": latency, "drain": drain,
            "outstanding": base.mem_outstanding, "width": sc.mem_width,
            "clock_mhz": sc.clock_mhz, "curves": curves, "measured": measured}


def plot_cost(points, path, scenario_point=None):
    """World-switch time against context size: a model line per width (the scenario's
    drawn bold), the simulated points on it, and the scenario's measured switch.

    Parameters
    ----------
    points : dict
        :func:`cost_points`.
    path : path-like
        The PNG to write.
    scenario_point : tuple, optional
        (context bytes, cycles) of the scenario's measured median switch (hardware).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    mhz = points["clock_mhz"]
    fig, ax = plt.subplots(figsize=(8, 5))
    for k, (w, curve) in enumerate(sorted(points["curves"].items())):
        ours = w == points["width"]
        colour = f"C{k}"
        ax.plot([c[0] for c in curve], [c[1] / mhz for c in curve], color=colour,
                linewidth=2.5 if ours else 1, alpha=1 if ours else 0.6,
                label=f"model, W = {w}" + (" (this scenario)" if ours else ""))
        got = [(size, c) for size, mw, c in points["measured"] if mw == w]
        if got:
            ax.scatter([g[0] for g in got], [g[1] / mhz for g in got], color=colour, zorder=3,
                       label=f"simulated, world-switch block, W = {w}")
    if scenario_point:
        size, cycles = scenario_point
        ax.scatter([size], [cycles / mhz], marker="*", s=160, color="black", zorder=4,
                   label=f"this scenario, measured ({size_text(size)})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ticks = CURVE_SIZES[::2]
    ax.set_xticks(ticks, [size_text(t) for t in ticks])
    ax.set_xlabel("context size")
    overlapped = points["mode"] == "overlapped"
    ax.set_ylabel(f"{'overlapped' if overlapped else 'serial'} world switch, "
                  f"\N{MICRO SIGN}s at {mhz:g} MHz")
    how = "overlapped, one FB port" if overlapped else "serial"
    ax.set_title(f"World-switch cost, {how}\ndrain {points['drain']}, memory latency "
                 f"{points['latency']}, {points['outstanding']} reads in flight", fontsize=11)
    if not any(points["curves"].values()):
        ax.text(0.5, 0.5, "no model: the read window binds (reads in flight <= latency)",
                transform=ax.transAxes, ha="center")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
