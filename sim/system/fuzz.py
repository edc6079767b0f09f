"""A hostile campaign on the whole GPU: random PF and VF traffic, legal and not, checked by
an independent reference of what each function may observe.

The hypervisor (PF) and one guest per VF run as agents on :class:`~sim.system.system.System`. The
PF enumerates, programs a sane layout, then mixes scheduling steps (the next legal
world-switch command, or a random command in any state; commands written as one dword or
byte by byte; EXECUTE written again while one runs) with misprogramming: slices moved and
overlapped, CNTXT moved (and written while locked), FLRs and VF Enable toggles at random
cycles, random configuration writes with random byte enables, and its own FB and register
traffic. Guests access their own BARs (inside and past their slice), every other function's
BARs and random addresses, with random byte enables.

The reference does not know the RTL's layout decisions; it knows who wrote what. Every byte
a function writes carries its writer in its top bits (:func:`tag_of`), and every engine-state
word (the saved contexts) carries :data:`CONTEXT_TAG`. So:

- a VF's read of any FB BAR or of any data register (mailbox, engine state) may return only
  bytes that are zero, its own or the PF's: never another VF's, never a saved context's, never
  a byte no one wrote (corruption);
- a context comes back bit for bit: the engine checks each function's state at the start of
  its turn (:class:`~sim.models.engine.Engine`), and the reference shadows each VF's owner-shared
  registers (GFX_STATE) through INIT (zeros), its own writes and FLRs (unknown), and checks
  every read the VF makes while it owns the GPU;
- a command written while another runs is refused (REFUSED.EXECUTE_BUSY counts it) and
  CMD_CONTROL still shows the command that ran;
- every accepted host request is answered exactly once (the system's answer monitor).

A mismatch is recorded, not raised, so a run reports all of them; a host-port break or a
hang ends the run with its error.
"""

import time
from collections import Counter
from random import Random

from rtl.pcie.config_space import pf_config_map, vf_config_map
from rtl.common.interfaces import Status
from rtl.params import KiB, MiB, GpuParams, ParamError
from rtl.common.iov_codes import GpuState, IovCommand, IovStatus, fcn_id

from sim.drivers.host import ConfigDriver, enumerate_device
from sim.drivers.iov import IovDriver
from sim.models.engine import Engine
from sim.system.system import System

__all__ = ["FUZZ_PARAMS", "CONTEXT_TAG", "tag_of", "tagged", "run", "run_body", "summary"]

#: 4 VFs on a 1 MiB FB of 4 KiB granules and units: slices, the CSA and their scrubs are small
#: enough that a campaign moves them thousands of times.
FUZZ_PARAMS = GpuParams(num_vfs=4, fb_size=1 * MiB, fb_granule=4 * KiB, iov_fb_unit=4 * KiB,
                        vf_fb_aperture=64 * KiB, ctx_words=16, mem_width=512)

_TAG_SHIFT = 5                       # a byte: 3 bits of writer, 5 random bits
#: The tag of engine-state words (saved contexts): no host request writes it.
CONTEXT_TAG = 7
#: FB units (of ``iov_fb_unit``) where the PF keeps its own data, and where CNTXT may point:
#: the PF never writes the CSA zone, so a saved context changes only by the world switch.
_PF_ZONE = range(0, 32)
_CSA_OFFSETS = range(32, 64)
_CSA_ZONE_END = 96                   # CNTXT offset < 64 and size < 32: the CSA stays below
_SLICE_UNITS = range(_CSA_ZONE_END, 256)
#: Registers whose value is data another function wrote (mailbox words, engine state), as
#: the mmio window names them: a VF's read of any of them is checked like an FB read.
_DATA_REGS = ("MAILBOX_TRN_DW", "MAILBOX_RCV_DW", "GFX_STATE", "PF_MB_RCV_DW", "PF_MB_TRN_DW",
              "VF_MEMSIZE")
