"""The test modules, and the one helper they share for a block on its own."""

from amaranth.sim import Simulator


def simulate(dut, bench, *, clock=True):
    """Run the async testbench ``bench`` against ``dut`` in Amaranth's simulator, with a
    clock unless the block is purely combinational (``clock=False``)."""
    sim = Simulator(dut)
    if clock:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
