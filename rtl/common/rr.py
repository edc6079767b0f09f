"""Round-robin building blocks: find the next requester after the last one served, in
logic that maps onto an FPGA's carry chains and LUT trees."""

from amaranth.hdl import Cat, Const, Signal

__all__ = ["lowest_after", "first_after", "encode", "onehot_mux"]


def lowest_after(m, bits, above, name):
    """One-hot: the lowest set bit of ``bits`` where ``above`` is set, else the lowest set
    bit at all (round robin). One carry chain isolates the lowest one of (bits & above,
    bits) side by side; the halves are ORed."""
    n = len(bits)
    both = Signal(2 * n, name=f"{name}_both")
    m.d.comb += both.eq(Cat(bits & above, bits))
    onehot = Signal(2 * n, name=f"{name}_onehot")
    m.d.comb += onehot.eq(both & (~both + 1)[:2 * n])
    return onehot[:n] | onehot[n:]


def encode(onehot):
    """Binary index of a one-hot vector (an OR tree per bit)."""
    n = len(onehot)
    return Cat(*[Cat(*[onehot[i] for i in range(n) if i >> b & 1]).any()
                 for b in range(max((n - 1).bit_length(), 1))])


def onehot_mux(onehot, values):
    """values[i] where onehot[i] is set, 0 if none is: per bit, one OR-reduction of the
    gated inputs, which maps to a balanced LUT tree."""
    width = max(len(v) for v in values)
    return Cat(*[Cat(*[onehot[i] & v[b] for i, v in enumerate(values) if b < len(v)]).any()
                 for b in range(width)])


def first_after(m, bits, last, name):
    """The lowest set bit of ``bits`` above position ``last``, else the lowest set bit at all
    (round robin from ``last`` + 1). Returns (found, binary index)."""
    n = len(bits)
    above = Signal(n, name=f"{name}_above")
    m.d.comb += above.eq(Cat(*[Const(i, range(n + 1)) > last for i in range(n)]))
    return bits.any(), encode(lowest_after(m, bits, above, name))
