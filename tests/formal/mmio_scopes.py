"""Formal harness: the register scopes of the MMIO decode, for writes and for reads.

All inputs are free: requests (any function, offset, data, byte enables), the owner, the
FLRs, the world switch's restore port (``shared_load``), reset. Asserted:

- every software-writable (RW) flop of a PF-only register changes only after a PF write;
- every owner-shared flop changes only after a write by the PF, by the VF that owned the
  GPU in that cycle, or a world-switch restore beat holding it;
- every access by a VF to an owner-shared register while it does not own the GPU is
  answered BLOCKED with data 0: no flop value leaves on a refused read;
- the mailbox words of one VF, any VF ``a`` and any word (both symbolic): they change only
  by VF ``a``'s own write to its transmit word, the PF's write through the window while
  MB_INDEX names ``a`` (receive word), or ``a``'s FLR, so no other VF ever writes them;
  a read by VF ``a`` of its mailbox word answers OK with ``a``'s copy (and the PF's window
  read of it, too), so no VF reads another's.

A VF's copy of a word is what it reads: the memory word where its valid bit is set, else 0.
The harness sees it through a read port of its own on ``MmioDecode.mailbox``.
"""

from amaranth.asserts import AnyConst
from amaranth.hdl import Assert, Assume, Mux, Signal

from rtl.common.interfaces import Status
from rtl.mmio.decode import MAILBOX_WORDS, MmioDecode
from rtl.common.regmap import Access, Scope
from tests.formal import Harness


class MmioScopeHarness(Harness):
    """The scope rules around an :class:`MmioDecode` (or ``dut_class``, a planted-bug
    subclass from ``mmio_mutants.py``)."""

    def __init__(self, params, dut_class=MmioDecode):
        super().__init__(params, dut_class)

    def properties(self, m, dut, checking):
        p = self.params
        req, resp, load = dut.bus.req, dut.bus.resp, dut.shared_load
        rq = req.payload
        fn = rq.fn
        regmap = dut.regmap
        is_vf = (fn != 0) & (fn <= p.num_vfs)     # a VF that exists (others are UR)
        is_owner = dut.owner_valid & (fn == dut.owner)

        def registered(value, name):
            past = Signal.like(value, name=name)
            m.d.sync += past.eq(value)
            return past

        def at(name, index=None):
            return req.valid & (rq.addr == regmap.offset(name, index))

        # --- Writes to the flops ----------------------------------------------------------
        pf_write = registered(req.valid & rq.write & (fn == 0), "pf_write")
        owner_write = registered(req.valid & rq.write & (fn != 0) & is_owner, "owner_write")
        past_load = registered(load.valid, "past_load")
        past_beat = registered(load.payload.beat, "past_beat")
        per_beat = p.mem_width // 32
        regs = dut.regs
        for reg, index, _ in regs.regmap.instances():
            for f in reg.fields:
                if f.access is not Access.RW:
                    continue
                value = regs.f(reg.name, f.name, index)
                past = registered(value, f"past_{reg.name.lower()}_{index}_{f.name.lower()}")
                allowed = pf_write
                if reg.scope is Scope.OWNER_SHARED:
                    # A restore beat holding this register wins over any bus write.
                    restored = past_load & (past_beat == index // per_beat)
                    allowed = allowed | owner_write | restored
                with m.If(checking & ~allowed):
                    m.d.comb += Assert(value == past)

        # --- Refused answers to a VF that does not own the GPU -------------------------------
        shared_hit = 0
        for reg, index, _ in regmap.instances():
            if reg.scope is Scope.OWNER_SHARED:
                shared_hit = shared_hit | at(reg.name, index)
        refused = registered(shared_hit & is_vf & ~is_owner, "refused")
        with m.If(checking & refused):
            m.d.comb += [Assert(resp.valid), Assert(resp.payload.status == Status.BLOCKED),
                         Assert(resp.payload.data == 0)]

        # --- One VF's mailbox: VF a, word w ----------------------------------------------
        a = Signal(range(p.num_fns), name="a")
        w = Signal(range(MAILBOX_WORDS), name="w")
        m.d.comb += [a.eq(AnyConst(len(a))), w.eq(AnyConst(len(w)))]
        m.d.comb += Assume((a != 0) & (a <= p.num_vfs))
        slot = Signal(range(p.num_fns * MAILBOX_WORDS), name="slot")
        m.d.comb += slot.eq(a * MAILBOX_WORDS + w)
        port = dut.mailbox.read_port(domain="comb")
        copy = Signal(32, name="copy")
        m.d.comb += [port.addr.eq(slot),
                     copy.eq(Mux(dut.mailbox_valid.bit_select(slot, 1), port.data, 0))]
        past_copy = registered(copy, "past_copy")
        # Words 0..3: TRN (VF a writes, the PF reads through PF_MB_RCV_DW); 4..7: RCV.
        own_word = 0          # a request for word w of a's own bank, in VF a's offsets
        window_word = 0       # ... in the PF's window offsets (MB_INDEX naming a)
        entitled = 0          # a request that may write word w of a's bank
        for k in range(4):
            trn = w == k
            rcv = w == 4 + k
            own_word = own_word | (trn & at("MAILBOX_TRN_DW", k)) | (rcv & at("MAILBOX_RCV_DW", k))
            window_word = window_word | (trn & at("PF_MB_RCV_DW", k)) | \
                (rcv & at("PF_MB_TRN_DW", k))
            entitled = entitled | (trn & at("MAILBOX_TRN_DW", k)) | (rcv & at("PF_MB_TRN_DW", k))
        by_a = own_word & (fn == a)
        by_pf = window_word & (fn == 0) & (regs.f("MB_INDEX", "VF") == a)
        changed_ok = registered((entitled & rq.write & ((fn == a) | (fn == 0)) &
                                 (by_a | by_pf)) | dut.flr.bit_select(a, 1), "changed_ok")
        with m.If(checking & ~changed_ok):
            m.d.comb += Assert(copy == past_copy)
        read_a = registered((by_a | by_pf) & ~rq.write, "read_a")
        with m.If(checking & read_a):
            m.d.comb += [Assert(resp.valid), Assert(resp.payload.status == Status.OK),
                         Assert(resp.payload.data == past_copy)]
