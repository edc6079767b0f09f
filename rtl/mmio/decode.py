"""MMIO register decode with PF-only, per-VF private and owner-shared scopes, and the
PF <-> VF mailboxes.

One table, :func:`mmio_regmap`, describes every register of the register BAR with its scope
and where its value lives; the decoder hardware, the docs page and the drivers' offsets all
come from it.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl.common.counters import saturating_counter
from rtl.common.interfaces import RegBusSignature, Status, ValidSignature, shared_load_layout
from rtl.common.regmap import Access, Field, Register, RegisterFile, RegisterMap, Scope
from rtl.common.violation import violation_record
from rtl.params import FN_WIDTH

__all__ = ["MmioDecode", "mmio_regmap", "MmioViolation", "MAILBOX_WORDS", "MAILBOX_DWORDS",
           "MMIO_ADDR_WIDTH"]

#: Dword address bits of the register BAR as the decoder sees it (the PF's 256 KiB).
MMIO_ADDR_WIDTH = 16
#: Dwords of one mailbox message (TRN_DW0..3, RCV_DW0..3).
MAILBOX_DWORDS = 4
#: Mailbox memory words per VF: TRN_DW0..3 (VF -> PF), then RCV_DW0..3 (PF -> VF).
MAILBOX_WORDS = 2 * MAILBOX_DWORDS

R, RO, RW, RC, W1C = Register, Access.RO, Access.RW, Access.RC, Access.W1C
PRIV, SHARED, PF = Scope.VF_PRIVATE, Scope.OWNER_SHARED, Scope.PF_ONLY


class MmioViolation(enum.Enum, shape=2):
    """Why a VF's register access was refused (VIOL_LAST.KIND)."""
    NONE = 0
    PF_ONLY = 1     #: a VF touched a PF-only register
    NOT_OWNER = 2   #: a VF touched the owner-shared registers while not owning the GPU


