"""RAMs as short behavioural Verilog for Verilog simulators.

Amaranth writes a memory's initial contents word by word. For the engine state of a large
context (a MiB or more, in each of the two context sets, at 64 VFs) that takes minutes of
conversion and of Verilator build, for RAMs that start as zeros anyway. A design converted
for a Verilog simulator (:func:`verilog_simulation`, used by ``rtl.top.blocks.block_verilog``
for the simulation tops) instantiates :data:`STATE_RAM` instead, written here by hand (and
the harness's FB RAM its own model, rtl/memory/fb_ram.py); the same design converted for
synthesis, or simulated by Amaranth, keeps its ``Memory``.
"""

from contextlib import contextmanager
from contextvars import ContextVar

from amaranth.hdl import ClockSignal, Instance, Signal

__all__ = ["verilog_simulation", "for_verilog_simulation", "simple_ram", "STATE_RAM",
           "state_ram_verilog"]

#: Verilog module name of the simple RAM model (:func:`simple_ram`).
STATE_RAM = "sriov_state_ram"

_STATE_RAM_TEXT = """
// A RAM of rtl/common/sim_models.py for Verilog simulators: one write port, one synchronous
// read port with an enable (its data holds while the enable is low; old data on a write to
// the same address), zeros at start: an Amaranth Memory's read_port() and write_port().
module {name} #(parameter DEPTH = 1, parameter AW = 1, parameter DW = 8) (
    input clk,
    input [AW-1:0] raddr, input ren, output reg [DW-1:0] rdata,
    input [AW-1:0] waddr, input [DW-1:0] wdata, input wen);
  reg [DW-1:0] mem [0:DEPTH-1];
  integer i;
  initial begin
    for (i = 0; i < DEPTH; i = i + 1) mem[i] = {{DW{{1'b0}}}};
    rdata = {{DW{{1'b0}}}};
  end
  always @(posedge clk) begin
    if (wen) mem[waddr] <= wdata;
    if (ren) rdata <= mem[raddr];
  end
endmodule
"""

_FOR_VERILOG = ContextVar("for_verilog_simulation", default=False)


@contextmanager
def verilog_simulation():
    """Within it, designs elaborate for a Verilog simulator (see the module docstring)."""
    token = _FOR_VERILOG.set(True)
    try:
        yield
    finally:
        _FOR_VERILOG.reset(token)


def for_verilog_simulation():
    """Whether the design being elaborated is for a Verilog simulator."""
    return _FOR_VERILOG.get()


def state_ram_verilog():
    """The Verilog text of :data:`STATE_RAM`."""
    return _STATE_RAM_TEXT.format(name=STATE_RAM)


class _Port:
    """A RAM port's signals, named as an Amaranth memory port's: ``addr``, ``en``, ``data``."""

    def __init__(self, name, addr_width, width):
        self.addr = Signal(addr_width, name=f"{name}_addr")
        self.en = Signal(name=f"{name}_en")
        self.data = Signal(width, name=f"{name}_data")


def simple_ram(m, name, width, depth):
    """A RAM of ``depth`` words of ``width`` bits, zeros at start, in module ``m`` as
    submodule ``name``: (read port, write port), like an Amaranth ``Memory``'s
    ``read_port()`` (synchronous, enable ``en``) and ``write_port()``. For a Verilog
    simulator (:func:`for_verilog_simulation`) the behavioural :data:`STATE_RAM`; else an
    Amaranth ``Memory``."""
    if not for_verilog_simulation():
        from amaranth.lib.memory import Memory
        m.submodules[name] = mem = Memory(shape=width, depth=depth, init=[])
        return mem.read_port(), mem.write_port()
    aw = max(depth - 1, 1).bit_length()
    rd, wr = _Port(f"{name}_rd", aw, width), _Port(f"{name}_wr", aw, width)
    m.submodules[name] = Instance(
        STATE_RAM, p_DEPTH=depth, p_AW=aw, p_DW=width, i_clk=ClockSignal(),
        i_raddr=rd.addr, i_ren=rd.en, o_rdata=rd.data,
        i_waddr=wr.addr, i_wdata=wr.data, i_wen=wr.en)
    return rd, wr
