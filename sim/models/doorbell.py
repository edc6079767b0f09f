"""Reference rules for the doorbell arbiter, checked on every delivery and at the end.

Not a cycle-by-cycle copy of the arbiter: it records every doorbell rung (values are unique,
so a value names its ring) and judges each value the command processor takes, and, after a
drain, what never came out.
"""

__all__ = ["DoorbellModel"]


class DoorbellModel:
    def __init__(self, params, num_vfs, vf_enable):
        self.p = params
        self.num_vfs, self.vf_enable = num_vfs, vf_enable
        self.rings = {}         # value -> (fn, index, cycle)
        self.last_rung = {}     # (fn, index) -> value of the newest ring
        self.last_taken = {}    # (fn, index) -> value of the newest delivery
        self.flr_at = {}        # fn -> cycle of its latest FLR
        self.urs = 0
        self.delivered = 0
        self.waits = {}         # fn -> cycles between its services while it had work
        self.first_waits = {}   # fn -> cycles from getting work to its first service
        self.outstanding = {}   # fn -> doorbells rung and not yet delivered
        self.waiting_since = {} # fn -> (cycle, "ring" | "service") it has waited since

    def live(self, fn):
        return fn == 0 or (self.vf_enable and fn <= self.num_vfs)

    def ring(self, cycle, fn, offset, value, flr_now):
        """One write; returns True if the arbiter must refuse it (UR)."""
        if not (self.live(fn) and offset < self.p.doorbells_per_fn):
            self.urs += 1
            return True
        if fn in flr_now:
            return False          # dropped with the FLR of the same cycle, not an error
        self.rings[value] = (fn, offset, cycle)
        self.last_rung[fn, offset] = value
        if not self.outstanding.get(fn):
            self.waiting_since[fn] = cycle, "ring"
        self.outstanding.setdefault(fn, set()).add(offset)
        return False

    def flr(self, cycle, fn):
        self.flr_at[fn] = cycle
        for key in [k for k in self.last_rung if k[0] == fn]:
            del self.last_rung[key]
        self.outstanding.pop(fn, None)
        self.waiting_since.pop(fn, None)

    def take(self, cycle, fn, index, value, served):
        """The CP took (fn, index, value) in ``cycle``; ``served`` is the set of functions the
        arbiter served then."""
        assert value in self.rings, f"delivered value {value:#x} was never rung"
        r_fn, r_index, r_cycle = self.rings[value]
        assert (r_fn, r_index) == (fn, index), \
            f"value {value:#x} rung on ({r_fn}, {r_index}) delivered as ({fn}, {index})"
        assert fn in served, f"doorbell of function {fn} delivered while serving {served}"
        before = self.last_taken.get((fn, index))
        assert before is None or value > before, \
            f"({fn}, {index}): value {value:#x} delivered after {before:#x} (order or duplicate)"
        flr = self.flr_at.get(fn)
        assert flr is None or r_cycle > flr or cycle <= flr, \
            f"({fn}, {index}) value rung in cycle {r_cycle} delivered in {cycle} after FLR in {flr}"
        self.last_taken[fn, index] = value
        self.delivered += 1
        if fn in self.waiting_since:
            since, kind = self.waiting_since[fn]
            waits = self.waits if kind == "service" else self.first_waits
            waits.setdefault(fn, []).append(cycle - since)
        if self.last_rung.get((fn, index)) == value:
            self.outstanding[fn].discard(index)
        if self.outstanding.get(fn):
            self.waiting_since[fn] = cycle, "service"
        else:
            self.waiting_since.pop(fn, None)

    def check_nothing_lost(self):
        """After a drain: the newest value of every doorbell (since its FLR) was delivered."""
        for key, value in self.last_rung.items():
            assert self.last_taken.get(key) == value, \
                f"doorbell {key}: newest value {value:#x} never delivered " \
                f"(last delivered {self.last_taken.get(key)})"
