"""Formal harness: the doorbell arbiter holds the newest value of every doorbell until the CP
takes it, delivers each doorbell's values in ring order, and loses no pending doorbell.

All inputs are free (writes on every port, the served set, weights, NumVFs, VF Enable, FLR, CP
ready, reset). Values are followed for one (function, doorbell) ``e`` picked by a free
constant, so the proof holds for every one. From the write ports and the spec alone the
harness keeps ``e``'s newest value (of several writes in one cycle, the highest port's) and a
flag, "undelivered": set by a write the arbiter must take (a live function, an offset that is
a doorbell, no FLR of the function that cycle); cleared when the CP takes ``e`` with that
value, by an FLR of ``e``'s function, or by reset. Asserted for ``e``:

- while undelivered, the arbiter holds the newest value: ``e`` is pending and the value memory
  holds it, or the output register (the CP port) holds ``e`` with that value. This is the
  safety half of "the newest value reaches the CP unless an FLR drops it": it is never lost,
  overwritten by an older value or another port's. That it is then offered within a bound is
  the wait bound, tested in simulation;
- the CP takes ``e`` only while undelivered, with a value no newer than the newest and newer
  than the value of ``e`` it took last: ring order, each value once, nothing an FLR dropped
  (a doorbell already offered may still be taken in the FLR's own cycle, as documented);
- induction helpers: once ``e`` was written the value memory holds its newest value; ``e``
  pending means undelivered; the output register holding ``e``, no FLR withdrawing it, means
  undelivered and a value the CP may take next, and the older one if ``e`` is also pending;
  the value taken last is not newer than the newest, and older while undelivered.

To compare "newer" the harness assumes that the values written to ``e`` rise (the higher
port's above the lower one's within a cycle). The arbiter only stores, moves and multiplexes
values, never computes with them, so it treats any values the way it treats rising ones (data
independence); rising values make ring order a numeric order, as the unique rising values of
the simulation drivers do for ``sim/models/doorbell.py``.

For every (function, doorbell), on pending bits:

- a pending doorbell stops being pending only by moving into the output register (offered to
  the CP) or by an FLR of its function;
- a doorbell in the output register leaves it only by being taken by the CP, by an FLR of its
  function, or by going back to pending;
- the CP is only offered a doorbell of a function it serves;
- stage 2 of the pick works on at most one function; the round-robin pointer names one.
"""

from amaranth.asserts import AnyConst
from amaranth.hdl import Assert, Assume, Cat, Mux, Signal

from rtl.doorbell.arbiter import DoorbellArbiter
from tests.formal import Harness


