"""Doorbell arbiters with one planted bug each, for showing that the formal harness
(``doorbell_no_loss.py``) catches it. Each overrides one rule of ``DoorbellArbiter``; the
simulation reference (``sim/models/doorbell.py``) catches them too. Test fixtures only."""

from amaranth.hdl import Cat

from rtl.doorbell.arbiter import DoorbellArbiter

__all__ = ["RingLostWhenPicked", "OneWritePerFunction", "EarlierPortWins"]


class RingLostWhenPicked(DoorbellArbiter):
    """A ring landing in the cycle its doorbell's old value is picked is cleared with it: the
    old value goes to the CP and the new one is lost."""

    @staticmethod
    def _next_pending(held, written, picked, returned):
        return ((held | written) & ~picked) | returned


class OneWritePerFunction(DoorbellArbiter):
    """Of several writes for one function in one cycle only the highest port's is recorded,
    even when they ring different doorbells (needs ``doorbell_ports`` >= 2)."""

    @staticmethod
    def _kept(accepted, k):
        ok, fn, _, _ = accepted[k]
        later = [later_ok & (later_fn == fn) for later_ok, later_fn, _, _ in accepted[k + 1:]]
        return ok & ~Cat(*later).any() if later else ok


class EarlierPortWins(DoorbellArbiter):
    """Two writes to one doorbell in one cycle keep the lower port's value, not the later
    one's (needs ``doorbell_ports`` >= 2)."""

    @staticmethod
    def _kept(accepted, k):
        ok, fn, index, _ = accepted[k]
        earlier = [earlier_ok & (earlier_fn == fn) & (earlier_index == index)
                   for earlier_ok, earlier_fn, earlier_index, _ in accepted[:k]]
        return ok & ~Cat(*earlier).any() if earlier else ok
