"""The GPU-IOV command interface's codes, shared by the capability (rtl/pcie/config_space.py),
the world switch (rtl/world_switch/), the FB port and the host drivers: commands, statuses,
the GPU's state, phases, sequence steps, function ids, the command layout and the context
save area's unit. No hardware here, so that every side can import it without importing the
others."""

from amaranth.lib import data, enum

__all__ = ["IovCommand", "IovStatus", "GpuState", "Phase", "SeqState", "fcn_id", "CSA_UNIT",
           "CSA_UNIT_LOG2", "iov_command_layout", "FCN_ID_WIDTH", "csa_stride", "csa_bytes"]

#: The context save area base and stride are programmed in 4 KiB units.
CSA_UNIT = 4096
#: log2 of CSA_UNIT: the CSA address is an FB address in CSA_UNIT units.
CSA_UNIT_LOG2 = CSA_UNIT.bit_length() - 1


def csa_stride(params):
    """CSA_UNITs from one function's context to the next (the CSA_STRIDE reset value): one
    context, rounded up."""
    return -(-params.ctx_bytes // CSA_UNIT)


def csa_bytes(params):
    """Bytes of a context save area that holds every function's context at that stride."""
    return params.num_fns * csa_stride(params) * CSA_UNIT


class IovCommand(enum.Enum, shape=4):
    """GPU-IOV commands (docs/sources.md#gpu-iov-commands)."""
    #: No command: GPU-IOV defines no code 0; a port or field at rest holds it, and a host
    #: that writes it is refused (BAD_COMMAND).
    NONE = 0x0
    IDLE_GPU = 0x1
    SAVE_GPU_STATE = 0x2
    LOAD_GPU_STATE = 0x3
    RUN_GPU = 0x4
    CONTEXT_SWITCH = 0x5
    ENABLE_AUTO_HW_SWITCH = 0x6
    INIT_GPU = 0x7
    SAVE_RLCV_STATE = 0x8
    LOAD_RLCV_STATE = 0x9


class IovStatus(enum.Enum, shape=8):
    """CMD_STATUS codes. 0x00..0x15 are GPU-IOV's; GIM defines no error codes
    (docs/sources.md#gpu-iov-commands), so the
    0xEx codes are this model's, for commands it refuses."""
    COMMAND_DONE = 0x00
    GFX_HANG = 0x0E
    SDMA_HANG = 0x0F
    IDLING = 0x11
    SAVING = 0x12
    LOADING = 0x13
    ENABLING = 0x14
    INITING = 0x15
    #: The command is not legal in the GPU's state (LOAD while running, RUN of a function
    #: that is not loaded, LOAD of a context never saved or initialized, ...).
    ILLEGAL_STATE = 0xE1
    #: FCN_ID or NXT_FCN_ID names no live function (out of range, or VF not enabled).
    BAD_FUNCTION = 0xE2
    #: A command code the model does not implement (0, SAVE/LOAD_RLCV_STATE, 0xA..0xF).
    BAD_COMMAND = 0xE3
    #: A function-level reset of the function the command was moving cut it short.
    FLR_ABORTED = 0xE4
    #: SAVE, LOAD, INIT, CONTEXT_SWITCH or ENABLE_AUTO_HW_SWITCH without a context save area
    #: in FB that holds every function's context (CNTXT unset, SIZE too small, LOC = 1: a
    #: system-memory CSA is not modelled, or not yet active in the FB partition unit).
    NO_CSA = 0xE5
    #: A context mover's access fell outside the active CSA and was stopped at the FB port
    #: (cannot happen while CNTXT is locked; a guard, never a silent write elsewhere).
    CSA_FAULT = 0xE6


class GpuState(enum.Enum, shape=2):
    EMPTY = 0       #: no function's context is on the GPU
    LOADED = 1      #: ``cur``'s context is loaded; nobody owns the GPU yet
    RUNNING = 2     #: ``cur`` owns the GPU
    STOPPED = 3     #: ``cur`` was idled (drained, or hung); its context is still on the GPU


class Phase(enum.Enum, shape=2):
    """World-switch phases, the index of the per-phase cycle counters."""
    IDLE = 0
    SAVE = 1
    LOAD = 2
    RUN = 3


class SeqState(enum.Enum, shape=3):
    """Where the world-switch sequence is, cycle by cycle (the ``seq_state`` monitor port):
    what a timeline colours. READY: no sequence runs (the owner, if any, runs)."""
    READY = 0
    DRAIN = 1
    SAVE = 2
    LOAD = 3
    RUN = 4
    OVERLAP = 5
    SWAP = 6
    INIT = 7


#: GPU-IOV's function ids are 8 bits: VF x is 0x80 | x, the PF 0.
FCN_ID_WIDTH = 8


def iov_command_layout():
    """A GPU-IOV command as the host wrote it (docs/sources.md#gpu-iov-commands). The
    command field holds any 4-bit code the host wrote, member of IovCommand or not (the
    sequencer refuses the others with BAD_COMMAND)."""
    return data.StructLayout({"command": IovCommand, "fcn_id": FCN_ID_WIDTH,
                              "nxt_fcn_id": FCN_ID_WIDTH})


def fcn_id(fn):
    """GPU-IOV's function id: PF 0x00, VF x 0x80 | x."""
    return 0 if fn == 0 else 0x80 | fn
