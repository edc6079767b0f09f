"""The FB memory behind the FB memory port, inside the simulated design: a window of FB in
RAM, the rest answered from outside. The whole GPU's context traffic (every beat of every
save and load) then costs no testbench code; only the few accesses outside the window do."""

from amaranth.hdl import ClockSignal, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl.common.interfaces import FbMemSignature, ValidSignature, fb_mem_request_layout
from rtl.common.counters import saturating_counter

__all__ = ["FbRam", "ram_model_verilog", "RAM_MODEL"]

#: The Verilog module name of the RAM's behavioural model (see :func:`ram_model_verilog`).
RAM_MODEL = "sriov_fb_ram"

_RAM_MODEL_TEXT = """
// The RAM of rtl/memory/fb_ram.py (FbRam) for Verilog simulators: one write port with byte
// enables, one synchronous read port (old data on a same-address write), zeros at start.
// Written by hand because Amaranth writes a memory's initial contents word by word, which
// for a few MiB of FB takes minutes and hundreds of MB of Verilog.
module {name} #(parameter DEPTH = 1, parameter AW = 1, parameter DW = 8) (
    input clk,
    input [AW-1:0] waddr, input [DW-1:0] wdata, input [DW/8-1:0] wbe,
    input [AW-1:0] raddr, output reg [DW-1:0] rdata);
  reg [DW-1:0] mem [0:DEPTH-1];
  integer i, b;
  initial begin
    for (i = 0; i < DEPTH; i = i + 1) mem[i] = {{DW{{1'b0}}}};
    rdata = {{DW{{1'b0}}}};
  end
  always @(posedge clk) begin
    if (|wbe)            // (the byte loop is slow in an interpreting simulator)
      for (b = 0; b < DW / 8; b = b + 1)
        if (wbe[b]) mem[waddr][b * 8 +: 8] <= wdata[b * 8 +: 8];
    rdata <= mem[raddr];
  end
endmodule
"""


def ram_model_verilog():
    """The Verilog text of the RAM model :class:`FbRam` instantiates when built for Verilog."""
    return _RAM_MODEL_TEXT.format(name=RAM_MODEL)


class FbRam(wiring.Component):
    """FB memory for a simulation: the target of the FB memory port.

    Bytes ``base`` .. ``base + size`` of FB are held in a RAM of ``mem_width``-bit words in
    the design itself; an access anywhere else is offered on ``ext`` in the cycle it is
    accepted, and a read's data is taken from ``ext_rdata`` in that same cycle (the
    testbench answers at once; the latency is added here). Both behave alike:

    - ``mem.req.ready`` is always high: one request a cycle, each accepted when presented.
    - A read accepted in cycle c is answered on ``mem.resp`` in cycle c + ``latency``
      (latency 1: the very next cycle); reads answer in order.
    - A write completes when accepted and changes only the bytes its byte enables name.
    - Everything starts as zeros.

    This is :class:`sim.models.fbmem.FbMemoryModel` (which checks it in tests) for a memory
    that is always ready, with the bulk of it in the simulator instead of the testbench.

    Parameters
    ----------
    params : GpuParams
    base, size : int
        The window in RAM, bytes (multiples of a beat; ``size`` may be 0: all outside).
    latency : int
        Read latency, cycles (>= 1).
    verilog : bool
        Instantiate the hand-written RAM model (:func:`ram_model_verilog`) instead of an
        Amaranth ``Memory``: for Verilog simulators (the generated text must then be
        followed by that model's). Amaranth's simulator uses the ``Memory``.

    Attributes
    ----------
    mem : FbMem, in (the port's target side)
    ext : flow of fb_mem_request_layout, out
        An access outside the window, accepted this cycle.
    ext_rdata : in
        The data of this cycle's ``ext`` read.
    reads, writes : out
        Requests accepted since reset (saturating).
    """

    def __init__(self, params, base, size, latency, *, verilog=False):
        beat = params.mem_width // 8
        if base % beat or size % beat or size < 0:
            raise ValueError(f"FbRam window base={base:#x} size={size:#x}: both must be "
                             f"multiples of the {beat}-byte beat")
        if latency < 1:
            raise ValueError(f"FbRam latency={latency}: must be at least 1 cycle")
        self.params, self.base, self.size, self.latency = params, base, size, latency
        self.words = size // beat
        self.verilog = verilog
        super().__init__({
            "mem": In(FbMemSignature(params)),
            "ext": Out(ValidSignature(fb_mem_request_layout(params))),
            "ext_rdata": In(params.mem_width),
            "reads": Out(32),
            "writes": Out(32),
        })

    def _ram(self, m, waddr, wdata, wbe, raddr):
        """The RAM: a write (byte enables ``wbe``) and a read whose data comes a cycle on."""
        p = self.params
        if self.verilog:
            rdata = Signal(p.mem_width)
            m.submodules.ram = Instance(
                RAM_MODEL, p_DEPTH=self.words, p_AW=len(waddr), p_DW=p.mem_width,
                i_clk=ClockSignal(), i_waddr=waddr, i_wdata=wdata, i_wbe=wbe,
                i_raddr=raddr, o_rdata=rdata)
            return rdata
        m.submodules.ram = ram = Memory(shape=p.mem_width, depth=self.words, init=[])
        wr = ram.write_port(granularity=8)
        rd = ram.read_port()
        m.d.comb += [wr.addr.eq(waddr), wr.data.eq(wdata), wr.en.eq(wbe), rd.addr.eq(raddr)]
        return rd.data

    def elaborate(self, platform):
        m = Module()
        p = self.params
        req = self.mem.req
        beat_log2 = (p.mem_width // 8).bit_length() - 1
        offset = Signal(p.fb_addr_width + 1)
        inside = Signal()
        m.d.comb += [req.ready.eq(1), offset.eq(req.payload.addr - self.base),
                     inside.eq((req.payload.addr >= self.base) & (offset < self.size))]
        index = Signal(max(self.words - 1, 1).bit_length())
        m.d.comb += index.eq(offset >> beat_log2)
        write_here = req.valid & req.payload.write & inside
        rdata = (self._ram(m, index, req.payload.data, write_here.replicate(p.mem_width // 8)
                           & req.payload.be, index)
                 if self.words else Signal(p.mem_width))
        m.d.comb += [self.ext.valid.eq(req.valid & ~inside), self.ext.payload.eq(req.payload)]

        # Cycle c + 1: the RAM's data, or what the testbench answered in cycle c.
        read = Signal()
        from_ext = Signal()
        ext_data = Signal(p.mem_width)
        m.d.sync += [read.eq(req.valid & ~req.payload.write), from_ext.eq(~inside),
                     ext_data.eq(self.ext_rdata)]
        valid, data = read, Mux(from_ext, ext_data, rdata)
        # Then latency - 1 more registers.
        for k in range(self.latency - 1):
            v, d = Signal(name=f"resp_valid_{k}"), Signal(p.mem_width, name=f"resp_data_{k}")
            m.d.sync += [v.eq(valid), d.eq(data)]
            valid, data = v, d
        m.d.comb += [self.mem.resp.valid.eq(valid), self.mem.resp.payload.data.eq(data)]

        accepted = req.valid
        m.d.comb += [
            self.reads.eq(saturating_counter(m, 32, accepted & ~req.payload.write, 0,
                                             name="reads")),
            self.writes.eq(saturating_counter(m, 32, accepted & req.payload.write, 0,
                                              name="writes")),
        ]
        return m
