"""Reference model of the register scopes and the mailbox, from docs/register_decode.md.

Each request is applied atomically, in order, as the hardware does at the clock edge that
samples it. Register offsets come from the table (mmio_regmap): the model decides the rules.
"""

from rtl.common.interfaces import Status
from rtl.mmio.decode import MmioViolation, mmio_regmap
from rtl.common.regmap import Access, Scope

__all__ = ["MmioModel"]


class MmioModel:
    def __init__(self, params):
        self.p = params
        self.regmap = mmio_regmap(params)
        self.values = {}      # (name, index) -> stored word, for the RW flop registers
        self.mailbox = {n: [0] * 8 for n in range(1, params.num_fns)}
        self.ctl = {n: dict(trn_valid=0, trn_ack=0, rcv_valid=0, rcv_ack=0,
                            valid_int_en=0, ack_int_en=0) for n in range(1, params.num_fns)}
        self.counters = {n: 0 for n in range(1, params.num_fns)}
        self.last = None      # (valid, write, kind, fn, offset)
        self.flushes = []

    def flr(self, vf):
        """VF ``vf``'s function-level reset: a new function's mailbox, bits and counter."""
        self.mailbox[vf] = [0] * 8
        self.ctl[vf] = {k: 0 for k in self.ctl[vf]}
        self.counters[vf] = 0

    # --- helpers -----------------------------------------------------------------------
    def _word(self, name, index):
        return self.values.get((name, index), 0)

    def _rw_mask(self, reg):
        return sum(f.mask for f in reg.fields if f.access is Access.RW)

    def pending(self):
        return [n for n, c in self.ctl.items() if c["trn_valid"] and not c["trn_ack"]]

    def irqs(self):
        """(violation_irq, pf_mailbox_irq, vf_mailbox_irq bits)."""
        viol = int(bool(self.last and self.last[0]) and self._word("VIOL_IRQ_CNTL", 0) & 1)
        pf = int(bool(self._word("PF_MB_INT_CNTL", 0) & 1 and self.pending()))
        vf = 0
        for n, c in self.ctl.items():
            if (c["valid_int_en"] and c["rcv_valid"] and not c["rcv_ack"]) or \
                    (c["ack_int_en"] and c["trn_valid"] and c["trn_ack"]):
                vf |= 1 << n
        return viol, pf, vf

    # --- one request -------------------------------------------------------------------
    def access(self, fn, offset, write, data, be, owner):
        """Apply one request; return (status, read data). ``owner`` is None or a function."""
        p = self.p
        if fn > p.num_vfs:
            return Status.UR, 0
        found = self.regmap.find(offset)
        if found is None:
            return Status.UR, 0
        reg, index = found
        mask = sum(0xFF << (8 * i) for i in range(4) if be >> i & 1)
        wdata = data & mask
        # Scope first: a refused request changes nothing but the violation record.
        kind = MmioViolation.NONE
        if fn != 0 and reg.scope is Scope.PF_ONLY:
            kind = MmioViolation.PF_ONLY
        elif fn != 0 and reg.scope is Scope.OWNER_SHARED and owner != fn:
            kind = MmioViolation.NOT_OWNER
        if kind != MmioViolation.NONE:
            if self.counters[fn] < (1 << p.counter_width) - 1:
                self.counters[fn] += 1
            self.last = (1, int(write), kind.value, fn, offset)
            return Status.BLOCKED, 0
        if reg.bank == "flops":
            return self._flops(reg, index, fn, write, wdata, mask, owner)
        if reg.bank == "window":
            bank = self._word("MB_INDEX", 0) & 0x7F
            if not 1 <= bank <= p.num_vfs:
                return Status.UR, 0
            return self._mailbox(reg, index, bank, write, data, be, wdata, mask, pf=True)
        return self._private(reg, index, fn, write, data, be, wdata, mask)

    def _flops(self, reg, index, fn, write, wdata, mask, owner):
        name = reg.name
        if write:
            if name == "VIOL_COUNT":
                self.counters[index] = 0
            elif name == "VIOL_LAST":
                if self.last and wdata & 1:
                    self.last = (0,) + self.last[1:]
            else:
                rw = self._rw_mask(reg) & mask
                self.values[name, index] = (self._word(name, index) & ~rw) | (wdata & rw)
            return Status.OK, 0
        if name == "OWNER":
            return Status.OK, (0 if owner is None else owner) | (owner is not None) << 31
        if name == "VIOL_COUNT":
            return Status.OK, self.counters[index]
        if name == "VIOL_LAST":
            if self.last is None:
                return Status.OK, 0
            valid, w, kind, vf, _ = self.last
            return Status.OK, valid | w << 1 | kind << 4 | vf << 8
        if name == "VIOL_OFFSET":
            return Status.OK, self.last[4] if self.last else 0
        if name == "PF_MB_PENDING":
            bits = sum(1 << (n - 1 - 32 * index) for n in self.pending()
                       if 32 * index < n <= 32 * (index + 1))
            return Status.OK, bits
        return Status.OK, self._word(name, index)

    def _private(self, reg, index, fn, write, data, be, wdata, mask):
        name = reg.name
        if name == "IOV_FUNC_IDENTIFIER":
            return Status.OK, 0 if write else fn | (fn != 0) << 31
        if name == "CONFIG_MEMSIZE":
            if write:
                return Status.OK, 0
            return Status.OK, (self.p.fb_size >> 20) if fn == 0 else self._word("VF_MEMSIZE", fn)
        if name == "HDP_FLUSH":
            if write and wdata & 1:
                self.flushes.append(fn)
            return Status.OK, 0
        if fn == 0:
            return Status.UR, 0          # the PF has no mailbox of its own: it uses the window
        return self._mailbox(reg, index, fn, write, data, be, wdata, mask, pf=False)

    def _mailbox(self, reg, index, vf, write, data, be, wdata, mask, pf):
        c, words = self.ctl[vf], self.mailbox[vf]
        name = reg.name
        if name in ("MAILBOX_TRN_DW", "PF_MB_RCV_DW", "MAILBOX_RCV_DW", "PF_MB_TRN_DW"):
            at = index if name in ("MAILBOX_TRN_DW", "PF_MB_RCV_DW") else 4 + index
            writable = name in ("MAILBOX_TRN_DW", "PF_MB_TRN_DW")
            if write:
                if writable:                 # the bytes it enables; the others stay
                    words[at] = (words[at] & ~mask) | wdata
                return Status.OK, 0
            return Status.OK, words[at]
        control = c["trn_valid"] | c["trn_ack"] << 1 | c["rcv_valid"] << 8 | c["rcv_ack"] << 9
        if name == "MAILBOX_CONTROL":
            if not write:
                return Status.OK, control
            if mask & 1:
                c["trn_valid"] = wdata & 1
                if not wdata & 1:
                    c["trn_ack"] = 0
            if wdata >> 9 & 1 and c["rcv_valid"]:
                c["rcv_ack"] = 1
            return Status.OK, 0
        if name == "MAILBOX_INT_CNTL":
            if not write:
                return Status.OK, c["valid_int_en"] | c["ack_int_en"] << 1
            if mask & 1:
                c["valid_int_en"], c["ack_int_en"] = wdata & 1, wdata >> 1 & 1
            return Status.OK, 0
        assert name == "PF_MB_CONTROL"
        if not write:
            return Status.OK, control
        if wdata >> 1 & 1 and c["trn_valid"]:
            c["trn_ack"] = 1
        if mask >> 8 & 1:
            c["rcv_valid"] = wdata >> 8 & 1
            if not c["rcv_valid"]:
                c["rcv_ack"] = 0
        return Status.OK, 0
