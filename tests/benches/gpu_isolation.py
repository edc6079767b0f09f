"""Bodies for the whole GPU's isolation under a hostile VF and a careless PF (issue 12's
reported failures, one body each), run on Amaranth and cocotb alike. Each drives the GPU as
a hypervisor and its guests would, from the public GPU-IOV facts, and returns what it saw;
tests/test_gpu_isolation.py says what must hold."""

from rtl.params import GpuParams, KiB, MiB
from rtl.common.iov_codes import IovCommand, IovStatus

from sim.drivers.host import ConfigDriver, enumerate_device
from sim.drivers.iov import IovDriver
from sim.system.system import System

C = IovCommand

#: The default GPU (16 MiB GPU-IOV units and granules), 2 VFs: CSA at unit 16, VF 1 at
#: units 17..24, VF 2 at 25..32.
PARAMS = GpuParams(num_vfs=2)
LAYOUT = {"csa": (16, 1), 1: (17, 8), 2: (25, 8)}
#: A small FB (4 KiB granules and units), where a dirty granule is zero-filled in 256 cycles.
SMALL = GpuParams(num_vfs=2, fb_size=1 * MiB, fb_granule=4 * KiB, iov_fb_unit=4 * KiB,
                  vf_fb_aperture=64 * KiB)
SMALL_LAYOUT = {"csa": (8, 4), 1: (16, 4), 2: (24, 4)}
SECRET = 0x5EC2E7


class Gpu:
    """The hypervisor's (and, for a VF, its guest driver's) view of the whole GPU."""

    def __init__(self, system, params):
        self.sys, self.p = system, params
        self.cfg = ConfigDriver(None, params, bus=system.bus("config"))
        self.iov = IovDriver(self.cfg, system.wait, poll_every=4, cycle=lambda: system.cycle)
        self.fbp, self.ws = system.bus("fb_partition"), system.bus("world_switch")
        self.gpu, self.mmio = system.bus("gpu"), system.bus("mmio")

    async def enumerate(self):
        self.sys.bars = await enumerate_device(None, self.p, self.p.num_vfs, cfg=self.cfg)

    async def program(self, layout):
        """CNTXT and VFn_FB_* as GIM writes them (whole dwords); wait for the FB partition."""
        if "csa" in layout:
            offset, size = layout["csa"]
            await self.cfg.write(0, "GPUIOV_CNTXT", SIZE=size, LOC=0, OFFSET=offset)
        for vf in range(1, self.p.num_fns):
            if vf in layout:
                offset, size = layout[vf]
                await self.cfg.write(0, "VF_FB", vf - 1, SIZE=size - 1, OFFSET=offset)
        await self.settle()

    async def settle(self):
        while (await self.fbp.read_fields("LAYOUT_STATUS"))["BUSY"]:
            await self.sys.wait(4)

    async def fb(self, fn, offset, write=False, data=0, be=0xF):
        """Function ``fn``'s driver through its own FB BAR: (status name, data)."""
        status, value = await self.sys.mem(fn, self.sys.bar_base(fn, 0) + offset, write=write,
                                           data=data, be=be)
        return [status.name, value]

    async def reg(self, fn, name, index=None, write=False, data=0):
        """Function ``fn``'s driver on a register of its register BAR (the mmio window)."""
        regmap = self.sys.maps["mmio"]
        status, value = await self.sys.mem(
            fn, self.sys.reg_address(fn, "mmio", regmap.offset(name, index)), write=write,
            data=data)
        return [status.name, value]

    async def run(self, fn):
        """INIT, LOAD, RUN: ``fn`` owns the GPU with a clean context."""
        for command in (C.INIT_GPU, C.LOAD_GPU_STATE, C.RUN_GPU):
            await self.iov.command(command, fn, expect=IovStatus.COMMAND_DONE)

    async def switch(self, a, b):
        """GIM's host-driven switch from ``a`` to ``b``: IDLE, SAVE, LOAD, RUN."""
        for command, fn in ((C.IDLE_GPU, a), (C.SAVE_GPU_STATE, a), (C.LOAD_GPU_STATE, b),
                            (C.RUN_GPU, b)):
            await self.iov.command(command, fn, expect=IovStatus.COMMAND_DONE)


def _run(tb, params, agent, limit=200_000):
    """Run ``agent(gpu, seen)`` on a fresh system; return ``seen``."""
    system = System(tb, params)
    gpu, seen = Gpu(system, params), {}

    async def main():
        await gpu.enumerate()
        await agent(gpu, seen)

    system.spawn(main())
    return system, seen, system.run(limit)


