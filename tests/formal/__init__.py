"""Formal harnesses and the planted bugs their proofs must catch."""

from amaranth.asserts import AnySeq, Initial
from amaranth.hdl import Assume, Elaboratable, Module, ResetSignal, Value
from amaranth.lib import wiring

__all__ = ["Harness", "assert_counterexample", "free_inputs"]


class Harness(Elaboratable):
    """The frame every proof harness here shares: one block (``dut_class``, the real one or
    a planted-bug subclass) built from ``params``, every input free, the trace from reset.
    A harness writes its assertions in ``properties(m, dut, checking)``."""

    def __init__(self, params, dut_class):
        self.params = params
        self.dut = dut_class(params)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        self.properties(m, self.dut, free_inputs(m, self.dut))
        return m

    def properties(self, m, dut, checking):
        raise NotImplementedError


def free_inputs(m, dut):
    """The one harness set-up: every input port of ``dut`` is a free variable in every cycle
    (what a hostile or buggy neighbour could drive), and the trace starts in reset. Returns
    ``checking``, high once out of reset: where the harness's assertions apply."""
    for _path, member, value in dut.signature.flatten(dut):
        if member.flow == wiring.In:
            value = Value.cast(value)
            m.d.comb += value.eq(AnySeq(len(value)))
    with m.If(Initial()):
        m.d.comb += Assume(ResetSignal())
    return ~Initial() & ~ResetSignal()


def assert_counterexample(result, bug):
    """A BMC run on planted bug ``bug`` (a class) must end with a failed assertion: a trace
    from reset, not merely a run that did not pass."""
    assert not result, f"no counterexample with {bug.__name__}: {bug.__doc__}"
    assert "Assert failed" in result.log, result.log[-2000:]