def mmio_regmap(params):
    """The register BAR. VF-private at 0x0000, owner-shared at 0x0100, PF-only at 0x1000."""
    n = params.num_vfs
    return RegisterMap("mmio", MMIO_ADDR_WIDTH, [
        # --- per-VF private: always reachable by their own VF (GIM's trap list) -----------
        R("IOV_FUNC_IDENTIFIER", 0x0000, (
            Field("FUNC_ID", 0, FN_WIDTH, RO, "requester's function number"),
            Field("IS_VF", 31, 1, RO, "1 for a VF")),
          "Who am I", scope=PRIV, bank="private"),
        R("CONFIG_MEMSIZE", 0x0001, (
            Field("SIZE_MB", 0, 32, RO, "VF: VF_MEMSIZE[n] as the PF set it; PF: all of FB"),),
          "FB size in MiB", scope=PRIV, bank="private"),
        R("HDP_FLUSH", 0x0002, (
            Field("FLUSH", 0, 1, RC, "write 1: flush request (pulse on hdp_flush[fn])"),),
          "Host data path flush", scope=PRIV, bank="private"),
        R("MAILBOX_TRN_DW", 0x0010, (Field("DATA", 0, 32, RW, "message to the PF"),),
          "Transmit mailbox (VF -> PF), DW0 is the message ID", count=MAILBOX_DWORDS, scope=PRIV,
          bank="private"),
        R("MAILBOX_RCV_DW", 0x0014, (Field("DATA", 0, 32, RO, "message from the PF"),),
          "Receive mailbox (PF -> VF), DW0 is the event ID", count=MAILBOX_DWORDS, scope=PRIV,
          bank="private"),
        R("MAILBOX_CONTROL", 0x0018, (
            Field("TRN_MSG_VALID", 0, 1, RW, "the VF's message is ready; clearing it clears TRN_MSG_ACK"),
            Field("TRN_MSG_ACK", 1, 1, RO, "the PF took the VF's message"),
            Field("RCV_MSG_VALID", 8, 1, RO, "the PF's message is ready"),
            Field("RCV_MSG_ACK", 9, 1, RC, "write 1: the VF took the PF's message")),
          "Mailbox handshake", scope=PRIV, bank="private"),
        R("MAILBOX_INT_CNTL", 0x0019, (
            Field("VALID_INT_EN", 0, 1, RW, "interrupt while RCV_MSG_VALID and not yet acked"),
            Field("ACK_INT_EN", 1, 1, RW, "interrupt while TRN_MSG_ACK and TRN_MSG_VALID")),
          "Mailbox interrupts of this VF", scope=PRIV, bank="private"),
        # --- owner-shared: one physical set of flops ------------------------------------
        R("GFX_STATE", 0x0100, (Field("VALUE", 0, 32, RW, "engine state"),),
          "GPU engine state registers (stand-ins for CP/GFX state): the context the world "
          "switch saves and restores", count=params.shared_regs, scope=SHARED),
        # --- PF-only -----------------------------------------------------------------
        R("GRBM_SOFT_RESET", 0x1000, (Field("VALUE", 0, 32, RW, "reset control"),),
          "Reset control: never reachable from a VF"),
        R("SMC_POWER_CNTL", 0x1001, (Field("VALUE", 0, 32, RW, "power control"),),
          "Power control: never reachable from a VF"),
        R("OWNER", 0x1002, (Field("FN", 0, FN_WIDTH, RO, "function owning the GPU"),
                            Field("VALID", 31, 1, RO, "someone owns it")),
          "Current owner of the shared registers (from the world switch)"),
        R("VIOL_IRQ_CNTL", 0x1003, (Field("EN", 0, 1, RW, "violation_irq while VIOL_LAST.VALID"),),
          "Violation interrupt enable"),
        R("VIOL_LAST", 0x1004, (
            Field("VALID", 0, 1, W1C, "a violation was recorded; write 1 to clear"),
            Field("WRITE", 1, 1, RO, "it was a write"),
            Field("KIND", 4, 2, RO, "1 PF_ONLY, 2 NOT_OWNER"),
            Field("FN", 8, FN_WIDTH, RO, "the VF")),
          "The most recent register violation"),
        R("VIOL_OFFSET", 0x1005, (Field("OFFSET", 0, MMIO_ADDR_WIDTH, RO, "dword offset"),),
          "Its register offset"),
        R("MB_INDEX", 0x1008, (Field("VF", 0, FN_WIDTH, RW, "VF whose mailbox the PF_MB_* window shows"),),
          "PF mailbox window select"),
        R("PF_MB_CONTROL", 0x1009, (
            Field("RCV_VALID", 0, 1, RO, "the VF's message is ready (its TRN_MSG_VALID)"),
            Field("RCV_ACK", 1, 1, RC, "write 1: ack the VF's message (sets its TRN_MSG_ACK)"),
            Field("TRN_VALID", 8, 1, RC, "the PF's message is ready (the VF's RCV_MSG_VALID); "
                  "clearing it clears TRN_ACK"),
            Field("TRN_ACK", 9, 1, RO, "the VF took the PF's message")),
          "Mailbox handshake of VF MB_INDEX", bank="window"),
        R("PF_MB_INT_CNTL", 0x100A, (Field("EN", 0, 1, RW, "pf_mailbox_irq while a message waits"),),
          "PF mailbox interrupt enable"),
        R("PF_MB_PENDING", 0x100B, (Field("VFS", 0, 32, RO, "bit k: VF 32j+k+1 has an unacked message"),),
          "VFs with a message waiting for the PF", count=(n + 31) // 32),
        R("PF_MB_RCV_DW", 0x1010, (Field("DATA", 0, 32, RO, "VF MB_INDEX's TRN_DW"),),
          "Message from VF MB_INDEX", count=MAILBOX_DWORDS, bank="window"),
        R("PF_MB_TRN_DW", 0x1014, (Field("DATA", 0, 32, RW, "VF MB_INDEX's RCV_DW"),),
          "Message to VF MB_INDEX", count=MAILBOX_DWORDS, bank="window"),
        R("VF_MEMSIZE", 0x1100, (Field("SIZE_MB", 0, 32, RW, "what VF n reads in CONFIG_MEMSIZE"),),
          "FB size each VF is told", count=n, first=1),
        R("VIOL_COUNT", 0x1200, (Field("COUNT", 0, params.counter_width, RC,
                                       "refused accesses (saturating); any write clears"),),
          "Register violations per VF", count=n, first=1),
    ])


class MmioDecode(wiring.Component):
    """Register decode for every function, with scopes, violation reporting and mailboxes.

    Requests carry the *requesting* function (0 = PF, n = VF n) and a dword offset into the
    register BAR. Rules:

    - PF-only registers: the PF only. A VF is BLOCKED (write dropped, read 0).
    - Owner-shared registers (GFX_STATE): the PF always; a VF only while ``owner_valid`` and
      ``owner`` names it. Otherwise BLOCKED.
    - VF-private registers: each VF reaches its own bank; the PF reads its own function
      identifier and memory size, and reaches a VF's mailbox through the PF_MB_* window
      (MB_INDEX). A VF can never name another VF's bank: the bank is its function number.
    - Offsets no register occupies, a PF access to a mailbox offset, a window access with
      MB_INDEX not naming a VF, any request from a function number above ``num_vfs``: UR.
    - Every write takes effect on the bytes it enables (mailbox words too).
    - ``flr[n]`` (VF n's function-level reset): VF n's mailbox words read 0 again, its
      handshake and interrupt-enable bits clear, its violation counter clears; the next
      tenant of the VF sees nothing of the last one.

    Every BLOCKED access counts in VIOL_COUNT[n] and is recorded in VIOL_LAST / VIOL_OFFSET
    at the clock edge that samples it, so the PF's next read sees it; ``violation_irq`` is
    high while VIOL_LAST.VALID and VIOL_IRQ_CNTL.EN.

    Mailbox (docs/sources.md#mailbox): the VF writes TRN_DW0..3, sets TRN_MSG_VALID; the PF
    sees the VF in PF_MB_PENDING, selects it in MB_INDEX, reads PF_MB_RCV_DW, writes
    PF_MB_CONTROL.RCV_ACK; the VF sees TRN_MSG_ACK and clears TRN_MSG_VALID (which clears the
    ack). The PF -> VF direction mirrors it: PF_MB_TRN_DW, PF_MB_CONTROL.TRN_VALID, the VF's
    RCV_MSG_VALID and RCV_MSG_ACK, the PF's TRN_ACK. Interrupts: ``vf_mailbox_irq[n]`` and
    ``pf_mailbox_irq``, levels, as the INT_CNTL registers enable.

    Latency: one request per cycle, answered exactly 1 cycle later.

    Attributes
    ----------
    bus : RegBus, in
    owner, owner_valid : in
        The function owning the GPU, from the world switch.
    shared : ArrayLayout(32, shared_regs), out
        The owner-shared flops (the context the world switch saves).
    shared_load : flow of {beat, data}, in
        The world switch restoring them: a memory beat of packed 32-bit registers; it wins
        over a bus write to the same register in that cycle.
    hdp_flush : Signal(num_fns), out
        Pulse when a function writes HDP_FLUSH.FLUSH.
    violation_irq, pf_mailbox_irq : out
    vf_mailbox_irq : Signal(num_fns), out
        Bit n: VF n's mailbox interrupt (bit 0 unused).
    flr : Signal(num_fns), in
        Function-level resets: bit n, VF n's private state returns to reset (see above).
    """

    LATENCY = 1

    def __init__(self, params):
        self.params = params
        self.regmap = mmio_regmap(params)
        self._flop_map = self.regmap.subset("mmio_flops", lambda r: r.bank == "flops")
        self.regs = RegisterFile(params, self._flop_map, permit=self._permit)
        #: The mailbox words, MAILBOX_WORDS per function (bank n: VF n), and a valid bit per
        #: word (0: the word reads 0). Made here so that a formal harness can add a read port
        #: and see every VF's copy.
        self.mailbox = Memory(shape=32, depth=params.num_fns * MAILBOX_WORDS, init=[])
        self.mailbox_valid = Signal(params.num_fns * MAILBOX_WORDS)
        super().__init__({
            "bus": In(RegBusSignature(params, MMIO_ADDR_WIDTH)),
            "owner": In(range(params.num_fns)),
            "owner_valid": In(1),
            "shared": Out(data.ArrayLayout(32, params.shared_regs)),
            "shared_load": In(ValidSignature(shared_load_layout(params))),
            "hdp_flush": Out(params.num_fns),
            "violation_irq": Out(1),
            "pf_mailbox_irq": Out(1),
            "vf_mailbox_irq": Out(params.num_fns),
            "flr": In(params.num_fns),
        })

    def _permit(self, scope, req):
        if scope is Scope.OWNER_SHARED:
            return (req.fn == 0) | Mux(req.write, self._is_owner(req), self._owner_check_read(req))
        return req.fn == 0

    def _is_owner(self, req):
        return self.owner_valid & (req.fn == self.owner)

    def _owner_check_read(self, req):
        """May a VF's read of an owner-shared register see the flops? Only the owner's.

        Its own method (reads and writes ask the same question) so that the formal harness
        ``tests/formal/mmio_scopes.py`` can be shown to catch a read-only lapse (a mutant in
        ``tests/formal/mmio_mutants.py`` overrides it).
        """
        return self._is_owner(req)

    def _mailbox_bank(self, fn, index, index_ok, any_window):
        """The mailbox bank a request reaches: MB_INDEX for the PF's window, else the
        requester's own. (Its own method for the formal mutants, see ``_owner_check_read``.)"""
        return Mux(any_window, index, fn)

    def _hits(self, m, req, bank):
        """{(name, index): hit} for the registers of one bank, in the request's cycle."""
        hits = {}
        for reg, index, offset in self.regmap.instances():
            if reg.bank == bank:
                hit = Signal(name=f"hit_{reg.name.lower()}_{index}")
                m.d.comb += hit.eq(req.valid & (req.payload.addr == offset))
                hits[reg.name, index] = hit
        return hits

    def elaborate(self, platform):
        m = Module()
        p = self.params
        rf = self.regs
        m.submodules.regs = rf
        req = self.bus.req
        rq = req.payload
        # A function number no function has: refused as UR everywhere, before anything else
        # (its bank number would otherwise alias another VF's mailbox).
        bad_fn = rq.fn > p.num_vfs
        priv = self._hits(m, req, "private")
        window = self._hits(m, req, "window")
        r = _Request(req=req, rq=rq, fn=rq.fn, is_vf=rq.fn != 0, bad_fn=bad_fn,
                     priv=priv, window=window,
                     any_priv=Cat(*priv.values()).any() & ~bad_fn,
                     any_window=Cat(*window.values()).any() & ~bad_fn)
        m.d.comb += [rf.bus.req.payload.eq(rq),
                     rf.bus.req.valid.eq(req.valid & ~r.any_priv & ~r.any_window & ~bad_fn)]
        self._violations(m, r)
        memsize = self._owner_and_shared(m)
        hs = _Handshake(p.num_fns)
        rd, read_valid, mem_read = self._mailbox_memory(m, r)
        own = self._own_answer(m, r, hs, memsize, mem_read)
        self._handshake_writes(m, r, hs)
        self._mailbox_irqs(m, hs)

        # --- Merge the answers -----------------------------------------------------------
        rr, resp = rf.bus.resp, self.bus.resp
        own_valid, own_data, own_status, from_mem = own
        m.d.comb += [
            resp.valid.eq(rr.valid | own_valid),
            resp.payload.data.eq(rr.payload.data | own_data |
                                 Mux(from_mem & read_valid, rd.data, 0)),
            resp.payload.status.eq(Mux(own_valid, own_status, rr.payload.status)),
        ]
        return m

    def _violations(self, m, r):
        """VIOL_COUNT, VIOL_LAST / VIOL_OFFSET and ``violation_irq``."""
        p, rf, req, rq, fn = self.params, self.regs, r.req, r.rq, r.fn
        # Judged from the table's scopes, in the request's cycle. (The register file refuses
        # the same requests through the same permit; judging them here too lets the counters
        # and the record change at the edge that samples them.)
        pf_only_hit = Cat(*[req.valid & (rq.addr == off) for reg, _, off in self.regmap.instances()
                            if reg.scope is Scope.PF_ONLY]).any()
        shared_hit = Cat(*[req.valid & (rq.addr == off) for reg, _, off in self.regmap.instances()
                           if reg.scope is Scope.OWNER_SHARED]).any()
        is_owner = self.owner_valid & (fn == self.owner)
        kind = Signal(MmioViolation)
        with m.If(r.bad_fn):
            pass
        with m.Elif(r.is_vf & pf_only_hit):
            m.d.comb += kind.eq(MmioViolation.PF_ONLY)
        with m.Elif(r.is_vf & shared_hit & ~is_owner):
            m.d.comb += kind.eq(MmioViolation.NOT_OWNER)
        violation = kind != MmioViolation.NONE

        for n in range(1, p.num_fns):
            m.d.comb += rf.f("VIOL_COUNT", "COUNT", n).eq(saturating_counter(
                m, p.counter_width, violation & (fn == n) & ~self.flr[n],
                rf.writing("VIOL_COUNT", n) | self.flr[n], name=f"viol_count_{n}"))
        record_layout = data.StructLayout({"write": 1, "kind": MmioViolation, "fn": FN_WIDTH,
                                           "offset": MMIO_ADDR_WIDTH})
        rec, irq = violation_record(
            m, rf, "VIOL_LAST", record_layout,
            [(violation, {"write": rq.write, "kind": kind, "fn": fn, "offset": rq.addr})],
            rf.f("VIOL_IRQ_CNTL", "EN"), name="viol_last")
        m.d.comb += [rf.f("VIOL_LAST", "WRITE").eq(rec.write), rf.f("VIOL_LAST", "KIND").eq(rec.kind),
                     rf.f("VIOL_LAST", "FN").eq(rec.fn), rf.f("VIOL_OFFSET", "OFFSET").eq(rec.offset),
                     self.violation_irq.eq(irq)]

    def _owner_and_shared(self, m):
        """OWNER, the owner-shared flops and their restore; returns the memory size table."""
        p, rf = self.params, self.regs
        m.d.comb += [rf.f("OWNER", "FN").eq(self.owner), rf.f("OWNER", "VALID").eq(self.owner_valid)]
        # A restored context arrives as memory beats (from the world switch's LOAD), 32 bits
        # per register, packed; each beat overwrites the registers it holds.
        per_beat = p.mem_width // 32
        for k in range(p.shared_regs):
            m.d.comb += self.shared[k].eq(rf.f("GFX_STATE", "VALUE", k))
            en, value = rf.load("GFX_STATE", "VALUE", k)
            beat, word = divmod(k, per_beat)
            m.d.comb += [en.eq(self.shared_load.valid & (self.shared_load.payload.beat == beat)),
                         value.eq(self.shared_load.payload.data[32 * word:32 * (word + 1)])]
        return Array([Const(p.fb_size >> 20, 32)] +
                      [rf.f("VF_MEMSIZE", "SIZE_MB", n) for n in range(1, p.num_fns)])

    def _index(self):
        """MB_INDEX and whether it names a VF."""
        index = self.regs.f("MB_INDEX", "VF")
        return index, (index != 0) & (index <= self.params.num_vfs)

    def _mailbox_memory(self, m, r):
        """The mailbox words: data in memory, a valid bit per word in flops.

        Each word has a valid bit: an FLR clears the VF's, so its next tenant reads zeros
        (and a word's first write after it writes zeros to the bytes it leaves out).
        Returns (read port, the word read was valid, the request reads the memory)."""
        p, rq, fn, is_vf, priv, window = self.params, r.rq, r.fn, r.is_vf, r.priv, r.window
        m.submodules.mailbox = mem = self.mailbox
        rd = mem.read_port()
        wr = mem.write_port(granularity=8)
        word_valid = self.mailbox_valid
        index, index_ok = self._index()
        w_mask = Cat(*(b.replicate(8) for b in rq.be))

        # The word a request addresses in the mailbox memory: the requester's own bank for a
        # VF, bank MB_INDEX for the PF's window.
        word = Signal(range(MAILBOX_WORDS))
        bank = Signal(FN_WIDTH)
        for k in range(MAILBOX_DWORDS):
            with m.If(priv.get(("MAILBOX_TRN_DW", k), 0) | window.get(("PF_MB_RCV_DW", k), 0)):
                m.d.comb += word.eq(k)
            with m.If(priv.get(("MAILBOX_RCV_DW", k), 0) | window.get(("PF_MB_TRN_DW", k), 0)):
                m.d.comb += word.eq(MAILBOX_DWORDS + k)
        m.d.comb += bank.eq(self._mailbox_bank(fn, index, index_ok, r.any_window))
        slot = Signal(range(p.num_fns * MAILBOX_WORDS))
        m.d.comb += slot.eq(bank * MAILBOX_WORDS + word)
        was_valid = _bit(word_valid, slot)
        m.d.comb += [rd.addr.eq(slot), rd.en.eq(1), wr.addr.eq(slot), wr.data.eq(rq.data & w_mask)]
        read_valid = Signal()
        m.d.sync += read_valid.eq(was_valid)

        dwords = range(MAILBOX_DWORDS)
        vf_trn_write = Cat(*[priv[("MAILBOX_TRN_DW", k)] for k in dwords]).any()
        pf_trn_write = Cat(*[window[("PF_MB_TRN_DW", k)] for k in dwords]).any()
        mem_read = (Cat(*[priv[(name, k)] for name in ("MAILBOX_TRN_DW", "MAILBOX_RCV_DW")
                          for k in dwords]).any() & is_vf) | \
            (Cat(*[window[(name, k)] for name in ("PF_MB_RCV_DW", "PF_MB_TRN_DW")
                   for k in dwords]).any() & ~is_vf & index_ok)
        mem_write = rq.write & ((vf_trn_write & is_vf) | (pf_trn_write & ~is_vf & index_ok))
        m.d.comb += wr.en.eq(Mux(mem_write, Mux(was_valid, rq.be, 0b1111), 0))
        with m.If(mem_write & (rq.be != 0)):
            m.d.sync += _bit(word_valid, slot).eq(1)
        # An FLR of a VF: its words read 0 again (last, so that it wins over a write).
        for n in range(1, p.num_fns):
            with m.If(self.flr[n]):
                m.d.sync += word_valid[n * MAILBOX_WORDS:(n + 1) * MAILBOX_WORDS].eq(0)
        return rd, read_valid, mem_read

    def _own_answer(self, m, r, hs, memsize, mem_read):
        """The answer of the private and window banks, one cycle later: (valid, data,
        status, from the mailbox memory)."""
        rq, fn, is_vf, priv, window = r.rq, r.fn, r.is_vf, r.priv, r.window
        index, index_ok = self._index()
        own_status = Signal(Status)
        own_data = Signal(32)
        own_valid = Signal()
        from_mem = Signal()
        m.d.sync += [own_valid.eq(r.req.valid & (r.any_priv | r.any_window | r.bad_fn)),
                     own_data.eq(0), from_mem.eq(0), own_status.eq(Status.OK)]
        mailbox_offsets = r.any_priv & ~Cat(priv[("IOV_FUNC_IDENTIFIER", 0)],
                                            priv[("CONFIG_MEMSIZE", 0)], priv[("HDP_FLUSH", 0)]).any()
        with m.If(r.bad_fn):
            m.d.sync += own_status.eq(Status.UR)
        with m.Elif(r.any_window & is_vf):
            m.d.sync += own_status.eq(Status.BLOCKED)
        with m.Elif((r.any_window & ~index_ok) | (mailbox_offsets & ~is_vf)):
            m.d.sync += own_status.eq(Status.UR)
        with m.Elif(~rq.write):
            m.d.sync += from_mem.eq(mem_read)
            with m.If(priv[("IOV_FUNC_IDENTIFIER", 0)]):
                m.d.sync += own_data.eq(Cat(fn, Const(0, 31 - len(fn)), is_vf))
            with m.If(priv[("CONFIG_MEMSIZE", 0)]):
                m.d.sync += own_data.eq(memsize[fn])
            control = self.regmap["MAILBOX_CONTROL"]
            with m.If(priv[("MAILBOX_CONTROL", 0)]):
                m.d.sync += own_data.eq(control.word(
                    TRN_MSG_VALID=_bit(hs.trn_valid, fn), TRN_MSG_ACK=_bit(hs.trn_ack, fn),
                    RCV_MSG_VALID=_bit(hs.rcv_valid, fn), RCV_MSG_ACK=_bit(hs.rcv_ack, fn)))
            with m.If(priv[("MAILBOX_INT_CNTL", 0)]):
                m.d.sync += own_data.eq(self.regmap["MAILBOX_INT_CNTL"].word(
                    VALID_INT_EN=_bit(hs.valid_int_en, fn), ACK_INT_EN=_bit(hs.ack_int_en, fn)))
            with m.If(window[("PF_MB_CONTROL", 0)]):
                m.d.sync += own_data.eq(self.regmap["PF_MB_CONTROL"].word(
                    RCV_VALID=_bit(hs.trn_valid, index), RCV_ACK=_bit(hs.trn_ack, index),
                    TRN_VALID=_bit(hs.rcv_valid, index), TRN_ACK=_bit(hs.rcv_ack, index)))
        return own_valid, own_data, own_status, from_mem

    def _handshake_writes(self, m, r, hs):
        """Writes to the handshake bits and HDP_FLUSH; FLR clears a VF's bits."""
        p, rq, fn, is_vf, priv, window = self.params, r.rq, r.fn, r.is_vf, r.priv, r.window
        index, index_ok = self._index()
        ok_write = r.req.valid & rq.write & ~(r.any_window & is_vf) & ~r.bad_fn

        def write_view(name, field, current):
            """(the write touches this field, its value after the write): see the table."""
            return self.regmap[name].write_view(field, rq.data, rq.be, current)

        # Handshake writes: each field moves only when its byte is enabled.
        with m.If(ok_write & priv[("MAILBOX_CONTROL", 0)] & is_vf):
            wrote, value = write_view("MAILBOX_CONTROL", "TRN_MSG_VALID", _bit(hs.trn_valid, fn))
            with m.If(wrote):
                m.d.sync += _bit(hs.trn_valid, fn).eq(value)
                with m.If(~value):
                    m.d.sync += _bit(hs.trn_ack, fn).eq(0)
            wrote, value = write_view("MAILBOX_CONTROL", "RCV_MSG_ACK", 0)
            with m.If(wrote & value & _bit(hs.rcv_valid, fn)):
                m.d.sync += _bit(hs.rcv_ack, fn).eq(1)
        with m.If(ok_write & priv[("MAILBOX_INT_CNTL", 0)] & is_vf):
            for field, vector in (("VALID_INT_EN", hs.valid_int_en), ("ACK_INT_EN", hs.ack_int_en)):
                wrote, value = write_view("MAILBOX_INT_CNTL", field, _bit(vector, fn))
                with m.If(wrote):
                    m.d.sync += _bit(vector, fn).eq(value)
        with m.If(ok_write & window[("PF_MB_CONTROL", 0)] & ~is_vf & index_ok):
            wrote, value = write_view("PF_MB_CONTROL", "RCV_ACK", 0)
            with m.If(wrote & value & _bit(hs.trn_valid, index)):
                m.d.sync += _bit(hs.trn_ack, index).eq(1)
            wrote, value = write_view("PF_MB_CONTROL", "TRN_VALID", _bit(hs.rcv_valid, index))
            with m.If(wrote):
                m.d.sync += _bit(hs.rcv_valid, index).eq(value)
                with m.If(~value):
                    m.d.sync += _bit(hs.rcv_ack, index).eq(0)
        flush = Signal(p.num_fns)
        m.d.sync += flush.eq(0)
        wrote, value = write_view("HDP_FLUSH", "FLUSH", 0)
        with m.If(ok_write & priv[("HDP_FLUSH", 0)] & wrote & value):
            m.d.sync += _bit(flush, fn).eq(1)
        m.d.comb += self.hdp_flush.eq(flush)

        # An FLR of a VF: its private state is that of a new function (last, so that it
        # wins over a write in the same cycle).
        for n in range(1, p.num_fns):
            with m.If(self.flr[n]):
                m.d.sync += [vector[n].eq(0) for vector in hs.vectors()]

    def _mailbox_irqs(self, m, hs):
        """PF_MB_PENDING, ``pf_mailbox_irq`` and ``vf_mailbox_irq``."""
        p, rf = self.params, self.regs
        pending = Signal(p.num_fns)
        m.d.comb += pending.eq(hs.trn_valid & ~hs.trn_ack)
        for j in range((p.num_vfs + 31) // 32):
            m.d.comb += rf.f("PF_MB_PENDING", "VFS", j).eq(pending[1 + 32 * j:1 + 32 * (j + 1)])
        m.d.comb += [
            self.pf_mailbox_irq.eq(rf.f("PF_MB_INT_CNTL", "EN") & pending[1:].any()),
            self.vf_mailbox_irq.eq(Cat(Const(0, 1), (
                (hs.valid_int_en & hs.rcv_valid & ~hs.rcv_ack) |
                (hs.ack_int_en & hs.trn_valid & hs.trn_ack))[1:])),
        ]


def _bit(vector, at):
    return vector.bit_select(at, 1)


class _Request:
    """What every part of :meth:`MmioDecode.elaborate` knows about the request."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


class _Handshake:
    """The mailbox handshake flops, a bit per function each (bit n: VF n)."""

    NAMES = ("trn_valid", "trn_ack", "rcv_valid", "rcv_ack", "valid_int_en", "ack_int_en")

    def __init__(self, num_fns):
        for name in self.NAMES:
            setattr(self, name, Signal(num_fns, name=name))

    def vectors(self):
        return [getattr(self, name) for name in self.NAMES]
