"""The PF <-> VF mailbox protocol (docs/sources.md#mailbox), as guest and host drivers."""

from enum import IntEnum

from rtl.mmio.decode import mmio_regmap

from sim.drivers.regbus import RegBusDriver, RegisterAccess

__all__ = ["VfRequest", "PfEvent", "GuestMailbox", "HostMailbox", "MailboxTimeout"]


class VfRequest(IntEnum):
    """VF -> PF message IDs (TRN_DW0)."""
    REQ_GPU_INIT_ACCESS = 1
    REL_GPU_INIT_ACCESS = 2
    REQ_GPU_FINI_ACCESS = 3
    REL_GPU_FINI_ACCESS = 4
    REQ_GPU_RESET_ACCESS = 5


class PfEvent(IntEnum):
    """PF -> VF event IDs (RCV_DW0)."""
    CLR_MSG_BUF = 0
    READY_TO_ACCESS_GPU = 1
    FLR_NOTIFICATION = 2
    FLR_NOTIFICATION_CMPL = 3


class MailboxTimeout(AssertionError):
    pass


class _Side(RegisterAccess):
    """One side of the mailbox: function ``fn``'s mailbox registers, read and written as
    whole dwords, every access one that must succeed."""

    #: Reads a poll makes before it gives up.
    poll_limit = 200

    def __init__(self, tb, params, fn, prefix="bus", bus=None):
        self.regmap = mmio_regmap(params)
        #: Anything with RegBusDriver's ``access`` (the whole GPU's host port: sim/system/system.py).
        self.bus = RegBusDriver(tb, self.regmap, prefix) if bus is None else bus
        self.fn = fn

    def access(self, addr, **kwargs):
        return self.bus.access(addr, fn=self.fn, **kwargs)

    def refused(self, status, write, name, index, fn):
        raise AssertionError(f"function {self.fn} {'writing' if write else 'reading'} "
                             f"{name}: {status}")

    write = RegisterAccess.write_value    # the mailbox protocol writes whole dwords

    async def poll(self, name, field, want, limit=None):
        f = self.regmap[name].field(field)
        for _ in range(limit or self.poll_limit):
            if (await self.read(name)) >> f.lsb & 1 == want:
                return
        raise MailboxTimeout(f"function {self.fn}: {name}.{field} never became {want}")


class GuestMailbox(_Side):
    """A VM's driver on VF ``fn``."""

    async def send(self, msg, *data):
        for k, word in enumerate((int(msg),) + tuple(data) + (0,) * (3 - len(data))):
            await self.write("MAILBOX_TRN_DW", word, index=k)
        await self.write("MAILBOX_CONTROL", 1)               # TRN_MSG_VALID

    async def finish_send(self):
        """Wait for the PF's ack, then drop VALID (which drops the ack)."""
        await self.poll("MAILBOX_CONTROL", "TRN_MSG_ACK", 1)
        await self.write("MAILBOX_CONTROL", 0)

    async def receive(self):
        """Wait for a PF event, read it, ack it. Returns (event id, DW1..3)."""
        await self.poll("MAILBOX_CONTROL", "RCV_MSG_VALID", 1)
        words = [await self.read("MAILBOX_RCV_DW", index=k) for k in range(4)]
        await self.write("MAILBOX_CONTROL", 1 << 9)          # RCV_MSG_ACK
        return words[0], words[1:]


class HostMailbox(_Side):
    """The hypervisor's side, on the PF, through the MB_INDEX window."""

    def __init__(self, tb, params, prefix="bus", bus=None):
        super().__init__(tb, params, 0, prefix, bus)

    async def pending(self):
        bits, n = 0, 0
        for j in range(self.regmap["PF_MB_PENDING"].count):
            bits |= await self.read("PF_MB_PENDING", index=j) << (32 * j)
        return [k + 1 for k in range(bits.bit_length()) if bits >> k & 1]

    async def take(self, vf):
        """Read VF ``vf``'s message and ack it. Returns (message id, DW1..3)."""
        await self.write("MB_INDEX", vf)
        words = [await self.read("PF_MB_RCV_DW", index=k) for k in range(4)]
        await self.write("PF_MB_CONTROL", 1 << 1)            # RCV_ACK
        return words[0], words[1:]

    async def post(self, vf, event, *data):
        """Send an event to VF ``vf`` (raises TRN_VALID)."""
        await self.write("MB_INDEX", vf)
        for k, word in enumerate((int(event),) + tuple(data) + (0,) * (3 - len(data))):
            await self.write("PF_MB_TRN_DW", word, index=k)
        await self.write("PF_MB_CONTROL", 1 << 8)            # TRN_VALID

    async def finish_post(self, vf):
        """Wait for the VF's ack, then drop TRN_VALID (which drops the ack)."""
        await self.write("MB_INDEX", vf)
        await self.poll("PF_MB_CONTROL", "TRN_ACK", 1)
        await self.write("PF_MB_CONTROL", 0)
