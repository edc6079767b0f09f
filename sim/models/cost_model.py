"""Analytic cost of saving and restoring a context: cycles from the parameters alone.

B = context beats = ceil(shared_regs * 32 / W) + ctx_words (W = mem_width bits),
L = memory read latency, O = reads in flight. With a memory port that is always ready:

- SAVE = B + 1: one write per cycle, plus the cycle that fetches the first beat.
- LOAD = B + L when O > L: one read per cycle, the last one answered L cycles later.
  When O <= L the window binds: O reads go out, then the next waits for the first answer,
  so each group of O reads costs L + 1 cycles: LOAD = 1 + g (L + 1) + j + L with
  g, j = divmod(B - 1, O).

These are exact for the RTL (tests assert them) and are the bandwidth bound plus a fixed
overhead: SAVE = ceil(bits/W) + 1, LOAD = ceil(bits/W) + L when enough reads are in flight.

The world switch (rtl/world_switch/world_switch.py) wraps them in phases, each counted by the PF-readable
counters from its first cycle to its last:

- IDLE = D + 1, D = cycles the engine stays busy once told to stop (its drain time);
- SAVE = save_cycles + 3 and LOAD = load_cycles + 3 (set up the CSA address, start the
  mover, see it finish);
- RUN = 1 (ownership changes at its end).

A whole switch (CONTEXT_SWITCH or automatic) is their sum; a host command takes 2 cycles
more than its phases (the cycle EXECUTE is seen, the cycle done is reported).

Overlapped (SCHED.OVERLAP, to another function): after IDLE, the SAVE (live set, port
``mem``) and the LOAD (shadow set, port ``mem_load``) start together; the phase lasts
max(SAVE, LOAD) phases; then the shadow's shared registers are replayed to the live flops,
one beat a cycle (S = ceil(shared_regs * 32 / W) beats), and RUN: RUN phase = S + 1.

On the whole GPU (rtl/top/gpu.py) with one FB channel (``mem_channels`` = 1) both context
movers share it, alternating: the overlapped phase moves 2B beats through it and lasts
2B + L + 2 when more reads may be in flight than L (measured exact; with fewer the window
adds stalls the formula does not count, and :func:`gpu_overlapped_phase_cycles` returns
None for that phase). With two channels or more the save uses channel 0 and the load
channel 1, each always ready, and the phase is the block's: max(SAVE, LOAD) phases.

Handing FB to a new owner (rtl/memory/fb_port.py, Scrubber): before a region is activated, every
granule of it that was written since it was last filled is zero-filled. With the FB port
otherwise idle (no world-switch phase moving a context, no host FB access queued) one
request, as SCRUB_LAST counts it from the cycle it is accepted to the cycle it is done, takes

    SCRUB = 2 + 2 G + D (F + 1) + 2

G = granules in the region, D = those of them dirty, F = fill beats per granule
(fb_granule / (W / 8)): accept and fence (2); look up and judge each granule's dirty bit (2);
per dirty granule one cycle for the port's grant (a register) to turn to the scrubber, then a
zero beat per cycle (F + 1); the look that finds the end and the done cycle (2). A host
access queued ahead adds the cycles until it has left for FB (the fence); host accesses
during the fill share the port with it; a context mover's phase stops it.
"""

__all__ = ["save_cycles", "load_cycles", "bandwidth_bound", "phase_cycles", "idle_range",
           "switch_cycles", "overlapped_phase_cycles", "overlapped_switch_cycles",
           "gpu_overlapped_phase_cycles", "HANDSHAKE_OVERHEAD", "scrub_fill_beats",
           "scrub_cycles", "SCRUB_START", "SCRUB_PER_GRANULE", "SCRUB_GRANT", "SCRUB_END"]

#: Cycles a serial switch spends beyond the drain, 2 x ceil(bits/W) and L (with more reads
#: in flight than L): IDLE 1, SAVE 1 + 3 (first fetch; address, start, finish), LOAD 3, RUN 1.
HANDSHAKE_OVERHEAD = 9

