"""Routing: which function a PCIe request is for.

Configuration requests name their target by Routing ID; memory requests by address, which
falls in a PF BAR or in one VF's slot of a VF BAR (the SR-IOV rule: VF n's aperture is
VF BARk base + (n - 1) * size). Requests for nothing, or for a function that is not live
(VF n with n > NumVFs, VF Enable = 0 or VF MSE = 0; the PF with Memory Space Enable = 0),
answer UR.
"""

from amaranth.hdl import Const, Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl.pcie.config_space import BAR_INDICES, bar_specs
from rtl.common.interfaces import Status, ValidSignature

__all__ = ["Router", "routed_layout"]

ADDR_WIDTH = 64


def routed_layout(params):
    """A routed request: the function, which BAR (0, 2 or 5), the offset into it, a status."""
    widest = max(b.size for b in bar_specs(params)[0] + bar_specs(params)[1])
    return data.StructLayout({
        "fn": unsigned(params.fn_width),
        "bar": unsigned(3),
        "offset": unsigned((widest - 1).bit_length()),
        "status": Status,
    })


class Router(wiring.Component):
    """Routes configuration requests by Routing ID and memory requests by address.

    Latency: 1 cycle each, one request per cycle on each port. BAR bases and the enumeration
    state come from :class:`~rtl.pcie.config_space.ConfigSpace` (``pf_bars``, ``vf_bars``,
    ``num_vfs``, ``vf_enable``, ``vf_mse``, ``pf_mse``); ``pf_rid`` is the PF's Routing ID
    (its bus and device number, as the host enumerated it).

    Attributes
    ----------
    cfg_in : flow of {rid}, in
    cfg_out : flow of {fn, status}, out
        OK with the function, or UR: no function has that Routing ID.
    mem_in : flow of {addr}, in
    mem_out : flow of routed_layout, out
    """

    LATENCY = 1

    def __init__(self, params):
        self.params = params
        super().__init__({
            "pf_rid": In(16),
            "pf_bars": In(data.ArrayLayout(ADDR_WIDTH, len(BAR_INDICES))),
            "vf_bars": In(data.ArrayLayout(ADDR_WIDTH, len(BAR_INDICES))),
            "num_vfs": In(range(params.num_vfs + 1)),
            "vf_enable": In(1),
            "vf_mse": In(1),
            "pf_mse": In(1),
            "cfg_in": In(ValidSignature(data.StructLayout({"rid": 16}))),
            "cfg_out": Out(ValidSignature(data.StructLayout({
                "fn": unsigned(params.fn_width), "status": Status}))),
            "mem_in": In(ValidSignature(data.StructLayout({"addr": ADDR_WIDTH}))),
            "mem_out": Out(ValidSignature(routed_layout(params))),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params

        # --- Routing ID -> function ------------------------------------------------------
        rid = self.cfg_in.payload.rid
        stride_bits = p.vf_stride.bit_length() - 1
        delta = Signal(17)                              # rid - PF RID - First VF Offset
        m.d.comb += delta.eq(rid - self.pf_rid - p.first_vf_offset)
        vf_index = Signal(17)                           # n - 1
        m.d.comb += vf_index.eq(delta >> stride_bits)
        aligned = (delta[:stride_bits] == 0) if stride_bits else Const(1)
        # delta is 17 bits: a Routing ID below the first VF wraps to >= 2**16 and misses.
        is_vf = aligned & (delta < (1 << 16)) & (vf_index < self.num_vfs) & self.vf_enable
        out = self.cfg_out.payload
        m.d.sync += self.cfg_out.valid.eq(self.cfg_in.valid)
        with m.If(rid == self.pf_rid):
            m.d.sync += [out.fn.eq(0), out.status.eq(Status.OK)]
        with m.Elif(is_vf):
            m.d.sync += [out.fn.eq(vf_index + 1), out.status.eq(Status.OK)]
        with m.Else():
            m.d.sync += [out.fn.eq(0), out.status.eq(Status.UR)]

        # --- Address -> (function, BAR, offset) -------------------------------------------
        addr = self.mem_in.payload.addr
        pf_specs, vf_specs = bar_specs(p)
        res = self.mem_out.payload
        m.d.sync += [self.mem_out.valid.eq(self.mem_in.valid),
                     res.fn.eq(0), res.bar.eq(0), res.offset.eq(0), res.status.eq(Status.UR)]
        vf_live = self.vf_enable & self.vf_mse
        # BARs of one function never overlap once enumerated; should the host program them
        # to overlap, the earlier entry here wins (PF before VFs, BAR0 before BAR2 before 5).
        for k, spec in reversed(list(enumerate(vf_specs))):
            lsb = spec.size.bit_length() - 1
            off = Signal(ADDR_WIDTH + 1, name=f"vf_bar{spec.index}_off")
            m.d.comb += off.eq(addr - self.vf_bars[k])  # bit 64: address below the base
            slot = off[lsb:]
            with m.If(vf_live & (slot < self.num_vfs)):
                m.d.sync += [res.fn.eq(slot + 1), res.bar.eq(spec.index),
                             res.offset.eq(off[:lsb]), res.status.eq(Status.OK)]
        for k, spec in reversed(list(enumerate(pf_specs))):
            lsb = spec.size.bit_length() - 1
            with m.If(self.pf_mse & (addr[lsb:] == self.pf_bars[k][lsb:])):
                m.d.sync += [res.fn.eq(0), res.bar.eq(spec.index),
                             res.offset.eq(addr[:lsb]), res.status.eq(Status.OK)]
        return m
