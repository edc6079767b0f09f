"""Reference model of request routing (docs/sources.md#sr-iov-capability), in plain address arithmetic."""

from rtl.pcie.config_space import bar_specs
from rtl.common.interfaces import Status

__all__ = ["RoutingModel"]


class RoutingModel:
    """State as the config space drives it: pf_rid, BAR bases, NumVFs, enables."""

    def __init__(self, params, pf_rid, pf_bars, vf_bars, num_vfs, vf_enable, vf_mse, pf_mse):
        self.p = params
        self.pf_rid, self.pf_bars, self.vf_bars = pf_rid, pf_bars, vf_bars
        self.num_vfs, self.vf_enable, self.vf_mse, self.pf_mse = num_vfs, vf_enable, vf_mse, pf_mse

    def route_rid(self, rid):
        if rid == self.pf_rid:
            return 0, Status.OK
        d = rid - self.pf_rid - self.p.first_vf_offset
        if self.vf_enable and d >= 0 and d % self.p.vf_stride == 0 and \
                d // self.p.vf_stride < self.num_vfs:
            return d // self.p.vf_stride + 1, Status.OK
        return 0, Status.UR

    def route_addr(self, addr):
        """(fn, bar, offset, status); the PF's BARs first, then the VF BARs, each 0, 2, 5."""
        pf_specs, vf_specs = bar_specs(self.p)
        if self.pf_mse:
            for spec, base in zip(pf_specs, self.pf_bars):
                if base <= addr < base + spec.size:
                    return 0, spec.index, addr - base, Status.OK
        if self.vf_enable and self.vf_mse:
            for spec, base in zip(vf_specs, self.vf_bars):
                if base <= addr < base + self.num_vfs * spec.size:
                    return (addr - base) // spec.size + 1, spec.index, (addr - base) % spec.size, \
                        Status.OK
        return 0, 0, 0, Status.UR
