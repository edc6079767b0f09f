"""The one counter helper: event counters that saturate instead of wrapping, so that a
count the PF reads is never smaller than what happened (up to the limit)."""

from amaranth.hdl import Mux, Signal, Value

__all__ = ["saturating_counter"]


def saturating_counter(m, width, inc, clear=0, name=None):
    """A ``width``-bit counter: each cycle it adds ``inc`` (a bit or a small count), and
    stops at all ones. ``clear`` restarts it from 0 in that cycle, still counting that
    cycle's ``inc`` (an event in the clearing cycle is not lost). Returns the count."""
    count = Signal(width, name=name)
    inc = Value.cast(inc)
    total = Signal(width + max(len(inc), 1), name=None if name is None else f"{name}_next")
    limit = (1 << width) - 1
    m.d.comb += total.eq(Mux(clear, 0, count) + inc)
    m.d.sync += count.eq(Mux(total > limit, limit, total))
    return count
