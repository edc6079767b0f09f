"""World switches with one planted bug each, for showing that the formal harness
(``world_switch_ownership.py``) catches it from reset. Each overrides one rule of the
command sequencer (``Sequencer``), which ``WorldSwitch.Sequencer`` names. Test fixtures only."""

from amaranth.hdl import Const

from rtl.common.iov_codes import GpuState
from rtl.world_switch.sequencer import Sequencer
from rtl.world_switch.world_switch import WorldSwitch

__all__ = ["MUTANTS", "RunWithoutLoad", "OwnerKeptAfterFlr"]


class RunWithoutLoad(WorldSwitch):
    """RUN_GPU(f) of the function named ``cur`` succeeds whatever the GPU's state: f owns
    the GPU although its context was never loaded (after reset, or after its SAVE)."""

    class Sequencer(Sequencer):
        @staticmethod
        def _context_loaded(state):
            return Const(1)


class OwnerKeptAfterFlr(WorldSwitch):
    """An FLR of the function that owns the GPU (RUNNING) does not take it off: the reset
    function keeps running on its old context."""

    class Sequencer(Sequencer):
        @staticmethod
        def _flr_takes_off(flr, cur, state):
            return (flr.bit_select(cur, 1) & (state != GpuState.EMPTY) &
                    (state != GpuState.RUNNING))


#: Every planted bug the harness must catch.
MUTANTS = [RunWithoutLoad, OwnerKeptAfterFlr]
