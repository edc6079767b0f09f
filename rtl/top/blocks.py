"""Every block the CLI and the simulation layer can build, by name."""

from rtl.common.sim_models import verilog_simulation
from rtl.pcie.config_space import ConfigSpace
from rtl.doorbell.arbiter import DoorbellArbiter
from rtl.memory.fb_partition import FbPartition
from rtl.top.gpu import SriovGpu
from rtl.top.harness import GpuHarness
from rtl.world_switch.gpu_iov import GpuIov
from rtl.mmio.decode import MmioDecode
from rtl.pcie.routing import Router
from rtl.world_switch.save_restore import ContextMover
from rtl.world_switch.world_switch import WorldSwitch

__all__ = ["BLOCKS", "SIM_BLOCKS", "block_class", "make_block", "block_verilog"]

#: name -> component class taking a GpuParams. The name is also the Verilog module name.
BLOCKS = {
    "fb_partition": FbPartition,
    "config_space": ConfigSpace,
    "mmio_decode": MmioDecode,
    "router": Router,
    "context_mover": ContextMover,
    "doorbell_arbiter": DoorbellArbiter,
    "world_switch": WorldSwitch,
    "gpu_iov": GpuIov,
    "gpu": SriovGpu,
}


#: Simulation-only tops (not synthesized, not in the summary): name -> class taking a
#: GpuParams; converted for a Verilog simulator within
#: :func:`rtl.common.sim_models.verilog_simulation` (:func:`block_verilog`).
SIM_BLOCKS = {
    "gpu_harness": GpuHarness,
}


def block_class(name):
    """The component class of block ``name`` (of :data:`BLOCKS` or :data:`SIM_BLOCKS`)."""
    try:
        return {**BLOCKS, **SIM_BLOCKS}[name]
    except KeyError:
        raise ValueError(f"unknown block {name!r}: choose one of "
                         f"{', '.join([*BLOCKS, *SIM_BLOCKS])}") from None


def make_block(name, params):
    """Block ``name`` for ``params``."""
    return block_class(name)(params)


def block_verilog(name, params, *, own_clock=True, at_falling_edge=True):
    """The Verilog of block ``name``, module name ``name``: Amaranth's conversion, followed
    by the behavioural models of any simulation-only parts it instantiates. A top that
    clocks itself (``clocked_top``) is module ``<name>_core`` wrapped in module ``name``
    (``at_falling_edge``: see ``GpuHarness.AT_FALLING_EDGE``); ``own_clock=False``: the
    core alone, clocked from outside (a C++ loop)."""
    from amaranth.back import verilog
    block = make_block(name, params)
    if not hasattr(block, "clocked_top"):
        return verilog.convert(block, name=name, emit_src=False)
    core = f"{name}_core"
    # A simulation top: its RAMs as short behavioural Verilog (rtl/common/sim_models.py).
    with verilog_simulation():
        text = verilog.convert(block, name=core, emit_src=False)
    text += block.verilog_models()
    if not own_clock:
        return text
    return text + block.clocked_top(name, core, at_falling_edge=at_falling_edge)
