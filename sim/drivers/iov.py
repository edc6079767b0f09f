"""The GPU-IOV command handshake, as a hypervisor speaks it (docs/sources.md#gpu-iov-commands): the one
driver of it, for tests, scenarios and benchmarks alike."""

from rtl.common.iov_codes import IovStatus, fcn_id

__all__ = ["IovDriver", "CommandTimeout"]


class CommandTimeout(AssertionError):
    """EXECUTE did not clear within the driver's timeout."""


class IovDriver:
    """Writes one dword, ``command | EXECUTE | FCN_ID << 8 | NXT_FCN_ID << 16``, into the
    GPU-IOV capability and polls until EXECUTE clears (every ``poll_every`` cycles, at most
    ``timeout`` polls), stopping early on a hang status, as GIM does; or, given
    ``interrupt``, sets IRQ_EN (0x20) in the dword too and waits for the command-done
    interrupt instead, then reads CMD_STATUS once.

    Parameters
    ----------
    cfg : ConfigDriver
        The :class:`~sim.drivers.host.ConfigDriver` the dwords go through.
    wait : callable
        ``wait(cycles)``, an awaitable that lets that many cycles pass (the bench's, or the
        whole GPU's system loop). Every poll waits first: a command never ends in the cycles
        its own write takes.
    hang_check : bool
        Whether a poll that finds EXECUTE still set also reads CMD_STATUS, to stop early on
        GFX_HANG or SDMA_HANG. The scenario's hypervisor does not (it reads GPUIOV_CMD alone
        while it waits): its host requests and the switch time the host sees are numbers
        ``sriov-gpu report`` prints, so its one read a poll is kept.
    cycle : callable, optional
        ``cycle()`` -> the current cycle; given, :attr:`log` collects (command, fn, nxt,
        status, cycles from write to done) of every :meth:`command`.
    interrupt : (callable, callable), optional
        ``(count, wait)``: ``count()`` -> command-done interrupts so far; ``wait(after,
        cycles)`` -> an awaitable that ends with the count once it exceeds ``after``, or
        with None after ``cycles`` (the whole GPU's :meth:`sim.system.system.System.interrupt`).
        The wait is as long as ``timeout`` polls would be.
    """

    HANG = (IovStatus.GFX_HANG, IovStatus.SDMA_HANG)

    def __init__(self, cfg, wait, *, poll_every=8, timeout=1_000_000, hang_check=True,
                 cycle=None, interrupt=None):
        self.cfg = cfg
        self.wait = wait
        self.poll_every = poll_every
        self.timeout = timeout
        self.hang_check = hang_check
        self.cycle = cycle
        self.log = []
        self.polls = 0
        self.interrupt = interrupt
        self._irqs_before = None      # interrupts counted before the last command's write

    async def issue(self, command, fn=0, nxt=0):
        """Write the command dword (EXECUTE set, and IRQ_EN when waiting for the interrupt);
        returns the write's status."""
        if self.interrupt:
            self._irqs_before = self.interrupt[0]()
        return await self.cfg.write(0, "GPUIOV_CMD", COMMAND=int(command.value), EXECUTE=1,
                                    IRQ_EN=int(bool(self.interrupt)),
                                    FCN_ID=fcn_id(fn), NXT_FCN_ID=fcn_id(nxt))

    async def status(self):
        return IovStatus((await self.cfg.read(0, "GPUIOV_STATUS"))["CMD_STATUS"])

    async def finish(self):
        """Poll until EXECUTE clears (or, with ``hang_check``, a hang status shows), or wait
        for the command-done interrupt; returns CMD_STATUS."""
        if self.interrupt:
            if await self.interrupt[1](self._irqs_before,
                                       self.timeout * self.poll_every) is None:
                raise CommandTimeout(f"no command-done interrupt within "
                                     f"{self.timeout * self.poll_every} cycles "
                                     f"(the driver's timeout)")
            return await self.status()
        for _ in range(self.timeout):
            await self.wait(self.poll_every)
            self.polls += 1
            if not (await self.cfg.read(0, "GPUIOV_CMD"))["EXECUTE"]:
                return await self.status()
            if self.hang_check and (status := await self.status()) in self.HANG:
                return status
        raise CommandTimeout(f"EXECUTE still set after {self.timeout} polls, "
                             f"{self.timeout * self.poll_every} cycles (the driver's timeout)")

    async def command(self, command, fn=0, nxt=0, *, expect=None):
        """Issue a command and wait for its end; returns its CMD_STATUS. With ``expect``,
        any other status raises, naming the command; so does a timeout
        (:class:`CommandTimeout`)."""
        start = self.cycle() if self.cycle else None
        await self.issue(command, fn, nxt)
        try:
            status = await self.finish()
        except CommandTimeout as err:
            raise CommandTimeout(f"{command.name}({fn}, {nxt}): {err}") from None
        if start is not None:
            self.log.append((command.name, fn, nxt, status.name, self.cycle() - start))
        if expect is not None and status != expect:
            raise AssertionError(f"{command.name}({fn}, {nxt}) ended with {status.name}, "
                                 f"expected {expect.name}")
        return status