async def _go(tb, params, agent, limit=200_000):
    system, seen, running = _run(tb, params, agent, limit)
    await running
    return seen


# --- 1: no FB context save area: nothing is saved anywhere ------------------------------
async def no_csa(tb, params, how):
    """CNTXT never written, SIZE = 0, or LOC = 1, and VF 1's slice where a context would
    have gone: VF 2's saved context must not appear in VF 1's FB."""
    async def agent(gpu, seen):
        if how == "size0":
            await gpu.cfg.write(0, "GPUIOV_CNTXT", SIZE=0, LOC=0, OFFSET=0)
        elif how == "loc1":
            await gpu.cfg.write(0, "GPUIOV_CNTXT", SIZE=1, LOC=1, OFFSET=0)
        await gpu.program({1: (0, 8), 2: (8, 8)})
        seen["init"] = (await gpu.iov.command(C.INIT_GPU, 2)).name
        if seen["init"] == "COMMAND_DONE":           # the model before the fix went on
            await gpu.iov.command(C.LOAD_GPU_STATE, 2)
            await gpu.iov.command(C.RUN_GPU, 2)
            await gpu.reg(2, "GFX_STATE", 0, write=True, data=SECRET)
            await gpu.iov.command(C.IDLE_GPU, 2)
            await gpu.iov.command(C.SAVE_GPU_STATE, 2)
        seen["csa_ok"] = (await gpu.ws.read_fields("CSA_BASE"))["OK"]
        stride = (await gpu.ws.read_fields("CSA_STRIDE"))["STRIDE"]
        seen["vf1_reads"] = [(await gpu.fb(1, fn * stride * 4096))[1] for fn in range(3)]
    return await _go(tb, params, agent)


# --- 2: CNTXT cannot move while a context is saved in it ---------------------------------
async def cntxt_moved_after_save(tb, params):
    async def agent(gpu, seen):
        await gpu.program(LAYOUT)
        await gpu.run(1)
        await gpu.reg(1, "GFX_STATE", 0, write=True, data=SECRET)
        await gpu.iov.command(C.IDLE_GPU, 1, expect=IovStatus.COMMAND_DONE)
        await gpu.iov.command(C.SAVE_GPU_STATE, 1, expect=IovStatus.COMMAND_DONE)
        await gpu.cfg.write(0, "GPUIOV_CNTXT", SIZE=1, LOC=0, OFFSET=40)
        seen["cntxt"] = await gpu.cfg.read(0, "GPUIOV_CNTXT")
        seen["refused"] = await gpu.ws.read_fields("REFUSED")
        seen["load"] = (await gpu.iov.command(C.LOAD_GPU_STATE, 1)).name
        seen["run"] = (await gpu.iov.command(C.RUN_GPU, 1)).name
        seen["gfx"] = (await gpu.reg(1, "GFX_STATE", 0))[1]
    return await _go(tb, params, agent)


# --- 3: overlapping slices: the first active wins ---------------------------------------
async def overlapping_slices(tb, params):
    async def agent(gpu, seen):
        await gpu.program({"csa": (40, 1), 1: (16, 8)})
        await gpu.program({2: (20, 8)})
        seen["last"] = await gpu.fbp.read_fields("LAYOUT_LAST")
        seen["active"] = await gpu.fbp.read("ACTIVE_MASK", 0)
        unit = params.iov_fb_unit
        seen["vf1_write"] = await gpu.fb(1, 4 * unit + 0x40, write=True, data=SECRET)
        seen["vf2_read"] = await gpu.fb(2, 0x40)
        seen["irq"] = int(tb.get("irq").layout)
    return await _go(tb, params, agent)


# --- 4: EXECUTE while a command runs changes nothing of it -------------------------------
async def execute_while_busy(tb, params):
    async def agent(gpu, seen):
        await gpu.program(LAYOUT)
        await gpu.iov.command(C.INIT_GPU, 2, expect=IovStatus.COMMAND_DONE)
        await gpu.run(1)
        await gpu.iov.command(C.IDLE_GPU, 1, expect=IovStatus.COMMAND_DONE)
        await gpu.iov.issue(C.SAVE_GPU_STATE, 1)
        await gpu.iov.issue(C.LOAD_GPU_STATE, 2)             # while SAVE(1) runs
        seen["while"] = await gpu.cfg.read(0, "GPUIOV_CMD")
        seen["end"] = (await gpu.iov.finish()).name
        seen["after"] = await gpu.cfg.read(0, "GPUIOV_CMD")
        seen["state"] = await gpu.ws.read_fields("STATE")
        seen["refused"] = await gpu.ws.read_fields("REFUSED")
    return await _go(tb, params, agent)


