"""The GPU-IOV control path: configuration space steering the world switch."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from rtl.pcie.config_space import ConfigSpace
from rtl.common.interfaces import RegBusSignature
from rtl.world_switch.world_switch import WorldSwitch

__all__ = ["GpuIov"]


class GpuIov(wiring.Component):
    """Configuration space (with the SR-IOV and GPU-IOV capabilities) joined to the world
    switch, as the hypervisor drives them: it writes the GPU-IOV command dword (command,
    EXECUTE, FCN_ID, NXT_FCN_ID) with a configuration write and polls EXECUTE and CMD_STATUS.
    An Initiate FLR written to a VF's Device Control (or VF Enable cleared, for every VF)
    resets that VF in the world switch; NumVFs and VF Enable come from the SR-IOV capability.
    CNTXT is read-only while the world switch depends on the CSA; refused writes of CNTXT
    and of CMD_CONTROL (while a command runs) are counted in the world switch's REFUSED.

    Latency: a configuration request is answered the next cycle; a command reaches the world
    switch the cycle after the write, and EXECUTE reads 0 from the cycle after it ends.

    Attributes
    ----------
    cfg : RegBus, in
        Configuration requests (``fn`` = target function).
    ws_cfg : RegBus, in
        The world switch's PF registers.
    The other ports are the world switch's (see :class:`WorldSwitch`), and configuration
    space's enumeration outputs (``flr``, ``num_vfs``, ``vf_enable``, ``vf_mse``, ``pf_mse``,
    ``pf_bars``, ``vf_bars``), for the rest of the GPU.
    """

    LATENCY = 1
    #: World-switch ports this block wires itself; the others become its own ports.
    _JOINED = ("cfg", "iov_cmd", "iov_done", "iov_status", "num_vfs", "vf_enable", "flr",
               "csa_locked", "execute_refused", "cntxt_refused")
    #: Configuration-space ports passed on for the rest of the GPU (routing, doorbells, the
    #: FB layout the PF programs and what the FB partition made of it).
    _ENUMERATION = ("flr", "num_vfs", "vf_enable", "vf_mse", "pf_mse", "pf_bars", "vf_bars",
                    "vf_fb", "cntxt", "fb_consumed", "cmd_irq")

    def __init__(self, params):
        self.params = params
        self.config = ConfigSpace(params)
        self.ws = WorldSwitch(params)
        self.regmap = self.config.regmap
        members = {"cfg": In(RegBusSignature(params, self.config.regmap.addr_width)),
                   "ws_cfg": In(RegBusSignature(params, self.ws.regmap.addr_width))}
        members.update({name: member for name, member in self.ws.signature.members.items()
                        if name not in self._JOINED})
        members.update({name: member for name, member in self.config.signature.members.items()
                        if name in self._ENUMERATION})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        config, ws = self.config, self.ws
        m.submodules.config = config
        m.submodules.world_switch = ws
        wiring.connect(m, wiring.flipped(self.cfg), config.cfg)
        wiring.connect(m, wiring.flipped(self.ws_cfg), ws.cfg)
        m.d.comb += [
            ws.iov_cmd.valid.eq(config.iov_cmd.valid),
            ws.iov_cmd.payload.eq(config.iov_cmd.payload),
            config.iov_done.eq(ws.iov_done),
            config.iov_status.eq(ws.iov_status),
            ws.num_vfs.eq(config.num_vfs), ws.vf_enable.eq(config.vf_enable),
            ws.flr.eq(config.flr),
            config.csa_locked.eq(ws.csa_locked),
            ws.execute_refused.eq(config.iov_refused),
            ws.cntxt_refused.eq(config.cntxt_refused),
        ]
        for name in self._ENUMERATION:
            ours, theirs = getattr(self, name), getattr(config, name)
            if self.config.signature.members[name].flow == In:
                m.d.comb += theirs.eq(ours)
            else:
                m.d.comb += ours.eq(theirs)
        for name, member in self.ws.signature.members.items():
            if name in self._JOINED:
                continue
            ours, theirs = getattr(self, name), getattr(ws, name)
            if member.is_port:
                if member.flow == In:
                    m.d.comb += theirs.eq(ours)
                else:
                    m.d.comb += ours.eq(theirs)
            else:
                wiring.connect(m, wiring.flipped(ours), theirs)
        return m
