"""Shapes and wiring signatures shared by the blocks.

Signatures are written from the initiator's side: a block that *receives* requests has
``In(...)`` ports. Every signature is built from a :class:`~rtl.params.GpuParams`, so the
widths follow the one parameter object; two signatures built from equal parameters are equal.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.params import MEM_INTERLEAVE

__all__ = [
    "Status", "FbOrigin", "Violation",
    "fb_access_layout", "fb_result_layout", "FbAccessSignature", "FbResultSignature",
    "reg_request_layout", "reg_response_layout", "RegBusSignature", "REG_DATA_WIDTH",
    "ValidSignature", "fb_mem_request_layout", "FbMemSignature", "shared_load_layout",
    "channel_port", "mem_channel_of", "shadow_channel",
    "region_layout",
]

#: Registers are 32-bit dwords, as PCIe MMIO and config space.
REG_DATA_WIDTH = 32


class Status(enum.Enum, shape=2):
    """Completion status of any request: the PCIe answer a requester would see."""
    OK = 0
    UR = 1        #: Unsupported Request: nothing answers at that address.
    BLOCKED = 2   #: Something is there, but this requester may not touch it.


class FbOrigin(enum.Enum, shape=2):
    """Who makes an FB access, which decides how its address is read."""
    HOST = 0      #: A function's FB BAR access; the address is an offset into its slice.
    ENGINE = 1    #: A GPU engine access on behalf of a function; also slice-relative.
    CTX = 2       #: The save/restore engine; an absolute FB address inside the context save area.


class Violation(enum.Enum, shape=3):
    """Why an access was blocked; recorded for the PF with the last violation."""
    NONE = 0
    OUTSIDE_SLICE = 1   #: offset beyond the function's slice (PF: beyond the end of FB)
    NO_SLICE = 2        #: the VF's slice is not enabled
    CSA = 3             #: a VF access that would land in the context save area
    PAST_FB_END = 4     #: translated address past the end of FB (misprogrammed slice)
    BAD_FUNCTION = 5    #: function number above num_vfs
    CTX_OUTSIDE_CSA = 6 #: save/restore access outside the context save area
    NOT_PF = 7          #: a non-PF requester on a PF-only configuration port


def fb_access_layout(params):
    """One FB access, as it enters the partition unit."""
    return data.StructLayout({
        "fn":     unsigned(params.fn_width),
        "origin": FbOrigin,
        "write":  unsigned(1),
        "addr":   unsigned(params.fb_addr_width),
        "tag":    unsigned(params.tag_width),
    })


def fb_result_layout(params):
    """An FB access after the partition unit: translated address and verdict."""
    return data.StructLayout({
        "fn":     unsigned(params.fn_width),
        "origin": FbOrigin,
        "write":  unsigned(1),
        "addr":   unsigned(params.fb_addr_width),   # physical FB byte address (0 if blocked)
        "tag":    unsigned(params.tag_width),
        "status": Status,
    })


def ValidSignature(layout):
    """A flow with no back-pressure: ``payload`` is meaningful in each cycle ``valid`` is high.

    (``lib.stream`` with ``always_ready=True`` would say the same, but its constant ``ready``
    cannot be a port of generated Verilog in Amaranth 0.5.)
    """
    return wiring.Signature({"valid": Out(1), "payload": Out(layout)})


def FbAccessSignature(params):
    """A stream of FB accesses, one per cycle, always accepted."""
    return ValidSignature(fb_access_layout(params))


def FbResultSignature(params):
    """A stream of checked FB accesses, one per cycle; the consumer must take each."""
    return ValidSignature(fb_result_layout(params))


def fb_mem_request_layout(params):
    """A request on the FB memory port: byte address, write flag, one ``mem_width`` data beat
    and its byte enables (a write changes only the enabled bytes; the context mover writes
    whole beats, the host's 32-bit FB writes one dword lane)."""
    return data.StructLayout({
        "addr":  unsigned(params.fb_addr_width),
        "write": unsigned(1),
        "data":  unsigned(params.mem_width),
        "be":    unsigned(params.mem_width // 8),
    })


def FbMemSignature(params):
    """The FB memory port, initiator side: valid/ready requests; read data returns in request
    order on ``resp``, which has no back-pressure (the initiator bounds its reads in flight)."""
    return wiring.Signature({
        "req":  Out(stream.Signature(fb_mem_request_layout(params))),
        "resp": In(ValidSignature(data.StructLayout({"data": unsigned(params.mem_width)}))),
    })


def channel_port(name, channel):
    """The port of FB memory channel ``channel`` among a block's ports named ``name``:
    channel 0 keeps the name (a one-channel GPU has the ports it always had), channel c
    is ``name_c``."""
    return name if channel == 0 else f"{name}_{channel}"


def mem_channel_of(params, addr):
    """The FB channel a host FB access or a scrub beat at byte ``addr`` goes to:
    (addr / MEM_INTERLEAVE) mod ``mem_channels``. ``addr`` is an int or an Amaranth value
    (then so is the result)."""
    if params.mem_channels == 1:
        return 0
    return (addr >> (MEM_INTERLEAVE.bit_length() - 1)) % params.mem_channels


def shadow_channel(params):
    """The channel of the world switch's shadow mover (the load of an overlapped switch):
    channel 1, so that it never meets the live mover (channel 0), or channel 0 if that is
    the only one."""
    return min(1, params.mem_channels - 1)


def reg_request_layout(params, addr_width):
    """A register access: requester function, dword address, write flag, data and byte enables."""
    return data.StructLayout({
        "fn":    unsigned(params.fn_width),
        "addr":  unsigned(addr_width),
        "write": unsigned(1),
        "data":  unsigned(REG_DATA_WIDTH),
        "be":    unsigned(REG_DATA_WIDTH // 8),
    })


def reg_response_layout():
    return data.StructLayout({
        "data":   unsigned(REG_DATA_WIDTH),
        "status": Status,
    })


def RegBusSignature(params, addr_width):
    """A register bus: one request per cycle; every request answered exactly one cycle later.

    Members (initiator side): ``req`` out, ``resp`` in, both :func:`ValidSignature` flows.
    """
    return wiring.Signature({
        "req":  Out(ValidSignature(reg_request_layout(params, addr_width))),
        "resp": In(ValidSignature(reg_response_layout())),
    })


def shared_load_layout(params):
    """A restored beat of owner-shared registers: its index among the context's shared
    beats, and ``mem_width`` bits of packed 32-bit registers (register k is beat
    k // (W/32), bits 32 (k mod W/32) upwards)."""
    return data.StructLayout({"beat": range(max(params.shared_beats, 2)),
                              "data": params.mem_width})


def region_layout(params, width=None):
    """An FB region in granules: the context save area or a VF slice. ``valid``: it exists.
    Active regions (what accesses are judged by) fit FB, ``granule_width`` bits; programmed
    ones are as wide as the capability's fields can make them (``params.layout_width``)."""
    width = params.granule_width if width is None else width
    return data.StructLayout({"base": unsigned(width), "size": unsigned(width),
                              "valid": unsigned(1)})