# --- 5: a command is the register's merged value ----------------------------------------
async def byte_writes_of_cmd_control(tb, params):
    async def agent(gpu, seen):
        await gpu.program(LAYOUT)
        dword = gpu.cfg.pf_map.offset("GPUIOV_CMD")
        await gpu.cfg.write_dword(0, dword, 0x82 << 8, be=0b0010)           # FCN_ID = VF 2
        await gpu.cfg.write_dword(0, dword, C.INIT_GPU.value | 0x10, be=0b0001)  # INIT|EXECUTE
        seen["status"] = (await gpu.iov.finish()).name
        seen["ctx_valid"] = await gpu.ws.read("CTX_VALID", 0)
        seen["cmd"] = await gpu.cfg.read(0, "GPUIOV_CMD")
    return await _go(tb, params, agent)


# --- 6, 12: every width of every VFn_FB_* write reaches the FB partition -----------------
async def partial_slice_writes(tb, params):
    async def agent(gpu, seen):
        await gpu.program({"csa": (16, 1)})
        dword = gpu.cfg.pf_map.offset("VF_FB", 0)
        await gpu.cfg.write_dword(0, dword, 8 - 1, be=0b0011)              # VF1_FB_SIZE
        await gpu.cfg.write_dword(0, dword, 20 << 16, be=0b1100)           # VF1_FB_OFFSET
        await gpu.settle()
        seen["active"] = await gpu.fbp.read("ACTIVE_MASK", 0)
        seen["consumed"] = (await gpu.cfg.read(0, "GPUIOV_FB"))["TOTAL_FB_CONSUMED"]
        seen["write"] = await gpu.fb(1, 0x100, write=True, data=SECRET)
        await gpu.sys.wait(16)                    # a write is answered before it lands
        seen["where"] = sorted(gpu.sys.fbmem.words)
    return await _go(tb, params, agent)


async def slice_offset_past_fb(tb, params):
    async def agent(gpu, seen):
        await gpu.program({"csa": (16, 1), 1: (0x405, 1)})
        seen["readback"] = await gpu.cfg.read(0, "VF_FB", 0)
        seen["active"] = await gpu.fbp.read("ACTIVE_MASK", 0)
        seen["last"] = await gpu.fbp.read_fields("LAYOUT_LAST")
        seen["write"] = await gpu.fb(1, 0x100, write=True, data=SECRET)
        await gpu.sys.wait(16)                    # a write is answered before it lands
        seen["where"] = sorted(gpu.sys.fbmem.words)
    return await _go(tb, params, agent)


# --- 7: clearing VF Enable takes every VF off the GPU ------------------------------------
async def vf_enable_cleared_while_owning(tb, params):
    async def agent(gpu, seen):
        await gpu.program(LAYOUT)
        await gpu.run(1)
        seen["before"] = await gpu.ws.read_fields("STATE")
        await gpu.cfg.write(0, "SRIOV_CTRL", VF_ENABLE=0, VF_MSE=1, ARI_HIERARCHY=1)
        await gpu.sys.wait(4)
        seen["after"] = await gpu.ws.read_fields("STATE")
        seen["ctx_valid"] = await gpu.ws.read("CTX_VALID", 0)
    return await _go(tb, params, agent)


# --- 8: an FLR leaves nothing of the last tenant in the registers ------------------------
async def flr_clears_the_mailbox(tb, params):
    async def agent(gpu, seen):
        mmio = gpu.mmio
        await mmio.write("MB_INDEX", VF=1)
        await mmio.write("PF_MB_TRN_DW", 0, DATA=SECRET)
        await mmio.write("PF_MB_CONTROL", TRN_VALID=1)
        await gpu.reg(1, "MAILBOX_TRN_DW", 0, write=True, data=SECRET + 1)
        await gpu.reg(1, "MAILBOX_INT_CNTL", write=True, data=0b11)
        await gpu.reg(1, "GRBM_SOFT_RESET", write=True, data=1)             # refused
        seen["before"] = await _mailbox_view(gpu)
        await gpu.cfg.write(1, "DEV_CTL", INITIATE_FLR=1)
        await gpu.sys.wait(4)
        seen["after"] = await _mailbox_view(gpu)
    return await _go(tb, params, agent)


