"""What architects read off the world switch: how long each phase, each whole switch and
each host-driven switch took (last and longest), and how many there were."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl.common.counters import saturating_counter
from rtl.common.interfaces import ValidSignature
from rtl.common.iov_codes import IovCommand, IovStatus, Phase

__all__ = ["PhaseMeter", "HostSwitchMeter", "PhaseMeterSignature", "record_duration",
           "COUNTER_WIDTH"]

#: Every duration and count here is a 32-bit PF register.
COUNTER_WIDTH = 32


def record_duration(m, strobe, cycles, clear, name):
    """A duration's LAST and MAX registers: on ``strobe`` LAST takes ``cycles`` and MAX keeps
    the longest; ``clear`` restarts MAX from 0, counting a duration recorded in that same
    cycle (nothing that happens while the PF clears is lost). Returns (last, max)."""
    last = Signal(COUNTER_WIDTH, name=f"{name}_last")
    mx = Signal(COUNTER_WIDTH, name=f"{name}_max")
    with m.If(clear):
        m.d.sync += mx.eq(0)
    with m.If(strobe):
        with m.If(clear | (cycles > mx)):
            m.d.sync += mx.eq(cycles)
        m.d.sync += last.eq(cycles)
    return last, mx


def PhaseMeterSignature():
    """The sequencer's side of :class:`PhaseMeter`: ``restart`` (the phase count starts from
    0 next cycle), ``restart_switch`` (so does the switch's), ``record`` (bit k: phase k ends
    in this cycle), ``switch_done`` (a switch ends in this cycle); ``count``, the cycles
    spent in the current phase so far, from 0."""
    return wiring.Signature({
        "restart": Out(1), "restart_switch": Out(1), "record": Out(len(Phase)),
        "switch_done": Out(1), "count": In(COUNTER_WIDTH)})


class PhaseMeter(wiring.Component):
    """Cycle counters of the world switch's phases and whole switches.

    A phase recorded in cycle t lasted ``count`` + 1 cycles (its own cycle included); a
    switch recorded in cycle t, as long since the last ``restart_switch`` + 1. Several phases
    may be recorded in one cycle (an overlapped switch's save and load end together).

    Attributes
    ----------
    ctl : PhaseMeterSignature, in
    phase_last, phase_max : ArrayLayout(32, len(Phase)), out
        Per phase: its last duration, and its longest since ``clear_phase_max``.
    switch_last, switch_max, switches : out
        The last and longest whole switch, and how many ended.
    clear_phase_max : len(Phase), in; clear_switch_max, clear_switches : in
        PF writes that clear (what is recorded in the same cycle counts after the clear).

    Latency: the registers show a duration the cycle after it is recorded. Refuses
    nothing; durations wrap at 2**32 cycles (a phase is far shorter), the switch count
    saturates.
    """

    LATENCY = 1

    def __init__(self):
        counters = data.ArrayLayout(COUNTER_WIDTH, len(Phase))
        super().__init__({
            "ctl": In(PhaseMeterSignature()),
            "phase_last": Out(counters), "phase_max": Out(counters),
            "switch_last": Out(COUNTER_WIDTH), "switch_max": Out(COUNTER_WIDTH),
            "switches": Out(COUNTER_WIDTH),
            "clear_phase_max": In(len(Phase)), "clear_switch_max": In(1), "clear_switches": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        ctl = self.ctl
        count = ctl.count
        switch_count = Signal(COUNTER_WIDTH)
        m.d.sync += [count.eq(Mux(ctl.restart, 0, count + 1)),
                     switch_count.eq(Mux(ctl.restart_switch, 0, switch_count + 1))]
        for phase in Phase:
            k = phase.value
            last, mx = record_duration(m, ctl.record[k], count + 1, self.clear_phase_max[k],
                                       f"phase_{k}")
            m.d.comb += [self.phase_last[k].eq(last), self.phase_max[k].eq(mx)]
        last, mx = record_duration(m, ctl.switch_done, switch_count + 1, self.clear_switch_max,
                                   "switch")
        m.d.comb += [self.switch_last.eq(last), self.switch_max.eq(mx),
                     self.switches.eq(saturating_counter(
                         m, COUNTER_WIDTH, ctl.switch_done, self.clear_switches, "switches"))]
        return m


class HostSwitchMeter(wiring.Component):
    """Host-driven switches: IDLE_GPU(A), SAVE_GPU_STATE(A), LOAD_GPU_STATE(B), RUN_GPU(B)
    (GIM's sequence, docs/sources.md#scheduling), each ending COMMAND_DONE, with no other
    command between. Judged as each command ends (``done``, with its final ``status``), so
    every way a command can end (refused, failed, aborted) breaks the sequence. A switch
    lasts from the cycle its IDLE_GPU is taken to its RUN_GPU's end, the host's gaps between
    commands included.

    Attributes
    ----------
    taken : flow of IovCommand, in
        A command leaves the latch for the sequencer (accepted or refused).
    done : in; status : IovStatus, in
        A command ends, and how.
    last, max, count : out
        The last and longest such switch, and how many there were.
    clear_max, clear_count : in
        PF writes that clear (a switch ending in the same cycle counts after the clear).

    Latency: the registers show a switch the cycle after its RUN_GPU ends. Refuses nothing.
    """

    LATENCY = 1
    STEPS = (IovCommand.IDLE_GPU, IovCommand.SAVE_GPU_STATE, IovCommand.LOAD_GPU_STATE,
             IovCommand.RUN_GPU)

    def __init__(self):
        super().__init__({
            "taken": In(ValidSignature(IovCommand)),
            "done": In(1), "status": In(IovStatus),
            "last": Out(COUNTER_WIDTH), "max": Out(COUNTER_WIDTH), "count": Out(COUNTER_WIDTH),
            "clear_max": In(1), "clear_count": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        command = Signal(IovCommand, init=IovCommand.IDLE_GPU)    # the one that runs
        step = Signal(range(len(self.STEPS)))                      # the next one in turn
        cycles = Signal(COUNTER_WIDTH)
        m.d.sync += cycles.eq(cycles + 1)
        with m.If(self.taken.valid):
            m.d.sync += command.eq(self.taken.payload)
            with m.If(self.taken.payload == IovCommand.IDLE_GPU):
                m.d.sync += cycles.eq(0)
        done_ok = self.status == IovStatus.COMMAND_DONE
        complete = Signal()
        with m.If(self.done):
            m.d.sync += step.eq(0)
            for k, expected in enumerate(self.STEPS):
                # IDLE_GPU starts a sequence whatever came before; the others continue one.
                in_turn = done_ok & (command == expected) & ((step == k) if k else 1)
                with m.If(in_turn):
                    if k + 1 < len(self.STEPS):
                        m.d.sync += step.eq(k + 1)
                    else:
                        m.d.comb += complete.eq(1)
        last, mx = record_duration(m, complete, cycles + 1, self.clear_max, "host_switch")
        m.d.comb += [self.last.eq(last), self.max.eq(mx),
                     self.count.eq(saturating_counter(m, COUNTER_WIDTH, complete, self.clear_count,
                                                     "host_switches"))]
        return m
