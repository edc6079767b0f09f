"""Reference model of the FB partition rules, in plain Python and in bytes.

Written from the rules in docs/fb_partition.md, not from the RTL: it works on byte ranges
where the hardware works on granules, and applies the documented priority of refusals. The
layout rules are judged as properties of the active set the hardware reports (which regions
win depends on when the PF wrote them), then accesses are judged by that set.
"""

from dataclasses import dataclass

from rtl.common.interfaces import FbOrigin, Status, Violation

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
        self.active = set()   # regions accesses are judged by (0 = CSA, n = VF n)


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
        if fn not in self.active:
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

    # --- the layout rules ------------------------------------------------------------------
    def programmed_regions(self):
        """Region 0 = CSA (valid when non-empty), n = VF n's slice, as the PF programmed them."""
        yield 0, Slice(self.csa_base, self.csa_size, self.csa_size != 0)
        yield from self.slices.items()

    def judge_active(self, active_mask, refused_mask):
        """Check the active set the hardware reports against the rules of docs/fb_partition.md,
        whatever order it activated regions in; return a list of broken rules (empty: fine).

        - an active region is programmed, non-empty and within FB;
        - no two active regions overlap;
        - a programmed region is either active or refused, and a refused one is empty, past
          the end of FB, or overlaps an active region (else it should have been activated).
        """
        g = self.p.fb_granules
        regions = dict(self.programmed_regions())
        active = {k for k in regions if active_mask >> k & 1}
        broken = []
        for k in sorted(active):
            r = regions[k]
            if not r.enable or r.size == 0 or r.base + r.size > g:
                broken.append(f"region {k} {r} is active but not a valid region")
        for a in sorted(active):
            for b in sorted(active):
                ra, rb = regions[a], regions[b]
                if a < b and ra.base < rb.base + rb.size and rb.base < ra.base + ra.size:
                    broken.append(f"active regions {a} {ra} and {b} {rb} overlap")
        for k, r in regions.items():
            wanted = r.enable and (k != 0 or r.size)
            refused = bool(refused_mask >> k & 1)
            if not wanted:
                if k in active or refused:
                    broken.append(f"region {k} is not programmed but active or refused")
                continue
            if k in active:
                if refused:
                    broken.append(f"region {k} is both active and refused")
                continue
            if not refused:
                broken.append(f"region {k} {r} is neither active nor refused")
            in_the_way = [j for j in active if regions[j].base < r.base + r.size
                          and r.base < regions[j].base + regions[j].size]
            if r.size and r.base + r.size <= g and not in_the_way:
                broken.append(f"region {k} {r} was refused with nothing in its way")
        return broken

    def adopt(self, active_mask):
        """Judge accesses by the active set from now on (the programmed value of each active
        region; the rest are gone)."""
        self.active = {k for k in range(self.p.num_fns) if active_mask >> k & 1}

    def csa_range(self):
        g = self.p.fb_granule
        if 0 not in self.active:
            return 0, 0
        return self.csa_base * g, (self.csa_base + self.csa_size) * g
