"""The FB memory behind the FB memory port, inside the simulated design: a window of FB in
RAM, the rest answered from outside. The whole GPU's context traffic (every beat of every
save and load) then costs no testbench code; only the few accesses outside the window do."""

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl.common.interfaces import (FbMemSignature, ValidSignature, channel_port,
                                   fb_mem_request_layout)
from rtl.common.counters import saturating_counter
from rtl.common.sim_models import for_verilog_simulation

__all__ = ["FbRam", "ram_model_verilog", "ram_model_name", "RAM_MODEL"]

#: The Verilog module name of the RAM's behavioural model (see :func:`ram_model_verilog`).
RAM_MODEL = "sriov_fb_ram"

_RAM_MODEL_TEXT = """
// The RAM of rtl/memory/fb_ram.py (FbRam) for Verilog simulators: {ports} write port(s) with
// byte enables, as many synchronous read ports (old data on a same-address write), zeros at
// start. Written by hand because Amaranth writes a memory's initial contents word by word,
// which for a few MiB of FB takes minutes and hundreds of MB of Verilog.
module {name} #(parameter DEPTH = 1, parameter AW = 1, parameter DW = 8) (
    input clk{port_decls});
  reg [DW-1:0] mem [0:DEPTH-1];
  integer i, b;
  initial begin
    for (i = 0; i < DEPTH; i = i + 1) mem[i] = {{DW{{1'b0}}}};
{rdata_init}  end
  always @(posedge clk) begin
{port_body}  end
endmodule
"""

_RAM_PORT_DECL = """,
    input [AW-1:0] waddr{s}, input [DW-1:0] wdata{s}, input [DW/8-1:0] wbe{s},
    input [AW-1:0] raddr{s}, output reg [DW-1:0] rdata{s}"""

_RAM_PORT_BODY = """    if (|wbe{s})            // (the byte loop is slow in an interpreting simulator)
      for (b = 0; b < DW / 8; b = b + 1)
        if (wbe{s}[b]) mem[waddr{s}][b * 8 +: 8] <= wdata{s}[b * 8 +: 8];
    rdata{s} <= mem[raddr{s}];
"""


def _port_suffix(port):
    """Verilog port names of the RAM model: port 0 unsuffixed (``waddr``), port k ``waddr_k``."""
    return channel_port("", port)


def ram_model_name(ports=1):
    """The Verilog module name of the RAM model with ``ports`` read/write port pairs."""
    return f"{RAM_MODEL}_x{ports}" if ports > 1 else RAM_MODEL


def ram_model_verilog(ports=1):
    """The Verilog text of the RAM model :class:`FbRam` instantiates when built for Verilog
    (one write and one read port per FB channel)."""
    suffixes = [_port_suffix(k) for k in range(ports)]
    return _RAM_MODEL_TEXT.format(
        name=ram_model_name(ports), ports=ports,
        port_decls="".join(_RAM_PORT_DECL.format(s=s) for s in suffixes),
        rdata_init="".join(f"    rdata{s} = {{DW{{1'b0}}}};\n" for s in suffixes),
        port_body="".join(_RAM_PORT_BODY.format(s=s) for s in suffixes))


