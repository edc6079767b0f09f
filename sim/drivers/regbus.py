"""Bus drivers over a :class:`~sim.runners.backend.Bench`. Offsets come from the register maps."""

from rtl.common.interfaces import Status

from sim.models.doorbell import DoorbellModel

__all__ = ["RegisterAccess", "RegBusDriver", "RegAccessError", "DoorbellDriver",
           "pack_shared_beats", "apply_shared_beat", "write_engine_state", "read_engine_state"]


class RegAccessError(AssertionError):
    """A register access answered other than OK where that is an error."""


class RegisterAccess:
    """Register reads and writes by name: the one copy of what every register driver does
    around its transport.

    The offset and the field packing come from the register table ``self.regmap``; the
    access goes through ``self.access(addr, *, write, data, fn)``, the transport (the
    register bus, the whole GPU's host port, configuration by Routing ID); an answer other
    than OK goes to :meth:`refused`, which says what is an error on that transport. ``fn``
    is passed on only when given, so each transport keeps its own default function.
    """

    regmap = None

    def refused(self, status, write, name, index, fn):
        """An access to ``name[index]`` answered ``status`` (not OK): raise if that is an
        error here. By default it is."""
        raise RegAccessError(f"{'write' if write else 'read'} of {name}[{index}] "
                             f"answered {status}")

    async def _access(self, name, index, fn, **kwargs):
        by_fn = {} if fn is None else {"fn": fn}
        status, value = await self.access(self.regmap.offset(name, index), **by_fn, **kwargs)
        if status != Status.OK:
            self.refused(status, kwargs.get("write", False), name, index, fn)
        return status, value

    async def read(self, name, index=None, fn=None):
        """The register's value."""
        return (await self._access(name, index, fn))[1]

    async def read_fields(self, name, index=None, fn=None):
        """The register's fields, {name: value}."""
        return self.regmap.decode(name, await self.read(name, index, fn))

    async def write_value(self, name, value, index=None, fn=None):
        """Write a whole value; returns the answer's status."""
        return (await self._access(name, index, fn, write=True, data=value))[0]

    async def write(self, name, index=None, fn=None, **fields):
        """Write the register's fields (the others 0); returns the answer's status."""
        return await self.write_value(name, self.regmap.encode(name, **fields), index, fn)


class RegBusDriver(RegisterAccess):
    """Master on a :func:`~rtl.common.interfaces.RegBusSignature` port named ``prefix``.

    Each call issues one request and returns its answer, one cycle later. ``issue`` and
    ``collect`` split that, so a test can overlap a request with other traffic.
    """

    def __init__(self, tb, regmap, prefix="cfg"):
        self.tb = tb
        self.regmap = regmap
        self.req = f"{prefix}__req"
        self.resp = f"{prefix}__resp"

    def issue(self, addr, *, write=False, data=0, fn=0, be=0xF):
        self.tb.set(f"{self.req}__payload",
                    {"fn": fn, "addr": addr, "write": int(write), "data": data, "be": be})
        self.tb.set(f"{self.req}__valid", 1)

    def idle(self):
        self.tb.set(f"{self.req}__valid", 0)

    def collect(self):
        """The answer to the request issued before the last tick: (status, data)."""
        if not self.tb.get(f"{self.resp}__valid"):
            raise RegAccessError("no response one cycle after a register request")
        resp = self.tb.get(f"{self.resp}__payload")
        return resp.status, int(resp.data)

    async def access(self, addr, **kwargs):
        self.issue(addr, **kwargs)
        await self.tb.tick()
        self.idle()
        return self.collect()

    def refused(self, status, write, name, index, fn):
        """The PF's accesses must succeed; a VF's may be refused (tests look at that)."""
        if not fn:
            raise RegAccessError(f"PF {'write' if write else 'read'} of {name}[{index}] "
                                 f"answered {status}")