async def _mailbox_view(gpu):
    return {"rcv": (await gpu.reg(1, "MAILBOX_RCV_DW", 0))[1],
            "trn": (await gpu.reg(1, "MAILBOX_TRN_DW", 0))[1],
            "control": (await gpu.reg(1, "MAILBOX_CONTROL"))[1],
            "int_cntl": (await gpu.reg(1, "MAILBOX_INT_CNTL"))[1],
            "pf_sees": await gpu.mmio.read("PF_MB_RCV_DW", 0),
            "viol_count": await gpu.mmio.read("VIOL_COUNT", 1)}


# --- 9: FB writes posted while the world switch holds the FB port ------------------------
async def fb_writes_during_a_switch(tb, params, writers=4, each=24):
    """Several guest threads write FB back to back while SAVE holds the FB port; every
    request is answered (the system fails the run otherwise) and reads back what it wrote."""
    async def agent(gpu, seen):
        await gpu.program(LAYOUT)
        await gpu.run(1)
        await gpu.iov.command(C.IDLE_GPU, 1, expect=IovStatus.COMMAND_DONE)
        await gpu.iov.issue(C.SAVE_GPU_STATE, 1)
        done = []

        async def writer(w):
            for k in range(each):
                await gpu.fb(1 + w % 2, (w * each + k) * 4, write=True, data=w << 16 | k)
            done.append(w)

        for w in range(writers):
            gpu.sys.spawn(writer(w))
        while len(done) < writers:
            await gpu.sys.wait(8)
        seen["save"] = (await gpu.iov.finish()).name
        wrong = []
        for w in range(writers):
            for k in range(each):
                got = await gpu.fb(1 + w % 2, (w * each + k) * 4)
                if got != ["OK", w << 16 | k]:
                    wrong.append([w, k, got])
        seen["wrong"] = wrong
    return await _go(tb, params, agent)


# --- 10: GIM's four-command switch is a measured switch too -----------------------------
async def host_switch_counted(tb, params):
    async def agent(gpu, seen):
        await gpu.program(LAYOUT)
        await gpu.iov.command(C.INIT_GPU, 2, expect=IovStatus.COMMAND_DONE)
        await gpu.run(1)
        start = gpu.sys.cycle
        await gpu.switch(1, 2)
        seen["host_cycles"] = gpu.sys.cycle - start
        seen["phases"] = [await gpu.ws.read("PHASE_LAST", k) for k in range(4)]
        seen["count"] = await gpu.ws.read("HOST_SWITCHES")
        seen["last"] = await gpu.ws.read("HOST_SWITCH_LAST")
        seen["max"] = await gpu.ws.read("HOST_SWITCH_MAX")
        await gpu.iov.command(C.IDLE_GPU, 2, expect=IovStatus.COMMAND_DONE)
        await gpu.iov.command(C.INIT_GPU, 1)                     # breaks the sequence
        await gpu.iov.command(C.SAVE_GPU_STATE, 2, expect=IovStatus.COMMAND_DONE)
        await gpu.iov.command(C.LOAD_GPU_STATE, 1, expect=IovStatus.COMMAND_DONE)
        await gpu.iov.command(C.RUN_GPU, 1, expect=IovStatus.COMMAND_DONE)
        seen["count_after_broken"] = await gpu.ws.read("HOST_SWITCHES")
    return await _go(tb, params, agent)


