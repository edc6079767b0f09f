"""Every block the CLI and the simulation layer can build, by name."""

from .config_space import ConfigSpace
from .doorbell import DoorbellArbiter
from .fb_partition import FbPartition
from .gpu import SriovGpu
from .gpu_iov import GpuIov
from .mmio import MmioDecode
from .routing import Router
from .save_restore import ContextMover
from .world_switch import WorldSwitch

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