class DoorbellDriver:
    """Drives a :class:`~rtl.doorbell.arbiter.DoorbellArbiter` one cycle at a time: rings (with
    unique, rising values), FLRs, CP back-pressure, the served set; every delivery and refusal
    is judged by :class:`~sim.models.doorbell.DoorbellModel`."""

    def __init__(self, tb, params, num_vfs=None, vf_enable=1, weights=None):
        self.tb, self.p = tb, params
        self.num_vfs = params.num_vfs if num_vfs is None else num_vfs
        self.model = DoorbellModel(params, self.num_vfs, vf_enable)
        self.cycle = 0
        self.served = set()        # the serve input set for the current cycle
        self.served_seen = set()   # what the arbiter acts on this cycle (last cycle's input)
        self.value = 0
        tb.set("num_vfs", self.num_vfs)
        tb.set("vf_enable", vf_enable)
        tb.set("weight", list(weights or [0] * params.num_fns))
        self.serve()

    def serve(self, *fns):
        """Give the CP to these functions (none: nobody)."""
        self.served = set(fns)
        self.tb.set("serve", sum(1 << fn for fn in fns))

    def offered(self):
        """(fn, index) of the doorbell offered to the CP this cycle, or None."""
        if not self.tb.get("cp__valid"):
            return None
        got = self.tb.get("cp__payload")
        return int(got.fn), int(got.index)

    def set_owner(self, owner):
        self.serve(*([] if owner is None else [owner]))

    async def step(self, writes=(), flr=(), ready=True):
        """One cycle: deliveries offered now, the writes and FLRs of this cycle, then tick."""
        tb, p = self.tb, self.p
        if tb.get("cp__valid") and ready:
            got = tb.get("cp__payload")
            self.model.take(self.cycle, int(got.fn), int(got.index), int(got.value),
                            self.served_seen)
        tb.set("cp__ready", int(ready))
        flr_mask = sum(1 << fn for fn in flr)
        tb.set("flr", flr_mask)
        for fn in flr:
            self.model.flr(self.cycle, fn)
        payloads, valid, expect_ur = [], 0, 0
        for k in range(p.doorbell_ports):
            if k < len(writes):
                fn, offset = writes[k]
                self.value += 1
                payloads.append({"fn": fn, "offset": offset, "value": self.value})
                valid |= 1 << k
                if self.model.ring(self.cycle, fn, offset, self.value, set(flr)):
                    expect_ur |= 1 << k
            else:
                payloads.append({"fn": 0, "offset": 0, "value": 0})
        tb.set("writes", payloads)
        tb.set("write_valid", valid)
        await tb.tick()
        assert tb.get("ur") == expect_ur, f"cycle {self.cycle}: ur {tb.get('ur'):#x} != {expect_ur:#x}"
        self.served_seen = self.served
        self.cycle += 1

    async def drain(self):
        """Give every function the CP in turn, until nothing is pending."""
        for fn in range(self.p.num_fns):
            self.set_owner(fn)
            for _ in range(self.p.doorbells_per_fn + 4):
                await self.step()
        self.set_owner(None)
        await self.step()
        assert self.tb.get("has_work") == 0, f"has_work {self.tb.get('has_work'):#x} after a drain"
        self.model.check_nothing_lost()
        assert self.tb.get("ur_count") == self.model.urs


# --- A context as the save/restore engine moves it -------------------------------------

def pack_shared_beats(params, values):
    """The owner-shared registers packed into memory beats, 32 bits each (register k is
    beat k // (W/32), bits 32 (k mod W/32) upwards), as :func:`~rtl.common.interfaces.
    shared_load_layout` carries them."""
    per_beat = params.mem_width // 32
    return [sum(v << 32 * k for k, v in enumerate(values[b * per_beat:(b + 1) * per_beat]))
            for b in range(params.shared_beats)]


def apply_shared_beat(params, shared, beat):
    """Unpack one ``shared_load`` beat (its payload) into the list ``shared``."""
    per_beat = params.mem_width // 32
    for k in range(per_beat):
        index = int(beat.beat) * per_beat + k
        if index < params.shared_regs:
            shared[index] = int(beat.data) >> (32 * k) & 0xFFFFFFFF


async def write_engine_state(tb, words, step):
    """Write the engine-state memory through ``state_wr``, a word per ``step()``."""
    for addr, word in enumerate(words):
        tb.set("state_wr__payload", {"addr": addr, "data": word})
        tb.set("state_wr__valid", 1)
        await step()
    tb.set("state_wr__valid", 0)


async def read_engine_state(tb, count, step):
    """Read ``count`` words of the engine-state memory through ``state_rd``, a word per
    ``step()`` (each the data of the edge just passed)."""
    out = []
    for addr in range(count):
        tb.set("state_rd__payload", {"addr": addr})
        tb.set("state_rd__valid", 1)
        await step()
        out.append(int(tb.get("state_rdata")))
    tb.set("state_rd__valid", 0)
    return out
