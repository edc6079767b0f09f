"""Doorbells: decode of doorbell writes, and the arbiter that feeds the command processor."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl.common.counters import saturating_counter
from rtl.common.rr import encode, lowest_after, onehot_mux

__all__ = ["DoorbellArbiter", "doorbell_write_layout", "doorbell_event_layout"]


def doorbell_write_layout(params):
    """A write into a function's doorbell BAR: function, dword offset, data."""
    return data.StructLayout({
        "fn": unsigned(params.fn_width),
        "offset": unsigned((params.doorbell_bar_size // 4 - 1).bit_length()),
        "value": unsigned(params.doorbell_value_width),
    })


def doorbell_event_layout(params):
    """A doorbell as the command processor sees it: function, doorbell index, value."""
    return data.StructLayout({
        "fn": unsigned(params.fn_width),
        "index": unsigned(max((params.doorbells_per_fn - 1).bit_length(), 1)),
        "value": unsigned(params.doorbell_value_width),
    })


class DoorbellArbiter(wiring.Component):
    """Takes every doorbell write of every function; feeds the served functions' doorbells to
    the command processor, round robin, and holds everyone else's without losing one.

    Decode: a write to dword ``offset`` of function ``fn``'s doorbell BAR is doorbell
    ``offset`` if ``offset < doorbells_per_fn`` and the function is live (the PF, or VF n
    with VF Enable and n <= NumVFs); anything else is refused: ``ur`` has that port's bit
    set the cycle after, and ``ur_count`` counts it.

    Up to ``doorbell_ports`` writes are taken every cycle, never refused for lack of room:
    each (function, doorbell) keeps its latest value, pending until delivered. The value is a
    ring write pointer, so a later value replacing an earlier one loses nothing; two ports
    writing the same doorbell in one cycle count as arriving in port order. ``has_work[n]``
    is set while function n has a pending doorbell.

    ``serve`` names the functions whose doorbells may go to ``cp`` (valid / ready, one per
    cycle): one-hot, the GPU's owner, during world switching; several for a shared command
    processor. Among the served functions with work the arbiter is round robin, a function
    keeping the CP for up to ``weight[n]`` consecutive doorbells (0 counts as 1); within a
    function it is round robin over its doorbell indices. Values of one doorbell arrive in
    the order they were rung.

    Pipeline: stage 1 chooses the next function (its input includes this cycle's writes);
    stage 2 picks that function's next doorbell, reads its value and moves it to the CP
    port register. Latency: a doorbell rung in cycle t is offered from cycle t + 2 at the
    earliest (``LATENCY``). Throughput: one doorbell per cycle. Wait bound (CP always
    ready): a served function with work is offered a doorbell within 1 + (sum of the other
    served functions' weights) cycles of its previous one, and within that + ``LATENCY`` of
    the ring (or the start of serving) that gave it work; with plain round robin over N busy
    functions, N and N + 2 cycles. Within a function, a pending doorbell waits for at most
    ``doorbells_per_fn`` - 1 of its siblings: with the owner saturating, at most
    ``doorbells_per_fn`` + ``LATENCY`` cycles from its ring.

    ``serve`` and ``flr`` act from the cycle after they change: a doorbell then offered but
    not taken by a function no longer served goes back to pending. ``flr[n]`` (a pulse)
    drops exactly function n's pending doorbells and its writes of that cycle; a doorbell of
    n already offered may still be taken in the FLR's cycle, and is withdrawn after it.

    Attributes
    ----------
    writes : ArrayLayout(doorbell_write_layout, doorbell_ports), in; ``write_valid`` per port
    ur : Signal(doorbell_ports), out
    ur_count : Signal(32), out (saturating)
    serve : Signal(num_fns), in
    weight : ArrayLayout(unsigned(4), num_fns), in
    num_vfs, vf_enable : in
    flr : Signal(num_fns), in
    cp : stream of doorbell_event_layout, out
    has_work : Signal(num_fns), out
    """

    LATENCY = 2
    WEIGHT_WIDTH = 4

    def __init__(self, params):
        self.params = params
        p = params
        idx_bits = max((p.doorbells_per_fn - 1).bit_length(), 1)
        #: Internal state, named here for the formal harness: a bit per (fn, doorbell), the
        #: output register (the doorbell offered to the CP), stage 2's function and the
        #: round-robin pointer.
        self.pending = Signal(p.num_fns * p.doorbells_per_fn)
        self.out_valid = Signal()
        self.out_fn = Signal(p.fn_width)
        self.out_index = Signal(idx_bits)
        self.stage2_fn = Signal(p.num_fns)     # one-hot: the function stage 2 works on
        self.rr_last = Signal(p.num_fns, init=1)   # one-hot: the function chosen last
        #: The value of every (fn, doorbell), at ``fn * doorbells_per_fn + doorbell``. Made
        #: here rather than in ``elaborate`` so that the formal harness can add a read port.
        self.values = Memory(shape=p.doorbell_value_width,
                             depth=p.num_fns * p.doorbells_per_fn, init=[])
        super().__init__({
            "writes": In(data.ArrayLayout(doorbell_write_layout(p), p.doorbell_ports)),
            "write_valid": In(p.doorbell_ports),
            "ur": Out(p.doorbell_ports),
            "ur_count": Out(32),
            "serve": In(p.num_fns),
            "weight": In(data.ArrayLayout(unsigned(self.WEIGHT_WIDTH), p.num_fns)),
            "num_vfs": In(range(p.num_vfs + 1)),
            "vf_enable": In(1),
            "flr": In(p.num_fns),
            "cp": Out(stream.Signature(doorbell_event_layout(p))),
            "has_work": Out(p.num_fns),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        d, n = p.doorbells_per_fn, p.num_fns
        idx_bits = max((d - 1).bit_length(), 1)

        accepted = self._decode(m, idx_bits)
        pending = self.pending
        kept, rd = self._store(m, accepted)

        # --- Two pipeline stages, so that neither search is behind the other in one cycle:
        #     1. choose the next function (weighted round robin from the one chosen last);
        #     2. pick that function's next doorbell (round robin from the index it sent
        #        last), read its value, and move it from pending to the CP port.
        # serve and FLR act one cycle after their inputs change, so every output depends
        # on registers only.
        serve, flr = Signal.like(self.serve), Signal.like(self.flr)
        m.d.sync += [serve.eq(self.serve), flr.eq(self.flr)]
        usable = Signal(n)
        m.d.comb += usable.eq(serve & ~flr & ~self.flr)
        # The function in stage 2 and the one chosen last are kept one-hot: membership is
        # then a bit, not a comparison, and muxes are AND-OR trees.
        sel_valid = Signal()
        sel = self.stage2_fn                        # stage 2's function, one-hot
        last = self.rr_last                         # the function chosen last, one-hot

        # Stage 1. A function is a candidate if it will have a pending doorbell stage 2 has
        # not taken: two or more pending, one and it is not the function in stage 2, or one
        # rung this cycle.
        eligible = Signal(n)
        for f in range(n):
            bits = pending[f * d:(f + 1) * d]
            two = Cat(*[bits[i] & bits[:i].any() for i in range(1, d)]).any()   # 2+ set
            rung = Cat(*[ok & (wf == f) for ok, wf, _, _ in accepted]).any()
            m.d.comb += eligible[f].eq(usable[f] & (two | (bits.any() & ~sel[f]) | rung))
        used = Signal(self.WEIGHT_WIDTH)            # doorbells `last` sent in a row, - 1
        weight = Signal(self.WEIGHT_WIDTH)          # last's weight (0 counts as 1)
        m.d.comb += weight.eq(onehot_mux(last, [self.weight[f] for f in range(n)]))
        stay = Signal()
        m.d.comb += stay.eq((used + 1 < weight) & (eligible & last).any())
        above = Signal(n)                           # functions after `last`, round robin
        m.d.comb += above.eq(Cat(*[last[:f].any() for f in range(n)]))
        chosen = Signal(n)
        m.d.comb += chosen.eq(Mux(stay, last, lowest_after(m, eligible, above, "fns")))

        # Stage 2. Every function's next index is searched in parallel, from its own
        # registers; the chosen function's is muxed out at the end. Each function keeps the
        # indices after the one it sent last as a mask, so the search starts at once.
        after_last = [Signal(d, name=f"after_last_{f}", init=((1 << d) - 1) & ~1)
                      for f in range(n)]
        picks, next_masks = [], []
        for f in range(n):
            if d > 1:
                onehot = lowest_after(m, pending[f * d:(f + 1) * d], after_last[f], f"idx{f}")
                picks.append(encode(onehot))
                next_masks.append(Cat(*[onehot[:i].any() for i in range(d)]))
            else:
                picks.append(Const(0, idx_bits))
                next_masks.append(Const(0, 1))
        pick = Signal(idx_bits)
        sel_fn = Signal(range(n))
        m.d.comb += [pick.eq(onehot_mux(sel, picks)), sel_fn.eq(encode(sel))]
        sel_ok = Signal()
        m.d.comb += sel_ok.eq(sel_valid & (sel & usable & Cat(
            *[pending[f * d:(f + 1) * d].any() for f in range(n)])).any())

        out_valid, out_fn, out_index = self.out_valid, self.out_fn, self.out_index
        cp = self.cp
        withdrawn = out_valid & (~serve.bit_select(out_fn, 1) | flr.bit_select(out_fn, 1))
        take = cp.valid & cp.ready
        advance = sel_ok & (~out_valid | take | withdrawn)
        m.d.comb += [rd.addr.eq(sel_fn * d + pick), rd.en.eq(advance)]
        with m.If(advance):
            m.d.sync += [out_valid.eq(1), out_fn.eq(sel_fn), out_index.eq(pick)]
        with m.Elif(take | withdrawn):
            m.d.sync += out_valid.eq(0)
        for f in range(n):
            with m.If(advance & sel[f]):
                m.d.sync += after_last[f].eq(next_masks[f])

        # Stage 1 loads a new choice whenever stage 2 used, or cannot use, the one it holds.
        # (~sel_ok covers an empty stage 2; with sel_ok, a free CP port means it advanced.)
        with m.If(~sel_ok | ~out_valid | take | withdrawn):       # stage 2 used it, or can't
            m.d.sync += [sel_valid.eq(eligible.any()), sel.eq(chosen)]
            with m.If(eligible.any()):
                m.d.sync += [last.eq(chosen), used.eq(Mux(stay, used + 1, 0))]

        m.d.comb += [cp.valid.eq(out_valid & ~withdrawn),
                     cp.payload.fn.eq(out_fn), cp.payload.index.eq(out_index),
                     cp.payload.value.eq(rd.data)]

        self._update_pending(m, accepted, kept, picked=[advance & sel[f] for f in range(n)],
                             picks=picks, withdrawn=withdrawn, flr=flr)
        return m

    def _decode(self, m, idx_bits):
        """Accept the writes that name a live function's doorbell (not under FLR); answer
        the others UR and count them. Returns, per port, (valid, fn, index, value)."""
        p, d = self.params, self.params.doorbells_per_fn
        accepted = []
        refused = Signal(p.doorbell_ports)
        for k in range(p.doorbell_ports):
            w = self.writes[k]
            live = (w.fn == 0) | (self.vf_enable & (w.fn <= self.num_vfs))
            ok = Signal(name=f"ok_{k}")
            m.d.comb += [ok.eq(self.write_valid[k] & live & (w.offset < d) &
                               ~self.flr.bit_select(w.fn, 1)),
                         refused[k].eq(self.write_valid[k] & ~(live & (w.offset < d)))]
            accepted.append((ok, w.fn, w.offset[:idx_bits], w.value))
        m.d.sync += self.ur.eq(refused)
        m.d.comb += self.ur_count.eq(saturating_counter(
            m, len(self.ur_count), sum(refused[k] for k in range(p.doorbell_ports)), name="ur"))
        return accepted

    def _store(self, m, accepted):
        """The pending table's values, in memory: each write this cycle keeps (see
        :meth:`_kept`) is stored. Returns (kept per port, the read port)."""
        d = self.params.doorbells_per_fn
        m.submodules.values = mem = self.values
        wports = [mem.write_port() for _ in accepted]
        rd = mem.read_port(transparent_for=())   # a same-cycle write is seen next time
        kept = []           # per port: its write is the one this cycle stores
        for k, (_, fn, index, value) in enumerate(accepted):
            kept.append(Signal(name=f"kept_{k}"))
            m.d.comb += [kept[k].eq(self._kept(accepted, k)), wports[k].en.eq(kept[k]),
                         wports[k].addr.eq(fn * d + index), wports[k].data.eq(value)]
        return kept, rd

    def _update_pending(self, m, accepted, kept, *, picked, picks, withdrawn, flr):
        """Pending bits: set by writes, cleared by the pick and by FLR; a withdrawn offer is
        pending again unless its function was reset (``flr``: the registered FLR)."""
        n, d = self.params.num_fns, self.params.doorbells_per_fn
        pending = self.pending
        nxt = Signal(n * d)
        for e in range(n * d):
            f, index = divmod(e, d)
            written = Cat(*[kept[k] & (wf == f) & (i == index)
                            for k, (_, wf, i, _) in enumerate(accepted)]).any()
            taken = picked[f] & (picks[f] == index)
            returned = (withdrawn & (self.out_fn == f) & (self.out_index == index) &
                        ~flr[f] & ~self.flr[f])
            m.d.comb += nxt[e].eq(Mux(self.flr[f], 0,
                                      self._next_pending(pending[e], written, taken, returned)))
        m.d.sync += pending.eq(nxt)
        m.d.comb += self.has_work.eq(Cat(*[pending[f * d:(f + 1) * d].any()
                                           for f in range(n)]))

    # The two rules below are methods so that tests/formal/doorbell_mutants.py can break each
    # one alone and show that the proof notices.

    @staticmethod
    def _kept(accepted, k):
        """Whether port ``k``'s accepted write is stored: yes unless a later port writes
        the same doorbell in the same cycle (the later port wins).

        Parameters
        ----------
        accepted : list of (ok, fn, index, value)
            Every port's decoded write, in port order.
        k : int
            The port.
        """
        ok, fn, index, _ = accepted[k]
        later = [later_ok & (later_fn == fn) & (later_index == index)
                 for later_ok, later_fn, later_index, _ in accepted[k + 1:]]
        return ok & ~Cat(*later).any() if later else ok

    @staticmethod
    def _next_pending(held, written, picked, returned):
        """A doorbell's pending bit for the next cycle, FLR aside.

        A ring in the cycle the doorbell's old value is picked keeps it pending: the read
        port returns the old value (it is not transparent), so the new one is still to send.

        Parameters
        ----------
        held : Value
            Pending now.
        written : Value
            Rung this cycle.
        picked : Value
            Moved to the CP port register this cycle.
        returned : Value
            Its offer was withdrawn this cycle and goes back to pending.
        """
        return written | returned | (held & ~picked)
