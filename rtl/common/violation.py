"""The one "last violation" record: the registers that keep the most recent refused access
for the PF and raise an interrupt until it is acknowledged."""

from amaranth.hdl import Cat, Signal

__all__ = ["violation_record"]


def violation_record(m, regs, register, layout, sources, irq_en, name=None):
    """Record the most recent refused access in ``register`` of ``regs`` (a
    :class:`~rtl.common.regmap.RegisterFile`).

    ``register`` has a W1C field ``VALID``: it is set at the clock edge that samples a
    violation and stays set until the PF writes 1 to it (a violation in the clearing cycle
    wins, as the register file's W1C rule says). ``sources`` lists the ways a violation is
    reported, highest priority first, as ``(when, {field: value})``; in a cycle with several,
    the first one is recorded. ``layout`` (a ``StructLayout``) names what is recorded; the
    caller drives the register fields from the returned record.

    Latency: a violation presented in cycle t reads back (record and ``VALID``) from cycle
    t + 1; the interrupt follows ``VALID`` combinationally.

    Returns
    -------
    record : View of ``layout``
        The recorded values (flops; kept until the next violation).
    irq : Value
        ``VALID & irq_en``: the level interrupt.
    """
    record = Signal(layout, name=name)
    for i, (when, values) in enumerate(sources):
        with (m.If if i == 0 else m.Elif)(when):
            m.d.sync += [record[field].eq(value) for field, value in values.items()]
    m.d.comb += regs.set_(register, "VALID").eq(Cat(*(when for when, _ in sources)).any())
    return record, regs.f(register, "VALID") & irq_en
