"""Declarative register maps: one table gives the decoder hardware, the docs and the driver offsets.

A :class:`RegisterMap` is a list of :class:`Register` rows, each with :class:`Field` s. From it:

- :class:`RegisterFile` builds the decoder and the flops (one request per cycle, answer one cycle
  later, read data zero where nothing is selected so sources AND-OR together);
- :meth:`RegisterMap.markdown` writes the docs table;
- :meth:`RegisterMap.offset`, :meth:`RegisterMap.encode` and :meth:`RegisterMap.decode` give test
  drivers their offsets and field packing. Nobody copies an offset by hand.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Signal, Value
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In

from rtl.common.interfaces import REG_DATA_WIDTH, RegBusSignature, Status

__all__ = ["Access", "Scope", "Field", "Register", "RegisterMap", "RegisterFile"]


class Access(enum.Enum):
    RW = "RW"     #: read/write flop held in the register file
    RO = "RO"     #: read-only, value driven by the owning block
    W1C = "W1C"   #: flop set by the owning block, cleared by writing 1
    RC = "RO/WC"  #: read-only, value driven by the owning block; any write tells it to clear


class Scope(enum.Enum, shape=2):
    """Who may reach a register (docs/register_decode.md)."""
    PF_ONLY = 0        #: the PF only; a VF access is BLOCKED (write dropped, read 0)
    VF_PRIVATE = 1     #: one bank per VF, reachable by that VF (and the PF) only
    OWNER_SHARED = 2   #: one physical set, reachable by the PF and the VF that owns the GPU


@dataclass(frozen=True)
class Field:
    name: str
    lsb: int
    width: int
    access: Access
    doc: str = ""
    reset: int = 0

    @property
    def mask(self):
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    """A register, or an array of ``count`` registers indexed ``first .. first+count-1``."""
    name: str
    offset: int               # dword offset of index ``first``
    fields: tuple
    doc: str = ""
    count: int = 1
    first: int = 0
    stride: int = 1
    scope: Scope = Scope.PF_ONLY
    #: Where the value lives: "flops" (a RegisterFile) or another bank the block implements.
    bank: str = "flops"

    def __post_init__(self):
        used = 0
        for f in self.fields:
            if f.lsb < 0 or f.width < 1 or f.lsb + f.width > REG_DATA_WIDTH:
                raise ValueError(f"{self.name}.{f.name}: bits {f.lsb}+{f.width} outside a dword")
            if used & f.mask:
                raise ValueError(f"{self.name}.{f.name} overlaps another field")
            if f.access is Access.W1C and f.width != 1:
                raise ValueError(f"{self.name}.{f.name}: a W1C field is one bit")
            used |= f.mask

    @property
    def indices(self):
        return range(self.first, self.first + self.count)

    def offset_of(self, index=None):
        if index is None:
            if self.count != 1:
                raise ValueError(f"register {self.name} is an array: give an index")
            index = self.first
        if index not in self.indices:
            raise IndexError(f"{self.name}[{index}] does not exist: indices "
                             f"{self.first}..{self.first + self.count - 1}")
        return self.offset + (index - self.first) * self.stride

    def field(self, name):
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name}")

    def word(self, **values):
        """A 32-bit register value from field values (Amaranth values or ints), each at its
        place in the table; fields not named read 0."""
        word = Const(0, REG_DATA_WIDTH)
        for name, value in values.items():
            f = self.field(name)
            word = word | (Value.cast(value)[:f.width] << f.lsb)
        return word[:REG_DATA_WIDTH]

    def write_view(self, name, data, be, current):
        """A write's effect on field ``name``, per byte lane: (strobe, value).

        ``strobe`` is high when any byte lane holding a bit of the field is enabled in
        ``be``; ``value`` is the field as the write leaves it: ``data``'s bits where their
        lane is enabled, ``current``'s elsewhere. Owners that decide what a write does
        (counters, commands, pointers) judge the merged value, never raw data bits, so a
        byte or word write means what it would on any register.
        """
        f = self.field(name)
        lanes = Cat(*(b.replicate(8) for b in be))[f.lsb:f.lsb + f.width]
        bits = data[f.lsb:f.lsb + f.width]
        return lanes.any(), (current & ~lanes) | (bits & lanes)


class RegisterMap:
    """An ordered, checked table of registers in a dword address space of ``addr_width`` bits."""

    def __init__(self, name, addr_width, registers):
        self.name = name
        self.addr_width = addr_width
        self.registers = tuple(registers)
        self._by_name = {}
        taken = {}
        for reg in self.registers:
            if reg.name in self._by_name:
                raise ValueError(f"{name}: register {reg.name} defined twice")
            self._by_name[reg.name] = reg
            for index in reg.indices:
                offset = reg.offset_of(index)
                if offset >= 1 << addr_width:
                    raise ValueError(f"{name}: {reg.name}[{index}] at {offset:#x} is outside "
                                     f"the {addr_width}-bit space")
                if offset in taken:
                    raise ValueError(f"{name}: {reg.name}[{index}] and {taken[offset]} share "
                                     f"offset {offset:#x}")
                taken[offset] = f"{reg.name}[{index}]"

    def subset(self, name, keep):
        """A map of the registers for which ``keep(register)`` holds, offsets unchanged."""
        return RegisterMap(name, self.addr_width, [r for r in self.registers if keep(r)])

    def find(self, offset):
        """(register, index) at a dword offset, or None."""
        for reg, index, at in self.instances():
            if at == offset:
                return reg, index
        return None

    def __getitem__(self, name):
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.name} has no register {name}") from None

    def offset(self, name, index=None):
        """Dword offset of register ``name`` (element ``index`` of an array)."""
        return self[name].offset_of(index)

    def instances(self):
        """Every (register, index, offset), in table order."""
        for reg in self.registers:
            for index in reg.indices:
                yield reg, index, reg.offset_of(index)

    def encode(self, name, **values):
        """A register value from field values; unknown fields or values too wide raise."""
        reg, word = self[name], 0
        for fname, value in values.items():
            f = reg.field(fname)
            value = int(value.value if isinstance(value, enum.Enum) else value)
            if not 0 <= value < 1 << f.width:
                raise ValueError(f"{name}.{fname}={value} does not fit {f.width} bits")
            word |= value << f.lsb
        return word

    def decode(self, name, word):
        """Field values of a register value, as a dict."""
        return {f.name: (word >> f.lsb) & ((1 << f.width) - 1) for f in self[name].fields}

    def markdown(self):
        """The register table for docs/: one row per field."""
        scoped = any(r.scope is not Scope.PF_ONLY for r in self.registers)
        lines = ["| offset (dword) | byte | register | field | bits | access | reset | description |",
                 "|---|---|---|---|---|---|---|---|"]
        for reg in self.registers:
            if reg.count == 1:
                where = f"{reg.offset:#05x}"
                title = reg.name
            else:
                where = f"{reg.offset:#05x} + {reg.stride}·(n−{reg.first})" if reg.first else \
                        f"{reg.offset:#05x} + {reg.stride}·n"
                title = f"{reg.name}[n], n = {reg.first}..{reg.first + reg.count - 1}"
            byte = f"{reg.offset * 4:#06x}"
            scope = f" *({reg.scope.name.lower().replace('_', '-')})*" if scoped else ""
            lines.append(f"| {where} | {byte} | **{title}**{scope} | | | | | {reg.doc} |")
            for f in reg.fields:
                bits = f"{f.lsb + f.width - 1}:{f.lsb}" if f.width > 1 else f"{f.lsb}"
                lines.append(f"| | | | {f.name} | {bits} | {f.access.value} | {f.reset:#x} | {f.doc} |")
        return "\n".join(lines) + "\n"


def _or_tree(values):
    """OR of many values as a balanced tree (a chain hundreds deep chokes synthesis)."""
    while len(values) > 1:
        values = [values[i] | values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


class RegisterFile(wiring.Component):
    """Decoder and flops for a :class:`RegisterMap`, on a :func:`RegBusSignature` port.

    One request per cycle; each is answered exactly one cycle later on ``bus.resp``:
    OK with the read data, UR for an offset no register occupies, or BLOCKED for a requester
    other than the PF when ``pf_only``, or one ``permit`` refuses for the register's scope
    (the write is dropped and the read returns 0). With
    ``holes_read_zero`` (configuration space), an offset no register occupies answers OK and
    reads 0 instead of UR.
    Writes honour the byte enables.

    The owning block reaches fields through :meth:`f` (RW/W1C: the flop; RO/RC: a signal it
    drives), :meth:`set_` (W1C: pulse to set), :meth:`load` (RW: the owner writes it),
    :meth:`written` (a one-cycle strobe after a
    write to that register) and :meth:`writing` (the write's own cycle).
    ``blocked`` pulses with the request that was refused; ``blocked_fn``, ``blocked_addr`` and
    ``blocked_write`` say who, where and how, so the owner can count it.
    :meth:`write_view` gives a field's (strobe, merged value) in the write's cycle.
    :meth:`lock` is a signal the owner drives: while it is high, writes to that register
    change nothing (they answer OK, as a read-only register would) and :meth:`refused`
    pulses in their cycle, so the owner can count them.

    Attributes
    ----------
    bus : RegBus, in
    """

    def __init__(self, params, regmap, *, pf_only=True, holes_read_zero=False, permit=None):
        self.params = params
        self.regmap = regmap
        self.pf_only = pf_only
        self.holes_read_zero = holes_read_zero
        #: permit(scope, request payload) -> Value: may this request touch a register of
        #: that scope? Default: the PF only (``pf_only``) or anyone.
        self.permit = permit
        super().__init__({"bus": In(RegBusSignature(params, regmap.addr_width))})
        self._fields = {}
        self._sets = {}
        self._strobes = {}
        self._writing = {}
        self._loads = {}
        self._locks = {}
        self._refused = {}
        self._elaborated = False
        for reg, index, _ in regmap.instances():
            key = (reg.name, index)
            self._strobes[key] = Signal(name=f"{reg.name.lower()}_{index}_written")
            self._writing[key] = Signal(name=f"{reg.name.lower()}_{index}_writing")
            self._refused[key] = Signal(name=f"{reg.name.lower()}_{index}_refused")
            for f in reg.fields:
                self._fields[key + (f.name,)] = Signal(
                    f.width, init=f.reset, name=f"{reg.name.lower()}_{index}_{f.name.lower()}")
                if f.access is Access.W1C:
                    self._sets[key + (f.name,)] = Signal(
                        name=f"{reg.name.lower()}_{index}_{f.name.lower()}_set")
        self.blocked = Signal()
        self.blocked_fn = Signal(params.fn_width)
        self.blocked_addr = Signal(regmap.addr_width)
        self.blocked_write = Signal()

    def _key(self, name, index):
        reg = self.regmap[name]
        if index is None:
            reg.offset_of(None)   # raises for arrays
            index = reg.first
        return name, index

    def f(self, name, field, index=None):
        return self._fields[self._key(name, index) + (field,)]

    def set_(self, name, field, index=None):
        return self._sets[self._key(name, index) + (field,)]

    def written(self, name, index=None):
        """One-cycle strobe, the cycle after an accepted write to that register."""
        return self._strobes[self._key(name, index)]

    def load(self, name, field, index=None):
        """(enable, value) for the owning block to write an RW field itself (a context
        restore): when ``enable`` is high the flop takes ``value`` at the clock edge, over
        any bus write in the same cycle."""
        key = self._key(name, index) + (field,)
        if key not in self._loads:
            self._hook(f"load({name!r}, {field!r})")
            sig = self._fields[key]
            self._loads[key] = (Signal(name=f"{sig.name}_load"),
                                Signal(len(sig), name=f"{sig.name}_load_value"))
        return self._loads[key]

    def writing(self, name, index=None):
        """High in the cycle an accepted write to that register is requested (what it does to
        each field: :meth:`write_view`)."""
        return self._writing[self._key(name, index)]

    def write_view(self, name, field, index=None):
        """(strobe, value) of an accepted write to this field, in the write's cycle: see
        :meth:`Register.write_view` (the current value is the field's flop, or what the
        owner drives for RO/RC fields)."""
        key = self._key(name, index)
        strobe, value = self.regmap[name].write_view(
            field, self.bus.req.payload.data, self.bus.req.payload.be,
            self._fields[key + (field,)])
        return self._writing[key] & strobe, value

    def _hook(self, what):
        if self._elaborated:
            raise RuntimeError(f"RegisterFile {self.regmap.name}: ask for {what} before the "
                               f"file is elaborated (in the owner's elaborate, or earlier)")

    def lock(self, name, index=None):
        """A signal the owner drives: while high, writes to the register are dropped."""
        self._hook(f"lock({name!r})")
        key = self._key(name, index)
        if key not in self._locks:
            self._locks[key] = Signal(name=f"{name.lower()}_{key[1]}_lock")
        return self._locks[key]

    def refused(self, name, index=None):
        """High in the cycle a permitted write arrives while the register is locked."""
        return self._refused[self._key(name, index)]

    def elaborate(self, platform):
        self._elaborated = True
        m = Module()
        req, resp = self.bus.req, self.bus.resp
        p = req.payload
        if self.permit is None:
            permits = {scope: (p.fn == 0) if self.pf_only else Const(1) for scope in Scope}
        else:
            permits = {scope: self.permit(scope, p) for scope in Scope}
        allowed = Signal()
        allowed_terms = []

        hit_any = Signal()
        read_data = Signal(REG_DATA_WIDTH)
        read_terms = []   # (hit, word) per register instance
        for reg, index, offset in self.regmap.instances():
            key = (reg.name, index)
            hit = Signal(name=f"{reg.name.lower()}_{index}_hit")
            m.d.comb += hit.eq(req.valid & (p.addr == offset))
            allowed_terms.append(hit & permits[reg.scope])
            do_write = hit & p.write & permits[reg.scope]
            lock = self._locks.get(key)
            if lock is not None:
                m.d.comb += self._refused[key].eq(do_write & lock)
                do_write = do_write & ~lock
            m.d.comb += self._writing[key].eq(do_write)
            m.d.sync += self._strobes[key].eq(0)
            with m.If(do_write):
                m.d.sync += self._strobes[key].eq(1)
            word = Signal(REG_DATA_WIDTH, name=f"{reg.name.lower()}_{index}_word")
            for f in reg.fields:
                sig = self._fields[key + (f.name,)]
                m.d.comb += word[f.lsb:f.lsb + f.width].eq(sig)
                lanes, merged = reg.write_view(f.name, p.data, p.be, sig)
                if f.access is Access.RW:
                    load = self._loads.get(key + (f.name,))
                    with m.If(do_write):
                        m.d.sync += sig.eq(merged)
                    if load:                    # later, so it wins
                        with m.If(load[0]):
                            m.d.sync += sig.eq(load[1])
                elif f.access is Access.W1C:
                    with m.If(self._sets[key + (f.name,)]):
                        m.d.sync += sig.eq(1)
                    with m.Elif(do_write & lanes & p.data[f.lsb]):
                        m.d.sync += sig.eq(0)
            read_terms.append((hit, word))
        m.d.comb += hit_any.eq(Cat(*(h for h, _ in read_terms)).any())
        m.d.comb += allowed.eq(Cat(*allowed_terms).any() if allowed_terms else 0)
        # AND-OR read fan-in: every unselected register contributes zero.
        m.d.comb += read_data.eq(_or_tree([word & hit.replicate(REG_DATA_WIDTH)
                                           for hit, word in read_terms]))

        m.d.sync += [resp.valid.eq(req.valid), resp.payload.data.eq(0), self.blocked.eq(0)]
        with m.If(req.valid):
            with m.If(~hit_any if not self.holes_read_zero else Const(0)):
                m.d.sync += resp.payload.status.eq(Status.UR)
            with m.Elif(hit_any & ~allowed):
                m.d.sync += [resp.payload.status.eq(Status.BLOCKED), self.blocked.eq(1),
                             self.blocked_fn.eq(p.fn), self.blocked_addr.eq(p.addr),
                             self.blocked_write.eq(p.write)]
            with m.Else():
                m.d.sync += resp.payload.status.eq(Status.OK)
                with m.If(~p.write):
                    m.d.sync += resp.payload.data.eq(read_data)
        return m