#: Configuration registers the campaign writes only through its explicit actions (BARs and
#: the SR-IOV capability would move the address map under the reference; FLR, commands and
#: CNTXT are actions of their own).
_CONFIG_KEEP = ("BAR", "VF_BAR", "SRIOV_", "DEV_CTL", "GPUIOV_CMD", "GPUIOV_CNTXT",
                "CMD_STATUS")
#: Dwords of each FB unit that the campaign's FB accesses use.
_HOT_DWORDS = 2
#: Units in the largest slice the PF programs (all but raw random writes).
_SLICE_MAX = 12
#: After ownership starts the engine checks and rewrites its state for a few cycles; a
#: command that ends ownership waits this long, so the check is not cut by the save.
_TURN_GUARD = 48


def tag_of(fn):
    """The writer code of function ``fn`` (0 = PF) in the top bits of every byte it writes."""
    return fn + 1


def tagged(rng, tag, nbytes):
    """A value of ``nbytes`` bytes, each carrying ``tag``."""
    return int.from_bytes(bytes((tag << _TAG_SHIFT) | rng.getrandbits(_TAG_SHIFT)
                                for _ in range(nbytes)), "little")


def _hot_spot(rng, unit, params):
    """A byte offset in FB unit ``unit``: one of its first few dwords, where saved contexts
    start too, so that accesses by different functions to one range meet on the same
    dwords (random dwords of a whole unit would almost never meet)."""
    return unit * params.iov_fb_unit + rng.randrange(_HOT_DWORDS) * 4


def _foreign_bytes(value, nbytes, allowed):
    """The writer tags in ``value`` that are not ``allowed`` (0 = a byte no one wrote)."""
    bad = set()
    for byte in value.to_bytes(nbytes, "little"):
        if byte and (byte >> _TAG_SHIFT) not in allowed:
            bad.add(byte >> _TAG_SHIFT)
    return bad