class FbRam(wiring.Component):
    """FB memory for a simulation: the target of the FB memory channels.

    Bytes ``base`` .. ``base + size`` of FB are held in a RAM of ``mem_width``-bit words in
    the design itself, one read and one write port per channel (``mem_channels``); an
    access anywhere else is offered on that channel's ``ext`` in the cycle it is accepted,
    and a read's data is taken from its ``ext_rdata`` in that same cycle (the testbench
    answers at once; the latency is added here). Every channel behaves alike:

    - ``req.ready`` is always high: one request a cycle, each accepted when presented.
    - A read accepted in cycle c is answered on ``resp`` in cycle c + ``latency``
      (latency 1: the very next cycle); reads answer in order.
    - A write completes when accepted and changes only the bytes its byte enables name.
    - Everything starts as zeros.

    Converted for a Verilog simulator (:func:`rtl.common.sim_models.verilog_simulation`) it
    instantiates the hand-written RAM model (:func:`ram_model_verilog`, which the generated
    text must then be followed by) instead of an Amaranth ``Memory``.

    This is :class:`sim.models.fbmem.FbMemoryModel` (which checks it in tests) for a memory
    that is always ready, with the bulk of it in the simulator instead of the testbench.

    Parameters
    ----------
    params : GpuParams
    base, size : int
        The window in RAM, bytes (multiples of a beat; ``size`` may be 0: all outside).
    latency : int
        Read latency, cycles (>= 1).

    Attributes
    ----------
    mem, mem_1, .. : FbMem, in (the channels' target side; :attr:`channels` lists them)
    ext, ext_1, .. : flow of fb_mem_request_layout, out
        An access outside the window, accepted this cycle on that channel.
    ext_rdata, ext_rdata_1, .. : in
        The data of this cycle's ``ext`` read.
    reads, writes : out
        Requests accepted since reset, all channels (saturating).
    """

    def __init__(self, params, base, size, latency):
        beat = params.mem_width // 8
        if base % beat or size % beat or size < 0:
            raise ValueError(f"FbRam window base={base:#x} size={size:#x}: both must be "
                             f"multiples of the {beat}-byte beat")
        if latency < 1:
            raise ValueError(f"FbRam latency={latency}: must be at least 1 cycle")
        self.params, self.base, self.size, self.latency = params, base, size, latency
        self.words = size // beat
        ports = {}
        for c in range(params.mem_channels):
            ports.update({
                channel_port("mem", c): In(FbMemSignature(params)),
                channel_port("ext", c): Out(ValidSignature(fb_mem_request_layout(params))),
                channel_port("ext_rdata", c): In(params.mem_width)})
        super().__init__({**ports, "reads": Out(32), "writes": Out(32)})

    def port(self, name, channel):
        """Channel ``channel``'s port ``name`` ("mem", "ext" or "ext_rdata")."""
        return getattr(self, channel_port(name, channel))

    @property
    def channels(self):
        """The channels' memory ports, channel 0 first."""
        return [self.port("mem", c) for c in range(self.params.mem_channels)]

    def _ram(self, m, ports):
        """The RAM: per channel a write (``(addr, data, byte enables, read addr)``) and a read
        whose data comes a cycle on; returns each channel's read data."""
        p = self.params
        if for_verilog_simulation():
            rdata = [Signal(p.mem_width, name=channel_port("ram_rdata", c))
                     for c in range(len(ports))]
            conns = {}
            for c, (waddr, wdata, wbe, raddr) in enumerate(ports):
                s = channel_port("", c)
                conns.update({f"i_waddr{s}": waddr, f"i_wdata{s}": wdata, f"i_wbe{s}": wbe,
                              f"i_raddr{s}": raddr, f"o_rdata{s}": rdata[c]})
            m.submodules.ram = Instance(
                ram_model_name(len(ports)), p_DEPTH=self.words, p_AW=len(ports[0][0]),
                p_DW=p.mem_width, i_clk=ClockSignal(), **conns)
            return rdata
        m.submodules.ram = ram = Memory(shape=p.mem_width, depth=self.words, init=[])
        rdata = []
        for waddr, wdata, wbe, raddr in ports:
            wr = ram.write_port(granularity=8)
            rd = ram.read_port()
            m.d.comb += [wr.addr.eq(waddr), wr.data.eq(wdata), wr.en.eq(wbe),
                         rd.addr.eq(raddr)]
            rdata.append(rd.data)
        return rdata

    def _decode(self, m, c):
        """Channel ``c``'s request: (RAM index, whether inside the window)."""
        p = self.params
        req = self.port("mem", c).req
        beat_log2 = (p.mem_width // 8).bit_length() - 1
        offset = Signal(p.fb_addr_width + 1, name=channel_port("offset", c))
        inside = Signal(name=channel_port("inside", c))
        m.d.comb += [req.ready.eq(1), offset.eq(req.payload.addr - self.base),
                     inside.eq((req.payload.addr >= self.base) & (offset < self.size))]
        index = Signal(max(self.words - 1, 1).bit_length(), name=channel_port("index", c))
        m.d.comb += index.eq(offset >> beat_log2)
        return index, inside

    def elaborate(self, platform):
        m = Module()
        p = self.params
        decoded = [self._decode(m, c) for c in range(p.mem_channels)]
        ram_ports = []
        for (index, inside), mem in zip(decoded, self.channels):
            req = mem.req
            write_here = req.valid & req.payload.write & inside
            ram_ports.append((index, req.payload.data,
                              write_here.replicate(p.mem_width // 8) & req.payload.be, index))
        rdata = (self._ram(m, ram_ports) if self.words else
                 [Signal(p.mem_width, name=channel_port("no_ram", c))
                  for c in range(p.mem_channels)])
        for c, ((_, inside), mem) in enumerate(zip(decoded, self.channels)):
            self._respond(m, c, mem, inside, rdata[c])
        reads = Cat(*[mem.req.valid & ~mem.req.payload.write for mem in self.channels])
        writes = Cat(*[mem.req.valid & mem.req.payload.write for mem in self.channels])
        m.d.comb += [
            self.reads.eq(saturating_counter(m, 32, _count(reads), 0, name="reads")),
            self.writes.eq(saturating_counter(m, 32, _count(writes), 0, name="writes")),
        ]
        return m

    def _respond(self, m, c, mem, inside, rdata):
        """Channel ``c``'s outside accesses and read answers ``latency`` cycles on."""
        p = self.params
        req, ext = mem.req, self.port("ext", c)
        m.d.comb += [ext.valid.eq(req.valid & ~inside), ext.payload.eq(req.payload)]
        # Cycle c + 1: the RAM's data, or what the testbench answered in cycle c.
        read = Signal(name=channel_port("read", c))
        from_ext = Signal(name=channel_port("from_ext", c))
        ext_data = Signal(p.mem_width, name=channel_port("ext_data", c))
        m.d.sync += [read.eq(req.valid & ~req.payload.write), from_ext.eq(~inside),
                     ext_data.eq(self.port("ext_rdata", c))]
        valid, data = read, Mux(from_ext, ext_data, rdata)
        # Then latency - 1 more registers.
        for k in range(self.latency - 1):
            v = Signal(name=channel_port(f"resp_valid_{k}", c))
            d = Signal(p.mem_width, name=channel_port(f"resp_data_{k}", c))
            m.d.sync += [v.eq(valid), d.eq(data)]
            valid, data = v, d
        m.d.comb += [mem.resp.valid.eq(valid), mem.resp.payload.data.eq(data)]


def _count(bits):
    """How many of ``bits`` are set (a small sum: a few channels)."""
    return sum(bits[k] for k in range(len(bits))) if len(bits) > 1 else bits