# --- 11: FB handed to a new owner starts clean -------------------------------------------
async def moved_regions_start_clean(tb, params):
    """VF 1 fills its slice and saves a context; the PF moves VF 1, gives VF 2 VF 1's old
    range, then (once no context is valid) moves the CSA and gives VF 2 the old CSA."""
    async def agent(gpu, seen):
        unit = params.iov_fb_unit
        await gpu.program(SMALL_LAYOUT)
        await gpu.run(1)
        await gpu.reg(1, "GFX_STATE", 0, write=True, data=SECRET)
        for k in range(4):
            await gpu.fb(1, k * unit + 0x40, write=True, data=SECRET + k)
        await gpu.iov.command(C.IDLE_GPU, 1, expect=IovStatus.COMMAND_DONE)
        await gpu.iov.command(C.SAVE_GPU_STATE, 1, expect=IovStatus.COMMAND_DONE)
        await gpu.program({1: (32, 4), 2: (16, 4)})               # VF 2 gets VF 1's old FB
        seen["vf2_reads"] = [(await gpu.fb(2, k * unit + 0x40))[1] for k in range(4)]
        seen["vf1_reads"] = [(await gpu.fb(1, k * unit + 0x40))[1] for k in range(4)]
        await gpu.cfg.write(1, "DEV_CTL", INITIATE_FLR=1)          # no valid context left
        await gpu.sys.wait(4)
        await gpu.program({"csa": (40, 4)})
        seen["cntxt"] = (await gpu.cfg.read(0, "GPUIOV_CNTXT"))["OFFSET"]
        await gpu.program({2: (8, 4)})                            # VF 2 on the old CSA
        seen["vf2_on_old_csa"] = [(await gpu.fb(2, k * 4096))[1] for k in range(4 * unit // 4096)]
        seen["active"] = await gpu.fbp.read("ACTIVE_MASK", 0)
        seen["scrubbed"] = await gpu.gpu.read("SCRUB_GRANULES")
    return await _go(tb, params, agent)


# --- The scrubber's cost: SCRUB_LAST for clean and dirty regions -------------------------
#: (what the PF programs, which granules of which VF's slice that VF writes first): each
#: step is programmed and settled alone, so SCRUB_LAST is that step's last activation.
SCRUB_STEPS = (
    ({"csa": (8, 4)}, {}),            # 4 clean granules
    ({1: (16, 4)}, {}),               # 4 clean
    ({2: (24, 1)}, {}),               # 1 clean
    ({1: (32, 4)}, {1: (0, 2)}),      # VF 1 dirtied 2 of its old granules; new FB clean
    ({2: (16, 4)}, {}),               # VF 2 on VF 1's old FB: 2 of 4 dirty
    ({2: (40, 3)}, {2: (1, 2, 3)}),   # VF 2 moves on; 3 of its old granules dirty
    ({1: (16, 1)}, {}),               # 1 granule, dirty
    ({1: (17, 3)}, {}),               # 3 granules, both still dirty ones last
)


async def scrub_cost(tb, params):
    """For each of SCRUB_STEPS: the granule ranges activated (their granules and which were
    written since last filled, as the FB's own history says), SCRUB_LAST and the change of
    SCRUB_GRANULES."""
    async def agent(gpu, seen):
        unit, granule = params.iov_fb_unit, params.fb_granule
        steps = seen["steps"] = []
        for layout, writes in SCRUB_STEPS:
            for vf, granules in writes.items():
                for g in granules:
                    status, _ = await gpu.fb(vf, g * granule + 0x40, write=True, data=SECRET)
                    assert status == "OK", status
            before = await gpu.gpu.read("SCRUB_GRANULES")
            await gpu.program(layout)
            steps.append({"layout": {str(k): [v[0] * unit // granule, v[1] * unit // granule]
                                     for k, v in layout.items()},
                          "scrub_last": await gpu.gpu.read("SCRUB_LAST"),
                          "filled": await gpu.gpu.read("SCRUB_GRANULES") - before})
    return await _go(tb, params, agent)


# --- bounded response: a flood of register reads cannot hold back an FB read's answer ---
async def read_under_flood(tb, params, flooders=6, reads=12):
    """VF 1 reads its FB while ``flooders`` agents keep the host port busy with register
    reads (more requests than one per cycle); returns the cycles, from acceptance to answer,
    of every FB read and of every other request."""
    system = System(tb, params)
    gpu, seen = Gpu(system, params), {"done": False}

    async def flood():
        while not seen["done"]:
            await gpu.reg(2, "CONFIG_MEMSIZE")

    async def main():
        await gpu.enumerate()
        await gpu.program(LAYOUT)
        await gpu.fb(1, 0, write=True, data=SECRET)
        for _ in range(flooders):
            system.spawn(flood())
        await system.wait(20)
        first = len(system.answer_cycles)
        for _ in range(reads):
            assert (await gpu.fb(1, 0)) == ["OK", SECRET]
        seen["done"] = True
        seen["first"] = first

    system.spawn(main())
    await system.run(100_000)
    cycles = system.answer_cycles[seen["first"]:]
    return {"fb_reads": [c for kind, write, c in cycles if c > 3 and not write],
            "others": sorted({c for kind, write, c in cycles if c <= 3}),
            "answered": len(cycles), "latency": system.fbmem.latency}