class _TaggedEngine(Engine):
    """The engine, writing context-tagged state words."""

    def fresh_word(self):
        return tagged(self.rng, CONTEXT_TAG, self.p.mem_width // 8)


class _Reference:
    """What each function may observe (module docstring); collects mismatches."""

    def __init__(self, system, num_vfs):
        self.sys = system
        self.num_vfs = num_vfs
        self.mismatches = []
        self.checked = Counter()
        regs = system.maps["mmio"]
        self.data_offsets = {off for reg, _, off in regs.instances() if reg.name in _DATA_REGS}
        self.gfx = {regs.offset("GFX_STATE", k): k for k in regs["GFX_STATE"].indices}
        #: vf -> {k: GFX_STATE[k] as the VF must see it while it owns the GPU, or None}
        self.shared = {vf: {k: None for k in self.gfx.values()} for vf in range(1, num_vfs + 1)}

    def mismatch(self, text):
        self.mismatches.append(f"cycle {self.sys.cycle}: {text}")

    def classify(self, address):
        """(function, "fb" | "data" | None, register index) of an address, by the BAR map."""
        sys = self.sys
        for fn in range(self.num_vfs + 1):
            bars = sys.bars["pf_bars"] if fn == 0 else sys.bars["vf_bars"]
            base = sys.bar_base(fn, 0)
            if base <= address < base + bars[0][1]:
                return fn, "fb", None
            dword = (address - sys.reg_address(fn, "mmio", 0)) // 4
            if address % 4 == 0 and dword in self.data_offsets:
                return fn, "data", dword
        return None, None, None

    def vf_read(self, vf, address, status, data, owner):
        fn, kind, dword = self.classify(address)
        if kind is None:
            return
        self.checked[kind] += 1
        bad = _foreign_bytes(data, 4, {tag_of(0), tag_of(vf)})
        if bad:
            names = sorted("a saved context" if t == CONTEXT_TAG else "no one" if t == 0
                           else f"function {t - 1}" for t in bad)
            self.mismatch(f"VF {vf} read {data:#010x} ({status.name}) at {address:#x} "
                          f"(function {fn}'s {kind}): bytes written by {', '.join(names)}")
        k = self.gfx.get(dword)
        if k is not None and fn == vf and status == Status.OK and owner == vf:
            want = self.shared[vf][k]
            if want is not None and want != data:
                self.checked["context"] += 1
                self.mismatch(f"VF {vf} GFX_STATE[{k}] reads {data:#010x}, it left "
                              f"{want:#010x}: its context did not come back")

    def vf_wrote(self, vf, address, status, data, be):
        fn, _, dword = self.classify(address)
        k = self.gfx.get(dword)
        if k is None or fn != vf or status != Status.OK:
            return
        want = self.shared[vf][k]
        if want is not None:
            mask = sum(0xFF << 8 * i for i in range(4) if be >> i & 1)
            self.shared[vf][k] = (want & ~mask) | (data & mask)

    def pf_wrote_shared(self):
        # The PF writes whichever context is on the GPU: no VF's shadow is known any more.
        for regs in self.shared.values():
            regs.update(dict.fromkeys(regs))

    def init(self, vf):
        self.shared[vf] = {k: 0 for k in self.shared[vf]}
        self.sys.engine.reset_fn(vf)

    def flr(self, vf):
        self.shared[vf] = dict.fromkeys(self.shared[vf])
        self.sys.flr(vf)


class _Hypervisor:
    """The PF: set-up, then random actions until the campaign's transactions are made."""

    def __init__(self, system, ref, rng, transactions):
        self.sys, self.ref, self.rng = system, ref, rng
        self.p = system.p
        self.vfs = list(range(1, self.p.num_vfs + 1))
        self.target = transactions
        self.cfg = ConfigDriver(None, self.p, bus=system.bus("config"))
        self.ws = system.bus("world_switch")
        self.iov = IovDriver(self.cfg, system.wait, poll_every=4, timeout=20_000)
        self.statuses = Counter()        # command statuses, by name
        self.done = False
        self.turn_start = 0
        self.busy_writes = 0
        maps = {0: pf_config_map(self.p), 1: vf_config_map(self.p)}
        self.config_dwords = {
            kind: [d for d in range(1024) if not any(
                reg.name.startswith(_CONFIG_KEEP) for reg, _, off in m.instances() if off == d)]
            for kind, m in maps.items()}

    async def setup(self):
        sys, cfg = self.sys, self.cfg
        sys.bars = await enumerate_device(None, self.p, self.p.num_vfs, cfg=cfg)
        await cfg.write(0, "GPUIOV_CNTXT", SIZE=8, LOC=0, OFFSET=_CSA_OFFSETS[0])
        self.programmed = [0] * len(self.vfs)
        await self.tidy_layout()
        fbp = sys.bus("fb_partition")
        while (await fbp.read_fields("LAYOUT_STATUS"))["BUSY"]:
            await sys.wait(8)
        for vf in self.vfs:
            await self.ws.write("TIME_SLICE", vf, CYCLES=300, RUN=1)
            await self.command(IovCommand.INIT_GPU, vf)

    # --- commands ---------------------------------------------------------------------
    async def _write_command(self, command, fn, nxt):
        """One dword, or FCN_ID / NXT_FCN_ID first and COMMAND | EXECUTE last as bytes."""
        m = self.cfg.pf_map
        word = m.encode("GPUIOV_CMD", COMMAND=command, EXECUTE=1, FCN_ID=fn, NXT_FCN_ID=nxt)
        dword = m.offset("GPUIOV_CMD")
        if self.rng.random() < 0.3:
            await self.cfg.write_dword(0, dword, word, be=0b0110)
            await self.cfg.write_dword(0, dword, word, be=0b0001)
        else:
            await self.cfg.write_dword(0, dword, word)

    async def command(self, command, fn, nxt=0, raw=False):
        """Run a command (``raw``: ``command``, ``fn``, ``nxt`` are register codes) and take
        what its status means for the reference."""
        code = int(command) if raw else int(command.value)
        fcode, ncode = (fn, nxt) if raw else (fcn_id(fn), fcn_id(nxt))
        if code in (IovCommand.IDLE_GPU.value, IovCommand.CONTEXT_SWITCH.value):
            await self.sys.wait(max(1, self.turn_start + _TURN_GUARD - self.sys.cycle))
        await self._write_command(code, fcode, ncode)
        status = await self._finish(code, fcode, ncode)
        self._account(code, fcode, status)
        return status

    async def _finish(self, code, fcode, ncode):
        if self.rng.random() < 0.3:
            status = await self.iov.status()
            if status in (IovStatus.IDLING, IovStatus.SAVING, IovStatus.LOADING,
                          IovStatus.INITING, IovStatus.ENABLING):
                return await self._intrude(code, fcode, ncode)
        return await self.iov.finish()

    async def _intrude(self, code, fcode, ncode):
        """EXECUTE again while a command runs: refused, or (the first one ended just before)
        run as a command of its own."""
        before = (await self.ws.read_fields("REFUSED"))["EXECUTE_BUSY"]
        other = self.rng.choice((IovCommand.SAVE_GPU_STATE, IovCommand.LOAD_GPU_STATE,
                                 IovCommand.INIT_GPU, IovCommand.RUN_GPU))
        victim = fcn_id(self.rng.choice(self.vfs))
        await self._write_command(int(other.value), victim, 0)
        self.busy_writes += 1
        status = await self.iov.finish()
        refused = (await self.ws.read_fields("REFUSED"))["EXECUTE_BUSY"] != before
        if refused:
            shown = await self.cfg.read(0, "GPUIOV_CMD")
            if (shown["COMMAND"], shown["FCN_ID"]) != (code, fcode):
                self.ref.mismatch(f"CMD_CONTROL shows command {shown['COMMAND']} FCN_ID "
                                  f"{shown['FCN_ID']:#x} after command {code} FCN_ID "
                                  f"{fcode:#x} ran with a write refused while it did")
            return status
        # The first command had ended (it was in progress: it completed); the second ran.
        self._account(code, fcode, IovStatus.COMMAND_DONE)
        self._account(int(other.value), victim, status)
        return None

    def _account(self, code, fcode, status):
        if status is None:
            return
        self.statuses[status.name] += 1
        if status != IovStatus.COMMAND_DONE:
            return
        vf = fcode & 0x7F if fcode & 0x80 else 0
        if code == IovCommand.INIT_GPU.value and vf in self.vfs:
            self.ref.init(vf)
        if code in (IovCommand.RUN_GPU.value, IovCommand.CONTEXT_SWITCH.value,
                    IovCommand.ENABLE_AUTO_HW_SWITCH.value):
            self.turn_start = self.sys.cycle

    async def schedule(self):
        """The next legal step of a switch, or (a quarter of the time) any command."""
        rng = self.rng
        if rng.random() < 0.25:
            fn = rng.choice([0, 0x80 | rng.randrange(self.p.num_vfs + 3), rng.getrandbits(8)])
            return await self.command(rng.randrange(16), fn, fcn_id(rng.choice(self.vfs)),
                                      raw=True)
        state = await self.ws.read_fields("STATE")
        gpu, cur = GpuState(state["GPU_STATE"]), state["CUR_FN"]
        C = IovCommand
        if state["AUTO"] or gpu == GpuState.RUNNING:
            if rng.random() < 0.3:
                nxt = rng.choice(self.vfs)
                return await self.command(C.CONTEXT_SWITCH, cur, nxt)
            return await self.command(C.IDLE_GPU, cur)
        if gpu == GpuState.STOPPED:
            return await self.command(C.SAVE_GPU_STATE, cur)
        if gpu == GpuState.LOADED:
            status = await self.command(C.RUN_GPU, cur)
            if status == IovStatus.COMMAND_DONE and rng.random() < 0.2:
                await self.command(C.ENABLE_AUTO_HW_SWITCH, cur)
            return status
        mask = await self.ws.read("CTX_VALID", 0)
        ready = [vf for vf in self.vfs if mask >> vf & 1]
        if ready:
            return await self.command(C.LOAD_GPU_STATE, rng.choice(ready))
        return await self.command(C.INIT_GPU, rng.choice(self.vfs))

    # --- misprogramming ---------------------------------------------------------------
    async def _write_random_be(self, name, index, word):
        be = self.rng.randrange(1, 16)
        await self.cfg.write_dword(0, self.cfg.pf_map.offset(name, index), word, be=be)

    async def flr(self):
        vf = self.rng.choice(self.vfs)
        m = self.cfg.vf_map
        word = m.encode("DEV_CTL", INITIATE_FLR=1)
        # The FLR bit sits in byte 1: a byte write or a whole dword must both reset.
        await self.cfg.write_dword(vf, m.offset("DEV_CTL"), word,
                                   be=self.rng.choice((0b0010, 0b1111)))
        self.ref.flr(vf)

    async def vf_enable_toggle(self):
        ctrl = dict(VF_ENABLE=0, VF_MSE=1, ARI_HIERARCHY=1)
        await self.cfg.write(0, "SRIOV_CTRL", **ctrl)
        for vf in self.vfs:
            self.ref.flr(vf)
        await self.sys.wait(self.rng.randrange(1, 200))
        await self.cfg.write(0, "SRIOV_CTRL", **dict(ctrl, VF_ENABLE=1))

    async def move_slice(self):
        rng = self.rng
        k = rng.randrange(len(self.vfs))
        if rng.random() < 0.1:
            word = rng.getrandbits(32)
        else:
            # Half the time next to another slice as programmed, so that overlaps are common.
            near = self.programmed[rng.randrange(len(self.vfs))]
            offset = near + rng.randrange(-12, 12) if rng.random() < 0.5 else \
                rng.randrange(_PF_ZONE[0], _SLICE_UNITS[-1] + 16)
            word = self.cfg.pf_map.encode("VF_FB", SIZE=rng.randrange(_SLICE_MAX),
                                          OFFSET=max(offset, 0))
        await self._write_random_be("VF_FB", k, word)
        self.programmed[k] = self.cfg.pf_map.decode(
            "VF_FB", (await self.cfg.read_dword(0, self.cfg.pf_map.offset("VF_FB", k)))[1])["OFFSET"]

    async def tidy_layout(self):
        """Every VF a disjoint slice again, in a random order: the campaign goes from
        misprogrammed layouts back to working ones and moves every slice while at it."""
        size = len(_SLICE_UNITS) // len(self.vfs)
        order = self.rng.sample(range(len(self.vfs)), len(self.vfs))
        for k, place in enumerate(order):
            self.programmed[k] = _SLICE_UNITS[0] + place * size
            await self.cfg.write(0, "VF_FB", k, SIZE=self.rng.randrange(_SLICE_MAX),
                                 OFFSET=self.programmed[k])

    async def move_cntxt(self):
        rng = self.rng
        word = self.cfg.pf_map.encode("GPUIOV_CNTXT", SIZE=rng.randrange(32),
                                      LOC=int(rng.random() < 0.1),
                                      OFFSET=rng.choice(_CSA_OFFSETS))
        await self._write_random_be("GPUIOV_CNTXT", None, word)

    async def config_noise(self):
        rng = self.rng
        fn = rng.choice([0, 0] + self.vfs + [self.p.num_vfs + 1])
        dword = rng.choice(self.config_dwords[min(fn, 1)])
        if rng.random() < 0.5:
            await self.cfg.read_dword(fn, dword)
        else:
            await self.cfg.write_dword(fn, dword, tagged(rng, tag_of(0), 4),
                                       be=rng.randrange(16))

    async def pf_traffic(self):
        rng, sys = self.rng, self.sys
        if rng.random() < 0.6:
            unit = rng.choice((rng.choice(_PF_ZONE), rng.choice(_SLICE_UNITS)))
            address = sys.bar_base(0, 0) + _hot_spot(rng, unit, self.p)
        else:
            regs = sys.maps["mmio"]
            reg, index, _ = rng.choice(list(regs.instances()))
            address = sys.reg_address(0, "mmio", regs.offset(reg.name, index))
        write = rng.random() < 0.5
        status, _ = await sys.mem(0, address, write=write, data=tagged(rng, tag_of(0), 4),
                                  be=rng.randrange(1, 16))
        if write and status == Status.OK and self.ref.classify(address)[2] in self.ref.gfx:
            self.ref.pf_wrote_shared()

    #: Weights: a scheduling step takes tens of cycles (a command and its polls), the rest
    #: a few; the PF misprograms often enough that the guests meet every layout.
    ACTIONS = (("schedule", 25), ("pf_traffic", 20), ("config_noise", 12), ("move_slice", 20),
               ("tidy_layout", 4), ("move_cntxt", 6), ("flr", 4), ("vf_enable_toggle", 1))

    async def __call__(self):
        await self.setup()
        names, weights = zip(*self.ACTIONS)
        while self.sys.requests < self.target:
            action = self.rng.choices(names, weights)[0]
            await getattr(self, action)()
            await self.sys.wait(self.rng.randrange(1, 16))
        self.done = True
        fbp = self.sys.bus("fb_partition")
        self.layout_refusals = await fbp.read("LAYOUT_REFUSALS")
        self.cntxt_locked = (await self.ws.read_fields("REFUSED"))["CNTXT_LOCKED"]


class _Guest:
    """A hostile VM on VF ``vf``: random accesses everywhere, reads checked."""

    def __init__(self, system, ref, hv, vf, rng):
        self.sys, self.ref, self.hv, self.vf, self.rng = system, ref, hv, vf, rng
        self.answers = Counter()          # (destination, status) of every access

    def _address(self):
        rng, sys, p = self.rng, self.sys, self.sys.p
        fn = self.vf if rng.random() < 0.7 else rng.randrange(p.num_vfs + 1)
        bar = rng.choice((0, 0, 0, 2, 5))
        if rng.random() < 0.05:
            return "random", rng.getrandbits(32) & ~3
        if bar == 0:
            size = (sys.bars["pf_bars"] if fn == 0 else sys.bars["vf_bars"])[0][1]
            # Mostly inside the largest slice the PF programs, sometimes past the aperture.
            span = _SLICE_MAX * p.iov_fb_unit if rng.random() < 0.8 else 2 * p.vf_fb_aperture
            units = min(size, span) // p.iov_fb_unit
            return "fb", sys.bar_base(fn, 0) + _hot_spot(rng, rng.randrange(units), p)
        if bar == 2:
            return "doorbell", sys.bar_base(fn, 2) + rng.randrange(p.doorbells_per_fn + 2) * 4
        regs = sys.maps["mmio"]
        reg, index, _ = rng.choice(list(regs.instances()))
        return "register", sys.reg_address(fn, "mmio", regs.offset(reg.name, index))

    async def __call__(self):
        rng, sys, vf = self.rng, self.sys, self.vf
        while sys.bars is None:
            await sys.wait(64)
        while not self.hv.done:
            where, address = self._address()
            write = rng.random() < 0.5
            data, be = tagged(rng, tag_of(vf), 4), rng.randrange(1, 16)
            status, got = await sys.mem(vf, address, write=write, data=data, be=be)
            owner = int(sys.tb.get("owner")) if sys.tb.get("owner_valid") else None
            self.answers[where, status.name] += 1
            if write:
                self.ref.vf_wrote(vf, address, status, data, be)
            else:
                self.ref.vf_read(vf, address, status, got, owner)
            await sys.wait(rng.randrange(2, 16))


async def run_body(tb, params, transactions, seed, progress_file=None):
    """The campaign as a backend body; returns plain data (see :func:`summary`)."""
    system = System(tb, params, seed=seed)
    system.engine = _TaggedEngine(params, drain=4, work_per_doorbell=40, check_words=4,
                                  seed=seed + 7)
    ref = _Reference(system, params.num_vfs)
    rng = Random(seed)
    hv = _Hypervisor(system, ref, Random(rng.getrandbits(64)), transactions)
    guests = [_Guest(system, ref, hv, vf, Random(rng.getrandbits(64))) for vf in hv.vfs]
    system.spawn(hv())
    for guest in guests:
        system.spawn(guest())

    def progress(cycle):
        if progress_file:
            with open(progress_file, "w") as f:
                f.write(f"{system.requests}\n")

    cycles = await system.run(200 * transactions + 1_000_000, progress)
    answers = Counter()
    for guest in guests:
        answers.update({f"{where} {status}": n for (where, status), n in guest.answers.items()})
    return {
        "transactions": system.requests, "cycles": cycles,
        "mismatches": ref.mismatches + system.engine.errors,
        "engine_checks": system.engine.checked, "checked": dict(ref.checked),
        "guest_answers": dict(answers), "commands": dict(hv.statuses),
        "execute_while_busy": hv.busy_writes,
        "refused": {"layout": hv.layout_refusals, "cntxt_locked": hv.cntxt_locked},
    }


def run(transactions, seed=1, backend="amaranth", params=FUZZ_PARAMS, progress=None):
    """Run a campaign of at least ``transactions`` host requests; returns :func:`run_body`'s
    data with the backend and wall time. ``progress(transactions)`` is called now and then."""
    import os
    import tempfile
    import threading
    from sim.runners.backend import BACKENDS, run_backend
    if not isinstance(transactions, int) or transactions < 1:
        raise ParamError(f"transactions={transactions!r}: give a positive number")
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "progress")
        stop = threading.Event()

        def watch():
            while not stop.wait(2):
                try:
                    with open(path) as f:
                        done = int(f.read() or 0)
                except (OSError, ValueError):
                    continue
                if progress:
                    progress(done)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        kwargs = dict(transactions=transactions, seed=seed, progress_file=path)
        try:
            if backend not in BACKENDS:
                raise ParamError(f"backend={backend!r}: choose amaranth, verilator or icarus")
            raw = run_backend(backend, "gpu", params, "sim.system.fuzz:run_body",
                              test_name=f"fuzz-{seed}", **kwargs)
        finally:
            stop.set()
    raw.update(backend=backend, seed=seed, seconds=time.monotonic() - start)
    return raw