#: Scrubber cycles (rtl/memory/fb_port.py), port otherwise idle: accept + fence,
SCRUB_START = 2
#: look up + judge, for each granule of the region,
SCRUB_PER_GRANULE = 2
#: the port's grant turning to the scrubber, for each dirty granule (then F beats),
SCRUB_GRANT = 1
#: the look that finds the end + done.
SCRUB_END = 2


def save_cycles(params):
    return params.ctx_beats + 1


def load_cycles(params, latency=None):
    latency = params.mem_latency if latency is None else latency
    beats, window = params.ctx_beats, params.mem_outstanding
    if window > latency:
        return beats + latency
    groups, rest = divmod(beats - 1, window)
    return 1 + groups * (latency + 1) + rest + latency


def bandwidth_bound(params):
    """Beats each way if the port moved one beat every cycle: ceil(context bits / W)."""
    bits = params.shared_regs * 32 + params.ctx_words * params.mem_width
    return -(-bits // params.mem_width)


def phase_cycles(params, drain):
    """Cycles of each world-switch phase, as the counters read them (memory always ready)."""
    return {"idle": drain + 1, "save": save_cycles(params) + 3,
            "load": load_cycles(params) + 3, "run": 1}


def idle_range(drain, item, preempt_every):
    """(least, most) cycles of IDLE when the engine stops only at preemption points: every
    ``preempt_every`` cycles of a work item of ``item`` cycles (1: at any cycle, IDLE is
    D + 1; 0: only at an item's end). Told to stop, the running item goes on to its next
    point, at most ``preempt_every`` - 1 cycles (or ``item`` - 1) away, then drains D."""
    least = drain + 1
    if preempt_every == 1 or item <= 1:
        return least, least
    wait = item - 1 if preempt_every == 0 else min(preempt_every, item) - 1
    return least, least + wait


def switch_cycles(params, drain):
    """A whole switch, serial: IDLE + SAVE + LOAD + RUN."""
    return sum(phase_cycles(params, drain).values())


def overlapped_phase_cycles(params, drain):
    """Phase counters of an overlapped switch: SAVE and LOAD both count from the start of
    the overlapped phase; RUN includes the shared-register replay."""
    phases = phase_cycles(params, drain)
    phases["run"] = params.shared_beats + 1
    return phases


def overlapped_switch_cycles(params, drain):
    """A whole overlapped switch: IDLE + max(SAVE, LOAD) + replay + RUN."""
    phases = overlapped_phase_cycles(params, drain)
    return phases["idle"] + max(phases["save"], phases["load"]) + phases["run"]


def gpu_overlapped_phase_cycles(params, drain):
    """Overlapped switch on the whole GPU, as its monitor sees it: idle, the overlapped
    save + load, run (with the shared-register replay), and the whole switch. One FB
    channel: the two movers alternate on it (2B + L + 2; overlap and the whole are None
    when the read window binds, O <= L); two or more: each mover has a channel
    (max(SAVE, LOAD) phases)."""
    beats, latency = params.ctx_beats, params.mem_latency
    if params.mem_channels > 1:
        both = phase_cycles(params, drain)
        overlap = max(both["save"], both["load"])
    else:
        overlap = 2 * beats + latency + 2 if params.mem_outstanding > latency else None
    phases = {"idle": drain + 1, "overlap": overlap, "run": params.shared_beats + 1}
    phases["switch"] = None if overlap is None else sum(phases.values())
    return phases


def scrub_fill_beats(params):
    """Zero beats that fill one granule: F = fb_granule / (W / 8)."""
    return params.fb_granule // (params.mem_width // 8)


def scrub_cycles(params, granules, dirty=0):
    """One scrub request (SCRUB_LAST) for a region of ``granules`` granules, ``dirty`` of
    them written since last filled, on an otherwise idle FB port."""
    if not 0 <= dirty <= granules:
        raise ValueError(f"dirty={dirty} must be within 0..granules={granules}")
    return (SCRUB_START + granules * SCRUB_PER_GRANULE
            + dirty * (SCRUB_GRANT + scrub_fill_beats(params)) + SCRUB_END)
