"""The hardware scheduler of auto mode: whose turn is next, and when the owner's slice is over."""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl.common.rr import first_after
from rtl.params import TIMER_WIDTH

__all__ = ["AutoScheduler", "SliceSignature"]


def SliceSignature(params):
    """The sequencer's side of :class:`AutoScheduler`: ``tick`` (the owner ran this cycle
    of its slice), ``restart`` (its slice starts again from 0 next cycle); ``next_fn`` and
    ``has_next`` (someone else may run, and who), ``over`` (the owner's slice is over)."""
    return wiring.Signature({
        "tick": Out(1), "restart": Out(1),
        "next_fn": In(range(params.num_fns)), "has_next": In(1), "over": In(1)})


class AutoScheduler(wiring.Component):
    """Round robin over the run list, with time slices.

    A candidate is a function that is on the run list (``on_list``), exists (``live``), has a
    context (``ctx_valid``), is not being reset (``flr``) and, in liquid mode, has a pending
    doorbell (``has_work``). ``next_fn`` is the lowest candidate above ``cur``, else the
    lowest at all; ``has_next`` says it is not ``cur``. Both are registered: the choice is a
    cycle old when used (a candidate that just left is caught by LOAD's own check of its
    context).

    The owner's slice is over once it has run ``slices[cur]`` cycles (counted by ``tick``),
    or, in liquid mode, as soon as it has no pending doorbell and the engine is idle.
    ``slices[cur]`` is registered too (``cur`` changes at the end of a LOAD, at least a cycle
    before its slice starts).

    Attributes
    ----------
    ctl : SliceSignature, in
    cur : in
        The function whose slice runs.
    on_list, live, ctx_valid, flr, has_work : num_fns bits, in
    slices : ArrayLayout(TIMER_WIDTH, num_fns), in
        Each function's time slice, in cycles.
    liquid : in
        Liquid mode (SCHED.LIQUID).
    engine_busy : in

    Latency: ``next_fn`` / ``has_next`` one cycle; ``over`` combinational from the slice
    count (registered) and the inputs. Refuses nothing: a slice of 0 is over at once.
    """

    LATENCY = 1

    def __init__(self, params):
        self.params = params
        n = params.num_fns
        super().__init__({
            "ctl": In(SliceSignature(params)),
            "cur": In(range(n)),
            "on_list": In(n), "live": In(n), "ctx_valid": In(n), "flr": In(n),
            "has_work": In(n),
            "slices": In(data.ArrayLayout(TIMER_WIDTH, n)),
            "liquid": In(1),
            "engine_busy": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.params.num_fns
        ctl, cur = self.ctl, self.cur
        candidates = Signal(n)
        m.d.comb += candidates.eq(self.on_list & self.ctx_valid & self.live & ~self.flr &
                                  Mux(self.liquid, self.has_work, Const((1 << n) - 1, n)))
        any_next, next_comb = first_after(m, candidates, cur, "auto")
        m.d.sync += [ctl.next_fn.eq(next_comb), ctl.has_next.eq(any_next & (next_comb != cur))]
        slice_count = Signal(TIMER_WIDTH)
        with m.If(ctl.restart):
            m.d.sync += slice_count.eq(0)
        with m.Elif(ctl.tick):
            m.d.sync += slice_count.eq(slice_count + 1)
        cur_slice = Signal(TIMER_WIDTH)
        m.d.sync += cur_slice.eq(self.slices[cur])
        m.d.comb += ctl.over.eq(
            (slice_count + 1 >= cur_slice) |
            (self.liquid & ~self.has_work.bit_select(cur, 1) & ~self.engine_busy))
        return m
