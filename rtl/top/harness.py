"""The whole GPU as a simulation runs it: the top with its FB memory inside the design and
one ``wake`` line that tells the testbench when it has something to look at, so that it can
let the clock run in the simulator (no testbench code) the rest of the time."""

from amaranth.hdl import Cat, Module, Signal, Value, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl.common.interfaces import channel_port
from rtl.common.sim_models import state_ram_verilog
from rtl.common.iov_codes import SeqState, csa_bytes
from rtl.memory.fb_ram import FbRam, ram_model_verilog
from rtl.top.gpu import SriovGpu

__all__ = ["GpuHarness", "seen_layout"]


def seen_layout(params):
    """Everything a testbench reacts to in a cycle, in one port (one read a cycle)."""
    return data.StructLayout({
        "answer": 1,          # host.resp.valid
        "doorbell": 1,        # cp.valid
        "fb_ext": 1,          # an fb_ext (any channel's) valid
        "req_ready": 1,       # host.req.ready
        "engine_stop": 1,
        "owner_valid": 1,
        "owner": unsigned(params.fn_width),
        "seq_state": SeqState,
        "cmd_irq": 1,         # irq.cmd_done
    })


class GpuHarness(wiring.Component):
    """:class:`~rtl.top.gpu.SriovGpu` with an :class:`~rtl.memory.fb_ram.FbRam` on its FB
    memory port; for simulation only (not a block to synthesize).

    The RAM window is the context save area where the GIM-style layout of the scenarios
    puts it (right after the PF's FB aperture, every function's context at the default
    stride), so every world-switch beat stays inside the design; any other FB access (a
    guest's FB BAR traffic, the scrubber) goes out on ``fb_ext`` and the testbench answers
    it. Nothing depends on the window for correctness: a CSA elsewhere is only slower.

    Every port of the top but the FB channels is this component's too, under the same name. Its
    Verilog (``rtl.top.blocks.block_verilog``) makes its own clock: module ``gpu_harness``
    wraps the converted design (``gpu_harness_core``) with a free-running ``clk`` of
    :attr:`CLOCK_PERIOD_NS` and has every other port, ``rst`` included; a simulator then
    needs no testbench callback per clock edge. And:

    Attributes
    ----------
    fb_ext : flow, out; fb_ext_rdata : in
        :class:`~rtl.memory.fb_ram.FbRam`'s outside accesses (answered in the same cycle);
        with several FB channels, channel c's are ``fb_ext_c`` and ``fb_ext_rdata_c``.
    fb_reads, fb_writes : out
        FB memory requests accepted since reset.
    host_req_toggle : in
        Each change of its value presents the request on ``host.req.payload`` for that one
        cycle (``host.req.valid`` does the same, held high), so that a testbench need not
        come back the next cycle to take ``valid`` down.
    seen : out, seen_layout
        The outputs a testbench reacts to, packed.
    cycle : out; alarm : in
        Cycles since reset; a cycle in which ``cycle`` equals ``alarm`` is an event too
        (a testbench that sleeps until then needs no timer of its own).
    wake : out
        Changes value in every cycle the testbench must look at (a value-change trigger on
        it fires once per such cycle, even in a run of them): a host answer, a doorbell on
        ``cp``, a command-done interrupt, an outside FB access, a change of ``owner_valid``, ``owner``,
        ``seq_state`` or ``engine_stop`` since the last cycle, or the alarm. In any other
        cycle the outputs a testbench reacts to are as they were in the cycle before.
    """

    #: Bits of the cycle count and the alarm (years at any clock this runs at).
    CYCLE_WIDTH = 48

    def __init__(self, params):
        self.params = params
        self.gpu = SriovGpu(params)
        self.ram = FbRam(params, params.pf_fb_aperture, csa_bytes(params), params.mem_latency)
        #: An outside FB access this cycle, on any channel (``seen`` and ``wake`` read it).
        self._outside = Signal(name="fb_outside")
        members = {name: member for name, member in self.gpu.signature.members.items()
                   if name not in self._fb_channels()}
        ram = self.ram.signature.members
        ext = {}
        for c in range(params.mem_channels):
            for name in ("ext", "ext_rdata"):
                ext[channel_port(f"fb_{name}", c)] = ram[channel_port(name, c)]
        super().__init__({
            **members, **ext,
            "fb_reads": ram["reads"], "fb_writes": ram["writes"],
            "host_req_toggle": In(1),
            "seen": Out(seen_layout(params)),
            "cycle": Out(self.CYCLE_WIDTH),
            "alarm": In(self.CYCLE_WIDTH),
            "wake": Out(1),
        })

    #: The clock a Verilog build runs itself (half a period between edges), so that a
    #: Verilog simulator toggles it without a testbench callback per edge.
    CLOCK_PERIOD_NS = 8

    def verilog_models(self):
        """Verilog text of the simulation models this component instantiates when converted
        for a Verilog simulator (:func:`rtl.common.sim_models.verilog_simulation`): to be
        appended to that Verilog."""
        return ram_model_verilog(self.params.mem_channels) + state_ram_verilog()

    #: Outputs the Verilog top can give as they were at the last falling edge (a register
    #: there), so that a value-change trigger on them fires at the falling edge, where the
    #: testbench samples and drives: it needs no second trigger to get there. Only for a
    #: simulator that updates the clock and that register before it calls back (Verilator
    #: evaluates a time step whole); Icarus may call a falling-edge callback first, and a
    #: testbench would then read the register's old value.
    AT_FALLING_EDGE = ("wake",)

    def clocked_top(self, name, core, *, at_falling_edge=True):
        """Verilog of module ``name``: module ``core`` (this component's conversion) with
        its ``clk`` made inside, free-running from time 0, and every other port outside
        (with ``at_falling_edge``, :attr:`AT_FALLING_EDGE` ones registered at the falling
        edge)."""
        ports, decls, regs = ["rst"], ["  input rst;"], []
        conns = ["    .rst(rst)"]
        for path, member, value in self.signature.flatten(self):
            port, width = "__".join(map(str, path)), len(Value.cast(value))
            rng = f"[{width - 1}:0] " if width > 1 else ""
            ports.append(port)
            decls.append(f"  {'input' if member.flow == In else 'output'} {rng}{port};")
            inner = port
            if at_falling_edge and port in self.AT_FALLING_EDGE:
                inner = f"{port}_now"
                regs.append(f"  wire {rng}{inner};\n  reg {rng}{port}_q = 0;\n"
                            f"  always @(negedge clk) {port}_q <= {inner};\n"
                            f"  assign {port} = {port}_q;\n")
            conns.append(f"    .{port}({inner})")
        half = self.CLOCK_PERIOD_NS / 2
        return (f"module {name}({', '.join(ports)});\n" + "\n".join(decls) +
                f"\n  reg clk = 1'b0;\n  always #{half:g} clk = ~clk;\n" + "".join(regs) +
                f"  {core} core (\n    .clk(clk),\n" + ",\n".join(conns) + ");\nendmodule\n")

    def elaborate(self, platform):
        m = Module()
        gpu, ram = self.gpu, self.ram
        m.submodules.gpu, m.submodules.ram = gpu, ram
        p = self.params
        for c, channel in enumerate(ram.channels):
            wiring.connect(m, getattr(gpu, channel_port("fb", c)), channel)
        for name, member in gpu.signature.members.items():
            if name in self._fb_channels():
                continue
            inner, outer = getattr(gpu, name), getattr(self, name)
            if name == "host":
                self._host(m, inner, outer)
            elif not member.is_port:
                wiring.connect(m, wiring.flipped(outer), inner)
            elif member.flow == In:
                m.d.comb += inner.eq(outer)
            else:
                m.d.comb += outer.eq(inner)
        for c in range(p.mem_channels):
            ext = getattr(self, channel_port("fb_ext", c))
            m.d.comb += [ext.valid.eq(ram.port("ext", c).valid),
                         ext.payload.eq(ram.port("ext", c).payload),
                         ram.port("ext_rdata", c).eq(getattr(self, channel_port("fb_ext_rdata",
                                                                              c)))]
        m.d.comb += [self.fb_reads.eq(ram.reads), self.fb_writes.eq(ram.writes),
                     self._outside.eq(Cat(*[ram.port("ext", c).valid
                                            for c in range(p.mem_channels)]).any())]

        seen = self.seen
        m.d.comb += [seen.answer.eq(gpu.host.resp.valid), seen.doorbell.eq(gpu.cp.valid),
                     seen.fb_ext.eq(self._outside), seen.req_ready.eq(gpu.host.req.ready),
                     seen.engine_stop.eq(gpu.engine_stop), seen.owner_valid.eq(gpu.owner_valid),
                     seen.owner.eq(gpu.owner), seen.seq_state.eq(gpu.seq_state),
                     seen.cmd_irq.eq(gpu.irq.cmd_done)]
        # wake(t) = event(0) ^ ... ^ event(t): it changes exactly in the event cycles.
        event, parity = self._event(m), Signal()
        m.d.sync += parity.eq(parity ^ event)
        m.d.comb += self.wake.eq(parity ^ event)
        return m

    def _event(self, m):
        """Whether this cycle has something for the testbench (see ``wake``)."""
        gpu = self.gpu
        watched = Cat(gpu.owner_valid, gpu.owner, gpu.seq_state, gpu.engine_stop)
        before = Signal.like(watched)
        # Registered, so that moving the alarm in the cycle it rings cannot make ``wake``
        # change again in that cycle.
        ring = Signal()
        m.d.sync += [before.eq(watched), self.cycle.eq(self.cycle + 1),
                     ring.eq(self.cycle + 1 == self.alarm)]
        return (gpu.host.resp.valid | gpu.cp.valid | gpu.irq.cmd_done | self._outside |
                (watched != before) | ring)

    def _fb_channels(self):
        """The top's FB channel ports (the RAM's here)."""
        return {channel_port("fb", c) for c in range(self.params.mem_channels)}



    def _host(self, m, inner, outer):
        """The host port, with ``host_req_toggle`` as a second way to present a request."""
        toggle = Signal()
        m.d.sync += toggle.eq(self.host_req_toggle)
        m.d.comb += [inner.req.payload.eq(outer.req.payload),
                     inner.req.valid.eq(outer.req.valid | (self.host_req_toggle ^ toggle)),
                     outer.req.ready.eq(inner.req.ready),
                     outer.resp.valid.eq(inner.resp.valid),
                     outer.resp.payload.eq(inner.resp.payload)]
