"""Reference model of the FB partition rules, in plain Python and in bytes.

Written from the rules in docs/fb_partition.md, not from the RTL: it works on byte ranges
where the hardware works on granules, and applies the documented priority of refusals.
"""

from dataclasses import dataclass

from rtl.interfaces import FbOrigin, Status, Violation

__all__ = ["FbPartitionModel", "Slice"]


@dataclass
class Slice:
    base: int = 0      # granules
    size: int = 0      # granules
    enable: bool = False


class FbPartitionModel:
    def __init__(self, params):
        self.p = params
        self.slices = {n: Slice() for n in range(1, params.num_fns)}
        self.csa_base = 0
        self.csa_size = 0
        self.counters = [0] * params.num_fns
        self.last = None      # (fn, addr, kind, origin, write)

    # --- configuration ---------------------------------------------------------------
    def csa_range(self):
        g = self.p.fb_granule
        return self.csa_base * g, (self.csa_base + self.csa_size) * g

    # --- one access ----------------------------------------------------------------------
    def check(self, fn, origin, addr):
        """(status, physical address, violation) for one access; no side effects."""
        p, g = self.p, self.p.fb_granule
        csa_lo, csa_hi = self.csa_range()
        if fn > p.num_vfs:
            return self._blocked(Violation.BAD_FUNCTION)
        if origin == FbOrigin.CTX:
            if csa_lo <= addr < csa_hi:
                return Status.OK, addr, Violation.NONE
            return self._blocked(Violation.CTX_OUTSIDE_CSA)
        if origin not in (FbOrigin.HOST, FbOrigin.ENGINE):
            return self._blocked(Violation.OUTSIDE_SLICE)
        if fn == 0:
            if addr < p.fb_size:
                return Status.OK, addr, Violation.NONE
            return self._blocked(Violation.OUTSIDE_SLICE)
        s = self.slices[fn]
        if not s.enable:
            return self._blocked(Violation.NO_SLICE)
        if addr >= s.size * g or (origin == FbOrigin.HOST and addr >= p.vf_fb_aperture):
            return self._blocked(Violation.OUTSIDE_SLICE)
        phys = s.base * g + addr
        if phys >= p.fb_size:
            return self._blocked(Violation.PAST_FB_END)
        if csa_lo <= phys < csa_hi:
            return self._blocked(Violation.CSA)
        return Status.OK, phys, Violation.NONE

    @staticmethod
    def _blocked(kind):
        return Status.BLOCKED, 0, kind

    def record(self, fn, addr, kind, origin, write):
        """Count and remember one violation."""
        index = fn if fn <= self.p.num_vfs else 0
        self.counters[index] = min(self.counters[index] + 1, (1 << self.p.counter_width) - 1)
        self.last = (fn, addr, kind, origin, write)

    # --- layout report ---------------------------------------------------------------
    def regions(self):
        """Region 0 = CSA (enabled when non-empty), n = VF n's slice."""
        yield 0, Slice(self.csa_base, self.csa_size, self.csa_size != 0)
        yield from self.slices.items()

    def layout_status(self):
        """OVERLAP / EMPTY / PAST_END and the first offender, in sweep order (i, then j >= i)."""
        regions = list(self.regions())
        flags = {"OVERLAP": 0, "EMPTY": 0, "PAST_END": 0, "FN_A": 0, "FN_B": 0}
        first = None
        for a_index, (i, a) in enumerate(regions):
            for j, b in regions[a_index:]:
                if i == j:
                    empty = i != 0 and a.enable and a.size == 0
                    past = a.enable and a.base + a.size > self.p.fb_granules
                    flags["EMPTY"] |= empty
                    flags["PAST_END"] |= past
                    hit = (i, 0) if empty or past else None
                else:
                    live = a.enable and b.enable and a.size and b.size
                    overlap = bool(live and a.base < b.base + b.size and b.base < a.base + a.size)
                    flags["OVERLAP"] |= overlap
                    hit = (i, j) if overlap else None
                if hit and first is None:
                    first = hit
        if first:
            flags["FN_A"], flags["FN_B"] = first
        return {k: int(v) for k, v in flags.items()}
