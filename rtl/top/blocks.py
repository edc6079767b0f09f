"""Every block the CLI and the simulation layer can build, by name."""

from rtl.pcie.config_space import ConfigSpace
from rtl.doorbell.arbiter import DoorbellArbiter
from rtl.memory.fb_partition import FbPartition
from rtl.top.gpu import SriovGpu
from rtl.world_switch.gpu_iov import GpuIov
from rtl.mmio.decode import MmioDecode
from rtl.pcie.routing import Router
from rtl.world_switch.save_restore import ContextMover
from rtl.world_switch.world_switch import WorldSwitch

__all__ = ["BLOCKS", "make_block"]

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


def make_block(name, params):
    try:
        cls = BLOCKS[name]
    except KeyError:
        raise ValueError(f"unknown block {name!r}: choose one of {', '.join(BLOCKS)}") from None
    return cls(params)
