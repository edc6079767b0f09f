"""Bus drivers over a :class:`~sim.backend.Bench`. Offsets come from the register maps."""

from rtl.interfaces import Status

__all__ = ["RegBusDriver", "RegAccessError"]


class RegAccessError(AssertionError):
    pass


class RegBusDriver:
    """Master on a :func:`~rtl.interfaces.RegBusSignature` port named ``prefix``.

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

    async def read(self, name, index=None, fn=0):
        status, value = await self.access(self.regmap.offset(name, index), fn=fn)
        if fn == 0 and status != Status.OK:
            raise RegAccessError(f"PF read of {name}[{index}] answered {status}")
        return value

    async def read_fields(self, name, index=None):
        return self.regmap.decode(name, await self.read(name, index))

    async def write(self, name, index=None, fn=0, **fields):
        status, _ = await self.access(self.regmap.offset(name, index), write=True,
                                      data=self.regmap.encode(name, **fields), fn=fn)
        if fn == 0 and status != Status.OK:
            raise RegAccessError(f"PF write of {name}[{index}] answered {status}")
        return status
