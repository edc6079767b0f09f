"""MMIO decoders with one planted bug each, for showing that the formal harness
(``mmio_scopes.py``) catches it. Each overrides one hook of ``MmioDecode``. Test fixtures
only."""

from amaranth.hdl import Const, Mux

from rtl.mmio.decode import MmioDecode

__all__ = ["MUTANTS", "ReadsSkipOwnerCheck", "VfReachesWindowBank"]


class ReadsSkipOwnerCheck(MmioDecode):
    """The owner check is dropped for reads only: a VF that does not own the GPU reads the
    owner-shared flops (answered OK with their value); its writes are still refused."""

    def _owner_check_read(self, req):
        return Const(1)


class VfReachesWindowBank(MmioDecode):
    """A VF's mailbox request goes to the bank the PF's window selects (MB_INDEX) whenever
    it names a VF: VF b reads and writes VF a's mailbox words."""

    def _mailbox_bank(self, fn, index, index_ok, any_window):
        return Mux(any_window | index_ok, index, fn)


#: Every planted bug the harness must catch.
MUTANTS = [ReadsSkipOwnerCheck, VfReachesWindowBank]