class DoorbellNoLossHarness(Harness):
    """The proof's top level: a free environment around one doorbell arbiter.

    Parameters
    ----------
    params : GpuParams
        The arbiter's configuration (keep it small: the proof grows with every bit).
    arbiter : type
        The class to check: ``DoorbellArbiter``, or one of ``tests/formal/doorbell_mutants.py``
        to show that the proof catches its bug.
    """

    def __init__(self, params, arbiter=DoorbellArbiter):
        super().__init__(params, arbiter)

    def properties(self, m, dut, checking):
        p = self.params

        d = p.doorbells_per_fn
        past = {name: Signal.like(getattr(dut, name), name=f"past_{name}")
                for name in ("pending", "out_valid", "out_fn", "out_index", "flr")}
        past_take = Signal()
        serve_r = Signal.like(dut.serve)            # the arbiter acts on last cycle's serve
        m.d.sync += [past[n].eq(getattr(dut, n)) for n in past]
        m.d.sync += [past_take.eq(dut.cp.valid & dut.cp.ready), serve_r.eq(dut.serve)]
        past_flr_r = Signal.like(dut.flr)
        m.d.sync += past_flr_r.eq(past["flr"])      # the arbiter's registered FLR, one back

        # Stage 2 works on one function at a time, and the round-robin pointer names exactly
        # one (invariants that also help the induction).
        sel, last = dut.stage2_fn, dut.rr_last
        with m.If(checking):
            m.d.comb += [Assert((sel & (sel - 1)[:len(sel)]) == 0),
                         Assert(last.any() & ((last & (last - 1)[:len(last)]) == 0))]
        for e in range(p.num_fns * d):
            fn, index = divmod(e, d)
            now_out = dut.out_valid & (dut.out_fn == fn) & (dut.out_index == index)
            with m.If(checking & past["pending"][e] & ~dut.pending[e] & ~past["flr"][fn]):
                m.d.comb += Assert(now_out)
        was_out = past["out_valid"]
        out_e = past["out_fn"] * d + past["out_index"]
        still_out = dut.out_valid & (dut.out_fn == past["out_fn"]) & \
            (dut.out_index == past["out_index"])
        flr_of_out = past["flr"].bit_select(past["out_fn"], 1) | \
            past_flr_r.bit_select(past["out_fn"], 1)
        with m.If(checking & was_out & ~past_take & ~flr_of_out):
            m.d.comb += Assert(still_out | dut.pending.bit_select(out_e, 1))
        with m.If(checking & dut.cp.valid):
            m.d.comb += Assert(serve_r.bit_select(dut.out_fn, 1))

        # --- Values, for one (function, doorbell) e, any of them -------------------------
        e_fn = AnyConst(len(dut.out_fn))
        e_index = AnyConst(len(dut.out_index))
        m.d.comb += Assume((e_fn < p.num_fns) & (e_index < d))
        e_addr = e_fn * d + e_index
        value_width = p.doorbell_value_width

        newest = Signal(value_width)        # e's newest value written (kept once delivered)
        written = Signal()                  # e was written since reset: `newest` means one
        undelivered = Signal()              # the flag: `newest` has yet to be taken by the CP
        last_taken = Signal(value_width)    # the value of e the CP took last
        took = Signal()                     # the CP took e since reset: `last_taken` means one

        # This cycle's writes to e as the spec has them: taken if the function is live, the
        # offset a doorbell and the function not being reset; of several, the highest port's.
        hits = []
        floor_valid, floor = written, newest    # the value the next write to e must exceed
        for k in range(p.doorbell_ports):
            w = dut.writes[k]
            live = (w.fn == 0) | (dut.vf_enable & (w.fn <= dut.num_vfs))
            hit = Signal(name=f"e_rung_{k}")
            m.d.comb += hit.eq(dut.write_valid[k] & live & (w.offset < d) &
                               ~dut.flr.bit_select(w.fn, 1) &
                               (w.fn == e_fn) & (w.offset == e_index))
            # Rising values (see the module docstring): numeric order is ring order.
            with m.If(hit & floor_valid):
                m.d.comb += Assume(w.value > floor)
            floor_valid, floor = floor_valid | hit, Mux(hit, w.value, floor)
            hits.append(hit)
        rung, rung_value = Signal(), Signal(value_width)
        m.d.comb += [rung.eq(Cat(*hits).any()), rung_value.eq(floor)]

        cp = dut.cp
        port_value = cp.payload.value       # the output register's value
        take_e = cp.valid & cp.ready & (cp.payload.fn == e_fn) & (cp.payload.index == e_index)
        with m.If(take_e):
            m.d.sync += [last_taken.eq(port_value), took.eq(1)]
        with m.If(rung):
            m.d.sync += [newest.eq(rung_value), written.eq(1), undelivered.eq(1)]
        with m.Elif(dut.flr.bit_select(e_fn, 1) | (take_e & (port_value == newest))):
            m.d.sync += undelivered.eq(0)

        def in_order(v):
            """v may be the next value of e the CP takes: something is undelivered, v is not
            newer than the newest and is newer than the value taken last."""
            return undelivered & (v <= newest) & (~took | (v > last_taken))

        peek = dut.values.read_port(domain="comb")
        m.d.comb += peek.addr.eq(e_addr)
        pending_e = dut.pending.bit_select(e_addr, 1)
        held_out = dut.out_valid & (dut.out_fn == e_fn) & (dut.out_index == e_index)
        dropping = past["flr"].bit_select(e_fn, 1)     # an FLR withdraws e's offer now
        with m.If(checking):
            m.d.comb += [
                # The newest value is held: pending with the value memory holding it, or in
                # the output register.
                Assert(~undelivered | (pending_e & (peek.data == newest)) |
                       (held_out & (port_value == newest))),
                # The CP takes e in ring order, and only while something is undelivered.
                Assert(~take_e | in_order(port_value)),
                # Induction helpers.
                Assert(~undelivered | written),
                Assert(~written | (peek.data == newest)),
                Assert(~pending_e | undelivered),
                Assert(~(held_out & ~dropping) | in_order(port_value)),
                # Both in the output register and pending: the register has the older value.
                Assert(~(held_out & pending_e) | (port_value < newest)),
                Assert(~took | (written & (last_taken <= newest))),
                Assert(~(undelivered & took) | (last_taken < newest)),
            ]