def summary(raw):
    """The campaign's result in lines; the first is ``N transactions, M mismatches``."""
    n, bad = raw["transactions"], raw["mismatches"]
    refusals = Counter()
    for key, count in raw["guest_answers"].items():
        where, status = key.split()
        if status != "OK":
            refusals[f"{status} ({where})"] += count
    commands = {k: v for k, v in raw["commands"].items() if k != "COMMAND_DONE"}
    lines = [f"{n} transactions, {len(bad)} mismatches",
             "refusals: " + ", ".join(f"{k} {v}" for k, v in sorted(refusals.items())),
             "commands refused: " + ", ".join(f"{k} {v}" for k, v in sorted(commands.items())) +
             f"; done {raw['commands'].get('COMMAND_DONE', 0)}",
             f"EXECUTE while busy {raw['execute_while_busy']}, CNTXT writes refused "
             f"{raw['refused']['cntxt_locked']}, layouts refused {raw['refused']['layout']}",
             f"checked: {raw['engine_checks']} context restores, " +
             ", ".join(f"{v} {k} reads" for k, v in sorted(raw["checked"].items())),
             f"{raw['cycles']} cycles on {raw['backend']} in {raw['seconds']:.1f} s: "
             f"{n / max(raw['seconds'], 1e-9):.0f} transactions/s"]
    lines += [f"mismatch: {text}" for text in bad[:20]]
    return lines
